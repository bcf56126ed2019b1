/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libqcow.c - a differential reader: images written by blkv's qcow2 driver,
 * read back through libyal's libqcow.
 *
 * A filter: writes, write-zeroes, discards and flushes go down to a qcow2
 * child (blkv_child_*), opened with this driver's own options (the same as
 * qcow2's).  Reads go to
 * libqcow: each read waits until no write-like request of this driver is in
 * flight, and while it prepares, newly submitted write-like requests wait
 * for it, so every read is linearised between writes.  To prepare, the read
 * flushes the qcow2 driver (its cached metadata reaches lower file 0) and,
 * when anything changed since the last snapshot, copies lower file 0 into a
 * memfd and opens it with libqcow afresh.  The read itself is one
 * libqcow_file_read_buffer_at_offset; an error or a short read fails the
 * request with -EIO and libqcow's message, which the verifier reports as a
 * return value mismatch.
 *
 * Backing files: backing=qcow2 (lower file 1 holds the backing image, which
 * qcow2 writes once, at open(create)) is copied into a second memfd at the
 * first read after an open, opened with libqcow, and set as the parent of
 * every snapshot (libqcow_file_set_parent_file).  backing=raw is refused:
 * libqcow's parent is a libqcow file, so it has no raw backing file.
 * Cancellation is left out (qcow2 has none).
 */
#define _GNU_SOURCE
#include <blkv/driver.h>

#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <libqcow.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Largest piece of lower file 0 copied into the memfd at once. */
#define LIBQCOW_COPY_CHUNK (UINT64_C(1) << 20)

struct libqcow_state {
    struct blkv_ctx *ctx;
    struct blkv_child *q;     /* the qcow2 driver, below */
    struct blkv_lower *f;     /* lower file 0: the image qcow2 writes */
    struct blkv_lower *bf;    /* lower file 1 when the image has a qcow2 backing file */
    uint64_t size;            /* device size */
    int memfd;                /* the snapshot of lower file 0; -1: none yet */
    libqcow_file_t *lf;       /* libqcow's view of the snapshot, or NULL */
    int pmemfd;               /* the copy of lower file 1; -1: none yet */
    libqcow_file_t *plf;      /* libqcow's view of it (lf's parent), or NULL */
    uint64_t gen;             /* bumped by each write-like completion and flush */
    uint64_t snap_gen;        /* gen of the snapshot lf shows */
    bool snap_valid;
    unsigned writers;         /* write-like requests in qcow2 now */
    bool gate;                /* a read prepares: new write-like requests wait */
    struct blkv_co_mutex prep;    /* one read prepares at a time */
    struct blkv_co_queue idle;    /* reads waiting for writers == 0 */
    struct blkv_co_queue gateq;   /* write-like requests waiting for the gate */
};

