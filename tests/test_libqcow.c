/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_libqcow.c - the libqcow driver: images written by blkv's qcow2
 * driver, read back through libqcow.
 *
 *   test_libqcow matrix VERSION CLUSTER   random programs (a reopen in the
 *                                         middle, a check at the end) for
 *                                         the refcount widths of VERSION;
 *                                         no report expected
 *   test_libqcow stale                    a libqcow driver handed a stale
 *                                         snapshot of the image is caught
 *
 * The matrix runs only what libqcow 20201213 (Debian 12) reads right; the
 * rest are findings, with minimal traces in tests/traces/libqcow-bug-*.trace:
 *
 *  - version 3, write-zeroes without unmap: qcow2 keeps allocated clusters
 *    with the zero flag, which libqcow ignores (it reads the old host
 *    cluster, from offset + 1: libqcow-bug-zero-flag-v3*.trace).  Version 3
 *    programs here therefore have every write-zeroes turned into one with
 *    unmap (whole clusters are then freed with entry 0, partial ones
 *    written as zeros, both of which libqcow reads right).
 *  - backing=qcow2, both versions: a read that meets an unallocated cluster
 *    takes the rest of the request from the backing file, over clusters the
 *    image has allocated after it (libqcow-bug-backing-rest.trace).
 *  - backing=qcow2, version 3: a zero cluster without host cluster (entry
 *    1, what qcow2 writes for discards over a backing file) reads as the
 *    image's first cluster, the header (libqcow-bug-zero-plain-backing.trace).
 *  - backing=raw: not supported by the driver (libqcow has no raw parent).
 *
 * The number of programs per configuration is BLKV_LIBQCOW_RUNS (default 150).
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include "matrix.h"
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A random program for the matrix: a modest device, a reopen halfway, a
 * check at the end; with unmap_only, every write-zeroes may unmap. */
static void matrix_program(uint64_t seed, uint64_t idx, bool unmap_only, struct blkv_program *p)
{
    static const uint64_t sizes[] = {UINT64_C(4) << 20, UINT64_C(64) << 20,
                                     UINT64_C(256) << 20};
    t_matrix_program(seed, idx, 64, sizes, p);
    if (unmap_only)
        for (size_t i = 0; i < p->nops; i++)
            if (p->ops[i].code == BLKV_P_WZERO)
                p->ops[i].flags |= BLKV_P_UNMAP;
    t_add_reopen_and_check(p);
}

static void test_matrix(const char *version, const char *cluster, uint64_t runs)
{
    static const char *const widths[] = {"1", "16", "64"};
    bool v3 = !strcmp(version, "3");

    for (size_t w = 0; w < 3; w++) {
        char spec[160];
        uint64_t ops = 0, reads = 0, bytes = 0, reopens = 0, bad = 0;

        if (!v3 && strcmp(widths[w], "16"))
            continue;
        snprintf(spec, sizeof(spec), "libqcow version=%s cluster-size=%s refcount-bits=%s%s",
                 version, cluster, widths[w], v3 && w == 1 ? " lazy-refcounts=on" : "");
        for (uint64_t i = 0; i < runs && !bad; i++) {
            struct blkv_program p;
            struct blkv_run_result res;
            blkv_program_init(&p);
            matrix_program(0x11bc0 + w, i, v3, &p);
            bad = t_run_ok(&p, spec, NULL, &res) != BLKV_RUN_OK;
            ops += res.stats.ops, reads += res.stats.reads_checked;
            bytes += res.stats.bytes_verified, reopens += res.stats.reopens;
            blkv_run_result_free(&res);
            blkv_program_free(&p);
        }
        printf("  %-64s %" PRIu64 " ops, %" PRIu64 " reads (%" PRIu64 " MiB), %" PRIu64
               " reopens\n", spec, ops, reads, bytes >> 20, reopens);
        CHECK(reopens >= runs);
        CHECK(reads > runs);
    }
}

/* ---- a stale snapshot is caught ---------------------------------------------- */

