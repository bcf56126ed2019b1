/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2.c - blkv's own read/write qcow2 driver on the runtime: options,
 * open (create a new image, or open what lower file 0 holds), close,
 * request dispatch, and the check callback.  The image logic lives in the
 * other files of this folder (see qcow2.h for the concurrency rules).
 *
 * Lower file 0 is the image; lower file 1 the backing file (raw or qcow2)
 * when the header names one.  On create with a backing file, the backing
 * file is filled with the run's initial content, so the device starts out
 * reading through to it.
 */
#include "qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest write into the backing file while filling it at open(create). */
#define QCOW2_FILL_CHUNK (UINT64_C(1) << 20)

/* Also the options of the libqcow driver, which writes through this one. */
const struct blkv_option blkv_qcow2_options[] = {
    {"version", "3", "qcow2 version of a new image: 2 or 3"},
    {"cluster-size", "64K", "cluster size of a new image: a power of two, 512 to 2M"},
    {"refcount-bits", "16", "refcount width of a new image: 1, 2, 4, ... 64 (not 16: version 3)"},
    {"lazy-refcounts", "off", "on: postpone refcount updates, marking the image dirty (version 3)"},
    {"l2-cache", "4", "L2 tables cached (2 to 64)"},
    {"refcount-cache", "4", "refcount blocks cached (2 to 64)"},
    {"backing", "none", "backing file of a new image, in lower file 1: none, raw or qcow2"},
    {"l1-size", NULL, "L1 entries of a new image, 1 to 4194304 and at least what the size needs "
                      "(unset: what the size needs); the entries past that stay empty, so the "
                      "image starts that much larger"},
    {"save", NULL, "on close, copy the image to this host file (and the backing file next to "
                   "it, under the name the header gives)"},
    {NULL, NULL, NULL},
};

struct qcow2_opts {
    struct qcow2_create_opts create;
    unsigned l2n, rbn;
};

/* log2 of a power of two. */
static uint32_t qcow2_log2(uint64_t v)
{
    uint32_t n = 0;
    while (v > 1)
        v >>= 1, n++;
    return n;
}

/* Parse the driver options; 0 or -EINVAL with a message. */
static int qcow2_parse_opts(struct blkv_ctx *ctx, struct qcow2_opts *o)
{
    uint64_t version, cs, rb, l2n, rbn, l1n;
    const char *lazy = blkv_opt(ctx, "lazy-refcounts"), *b = blkv_opt(ctx, "backing");

    if (blkv_opt_u64(ctx, "version", &version) < 0 ||
        blkv_opt_u64(ctx, "cluster-size", &cs) < 0 ||
        blkv_opt_u64(ctx, "refcount-bits", &rb) < 0 || blkv_opt_u64(ctx, "l2-cache", &l2n) < 0 ||
        blkv_opt_u64(ctx, "refcount-cache", &rbn) < 0 || blkv_opt_u64(ctx, "l1-size", &l1n) < 0)
        return -EINVAL;
    if (version != 2 && version != 3) {
        blkv_error(ctx, "version=%" PRIu64 ": expected 2 or 3", version);
        return -EINVAL;
    }
    if (cs < 512 || cs > (UINT64_C(2) << 20) || (cs & (cs - 1))) {
        blkv_error(ctx, "cluster-size=%" PRIu64 ": expected a power of two, 512 to 2M", cs);
        return -EINVAL;
    }
    if (rb < 1 || rb > 64 || (rb & (rb - 1))) {
        blkv_error(ctx, "refcount-bits=%" PRIu64 ": expected a power of two, 1 to 64", rb);
        return -EINVAL;
    }
    if (version == 2 && rb != 16) {
        blkv_error(ctx, "refcount-bits=%" PRIu64 ": version 2 has 16-bit refcounts only", rb);
        return -EINVAL;
    }
    if (l2n < 2 || l2n > QCOW2_MAX_CACHE || rbn < 2 || rbn > QCOW2_MAX_CACHE) {
        blkv_error(ctx, "l2-cache and refcount-cache: expected 2 to %d tables", QCOW2_MAX_CACHE);
        return -EINVAL;
    }
    if (blkv_opt(ctx, "l1-size") && (l1n < 1 || l1n > QCOW2_MAX_L1_BYTES / 8)) {
        blkv_error(ctx, "l1-size=%" PRIu64 ": expected 1 to %" PRIu64 " entries", l1n,
                   QCOW2_MAX_L1_BYTES / 8);
        return -EINVAL;
    }
    memset(o, 0, sizeof(*o));
    if (lazy && !strcmp(lazy, "on")) {
        o->create.lazy = true;
    } else if (lazy && strcmp(lazy, "off")) {
        blkv_error(ctx, "lazy-refcounts=%s: expected on or off", lazy);
        return -EINVAL;
    }
    if (o->create.lazy && version < 3) {
        blkv_error(ctx, "lazy-refcounts=on needs version 3");
        return -EINVAL;
    }
    if (!b || !strcmp(b, "none")) {
        o->create.backing = QCOW2_BACKING_NONE;
    } else if (!strcmp(b, "raw")) {
        o->create.backing = QCOW2_BACKING_RAW;
    } else if (!strcmp(b, "qcow2")) {
        o->create.backing = QCOW2_BACKING_QCOW2;
    } else {
        blkv_error(ctx, "backing=%s: expected none, raw or qcow2", b);
        return -EINVAL;
    }
    o->create.version = (uint32_t)version;
    o->create.cluster_bits = qcow2_log2(cs);
    o->create.refcount_order = qcow2_log2(rb);
    o->create.l1_size = (uint32_t)l1n; /* 0: what the size needs */
    o->l2n = (unsigned)l2n;
    o->rbn = (unsigned)rbn;
    return 0;
}

