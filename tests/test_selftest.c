/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_selftest.c - the harness catches every bug class, and stays silent on
 * correct drivers.
 *
 *  1. Hand-written traces (the .trace files in tests/traces).  Each has a line
 *     "# expect: SIGNATURE" (a prefix of the report signature, or "ok"), and
 *     may have "# asan: skip" (the driver's library crashes under ASan).  A
 *     trace expected to fail is also replayed on two correct drivers, raw and
 *     buggy's write-back cache, which must stay silent: the bug is the
 *     driver's, not the trace's.
 *  2. Random programs: every buggy mode is caught within a bounded number of
 *     seeds (the power-loss modes only by a program that crashes), and each
 *     catching program is silent on raw and on the write-back cache.
 *  3. No false positives: correct drivers under adversarial schedules (FIFO,
 *     LIFO, random completion order; requests split into reordered pieces;
 *     cancels that withdraw or are ignored; injected faults; every discard
 *     semantics) run well over 100,000 random ops without a report.
 *  4. No false positives across power loss: correct drivers, among them a
 *     write-back cache that holds writes in memory or leaves them on the
 *     lower file unflushed (legitimately lost at a crash), stay silent over
 *     thousands of random programs that crash.
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#ifndef BLKV_TRACES_DIR
#define BLKV_TRACES_DIR "tests/traces"
#endif

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = 0, *len = (size_t)n;
    return buf;
}

static int run_quiet(const struct blkv_program *p, const char *driver,
                     struct blkv_run_result *res)
{
    struct blkv_run_opts o = {.quiet = true};
    return blkv_run_spec(p, driver, &o, res);
}

/* The correct drivers a failing program is replayed on: raw, and a
 * write-back cache (writes done before they reach the lower file, and lost
 * at a crash unless flushed, as they may be). */
static const char *const siblings[] = {"raw", "buggy mode=writeback"};

/* Whether p is silent on every sibling; says where it is not. */
static bool silent_on_siblings(const struct blkv_program *p, const char *what)
{
    bool ok = true;

    for (size_t i = 0; i < sizeof(siblings) / sizeof(siblings[0]); i++) {
        struct blkv_run_result res;
        if (run_quiet(p, siblings[i], &res) != BLKV_RUN_OK) {
            fprintf(stderr, "%s on %s: expected silence, got %s\n%s", what, siblings[i],
                    res.message, res.report ? res.report : "");
            ok = false;
        }
        blkv_run_result_free(&res);
    }
    return ok;
}

/* ---- 1. hand-written traces ---------------------------------------------- */

static int trace_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 6 && strcmp(d->d_name + n - 6, ".trace") == 0;
}

