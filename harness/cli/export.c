/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * export.c - a blkv program as a qemu-io script.
 *
 * qemu-io patterns are single bytes, so write number k writes the byte
 * 1 + k % 255 everywhere.  What a read must return is known only where no
 * write-like request that overlaps it may still be in flight: the exporter
 * keeps the content as of the last point where everything was drained
 * (aio_flush), applies the writes of each drained batch that overlap no
 * other write of the batch, marks the rest unknown, and checks a read with
 * -P only when its whole range holds one known byte and no write of its
 * batch (issued before or after it) overlaps it.
 */
#include "cli/export.h"

#include <blkv/driver.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_UNKNOWN (-1)

/* A run of device bytes holding one value (EXPORT_UNKNOWN or 0..255). */
struct export_run {
    uint64_t start, end;
    int val;
};

/* The known content: sorted, disjoint runs covering [0, size). */
struct export_map {
    struct export_run *r;
    size_t n;
};

/* Order runs by start. */
static int export_run_cmp(const void *x, const void *y)
{
    const struct export_run *a = x, *b = y;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* Set [start, end) to val; 0 or -ENOMEM. */
static int export_map_set(struct export_map *m, uint64_t start, uint64_t end, int val)
{
    struct export_run *nr;
    size_t k = 0;

    if (start >= end)
        return 0;
    nr = malloc((m->n + 2) * sizeof(*nr));
    if (!nr)
        return -ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        struct export_run a = m->r[i];
        if (a.end <= start || a.start >= end) {
            nr[k++] = a;
            continue;
        }
        if (a.start < start) /* the part left of the new run */
            nr[k++] = (struct export_run){a.start, start, a.val};
        if (a.end > end) /* the part right of it */
            nr[k++] = (struct export_run){end, a.end, a.val};
    }
    nr[k++] = (struct export_run){start, end, val};
    qsort(nr, k, sizeof(*nr), export_run_cmp);
    free(m->r);
    m->r = nr;
    m->n = k;
    return 0;
}

/* The one value of [start, end), or EXPORT_UNKNOWN if mixed or unknown. */
static int export_map_get(const struct export_map *m, uint64_t start, uint64_t end)
{
    int v = -2;
    for (size_t i = 0; i < m->n; i++) {
        const struct export_run *a = &m->r[i];
        if (a->end <= start || a->start >= end)
            continue;
        if (v == -2)
            v = a->val;
        else if (v != a->val)
            return EXPORT_UNKNOWN;
    }
    return v == -2 ? EXPORT_UNKNOWN : v;
}

/* Whether the ranges of two requests overlap. */
static bool export_overlap(const struct blkv_pop *a, const struct blkv_pop *b)
{
    return a->offset < b->offset + b->len && b->offset < a->offset + a->len;
}

/* How op is written (the op table's qemu-io column). */
static enum blkv_qemu_io export_kind(const struct blkv_pop *op)
{
    return blkv_opinfo(op->code)->qemu_io;
}

/* Whether op waits for everything in flight (it becomes aio_flush). */
static bool export_drains(const struct blkv_pop *op)
{
    return export_kind(op) == BLKV_QIO_DRAIN || export_kind(op) == BLKV_QIO_REOPEN;
}

/* Whether op is a write-like request (its data lands in the image). */
static bool export_writes(const struct blkv_pop *op)
{
    enum blkv_qemu_io k = export_kind(op);
    return k == BLKV_QIO_WRITE || k == BLKV_QIO_ZERO || k == BLKV_QIO_DISCARD;
}

/* Everything in flight has completed: fold the batch into the map. */
static int export_drain(struct export_map *m, const struct blkv_program *p,
                        const size_t *batch, const int *pat, size_t nbatch, uint64_t size)
{
    for (size_t i = 0; i < nbatch; i++) {
        const struct blkv_pop *op = &p->ops[batch[i]];
        uint64_t end = op->offset + op->len;
        int val = export_kind(op) == BLKV_QIO_WRITE  ? pat[i]
                  : export_kind(op) == BLKV_QIO_ZERO ? 0
                                                     : EXPORT_UNKNOWN;
        for (size_t k = 0; k < nbatch && val != EXPORT_UNKNOWN; k++)
            if (k != i && export_overlap(op, &p->ops[batch[k]]))
                val = EXPORT_UNKNOWN; /* concurrent: either order */
        if (export_map_set(m, op->offset, end, val) < 0)
            return -ENOMEM;
    }
    return 0;
}

