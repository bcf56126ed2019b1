/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * report.c - the violation report (see report.h).
 *
 * The first line keeps blkverify's form so existing greps work; then the
 * request, what the model expected, what was found and where it came from
 * (decoded from the self-describing data), a side-by-side hexdump, the ops
 * that touched the range, and where the reproducer was saved.
 */
#include "report/report.h"
#include "model/pattern.h"
#include "report/picture.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POISON 0xa5
#define MAX_CANDS 16
#define MAX_HISTORY 24
#define DUMP_BYTES 64
/* What a history widens to when the driver declares no grain. */
#define DEFAULT_GRAIN (UINT64_C(64) << 10)
/* Ops a check report lists when the check names no guest bytes. */
#define LAST_OPS 16
/* Bytes of a read searched for data off the 8-byte grid. */
#define MISDIRECTED_SCAN (UINT64_C(1) << 20)

/* ---- describing sources and requests ------------------------------------- */

static void describe_req(struct blkv_history *h, FILE *f, uint64_t num)
{
    const struct blkv_core_req *q = &h->reqs[num];
    char line[160];
    blkv_pop_format(&h->prog->ops[q->op], line, sizeof(line));
    fprintf(f, "#%" PRIu64 " (op %zu: %s)", num, q->op, line);
}

static void describe_outcome(FILE *f, const struct blkv_core_req *q)
{
    if (!q->completed && q->lost_at) {
        fprintf(f, "submitted t=%" PRIu64 ", lost in the crash at op %zu", q->t_submit,
                q->lost_at - 1);
        return;
    }
    if (!q->completed) {
        fprintf(f, "submitted t=%" PRIu64 ", in flight", q->t_submit);
        return;
    }
    fprintf(f, "t=%" PRIu64 "..%" PRIu64 ", ", q->t_submit, q->t_complete);
    if (q->ret == 0)
        fprintf(f, "ok");
    else
        fprintf(f, "%s%s", blkv_errno_name(q->ret) ? "-" : "",
                blkv_errno_name(q->ret) ? blkv_errno_name(q->ret) : "error");
    if (q->cancelled)
        fprintf(f, ", cancelled");
}

static void describe_src(struct blkv_history *h, FILE *f, uint32_t src)
{
    if (src == BLKV_SRC_INITIAL) {
        static const char *const init[] = {"zeros", "pattern", "image"};
        fprintf(f, "initial content (%s)", init[h->prog->cfg.init % 3]);
        return;
    }
    describe_req(h, f, BLKV_REQ_OF_SRC(src));
    fprintf(f, " ");
    describe_outcome(f, &h->reqs[BLKV_REQ_OF_SRC(src)]);
}

static const char *src_name(struct blkv_history *h, uint32_t src, char *buf, size_t len)
{
    if (src == BLKV_SRC_INITIAL)
        snprintf(buf, len, "initial");
    else
        snprintf(buf, len, "%s #%" PRIu64,
                 blkv_req_op_name(h->reqs[BLKV_REQ_OF_SRC(src)].req.op), BLKV_REQ_OF_SRC(src));
    return buf;
}

/* After a crash, what source src's data was on the medium: "durable"
 * (initial content, or a write that completed with FUA or was flushed),
 * "volatile" (a write not yet durable), or NULL without crash tracking. */
static const char *durability(struct blkv_history *h, uint32_t src)
{
    struct blkv_src_info si;
    if (!h->crash_op)
        return NULL;
    if (src == BLKV_SRC_INITIAL)
        return "durable";
    if (!blkv_model_source(h->model, src, &si))
        return NULL;
    return si.durable ? "durable" : "volatile";
}

/* ---- classification of found data ---------------------------------------- */

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The candidate record for src at off, if the model still has it. */
static bool find_cand(struct blkv_history *h, uint64_t off, uint32_t src, struct blkv_cand_info *out)
{
    struct blkv_cand_info c[MAX_CANDS];
    size_t n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    for (size_t i = 0; i < n && i < MAX_CANDS; i++)
        if (c[i].src == src) {
            *out = c[i];
            return true;
        }
    return false;
}

/* Whether a visible candidate is a write that completed before r was
 * submitted: then stale data means that write was lost. */
static bool newer_write_visible(struct blkv_history *h, const struct blkv_core_req *r, uint64_t off,
                                uint32_t *which)
{
    struct blkv_cand_info c[MAX_CANDS];
    size_t n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    for (size_t i = 0; i < n && i < MAX_CANDS; i++) {
        struct blkv_src_info si;
        if (!blkv_cand_visible(&c[i], r->t_submit) || c[i].src == BLKV_SRC_INITIAL)
            continue;
        if (blkv_model_source(h->model, c[i].src, &si) && si.status == BLKV_SRC_DONE &&
            si.completed < r->t_submit) {
            *which = c[i].src;
            return true;
        }
    }
    return false;
}

