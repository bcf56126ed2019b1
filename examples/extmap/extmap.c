/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * extmap.c - a tiny extent-mapped image format, written only against the
 * installed <blkv/driver.h>: what a user of blkv brings.
 *
 * The image (lower file 0) is a 4 KiB header, then a map of one 32-bit
 * little-endian entry per 4 KiB guest block (0: never written, reads as
 * zeros; else the physical block number), then data blocks in the order
 * they were first written.  A write to an unmapped block allocates the next
 * physical block, writes all of it (the data, zeros around it), flushes,
 * and only then writes its map entry: after a power loss a block is mapped
 * only if its content made it, and a physical block whose entry was lost
 * is simply allocated again.  Allocation is under a coroutine mutex;
 * requests otherwise run concurrently.
 *
 * bug=alloc-race plants a classic bug: whether a block needs allocating is
 * decided before taking the mutex and not looked at again after it, so two
 * writes racing into one new block both allocate, the second map entry
 * wins, and what the first wrote is lost although it reported success.
 */
#include <blkv/driver.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXT_BLOCK 4096u
#define EXT_MAGIC "extmap01"

struct ext_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *f;
    uint64_t size, nblocks, map_off, data_off;
    uint32_t *map;  /* in memory, written through */
    uint32_t next;  /* next physical block to allocate (from 1) */
    struct blkv_co_mutex alloc;
    bool alloc_race;
};

static const struct blkv_option ext_options[] = {
    {"bug", "none", "none, or alloc-race: a plant for the verifier to find"},
    {NULL, NULL, NULL},
};

static void ext_put32(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t ext_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int ext_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                    struct blkv_caps *caps)
{
    struct ext_state *s = state;
    const char *bug = blkv_opt(ctx, "bug");
    uint8_t hdr[24];
    int ret;

    free(s->map);
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->f = blkv_lower_get(ctx, 0);
    if (strcmp(bug, "none") && strcmp(bug, "alloc-race")) {
        blkv_error(ctx, "bug=%s: expected none or alloc-race", bug);
        return -EINVAL;
    }
    s->alloc_race = !strcmp(bug, "alloc-race");
    if (create) {
        memcpy(hdr, EXT_MAGIC, 8);
        for (int i = 0; i < 8; i++)
            hdr[8 + i] = (uint8_t)(size >> (8 * i));
        if ((ret = blkv_lower_pwrite(s->f, hdr, 16, 0)) < 0)
            return ret;
    } else {
        if ((ret = blkv_lower_pread(s->f, hdr, 16, 0)) < 0)
            return ret;
        if (memcmp(hdr, EXT_MAGIC, 8)) {
            blkv_error(ctx, "not an extmap image");
            return -EINVAL;
        }
        size = ext_get(hdr + 8, 8);
    }
    size -= size % EXT_BLOCK; /* the device ends at the last whole block */
    if (size == 0 || size > (UINT64_C(1) << 30)) {
        blkv_error(ctx, "size %llu: extmap holds 4 KiB to 1 GiB", (unsigned long long)size);
        return -EINVAL;
    }
    s->size = size;
    s->nblocks = size / EXT_BLOCK;
    s->map_off = EXT_BLOCK;
    s->data_off = s->map_off + (s->nblocks * 4 + EXT_BLOCK - 1) / EXT_BLOCK * EXT_BLOCK;
    if (!(s->map = calloc(s->nblocks, 4)))
        return -ENOMEM;
    if ((ret = blkv_lower_pread(s->f, s->map, s->nblocks * 4, s->map_off)) < 0)
        return ret;
    s->next = 1;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        s->map[i] = (uint32_t)ext_get((const uint8_t *)&s->map[i], 4);
        if (s->map[i] >= s->next)
            s->next = s->map[i] + 1;
    }
    caps->size = size;
    caps->fua = true;
    return 0;
}

static void ext_close(void *state)
{
    struct ext_state *s = state;
    blkv_lower_flush(s->f);
    free(s->map);
    s->map = NULL;
}

/* After a power loss: the map in memory is gone, with no I/O. */
static void ext_release(void *state)
{
    struct ext_state *s = state;
    free(s->map);
    s->map = NULL;
}

/* Write [in, in+n) of guest block b: into a new physical block if b is
 * unmapped (*done), else leave it to the caller (*done false). */
static int ext_alloc_write(struct ext_state *s, uint64_t b, uint64_t in, uint64_t n,
                           const uint8_t *data, bool *done)
{
    bool unmapped = s->map[b] == 0;
    uint8_t e[4], blk[EXT_BLOCK];
    int ret = 0;

    *done = false;
    if (!unmapped)
        return 0;
    blkv_co_mutex_lock(&s->alloc);
    if (s->alloc_race || s->map[b] == 0) { /* the bug: no second look */
        uint32_t p = s->next++;
        memset(blk, 0, sizeof(blk));
        memcpy(blk + in, data, n);
        ret = blkv_lower_pwrite(s->f, blk, EXT_BLOCK, s->data_off + (p - 1) * EXT_BLOCK);
        if (!ret) /* the block is durable before the map names it */
            ret = blkv_lower_flush(s->f);
        ext_put32(e, p);
        if (!ret)
            ret = blkv_lower_pwrite(s->f, e, 4, s->map_off + b * 4);
        if (!ret)
            s->map[b] = p;
        *done = true;
    }
    blkv_co_mutex_unlock(&s->alloc);
    return ret;
}

static int ext_co_submit(void *state, struct blkv_req *req)
{
    struct ext_state *s = state;
    uint8_t *buf = req->buf;
    uint64_t off = req->offset, left = req->len;
    int ret = 0;

    if (req->op == BLKV_OP_FLUSH)
        return blkv_lower_flush(s->f);
    if (req->op != BLKV_OP_READ && req->op != BLKV_OP_WRITE)
        return 0; /* discard: declared ignored */
    while (left && !ret) {
        uint64_t b = off / EXT_BLOCK, in = off % EXT_BLOCK;
        uint64_t n = EXT_BLOCK - in < left ? EXT_BLOCK - in : left;
        uint32_t p;
        bool done = false;
        if (req->op == BLKV_OP_WRITE && (ret = ext_alloc_write(s, b, in, n, buf, &done)) < 0)
            break;
        p = s->map[b];
        if (done)
            ; /* written with its new block */
        else if (req->op == BLKV_OP_READ && !p)
            memset(buf, 0, n);
        else if (req->op == BLKV_OP_READ)
            ret = blkv_lower_pread(s->f, buf, n, s->data_off + (p - 1) * EXT_BLOCK + in);
        else
            ret = blkv_lower_pwrite(s->f, buf, n, s->data_off + (p - 1) * EXT_BLOCK + in);
        buf += n, off += n, left -= n;
    }
    if (!ret && (req->flags & BLKV_REQ_FUA))
        ret = blkv_lower_flush(s->f);
    return ret;
}

const struct blkv_driver extmap_driver = {
    BLKV_DRIVER_HEADER,
    .name = "extmap",
    .description = "a tiny extent-mapped image format (blkv's example driver)",
    .options = ext_options,
    .state_size = sizeof(struct ext_state),
    .in_process = true,
    .open = ext_open,
    .close = ext_close,
    .release = ext_release,
    .co_submit = ext_co_submit,
};

BLKV_REGISTER_PLUGIN(extmap_driver)
