/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * run.c - one run: set the driver up, write the initial content, run the
 * ops (submits go to the dispatch layer, dispatch.c), drive the scheduler,
 * check and reopen the image, and tear everything down.
 */
#include "core/core.h"
#include "model/pattern.h"
#include "runtime/bufpool.h"
#include "runtime/fiber.h"
#include "runtime/store.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most bytes of initial content a run writes through the driver. */
#define MAX_INITIAL_FILL (UINT64_C(1) << 30)
/* External drivers: give up on a request after this many idle polls of 100 ms. */
#define MAX_IDLE_POLLS 300

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
        memset(&run->h.caps, 0, sizeof(run->h.caps));
        c->ret = run->drv.open(run->state, &run->ctx, run->h.prog->cfg.size, c->create, &run->h.caps);
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
            if (run->h.opts->untrusted && !run->h.failed) {
                static const char *const names[] = {"open", "close", "check"};
                run->stuck = true; /* its coroutine can never finish: no close */
                blkv_report_other(&run->h, NULL, "deadlock", "%s never returns: nothing is "
                                  "runnable and no lower I/O is pending", names[which]);
            }
            return -EDEADLK;
        }
    }
    return c.ret;
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

int blkv_core_run_error(struct blkv_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int blkv_core_run_error(struct blkv_run *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->h.res->message, sizeof(run->h.res->message), fmt, ap);
    va_end(ap);
    run->h.res->status = BLKV_RUN_ERROR;
    return BLKV_RUN_ERROR;
}

/* Whether p may lose power (a crash op) at op `from` or later: then
 * durability is tracked. */
static bool program_crashes(const struct blkv_program *p, size_t from)
{
    for (size_t i = from; i < p->nops; i++)
        if (p->ops[i].code == BLKV_P_CRASH)
            return true;
    return false;
}

/* Whether p has an op that needs lower files (crash, fault). */
static bool program_needs_lower(const struct blkv_program *p)
{
    for (size_t i = 0; i < p->nops; i++)
        if (p->ops[i].code == BLKV_P_CRASH || p->ops[i].code == BLKV_P_FAULT)
            return true;
    return false;
}

/* An out-of-process driver's program with crash or fault ops: whether the
 * driver, as opened, takes them (caps.crash, caps.fault_rules); a run
 * error (true) if not. */
static bool server_ops_refused(struct blkv_run *run)
{
    const struct blkv_program *p = run->h.prog;
    bool crash = false, fault = false;

    for (size_t i = 0; i < p->nops; i++) {
        crash |= p->ops[i].code == BLKV_P_CRASH;
        fault |= p->ops[i].code == BLKV_P_FAULT;
    }
    if (crash && (!run->drv.crash || !run->h.caps.crash)) {
        blkv_core_run_error(run, "%s: crash ops need an in-process driver or a server the driver "
                            "can kill (caps.crash); %s", run->drv.name, run->drv.crash ?
                            "not with these options" : "this one has neither");
        return true;
    }
    if (fault && (!run->drv.fault || !run->h.caps.fault_rules)) {
        blkv_core_run_error(run, "%s: fault ops need an in-process driver or a server that injects "
                            "faults (caps.fault_rules); %s", run->drv.name, run->drv.fault ?
                            "not with these options" : "this one has neither");
        return true;
    }
    if (crash && run->h.opts->crash_dir) {
        blkv_core_run_error(run, "%s: --save-crash-images: only for in-process drivers (their "
                            "lower files)", run->drv.name);
        return true;
    }
    return false;
}

