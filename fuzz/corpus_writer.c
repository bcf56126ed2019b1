/*
 * corpus_writer.c - writes the seed corpora corpus/<target>/ with the
 * program encoder, so every seed is a readable program here rather than an
 * opaque blob, and the corpora can be regenerated (ctest checks that the
 * committed files are exactly what this writes).
 *
 * usage: corpus_writer OUTDIR TARGET...   writes OUTDIR/TARGET/NAME per seed
 *        corpus_writer --text TARGET      prints every seed as trace text
 *
 * Every target gets the common seeds; a target may add its own (see
 * target_seeds).  A target without extras (a new driver) just gets the
 * common set.  All seeds are correct-driver programs: they run clean on raw
 * and on buggy with mode=none.
 */
#include "program.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* ---- building programs --------------------------------------------------- */

static struct blkv_program P; /* the seed being built */
static uint32_t nreq;         /* requests submitted so far in P */

/* Start a seed: the default config, no ops. */
static void begin(void)
{
    blkv_program_free(&P);
    nreq = 0;
}

/* Append an op; the writer's programs are tiny, so failing is fatal. */
static void push(const struct blkv_pop *op)
{
    if (blkv_program_push(&P, op)) {
        fprintf(stderr, "corpus_writer: out of memory\n");
        exit(2);
    }
}

/* Submit a ranged request; returns its request number. */
static uint32_t sub(unsigned code, unsigned flags, uint64_t off, uint64_t len)
{
    push(&(struct blkv_pop){.code = (uint8_t)code, .flags = (uint8_t)flags, .offset = off,
                            .len = len});
    return nreq++;
}

/* Submit a read; returns its request number. */
static uint32_t rd(uint64_t off, uint64_t len)
{
    return sub(BLKV_P_READ, 0, off, len);
}

/* Submit a write; returns its request number. */
static uint32_t wr(uint64_t off, uint64_t len)
{
    return sub(BLKV_P_WRITE, 0, off, len);
}

/* Submit a flush; returns its request number. */
static uint32_t flush(void)
{
    push(&(struct blkv_pop){.code = BLKV_P_FLUSH});
    return nreq++;
}

/* Cancel or wait for request n. */
static void ref(unsigned code, uint32_t n)
{
    push(&(struct blkv_pop){.code = (uint8_t)code, .arg = n});
}

/* Complete pending lower I/O i, failing it with err when err != 0. */
static void step(uint32_t i, int err)
{
    push(&(struct blkv_pop){.code = BLKV_P_STEP, .arg = i, .err = (uint16_t)err});
}

/* An op without operands: drain, reopen, check. */
static void bare(unsigned code)
{
    push(&(struct blkv_pop){.code = (uint8_t)code});
}

/* ---- the common seeds ---------------------------------------------------- */

/* Just the default config: the smallest input that runs. */
static void seed_empty(uint64_t pa, uint64_t pb)
{
    begin();
}

/* Every op kind once, flags included. */
static void seed_all_ops(uint64_t pa, uint64_t pb)
{
    begin();
    uint32_t w = wr(0, 64 * KiB);
    sub(BLKV_P_WRITE, BLKV_P_FUA, 64 * KiB, 4 * KiB);
    rd(0, 128 * KiB);
    sub(BLKV_P_WZERO, 0, 128 * KiB, 8 * KiB);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, 192 * KiB, 64 * KiB);
    sub(BLKV_P_WZERO, BLKV_P_FUA, 256 * KiB, 512);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP | BLKV_P_FUA, 320 * KiB, 4 * KiB);
    uint32_t d = sub(BLKV_P_DISCARD, 0, 384 * KiB, 64 * KiB);
    flush();
    ref(BLKV_P_CANCEL, d);
    step(0, 0);
    ref(BLKV_P_WAIT, w);
    bare(BLKV_P_DRAIN);
    rd(0, 512 * KiB);
    bare(BLKV_P_REOPEN);
    bare(BLKV_P_CHECK);
    rd(0, 512 * KiB);
}

