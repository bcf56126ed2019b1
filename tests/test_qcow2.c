/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_qcow2.c - the qcow2 driver.
 *
 *   test_qcow2 matrix VERSION CLUSTER   random programs (with a reopen in
 *                                       the middle and checks) for every
 *                                       refcount width and backing file
 *   test_qcow2 images                   hand-built images: every cluster
 *                                       kind read back, a dirty image
 *                                       repaired, unsupported features and
 *                                       broken headers refused by name,
 *                                       bit-flipped and truncated images
 *                                       opened without crashing
 *
 * The number of programs per configuration is BLKV_QCOW2_RUNS (default 200);
 * of damaged images BLKV_QCOW2_FLIPS (default 400), from BLKV_QCOW2_FLIP_SEED.
 */
#include <blkv/program.h>
#include <blkv/prop.h>
#include "matrix.h"
#include "test.h"
#include "qcow2_image.h"
#include <blkv/run.h>
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- random programs --------------------------------------------------------- */

/* A random program for the matrix: a modest device, a reopen halfway. */
static void matrix_program(uint64_t seed, uint64_t idx, struct blkv_program *p)
{
    static const uint64_t sizes[] = {UINT64_C(64) << 20, UINT64_C(256) << 20,
                                     UINT64_C(1) << 30};
    t_matrix_program(seed, idx, 96, sizes, p);
    /* initial content: a pattern on the smallest devices (a backing file
     * then holds it), zeros above */
    p->cfg.init = p->cfg.size <= (UINT64_C(64) << 20) && idx % 2 == 0 ? BLKV_INIT_PATTERN
                                                                        : BLKV_INIT_ZERO;
    t_add_reopen_and_check(p);
}

static void test_matrix(const char *version, const char *cluster, uint64_t runs)
{
    static const char *const widths[] = {"1", "16", "64"};
    static const char *const backings[] = {"none", "raw", "qcow2"};

    for (size_t w = 0; w < 3; w++) {
        if (!strcmp(version, "2") && strcmp(widths[w], "16"))
            continue;
        for (size_t b = 0; b < 3; b++) {
            char spec[160];
            uint64_t ops = 0, reads = 0, reopens = 0, faults = 0, bad = 0;

            snprintf(spec, sizeof(spec),
                     "qcow2 version=%s cluster-size=%s refcount-bits=%s backing=%s%s", version,
                     cluster, widths[w], backings[b],
                     !strcmp(version, "3") && w == 1 && b == 0 ? " lazy-refcounts=on" : "");
            for (uint64_t i = 0; i < runs && !bad; i++) {
                struct blkv_program p;
                struct blkv_run_result res;
                blkv_program_init(&p);
                matrix_program(0x9c0f2 + w * 7 + b, i, &p);
                bad = t_run_ok(&p, spec, "matrix", &res) != BLKV_RUN_OK;
                ops += res.stats.ops, reads += res.stats.reads_checked;
                reopens += res.stats.reopens, faults += res.stats.faults;
                blkv_run_result_free(&res);
                blkv_program_free(&p);
            }
            printf("  %-72s %" PRIu64 " ops, %" PRIu64 " reads, %" PRIu64 " reopens, %" PRIu64
                   " faults\n", spec, ops, reads, reopens, faults);
            CHECK(reopens >= runs);
        }
    }
}

/* ---- hand-built images ------------------------------------------------------- */

#define CB 16
#define CS (1u << CB)
#define NCL 16          /* guest clusters: 1 MiB */
#define IMG_CLUSTERS 8  /* header, rt, refblock, L1, L2, data, zero-alloc, compressed */

struct image {
    uint8_t *bytes;
    size_t len;
    uint8_t raw[NCL * CS]; /* what the guest must read */
};

static void be64(uint8_t *p, uint64_t v)
{
    qimg_be(p, v, 8);
}

static void be32(uint8_t *p, uint32_t v)
{
    qimg_be(p, v, 4);
}

/*
 * A version 3 image with 64K clusters and 16-bit refcounts, 1 MiB virtual,
 * built by qcow2_image.h with the L1 table at cluster 3 and the L2 table at
 * 4: guest cluster 0 holds data (host cluster 5), 1 is a zero
 * cluster, 2 a zero cluster over a preallocated one (6, with garbage that
 * must not show), 3 and 4 are compressed and share host cluster 7, 5 holds
 * data (host cluster 8), the rest is unallocated.
 */
