/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * options.c - a driver's options ("opt=val opt=val") and loading a driver
 * struct.  The core never looks a driver up: it is handed the struct.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Append " name" for each of d's options to err (after n bytes). */
static void list_options(const struct blkv_driver *d, char *err, size_t errlen, int n)
{
    if (!d->options || !d->options->name || n < 0 || (size_t)n >= errlen)
        return;
    n += snprintf(err + n, errlen - n, " (options:");
    for (const struct blkv_option *o = d->options; o->name && n > 0 && (size_t)n < errlen; o++)
        n += snprintf(err + n, errlen - n, " %s", o->name);
    if (n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - n, ")");
}

int blkv_core_opts_parse(const struct blkv_driver *d, const char *opts, struct blkv_ctx *ctx,
                         char *err, size_t errlen)
{
    char *s = strdup(opts ? opts : ""), *save = NULL, *tok;

    free(ctx->opts);
    ctx->opts = strdup(opts ? opts : "");
    if (!s || !ctx->opts) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ctx->drv = d;
    ctx->spec_copy = s;
    ctx->nopts = 0;
    for (tok = strtok_r(s, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        char *eq = strchr(tok, '=');
        const struct blkv_option *o;
        if (!eq || eq == tok) {
            snprintf(err, errlen, "driver %s: option '%s' is not name=value", d->name, tok);
            return -EINVAL;
        }
        *eq = 0;
        for (o = d->options; o && o->name; o++)
            if (strcmp(o->name, tok) == 0)
                break;
        if (!o || !o->name) {
            list_options(d, err, errlen, snprintf(err, errlen, "driver %s has no option '%s'",
                                                  d->name, tok));
            return -EINVAL;
        }
        if (ctx->nopts == BLKV_MAX_OPTIONS) {
            snprintf(err, errlen, "driver %s: too many options", d->name);
            return -EINVAL;
        }
        for (size_t i = 0; i < ctx->nopts; i++)
            if (strcmp(ctx->opt_name[i], tok) == 0) {
                snprintf(err, errlen, "driver %s: option '%s' given twice", d->name, tok);
                return -EINVAL;
            }
        ctx->opt_name[ctx->nopts] = tok;
        ctx->opt_val[ctx->nopts++] = eq + 1;
    }
    return 0;
}

int blkv_core_driver_copy(struct blkv_driver *out, const struct blkv_driver *d, char *err,
                          size_t len)
{
    const char *name = d->struct_size >= offsetof(struct blkv_driver, description) && d->name
                           ? d->name : "(unnamed)";
    size_t n;

    if (d->api_version == 0 || d->api_version > BLKV_DRIVER_API_VERSION) {
        snprintf(err, len, "driver %s: API version %u is not supported (this blkv supports 1 to "
                 "%u)", name, d->api_version, BLKV_DRIVER_API_VERSION);
        return -EINVAL;
    }
    if (d->struct_size < BLKV_DRIVER_MIN_SIZE) {
        snprintf(err, len, "driver %s: struct_size %u is smaller than the first API version's "
                 "(%zu)", name, d->struct_size, (size_t)BLKV_DRIVER_MIN_SIZE);
        return -EINVAL;
    }
    n = d->struct_size < sizeof(*out) ? d->struct_size : sizeof(*out);
    memset(out, 0, sizeof(*out));
    memcpy(out, d, n);
    if (!out->name || !out->name[0]) {
        snprintf(err, len, "a driver has no name");
        return -EINVAL;
    }
    if (!out->open || (!out->submit == !out->co_submit) || (out->co_submit && !out->in_process)) {
        snprintf(err, len, "driver %s: needs open and exactly one of submit, co_submit (and "
                 "co_submit only with in_process)", out->name);
        return -EINVAL;
    }
    return 0;
}

int blkv_driver_opts_check(const struct blkv_driver *d, const char *opts, char *err,
                           size_t errlen)
{
    struct blkv_driver full;
    struct blkv_ctx ctx;
    int ret;

    if (!d) {
        snprintf(err, errlen, "no driver");
        return -EINVAL;
    }
    if ((ret = blkv_core_driver_copy(&full, d, err, errlen)) < 0)
        return ret;
    memset(&ctx, 0, sizeof(ctx));
    ret = blkv_core_opts_parse(&full, opts, &ctx, err, errlen);
    free(ctx.spec_copy);
    free(ctx.opts);
    return ret;
}

char *blkv_driver_spec_format(const struct blkv_driver *d, const char *opts)
{
    const char *name = d && d->name ? d->name : "?";
    size_t n;
    char *s;

    while (opts && (*opts == ' ' || *opts == '\t'))
        opts++;
    n = strlen(name) + (opts && *opts ? strlen(opts) + 1 : 0) + 1;
    if (!(s = malloc(n)))
        return NULL;
    snprintf(s, n, "%s%s%s", name, opts && *opts ? " " : "", opts && *opts ? opts : "");
    return s;
}
