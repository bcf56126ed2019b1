/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_faults.c - qemu-iotests 026 for blkv's qcow2: fault rules by event.
 *
 *   test_faults v2|v3|lazy|all
 *
 * For one kind of image (version 2, version 3, version 3 with lazy
 * refcounts), every cell of
 *
 *   event (the 12 standard ones) x {EIO, ENOSPC} x {once, always}
 *                                x {write, write-zeroes, discard, flush}
 *
 * runs a program built so that the op reaches the event: a rule
 * `fault EVENT ERRNO [once]`, the op, then reads of what it touched, a later
 * write there, more reads, a reopen, reads and the image check.  The core
 * checks what the oracle says of faults: later requests may fail, a request
 * that reports success is still correct, the check finds no corruption
 * (leaks are allowed).  The same cell then runs with a power loss right after
 * the fault: the op is stepped one lower I/O at a time and the crash comes at
 * the first step after which the injected fault has happened (found by
 * bisection; every probe is itself a crash test), followed by reads, a
 * write, a reopen and the check.
 *
 * A cell whose program must reach its event and does not (no lower I/O
 * failed by injection) is a failure, and so is a cell listed in
 * unreachable[] (with the reason) that does reach it.  The summary line gives
 * the matrix size, the cells run and unreachable, the crash probes and the
 * time taken.
 *
 * The programs use 512-byte clusters, so that a few hundred KiB of
 * allocation need a new refcount block, and caches of two tables, so that
 * lazy refcount blocks are written back by eviction.  Beforehand (prep) each
 * program writes about 224 clusters, then reopens (the caches start cold,
 * so metadata is loaded during the op).  A raw backing file holds the
 * initial pattern where the op must read old data to copy it (copy on write)
 * or must write zero flags over it; version 2 discards, which a backing file
 * would make a no-op, run without one over a device that starts as the
 * pattern.  Without lazy refcounts the header changes only when the
 * refcount table grows: header_update for a write is reached with a write
 * of 8 MiB (the refcount table of one cluster covers 8 MiB of file).
 *
 * BLKV_FAULTS_VERBOSE=1 prints every cell; BLKV_FAULTS_ONLY=TEXT runs only
 * the cells whose name ("v3 write l2_alloc EIO once") contains TEXT.
 */
#include <blkv/program.h>
#include <blkv/run.h>
#include "registry.h"
#include "test.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum kind { K_V2, K_V3, K_LAZY, K__COUNT };
enum opk { O_WRITE, O_WZERO, O_DISCARD, O_FLUSH, O__COUNT };

static const char *const kind_names[K__COUNT] = {"v2", "v3", "lazy"};
static const char *const kind_opts[K__COUNT] = {"version=2", "version=3",
                                                "version=3 lazy-refcounts=on"};
static const char *const op_names[O__COUNT] = {"write", "write-zeroes", "discard", "flush"};

#define NEVENTS (BLKV_EV__STANDARD - 1) /* data_read .. flush */
#define ANY -1

/*
 * The cells whose event the op cannot reach in blkv's qcow2, whatever the
 * program: kind and op may be ANY.
 */