static int driver_open(struct blkv_run *run, bool create)
{
    char eb[64];
    int ret = driver_call(run, 0, create);

    if (run->h.opts->untrusted && run->stuck) /* deadlocked: reported */
        return BLKV_RUN_VIOLATION;
    if (run->h.opts->untrusted && (ret > 0 || (ret < 0 && (!blkv_core_is_errno(ret) || !run->ctx.error[0])))) {
        /* a refusal must be an errno with a message */
        run->opened = ret > 0; /* the driver may think it is open */
        if (!run->h.failed)
            blkv_report_other(&run->h, NULL, "open", "open returned %s%s",
                              err_name(ret, eb, sizeof eb),
                              ret < 0 && blkv_core_is_errno(ret) ? " without a message" : "");
        return BLKV_RUN_VIOLATION;
    }
    if (ret < 0)
        return blkv_core_run_error(run, "%s: open failed: %s%s%s", run->drv.name, err_name(ret, eb, sizeof eb),
                         run->ctx.error[0] ? ": " : "", run->ctx.error);
    if (!blkv_core_caps_ok(&run->h.caps)) {
        if (run->h.opts->untrusted) { /* the image cannot make the driver break the API */
            run->opened = true; /* open succeeded: close it */
            if (!run->h.failed)
                blkv_report_other(&run->h, NULL, "open", "open returned invalid capabilities "
                                  "(align %u, max transfer %u, size %" PRIu64 ", atomic %u, "
                                  "grain %u)", run->h.caps.align, run->h.caps.max_transfer,
                                  run->h.caps.size, run->h.caps.atomic, run->h.caps.grain);
            return BLKV_RUN_VIOLATION;
        }
        return blkv_core_run_error(run, "%s: open returned invalid capabilities (align %u, max transfer %u,"
                         " size %" PRIu64 ", atomic %u, grain %u)", run->drv.name, run->h.caps.align,
                         run->h.caps.max_transfer, run->h.caps.size, run->h.caps.atomic,
                         run->h.caps.grain);
    }
    run->h.atomic = blkv_core_atomic(&run->h.caps, run->h.prog->cfg.atomic);
    run->opened = true;
    run->h.res->caps = run->h.caps;
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
    for (uint64_t i = 0; i < run->h.next_req; i++)
        if (run->h.reqs[i].submitted && !run->h.reqs[i].completed) {
            r = &run->h.reqs[i];
            break;
        }
    run->stuck = true;
    if (!run->h.failed)
        blkv_report_other(&run->h, r, "deadlock",
                          "%" PRIu64 " request(s) can never complete: nothing is runnable and"
                          " no lower I/O is pending", run->inflight);
}

/* Make one unit of progress; false when nothing can progress (reported). */
bool blkv_core_progress(struct blkv_run *run)
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
    while (run->inflight && blkv_core_progress(run))
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

/* ---- the op loop --------------------------------------------------------- */

static void do_cancel(struct blkv_run *run, uint32_t num)
{
    struct blkv_core_req *r;
    if (num >= run->h.next_req)
        return;
    r = &run->h.reqs[num];
    if (!r->submitted || r->completed || r->lost_at || !run->drv.cancel)
        return;
    r->cancelled = true;
    run->h.res->stats.cancels++;
    run->drv.cancel(run->state, &r->req);
}

static void do_step(struct blkv_run *run, const struct blkv_pop *op)
{
    if (run->drv.in_process)
        blkv_rt_step(run->rt, op->arg, op->err);
    else if (run->drv.poll)
        run->drv.poll(run->state, 0);
}

/* A server that took fault rules closes the image (a check, a reopen, a new
 * rule), and its close's writes may fail too: what was not durable may be
 * lost, as in a crash.  (In-process drivers' closes see no faults.) */
static void server_close_after_faults(struct blkv_run *run)
{
    if (run->ext_faults && run->h.model)
        blkv_model_crash(run->h.model, ++run->clock);
}

static void do_check(struct blkv_run *run)
{
    int ret;
    if (!run->drv.check || run->h.failed || run->h.opts->no_verify)
        return;
    drain(run);
    if (run->stuck || run->checked)
        return; /* the driver has seen nothing since it passed: it would pass again */
    run->checked = true;
    server_close_after_faults(run);
    run->ctx.error[0] = 0;
    run->leaks = 0;
    run->check_named = false;
    ret = driver_call(run, 2, false);
    if (run->h.opts->untrusted) { /* may fail, with an errno */
        if (ret != 0 && !blkv_core_is_errno(ret) && !run->h.failed)
            blkv_report_other(&run->h, NULL, "check", "image check returned %d", ret);
        return;
    }
    if (ret < 0 && !run->h.failed)
        blkv_report_check(&run->h, "check", run->check_named ? &run->check_range : NULL,
                          "image check failed: %s",
                          run->ctx.error[0] ? run->ctx.error : strerror(-ret));
    /* leaked space is harmless after an injected fault, and after a crash
     * where the driver says so */
    else if (run->leaks && !run->h.failed &&
             ((run->rt && blkv_rt_faults(run->rt)) || run->ext_faults ||
              (run->h.crash_op && run->h.caps.crash_check == BLKV_CRASH_LEAKS)))
        run->h.res->stats.leaks_allowed += run->leaks;
    else if (run->leaks && !run->h.failed)
        blkv_report_check(&run->h, "check/leak", run->check_named ? &run->check_range : NULL,
                          "image check: %" PRIu64 " leaked cluster(s)%s%s%s", run->leaks,
                          run->h.crash_op ? " after a crash, where the driver promises a clean "
                                            "image" : " without a crash",
                          run->ctx.error[0] ? ": " : "", run->ctx.error);
}

