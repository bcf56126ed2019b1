/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_model.c - speed and memory of the raw model (harness/model.c).
 *
 *   gcc -std=gnu11 -O2 -g -Iharness harness/model.c harness/pattern.c \
 *       bench/bench_model.c -o /tmp/bench_model && /tmp/bench_model
 *
 * (a) read verification: a 256 MiB device written with pattern data by
 *     1 MiB writes, then 1 MiB reads at random 4K-aligned offsets checked
 *     with blkv_model_read_check, against memcmp of the same bytes between
 *     two buffers, in the same run.
 * (b) random writes: 10^6 writes of 4K..64K at random 512-aligned offsets
 *     on a 1 TiB device, submitted and completed one at a time (qd 1) and
 *     sixteen at a time completing in random order (qd 16): time per
 *     write, peak RSS, and the model's own bytes per extent.
 * (c) the observation rule's worst common case: two 1 MiB writes over the
 *     same range in flight together, both completed, then a read of one of
 *     them: the other stays a candidate only at the bytes where the two
 *     happen to be equal (1 in 256), which splits the extent.
 *
 * Each part runs in a child process so that its peak RSS is its own.
 * Arguments: any of "a", "b", "c" to run only those parts.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "model/pattern.h"

#define MIB (UINT64_C(1) << 20)

static uint64_t rng = 88172645463325252u;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static struct blkv_model *model(uint64_t size, enum blkv_src_kind init)
{
    struct blkv_model_config cfg = {.size = size, .atomic = 1, .initial = init};
    struct blkv_model *m = blkv_model_new(&cfg);
    if (!m) {
        fprintf(stderr, "bench: blkv_model_new failed\n");
        exit(1);
    }
    return m;
}

/* (a) verification throughput against memcmp. */
static void bench_verify(void)
{
    const uint64_t size = 256 * MIB, rlen = MIB;
    const int reads = 2048, rounds = 3;
    uint8_t *dev = malloc(size), *copy = malloc(size);
    uint64_t *offs = malloc(reads * sizeof(*offs)), t = 0, req = 0;
    double best_v = 1e9, best_c = 1e9;
    unsigned long sum = 0;
    struct blkv_model *m = model(size, BLKV_SRC_ZEROES);

    if (!dev || !copy || !offs) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (uint32_t w = 0; w < size / MIB; w++) {
        blkv_model_submit(m, 2 + w, BLKV_SRC_PATTERN, w * MIB, MIB, ++t);
        blkv_model_complete(m, 2 + w, true, true, ++t);
        blkv_pattern_fill(dev + w * MIB, 2 + w, w * MIB, MIB);
    }
    memcpy(copy, dev, size);
    for (int i = 0; i < reads; i++)
        offs[i] = (rnd() % ((size - rlen) / 4096 + 1)) * 4096;

    for (int round = 0; round < rounds; round++) {
        double t0 = now();
        for (int i = 0; i < reads; i++) {
            struct blkv_mismatch mm;
            uint64_t s = ++t;
            blkv_model_read_start(m, s);
            if (!blkv_model_read_check(m, req++, offs[i], rlen, dev + offs[i], s, ++t, &mm)) {
                fprintf(stderr, "bench: read at %" PRIu64 " rejected at %" PRIu64 "\n", offs[i],
                        mm.offset);
                exit(1);
            }
        }
        double t1 = now();
        for (int i = 0; i < reads; i++)
            sum += memcmp(dev + offs[i], copy + offs[i], rlen) == 0;
        double t2 = now();
        if (t1 - t0 < best_v)
            best_v = t1 - t0;
        if (t2 - t1 < best_c)
            best_c = t2 - t1;
    }
    double bytes = (double)reads * (double)rlen;
    printf("(a) verification: %d reads of 1 MiB on a 256 MiB device (best of %d rounds)\n", reads,
           rounds);
    printf("    %-28s %10s\n", "", "GB/s");
    printf("    %-28s %10.2f\n", "blkv_model_read_check", bytes / best_v / 1e9);
    printf("    %-28s %10.2f\n", "memcmp (two buffers)", bytes / best_c / 1e9);
    printf("    %-28s %10.2f   (%lu equal)\n", "ratio check / memcmp", best_c / best_v, sum);
    blkv_model_free(m);
    free(dev);
    free(copy);
    free(offs);
}