static void build_image(struct image *im)
{
    qimg_begin(3, CB, 4, (uint64_t)NCL * CS);
    qimg_reserve_l1();
    qimg_l2(0);
    qimg_data(0, 3);
    qimg_zero(1, false);
    qimg_zero(2, true);
    qimg_compressed(3, 5);
    qimg_compressed(4, 9);
    qimg_data(5, 11);
    im->len = qimg_finish();
    REQUIRE(im->len == (IMG_CLUSTERS + 1) * (size_t)CS);
    REQUIRE(qimg_get(qimg.b + 40, 8) == 3 * (uint64_t)CS);           /* L1 */
    REQUIRE(qimg_get(qimg.b + 3 * CS, 8) == (4 * (uint64_t)CS | UINT64_C(1) << 63)); /* L2 */
    REQUIRE((qimg_get(qimg.b + 4 * CS + 7 * 0, 8) & ~(UINT64_C(1) << 63)) == 5 * (uint64_t)CS);
    REQUIRE(qimg_get(qimg.b + 2 * CS + 2 * 7, 2) == 2); /* the shared compressed cluster */
    REQUIRE((im->bytes = malloc(im->len)));
    memcpy(im->bytes, qimg.b, im->len);
    for (unsigned gc = 0; gc < NCL; gc++)
        qimg_guest(gc, im->raw + (size_t)gc * CS);
    qimg_free();
}

/* Write n bytes to a new temporary file; returns its path (malloc'd). */
static char *write_temp(const void *buf, size_t n)
{
    char *path = strdup("/tmp/blkv-qcow2-XXXXXX");
    int fd;
    REQUIRE(path);
    fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, buf, n) == (ssize_t)n);
    close(fd);
    return path;
}

/* Run a program over an image (and its raw twin as the initial content). */
static int run_image(const uint8_t *bytes, size_t len, const uint8_t *raw, uint64_t seed,
                     size_t nops, struct blkv_run_result *res)
{
    char *img = write_temp(bytes, len), *rawp = write_temp(raw, NCL * CS);
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = &blkv_driver_qcow2, .quiet = true};
    int st;

    blkv_program_init(&p);
    REQUIRE(blkv_program_random(seed, 0, nops, &p) == 0);
    if (nops == 0) { /* one read of everything */
        struct blkv_pop rd = {.code = BLKV_P_READ, .offset = 0, .len = NCL * CS};
        p.nops = 0;
        REQUIRE(blkv_program_push(&p, &rd) == 0);
    }
    p.cfg.size = (uint64_t)NCL * CS;
    p.cfg.grain = CS;
    p.cfg.init = BLKV_INIT_IMAGE;
    p.cfg.init_image = strdup(rawp);
    p.cfg.lower_image = strdup(img);
    st = blkv_run(&p, &o, res);
    blkv_program_free(&p);
    unlink(img);
    unlink(rawp);
    free(img);
    free(rawp);
    return st;
}

/* Every cluster kind reads back right, and survives random programs. */
static void test_image_kinds(void)
{
    struct image im;
    struct blkv_run_result res;

    build_image(&im);
    CHECK(run_image(im.bytes, im.len, im.raw, 0, 0, &res) == BLKV_RUN_OK);
    CHECK(res.stats.bytes_verified == NCL * CS);
    blkv_run_result_free(&res);
    /* the read is really checked: a wrong twin in any kind of cluster is seen */
    for (unsigned g = 0; g < 6; g++) {
        im.raw[g * CS + 777] ^= 1;
        CHECK(run_image(im.bytes, im.len, im.raw, 0, 0, &res) == BLKV_RUN_VIOLATION);
        blkv_run_result_free(&res);
        im.raw[g * CS + 777] ^= 1;
    }
    for (uint64_t seed = 0; seed < 60; seed++) {
        int st = run_image(im.bytes, im.len, im.raw, seed, 64, &res);
        if (st != BLKV_RUN_OK) {
            fprintf(stderr, "image seed %" PRIu64 ": %s\n%s", seed, res.message,
                    res.report ? res.report : "");
            t_failures++;
            blkv_run_result_free(&res);
            break;
        }
        blkv_run_result_free(&res);
    }
    free(im.bytes);
}