/* Whether the read holds some of pattern source src's data for its own place. */
static bool read_has_some_of(struct blkv_history *h, const struct blkv_core_req *r, uint32_t src)
{
    struct blkv_src_info si;
    uint64_t lo, hi;
    const uint8_t *buf = r->data;

    if (!blkv_model_source(h->model, src, &si) || si.kind != BLKV_SRC_PATTERN)
        return false;
    lo = si.off > r->req.offset ? si.off : r->req.offset;
    hi = si.off + si.len < r->req.offset + r->req.len ? si.off + si.len
                                                        : r->req.offset + r->req.len;
    for (uint64_t w = (lo + 7) & ~UINT64_C(7); w + 8 <= hi; w += 8)
        if (load_le64(buf + (w - r->req.offset)) == blkv_pattern_word(src, w >> 3))
            return true;
    return false;
}

/* Whether v is a pattern word of a source the run knows (k: its word index). */
static bool known_word(struct blkv_history *h, uint64_t v, uint32_t *src, uint64_t *k,
                       struct blkv_src_info *si)
{
    if (!blkv_pattern_decode(v, src, k))
        return false;
    if (*src == BLKV_SRC_INITIAL)
        return h->prog->cfg.init == BLKV_INIT_PATTERN;
    return blkv_model_source(h->model, *src, si) && si->kind == BLKV_SRC_PATTERN;
}

/*
 * A word that mixes bytes of several writes (at atomicity 1 a legal read can
 * return such words; a bad one is then judged byte by byte): the candidate,
 * live or evicted, whose pattern has the byte at off and the most others.
 */
static bool mixed_word(struct blkv_history *h, uint64_t off, uint64_t v, uint8_t mask,
                       uint32_t *src, uint64_t *k, struct blkv_src_info *si)
{
    struct blkv_cand_info c[MAX_CANDS];
    size_t n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    unsigned best = 0, b = off & 7;

    for (size_t i = 0; i < n && i < MAX_CANDS; i++) {
        uint64_t w;
        unsigned same = 0;
        if (c[i].kind != BLKV_SRC_PATTERN)
            continue;
        w = blkv_pattern_word(c[i].src, off >> 3);
        if (((w ^ v) >> (8 * b)) & 0xff)
            continue;
        for (unsigned j = 0; j < 8; j++)
            same += (mask >> j & 1) && !(((w ^ v) >> (8 * j)) & 0xff);
        if (same > best && (c[i].src == BLKV_SRC_INITIAL ||
                            blkv_model_source(h->model, c[i].src, si))) {
            best = same, *src = c[i].src, *k = off >> 3;
        }
    }
    if (best && *src != BLKV_SRC_INITIAL)
        blkv_model_source(h->model, *src, si);
    return best > 0;
}

/* Whether source src (word k) is data the run knows: the initial pattern,
 * or a pattern write whose range holds word k. */
static bool pattern_src_at(struct blkv_history *h, uint32_t src, uint64_t k,
                           struct blkv_src_info *si)
{
    if (src == BLKV_SRC_INITIAL)
        return h->prog->cfg.init == BLKV_INIT_PATTERN;
    return blkv_model_source(h->model, src, si) && si->kind == BLKV_SRC_PATTERN &&
           k * 8 + 8 > si->off && k * 8 < si->off + si->len;
}

/* Bytes of word v (those in mask) that pattern word w has too. */
static unsigned same_bytes(uint64_t v, uint64_t w, uint8_t mask)
{
    unsigned n = 0;
    for (unsigned j = 0; j < 8; j++)
        n += (mask >> j & 1) && !(((v ^ w) >> (8 * j)) & 0xff);
    return n;
}

/*
 * The word at wo (v, the bytes of mask in the read) decodes to no write:
 * explain the byte at off by the majority of its word.  Either the eight
 * bytes around off, read a few bytes off the word grid, are one write's
 * word (data written a few bytes away from its place: *agree = 8), or most
 * bytes of the word are one source's word, one that is a candidate here or
 * that a neighbouring word of the read names (some bytes overwritten).
 * Returns the source in *src and the device offset its byte at off was
 * written for in *meant.
 */
