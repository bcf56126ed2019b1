/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dispatch.c - the dispatch layer: every rule of the request contract in one
 * place.  A request is checked against the driver's capabilities before the
 * driver sees it (a malformed one completes at once with the error the raw
 * model gives), mapped to what the driver supports (write-zeroes emulated,
 * FUA dropped when not honoured, discard per its declared semantics),
 * registered with the model, and handed to the driver; its completion is
 * checked against the model, return value first, then read data.
 */
#include "core/core.h"
#include "model/pattern.h"
#include "runtime/bufpool.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads start out filled with this, so bytes a driver never wrote show up. */
#define POISON 0xa5
/* Requests wait before submission while this many bytes are in flight. */
#define MAX_INFLIGHT_BYTES (UINT64_C(64) << 20)

static bool is_write_like(enum blkv_op op)
{
    return op == BLKV_OP_WRITE || op == BLKV_OP_WRITE_ZEROES || op == BLKV_OP_DISCARD;
}

/* Whether `ret` is an acceptable outcome for r. */
static bool retval_ok(struct blkv_run *run, struct blkv_core_req *r, int ret)
{
    if (r->expect_err)
        return ret == r->expect_err;
    if (ret == 0)
        return true;
    if (ret > 0)
        return false;
    if (ret == -ECANCELED && r->cancelled)
        return true;
    if (run->h.opts->untrusted) /* an untrusted image may fail anything */
        return blkv_core_is_errno(ret);
    /* after an injected fault a driver may fail anything */
    if (run->h.caps.may_fail || run->ext_faults)
        return true;
    return run->rt && blkv_rt_faults(run->rt) > 0;
}

void blkv_complete(struct blkv_req *req, int ret)
{
    struct blkv_core_req *r = req->core;
    struct blkv_run *run = r->run;
    bool ok;

    if (r->child) { /* a filter's request to its child: the filter takes its result */
        r->completed = true;
        r->ret = ret;
        return;
    }
    if (r->lost_at) /* swallowed by a power loss: nobody hears of it */
        return;

    if (r->completed) {
        if (!run->h.failed)
            blkv_report_other(&run->h, r, "double-completion",
                              "request completed twice (first %d, then %d)", r->ret, ret);
        return;
    }
    r->completed = true;
    r->ret = ret;
    run->inflight--;
    run->inflight_bytes -= r->req.op == BLKV_OP_FLUSH ? 0 : r->req.len;
    if (r->setup)
        return;
    r->t_complete = ++run->clock;
    ok = ret == 0;

    if (!run->h.failed && !retval_ok(run, r, ret))
        blkv_report_retval(&run->h, r, r->expect_err);

    if (r->in_model && run->h.model) {
        blkv_model_complete(run->h.model, BLKV_SRC_OF_REQ(r->req.id), ok && !r->expect_err,
                            r->evicts, r->t_complete);
        if (ok && !r->expect_err && (r->req.flags & BLKV_REQ_FUA)) /* durable now */
            blkv_model_durable(run->h.model, BLKV_SRC_OF_REQ(r->req.id));
    }
    if (r->req.op == BLKV_OP_FLUSH && ok && run->h.model)
        blkv_model_flush(run->h.model, r->t_submit, r->t_complete);

    if (r->req.op == BLKV_OP_READ && !r->expect_err && run->h.model) {
        if (ok && !run->h.failed) {
            struct blkv_mismatch mm;
            if (blkv_model_read_check(run->h.model, r->req.id, r->req.offset, r->req.len, r->data,
                                      r->t_submit, r->t_complete, &mm)) {
                run->h.res->stats.reads_checked++;
                run->h.res->stats.bytes_verified += r->req.len;
            } else {
                blkv_report_mismatch(&run->h, r, &mm);
            }
        } else {
            blkv_model_read_abandon(run->h.model, r->t_submit);
        }
    }
    /* A coroutine may still run after completion (a driver that completed
     * early); the buffer stays valid until both are done. */
    if (!r->co_running) {
        blkv_buf_put(r->data, r->data_len);
        r->data = NULL;
    }
}

/* ---- submission: the dispatch layer -------------------------------------- */

