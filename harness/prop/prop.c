/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * prop.c - the property runner and the shrinker.
 */
#include <blkv/prop.h>

#include "program/limits.h"
#include "util/util.h"

#include <stdio.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int blkv_program_random(uint64_t seed, uint64_t index, size_t nops, struct blkv_program *p)
{
    static const uint64_t sizes[] = {UINT64_C(1) << 20, UINT64_C(4) << 20, UINT64_C(64) << 20,
                                     UINT64_C(1) << 30, UINT64_C(1) << 40};
    static const uint32_t qds[] = {1, 2, 4, 8, 16, 32};
    struct blkv_rng rng;
    size_t len = 16 + nops * 14;
    uint8_t *bytes = malloc(len);
    int ret;

    if (!bytes)
        return -ENOMEM;
    blkv_rng_seed(&rng, seed * UINT64_C(0x9e3779b97f4a7c15) ^ (index + 1) * UINT64_C(0xd1b54a32d192ed03));
    for (size_t i = 0; i < len; i++)
        bytes[i] = (uint8_t)blkv_rng_next(&rng);
    ret = blkv_program_decode(bytes, len, p);
    free(bytes);
    if (ret)
        return ret;
    if (p->nops > nops)
        p->nops = nops;
    p->cfg.size = sizes[blkv_rng_below(&rng, sizeof(sizes) / sizeof(sizes[0]))];
    /* the fuzz budget's largest device for the grain (a fuzz target replays
     * the reproducer; 1 TiB at 4 KiB grains would be a 16 MiB L1 table) */
    if (p->cfg.size > blkv_size_cap_of(p->cfg.grain))
        p->cfg.size = blkv_size_cap_of(p->cfg.grain);
    p->cfg.qd = qds[blkv_rng_below(&rng, sizeof(qds) / sizeof(qds[0]))];
    p->cfg.sched = (uint8_t)blkv_rng_below(&rng, 3);
    p->cfg.seed = blkv_rng_next(&rng);
    p->cfg.atomic = 1; /* what a driver promises is the user's to say, not chance's */
    p->cfg.serialize = blkv_rng_below(&rng, 8) == 0;
    p->cfg.init = blkv_rng_below(&rng, 2) ? BLKV_INIT_PATTERN : BLKV_INIT_ZERO;
    return 0;
}

bool blkv_same_signature(const struct blkv_run_result *res, void *sig)
{
    return res->status == BLKV_RUN_VIOLATION && strcmp(res->signature, sig) == 0;
}

/* ---- shrinking --------------------------------------------------------------- */

struct shrinker {
    const struct blkv_driver *driver;
    const char *driver_opts;
    blkv_shrink_pred pred;
    void *opaque;
    uint64_t runs, max_runs;
};

/* Whether q still fails the same way. */
static bool still_fails(struct shrinker *s, const struct blkv_program *q)
{
    struct blkv_run_opts o = {.driver = s->driver, .driver_opts = s->driver_opts, .quiet = true};
    struct blkv_run_result res;
    bool yes;

    if (s->runs >= s->max_runs)
        return false;
    s->runs++;
    blkv_run(q, &o, &res);
    yes = s->pred(&res, s->opaque);
    blkv_run_result_free(&res);
    return yes;
}

/* q = p without ops [from, to), renumbering request references. */
static int without(const struct blkv_program *p, size_t from, size_t to, struct blkv_program *q)
{
    uint64_t old_req = 0, new_req = 0;
    uint64_t *map = calloc(blkv_program_nreqs(p) + 1, sizeof(*map));

    if (!map)
        return -ENOMEM;
    q->cfg = p->cfg;
    q->nops = 0;
    for (size_t i = 0; i < p->nops; i++) {
        struct blkv_pop op = p->ops[i];
        bool keep = i < from || i >= to;
        if (blkv_opcode_submits(op.code)) {
            map[old_req++] = keep ? new_req + 1 : 0; /* 0: removed */
            if (keep)
                new_req++;
        } else if (blkv_opinfo(op.code)->operand == BLKV_OPND_REQ) {
            if (op.arg >= old_req || !map[op.arg])
                keep = false;
            else
                op.arg = (uint32_t)(map[op.arg] - 1);
        }
        if (keep && blkv_program_push(q, &op)) {
            free(map);
            return -ENOMEM;
        }
    }
    free(map);
    return 0;
}