static const struct unreachable {
    int kind, op;
    unsigned ev;
    const char *why;
} unreachable[] = {
    /* a flush allocates and maps nothing: it writes back what caches hold
     * dirty (only lazy refcount blocks) and flushes the lower file */
    {ANY, O_FLUSH, BLKV_EV_DATA_READ, "a flush reads nothing"},
    {ANY, O_FLUSH, BLKV_EV_DATA_WRITE, "a flush writes no guest data"},
    {ANY, O_FLUSH, BLKV_EV_COW_READ, "a flush copies nothing"},
    {ANY, O_FLUSH, BLKV_EV_COW_WRITE, "a flush copies nothing"},
    {ANY, O_FLUSH, BLKV_EV_L1_UPDATE, "a flush maps nothing (L1 is written through)"},
    {ANY, O_FLUSH, BLKV_EV_L2_UPDATE, "a flush maps nothing (L2 tables are written through)"},
    {ANY, O_FLUSH, BLKV_EV_L2_ALLOC, "a flush allocates nothing"},
    {ANY, O_FLUSH, BLKV_EV_REFBLOCK_ALLOC, "a flush allocates nothing"},
    {ANY, O_FLUSH, BLKV_EV_REFTABLE_GROW, "a flush allocates nothing"},
    {ANY, O_FLUSH, BLKV_EV_HEADER_UPDATE, "the dirty bit is cleared only on close"},
    {K_V2, O_FLUSH, BLKV_EV_REFBLOCK_UPDATE, "refcount blocks are written through"},
    {K_V3, O_FLUSH, BLKV_EV_REFBLOCK_UPDATE, "refcount blocks are written through"},
    /* version 2 discards drop mappings and free clusters, nothing else
     * (with a backing file they do nothing at all) */
    {K_V2, O_DISCARD, BLKV_EV_COW_READ, "partial clusters are zeroed in place or left as zeros"},
    {K_V2, O_DISCARD, BLKV_EV_COW_WRITE, "partial clusters are zeroed in place or left as zeros"},
    {K_V2, O_DISCARD, BLKV_EV_L1_UPDATE, "no L2 table is allocated: entries only become 0"},
    {K_V2, O_DISCARD, BLKV_EV_L2_ALLOC, "no L2 table is allocated: entries only become 0"},
    {K_V2, O_DISCARD, BLKV_EV_REFBLOCK_ALLOC, "a version 2 discard allocates nothing"},
    {K_V2, O_DISCARD, BLKV_EV_REFTABLE_GROW, "a version 2 discard allocates nothing"},
    {K_V2, O_DISCARD, BLKV_EV_HEADER_UPDATE, "the header changes only when the refcount table "
                                             "grows, and a discard allocates nothing"},
};

/* The reason a cell is unreachable, or NULL. */
static const char *unreachable_why(int kind, int op, unsigned ev)
{
    for (size_t i = 0; i < sizeof(unreachable) / sizeof(unreachable[0]); i++) {
        const struct unreachable *u = &unreachable[i];
        if ((u->kind == ANY || u->kind == kind) && (u->op == ANY || u->op == op) && u->ev == ev)
            return u->why;
    }
    return NULL;
}

/* ---- programs ------------------------------------------------------------------ */

struct sbuf {
    char *b;
    size_t n, cap;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(s->b ? s->b + s->n : NULL, s->b ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        REQUIRE(n >= 0);
        if (s->b && s->n + (size_t)n < s->cap)
            break;
        s->cap = (s->cap + (size_t)n + 1) * 2;
        REQUIRE((s->b = realloc(s->b, s->cap)));
    }
    s->n += (size_t)n;
}

/* A cell: the image kind, the op, and the rule `fault EV ERR [once] [after
 * N]`; growth: the op grows the refcount table (growth_scenario). */
struct cell {
    int kind, op;
    unsigned ev;
    int err;
    bool once;
    uint64_t after;
    bool growth;
};

/* What a cell's program does around its rule. */
struct scenario {
    const char *opts;  /* driver options beyond the kind's */
    bool pattern;      /* the device starts as the pattern */
    const char *prep;  /* ops before the rule */
    bool cold;         /* reopen after prep: caches start empty */
    char op[96];       /* the op the rule is for */
    uint64_t lo, hi;   /* bytes to read back: [lo, hi) */
    char later[96];    /* a later request over what the op touched */
};

#define DEV_SIZE (UINT64_C(16) << 20)
/*
 * Before the op: 8 clusters at 1 MiB first (their refcounts are in the
 * first refcount block, and the op's last clusters: a lazy write-zeroes
 * frees them after it has made the third block, so that the cache of two
 * blocks evicts a dirty one); 224 clusters in 4 L2 tables where the op
 * starts; 231 at 8 MiB, so that the file holds 502 clusters, short of the
 * third refcount block (a block counts 256); and two clusters far away in
 * L2 tables of their own: the check after a reopen walks every L2 table in
 * guest order and leaves the last two in the cache, so that the op loads
 * its own.
 */
#define PREP_WRITE                                                                         \
    "write 1048576 4096\nwrite 0 114688\nwrite 8388608 118272\nwrite 15728640 4096\n"        \
    "write 16000000 4096\n"

