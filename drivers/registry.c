/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * registry.c - the one table of built-in drivers, and specs by name (see
 * registry.h).  A driver is listed here, not registered by a constructor:
 * static fuzz links drop objects nobody refers to.  To add one: declare its
 * struct in registry.h and put it in the table.
 */
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
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

/* splitmix64's finalizer: every bit of v stirred into every bit. */
static uint64_t registry_mix(uint64_t v)
{
    v += UINT64_C(0x9e3779b97f4a7c15);
    v = (v ^ (v >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    v = (v ^ (v >> 27)) * UINT64_C(0x94d049bb133111eb);
    return v ^ (v >> 31);
}

/*
 * The L1 entries of a new image whose metadata ends `room` clusters short
 * of where the allocator must make a new refcount structure, for cluster
 * size cs with 64-bit refcounts (a block counts cs/8 clusters, a table
 * cluster names cs/8 blocks), or 0 when that does not fit a device of
 * `size` bytes.  qcow2_create lays out the header, one refcount table
 * cluster, nb refcount blocks and then the L1 table, so the L1 table's
 * length places the end: with 512-byte clusters, at the end of what one
 * table cluster reaches (4096 clusters; the table grows), else at the end
 * of the first block (a second block is made).  The table fills its
 * clusters: a full L1.
 */
static uint64_t registry_l1_room(uint64_t size, uint32_t cs, uint64_t room)
{
    uint64_t per = cs / 8, end = cs == 512 ? per * per : per, nb = cs == 512 ? per : 1;
    uint64_t l1c = end - room - 2 - nb, need = ((size + cs - 1) / cs + per - 1) / per;

    return l1c * per >= need && l1c * per <= (UINT64_C(32) << 20) / 8 ? l1c * per : 0;
}

void blkv_qcow2_opts_draw(const struct blkv_program *p, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len)
{
    uint64_t s = p->cfg.seed, h = registry_mix(s), l1 = 0;
    unsigned version = s & 1 || !allow_v3 ? 2 : 3;
    unsigned refbits = 1u << ((s >> 1) % 7);
    uint32_t cluster = p->cfg.grain;
    unsigned l2n, rcn, cmax;
    char l1opt[32] = "";

    if (cluster < 512)
        cluster = 512;
    if (cluster > (2u << 20))
        cluster = 2u << 20;
    /* One program in 8 with clusters of 8K or less (other bits of the same
     * seed): an image that grows its refcount table or makes a new
     * refcount block within the first 16 new clusters, with 64-bit
     * refcounts and a longer L1 table; the program's data stays within
     * its budget. */
    if (allow_v3 && cluster <= 8192 && (h >> 61) == 0 &&
        (l1 = registry_l1_room(p->cfg.size, cluster, (h >> 57) & 15))) {
        version = 3;
        refbits = 64;
        snprintf(l1opt, sizeof(l1opt), " l1-size=%" PRIu64, l1);
    }
    if (version == 2)
        refbits = 16; /* version 2 has 16-bit refcounts only */
    /* 2 to 5 tables per cache, but at most 4 MiB of them for large
     * clusters (2 at 2 MiB, 4 at 1 MiB): a cache entry is a whole cluster,
     * so ten 2 MiB tables were a fifth of such a program's memory */
    l2n = 2 + (unsigned)((s >> 7) & 3), rcn = 2 + (unsigned)((s >> 9) & 3);
    cmax = (4u << 20) / cluster < 2 ? 2 : (4u << 20) / cluster;
    l2n = l2n < cmax ? l2n : cmax, rcn = rcn < cmax ? rcn : cmax;
    snprintf(buf, len,
             "version=%u cluster-size=%" PRIu32 " refcount-bits=%u lazy-refcounts=%s "
             "backing=%s l2-cache=%u refcount-cache=%u%s",
             version, cluster, refbits, version == 3 && (s >> 4 & 1) ? "on" : "off",
             backing[(s >> 5) & 3], l2n, rcn, l1opt);
}

/* qcow2_fuzzer's options. */
static void registry_vary_qcow2(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const backing[] = {"none", "none", "raw", "qcow2"};
    blkv_qcow2_opts_draw(p, true, backing, buf, len);
}

#if BLKV_HAVE_LIBQCOW
/* libqcow_fuzzer's by default. */
static void registry_vary_libqcow(const struct blkv_program *p, char *buf, size_t len)
{
    static const char *const none[] = {"none", "none", "none", "none"};
    blkv_qcow2_opts_draw(p, false, none, buf, len);
}
#endif

void (*blkv_registry_vary(const struct blkv_driver *d))(const struct blkv_program *p, char *buf,
                                                        size_t len)
{
    if (d == &blkv_driver_qcow2)
        return registry_vary_qcow2;
#if BLKV_HAVE_LIBQCOW
    if (d == &blkv_driver_libqcow)
        return registry_vary_libqcow;
#endif
    return NULL;
}