/* Adopt q as the new p (q's op array moves to p; text fields stay p's). */
static void adopt(struct blkv_program *p, struct blkv_program *q)
{
    struct blkv_pop *ops = p->ops;
    size_t cap = p->cap;
    char *driver = p->cfg.driver, *image = p->cfg.init_image, *lower = p->cfg.lower_image;

    p->ops = q->ops, p->nops = q->nops, p->cap = q->cap;
    p->cfg = q->cfg;
    p->cfg.driver = driver, p->cfg.init_image = image, p->cfg.lower_image = lower;
    q->ops = ops, q->cap = cap, q->nops = 0;
}

static void shrink_ops(struct shrinker *s, struct blkv_program *p, struct blkv_program *q)
{
    size_t chunk = p->nops / 2 ? p->nops / 2 : 1;

    while (chunk >= 1 && s->runs < s->max_runs) {
        bool progress = false;
        for (size_t from = 0; from < p->nops && s->runs < s->max_runs;) {
            size_t to = from + chunk < p->nops ? from + chunk : p->nops;
            if (without(p, from, to, q) == 0 && still_fails(s, q)) {
                adopt(p, q);
                progress = true; /* the same `from` now names the next chunk */
            } else {
                from = to;
            }
        }
        if (!progress) {
            if (chunk == 1)
                break;
            chunk /= 2;
        }
    }
}

/* Try one replacement of op i; keep it if the failure stays. */
static bool try_op(struct shrinker *s, struct blkv_program *p, struct blkv_program *q, size_t i,
                   const struct blkv_pop *op)
{
    if (memcmp(op, &p->ops[i], sizeof(*op)) == 0)
        return false;
    if (without(p, p->nops, p->nops, q))
        return false;
    q->ops[i] = *op;
    if (!still_fails(s, q))
        return false;
    adopt(p, q);
    return true;
}

static void shrink_values(struct shrinker *s, struct blkv_program *p, struct blkv_program *q)
{
    for (size_t i = 0; i < p->nops && s->runs < s->max_runs; i++) {
        struct blkv_pop o = p->ops[i];
        if (blkv_opinfo(o.code)->operand == BLKV_OPND_STEP) {
            o.arg = 0;
            try_op(s, p, q, i, &o);
            continue;
        }
        if (!blkv_opcode_ranged(o.code))
            continue;
        o = p->ops[i], o.flags = 0;
        try_op(s, p, q, i, &o);
        o = p->ops[i], o.offset = 0;
        if (!try_op(s, p, q, i, &o)) {
            o = p->ops[i], o.offset &= ~UINT64_C(4095);
            if (!try_op(s, p, q, i, &o)) {
                o = p->ops[i], o.offset &= ~UINT64_C(511);
                try_op(s, p, q, i, &o);
            }
        }
        o = p->ops[i], o.len = 4096;
        if (!try_op(s, p, q, i, &o)) {
            o = p->ops[i], o.len = (o.len + 511) & ~UINT64_C(511);
            try_op(s, p, q, i, &o);
        }
    }
}

static void shrink_config(struct shrinker *s, struct blkv_program *p, struct blkv_program *q)
{
    static const uint32_t qds[] = {1, 2, 4};
    struct blkv_config c;

    for (size_t i = 0; i < 3; i++) {
        if (p->cfg.qd <= qds[i] || without(p, p->nops, p->nops, q))
            continue;
        q->cfg.qd = qds[i];
        if (still_fails(s, q)) {
            adopt(p, q);
            break;
        }
    }
    c = p->cfg;
    if (c.sched != BLKV_SCHED_FIFO && !without(p, p->nops, p->nops, q)) {
        q->cfg.sched = BLKV_SCHED_FIFO;
        if (still_fails(s, q))
            adopt(p, q);
    }
    if (p->cfg.serialize && !without(p, p->nops, p->nops, q)) {
        q->cfg.serialize = false;
        if (still_fails(s, q))
            adopt(p, q);
    }
    if (p->cfg.seed && !without(p, p->nops, p->nops, q)) {
        q->cfg.seed = 0;
        if (still_fails(s, q))
            adopt(p, q);
    }
}

