/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * corpus_writer.c - writes the seed corpora under corpus/ with the program
 * encoder, so every seed is a readable program here rather than an opaque
 * blob, and the corpora can be regenerated (ctest checks that the committed
 * files are exactly what this writes).
 *
 * usage: corpus_writer OUTDIR          writes OUTDIR/SET/NAME per seed, every set
 *        corpus_writer --text SET...   prints a set's seeds as trace text
 *
 * The sets: programs, the seeds every program target shares (a new driver's
 * target just uses them); buggy, what buggy_fuzzer adds to them; qcow2,
 * what qcow2_fuzzer adds (images that grow early); and qcow2_open, qcow2
 * images for the target whose input is an image (built byte by byte: see
 * "qcow2 images" below).  fuzz/seed-dirs says which sets
 * a target uses.  All programs are correct-driver programs: they run clean
 * on raw and on buggy with mode=none.
 */
#include <blkv/fuzz.h>

#include <blkv/program.h>
#include "targets.h"
#include "qcow2_image.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>


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

/* Power loss; n chooses what the lower files keep. */
static void crash(uint32_t n)
{
    push(&(struct blkv_pop){.code = BLKV_P_CRASH, .arg = n});
}

/* A fault rule: lower I/Os of event ev fail with err (once: only one),
 * the first `after` of them spared. */
static void fault(unsigned ev, int err, bool once, uint64_t after)
{
    push(&(struct blkv_pop){.code = BLKV_P_FAULT, .arg = ev, .err = (uint16_t)err,
                            .flags = once ? BLKV_P_ONCE : 0, .len = after});
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
    rd(0, 1 * MiB + 64 * KiB);
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
    /* a whole cluster of data, written and read back, only where that
     * is cheap: at 2 MiB it made this seed cost 20 times the median */
    bool whole = grain <= 64 * KiB;

    begin();
    P.cfg.grain = (uint32_t)grain;
    P.cfg.size = 4 * l2 > 64 * MiB ? 4 * l2 : 64 * MiB;
    wr(grain - 512, 1024);
    wr(2 * grain - 512, whole ? grain + 1024 : 2048);
    wr(l2 - 512, 1024);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, grain, grain);
    sub(BLKV_P_DISCARD, 0, l2 - grain, 2 * grain);
    rd(grain - 4096, whole ? 2 * grain + 8192 : 8192);
    if (!whole)
        rd(2 * grain - 4096, 8192);
    bare(BLKV_P_DRAIN);
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
    wr(0, 512 * KiB);
    wr(2 * TiB - 4 * KiB, 8 * KiB);
    rd(2 * TiB - 8 * KiB, 16 * KiB);
    wr(4 * TiB - 64 * KiB, 64 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 512 * KiB);
    rd(4 * TiB - 512 * KiB, 512 * KiB);
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

/* Power loss after durable, volatile and in-flight writes; reads then pin
 * what survived; a second crash over writes made after the first. */
static void seed_crash(uint64_t choice, uint64_t b)
{
    begin();
    P.cfg.init = BLKV_INIT_PATTERN;
    P.cfg.size = 4 * MiB;
    P.cfg.seed = 3;
    wr(0, 64 * KiB);
    bare(BLKV_P_DRAIN);
    flush();
    bare(BLKV_P_DRAIN);
    wr(32 * KiB, 64 * KiB);                         /* completed, not flushed */
    sub(BLKV_P_WRITE, BLKV_P_FUA, 1 * MiB, 8 * KiB); /* durable when done */
    bare(BLKV_P_DRAIN);
    wr(1 * MiB + 4 * KiB, 8 * KiB);                 /* in flight at the crash */
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, 2 * MiB, 64 * KiB);
    crash((uint32_t)choice);
    rd(0, 128 * KiB);
    rd(1 * MiB, 16 * KiB);
    rd(2 * MiB, 64 * KiB);
    bare(BLKV_P_DRAIN);
    wr(16 * KiB, 4 * KiB);
    sub(BLKV_P_DISCARD, 0, 1 * MiB, 4 * KiB);
    crash((uint32_t)(choice + 1));
    rd(0, 128 * KiB);
    rd(1 * MiB, 16 * KiB);
    bare(BLKV_P_CHECK);
}

