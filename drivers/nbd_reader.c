/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd_reader.c - libyal's readers on the image file of a server=qsd run.
 *
 * Each library is behind three calls (open, read, close) that turn its
 * error chain into one line; open also checks the media size against the
 * device's.  libvmdk opens the extent files a descriptor names from the
 * directory of the descriptor (monolithicSparse has its one extent in the
 * same file).  Which libraries exist is fixed at build time
 * (BLKV_HAVE_LIBQCOW, _LIBVMDK, _LIBVHDI); a reader that is not built in
 * is refused by nbd_reader_kind with a message that says so.
 */
#define _GNU_SOURCE
#include <blkv/driver.h>

#include "nbd_reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#ifdef BLKV_HAVE_LIBQCOW
#include <libqcow.h>
#endif
#ifdef BLKV_HAVE_LIBVMDK
#include <libvmdk.h>
#endif
#ifdef BLKV_HAVE_LIBVHDI
#include <libvhdi.h>
#endif

struct nbd_reader {
    struct blkv_ctx *ctx;
    enum nbd_reader_kind kind;
    void *obj; /* libqcow_file_t, libvmdk_handle_t or libvhdi_file_t */
};

/* An error chain's text on one line (libyal's lines joined). */
static __attribute__((unused)) void nbd_reader_flat(char *msg)
{
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static void nbd_reader_say(struct blkv_ctx *ctx, const char *lib, const char *msg,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void nbd_reader_say(struct blkv_ctx *ctx, const char *lib, const char *msg,
                           const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    blkv_error(ctx, "%s: %s%s%s", lib, what, msg && *msg ? ": " : "", msg ? msg : "");
}

/* ---- libqcow ------------------------------------------------------------ */

#ifdef BLKV_HAVE_LIBQCOW
static void rq_msg(libqcow_error_t **err, char *msg, size_t len)
{
    msg[0] = 0;
    if (*err) {
        libqcow_error_backtrace_sprint(*err, msg, len);
        libqcow_error_free(err);
        nbd_reader_flat(msg);
    }
}

static void rq_close(void *obj)
{
    libqcow_file_t *f = obj;
    libqcow_error_t *err = NULL;

    if (libqcow_file_close(f, &err) != 0)
        libqcow_error_free(&err);
    err = NULL;
    if (libqcow_file_free(&f, &err) != 1)
        libqcow_error_free(&err);
}

static int rq_open(const char *path, void **obj, uint64_t *size, char *msg, size_t len,
                   const char **what)
{
    libqcow_file_t *f = NULL;
    libqcow_error_t *err = NULL;

    libqcow_notify_set_verbose(0);
    *what = "cannot initialise a file";
    if (libqcow_file_initialize(&f, &err) != 1)
        goto fail;
    *what = "cannot open the image";
    if (libqcow_file_open(f, path, libqcow_get_access_flags_read(), &err) != 1)
        goto fail;
    *what = "cannot get the media size";
    if (libqcow_file_get_media_size(f, size, &err) != 1)
        goto fail;
    *obj = f;
    return 0;
fail:
    rq_msg(&err, msg, len);
    if (f)
        rq_close(f);
    return -EIO;
}

static ssize_t rq_read(void *obj, void *buf, size_t n, uint64_t off, char *msg, size_t len)
{
    libqcow_error_t *err = NULL;
    ssize_t r = libqcow_file_read_buffer_at_offset(obj, buf, n, (off64_t)off, &err);
    rq_msg(&err, msg, len);
    return r;
}
#endif

/* ---- libvmdk ------------------------------------------------------------ */

#ifdef BLKV_HAVE_LIBVMDK
static void rk_msg(libvmdk_error_t **err, char *msg, size_t len)
{
    msg[0] = 0;
    if (*err) {
        libvmdk_error_backtrace_sprint(*err, msg, len);
        libvmdk_error_free(err);
        nbd_reader_flat(msg);
    }
}

static void rk_close(void *obj)
{
    libvmdk_handle_t *h = obj;
    libvmdk_error_t *err = NULL;

    if (libvmdk_handle_close(h, &err) != 0)
        libvmdk_error_free(&err);
    err = NULL;
    if (libvmdk_handle_free(&h, &err) != 1)
        libvmdk_error_free(&err);
}

static int rk_open(const char *path, void **obj, uint64_t *size, char *msg, size_t len,
                   const char **what)
{
    libvmdk_handle_t *h = NULL;
    libvmdk_error_t *err = NULL;

    libvmdk_notify_set_verbose(0);
    *what = "cannot initialise a handle";
    if (libvmdk_handle_initialize(&h, &err) != 1)
        goto fail;
    *what = "cannot open the image";
    if (libvmdk_handle_open(h, path, libvmdk_get_access_flags_read(), &err) != 1)
        goto fail;
    *what = "cannot open the extent files";
    if (libvmdk_handle_open_extent_data_files(h, &err) != 1)
        goto fail;
    *what = "cannot get the media size";
    if (libvmdk_handle_get_media_size(h, size, &err) != 1)
        goto fail;
    *obj = h;
    return 0;
fail:
    rk_msg(&err, msg, len);
    if (h)
        rk_close(h);
    return -EIO;
}

static ssize_t rk_read(void *obj, void *buf, size_t n, uint64_t off, char *msg, size_t len)
{
    libvmdk_error_t *err = NULL;
    ssize_t r = libvmdk_handle_read_buffer_at_offset(obj, buf, n, (off64_t)off, &err);
    rk_msg(&err, msg, len);
    return r;
}
#endif

/* ---- libvhdi ------------------------------------------------------------ */

#ifdef BLKV_HAVE_LIBVHDI
static void rh_msg(libvhdi_error_t **err, char *msg, size_t len)
{
    msg[0] = 0;
    if (*err) {
        libvhdi_error_backtrace_sprint(*err, msg, len);
        libvhdi_error_free(err);
        nbd_reader_flat(msg);
    }
}

static void rh_close(void *obj)
{
    libvhdi_file_t *f = obj;
    libvhdi_error_t *err = NULL;

    if (libvhdi_file_close(f, &err) != 0)
        libvhdi_error_free(&err);
    err = NULL;
    if (libvhdi_file_free(&f, &err) != 1)
        libvhdi_error_free(&err);
}

static int rh_open(const char *path, void **obj, uint64_t *size, char *msg, size_t len,
                   const char **what)
{
    libvhdi_file_t *f = NULL;
    libvhdi_error_t *err = NULL;

    libvhdi_notify_set_verbose(0);
    *what = "cannot initialise a file";
    if (libvhdi_file_initialize(&f, &err) != 1)
        goto fail;
    *what = "cannot open the image";
    if (libvhdi_file_open(f, path, libvhdi_get_access_flags_read(), &err) != 1)
        goto fail;
    *what = "cannot get the media size";
    if (libvhdi_file_get_media_size(f, size, &err) != 1)
        goto fail;
    *obj = f;
    return 0;
fail:
    rh_msg(&err, msg, len);
    if (f)
        rh_close(f);
    return -EIO;
}

static ssize_t rh_read(void *obj, void *buf, size_t n, uint64_t off, char *msg, size_t len)
{
    libvhdi_error_t *err = NULL;
    ssize_t r = libvhdi_file_read_buffer_at_offset(obj, buf, n, (off64_t)off, &err);
    rh_msg(&err, msg, len);
    return r;
}
#endif

/* ---- the table ---------------------------------------------------------- */

struct nbd_reader_lib {
    const char *name;
    const char *formats; /* the QEMU formats it reads, ' '-separated */
    int (*open)(const char *path, void **obj, uint64_t *size, char *msg, size_t len,
                const char **what);
    ssize_t (*read)(void *obj, void *buf, size_t n, uint64_t off, char *msg, size_t len);
    void (*close)(void *obj);
};

static const struct nbd_reader_lib nbd_reader_libs[] = {
    [NBD_READER_LIBQCOW] = {.name = "libqcow", .formats = "qcow2",
#ifdef BLKV_HAVE_LIBQCOW
                            .open = rq_open, .read = rq_read, .close = rq_close,
#endif
    },
    [NBD_READER_LIBVMDK] = {.name = "libvmdk", .formats = "vmdk",
#ifdef BLKV_HAVE_LIBVMDK
                            .open = rk_open, .read = rk_read, .close = rk_close,
#endif
    },
    [NBD_READER_LIBVHDI] = {.name = "libvhdi", .formats = "vpc vhdx",
#ifdef BLKV_HAVE_LIBVHDI
                            .open = rh_open, .read = rh_read, .close = rh_close,
#endif
    },
};

static bool nbd_reader_word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
            return true;
    return false;
}

const char *nbd_reader_name(enum nbd_reader_kind kind)
{
    return kind > NBD_READER_NONE && kind <= NBD_READER_LIBVHDI ? nbd_reader_libs[kind].name
                                                                 : "none";
}

int nbd_reader_kind(struct blkv_ctx *ctx, const char *name, const char *format)
{
    if (!name || !strcmp(name, "none"))
        return NBD_READER_NONE;
    for (int k = NBD_READER_LIBQCOW; k <= NBD_READER_LIBVHDI; k++) {
        const struct nbd_reader_lib *l = &nbd_reader_libs[k];
        if (strcmp(name, l->name))
            continue;
        if (!nbd_reader_word_in(l->formats, format)) {
            blkv_error(ctx, "reader=%s: reads format %s, not %s", name, l->formats, format);
            return -EINVAL;
        }
        if (!l->open) {
            blkv_error(ctx, "reader=%s: not built in (%s-dev was not found at build time)",
                       name, name);
            return -ENOTSUP;
        }
        return k;
    }
    blkv_error(ctx, "reader=%s: expected none, libqcow (qcow2), libvmdk (vmdk) or libvhdi"
                    " (vpc, vhdx)", name);
    return -EINVAL;
}

int nbd_reader_open(struct blkv_ctx *ctx, enum nbd_reader_kind kind, const char *path,
                    uint64_t size, struct nbd_reader **out)
{
    const struct nbd_reader_lib *l = &nbd_reader_libs[kind];
    struct nbd_reader *r;
    const char *what = "";
    char msg[2048];
    uint64_t msize = 0;
    int ret;

    *out = NULL;
    if (!(r = calloc(1, sizeof(*r))))
        return -ENOMEM;
    r->ctx = ctx;
    r->kind = kind;
    if ((ret = l->open(path, &r->obj, &msize, msg, sizeof(msg), &what)) < 0) {
        nbd_reader_say(ctx, l->name, msg, "%s %s", what, path);
        free(r);
        return ret;
    }
    if (msize != size) {
        nbd_reader_say(ctx, l->name, NULL, "media size of %s is %" PRIu64 ", the device's %"
                       PRIu64, path, msize, size);
        nbd_reader_close(r);
        return -EIO;
    }
    *out = r;
    return 0;
}

int nbd_reader_read(struct nbd_reader *r, void *buf, uint64_t len, uint64_t off, uint64_t id)
{
    const struct nbd_reader_lib *l = &nbd_reader_libs[r->kind];
    char msg[2048];
    ssize_t n = l->read(r->obj, buf, (size_t)len, off, msg, sizeof(msg));

    if (n == (ssize_t)len)
        return 0;
    nbd_reader_say(r->ctx, l->name, n < 0 ? msg : NULL,
                   "read #%" PRIu64 " offset=%" PRIu64 " bytes=%" PRIu64 " returned %zd", id,
                   off, len, n);
    return -EIO;
}

void nbd_reader_close(struct nbd_reader *r)
{
    if (!r)
        return;
    if (r->obj)
        nbd_reader_libs[r->kind].close(r->obj);
    free(r);
}