static bool majority_word(struct blkv_history *h, const struct blkv_core_req *r, uint64_t off,
                          uint64_t v, uint8_t mask, uint32_t *src, uint64_t *meant,
                          unsigned *agree, struct blkv_src_info *si)
{
    const uint8_t *buf = r->data;
    uint64_t wo = off & ~UINT64_C(7), end = r->req.offset + r->req.len;
    struct blkv_cand_info c[MAX_CANDS];
    uint32_t hs[MAX_CANDS + 4];
    uint64_t hk[MAX_CANDS + 4];
    size_t n, nh = 0;
    unsigned best = 0, need = 0;

    /* off the grid: a window holding off, else the nearest one after it */
    for (uint64_t x = off >= 7 ? off - 7 : 0; x <= off + 7; x++) {
        uint32_t s2;
        uint64_t k2;
        if (!(x & 7) || x < r->req.offset || x + 8 > end ||
            !blkv_pattern_decode(load_le64(buf + (x - r->req.offset)), &s2, &k2) ||
            !pattern_src_at(h, s2, k2, si) || k2 * 8 + off < x)
            continue;
        *src = s2, *meant = k2 * 8 + off - x, *agree = 8;
        return true;
    }
    n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    for (size_t i = 0; i < n && i < MAX_CANDS; i++)
        if (c[i].kind == BLKV_SRC_PATTERN)
            hs[nh] = c[i].src, hk[nh++] = wo >> 3;
    for (unsigned j = 1; j <= 2; j++) { /* what the neighbouring words name */
        uint32_t s2;
        uint64_t k2;
        if (wo >= r->req.offset + 8 * j &&
            blkv_pattern_decode(load_le64(buf + (wo - 8 * j - r->req.offset)), &s2, &k2))
            hs[nh] = s2, hk[nh++] = k2 + j;
        if (wo + 8 * j + 8 <= end &&
            blkv_pattern_decode(load_le64(buf + (wo + 8 * j - r->req.offset)), &s2, &k2) &&
            k2 >= j)
            hs[nh] = s2, hk[nh++] = k2 - j;
    }
    for (unsigned j = 0; j < 8; j++)
        need += mask >> j & 1;
    for (size_t i = 0; i < nh; i++) {
        unsigned same = same_bytes(v, blkv_pattern_word(hs[i], hk[i]), mask);
        if (same * 2 > need && same > best && pattern_src_at(h, hs[i], hk[i], si))
            best = same, *src = hs[i], *meant = hk[i] * 8 + (off & 7);
    }
    if (!best)
        return false;
    *agree = best;
    pattern_src_at(h, *src, *meant >> 3, si);
    return true;
}

/* Find a word anywhere in the read that names another place: data written
 * for offset *meant, found at *at.  The first mismatch of a misdirected
 * write is often the hole it left; the data it put elsewhere says more. */
static bool find_misdirected(struct blkv_history *h, const struct blkv_core_req *r, uint64_t *at,
                             uint64_t *meant, uint32_t *which, bool off_grid)
{
    const uint8_t *buf = r->data;
    uint64_t end = r->req.offset + r->req.len;

    for (uint64_t w = (r->req.offset + 7) & ~UINT64_C(7); w + 8 <= end; w += 8) {
        uint64_t k, v = load_le64(buf + (w - r->req.offset));
        uint32_t src;
        struct blkv_src_info si;
        if (!v || !blkv_pattern_decode(v, &src, &k) || k * 8 == w)
            continue;
        if (src == BLKV_SRC_INITIAL ? h->prog->cfg.init == BLKV_INIT_PATTERN
                                    : blkv_model_source(h->model, src, &si) &&
                                          si.kind == BLKV_SRC_PATTERN && k * 8 + 8 > si.off &&
                                          k * 8 < si.off + si.len) {
            *at = w, *meant = k * 8, *which = src;
            return true;
        }
    }
    /* data written a few bytes off its place: words off the 8-byte grid
     * (the first MISDIRECTED_SCAN bytes, each tried) */
    for (uint64_t x = r->req.offset; off_grid && x + 8 <= end &&
                                     x - r->req.offset < MISDIRECTED_SCAN; x++) {
        uint64_t k;
        uint32_t src;
        struct blkv_src_info si;
        if (!(x & 7) ||
            !blkv_pattern_decode(load_le64(buf + (x - r->req.offset)), &src, &k) ||
            !pattern_src_at(h, src, k, &si))
            continue;
        *at = x, *meant = k * 8, *which = src;
        return true;
    }
    return false;
}

/* Older data where a newer completed write is expected: say which, and
 * whether the same read holds part of that write (a torn write).  hole:
 * zeros were found (what a write that went elsewhere leaves), so data off
 * the 8-byte grid elsewhere in the read counts too. */
static const char *stale_class(struct blkv_history *h, const struct blkv_core_req *r, uint64_t off,
                               bool hole, FILE *f)
{
    uint32_t newer, which;
    uint64_t at, meant;
    char nb[48];

    if (find_misdirected(h, r, &at, &meant, &which, hole)) {
        fprintf(f, "         misdirected: this read also holds data of %s written for offset %"
                   PRIu64 " at offset %" PRIu64 "\n", src_name(h, which, nb, sizeof nb),
                meant, at);
        return "misdirected";
    }
    if (!newer_write_visible(h, r, off, &newer)) {
        fprintf(f, "         stale: older than every candidate\n");
        return "stale";
    }
    if (h->timeline)
        h->timeline->missing = blkv_timeline_src(newer);
    if (read_has_some_of(h, r, newer)) {
        fprintf(f, "         torn: this read holds part of %s's data, and older data here;"
                   " %s completed before the read was submitted\n",
                src_name(h, newer, nb, sizeof nb), src_name(h, newer, nb, sizeof nb));
        return "torn";
    }
    fprintf(f, "         stale: %s completed before this read was submitted, yet its data is"
               " not here (lost write or stale read)\n", src_name(h, newer, nb, sizeof nb));
    return "stale";
}