/* Fault rules by event: a data write fails once, metadata writes fail
 * after some succeed; the image is reopened and checked. */
static void seed_fault_rules(uint64_t err, uint64_t b)
{
    begin();
    P.cfg.size = 64 * MiB;
    fault(BLKV_EV_DATA_WRITE, (int)err, true, 1);
    fault(BLKV_EV_L2_UPDATE, (int)err, true, 2);
    fault(BLKV_EV_REFBLOCK_UPDATE, (int)err, false, 4);
    for (int i = 0; i < 6; i++)
        wr((uint64_t)i * 4 * MiB, 4 * KiB);
    bare(BLKV_P_DRAIN);
    for (int i = 0; i < 6; i++)
        rd((uint64_t)i * 4 * MiB, 4 * KiB);
    flush();
    bare(BLKV_P_REOPEN);
    bare(BLKV_P_CHECK);
    rd(0, 64 * KiB);
}

/* A metadata write fails, then the power goes.  The writes land past the
 * first L2 table's reach (512 MiB at qcow2's default 64 KiB clusters). */
static void seed_fault_crash(uint64_t ev, uint64_t b)
{
    begin();
    P.cfg.size = 2 * GiB;
    P.cfg.sched = BLKV_SCHED_FIFO;
    wr(0, 64 * KiB);
    bare(BLKV_P_DRAIN);
    flush();
    fault((unsigned)ev, EIO, false, 0);
    wr(1 * GiB, 64 * KiB);
    sub(BLKV_P_WZERO, 0, 1 * GiB + 512 * MiB, 4 * KiB);
    bare(BLKV_P_DRAIN);
    flush();
    crash(5);
    rd(0, 64 * KiB);
    rd(1 * GiB, 64 * KiB);
    wr(1 * GiB + 256 * MiB, 4 * KiB);
    bare(BLKV_P_DRAIN);
    rd(1 * GiB + 256 * MiB, 4 * KiB);
}

/* ---- qcow2_fuzzer's seeds: table growth within the budget ---------------
 * qcow2_fuzzer draws the image options from the program's seed
 * (blkv_fuzz_qcow2_opts); these seeds pick seeds that draw an image that
 * grows early, so each reaches its path (fuzz/coverage -p names them) with
 * a few clusters of data.  blkv's qcow2 never grows its L1 table (there is
 * no resize); the last entry of a full L1 table is what it has instead. */

/* The seed (0..253, one byte in the binary form) for P's config whose
 * drawn qcow2_fuzzer options contain every string of want[] (NULL-ended)
 * and, if grow, an l1-size (then the longest, which leaves the least room
 * before the refcount structures must grow); exits if there is none. */
static uint64_t qcow2_seed_for(const char *const want[], bool grow)
{
    static const char *const backing[] = {"none", "none", "raw", "qcow2"};
    uint64_t best = UINT64_MAX, best_l1 = 0;
    char opts[256];

    for (uint64_t sd = 0; sd < 0xfe; sd++) {
        const char *l1;
        bool ok = true;
        P.cfg.seed = sd;
        blkv_fuzz_qcow2_opts(&P, true, backing, opts, sizeof(opts));
        for (size_t i = 0; want[i] && ok; i++)
            ok = strstr(opts, want[i]) != NULL;
        l1 = strstr(opts, "l1-size=");
        if (!ok || !l1 != !grow)
            continue;
        if (!grow) {
            best = sd;
            break;
        }
        if (strtoull(l1 + 8, NULL, 10) > best_l1)
            best = sd, best_l1 = strtoull(l1 + 8, NULL, 10);
    }
    if (best == UINT64_MAX) {
        fprintf(stderr, "corpus_writer: no seed draws the qcow2 options wanted\n");
        exit(2);
    }
    return best;
}

/* The refcount table grows (512-byte clusters): one write to each of a few
 * L2 tables' reach (an L2 table and a data cluster each) runs past what
 * the table covers, concurrently; then read back, checked, reopened,
 * written again.  lazy: with lazy refcounts, and a power loss after. */