uint64_t blkv_shrink(struct blkv_program *p, const struct blkv_driver *driver,
                     const char *driver_opts, blkv_shrink_pred pred, void *opaque,
                     uint64_t max_runs)
{
    struct shrinker s = {.driver = driver, .driver_opts = driver_opts, .pred = pred,
                         .opaque = opaque, .max_runs = max_runs};
    struct blkv_program q;
    size_t before;

    blkv_program_init(&q);
    do {
        before = p->nops;
        shrink_ops(&s, p, &q);
        shrink_config(&s, p, &q);
        shrink_values(&s, p, &q);
    } while (p->nops < before && s.runs < s.max_runs);
    q.cfg.driver = q.cfg.init_image = q.cfg.lower_image = NULL;
    blkv_program_free(&q);
    return s.runs;
}

/* ---- the property loop ------------------------------------------------------- */

/* The name of option token t ("name=value"), its length in *n. */
static const char *opt_name(const char *t, size_t *n)
{
    *n = strcspn(t, "= \t,");
    return t;
}

/* Whether option string opts sets option `name` (n bytes). */
static bool opts_set(const char *opts, const char *name, size_t n)
{
    for (const char *t = opts; t && *t;) {
        size_t tn, len;
        t += strspn(t, " \t,");
        len = strcspn(t, " \t,");
        if (len && opt_name(t, &tn) && tn == n && !memcmp(t, name, n))
            return true;
        t += len;
    }
    return false;
}

/* Program p's driver options into buf: o->driver_opts as given, then what
 * o->vary draws for the options they leave unset. */
static void prop_opts(const struct blkv_prop_opts *o, const struct blkv_program *p, char *buf,
                      size_t len)
{
    char drawn[512];
    size_t m;

    m = (size_t)snprintf(buf, len, "%s", o->driver_opts ? o->driver_opts : "");
    if (!o->vary)
        return;
    o->vary(p, drawn, sizeof(drawn));
    for (const char *t = drawn; *t && m < len;) {
        size_t tn, tl;
        t += strspn(t, " \t,");
        tl = strcspn(t, " \t,");
        if (tl && opt_name(t, &tn) && !opts_set(o->driver_opts, t, tn))
            m += (size_t)snprintf(buf + m, len - m, "%s%.*s", m ? " " : "", (int)tl, t);
        t += tl;
    }
}

/*
 * Save a failing program's first run: its encoding (bin), its trace text
 * under the comment `note` (text) and its report, as DIR/blkv-repro-HASH
 * .bin, .trace and .report (paths in path[], in that order).  0 or an
 * errno, with what went wrong said in out.
 */
static int save_first_run(const struct blkv_prop_opts *o, FILE *out, const uint8_t *bin,
                          size_t bin_len, const char *text, const char *report,
                          const char *first_line, const char *note, char path[3][4096])
{
    const char *dir = o->save_dir ? o->save_dir : ".";
    uint64_t hash = blkv_fnv1a(bin, bin_len);
    char *full = NULL;
    size_t full_len = 0;
    FILE *f;
    int e;

    if ((e = -blkv_mkdir_p(dir))) {
        fprintf(out, "prop: the reproducer was not saved: %s: %s\n", dir, strerror(e));
        return e;
    }
    for (unsigned i = 0; i < 3; i++)
        snprintf(path[i], sizeof(path[i]), "%s/blkv-repro-%016" PRIx64 ".%s", dir, hash,
                 i == 0 ? "bin" : i == 1 ? "trace" : "report");
    if (!(f = open_memstream(&full, &full_len))) {
        fprintf(out, "prop: the reproducer was not saved: out of memory\n");
        return ENOMEM;
    }
    fprintf(f, "# %s\n# %s\n# replay: blkv run %s\n%s", first_line, note, path[1], text);
    fclose(f);
    if (!full) {
        fprintf(out, "prop: the reproducer was not saved: out of memory\n");
        return ENOMEM;
    }
    if ((e = blkv_write_file(path[0], bin, bin_len)) ||
        (e = blkv_write_file(path[1], full, full_len)) ||
        (e = blkv_write_file(path[2], report, strlen(report))))
        fprintf(out, "prop: the reproducer was not saved: %s\n", strerror(e));
    free(full);
    return e;
}

