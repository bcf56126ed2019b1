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
#include "util/util.h"

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

/* The value of option KEY in a driver spec ("NAME k=v k=v"), into buf;
 * false if it is not there. */
static bool export_spec_opt(const char *spec, const char *key, char *buf, size_t len)
{
    size_t kl = strlen(key);
    const char *w = spec;

    while (w && *w) {
        const char *end = w + strcspn(w, " \t");
        if (w != spec && (size_t)(end - w) > kl && !strncmp(w, key, kl) && w[kl] == '=') {
            snprintf(buf, len, "%.*s", (int)(end - w - (ptrdiff_t)kl - 1), w + kl + 1);
            return true;
        }
        w = end + strspn(end, " \t");
    }
    return false;
}

/* The driver's name: the first word of the spec. */
static bool export_spec_is(const char *spec, const char *name)
{
    size_t n = strlen(name);
    return spec && !strncmp(spec, name, n) && (spec[n] == 0 || spec[n] == ' ' || spec[n] == '\t');
}

/* Whether s is a word that may stand in the script unquoted: letters,
 * digits and "_.,=+-" ("extra" adds more). */
static bool export_word_ok(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("_.,=+-", *s) || (extra && strchr(extra, *s))))
            return false;
    return true;
}

/* What the script gives qemu-img create and qemu-io: the format, -o
 * options and the discard mode, from the options and the trace's driver
 * line.  0, or -EINVAL with a message. */
static int export_image_opts(const struct blkv_program *p, const struct blkv_export_opts *o,
                             char *fmt, size_t fmtlen, char *co, size_t colen, char *discard,
                             size_t dlen, char *err, size_t errlen)
{
    const char *spec = p->cfg.driver;
    char v[256];
    size_t n = 0;

    co[0] = 0;
    snprintf(discard, dlen, "unmap");
    if (o->format || (export_spec_is(spec, "nbd") && export_spec_opt(spec, "format", v, sizeof(v)))) {
        const char *f = o->format ? o->format : v;
        if (strlen(f) >= fmtlen) {
            snprintf(err, errlen, "format '%.32s...' is too long", f);
            return -EINVAL;
        }
        memcpy(fmt, f, strlen(f) + 1);
    } else if (export_spec_is(spec, "raw") || export_spec_is(spec, "buggy") ||
             export_spec_is(spec, "file"))
        snprintf(fmt, fmtlen, "raw");
    else
        snprintf(fmt, fmtlen, "qcow2");
    /* qemu's format names; anything else would be pasted into the shell */
    if (!export_word_ok(fmt, NULL) || strpbrk(fmt, ",=+.")) {
        snprintf(err, errlen, "format '%s' is not a format name (letters, digits, '_', '-')",
                 fmt);
        return -EINVAL;
    }
    if (export_spec_is(spec, "nbd")) {
        if (export_spec_opt(spec, "create-opts", v, sizeof(v))) {
            if (!export_word_ok(v, NULL)) {
                snprintf(err, errlen, "create-opts '%s': only letters, digits and '_.,=+-'", v);
                return -EINVAL;
            }
            for (char *q = v; *q; q++)
                if (*q == '+') /* qemu-img separates options with commas */
                    *q = ',';
            snprintf(co, colen, "%s", v);
        }
        if (export_spec_opt(spec, "discard", v, sizeof(v))) {
            if (strcmp(v, "unmap") && strcmp(v, "ignore")) {
                snprintf(err, errlen, "discard '%s': qemu-io takes unmap or ignore", v);
                return -EINVAL;
            }
            snprintf(discard, dlen, "%s", strcmp(v, "ignore") ? "unmap" : "ignore");
        }
    } else if (export_spec_is(spec, "qcow2") && !strcmp(fmt, "qcow2")) {
        /* blkv's qcow2 options that shape the image, as qemu-img names them */
        static const struct {
            const char *blkv, *qemu;
        } map[] = {{"cluster-size", "cluster_size"},
                   {"refcount-bits", "refcount_bits"},
                   {"lazy-refcounts", "lazy_refcounts"}};
        uint64_t num;
        if (export_spec_opt(spec, "backing", v, sizeof(v)) && strcmp(v, "none")) {
            snprintf(err, errlen, "qcow2 backing=%s: a backing file cannot be exported", v);
            return -EINVAL;
        }
        if (export_spec_opt(spec, "version", v, sizeof(v))) {
            if (strcmp(v, "2") && strcmp(v, "3")) {
                snprintf(err, errlen, "qcow2 version=%s: 2 or 3", v);
                return -EINVAL;
            }
            n += (size_t)snprintf(co + n, colen - n, "compat=%s", !strcmp(v, "2") ? "0.10" : "1.1");
        }
        for (size_t i = 0; i < ARRAY_SIZE(map) && n < colen; i++) {
            if (!export_spec_opt(spec, map[i].blkv, v, sizeof(v)))
                continue;
            if (i < 2) { /* numbers, written in bytes */
                if (blkv_parse_u64(v, &num)) {
                    snprintf(err, errlen, "qcow2 %s=%s: not a number", map[i].blkv, v);
                    return -EINVAL;
                }
                snprintf(v, sizeof(v), "%" PRIu64, num);
            } else if (strcmp(v, "on") && strcmp(v, "off")) {
                snprintf(err, errlen, "qcow2 %s=%s: on or off", map[i].blkv, v);
                return -EINVAL;
            }
            n += (size_t)snprintf(co + n, colen - n, "%s%s=%s", n ? "," : "", map[i].qemu, v);
        }
        if (n >= colen) {
            snprintf(err, errlen, "qcow2 options too long");
            return -EINVAL;
        }
    }
    return 0;
}

/* Write s for a '#' comment: one line, control bytes as '?'. */
static void export_comment(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

int blkv_export_qemu_io(const struct blkv_program *p, const struct blkv_export_opts *o,
                        FILE *out, char *err, size_t errlen)
{
    const struct blkv_config *c = &p->cfg;
    char fmt[64], co[512], discard[16];
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
    if ((ret = export_image_opts(p, o, fmt, sizeof(fmt), co, sizeof(co), discard,
                                 sizeof(discard), err, errlen)))
        goto out;
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
        fprintf(out, "#!/bin/sh\n# qemu-io reproducer");
        if (o->source) {
            fprintf(out, " of ");
            export_comment(out, o->source);
        }
        fprintf(out, ", written by blkv export-qemu-io\n");
        if (c->driver) {
            fprintf(out, "# driver in the trace: ");
            export_comment(out, c->driver);
            fprintf(out, "\n");
        }
        fprintf(out, "# Reads check their data with -P where the expected content is known:\n"
                     "# look for \"Pattern verification failed\" in the output.\n");
        /* fmt, co and discard hold only [A-Za-z0-9_.,=-]: safe unquoted,
         * quoted all the same */
        fprintf(out, "set -e\nIMG=${IMG:-blkv-export.%s}\n", fmt);
        fprintf(out, "qemu-img create -q -f '%s'%s%s%s \"$IMG\" %" PRIu64 "\n", fmt,
                co[0] ? " -o '" : "", co, co[0] ? "'" : "", c->size);
        fprintf(out, "qemu-io -f '%s' -d '%s' \"$IMG\" <<'EOF'\n", fmt, discard);
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
            fprintf(out, "qemu-img check -f '%s' \"$IMG\" || [ $? -eq 63 ]\n", fmt);
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