static void seed_grow_rt(uint64_t lazy, uint64_t b)
{
    const char *const want[] = {"cluster-size=512", "backing=none",
                                lazy ? "lazy-refcounts=on" : "lazy-refcounts=off", NULL};
    uint64_t l2 = 512 * 64; /* the guest bytes one L2 table maps */

    begin();
    P.cfg.grain = 512;
    P.cfg.size = 1 * MiB;
    P.cfg.init = BLKV_INIT_PATTERN;
    P.cfg.seed = qcow2_seed_for(want, true);
    wr(0, 512);
    wr(l2, 512);
    wr(2 * l2 + 512, 1024);
    wr(3 * l2, 4 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 4 * KiB);
    rd(l2 - 512, 2 * KiB);
    rd(2 * l2, 4 * KiB);
    bare(BLKV_P_CHECK);
    if (lazy) {
        wr(4 * l2, 2 * KiB);
        crash(7);
    } else {
        bare(BLKV_P_REOPEN);
    }
    wr(8 * l2 - 4 * KiB, 8 * KiB);
    bare(BLKV_P_DRAIN);
    rd(0, 16 * KiB);
    rd(8 * l2 - 8 * KiB, 16 * KiB);
    bare(BLKV_P_CHECK);
}

/* A new refcount block: with cs-byte clusters and 64-bit refcounts, where
 * the image's first block is nearly full (an l1-size drawn, cs > 512) or
 * one long write runs through the 64 clusters a 512-byte block counts. */
static void seed_refblock(uint64_t cs, uint64_t b)
{
    char csize[32];
    const char *const want[] = {csize, "refcount-bits=64", "backing=none",
                                "lazy-refcounts=off", NULL};
    uint64_t l2 = cs * (cs / 8);

    snprintf(csize, sizeof(csize), "cluster-size=%" PRIu64 " ", cs);
    begin();
    P.cfg.grain = (uint32_t)cs;
    P.cfg.size = 64 * MiB;
    P.cfg.seed = qcow2_seed_for(want, cs > 512);
    if (cs == 512) {
        wr(0, 48 * KiB); /* 96 clusters in one run, through two blocks */
        wr(1 * MiB, 512);
    } else {
        for (uint64_t i = 0; i < 8; i++)
            wr(i * l2 + (i & 1) * cs, cs);
    }
    bare(BLKV_P_DRAIN);
    rd(0, 8 * cs);
    rd(l2, 2 * cs);
    bare(BLKV_P_REOPEN);
    bare(BLKV_P_CHECK);
    wr(16 * cs, 4 * cs);
    rd(0, 32 * cs);
}

/* L2 tables for every entry of an L1 table that fills its cluster, the last
 * one last: a 2 MiB device with 512-byte clusters (64 entries), or a 4 TiB
 * one with 64 KiB clusters (8192 entries: its end only). */
static void seed_full_l1(uint64_t cs, uint64_t b)
{
    uint64_t l2 = cs * (cs / 8);

    begin();
    P.cfg.grain = (uint32_t)cs;
    P.cfg.size = l2 * (cs / 8);
    P.cfg.seed = 0;
    if (cs == 512) {
        for (uint64_t i = 0; i < cs / 8; i++)
            wr(i * l2 + (i % 7) * 512, 512);
    } else {
        wr(0, 4 * KiB);
        wr(P.cfg.size - l2 - cs, 2 * cs);
        wr(P.cfg.size - 4 * KiB, 4 * KiB);
    }
    bare(BLKV_P_DRAIN);
    rd(P.cfg.size - 8 * KiB, 8 * KiB);
    rd(0, 8 * KiB);
    bare(BLKV_P_CHECK);
    bare(BLKV_P_REOPEN);
    wr(P.cfg.size - 512, 512);
    rd(P.cfg.size - l2 - 4 * KiB, 8 * KiB);
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
    {"crash", seed_crash, 0, 0},
    {"crash-keep-new", seed_crash, 255, 0},
    {"fault-rules-eio", seed_fault_rules, EIO, 0},
    {"fault-rules-enospc", seed_fault_rules, ENOSPC, 0},
    {"fault-l2-alloc-crash", seed_fault_crash, BLKV_EV_L2_ALLOC, 0},
    {"fault-refblock-crash", seed_fault_crash, BLKV_EV_REFBLOCK_UPDATE, 0},
    {NULL, NULL, 0, 0},
};

