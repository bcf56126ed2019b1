/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * buggy.c - a filter over raw with one deliberate, switchable bug.
 *
 * The self-tests use it to prove that the oracle catches each class of
 * misbehaviour.  Every bug is real: it changes what lands on the lower file
 * or what a request returns; nothing here tells the verifier anything.
 *
 *   mode=none              behaves like raw
 *   mode=lost-write        a write reports success and writes nothing
 *   mode=stale-read        a read returns, where its range was overwritten,
 *                          the data the last write there replaced
 *   mode=misdirected-write a write lands `shift` bytes after (or, if that
 *                          leaves the device, before) where it should
 *   mode=torn-write        a write writes only its first half
 *   mode=zombie-write      a cancelled write completes with -ECANCELED at
 *                          once, but its lower write still lands later
 *   mode=wrong-return      a read or write does its work, then returns -EIO
 *   mode=flip-flop         a read of data already read once since it was
 *                          written returns the data that write replaced
 *   mode=zeroes-noop       write-zeroes reports success and does nothing
 *
 * and, for power loss (seen only through a crash):
 *
 *   mode=flush-early       a flush reports success without flushing the
 *                          lower file
 *   mode=fua-ignored       a FUA write (or write-zeroes, discard) reports
 *                          success without flushing the lower file: a
 *                          durable write is lost at a crash
 *   mode=write-early       a write reports success while its data is only in
 *                          the driver's memory, then goes down to the lower
 *                          file; a flush does not wait for it
 *   mode=writeback         no bug: a write-back cache, the silent sibling of
 *                          the three above.  Writes are held in memory and
 *                          reported done at once; a flush (or FUA) writes
 *                          them back and flushes the lower file; what is not
 *                          flushed is lost at a crash, as it may be
 *
 * Every request goes down to a raw child (blkv_child_*): buggy changes what
 * it passes down (or what it returns), never how raw stores it.  Raw is
 * opened with its defaults, so each request is one lower I/O and the device
 * is lower file 0 byte for byte, which the history below relies on.
 *
 * Each mode has opportunities (for lost-write: writes; for stale-read: reads
 * over overwritten data; for zombie-write: cancels of writes in flight; ...).
 * The bug strikes at opportunity skip+every-1, skip+2*every-1, ...; `every`
 * defaults per mode to something random programs hit quickly.  Opportunities
 * are counted in the order the coroutines run, so a run is deterministic.
 *
 * stale-read and flip-flop keep their history in lower file 1: the device's
 * current content at [BUGGY_CUR + off] (exact wherever it is tracked) and the
 * content each write replaced at [off].
 *
 * writeback and write-early keep a cache: the data of writes not yet known
 * to be on the lower file, as disjoint extents, each dirty (to be written
 * back) or clean (written back, kept until no read could miss it).  Reads
 * take raw's data and lay the cache over it.  Write-backs run one at a time
 * (a mutex), so two of the same range never land out of order.  In writeback
 * mode the opportunities are writes, and a strike writes the cache back
 * without flushing (data on the lower file that a crash may still lose).
 */
#include <blkv/driver.h>

#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUGGY_ZERO_CHUNK (256u * 1024) /* write-zeroes go down in pieces of this */
#define BUGGY_CUR BLKV_MAX_DEVICE_SIZE /* where lower file 1 mirrors the device */
/* Bounce for immediate lower-file copies (peek/poke never yield). */
static unsigned char buggy_copybuf[64 * 1024];

enum buggy_mode {
    BUGGY_NONE,
    BUGGY_LOST_WRITE,
    BUGGY_STALE_READ,
    BUGGY_MISDIRECTED_WRITE,
    BUGGY_TORN_WRITE,
    BUGGY_ZOMBIE_WRITE,
    BUGGY_WRONG_RETURN,
    BUGGY_FLIP_FLOP,
    BUGGY_ZEROES_NOOP,
    BUGGY_FLUSH_EARLY,
    BUGGY_FUA_IGNORED,
    BUGGY_WRITE_EARLY,
    BUGGY_WRITEBACK,
};