/* The lower files as the crash left them, into opts->crash_dir. */
static int save_crash_images(struct blkv_run *run)
{
    const char *dir = run->h.opts->crash_dir;
    char path[4096];

    if (mkdir(dir, 0777) && errno != EEXIST)
        return blkv_core_run_error(run, "--save-crash-images %s: %s", dir, strerror(errno));
    for (unsigned i = 0; i < 2; i++) {
        int ret;
        if (!blkv_rt_lower_exists(run->rt, i))
            continue;
        snprintf(path, sizeof(path), "%s/crash-%" PRIu64 ".lower%u", dir, run->crashes, i);
        if ((ret = blkv_rt_lower_save(run->rt, i, path)) < 0)
            return blkv_core_run_error(run, "cannot write %s: %s", path, strerror(-ret));
    }
    return 0;
}

/* After a crash: the driver opens again on what survived, with the same
 * size, and the image must check as the driver declares. */
static int crash_reopen(struct blkv_run *run, uint64_t size)
{
    run->opened = false;
    run->checked = false;
    run->ctx.error[0] = 0;
    if (driver_open(run, false)) {
        char msg[sizeof(run->h.res->message)];
        snprintf(msg, sizeof(msg), "%s", run->h.res->message);
        run->h.res->status = BLKV_RUN_OK;
        blkv_report_other(&run->h, NULL, "crash/open", "open after the crash failed: %s", msg);
        return -1;
    }
    if (run->h.caps.size != size && !run->h.failed)
        blkv_report_other(&run->h, NULL, "crash/open", "size changed in the crash: %" PRIu64
                          " != %" PRIu64, run->h.caps.size, size);
    do_check(run);
    return 0;
}

/* A crash of an out-of-process driver's server (requests in flight already
 * marked lost): the driver kills it, keeping its state, and opens again. */
static int crash_server(struct blkv_run *run, uint64_t size)
{
    int ret;

    run->inflight = run->inflight_bytes = 0;
    ++run->clock;
    if (run->h.model)
        blkv_model_crash(run->h.model, run->clock);
    run->h.crash_op = run->h.cur_op + 1;
    run->h.res->stats.crashes++;
    run->ctx.error[0] = 0;
    if ((ret = run->drv.crash(run->state)) < 0) {
        char eb[64];
        blkv_core_run_error(run, "%s: crash failed: %s%s%s", run->drv.name,
                            err_name(ret, eb, sizeof eb), run->ctx.error[0] ? ": " : "",
                            run->ctx.error);
        driver_close(run); /* a run error skips the close at the end */
        return -1;
    }
    return crash_reopen(run, size);
}

/*
 * A power loss at this op: requests in flight are lost (no completion ever
 * comes), the lower files keep per sector what the program chooses, the
 * driver's memory is released without close, and it opens again on what
 * the lower files hold; then the image must check as the driver declares.
 */
static int do_crash(struct blkv_run *run, const struct blkv_pop *op)
{
    uint64_t size = run->h.caps.size;
    uint64_t seed = run->h.prog->cfg.seed * UINT64_C(0x9e3779b97f4a7c15) ^
                    ((uint64_t)op->arg << 32 | ++run->crashes);

    if (run->stuck)
        return 0;
    /* lost before the crash runs the driver's coroutines to their end */
    for (uint64_t i = 0; i < run->h.next_req; i++) {
        struct blkv_core_req *r = &run->h.reqs[i];
        if (r->submitted && !r->completed)
            r->lost_at = run->h.cur_op + 1;
    }
    if (!run->rt) /* a server: the driver kills it; its files stay as they are */
        return crash_server(run, size);
    blkv_rt_crash(run->rt, seed);
    for (uint64_t i = 0; i < run->h.next_req; i++)
        if (run->h.reqs[i].lost_at)
            run->h.reqs[i].co_running = false;
    if (run->h.opts->crash_dir && save_crash_images(run))
        return -1;
    run->inflight = run->inflight_bytes = 0;
    ++run->clock;
    if (run->h.model)
        blkv_model_crash(run->h.model, run->clock);
    run->h.crash_op = run->h.cur_op + 1;
    run->h.res->stats.crashes++;
    /* the driver's memory, without I/O */
    if (run->opened && run->drv.release)
        run->drv.release(run->state);
    blkv_core_children_free(run, true);
    memset(run->state, 0, run->drv.state_size ? run->drv.state_size : 1);
    return crash_reopen(run, size);
}

