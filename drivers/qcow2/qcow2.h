/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2.h - shared declarations of the qcow2 driver (drivers/qcow2/).
 *
 * One image is one struct qcow2_state: the parsed header, the L1 and
 * refcount tables held in memory, bounded caches of L2 tables and refcount
 * blocks, and the bookkeeping of requests in flight.  The driver's state is
 * the top image; a qcow2 backing file is a second, read-only qcow2_state.
 *
 * Concurrency (every lower I/O yields to the scheduler):
 *  - `lock` (a coroutine mutex) guards all metadata: the header fields, L1,
 *    the refcount table, both caches and the allocator.  It is held across
 *    metadata I/O and released around guest data I/O.
 *  - Requests that change guest data (write, write-zeroes, discard) first
 *    take a range lock over the guest clusters they touch, so two requests
 *    never allocate, copy-on-write or unmap the same cluster at once.
 *  - Every data read of a host cluster registers the host range while the
 *    read is pending; a cluster whose refcount is about to drop waits until
 *    no such read overlaps it, so freed clusters are never reused under a
 *    read still in flight.
 *  - Metadata is written through before the lock is released; a failed
 *    metadata write is undone in memory, so memory and the lower file agree
 *    whenever the lock is free (with lazy refcounts, refcount blocks are the
 *    exception: they stay dirty in the cache and the image is marked dirty).
 *  - Ordering: a cluster's refcount is raised before the data is written,
 *    the data before the L2 entry that maps it, a new L2 table before the
 *    L1 entry that points to it; refcounts drop only after the entries that
 *    referenced the cluster are written.
 */
#ifndef BLKV_QCOW2_H
#define BLKV_QCOW2_H

#include <blkv/driver.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (UINT64_C(32) << 20)   /* as QEMU */
#define QCOW2_MAX_RT_BYTES (UINT64_C(8) << 20)    /* as QEMU */
#define QCOW2_MAX_HOST_OFFSET (UINT64_C(1) << 56) /* L1/L2 offsets have 56 bits */
#define QCOW2_MAX_CACHE 64                        /* tables per cache */
#define QCOW2_MAX_CACHE_BYTES (UINT64_C(64) << 20)
#define QCOW2_MAX_CHECK_CLUSTERS (UINT64_C(1) << 26) /* check: bounded memory */

/* Header fields at fixed offsets. */
#define QCOW2_HDR_RT_OFFSET 48
#define QCOW2_HDR_INCOMPAT 72
#define QCOW2_HDR_AUTOCLEAR 88
#define QCOW2_HDR_V3_LEN 104

/* Feature bits. */
#define QCOW2_INCOMPAT_DIRTY UINT64_C(0x1)
#define QCOW2_INCOMPAT_CORRUPT UINT64_C(0x2)
#define QCOW2_INCOMPAT_DATA_FILE UINT64_C(0x4)
#define QCOW2_INCOMPAT_COMPRESSION UINT64_C(0x8)
#define QCOW2_INCOMPAT_EXTL2 UINT64_C(0x10)
#define QCOW2_COMPAT_LAZY UINT64_C(0x1)

/* Header extension types. */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* L1 and L2 entries. */
#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_OFLAG_ZERO UINT64_C(1)
#define QCOW2_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QCOW2_L1_RESERVED UINT64_C(0x7f000000000001ff)
#define QCOW2_L2_RESERVED UINT64_C(0x3f000000000001fe)
#define QCOW2_RT_RESERVED UINT64_C(0x1ff)

/* What an L2 entry says about its guest cluster. */
enum qcow2_ctype {
    QCOW2_UNALLOC,    /* reads from the backing file, or zeros */
    QCOW2_ZERO_PLAIN, /* zero flag, no host cluster */
    QCOW2_ZERO_ALLOC, /* zero flag over a preallocated host cluster */
    QCOW2_NORMAL,     /* data in a host cluster */
    QCOW2_COMPRESSED, /* zlib data somewhere in the file */
};

