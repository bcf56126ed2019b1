/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * picture.c - the picture of a run (see picture.h).
 *
 * Two views of the same run, each one inline SVG: the failing range (the
 * requests that touched the failing request's bytes or ran beside it, and
 * the writes the report names) and the whole run.  Both axes are broken
 * where nothing is drawn: offsets into the extents requests touched (a
 * 1 TiB device with two 4 KiB writes shows two bands), time into the
 * stretches where something shown was in flight, so a large run stays
 * readable.  Everything taken from the input is HTML-escaped.
 */
#include "report/picture.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- geometry ------------------------------------------------------------ */

#define SVG_W 980.0
#define MARGIN_L 78.0 /* offset labels */
#define MARGIN_R 14.0
#define INIT_W 26.0   /* the initial content's column */
#define FLUSH_Y 30.0  /* the lane of flushes (device-wide) */
#define FLUSH_H 16.0
#define PLOT_Y 56.0
#define GAP_PX 14.0   /* an axis break */
#define EVENT_ROW 15.0
#define EVENT_ROWS 3
#define MAX_WHOLE 20000 /* requests the whole view draws at most */
#define MAX_NEAR 200    /* requests of the failing range besides the named ones */

struct seg {
    double lo, hi; /* values */
    double p0, p1; /* pixels */
};

struct axis {
    struct seg *s;
    size_t n;
    double start, end; /* pixels */
};

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/*
 * Make an axis of the n intervals in s (taken over): sorted, merged where
 * they touch or where the gap is at most `join`, then the smallest gaps
 * closed until at most max segments remain; pixels [start, end) are shared
 * out, half by length and half evenly, with GAP_PX between segments.
 */
static void axis_make(struct axis *a, struct seg *s, size_t n, double join, size_t max,
                      double start, double end)
{
    size_t m = 0;
    double total = 0, avail, p;

    a->s = s, a->start = start, a->end = end;
    if (!n) {
        s[0] = (struct seg){0, 1, start, end};
        a->n = 1;
        return;
    }
    qsort(s, n, sizeof(*s), seg_cmp);
    for (size_t i = 0; i < n; i++) {
        if (m && s[i].lo <= s[m - 1].hi + join) {
            if (s[i].hi > s[m - 1].hi)
                s[m - 1].hi = s[i].hi;
        } else {
            s[m++] = s[i];
        }
    }
    /* a gap under 1/8 of the whole span is no break worth drawing */
    if (m > 1) {
        double span = s[m - 1].hi - s[0].lo;
        size_t k = 0;
        for (size_t i = 0; i < m; i++) {
            if (k && s[i].lo - s[k - 1].hi < span / 8)
                s[k - 1].hi = s[i].hi > s[k - 1].hi ? s[i].hi : s[k - 1].hi;
            else
                s[k++] = s[i];
        }
        m = k;
    }
    if (m > max) { /* close the smallest gaps */
        double *gaps = malloc((m - 1) * sizeof(*gaps)), cut;
        size_t k = 0;
        if (gaps) {
            for (size_t i = 0; i + 1 < m; i++)
                gaps[i] = s[i + 1].lo - s[i].hi;
            qsort(gaps, m - 1, sizeof(*gaps), dbl_cmp);
            cut = gaps[m - max - 1];
            free(gaps);
            for (size_t i = 0; i < m; i++) {
                if (k && s[i].lo - s[k - 1].hi <= cut)
                    s[k - 1].hi = s[i].hi > s[k - 1].hi ? s[i].hi : s[k - 1].hi;
                else
                    s[k++] = s[i];
            }
            m = k;
        }
    }
    for (size_t i = 0; i < m; i++) {
        if (s[i].hi <= s[i].lo)
            s[i].hi = s[i].lo + 1;
        total += s[i].hi - s[i].lo;
    }
    avail = end - start - GAP_PX * (double)(m - 1);
    p = start;
    for (size_t i = 0; i < m; i++) {
        double w = avail * (0.5 * (s[i].hi - s[i].lo) / total + 0.5 / (double)m);
        s[i].p0 = p, s[i].p1 = p + w;
        p += w + GAP_PX;
    }
    a->n = m;
}

/* The pixel of value v: inside a segment linear, in a break proportional
 * to where it lies between its neighbours, outside at the ends. */
static double axis_px(const struct axis *a, double v)
{
    size_t lo = 0, hi = a->n;
    if (v <= a->s[0].lo)
        return a->s[0].p0;
    if (v >= a->s[a->n - 1].hi)
        return a->s[a->n - 1].p1;
    while (hi - lo > 1) { /* the last segment starting at or before v */
        size_t mid = (lo + hi) / 2;
        if (a->s[mid].lo <= v)
            lo = mid;
        else
            hi = mid;
    }
    const struct seg *g = &a->s[lo];
    if (v <= g->hi)
        return g->p0 + (v - g->lo) / (g->hi - g->lo) * (g->p1 - g->p0);
    const struct seg *n = &a->s[lo + 1];
    return g->p1 + (v - g->hi) / (n->lo - g->hi) * (n->p0 - g->p1);
}

/* ---- output helpers ------------------------------------------------------ */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* control bytes would make the page invalid; show them as '?' */
            fputc((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t' ? '?' : *s, f);
        }
    }
}

/* A size or offset the way traces write them: 64K, 1M, 4096. */
static const char *fmt_off(uint64_t v, char *buf, size_t len)
{
    static const char suf[] = "KMGT";
    int k = -1;
    while (v && v % 1024 == 0 && k < 3)
        v /= 1024, k++;
    if (k >= 0)
        snprintf(buf, len, "%" PRIu64 "%c", v, suf[k]);
    else
        snprintf(buf, len, "%" PRIu64, v);
    return buf;
}

static const char *kind_class(enum blkv_op k)
{
    switch (k) {
    case BLKV_OP_READ: return "k-read";
    case BLKV_OP_WRITE: return "k-write";
    case BLKV_OP_WRITE_ZEROES: return "k-wzero";
    case BLKV_OP_DISCARD: return "k-discard";
    default: return "k-flush";
    }
}

/* ---- the run's facts ----------------------------------------------------- */

struct pic {
    const struct blkv_picture *in;
    const struct blkv_timeline *tl;
    FILE *f;
    uint64_t tmax;  /* the last time of the run */
    uint8_t *role;  /* per request: ROLE_* bits */
    uint64_t nshow; /* requests the whole view draws */
};