/* Whether zeros are old data at off: zero initial content, or a zeroing
 * request no longer visible to r. */
static bool zeros_were_here(struct blkv_history *h, const struct blkv_core_req *r, uint64_t off)
{
    struct blkv_cand_info c[MAX_CANDS];
    size_t n;

    if (h->prog->cfg.init == BLKV_INIT_ZERO)
        return true;
    n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    for (size_t i = 0; i < n && i < MAX_CANDS; i++)
        if (c[i].kind == BLKV_SRC_ZEROES && !blkv_cand_visible(&c[i], r->t_submit))
            return true;
    return false;
}

/* classify()'s *found when the bytes are no write's data (garbage, an
 * unfilled buffer, a torn unit), or zeros of older data. */
#define FOUND_NOTHING UINT32_MAX
#define FOUND_ZEROS (UINT32_MAX - 1)

/*
 * Say what the found bytes at off are and where they came from; returns the
 * class used in the signature, and in *found the source whose data the bytes
 * are (FOUND_NOTHING if none; zeros are not attributed).
 */
static const char *classify(struct blkv_history *h, const struct blkv_core_req *r,
                            const struct blkv_mismatch *mm, FILE *f, uint32_t *found)
{
    const uint8_t *buf = r->data;
    uint64_t off = mm->offset, rel = off - r->req.offset;
    uint64_t wo = off & ~UINT64_C(7), n = mm->len < DUMP_BYTES ? mm->len : DUMP_BYTES;
    uint32_t src;
    uint64_t k, meant;
    unsigned agree;
    bool all_poison = true;
    struct blkv_src_info si;
    struct blkv_cand_info ci;
    char nb[48];

    *found = FOUND_NOTHING;
    if (mm->torn) {
        fprintf(f, "  found: torn: an atomicity unit of %u bytes mixes data of different "
                   "writes\n", h->atomic);
        return "torn";
    }
    for (uint64_t i = 0; i < n; i++)
        all_poison &= buf[rel + i] == POISON;
    if (all_poison) {
        fprintf(f, "  found: unfilled: the driver left the read buffer untouched (0x%02x)\n",
                POISON);
        return "unfilled";
    }
    /* the aligned word around off, as far as the read holds it */
    uint64_t v = 0;
    uint8_t mask = 0;
    for (unsigned j = 0; j < 8; j++)
        if (wo + j >= r->req.offset && wo + j < r->req.offset + r->req.len) {
            v |= (uint64_t)buf[wo + j - r->req.offset] << (8 * j);
            mask |= (uint8_t)(1u << j);
        }
    if (mask != 0xff) {
        if (!(buf[rel] == 0 && zeros_were_here(h, r, off)) &&
            !mixed_word(h, off, v, mask, &src, &k, &si)) {
            if (!majority_word(h, r, off, v, mask, &src, &meant, &agree, &si)) {
                fprintf(f, "  found: garbage: bytes that no write explains\n");
                return "garbage";
            }
            goto by_majority;
        }
        if (buf[rel] == 0 && zeros_were_here(h, r, off)) {
            fprintf(f, "  found: zeros, older data here\n");
            *found = FOUND_ZEROS;
            return stale_class(h, r, off, true, f);
        }
    } else if (v == 0) {
        if (zeros_were_here(h, r, off)) {
            fprintf(f, "  found: zeros, older data here\n");
            *found = FOUND_ZEROS;
            return stale_class(h, r, off, true, f);
        }
        fprintf(f, "  found: zeros, which no write explains\n");
        return "zeros";
    }
    if (mask == 0xff && !known_word(h, v, &src, &k, &si) &&
        !mixed_word(h, off, v, mask, &src, &k, &si)) {
        if (buf[rel] == 0 && zeros_were_here(h, r, off)) {
            /* a word mixing older zeros with bytes of some write */
            fprintf(f, "  found: zeros, older data here\n");
            *found = FOUND_ZEROS;
            return stale_class(h, r, off, true, f);
        }
        if (!majority_word(h, r, off, v, mask, &src, &meant, &agree, &si)) {
            fprintf(f, "  found: garbage: 0x%016" PRIx64 " decodes to no write\n", v);
            return "garbage";
        }
        goto by_majority;
    }
    meant = k * 8 + (off & 7);
    if (src != BLKV_SRC_INITIAL && ((meant & ~UINT64_C(7)) + 8 <= si.off ||
                                    (meant & ~UINT64_C(7)) >= si.off + si.len)) {
        fprintf(f, "  found: garbage: 0x%016" PRIx64 " decodes to %s at offset %" PRIu64
                   ", outside its range\n", v, src_name(h, src, nb, sizeof nb), k * 8);
        return "garbage";
    }
    fprintf(f, "  found: data of ");
    describe_src(h, f, src);
    fprintf(f, "\n");
    goto classed;
by_majority:
    fprintf(f, "  found: mostly data of ");
    describe_src(h, f, src);
    if (agree == 8)
        fprintf(f, "\n         the 8 bytes at %" PRIu64 " are its word for offset %" PRIu64
                   ", off the 8-byte grid\n", off + (meant & ~UINT64_C(7)) - meant,
                meant & ~UINT64_C(7));
    else
        fprintf(f, "\n         %u of the 8 bytes at %" PRIu64 " are its word for offset %" PRIu64
                   "; the other bytes no write explains\n", agree, wo, meant & ~UINT64_C(7));
    if (meant == off && find_cand(h, off, src, &ci) && blkv_cand_visible(&ci, r->t_submit)) {
        /* the right data with some bytes changed: no write put them there */
        fprintf(f, "         garbage: bytes of the expected data changed in place\n");
        return "garbage";
    }
classed:
    *found = src;
    if (meant != off) {
        fprintf(f, "         misdirected: written for offset %" PRIu64 ", found at offset %"
                   PRIu64 " (%+" PRId64 " bytes)\n", meant, off, (int64_t)(off - meant));
        return "misdirected";
    }
    if (find_cand(h, off, src, &ci) && blkv_cand_visible(&ci, r->t_submit)) {
        fprintf(f, "         torn: this write is a candidate here, but only part of its data"
                   " is\n");
        return "torn";
    }
    if (src != BLKV_SRC_INITIAL && si.status == BLKV_SRC_FAILED) {
        fprintf(f, "         zombie: it completed with an error or was cancelled, and its data"
                   " appeared after other data here was settled\n");
        return "zombie";
    }
    if (find_cand(h, off, src, &ci) && ci.evict_why == BLKV_EVICT_READ) {
        fprintf(f, "         flip-flop: read #%" PRIu64 " had already seen newer data here"
                   " before this read was submitted\n", ci.evicted_by);
        return "flip-flop";
    }
    return stale_class(h, r, off, false, f);
}