/* Whether buf holds only zeros. */
static bool qcow2_all_zero(const uint8_t *buf, uint64_t len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* Close and free a backing image state. */
static void qcow2_free_backing(struct qcow2_state *s)
{
    if (s->bimg) {
        qcow2_free_image(s->bimg);
        free(s->bimg);
        s->bimg = NULL;
    }
}

/* Make the backing file of a new image in lower file 1, holding the
 * initial content where the program can see it (blkv_initial_extents);
 * *filled says it does. */
static int qcow2_make_backing(struct qcow2_state *s, uint64_t size, const struct qcow2_opts *o,
                              bool *filled)
{
    struct blkv_lower *bf = blkv_lower_get(s->ctx, 1);
    struct qcow2_state *b = NULL;
    const struct blkv_extent *ext;
    size_t next = blkv_initial_extents(s->ctx, &ext);
    uint8_t *buf = NULL;
    int ret = 0;

    *filled = false;
    if (!bf) {
        blkv_error(s->ctx, "qcow2: no lower file for the backing file");
        return -ENODEV;
    }
    if (o->create.backing == QCOW2_BACKING_RAW) {
        if ((ret = blkv_lower_truncate(bf, 0)) < 0 || (ret = blkv_lower_truncate(bf, size)) < 0)
            return ret;
    } else {
        struct qcow2_create_opts bo = o->create;
        bo.refcount_order = 4, bo.lazy = false, bo.backing = QCOW2_BACKING_NONE;
        bo.l1_size = 0;
        if (!(b = calloc(1, sizeof(*b))))
            return -ENOMEM;
        b->ctx = s->ctx;
        b->file = bf;
        if ((ret = qcow2_create(b, size, &bo)) < 0 || (ret = qcow2_open_image(b, 4, 4)) < 0)
            goto out;
    }
    if (next && !(buf = blkv_scratch_get(QCOW2_FILL_CHUNK))) {
        ret = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < next && !ret; i++) {
        uint64_t end = qcow2_min(ext[i].off + ext[i].len, size);
        for (uint64_t off = ext[i].off; off < end && !ret; off += QCOW2_FILL_CHUNK) {
            uint64_t n = qcow2_min(QCOW2_FILL_CHUNK, end - off);
            blkv_initial_content(s->ctx, buf, n, off);
            if (qcow2_all_zero(buf, n))
                continue;
            ret = b ? qcow2_co_write(b, off, n, buf) : blkv_lower_pwrite(bf, buf, n, off);
        }
    }
    *filled = ret == 0;
out:
    if (!ret)
        ret = blkv_lower_flush(bf);
    blkv_scratch_put(buf, QCOW2_FILL_CHUNK);
    if (b) {
        qcow2_free_image(b);
        free(b);
    }
    if (ret < 0)
        blkv_error(s->ctx, "qcow2: cannot make the backing file");
    return ret;
}

/* Open the backing file the header names, from lower file 1. */
static int qcow2_open_backing(struct qcow2_state *s)
{
    struct qcow2_state *b;
    int ret;

    s->backing = QCOW2_BACKING_NONE;
    if (!s->has_backing)
        return 0;
    s->bfile = blkv_lower_get(s->ctx, 1);
    if (!s->bfile) {
        blkv_error(s->ctx, "qcow2: no lower file for the backing file");
        return -ENODEV;
    }
    if (!strcmp(s->backing_fmt, "raw")) {
        s->backing = QCOW2_BACKING_RAW;
    } else if (!strcmp(s->backing_fmt, "qcow2")) {
        s->backing = QCOW2_BACKING_QCOW2;
    } else if (s->backing_fmt[0]) {
        blkv_error(s->ctx, "qcow2: unsupported feature: backing file format '%s'",
                   s->backing_fmt);
        return -ENOTSUP;
    } else {
        uint8_t magic[4];
        if ((ret = blkv_lower_pread(s->bfile, magic, 4, 0)) < 0)
            return ret;
        s->backing = blkv_lower_size(s->bfile) >= 72 && qcow2_be32(magic) == QCOW2_MAGIC
                         ? QCOW2_BACKING_QCOW2 : QCOW2_BACKING_RAW;
    }
    if (s->backing == QCOW2_BACKING_RAW) {
        s->backing_size = blkv_lower_size(s->bfile);
        return 0;
    }
    if (!(b = calloc(1, sizeof(*b))))
        return -ENOMEM;
    s->bimg = b;
    b->ctx = s->ctx;
    b->file = s->bfile;
    b->read_only = true;
    if ((ret = qcow2_open_image(b, 2, 2)) < 0)
        return ret;
    if (b->has_backing) {
        blkv_error(s->ctx, "qcow2: unsupported feature: a backing file with its own backing file");
        return -ENOTSUP;
    }
    s->backing_size = b->size;
    return 0;
}

/* Open: create a new image (and backing file) first if asked, then open
 * what lower file 0 holds and its backing file; fill in the caps. */
static int qcow2_drv_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                          struct blkv_caps *caps)
{
    struct qcow2_state *s = state;
    struct qcow2_opts o;
    bool filled = false;
    int ret;

    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->file = blkv_lower_get(ctx, 0);
    if (!s->file) {
        blkv_error(ctx, "qcow2: no lower file");
        return -ENODEV;
    }
    if ((ret = qcow2_parse_opts(ctx, &o)) < 0)
        return ret;
    if (create) {
        if (o.create.backing != QCOW2_BACKING_NONE &&
            (ret = qcow2_make_backing(s, size, &o, &filled)) < 0)
            return ret;
        if ((ret = qcow2_create(s, size, &o.create)) < 0)
            return ret;
    }
    if ((ret = qcow2_open_image(s, o.l2n, o.rbn)) < 0 || (ret = qcow2_open_backing(s)) < 0) {
        qcow2_free_backing(s);
        qcow2_free_image(s);
        return ret;
    }
    caps->size = s->size;
    caps->align = 1;
    caps->write_zeroes = true;
    caps->fua = true;
    caps->discard = s->version < 3 && s->backing != QCOW2_BACKING_NONE ? BLKV_DISCARD_IGNORED
                                                                       : BLKV_DISCARD_ZEROES;
    caps->initialized = filled;
    /* lazy refcounts: the dirty bit makes the next open rebuild them;
     * otherwise a crash may leave clusters allocated that nothing maps */
    caps->crash_check = s->lazy ? BLKV_CRASH_CLEAN : BLKV_CRASH_LEAKS;
    caps->grain = (uint32_t)s->cluster_size; /* reports: the cluster of bad bytes */
    return 0;
}