/* Overlapping writes in flight together, then reads while they land. */
static void seed_overlap(uint64_t sched, uint64_t qd)
{
    begin();
    P.cfg.sched = (uint8_t)sched;
    P.cfg.qd = (uint32_t)qd;
    P.cfg.seed = 7;
    wr(0, 64 * KiB);
    wr(32 * KiB, 64 * KiB);
    wr(4 * KiB, 4 * KiB);
    rd(0, 128 * KiB);
    wr(60 * KiB, 8 * KiB);
    rd(16 * KiB, 64 * KiB);
    step(1, 0);
    step(0, 0);
    rd(0, 128 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 128 * KiB);
}

/* Overlapping writes of the same range, reads racing them, serialize on. */
static void seed_overlap_serialize(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.serialize = true;
    P.cfg.sched = BLKV_SCHED_LIFO;
    for (int i = 0; i < 4; i++)
        wr(8 * KiB, 8 * KiB);
    rd(8 * KiB, 8 * KiB);
    sub(BLKV_P_WZERO, 0, 12 * KiB, 512);
    rd(0, 32 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 32 * KiB);
}

/* Cancel a write still in flight, then read what it may have left. */
static void seed_cancel_write(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.sched = BLKV_SCHED_FIFO;
    wr(0, 8 * KiB);
    uint32_t w = wr(4 * KiB, 8 * KiB);
    ref(BLKV_P_CANCEL, w);
    rd(0, 16 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 16 * KiB);
    rd(0, 16 * KiB);
}

/* Cancel a read, a discard and a flush in flight; cancel one already done. */
static void seed_cancel_mixed(uint64_t pa, uint64_t pb)
{
    begin();
    uint32_t w = wr(64 * KiB, 64 * KiB);
    ref(BLKV_P_WAIT, w);
    uint32_t r = rd(64 * KiB, 64 * KiB);
    uint32_t d = sub(BLKV_P_DISCARD, 0, 96 * KiB, 32 * KiB);
    uint32_t f = flush();
    ref(BLKV_P_CANCEL, r);
    ref(BLKV_P_CANCEL, d);
    ref(BLKV_P_CANCEL, f);
    ref(BLKV_P_CANCEL, w);
    bare(BLKV_P_DRAIN);
    rd(64 * KiB, 64 * KiB);
}

/* A write whose lower I/O fails with err; later I/O goes on. */
static void seed_fault(uint64_t err, uint64_t b)
{
    begin();
    P.cfg.sched = BLKV_SCHED_FIFO;
    wr(0, 4 * KiB);
    step(0, (int)err);
    wr(4 * KiB, 4 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 8 * KiB);
    wr(0, 4 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 8 * KiB);
}

/* Faults on a read, a flush and a discard, and among overlapping writes. */
static void seed_fault_mixed(uint64_t pa, uint64_t pb)
{
    begin();
    wr(0, 16 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 16 * KiB);
    step(0, EIO);
    flush();
    step(0, ENOSPC);
    sub(BLKV_P_DISCARD, 0, 0, 4 * KiB);
    step(0, ECANCELED);
    wr(0, 8 * KiB);
    wr(4 * KiB, 8 * KiB);
    step(1, EIO);
    step(0, 0);
    bare(BLKV_P_DRAIN);
    rd(0, 16 * KiB);
}

/* Waits in reverse submit order, with steps in between. */
static void seed_waits(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.qd = 4;
    uint32_t a = wr(0, 4 * KiB);
    uint32_t b = wr(4 * KiB, 4 * KiB);
    uint32_t c = rd(0, 8 * KiB);
    uint32_t d = wr(0, 512);
    ref(BLKV_P_WAIT, d);
    step(2, 0);
    ref(BLKV_P_WAIT, c);
    ref(BLKV_P_WAIT, b);
    ref(BLKV_P_WAIT, a);
    rd(0, 8 * KiB);
    ref(BLKV_P_WAIT, d);
}

/* Data must survive reopen, with and without a flush, and with I/O in flight. */
static void seed_reopen(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.init = BLKV_INIT_PATTERN;
    P.cfg.size = 4 * MiB;
    wr(0, 64 * KiB);
    flush();
    bare(BLKV_P_REOPEN);
    rd(0, 128 * KiB);
    wr(1 * MiB, 8 * KiB);
    wr(1 * MiB + 4 * KiB, 8 * KiB);
    bare(BLKV_P_REOPEN);
    bare(BLKV_P_CHECK);
    rd(1 * MiB, 16 * KiB);
    bare(BLKV_P_REOPEN);
    rd(0, 2 * MiB);
}