/* A fault rule from now on: the runtime's, or, for a server, the driver's
 * (drained first); -1 if the driver cannot take it (a run error). */
static int do_fault(struct blkv_run *run, const struct blkv_pop *op)
{
    if (!run->rt) {
        char eb[64], ev[32];
        int ret;
        drain(run);
        if (run->stuck)
            return 0;
        server_close_after_faults(run); /* the rules before this one */
        run->ctx.error[0] = 0;
        ret = run->drv.fault(run->state, op->arg, op->err, op->flags & BLKV_P_ONCE, op->len);
        if (ret < 0) {
            blkv_core_run_error(run, "%s: fault %s at op %zu refused: %s%s%s", run->drv.name,
                                blkv_event_name(op->arg, ev, sizeof(ev)), run->h.cur_op,
                                err_name(ret, eb, sizeof eb), run->ctx.error[0] ? ": " : "",
                                run->ctx.error);
            run->h.res->refused_op = run->h.cur_op + 1;
            driver_close(run); /* a run error skips the close at the end */
            return -1;
        }
        run->ext_faults = true;
        return 0;
    }
    if (blkv_rt_fault_rule(run->rt, op->arg, op->err, op->flags & BLKV_P_ONCE, op->len) < 0) {
        fprintf(stderr, "blkv: out of memory for a fault rule\n");
        abort();
    }
    return 0;
}

static int do_reopen(struct blkv_run *run)
{
    uint64_t size = run->h.caps.size;

    settle(run);
    if (run->stuck)
        return 0;
    server_close_after_faults(run);
    driver_close(run);
    run->checked = false;
    run->h.res->stats.reopens++;
    run->ctx.error[0] = 0;
    if (driver_open(run, false)) {
        if (run->h.opts->untrusted)
            return -1; /* refused (ERROR) or broke the contract (reported) */
        /* the driver cannot open what it wrote itself: that is its bug */
        char msg[sizeof(run->h.res->message)];
        snprintf(msg, sizeof(msg), "%s", run->h.res->message);
        run->h.res->status = BLKV_RUN_OK;
        blkv_report_other(&run->h, NULL, "reopen", "reopen failed: %s", msg);
        return -1;
    }
    if (run->h.caps.size != size && !run->h.failed && !run->h.opts->untrusted)
        blkv_report_other(&run->h, NULL, "reopen", "size changed on reopen: %" PRIu64 " != %" PRIu64,
                          run->h.caps.size, size);
    do_check(run); /* what was written must open consistent */
    return 0;
}

/* For the timeline: op i begins (begin) or has ended. */
static void note_op(struct blkv_run *run, size_t i, bool begin)
{
    struct blkv_timeline_op *to;
    uint64_t faults = run->rt ? blkv_rt_faults(run->rt) : 0;

    if (!run->h.timeline)
        return;
    to = &run->h.timeline->ops[i];
    if (begin) {
        to->ran = true;
        to->t_begin = to->t_end = run->clock;
        to->faults = faults; /* until the end: the count before */
    } else {
        to->t_end = run->clock;
        to->faults = faults - to->faults;
    }
}

static void run_ops(struct blkv_run *run)
{
    const struct blkv_program *p = run->h.prog;

    for (size_t i = 0; i < p->nops && !run->h.failed && !run->stuck; i++) {
        const struct blkv_pop *op = &p->ops[i];
        run->h.cur_op = i;
        note_op(run, i, true);
        if (run->h.opts->verbose) {
            char line[160];
            blkv_pop_format(op, line, sizeof(line));
            fprintf(run->h.out, "op %zu: %s\n", i, line);
        }
        switch (blkv_opcode_submits(op->code) ? BLKV_P__COUNT : op->code) {
        case BLKV_P__COUNT: /* any op that submits a request: the dispatch layer's */
            blkv_core_submit(run, op);
            break;
        case BLKV_P_CANCEL:
            do_cancel(run, op->arg);
            break;
        case BLKV_P_STEP:
            do_step(run, op);
            break;
        case BLKV_P_WAIT:
            while (op->arg < run->h.next_req && !run->h.reqs[op->arg].completed &&
                   !run->h.reqs[op->arg].lost_at && blkv_core_progress(run))
                ;
            break;
        case BLKV_P_DRAIN:
            drain(run);
            break;
        case BLKV_P_REOPEN:
            if (do_reopen(run)) {
                note_op(run, i, false);
                return;
            }
            break;
        case BLKV_P_CHECK:
            do_check(run);
            break;
        case BLKV_P_CRASH:
            if (do_crash(run, op)) {
                note_op(run, i, false);
                return;
            }
            /* after the last crash, the copies that durability keeps of
             * every lower write would serve nothing */
            if (run->rt && !program_crashes(p, i + 1))
                blkv_rt_set_durability(run->rt, false);
            break;
        case BLKV_P_FAULT:
            if (do_fault(run, op)) {
                note_op(run, i, false);
                return;
            }
            break;
        }
        note_op(run, i, false);
        run->h.res->stats.ops++;
    }
    run->h.cur_op = p->nops;
    settle(run);
    do_check(run);
}