/* Write back metadata and flush the lower file. */
static int qcow2_co_flush(struct qcow2_state *s)
{
    int ret;

    blkv_co_mutex_lock(&s->lock);
    ret = qcow2_flush_meta(s);
    blkv_co_mutex_unlock(&s->lock);
    if (ret < 0)
        return ret;
    return blkv_lower_flush(s->file);
}

/* Copy lower file f to a host file (holes where the data is zero). */
static int qcow2_save_lower(const struct blkv_lower *f, const char *path)
{
    uint64_t size = blkv_lower_size(f);
    uint8_t *buf = malloc(QCOW2_FILL_CHUNK);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret = 0;

    if (fd < 0 || !buf) {
        ret = fd < 0 ? -errno : -ENOMEM;
        goto out;
    }
    for (uint64_t off = 0; off < size && !ret; off += QCOW2_FILL_CHUNK) {
        uint64_t n = qcow2_min(QCOW2_FILL_CHUNK, size - off);
        blkv_lower_peek(f, buf, n, off);
        if (!qcow2_all_zero(buf, n) && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
            ret = -EIO;
    }
    if (!ret && ftruncate(fd, (off_t)size) < 0)
        ret = -errno;
out:
    if (fd >= 0 && close(fd) < 0 && !ret)
        ret = -errno;
    free(buf);
    return ret;
}

/* The `save` option: copy the image and its backing file to host files. */
static void qcow2_save(struct qcow2_state *s, const char *path)
{
    char bpath[4096];
    const char *slash = strrchr(path, '/');

    if (qcow2_save_lower(s->file, path) < 0) {
        blkv_error(s->ctx, "qcow2: cannot save the image to %s", path);
        return;
    }
    if (!s->has_backing || !s->bfile || !s->backing_name[0] || strchr(s->backing_name, '/'))
        return;
    snprintf(bpath, sizeof(bpath), "%.*s%s", slash ? (int)(slash - path + 1) : 0, path,
             s->backing_name);
    if (qcow2_save_lower(s->bfile, bpath) < 0)
        blkv_error(s->ctx, "qcow2: cannot save the backing file to %s", bpath);
}

/* Close: write back metadata, clear the dirty bit, flush, save if asked. */
static void qcow2_drv_close(void *state)
{
    struct qcow2_state *s = state;
    const char *save = blkv_opt(s->ctx, "save");

    blkv_co_mutex_lock(&s->lock);
    qcow2_flush_meta(s);
    if (s->dirty_marked)
        qcow2_set_dirty(s, false);
    blkv_co_mutex_unlock(&s->lock);
    blkv_lower_flush(s->file); /* nothing to report a failure to */
    if (save && *save)
        qcow2_save(s, save);
    qcow2_free_backing(s);
    qcow2_free_image(s);
}

/* One request, in its own coroutine. */
static int qcow2_drv_co_submit(void *state, struct blkv_req *req)
{
    struct qcow2_state *s = state;
    struct qcow2_range r;
    int ret;

    switch (req->op) {
    case BLKV_OP_READ:
        return qcow2_co_read(s, req->offset, req->len, req->buf);
    case BLKV_OP_WRITE:
        qcow2_range_lock(s, &r, req->offset, req->len);
        ret = qcow2_co_write(s, req->offset, req->len, req->buf);
        qcow2_range_unlock(s, &r);
        break;
    case BLKV_OP_WRITE_ZEROES:
        qcow2_range_lock(s, &r, req->offset, req->len);
        ret = qcow2_co_zero(s, req->offset, req->len, req->flags & BLKV_REQ_UNMAP);
        qcow2_range_unlock(s, &r);
        break;
    case BLKV_OP_DISCARD:
        if (s->version < 3 && s->backing != QCOW2_BACKING_NONE)
            return 0; /* declared: discard changes nothing */
        qcow2_range_lock(s, &r, req->offset, req->len);
        ret = qcow2_co_zero(s, req->offset, req->len, true);
        qcow2_range_unlock(s, &r);
        return ret;
    case BLKV_OP_FLUSH:
        return qcow2_co_flush(s);
    default:
        return -EINVAL;
    }
    if (!ret && (req->flags & BLKV_REQ_FUA))
        ret = qcow2_co_flush(s);
    return ret;
}

/* The image consistency check (no request in flight). */
static int qcow2_drv_check(void *state)
{
    struct qcow2_state *s = state;
    int ret;

    blkv_co_mutex_lock(&s->lock);
    ret = qcow2_check_image(s, false);
    blkv_co_mutex_unlock(&s->lock);
    if (ret == 0 && s->check_leaks)
        blkv_check_leaks(s->ctx, s->check_leaks);
    return ret;
}

/* After a power loss: free what the state holds, without I/O. */
static void qcow2_drv_release(void *state)
{
    struct qcow2_state *s = state;
    qcow2_free_backing(s);
    qcow2_free_image(s);
}

const struct blkv_driver blkv_driver_qcow2 = {
    BLKV_DRIVER_HEADER,
    .name = "qcow2",
    .description = "blkv's own read/write qcow2 implementation (backing file in lower file 1)",
    .options = blkv_qcow2_options,
    .state_size = sizeof(struct qcow2_state),
    .in_process = true,
    .std_events = 1u << BLKV_EV_COW_READ | 1u << BLKV_EV_COW_WRITE | 1u << BLKV_EV_L1_UPDATE |
                  1u << BLKV_EV_L2_UPDATE | 1u << BLKV_EV_L2_ALLOC |
                  1u << BLKV_EV_REFBLOCK_UPDATE | 1u << BLKV_EV_REFBLOCK_ALLOC |
                  1u << BLKV_EV_REFTABLE_GROW | 1u << BLKV_EV_HEADER_UPDATE,
    .open = qcow2_drv_open,
    .close = qcow2_drv_close,
    .co_submit = qcow2_drv_co_submit,
    .check = qcow2_drv_check,
    .release = qcow2_drv_release,
};