/*
 * Refcount table growth (026's second part): an image filled to 9 clusters
 * short of what its refcount table of one cluster covers (64 blocks of 256
 * refcounts: 16384 clusters, 8 MiB), then an op past the fill grows it: a
 * write of 40 clusters, or write-zeroes and discards of 640 (new clusters of
 * zeros in version 2, zero flags in 10 new L2 tables in version 3).  The
 * image is made once per kind (make_growth_image), with a raw backing file
 * that the programs leave empty, and each program opens it (`lower`): the
 * device starts as zeros to the model, so the programs read only what lies
 * past the fill.  Without lazy refcounts the header changes only when the
 * refcount table grows, so this is how those cells reach header_update.
 */
#define GROWTH_FILL UINT64_C(8217600) /* 16050 clusters of data: a file of 16375 */
static char growth_dir[64];

static void growth_scenario(int kind, int op, struct scenario *sc)
{
    static char prep[128];
    uint64_t len = op == O_WRITE ? 20480 : 327680;

    snprintf(prep, sizeof(prep), "lower %s/%s.qcow2\n", growth_dir, kind_names[kind]);
    sc->opts = "";
    sc->pattern = false;
    sc->prep = prep;
    snprintf(sc->op, sizeof(sc->op), "%s %" PRIu64 " %" PRIu64 "%s",
             op == O_WRITE ? "write" : op == O_WZERO ? "wzero" : "discard", GROWTH_FILL, len,
             op == O_WZERO ? " unmap" : "");
    sc->lo = GROWTH_FILL, sc->hi = GROWTH_FILL + len + 10000;
}

static void scenario_for(const struct cell *c, struct scenario *sc)
{
    int kind = c->kind, op = c->op;
    unsigned ev = c->ev;

    memset(sc, 0, sizeof(*sc));
    sc->opts = "backing=raw";
    sc->pattern = true;
    sc->prep = PREP_WRITE;
    sc->cold = true;
    if (c->growth || (ev == BLKV_EV_HEADER_UPDATE && kind != K_LAZY && op != O_FLUSH)) {
        growth_scenario(kind, op, sc);
        op = -1;
    }
    switch (op) {
    case O_WRITE:
        /* in place over the prep, then new clusters over the backing file
         * in new L2 tables, past the first refcount block (256 clusters)
         * and the second; ends in a partial cluster */
        snprintf(sc->op, sizeof(sc->op), "write 110000 200000");
        sc->lo = 100000, sc->hi = 320000;
        break;
    case O_WZERO:
    case O_DISCARD:
        if (op == O_DISCARD && kind == K_V2) /* a backing file would make it a no-op */
            sc->opts = "";
        /* zero flags (version 3) over the prep's data and over the backing
         * file, in L2 tables enough for a new refcount block; partial
         * clusters at both ends */
        snprintf(sc->op, sizeof(sc->op), "%s 110000 1000000%s",
                 op == O_WZERO ? "wzero" : "discard", op == O_WZERO ? " unmap" : "");
        sc->lo = 100000, sc->hi = 1120000;
        break;
    case O_FLUSH:
        /* lazy refcounts: the prep's refcount blocks are dirty in the cache */
        sc->cold = false;
        snprintf(sc->op, sizeof(sc->op), "flush");
        sc->lo = 0, sc->hi = 120000;
        break;
    default:
        break;
    }
    snprintf(sc->later, sizeof(sc->later), "write %" PRIu64 " 5000", (sc->lo + sc->hi) / 2);
}

/* Read [lo, hi) in requests of at most 4 MiB. */
static void sb_reads(struct sbuf *s, uint64_t lo, uint64_t hi)
{
    for (uint64_t off = lo; off < hi; off += UINT64_C(4) << 20)
        sb_printf(s, "read %" PRIu64 " %" PRIu64 "\n", off,
                  hi - off < (UINT64_C(4) << 20) ? hi - off : UINT64_C(4) << 20);
}

/* What a cell's program does after the op. */
enum mode {
    M_REACH, /* drain and end: the faults are the op's alone */
    M_FULL,  /* drain, reads, a later write, reads, reopen, reads, check */
    M_PROBE, /* step the op crash_steps lower I/Os, crash, end (the check
              * after the crash runs) */
    M_CRASH, /* the same, then as M_FULL after the drain */
};

/* The rule of a cell, as trace text. */
static void rule_text(const struct cell *c, char *buf, size_t len)
{
    char evn[32], after[32] = "";

    if (c->after)
        snprintf(after, sizeof(after), " after %" PRIu64, c->after);
    snprintf(buf, len, "%s %s%s%s", blkv_event_name(c->ev, evn, sizeof(evn)),
             c->err == 5 ? "EIO" : "ENOSPC", c->once ? " once" : "", after);
}

