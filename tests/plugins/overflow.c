/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * overflow.c - a driver plugin ("ovf") with a memory bug on purpose: raw
 * over the lower file, except that a write at or past 1 MiB overruns a
 * heap buffer by one byte (in memset, which a sanitizer's interceptor
 * checks even in code built without it).  For tests/test_sanitizer_trace.sh:
 * a sanitizer stops the run, and the trace text of the input is left for
 * `blkv run --load ovf.so` to replay.
 */
#include <blkv/driver.h>

#include <stdlib.h>
#include <string.h>

struct ovf_state {
    struct blkv_lower *f;
};

static int ovf_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                    struct blkv_caps *caps)
{
    struct ovf_state *s = state;
    int ret;

    s->f = blkv_lower_get(ctx, 0);
    if (create && (ret = blkv_lower_truncate(s->f, size)) < 0)
        return ret;
    caps->size = blkv_lower_size(s->f);
    return 0;
}

static int ovf_co_submit(void *state, struct blkv_req *req)
{
    struct ovf_state *s = state;

    switch (req->op) {
    case BLKV_OP_READ:
        return blkv_lower_pread(s->f, req->buf, req->len, req->offset);
    case BLKV_OP_WRITE:
        if (req->offset >= (1u << 20)) {
            /* the bug: a 16-byte header buffer cleared with 17 bytes */
            char *volatile hdr = malloc(16);
            size_t volatile n = 17;
            if (!hdr)
                return -12;
            memset(hdr, 0, n);
            free(hdr);
        }
        return blkv_lower_pwrite(s->f, req->buf, req->len, req->offset);
    case BLKV_OP_FLUSH:
        return blkv_lower_flush(s->f);
    default:
        return 0;
    }
}

static const struct blkv_driver ovf_driver = {
    BLKV_DRIVER_HEADER,
    .name = "ovf",
    .description = "raw with a heap overflow on writes past 1 MiB (a test plugin)",
    .state_size = sizeof(struct ovf_state),
    .in_process = true,
    .open = ovf_open,
    .co_submit = ovf_co_submit,
};

BLKV_REGISTER_PLUGIN(ovf_driver)