/* ---- pieces of the report -------------------------------------------------- */

static void print_candidates(struct blkv_history *h, const struct blkv_core_req *r, uint64_t off, FILE *f,
                             uint32_t *shown_src, enum blkv_src_kind *shown_kind)
{
    struct blkv_cand_info c[MAX_CANDS];
    size_t n = blkv_model_candidates(h->model, off, c, MAX_CANDS);
    bool any = false;

    *shown_src = 0;
    fprintf(f, "  expected at %" PRIu64 ", any of:\n", off);
    for (size_t i = 0; i < n && i < MAX_CANDS; i++) {
        if (!blkv_cand_visible(&c[i], r->t_submit))
            continue;
        any = true;
        if (h->timeline && h->timeline->ncands < BLKV_TL_MAX_CANDS)
            h->timeline->cands[h->timeline->ncands++] = blkv_timeline_src(c[i].src);
        fprintf(f, "    ");
        if (c[i].kind == BLKV_SRC_ANY)
            fprintf(f, "anything (discarded by ");
        else if (c[i].kind == BLKV_SRC_ZEROES && c[i].src != BLKV_SRC_INITIAL)
            fprintf(f, "zeros (");
        describe_src(h, f, c[i].src);
        if ((c[i].kind == BLKV_SRC_ANY || c[i].kind == BLKV_SRC_ZEROES) &&
            c[i].src != BLKV_SRC_INITIAL)
            fprintf(f, ")");
        if (c[i].status == BLKV_SRC_FAILED)
            fprintf(f, " [maybe]");
        if (durability(h, c[i].src))
            fprintf(f, " [%s]", durability(h, c[i].src));
        fprintf(f, "\n");
        /* show the newest visible candidate in the hexdump */
        if (c[i].src >= *shown_src) {
            *shown_src = c[i].src;
            *shown_kind = c[i].kind;
        }
    }
    if (!any)
        fprintf(f, "    (nothing: no candidate is visible to this read)\n");
    for (size_t i = 0; i < n && i < MAX_CANDS; i++) {
        char nb[48];
        if (blkv_cand_visible(&c[i], r->t_submit))
            continue;
        if (h->timeline && h->timeline->nevicted < BLKV_TL_MAX_CANDS)
            h->timeline->evicted[h->timeline->nevicted++] = blkv_timeline_src(c[i].src);
        fprintf(f, "  no longer visible: ");
        describe_src(h, f, c[i].src);
        if (c[i].dead)
            fprintf(f, " (replaced on the medium by a durable write: no crash brings it back)\n");
        else if (c[i].evict_why == BLKV_EVICT_WRITE)
            fprintf(f, " (overwritten by %s at t=%" PRIu64 ")\n",
                    src_name(h, (uint32_t)c[i].evicted_by, nb, sizeof nb), c[i].evicted_at);
        else
            fprintf(f, " (ruled out when read #%" PRIu64 " saw other data here, t=%" PRIu64 ")\n",
                    c[i].evicted_by, c[i].evicted_at);
    }
}