static void test_traces(void)
{
    struct dirent **list;
    int n = scandir(BLKV_TRACES_DIR, &list, trace_filter, alphasort);
    int failing = 0;

    REQUIRE(n > 0);
    for (int i = 0; i < n; i++) {
        char path[4096], expect[96] = "", err[512];
        struct blkv_program p;
        struct blkv_run_result res;
        const char *e;
        size_t len;
        char *text;
        int st;

        snprintf(path, sizeof(path), "%s/%s", BLKV_TRACES_DIR, list[i]->d_name);
        text = slurp(path, &len);
        REQUIRE(text);
        e = strstr(text, "# expect: ");
        if (!e) {
            fprintf(stderr, "%s: no '# expect:' line\n", path);
            t_failures++;
            free(text);
            continue;
        }
        sscanf(e + 10, "%95s", expect);
#ifdef T_ASAN
        /* a finding in a library that AddressSanitizer stops in the library
         * itself, before the verifier sees the read */
        if (strstr(text, "# asan: skip")) {
            printf("skip %s (under AddressSanitizer)\n", list[i]->d_name);
            free(text);
            continue;
        }
#endif
        blkv_program_init(&p);
        if (blkv_program_parse(text, len, path, &p, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            t_failures++;
            free(text);
            blkv_program_free(&p);
            continue;
        }
        if (p.cfg.driver) { /* a driver left out of this build (libqcow, nbd) */
            char name[64] = "";
            sscanf(p.cfg.driver, "%63s", name);
            if (!blkv_registry_find(name)) {
                printf("skip %s (driver %s not built)\n", list[i]->d_name, name);
                free(text);
                blkv_program_free(&p);
                continue;
            }
        }
        st = run_quiet(&p, NULL, &res);
        if (strcmp(expect, "ok") == 0) {
            if (st != BLKV_RUN_OK) {
                fprintf(stderr, "%s: expected silence, got %s\n%s", path, res.message,
                        res.report ? res.report : "");
                t_failures++;
            }
        } else {
            failing++;
            if (st != BLKV_RUN_VIOLATION || strncmp(res.signature, expect, strlen(expect))) {
                fprintf(stderr, "%s: expected %s, got status %d %s (%s)\n%s", path, expect, st,
                        res.signature, res.message, res.report ? res.report : "");
                t_failures++;
            } else {
                printf("  %-36s caught: %s\n", list[i]->d_name, res.signature);
            }
            /* the siblings: the same ops on correct drivers are clean */
            if (!silent_on_siblings(&p, path))
                t_failures++;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
        free(text);
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    CHECK(failing >= 12);
}

/* ---- random programs -------------------------------------------------------- */

/* Random programs come from the property runner's generator. */
static void random_program(uint64_t seed, size_t nops, struct blkv_program *p)
{
    REQUIRE(blkv_program_random(seed, 0, nops, p) == 0);
}

/* ---- 2. every buggy mode is caught by random programs -------------------- */

static const struct {
    const char *mode;
    const char *sig; /* required signature prefix */
    bool crash;      /* seen only after a power loss */
} modes[] = {
    {"lost-write", "contents/read/", false},   {"stale-read", "contents/read/", false},
    {"misdirected-write", "contents/read/", false}, {"torn-write", "contents/read/", false},
    {"zombie-write", "contents/read/", false}, {"wrong-return", "retval/", false},
    {"flip-flop", "contents/read/", false},    {"zeroes-noop", "contents/read/", false},
    {"flush-early", "contents/read/", true},   {"fua-ignored", "contents/read/", true},
    {"write-early", "contents/read/", true},
};

#define MAX_SEEDS 500

static void test_random_catches(void)
{
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        char spec[96];
        uint64_t seed;
        bool found = false;

        snprintf(spec, sizeof(spec), "buggy mode=%s", modes[m].mode);
        for (seed = 0; seed < MAX_SEEDS && !found; seed++) {
            struct blkv_program p;
            struct blkv_run_result res;
            blkv_program_init(&p);
            random_program(seed, 96, &p);
            int st = run_quiet(&p, spec, &res);
            if (st == BLKV_RUN_VIOLATION) {
                char what[64];
                found = true;
                printf("  %-18s caught by seed %3" PRIu64 ": %s%s\n", modes[m].mode, seed,
                       res.signature, res.stats.crashes ? " (after a crash)" : "");
                CHECK(strncmp(res.signature, modes[m].sig, strlen(modes[m].sig)) == 0);
                /* a power-loss bug shows only through a power loss */
                CHECK(!modes[m].crash || res.stats.crashes > 0);
                /* siblings: the same program on correct drivers is clean */
                snprintf(what, sizeof(what), "seed %" PRIu64, seed);
                CHECK(silent_on_siblings(&p, what));
            } else {
                CHECK(st == BLKV_RUN_OK);
            }
            blkv_run_result_free(&res);
            blkv_program_free(&p);
        }
        if (!found)
            fprintf(stderr, "mode %s not caught within %d seeds\n", modes[m].mode, MAX_SEEDS);
        CHECK(found);
    }
}

/* ---- 3. no false positives -------------------------------------------------- */

static void test_no_false_positives(void)
{
    static const char *const drivers[] = {
        "raw",
        "raw split=512",
        "raw split=4096 cancel=ignore",
        "raw discard=unspecified",
        "raw discard=ignore",
        "raw align=512",
        "buggy mode=none",
        "buggy mode=writeback",
    };
    uint64_t ops = 0, reads = 0, bytes = 0, cancels = 0, faults = 0, runs = 0;

    for (uint64_t seed = 0; ops < 120000; seed++) {
        const char *drv = drivers[seed % (sizeof(drivers) / sizeof(drivers[0]))];
        struct blkv_program p;
        struct blkv_run_result res;
        int st;

        blkv_program_init(&p);
        random_program(1000000 + seed, 256, &p);
        st = run_quiet(&p, drv, &res);
        if (st != BLKV_RUN_OK) {
            fprintf(stderr, "false positive: driver '%s', seed %" PRIu64 ":\n%s%s\n", drv,
                    1000000 + seed, res.report ? res.report : "", res.message);
            t_failures++;
            blkv_run_result_free(&res);
            blkv_program_free(&p);
            break;
        }
        ops += res.stats.ops, reads += res.stats.reads_checked;
        bytes += res.stats.bytes_verified, cancels += res.stats.cancels;
        faults += res.stats.faults, runs++;
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    printf("  %" PRIu64 " programs, %" PRIu64 " ops, %" PRIu64 " reads verified (%" PRIu64
           " MiB), %" PRIu64 " cancels, %" PRIu64 " injected faults: no report\n",
           runs, ops, reads, bytes >> 20, cancels, faults);
    CHECK(ops >= 100000);
    CHECK(cancels > 100);
    CHECK(faults > 100);
}

/* ---- 4. no false positives across power loss ------------------------------- */

#define CRASHING_PROGRAMS 1500

static void test_no_false_positives_crash(void)
{
    static const char *const drivers[] = {
        "buggy mode=writeback",               /* every 3rd write written back unflushed */
        "buggy mode=writeback every=1",       /* every write on the lower file, unflushed */
        "buggy mode=writeback every=1000000", /* writes in memory until a flush or FUA */
        "raw",
        "buggy mode=none",
    };
    uint64_t runs = 0, crashing = 0, crashes = 0, reads = 0, faults = 0;

    for (uint64_t seed = 0; crashing < CRASHING_PROGRAMS; seed++) {
        const char *drv = drivers[seed % (sizeof(drivers) / sizeof(drivers[0]))];
        struct blkv_program p;
        struct blkv_run_result res;
        int st;

        blkv_program_init(&p);
        random_program(2000000 + seed, 128, &p);
        st = run_quiet(&p, drv, &res);
        if (st != BLKV_RUN_OK) {
            fprintf(stderr, "false positive: driver '%s', seed %" PRIu64 ":\n%s%s\n", drv,
                    2000000 + seed, res.report ? res.report : "", res.message);
            t_failures++;
            blkv_run_result_free(&res);
            blkv_program_free(&p);
            break;
        }
        runs++;
        crashing += res.stats.crashes > 0;
        crashes += res.stats.crashes;
        reads += res.stats.reads_checked;
        faults += res.stats.faults;
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    printf("  %" PRIu64 " programs, %" PRIu64 " of them with %" PRIu64 " crashes, %" PRIu64
           " reads verified, %" PRIu64 " injected faults: no report\n",
           runs, crashing, crashes, reads, faults);
    CHECK(crashing >= CRASHING_PROGRAMS);
}

/* The parts, by the names ctest runs them under (in parallel). */
static const struct {
    const char *name;
    void (*fn)(void);
    const char *fn_name;
} parts[] = {
    {"traces", test_traces, "test_traces"},
    {"catches", test_random_catches, "test_random_catches"},
    {"quiet", test_no_false_positives, "test_no_false_positives"},
    {"quiet-crash", test_no_false_positives_crash, "test_no_false_positives_crash"},
};

#define NPARTS (sizeof(parts) / sizeof(parts[0]))

/* test_selftest [PART...]: the parts named (traces, catches, quiet,
 * quiet-crash), or all of them. */
int main(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < NPARTS && strcmp(argv[a], parts[i].name) != 0)
            i++;
        if (i == NPARTS) {
            fprintf(stderr, "test_selftest: no part '%s' (traces, catches, quiet, quiet-crash)\n",
                    argv[a]);
            return 2;
        }
    }
    for (size_t i = 0; i < NPARTS; i++) {
        bool run = argc < 2;
        for (int a = 1; a < argc && !run; a++)
            run = strcmp(argv[a], parts[i].name) == 0;
        if (run) {
            int before = t_failures;
            parts[i].fn();
            printf("%s %s\n", t_failures == before ? "ok  " : "FAIL", parts[i].fn_name);
        }
    }
    T_EXIT();
}