/* A dirty image (lazy refcounts, refcounts not written) is repaired on open. */
static void test_image_dirty(void)
{
    struct image im;
    struct blkv_run_result res;

    build_image(&im);
    be64(im.bytes + 72, 1);                    /* dirty */
    be64(im.bytes + 80, 1);                    /* lazy refcounts */
    memset(im.bytes + 2 * CS + 2 * 5, 0, 8);   /* refcounts of clusters 5..8 lost */
    CHECK(run_image(im.bytes, im.len, im.raw, 1, 64, &res) == BLKV_RUN_OK);
    if (res.status != BLKV_RUN_OK)
        fprintf(stderr, "%s\n%s", res.message, res.report ? res.report : "");
    blkv_run_result_free(&res);
    free(im.bytes);
}

/* The image with one change refuses to open with errno-ish message text. */
static void expect_refusal(const char *what, const uint8_t *bytes, size_t len, const char *needle)
{
    static uint8_t zero_raw[NCL * CS];
    struct blkv_run_result res;
    int st = run_image(bytes, len, zero_raw, 0, 8, &res);
    if (st != BLKV_RUN_ERROR || !strstr(res.message, needle)) {
        fprintf(stderr, "%s: expected an open error mentioning '%s', got status %d: %s\n", what,
                needle, st, res.message);
        t_failures++;
    }
    blkv_run_result_free(&res);
}

static void test_image_refused(void)
{
    struct image im;
    uint8_t *b;

    build_image(&im);
    b = malloc(im.len);
    REQUIRE(b);
#define MUTATE(what, needle, stmt)                                                              \
    do {                                                                                        \
        memcpy(b, im.bytes, im.len);                                                            \
        stmt;                                                                                   \
        expect_refusal(what, b, im.len, needle);                                                \
    } while (0)
    MUTATE("magic", "not a qcow2 image", b[0] = 'X');
    MUTATE("version", "version 4", be32(b + 4, 4));
    MUTATE("cluster bits", "cluster_bits", be32(b + 20, 22));
    MUTATE("encryption", "encryption", be32(b + 32, 2));
    MUTATE("corrupt bit", "corrupt bit", be64(b + 72, 2));
    MUTATE("data file", "external data file", be64(b + 72, 4));
    MUTATE("compression", "compression type 1", (be64(b + 72, 8), be32(b + 100, 112), b[104] = 1));
    MUTATE("extended L2", "extended L2", be64(b + 72, 16));
    MUTATE("unknown bit", "incompatible feature bit 40", be64(b + 72, UINT64_C(1) << 40));
    MUTATE("snapshots", "internal snapshots", be32(b + 60, 1));
    MUTATE("size 0", "virtual size is 0", be64(b + 24, 0));
    MUTATE("huge size", "over the largest device", be64(b + 24, UINT64_C(1) << 60));
    MUTATE("small L1", "too small", be64(b + 24, UINT64_C(1) << 40));
    MUTATE("L1 outside", "L1 table", be64(b + 40, UINT64_C(1) << 40));
    MUTATE("L1 misaligned", "L1 table", be64(b + 40, 3 * (uint64_t)CS + 8));
    MUTATE("refcount table outside", "refcount table", be64(b + 48, UINT64_C(1) << 50));
    MUTATE("refcount table huge", "refcount table", be32(b + 56, 1u << 20));
    MUTATE("refcount entry", "refcount table entry", be64(b + CS, 12345));
    /* one cluster named as every refcount block would describe a huge
     * range as used, and the allocator would scan all of it */
    MUTATE("refcount block in the table", "overlaps", for (unsigned i = 0; i < CS / 8; i++)
                                                          be64(b + CS + 8 * i, CS));
    MUTATE("refcount block twice", "named twice", be64(b + CS + 8, 2 * (uint64_t)CS));
    MUTATE("refcount order", "refcount order", be32(b + 96, 7));
    MUTATE("header length", "header length", be32(b + 100, 100));
    MUTATE("extension overrun", "header extension", (be32(b + 104, 0x12345678),
                                                    be32(b + 108, CS)));
    MUTATE("backing name", "backing file name", (be64(b + 8, CS - 4), be32(b + 16, 100)));
    MUTATE("backing format", "backing file format", (be64(b + 8, 512), be32(b + 16, 4),
                                                     memcpy(b + 512, "base", 4),
                                                     be32(b + 104, 0xe2792aca),
                                                     be32(b + 108, 4), memcpy(b + 112, "vmdk", 4)));
#undef MUTATE
    expect_refusal("empty file", b, 0, "not a qcow2 image");
    expect_refusal("truncated header", im.bytes, 40, "not a qcow2 image");
    expect_refusal("truncated tables", im.bytes, 2 * CS, "outside");
    free(b);
    free(im.bytes);
}