/* Requests at the device end: ending there, crossing it, starting there. */
static void seed_device_end(uint64_t size, uint64_t b)
{
    begin();
    P.cfg.size = size;
    wr(size - 4096, 4096);
    rd(size - 4096, 4096);
    wr(size - 512, 1024);  /* crosses the end: fails, changes nothing */
    rd(size - 2048, 4096); /* crosses the end */
    wr(size, 512);         /* starts at the end */
    rd(size + 512, 512);   /* past it */
    sub(BLKV_P_WZERO, 0, size - 512, 512);
    sub(BLKV_P_DISCARD, 0, size - 1024, 2048);
    bare(BLKV_P_DRAIN);
    rd(size - 8192, 8192);
}

/* Requests around grain (cluster) and L2-table boundaries. */
static void seed_grain(uint64_t grain, uint64_t b)
{
    uint64_t l2 = grain * (grain / 8);

    begin();
    P.cfg.grain = (uint32_t)grain;
    P.cfg.size = 4 * l2 > 64 * MiB ? 4 * l2 : 64 * MiB;
    wr(grain - 512, 1024);
    wr(2 * grain - 512, grain + 1024);
    wr(l2 - 512, 1024);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, grain, grain);
    sub(BLKV_P_DISCARD, 0, l2 - grain, 2 * grain);
    rd(0, 4 * grain);
    rd(l2 - grain, 2 * grain);
    bare(BLKV_P_DRAIN);
    rd(0, 4 * grain);
    rd(l2 - 4096, 8192);
}

/* Byte-granular requests: tiny and odd lengths, unaligned offsets. */
static void seed_unaligned(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 1 * MiB;
    wr(1, 1);
    wr(3, 7);
    wr(511, 2);
    wr(4095, 4099);
    sub(BLKV_P_WZERO, 0, 513, 1000);
    rd(0, 8192);
    wr(65535, 3);
    sub(BLKV_P_DISCARD, 0, 100, 300);
    bare(BLKV_P_DRAIN);
    rd(0, 8 * KiB + 1);
    rd(65533, 7);
}

/* Unaligned and overlapping, with an atomicity unit the raw driver keeps. */
static void seed_atomic(uint64_t atomic, uint64_t b)
{
    begin();
    P.cfg.atomic = (uint32_t)atomic;
    P.cfg.sched = BLKV_SCHED_RANDOM;
    P.cfg.seed = 99;
    wr(0, 16 * KiB);
    wr(4 * KiB, 16 * KiB);
    rd(0, 32 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 32 * KiB);
}

/* The largest request, and a sparse huge device. */
static void seed_big(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 4 * TiB;
    P.cfg.seed = UINT64_C(0x0123456789abcdef);
    wr(0, 8 * MiB);
    wr(2 * TiB - 4 * KiB, 8 * KiB);
    rd(2 * TiB - 8 * KiB, 16 * KiB);
    wr(4 * TiB - 64 * KiB, 64 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 8 * MiB);
    rd(4 * TiB - 1 * MiB, 1 * MiB);
}

/* The smallest device, fully written, zeroed and discarded. */
static void seed_tiny_device(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 4 * KiB;
    P.cfg.grain = 512;
    P.cfg.init = BLKV_INIT_PATTERN;
    rd(0, 4 * KiB);
    wr(0, 4 * KiB);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, 1024, 1024);
    sub(BLKV_P_DISCARD, 0, 3072, 1024);
    rd(0, 4 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 4 * KiB);
}

/* A deep queue of interleaved requests with steps picking the order. */
static void seed_deep_queue(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.qd = 64;
    P.cfg.seed = 0xfffe; /* a u32 seed literal */
    for (uint64_t i = 0; i < 12; i++) {
        wr(i * 24 * KiB, 32 * KiB);
        if (i % 3 == 2)
            rd(i * 16 * KiB, 48 * KiB);
    }
    for (uint32_t i = 0; i < 8; i++)
        step(i * 37 % 11, 0);
    flush();
    rd(0, 512 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 512 * KiB);
}

