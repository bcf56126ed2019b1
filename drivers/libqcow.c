/*
 * libqcow.c - a differential reader: images written by blkv's qcow2 driver,
 * read back through libyal's libqcow.
 *
 * Writes, write-zeroes, discards and flushes go to the qcow2 driver (whose
 * state this driver holds, and whose options it takes).  Reads go to
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
 * Left out: backing files (libqcow would need the parent image opened
 * separately; libqcow_file_set_parent_file takes an open libqcow file) and
 * cancellation (qcow2 has none).
 */
#define _GNU_SOURCE
#include "blkv.h"
#include "qcow2/qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <libqcow.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern const struct blkv_driver blkv_driver_qcow2;

/* Largest piece of lower file 0 copied into the memfd at once. */
#define LIBQCOW_COPY_CHUNK (UINT64_C(1) << 20)

struct libqcow_state {
    struct blkv_ctx *ctx;
    void *q;                  /* the qcow2 driver's state */
    struct blkv_lower *f;     /* lower file 0: the image qcow2 writes */
    uint64_t size;            /* device size */
    int memfd;                /* the snapshot of lower file 0; -1: none yet */
    libqcow_file_t *lf;       /* libqcow's view of the snapshot, or NULL */
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

/* Close and free libqcow's file. */
static void libqcow_drop_file(struct libqcow_state *s)
{
    libqcow_error_t *err = NULL;

    if (!s->lf)
        return;
    if (libqcow_file_close(s->lf, &err) != 0)
        libqcow_error_free(&err);
    err = NULL;
    if (libqcow_file_free(&s->lf, &err) != 1)
        libqcow_error_free(&err);
    s->lf = NULL;
    s->snap_valid = false;
}

/* Release everything: libqcow's file, the memfd, the qcow2 state. */
static void libqcow_release(struct libqcow_state *s)
{
    libqcow_drop_file(s);
    if (s->memfd >= 0)
        close(s->memfd);
    s->memfd = -1;
    free(s->q);
    s->q = NULL;
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
    s->memfd = -1;
    if (b && strcmp(b, "none")) {
        blkv_error(ctx, "libqcow: backing=%s: not supported (libqcow would need the parent "
                        "image opened separately); use backing=none", b);
        return -ENOTSUP;
    }
    s->f = blkv_lower_get(ctx, 0);
    if (!s->f) {
        blkv_error(ctx, "libqcow: no lower file");
        return -ENODEV;
    }
    if (!(s->q = calloc(1, blkv_driver_qcow2.state_size)))
        return -ENOMEM;
    ret = blkv_driver_qcow2.open(s->q, ctx, size, create, caps);
    if (ret < 0) {
        free(s->q);
        s->q = NULL;
        return ret;
    }
    s->size = caps->size;
    return 0;
}

static void libqcow_close(void *state)
{
    struct libqcow_state *s = state;

    if (s->q)
        blkv_driver_qcow2.close(s->q);
    libqcow_release(s);
    s->ctx = NULL;
}

/* Copy lower file 0 into the memfd and open it with libqcow. */
static int libqcow_snapshot(struct libqcow_state *s)
{
    uint64_t len = blkv_lower_size(s->f), msize = 0;
    libqcow_error_t *err = NULL;
    char path[64];
    uint8_t *buf;
    int ret = 0;

    libqcow_drop_file(s);
    if (s->memfd < 0 && (s->memfd = memfd_create("blkv-libqcow", MFD_CLOEXEC)) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "libqcow: memfd_create: %s", strerror(-ret));
        return ret;
    }
    if (ftruncate(s->memfd, 0) < 0 || ftruncate(s->memfd, (off_t)len) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "libqcow: cannot size the snapshot: %s", strerror(-ret));
        return ret;
    }
    if (!(buf = malloc(LIBQCOW_COPY_CHUNK)))
        return -ENOMEM;
    for (uint64_t off = 0; off < len && !ret; off += LIBQCOW_COPY_CHUNK) {
        uint64_t n = len - off < LIBQCOW_COPY_CHUNK ? len - off : LIBQCOW_COPY_CHUNK;
        blkv_lower_peek(s->f, buf, n, off);
        if (pwrite(s->memfd, buf, n, (off_t)off) != (ssize_t)n) {
            ret = -EIO;
            blkv_error(s->ctx, "libqcow: cannot write the snapshot");
        }
    }
    free(buf);
    if (ret)
        return ret;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", s->memfd);
    if (libqcow_file_initialize(&s->lf, &err) != 1) {
        libqcow_report(s, err, "cannot initialise a file");
        s->lf = NULL;
        return -ENOMEM;
    }
    if (libqcow_file_open(s->lf, path, libqcow_get_access_flags_read(), &err) != 1) {
        libqcow_report(s, err, "cannot open the image (%" PRIu64 " bytes)", len);
        err = NULL;
        if (libqcow_file_free(&s->lf, &err) != 1)
            libqcow_error_free(&err);
        s->lf = NULL;
        return -EIO;
    }
    if (libqcow_file_get_media_size(s->lf, &msize, &err) != 1) {
        libqcow_report(s, err, "cannot get the media size");
        libqcow_drop_file(s);
        return -EIO;
    }
    if (msize != s->size) {
        blkv_error(s->ctx, "libqcow: media size %" PRIu64 ", the image's is %" PRIu64, msize,
                   s->size);
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
    struct blkv_req flush = {.op = BLKV_OP_FLUSH, .id = BLKV_REQ_ID_SETUP};
    libqcow_error_t *err = NULL;
    ssize_t n;
    int ret;

    blkv_co_mutex_lock(&s->prep);
    s->gate = true;
    while (s->writers)
        blkv_co_queue_wait(&s->idle);
    ret = blkv_driver_qcow2.co_submit(s->q, &flush);
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
    ret = blkv_driver_qcow2.co_submit(s->q, req);
    s->writers--;
    s->gen++;
    if (!s->writers)
        blkv_co_queue_wake_all(&s->idle);
    return ret;
}

static int libqcow_check(void *state)
{
    struct libqcow_state *s = state;
    return blkv_driver_qcow2.check(s->q);
}

const struct blkv_driver blkv_driver_libqcow = {
    BLKV_DRIVER_HEADER,
    .name = "libqcow",
    .description = "differential reader: images written by qcow2, read through libqcow "
                   "(no backing files)",
    .options = blkv_qcow2_options,
    .state_size = sizeof(struct libqcow_state),
    .in_process = true,
    .open = libqcow_open,
    .close = libqcow_close,
    .co_submit = libqcow_co_submit,
    .check = libqcow_check,
};