enum qcow2_backing {
    QCOW2_BACKING_NONE,
    QCOW2_BACKING_RAW,
    QCOW2_BACKING_QCOW2,
};

struct qcow2_cache_entry {
    uint64_t offset; /* host offset of the table; 0: unused slot */
    uint8_t *data;   /* one cluster, on-disk (big-endian) layout */
    uint64_t lru;
    unsigned pins;
    bool dirty;      /* lazy refcounts only: not yet written */
};

struct qcow2_cache {
    struct qcow2_cache_entry *e;
    unsigned n;
    size_t size; /* of a table */
    uint64_t tick;
};

/* An in-flight range (guest clusters, or host bytes), linked on the stack
 * of the coroutine that owns it. */
struct qcow2_range {
    uint64_t start, end; /* [start, end) */
    struct qcow2_range *next;
};

struct qcow2_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *file;
    bool read_only;

    /* header */
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint64_t size;
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint64_t incompat, compat, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;

    /* derived */
    uint32_t l2_bits;       /* log2 of entries per L2 table */
    uint64_t l2_entries;
    uint32_t rb_bits;       /* log2 of entries per refcount block */
    uint64_t rb_entries;
    uint32_t refcount_bits;
    uint64_t refcount_max;
    uint32_t csize_shift;   /* compressed descriptor: sector count field */
    uint64_t csize_mask;
    uint64_t coffset_mask;

    /* tables */
    uint64_t *l1;           /* host byte order */
    uint64_t l1_used;       /* entries from here on are 0 (a bound for scans) */
    uint64_t *rt;           /* host byte order */
    uint64_t rt_size;       /* entries */
    uint64_t rt_used;       /* entries from here on are 0 (a bound for scans) */
    struct qcow2_cache l2c, rbc;
    struct blkv_co_mutex lock;
    uint64_t free_hint;     /* no free cluster below this index */
    uint64_t alloc_end;     /* no cluster at or above this index is in use */
    bool lazy;              /* lazy refcounts in use */
    bool dirty_marked;      /* the dirty bit is set on disk */

    /* backing file */
    bool has_backing;         /* the header names one */
    char backing_fmt[32];     /* from the backing format extension, or "" */
    char backing_name[256];   /* as the header gives it (cut to fit) */
    enum qcow2_backing backing;
    struct blkv_lower *bfile;
    uint64_t backing_size;
    struct qcow2_state *bimg; /* qcow2 backing: its own image state */

    uint64_t check_leaks;   /* clusters the last check found leaked */

    /* requests in flight */
    struct qcow2_range *ranges;  /* guest clusters being changed */
    struct blkv_co_queue range_q;
    struct qcow2_range *readers; /* host bytes being read */
    struct blkv_co_queue reader_q;
};

/* ---- byte order ---------------------------------------------------------- */