/* A program over an untrusted image in memory (blkv_run's untrusted mode,
 * as qcow2_open_fuzzer runs it): a read of everything, random ops, a check,
 * a reopen and another read.  Only the driver contract is checked. */
static int run_untrusted(const uint8_t *bytes, size_t len, uint64_t seed,
                         struct blkv_run_result *res)
{
    struct blkv_program p;
    struct blkv_pop rd = {.code = BLKV_P_READ, .offset = 0, .len = NCL * CS};
    struct blkv_pop check = {.code = BLKV_P_CHECK}, reopen = {.code = BLKV_P_REOPEN};
    struct blkv_run_opts o = {.driver = &blkv_driver_qcow2, .quiet = true, .untrusted = true};
    static const uint8_t empty[1];
    int st;

    blkv_program_init(&p);
    REQUIRE(blkv_program_random(seed, 0, 24, &p) == 0);
    p.cfg.size = (uint64_t)NCL * CS;
    p.cfg.init = BLKV_INIT_ZERO;
    REQUIRE(blkv_program_push(&p, &rd) == 0);
    REQUIRE(blkv_program_push(&p, &check) == 0);
    REQUIRE(blkv_program_push(&p, &reopen) == 0);
    REQUIRE(blkv_program_push(&p, &rd) == 0);
    o.lower[0] = len ? bytes : empty;
    o.lower_len[0] = len;
    st = blkv_run(&p, &o, res);
    blkv_program_free(&p);
    return st;
}

/* Bit flips, byte garbage and truncations anywhere in the metadata: any
 * outcome but a crash or a hang (the sanitizer build makes a crash fail);
 * in untrusted mode, not even a contract violation. */
static void test_image_flips(void)
{
    struct image im;
    uint8_t *b;
    uint64_t x = 0x2545f4914f6cdd1d;
    unsigned outcomes[3] = {0, 0, 0}, untrusted[3] = {0, 0, 0};
    const char *env = getenv("BLKV_QCOW2_FLIPS"), *seed = getenv("BLKV_QCOW2_FLIP_SEED");
    unsigned flips = env ? (unsigned)strtoul(env, NULL, 10) : 400;

    if (seed)
        x ^= strtoull(seed, NULL, 10) * UINT64_C(0x9e3779b97f4a7c15);

    build_image(&im);
    b = malloc(im.len);
    REQUIRE(b);
    for (unsigned i = 0; i < flips; i++) {
        struct blkv_run_result res;
        size_t len = im.len;
        int st;

        memcpy(b, im.bytes, im.len);
        for (unsigned k = 0; k < 1 + i % 4; k++) {
            size_t pos;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly the header's first bytes and the tables' first entries */
            switch (x % 4) {
            case 0: pos = (x >> 8) % 128; break;
            case 1: pos = CS * (1 + (x >> 8) % 4) + (x >> 20) % 64; break;
            case 2: pos = 4 * (size_t)CS + (x >> 8) % 64; break;
            default: pos = (x >> 8) % im.len; break;
            }
            if (i % 5 == 4)
                b[pos] = (uint8_t)(x >> 40);
            else
                b[pos] ^= (uint8_t)(1u << ((x >> 32) % 8));
        }
        if (i % 9 == 8)
            len = (x >> 16) % im.len;
        st = run_image(b, len, im.raw, i, 24, &res);
        outcomes[st]++;
        blkv_run_result_free(&res);
        st = run_untrusted(b, len, i, &res);
        if (st == BLKV_RUN_VIOLATION) {
            fprintf(stderr, "damaged image %u, untrusted: %s\n", i, res.report);
            t_failures++;
        }
        untrusted[st]++;
        blkv_run_result_free(&res);
    }
    printf("  %u damaged images: %u ran clean, %u with findings, %u refused; untrusted: %u "
           "opened, %u refused\n", flips, outcomes[0], outcomes[1], outcomes[2], untrusted[0],
           untrusted[2]);
    CHECK(outcomes[2] > 0);
    CHECK(untrusted[0] > 0 && untrusted[2] > 0);
    free(b);
    free(im.bytes);
}

/* Tables that alias one another (every L1 entry naming the same L2 table,
 * every refcount table entry the same block) are reported, quickly. */