/* Write the initial content of [start, end) through the driver, one request
 * at a time, unverified. */
static int write_initial_range(struct blkv_run *run, uint8_t *buf, uint64_t chunk,
                               uint64_t start, uint64_t end)
{
    const struct blkv_config *cfg = &run->h.prog->cfg;

    for (uint64_t off = start; off < end; off += chunk) {
        struct blkv_core_req r;
        uint64_t n = end - off < chunk ? end - off : chunk;
        if (cfg->init == BLKV_INIT_PATTERN && !run->h.opts->no_verify)
            blkv_pattern_fill(buf, BLKV_SRC_INITIAL, off, n);
        else if (cfg->init == BLKV_INIT_PATTERN)
            memset(buf, 0, n); /* the same driver work, no pattern to make */
        else
            blkv_core_image_read(run, buf, n, off);
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
            r.co = blkv_rt_spawn(run->rt, blkv_core_co_submit_entry, &r, &r.req);
        } else {
            run->drv.submit(run->state, &r.req);
        }
        while ((!r.completed || r.co_running) && blkv_core_progress(run))
            ;
        /* A driver that may fail anything may fail these too: then the run
         * cannot start.  Any other driver has no excuse (no fault can be
         * injected before the first op): that is a finding, not bad input. */
        if (!r.completed && run->h.caps.may_fail)
            return blkv_core_run_error(run, "%s: initial write at %" PRIu64 " never completed",
                             run->drv.name, off);
        if (r.completed && r.ret && run->h.caps.may_fail)
            return blkv_core_run_error(run, "%s: initial write at %" PRIu64 " failed: %d", run->drv.name,
                             off, r.ret);
        if (!r.completed || r.co_running) {
            run->stuck = true;
            blkv_report_other(&run->h, NULL, "deadlock", "initial write at %" PRIu64 " (%" PRIu64
                              " bytes) never %s: nothing is runnable and no lower I/O is "
                              "pending", off, n,
                              r.completed ? "returns" : "completes");
            return -1;
        }
        if (r.ret) {
            char eb[64];
            blkv_report_other(&run->h, NULL, "retval/setup", "initial write at %" PRIu64 " (%" PRIu64
                              " bytes) failed: %s", off, n,
                              err_name(r.ret, eb, sizeof eb));
            return -1;
        }
    }
    return 0;
}

/* A server's program that crashes starts, as in-process ones do, on a
 * device whose initial content is durable: flush it through the driver,
 * unverified, before the ops. */
