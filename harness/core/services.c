/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * services.c - what the core offers drivers (<blkv/driver.h>): options,
 * error messages, the seed, the initial content, lower files, cancelling
 * a coroutine's lower I/O.
 */
#include "core/core.h"
#include "model/pattern.h"
#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void blkv_error(struct blkv_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    while (ctx->parent) /* a child's message is the run's */
        ctx = ctx->parent;
    if (ctx->error[0])
        return; /* the first error is the cause; later ones are consequences */
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
    va_end(ap);
}

void blkv_check_leaks(struct blkv_ctx *ctx, uint64_t clusters)
{
    ctx->run->leaks += clusters;
}

void blkv_check_range(struct blkv_ctx *ctx, uint64_t off, uint64_t len)
{
    struct blkv_run *run = ctx->run;

    if (run->check_named || !len)
        return; /* the first finding is the one the message names */
    run->check_named = true;
    run->check_range.off = off;
    run->check_range.len = len;
}

const char *blkv_opts(struct blkv_ctx *ctx)
{
    return ctx->opts ? ctx->opts : "";
}

const char *blkv_opt(struct blkv_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->nopts; i++)
        if (strcmp(ctx->opt_name[i], name) == 0)
            return ctx->opt_val[i];
    for (const struct blkv_option *o = ctx->drv->options; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o->def;
    return NULL;
}

int blkv_opt_u64(struct blkv_ctx *ctx, const char *name, uint64_t *out)
{
    const char *v = blkv_opt(ctx, name);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (blkv_parse_u64(v, out) < 0) {
        blkv_error(ctx, "option %s=%s: not a number", name, v);
        return -EINVAL;
    }
    return 0;
}

uint64_t blkv_seed(struct blkv_ctx *ctx)
{
    return ctx->run->h.prog->cfg.seed;
}

void blkv_initial_content(struct blkv_ctx *ctx, void *buf, uint64_t len, uint64_t off)
{
    switch (ctx->run->h.prog->cfg.init) {
    case BLKV_INIT_PATTERN:
        blkv_pattern_fill(buf, BLKV_SRC_INITIAL, off, len);
        break;
    case BLKV_INIT_IMAGE:
        blkv_core_image_read(ctx->run, buf, len, off);
        break;
    default:
        memset(buf, 0, len);
        break;
    }
}

struct blkv_lower *blkv_lower_get(struct blkv_ctx *ctx, unsigned idx)
{
    if (!ctx->run->rt || idx > 1)
        return NULL;
    return blkv_rt_lower(ctx->run->rt, idx);
}

void blkv_co_cancel(struct blkv_req *req)
{
    struct blkv_core_req *r = req->core;
    if (r->co && !r->completed)
        blkv_rt_cancel(r->run->rt, r->co);
}

void blkv_core_image_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
    struct blkv_run *run = opaque;
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(run->image_fd, p, len, (off_t)off);
        if (n <= 0) { /* past the end of the image: zeros */
            memset(p, 0, len);
            return;
        }
        p += n, len -= (uint64_t)n, off += (uint64_t)n;
    }
}

size_t blkv_initial_extents(struct blkv_ctx *ctx, const struct blkv_extent **ext)
{
    *ext = ctx->run->foot;
    return ctx->run->h.prog->cfg.init == BLKV_INIT_ZERO ? 0 : ctx->run->nfoot;
}