static const struct seed qcow2_program_seeds[] = {
    {"grow-refcount-table", seed_grow_rt, 0, 0},
    {"grow-refcount-table-lazy-crash", seed_grow_rt, 1, 0},
    {"refblock-new-512", seed_refblock, 512, 0},
    {"refblock-new-4k", seed_refblock, 4 * KiB, 0},
    {"l2-alloc-full-l1-512", seed_full_l1, 512, 0},
    {"l2-alloc-full-l1-4t", seed_full_l1, 64 * KiB, 0},
    {NULL, NULL, 0, 0},
};

static const struct seed buggy_seeds[] = {
    {"bug-write-read-back", seed_write_read_back, 0, 0},
    {"bug-read-twice", seed_read_twice, 0, 0},
    {"bug-cancel-then-read", seed_cancel_then_read, 0, 0},
    {"bug-zero-read", seed_zero_read, 0, 0},
    {NULL, NULL, 0, 0},
};

/* The program sets, by name. */
static const struct {
    const char *name;
    const struct seed *seeds;
} seed_sets[] = {
    {"programs", common_seeds},
    {"buggy", buggy_seeds},
    {"qcow2", qcow2_program_seeds},
};

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
    if (!blkv_fuzz_in_budget(&P)) { /* the targets would set it aside */
        if (P.cfg.size > blkv_fuzz_max_size(&P.cfg))
            fprintf(stderr, "corpus_writer: %s: a %" PRIu64 "-byte device is over the fuzz"
                    " budget's %" PRIu64 " for its grain\n", path, P.cfg.size,
                    blkv_fuzz_max_size(&P.cfg));
        else
            fprintf(stderr, "corpus_writer: %s: op %zu goes over the fuzz budget\n", path,
                    blkv_fuzz_over_budget(&P));
        free(b);
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

/* ---- qcow2 images: the corpus of qcow2_open --------------------------------
 *
 * qcow2_open_fuzzer takes a qcow2 image, optionally followed by "BLKV-PUT"
 * sections (bytes at an offset), "BLKV-OPS" and ops, and "BLKV-BAK" and a
 * backing file (see the fuzzer).  Its seeds are small valid images built
 * byte by byte (qcow2_image.h), independent of the driver's allocation
 * choices.  Images over 64 KiB (large clusters) are written as their first bytes and
 * PUT sections for the rest, leaving out the zeros in between.
 */

/* ---- the seeds --------------------------------------------------------- */

struct qseed {
    const char *name;
    size_t (*build)(uint64_t a);
    uint64_t a;
    void (*ops)(uint64_t size, uint64_t cs); /* an OPS section, or NULL */
    size_t (*backing)(uint64_t a);           /* a BLKV-BAK section, or NULL */
    uint64_t ba;
};

/* 512-byte clusters holding data, zero and compressed clusters, over
 * three L2 tables: version 3 with refcount order a (0..6), or version 2
 * (16-bit refcounts, no zero clusters) when a is 7. */
static size_t qs_c512(uint64_t a)
{
    bool v2 = a > 6;
    qimg_begin(v2 ? 2 : 3, 9, v2 ? 4 : (unsigned)a, 256 * KiB);
    qimg_data(0, 3);
    if (!v2) {
        qimg_zero(1, false);
        qimg_zero(2, true);
    }
    qimg_compressed(3, 5);
    qimg_compressed(4, 9);
    qimg_data(70, 11); /* the second L2 table */
    qimg_data(511, 13); /* the last cluster */
    return qimg_finish();
}

/* 4 KiB clusters, refcount order a, a device of 1 MiB (+512 when a is 6:
 * an unaligned size). */
static size_t qs_c4k(uint64_t a)
{
    qimg_begin(3, 12, (unsigned)a, MiB + (a == 6 ? 512 : 0));
    qimg_data(0, 3);
    qimg_data(1, 4);
    qimg_data(2, 5);
    qimg_zero(3, false);
    qimg_zero(4, true);
    qimg_compressed(5, 7);
    qimg_compressed(6, 9);
    qimg_data(MiB / 4096 - 1 + (a == 6), 11);
    return qimg_finish();
}

/* Large clusters (log2 a): zero and compressed clusters in an L2 table
 * (no data cluster: it would take a whole cluster of the input). */
static size_t qs_large(uint64_t a)
{
    qimg_begin(3, (unsigned)a, 4, UINT64_C(1) << (2 * a - 3)); /* one L2 table's worth */
    qimg_zero(0, false);
    qimg_compressed(1, 7);
    qimg_zero(2, true);
    qimg_compressed(5, 9);
    qimg_zero(((UINT64_C(1) << (a - 3)) - 1), false); /* the last cluster */
    return qimg_finish();
}

/* Lazy refcounts left dirty: the refcounts of clusters 3 to 5 (data and
 * the L2 table) were never written (open rebuilds them). */
static size_t qs_dirty(uint64_t a)
{
    size_t len;
    qimg_begin(3, 12, 4, MiB);
    qimg_data(0, 3);
    qimg_data(9, 4);
    qimg_zero(10, true);
    len = qimg_finish();
    qimg_be(qimg.b + 72, 1, 8); /* dirty */
    qimg_be(qimg.b + 80, 1, 8); /* lazy refcounts */
    for (uint64_t c = 3; c < 6; c++)
        qimg_be(qimg.b + 2 * qimg.cs + 2 * c, 0, 2);
    return len;
}

/* Header extensions: a feature name table, an unknown extension, the
 * compression type field (zlib), unknown compatible and auto-clear bits. */
static size_t qs_exts(uint64_t a)
{
    static const struct {
        uint8_t type, bit;
        const char *name;
    } names[] = {{0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 2, "external data file"},
                 {0, 3, "compression type"}, {0, 4, "extended L2 entries"},
                 {1, 0, "lazy refcounts"}, {2, 0, "bitmaps"}, {2, 1, "raw external data"}};
    uint8_t ft[sizeof(names) / sizeof(names[0]) * 48];

    qimg_begin(3, 12, 4, MiB);
    qimg_be(qimg.b + 100, 112, 4); /* header length: with the compression type (0: zlib) */
    qimg.hdr_end = 112;
    memset(ft, 0, sizeof(ft));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ft[i * 48] = names[i].type;
        ft[i * 48 + 1] = names[i].bit;
        memcpy(ft + i * 48 + 2, names[i].name, strlen(names[i].name));
    }
    qimg_ext(0x6803f857, ft, sizeof(ft));
    qimg_ext(0x12345678, "blkv!", 5);
    qimg_be(qimg.b + 80, UINT64_C(1) << 5, 8); /* an unknown compatible feature */
    qimg_be(qimg.b + 88, 1, 8);               /* auto-clear: bitmaps (cleared on open) */
    qimg_data(0, 3);
    qimg_compressed(1, 5);
    return qimg_finish();
}