static int setup_flush(struct blkv_run *run)
{
    struct blkv_core_req r;

    memset(&r, 0, sizeof(r));
    r.run = run;
    r.req.core = &r;
    r.req.op = BLKV_OP_FLUSH;
    r.req.id = BLKV_REQ_ID_SETUP;
    r.submitted = true;
    r.setup = true;
    run->inflight++;
    run->drv.submit(run->state, &r.req);
    while (!r.completed && blkv_core_progress(run))
        ;
    if (!r.completed)
        return -1; /* reported as stuck */
    if (r.ret)
        return blkv_core_run_error(run, "%s: flush of the initial content failed: %d",
                                   run->drv.name, r.ret);
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
        if (!blkv_opcode_ranged(op->code) || op->offset >= size)
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


/*
 * Write the initial content (pattern or image) through the driver where the
 * program can observe it (its footprint, rounded to 4 KiB or the driver's
 * alignment).  The device is then indistinguishable from one filled
 * completely, at a cost proportional to the program instead of the device.
 */
static int setup_write_initial(struct blkv_run *run)
{
    uint64_t unit = run->h.caps.align > 4096 ? run->h.caps.align : 4096, total = 0;
    uint64_t chunk = run->h.caps.max_transfer < (UINT64_C(1) << 20) ? run->h.caps.max_transfer
                                                                  : (UINT64_C(1) << 20);
    struct blkv_extent *rs = NULL;
    ssize_t m = footprint(run->h.prog, unit, run->h.caps.size, &rs);
    size_t bufsize = (size_t)chunk;
    uint8_t *buf = blkv_buf_get(bufsize);
    int ret = 0;

    if (m < 0 || !buf) {
        free(rs);
        blkv_buf_put(buf, bufsize);
        return blkv_core_run_error(run, "out of memory");
    }
    chunk -= chunk % run->h.caps.align;
    for (ssize_t i = 0; i < m; i++)
        total += rs[i].len;
    if (total > MAX_INITIAL_FILL)
        ret = blkv_core_run_error(run, "initial content: the program touches %" PRIu64 " bytes; at most %"
                        PRIu64 " can be filled", total, MAX_INITIAL_FILL);
    run->h.setting_up = true;
    for (ssize_t i = 0; i < m && !ret; i++)
        ret = write_initial_range(run, buf, chunk, rs[i].off, rs[i].off + rs[i].len);
    run->h.setting_up = false;
    blkv_buf_put(buf, bufsize);
    free(rs);
    return ret;
}

static int setup_initial(struct blkv_run *run)
{
    const struct blkv_config *cfg = &run->h.prog->cfg;
    struct blkv_model_config mc = {.size = run->h.caps.size, .atomic = run->h.atomic,
                                   .crash = program_crashes(run->h.prog, 0) ||
                                            (!run->rt && program_needs_lower(run->h.prog))};

    if (run->h.opts->untrusted)
        return 0; /* content unknown: no model, nothing written */
    switch (cfg->init) {
    case BLKV_INIT_PATTERN:
        mc.initial = BLKV_SRC_PATTERN;
        break;
    case BLKV_INIT_IMAGE:
        mc.initial = BLKV_SRC_IMAGE;
        mc.image_read = blkv_core_image_read;
        mc.image_opaque = run;
        break;
    default:
        mc.initial = BLKV_SRC_ZEROES;
        break;
    }
    if (!run->h.opts->no_verify) {
        run->h.model = blkv_model_new(&mc);
        if (!run->h.model)
            return blkv_core_run_error(run, "out of memory");
    }
    if (!run->h.caps.initialized &&
        (cfg->init == BLKV_INIT_PATTERN ||
         (cfg->init == BLKV_INIT_IMAGE && !cfg->lower_image && !run->h.opts->lower[0])))
        return setup_write_initial(run);
    return 0;
}

/* ---- blkv_run -------------------------------------------------------------- */

int blkv_run(const struct blkv_program *p, const struct blkv_run_opts *opts,
             struct blkv_run_result *res)
{
    static const struct blkv_run_opts no_opts;
    struct blkv_run *run;
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
    run->h.prog = p;
    run->h.opts = opts;
    run->h.res = res;
    run->h.out = opts->out ? opts->out : stderr;
    run->image_fd = -1;
    run->ctx.run = run;
    if (!opts->driver) {
        blkv_core_run_error(run, "no driver given");
        goto out;
    }
    if (blkv_core_driver_copy(&run->drv, opts->driver, err, sizeof(err)) ||
        blkv_core_opts_parse(&run->drv, opts->driver_opts, &run->ctx, err, sizeof(err))) {
        blkv_core_run_error(run, "%s", err);
        goto out;
    }
    run->spec = blkv_driver_spec_format(&run->drv, opts->driver_opts);
    if (!run->spec) {
        blkv_core_run_error(run, "out of memory");
        goto out;
    }
    run->h.driver_spec = run->spec;
    run->h.driver_error = run->ctx.error;
    if (p->cfg.init == BLKV_INIT_IMAGE) {
        if (!p->cfg.init_image) {
            blkv_core_run_error(run, "init image: no image file given");
            goto out;
        }
        run->image_fd = open(p->cfg.init_image, O_RDONLY | O_CLOEXEC);
        if (run->image_fd < 0) {
            blkv_core_run_error(run, "init image %s: %s", p->cfg.init_image, strerror(errno));
            goto out;
        }
    }
    run->nreqs = blkv_program_nreqs(p);
    run->h.reqs = calloc(run->nreqs ? run->nreqs : 1, sizeof(*run->h.reqs));
    run->state = calloc(1, run->drv.state_size ? run->drv.state_size : 1);
    if (!run->h.reqs || !run->state) {
        blkv_core_run_error(run, "out of memory");
        goto out;
    }
    if (opts->timeline || (opts->repro_picture && opts->repro_dir))
        run->h.timeline = blkv_timeline_new(p->nops); /* NULL: none, the run goes on */
    if (run->drv.in_process) {
        static const enum blkv_rt_policy policy[] = {
            [BLKV_SCHED_RANDOM] = BLKV_RT_RANDOM,
            [BLKV_SCHED_FIFO] = BLKV_RT_FIFO,
            [BLKV_SCHED_LIFO] = BLKV_RT_LIFO,
        };
        run->rt = blkv_rt_new(policy[p->cfg.sched % 3], p->cfg.seed, BLKV_LOWER_DEFAULT_CAP);
        if (!run->rt) {
            blkv_core_run_error(run, "out of memory");
            goto out;
        }
        if (p->cfg.lower_image && !opts->lower[0]) {
            int ret = blkv_rt_lower_load(run->rt, 0, p->cfg.lower_image);
            if (ret < 0) {
                blkv_core_run_error(run, "lower %s: %s", p->cfg.lower_image, strerror(-ret));
                goto out;
            }
        }
        for (unsigned i = 0; i < 2; i++) {
            if (opts->lower[i] && opts->lower_len[i])
                blkv_lower_poke(blkv_rt_lower(run->rt, i), opts->lower[i], opts->lower_len[i], 0);
        }
    } else if (program_needs_lower(p) && !run->drv.crash && !run->drv.fault) {
        blkv_core_run_error(run, "%s: crash and fault ops need an in-process driver (its lower "
                            "files lose power and fail I/Os); this one has none", run->drv.name);
        goto out;
    } else if (opts->lower[0] || opts->lower[1]) {
        blkv_core_run_error(run, "%s: lower file content for a driver that has no lower files",
                  run->drv.name);
        goto out;
    }
    existing = p->cfg.lower_image || opts->lower[0];
    if (p->cfg.init != BLKV_INIT_ZERO && !existing) {
        ssize_t m = footprint(p, 4096, p->cfg.size, &run->foot);
        if (m < 0) {
            blkv_core_run_error(run, "out of memory");
            goto out;
        }
        run->nfoot = (size_t)m;
    }
    if (driver_open(run, !existing))
        goto out;
    if (!run->rt && program_needs_lower(p) && server_ops_refused(run)) {
        driver_close(run); /* a run error skips the close at the end */
        goto out;
    }
    /* a run error skips the close at the end, but a driver whose setup
     * failed with nothing in flight is closed, or what it holds (an NBD
     * server's slot, a connection) would outlive the run */
    if (setup_initial(run) ||
        (!run->rt && program_crashes(p, 0) && !opts->untrusted && setup_flush(run))) {
        if (!run->inflight)
            driver_close(run);
        goto out;
    }
    if (run->rt) { /* the program starts on a device made, filled and synced */
        blkv_rt_durable_now(run->rt);
        /* what is durable is tracked from here on (a crash needs it) */
        blkv_rt_set_durability(run->rt, program_crashes(p, 0));
    }
    run_ops(run);

out:
    if (res->status != BLKV_RUN_ERROR) {
        drain(run);
        driver_close(run);
    }
    blkv_core_children_free(run, false);
    if (run->rt)
        res->stats.faults = blkv_rt_faults(run->rt);
    if (run->h.timeline) {
        blkv_timeline_sync(&run->h);
        if (opts->timeline)
            res->timeline = run->h.timeline;
        else
            blkv_timeline_free(run->h.timeline);
    }
    for (uint64_t i = 0; i < run->h.next_req; i++)
        blkv_buf_put(run->h.reqs[i].data, run->h.reqs[i].data_len);
    if (run->h.model)
        blkv_model_free(run->h.model);
    if (run->rt)
        blkv_rt_free(run->rt);
    blkv_buf_run_end();
    blkv_store_run_end();
    blkv_fiber_run_end();
    if (run->image_fd >= 0)
        close(run->image_fd);
    free(run->state);
    free(run->foot);
    free(run->h.reqs);
    free(run->ctx.spec_copy);
    free(run->ctx.opts);
    free(run->spec);
    status = res->status;
    if (status == BLKV_RUN_ERROR && !opts->quiet)
        fprintf(run->h.out, "blkv: %s\n", res->message);
    free(run);
    return status;
}

int blkv_driver_probe(const struct blkv_driver *drv, const char *opts, struct blkv_caps *caps,
                      char *err, size_t errlen)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = drv, .driver_opts = opts, .quiet = true};
    struct blkv_run_result res;
    int ret;

    blkv_program_init(&p);
    ret = blkv_run(&p, &o, &res);
    if (ret == BLKV_RUN_OK)
        *caps = res.caps;
    else
        snprintf(err, errlen, "%s", res.message);
    blkv_run_result_free(&res);
    blkv_program_free(&p);
    return ret == BLKV_RUN_OK ? 0 : -EINVAL;
}