/* One request at a time: qd 1 makes submits wait for room. */
static void seed_qd1(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.qd = 1;
    P.cfg.sched = BLKV_SCHED_FIFO;
    wr(0, 4 * KiB);
    rd(0, 4 * KiB);
    sub(BLKV_P_WRITE, BLKV_P_FUA, 4 * KiB, 4 * KiB);
    flush();
    rd(0, 8 * KiB);
}

/* Discard and write-zeroes (unmap) over written data, then reads. */
static void seed_discard_zero(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.init = BLKV_INIT_PATTERN;
    P.cfg.size = 1 * MiB;
    wr(0, 256 * KiB);
    bare(BLKV_P_DRAIN);
    sub(BLKV_P_DISCARD, 0, 64 * KiB, 64 * KiB);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, 128 * KiB, 64 * KiB);
    rd(0, 256 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 512 * KiB);
}

/* ---- seeds for the buggy target: programs that expose each bug class --- */

/* Write, wait, read back (lost, torn and misdirected writes). */
static void seed_write_read_back(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 1 * MiB;
    P.cfg.sched = BLKV_SCHED_FIFO;
    for (uint64_t i = 0; i < 4; i++) {
        uint32_t w = wr(i * 8 * KiB, 8 * KiB);
        ref(BLKV_P_WAIT, w);
    }
    rd(0, 64 * KiB);
}

/* Reads of overwritten data, read twice (stale reads, flip-flop). */
static void seed_read_twice(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 1 * MiB;
    P.cfg.init = BLKV_INIT_PATTERN;
    uint32_t r = rd(0, 8 * KiB);
    ref(BLKV_P_WAIT, r);
    uint32_t w = wr(0, 8 * KiB);
    ref(BLKV_P_WAIT, w);
    r = rd(0, 8 * KiB);
    ref(BLKV_P_WAIT, r);
    rd(0, 8 * KiB);
}

/* A cancelled write, then a read that completes before the write's lower
 * I/O would (zombie writes: the write's data must not land afterwards). */
static void seed_cancel_then_read(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 1 * MiB;
    P.cfg.sched = BLKV_SCHED_FIFO;
    uint32_t w = wr(0, 4 * KiB);
    ref(BLKV_P_CANCEL, w);
    uint32_t r = rd(0, 4 * KiB);
    step(1, 0);
    ref(BLKV_P_WAIT, r);
    bare(BLKV_P_DRAIN);
    rd(0, 4 * KiB);
}

/* Write-zeroes over data, then a read (write-zeroes that does nothing). */
static void seed_zero_read(uint64_t pa, uint64_t pb)
{
    begin();
    P.cfg.size = 1 * MiB;
    uint32_t w = wr(0, 8 * KiB);
    ref(BLKV_P_WAIT, w);
    w = sub(BLKV_P_WZERO, 0, 0, 8 * KiB);
    ref(BLKV_P_WAIT, w);
    rd(0, 8 * KiB);
}

/* ---- the table ----------------------------------------------------------- */

/* A seed: its file name, its builder and the builder's two parameters. */
struct seed {
    const char *name;
    void (*build)(uint64_t a, uint64_t b);
    uint64_t a, b;
};