static const struct {
    const char *name;
    uint64_t every; /* default */
} buggy_modes[] = {
    [BUGGY_NONE] = {"none", 1},
    [BUGGY_LOST_WRITE] = {"lost-write", 3},
    [BUGGY_STALE_READ] = {"stale-read", 2},
    [BUGGY_MISDIRECTED_WRITE] = {"misdirected-write", 3},
    [BUGGY_TORN_WRITE] = {"torn-write", 3},
    [BUGGY_ZOMBIE_WRITE] = {"zombie-write", 1},
    [BUGGY_WRONG_RETURN] = {"wrong-return", 3},
    [BUGGY_FLIP_FLOP] = {"flip-flop", 1},
    [BUGGY_ZEROES_NOOP] = {"zeroes-noop", 1},
    [BUGGY_FLUSH_EARLY] = {"flush-early", 1},
    [BUGGY_FUA_IGNORED] = {"fua-ignored", 1},
    [BUGGY_WRITE_EARLY] = {"write-early", 1},
    [BUGGY_WRITEBACK] = {"writeback", 3},
};

/* The cache holds at most about this much before it writes back unasked. */
#define BUGGY_CACHE_MAX (4u << 20)

/* A set of byte ranges: sorted, disjoint, not touching. */
struct buggy_iv {
    uint64_t start, end;
};
struct buggy_ivs {
    struct buggy_iv *v;
    size_t n, cap;
};

/* A buffer of data the driver holds (cache extents share them; a zombie
 * write's copy), on a list so that a power loss can free them all. */
struct buggy_buf {
    struct buggy_buf *prev, *next;
    unsigned refs;
    unsigned char data[];
};

/* A cache extent: device bytes [off, off+len) hold data (NULL: zeros) from
 * `gen`, the write that put them there (its pieces keep the number). */
struct buggy_ext {
    uint64_t off, len;
    struct buggy_buf *buf;
    unsigned char *data; /* into buf, or NULL */
    uint64_t gen;
    bool dirty;
};

struct buggy_state {
    struct blkv_ctx *ctx;
    struct blkv_child *raw;  /* where every request goes */
    struct blkv_lower *f;    /* raw's lower file: the device, for the history */
    struct blkv_lower *hist; /* lower file 1, for stale-read and flip-flop */
    uint64_t size;
    enum buggy_mode mode;
    uint64_t every, skip, shift;
    uint64_t chances; /* opportunities so far */
    struct buggy_ivs tracked;     /* where hist mirrors the device */
    struct buggy_ivs overwritten; /* where hist holds replaced data */
    struct buggy_ivs seen;        /* read since the last write landed */
    unsigned late;                /* requests completed early, still working */
    struct blkv_co_queue late_done;
    struct buggy_buf *bufs;       /* every buffer held */
    struct buggy_ext *ext;        /* the cache, sorted */
    size_t n_ext, ext_cap;
    uint64_t cached;              /* bytes in the cache */
    uint64_t gen;                 /* writes put in the cache */
    unsigned readers;             /* reads between their lower read and the overlay */
    struct blkv_co_mutex wb_lock; /* one write-back at a time */
    unsigned char *wb_data;       /* its copy of the data it writes */
    size_t wb_cap;
    bool setup;               /* serving a setup request (initial content) */
    bool strike_setup;        /* option setup=on */
};

/* Per request, on its coroutine's stack (req->driver_data). */
struct buggy_req {
    bool in_write; /* waiting for its data write */
    bool zombie;   /* completed by buggy_cancel: the core is done with req */
};

static const struct blkv_option buggy_options[] = {
    {"mode", "none",
     "none, lost-write, stale-read, misdirected-write, torn-write, zombie-write, wrong-return,"
     " flip-flop, zeroes-noop, flush-early, fua-ignored, write-early or writeback (no bug: a"
     " write-back cache)"},
    {"every", NULL,
     "strike at every Nth opportunity (default: per mode; writeback: write back unflushed)"},
    {"skip", "0", "let the first N opportunities pass"},
    {"shift", "4096", "misdirected-write: how far off the write lands"},
    {"setup", "off", "on: the core's initial-content writes are opportunities too"},
    {NULL, NULL, NULL},
};

/* ---- interval sets ------------------------------------------------------- */