static void print_hexdump(struct blkv_history *h, const struct blkv_core_req *r,
                          const struct blkv_mismatch *mm, uint32_t src, enum blkv_src_kind kind,
                          FILE *f)
{
    uint64_t start = mm->offset & ~UINT64_C(15), end;
    uint8_t exp[DUMP_BYTES];
    const uint8_t *found = r->data;
    char nb[48];

    if (start < r->req.offset)
        start = r->req.offset;
    end = start + DUMP_BYTES;
    if (end > r->req.offset + r->req.len)
        end = r->req.offset + r->req.len;
    if (src)
        blkv_model_source_bytes(h->model, src, kind, exp, start, end - start);
    else
        memset(exp, 0, sizeof(exp));
    fprintf(f, "  first unexplained run: %" PRIu64 " byte(s) from offset %" PRIu64 "; bytes %" PRIu64
               "..%" PRIu64 ":\n", mm->len, mm->offset, start, end);
    fprintf(f, "    %-12s %-48s   %s\n", "offset",
            src ? src_name(h, src, nb, sizeof nb) : "expected", "found");
    for (uint64_t row = start; row < end; row += 16) {
        uint64_t m = end - row < 16 ? end - row : 16;
        fprintf(f, "    %012" PRIx64 " ", row);
        for (uint64_t i = 0; i < 16; i++) {
            if (i < m)
                fprintf(f, "%02x ", exp[row - start + i]);
            else
                fprintf(f, "   ");
        }
        fprintf(f, "  ");
        for (uint64_t i = 0; i < m; i++) {
            uint8_t e = exp[row - start + i], g = found[row - r->req.offset + i];
            fprintf(f, "%02x%c", g, e != g && kind != BLKV_SRC_ANY ? '*' : ' ');
        }
        fprintf(f, "\n");
    }
}

/* The unit of the driver's mapping that a report widens a range to: its
 * grain, else its alignment if larger, else 64 KiB; *declared: the driver's. */
static uint64_t report_grain(const struct blkv_history *h, bool *declared)
{
    *declared = h->caps.grain != 0;
    if (h->caps.grain)
        return h->caps.grain;
    return h->caps.align > DEFAULT_GRAIN ? h->caps.align : DEFAULT_GRAIN;
}

/* Whether request q is one a history lists (it may have changed data). */
static bool history_req(const struct blkv_core_req *q)
{
    return q->submitted && q->req.op != BLKV_OP_FLUSH && !q->expect_err;
}

/* Keep the newest `max` of the request numbers pushed, counting the rest. */
struct hist_ring {
    uint64_t n[MAX_HISTORY], count, skipped;
};

static void ring_push(struct hist_ring *r, size_t max, uint64_t num)
{
    if (r->count == max) {
        memmove(r->n, r->n + 1, sizeof(r->n[0]) * (max - 1));
        r->count--, r->skipped++;
    }
    r->n[r->count++] = num;
}

/*
 * The requests that touched [off, off+len), in order, and those that
 * touched the rest of the grain-sized units around it, marked [same
 * cluster]: a culprit often wrote the neighbour (a misdirected or torn
 * allocation, a copy on write of the wrong part).
 */
static void print_history(struct blkv_history *h, uint64_t off, uint64_t len, FILE *f)
{
    struct hist_ring same = {0}, near = {0};
    bool declared;
    uint64_t g = report_grain(h, &declared), glo = off - off % g, ghi = off + len;
    uint64_t i = 0, j = 0;

    ghi = ghi % g ? ghi + (g - ghi % g) : ghi;
    for (uint64_t k = 0; k < h->next_req; k++) {
        const struct blkv_core_req *q = &h->reqs[k];
        uint64_t qe = q->req.offset + q->req.len;
        if (!history_req(q))
            continue;
        if (q->req.offset < off + len && off < qe)
            ring_push(&same, MAX_HISTORY, k);
        else if (q->req.offset < ghi && glo < qe)
            ring_push(&near, MAX_HISTORY / 2, k);
    }
    fprintf(f, "  requests that touched %" PRIu64 "..%" PRIu64 ", and marked [same cluster] the"
               " rest of %" PRIu64 "..%" PRIu64 " (%" PRIu64 "-byte %s), in order:\n", off,
            off + len, glo, ghi, g, declared ? "clusters, the driver's" :
            "units: the driver declares no cluster size");
    if (same.skipped || near.skipped)
        fprintf(f, "    (%" PRIu64 " earlier ones not shown)\n", same.skipped + near.skipped);
    if (!same.count && !near.count)
        fprintf(f, "    (none: only the initial content was ever here)\n");
    while (i < same.count || j < near.count) {
        bool is_near = i == same.count || (j < near.count && near.n[j] < same.n[i]);
        uint64_t k = is_near ? near.n[j++] : same.n[i++];
        fprintf(f, "    ");
        describe_req(h, f, k);
        fprintf(f, " ");
        describe_outcome(f, &h->reqs[k]);
        fprintf(f, "%s\n", is_near ? " [same cluster]" : "");
    }
}