static inline uint64_t qcow2_be64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t qcow2_be32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline void qcow2_put_be64(void *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline void qcow2_put_be32(void *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

static inline uint64_t qcow2_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t qcow2_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Whether host bytes [off, off+len) overlap the header cluster, the L1
 * table or the refcount table (a corrupt image may point data there). */
static inline bool qcow2_fixed_meta(const struct qcow2_state *s, uint64_t off, uint64_t len)
{
    uint64_t l1_end = s->l1_offset + (uint64_t)s->l1_size * 8;
    uint64_t rt_end = s->rt_offset + ((uint64_t)s->rt_clusters << s->cluster_bits);
    return off < s->cluster_size || (off < l1_end && s->l1_offset < off + len) ||
           (off < rt_end && s->rt_offset < off + len);
}

/* Marks a path for `fuzz/coverage -p`, which reports it as reached or not
 * from the count of its line (which says "probe: NAME") in a source-based
 * coverage build.  It does nothing. */
#define QCOW2_PROBE() ((void)0)

/* ---- header.c: image create, open, header updates ---------------------------- */

struct qcow2_create_opts {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    bool lazy;
    enum qcow2_backing backing; /* only recorded in the header */
    uint32_t l1_size;           /* L1 entries; 0: what the size needs */
};

/* Write a new empty image of `size` bytes into s->file. */
int qcow2_create(struct qcow2_state *s, uint64_t size, const struct qcow2_create_opts *o);
/* Parse and validate the header in s->file, load L1 and the refcount
 * table, set up caches (l2n / rbn tables).  s->ctx and s->file are set. */
int qcow2_open_image(struct qcow2_state *s, unsigned l2n, unsigned rbn);
/* Raise alloc_end to the last cluster the last refcount block counts. */
int qcow2_alloc_end_refcounts(struct qcow2_state *s);
/* Release everything open_image allocated (no I/O). */
void qcow2_free_image(struct qcow2_state *s);
/* Write back dirty metadata (lock held). */
int qcow2_flush_meta(struct qcow2_state *s);
/* Set (lazy refcounts) or clear the dirty bit on disk (lock held). */
int qcow2_set_dirty(struct qcow2_state *s, bool dirty);

/* A write barrier: everything written so far is durable before anything
 * written after (a lower flush).  The image survives a power loss because
 * of these: new clusters are referenced only after their refcounts and
 * content are durable, and clusters are freed only after what referenced
 * them is durably gone (as QEMU orders its caches). */
static inline int qcow2_barrier(struct qcow2_state *s)
{
    blkv_lower_event(s->file, BLKV_EV_FLUSH);
    return blkv_lower_flush(s->file);
}

/* Before a mapping changes: with lazy refcounts, the dirty bit is durable
 * first, so that a crash leaving refcounts behind the mappings (a cluster
 * unmapped or mapped before its refcount is) makes the next open rebuild
 * them.  Declared in header.c. */
int qcow2_set_dirty(struct qcow2_state *s, bool dirty);
static inline int qcow2_mapping_change(struct qcow2_state *s)
{
    return s->lazy && !s->dirty_marked ? qcow2_set_dirty(s, true) : 0;
}

/* ---- cache.c -------------------------------------------------------------------- */

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint64_t cluster_size);
void qcow2_cache_destroy(struct qcow2_cache *c);
/* The table at host offset `off`, pinned: loaded from the file, or (load
 * false) a zeroed slot for a new table.  Evicts the least recently used
 * unpinned entry, writing it back first if dirty. */
int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, bool load,
                    struct qcow2_cache_entry **out);
void qcow2_cache_put(struct qcow2_cache_entry *e);
/* Forget the table at off (its content is no longer valid). */
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off);
/* Write back every dirty entry. */
int qcow2_cache_flush(struct qcow2_state *s, struct qcow2_cache *c);

/* ---- refcount.c ----------------------------------------------------------------- */

uint64_t qcow2_rc_read(const struct qcow2_state *s, const uint8_t *blk, uint64_t i);
void qcow2_rc_write(const struct qcow2_state *s, uint8_t *blk, uint64_t i, uint64_t v);
/* Refcount of host cluster `c` (lock held). */
int qcow2_refcount_get(struct qcow2_state *s, uint64_t c, uint64_t *rc);
/* Add delta to the refcounts of clusters [first, first+n) (lock held). */
int qcow2_refcount_update(struct qcow2_state *s, uint64_t first, uint64_t n, int delta);
/* Allocate 1 to n contiguous clusters with refcount 1: *first gets the
 * index of the first, *got how many. */
int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t n, uint64_t *first, uint64_t *got);
/* Drop one reference to the clusters covering host bytes [off, off+len),
 * after reads in flight over them have finished. */
int qcow2_free_bytes(struct qcow2_state *s, uint64_t off, uint64_t len);

/* ---- cluster.c ------------------------------------------------------------------ */

