/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sched.c - coroutines and the deterministic scheduler (see runtime.h for
 * the core's view, <blkv/driver.h> for the drivers').
 *
 * A coroutine runs on a pooled fiber (fiber.h).  Handles (struct blkv_co)
 * belong to the runtime that spawned them and stay valid until
 * blkv_rt_free(), so the core may keep a pointer to a finished coroutine
 * (blkv_rt_cancel on it does nothing).  Only the fiber under a handle is
 * recycled when the coroutine returns.
 *
 * Each lower-file I/O registers a pending I/O (kept on the blocked
 * coroutine's stack) and blocks; the data moves when main completes it with
 * blkv_rt_step/blkv_rt_progress.
 */
#include "runtime/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct blkv_co *co_current; /* NULL in main (single thread) */

void blkv_rt_die(const char *fmt, ...)
{
    va_list ap;
    fputs("blkv runtime: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

struct blkv_co *blkv_rt_need_co(const char *fn)
{
    if (!co_current)
        blkv_rt_die("%s() called outside a coroutine", fn);
    return co_current;
}

struct blkv_co *blkv_rt_current(void)
{
    return co_current;
}

/* Abort if called from a coroutine. */
static void need_main(const char *fn)
{
    if (co_current)
        blkv_rt_die("%s() called from a coroutine; it is for the core's main loop", fn);
}

/* A coroutine's whole life on its fiber. */
static void co_main(void *arg)
{
    struct blkv_co *co = arg;
    co->fn(co->arg);
    co->state = CO_DONE;
    co->rt->live--;
}

/* ---- ready queue and running ------------------------------------------------ */

static void list_push(struct co_list *l, struct blkv_co *co)
{
    co->next = NULL;
    if (l->tail)
        l->tail->next = co;
    else
        l->head = co;
    l->tail = co;
}

static struct blkv_co *list_pop(struct co_list *l)
{
    struct blkv_co *co = l->head;
    if (co) {
        l->head = co->next;
        if (!l->head)
            l->tail = NULL;
        co->next = NULL;
    }
    return co;
}

/* Append list b to list a. */
static void list_splice(struct co_list *a, struct co_list *b)
{
    if (!b->head)
        return;
    if (a->tail)
        a->tail->next = b->head;
    else
        a->head = b->head;
    a->tail = b->tail;
    b->head = b->tail = NULL;
}

/* Queue a blocked coroutine to run. */
static void co_make_ready(struct blkv_co *co)
{
    co->state = CO_READY;
    list_push(&co->rt->ready, co);
}

/* From main: run co until it blocks, yields or returns. */
static void rt_enter(struct blkv_rt *rt, struct blkv_co *co)
{
    struct blkv_fiber *fb = co->fiber;

    co->state = CO_RUNNING;
    co->yielded = false;
    co->started = true;
    co_current = co;
    blkv_fiber_enter(fb);
    co_current = NULL;
    if (co->state == CO_DONE) {
        co->fiber = NULL;
        blkv_fiber_put(fb);
    }
    if (rt->in_pass) {
        if (!co->yielded)
            rt->pass_progress++;
    } else {
        list_splice(&rt->ready, &rt->yielded);
    }
}

/* One pass over the ready queue: run coroutines until every one is blocked,
 * done, or has yielded during this pass (those run in the next pass). */
static size_t rt_pass(struct blkv_rt *rt)
{
    struct blkv_co *co;
    size_t n = 0;

    rt->in_pass = true;
    rt->pass_progress = 0;
    while ((co = list_pop(&rt->ready))) {
        rt_enter(rt, co);
        n++;
    }
    rt->in_pass = false;
    list_splice(&rt->ready, &rt->yielded);
    return n;
}

size_t blkv_rt_run_ready(struct blkv_rt *rt)
{
    need_main("blkv_rt_run_ready");
    return rt_pass(rt);
}

/* ---- runtime ------------------------------------------------------------------- */

struct blkv_rt *blkv_rt_new(enum blkv_rt_policy sched, uint64_t seed, uint64_t lower_cap)
{
    struct blkv_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->sched = sched;
    blkv_rng_seed(&rt->rng, seed);
    rt->lower_cap = lower_cap ? lower_cap : BLKV_LOWER_DEFAULT_CAP;
    return rt;
}

void blkv_rt_free(struct blkv_rt *rt)
{
    struct co_slab *s, *next;

    if (!rt)
        return;
    need_main("blkv_rt_free");
    free(rt->rules);
    for (s = rt->slabs; s; s = next) {
        next = s->next;
        for (unsigned i = 0; i < s->used; i++) {
            struct blkv_co *co = &s->co[i];
            if (!co->fiber)
                continue;
            /* a fiber that never ran its job is still parked cleanly */
            if (co->started)
                blkv_fiber_abandon(co->fiber);
            else
                blkv_fiber_put(co->fiber);
        }
        free(s);
    }
    for (unsigned i = 0; i < 2; i++)
        blkv_lower_free(rt->lower[i]);
    free(rt->pending);
    free(rt);
}

struct blkv_co *blkv_rt_spawn(struct blkv_rt *rt, blkv_co_fn fn, void *arg, struct blkv_req *req)
{
    struct blkv_co *co;
    struct blkv_fiber *fb;

    if (!rt->slabs || rt->slabs->used == CO_SLAB_SIZE) {
        struct co_slab *s = malloc(sizeof(*s));
        if (!s)
            return NULL;
        s->used = 0;
        s->next = rt->slabs;
        rt->slabs = s;
    }
    fb = blkv_fiber_get();
    if (!fb)
        return NULL;
    co = &rt->slabs->co[rt->slabs->used++];
    memset(co, 0, sizeof(*co));
    co->rt = rt;
    co->fiber = fb;
    co->fn = fn;
    co->arg = arg;
    co->req = req;
    co->waiter.co = co;
    co->state = CO_READY;
    blkv_fiber_set_job(fb, co_main, co);
    rt->live++;
    if (co_current)
        list_push(&rt->ready, co);
    else
        rt_enter(rt, co);
    return co;
}

static void pending_remove(struct blkv_rt *rt, size_t i)
{
    memmove(&rt->pending[i], &rt->pending[i + 1],
            (rt->npending - i - 1) * sizeof(rt->pending[0]));
    rt->npending--;
}

void blkv_rt_cancel(struct blkv_rt *rt, struct blkv_co *co)
{
    if (!co || co->state == CO_DONE)
        return;
    rt = co->rt;
    co->cancelled = true;
    /* Withdraw the I/O and queue the coroutine (never run it from here: the
     * caller may be a driver's cancel callback in the middle of the core). */
    if (co->state == CO_IO) {
        for (size_t i = 0; i < rt->npending; i++) {
            if (rt->pending[i] == co->io) {
                pending_remove(rt, i);
                break;
            }
        }
        co->io->ret = -ECANCELED;
        co->io = NULL;
        co_make_ready(co);
    }
}

size_t blkv_rt_pending(struct blkv_rt *rt)
{
    return rt->npending;
}

uint64_t blkv_rt_faults(const struct blkv_rt *rt)
{
    return rt->faults;
}

size_t blkv_rt_live(const struct blkv_rt *rt)
{
    return rt->live;
}

/* Complete pending I/O i (failing it with err, a positive errno, if nonzero),
 * resume its coroutine, then run what is ready. */
static void rt_complete(struct blkv_rt *rt, size_t i, int err)
{
    struct lower_io *io = rt->pending[i];
    struct blkv_co *co = io->co;

    pending_remove(rt, i);
    if (!err)
        err = io->inject;
    if (rt->off) { /* the power is gone: nothing lands, and it is no fault */
        io->ret = -EIO;
    } else if (err) {
        io->ret = err > 0 ? -err : err;
        rt->faults++;
    } else {
        io->ret = blkv_lower_io_transfer(io);
    }
    co->io = NULL;
    co->state = CO_READY;
    rt_enter(rt, co);
    rt_pass(rt);
}

bool blkv_rt_step(struct blkv_rt *rt, uint32_t idx, int err)
{
    need_main("blkv_rt_step");
    rt_pass(rt);
    if (!rt->npending)
        return false;
    rt_complete(rt, idx % rt->npending, err);
    return true;
}

bool blkv_rt_progress(struct blkv_rt *rt)
{
    size_t ran, i;

    need_main("blkv_rt_progress");
    ran = rt_pass(rt);
    /* Coroutines that only yielded again made no progress by themselves:
     * complete an I/O too, or a polling coroutine would starve the I/O it
     * waits for. */
    if (ran && rt->pass_progress)
        return true;
    if (!rt->npending)
        return ran > 0;
    switch (rt->sched) {
    case BLKV_RT_FIFO:
        i = 0;
        break;
    case BLKV_RT_LIFO:
        i = rt->npending - 1;
        break;
    default:
        i = blkv_rng_below(&rt->rng, rt->npending);
        break;
    }
    rt_complete(rt, i, 0);
    return true;
}

/* ---- coroutine services ---------------------------------------------------- */

bool blkv_co_cancelled(void)
{
    return blkv_rt_need_co("blkv_co_cancelled")->cancelled;
}

void blkv_co_yield(void)
{
    struct blkv_co *co = blkv_rt_need_co("blkv_co_yield");

    co->state = CO_READY;
    co->yielded = true;
    list_push(&co->rt->yielded, co);
    blkv_fiber_switch_out(co->fiber);
}

/* Block the current coroutine on a waiter list until someone wakes it. */
static void co_wait_on(struct blkv_co *co, struct blkv_co_waiter **head,
                       struct blkv_co_waiter **tail)
{
    co->waiter.next = NULL;
    if (*tail)
        (*tail)->next = &co->waiter;
    else
        *head = &co->waiter;
    *tail = &co->waiter;
    co->state = CO_WAIT;
    blkv_fiber_switch_out(co->fiber);
}

/* Take the first waiter off a list, or NULL. */
static struct blkv_co *waiter_pop(struct blkv_co_waiter **head, struct blkv_co_waiter **tail)
{
    struct blkv_co_waiter *w = *head;
    if (!w)
        return NULL;
    *head = w->next;
    if (!*head)
        *tail = NULL;
    w->next = NULL;
    return w->co;
}

void blkv_co_mutex_lock(struct blkv_co_mutex *m)
{
    struct blkv_co *co = blkv_rt_need_co("blkv_co_mutex_lock");

    if (!m->locked) {
        m->locked = true;
        return;
    }
    /* unlock hands the mutex over: it is ours when we wake */
    co_wait_on(co, &m->head, &m->tail);
}

void blkv_co_mutex_unlock(struct blkv_co_mutex *m)
{
    struct blkv_co *next;

    if (!m->locked)
        blkv_rt_die("blkv_co_mutex_unlock() of a mutex that is not locked");
    next = waiter_pop(&m->head, &m->tail);
    if (next)
        co_make_ready(next); /* stays locked: owned by next */
    else
        m->locked = false;
}

void blkv_co_queue_wait(struct blkv_co_queue *q)
{
    co_wait_on(blkv_rt_need_co("blkv_co_queue_wait"), &q->head, &q->tail);
}

bool blkv_co_queue_wake_one(struct blkv_co_queue *q)
{
    struct blkv_co *co = waiter_pop(&q->head, &q->tail);
    if (!co)
        return false;
    co_make_ready(co);
    return true;
}

void blkv_co_queue_wake_all(struct blkv_co_queue *q)
{
    while (blkv_co_queue_wake_one(q))
        ;
}

int blkv_rt_wait_io(const char *fn, struct lower_io *io)
{
    struct blkv_co *co = blkv_rt_need_co(fn);
    struct blkv_rt *rt = co->rt;

    if (rt->npending == rt->pending_cap) {
        size_t n = rt->pending_cap ? rt->pending_cap * 2 : 16;
        struct lower_io **p = realloc(rt->pending, n * sizeof(*p));
        if (!p)
            return -ENOMEM;
        rt->pending = p;
        rt->pending_cap = n;
    }
    io->co = co;
    io->ret = -EIO;
    io->event = co->next_event && co->next_event_file == io->f ? co->next_event
                : io->kind == IO_READ                             ? BLKV_EV_DATA_READ
                : io->kind == IO_WRITE                            ? BLKV_EV_DATA_WRITE
                : io->kind == IO_FLUSH                            ? BLKV_EV_FLUSH
                                                                  : BLKV_EV_NONE;
    co->next_event = 0;
    co->next_event_file = NULL;
    io->inject = 0;
    /* rules fail the I/O of requests, not of open, close and check (nor
     * what a driver issues while the power is off: it never happens) */
    for (size_t i = 0; co->req && !rt->off && i < rt->nrules; i++) {
        struct fault_rule *fr = &rt->rules[i];
        if (fr->event != io->event || (fr->once && fr->fired) || ++fr->seen <= fr->after)
            continue;
        fr->fired = true;
        io->inject = fr->err;
        break;
    }
    if (!rt->off)
        blkv_lower_io_issue(io);
    rt->pending[rt->npending++] = io;
    co->io = io;
    co->state = CO_IO;
    blkv_fiber_switch_out(co->fiber);
    return io->ret;
}

void blkv_rt_set_durability(struct blkv_rt *rt, bool on)
{
    if (rt->durability && !on) /* nothing will ask what is durable any more */
        blkv_rt_durable_now(rt);
    rt->durability = on;
}

void blkv_rt_durable_now(struct blkv_rt *rt)
{
    for (unsigned i = 0; i < 2; i++)
        if (rt->lower[i])
            blkv_lower_durable_now(rt->lower[i]);
}

/* Lower I/Os a crash completes (each failing) while coroutines unwind. */
#define CRASH_UNWIND_STEPS 100000u

void blkv_rt_crash(struct blkv_rt *rt, uint64_t seed)
{
    struct blkv_rng rng;

    need_main("blkv_rt_crash");
    blkv_rng_seed(&rng, seed);
    for (unsigned i = 0; i < 2; i++)
        if (rt->lower[i] && rt->durability)
            blkv_lower_crash(rt->lower[i], rt->pending, rt->npending, &rng);
    /* With the power off, the coroutines run to their end: every lower I/O,
     * pending or new, fails with -EIO and changes nothing, so the driver
     * unwinds its error paths and frees what its coroutines hold (their
     * completions are the caller's to ignore).  What still has not ended
     * after CRASH_UNWIND_STEPS completions waits for something that will
     * never come, and dies where it stands. */
    rt->off = true;
    for (unsigned n = 0; n < CRASH_UNWIND_STEPS && (rt_pass(rt) || rt->npending); n++)
        if (rt->npending)
            rt_complete(rt, 0, 0);
    rt->off = false;
    for (struct co_slab *s = rt->slabs; s; s = s->next) {
        for (unsigned i = 0; i < s->used; i++) {
            struct blkv_co *co = &s->co[i];
            if (!co->fiber)
                continue;
            if (co->started)
                blkv_fiber_abandon(co->fiber);
            else
                blkv_fiber_put(co->fiber);
            co->fiber = NULL;
            co->io = NULL;
            co->state = CO_DONE;
            rt->live--;
        }
    }
    rt->npending = 0;
    rt->ready.head = rt->ready.tail = NULL;
    rt->yielded.head = rt->yielded.tail = NULL;
}

uint64_t blkv_rt_volatile_bytes(const struct blkv_rt *rt)
{
    uint64_t n = rt->dur_held;
    for (unsigned i = 0; i < 2; i++)
        if (rt->lower[i])
            n += rt->lower[i]->rec_bytes;
    return n;
}

int blkv_rt_fault_rule(struct blkv_rt *rt, unsigned event, int err, bool once, uint64_t after)
{
    struct fault_rule *r = realloc(rt->rules, (rt->nrules + 1) * sizeof(*r));
    if (!r)
        return -ENOMEM;
    rt->rules = r;
    rt->rules[rt->nrules++] = (struct fault_rule){.event = event, .err = err, .once = once,
                                                  .after = after};
    return 0;
}

void blkv_lower_event(struct blkv_lower *f, unsigned ev)
{
    struct blkv_co *co = blkv_rt_need_co("blkv_lower_event");
    co->next_event = ev;
    co->next_event_file = f;
}
