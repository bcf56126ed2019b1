/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * raw.c - format raw over lower file 0: device byte N is lower byte N.
 *
 * The simplest in-process driver, and the reference for the contract checks:
 * options make it declare stricter capabilities (alignment, max transfer,
 * discard semantics), cut requests into pieces that the scheduler interleaves
 * with other requests' pieces, or ignore cancels, so that every path of the
 * core is exercised by a driver known to be correct.
 *
 * On reopen the device size is the lower file's size, rounded down to the
 * alignment: what is on disk is the truth (an image loaded from a host file
 * opens at its own size).
 */
#include <blkv/driver.h>

#include <errno.h>
#include <string.h>

/* Source of zeros for write-zeroes and discard.  Never written; not const
 * so that it lives in .bss rather than in the binary. */
#define RAW_ZERO_CHUNK (256u * 1024)
static unsigned char raw_zeros[RAW_ZERO_CHUNK];

struct raw_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *f;
    uint64_t size;
    uint64_t split;         /* largest lower I/O; 0: whole requests */
    enum blkv_discard discard;
    bool cancel_ignore;
};

static const struct blkv_option raw_options[] = {
    {"align", "1", "request alignment in bytes (a power of two)"},
    {"max-transfer", "0", "largest request in bytes (0: no limit)"},
    {"split", "0", "cut requests into lower I/Os of at most this many bytes (0: don't)"},
    {"discard", "zeroes", "discard semantics: zeroes, zeroes-or-old, unspecified or ignore"},
    {"cancel", "withdraw", "cancel: withdraw the pending lower I/O, or ignore"},
    {NULL, NULL, NULL},
};

/* Parse the options into s and caps; 0 or -EINVAL with a message. */
static int raw_parse(struct raw_state *s, struct blkv_ctx *ctx, struct blkv_caps *caps)
{
    uint64_t align, maxt, split;
    const char *d = blkv_opt(ctx, "discard");
    const char *c = blkv_opt(ctx, "cancel");

    if (blkv_opt_u64(ctx, "align", &align) < 0 || blkv_opt_u64(ctx, "max-transfer", &maxt) < 0 ||
        blkv_opt_u64(ctx, "split", &split) < 0)
        return -EINVAL;
    if (align == 0)
        align = 1;
    if (align & (align - 1) || align > (1u << 20)) {
        blkv_error(ctx, "align=%llu: must be a power of two up to 1M", (unsigned long long)align);
        return -EINVAL;
    }
    if (maxt > BLKV_MAX_REQUEST || maxt % align) {
        blkv_error(ctx, "max-transfer=%llu: must be a multiple of align up to %u",
                   (unsigned long long)maxt, (unsigned)BLKV_MAX_REQUEST);
        return -EINVAL;
    }
    if (!d || !strcmp(d, "zeroes")) {
        s->discard = BLKV_DISCARD_ZEROES;
    } else if (!strcmp(d, "zeroes-or-old")) {
        s->discard = BLKV_DISCARD_ZEROES_OR_OLD;
    } else if (!strcmp(d, "unspecified")) {
        s->discard = BLKV_DISCARD_UNSPECIFIED;
    } else if (!strcmp(d, "ignore")) {
        s->discard = BLKV_DISCARD_IGNORED;
    } else {
        blkv_error(ctx, "discard=%s: expected zeroes, zeroes-or-old, unspecified or ignore", d);
        return -EINVAL;
    }
    if (!c || !strcmp(c, "withdraw")) {
        s->cancel_ignore = false;
    } else if (!strcmp(c, "ignore")) {
        s->cancel_ignore = true;
    } else {
        blkv_error(ctx, "cancel=%s: expected withdraw or ignore", c);
        return -EINVAL;
    }
    s->split = split;
    caps->align = (uint32_t)align;
    caps->max_transfer = (uint32_t)maxt;
    caps->discard = s->discard;
    caps->write_zeroes = true;
    caps->fua = true;
    caps->cancel = !s->cancel_ignore;
    return 0;
}