/* First interval that ends after `start` (or touches it, if touch). */
static size_t buggy_ivs_find(const struct buggy_ivs *s, uint64_t start, bool touch)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].end < start || (!touch && s->v[mid].end == start))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for one more interval; false on ENOMEM. */
static bool buggy_ivs_reserve(struct buggy_ivs *s)
{
    if (s->n < s->cap)
        return true;
    size_t cap = s->cap ? s->cap * 2 : 16;
    struct buggy_iv *v = realloc(s->v, cap * sizeof(*v));
    if (!v)
        return false;
    s->v = v;
    s->cap = cap;
    return true;
}

static void buggy_ivs_add(struct buggy_ivs *s, uint64_t start, uint64_t end)
{
    size_t i = buggy_ivs_find(s, start, true), j = i;

    while (j < s->n && s->v[j].start <= end)
        j++;
    if (i == j) {
        if (!buggy_ivs_reserve(s))
            return; /* the history just gets less complete */
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
        s->v[i] = (struct buggy_iv){start, end};
        s->n++;
        return;
    }
    if (s->v[i].start < start)
        start = s->v[i].start;
    if (s->v[j - 1].end > end)
        end = s->v[j - 1].end;
    s->v[i] = (struct buggy_iv){start, end};
    memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof(s->v[0]));
    s->n -= j - i - 1;
}

static void buggy_ivs_remove(struct buggy_ivs *s, uint64_t start, uint64_t end)
{
    size_t i = buggy_ivs_find(s, start, false);

    while (i < s->n && s->v[i].start < end) {
        struct buggy_iv *iv = &s->v[i];
        if (iv->start < start && iv->end > end) { /* split in two */
            if (!buggy_ivs_reserve(s))
                return;
            memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
            s->n++;
            s->v[i].end = start;
            s->v[i + 1].start = end;
            return;
        }
        if (iv->start < start) {
            iv->end = start;
            i++;
        } else if (iv->end > end) {
            iv->start = end;
            return;
        } else {
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
            s->n--;
        }
    }
}

/* The part of [start, end) in s from position *pos on: true and the part
 * in [*a, *b), or false when there is no more. */
static bool buggy_ivs_next(const struct buggy_ivs *s, size_t *pos, uint64_t start, uint64_t end,
                           uint64_t *a, uint64_t *b)
{
    size_t i = *pos == 0 ? buggy_ivs_find(s, start, false) : *pos - 1;

    if (i >= s->n || s->v[i].start >= end)
        return false;
    *a = s->v[i].start > start ? s->v[i].start : start;
    *b = s->v[i].end < end ? s->v[i].end : end;
    *pos = i + 2;
    return true;
}