/* The last LAST_OPS ops before the one running, with what their requests did. */
static void print_last_ops(struct blkv_history *h, FILE *f)
{
    size_t end = h->cur_op < h->prog->nops ? h->cur_op + 1 : h->prog->nops;
    size_t from = end > LAST_OPS ? end - LAST_OPS : 0;
    uint64_t k = 0;

    fprintf(f, "  the check names no guest bytes; the last %zu op(s):\n", end - from);
    if (from)
        fprintf(f, "    (%zu earlier ones not shown)\n", from);
    for (size_t i = from; i < end; i++) {
        char line[160];
        blkv_pop_format(&h->prog->ops[i], line, sizeof(line));
        fprintf(f, "    op %zu: %s", i, line);
        while (k < h->next_req && h->reqs[k].op < i)
            k++;
        if (k < h->next_req && h->reqs[k].op == i && h->reqs[k].submitted) {
            fprintf(f, ": #%" PRIu64 " ", k);
            describe_outcome(f, &h->reqs[k]);
        }
        fprintf(f, "\n");
    }
}

/* ---- finishing ------------------------------------------------------------- */

/* Close the report stream, save, print, and abort or mark the run failed. */
static void finish(struct blkv_history *h, FILE *f, char **buf, size_t *len, const char *sig)
{
    struct blkv_run_result *res = h->res;
    const struct blkv_config *cfg = &h->prog->cfg;
    char *nl;

    fflush(f);
    nl = strchr(*buf, '\n');
    snprintf(res->message, sizeof(res->message), "%.*s",
             (int)(nl ? nl - *buf : (ptrdiff_t)*len), *buf);
    snprintf(res->signature, sizeof(res->signature), "%s", sig);
    blkv_repro_save(h, res->message, f);
    fprintf(f, "  driver: %s; seed %" PRIu64 "; sched %s; qd %u; atomic %u\n", h->driver_spec,
            cfg->seed, cfg->sched == BLKV_SCHED_FIFO ? "fifo" :
            cfg->sched == BLKV_SCHED_LIFO ? "lifo" : "random", cfg->qd, h->atomic);
    fprintf(f, "  signature: %s\n", sig);
    if (res->repro_text[0])
        fprintf(f, "  reproducer: %s (text), %s (binary)\n  replay: blkv run %s\n",
                res->repro_text, res->repro_bin, res->repro_text);
    if (res->repro_text[0] && h->opts->repro_picture)
        blkv_picture_save(h, f, buf);
    fclose(f);
    res->status = BLKV_RUN_VIOLATION;
    free(res->report);
    res->report = *buf;
    h->failed = true;
    if (!h->opts->quiet) {
        fputs(res->report, h->out);
        fflush(h->out);
    }
    if (h->opts->abort_on_violation)
        abort();
}

static FILE *begin(char **buf, size_t *len)
{
    FILE *f;
    *buf = NULL;
    f = open_memstream(buf, len);
    if (!f) {
        fprintf(stderr, "blkv: out of memory writing a report\n");
        abort();
    }
    return f;
}

/* After a crash: whether the bad data found was durable, volatile, or
 * neither, on the medium at the crash. */
static void print_found_durability(struct blkv_history *h, uint64_t off, uint32_t found, FILE *f)
{
    struct blkv_cand_info ci;
    const char *d;

    if (found == FOUND_NOTHING) {
        fprintf(f, "  after the crash: the found data is neither durable nor volatile: no"
                   " write put it there\n");
        return;
    }
    if (found == FOUND_ZEROS || !(d = durability(h, found)))
        return;
    fprintf(f, "  after the crash: the found data was %s%s%s\n", d,
            found == BLKV_SRC_INITIAL ? " (the initial content)"
            : !strcmp(d, "durable")   ? " (written with FUA, or flushed after it completed)"
                                      : " (never flushed after it completed)",
            find_cand(h, off, found, &ci) && ci.dead
                ? "; a durable write had replaced it, so no crash may bring it back" : "");
}

/* Where the run stands in its power losses. */
static void print_crash(struct blkv_history *h, FILE *f)
{
    if (h->crash_op)
        fprintf(f, "  after crash at op %zu (%" PRIu64 " crash%s in the run so far)\n",
                h->crash_op - 1, h->res->stats.crashes, h->res->stats.crashes == 1 ? "" : "es");
}

static void print_request(struct blkv_history *h, const struct blkv_core_req *r, FILE *f)
{
    fprintf(f, "  request ");
    describe_req(h, f, r->req.id);
    fprintf(f, ", ");
    describe_outcome(f, r);
    fprintf(f, "\n");
    print_crash(h, f);
}