enum {
    ROLE_FAIL = 1,
    ROLE_CAND = 2,
    ROLE_EVICTED = 4,
    ROLE_SOURCE = 8,
    ROLE_MISSING = 16,
};

/* Whether the timeline names the initial content with this role. */
static bool initial_has(const struct pic *pc, unsigned role)
{
    const struct blkv_timeline *tl = pc->tl;
    bool r = false;
    for (size_t i = 0; i < tl->ncands && (role & ROLE_CAND); i++)
        r |= tl->cands[i] == BLKV_TL_INITIAL;
    for (size_t i = 0; i < tl->nevicted && (role & ROLE_EVICTED); i++)
        r |= tl->evicted[i] == BLKV_TL_INITIAL;
    if (role & ROLE_SOURCE)
        r |= tl->found == BLKV_TL_INITIAL;
    if (role & ROLE_MISSING)
        r |= tl->missing == BLKV_TL_INITIAL;
    return r;
}

static bool has_fail(const struct pic *pc)
{
    return pc->tl->fail_req < pc->tl->nreqs;
}

/* When request q stops being drawn: its completion, the crash that lost
 * it, or the end of the run. */
static double req_end(const struct pic *pc, const struct blkv_timeline_req *q)
{
    if (q->t_complete)
        return (double)q->t_complete;
    if (q->lost_at && q->lost_at - 1 < pc->tl->nops)
        return (double)pc->tl->ops[q->lost_at - 1].t_begin + 0.5;
    return (double)pc->tmax + 0.5;
}

/* "t=1..2, ok" and the like, as reports say it. */
static void outcome(FILE *f, const struct pic *pc, const struct blkv_timeline_req *q)
{
    const char *e;
    if (!q->t_complete && q->lost_at) {
        fprintf(f, "submitted t=%" PRIu64 ", lost in the crash at op %zu", q->t_submit,
                q->lost_at - 1);
        return;
    }
    if (!q->t_complete) {
        fprintf(f, "submitted t=%" PRIu64 ", never completed", q->t_submit);
        return;
    }
    fprintf(f, "t=%" PRIu64 "..%" PRIu64 ", ", q->t_submit, q->t_complete);
    e = blkv_errno_name(q->ret);
    if (q->ret == 0)
        fputs("ok", f);
    else if (e)
        fprintf(f, "-%s", e);
    else
        fprintf(f, "error %d", q->ret);
    if (q->cancelled)
        fputs(", cancelled", f);
    if (q->malformed)
        fputs(" (malformed: the driver never saw it)", f);
}

/* "#3 (op 4: write 4096 4096)" */
static void req_line(FILE *f, const struct pic *pc, uint64_t n)
{
    const struct blkv_timeline_req *q = &pc->tl->reqs[n];
    char line[160];
    blkv_pop_format(&pc->in->prog->ops[q->op], line, sizeof(line));
    fprintf(f, "#%" PRIu64 " (op %zu: ", n, q->op);
    esc(f, line);
    fputs(")", f);
}

static void src_line(FILE *f, const struct pic *pc, uint64_t src)
{
    if (src == BLKV_TL_INITIAL)
        fputs("the initial content", f);
    else if (src == BLKV_TL_ZEROS)
        fputs("zeros of older data (no write of this run)", f);
    else if (src < pc->tl->nreqs)
        req_line(f, pc, src);
    else
        fputs("no write: bytes nothing explains", f);
}

/* ---- one view ------------------------------------------------------------ */

struct view {
    const char *id;
    bool *show;       /* per request */
    double t0, t1;    /* the ops drawn: those that ran in [t0, t1] */
    struct axis x, y;
    double plot_bottom, event_y, height;
    uint64_t shown, hidden;
};

/* Which requests the failing range shows: the failing request, the writes
 * the report names, what overlapped the failing bytes (the last MAX_NEAR
 * of them before it, all after) and what was in flight beside it. */
static void choose_focus(const struct pic *pc, struct view *v)
{
    const struct blkv_timeline *tl = pc->tl;
    const struct blkv_timeline_req *F = &tl->reqs[tl->fail_req];
    uint64_t lo = F->offset, hi = F->offset + F->len, near = 0;
    double fs = (double)F->t_submit, fe = req_end(pc, F), t0 = fs, t1 = fe;
    bool all_offsets = F->kind == BLKV_OP_FLUSH;

    for (uint64_t i = 0; i < tl->nreqs; i++)
        if (pc->role[i]) {
            v->show[i] = true;
            if ((double)tl->reqs[i].t_submit < t0)
                t0 = (double)tl->reqs[i].t_submit;
            if (req_end(pc, &tl->reqs[i]) > t1)
                t1 = req_end(pc, &tl->reqs[i]);
        }
    if (all_offsets) /* a flush: what ran around it */
        t0 = fs > 60 ? fs - 60 : 0;
    for (uint64_t i = tl->fail_req; i-- > 0;) {
        const struct blkv_timeline_req *q = &tl->reqs[i];
        bool touches = all_offsets ? (double)q->t_submit >= t0
                                   : q->kind != BLKV_OP_FLUSH && q->offset < hi &&
                                         lo < q->offset + q->len;
        bool beside = req_end(pc, q) > fs;
        if (v->show[i] || !(touches || beside))
            continue;
        if (touches && !beside && near >= MAX_NEAR)
            continue;
        near += touches && !beside;
        v->show[i] = true;
        if ((double)q->t_submit < t0)
            t0 = (double)q->t_submit;
    }
    for (uint64_t i = tl->fail_req + 1; i < tl->nreqs; i++) {
        const struct blkv_timeline_req *q = &tl->reqs[i];
        if ((double)q->t_submit < fe &&
            (all_offsets || q->kind == BLKV_OP_FLUSH || (q->offset < hi && lo < q->offset + q->len)))
            v->show[i] = true;
    }
    /* flushes in the window show in their lane */
    for (uint64_t i = 0; i < tl->nreqs; i++)
        if (tl->reqs[i].kind == BLKV_OP_FLUSH && (double)tl->reqs[i].t_submit >= t0 &&
            (double)tl->reqs[i].t_submit <= t1)
            v->show[i] = true;
    v->t0 = t0 - 1, v->t1 = t1 + 1;
}