static void buggy_ivs_free(struct buggy_ivs *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- history (stale-read, flip-flop) --------------------------------------- */

static bool buggy_keeps_history(const struct buggy_state *s)
{
    return s->mode == BUGGY_STALE_READ || s->mode == BUGGY_FLIP_FLOP;
}

/* Copy between lower files at once. */
static void buggy_copy(struct blkv_lower *to, uint64_t to_off, const struct blkv_lower *from,
                       uint64_t from_off, uint64_t len)
{
    while (len) {
        uint64_t n = len < sizeof(buggy_copybuf) ? len : sizeof(buggy_copybuf);
        blkv_lower_peek(from, buggy_copybuf, n, from_off);
        blkv_lower_poke(to, buggy_copybuf, n, to_off);
        to_off += n;
        from_off += n;
        len -= n;
    }
}

/* Before a write to [off, off+len) is issued: start mirroring the parts not
 * mirrored yet (nothing has landed there since open, so the device's
 * content is what lower file 0 holds now). */
static void buggy_track(struct buggy_state *s, uint64_t off, uint64_t len)
{
    uint64_t pos = off, end = off + len, a, b;
    size_t it = 0;

    while (pos < end) {
        if (!buggy_ivs_next(&s->tracked, &it, pos, end, &a, &b))
            a = b = end;
        if (a > pos)
            buggy_copy(s->hist, BUGGY_CUR + pos, s->f, pos, a - pos);
        pos = b;
    }
    buggy_ivs_add(&s->tracked, off, end);
}

/* A write to [off, off+len) has just landed (the coroutine resumes at the
 * moment of completion, so nothing else landed since): what the mirror held
 * is what it replaced. */
static void buggy_landed(struct buggy_state *s, uint64_t off, uint64_t len)
{
    buggy_copy(s->hist, off, s->hist, BUGGY_CUR + off, len);
    buggy_copy(s->hist, BUGGY_CUR + off, s->f, off, len);
    buggy_ivs_add(&s->overwritten, off, off + len);
    buggy_ivs_remove(&s->seen, off, off + len);
}

/* Overlay the replaced data onto buf (a read of [off, off+len)) where `where`
 * and `overwritten` meet; NULL where: all of overwritten. */
static void buggy_overlay(struct buggy_state *s, unsigned char *buf, uint64_t off, uint64_t len,
                          const struct buggy_ivs *where)
{
    uint64_t a, b, c, d;
    size_t i = 0, j;

    while (buggy_ivs_next(&s->overwritten, &i, off, off + len, &a, &b)) {
        if (!where) {
            blkv_lower_peek(s->hist, buf + (a - off), b - a, a);
            continue;
        }
        for (j = 0; buggy_ivs_next(where, &j, a, b, &c, &d);)
            blkv_lower_peek(s->hist, buf + (c - off), d - c, c);
    }
}

/* Whether [off, off+len) meets overwritten (and `where`, if not NULL). */
static bool buggy_overlaps(struct buggy_state *s, uint64_t off, uint64_t len,
                           const struct buggy_ivs *where)
{
    uint64_t a, b, c, d;
    size_t i = 0, j = 0;

    while (buggy_ivs_next(&s->overwritten, &i, off, off + len, &a, &b)) {
        if (!where || buggy_ivs_next(where, &j, a, b, &c, &d))
            return true;
        j = 0;
    }
    return false;
}

/* ---- the data path ---------------------------------------------------------- */

/* One opportunity for the bug: whether it strikes now. */
static bool buggy_strike(struct buggy_state *s)
{
    uint64_t n;

    if (s->setup && !s->strike_setup) /* the core's own writes: only when asked */
        return false;
    n = s->chances++;
    return n >= s->skip && (n - s->skip) % s->every == s->every - 1;
}

/* A write (buf) or write-zeroes (buf NULL) to raw for req, keeping the
 * history up to date: raw does it as one lower write, and this coroutine
 * resumes the moment it lands. */
static int buggy_pwrite(struct buggy_state *s, struct blkv_req *req, void *buf, uint64_t len,
                        uint64_t off)
{
    int ret;

    if (buggy_keeps_history(s))
        buggy_track(s, off, len);
    ret = blkv_child_io(s->raw, req, buf ? BLKV_OP_WRITE : BLKV_OP_WRITE_ZEROES, 0, off, len,
                        buf);
    if (ret == 0 && buggy_keeps_history(s))
        buggy_landed(s, off, len);
    return ret;
}

static int buggy_zero(struct buggy_state *s, struct blkv_req *req, uint64_t off, uint64_t len)
{
    while (len) {
        uint64_t n = len < BUGGY_ZERO_CHUNK ? len : BUGGY_ZERO_CHUNK;
        int ret;
        if (blkv_co_cancelled())
            return -ECANCELED;
        if ((ret = buggy_pwrite(s, req, NULL, n, off)) < 0)
            return ret;
        off += n;
        len -= n;
    }
    return 0;
}

/* After the data of a FUA request landed: make it durable, by flushing raw
 * (fua-ignored: not when the bug strikes). */
static int buggy_fua(struct buggy_state *s, struct blkv_req *req)
{
    if (!(req->flags & BLKV_REQ_FUA))
        return 0;
    if (s->mode == BUGGY_FUA_IGNORED && buggy_strike(s))
        return 0;
    return blkv_child_io(s->raw, req, BLKV_OP_FLUSH, 0, 0, 0, NULL);
}

/* ---- held buffers and the cache (writeback, write-early) ------------------------ */

static bool buggy_caches(const struct buggy_state *s)
{
    return s->mode == BUGGY_WRITEBACK || s->mode == BUGGY_WRITE_EARLY;
}

/* A held buffer of len bytes with one reference, or NULL. */
static struct buggy_buf *buggy_buf_new(struct buggy_state *s, uint64_t len)
{
    struct buggy_buf *b = malloc(sizeof(*b) + len);

    if (!b)
        return NULL;
    b->refs = 1;
    b->prev = NULL;
    b->next = s->bufs;
    if (s->bufs)
        s->bufs->prev = b;
    s->bufs = b;
    return b;
}

static void buggy_buf_put(struct buggy_state *s, struct buggy_buf *b)
{
    if (!b || --b->refs)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        s->bufs = b->next;
    if (b->next)
        b->next->prev = b->prev;
    free(b);
}

/* The first cache extent that ends after off. */
static size_t buggy_ext_find(const struct buggy_state *s, uint64_t off)
{
    size_t lo = 0, hi = s->n_ext;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ext[mid].off + s->ext[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for `more` extents; false on ENOMEM. */
static bool buggy_ext_reserve(struct buggy_state *s, size_t more)
{
    size_t cap = s->ext_cap ? s->ext_cap : 16;
    struct buggy_ext *v;

    if (s->n_ext + more <= s->ext_cap)
        return true;
    while (cap < s->n_ext + more)
        cap *= 2;
    if (!(v = realloc(s->ext, cap * sizeof(*v))))
        return false;
    s->ext = v;
    s->ext_cap = cap;
    return true;
}

/* Take [a, b) out of the cache.  It splits at most one extent, so one free
 * slot will do. */
static void buggy_cache_cut(struct buggy_state *s, uint64_t a, uint64_t b)
{
    size_t i = buggy_ext_find(s, a);

    while (i < s->n_ext && s->ext[i].off < b) {
        struct buggy_ext *e = &s->ext[i];
        uint64_t end = e->off + e->len;
        if (e->off < a && end > b) { /* in two, sharing the buffer */
            memmove(e + 1, e, (s->n_ext - i) * sizeof(*e));
            s->n_ext++;
            e->len = a - e->off;
            e[1].off = b;
            e[1].len = end - b;
            if (e[1].data)
                e[1].data += b - e->off;
            if (e->buf)
                e->buf->refs++;
            s->cached -= b - a;
            return;
        }
        if (e->off < a) {
            s->cached -= end - a;
            e->len = a - e->off;
            i++;
        } else if (end > b) {
            s->cached -= b - e->off;
            if (e->data)
                e->data += b - e->off;
            e->len = end - b;
            e->off = b;
            return;
        } else {
            s->cached -= e->len;
            buggy_buf_put(s, e->buf);
            memmove(e, e + 1, (s->n_ext - i - 1) * sizeof(*e));
            s->n_ext--;
        }
    }
}

/* Put data (NULL: zeros) for [off, off+len) in the cache as the newest
 * there, dirty.  0 or -ENOMEM. */
static int buggy_cache_put(struct buggy_state *s, const void *data, uint64_t off, uint64_t len)
{
    struct buggy_buf *b = NULL;
    size_t i;

    if (!buggy_ext_reserve(s, 2))
        return -ENOMEM;
    if (data) {
        if (!(b = buggy_buf_new(s, len)))
            return -ENOMEM;
        memcpy(b->data, data, len);
    }
    buggy_cache_cut(s, off, off + len);
    i = buggy_ext_find(s, off);
    memmove(&s->ext[i + 1], &s->ext[i], (s->n_ext - i) * sizeof(s->ext[0]));
    s->ext[i] = (struct buggy_ext){off, len, b, b ? b->data : NULL, ++s->gen, true};
    s->n_ext++;
    s->cached += len;
    return 0;
}

/* Lay the cache over buf, a read of [off, off+len). */
static void buggy_cache_overlay(const struct buggy_state *s, unsigned char *buf, uint64_t off,
                                uint64_t len)
{
    for (size_t i = buggy_ext_find(s, off); i < s->n_ext && s->ext[i].off < off + len; i++) {
        const struct buggy_ext *e = &s->ext[i];
        uint64_t a = e->off > off ? e->off : off;
        uint64_t b = e->off + e->len < off + len ? e->off + e->len : off + len;
        if (e->data)
            memcpy(buf + (a - off), e->data + (a - e->off), b - a);
        else
            memset(buf + (a - off), 0, b - a);
    }
}

/* Forget the clean extents, unless a read is between its lower read and its
 * overlay: its lower read may have come before their write-back landed. */
static void buggy_cache_purge(struct buggy_state *s)
{
    size_t j = 0;

    if (s->readers)
        return;
    for (size_t i = 0; i < s->n_ext; i++) {
        if (s->ext[i].dirty) {
            s->ext[j++] = s->ext[i];
        } else {
            s->cached -= s->ext[i].len;
            buggy_buf_put(s, s->ext[i].buf);
        }
    }
    s->n_ext = j;
}

/* Write the dirty extents to raw in offset order, then flush raw if asked,
 * on behalf of req (NULL: no request).  One write-back at a time, so that
 * two of the same bytes never land out of order.  What a failure (or a
 * cancel) leaves unwritten stays dirty. */
static int buggy_cache_writeback(struct buggy_state *s, struct blkv_req *req, bool flush)
{
    uint64_t pos = 0;
    int ret = 0;

    blkv_co_mutex_lock(&s->wb_lock);
    for (;;) {
        size_t i = buggy_ext_find(s, pos);
        struct buggy_ext e;
        while (i < s->n_ext && !s->ext[i].dirty)
            i++;
        if (i == s->n_ext)
            break;
        e = s->ext[i];
        if (e.data) {
            /* the extent may be cut or freed while its write is in flight */
            if (e.len > s->wb_cap) {
                unsigned char *p = realloc(s->wb_data, e.len);
                if (!p) {
                    ret = -ENOMEM;
                    break;
                }
                s->wb_data = p;
                s->wb_cap = e.len;
            }
            memcpy(s->wb_data, e.data, e.len);
            ret = blkv_child_io(s->raw, req, BLKV_OP_WRITE, 0, e.off, e.len, s->wb_data);
        } else {
            ret = buggy_zero(s, req, e.off, e.len);
        }
        if (ret < 0)
            break;
        /* what is left of it (newer writes may have cut it) is on raw now */
        for (i = buggy_ext_find(s, e.off); i < s->n_ext && s->ext[i].off < e.off + e.len; i++)
            if (s->ext[i].gen == e.gen)
                s->ext[i].dirty = false;
        pos = e.off + e.len;
    }
    if (!ret && flush)
        ret = blkv_child_io(s->raw, req, BLKV_OP_FLUSH, 0, 0, 0, NULL);
    buggy_cache_purge(s);
    blkv_co_mutex_unlock(&s->wb_lock);
    return ret;
}

/* A read in writeback or write-early mode: raw's data under the cache. */
static int buggy_cache_read(struct buggy_state *s, struct blkv_req *req)
{
    int ret;

    s->readers++;
    ret = blkv_child_io(s->raw, req, BLKV_OP_READ, 0, req->offset, req->len, req->buf);
    if (ret == 0)
        buggy_cache_overlay(s, req->buf, req->offset, req->len);
    s->readers--;
    buggy_cache_purge(s);
    return ret;
}

/* A write, write-zeroes or discard (zeros) in writeback or write-early
 * mode: into the cache, then down as the mode says. */
static int buggy_cache_write(struct buggy_state *s, struct blkv_req *req)
{
    bool fua = req->flags & BLKV_REQ_FUA, strike;
    int ret;

    ret = buggy_cache_put(s, req->op == BLKV_OP_WRITE ? req->buf : NULL, req->offset, req->len);
    if (ret < 0)
        return ret;
    /* The core's initial-content writes go straight down: the core takes the
     * lower file as the durable device once they are done, and sends no
     * flush after them. */
    if (s->setup)
        return buggy_cache_writeback(s, req, false);
    strike = buggy_strike(s);
    if (s->mode == BUGGY_WRITEBACK) {
        if (fua)
            return buggy_cache_writeback(s, req, true);
        if (strike || s->cached > BUGGY_CACHE_MAX)
            buggy_cache_writeback(s, req, false); /* a failure is the next flush's to report */
        return 0;
    }
    if (!strike) /* write-early, this time written through */
        return buggy_cache_writeback(s, req, fua);
    /* Done, says write-early, with the data (even FUA data) only in memory. */
    s->late++;
    blkv_complete(req, 0);
    /* req is the core's again: what follows is on behalf of no request */
    buggy_cache_writeback(s, NULL, fua);
    s->late--;
    blkv_co_queue_wake_all(&s->late_done);
    return 0;
}

/* ---- requests ------------------------------------------------------------------- */

static int buggy_read(struct buggy_state *s, struct blkv_req *req)
{
    int ret;

    if (buggy_caches(s))
        return buggy_cache_read(s, req);
    if ((ret = blkv_child_io(s->raw, req, BLKV_OP_READ, 0, req->offset, req->len, req->buf)) < 0)
        return ret;
    switch (s->mode) {
    case BUGGY_STALE_READ:
        if (buggy_overlaps(s, req->offset, req->len, NULL) && buggy_strike(s))
            buggy_overlay(s, req->buf, req->offset, req->len, NULL);
        break;
    case BUGGY_FLIP_FLOP:
        if (buggy_overlaps(s, req->offset, req->len, &s->seen) && buggy_strike(s))
            buggy_overlay(s, req->buf, req->offset, req->len, &s->seen);
        buggy_ivs_add(&s->seen, req->offset, req->offset + req->len);
        break;
    case BUGGY_WRONG_RETURN:
        if (buggy_strike(s))
            return -EIO;
        break;
    default:
        break;
    }
    return 0;
}

/* A write in zombie-write mode: from a copy of the data that the driver
 * holds, since a zombie outlives the request and its buffer. */
static int buggy_zombie_write(struct buggy_state *s, struct blkv_req *req)
{
    struct buggy_req br = {.in_write = true};
    struct buggy_buf *copy = buggy_buf_new(s, req->len);
    int ret;

    if (!copy)
        return -ENOMEM;
    memcpy(copy->data, req->buf, req->len);
    req->driver_data = &br;
    ret = blkv_child_io(s->raw, req, BLKV_OP_WRITE, 0, req->offset, req->len, copy->data);
    buggy_buf_put(s, copy);
    if (br.zombie) {
        /* req is completed: don't touch it; the core ignores our return */
        s->late--;
        blkv_co_queue_wake_all(&s->late_done);
        return ret;
    }
    req->driver_data = NULL;
    if (!ret)
        ret = buggy_fua(s, req);
    return ret;
}

static int buggy_write(struct buggy_state *s, struct blkv_req *req)
{
    uint64_t off = req->offset, len = req->len;
    int ret;

    switch (s->mode) {
    case BUGGY_LOST_WRITE:
        if (buggy_strike(s))
            return 0;
        break;
    case BUGGY_MISDIRECTED_WRITE:
        if (off + len + s->shift <= s->size) {
            if (buggy_strike(s))
                off += s->shift;
        } else if (off >= s->shift) {
            if (buggy_strike(s))
                off -= s->shift;
        }
        break;
    case BUGGY_TORN_WRITE:
        if (len >= 2 && buggy_strike(s))
            len /= 2;
        break;
    case BUGGY_ZOMBIE_WRITE:
        return buggy_zombie_write(s, req);
    default:
        break;
    }
    ret = buggy_pwrite(s, req, req->buf, len, off);
    if (!ret)
        ret = buggy_fua(s, req);
    if (!ret && s->mode == BUGGY_WRONG_RETURN && buggy_strike(s))
        ret = -EIO;
    return ret;
}

static int buggy_co_submit(void *state, struct blkv_req *req)
{
    struct buggy_state *s = state;
    int ret;

    /* setup requests run one at a time before any op, so a flag will do */
    s->setup = req->id == BLKV_REQ_ID_SETUP;

    switch (req->op) {
    case BLKV_OP_READ:
        return buggy_read(s, req);
    case BLKV_OP_WRITE:
        if (buggy_caches(s))
            return buggy_cache_write(s, req);
        return buggy_write(s, req);
    case BLKV_OP_WRITE_ZEROES:
        if (s->mode == BUGGY_ZEROES_NOOP && buggy_strike(s))
            return 0;
        /* fall through */
    case BLKV_OP_DISCARD:
        if (buggy_caches(s))
            return buggy_cache_write(s, req);
        ret = buggy_zero(s, req, req->offset, req->len);
        if (!ret)
            ret = buggy_fua(s, req);
        return ret;
    case BLKV_OP_FLUSH:
        if (s->mode == BUGGY_FLUSH_EARLY && buggy_strike(s))
            return 0; /* done, without a word to raw */
        if (s->mode == BUGGY_WRITEBACK)
            return buggy_cache_writeback(s, req, true);
        /* write-early: raw flushes what reached it, not what is still on its way */
        return blkv_child_submit(s->raw, req);
    }
    return -EINVAL;
}

static void buggy_cancel(void *state, struct blkv_req *req)
{
    struct buggy_state *s = state;
    struct buggy_req *br = req->driver_data;

    if (s->mode == BUGGY_ZOMBIE_WRITE && br && br->in_write && !br->zombie &&
        buggy_strike(s)) {
        /* Report the write cancelled, but leave its lower write pending. */
        br->zombie = true;
        s->late++;
        blkv_complete(req, -ECANCELED);
        return;
    }
    blkv_child_cancel(s->raw, req);
}

/* ---- open, close, check ------------------------------------------------------ */

/* Free what the state holds (no I/O); it may be zeroed or released already. */
static void buggy_release(struct buggy_state *s)
{
    buggy_ivs_free(&s->tracked);
    buggy_ivs_free(&s->overwritten);
    buggy_ivs_free(&s->seen);
    while (s->bufs) {
        struct buggy_buf *b = s->bufs;
        s->bufs = b->next;
        free(b);
    }
    free(s->ext);
    s->ext = NULL;
    s->n_ext = s->ext_cap = 0;
    s->cached = 0;
    free(s->wb_data);
    s->wb_data = NULL;
    s->wb_cap = 0;
}

static int buggy_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                      struct blkv_caps *caps)
{
    struct buggy_state *s = state;
    const char *mode = blkv_opt(ctx, "mode");
    size_t m;
    int ret;

    buggy_release(s); /* the state is zeroed or closed */
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    for (m = 0; m < sizeof(buggy_modes) / sizeof(buggy_modes[0]); m++)
        if (mode && !strcmp(mode, buggy_modes[m].name))
            break;
    if (m == sizeof(buggy_modes) / sizeof(buggy_modes[0])) {
        blkv_error(ctx, "mode=%s: unknown mode", mode ? mode : "");
        return -EINVAL;
    }
    s->mode = (enum buggy_mode)m;
    if (blkv_opt_u64(ctx, "every", &s->every) < 0 || blkv_opt_u64(ctx, "skip", &s->skip) < 0 ||
        blkv_opt_u64(ctx, "shift", &s->shift) < 0)
        return -EINVAL;
    if (s->every == 0)
        s->every = buggy_modes[m].every;
    {
        const char *v = blkv_opt(ctx, "setup");
        if (strcmp(v, "on") && strcmp(v, "off")) {
            blkv_error(ctx, "setup=%s: on or off", v);
            return -EINVAL;
        }
        s->strike_setup = !strcmp(v, "on");
    }
    if (s->shift == 0 || s->shift > BLKV_MAX_DEVICE_SIZE) {
        blkv_error(ctx, "shift=%llu: must be 1 .. 8T", (unsigned long long)s->shift);
        return -EINVAL;
    }
    s->f = blkv_lower_get(ctx, 0);
    s->hist = blkv_lower_get(ctx, 1);
    if (!s->f || (buggy_keeps_history(s) && !s->hist)) {
        blkv_error(ctx, "no lower file");
        return -ENODEV;
    }
    /* raw's defaults: alignment 1, discard zeroes, write-zeroes, FUA, cancel */
    if ((ret = blkv_child_open(ctx, &blkv_driver_raw, "", size, create, caps, &s->raw)) < 0)
        return ret;
    s->size = caps->size;
    return 0;
}

static void buggy_close(void *state)
{
    struct buggy_state *s = state;

    /* zombie and early writes are done with their requests, but must land first */
    while (s->late)
        blkv_co_queue_wait(&s->late_done);
    if (buggy_caches(s))
        buggy_cache_writeback(s, NULL, false); /* nothing to report a failure to */
    blkv_child_close(s->raw); /* raw flushes */
    s->raw = NULL;
    buggy_release(s);
}

/* After a power loss: the history and the cache go (raw, the child, the
 * core releases); so do the coroutines that still used them. */
static void buggy_drv_release(void *state)
{
    buggy_release(state);
}

static int buggy_check(void *state)
{
    struct buggy_state *s = state;
    return blkv_child_check(s->raw);
}

const struct blkv_driver blkv_driver_buggy = {
    BLKV_DRIVER_HEADER,
    .name = "buggy",
    .description = "raw with one deliberate bug (mode=...), for the self-tests",
    .options = buggy_options,
    .state_size = sizeof(struct buggy_state),
    .in_process = true,
    .open = buggy_open,
    .close = buggy_close,
    .co_submit = buggy_co_submit,
    .cancel = buggy_cancel,
    .check = buggy_check,
    .release = buggy_drv_release,
};