int blkv_export_qemu_io(const struct blkv_program *p, const struct blkv_export_opts *o,
                        FILE *out, char *err, size_t errlen)
{
    const struct blkv_config *c = &p->cfg;
    const char *fmt = o->format ? o->format : "qcow2";
    struct export_map m = {0};
    size_t *batch = malloc((p->nops + 1) * sizeof(*batch));
    int *pat = malloc((p->nops + 1) * sizeof(*pat));
    size_t nbatch = 0;
    uint64_t writes = 0, checked = 0, reads = 0, malformed = 0;
    int ret = 0;

    if (!batch || !pat) {
        snprintf(err, errlen, "out of memory");
        ret = -ENOMEM;
        goto out;
    }
    if (c->init != BLKV_INIT_ZERO || c->lower_image) {
        snprintf(err, errlen, "the initial content must be zero (init zero, no lower image):"
                 " qemu-io starts from a fresh image");
        ret = -EINVAL;
        goto out;
    }
    for (size_t i = 0; i < p->nops; i++) {
        const struct blkv_pop *op = &p->ops[i];
        if (export_kind(op) == BLKV_QIO_REFUSED || (export_kind(op) == BLKV_QIO_POLL && op->err)) {
            snprintf(err, errlen, "op %zu (%s): blkv-only, qemu-io has no equivalent", i,
                     blkv_opcode_name(op->code));
            ret = -EINVAL;
            goto out;
        }
    }
    if (export_map_set(&m, 0, c->size, 0) < 0) {
        ret = -ENOMEM;
        goto out;
    }
    if (!o->commands_only) {
        fprintf(out, "#!/bin/sh\n# qemu-io reproducer%s%s, written by blkv export-qemu-io\n",
                o->source ? " of " : "", o->source ? o->source : "");
        fprintf(out, "# Reads check their data with -P where the expected content is known:\n"
                     "# look for \"Pattern verification failed\" in the output.\n");
        fprintf(out, "set -e\nIMG=${IMG:-blkv-export.%s}\n", fmt);
        fprintf(out, "qemu-img create -q -f %s \"$IMG\" %" PRIu64 "\n", fmt, c->size);
        fprintf(out, "qemu-io -f %s -d unmap \"$IMG\" <<'EOF'\n", fmt);
    }
    for (size_t i = 0; i < p->nops && !ret; i++) {
        const struct blkv_pop *op = &p->ops[i];
        if (blkv_opcode_submits(op->code) && op->code != BLKV_P_FLUSH &&
            (op->offset > c->size || op->len > c->size - op->offset)) {
            malformed++; /* fails in blkv and qemu-io alike, changing nothing */
            continue;
        }
        switch (export_kind(op)) {
        case BLKV_QIO_WRITE:
            pat[nbatch] = 1 + (int)(writes++ % 255);
            fprintf(out, "aio_write%s -P %d %" PRIu64 " %" PRIu64 "\n",
                    op->flags & BLKV_P_FUA ? " -f" : "", pat[nbatch], op->offset, op->len);
            batch[nbatch++] = i;
            break;
        case BLKV_QIO_ZERO:
            pat[nbatch] = 0;
            fprintf(out, "aio_write -z%s%s %" PRIu64 " %" PRIu64 "\n",
                    op->flags & BLKV_P_UNMAP ? " -u" : "", op->flags & BLKV_P_FUA ? " -f" : "",
                    op->offset, op->len);
            batch[nbatch++] = i;
            break;
        case BLKV_QIO_DISCARD:
            /* qemu-io's discard is synchronous; what it leaves is unspecified */
            fprintf(out, "discard %" PRIu64 " %" PRIu64 "\n", op->offset, op->len);
            pat[nbatch] = EXPORT_UNKNOWN;
            batch[nbatch++] = i;
            break;
        case BLKV_QIO_READ: {
            int v = EXPORT_UNKNOWN;
            bool busy = false;
            uint64_t end = op->offset + op->len;
            for (size_t k = 0; k < nbatch && !busy; k++)
                busy = export_overlap(op, &p->ops[batch[k]]);
            /* writes issued while the read is in flight count too */
            for (size_t k = i + 1; k < p->nops && !busy && !export_drains(&p->ops[k]); k++)
                busy = export_writes(&p->ops[k]) && export_overlap(op, &p->ops[k]);
            if (!busy && end <= c->size)
                v = export_map_get(&m, op->offset, end);
            reads++;
            if (v != EXPORT_UNKNOWN) {
                checked++;
                fprintf(out, "aio_read -P %d %" PRIu64 " %" PRIu64 "\n", v, op->offset, op->len);
            } else {
                fprintf(out, "aio_read %" PRIu64 " %" PRIu64 "\n", op->offset, op->len);
            }
            break;
        }
        case BLKV_QIO_FLUSH:
            fprintf(out, "flush\n");
            break;
        case BLKV_QIO_DRAIN:
        case BLKV_QIO_REOPEN:
            fprintf(out, "aio_flush\n");
            ret = export_drain(&m, p, batch, pat, nbatch, c->size);
            nbatch = 0;
            if (export_kind(op) == BLKV_QIO_REOPEN)
                fprintf(out, "reopen\n");
            break;
        case BLKV_QIO_POLL: /* polling only: nothing to say */
        case BLKV_QIO_REFUSED: /* refused above */
            break;
        }
    }
    if (!ret) {
        fprintf(out, "aio_flush\n");
        if (!o->commands_only) {
            fprintf(out, "EOF\n");
            /* blkv checks the image after the last op too; 63: no checks */
            fprintf(out, "qemu-img check -f %s \"$IMG\" || [ $? -eq 63 ]\n", fmt);
            fprintf(out, "# %" PRIu64 " writes, %" PRIu64 " reads, %" PRIu64
                    " of them checked with -P; %" PRIu64 " out-of-range request(s) left out\n",
                    writes, reads, checked, malformed);
        }
    } else {
        snprintf(err, errlen, "out of memory");
    }
out:
    free(m.r);
    free(batch);
    free(pat);
    return ret;
}