/* Whether op i is drawn on the timeline (ops that do not submit). */
static bool op_drawn(const struct pic *pc, const struct view *v, size_t i)
{
    const struct blkv_timeline_op *o = &pc->tl->ops[i];
    return o->ran && !blkv_opcode_submits(pc->in->prog->ops[i].code) &&
           (double)o->t_begin >= v->t0 && (double)o->t_begin <= v->t1;
}

static int view_axes(const struct pic *pc, struct view *v, double plot_h)
{
    const struct blkv_timeline *tl = pc->tl;
    size_t n = (size_t)tl->nreqs + tl->nops + 1;
    struct seg *xs = malloc(n * sizeof(*xs)), *ys = malloc(n * sizeof(*ys));
    size_t nx = 0, ny = 0;
    double x_start = MARGIN_L + INIT_W + 8;

    if (!xs || !ys) {
        free(xs), free(ys);
        return -1;
    }
    for (uint64_t i = 0; i < tl->nreqs; i++) {
        const struct blkv_timeline_req *q = &tl->reqs[i];
        if (!v->show[i])
            continue;
        v->shown++;
        xs[nx++] = (struct seg){(double)q->t_submit - 0.5, req_end(pc, q) + 0.5, 0, 0};
        if (q->kind != BLKV_OP_FLUSH && q->len)
            ys[ny++] = (struct seg){(double)q->offset, (double)q->offset + (double)q->len, 0, 0};
    }
    v->hidden = tl->nreqs - v->shown;
    for (size_t i = 0; i < tl->nops; i++)
        if (op_drawn(pc, v, i))
            xs[nx++] = (struct seg){(double)tl->ops[i].t_begin - 0.5,
                                    (double)tl->ops[i].t_begin + 1.5, 0, 0};
    axis_make(&v->x, xs, nx, 2.0, 8, x_start, SVG_W - MARGIN_R);
    axis_make(&v->y, ys, ny, 0.0, 8, PLOT_Y, PLOT_Y + plot_h);
    v->plot_bottom = PLOT_Y + plot_h;
    v->event_y = v->plot_bottom + 24;
    v->height = v->event_y + EVENT_ROW * EVENT_ROWS + 10;
    return 0;
}

/* Tick step: 1, 2 or 5 times a power of ten, about every 70 pixels
 * (times are whole numbers: at least 1).  No libm: libblkv links only libc. */