/* The program of a cell. */
static char *cell_program(const struct cell *c, enum mode m, long crash_steps, unsigned crash_arg)
{
    struct sbuf s = {0};
    struct scenario sc;
    char rule[80];

    scenario_for(c, &sc);
    rule_text(c, rule, sizeof(rule));
    sb_printf(&s, "# %s, %s%s, fault %s%s\n", kind_names[c->kind], c->growth ? "growth " : "",
              op_names[c->op], rule, m >= M_PROBE ? ", crash after the fault" : "");
    sb_printf(&s, "driver qcow2 %s cluster-size=512 l2-cache=2 refcount-cache=2 %s\n",
              kind_opts[c->kind], sc.opts);
    sb_printf(&s, "size %" PRIu64 "\ngrain 512\nsched fifo\nqd 4\n", DEV_SIZE);
    if (sc.pattern)
        sb_printf(&s, "init pattern\n");
    sb_printf(&s, "%s", sc.prep);
    sb_printf(&s, "%s", sc.cold ? "reopen\n" : "drain\n");
    sb_printf(&s, "fault %s\n", rule);
    sb_printf(&s, "%s\n", sc.op);
    if (m >= M_PROBE) {
        for (long i = 0; i < crash_steps; i++)
            sb_printf(&s, "step 0\n");
        sb_printf(&s, "crash %u\n", crash_arg);
    } else {
        sb_printf(&s, "drain\n");
    }
    if (m == M_REACH || m == M_PROBE)
        return s.b;
    sb_reads(&s, sc.lo, sc.hi);
    sb_printf(&s, "%s\ndrain\n", sc.later);
    sb_reads(&s, sc.lo, sc.hi);
    sb_printf(&s, "reopen\n");
    sb_reads(&s, sc.lo, sc.hi);
    sb_printf(&s, "check\n");
    return s.b;
}

/* ---- running cells --------------------------------------------------------------- */

static bool verbose;
static const char *only; /* run only the cells whose name contains this */

/* Run one program; on anything but OK print it with the report and count a
 * failure.  Returns the lower I/Os failed by injection, or -1. */
static long run_text(const char *text, const char *what)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.quiet = true};
    struct blkv_run_result res;
    char err[512];
    long faults;
    int st;

    blkv_program_init(&p);
    if (blkv_program_parse(text, strlen(text), what, &p, err, sizeof(err))) {
        fprintf(stderr, "%s\n--- program:\n%s", err, text);
        exit(2);
    }
    st = blkv_run_spec(&p, NULL, &o, &res);
    faults = (long)res.stats.faults;
    if (st != BLKV_RUN_OK) {
        fprintf(stderr, "FAIL %s: status %d: %s\n%s\n--- program:\n%s", what, st, res.message,
                res.report ? res.report : "", text);
        t_failures++;
        faults = -1;
    }
    blkv_run_result_free(&res);
    blkv_program_free(&p);
    return faults;
}

struct totals {
    uint64_t cells, run, unreachable, probes, failed;
};

/* The name of a cell, e.g. "v3 write l2_alloc EIO once". */
static void cell_name(const struct cell *c, char *buf, size_t len)
{
    char rule[80];

    rule_text(c, rule, sizeof(rule));
    snprintf(buf, len, "%s %s%s %s%s", kind_names[c->kind], c->growth ? "growth " : "",
             op_names[c->op], rule, c->once ? "" : " always");
}

/*
 * One cell: the op alone (does it reach its event?), the program without a
 * crash, then the crash right after the fault, found from *steps on (0: the
 * start of the op) and left there.  Returns the faults of the op alone, or
 * -1 on a failure.
 */
