/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_crash_check.c - what an image check may find after a power loss is
 * what the driver declares, and no more (DESIGN.md, "The image after a
 * crash").
 *
 *  1. A check driver of its own ("ck": a passthrough whose check reports
 *     leaked space or corruption, as told) shows each rule both ways: leaks
 *     after a crash pass where the driver declares BLKV_CRASH_LEAKS and are
 *     a finding where it declares a clean check, or without any crash;
 *     corruption is a finding even after a crash; leaks after an injected
 *     fault pass.
 *  2. blkv's qcow2, by the hand traces tests/traces/qcow2-crash-*.trace:
 *     without lazy refcounts a crash really leaves leaks, and they are
 *     excused; with lazy refcounts the crash image is marked dirty, the
 *     open repairs it and nothing is excused.  Over many crash choices, a
 *     lazy crash image that is not marked dirty opens and checks clean in a
 *     run of its own, where a leak would be a finding.
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef BLKV_TRACES_DIR
#define BLKV_TRACES_DIR "tests/traces"
#endif

/* ---- 1. the rules, on a driver whose check says what it is told ---------- */

struct ck_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *f;
    const char *found; /* what the check reports: "nothing", "leaks", "corruption" */
};

static const struct blkv_option ck_options[] = {
    {"crash-check", "leaks", "what the check may find after a crash: leaks or clean"},
    {"found", "leaks", "what every check reports: nothing, leaks or corruption"},
    {NULL, NULL, NULL},
};

static int ck_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                   struct blkv_caps *caps)
{
    struct ck_state *s = state;
    int ret;

    s->ctx = ctx;
    s->f = blkv_lower_get(ctx, 0);
    s->found = blkv_opt(ctx, "found");
    if (create && (ret = blkv_lower_truncate(s->f, size)) < 0)
        return ret;
    caps->size = blkv_lower_size(s->f);
    caps->fua = true;
    caps->crash_check = strcmp(blkv_opt(ctx, "crash-check"), "clean") ? BLKV_CRASH_LEAKS
                                                                      : BLKV_CRASH_CLEAN;
    return 0;
}

static int ck_co_submit(void *state, struct blkv_req *req)
{
    struct ck_state *s = state;
    int ret;

    switch (req->op) {
    case BLKV_OP_READ:
        return blkv_lower_pread(s->f, req->buf, req->len, req->offset);
    case BLKV_OP_WRITE:
        ret = blkv_lower_pwrite(s->f, req->buf, req->len, req->offset);
        return ret || !(req->flags & BLKV_REQ_FUA) ? ret : blkv_lower_flush(s->f);
    case BLKV_OP_FLUSH:
        return blkv_lower_flush(s->f);
    default:
        return 0;
    }
}

static int ck_check(void *state)
{
    struct ck_state *s = state;

    if (!strcmp(s->found, "leaks"))
        blkv_check_leaks(s->ctx, 3);
    else if (!strcmp(s->found, "corruption")) {
        blkv_error(s->ctx, "cluster 7 is referenced twice");
        return -EUCLEAN;
    }
    return 0;
}

static const struct blkv_driver ck_driver = {
    BLKV_DRIVER_HEADER,
    .name = "ck",
    .description = "a passthrough whose check reports what it is told",
    .options = ck_options,
    .state_size = sizeof(struct ck_state),
    .in_process = true,
    .open = ck_open,
    .co_submit = ck_co_submit,
    .check = ck_check,
};