static double nice_step(double span, double px)
{
    double raw = span / (px / 70.0 > 1 ? px / 70.0 : 1), p = 1;
    while (p * 10 <= raw)
        p *= 10;
    return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

static void draw_axes(struct pic *pc, const struct view *v)
{
    FILE *f = pc->f;
    char b1[32];
    double x0 = v->x.start, x1 = v->x.end;

    fprintf(f, "<g class=\"axes\">\n");
    /* offset bands, each labelled at its ends, breaks between them */
    for (size_t i = 0; i < v->y.n; i++) {
        const struct seg *s = &v->y.s[i];
        fprintf(f, "<rect class=\"band\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
                MARGIN_L, s->p0, x1 - MARGIN_L, s->p1 - s->p0);
        fprintf(f, "<text class=\"ylab\" x=\"%.1f\" y=\"%.1f\">%s</text>\n", MARGIN_L - 4,
                s->p0 + 4, fmt_off((uint64_t)s->lo, b1, sizeof b1));
        if (s->p1 - s->p0 >= 22)
            fprintf(f, "<text class=\"ylab\" x=\"%.1f\" y=\"%.1f\">%s</text>\n", MARGIN_L - 4,
                    s->p1, fmt_off((uint64_t)s->hi, b1, sizeof b1));
        if (i + 1 < v->y.n)
            fprintf(f, "<text class=\"brk\" x=\"%.1f\" y=\"%.1f\">&#8776; %s skipped</text>\n",
                    MARGIN_L + 4, s->p1 + GAP_PX / 2 + 3,
                    fmt_off((uint64_t)(v->y.s[i + 1].lo - s->hi), b1, sizeof b1));
    }
    /* time: ticks per segment, breaks marked */
    for (size_t i = 0; i < v->x.n; i++) {
        const struct seg *s = &v->x.s[i];
        double step = nice_step(s->hi - s->lo, s->p1 - s->p0);
        double first = (double)(int64_t)(s->lo / step) * step;
        for (double t = first < s->lo ? first + step : first; t <= s->hi; t += step) {
            double x = axis_px(&v->x, t);
            fprintf(f, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                       "<text class=\"xlab\" x=\"%.1f\" y=\"%.1f\">%.0f</text>\n",
                    x, PLOT_Y - 2, x, v->plot_bottom + 3, x, v->plot_bottom + 14, t);
        }
        if (i + 1 < v->x.n)
            fprintf(f, "<rect class=\"tbrk\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                       "<title>t=%.0f..%.0f: nothing drawn here ran</title></rect>\n",
                    s->p1, FLUSH_Y, GAP_PX, v->plot_bottom - FLUSH_Y, s->hi, v->x.s[i + 1].lo);
    }
    fprintf(f, "<text class=\"axt\" x=\"%.1f\" y=\"%.1f\">logical time &#8594;</text>\n", x1,
            PLOT_Y - 4);
    fprintf(f, "<text class=\"axt\" x=\"4\" y=\"%.1f\">offset &#8595;</text>\n", PLOT_Y - 6);
    fprintf(f, "<text class=\"lane\" x=\"4\" y=\"%.1f\">flushes</text>\n", FLUSH_Y + 12);
    fprintf(f, "<text class=\"lane\" x=\"4\" y=\"%.1f\">ops</text>\n", v->event_y + 11);
    fprintf(f, "<line class=\"frame\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x0,
            v->plot_bottom + 3, x1, v->plot_bottom + 3);
    /* the initial content's column */
    fprintf(f, "<g class=\"initial%s%s%s%s\" data-tip=\"the initial content (%s), there before "
               "the first request\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
               "<title>the initial content</title></g>\n",
            initial_has(pc, ROLE_SOURCE) ? " source" : "",
            initial_has(pc, ROLE_CAND) ? " candidate" : "",
            initial_has(pc, ROLE_EVICTED) ? " evicted" : "",
            initial_has(pc, ROLE_MISSING) ? " missing" : "",
            pc->in->prog->cfg.init == BLKV_INIT_PATTERN ? "pattern"
            : pc->in->prog->cfg.init == BLKV_INIT_IMAGE ? "image" : "zeros",
            MARGIN_L + 4, PLOT_Y, INIT_W, v->plot_bottom - PLOT_Y);
    fprintf(f, "<text class=\"xlab\" x=\"%.1f\" y=\"%.1f\">init</text>\n",
            MARGIN_L + 4 + INIT_W / 2, v->plot_bottom + 14);
    fprintf(f, "</g>\n");
}

/* The ops between requests: steps, faults, cancels, waits; crashes,
 * reopens and checks across the plot. */
static void draw_ops(struct pic *pc, const struct view *v)
{
    FILE *f = pc->f;
    const struct blkv_program *p = pc->in->prog;
    double last_x = -100, last_label = -100;
    int row = 0;
    size_t drawn = 0;
    bool crowded;

    for (size_t i = 0; i < pc->tl->nops; i++)
        drawn += op_drawn(pc, v, i);
    /* too many to read: steps, waits and drains only as tooltips of nothing */
    crowded = (double)drawn > (v->x.end - v->x.start) / 9;

    fprintf(f, "<g class=\"ops\">\n");
    for (size_t i = 0; i < pc->tl->nops; i++) {
        const struct blkv_pop *op = &p->ops[i];
        const struct blkv_timeline_op *o = &pc->tl->ops[i];
        const char *cls, *glyph;
        char line[160];
        double x;

        if (!op_drawn(pc, v, i))
            continue;
        if (crowded && !o->faults && !op->err &&
            (op->code == BLKV_P_STEP || op->code == BLKV_P_WAIT || op->code == BLKV_P_DRAIN))
            continue;
        x = axis_px(&v->x, (double)o->t_begin + 0.5);
        row = x - last_x < 12 ? (row + 1) % EVENT_ROWS : 0;
        last_x = x;
        blkv_pop_format(op, line, sizeof(line));
        switch (op->code) {
        case BLKV_P_STEP: cls = op->err ? "ev fault" : "ev step"; glyph = op->err ? "&#9889;" : "s"; break;
        case BLKV_P_CANCEL: cls = "ev cancel"; glyph = "&#215;"; break;
        case BLKV_P_WAIT: cls = "ev wait"; glyph = "w"; break;
        case BLKV_P_DRAIN: cls = "ev wait"; glyph = "d"; break;
        case BLKV_P_REOPEN: cls = "ev reopen"; glyph = "R"; break;
        case BLKV_P_CHECK: cls = "ev check"; glyph = "C"; break;
        case BLKV_P_CRASH: cls = "ev crash"; glyph = "&#9760;"; break;
        case BLKV_P_FAULT: cls = "ev rule"; glyph = "F"; break;
        default: cls = "ev"; glyph = "?"; break;
        }
        fprintf(f, "<g class=\"%s%s\" data-tip=\"op %zu: ", cls, o->faults ? " injected" : "", i);
        esc(f, line);
        fprintf(f, " (t=%" PRIu64 ")", o->t_begin);
        if (o->faults)
            fprintf(f, "; %" PRIu64 " lower I/O(s) failed by injection meanwhile", o->faults);
        fprintf(f, "\">");
        if (op->code == BLKV_P_CRASH || op->code == BLKV_P_REOPEN || op->code == BLKV_P_CHECK) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, FLUSH_Y,
                    x, v->event_y);
            if (x - last_label > 78) { /* else the line's tooltip says it */
                last_label = x;
                fprintf(f, "<text class=\"vlab\" x=\"%.1f\" y=\"%.1f\">%s op %zu</text>", x + 3,
                        FLUSH_Y - 4, op->code == BLKV_P_CRASH    ? "crash"
                                     : op->code == BLKV_P_REOPEN ? "reopen"
                                                                 : "check",
                        i);
            }
        }
        if (op->code == BLKV_P_CANCEL && op->arg < pc->tl->nreqs && v->show[op->arg]) {
            const struct blkv_timeline_req *q = &pc->tl->reqs[op->arg];
            double y = (axis_px(&v->y, (double)q->offset) +
                        axis_px(&v->y, (double)q->offset + (double)q->len)) / 2;
            fprintf(f, "<text class=\"xmark\" x=\"%.1f\" y=\"%.1f\">&#215;</text>", x, y + 5);
        }
        fprintf(f, "<text class=\"glyph\" x=\"%.1f\" y=\"%.1f\">%s%s</text>", x,
                v->event_y + 11 + row * EVENT_ROW, glyph, o->faults ? "&#9889;" : "");
        fprintf(f, "<title>op %zu: ", i);
        esc(f, line);
        if (o->faults)
            fprintf(f, "; %" PRIu64 " lower I/O(s) failed by injection", o->faults);
        fprintf(f, "</title></g>\n");
    }
    fprintf(f, "</g>\n");
}

struct box {
    double x0, x1, y0, y1;
};

/* How many requests submitted before q (at most 4) overlap it in time and
 * offset: its bar is inset by that many steps, so that overlapping
 * requests in flight together show as nested bars. */
static unsigned req_lane(const struct pic *pc, const struct view *v,
                         const struct blkv_timeline_req *q)
{
    const struct blkv_timeline *tl = pc->tl;
    uint64_t n = (uint64_t)(q - tl->reqs);
    unsigned lane = 0;

    if (q->kind == BLKV_OP_FLUSH)
        return 0;
    /* at most qd (256) requests are in flight together */
    for (uint64_t j = n, seen = 0; j-- > 0 && seen < 256 && lane < 4;) {
        const struct blkv_timeline_req *o = &tl->reqs[j];
        if (!v->show[j] || o->kind == BLKV_OP_FLUSH)
            continue;
        seen++;
        if (req_end(pc, o) > (double)q->t_submit && o->offset < q->offset + q->len &&
            q->offset < o->offset + o->len)
            lane++;
    }
    return lane;
}

static struct box req_box(const struct pic *pc, const struct view *v,
                          const struct blkv_timeline_req *q)
{
    struct box b;
    double inset;
    b.x0 = axis_px(&v->x, (double)q->t_submit);
    b.x1 = axis_px(&v->x, req_end(pc, q));
    if (b.x1 - b.x0 < 3)
        b.x1 = b.x0 + 3;
    if (q->kind == BLKV_OP_FLUSH) {
        b.y0 = FLUSH_Y, b.y1 = FLUSH_Y + FLUSH_H;
    } else {
        b.y0 = axis_px(&v->y, (double)q->offset);
        b.y1 = axis_px(&v->y, (double)q->offset + (double)q->len);
        inset = 4.0 * req_lane(pc, v, q);
        if (b.y1 - b.y0 - 2 * inset >= 6)
            b.y0 += inset, b.y1 -= inset;
        if (b.y1 - b.y0 < 3)
            b.y1 = b.y0 + 3;
    }
    return b;
}

