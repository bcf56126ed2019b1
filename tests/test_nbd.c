/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_nbd.c - the nbd driver against real servers.
 *
 *   test_nbd qemu FORMAT [OPTIONS]
 *       10,000 random ops (10 programs of 1,000), 32 in flight, 64 MiB,
 *       initial content zero, through qemu-nbd on a fresh FORMAT image with
 *       driver OPTIONS ("a=b,c=d"): no violation.
 *   test_nbd nbdkit
 *       the same through nbdkit's memory plugin.
 *   test_nbd errors
 *       nbdkit memory + the error filter failing 10% of requests with EIO:
 *       no violation (errors are accepted), some requests failed, and reads
 *       that succeeded were still verified.
 *   test_nbd errors-lossy
 *       nbdkit null (writes are dropped) + the error filter: the data of
 *       successful reads is still checked, so the lost writes are reported.
 *   test_nbd cleanup
 *       a run that aborts on a violation and one that exits without closing
 *       leave no server and no directory behind.
 *
 * Exit 77 (skip) when the server is not installed.  Every run stops its
 * server (the driver does; this test checks that none is left).
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRAMS 10
#define OPS_PER_PROGRAM 1000

/* Whether prog is an executable in $PATH. */
static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char full[PATH_MAX];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(full, sizeof(full), "%.*s/%s", (int)n, path, prog);
        if (n && access(full, X_OK) == 0)
            return true;
        path += n + (path[n] ? 1 : 0);
    }
    return false;
}

/* Number of processes whose command name is `comm` and whose parent is us. */
static int children_named(const char *comm)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        FILE *f;
        int ppid = 0;
        char name[64] = "";
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fgets(buf, sizeof(buf), f) &&
            sscanf(buf, "%*d (%63[^)]) %*c %d", name, &ppid) == 2 && ppid == (int)getpid() &&
            !strcmp(name, comm))
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

struct totals {
    uint64_t planned, ops, requests, reads_checked, bytes, violations;
    char first[600];
};

