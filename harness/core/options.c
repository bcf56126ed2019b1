/*
 * options.c - driver specs ("name opt=val ...") and loading a driver struct.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split "name k=v k=v" into ctx (driver and options); 0 or -EINVAL + msg. */
int blkv_core_spec_parse(const char *spec, struct blkv_ctx *ctx, char *err, size_t errlen)
{
    char *s = strdup(spec), *save = NULL, *tok;
    const struct blkv_driver *d;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ctx->spec_copy = s;
    tok = strtok_r(s, " \t,", &save);
    if (!tok) {
        snprintf(err, errlen, "empty driver spec");
        return -EINVAL;
    }
    d = blkv_driver_find(tok);
    if (!d) {
        int n = snprintf(err, errlen, "unknown driver '%s' (drivers:", tok);
        for (size_t i = 0; blkv_drivers[i] && n > 0 && (size_t)n < errlen; i++)
            n += snprintf(err + n, errlen - n, " %s", blkv_drivers[i]->name);
        if (n > 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - n, ")");
        return -EINVAL;
    }
    ctx->drv = d;
    while ((tok = strtok_r(NULL, " \t,", &save))) {
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
            int n = snprintf(err, errlen, "driver %s has no option '%s'", d->name, tok);
            if (d->options && d->options->name && n > 0 && (size_t)n < errlen) {
                n += snprintf(err + n, errlen - n, " (options:");
                for (o = d->options; o->name && n > 0 && (size_t)n < errlen; o++)
                    n += snprintf(err + n, errlen - n, " %s", o->name);
                if (n > 0 && (size_t)n < errlen)
                    snprintf(err + n, errlen - n, ")");
            }
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

int blkv_driver_spec_check(const char *spec, char *err, size_t errlen)
{
    struct blkv_ctx ctx;
    int ret;
    memset(&ctx, 0, sizeof(ctx));
    ret = blkv_core_spec_parse(spec, &ctx, err, errlen);
    free(ctx.spec_copy);
    return ret;
}

/* Copy a driver struct to full size, zero-filling what an older driver lacks. */
int blkv_core_driver_load(struct blkv_run *run, const struct blkv_driver *d, char *err, size_t len)
{
    size_t n = d->struct_size < sizeof(run->drv) ? d->struct_size : sizeof(run->drv);
    memset(&run->drv, 0, sizeof(run->drv));
    memcpy(&run->drv, d, n);
    if (d->api_version == 0 || d->api_version > BLKV_DRIVER_API_VERSION || n < 16) {
        snprintf(err, len, "driver %s: unsupported API version %u", d->name, d->api_version);
        return -EINVAL;
    }
    if (!run->drv.open || (!run->drv.submit == !run->drv.co_submit) ||
        (run->drv.co_submit && !run->drv.in_process)) {
        snprintf(err, len, "driver %s: needs open and exactly one of submit, co_submit",
                 d->name);
        return -EINVAL;
    }
    return 0;
}