/* ---- the summary on a signal (blkv_prop_opts.signal_summary) ------------ */

/* What the handler writes: the text of two buffers that is complete (the
 * other one is being written by prop), to fd.  Written by prop after each
 * program and when a shrink begins and ends. */
static struct {
    char text[2][1024];
    size_t len[2];
    volatile sig_atomic_t cur, active;
    int fd;
    struct sigaction old_int, old_term;
} prop_sig;

static void sig_summary(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sig_summary(const char *fmt, ...)
{
    int next = !prop_sig.cur, n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(prop_sig.text[next], sizeof(prop_sig.text[next]), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(prop_sig.text[next]))
        n = (int)sizeof(prop_sig.text[next]) - 1;
    prop_sig.len[next] = (size_t)n;
    prop_sig.cur = next;
}

/* SIGINT, SIGTERM: the summary so far, then the signal's previous
 * disposition (a driver's cleanup handler, installed after this one, has
 * run already: it calls this one). */
static void sig_handler(int sig)
{
    int cur = prop_sig.cur, saved = errno;

    if (prop_sig.active) {
        ssize_t w = write(prop_sig.fd, prop_sig.text[cur], prop_sig.len[cur]);
        (void)w;
    }
    sigaction(sig, sig == SIGINT ? &prop_sig.old_int : &prop_sig.old_term, NULL);
    errno = saved;
    raise(sig); /* delivered once this handler returns */
}

static void sig_install(FILE *out)
{
    struct sigaction sa;

    prop_sig.fd = fileno(out);
    prop_sig.active = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sig_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &prop_sig.old_int);
    sigaction(SIGTERM, &sa, &prop_sig.old_term);
    /* one the process ignores (a background job's SIGINT) stays ignored */
    if (prop_sig.old_int.sa_handler == SIG_IGN)
        sigaction(SIGINT, &prop_sig.old_int, NULL);
    if (prop_sig.old_term.sa_handler == SIG_IGN)
        sigaction(SIGTERM, &prop_sig.old_term, NULL);
}

/* The previous handlers again, where ours is still the one installed (a
 * driver's handler installed since chains to ours, which then only passes
 * the signal on). */
static void sig_uninstall(void)
{
    struct sigaction cur;

    prop_sig.active = 0;
    if (!sigaction(SIGINT, NULL, &cur) && cur.sa_handler == sig_handler)
        sigaction(SIGINT, &prop_sig.old_int, NULL);
    if (!sigaction(SIGTERM, NULL, &cur) && cur.sa_handler == sig_handler)
        sigaction(SIGTERM, &prop_sig.old_term, NULL);
}

/* blkv_run, and again without each fault rule the driver's server cannot
 * express beyond its event (QEMU's blkdebug cannot count two events, say),
 * counted in *refused.  Each pass removes an op, so this ends. */
static int run_taking(struct blkv_program *p, const struct blkv_run_opts *ro,
                      struct blkv_run_result *res, uint64_t *refused)
{
    int st = blkv_run(p, ro, res);

