/* SPDX-License-Identifier: BSD-3-Clause */
/* store.c - the sparse page store (see store.h). */
#include "runtime/store.h"
#include "runtime/bufpool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct blkv_store_page {
    struct blkv_store_page *next;
    uint64_t pgno;
    unsigned char data[BLKV_STORE_PAGE];
};

/* Pages come from chunks (one malloc for PAGE_CHUNK pages), and freed pages
 * go to a free list: a large write is one lookup per page, not one malloc. */
#define PAGE_CHUNK 15 /* a chunk stays under ASan's 128 KiB primary size classes */
struct blkv_store_chunk {
    struct blkv_store_chunk *next;
    unsigned used;
    struct blkv_store_page pages[PAGE_CHUNK];
};

void blkv_store_init(struct blkv_store *s, uint64_t *held)
{
    memset(s, 0, sizeof(*s));
    s->held = held;
}


static size_t page_hash(const struct blkv_store *f, uint64_t pgno)
{
    return (size_t)((pgno * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (f->nbuckets - 1);
}

static struct blkv_store_page *page_find(const struct blkv_store *f, uint64_t pgno)
{
    struct blkv_store_page *p;
    if (!f->nbuckets)
        return NULL;
    for (p = f->buckets[page_hash(f, pgno)]; p; p = p->next)
        if (p->pgno == pgno)
            return p;
    return NULL;
}

/* Double the bucket array; false on ENOMEM (the table still works). */
static bool page_grow(struct blkv_store *f)
{
    size_t n = f->nbuckets ? f->nbuckets * 2 : 64;
    struct blkv_store_page **nb = calloc(n, sizeof(*nb));
    struct blkv_store_page **old = f->buckets;
    size_t oldn = f->nbuckets;

    if (!nb)
        return false;
    f->buckets = nb;
    f->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        struct blkv_store_page *p = old[i], *next;
        for (; p; p = next) {
            size_t h = page_hash(f, p->pgno);
            next = p->next;
            p->next = nb[h];
            nb[h] = p;
        }
    }
    free(old);
    return true;
}

/* Chunks of cleared stores, kept for the next run's: fresh memory
 * costs a page fault per page (and under ASan, which holds freed memory in
 * quarantine, every allocation is fresh).  Per thread, bounded, and, as
 * the buffer pool does, trimmed every BLKV_BUF_WINDOW_RUNS runs to the most
 * chunks that were out at once in that window. */
#define CHUNK_CACHE_MAX ((64u << 20) / sizeof(struct blkv_store_chunk))
static _Thread_local struct blkv_store_chunk *chunk_cache;
static _Thread_local size_t chunk_cache_n, chunk_out, chunk_peak;
static _Thread_local uint64_t chunk_runs;

static struct blkv_store_chunk *chunk_new(void)
{
    struct blkv_store_chunk *c = chunk_cache;
    if (c) {
        chunk_cache = c->next;
        chunk_cache_n--;
    } else if (!(c = malloc(sizeof(*c)))) {
        return NULL;
    }
    if (++chunk_out > chunk_peak)
        chunk_peak = chunk_out;
    c->used = 0;
    return c;
}

static void chunk_drop(struct blkv_store_chunk *c)
{
    chunk_out--;
    if (chunk_cache_n >= CHUNK_CACHE_MAX) {
        free(c);
        return;
    }
    c->next = chunk_cache;
    chunk_cache = c;
    chunk_cache_n++;
}

void blkv_store_run_end(void)
{
    size_t keep;

    if (++chunk_runs % BLKV_BUF_WINDOW_RUNS)
        return;
    keep = chunk_peak > chunk_out ? chunk_peak - chunk_out : 0;
    while (chunk_cache_n > keep) {
        struct blkv_store_chunk *c = chunk_cache;
        chunk_cache = c->next;
        chunk_cache_n--;
        free(c);
    }
    chunk_peak = chunk_out;
}

size_t blkv_store_cached(void)
{
    return chunk_cache_n * sizeof(struct blkv_store_chunk);
}

/* Return a page to the free list. */
static void page_release(struct blkv_store *f, struct blkv_store_page *p)
{
    p->next = f->free_pages;
    f->free_pages = p;
}

/* A new page, zeroed unless the caller overwrites all of it; NULL on ENOMEM. */
static struct blkv_store_page *page_add(struct blkv_store *f, uint64_t pgno, bool zero)
{
    struct blkv_store_page *p;
    size_t h;

    if (f->npages >= f->nbuckets && !page_grow(f) && !f->nbuckets)
        return NULL;
    if (f->free_pages) {
        p = f->free_pages;
        f->free_pages = p->next;
    } else {
        struct blkv_store_chunk *c = f->chunks;
        if (!c || c->used == PAGE_CHUNK) {
            if (!(c = chunk_new()))
                return NULL;
            c->next = f->chunks;
            f->chunks = c;
        }
        p = &c->pages[c->used++];
    }
    if (zero)
        memset(p->data, 0, BLKV_STORE_PAGE);
    p->pgno = pgno;
    h = page_hash(f, pgno);
    p->next = f->buckets[h];
    f->buckets[h] = p;
    f->npages++;
    *f->held += BLKV_STORE_PAGE;
    return p;
}

static void page_remove(struct blkv_store *f, uint64_t pgno)
{
    struct blkv_store_page **pp;
    if (!f->nbuckets)
        return;
    for (pp = &f->buckets[page_hash(f, pgno)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->pgno == pgno) {
            struct blkv_store_page *p = *pp;
            *pp = p->next;
            page_release(f, p);
            f->npages--;
            *f->held -= BLKV_STORE_PAGE;
            return;
        }
    }
}

void blkv_store_clear(struct blkv_store *f)
{
    while (f->chunks) {
        struct blkv_store_chunk *c = f->chunks;
        f->chunks = c->next;
        chunk_drop(c);
    }
    f->free_pages = NULL;
    *f->held -= (uint64_t)f->npages * BLKV_STORE_PAGE;
    free(f->buckets);
    f->buckets = NULL;
    f->nbuckets = 0;
    f->npages = 0;
}


static bool all_zero(const unsigned char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

void blkv_store_read(const struct blkv_store *f, void *buf, uint64_t len, uint64_t off)
{
    unsigned char *b = buf;
    while (len) {
        uint64_t pgno = off / BLKV_STORE_PAGE;
        size_t in = (size_t)(off % BLKV_STORE_PAGE);
        size_t n = BLKV_STORE_PAGE - in < len ? BLKV_STORE_PAGE - in : (size_t)len;
        const struct blkv_store_page *p = page_find(f, pgno);
        if (p)
            memcpy(b, p->data + in, n);
        else
            memset(b, 0, n);
        b += n;
        off += n;
        len -= n;
    }
}

/* Bytes of new pages a write of buf at off would allocate. */
static uint64_t store_write_cost(const struct blkv_store *f, const void *buf, uint64_t len,
                                 uint64_t off)
{
    const unsigned char *b = buf;
    uint64_t cost = 0;
    while (len) {
        size_t in = (size_t)(off % BLKV_STORE_PAGE);
        size_t n = BLKV_STORE_PAGE - in < len ? BLKV_STORE_PAGE - in : (size_t)len;
        if (b && !page_find(f, off / BLKV_STORE_PAGE) && !all_zero(b, n))
            cost += BLKV_STORE_PAGE;
        if (b)
            b += n;
        off += n;
        len -= n;
    }
    return cost;
}

/* Whether a write of buf at off fits under the cap: at once when even one
 * new page per page spanned would, else by counting the new pages. */
bool blkv_store_write_fits(const struct blkv_store *f, const void *buf, uint64_t len,
                           uint64_t off, uint64_t cap)
{
    uint64_t span = (off + len + BLKV_STORE_PAGE - 1) / BLKV_STORE_PAGE - off / BLKV_STORE_PAGE;
    uint64_t held = *f->held;
    if (held <= cap && span <= (cap - held) / BLKV_STORE_PAGE)
        return true;
    return held + store_write_cost(f, buf, len, off) <= cap;
}

/* Write buf (NULL: zeros) at off, extending the size; zeros into holes
 * allocate nothing and whole pages of zeros are freed.  0 or -ENOMEM
 * (partly written). */
int blkv_store_write(struct blkv_store *f, const void *buf, uint64_t len, uint64_t off)
{
    const unsigned char *b = buf;
    uint64_t end = off + len;

    while (len) {
        uint64_t pgno = off / BLKV_STORE_PAGE;
        size_t in = (size_t)(off % BLKV_STORE_PAGE);
        size_t n = BLKV_STORE_PAGE - in < len ? BLKV_STORE_PAGE - in : (size_t)len;
        struct blkv_store_page *p = page_find(f, pgno);
        bool zero = !b || all_zero(b, n);

        if (zero && n == BLKV_STORE_PAGE) {
            if (p)
                page_remove(f, pgno);
        } else if (p || !zero) {
            if (!p && !(p = page_add(f, pgno, n < BLKV_STORE_PAGE)))
                return -ENOMEM;
            if (b)
                memcpy(p->data + in, b, n);
            else
                memset(p->data + in, 0, n);
        }
        if (b)
            b += n;
        off += n;
        len -= n;
    }
    if (end > f->size)
        f->size = end;
    return 0;
}

/* Set the size; shrinking drops the pages past the end and zeroes the tail
 * of the last one, so that growing again reads zeros. */
void blkv_store_truncate(struct blkv_store *f, uint64_t size)
{
    if (size < f->size) {
        uint64_t first = (size + BLKV_STORE_PAGE - 1) / BLKV_STORE_PAGE;
        struct blkv_store_page *p;

        for (size_t i = 0; i < f->nbuckets; i++) {
            struct blkv_store_page **pp = &f->buckets[i];
            while (*pp) {
                if ((*pp)->pgno >= first) {
                    p = *pp;
                    *pp = p->next;
                    page_release(f, p);
                    f->npages--;
                    *f->held -= BLKV_STORE_PAGE;
                } else {
                    pp = &(*pp)->next;
                }
            }
        }
        if (size % BLKV_STORE_PAGE && (p = page_find(f, size / BLKV_STORE_PAGE)))
            memset(p->data + size % BLKV_STORE_PAGE, 0, BLKV_STORE_PAGE - size % BLKV_STORE_PAGE);
    }
    f->size = size;
}

uint64_t blkv_store_seek(const struct blkv_store *f, uint64_t off, uint64_t end, bool data)
{
    uint64_t stop = end < f->size ? end : f->size;
    for (uint64_t pos = off; pos < stop; pos = (pos / BLKV_STORE_PAGE + 1) * BLKV_STORE_PAGE)
        if ((page_find(f, pos / BLKV_STORE_PAGE) != NULL) == data)
            return pos;
    return data ? end : off > stop ? off : stop;
}

int blkv_store_each(const struct blkv_store *f,
                    int (*fn)(void *opaque, uint64_t off, const void *data, size_t n),
                    void *opaque)
{
    for (size_t i = 0; i < f->nbuckets; i++) {
        for (const struct blkv_store_page *p = f->buckets[i]; p; p = p->next) {
            uint64_t off = p->pgno * BLKV_STORE_PAGE;
            size_t n = BLKV_STORE_PAGE;
            int ret;
            if (off >= f->size)
                continue;
            if (f->size - off < n)
                n = (size_t)(f->size - off);
            if ((ret = fn(opaque, off, p->data, n)) != 0)
                return ret;
        }
    }
    return 0;
}

unsigned char *blkv_store_page(struct blkv_store *f, uint64_t pgno, bool create)
{
    struct blkv_store_page *p = page_find(f, pgno);
    if (!p && create)
        p = page_add(f, pgno, true);
    return p ? p->data : NULL;
}