void blkv_report_mismatch(struct blkv_history *h, const struct blkv_core_req *r,
                          const struct blkv_mismatch *mm)
{
    char *buf, sig[96];
    size_t len;
    FILE *f = begin(&buf, &len);
    uint32_t src, found;
    enum blkv_src_kind kind = BLKV_SRC_PATTERN;
    const char *cls;

    fprintf(f, "blkverify: read offset=%" PRIu64 " bytes=%" PRIu64 " contents mismatch at offset %"
               PRIu64 "\n", r->req.offset, r->req.len, mm->offset);
    print_request(h, r, f);
    print_candidates(h, r, mm->offset, f, &src, &kind);
    cls = classify(h, r, mm, f, &found);
    if (h->timeline) {
        h->timeline->fail_req = r->req.id;
        h->timeline->mismatch_offset = mm->offset;
        h->timeline->mismatch_len = mm->len;
        h->timeline->found = found == FOUND_NOTHING ? BLKV_TL_NONE
                             : found == FOUND_ZEROS ? BLKV_TL_ZEROS
                                                    : blkv_timeline_src(found);
    }
    if (h->crash_op)
        print_found_durability(h, mm->offset, found, f);
    print_hexdump(h, r, mm, src, kind, f);
    print_history(h, mm->offset, mm->len, f);
    snprintf(sig, sizeof(sig), "contents/read/%s", cls);
    finish(h, f, &buf, &len, sig);
}

void blkv_report_retval(struct blkv_history *h, const struct blkv_core_req *r, int expected)
{
    char *buf, sig[96];
    size_t len;
    FILE *f = begin(&buf, &len);
    const char *op = blkv_req_op_name(r->req.op);

    if (h->timeline)
        h->timeline->fail_req = r->req.id;
    if (r->req.op == BLKV_OP_FLUSH)
        fprintf(f, "blkverify: flush return value mismatch %d != %d\n", r->ret, expected);
    else
        fprintf(f, "blkverify: %s offset=%" PRIu64 " bytes=%" PRIu64
                   " return value mismatch %d != %d\n", op, r->req.offset, r->req.len, r->ret,
                expected);
    print_request(h, r, f);
    if (expected)
        fprintf(f, "  expected: %d (%s): the request is malformed for this driver (align %u,"
                   " max transfer %u, size %" PRIu64 "%s)\n", expected,
                blkv_errno_name(expected) ? blkv_errno_name(expected) : "?", h->caps.align,
                h->caps.max_transfer, h->caps.size, h->caps.read_only ? ", read-only" : "");
    else
        fprintf(f, "  expected: 0: the request is well-formed and no fault was injected%s\n",
                r->cancelled ? " (-ECANCELED would also do: it was cancelled)" : "");
    if (h->driver_error && h->driver_error[0])
        fprintf(f, "  the driver said: %s\n", h->driver_error);
    if (r->req.op != BLKV_OP_FLUSH)
        print_history(h, r->req.offset, r->req.len, f);
    snprintf(sig, sizeof(sig), "retval/%s", op);
    finish(h, f, &buf, &len, sig);
}

void blkv_report_other(struct blkv_history *h, const struct blkv_core_req *r, const char *kind,
                       const char *fmt, ...)
{
    char *buf, sig[96];
    size_t len;
    FILE *f = begin(&buf, &len);
    va_list ap;

    if (h->timeline && r && !r->setup)
        h->timeline->fail_req = r->req.id;
    fprintf(f, "blkverify: ");
    if (r && r->req.op != BLKV_OP_FLUSH)
        fprintf(f, "%s offset=%" PRIu64 " bytes=%" PRIu64 " ", blkv_req_op_name(r->req.op),
                r->req.offset, r->req.len);
    else if (r)
        fprintf(f, "flush ");
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fprintf(f, "\n");
    if (r && !r->setup)
        print_request(h, r, f);
    else if (h->setting_up)
        fprintf(f, "  before the first op, while writing the initial content\n");
    else if (h->cur_op < h->prog->nops) {
        char line[160];
        blkv_pop_format(&h->prog->ops[h->cur_op], line, sizeof(line));
        fprintf(f, "  at op %zu: %s\n", h->cur_op, line);
    } else {
        fprintf(f, "  after the last op\n");
    }
    if (!r || r->setup)
        print_crash(h, f);
    if (r)
        snprintf(sig, sizeof(sig), "%s/%s", kind, blkv_req_op_name(r->req.op));
    else
        snprintf(sig, sizeof(sig), "%s", kind);
    finish(h, f, &buf, &len, sig);
}

void blkv_report_check(struct blkv_history *h, const char *kind, const struct blkv_extent *named,
                       const char *fmt, ...)
{
    char *buf;
    size_t len;
    FILE *f = begin(&buf, &len);
    va_list ap;

    fprintf(f, "blkverify: ");
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fprintf(f, "\n");
    if (h->cur_op < h->prog->nops) {
        char line[160];
        blkv_pop_format(&h->prog->ops[h->cur_op], line, sizeof(line));
        fprintf(f, "  at op %zu: %s\n", h->cur_op, line);
    } else {
        fprintf(f, "  after the last op\n");
    }
    print_crash(h, f);
    if (named) {
        fprintf(f, "  the check names guest bytes %" PRIu64 "..%" PRIu64 "\n", named->off,
                named->off + named->len);
        print_history(h, named->off, named->len, f);
    } else {
        print_last_ops(h, f);
    }
    finish(h, f, &buf, &len, kind);
}