enum qcow2_ctype qcow2_entry_type(const struct qcow2_state *s, uint64_t e);
/* Host byte range of a compressed entry. */
void qcow2_compressed_range(const struct qcow2_state *s, uint64_t e, uint64_t *off,
                            uint64_t *len);
/* What is wrong with an L2 entry, or NULL. */
const char *qcow2_entry_problem(const struct qcow2_state *s, uint64_t e);
/* Whether an L2 entry is well-formed (else a message is recorded). */
bool qcow2_entry_valid(struct qcow2_state *s, uint64_t e);
/* Copy up to n L2 entries of guest clusters from gc, within one L2 table,
 * into out (lock held); returns the count, or a negative errno. */
int qcow2_get_entries(struct qcow2_state *s, uint64_t gc, uint64_t n, uint64_t *out);
/* Make the L2 table of guest cluster gc exist and be writable (lock held). */
int qcow2_l2_prepare(struct qcow2_state *s, uint64_t gc);
/* Set n L2 entries from gc (one table) and write them; the old ones go to
 * old[].  On failure nothing changed (lock held). */
int qcow2_l2_set(struct qcow2_state *s, uint64_t gc, uint64_t n, const uint64_t *entries,
                 uint64_t *old);
/* Whether freeing the old entries (each unless keep[i], if keep, has its
 * host offset) would free anything. */
bool qcow2_frees_any(const struct qcow2_state *s, const uint64_t *old, uint64_t n,
                     const uint64_t *keep);
/* Drop the host clusters an old entry referenced, unless `keep` is its
 * host offset (lock held). */
int qcow2_free_entry(struct qcow2_state *s, uint64_t e, uint64_t keep);

/* ---- io.c ------------------------------------------------------------------------ */

int qcow2_co_read(struct qcow2_state *s, uint64_t off, uint64_t len, uint8_t *buf);
/* Write buf (NULL: zeros) at guest [off, off+len); range lock held. */
int qcow2_co_write(struct qcow2_state *s, uint64_t off, uint64_t len, const uint8_t *buf);
/* Write-zeroes (unmap: may deallocate) or discard; range lock held. */
int qcow2_co_zero(struct qcow2_state *s, uint64_t off, uint64_t len, bool unmap);
/* Take / release the range lock over the guest clusters of [off, off+len). */
void qcow2_range_lock(struct qcow2_state *s, struct qcow2_range *r, uint64_t off, uint64_t len);
void qcow2_range_unlock(struct qcow2_state *s, struct qcow2_range *r);
/* Wait until no read in flight overlaps host bytes [off, off+len). */
void qcow2_wait_readers(struct qcow2_state *s, uint64_t off, uint64_t len);

/* ---- check.c -------------------------------------------------------------------- */

/* Consistency check; fix: rebuild refcounts from the mappings (repair of a
 * dirty image).  Returns 0 or -EUCLEAN with a message (lock held). */
int qcow2_check_image(struct qcow2_state *s, bool fix);

/* The driver's options (qcow2.c); the libqcow driver takes the same. */
extern const struct blkv_option blkv_qcow2_options[];

/* Table scans (header.c).  Kept out of line and out of the fuzzers' coverage
 * (fuzz/coverage-ignore.txt): they run over whole tables on every open and
 * check, and only the entries they lead to matter. */
/* Index of the first nonzero 8-byte entry of t[i..n), or n. */
uint64_t qcow2_next_used(const void *t, uint64_t i, uint64_t n);
/* dst[i] = the big-endian entry i of src, for i < n. */
/* ...and returns one past the last entry that is not zero. */
uint64_t qcow2_load_be64s(uint64_t *dst, const uint8_t *src, uint64_t n);
/* A zeroed table of n > 0 entries (NULL on ENOMEM), and its release. */
uint64_t *qcow2_table_new(uint64_t n);
void qcow2_table_free(uint64_t *t, uint64_t n);

#endif