/* Report a libqcow error (and free it). */
static void libqcow_report(struct libqcow_state *s, libqcow_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void libqcow_report(struct libqcow_state *s, libqcow_error_t *err, const char *fmt, ...)
{
    char what[256], msg[2048] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (err) {
        libqcow_error_sprint(err, msg, sizeof(msg));
        libqcow_error_free(&err);
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
    }
    blkv_error(s->ctx, "libqcow: %s%s%s", what, msg[0] ? ": " : "", msg);
}

/* Close and free a libqcow file. */
static void libqcow_free_file(libqcow_file_t **lf)
{
    libqcow_error_t *err = NULL;

    if (!*lf)
        return;
    if (libqcow_file_close(*lf, &err) != 0)
        libqcow_error_free(&err);
    err = NULL;
    if (libqcow_file_free(lf, &err) != 1)
        libqcow_error_free(&err);
    *lf = NULL;
}

/* Close and free libqcow's view of the snapshot. */
static void libqcow_drop_file(struct libqcow_state *s)
{
    libqcow_free_file(&s->lf);
    s->snap_valid = false;
}

/* Release everything: libqcow's files (the child before its parent), the
 * memfds. */
static void libqcow_release(struct libqcow_state *s)
{
    libqcow_drop_file(s);
    libqcow_free_file(&s->plf);
    if (s->memfd >= 0)
        close(s->memfd);
    s->memfd = -1;
    if (s->pmemfd >= 0)
        close(s->pmemfd);
    s->pmemfd = -1;
}

static uint64_t libqcow_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

enum libqcow_backing { LIBQCOW_BACKING_NONE, LIBQCOW_BACKING_RAW, LIBQCOW_BACKING_QCOW2 };

/* What backing file the image in lower file 0 names, the way qcow2 (and
 * QEMU) decide: the backing format header extension, else a probe of the
 * backing file (lower file 1) for qcow2's magic. */
static enum libqcow_backing libqcow_backing_of(struct libqcow_state *s)
{
    uint8_t h[4096], m[4] = {0};
    uint64_t pos, end;
    struct blkv_lower *bf = blkv_lower_get(s->ctx, 1);

    blkv_lower_peek(s->f, h, sizeof(h), 0);
    if (libqcow_be(h + 8, 8) == 0) /* backing_file_offset */
        return LIBQCOW_BACKING_NONE;
    pos = libqcow_be(h + 4, 4) >= 3 ? libqcow_be(h + 100, 4) : 72; /* header_length */
    end = libqcow_be(h + 8, 8) < sizeof(h) ? libqcow_be(h + 8, 8) : sizeof(h);
    while (pos + 8 <= end) {
        uint32_t type = (uint32_t)libqcow_be(h + pos, 4), len = (uint32_t)libqcow_be(h + pos + 4, 4);
        if (type == 0 || pos + 8 + len > end)
            break;
        if (type == 0xe2792aca) /* backing file format name */
            return len == 5 && !memcmp(h + pos + 8, "qcow2", 5) ? LIBQCOW_BACKING_QCOW2
                                                               : LIBQCOW_BACKING_RAW;
        pos += 8 + (len + 7) / 8 * 8;
    }
    if (bf && blkv_lower_size(bf) >= 72)
        blkv_lower_peek(bf, m, 4, 0);
    return !memcmp(m, "QFI\xfb", 4) ? LIBQCOW_BACKING_QCOW2 : LIBQCOW_BACKING_RAW;
}

static int libqcow_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                        struct blkv_caps *caps)
{
    struct libqcow_state *s = state;
    const char *b = blkv_opt(ctx, "backing");
    int ret;

    /* A reopen after a run that could not close (a crash) finds the old
     * state: drop it. */
    if (s->ctx)
        libqcow_release(s);
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->memfd = s->pmemfd = -1;
    /* messages come back as libqcow_error_t, to the run's context: libqcow
     * itself prints nothing (verbose is off by default; say so) */
    libqcow_notify_set_verbose(0);
    if (b && !strcmp(b, "raw")) {
        blkv_error(ctx, "libqcow: backing=raw: not supported (libqcow's parent file is a "
                        "libqcow file: it has no raw backing file); use none or qcow2");
        return -ENOTSUP;
    }
    s->f = blkv_lower_get(ctx, 0);
    if (!s->f) {
        blkv_error(ctx, "libqcow: no lower file");
        return -ENODEV;
    }
    if ((ret = blkv_child_open(ctx, &blkv_driver_qcow2, blkv_opts(ctx), size, create, caps,
                               &s->q)) < 0)
        return ret;
    switch (libqcow_backing_of(s)) {
    case LIBQCOW_BACKING_NONE:
        break;
    case LIBQCOW_BACKING_RAW: /* an image given to open (a lower image) may name one */
        blkv_child_close(s->q);
        s->q = NULL;
        blkv_error(ctx, "libqcow: the image has a raw backing file: not supported (libqcow's "
                        "parent file is a libqcow file)");
        return -ENOTSUP;
    case LIBQCOW_BACKING_QCOW2:
        s->bf = blkv_lower_get(ctx, 1);
        break;
    }
    s->size = caps->size;
    return 0;
}

static void libqcow_close(void *state)
{
    struct libqcow_state *s = state;

    blkv_child_close(s->q);
    s->q = NULL;
    libqcow_release(s);
    s->ctx = NULL;
}

/* Copy lower file f into *memfd (made on first use). */
static int libqcow_copy(struct libqcow_state *s, const struct blkv_lower *f, int *memfd,
                        uint64_t *lenp)
{
    uint64_t len = blkv_lower_size(f);
    uint8_t *buf;
    int ret = 0;

    *lenp = len;
    if (*memfd < 0 && (*memfd = memfd_create("blkv-libqcow", MFD_CLOEXEC)) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "libqcow: memfd_create: %s", strerror(-ret));
        return ret;
    }
    if (ftruncate(*memfd, 0) < 0 || ftruncate(*memfd, (off_t)len) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "libqcow: cannot size the snapshot: %s", strerror(-ret));
        return ret;
    }
    if (!(buf = malloc(LIBQCOW_COPY_CHUNK)))
        return -ENOMEM;
    for (uint64_t off = 0; off < len && !ret; off += LIBQCOW_COPY_CHUNK) {
        uint64_t n = len - off < LIBQCOW_COPY_CHUNK ? len - off : LIBQCOW_COPY_CHUNK;
        blkv_lower_peek(f, buf, n, off);
        if (pwrite(*memfd, buf, n, (off_t)off) != (ssize_t)n) {
            ret = -EIO;
            blkv_error(s->ctx, "libqcow: cannot write the snapshot");
        }
    }
    free(buf);
    return ret;
}

