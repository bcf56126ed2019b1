/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * registry.c - the one table of built-in drivers, and specs by name (see
 * registry.h).  A driver is listed here, not registered by a constructor:
 * static fuzz links drop objects nobody refers to.  To add one: declare its
 * struct in registry.h and put it in the table.
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct blkv_driver *const blkv_builtin_drivers[] = {
    &blkv_driver_raw,
    &blkv_driver_buggy,
    &blkv_driver_qcow2,
#if BLKV_HAVE_LIBQCOW
    &blkv_driver_libqcow,
#endif
#if BLKV_HAVE_NBD
    &blkv_driver_nbd,
#endif
    &blkv_driver_file,
    NULL,
};

#define MAX_PLUGINS 64
static const struct blkv_driver *plugins[MAX_PLUGINS];
static size_t nplugins;

const struct blkv_driver *blkv_registry_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; blkv_builtin_drivers[i]; i++)
        if (strcmp(blkv_builtin_drivers[i]->name, name) == 0)
            return blkv_builtin_drivers[i];
    for (size_t i = 0; i < nplugins; i++)
        if (strcmp(plugins[i]->name, name) == 0)
            return plugins[i];
    return NULL;
}

const struct blkv_driver *blkv_registry_plugin(size_t i)
{
    return i < nplugins ? plugins[i] : NULL;
}

const struct blkv_driver *blkv_registry_load(const char *path, char *err, size_t errlen)
{
    const struct blkv_driver *d = blkv_plugin_load(path, err, errlen), *known;

    if (!d)
        return NULL;
    for (size_t i = 0; i < nplugins; i++)
        if (plugins[i] == d)
            return d; /* loaded before */
    known = blkv_registry_find(d->name);
    if (known) {
        const char *from = blkv_plugin_path(known);
        snprintf(err, errlen, "%s: driver name '%s' is taken (by %s%s)", path, d->name,
                 from ? "the plugin " : "a built-in driver", from ? from : "");
        return NULL;
    }
    if (nplugins == MAX_PLUGINS) {
        snprintf(err, errlen, "%s: more than %d plugins", path, MAX_PLUGINS);
        return NULL;
    }
    plugins[nplugins++] = d;
    return d;
}

/* Whether a spec's NAME is a plugin path. */
static int is_path(const char *name, size_t n)
{
    return memchr(name, '/', n) || (n > 3 && !memcmp(name + n - 3, ".so", 3));
}

int blkv_registry_resolve(const char *spec, const struct blkv_driver **drv, const char **opts,
                          char *err, size_t errlen)
{
    const char *p = spec ? spec : "", *end;
    char name[4096];
    size_t n;

    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    for (end = p; *end && *end != ' ' && *end != '\t' && *end != ','; end++)
        ;
    n = (size_t)(end - p);
    if (n == 0) {
        snprintf(err, errlen, "empty driver spec");
        return -EINVAL;
    }
    if (n >= sizeof(name)) {
        snprintf(err, errlen, "driver name too long");
        return -EINVAL;
    }
    memcpy(name, p, n);
    name[n] = 0;
    if (is_path(name, n)) {
        *drv = blkv_registry_load(name, err, errlen);
        if (!*drv)
            return -EINVAL;
    } else if (!(*drv = blkv_registry_find(name))) {
        int m = snprintf(err, errlen, "unknown driver '%s' (drivers:", name);
        for (size_t i = 0; blkv_builtin_drivers[i] && m > 0 && (size_t)m < errlen; i++)
            m += snprintf(err + m, errlen - m, " %s", blkv_builtin_drivers[i]->name);
        for (size_t i = 0; i < nplugins && m > 0 && (size_t)m < errlen; i++)
            m += snprintf(err + m, errlen - m, " %s", plugins[i]->name);
        if (m > 0 && (size_t)m < errlen)
            snprintf(err + m, errlen - m, ")");
        return -EINVAL;
    }
    *opts = end;
    return blkv_driver_opts_check(*drv, *opts, err, errlen);
}

int blkv_run_spec(const struct blkv_program *p, const char *spec, struct blkv_run_opts *o,
                  struct blkv_run_result *res)
{
    char err[512];

    if (!spec)
        spec = p->cfg.driver ? p->cfg.driver : "raw";
    if (blkv_registry_resolve(spec, &o->driver, &o->driver_opts, err, sizeof(err)) < 0) {
        memset(res, 0, sizeof(*res));
        snprintf(res->message, sizeof(res->message), "%s", err);
        res->status = BLKV_RUN_ERROR;
        if (!o->quiet)
            fprintf(o->out ? o->out : stderr, "blkv: %s\n", err);
        return BLKV_RUN_ERROR;
    }
    return blkv_run(p, o, res);
}
