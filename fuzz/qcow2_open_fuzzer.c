/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2_open_fuzzer: arbitrary bytes opened as a qcow2 image by blkv's qcow2
 * driver, then exercised: the open must refuse cleanly (a negative errno and
 * a message) or the image must survive reads of the whole device (bounded),
 * a few writes, write-zeroes, discards and flushes, the check, a reopen and
 * more reads, with every callback returning 0 or a negative errno, no
 * deadlock, and no crash, undefined behaviour, hang or memory blow-up (the
 * sanitizers and libFuzzer's -timeout / -rss_limit_mb / -malloc_limit_mb,
 * see qcow2_open.options).  The content of a fuzzed image is unknown, so no
 * data is checked: blkv_run's untrusted mode (verify.h).
 *
 * The input:
 *
 *     IMAGE [ "BLKV-PUT" OFFSET BYTES ]... [ "BLKV-OPS" OPS ] [ "BLKV-BAK" BACKING ]
 *
 * IMAGE is lower file 0, as is; it ends at the first tag ("BLKV-PUT",
 * "BLKV-OPS" or "BLKV-BAK"), and each section at the next tag (sections
 * may come in any order; the first OPS and BACKING count, every PUT does).
 * A PUT section writes BYTES over the image at OFFSET (8 bytes, big
 * endian, modulo MAX_SPAN; the file grows to cover them, zeros in between),
 * so that images whose tables lie megabytes apart (large clusters) stay
 * small inputs.  BACKING, if present, is lower file 1, the backing file
 * when the image names one.  OPS is a program in blkv's binary form
 * (harness/program.c) without its first two config fields: the device size
 * and the grain are the image's virtual size and cluster size from its
 * header, so the decoder aims offsets at its clusters, L2 tables and end.
 * At most MAX_TAIL_OPS of its ops run, each request cut to MAX_TAIL_LEN
 * bytes; its config gives the queue depth, scheduler and seed (and the seed
 * the driver's cache sizes).  Without OPS a fixed set of writes, write-zeroes
 * and a discard runs instead.
 *
 * Every run: read the device (all of it up to SWEEP_FULL, else SWEEP_READS
 * reads of SWEEP_LEN spread over it, the last at its end); the ops; flush;
 * check; reopen; read it again; check.
 *
 * A finding prints the report and aborts; the input itself is the
 * reproducer (replay it with the standalone build of this target).
 */
#include "targets.h"

#include <blkv/run.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_LEN 8
#define MAX_TAIL_BYTES 4096                 /* of OPS decoded */
#define MAX_TAIL_OPS 64
#define MAX_TAIL_LEN (UINT64_C(256) << 10)
#define SWEEP_LEN (UINT64_C(64) << 10)
#define SWEEP_FULL (UINT64_C(1) << 20)
#define SWEEP_READS 16
#define MAX_SPAN (UINT64_C(16) << 20)       /* image bytes with PUT sections */

static const char tag_ops[TAG_LEN] = "BLKV-OPS", tag_bak[TAG_LEN] = "BLKV-BAK",
                  tag_put[TAG_LEN] = "BLKV-PUT";

/* Offset of the first tag at or after `from`, or size. */
static size_t next_tag(const uint8_t *d, size_t size, size_t from)
{
    for (size_t i = from; i + TAG_LEN <= size; i++) {
        const uint8_t *p = memchr(d + i, 'B', size - TAG_LEN + 1 - i);
        if (!p)
            break;
        i = (size_t)(p - d);
        if (!memcmp(p, tag_ops, TAG_LEN) || !memcmp(p, tag_bak, TAG_LEN) ||
            !memcmp(p, tag_put, TAG_LEN))
            return i;
    }
    return size;
}

static uint64_t be_read(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void push(struct blkv_program *p, unsigned code, unsigned flags, uint64_t off,
                 uint64_t len)
{
    struct blkv_pop op = {.code = (uint8_t)code, .flags = (uint8_t)flags, .offset = off,
                          .len = len};
    if (blkv_program_push(p, &op)) {
        fprintf(stderr, "qcow2_open_fuzzer: out of memory\n");
        abort();
    }
}

/* A ranged request, cut to the device; nothing when it starts past the end. */
static void push_in(struct blkv_program *p, unsigned code, unsigned flags, uint64_t off,
                    uint64_t len, uint64_t size)
{
    if (off >= size || !len)
        return;
    push(p, code, flags, off, len < size - off ? len : size - off);
}

/* Read the device: all of it when small, else reads spread over it. */
static void sweep(struct blkv_program *p, uint64_t size)
{
    if (size <= SWEEP_FULL) {
        for (uint64_t off = 0; off < size; off += SWEEP_LEN)
            push_in(p, BLKV_P_READ, 0, off, SWEEP_LEN, size);
        return;
    }
    for (uint64_t i = 0; i < SWEEP_READS - 1; i++)
        push(p, BLKV_P_READ, 0, (i * (size - SWEEP_LEN) / (SWEEP_READS - 1)) & ~UINT64_C(511),
             SWEEP_LEN);
    push(p, BLKV_P_READ, 0, size - SWEEP_LEN, SWEEP_LEN);
}

/* The ops when the input has none: each kind of change at a few places. */
static void default_ops(struct blkv_program *p, uint64_t size, uint64_t cs)
{
    push_in(p, BLKV_P_WRITE, 0, 0, 4096, size);                         /* part of cluster 0 */
    push_in(p, BLKV_P_WRITE, 0, (size / 2) & ~(cs - 1), cs, size);      /* a whole cluster */
    push_in(p, BLKV_P_WRITE, BLKV_P_FUA, cs - 512, 1024, size);         /* across a boundary */
    push_in(p, BLKV_P_WRITE, 0, size - 1, 1, size);                     /* the last byte */
    push_in(p, BLKV_P_WZERO, BLKV_P_UNMAP, 2 * cs, 2 * cs, size);
    push_in(p, BLKV_P_WZERO, 0, (size / 4) & ~UINT64_C(511), 512, size);
    push_in(p, BLKV_P_DISCARD, 0, (size / 4 * 3) & ~(cs - 1), cs, size);
    push_in(p, BLKV_P_READ, 0, 0, 2 * cs, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct blkv_program tail, p; /* reused: their op arrays grow once */
    static uint8_t dec[14 + MAX_TAIL_BYTES];
    static uint8_t *flat; /* the image with its PUT sections applied */
    static const uint8_t empty[1];
    const uint8_t *sec[2] = {NULL, NULL}, *img = data; /* OPS, BACKING */
    size_t seclen[2] = {0, 0}, img_len = next_tag(data, size, 0), tail_len;
    bool puts = false;
    uint64_t vsize = 64 << 10, cs = 64 << 10, nsweep, base;
    struct blkv_run_opts o = {0};
    struct blkv_run_result res;
    char opts[96];
    int st;

    /* the sections */
    for (size_t pos = img_len; pos < size;) {
        size_t end = next_tag(data, size, pos + TAG_LEN);
        int k = !memcmp(data + pos, tag_ops, TAG_LEN) ? 0 :
                !memcmp(data + pos, tag_bak, TAG_LEN) ? 1 : 2;
        if (k < 2 && !sec[k]) {
            sec[k] = data + pos + TAG_LEN;
            seclen[k] = end - pos - TAG_LEN;
        }
        puts |= k == 2;
        pos = end;
    }
    if (puts) { /* lay the image out flat, the PUT sections over it */
        size_t span = img_len;
        if (!flat && !(flat = malloc(MAX_SPAN)))
            abort();
        memcpy(flat, data, img_len);
        for (size_t pos = img_len; pos < size;) {
            size_t end = next_tag(data, size, pos + TAG_LEN);
            if (!memcmp(data + pos, tag_put, TAG_LEN) && end - pos >= TAG_LEN + 8) {
                uint64_t off = be_read(data + pos + TAG_LEN, 8) % MAX_SPAN;
                size_t n = end - pos - TAG_LEN - 8;
                if (n > MAX_SPAN - off)
                    n = MAX_SPAN - off;
                if (off > span)
                    memset(flat + span, 0, off - span);
                memcpy(flat + off, data + pos + TAG_LEN + 8, n);
                if (off + n > span)
                    span = off + n;
            }
            pos = end;
        }
        img = flat;
        img_len = span;
    }

    /* the device as the header describes it (if it is wrong, open fails) */
    if (img_len >= 32) {
        uint64_t bits = be_read(img + 20, 4);
        vsize = be_read(img + 24, 8);
        if (bits >= 9 && bits <= 21)
            cs = UINT64_C(1) << bits;
    }
    if (vsize > BLKV_MAX_DEVICE_SIZE)
        vsize = BLKV_MAX_DEVICE_SIZE;
    if (vsize < 512)
        vsize = 512;

    /* OPS, decoded with the image's size and cluster size as the config's first fields */
    dec[0] = 0xff;
    for (int i = 0; i < 8; i++)
        dec[1 + i] = (uint8_t)(vsize >> (8 * i));
    dec[9] = 0xff;
    for (int i = 0; i < 4; i++)
        dec[10 + i] = (uint8_t)(cs >> (8 * i));
    if (!p.ops) {
        blkv_program_init(&tail);
        blkv_program_init(&p);
    }
    tail_len = seclen[0] < MAX_TAIL_BYTES ? seclen[0] : MAX_TAIL_BYTES;
    if (tail_len)
        memcpy(dec + 14, sec[0], tail_len);
    if (blkv_program_decode(dec, 14 + tail_len, &tail))
        return 0;

    p.nops = 0;
    p.cfg = tail.cfg;
    p.cfg.driver = p.cfg.init_image = p.cfg.lower_image = NULL;
    p.cfg.size = vsize;
    p.cfg.init = BLKV_INIT_ZERO;
    sweep(&p, vsize);
    nsweep = p.nops; /* every op of the sweep submits a request */
    if (sec[0]) {
        base = nsweep;
        for (size_t i = 0; i < tail.nops && i < MAX_TAIL_OPS; i++) {
            struct blkv_pop op = tail.ops[i];
            if (op.code == BLKV_P_CANCEL || op.code == BLKV_P_WAIT)
                op.arg += (uint32_t)base; /* numbered after the sweep's requests */
            if (op.len > MAX_TAIL_LEN)
                op.len = MAX_TAIL_LEN;
            if (blkv_program_push(&p, &op))
                abort();
        }
    } else {
        default_ops(&p, vsize, cs);
    }
    push(&p, BLKV_P_FLUSH, 0, 0, 0);
    push(&p, BLKV_P_CHECK, 0, 0, 0);
    push(&p, BLKV_P_REOPEN, 0, 0, 0);
    sweep(&p, vsize);

    snprintf(opts, sizeof(opts), "l2-cache=%u refcount-cache=%u",
             2 + (unsigned)(p.cfg.seed & 3), 2 + (unsigned)((p.cfg.seed >> 2) & 3));
    o.driver = &blkv_driver_qcow2;
    o.driver_opts = opts;
    o.untrusted = true;
    o.lower[0] = img_len ? img : empty;
    o.lower_len[0] = img_len;
    o.lower[1] = sec[1];
    o.lower_len[1] = seclen[1];
    o.quiet = true;
    st = blkv_run(&p, &o, &res);
    if (st == BLKV_RUN_VIOLATION) {
        fputs(res.report ? res.report : res.message, stderr);
        fprintf(stderr, "  reproducer: this input (qcow2 image%s%s)\n", sec[0] ? " + ops" : "",
                sec[1] ? " + backing file" : "");
        fflush(stderr);
        abort();
    }
    if (getenv("BLKV_FUZZ_VERBOSE")) {
        if (st == BLKV_RUN_ERROR)
            fprintf(stderr, "blkv: %s\n", res.message);
        fprintf(stderr, "blkv: %" PRIu64 " ops, %" PRIu64 " requests (%" PRIu64 " out of range), "
                "%" PRIu64 " reopens, %" PRIu64 " faults\n", res.stats.ops, res.stats.requests,
                res.stats.malformed, res.stats.reopens, res.stats.faults);
    }
    blkv_run_result_free(&res);
    return 0;
}