/* (b) 10^6 random writes on 1 TiB with the given queue depth. */
static void bench_writes(unsigned qd)
{
    const uint64_t size = UINT64_C(1) << 40;
    const uint32_t nw = 1000000;
    uint32_t q[64], nq = 0;
    uint64_t t = 0;
    struct blkv_model_stats st;
    struct blkv_model *m = model(size, BLKV_SRC_ZEROES);
    double t0 = now(), el;

    for (uint32_t w = 0; w < nw; w++) {
        uint64_t len = 4096 + (rnd() % 121) * 512; /* 4K .. 64K */
        uint64_t off = (rnd() % ((size - len) / 512)) * 512;
        blkv_model_submit(m, 2 + w, BLKV_SRC_PATTERN, off, len, ++t);
        q[nq++] = 2 + w;
        if (nq == qd || w == nw - 1) {
            while (nq) {
                uint32_t i = (uint32_t)(rnd() % nq);
                blkv_model_complete(m, q[i], true, true, ++t);
                q[i] = q[--nq];
            }
        }
    }
    el = now() - t0;
    blkv_model_stats(m, &st);
    printf("    qd %-3u %8.2f s %8.2f us %10zu %10zu %10.1f %10.1f\n", qd, el, el / nw * 1e6,
           st.extents, st.candidates, (double)st.bytes / (double)st.extents, peak_rss_mib());
    blkv_model_free(m);
}

/* (c) reads that evict a concurrent write byte by byte. */
static void bench_observe(unsigned unused)
{
    const int n = 100;
    uint8_t *b = malloc(MIB);
    uint64_t t = 0;
    double el = 0;
    struct blkv_model_stats st;
    struct blkv_model *m = model(UINT64_C(1) << 30, BLKV_SRC_ZEROES);

    (void)unused;
    if (!b)
        exit(1);
    for (int i = 0; i < n; i++) {
        uint32_t w = 2 + 2 * (uint32_t)i;
        uint64_t off = (uint64_t)i * MIB, s;
        struct blkv_mismatch mm;
        blkv_model_submit(m, w, BLKV_SRC_PATTERN, off, MIB, ++t);
        blkv_model_submit(m, w + 1, BLKV_SRC_PATTERN, off, MIB, ++t);
        blkv_model_complete(m, w, true, true, ++t);
        blkv_model_complete(m, w + 1, true, true, ++t);
        blkv_pattern_fill(b, w + 1, off, MIB);
        s = ++t;
        blkv_model_read_start(m, s);
        double t0 = now();
        if (!blkv_model_read_check(m, 0, off, MIB, b, s, ++t, &mm))
            exit(1);
        el += now() - t0;
    }
    blkv_model_stats(m, &st);
    printf("(c) 1 MiB read after two overlapping 1 MiB writes: %.2f ms per read, %.0f extents "
           "and %.0f KiB per read\n",
           el / n * 1e3, (double)st.extents / n, (double)st.bytes / n / 1024);
    blkv_model_free(m);
    free(b);
}

/* Run fn in a child process and wait for it. */
static void in_child(void (*fn)(unsigned), unsigned arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: child failed\n");
        exit(1);
    }
}

static void verify_child(unsigned unused)
{
    (void)unused;
    bench_verify();
}

int main(int argc, char **argv)
{
    const char *part = argc > 1 ? argv[1] : "abc";

    if (strchr(part, 'a'))
        in_child(verify_child, 0);
    if (strchr(part, 'b')) {
        printf("(b) 10^6 random writes (4K..64K, 512-aligned) on a 1 TiB device\n");
        printf("    %-6s %10s %11s %10s %10s %10s %10s\n", "", "total", "per write", "extents",
               "cands", "B/extent", "RSS MiB");
        in_child(bench_writes, 1);
        in_child(bench_writes, 16);
    }
    if (strchr(part, 'c'))
        in_child(bench_observe, 0);
    return 0;
}
