/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cache.c - a small LRU cache of one-cluster tables (L2 tables, refcount
 * blocks), with pinning.  Callers hold the image's metadata lock, so no
 * other coroutine touches a cache while an entry is in use; pins guard
 * against the caller's own nested lookups evicting an entry it still uses.
 */
#include "qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint64_t cluster_size)
{
    memset(c, 0, sizeof(*c));
    c->e = calloc(n, sizeof(*c->e)); /* a slot's table is allocated on first use */
    if (!c->e)
        return -ENOMEM;
    c->n = n;
    c->size = (size_t)cluster_size;
    return 0;
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
    if (c->e)
        for (unsigned i = 0; i < c->n; i++)
            blkv_scratch_put(c->e[i].data, c->size);
    free(c->e);
    memset(c, 0, sizeof(*c));
}

/* Write a dirty entry of cache c back to the file: a refcount block or L2
 * table update, as the fault rules see it. */
static int qcow2_cache_writeback(struct qcow2_state *s, struct qcow2_cache *c,
                                 struct qcow2_cache_entry *e)
{
    int ret;
    if (!e->dirty)
        return 0;
    blkv_lower_event(s->file, c == &s->rbc ? BLKV_EV_REFBLOCK_UPDATE : BLKV_EV_L2_UPDATE);
    ret = blkv_lower_pwrite(s->file, e->data, s->cluster_size, e->offset);
    if (ret == 0)
        e->dirty = false;
    return ret;
}

int qcow2_cache_get(struct qcow2_state *s, struct qcow2_cache *c, uint64_t off, bool load,
                    struct qcow2_cache_entry **out)
{
    struct qcow2_cache_entry *e = NULL, *victim = NULL;
    int ret;

    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].offset == off) {
            e = &c->e[i];
            break;
        }
    }
    if (e) {
        if (!load) /* a new table where a stale one was cached */
            memset(e->data, 0, s->cluster_size), e->dirty = false;
        goto found;
    }
    /* prefer a free slot, then the least recently used clean entry, then dirty */
    for (unsigned i = 0; i < c->n; i++) {
        struct qcow2_cache_entry *x = &c->e[i];
        if (x->pins)
            continue;
        if (!x->offset) {
            victim = x;
            break;
        }
        if (!victim || (victim->dirty && !x->dirty) ||
            (victim->dirty == x->dirty && x->lru < victim->lru))
            victim = x;
    }
    if (!victim) {
        blkv_error(s->ctx, "qcow2: every cache entry is in use");
        return -EBUSY;
    }
    if (victim->offset && (ret = qcow2_cache_writeback(s, c, victim)) < 0)
        return ret;
    victim->offset = 0;
    victim->dirty = false;
    if (!victim->data && !(victim->data = blkv_scratch_get(c->size)))
        return -ENOMEM;
    if (load) {
        victim->pins++; /* nobody else may take the slot while we read */
        ret = blkv_lower_pread(s->file, victim->data, s->cluster_size, off);
        victim->pins--;
        if (ret < 0)
            return ret;
    } else {
        memset(victim->data, 0, s->cluster_size);
    }
    victim->offset = off;
    e = victim;
found:
    e->lru = ++c->tick;
    e->pins++;
    *out = e;
    return 0;
}

void qcow2_cache_put(struct qcow2_cache_entry *e)
{
    if (e && e->pins)
        e->pins--;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t off)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].offset == off) {
            c->e[i].offset = 0;
            c->e[i].dirty = false;
        }
    }
}

int qcow2_cache_flush(struct qcow2_state *s, struct qcow2_cache *c)
{
    int ret = 0;
    for (unsigned i = 0; i < c->n; i++) {
        if (c->e[i].offset && c->e[i].dirty) {
            int r = qcow2_cache_writeback(s, c, &c->e[i]);
            if (r < 0 && !ret)
                ret = r;
        }
    }
    return ret;
}