/* A backing file named in the header (with its format when a names one:
 * 1 raw, 2 qcow2; 0: probed), zero clusters hiding parts of it, a
 * version 2 image when a is 0. */
static size_t qs_backed(uint64_t a)
{
    static const char *const fmt[] = {NULL, "raw", "qcow2"};
    qimg_begin(a ? 3 : 2, 12, 4, 256 * KiB);
    if (fmt[a])
        qimg_ext(0xe2792aca, fmt[a], (uint32_t)strlen(fmt[a]));
    qimg_backing(a == 1 ? "backing.raw" : "backing.qcow2");
    qimg_data(1, 3);
    if (a)
        qimg_zero(2, false);
    return qimg_finish();
}

/* An L2 table shared by two L1 entries (refcount 2, no copied flags). */
static size_t qs_shared(uint64_t a)
{
    qimg_begin(3, 9, 4, 256 * KiB);
    qimg_data(0, 3);
    qimg_data(1, 4);
    qimg_share_l2();
    return qimg_finish();
}

/* 512-byte clusters with 64-bit refcounts: one refcount table cluster
 * covers 2 MiB of file, so writing more makes the table grow. */
static size_t qs_small_table(uint64_t a)
{
    qimg_begin(3, 9, 6, 4 * MiB);
    qimg_data(0, 3);
    return qimg_finish();
}