static void test_image_aliases(void)
{
    struct image im;
    struct blkv_run_result res;
    int st;

    build_image(&im);
    be32(im.bytes + 36, CS / 8); /* a one-cluster L1, every entry the L2 table */
    be64(im.bytes + 24, (uint64_t)NCL * CS);
    for (unsigned i = 0; i < CS / 8; i++)
        be64(im.bytes + 3 * CS + 8 * i, 4 * (uint64_t)CS | UINT64_C(1) << 63);
    st = run_image(im.bytes, im.len, im.raw, 0, 0, &res);
    CHECK(st == BLKV_RUN_VIOLATION && strstr(res.report ? res.report : "", "used twice"));
    blkv_run_result_free(&res);
    free(im.bytes);

    build_image(&im);
    for (unsigned i = 0; i < CS / 8; i++)
        be64(im.bytes + CS + 8 * i, 2 * (uint64_t)CS);
    st = run_image(im.bytes, im.len, im.raw, 3, 48, &res);
    CHECK(st != BLKV_RUN_OK);
    blkv_run_result_free(&res);
    free(im.bytes);
}

/*
 * A data cluster far beyond the end of the file (an L2 entry of a corrupt
 * image, written in place) makes the file reach that far; when the
 * refcount table then has to grow, the new table would have to cover all
 * of it.  Growing used to work out that size by scanning the refcount
 * table over the whole range first (billions of entries: minutes, per
 * allocation) before refusing; it now refuses at once.  512-byte clusters
 * and 64-bit refcounts: one refcount table cluster covers 2 MiB of file.
 */
static void test_image_far_write(void)
{
    enum { C = 512 };
    uint8_t img[6 * C];
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = &blkv_driver_qcow2, .quiet = true, .untrusted = true};
    struct blkv_run_result res;
    struct blkv_pop far = {.code = BLKV_P_WRITE, .offset = 0, .len = 4096};
    int st;

    memset(img, 0, sizeof(img));
    /* header, refcount table, refcount block, L2 table, L1 table (2 clusters) */
    be32(img, 0x514649fb);
    be32(img + 4, 3);
    be32(img + 20, 9);
    be64(img + 24, 4 << 20);
    be32(img + 36, 128);
    be64(img + 40, 4 * C);
    be64(img + 48, 1 * C);
    be32(img + 56, 1);
    be32(img + 96, 6);
    be32(img + 100, 104);
    be64(img + C, 2 * C);
    for (unsigned c = 0; c < 6; c++)
        be64(img + 2 * C + 8 * c, 1);
    be64(img + 3 * C, UINT64_C(1) << 63 | UINT64_C(1) << 55); /* guest cluster 0 */
    be64(img + 4 * C, UINT64_C(1) << 63 | 3 * C);
    blkv_program_init(&p);
    p.cfg.size = 4 << 20;
    p.cfg.sched = BLKV_SCHED_FIFO;
    REQUIRE(blkv_program_push(&p, &far) == 0);
    for (uint64_t i = 1; i < 13; i++) { /* 3 MiB of new clusters */
        struct blkv_pop w = {.code = BLKV_P_WRITE, .offset = i << 18, .len = 1 << 18};
        REQUIRE(blkv_program_push(&p, &w) == 0);
    }
    o.lower[0] = img;
    o.lower_len[0] = sizeof(img);
    st = blkv_run(&p, &o, &res); /* took 16 s; now well inside the ctest timeout */
    CHECK(st == BLKV_RUN_OK);
    if (st != BLKV_RUN_OK)
        fprintf(stderr, "%s\n%s", res.message, res.report ? res.report : "");
    blkv_run_result_free(&res);
    blkv_program_free(&p);
}

int main(int argc, char **argv)
{
    const char *env = getenv("BLKV_QCOW2_RUNS");
    uint64_t runs = env ? strtoull(env, NULL, 10) : 200;

    if (argc == 4 && !strcmp(argv[1], "matrix")) {
        test_matrix(argv[2], argv[3], runs);
        printf("%s matrix %s %s\n", t_failures ? "FAIL" : "ok  ", argv[2], argv[3]);
    } else if (argc == 2 && !strcmp(argv[1], "images")) {
        RUN(test_image_kinds);
        RUN(test_image_dirty);
        RUN(test_image_refused);
        RUN(test_image_aliases);
        RUN(test_image_far_write);
        RUN(test_image_flips);
    } else {
        fprintf(stderr, "usage: test_qcow2 matrix VERSION CLUSTER | images\n");
        return 2;
    }
    T_EXIT();
}
