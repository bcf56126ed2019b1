/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * program.c - programs: config defaults and the op list.
 */
#include "program/limits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- config and the op list ---------------------------------------------- */

void blkv_config_default(struct blkv_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = 64 * MiB;
    cfg->grain = 64 * KiB;
    cfg->qd = 8;
    cfg->atomic = 1;
    cfg->sched = BLKV_SCHED_RANDOM;
    cfg->init = BLKV_INIT_ZERO;
    cfg->serialize = false;
    cfg->seed = 0;
}

void blkv_program_init(struct blkv_program *p)
{
    memset(p, 0, sizeof(*p));
    blkv_config_default(&p->cfg);
}

/* Free everything the program owns; it is left empty, with the defaults. */
void blkv_program_free(struct blkv_program *p)
{
    free(p->ops);
    free(p->cfg.driver);
    free(p->cfg.init_image);
    free(p->cfg.lower_image);
    blkv_program_init(p);
}

int blkv_program_push(struct blkv_program *p, const struct blkv_pop *op)
{
    if (p->nops >= BLKV_PROGRAM_MAX_OPS)
        return -E2BIG;
    if (p->nops == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        struct blkv_pop *n;
        if (ncap > BLKV_PROGRAM_MAX_OPS)
            ncap = BLKV_PROGRAM_MAX_OPS;
        n = realloc(p->ops, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        p->ops = n;
        p->cap = ncap;
    }
    p->ops[p->nops++] = *op;
    return 0;
}

size_t blkv_program_drop(struct blkv_program *p, unsigned code)
{
    size_t n = 0;
    if (blkv_opcode_submits(code))
        return 0;
    for (size_t i = 0; i < p->nops; i++)
        if (p->ops[i].code != code)
            p->ops[n++] = p->ops[i];
    code = (unsigned)(p->nops - n);
    p->nops = n;
    return code;
}

uint64_t blkv_program_nreqs(const struct blkv_program *p)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->nops; i++)
        n += blkv_opcode_submits(p->ops[i].code);
    return n;
}

const char *blkv_req_op_name(enum blkv_op op)
{
    static const char *const names[] = {"read", "write", "write-zeroes", "discard", "flush"};
    return op <= BLKV_OP_FLUSH ? names[op] : "?";
}