/* Backing files: raw bytes (a: their length), or a qcow2 image. */
static size_t qb_raw(uint64_t a)
{
    qimg_begin(2, 12, 4, 4096); /* only for its buffer (256 KiB) */
    qimg_fill(qimg.b, a, 17);
    return (size_t)a;
}

static size_t qb_qcow2(uint64_t a)
{
    qimg_begin(2, 9, 4, 256 * KiB);
    qimg_data(0, 19);
    qimg_data(2, 23);
    qimg_compressed(4, 29);
    return qimg_finish();
}

/* OPS sections: programs for the image (the fuzzer decodes them after its
 * own size and grain fields). */
static void qo_mixed(uint64_t size, uint64_t cs)
{
    begin();
    P.cfg.size = size;
    P.cfg.grain = (uint32_t)cs;
    P.cfg.qd = 16;
    P.cfg.seed = 5;
    uint32_t w = wr(cs - 512, cs + 1024);
    wr(0, 3 * cs);
    sub(BLKV_P_WZERO, BLKV_P_UNMAP, cs, 2 * cs);
    uint32_t d = sub(BLKV_P_DISCARD, 0, 4 * cs, cs);
    rd(0, 8 * cs);
    ref(BLKV_P_CANCEL, d);
    step(0, EIO);
    ref(BLKV_P_WAIT, w);
    wr(size - 4096, 4096);
    bare(BLKV_P_DRAIN);
    bare(BLKV_P_REOPEN);
    sub(BLKV_P_WRITE, BLKV_P_FUA, 5 * cs + 7, 100);
    bare(BLKV_P_CHECK);
}

static void qo_concurrent(uint64_t size, uint64_t cs)
{
    begin();
    P.cfg.size = size;
    P.cfg.grain = (uint32_t)cs;
    P.cfg.qd = 32;
    P.cfg.sched = BLKV_SCHED_LIFO;
    for (uint64_t i = 0; i < 8; i++)
        wr(i * cs / 2, cs);
    sub(BLKV_P_WZERO, 0, 0, 4 * cs);
    rd(0, 8 * cs);
    flush();
    bare(BLKV_P_DRAIN);
}

/* Writes of more than 2 MiB in all. */
static void qo_fill(uint64_t size, uint64_t cs)
{
    begin();
    P.cfg.size = size;
    P.cfg.grain = (uint32_t)cs;
    P.cfg.sched = BLKV_SCHED_FIFO;
    for (uint64_t i = 0; i < 10; i++)
        wr(i * 256 * KiB, 256 * KiB);
    rd(2 * MiB, 64 * KiB);
}

