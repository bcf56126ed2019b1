/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * child.c - filters: a driver opens another driver through the core and
 * passes requests down (see <blkv/driver.h>, "filters").
 *
 * A child is a driver struct copied to full size, its own context (options;
 * errors go to the filter's) and its state.  Its requests are core request
 * records on the filter's coroutine stack, marked `child`: blkv_complete
 * only records their result, blkv_co_cancel reaches the coroutine they run
 * on, and the history and the model never see them.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct blkv_child {
    struct blkv_child *next, **prevp; /* the run's list of open children */
    struct blkv_run *run;
    struct blkv_driver drv;
    struct blkv_ctx ctx;
    void *state;
    struct blkv_caps caps;
};

static void child_free(struct blkv_child *c)
{
    *c->prevp = c->next;
    if (c->next)
        c->next->prevp = c->prevp;
    free(c->ctx.spec_copy);
    free(c->ctx.opts);
    free(c->state);
    free(c);
}

int blkv_child_open(struct blkv_ctx *ctx, const struct blkv_driver *drv, const char *opts,
                    uint64_t size, bool create, struct blkv_caps *caps,
                    struct blkv_child **child)
{
    struct blkv_run *run = ctx->run;
    struct blkv_child *c;
    char err[400];
    int ret;

    *child = NULL;
    if (!run->rt) {
        blkv_error(ctx, "%s: a child driver needs an in-process filter", run->drv.name);
        return -ENOTSUP;
    }
    if (!(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->run = run;
    c->ctx.run = run;
    c->ctx.parent = ctx;
    c->next = run->children;
    c->prevp = &run->children;
    if (run->children)
        run->children->prevp = &c->next;
    run->children = c;
    if (blkv_core_driver_copy(&c->drv, drv, err, sizeof(err)) < 0 ||
        blkv_core_opts_parse(&c->drv, opts, &c->ctx, err, sizeof(err)) < 0) {
        blkv_error(ctx, "child: %s", err);
        child_free(c);
        return -EINVAL;
    }
    if (!c->drv.in_process) {
        blkv_error(ctx, "child %s: not an in-process driver", c->drv.name);
        child_free(c);
        return -ENOTSUP;
    }
    if (!(c->state = calloc(1, c->drv.state_size ? c->drv.state_size : 1))) {
        child_free(c);
        return -ENOMEM;
    }
    memset(&c->caps, 0, sizeof(c->caps));
    ret = c->drv.open(c->state, &c->ctx, size, create, &c->caps);
    if (ret < 0) {
        child_free(c);
        return ret;
    }
    if (!blkv_core_caps_ok(&c->caps)) {
        blkv_error(ctx, "child %s: open returned invalid capabilities", c->drv.name);
        if (c->drv.close)
            c->drv.close(c->state);
        child_free(c);
        return -EINVAL;
    }
    *caps = c->caps;
    *child = c;
    return 0;
}

void blkv_child_close(struct blkv_child *c)
{
    if (!c)
        return;
    if (c->drv.close)
        c->drv.close(c->state);
    child_free(c);
}

void blkv_core_children_free(struct blkv_run *run, bool release)
{
    while (run->children) {
        if (release && run->children->drv.release)
            run->children->drv.release(run->children->state);
        child_free(run->children);
    }
}

/* The contract for a child's request: the run's (dispatch.c), and a
 * write-zeroes only where the child has them (the core emulates them for
 * the run's requests, not for a filter's). */
static int child_request_error(const struct blkv_caps *c, enum blkv_op op, uint64_t off,
                               uint64_t len)
{
    int ret = blkv_core_request_error(c, op, off, len);
    if (!ret && op == BLKV_OP_WRITE_ZEROES && !c->write_zeroes)
        ret = -ENOTSUP;
    return ret;
}

int blkv_child_io(struct blkv_child *c, struct blkv_req *parent, enum blkv_op op,
                  uint32_t flags, uint64_t offset, uint64_t len, void *buf)
{
    struct blkv_core_req *pr = parent ? parent->core : NULL;
    struct blkv_core_req r;
    int ret;

    if (op == BLKV_OP_FLUSH)
        offset = len = 0;
    if ((ret = child_request_error(&c->caps, op, offset, len)) < 0)
        return ret;
    memset(&r, 0, sizeof(r));
    r.child = true;
    r.run = c->run;
    r.co = blkv_rt_current(); /* the filter's (pr->co is not set while it first runs) */
    r.req.core = &r;
    r.req.op = op;
    r.req.flags = flags & (c->caps.fua ? BLKV_REQ_FUA | BLKV_REQ_UNMAP : BLKV_REQ_UNMAP);
    r.req.offset = offset;
    r.req.len = len;
    r.req.buf = op == BLKV_OP_READ || op == BLKV_OP_WRITE ? buf : NULL;
    r.req.id = parent ? parent->id : BLKV_REQ_ID_SETUP;
    r.submitted = true;
    if (pr)
        pr->child_req = &r;
    ret = c->drv.co_submit(c->state, &r.req);
    if (pr && pr->child_req == &r)
        pr->child_req = NULL;
    return r.completed ? r.ret : ret; /* a child that completed early said so then */
}

int blkv_child_submit(struct blkv_child *c, struct blkv_req *req)
{
    return blkv_child_io(c, req, req->op, req->flags, req->offset, req->len, req->buf);
}

void blkv_child_cancel(struct blkv_child *c, struct blkv_req *parent)
{
    struct blkv_core_req *pr = parent->core;

    if (pr->child_req && !pr->child_req->completed) {
        if (c->drv.cancel)
            c->drv.cancel(c->state, &pr->child_req->req);
    } else {
        blkv_co_cancel(parent); /* between child requests: the next one sees it */
    }
}

int blkv_child_check(struct blkv_child *c)
{
    return c->drv.check ? c->drv.check(c->state) : 0;
}
