/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_overhead.c - what verification costs, and what qcow2 costs.
 *
 * (a) Harness overhead: the same random programs (blkv_program_random, the
 *     property runner's programs, K ops each) run through blkv_run with the
 *     verifier (model, data patterns, read checks, image checks) and with
 *     --no-verify (the driver alone behind the same dispatch and scheduler),
 *     alternating program by program so both see the same machine.  Prints
 *     programs/s both ways and the ratio.
 * (b) Throughput of large writes through a driver on the lower file:
 *     sequential 1 MiB writes and random 4 KiB writes (qd 16, zero initial
 *     content, 256 MiB device), verifier off, each driver against raw in
 *     the same run.
 *
 * Times are the process's CPU time (CLOCK_PROCESS_CPUTIME_ID): every
 * in-process driver runs on the calling thread, so this is the one-core
 * cost and does not count time stolen by other tenants of a shared machine.
 *
 * usage: bench_overhead [-n PROGRAMS] [-k OPS] [-t TOTAL_MIB] [SPEC...]
 *   default specs: raw, qcow2, "qcow2 cluster-size=4096 l2-cache=2 refcount-cache=2"
 *   Part (b) runs for every spec that is not raw; -t 0 skips it.
 */
#include <blkv/program.h>
#include <blkv/prop.h>
#include <blkv/run.h>
#include "registry.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Run p against spec; returns CPU seconds, exits on anything but a clean run. */
static double timed_run(const struct blkv_program *p, const char *spec, bool verify)
{
    struct blkv_run_opts o = {.quiet = true, .no_verify = !verify};
    struct blkv_run_result res;
    char err[512];
    double t0, t;
    int st;

    if (blkv_registry_resolve(spec, &o.driver, &o.driver_opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_overhead: %s\n", err);
        exit(1);
    }
    t0 = cpu_now();
    st = blkv_run(p, &o, &res);

    t = cpu_now() - t0;
    if (st != BLKV_RUN_OK) {
        fprintf(stderr, "bench_overhead: %s: %s\n", spec, res.message);
        exit(1);
    }
    blkv_run_result_free(&res);
    return t;
}

/* (a) */
static void overhead(const char *spec, unsigned n, size_t k)
{
    struct blkv_program p;
    double on = 0, off = 0;

    blkv_program_init(&p);
    for (unsigned i = 0; i < n; i++) {
        if (blkv_program_random(1, i, k, &p)) {
            fprintf(stderr, "bench_overhead: out of memory\n");
            exit(1);
        }
        if (i & 1) {
            off += timed_run(&p, spec, false);
            on += timed_run(&p, spec, true);
        } else {
            on += timed_run(&p, spec, true);
            off += timed_run(&p, spec, false);
        }
    }
    blkv_program_free(&p);
    printf("| `%s` | %u | %.0f | %.0f | %.2f |\n", spec, n, n / on, n / off, on / off);
    fflush(stdout);
}

/* A program of `total` bytes of writes of `bs` bytes: sequential or at
 * random bs-aligned offsets of a 256 MiB device, 16 in flight. */
static void write_program(struct blkv_program *p, uint64_t total, uint64_t bs, bool random)
{
    const uint64_t size = UINT64_C(256) << 20;
    uint64_t x = 88172645463325252u;

    blkv_program_init(p);
    p->cfg.size = size;
    p->cfg.qd = 16;
    p->cfg.init = BLKV_INIT_ZERO;
    p->cfg.sched = BLKV_SCHED_FIFO;
    for (uint64_t i = 0; i < total / bs; i++) {
        struct blkv_pop op = {.code = BLKV_P_WRITE, .len = bs};
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        op.offset = random ? (x % (size / bs)) * bs : (i * bs) % size;
        if (blkv_program_push(p, &op)) {
            fprintf(stderr, "bench_overhead: out of memory\n");
            exit(1);
        }
    }
}

/* (b) */
static void throughput(const char *spec, uint64_t total)
{
    static const struct {
        const char *name;
        uint64_t bs;
        bool random;
    } kinds[] = {{"sequential 1 MiB", UINT64_C(1) << 20, false},
                 {"random 4 KiB", 4096, true}};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct blkv_program p;
        double raw = 0, drv = 0, mb = (double)total / 1e6;
        write_program(&p, total, kinds[i].bs, kinds[i].random);
        for (int r = 0; r < 3; r++) { /* alternate, sum */
            raw += timed_run(&p, "raw", false);
            drv += timed_run(&p, spec, false);
        }
        printf("| `%s` | %s | %.0f | %.0f | %.2f |\n", spec, kinds[i].name, 3 * mb / drv,
               3 * mb / raw, raw / drv);
        fflush(stdout);
        blkv_program_free(&p);
    }
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {
        "raw", "qcow2", "qcow2 cluster-size=4096 l2-cache=2 refcount-cache=2"};
    const char *const *specs = defaults;
    size_t nspecs = sizeof(defaults) / sizeof(defaults[0]);
    unsigned n = 300;
    size_t k = 64;
    uint64_t total_mib = 64;
    int c;

    while ((c = getopt(argc, argv, "n:k:t:h")) != -1) {
        switch (c) {
        case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': k = strtoul(optarg, NULL, 10); break;
        case 't': total_mib = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: bench_overhead [-n PROGRAMS] [-k OPS] [-t TOTAL_MIB] "
                            "[SPEC...]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!n || !k || k > BLKV_PROGRAM_MAX_OPS) {
        fprintf(stderr, "bench_overhead: -n and -k must be positive\n");
        return 2;
    }
    if (optind < argc) {
        specs = (const char *const *)&argv[optind];
        nspecs = (size_t)(argc - optind);
    }

    printf("(a) random %zu-op programs, verifier on vs off (CPU time)\n\n", k);
    printf("| driver | programs | verified/s | unverified/s | on / off |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < nspecs; i++)
        overhead(specs[i], n, k);
    if (!total_mib)
        return 0;
    printf("\n(b) %" PRIu64 " MiB of writes, 16 in flight, verifier off (CPU time)\n\n",
           total_mib);
    printf("| driver | writes | MB/s | raw MB/s | driver / raw |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < nspecs; i++)
        if (strcmp(specs[i], "raw"))
            throughput(specs[i], total_mib << 20);
    return 0;
}