static const struct qseed qcow2_seeds[] = {
    {"v2-c512", qs_c512, 7, NULL, NULL, 0},
    {"v3-c512-refcount1", qs_c512, 0, NULL, NULL, 0},
    {"v3-c512-refcount2", qs_c512, 1, NULL, NULL, 0},
    {"v3-c512-refcount4", qs_c512, 2, NULL, NULL, 0},
    {"v3-c512-refcount8", qs_c512, 3, NULL, NULL, 0},
    {"v3-c512-refcount16", qs_c512, 4, NULL, NULL, 0},
    {"v3-c512-refcount32", qs_c512, 5, NULL, NULL, 0},
    {"v3-c512-refcount64", qs_c512, 6, NULL, NULL, 0},
    {"v3-c4k", qs_c4k, 4, NULL, NULL, 0},
    {"v3-c4k-refcount64-unaligned-size", qs_c4k, 6, NULL, NULL, 0},
    {"v3-c64k", qs_large, 16, NULL, NULL, 0},
    {"v3-c256k", qs_large, 18, NULL, NULL, 0},
    {"v3-c2m", qs_large, 21, NULL, NULL, 0},
    {"v3-lazy-dirty", qs_dirty, 0, NULL, NULL, 0},
    {"v3-extensions", qs_exts, 0, NULL, NULL, 0},
    {"v3-shared-l2", qs_shared, 0, NULL, NULL, 0},
    {"v3-backing-raw", qs_backed, 1, NULL, qb_raw, 24 * KiB},
    {"v3-backing-qcow2", qs_backed, 2, NULL, qb_qcow2, 0},
    {"v2-backing-probed", qs_backed, 0, NULL, qb_qcow2, 0},
    {"v3-c4k-ops", qs_c4k, 4, qo_mixed, NULL, 0},
    {"v3-c512-ops", qs_c512, 4, qo_concurrent, NULL, 0},
    {"v3-backing-ops", qs_backed, 2, qo_mixed, qb_qcow2, 0},
    {"v3-c512-refcount-table-grows", qs_small_table, 0, qo_fill, NULL, 0},
    {NULL, NULL, 0, NULL, NULL, 0},
};

/* Append n bytes to *buf (of *len, malloc'd). */
static void q_append(uint8_t **buf, size_t *len, const void *data, size_t n)
{
    uint8_t *nb = realloc(*buf, *len + n);
    if (!nb)
        qimg_fail("out of memory");
    memcpy(nb + *len, data, n);
    *buf = nb;
    *len += n;
}

/* The fuzzer decodes OPS after the image's size and cluster size as literal
 * config fields: that must give back P's ops. */
static void q_check_ops(const uint8_t *ops, size_t n, uint64_t size, uint64_t cs)
{
    uint8_t *dec = malloc(14 + n);
    struct blkv_program d;

    if (!dec)
        qimg_fail("out of memory");
    dec[0] = 0xff;
    for (int i = 0; i < 8; i++)
        dec[1 + i] = (uint8_t)(size >> (8 * i));
    dec[9] = 0xff;
    for (int i = 0; i < 4; i++)
        dec[10 + i] = (uint8_t)(cs >> (8 * i));
    memcpy(dec + 14, ops, n);
    blkv_program_init(&d);
    if (blkv_program_decode(dec, 14 + n, &d) || d.nops != P.nops ||
        memcmp(d.ops, P.ops, P.nops * sizeof(*P.ops)) || d.cfg.seed != P.cfg.seed)
        qimg_fail("the OPS section does not decode back");
    blkv_program_free(&d);
    free(dec);
}

/* Append the image (len bytes of qimg.b): over 64 KiB, its first bytes up to
 * a long run of zeros, then a PUT section (tag, 8-byte big-endian offset,
 * bytes) for each later stretch of nonzero bytes, and one for its last 8
 * bytes (they make the file end where it does). */
static void q_append_image(uint8_t **out, size_t *outlen, size_t len)
{
    const size_t gap = 256;
    size_t pos = 0, end;

    if (len <= 64 * KiB) {
        q_append(out, outlen, qimg.b, len);
        return;
    }
    while (pos < len) {
        uint8_t off[8];
        size_t zeros = 0;
        for (end = pos; end < len && zeros < gap; end++)
            zeros = qimg.b[end] ? 0 : zeros + 1;
        end -= zeros;
        if (pos) {
            qimg_be(off, pos, 8);
            q_append(out, outlen, "BLKV-PUT", 8);
            q_append(out, outlen, off, 8);
        }
        q_append(out, outlen, qimg.b + pos, end - pos);
        for (pos = end; pos < len && !qimg.b[pos]; pos++)
            ;
        if (pos >= len && end < len) { /* the file's last bytes, zeros */
            qimg_be(off, len - 8, 8);
            q_append(out, outlen, "BLKV-PUT", 8);
            q_append(out, outlen, off, 8);
            q_append(out, outlen, qimg.b + len - 8, 8);
        }
    }
}