/* What a server driver d with opts takes, from one probe per (d, opts):
 * crash ops, fault rules, and the limits of those (caps->fault_after_*;
 * zero where it takes no rules). */
static void driver_takes_caps(const struct blkv_driver *d, const char *opts, bool *crash,
                              bool *fault, struct blkv_caps *limits)
{
    static const struct blkv_driver *last;
    static char last_opts[1024];
    static bool c, f;
    static struct blkv_caps lim;
    struct blkv_driver full;
    struct blkv_caps caps;
    char err[512];

    if (d != last || strcmp(opts, last_opts)) {
        c = f = false;
        memset(&lim, 0, sizeof(lim));
        /* a plugin's struct may be smaller: read its fields through a copy */
        if (!blkv_core_driver_copy(&full, d, err, sizeof(err)) && (full.crash || full.fault) &&
            !blkv_driver_probe(d, opts, &caps, err, sizeof(err))) {
            c = full.crash && caps.crash;
            f = full.fault && caps.fault_rules;
            if (f) {
                lim.fault_after_max = caps.fault_after_max;
                lim.fault_after_events = caps.fault_after_events;
            }
        }
        last = d;
        snprintf(last_opts, sizeof(last_opts), "%s", opts);
    }
    *crash = c;
    *fault = f;
    *limits = lim;
}

