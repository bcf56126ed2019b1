/*
 * verify.c - the verification core: driver setup, the dispatch layer that
 * checks the driver contract, the op loop, and the completion checks.
 */
#include "bufpool.h"
#include "core.h"
#include "pattern.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads start out filled with this, so bytes a driver never wrote show up. */
#define POISON 0xa5
/* Requests wait before submission while this many bytes are in flight. */
#define MAX_INFLIGHT_BYTES (UINT64_C(64) << 20)
/* Most bytes of initial content a run writes through the driver. */
#define MAX_INITIAL_FILL (UINT64_C(1) << 30)
/* External drivers: give up on a request after this many idle polls of 100 ms. */
#define MAX_IDLE_POLLS 300

/* blkv_driver_probe: where to copy the capabilities after open. */
static struct blkv_caps *probe_caps;

/* ---- driver services ----------------------------------------------------- */

void blkv_error(struct blkv_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    if (ctx->error[0])
        return; /* the first error is the cause; later ones are consequences */
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
    va_end(ap);
}

const char *blkv_opt(struct blkv_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->nopts; i++)
        if (strcmp(ctx->opt_name[i], name) == 0)
            return ctx->opt_val[i];
    for (const struct blkv_option *o = ctx->drv->options; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o->def;
    return NULL;
}

int blkv_opt_u64(struct blkv_ctx *ctx, const char *name, uint64_t *out)
{
    const char *v = blkv_opt(ctx, name);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (blkv_parse_u64(v, out) < 0) {
        blkv_error(ctx, "option %s=%s: not a number", name, v);
        return -EINVAL;
    }
    return 0;
}

uint64_t blkv_seed(struct blkv_ctx *ctx)
{
    return ctx->run->prog->cfg.seed;
}

static void image_read(void *opaque, void *buf, uint64_t len, uint64_t off);

void blkv_initial_content(struct blkv_ctx *ctx, void *buf, uint64_t len, uint64_t off)
{
    switch (ctx->run->prog->cfg.init) {
    case BLKV_INIT_PATTERN:
        blkv_pattern_fill(buf, BLKV_SRC_INITIAL, off, len);
        break;
    case BLKV_INIT_IMAGE:
        image_read(ctx->run, buf, len, off);
        break;
    default:
        memset(buf, 0, len);
        break;
    }
}

struct blkv_lower *blkv_lower_get(struct blkv_ctx *ctx, unsigned idx)
{
    if (!ctx->run->rt || idx > 1)
        return NULL;
    return blkv_rt_lower(ctx->run->rt, idx);
}

void blkv_co_cancel(struct blkv_req *req)
{
    struct blkv_core_req *r = req->core;
    if (r->co && !r->completed)
        blkv_rt_cancel(r->run->rt, r->co);
}

const char *blkv_req_op_name(enum blkv_op op)
{
    static const char *const names[] = {"read", "write", "write-zeroes", "discard", "flush"};
    return op <= BLKV_OP_FLUSH ? names[op] : "?";
}

/* ---- driver spec --------------------------------------------------------- */

/* Split "name k=v k=v" into ctx (driver and options); 0 or -EINVAL + msg. */
static int spec_parse(const char *spec, struct blkv_ctx *ctx, char *err, size_t errlen)
{
    char *s = strdup(spec), *save = NULL, *tok;
    const struct blkv_driver *d;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ctx->spec_copy = s;
    tok = strtok_r(s, " \t,", &save);
    if (!tok) {
        snprintf(err, errlen, "empty driver spec");
        return -EINVAL;
    }
    d = blkv_driver_find(tok);
    if (!d) {
        int n = snprintf(err, errlen, "unknown driver '%s' (drivers:", tok);
        for (size_t i = 0; blkv_drivers[i] && n > 0 && (size_t)n < errlen; i++)
            n += snprintf(err + n, errlen - n, " %s", blkv_drivers[i]->name);
        if (n > 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - n, ")");
        return -EINVAL;
    }
    ctx->drv = d;
    while ((tok = strtok_r(NULL, " \t,", &save))) {
        char *eq = strchr(tok, '=');
        const struct blkv_option *o;
        if (!eq || eq == tok) {
            snprintf(err, errlen, "driver %s: option '%s' is not name=value", d->name, tok);
            return -EINVAL;
        }
        *eq = 0;
        for (o = d->options; o && o->name; o++)
            if (strcmp(o->name, tok) == 0)
                break;
        if (!o || !o->name) {
            int n = snprintf(err, errlen, "driver %s has no option '%s'", d->name, tok);
            if (d->options && d->options->name && n > 0 && (size_t)n < errlen) {
                n += snprintf(err + n, errlen - n, " (options:");
                for (o = d->options; o->name && n > 0 && (size_t)n < errlen; o++)
                    n += snprintf(err + n, errlen - n, " %s", o->name);
                if (n > 0 && (size_t)n < errlen)
                    snprintf(err + n, errlen - n, ")");
            }
            return -EINVAL;
        }
        if (ctx->nopts == BLKV_MAX_OPTIONS) {
            snprintf(err, errlen, "driver %s: too many options", d->name);
            return -EINVAL;
        }
        for (size_t i = 0; i < ctx->nopts; i++)
            if (strcmp(ctx->opt_name[i], tok) == 0) {
                snprintf(err, errlen, "driver %s: option '%s' given twice", d->name, tok);
                return -EINVAL;
            }
        ctx->opt_name[ctx->nopts] = tok;
        ctx->opt_val[ctx->nopts++] = eq + 1;
    }
    return 0;
}