/* Write one image seed (and its sections) to path, or print what it is. */
static int q_seed(const struct qseed *s, const char *path, const char *target)
{
    size_t len = s->build(s->a), n;
    uint64_t size = qimg.size, cs = qimg.cs;
    uint8_t *out = NULL, *enc;
    size_t outlen = 0;
    FILE *f;

    q_append_image(&out, &outlen, len);
    if (s->ops) {
        size_t skip;
        s->ops(size, cs);
        enc = blkv_program_encode(&P, &n);
        if (!enc)
            qimg_fail("out of memory");
        /* drop the size and grain fields: the fuzzer puts the image's there */
        skip = enc[0] == 0xff ? 9 : 1;
        skip += skip < n && enc[skip] == 0xff ? 5 : 1;
        if (skip > n)
            qimg_fail("short program encoding");
        q_check_ops(enc + skip, n - skip, size, cs);
        q_append(&out, &outlen, "BLKV-OPS", 8);
        q_append(&out, &outlen, enc + skip, n - skip);
        free(enc);
    }
    if (s->backing) {
        size_t blen = s->backing(s->ba);
        q_append(&out, &outlen, "BLKV-BAK", 8);
        q_append(&out, &outlen, qimg.b, blen);
    }
    if (!path) {
        printf("# corpus/%s/%s: %zu bytes, a qcow2 image of %zu bytes%s%s\n", target, s->name,
               outlen, len, s->ops ? ", ops" : "", s->backing ? ", a backing file" : "");
        free(out);
        return 0;
    }
    f = fopen(path, "wb");
    if (!f || fwrite(out, 1, outlen, f) != outlen || fclose(f)) {
        fprintf(stderr, "corpus_writer: %s: %s\n", path, strerror(errno));
        free(out);
        return -1;
    }
    free(out);
    return 0;
}

/* The seeds of a target whose input is a qcow2 image. */
static int do_qcow2_images(const char *outdir, const char *target)
{
    char path[4096];
    for (const struct qseed *s = qcow2_seeds; s->name; s++) {
        if (outdir)
            snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, s->name);
        if (q_seed(s, outdir ? path : NULL, target))
            return -1;
    }
    qimg_free();
    return 0;
}

/* Write (or print) every seed of one set. */
static int do_set(const char *outdir, const char *set)
{
    const struct seed *seeds = NULL;
    char path[4096];

    if (outdir) {
        snprintf(path, sizeof(path), "%s/%s", outdir, set);
        mkdir(outdir, 0777);
        if (mkdir(path, 0777) && errno != EEXIST) {
            fprintf(stderr, "corpus_writer: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    if (!strcmp(set, "qcow2_open"))
        return do_qcow2_images(outdir, set);
    for (size_t k = 0; k < ARRAY_SIZE(seed_sets); k++)
        if (!strcmp(set, seed_sets[k].name))
            seeds = seed_sets[k].seeds;
    if (!seeds) {
        fprintf(stderr,
                "corpus_writer: unknown seed set '%s' (programs, buggy, qcow2, qcow2_open)\n",
                set);
        return -1;
    }
    for (const struct seed *s = seeds; s->name; s++) {
        s->build(s->a, s->b);
        if (outdir) {
            snprintf(path, sizeof(path), "%s/%s/%s", outdir, set, s->name);
            if (write_seed(path))
                return -1;
        } else if (print_seed(set, s->name)) {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const all[] = {"programs", "buggy", "qcow2", "qcow2_open"};

    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        (!strcmp(argv[1], "--text") ? argc < 3 : argc != 2)) {
        bool help = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        fprintf(help ? stdout : stderr,
                "usage: corpus_writer OUTDIR          write OUTDIR/SET/<seed>, every set\n"
                "       corpus_writer --text SET...   print a set's seeds as trace text\n"
                "sets: programs, buggy, qcow2, qcow2_open\n");
        return help ? 0 : 2;
    }
    blkv_program_init(&P);
    if (strcmp(argv[1], "--text")) {
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
            if (do_set(argv[1], all[i]))
                return 1;
    } else {
        for (int i = 2; i < argc; i++)
            if (do_set(NULL, argv[i]))
                return 1;
    }
    blkv_program_free(&P);
    return 0;
}
