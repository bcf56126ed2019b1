/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * timeline.c - the run's timeline (<blkv/run.h>, struct blkv_timeline): a
 * copy of the history's requests in the public form, with the ops' times
 * (recorded by the core) and what the report found (recorded by the
 * report), for `blkv show` and the pictures saved beside reproducers.
 */
#include "report/history.h"
#include "model/pattern.h"

#include <stdlib.h>
#include <string.h>

struct blkv_timeline *blkv_timeline_new(size_t nops)
{
    struct blkv_timeline *tl = calloc(1, sizeof(*tl));

    if (!tl)
        return NULL;
    tl->ops = calloc(nops ? nops : 1, sizeof(*tl->ops));
    if (!tl->ops) {
        free(tl);
        return NULL;
    }
    tl->nops = nops;
    tl->fail_req = tl->found = tl->missing = BLKV_TL_NONE;
    return tl;
}

void blkv_timeline_free(struct blkv_timeline *tl)
{
    if (!tl)
        return;
    free(tl->ops);
    free(tl->reqs);
    free(tl);
}

uint64_t blkv_timeline_src(uint32_t src)
{
    return src == BLKV_SRC_INITIAL ? BLKV_TL_INITIAL : BLKV_REQ_OF_SRC(src);
}

void blkv_timeline_sync(struct blkv_history *h)
{
    struct blkv_timeline *tl = h->timeline;
    struct blkv_timeline_req *rs;

    if (!tl)
        return;
    rs = realloc(tl->reqs, (h->next_req ? h->next_req : 1) * sizeof(*rs));
    if (!rs)
        return; /* the copy made before stays */
    tl->reqs = rs;
    tl->nreqs = h->next_req;
    for (uint64_t i = 0; i < h->next_req; i++) {
        const struct blkv_core_req *q = &h->reqs[i];
        int kind = blkv_opinfo(h->prog->ops[q->op].code)->req;
        rs[i] = (struct blkv_timeline_req){
            .op = q->op,
            .kind = kind >= 0 ? (enum blkv_op)kind : q->req.op,
            .flags = q->req.flags,
            .offset = q->req.offset,
            .len = q->req.len,
            .t_submit = q->t_submit,
            .t_complete = q->completed ? q->t_complete : 0,
            .ret = q->completed ? q->ret : 0,
            .malformed = q->expect_err != 0,
            .cancelled = q->cancelled,
            .lost_at = q->lost_at,
        };
    }
}