    while (st == BLKV_RUN_ERROR && res->refused_op && res->refused_op <= p->nops &&
           p->ops[res->refused_op - 1].code == BLKV_P_FAULT) {
        size_t k = res->refused_op - 1;
        memmove(&p->ops[k], &p->ops[k + 1], (p->nops - k - 1) * sizeof(p->ops[0]));
        p->nops--;
        if (refused)
            (*refused)++;
        blkv_run_result_free(res);
        st = blkv_run(p, ro, res);
    }
    return st;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int prop_loop(const struct blkv_prop_opts *o, FILE *out)
{
    double start = now(), last = 0, last_line = start;
    uint64_t ops = 0, bytes = 0, skipped = 0, refused = 0, fitted = 0, i;
    char err[512], *spec, first_err[sizeof(((struct blkv_run_result *)0)->message)] = "";
    int ret = 0;

    if (blkv_driver_opts_check(o->driver, o->driver_opts, err, sizeof(err))) {
        fprintf(stderr, "blkv prop: %s\n", err);
        return 2;
    }
    if (!(spec = blkv_driver_spec_format(o->driver, o->driver_opts))) {
        fprintf(stderr, "blkv prop: out of memory\n");
        return 2;
    }
    fprintf(out, "prop: driver '%s'%s, seed %" PRIu64 ", %zu ops per program%s\n", spec,
            o->vary ? " and image options drawn per program" : "", o->seed, o->ops,
            o->driver->in_process ? "" : " (not in-process: crash and fault ops only where the"
                                          " driver takes them)");
    fflush(out); /* before a signal's summary, which is written past the buffer */
    free(spec);
    for (i = 0; (!o->runs || i < o->runs) && (!o->seconds || now() - start < o->seconds); i++) {
        struct blkv_program p;
        char popts[1024];
        struct blkv_run_opts ro = {.driver = o->driver, .driver_opts = popts, .quiet = true};
        struct blkv_run_result res;
        int st;

        blkv_program_init(&p);
        if (blkv_program_random(o->seed, i, o->ops, &p)) {
            blkv_program_free(&p);
            fprintf(stderr, "blkv prop: out of memory\n");
            return 2;
        }
        prop_opts(o, &p, popts, sizeof(popts));
        fitted += blkv_driver_fit(o->driver, popts, &p); /* lower files, or a server that can */
        st = run_taking(&p, &ro, &res, &refused);
        ops += res.stats.ops, bytes += res.stats.bytes_verified;
        if (st == BLKV_RUN_ERROR && !skipped++)
            snprintf(first_err, sizeof(first_err), "%s", res.message);
        if (o->signal_summary)
            sig_summary("\nprop: interrupted: no failure in the %" PRIu64 " programs done (%"
                        PRIu64 " ops, %" PRIu64 " MiB verified, %.1fs)%s\n", i + 1 - skipped,
                        ops, bytes >> 20, now() - start,
                        skipped ? "; some could not run" : "");
        if (o->progress && now() - last > 0.5) {
            double t = now() - start;
            last = now();
            fprintf(stderr, "\r[%6.1fs] programs %-8" PRIu64 " ops %-10" PRIu64
                            " verified %-7" PRIu64 " MiB  %.0f programs/s ", t, i + 1, ops,
                    bytes >> 20, (double)(i + 1) / (t > 0 ? t : 1));
        } else if (!o->progress && o->progress_every > 0 &&
                   now() - last_line >= o->progress_every) {
            double t = now() - start;
            last_line = now();
            fprintf(stderr, "prop: [%.0fs] %" PRIu64 " programs, %" PRIu64 " ops, %" PRIu64
                            " MiB verified, %.1f programs/s, no failure\n", t, i + 1, ops,
                    bytes >> 20, (double)(i + 1) / (t > 0 ? t : 1));
        }
        if (st == BLKV_RUN_VIOLATION) {
            char sig[sizeof(res.signature)];
            struct blkv_run_opts fo = {.driver = o->driver, .driver_opts = popts,
                                       .repro_dir = o->save_dir, .quiet = true};
            struct blkv_run_result fin;
            char path[3][4096];
            bool saved;
            size_t before = p.nops, bin_len = 0;
            uint64_t runs;
            struct blkv_program copy = p;
            char *pspec = blkv_driver_spec_format(o->driver, popts), *text;
            const char *first_report = res.report ? res.report : res.message;
            uint8_t *bin = blkv_program_encode(&p, &bin_len);

            /* the first run's program, in case the minimal one does not fail again */
            copy.cfg.driver = pspec;
            text = pspec ? blkv_program_format(&copy) : NULL;
            if (o->progress)
                fprintf(stderr, "\n");
            memcpy(sig, res.signature, sizeof(sig));
            fprintf(out, "prop: program %" PRIu64 " (seed %" PRIu64 ") failed: %s\n", i, o->seed,
                    res.message);
            if (o->vary)
                fprintf(out, "prop: its driver: '%s'\n", pspec ? pspec : popts);
            /* the first run, saved before the shrink (which may take long)
             * and removed once the minimal program is: what a signal or a
             * kill meanwhile leaves */
            saved = bin && text &&
                    !save_first_run(o, out, bin, bin_len, text, first_report, res.message,
                                    "the first run's program, saved while prop shrank it", path);
            if (o->signal_summary)
                sig_summary("\nprop: interrupted while shrinking the failure of program %"
                            PRIu64 " (seed %" PRIu64 "): %s\nprop: its first run: %s%s\n", i,
                            o->seed, res.message, saved ? "blkv run " : "not saved",
                            saved ? path[1] : "");
            runs = blkv_shrink(&p, o->driver, popts, blkv_same_signature, sig,
                               o->shrink_runs ? o->shrink_runs : 2000);
            fprintf(out, "prop: shrunk from %zu to %zu ops in %" PRIu64 " runs\n", before,
                    p.nops, runs);
            /* as the first run did: it may have failed before a rule the
             * driver refuses, which this run, failing later or not at all,
             * reaches */
            if (run_taking(&p, &fo, &fin, NULL) == BLKV_RUN_VIOLATION) {
                fputs(fin.report ? fin.report : fin.message, out);
                if (!fin.repro_text[0]) /* the report says why */
                    fprintf(stderr, "blkv prop: the reproducer was not saved\n");
                else if (saved && strcmp(fin.repro_text, path[1])) /* not the same program */
                    for (unsigned k = 0; k < 3; k++)
                        unlink(path[k]);
            } else {
                fprintf(out, "prop: the shrunk program did not fail again when rerun (%s): its"
                             " first run's report follows, and its reproducer is saved\n",
                        fin.status == BLKV_RUN_OK ? "it ran clean" : fin.message);
                fputs(first_report, out);
                if (!bin || !text)
                    fprintf(out, "prop: the reproducer was not saved: out of memory\n");
                else if (!save_first_run(o, out, bin, bin_len, text, first_report, res.message,
                                         "did not fail again when rerun (undefined behaviour,"
                                         " a data race or a sanitizer finding?)", path))
                    fprintf(out, "prop: the first run's report: %s; reproducer: %s (text), %s"
                                 " (binary)\nprop: replay: blkv run %s\n", path[2], path[1],
                            path[0], path[1]);
            }
            free(text);
            free(pspec);
            free(bin);
            blkv_run_result_free(&fin);
            blkv_run_result_free(&res);
            blkv_program_free(&p);
            ret = 1;
            break;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    if (o->progress && !ret)
        fprintf(stderr, "\n");
    if (!ret && skipped && skipped == i) {
        /* nothing ran: that is not "no failure" */
        fprintf(stderr, "blkv prop: no program could run: %s\n", first_err);
        return 2;
    }
    fprintf(out, "prop: %s after %" PRIu64 " programs, %" PRIu64 " ops, %" PRIu64
                 " MiB verified in %.1fs\n", ret ? "failure" : "no failure", i + (ret ? 1 : 0),
            ops, bytes >> 20, now() - start);
    if (skipped)
        fprintf(out, "prop: %" PRIu64 " program(s) could not run, the first: %s\n", skipped,
                first_err);
    if (fitted)
        fprintf(out, "prop: %" PRIu64 " crash and fault op(s) the driver does not take were left"
                     " out before the runs\n", fitted);
    if (refused)
        fprintf(out, "prop: %" PRIu64 " fault rule(s) the driver refused were left out (each"
                     " program ran again without it)\n", refused);
    return ret;
}

int blkv_prop(const struct blkv_prop_opts *o)
{
    FILE *out = o->out ? o->out : stdout;
    int ret;

    if (o->signal_summary) {
        fflush(out);
        sig_summary("\nprop: interrupted before the first program ended\n");
        sig_install(out);
    }
    ret = prop_loop(o, out);
    if (o->signal_summary)
        sig_uninstall();
    return ret;
}