/* Run trace text (config and ops) on driver d with opts. */
static int run_text(const struct blkv_driver *d, const char *opts, const char *text,
                    struct blkv_run_result *res)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = d, .driver_opts = opts, .quiet = true};
    char err[512];
    int st;

    blkv_program_init(&p);
    if (blkv_program_parse(text, strlen(text), "test", &p, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    st = blkv_run(&p, &o, res);
    blkv_program_free(&p);
    return st;
}

static void expect(const char *opts, const char *text, int want, const char *sig,
                   bool want_leaks)
{
    struct blkv_run_result res;
    int st = run_text(&ck_driver, opts, text, &res);

    if (st != want || (sig && strcmp(res.signature, sig)) ||
        (st == BLKV_RUN_OK && (res.stats.leaks_allowed > 0) != want_leaks)) {
        fprintf(stderr, "ck %s: status %d (wanted %d), signature '%s' (wanted '%s'), "
                "leaks allowed %" PRIu64 " (wanted %s): %s\n  program: %s\n", opts, st, want,
                res.signature, sig ? sig : "", res.stats.leaks_allowed, want_leaks ? "some" : "none",
                res.message, text);
        t_failures++;
    }
    blkv_run_result_free(&res);
}

static const char crash_prog[] = "size 1M\nwrite 0 4096\ndrain\nflush\ncrash 3\nread 0 8192\n";
static const char check_prog[] = "size 1M\nwrite 0 4096\ndrain\ncheck\nread 0 8192\n";
static const char fault_prog[] = "size 1M\nfault data_write EIO once\nwrite 0 4096\n"
                                 "write 4096 4096\ndrain\ncheck\nread 0 8192\n";

static void test_rules(void)
{
    /* leaks after a crash: excused only where the driver declares it */
    expect("crash-check=leaks found=leaks", crash_prog, BLKV_RUN_OK, NULL, true);
    expect("crash-check=clean found=leaks", crash_prog, BLKV_RUN_VIOLATION, "check/leak", false);
    /* leaks without a crash or a fault: always a finding */
    expect("crash-check=leaks found=leaks", check_prog, BLKV_RUN_VIOLATION, "check/leak", false);
    /* corruption: a finding after a crash too */
    expect("crash-check=leaks found=corruption", crash_prog, BLKV_RUN_VIOLATION, "check", false);
    /* leaks after an injected fault: harmless */
    expect("crash-check=clean found=leaks", fault_prog, BLKV_RUN_OK, NULL, true);
    /* and a clean check is clean everywhere */
    expect("crash-check=clean found=nothing", crash_prog, BLKV_RUN_OK, NULL, false);
    expect("crash-check=clean found=nothing", check_prog, BLKV_RUN_OK, NULL, false);
}

/* ---- 2. blkv's qcow2 ------------------------------------------------------ */

/* Run program p (its own driver line) with crash images saved in dir. */
static int run_prog(const struct blkv_program *p, const char *spec, const char *dir,
                    struct blkv_run_result *res)
{
    struct blkv_run_opts o = {.quiet = true, .crash_dir = dir};
    return blkv_run_spec(p, spec, &o, res);
}

static void load_trace(const char *name, struct blkv_program *p)
{
    char path[4096], err[512];
    FILE *f;
    static char text[1 << 16];
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", BLKV_TRACES_DIR, name);
    f = fopen(path, "r");
    REQUIRE(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    blkv_program_init(p);
    if (blkv_program_parse(text, n, path, p, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

/* Whether the qcow2 image at path has the dirty bit (incompatible feature
 * bit 0, header offset 72) set; -1 if it cannot be read. */
static int qcow2_dirty(const char *path)
{
    uint8_t h[80];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(h, 1, sizeof(h), f) : 0;

    if (f)
        fclose(f);
    if (n < sizeof(h))
        return -1;
    return h[79] & 1;
}

static void test_qcow2_traces(void)
{
    char dir[] = "/tmp/blkv-crash-check-XXXXXX", img[4200];
    struct blkv_program p;
    struct blkv_run_result res;
    int st;

    REQUIRE(mkdtemp(dir));
    snprintf(img, sizeof(img), "%s/crash-1.lower0", dir);

    load_trace("qcow2-crash-leaks.trace", &p);
    st = run_prog(&p, p.cfg.driver, dir, &res);
    CHECK(st == BLKV_RUN_OK);
    CHECK(res.stats.crashes == 1);
    CHECK(res.stats.leaks_allowed > 0); /* the crash really leaked, and it was excused */
    CHECK(qcow2_dirty(img) == 0);
    blkv_run_result_free(&res);
    blkv_program_free(&p);

    load_trace("qcow2-crash-lazy.trace", &p);
    st = run_prog(&p, p.cfg.driver, dir, &res);
    CHECK(st == BLKV_RUN_OK);
    CHECK(res.stats.crashes == 1);
    CHECK(res.stats.leaks_allowed == 0); /* repaired on open: nothing to excuse */
    CHECK(qcow2_dirty(img) == 1);        /* marked dirty before refcounts went unwritten */
    blkv_run_result_free(&res);
    blkv_program_free(&p);
    unlink(img);
    rmdir(dir);
}

/*
 * Lazy refcounts over many crash choices and timings: every crash image
 * that is not marked dirty must be consistent as it stands.  Each one is
 * opened in a run of its own (no crash there, so a leak is a finding too)
 * and checked.  Dirty ones are counted: both kinds must occur.
 */
static void test_lazy_dirty_bit(void)
{
    char dir[] = "/tmp/blkv-crash-check-XXXXXX", img[4200];
    unsigned dirty = 0, clean = 0;

    REQUIRE(mkdtemp(dir));
    snprintf(img, sizeof(img), "%s/crash-1.lower0", dir);
    for (unsigned i = 0; i < 96; i++) {
        char text[4608], err[512];
        struct blkv_program p;
        struct blkv_run_result res;
        int st, d;

        /* allocating writes, some done, a flush (which may write refcounts
         * back and clear the bit) and more writes in flight at the crash */
        snprintf(text, sizeof(text),
                 "size 4M\nsched %s\nseed %u\nqd 8\n"
                 "write %u 4096\nwrite %u 8192\n%s\nwrite %u 4096\nflush\n%s\n"
                 "write %u 4096\nwrite %u 512\ncrash %u\n",
                 i % 3 == 0 ? "fifo" : i % 3 == 1 ? "lifo" : "random", i,
                 (i * 7 % 64) * 4096, (i * 13 % 64 + 64) * 4096, i % 2 ? "drain" : "",
                 (i * 5 % 64 + 128) * 4096, i % 4 < 2 ? "drain" : "", (i * 11 % 64 + 192) * 4096,
                 (i * 3 % 64 + 320) * 4096, i * 37 % 256);
        blkv_program_init(&p);
        REQUIRE(blkv_program_parse(text, strlen(text), "lazy", &p, err, sizeof(err)) == 0);
        st = run_prog(&p, "qcow2 cluster-size=4096 lazy-refcounts=on", dir, &res);
        if (st != BLKV_RUN_OK) {
            fprintf(stderr, "lazy program %u: %s\n%s", i, res.message, text);
            t_failures++;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
        if (st != BLKV_RUN_OK)
            continue;
        d = qcow2_dirty(img);
        REQUIRE(d >= 0);
        if (d) {
            dirty++;
            continue;
        }
        clean++;
        /* only the check: the crash run judged the data */
        snprintf(text, sizeof(text), "size 4M\nlower %s\ncheck\n", img);
        blkv_program_init(&p);
        REQUIRE(blkv_program_parse(text, strlen(text), "reopen", &p, err, sizeof(err)) == 0);
        st = blkv_run_spec(&p, "qcow2 cluster-size=4096 lazy-refcounts=on",
                           &(struct blkv_run_opts){.quiet = true}, &res);
        if (st != BLKV_RUN_OK) {
            fprintf(stderr, "lazy program %u: the crash image is not marked dirty, yet its "
                    "check says: %s\n", i, res.message);
            t_failures++;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    printf("lazy refcounts: %u crash images marked dirty, %u not (and consistent)\n", dirty,
           clean);
    CHECK(dirty > 0 && clean > 0);
    unlink(img);
    rmdir(dir);
}

int main(void)
{
    RUN(test_rules);
    RUN(test_qcow2_traces);
    RUN(test_lazy_dirty_bit);
    T_EXIT();
}
