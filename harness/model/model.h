/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * model.h - the raw model: what a correct disk may return (the oracle).
 *
 * The device is an array of independent byte registers.  Time is a logical
 * clock supplied by the caller: every submit and completion event gets a
 * distinct, increasing time (> 0; time 0 is "before everything").
 *
 * Each write-like request is a *source* (pattern.h numbering: request r is
 * source r + 2; source 1 is the initial content).  For every byte range the
 * model keeps *candidates*: sources whose value may currently be stored there.
 * A candidate is visible to a read submitted at time s if it has not been
 * evicted, or was evicted at a time e > s.
 *
 *  - submit of write-like source w over R: w becomes a candidate over R.
 *  - successful completion of w at time t: every other candidate c over R
 *    whose source completed before w was submitted is evicted at t.
 *  - failed or cancelled completion of w: w stays a candidate over R ("maybe",
 *    per byte, and per atomicity unit when atomic > 1) and evicts nothing.
 *  - a read r (submit s, completion t) may return, for each byte, the value
 *    of any candidate visible to it.  Anything else is a violation.
 *  - after r observed value v at a byte, every candidate there whose source
 *    completed before s and whose value differs from v is evicted at t.
 *  - discard: per the driver's declared semantics (blkv_discard): IGNORED adds
 *    nothing; ZEROES acts like write-zeroes; ZEROES_OR_OLD adds zeros as a
 *    candidate that evicts nothing on completion (like a failed write);
 *    UNSPECIFIED adds a wildcard candidate that matches any byte, is never
 *    evicted by an observation, and evicts older candidates like a write.
 *
 * With atomicity unit A > 1, writes land whole per A-aligned unit: each unit
 * of a read (clipped to the read) must read as its candidates' writes applied
 * one after another.  Repeatedly, a source that is visible and matches on
 * every byte it wrote among those still unexplained explains them; the unit
 * is torn if bytes remain.  When every candidate wrote the whole unit, this
 * is: one candidate source visible over the whole unit explains all of it.
 *
 * Power loss: see blkv_model_crash below.
 *
 * Memory is proportional to the number of distinct extents touched, not to
 * the device size (and, with crashes, to the writes since the last
 * durable point).
 */
#ifndef BLKV_MODEL_H
#define BLKV_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLKV_TIME_NEVER UINT64_MAX

/* What a source writes. */
enum blkv_src_kind {
    BLKV_SRC_PATTERN, /* self-describing pattern (pattern.h) */
    BLKV_SRC_ZEROES,  /* zeros (write-zeroes, discard, zero initial content) */
    BLKV_SRC_IMAGE,   /* the initial image's bytes (initial content only) */
    BLKV_SRC_ANY,     /* anything (discard with unspecified content) */
};

/* Status of a source's request. */
enum blkv_src_status {
    BLKV_SRC_INFLIGHT,
    BLKV_SRC_DONE,   /* completed successfully */
    BLKV_SRC_FAILED, /* completed with an error or cancelled: a "maybe" */
};

/* Why a candidate was evicted (for reports). */
enum blkv_evict {
    BLKV_EVICT_NONE,
    BLKV_EVICT_WRITE, /* overwritten: `by` is the source whose completion evicted it */
    BLKV_EVICT_READ,  /* superseded by an observation: `by` is the read's request number */
};

/* Reads the initial image (BLKV_SRC_IMAGE): fill buf with len bytes at off. */
typedef void (*blkv_image_read_fn)(void *opaque, void *buf, uint64_t len, uint64_t off);

struct blkv_model_config {
    uint64_t size;                /* device size */
    bool crash;                   /* the run may lose power: keep what a crash may bring back */
    unsigned atomic;              /* atomicity unit, power of 2 >= 1 */
    enum blkv_src_kind initial;   /* PATTERN, ZEROES or IMAGE */
    blkv_image_read_fn image_read; /* for IMAGE */
    void *image_opaque;
};

struct blkv_model;

struct blkv_model *blkv_model_new(const struct blkv_model_config *cfg);
void blkv_model_free(struct blkv_model *m);

/* Source w (>= 2) of the given kind is submitted at time t over [off, off+len). */
void blkv_model_submit(struct blkv_model *m, uint32_t w, enum blkv_src_kind kind,
                       uint64_t off, uint64_t len, uint64_t t);