int blkv_driver_spec_check(const char *spec, char *err, size_t errlen)
{
    struct blkv_ctx ctx;
    int ret;
    memset(&ctx, 0, sizeof(ctx));
    ret = spec_parse(spec, &ctx, err, errlen);
    free(ctx.spec_copy);
    return ret;
}

/* Copy a driver struct to full size, zero-filling what an older driver lacks. */
static int driver_load(struct blkv_run *run, const struct blkv_driver *d, char *err, size_t len)
{
    size_t n = d->struct_size < sizeof(run->drv) ? d->struct_size : sizeof(run->drv);
    memset(&run->drv, 0, sizeof(run->drv));
    memcpy(&run->drv, d, n);
    if (d->api_version == 0 || d->api_version > BLKV_DRIVER_API_VERSION || n < 16) {
        snprintf(err, len, "driver %s: unsupported API version %u", d->name, d->api_version);
        return -EINVAL;
    }
    if (!run->drv.open || (!run->drv.submit == !run->drv.co_submit) ||
        (run->drv.co_submit && !run->drv.in_process)) {
        snprintf(err, len, "driver %s: needs open and exactly one of submit, co_submit",
                 d->name);
        return -EINVAL;
    }
    return 0;
}

/* ---- running driver code in coroutines ----------------------------------- */

struct co_call {
    struct blkv_run *run;
    int which; /* 0 open, 1 close, 2 check */
    bool create;
    int ret;
    bool done;
};

static void co_call_entry(void *arg)
{
    struct co_call *c = arg;
    struct blkv_run *run = c->run;
    switch (c->which) {
    case 0:
        memset(&run->caps, 0, sizeof(run->caps));
        c->ret = run->drv.open(run->state, &run->ctx, run->prog->cfg.size, c->create, &run->caps);
        break;
    case 1:
        run->drv.close(run->state);
        c->ret = 0;
        break;
    case 2:
        c->ret = run->drv.check(run->state);
        break;
    }
    c->done = true;
}

/* Run open/close/check: in a coroutine for in-process drivers, pumping the
 * scheduler until it returns; directly otherwise. */
static int driver_call(struct blkv_run *run, int which, bool create)
{
    struct co_call c = {.run = run, .which = which, .create = create, .ret = -EIO};

    if (!run->drv.in_process) {
        co_call_entry(&c);
        return c.ret;
    }
    if (!blkv_rt_spawn(run->rt, co_call_entry, &c, NULL))
        return -ENOMEM;
    while (!c.done) {
        if (!blkv_rt_progress(run->rt)) {
            if (run->opts->untrusted && !run->failed) {
                static const char *const names[] = {"open", "close", "check"};
                run->stuck = true; /* its coroutine can never finish: no close */
                blkv_report_other(run, NULL, "deadlock", "%s never returns: nothing is "
                                  "runnable and no lower I/O is pending", names[which]);
            }
            return -EDEADLK;
        }
    }
    return c.ret;
}

/* Whether ret is a negative errno, as callbacks must return on failure. */
static bool is_errno(int ret)
{
    return ret < 0 && ret >= -4095;
}

static const char *err_name(int ret, char *buf, size_t len)
{
    const char *n = blkv_errno_name(ret);
    if (n)
        snprintf(buf, len, "%d (%s)", ret, n);
    else
        snprintf(buf, len, "%d", ret);
    return buf;
}

static int run_error(struct blkv_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int run_error(struct blkv_run *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->res->message, sizeof(run->res->message), fmt, ap);
    va_end(ap);
    run->res->status = BLKV_RUN_ERROR;
    return BLKV_RUN_ERROR;
}