/* Run PROGRAMS random programs of OPS_PER_PROGRAM ops against spec. */
static int run_programs(const char *spec, uint64_t seed, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (uint64_t i = 0; i < PROGRAMS; i++) {
        struct blkv_program p;
        struct blkv_run_result res;
        struct blkv_run_opts o = {.quiet = true};
        int st;

        blkv_program_init(&p);
        REQUIRE(blkv_program_random(seed, i, OPS_PER_PROGRAM, &p) == 0);
        /* an external driver has no lower files to crash or fail */
        blkv_program_drop(&p, BLKV_P_CRASH);
        blkv_program_drop(&p, BLKV_P_FAULT);
        t->planned += p.nops;
        p.cfg.qd = 32;
        p.cfg.size = UINT64_C(64) << 20;
        p.cfg.atomic = 1;
        p.cfg.init = BLKV_INIT_ZERO;
        st = blkv_run_spec(&p, spec, &o, &res);
        if (st == BLKV_RUN_ERROR) {
            fprintf(stderr, "%s: program %" PRIu64 ": %s\n", spec, i, res.message);
            blkv_run_result_free(&res);
            blkv_program_free(&p);
            return -1;
        }
        if (st == BLKV_RUN_VIOLATION) {
            if (!t->violations++) {
                snprintf(t->first, sizeof(t->first), "program %" PRIu64 ": %s", i, res.signature);
                if (getenv("TEST_NBD_VERBOSE") && res.report)
                    fputs(res.report, stderr);
            }
        }
        t->ops += res.stats.ops;
        t->requests += res.stats.requests;
        t->reads_checked += res.stats.reads_checked;
        t->bytes += res.stats.bytes_verified;
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    printf("%s: %" PRIu64 " ops, %" PRIu64 " requests, %" PRIu64 " reads verified (%" PRIu64
           " MiB), %" PRIu64 " violation(s)%s%s\n", spec, t->ops, t->requests, t->reads_checked,
           t->bytes >> 20, t->violations, t->violations ? ", first: " : "", t->first);
    return 0;
}

/* Whether a blkv-nbd-<pid>-* directory exists in the temp directory. */
static bool run_dir_exists(pid_t pid)
{
    const char *tmp = getenv("TMPDIR");
    char prefix[64];
    DIR *d = opendir(tmp && *tmp ? tmp : "/tmp");
    struct dirent *e;
    bool found = false;
    if (!d)
        return false;
    snprintf(prefix, sizeof(prefix), "blkv-nbd-%ld-", (long)pid);
    while ((e = readdir(d)))
        found |= !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return found;
}

/*
 * In a child process, run a program against nbdkit's null plugin (which
 * drops writes) that either aborts on the violation or exits without
 * closing the driver; afterwards neither its directory nor its server may
 * be left.
 */
static void test_cleanup(bool with_abort)
{
    pid_t pid = fork();
    int status;
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct blkv_program p;
        struct blkv_run_result res;
        struct blkv_run_opts o = {.driver = &blkv_driver_nbd,
                                  .driver_opts = "server=nbdkit plugin=null", .quiet = true,
                                  .abort_on_violation = with_abort};
        struct blkv_pop w = {.code = BLKV_P_WRITE, .offset = 0, .len = 4096};
        struct blkv_pop r = {.code = BLKV_P_READ, .offset = 0, .len = 4096};
        struct blkv_pop d = {.code = BLKV_P_DRAIN};
        blkv_program_init(&p);
        p.cfg.size = 1 << 20;
        blkv_program_push(&p, &w);
        blkv_program_push(&p, &d);
        blkv_program_push(&p, &r);
        if (!with_abort) /* a finished run leaves nbdkit up until exit */
            p.nops = 1;
        blkv_run(&p, &o, &res);
        exit(with_abort ? 3 : 0); /* runs the atexit cleanup; with abort, not reached */
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (with_abort)
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(!run_dir_exists(pid));
    printf("cleanup after %s: %s\n", with_abort ? "abort" : "exit",
           run_dir_exists(pid) ? "directory left" : "clean");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    const char *server = !strcmp(mode, "qemu") ? "qemu-nbd" : "nbdkit";
    char spec[512];
    struct totals t;

    if (!in_path(server) || (!strcmp(server, "qemu-nbd") && !in_path("qemu-img"))) {
        printf("skip: %s is not installed\n", server);
        return T_SKIP;
    }
    if (!strcmp(mode, "qemu") && argc > 2) {
        snprintf(spec, sizeof(spec), "nbd server=qemu-nbd format=%s%s%s", argv[2],
                 argc > 3 ? "," : "", argc > 3 ? argv[3] : "");
        REQUIRE(run_programs(spec, 1, &t) == 0);
        CHECK(t.violations == 0);
        CHECK(t.ops >= t.planned);
        CHECK(t.reads_checked > 0);
    } else if (!strcmp(mode, "nbdkit")) {
        REQUIRE(run_programs("nbd server=nbdkit plugin=memory", 1, &t) == 0);
        CHECK(t.violations == 0);
        CHECK(t.reads_checked > 0);
    } else if (!strcmp(mode, "errors")) {
        uint64_t clean_reads;
        REQUIRE(run_programs("nbd server=nbdkit plugin=memory", 2, &t) == 0);
        clean_reads = t.reads_checked;
        REQUIRE(run_programs("nbd server=nbdkit plugin=memory filter=error"
                             " args=error-rate=10%+error=EIO", 2, &t) == 0);
        CHECK(t.violations == 0);
        /* errors happened (fewer reads succeeded) and the rest were checked */
        CHECK(t.reads_checked > 0);
        CHECK(t.reads_checked < clean_reads);
        /* without faults=on the same errors are violations */
        REQUIRE(run_programs("nbd server=nbdkit plugin=memory filter=error"
                             " args=error-rate=10%+error=EIO faults=off", 2, &t) == 0);
        CHECK(t.violations > 0 && strncmp(t.first + strcspn(t.first, ":") + 2, "retval/", 7) == 0);
    } else if (!strcmp(mode, "errors-lossy")) {
        REQUIRE(run_programs("nbd server=nbdkit plugin=null filter=error"
                             " args=error-rate=10%+error=EIO", 2, &t) == 0);
        /* every program writes and reads back: each must be caught */
        CHECK(t.violations > 0);
        CHECK(strstr(t.first, "contents/read") != NULL);
    } else if (!strcmp(mode, "cleanup")) {
        test_cleanup(true);
        test_cleanup(false);
    } else {
        fprintf(stderr, "usage: test_nbd qemu FORMAT [OPTIONS] | nbdkit | errors | errors-lossy"
                " | cleanup\n");
        return 2;
    }
    /* qemu-nbd is stopped at close; nbdkit holds the last run's data until
     * the next run or exit */
    CHECK(children_named(server) <= (strcmp(server, "nbdkit") ? 0 : 1));
    T_EXIT();
}