void blkv_core_co_submit_entry(void *arg)
{
    struct blkv_core_req *r = arg;
    struct blkv_run *run = r->run;
    int ret = run->drv.co_submit(run->state, &r->req);
    r->co_running = false;
    if (!r->completed) {
        blkv_complete(&r->req, ret);
    } else if (!r->setup) {
        /* the driver completed it itself; its return is ignored */
        blkv_buf_put(r->data, r->data_len);
        r->data = NULL;
    }
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* serialize-overlaps: whether r must wait for an in-flight request. */
static bool must_wait(struct blkv_run *run, const struct blkv_pop *op)
{
    bool w = op->code != BLKV_P_READ;
    for (uint64_t i = 0; i < run->h.next_req; i++) {
        struct blkv_core_req *q = &run->h.reqs[i];
        if (!q->submitted || q->completed || q->req.op == BLKV_OP_FLUSH)
            continue;
        if ((w || is_write_like(q->req.op)) &&
            ranges_overlap(op->offset, op->len, q->req.offset, q->req.len))
            return true;
    }
    return false;
}

bool blkv_core_caps_ok(struct blkv_caps *c)
{
    if (c->align == 0)
        c->align = 1;
    if (c->max_transfer == 0 || c->max_transfer > BLKV_MAX_REQUEST)
        c->max_transfer = BLKV_MAX_REQUEST;
    return blkv_is_pow2(c->align) && c->align <= (1u << 20) &&
           (!c->atomic || blkv_is_pow2(c->atomic)) && (!c->grain || blkv_is_pow2(c->grain)) &&
           c->max_transfer >= c->align &&
           c->size <= BLKV_MAX_DEVICE_SIZE;
}

unsigned blkv_core_atomic(const struct blkv_caps *c, unsigned want)
{
    unsigned promised = c->atomic ? c->atomic : 1;
    want = want ? want : 1;
    return want < promised ? want : promised;
}

int blkv_core_request_error(const struct blkv_caps *c, enum blkv_op op, uint64_t off,
                            uint64_t len)
{
    if (op == BLKV_OP_FLUSH)
        return 0;
    if (len == 0 || len > c->max_transfer || off > c->size || len > c->size - off)
        return -EINVAL;
    if ((off | len) & (c->align - 1))
        return -EINVAL;
    if (c->read_only && op != BLKV_OP_READ)
        return -EROFS;
    return 0;
}

void blkv_core_submit(struct blkv_run *run, const struct blkv_pop *op)
{
    struct blkv_core_req *r;
    enum blkv_op kind = (enum blkv_op)blkv_opinfo(op->code)->req;
    uint64_t len = kind == BLKV_OP_FLUSH ? 0 : op->len;

    /* wait for room: queue depth, bytes in flight, serialized overlaps */
    while (!run->stuck && run->inflight &&
           (run->inflight >= run->h.prog->cfg.qd ||
            run->inflight_bytes + len > MAX_INFLIGHT_BYTES ||
            (run->h.prog->cfg.serialize && kind != BLKV_OP_FLUSH && must_wait(run, op))))
        blkv_core_progress(run);
    if (run->stuck)
        return;

    r = &run->h.reqs[run->h.next_req];
    memset(r, 0, sizeof(*r));
    r->run = run;
    r->op = run->h.cur_op;
    r->req.core = r;
    r->req.id = run->h.next_req++;
    r->req.op = kind;
    r->req.offset = kind == BLKV_OP_FLUSH ? 0 : op->offset;
    r->req.len = len;
    r->expect_err = blkv_core_request_error(&run->h.caps, kind, r->req.offset, len);
    if (kind == BLKV_OP_WRITE && (op->flags & BLKV_P_FUA) && run->h.caps.fua)
        r->req.flags |= BLKV_REQ_FUA;
    if (kind == BLKV_OP_WRITE_ZEROES) {
        if ((op->flags & BLKV_P_FUA) && run->h.caps.fua)
            r->req.flags |= BLKV_REQ_FUA;
        if (op->flags & BLKV_P_UNMAP)
            r->req.flags |= BLKV_REQ_UNMAP;
    }
    r->submitted = true;
    r->t_submit = ++run->clock;
    run->checked = false;
    run->inflight++;
    run->inflight_bytes += len;
    run->h.res->stats.requests++;

    if (r->expect_err) {
        run->h.res->stats.malformed++;
        blkv_complete(&r->req, r->expect_err); /* the driver never sees it */
        return;
    }

    switch (kind) {
    case BLKV_OP_READ:
        r->data = blkv_buf_get(r->data_len = len);
        if (r->data && run->h.model)
            memset(r->data, POISON, len);
        break;
    case BLKV_OP_WRITE:
        r->data = blkv_buf_get(r->data_len = len);
        if (r->data && run->h.model)
            blkv_pattern_fill(r->data, BLKV_SRC_OF_REQ(r->req.id), op->offset, len);
        else if (r->data)
            memset(r->data, 0, len);
        r->in_model = true, r->kind = BLKV_SRC_PATTERN, r->evicts = true;
        break;
    case BLKV_OP_WRITE_ZEROES:
        r->in_model = true, r->kind = BLKV_SRC_ZEROES, r->evicts = true;
        if (!run->h.caps.write_zeroes) { /* emulate with a write of zeros */
            r->req.op = BLKV_OP_WRITE;
            r->req.flags &= ~BLKV_REQ_UNMAP;
            if ((r->data = blkv_buf_get(r->data_len = len)))
                memset(r->data, 0, len);
        }
        break;
    case BLKV_OP_DISCARD:
        switch (run->h.caps.discard) {
        case BLKV_DISCARD_IGNORED:
            break;
        case BLKV_DISCARD_ZEROES:
            r->in_model = true, r->kind = BLKV_SRC_ZEROES, r->evicts = true;
            break;
        case BLKV_DISCARD_ZEROES_OR_OLD:
            r->in_model = true, r->kind = BLKV_SRC_ZEROES, r->evicts = false;
            break;
        case BLKV_DISCARD_UNSPECIFIED:
            r->in_model = true, r->kind = BLKV_SRC_ANY, r->evicts = true;
            break;
        }
        break;
    case BLKV_OP_FLUSH:
        break;
    }
    if ((kind == BLKV_OP_READ || kind == BLKV_OP_WRITE ||
         (kind == BLKV_OP_WRITE_ZEROES && r->req.op == BLKV_OP_WRITE)) && !r->data) {
        fprintf(stderr, "blkv: out of memory for a %" PRIu64 "-byte request\n", len);
        abort();
    }
    r->req.buf = r->data;
    if (r->in_model && run->h.model)
        blkv_model_submit(run->h.model, BLKV_SRC_OF_REQ(r->req.id), r->kind, r->req.offset, len,
                          r->t_submit);
    if (kind == BLKV_OP_READ && run->h.model)
        blkv_model_read_start(run->h.model, r->t_submit);

    if (run->drv.co_submit) {
        r->co_running = true;
        r->co = blkv_rt_spawn(run->rt, blkv_core_co_submit_entry, r, &r->req);
        if (!r->co) {
            fprintf(stderr, "blkv: out of memory for a coroutine\n");
            abort();
        }
    } else {
        run->drv.submit(run->state, &r->req);
    }
}