static int driver_open(struct blkv_run *run, bool create)
{
    char eb[64];
    int ret = driver_call(run, 0, create);
    uint64_t maxt;

    if (run->opts->untrusted && run->stuck) /* deadlocked: reported */
        return BLKV_RUN_VIOLATION;
    if (run->opts->untrusted && (ret > 0 || (ret < 0 && (!is_errno(ret) || !run->ctx.error[0])))) {
        /* a refusal must be an errno with a message */
        run->opened = ret > 0; /* the driver may think it is open */
        if (!run->failed)
            blkv_report_other(run, NULL, "open", "open returned %s%s",
                              err_name(ret, eb, sizeof eb),
                              ret < 0 && is_errno(ret) ? " without a message" : "");
        return BLKV_RUN_VIOLATION;
    }
    if (ret < 0)
        return run_error(run, "%s: open failed: %s%s%s", run->drv.name, err_name(ret, eb, sizeof eb),
                         run->ctx.error[0] ? ": " : "", run->ctx.error);
    if (run->caps.align == 0)
        run->caps.align = 1;
    maxt = run->caps.max_transfer;
    if (maxt == 0 || maxt > BLKV_MAX_REQUEST)
        run->caps.max_transfer = BLKV_MAX_REQUEST;
    if (!blkv_is_pow2(run->caps.align) || run->caps.align > (1u << 20) ||
        (run->caps.atomic && !blkv_is_pow2(run->caps.atomic)) ||
        run->caps.max_transfer < run->caps.align || run->caps.size > BLKV_MAX_DEVICE_SIZE) {
        if (run->opts->untrusted) { /* the image cannot make the driver break the API */
            run->opened = true; /* open succeeded: close it */
            if (!run->failed)
                blkv_report_other(run, NULL, "open", "open returned invalid capabilities "
                                  "(align %u, max transfer %u, size %" PRIu64 ")",
                                  run->caps.align, run->caps.max_transfer, run->caps.size);
            return BLKV_RUN_VIOLATION;
        }
        return run_error(run, "%s: open returned invalid capabilities (align %u, max transfer %u,"
                         " size %" PRIu64 ")", run->drv.name, run->caps.align,
                         run->caps.max_transfer, run->caps.size);
    }
    /* check the atomicity the config asks for, as far as the driver promises it */
    run->atomic = run->prog->cfg.atomic ? run->prog->cfg.atomic : 1;
    if (run->atomic > (run->caps.atomic ? run->caps.atomic : 1))
        run->atomic = run->caps.atomic ? run->caps.atomic : 1;
    run->opened = true;
    if (probe_caps)
        *probe_caps = run->caps;
    return 0;
}

static void driver_close(struct blkv_run *run)
{
    if (run->opened && run->drv.close && !run->stuck)
        driver_call(run, 1, false);
    run->opened = false;
}

/* ---- progress ------------------------------------------------------------ */

static void report_stuck(struct blkv_run *run)
{
    struct blkv_core_req *r = NULL;
    for (uint64_t i = 0; i < run->next_req; i++)
        if (run->reqs[i].submitted && !run->reqs[i].completed) {
            r = &run->reqs[i];
            break;
        }
    run->stuck = true;
    if (!run->failed)
        blkv_report_other(run, r, "deadlock",
                          "%" PRIu64 " request(s) can never complete: nothing is runnable and"
                          " no lower I/O is pending", run->inflight);
}

/* Make one unit of progress; false when nothing can progress (reported). */
static bool progress(struct blkv_run *run)
{
    if (run->stuck)
        return false;
    if (run->drv.in_process) {
        if (blkv_rt_progress(run->rt))
            return true;
        report_stuck(run);
        return false;
    }
    if (run->drv.poll) {
        for (int idle = 0; idle < MAX_IDLE_POLLS; idle++) {
            int n = run->drv.poll(run->state, 100);
            if (n != 0)
                return true;
        }
    }
    report_stuck(run);
    return false;
}

static void drain(struct blkv_run *run)
{
    while (run->inflight && progress(run))
        ;
}

/* Drain, then let in-process coroutines that outlived their requests (a
 * driver that completed early) finish what they still have pending. */
static void settle(struct blkv_run *run)
{
    drain(run);
    if (run->drv.in_process && !run->stuck)
        while (blkv_rt_live(run->rt) && blkv_rt_progress(run->rt))
            ;
}