static void draw_req(struct pic *pc, const struct view *v, uint64_t n, bool ids)
{
    FILE *f = pc->f;
    const struct blkv_timeline *tl = pc->tl;
    const struct blkv_timeline_req *q = &tl->reqs[n];
    unsigned role = pc->role[n];
    struct box b = req_box(pc, v, q);
    const char *state = q->malformed ? "malformed"
                        : !q->t_complete && q->lost_at ? "lost"
                        : !q->t_complete ? "inflight"
                        : q->cancelled ? "cancelled"
                        : q->ret ? "failed" : "ok";
    const char *id = !ids ? NULL
                     : role & ROLE_FAIL ? "failing-request"
                     : role & ROLE_SOURCE ? "source-write"
                     : role & ROLE_MISSING ? "missing-write" : NULL;
    char tag[48];

    fprintf(f, "<g class=\"req %s %s%s%s%s%s%s\"", kind_class(q->kind), state,
            role & ROLE_FAIL ? (q->kind == BLKV_OP_READ ? " fail-read fail" : " fail") : "",
            role & ROLE_CAND ? " candidate" : "", role & ROLE_EVICTED ? " evicted" : "",
            role & ROLE_SOURCE ? " source" : "", role & ROLE_MISSING ? " missing" : "");
    if (id)
        fprintf(f, " id=\"%s\"", id);
    fprintf(f, " data-req=\"%" PRIu64 "\" data-tip=\"", n);
    req_line(f, pc, n);
    fputs(" ", f);
    outcome(f, pc, q);
    fprintf(f, "\"><title>");
    req_line(f, pc, n);
    fputs(" ", f);
    outcome(f, pc, q);
    fprintf(f, "</title><rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
            b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
    /* submit: a dot; completion: a bar end; never completed: an open end */
    fprintf(f, "<circle class=\"submit\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", b.x0,
            (b.y0 + b.y1) / 2);
    if (q->t_complete)
        fprintf(f, "<line class=\"complete\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                b.x1, b.y0, b.x1, b.y1);
    else if (b.y1 - b.y0 >= 10 || role)
        fprintf(f, "<text class=\"endlab\" x=\"%.1f\" y=\"%.1f\">%s</text>", b.x1 + 2,
                (b.y0 + b.y1) / 2 + 4, q->lost_at ? "&#9760; lost" : "&#8230;");
    if (role & ROLE_FAIL && tl->mismatch_len && q->kind == BLKV_OP_READ) {
        double m0 = axis_px(&v->y, (double)tl->mismatch_offset);
        double m1 = axis_px(&v->y, (double)tl->mismatch_offset + (double)tl->mismatch_len);
        fprintf(f, "<rect class=\"mismatch\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                   "<title>first unexplained run: %" PRIu64 " byte(s) from offset %" PRIu64
                   "</title></rect>",
                b.x0, m0, b.x1 - b.x0, m1 - m0 < 2 ? 2 : m1 - m0, tl->mismatch_len,
                tl->mismatch_offset);
    }
    /* the request's number, and its part in the finding */
    snprintf(tag, sizeof(tag), "#%" PRIu64 "%s", n,
             role & ROLE_FAIL ? " failing" : role & ROLE_SOURCE ? " found data"
             : role & ROLE_MISSING ? " missing" : role & ROLE_CAND ? " candidate"
             : role & ROLE_EVICTED ? " overwritten" : "");
    if (role || (b.x1 - b.x0 > 24 && b.y1 - b.y0 > 12 && q->kind != BLKV_OP_FLUSH))
        fprintf(f, "<text class=\"rlab%s\" x=\"%.1f\" y=\"%.1f\">%s</text>", role ? " named" : "",
                b.x0 + 5, q->kind == BLKV_OP_FLUSH ? b.y1 - 4 : b.y0 + 12, tag);
    fprintf(f, "</g>\n");
}

/* An arrow from request (or initial content) src to the failing read, at
 * the mismatch's offset. */
static void draw_link(struct pic *pc, const struct view *v, uint64_t src, const char *cls,
                      const char *label, bool down)
{
    const struct blkv_timeline *tl = pc->tl;
    struct box r = req_box(pc, v, &tl->reqs[tl->fail_req]);
    double y = axis_px(&v->y, (double)tl->mismatch_offset), sx, sy;

    if (src == BLKV_TL_INITIAL) {
        sx = MARGIN_L + 4 + INIT_W, sy = y;
    } else if (src < tl->nreqs && v->show[src]) {
        struct box s = req_box(pc, v, &tl->reqs[src]);
        sx = s.x1, sy = y < s.y0 ? s.y0 + 2 : y > s.y1 ? s.y1 - 2 : y;
    } else {
        return;
    }
    /* bow up, or down where the plot's top is too near */
    double mx = (sx + r.x0) / 2, lift = 30, top = sy < y ? sy : y, bottom = sy < y ? y : sy;
    if (down)
        lift = bottom + lift > v->plot_bottom - 4 ? (top - lift < PLOT_Y + 14 ? 0 : lift) : -lift;
    else if (top - lift < PLOT_Y + 14)
        lift = bottom + lift > v->plot_bottom - 4 ? 0 : -lift;
    fprintf(pc->f, "<g class=\"%s\"><path d=\"M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f\" "
                   "marker-end=\"url(#%s-%s)\"/><text x=\"%.1f\" y=\"%.1f\">%s</text></g>\n",
            cls, sx, sy, mx, sy - lift, mx, y - lift, r.x0, y, v->id, cls, mx,
            (sy + y) / 2 - lift * 0.75 + (lift < 0 ? 12 : -4), label);
}

static int draw_view(struct pic *pc, struct view *v, const char *caption, bool ids, bool shown)
{
    FILE *f = pc->f;
    const struct blkv_timeline *tl = pc->tl;
    double plot_h = v->y.n > 1 ? 420 : 360;

    if (view_axes(pc, v, plot_h))
        return -1;
    fprintf(f, "<div class=\"view\" id=\"%s\"%s><p class=\"cap\">%s", v->id,
            shown ? "" : " hidden", caption);
    if (v->hidden)
        fprintf(f, " (%" PRIu64 " other request%s not drawn)", v->hidden, v->hidden == 1 ? "" : "s");
    fprintf(f, "</p>\n<svg class=\"chart\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "role=\"img\">\n", SVG_W, v->height, SVG_W, v->height);
    fprintf(f, "<defs>\n<pattern id=\"%s-hatch\" width=\"6\" height=\"6\" "
               "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
               "<rect width=\"6\" height=\"6\" fill=\"#fbe3e3\"/>"
               "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d62728\" stroke-width=\"3\"/>"
               "</pattern>\n", v->id);
    for (int i = 0; i < 2; i++)
        fprintf(f, "<marker id=\"%s-%s\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
                   "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
                   "<path d=\"M0 0 L10 5 L0 10 z\" class=\"ah-%s\"/></marker>\n",
                v->id, i ? "missing-link" : "source-link", i ? "missing" : "source");
    fprintf(f, "</defs>\n<style>#%s .failed .bar{fill:url(#%s-hatch)}</style>\n", v->id, v->id);
    draw_axes(pc, v);
    draw_ops(pc, v);
    fprintf(f, "<g class=\"reqs\">\n");
    /* plain requests first, the named ones on top */
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t i = 0; i < tl->nreqs; i++)
            if (v->show[i] && (pass == (pc->role[i] != 0)))
                draw_req(pc, v, i, ids);
    fprintf(f, "</g>\n");
    if (has_fail(pc) && tl->mismatch_len) {
        if (tl->missing != BLKV_TL_NONE && tl->missing != tl->found)
            draw_link(pc, v, tl->missing, "missing-link", "expected, not found",
                      tl->found != BLKV_TL_NONE && tl->found != BLKV_TL_ZEROS);
        if (tl->found != BLKV_TL_NONE && tl->found != BLKV_TL_ZEROS)
            draw_link(pc, v, tl->found, "source-link", "found data came from here", false);
        if (tl->found == BLKV_TL_ZEROS) {
            struct box r = req_box(pc, v, &tl->reqs[tl->fail_req]);
            bool right = r.x1 + 150 < SVG_W; /* else inside the bar, under the mismatch */
            fprintf(f, "<text class=\"found-zeros\" x=\"%.1f\" y=\"%.1f\">found: zeros of older "
                       "data</text>\n", right ? r.x1 + 4 : r.x0 + 5,
                    axis_px(&v->y, (double)tl->mismatch_offset) + (right ? 4 : 16));
        }
    }
    fprintf(f, "</svg>\n</div>\n");
    return 0;
}

/* ---- the page ------------------------------------------------------------ */

static const char page_css[] =
    "body{font:13px/1.35 system-ui,sans-serif;margin:12px 16px;color:#222;background:#fff}\n"
    "h1{font-size:17px;margin:0 0 4px}h1 code{font-size:15px}\n"
    ".status{font-weight:600;margin:2px 0 6px}.status.bad{color:#b30000}.status.good{color:#1b7a1b}\n"
    ".cfg{color:#555;margin:0 0 8px}\n"
    ".wrap{display:flex;gap:18px;align-items:flex-start;flex-wrap:wrap}\n"
    ".left{flex:0 0 auto}.right{flex:1 1 420px;min-width:380px;max-width:100%}\n"
    "pre{font:11.5px/1.35 ui-monospace,monospace;background:#f6f6f4;border:1px solid #ddd;"
    "padding:8px;overflow-x:auto;margin:4px 0}\n"
    ".controls button{font:inherit;padding:3px 10px;margin-right:4px;border:1px solid #999;"
    "background:#f4f4f4;border-radius:3px;cursor:pointer}\n"
    ".controls button.on{background:#333;color:#fff;border-color:#333}\n"
    ".cap{margin:6px 0 2px;color:#444}\n"
    "#hover{min-height:2.7em;font:12px/1.35 ui-monospace,monospace;background:#fffbe6;"
    "border:1px solid #e6d690;padding:4px 8px;margin:6px 0;white-space:pre-wrap;width:940px}\n"
    ".legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:4px 0;width:960px}\n"
    ".legend span{display:inline-flex;align-items:center;gap:4px}\n"
    ".sw{display:inline-block;width:22px;height:11px;border:1px solid #666}\n"
    "svg.chart{display:block;background:#fff;border:1px solid #ccc}\n"
    "svg text{font:10.5px system-ui,sans-serif;fill:#333}\n"
    ".band{fill:#f7f7f7}.tbrk{fill:#eee;opacity:.9}.brk{fill:#888;font-style:italic}\n"
    ".ylab{text-anchor:end;font-family:ui-monospace,monospace}.xlab{text-anchor:middle;fill:#555}\n"
    ".tick{stroke:#e4e4e4}.frame{stroke:#999}.axt{fill:#777;text-anchor:end}"
    ".lane{fill:#777;font-style:italic}\n"
    ".req .bar{fill-opacity:.62;stroke-width:1}\n"
    ".k-read .bar{fill:#4e79a7;stroke:#2b4a6e}.k-write .bar{fill:#f28e2b;stroke:#a85a12}\n"
    ".k-wzero .bar{fill:#b07aa1;stroke:#6e4565}.k-discard .bar{fill:#9c755f;stroke:#5e4434}\n"
    ".k-flush .bar{fill:#59a14f;stroke:#2f6b28}\n"
    ".submit{fill:#222}.complete{stroke:#222;stroke-width:2.5}\n"
    ".failed .bar{stroke:#d62728;stroke-width:2}\n"
    ".cancelled .bar{fill-opacity:.25;stroke-dasharray:5 3;stroke-width:1.6}\n"
    ".malformed .bar{fill-opacity:.1;stroke-dasharray:1 2}\n"
    ".lost .bar,.inflight .bar{fill-opacity:.22;stroke-dasharray:7 3}\n"
    ".endlab{fill:#b30000;font-weight:600}\n"
    ".candidate .bar{stroke:#1a9850;stroke-width:3}\n"
    ".evicted .bar{stroke:#888;stroke-width:2.5;stroke-dasharray:3 2}\n"
    ".missing .bar{stroke:#1f5fbf;stroke-width:3.5;stroke-dasharray:none}\n"
    ".source .bar{stroke:#d62728;stroke-width:3.5}\n"
    ".fail .bar{stroke:#000;stroke-width:3.5}\n"
    ".mismatch{fill:#ff0000;fill-opacity:.45;stroke:none}\n"
    ".rlab{font-size:10px;fill:#111;pointer-events:none}.rlab.named{font-weight:700}\n"
    ".initial rect{fill:#ddd;stroke:#aaa}.initial.candidate rect{stroke:#1a9850;stroke-width:3}\n"
    ".initial.evicted rect{stroke:#888;stroke-width:2.5;stroke-dasharray:3 2}\n"
    ".initial.source rect{stroke:#d62728;stroke-width:3.5}\n"
    ".source-link path{fill:none;stroke:#d62728;stroke-width:2.2}.source-link text{fill:#d62728;"
    "font-weight:600;text-anchor:middle}.ah-source{fill:#d62728}\n"
    ".missing-link path{fill:none;stroke:#1f5fbf;stroke-width:2;stroke-dasharray:6 3}"
    ".missing-link text{fill:#1f5fbf;font-weight:600;text-anchor:middle}.ah-missing{fill:#1f5fbf}\n"
    ".found-zeros{fill:#b30000;font-weight:600}\n"
    ".ev .glyph{text-anchor:middle;font-weight:700;fill:#666}.ev.fault .glyph,.ev.injected .glyph"
    "{fill:#d62728}.ev.rule .glyph{fill:#e67e00}.ev.cancel .glyph{fill:#444}\n"
    ".ev line{stroke-width:1.5}.ev.crash line{stroke:#d62728;stroke-width:2}"
    ".ev.reopen line{stroke:#7b3fa0;stroke-dasharray:4 3}.ev.check line{stroke:#1f8a8a;"
    "stroke-dasharray:2 3}\n"
    ".ev.crash .glyph,.ev.crash .vlab{fill:#d62728}.vlab{font-weight:600;fill:#555}\n"
    ".xmark{font-size:16px;font-weight:700;fill:#000;text-anchor:middle}\n"
    "[data-tip]:hover .bar{stroke:#ff00aa !important}\n"
    "details{margin-top:8px}summary{cursor:pointer;color:#333}\n";

static const char page_js[] =
    "(function(){\n"
    "var hover=document.getElementById('hover');\n"
    "var base=hover.textContent;\n"
    "document.querySelectorAll('[data-tip]').forEach(function(e){\n"
    "  e.addEventListener('mouseenter',function(){hover.textContent=e.getAttribute('data-tip');});\n"
    "  e.addEventListener('mouseleave',function(){hover.textContent=base;});\n"
    "});\n"
    "var btns=document.querySelectorAll('.controls button');\n"
    "btns.forEach(function(b){b.addEventListener('click',function(){\n"
    "  document.querySelectorAll('.view').forEach(function(v){v.hidden=v.id!==b.dataset.view;});\n"
    "  btns.forEach(function(o){o.classList.toggle('on',o===b);});\n"
    "});});\n"
    "document.documentElement.setAttribute('data-blkv-shown','ok');\n"
    "})();\n";

static void legend(FILE *f)
{
    static const char *const items[][2] = {
        {"background:#4e79a7", "read"},
        {"background:#f28e2b", "write"},
        {"background:#b07aa1", "write-zeroes"},
        {"background:#9c755f", "discard"},
        {"background:#59a14f", "flush"},
        {"border:2px dashed #555", "cancelled"},
        {"background:repeating-linear-gradient(45deg,#d62728 0 3px,#fbe3e3 3px 6px)", "failed"},
        {"border:2px dashed #aaa;background:#eee", "lost in a crash / never completed"},
        {"border:3px solid #000", "failing request (red: bytes unexplained)"},
        {"border:3px solid #1a9850", "candidate (expected)"},
        {"border:3px dashed #888", "no longer visible"},
        {"border:3px solid #1f5fbf", "completed before, data missing"},
        {"border:3px solid #d62728", "where the found data came from"},
    };
    fputs("<div class=\"legend\">", f);
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        fprintf(f, "<span><i class=\"sw\" style=\"%s\"></i>%s</span>", items[i][0], items[i][1]);
    fputs("<span>&#9679; submit, | completion; ops: s step, &#9889; fault, F fault rule, "
          "&#215; cancel, w wait, d drain, R reopen, C check, &#9760; crash</span></div>\n", f);
}

/* What the finding names, in words, under the report. */
static void finding_words(struct pic *pc)
{
    FILE *f = pc->f;
    const struct blkv_timeline *tl = pc->tl;

    if (!has_fail(pc))
        return;
    fputs("<pre class=\"finding\">failing request: ", f);
    req_line(f, pc, tl->fail_req);
    fputs(" ", f);
    outcome(f, pc, &tl->reqs[tl->fail_req]);
    if (tl->mismatch_len) {
        fprintf(f, "\nunexplained: %" PRIu64 " byte(s) from offset %" PRIu64, tl->mismatch_len,
                tl->mismatch_offset);
        for (size_t i = 0; i < tl->ncands; i++) {
            fputs(i ? "\n            " : "\ncandidates: ", f);
            src_line(f, pc, tl->cands[i]);
        }
        for (size_t i = 0; i < tl->nevicted; i++) {
            fputs(i ? "\n            " : "\nno longer:  ", f);
            src_line(f, pc, tl->evicted[i]);
        }
        fputs("\nfound:      ", f);
        src_line(f, pc, tl->found);
        if (tl->missing != BLKV_TL_NONE) {
            fputs("\nmissing:    ", f);
            src_line(f, pc, tl->missing);
        }
    }
    fputs("</pre>\n", f);
}

static void mark_roles(struct pic *pc)
{
    const struct blkv_timeline *tl = pc->tl;
    if (!has_fail(pc))
        return;
    pc->role[tl->fail_req] |= ROLE_FAIL;
    for (size_t i = 0; i < tl->ncands; i++)
        if (tl->cands[i] < tl->nreqs)
            pc->role[tl->cands[i]] |= ROLE_CAND;
    for (size_t i = 0; i < tl->nevicted; i++)
        if (tl->evicted[i] < tl->nreqs)
            pc->role[tl->evicted[i]] |= ROLE_EVICTED;
    if (tl->found < tl->nreqs)
        pc->role[tl->found] |= ROLE_SOURCE;
    if (tl->missing < tl->nreqs)
        pc->role[tl->missing] |= ROLE_MISSING;
}

int blkv_picture_write(FILE *f, const struct blkv_picture *in)
{
    const struct blkv_program *p = in->prog;
    const struct blkv_timeline *tl = in->tl;
    const struct blkv_run_result *res = in->res;
    struct pic pc = {.in = in, .tl = tl, .f = f};
    struct view focus = {.id = "view-focus"}, whole = {.id = "view-all"};
    bool failed = in->violation;
    char b1[32];
    int ret = 0;

    for (uint64_t i = 0; i < tl->nreqs; i++) {
        if (tl->reqs[i].t_complete > pc.tmax)
            pc.tmax = tl->reqs[i].t_complete;
        if (tl->reqs[i].t_submit > pc.tmax)
            pc.tmax = tl->reqs[i].t_submit;
    }
    for (size_t i = 0; i < tl->nops; i++)
        if (tl->ops[i].ran && tl->ops[i].t_end > pc.tmax)
            pc.tmax = tl->ops[i].t_end;
    pc.role = calloc(tl->nreqs + 1, 1);
    focus.show = calloc(tl->nreqs + 1, sizeof(bool));
    whole.show = calloc(tl->nreqs + 1, sizeof(bool));
    if (!pc.role || !focus.show || !whole.show) {
        ret = -ENOMEM;
        goto out;
    }
    mark_roles(&pc);
    for (uint64_t i = 0; i < tl->nreqs; i++)
        whole.show[i] = i < MAX_WHOLE || pc.role[i];
    whole.t0 = -1, whole.t1 = (double)pc.tmax + 1;
    if (has_fail(&pc))
        choose_focus(&pc, &focus);

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width\">\n<title>blkv show: ", f);
    esc(f, in->title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>blkv show: <code>", page_css);
    esc(f, in->title);
    fputs("</code></h1>\n", f);
    if (failed) {
        fputs("<p class=\"status bad\" id=\"status\">violation: ", f);
        esc(f, res->signature);
        fputs(" &#8212; ", f);
        esc(f, res->message);
    } else {
        fprintf(f, "<p class=\"status good\" id=\"status\">clean: %" PRIu64 " ops, %" PRIu64
                   " requests, %" PRIu64 " reads verified", res->stats.ops, res->stats.requests,
                res->stats.reads_checked);
    }
    fputs("</p>\n<p class=\"cfg\">driver <code>", f);
    esc(f, in->driver);
    fprintf(f, "</code>; size %s; qd %u; sched %s; seed %" PRIu64 "; atomic %u; %zu ops, %" PRIu64
               " requests</p>\n",
            fmt_off(p->cfg.size, b1, sizeof b1), p->cfg.qd,
            p->cfg.sched == BLKV_SCHED_FIFO ? "fifo" : p->cfg.sched == BLKV_SCHED_LIFO ? "lifo"
                                                                                       : "random",
            p->cfg.seed, p->cfg.atomic ? p->cfg.atomic : 1, p->nops, tl->nreqs);
    fputs("<div class=\"wrap\">\n<div class=\"left\">\n<div class=\"controls\">", f);
    if (has_fail(&pc))
        fputs("<button class=\"on\" data-view=\"view-focus\">Failing range</button>", f);
    fprintf(f, "<button%s data-view=\"view-all\">Whole run (%" PRIu64 " requests)</button></div>\n",
            has_fail(&pc) ? "" : " class=\"on\"", tl->nreqs);
    legend(f);
    fputs("<div id=\"hover\">Hover over a request or an op to see its op line.</div>\n", f);
    if (has_fail(&pc) &&
        draw_view(&pc, &focus, "Failing range: the failing request, the writes the report "
                  "names, what touched its bytes or ran beside it", true, true)) {
        ret = -ENOMEM;
        goto out;
    }
    if (draw_view(&pc, &whole, tl->nreqs > MAX_WHOLE ? "Whole run (the first requests)"
                                                     : "Whole run", !has_fail(&pc),
                  !has_fail(&pc))) {
        ret = -ENOMEM;
        goto out;
    }
    fputs("</div>\n<div class=\"right\">\n", f);
    finding_words(&pc);
    if (in->report) {
        fputs("<pre id=\"report\">", f);
        esc(f, in->report);
        fputs("</pre>\n", f);
    } else if (!failed) {
        fputs("<pre id=\"report\">No violation: every completion was explained by the model."
              "</pre>\n", f);
    }
    fprintf(f, "<details><summary>The program (%zu ops)</summary><pre>", p->nops);
    for (size_t i = 0; i < p->nops; i++) {
        char line[160];
        blkv_pop_format(&p->ops[i], line, sizeof(line));
        fprintf(f, "%4zu  ", i);
        esc(f, line);
        if (i < tl->nops && tl->ops[i].ran)
            fprintf(f, "   (t=%" PRIu64 ")", tl->ops[i].t_begin);
        fputs("\n", f);
    }
    fputs("</pre></details>\n</div>\n</div>\n<script>\n", f);
    fputs(page_js, f);
    fputs("</script>\n</body>\n</html>\n", f);
out:
    free(pc.role);
    free(focus.show);
    free(whole.show);
    free(focus.x.s), free(focus.y.s), free(whole.x.s), free(whole.y.s);
    if (!ret && (ferror(f) || fflush(f)))
        ret = -EIO;
    return ret;
}

void blkv_picture_save(struct blkv_history *h, FILE *rf, char *const *buf)
{
    struct blkv_run_result *res = h->res;
    struct blkv_picture pic;
    char path[sizeof(res->repro_picture)];
    size_t n = strlen(res->repro_text);
    FILE *f;

    res->repro_picture[0] = 0;
    if (!h->opts->repro_picture || !h->timeline || n < 6 ||
        strcmp(res->repro_text + n - 6, ".trace"))
        return;
    snprintf(path, sizeof(path), "%.*s.html", (int)(n - 6), res->repro_text);
    blkv_timeline_sync(h);
    fflush(rf);
    pic = (struct blkv_picture){.prog = h->prog, .tl = h->timeline, .res = res,
                                .violation = true, .report = *buf, .title = res->repro_text,
                                .driver = h->driver_spec};
    f = fopen(path, "w");
    if (f) {
        int ret = blkv_picture_write(f, &pic);
        if (fclose(f) == 0 && ret == 0)
            snprintf(res->repro_picture, sizeof(res->repro_picture), "%s", path);
    }
    if (res->repro_picture[0])
        fprintf(rf, "  picture: %s\n", res->repro_picture);
    else
        fprintf(rf, "  picture: could not write %s\n", path);
}