/* Open memfd with libqcow into *lf and check its media size. */
static int libqcow_open_memfd(struct libqcow_state *s, int memfd, uint64_t len,
                              const char *what, libqcow_file_t **lf)
{
    libqcow_error_t *err = NULL;
    uint64_t msize = 0;
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
    if (libqcow_file_initialize(lf, &err) != 1) {
        libqcow_report(s, err, "cannot initialise a file");
        *lf = NULL;
        return -ENOMEM;
    }
    if (libqcow_file_open(*lf, path, libqcow_get_access_flags_read(), &err) != 1) {
        libqcow_report(s, err, "cannot open the %s (%" PRIu64 " bytes)", what, len);
        libqcow_free_file(lf);
        return -EIO;
    }
    if (libqcow_file_get_media_size(*lf, &msize, &err) != 1) {
        libqcow_report(s, err, "cannot get the media size of the %s", what);
        libqcow_free_file(lf);
        return -EIO;
    }
    if (lf == &s->lf && msize != s->size) { /* a backing file may be smaller */
        blkv_error(s->ctx, "libqcow: media size of the %s %" PRIu64 ", the device's is %" PRIu64,
                   what, msize, s->size);
        libqcow_free_file(lf);
        return -EIO;
    }
    return 0;
}

/* Copy lower file 0 into the memfd and open it with libqcow; the first time
 * after an open, the backing file too (it does not change after that). */
static int libqcow_snapshot(struct libqcow_state *s)
{
    libqcow_error_t *err = NULL;
    uint64_t len;
    int ret;

    libqcow_drop_file(s);
    if (s->bf && !s->plf) {
        if ((ret = libqcow_copy(s, s->bf, &s->pmemfd, &len)) < 0 ||
            (ret = libqcow_open_memfd(s, s->pmemfd, len, "backing file", &s->plf)) < 0)
            return ret;
    }
    if ((ret = libqcow_copy(s, s->f, &s->memfd, &len)) < 0 ||
        (ret = libqcow_open_memfd(s, s->memfd, len, "image", &s->lf)) < 0)
        return ret;
    if (s->plf && libqcow_file_set_parent_file(s->lf, s->plf, &err) != 1) {
        libqcow_report(s, err, "cannot set the backing file as the image's parent");
        libqcow_drop_file(s);
        return -EIO;
    }
    s->snap_gen = s->gen;
    s->snap_valid = true;
    return 0;
}

/* A read through libqcow, linearised between write-like requests. */
static int libqcow_read(struct libqcow_state *s, struct blkv_req *req)
{
    libqcow_error_t *err = NULL;
    ssize_t n;
    int ret;

    blkv_co_mutex_lock(&s->prep);
    s->gate = true;
    while (s->writers)
        blkv_co_queue_wait(&s->idle);
    ret = blkv_child_io(s->q, req, BLKV_OP_FLUSH, 0, 0, 0, NULL);
    if (ret < 0) {
        blkv_error(s->ctx, "libqcow: read #%" PRIu64 ": the qcow2 flush before it failed",
                   req->id);
        goto out;
    }
    if (!s->snap_valid || s->snap_gen != s->gen) {
        if ((ret = libqcow_snapshot(s)) < 0)
            goto out;
    }
    n = libqcow_file_read_buffer_at_offset(s->lf, req->buf, (size_t)req->len,
                                           (off64_t)req->offset, &err);
    if (n != (ssize_t)req->len) {
        libqcow_report(s, n < 0 ? err : NULL,
                       "read #%" PRIu64 " offset=%" PRIu64 " bytes=%" PRIu64 " returned %zd",
                       req->id, req->offset, req->len, n);
        if (n >= 0 && err)
            libqcow_error_free(&err);
        ret = -EIO;
    }
out:
    s->gate = false;
    blkv_co_queue_wake_all(&s->gateq);
    blkv_co_mutex_unlock(&s->prep);
    return ret;
}

static int libqcow_co_submit(void *state, struct blkv_req *req)
{
    struct libqcow_state *s = state;
    int ret;

    if (req->op == BLKV_OP_READ)
        return libqcow_read(s, req);
    while (s->gate)
        blkv_co_queue_wait(&s->gateq);
    s->writers++;
    ret = blkv_child_submit(s->q, req);
    s->writers--;
    s->gen++;
    if (!s->writers)
        blkv_co_queue_wake_all(&s->idle);
    return ret;
}

/* After a power loss: libqcow's files and the memfds go (the qcow2 child
 * is the core's to release). */
static void libqcow_drv_release(void *state)
{
    struct libqcow_state *s = state;
    libqcow_release(s);
}

static int libqcow_check(void *state)
{
    struct libqcow_state *s = state;
    return blkv_child_check(s->q);
}

const struct blkv_driver blkv_driver_libqcow = {
    BLKV_DRIVER_HEADER,
    .name = "libqcow",
    .description = "differential reader: images written by qcow2, read through libqcow "
                   "(backing file: none or qcow2)",
    .options = blkv_qcow2_options,
    .state_size = sizeof(struct libqcow_state),
    .in_process = true,
    .open = libqcow_open,
    .close = libqcow_close,
    .co_submit = libqcow_co_submit,
    .check = libqcow_check,
    .release = libqcow_drv_release,
};
