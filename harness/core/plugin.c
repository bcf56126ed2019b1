/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * plugin.c - loading drivers from shared objects.
 *
 * A plugin exports blkv_plugin_init (BLKV_REGISTER_PLUGIN in
 * <blkv/driver.h>), which returns its driver struct.  The struct is checked
 * and copied to this blkv's full size, zero-filling what a plugin built
 * against an older, smaller struct lacks.  Loaded plugins stay loaded for
 * the life of the process; loading one path twice gives the same driver.
 */
#include "core/core.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plugin {
    struct plugin *next;
    char *path;            /* as given */
    void *handle;
    struct blkv_driver drv; /* full-size copy */
};

static struct plugin *plugins; /* every plugin loaded in this process */

/* dlerror() as one line. */
static const char *dl_message(void)
{
    const char *m = dlerror();
    return m ? m : "unknown error";
}

const struct blkv_driver *blkv_plugin_load(const char *path, char *err, size_t errlen)
{
    const struct blkv_driver *(*entry)(void);
    const struct blkv_driver *d;
    struct plugin *pl;
    char *full, msg[400];
    void *handle, *sym;

    for (pl = plugins; pl; pl = pl->next)
        if (!strcmp(pl->path, path))
            return &pl->drv;
    /* a bare file name is a file here, not a library to search for */
    if (!(full = malloc(strlen(path) + 3))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    sprintf(full, "%s%s", strchr(path, '/') ? "" : "./", path);
    dlerror();
    handle = dlopen(full, RTLD_NOW | RTLD_LOCAL);
    free(full);
    if (!handle) {
        snprintf(err, errlen, "cannot load plugin %s: %s", path, dl_message());
        return NULL;
    }
    sym = dlsym(handle, BLKV_PLUGIN_ENTRY_NAME);
    if (!sym) {
        snprintf(err, errlen, "%s: not a blkv plugin (no symbol %s)", path,
                 BLKV_PLUGIN_ENTRY_NAME);
        dlclose(handle);
        return NULL;
    }
    memcpy(&entry, &sym, sizeof(entry));
    d = entry();
    if (!d) {
        snprintf(err, errlen, "%s: %s returned no driver", path, BLKV_PLUGIN_ENTRY_NAME);
        dlclose(handle);
        return NULL;
    }
    if (!(pl = calloc(1, sizeof(*pl))) || !(pl->path = strdup(path))) {
        free(pl);
        snprintf(err, errlen, "%s: out of memory", path);
        dlclose(handle);
        return NULL;
    }
    if (blkv_core_driver_copy(&pl->drv, d, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s: %s", path, msg);
        free(pl->path);
        free(pl);
        dlclose(handle);
        return NULL;
    }
    pl->handle = handle;
    pl->next = plugins;
    plugins = pl;
    return &pl->drv;
}

const char *blkv_plugin_path(const struct blkv_driver *d)
{
    for (struct plugin *pl = plugins; pl; pl = pl->next)
        if (&pl->drv == d)
            return pl->path;
    return NULL;
}
