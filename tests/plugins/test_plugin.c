/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_plugin.c - plugins for the loader's tests (tests/test_plugins.sh),
 * one source built several ways (PLUGIN_* below).  The driver is a plain
 * passthrough to lower file 0 (discard ignored, write-zeroes left to the
 * core) whose check fails unless the image is exactly its device size.
 *
 *   PLUGIN_GOOD       "tplug", as a plugin should be
 *   PLUGIN_OLD        struct_size of a struct that ends before .cancel: as
 *                     built against an older header; the check it sets is
 *                     past its struct_size and must never be called
 *   PLUGIN_OLD_FULL   the same driver with its full struct_size: the check,
 *                     which always fails, is called
 *   PLUGIN_FUTURE     api_version 99
 *   PLUGIN_NOSYM      no blkv_plugin_init
 *   PLUGIN_NULL       blkv_plugin_init returns NULL
 *   PLUGIN_RAW        named "raw", like a built-in driver
 *   PLUGIN_SLOW       "tslow": every request takes 2 ms and every third write
 *                     is lost (acknowledged, not written), so that a failure
 *                     is found at once and its shrink takes minutes: for
 *                     tests that interrupt a shrink (tests/test_prop_signal.sh)
 */
#include <blkv/driver.h>

#include <errno.h>
#include <string.h>
#include <time.h>

struct tplug_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *f;
    uint64_t size;
    unsigned writes;
};

static int tplug_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                      struct blkv_caps *caps)
{
    struct tplug_state *s = state;
    int ret;

    s->ctx = ctx;
    s->f = blkv_lower_get(ctx, 0);
    if (create && (ret = blkv_lower_truncate(s->f, size)) < 0)
        return ret;
    s->size = caps->size = blkv_lower_size(s->f);
    return 0;
}

static int tplug_co_submit(void *state, struct blkv_req *req)
{
    struct tplug_state *s = state;
#if defined(PLUGIN_SLOW)
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
#endif

    switch (req->op) {
    case BLKV_OP_READ:
        return blkv_lower_pread(s->f, req->buf, req->len, req->offset);
    case BLKV_OP_WRITE:
#if defined(PLUGIN_SLOW)
        if (++s->writes % 3 == 0)
            return 0;
#endif
        return blkv_lower_pwrite(s->f, req->buf, req->len, req->offset);
    case BLKV_OP_FLUSH:
        return blkv_lower_flush(s->f);
    default:
        return 0;
    }
}

/* Fails always in the OLD variants (it must not be called where it lies
 * past struct_size), else when the image lost its size. */
static int tplug_check(void *state)
{
    struct tplug_state *s = state;
#if defined(PLUGIN_OLD) || defined(PLUGIN_OLD_FULL)
    blkv_error(s->ctx, "tplug: the check was called");
    return -EUCLEAN;
#else
    if (blkv_lower_size(s->f) == s->size)
        return 0;
    blkv_error(s->ctx, "tplug: image size changed");
    return -EUCLEAN;
#endif
}

static const struct blkv_driver tplug_driver = {
#if defined(PLUGIN_OLD)
    .struct_size = offsetof(struct blkv_driver, cancel),
#else
    .struct_size = sizeof(struct blkv_driver),
#endif
#if defined(PLUGIN_FUTURE)
    .api_version = 99,
#else
    .api_version = BLKV_DRIVER_API_VERSION,
#endif
#if defined(PLUGIN_RAW)
    .name = "raw",
#elif defined(PLUGIN_SLOW)
    .name = "tslow",
#else
    .name = "tplug",
#endif
    .description = "test plugin: a passthrough to the lower file",
    .state_size = sizeof(struct tplug_state),
    .in_process = true,
    .open = tplug_open,
    .co_submit = tplug_co_submit,
    .check = tplug_check,
};

#if defined(PLUGIN_NULL)
__attribute__((visibility("default"))) const struct blkv_driver *blkv_plugin_init(void);
const struct blkv_driver *blkv_plugin_init(void)
{
    return (void)tplug_driver, NULL;
}
#elif !defined(PLUGIN_NOSYM)
BLKV_REGISTER_PLUGIN(tplug_driver)
#else
/* keeps the struct referenced */
__attribute__((visibility("default"))) const struct blkv_driver *tplug_something(void);
const struct blkv_driver *tplug_something(void)
{
    return &tplug_driver;
}
#endif