/*
 * "libqcow-stale": the libqcow driver, except that from the second read on
 * libqcow is handed the image as it was at the first read.  A test double
 * only: it lives here, runs as a struct handed to blkv_run, and is a
 * filter over the libqcow driver (blkv_child_*).
 *
 * Every request runs alone (a mutex), so nothing writes lower file 0 while
 * the old image is in it.  A read first flushes (qcow2's metadata reaches
 * the file and its caches are clean, so the libqcow driver's own flush
 * before the read writes nothing), then puts the old image in place, reads
 * through the libqcow driver (which sees a changed image and snapshots the
 * old one), and puts the current image back.
 */
struct stale_state {
    struct blkv_child *inner; /* the libqcow driver, below */
    struct blkv_lower *f;
    struct blkv_co_mutex one;
    uint8_t *old;
    uint64_t old_len;
    uint64_t stale_reads;
};

static uint64_t stale_reads_total;

static int stale_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                      struct blkv_caps *caps)
{
    struct stale_state *s = state;
    int ret;

    free(s->old);
    memset(s, 0, sizeof(*s));
    s->f = blkv_lower_get(ctx, 0);
    ret = blkv_child_open(ctx, &blkv_driver_libqcow, blkv_opts(ctx), size, create, caps,
                          &s->inner);
    return ret;
}

static void stale_close(void *state)
{
    struct stale_state *s = state;

    blkv_child_close(s->inner);
    free(s->old);
    stale_reads_total += s->stale_reads;
    memset(s, 0, sizeof(*s));
}

static int stale_read(struct stale_state *s, struct blkv_req *req)
{
    uint64_t len;
    uint8_t *cur;
    int ret;

    if (!s->old) { /* the first read: exact; keep the image it read */
        if ((ret = blkv_child_submit(s->inner, req)) < 0)
            return ret;
        s->old_len = blkv_lower_size(s->f);
        if (!(s->old = malloc(s->old_len ? s->old_len : 1)))
            return -ENOMEM;
        blkv_lower_peek(s->f, s->old, s->old_len, 0);
        return 0;
    }
    if ((ret = blkv_child_io(s->inner, req, BLKV_OP_FLUSH, 0, 0, 0, NULL)) < 0)
        return ret;
    len = blkv_lower_size(s->f); /* never below old_len: qcow2 does not shrink its file */
    if (!(cur = malloc(len ? len : 1)))
        return -ENOMEM;
    blkv_lower_peek(s->f, cur, len, 0);
    blkv_lower_poke(s->f, s->old, s->old_len, 0);
    ret = blkv_child_submit(s->inner, req);
    blkv_lower_poke(s->f, cur, len, 0);
    free(cur);
    s->stale_reads++;
    return ret;
}

static int stale_co_submit(void *state, struct blkv_req *req)
{
    struct stale_state *s = state;
    int ret;

    blkv_co_mutex_lock(&s->one);
    ret = req->op == BLKV_OP_READ ? stale_read(s, req)
                                  : blkv_child_submit(s->inner, req);
    blkv_co_mutex_unlock(&s->one);
    return ret;
}

static int stale_check(void *state)
{
    struct stale_state *s = state;
    return blkv_child_check(s->inner);
}

static const struct blkv_driver stale_driver = {
    BLKV_DRIVER_HEADER,
    .name = "libqcow-stale",
    .description = "test double: libqcow reads a stale snapshot",
    .options = blkv_qcow2_options,
    .state_size = sizeof(struct stale_state),
    .in_process = true,
    .open = stale_open,
    .close = stale_close,
    .co_submit = stale_co_submit,
    .check = stale_check,
};

/* Run p against "libqcow-stale OPTS" (this file's driver, which no registry lists). */
static int run_stale(const struct blkv_program *p, const char *spec, struct blkv_run_result *res)
{
    struct blkv_run_opts o = {.driver = &stale_driver, .quiet = true};
    REQUIRE(!strncmp(spec, "libqcow-stale", strlen("libqcow-stale")));
    o.driver_opts = spec + strlen("libqcow-stale");
    return blkv_run(p, &o, res);
}