static long run_cell(const struct cell *c, struct totals *t, long *steps)
{
    const char *why = c->growth ? NULL : unreachable_why(c->kind, c->op, c->ev);
    char what[160];
    char *text = cell_program(c, M_REACH, 0, 0);
    unsigned crash_arg = (unsigned)(t->cells * 37 % 256);
    int before = t_failures;
    long faults, ret, lo, hi;

    cell_name(c, what, sizeof(what));
    if (only && !strstr(what, only)) {
        free(text);
        return 0;
    }
    t->cells++;
    if ((ret = faults = run_text(text, what)) < 0)
        goto out;
    if (why) {
        t->unreachable++;
        if (faults > 0) {
            fprintf(stderr, "FAIL %s: listed as unreachable (%s), but %ld lower I/O(s) "
                    "failed\n--- program:\n%s", what, why, faults, text);
            t_failures++;
        } else if (verbose) {
            printf("  %-44s unreachable: %s\n", what, why);
        }
        goto out;
    }
    if (faults == 0 && c->growth) { /* past the last I/O of the event */
        t->cells--;
        goto out;
    }
    if (faults == 0) {
        fprintf(stderr, "FAIL %s: the op never reached its event (no lower I/O failed)\n"
                "--- program:\n%s", what, text);
        t_failures++;
        goto out;
    }
    t->run++;
    free(text);
    text = cell_program(c, M_FULL, 0, 0);
    if (run_text(text, what) < 0)
        goto out;
    /* the fewest steps of the op after which the fault has happened: hi
     * has it, lo not (every probe is a crash test of its own); the search
     * gallops up from *steps, known to come before the fault */
    lo = *steps, hi = lo + 1;
    for (;;) {
        free(text);
        text = cell_program(c, M_PROBE, hi, crash_arg);
        t->probes++;
        if ((faults = run_text(text, what)) != 0)
            break;
        lo = hi, hi += hi - *steps;
        if (hi > (1L << 20)) {
            fprintf(stderr, "FAIL %s: no fault within %ld steps\n", what, hi);
            t_failures++;
            goto out;
        }
    }
    while (faults >= 0 && hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        free(text);
        text = cell_program(c, M_PROBE, mid, crash_arg);
        t->probes++;
        faults = run_text(text, what);
        if (faults > 0)
            hi = mid;
        else if (faults == 0)
            lo = mid;
    }
    if (faults < 0)
        goto out;
    *steps = hi;
    /* the crash right after the fault, and what follows it */
    free(text);
    text = cell_program(c, M_CRASH, hi, crash_arg);
    if (run_text(text, what) >= 0 && verbose)
        printf("  %-44s reached; crash after %ld step(s)\n", what, hi);
out:
    if (t_failures != before) {
        t->failed++;
        ret = -1;
    }
    free(text);
    return ret;
}

