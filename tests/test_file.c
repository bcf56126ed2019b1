/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_file.c - the file driver: random programs (10,000 ops each way, up
 * to 32 in flight, with cancels, reopens and fsyncs) run clean through
 * io_uring and through the thread pool, buffered and with O_DIRECT, and
 * cancels reach the driver.  A configuration the host cannot run (io_uring
 * forbidden, O_DIRECT unsupported by $TMPDIR's filesystem) is skipped with
 * a message; exit 77 when nothing could run.
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include "test.h"
#include <blkv/run.h>
#include "registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PROGRAMS 20
#define OPS_PER_PROGRAM 500

static int ran;

/* Run the random programs against spec; print a summary. */
static void run_spec(const char *spec)
{
    struct blkv_caps caps;
    char err[512];
    uint64_t ops = 0, reads = 0, cancels = 0, reopens = 0, violations = 0;

    const struct blkv_driver *drv;
    const char *opts;

    if (blkv_registry_resolve(spec, &drv, &opts, err, sizeof(err)) < 0 ||
        blkv_driver_probe(drv, opts, &caps, err, sizeof(err)) < 0) {
        printf("skip %s: %s\n", spec, err);
        return;
    }
    ran++;
    for (uint64_t i = 0; i < PROGRAMS; i++) {
        struct blkv_program p;
        struct blkv_run_result res;
        struct blkv_run_opts o = {.driver = drv, .driver_opts = opts, .quiet = true};
        int st;

        blkv_program_init(&p);
        REQUIRE(blkv_program_random(5, i, OPS_PER_PROGRAM, &p) == 0);
        /* an external driver has no lower files to crash or fail */
        blkv_program_drop(&p, BLKV_P_CRASH);
        blkv_program_drop(&p, BLKV_P_FAULT);
        if (p.cfg.size > (UINT64_C(1) << 30))
            p.cfg.size = UINT64_C(1) << 30;
        st = blkv_run(&p, &o, &res);
        CHECK(st != BLKV_RUN_ERROR);
        if (st == BLKV_RUN_VIOLATION && !violations++ && res.report)
            fputs(res.report, stderr);
        ops += res.stats.ops;
        reads += res.stats.reads_checked;
        cancels += res.stats.cancels;
        reopens += res.stats.reopens;
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    printf("%s: %" PRIu64 " ops, %" PRIu64 " reads verified, %" PRIu64 " cancels, %" PRIu64
           " reopens, %" PRIu64 " violation(s)\n", spec, ops, reads, cancels, reopens, violations);
    CHECK(violations == 0);
    CHECK(reads > 0);
    CHECK(cancels > 0);
    CHECK(reopens > 0);
}

int main(void)
{
    run_spec("file engine=uring");
    run_spec("file engine=uring direct=on");
    run_spec("file engine=threads");
    run_spec("file engine=threads direct=on");
    if (!ran)
        return T_SKIP;
    T_EXIT();
}