/* A hand-written program: an in-place overwrite after the first read. */
static const char stale_trace[] =
    "blkv-trace 1\n"
    "driver libqcow-stale version=2 cluster-size=4096\n"
    "size 4M\n"
    "init pattern\n"
    "sched fifo\n"
    "qd 1\n"
    "write 0 8192\n"
    "read 0 8192\n"     /* exact: the snapshot the later reads get */
    "write 4096 4096\n" /* overwrites an allocated cluster in place */
    "read 0 8192\n";    /* libqcow gets the old image: write #2 is lost */

#define STALE_SEEDS 200

static void test_stale(void)
{
    static const char *const specs[] = {
        "libqcow-stale version=2 cluster-size=4096",
        "libqcow-stale version=3 cluster-size=65536 refcount-bits=1",
    };
    struct blkv_program p;
    struct blkv_run_result res;
    char err[256];
    int st;

    /* the hand-written program: caught as a lost write, silent on libqcow */
    blkv_program_init(&p);
    REQUIRE(blkv_program_parse(stale_trace, sizeof(stale_trace) - 1, "stale", &p, err,
                               sizeof(err)) == 0);
    st = run_stale(&p, p.cfg.driver, &res);
    CHECK(st == BLKV_RUN_VIOLATION);
    CHECK(!strncmp(res.signature, "contents/read/", 14));
    printf("  hand-written program caught: %s\n", res.signature);
    if (st != BLKV_RUN_VIOLATION)
        fprintf(stderr, "stale trace: status %d: %s\n", st, res.message);
    blkv_run_result_free(&res);
    t_run_ok(&p, "libqcow version=2 cluster-size=4096", NULL, &res);
    blkv_run_result_free(&res);
    blkv_program_free(&p);

    /* random programs: each spec is caught within STALE_SEEDS seeds, and
     * the catching program is silent on the libqcow driver itself */
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        char spec[160];
        bool found = false;
        uint64_t seed;
        for (seed = 0; seed < STALE_SEEDS && !found; seed++) {
            blkv_program_init(&p);
            matrix_program(0x57a1e, seed, true, &p);
            st = run_stale(&p, specs[i], &res);
            if (st == BLKV_RUN_VIOLATION) {
                found = true;
                printf("  %-58s caught by seed %3" PRIu64 ": %s\n", specs[i], seed,
                       res.signature);
                CHECK(!strncmp(res.signature, "contents/read/", 14));
                blkv_run_result_free(&res);
                snprintf(spec, sizeof(spec), "libqcow%s", specs[i] + strlen("libqcow-stale"));
                t_run_ok(&p, spec, NULL, &res);
            } else if (st != BLKV_RUN_OK) {
                fprintf(stderr, "%s, seed %" PRIu64 ": status %d: %s\n", specs[i], seed, st,
                        res.message);
                t_failures++;
            }
            blkv_run_result_free(&res);
            blkv_program_free(&p);
        }
        if (!found)
            fprintf(stderr, "%s: not caught within %d seeds\n", specs[i], STALE_SEEDS);
        CHECK(found);
    }
    CHECK(stale_reads_total > 0);
}

int main(int argc, char **argv)
{
    const char *env = getenv("BLKV_LIBQCOW_RUNS");
    uint64_t runs = env ? strtoull(env, NULL, 10) : 150;

    if (argc == 4 && !strcmp(argv[1], "matrix")) {
        test_matrix(argv[2], argv[3], runs);
        printf("%s matrix %s %s\n", t_failures ? "FAIL" : "ok  ", argv[2], argv[3]);
    } else if (argc == 2 && !strcmp(argv[1], "stale")) {
        RUN(test_stale);
    } else {
        fprintf(stderr, "usage: test_libqcow matrix VERSION CLUSTER | stale\n");
        return 2;
    }
    T_EXIT();
}