static int raw_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                    struct blkv_caps *caps)
{
    struct raw_state *s = state;
    int ret;

    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->f = blkv_lower_get(ctx, 0);
    if (!s->f) {
        blkv_error(ctx, "no lower file");
        return -ENODEV;
    }
    if ((ret = raw_parse(s, ctx, caps)) < 0)
        return ret;
    if (create) {
        if ((ret = blkv_lower_truncate(s->f, size)) < 0) {
            blkv_error(ctx, "cannot size the lower file to %llu bytes",
                       (unsigned long long)size);
            return ret;
        }
    } else {
        size = blkv_lower_size(s->f);
    }
    size -= size % caps->align;
    if (size == 0) {
        blkv_error(ctx, "empty image");
        return -EINVAL;
    }
    s->size = caps->size = size;
    return 0;
}

static void raw_close(void *state)
{
    struct raw_state *s = state;
    blkv_lower_flush(s->f); /* nothing to report it to */
}

/* Length of the next piece of a request at pos (split, clamped to what is left). */
static uint64_t raw_piece(const struct raw_state *s, uint64_t left, uint64_t max)
{
    uint64_t n = left;
    if (s->split && n > s->split)
        n = s->split;
    return n > max ? max : n;
}

/* Write zeros over [off, off+len) in pieces. */
static int raw_zero(struct raw_state *s, uint64_t off, uint64_t len)
{
    while (len) {
        uint64_t n = raw_piece(s, len, RAW_ZERO_CHUNK);
        int ret;
        if (blkv_co_cancelled())
            return -ECANCELED;
        if ((ret = blkv_lower_pwrite(s->f, raw_zeros, n, off)) < 0)
            return ret;
        off += n;
        len -= n;
    }
    return 0;
}

static int raw_co_submit(void *state, struct blkv_req *req)
{
    struct raw_state *s = state;
    unsigned char *buf = req->buf;
    uint64_t off = req->offset, len = req->len;
    int ret = 0;

    switch (req->op) {
    case BLKV_OP_READ:
    case BLKV_OP_WRITE:
        while (len && !ret) {
            uint64_t n = raw_piece(s, len, len);
            if (blkv_co_cancelled())
                return -ECANCELED;
            if (req->op == BLKV_OP_READ)
                ret = blkv_lower_pread(s->f, buf, n, off);
            else
                ret = blkv_lower_pwrite(s->f, buf, n, off);
            buf += n;
            off += n;
            len -= n;
        }
        break;
    case BLKV_OP_WRITE_ZEROES:
        ret = raw_zero(s, off, len);
        break;
    case BLKV_OP_DISCARD:
        switch (s->discard) {
        case BLKV_DISCARD_ZEROES:
            ret = raw_zero(s, off, len);
            break;
        case BLKV_DISCARD_ZEROES_OR_OLD:
        case BLKV_DISCARD_UNSPECIFIED: {
            /* Like punching a hole: whole 4 KiB blocks read back as zeros,
             * partial ones keep their data. */
            uint64_t start = (off + 4095) / 4096 * 4096, end = (off + len) / 4096 * 4096;
            if (end > start)
                ret = raw_zero(s, start, end - start);
            break;
        }
        case BLKV_DISCARD_IGNORED:
            break;
        }
        return ret;
    case BLKV_OP_FLUSH:
        return blkv_lower_flush(s->f);
    }
    if (!ret && (req->flags & BLKV_REQ_FUA))
        ret = blkv_lower_flush(s->f);
    return ret;
}

static void raw_cancel(void *state, struct blkv_req *req)
{
    struct raw_state *s = state;
    if (!s->cancel_ignore)
        blkv_co_cancel(req);
}

/* The image is consistent when the lower file still holds the whole device. */
static int raw_check(void *state)
{
    struct raw_state *s = state;
    uint64_t have = blkv_lower_size(s->f);

    if (have >= s->size)
        return 0;
    blkv_error(s->ctx, "lower file holds %llu bytes of a %llu-byte device",
               (unsigned long long)have, (unsigned long long)s->size);
    return -EUCLEAN;
}

const struct blkv_driver blkv_driver_raw = {
    BLKV_DRIVER_HEADER,
    .name = "raw",
    .description = "format raw over the lower file",
    .options = raw_options,
    .state_size = sizeof(struct raw_state),
    .in_process = true,
    .open = raw_open,
    .close = raw_close,
    .co_submit = raw_co_submit,
    .cancel = raw_cancel,
    .check = raw_check,
};