/* The image the growth programs open, for kind: GROWTH_FILL bytes written. */
static void make_growth_image(int kind)
{
    static bool made[K__COUNT];
    char text[512], what[64];

    if (made[kind])
        return;
    made[kind] = true;
    if (!growth_dir[0]) {
        snprintf(growth_dir, sizeof(growth_dir), "%s/blkv-faults-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        REQUIRE(mkdtemp(growth_dir));
    }
    snprintf(text, sizeof(text),
             "driver qcow2 %s cluster-size=512 backing=raw save=%s/%s.qcow2\nsize %" PRIu64
             "\nwrite 0 %" PRIu64 "\n", kind_opts[kind], growth_dir, kind_names[kind], DEV_SIZE,
             GROWTH_FILL);
    snprintf(what, sizeof(what), "%s growth image", kind_names[kind]);
    REQUIRE(run_text(text, what) == 0);
}

static void run_kind(int kind, struct totals *t)
{
    static const int errs[] = {5, 28}; /* EIO, ENOSPC */

    make_growth_image(kind);
    for (int op = 0; op < O__COUNT; op++)
        for (unsigned ev = 1; ev <= NEVENTS; ev++)
            for (int e = 0; e < 2; e++)
                for (int once = 1; once >= 0; once--) {
                    struct cell c = {kind, op, ev, errs[e], once, 0, false};
                    long steps = 0;
                    run_cell(&c, t, &steps);
                }
}

/* Refcount table growth: every I/O of every event the growing write
 * issues fails in turn (once, ENOSPC, after 0, 1, 2, ... of them), but the
 * data reads: they are the allocator's scan of all 64 refcount blocks
 * (after an open it starts from the first), which the matrix fails already. */
static void run_growth(int kind, struct totals *t)
{
    make_growth_image(kind);
    for (unsigned ev = BLKV_EV_DATA_READ + 1; ev <= NEVENTS; ev++) {
        long steps = 0;
        for (uint64_t n = 0;; n++) {
            struct cell c = {kind, O_WRITE, ev, 28, true, n, true};
            if (run_cell(&c, t, &steps) <= 0)
                break;
        }
    }
}

/*
 * Events name the right I/Os: a write of clusters 0 to 2 from byte 100 to
 * 1100 copies on write two partial clusters, so exactly two I/Os are
 * cow_write (zeros around the data on a device of zeros, or the old content
 * read from a backing file that holds the pattern: exactly two cow_read),
 * and the guest data between is not.
 */
static void check_tags(void)
{
    static const struct {
        const char *opts, *rule;
        long faults;
    } cases[] = {
        {"", "cow_write EIO once after 1", 1},
        {"", "cow_write EIO once after 2", 0},
        {"backing=raw", "cow_read EIO once after 1", 1},
        {"backing=raw", "cow_read EIO once after 2", 0},
        {"backing=raw", "cow_write EIO once after 1", 1},
        {"backing=raw", "cow_write EIO once after 2", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512], what[96];
        long faults;

        snprintf(text, sizeof(text),
                 "driver qcow2 cluster-size=512 %s\nsize 1M\nsched fifo\ninit %s\n"
                 "fault %s\nwrite 100 1000\ndrain\n",
                 cases[i].opts, cases[i].opts[0] ? "pattern" : "zero", cases[i].rule);
        snprintf(what, sizeof(what), "tags: %s, %s", cases[i].opts, cases[i].rule);
        faults = run_text(text, what);
        if (faults >= 0 && faults != cases[i].faults) {
            fprintf(stderr, "FAIL %s: %ld lower I/O(s) failed, expected %ld\n--- program:\n%s",
                    what, faults, cases[i].faults, text);
            t_failures++;
        }
    }
}

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    struct totals t = {0}, g = {0};
    struct timespec t0, t1, t2, c0, c1, c2;
    int kinds[K__COUNT], nk = 0;
    const char *v = getenv("BLKV_FAULTS_VERBOSE");

    verbose = v && *v && strcmp(v, "0");
    only = getenv("BLKV_FAULTS_ONLY");
    if (argc == 2 && !strcmp(argv[1], "all")) {
        for (int k = 0; k < K__COUNT; k++)
            kinds[nk++] = k;
    } else {
        for (int k = 0; argc == 2 && k < K__COUNT; k++)
            if (!strcmp(argv[1], kind_names[k]))
                kinds[nk++] = k;
    }
    if (nk == 0) {
        fprintf(stderr, "usage: test_faults v2|v3|lazy|all\n");
        return 2;
    }
    RUN(check_tags);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int i = 0; i < nk; i++)
        run_kind(kinds[i], &t);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    for (int i = 0; i < nk; i++)
        run_growth(kinds[i], &g);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);
    printf("matrix %s: %" PRIu64 " cells (%d events x 2 errnos x once/always x %d ops x %d "
           "image kind(s)): %" PRIu64 " run, each with a crash after the fault too (%" PRIu64
           " crash probes), %" PRIu64 " unreachable, %" PRIu64 " failed; %.1f s (%.1f s CPU)\n",
           argv[1], t.cells, NEVENTS, O__COUNT, nk, t.run, t.probes, t.unreachable, t.failed,
           secs(&t0, &t1), secs(&c0, &c1));
    printf("refcount table growth %s: %" PRIu64 " faulted I/Os, each with a crash after it too "
           "(%" PRIu64 " crash probes), %" PRIu64 " failed; %.1f s (%.1f s CPU)\n", argv[1],
           g.run, g.probes, g.failed, secs(&t1, &t2), secs(&c1, &c2));
    if (growth_dir[0] && !t_failures) {
        char path[128];
        for (int k = 0; k < K__COUNT; k++) {
            snprintf(path, sizeof(path), "%s/%s.qcow2", growth_dir, kind_names[k]);
            unlink(path);
        }
        snprintf(path, sizeof(path), "%s/backing.raw", growth_dir);
        unlink(path);
        rmdir(growth_dir);
    } else if (growth_dir[0]) {
        printf("the growth programs' images are kept in %s\n", growth_dir);
    }
    printf("%s faults %s\n", t_failures ? "FAIL" : "ok  ", argv[1]);
    T_EXIT();
}