/* ---- completion ---------------------------------------------------------- */

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
    if (run->opts->untrusted) /* an untrusted image may fail anything */
        return is_errno(ret);
    /* after an injected fault a driver may fail anything */
    if (run->caps.may_fail)
        return true;
    return run->rt && blkv_rt_faults(run->rt) > 0;
}

void blkv_complete(struct blkv_req *req, int ret)
{
    struct blkv_core_req *r = req->core;
    struct blkv_run *run = r->run;
    bool ok;

    if (r->completed) {
        if (!run->failed)
            blkv_report_other(run, r, "double-completion",
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

    if (!run->failed && !retval_ok(run, r, ret))
        blkv_report_retval(run, r, r->expect_err);

    if (r->in_model && run->model)
        blkv_model_complete(run->model, BLKV_SRC_OF_REQ(r->req.id), ok && !r->expect_err,
                            r->evicts, r->t_complete);

    if (r->req.op == BLKV_OP_READ && !r->expect_err && run->model) {
        if (ok && !run->failed) {
            struct blkv_mismatch mm;
            if (blkv_model_read_check(run->model, r->req.id, r->req.offset, r->req.len, r->data,
                                      r->t_submit, r->t_complete, &mm)) {
                run->res->stats.reads_checked++;
                run->res->stats.bytes_verified += r->req.len;
            } else {
                blkv_report_mismatch(run, r, &mm);
            }
        } else {
            blkv_model_read_abandon(run->model, r->t_submit);
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

static void co_submit_entry(void *arg)
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
    for (uint64_t i = 0; i < run->next_req; i++) {
        struct blkv_core_req *q = &run->reqs[i];
        if (!q->submitted || q->completed || q->req.op == BLKV_OP_FLUSH)
            continue;
        if ((w || is_write_like(q->req.op)) &&
            ranges_overlap(op->offset, op->len, q->req.offset, q->req.len))
            return true;
    }
    return false;
}

static int submit_error(const struct blkv_run *run, enum blkv_op op, uint64_t off, uint64_t len)
{
    const struct blkv_caps *c = &run->caps;
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

static void submit(struct blkv_run *run, const struct blkv_pop *op)
{
    static const enum blkv_op map[] = {
        [BLKV_P_READ] = BLKV_OP_READ,          [BLKV_P_WRITE] = BLKV_OP_WRITE,
        [BLKV_P_WZERO] = BLKV_OP_WRITE_ZEROES, [BLKV_P_DISCARD] = BLKV_OP_DISCARD,
        [BLKV_P_FLUSH] = BLKV_OP_FLUSH,
    };
    struct blkv_core_req *r;
    enum blkv_op kind = map[op->code];
    uint64_t len = kind == BLKV_OP_FLUSH ? 0 : op->len;

    /* wait for room: queue depth, bytes in flight, serialized overlaps */
    while (!run->stuck && run->inflight &&
           (run->inflight >= run->prog->cfg.qd ||
            run->inflight_bytes + len > MAX_INFLIGHT_BYTES ||
            (run->prog->cfg.serialize && kind != BLKV_OP_FLUSH && must_wait(run, op))))
        progress(run);
    if (run->stuck)
        return;

    r = &run->reqs[run->next_req];
    memset(r, 0, sizeof(*r));
    r->run = run;
    r->op = run->cur_op;
    r->req.core = r;
    r->req.id = run->next_req++;
    r->req.op = kind;
    r->req.offset = kind == BLKV_OP_FLUSH ? 0 : op->offset;
    r->req.len = len;
    r->expect_err = submit_error(run, kind, r->req.offset, len);
    if (kind == BLKV_OP_WRITE && (op->flags & BLKV_P_FUA) && run->caps.fua)
        r->req.flags |= BLKV_REQ_FUA;
    if (kind == BLKV_OP_WRITE_ZEROES) {
        if ((op->flags & BLKV_P_FUA) && run->caps.fua)
            r->req.flags |= BLKV_REQ_FUA;
        if (op->flags & BLKV_P_UNMAP)
            r->req.flags |= BLKV_REQ_UNMAP;
    }
    r->submitted = true;
    r->t_submit = ++run->clock;
    run->checked = false;
    run->inflight++;
    run->inflight_bytes += len;
    run->res->stats.requests++;

    if (r->expect_err) {
        run->res->stats.malformed++;
        blkv_complete(&r->req, r->expect_err); /* the driver never sees it */
        return;
    }

    switch (kind) {
    case BLKV_OP_READ:
        r->data = blkv_buf_get(r->data_len = len);
        if (r->data && run->model)
            memset(r->data, POISON, len);
        break;
    case BLKV_OP_WRITE:
        r->data = blkv_buf_get(r->data_len = len);
        if (r->data && run->model)
            blkv_pattern_fill(r->data, BLKV_SRC_OF_REQ(r->req.id), op->offset, len);
        else if (r->data)
            memset(r->data, 0, len);
        r->in_model = true, r->kind = BLKV_SRC_PATTERN, r->evicts = true;
        break;
    case BLKV_OP_WRITE_ZEROES:
        r->in_model = true, r->kind = BLKV_SRC_ZEROES, r->evicts = true;
        if (!run->caps.write_zeroes) { /* emulate with a write of zeros */
            r->req.op = BLKV_OP_WRITE;
            r->req.flags &= ~BLKV_REQ_UNMAP;
            if ((r->data = blkv_buf_get(r->data_len = len)))
                memset(r->data, 0, len);
        }
        break;
    case BLKV_OP_DISCARD:
        switch (run->caps.discard) {
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
    if (r->in_model && run->model)
        blkv_model_submit(run->model, BLKV_SRC_OF_REQ(r->req.id), r->kind, r->req.offset, len,
                          r->t_submit);
    if (kind == BLKV_OP_READ && run->model)
        blkv_model_read_start(run->model, r->t_submit);

    if (run->drv.co_submit) {
        r->co_running = true;
        r->co = blkv_rt_spawn(run->rt, co_submit_entry, r, &r->req);
        if (!r->co) {
            fprintf(stderr, "blkv: out of memory for a coroutine\n");
            abort();
        }
    } else {
        run->drv.submit(run->state, &r->req);
    }
}

/* ---- the op loop --------------------------------------------------------- */

static void do_cancel(struct blkv_run *run, uint32_t num)
{
    struct blkv_core_req *r;
    if (num >= run->next_req)
        return;
    r = &run->reqs[num];
    if (!r->submitted || r->completed || !run->drv.cancel)
        return;
    r->cancelled = true;
    run->res->stats.cancels++;
    run->drv.cancel(run->state, &r->req);
}

static void do_step(struct blkv_run *run, const struct blkv_pop *op)
{
    if (run->drv.in_process)
        blkv_rt_step(run->rt, op->arg, op->err);
    else if (run->drv.poll)
        run->drv.poll(run->state, 0);
}

static void do_check(struct blkv_run *run)
{
    int ret;
    if (!run->drv.check || run->failed || run->opts->no_verify)
        return;
    drain(run);
    if (run->stuck || run->checked)
        return; /* the driver has seen nothing since it passed: it would pass again */
    run->checked = true;
    run->ctx.error[0] = 0;
    ret = driver_call(run, 2, false);
    if (run->opts->untrusted) { /* may fail, with an errno */
        if (ret != 0 && !is_errno(ret) && !run->failed)
            blkv_report_other(run, NULL, "check", "image check returned %d", ret);
        return;
    }
    if (ret < 0 && !run->failed)
        blkv_report_other(run, NULL, "check", "image check failed: %s",
                          run->ctx.error[0] ? run->ctx.error : strerror(-ret));
}

static int do_reopen(struct blkv_run *run)
{
    uint64_t size = run->caps.size;

    settle(run);
    if (run->stuck)
        return 0;
    driver_close(run);
    run->checked = false;
    run->res->stats.reopens++;
    run->ctx.error[0] = 0;
    if (driver_open(run, false)) {
        if (run->opts->untrusted)
            return -1; /* refused (ERROR) or broke the contract (reported) */
        /* the driver cannot open what it wrote itself: that is its bug */
        char msg[sizeof(run->res->message)];
        snprintf(msg, sizeof(msg), "%s", run->res->message);
        run->res->status = BLKV_RUN_OK;
        blkv_report_other(run, NULL, "reopen", "reopen failed: %s", msg);
        return -1;
    }
    if (run->caps.size != size && !run->failed && !run->opts->untrusted)
        blkv_report_other(run, NULL, "reopen", "size changed on reopen: %" PRIu64 " != %" PRIu64,
                          run->caps.size, size);
    do_check(run); /* what was written must open consistent */
    return 0;
}

static void run_ops(struct blkv_run *run)
{
    const struct blkv_program *p = run->prog;

    for (size_t i = 0; i < p->nops && !run->failed && !run->stuck; i++) {
        const struct blkv_pop *op = &p->ops[i];
        run->cur_op = i;
        if (run->opts->verbose) {
            char line[160];
            blkv_pop_format(op, line, sizeof(line));
            fprintf(run->out, "op %zu: %s\n", i, line);
        }
        switch (op->code) {
        case BLKV_P_READ:
        case BLKV_P_WRITE:
        case BLKV_P_WZERO:
        case BLKV_P_DISCARD:
        case BLKV_P_FLUSH:
            submit(run, op);
            break;
        case BLKV_P_CANCEL:
            do_cancel(run, op->arg);
            break;
        case BLKV_P_STEP:
            do_step(run, op);
            break;
        case BLKV_P_WAIT:
            while (op->arg < run->next_req && !run->reqs[op->arg].completed && progress(run))
                ;
            break;
        case BLKV_P_DRAIN:
            drain(run);
            break;
        case BLKV_P_REOPEN:
            if (do_reopen(run))
                return;
            break;
        case BLKV_P_CHECK:
            do_check(run);
            break;
        }
        run->res->stats.ops++;
    }
    run->cur_op = p->nops;
    settle(run);
    do_check(run);
}

/* ---- initial content ------------------------------------------------------ */

static void image_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
    struct blkv_run *run = opaque;
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(run->image_fd, p, len, (off_t)off);
        if (n <= 0) { /* past the end of the image: zeros */
            memset(p, 0, len);
            return;
        }
        p += n, len -= (uint64_t)n, off += (uint64_t)n;
    }
}

/* Write the initial content of [start, end) through the driver, one request
 * at a time, unverified. */
static int write_initial_range(struct blkv_run *run, uint8_t *buf, uint64_t chunk,
                               uint64_t start, uint64_t end)
{
    const struct blkv_config *cfg = &run->prog->cfg;

    for (uint64_t off = start; off < end; off += chunk) {
        struct blkv_core_req r;
        uint64_t n = end - off < chunk ? end - off : chunk;
        if (cfg->init == BLKV_INIT_PATTERN && !run->opts->no_verify)
            blkv_pattern_fill(buf, BLKV_SRC_INITIAL, off, n);
        else if (cfg->init == BLKV_INIT_PATTERN)
            memset(buf, 0, n); /* the same driver work, no pattern to make */
        else
            image_read(run, buf, n, off);
        memset(&r, 0, sizeof(r));
        r.run = run;
        r.req.core = &r;
        r.req.op = BLKV_OP_WRITE;
        r.req.offset = off;
        r.req.len = n;
        r.req.buf = buf;
        r.req.id = BLKV_REQ_ID_SETUP;
        r.submitted = true;
        r.setup = true;
        run->inflight++;
        run->inflight_bytes += n;
        if (run->drv.co_submit) {
            r.co_running = true;
            r.co = blkv_rt_spawn(run->rt, co_submit_entry, &r, &r.req);
        } else {
            run->drv.submit(run->state, &r.req);
        }
        while ((!r.completed || r.co_running) && progress(run))
            ;
        /* A driver that may fail anything may fail these too: then the run
         * cannot start.  Any other driver has no excuse (no fault can be
         * injected before the first op): that is a finding, not bad input. */
        if (!r.completed && run->caps.may_fail)
            return run_error(run, "%s: initial write at %" PRIu64 " never completed",
                             run->drv.name, off);
        if (r.completed && r.ret && run->caps.may_fail)
            return run_error(run, "%s: initial write at %" PRIu64 " failed: %d", run->drv.name,
                             off, r.ret);
        if (!r.completed || r.co_running) {
            run->stuck = true;
            blkv_report_other(run, NULL, "deadlock", "initial write at %" PRIu64 " (%" PRIu64
                              " bytes) never %s: nothing is runnable and no lower I/O is "
                              "pending", off, n,
                              r.completed ? "returns" : "completes");
            return -1;
        }
        if (r.ret) {
            char eb[64];
            blkv_report_other(run, NULL, "retval/setup", "initial write at %" PRIu64 " (%" PRIu64
                              " bytes) failed: %s", off, n,
                              err_name(r.ret, eb, sizeof eb));
            return -1;
        }
    }
    return 0;
}

static int extent_cmp(const void *a, const void *b)
{
    const struct blkv_extent *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * The union of the ranges the program's ops touch on a device of `size`
 * bytes, each rounded out to `unit`, sorted and merged: no read can reach
 * any other byte.  Returns the number of extents in *out (malloc'd), or -1.
 */
static ssize_t footprint(const struct blkv_program *p, uint64_t unit, uint64_t size,
                         struct blkv_extent **out)
{
    struct blkv_extent *rs = malloc(sizeof(*rs) * (p->nops ? p->nops : 1));
    size_t n = 0, m = 0;

    if (!rs)
        return -1;
    for (size_t i = 0; i < p->nops; i++) {
        const struct blkv_pop *op = &p->ops[i];
        uint64_t end;
        if (!blkv_opcode_submits(op->code) || op->code == BLKV_P_FLUSH || op->offset >= size)
            continue;
        end = op->len > size - op->offset ? size : op->offset + op->len;
        end += (unit - end % unit) % unit;
        rs[n].off = op->offset - op->offset % unit;
        rs[n].len = (end > size ? size : end) - rs[n].off;
        n++;
    }
    qsort(rs, n, sizeof(*rs), extent_cmp);
    for (size_t i = 0; i < n; i++) { /* merge */
        struct blkv_extent *last = m ? &rs[m - 1] : NULL;
        if (last && rs[i].off <= last->off + last->len) {
            if (rs[i].off + rs[i].len > last->off + last->len)
                last->len = rs[i].off + rs[i].len - last->off;
        } else {
            rs[m++] = rs[i];
        }
    }
    *out = rs;
    return (ssize_t)m;
}

size_t blkv_initial_extents(struct blkv_ctx *ctx, const struct blkv_extent **ext)
{
    *ext = ctx->run->foot;
    return ctx->run->prog->cfg.init == BLKV_INIT_ZERO ? 0 : ctx->run->nfoot;
}

/*
 * Write the initial content (pattern or image) through the driver where the
 * program can observe it (its footprint, rounded to 4 KiB or the driver's
 * alignment).  The device is then indistinguishable from one filled
 * completely, at a cost proportional to the program instead of the device.
 */
static int setup_write_initial(struct blkv_run *run)
{
    uint64_t unit = run->caps.align > 4096 ? run->caps.align : 4096, total = 0;
    uint64_t chunk = run->caps.max_transfer < (UINT64_C(1) << 20) ? run->caps.max_transfer
                                                                  : (UINT64_C(1) << 20);
    struct blkv_extent *rs = NULL;
    ssize_t m = footprint(run->prog, unit, run->caps.size, &rs);
    size_t bufsize = (size_t)chunk;
    uint8_t *buf = blkv_buf_get(bufsize);
    int ret = 0;

    if (m < 0 || !buf) {
        free(rs);
        blkv_buf_put(buf, bufsize);
        return run_error(run, "out of memory");
    }
    chunk -= chunk % run->caps.align;
    for (ssize_t i = 0; i < m; i++)
        total += rs[i].len;
    if (total > MAX_INITIAL_FILL)
        ret = run_error(run, "initial content: the program touches %" PRIu64 " bytes; at most %"
                        PRIu64 " can be filled", total, MAX_INITIAL_FILL);
    run->setting_up = true;
    for (ssize_t i = 0; i < m && !ret; i++)
        ret = write_initial_range(run, buf, chunk, rs[i].off, rs[i].off + rs[i].len);
    run->setting_up = false;
    blkv_buf_put(buf, bufsize);
    free(rs);
    return ret;
}

static int setup_initial(struct blkv_run *run)
{
    const struct blkv_config *cfg = &run->prog->cfg;
    struct blkv_model_config mc = {.size = run->caps.size, .atomic = run->atomic};

    if (run->opts->untrusted)
        return 0; /* content unknown: no model, nothing written */
    switch (cfg->init) {
    case BLKV_INIT_PATTERN:
        mc.initial = BLKV_SRC_PATTERN;
        break;
    case BLKV_INIT_IMAGE:
        mc.initial = BLKV_SRC_IMAGE;
        mc.image_read = image_read;
        mc.image_opaque = run;
        break;
    default:
        mc.initial = BLKV_SRC_ZEROES;
        break;
    }
    if (!run->opts->no_verify) {
        run->model = blkv_model_new(&mc);
        if (!run->model)
            return run_error(run, "out of memory");
    }
    if (!run->caps.initialized &&
        (cfg->init == BLKV_INIT_PATTERN ||
         (cfg->init == BLKV_INIT_IMAGE && !cfg->lower_image && !run->opts->lower[0])))
        return setup_write_initial(run);
    return 0;
}

/* ---- blkv_run -------------------------------------------------------------- */

int blkv_run(const struct blkv_program *p, const struct blkv_run_opts *opts,
             struct blkv_run_result *res)
{
    static const struct blkv_run_opts no_opts;
    struct blkv_run *run;
    const char *spec;
    char err[400];
    int status;
    bool existing; /* open what the lower file holds (create=false) */

    memset(res, 0, sizeof(*res));
    if (!opts)
        opts = &no_opts;
    run = calloc(1, sizeof(*run));
    if (!run) {
        snprintf(res->message, sizeof(res->message), "out of memory");
        return res->status = BLKV_RUN_ERROR;
    }
    run->prog = p;
    run->opts = opts;
    run->res = res;
    run->out = opts->out ? opts->out : stderr;
    run->image_fd = -1;
    run->ctx.run = run;
    spec = opts->driver ? opts->driver : p->cfg.driver ? p->cfg.driver : "raw";
    run->driver_spec = spec;

    if (spec_parse(spec, &run->ctx, err, sizeof(err)) ||
        driver_load(run, run->ctx.drv, err, sizeof(err))) {
        run_error(run, "%s", err);
        goto out;
    }
    if (p->cfg.init == BLKV_INIT_IMAGE) {
        if (!p->cfg.init_image) {
            run_error(run, "init image: no image file given");
            goto out;
        }
        run->image_fd = open(p->cfg.init_image, O_RDONLY | O_CLOEXEC);
        if (run->image_fd < 0) {
            run_error(run, "init image %s: %s", p->cfg.init_image, strerror(errno));
            goto out;
        }
    }
    run->nreqs = blkv_program_nreqs(p);
    run->reqs = calloc(run->nreqs ? run->nreqs : 1, sizeof(*run->reqs));
    run->state = calloc(1, run->drv.state_size ? run->drv.state_size : 1);
    if (!run->reqs || !run->state) {
        run_error(run, "out of memory");
        goto out;
    }
    if (run->drv.in_process) {
        run->rt = blkv_rt_new(p->cfg.sched, p->cfg.seed, BLKV_LOWER_DEFAULT_CAP);
        if (!run->rt) {
            run_error(run, "out of memory");
            goto out;
        }
        if (p->cfg.lower_image && !opts->lower[0]) {
            int ret = blkv_rt_lower_load(run->rt, 0, p->cfg.lower_image);
            if (ret < 0) {
                run_error(run, "lower %s: %s", p->cfg.lower_image, strerror(-ret));
                goto out;
            }
        }
        for (unsigned i = 0; i < 2; i++) {
            if (opts->lower[i] && opts->lower_len[i])
                blkv_lower_poke(blkv_rt_lower(run->rt, i), opts->lower[i], opts->lower_len[i], 0);
        }
    } else if (opts->lower[0] || opts->lower[1]) {
        run_error(run, "%s: lower file content for a driver that has no lower files",
                  run->drv.name);
        goto out;
    }
    existing = p->cfg.lower_image || opts->lower[0];
    if (p->cfg.init != BLKV_INIT_ZERO && !existing) {
        ssize_t m = footprint(p, 4096, p->cfg.size, &run->foot);
        if (m < 0) {
            run_error(run, "out of memory");
            goto out;
        }
        run->nfoot = (size_t)m;
    }
    if (driver_open(run, !existing))
        goto out;
    if (setup_initial(run))
        goto out;
    run_ops(run);

out:
    if (res->status != BLKV_RUN_ERROR) {
        drain(run);
        driver_close(run);
    }
    if (run->rt)
        res->stats.faults = blkv_rt_faults(run->rt);
    for (uint64_t i = 0; i < run->next_req; i++)
        blkv_buf_put(run->reqs[i].data, run->reqs[i].data_len);
    if (run->model)
        blkv_model_free(run->model);
    if (run->rt)
        blkv_rt_free(run->rt);
    blkv_buf_run_end();
    if (run->image_fd >= 0)
        close(run->image_fd);
    free(run->state);
    free(run->foot);
    free(run->reqs);
    free(run->ctx.spec_copy);
    status = res->status;
    if (status == BLKV_RUN_ERROR && !opts->quiet)
        fprintf(run->out, "blkv: %s\n", res->message);
    free(run);
    return status;
}

int blkv_driver_probe(const char *spec, struct blkv_caps *caps, char *err, size_t errlen)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = spec, .quiet = true};
    struct blkv_run_result res;
    int ret;

    blkv_program_init(&p);
    probe_caps = caps;
    ret = blkv_run(&p, &o, &res);
    probe_caps = NULL;
    if (ret != BLKV_RUN_OK)
        snprintf(err, errlen, "%s", res.message);
    blkv_run_result_free(&res);
    blkv_program_free(&p);
    return ret == BLKV_RUN_OK ? 0 : -EINVAL;
}

void blkv_run_result_free(struct blkv_run_result *res)
{
    free(res->report);
    res->report = NULL;
}