/* Source w completes at time t.  `evicts` is false for a completion that
 * must not evict older data even on success (ZEROES_OR_OLD discard). */
void blkv_model_complete(struct blkv_model *m, uint32_t w, bool ok, bool evicts, uint64_t t);

/* Power loss (cfg.crash; no effect otherwise).  A source is durable once
 * it completed successfully with FUA (blkv_model_durable, after its
 * completion) or a flush submitted after its completion completed
 * successfully (blkv_model_flush: the flush was submitted at s).  At a
 * crash at time t, sources in flight end as "maybe" (failed), and every
 * byte may hold its durable value or that of any source submitted after
 * it: every candidate not replaced by a durable write submitted after its
 * completion is a candidate again.  Reads in flight are forgotten. */
void blkv_model_durable(struct blkv_model *m, uint32_t w);
void blkv_model_flush(struct blkv_model *m, uint64_t s, uint64_t t);
void blkv_model_crash(struct blkv_model *m, uint64_t t);

/* A read is in flight from time s: the model keeps what it may observe. */
void blkv_model_read_start(struct blkv_model *m, uint64_t s);
/* The read submitted at s ended without data (failed): stop keeping for it. */
void blkv_model_read_abandon(struct blkv_model *m, uint64_t s);

/* Result of checking a read. */
struct blkv_mismatch {
    uint64_t offset; /* device offset of the first byte no visible candidate explains */
    uint64_t len;    /* length of the differing run starting there (>= 1) */
    bool torn;       /* every byte is explained, but an atomicity unit mixes sources */
};

/*
 * Check data `buf` returned by read request `req` (submitted at s, completing
 * at t) for [off, off+len), then apply the observation rule and end the
 * read's keeping (as blkv_model_read_abandon).  Returns true when the data is
 * explained; false with *mm filled in otherwise (the model is then left as it
 * was before the check, for reporting).
 */
bool blkv_model_read_check(struct blkv_model *m, uint64_t req, uint64_t off, uint64_t len,
                           const void *buf, uint64_t s, uint64_t t, struct blkv_mismatch *mm);

/* ---- queries, for reports and tests ------------------------------------ */

struct blkv_cand_info {
    uint32_t src;
    enum blkv_src_kind kind;
    enum blkv_src_status status;
    uint64_t evicted_at;       /* BLKV_TIME_NEVER if live */
    enum blkv_evict evict_why;
    uint64_t evicted_by;
    bool dead;                 /* replaced by a durable write: no crash brings it back */
    uint64_t ext_start, ext_end; /* the extent (same candidates) containing the byte */
};

/*
 * Candidates at device byte `off` (live ones and, where still kept, evicted
 * ones), up to max of them; returns how many there are in all.
 */
size_t blkv_model_candidates(const struct blkv_model *m, uint64_t off,
                             struct blkv_cand_info *out, size_t max);
/* Whether candidate info `c` is visible to a read submitted at s. */
static inline bool blkv_cand_visible(const struct blkv_cand_info *c, uint64_t s)
{
    return c->evicted_at == BLKV_TIME_NEVER || c->evicted_at > s;
}
/* The bytes source `src` (with its kind) has at [off, off+len) into buf;
 * for BLKV_SRC_ANY fills zeros. */
void blkv_model_source_bytes(const struct blkv_model *m, uint32_t src, enum blkv_src_kind kind,
                             void *buf, uint64_t off, uint64_t len);

/* Source table: status and times of source w (false if unknown). */
struct blkv_src_info {
    enum blkv_src_kind kind;
    enum blkv_src_status status;
    uint64_t submitted, completed; /* completed is BLKV_TIME_NEVER while in flight */
    uint64_t off, len;
    bool durable;                  /* (crash tracking) completed with FUA or flushed since */
};
bool blkv_model_source(const struct blkv_model *m, uint32_t w, struct blkv_src_info *out);

/* Statistics. */
struct blkv_model_stats {
    size_t extents;    /* live extents in the interval map */
    size_t candidates; /* candidates over all extents */
    size_t bytes;      /* heap bytes held by the model (approximate, without malloc overhead) */
};
void blkv_model_stats(const struct blkv_model *m, struct blkv_model_stats *st);

#endif