void blkv_driver_takes(const struct blkv_driver *d, const char *opts, bool *crash, bool *fault)
{
    struct blkv_caps lim;

    if (d->in_process) {
        *crash = *fault = true;
        return;
    }
    driver_takes_caps(d, opts ? opts : "", crash, fault, &lim);
}

/* Whether fault op `op` is within the limits, given the events rules with
 * `after` before it named (ev[0..*nev), counted in if it is kept). */
static bool rule_fits(const struct blkv_caps *lim, const struct blkv_pop *op, uint32_t *ev,
                      size_t cap, size_t *nev)
{
    size_t i;

    if (!op->len)
        return true;
    if (lim->fault_after_max && op->len > lim->fault_after_max)
        return false;
    if (!lim->fault_after_events)
        return true;
    for (i = 0; i < *nev && ev[i] != op->arg; i++)
        ;
    if (i < *nev)
        return true;
    if (*nev >= lim->fault_after_events || *nev == cap)
        return false;
    ev[(*nev)++] = op->arg;
    return true;
}

/* Whether driver d (a full-size copy) tags lower I/Os with event ev. */
static bool driver_tags(const struct blkv_driver *d, unsigned ev)
{
    size_t n = 0;

    if (ev == BLKV_EV_DATA_READ || ev == BLKV_EV_DATA_WRITE || ev == BLKV_EV_FLUSH)
        return true;
    if (ev < BLKV_EV__STANDARD)
        return d->std_events >> ev & 1;
    while (d->events && d->events[n])
        n++;
    return ev - BLKV_EV__STANDARD < n;
}

size_t blkv_driver_fit(const struct blkv_driver *d, const char *opts, struct blkv_program *p)
{
    struct blkv_driver full;
    struct blkv_caps lim;
    char err[512];
    uint32_t ev[64];
    bool crash, fault;
    size_t n = 0, k, nev = 0;

    if (d->in_process)
        return 0;
    driver_takes_caps(d, opts ? opts : "", &crash, &fault, &lim);
    if (!crash)
        n += blkv_program_drop(p, BLKV_P_CRASH);
    if (!fault)
        return n + blkv_program_drop(p, BLKV_P_FAULT);
    if (blkv_core_driver_copy(&full, d, err, sizeof(err)))
        return n;
    for (size_t i = k = 0; i < p->nops; i++)
        if (p->ops[i].code != BLKV_P_FAULT ||
            (driver_tags(&full, p->ops[i].arg) &&
             rule_fits(&lim, &p->ops[i], ev, sizeof(ev) / sizeof(ev[0]), &nev)))
            p->ops[k++] = p->ops[i];
    n += p->nops - k;
    p->nops = k;
    return n;
}

void blkv_run_result_free(struct blkv_run_result *res)
{
    free(res->report);
    res->report = NULL;
    blkv_timeline_free(res->timeline);
    res->timeline = NULL;
}