static const struct seed common_seeds[] = {
    {"empty", seed_empty, 0, 0},
    {"all-ops", seed_all_ops, 0, 0},
    {"overlap-random", seed_overlap, BLKV_SCHED_RANDOM, 8},
    {"overlap-fifo", seed_overlap, BLKV_SCHED_FIFO, 16},
    {"overlap-lifo", seed_overlap, BLKV_SCHED_LIFO, 4},
    {"overlap-serialize", seed_overlap_serialize, 0, 0},
    {"cancel-write", seed_cancel_write, 0, 0},
    {"cancel-mixed", seed_cancel_mixed, 0, 0},
    {"fault-eio", seed_fault, EIO, 0},
    {"fault-enospc", seed_fault, ENOSPC, 0},
    {"fault-errno-literal", seed_fault, 4095, 0},
    {"fault-mixed", seed_fault_mixed, 0, 0},
    {"waits", seed_waits, 0, 0},
    {"reopen", seed_reopen, 0, 0},
    {"end-64m", seed_device_end, 64 * MiB, 0},
    {"end-unaligned-size", seed_device_end, 1 * MiB + 512, 0},
    {"end-1t", seed_device_end, 1 * TiB, 0},
    {"grain-512", seed_grain, 512, 0},
    {"grain-4k", seed_grain, 4 * KiB, 0},
    {"grain-64k", seed_grain, 64 * KiB, 0},
    {"grain-2m", seed_grain, 2 * MiB, 0},
    {"unaligned", seed_unaligned, 0, 0},
    {"atomic-512", seed_atomic, 512, 0},
    {"atomic-4k", seed_atomic, 4096, 0},
    {"big", seed_big, 0, 0},
    {"tiny-device", seed_tiny_device, 0, 0},
    {"deep-queue", seed_deep_queue, 0, 0},
    {"qd1", seed_qd1, 0, 0},
    {"discard-zero", seed_discard_zero, 0, 0},
    {NULL, NULL, 0, 0},
};

static const struct seed buggy_seeds[] = {
    {"bug-write-read-back", seed_write_read_back, 0, 0},
    {"bug-read-twice", seed_read_twice, 0, 0},
    {"bug-cancel-then-read", seed_cancel_then_read, 0, 0},
    {"bug-zero-read", seed_zero_read, 0, 0},
    {NULL, NULL, 0, 0},
};

/* The seeds a target gets besides the common ones. */
static const struct seed *target_seeds(const char *target)
{
    static const struct seed none[] = {{NULL, NULL, 0, 0}};
    if (!strcmp(target, "buggy"))
        return buggy_seeds;
    return none;
}

/* ---- output -------------------------------------------------------------- */

/* Write the current seed's encoding to path; 0 or -1. */
static int write_seed(const char *path)
{
    size_t n;
    uint8_t *b = blkv_program_encode(&P, &n);
    FILE *f;
    int ret = 0;

    if (!b) {
        fprintf(stderr, "corpus_writer: out of memory\n");
        return -1;
    }
    f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        fprintf(stderr, "corpus_writer: %s: %s\n", path, strerror(errno));
        ret = -1;
    }
    if (f && fclose(f) && !ret) {
        fprintf(stderr, "corpus_writer: %s: %s\n", path, strerror(errno));
        ret = -1;
    }
    free(b);
    return ret;
}

/* Print the current seed as trace text under a comment naming it. */
static int print_seed(const char *target, const char *name)
{
    char *text = blkv_program_format(&P);
    if (!text)
        return -1;
    printf("# corpus/%s/%s\n%s\n", target, name, text);
    free(text);
    return 0;
}

/* Write (or print) every seed of one target. */
static int do_target(const char *outdir, const char *target)
{
    const struct seed *lists[2] = {common_seeds, target_seeds(target)};
    char path[4096];

    if (outdir) {
        snprintf(path, sizeof(path), "%s/%s", outdir, target);
        mkdir(outdir, 0777);
        if (mkdir(path, 0777) && errno != EEXIST) {
            fprintf(stderr, "corpus_writer: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    for (int l = 0; l < 2; l++) {
        for (const struct seed *s = lists[l]; s->name; s++) {
            s->build(s->a, s->b);
            if (outdir) {
                snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, s->name);
                if (write_seed(path))
                    return -1;
            } else if (print_seed(target, s->name)) {
                return -1;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *outdir = NULL;
    int first = 2;

    if (argc < 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc < 3 ? stderr : stdout,
                "usage: corpus_writer OUTDIR TARGET...  write OUTDIR/TARGET/<seed> files\n"
                "       corpus_writer --text TARGET...  print the seeds as trace text\n");
        return argc < 3 ? 2 : 0;
    }
    if (strcmp(argv[1], "--text"))
        outdir = argv[1];
    blkv_program_init(&P);
    for (int i = first; i < argc; i++)
        if (do_target(outdir, argv[i]))
            return 1;
    blkv_program_free(&P);
    return 0;
}
