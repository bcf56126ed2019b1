/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_runtime.c - the runtime alone: coroutines and their pool, lower files,
 * the scheduler's completion orders, faults, cancel, mutex and queue,
 * deadlock detection, the lower-file cap, load/save, durability and crashes.
 */
#include "runtime/bufpool.h"
#include "runtime/fiber.h"
#include "runtime/runtime.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------- */

/* A lower I/O as a coroutine job; `ret` is set when it returns. */
struct job {
    struct blkv_lower *f;
    enum { J_READ, J_WRITE, J_FLUSH, J_TRUNC, J_ZERO } kind;
    void *buf;
    uint64_t len, off;
    int ret;
    bool done;
    bool saw_cancel;
};

static void job_fn(void *arg)
{
    struct job *j = arg;
    switch (j->kind) {
    case J_READ:
        j->ret = blkv_lower_pread(j->f, j->buf, j->len, j->off);
        break;
    case J_WRITE:
        j->ret = blkv_lower_pwrite(j->f, j->buf, j->len, j->off);
        break;
    case J_FLUSH:
        j->ret = blkv_lower_flush(j->f);
        break;
    case J_TRUNC:
        j->ret = blkv_lower_truncate(j->f, j->len);
        break;
    case J_ZERO:
        j->ret = blkv_lower_pwrite_zeroes(j->f, j->len, j->off);
        break;
    }
    j->saw_cancel = blkv_co_cancelled();
    j->done = true;
}

static void drain(struct blkv_rt *rt)
{
    while (blkv_rt_progress(rt))
        ;
}

/* Virtual size in pages, or 0 when it means nothing (under valgrind). */
static uint64_t vm_pages(void)
{
    unsigned long size = 0;
    const char *pre = getenv("LD_PRELOAD");
    FILE *f;

    if (pre && strstr(pre, "vgpreload"))
        return 0;
    f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &size) != 1)
            size = 0;
        fclose(f);
    }
    return size;
}

/* Order two overlapping writes by policy; returns the byte that wins at
 * offset 100 (1: the first-issued write, 2: the second). */
static int race(unsigned sched, uint64_t seed)
{
    struct blkv_rt *rt = blkv_rt_new(sched, seed, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char a[200], b[200], out = 0;
    struct job j1 = {.f = f, .kind = J_WRITE, .buf = a, .len = 200, .off = 0};
    struct job j2 = {.f = f, .kind = J_WRITE, .buf = b, .len = 200, .off = 50};

    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    blkv_rt_spawn(rt, job_fn, &j1, NULL);
    blkv_rt_spawn(rt, job_fn, &j2, NULL);
    CHECK(blkv_rt_pending(rt) == 2);
    drain(rt);
    CHECK(j1.done && j2.done && j1.ret == 0 && j2.ret == 0);
    blkv_lower_peek(f, &out, 1, 100);
    blkv_rt_free(rt);
    return out;
}

/* ---- tests ----------------------------------------------------------------- */

static void *stack_addr[2];

static void where_fn(void *arg)
{
    stack_addr[(uintptr_t)arg] = __builtin_frame_address(0);
}

/* A finished coroutine's stack is reused by the next one; handles stay valid. */
static void test_reuse(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 1, 0);
    struct blkv_co *c1 = blkv_rt_spawn(rt, where_fn, (void *)0, NULL);
    struct blkv_co *c2 = blkv_rt_spawn(rt, where_fn, (void *)1, NULL);

    REQUIRE(c1 && c2);
    CHECK(c1 != c2);
    CHECK(stack_addr[0] && stack_addr[0] == stack_addr[1]);
    CHECK(blkv_rt_live(rt) == 0);
    blkv_rt_cancel(rt, c1); /* finished: no effect */
    CHECK(!blkv_rt_progress(rt));
    blkv_rt_free(rt);

    /* and across runtimes */
    rt = blkv_rt_new(BLKV_RT_FIFO, 1, 0);
    stack_addr[0] = NULL;
    blkv_rt_spawn(rt, where_fn, (void *)0, NULL);
    CHECK(stack_addr[0] == stack_addr[1]);
    blkv_rt_free(rt);
}

/* Data moves at completion, so the completion order decides the result. */
static void test_orders(void)
{
    int seen[3] = {0};

    CHECK(race(BLKV_RT_FIFO, 0) == 2);
    CHECK(race(BLKV_RT_LIFO, 0) == 1);
    for (uint64_t seed = 0; seed < 64; seed++) {
        int w = race(BLKV_RT_RANDOM, seed);
        CHECK(w == 1 || w == 2);
        seen[w]++;
        CHECK(race(BLKV_RT_RANDOM, seed) == w); /* deterministic */
    }
    CHECK(seen[1] > 0 && seen[2] > 0);
}

/* blkv_rt_step completes the chosen I/O; a read sees what completed before it. */
static void test_step(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char a[16], b[16], r1[16], r2[16];
    struct job w1 = {.f = f, .kind = J_WRITE, .buf = a, .len = 16, .off = 0};
    struct job w2 = {.f = f, .kind = J_WRITE, .buf = b, .len = 16, .off = 0};
    struct job rd1 = {.f = f, .kind = J_READ, .buf = r1, .len = 16, .off = 0};
    struct job rd2 = {.f = f, .kind = J_READ, .buf = r2, .len = 16, .off = 0};

    memset(a, 0xaa, 16);
    memset(b, 0xbb, 16);
    blkv_rt_spawn(rt, job_fn, &w1, NULL);
    blkv_rt_spawn(rt, job_fn, &w2, NULL);
    blkv_rt_spawn(rt, job_fn, &rd1, NULL);
    CHECK(blkv_rt_pending(rt) == 3);
    CHECK(blkv_rt_step(rt, 1 + 3 * 7, 0)); /* index mod pending: w2 */
    CHECK(w2.done && !w1.done);
    CHECK(blkv_rt_step(rt, 1, 0)); /* now rd1 */
    CHECK(rd1.done && rd1.ret == 0 && memcmp(r1, b, 16) == 0);
    CHECK(blkv_rt_step(rt, 0, 0)); /* w1 lands last */
    blkv_rt_spawn(rt, job_fn, &rd2, NULL);
    CHECK(blkv_rt_step(rt, 0, 0));
    CHECK(memcmp(r2, a, 16) == 0);
    CHECK(!blkv_rt_step(rt, 0, 0));
    CHECK(blkv_lower_size(f) == 16);
    blkv_rt_free(rt);
}

/* An injected fault returns the errno and transfers nothing. */
static void test_fault(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char a[64], r[64], old[64];
    struct job w = {.f = f, .kind = J_WRITE, .buf = a, .len = 64, .off = 10};
    struct job rd = {.f = f, .kind = J_READ, .buf = r, .len = 64, .off = 0};
    struct job fl = {.f = f, .kind = J_FLUSH};

    memset(old, 0x11, sizeof old);
    blkv_lower_poke(f, old, 64, 0);
    memset(a, 0x22, sizeof a);
    blkv_rt_spawn(rt, job_fn, &w, NULL);
    CHECK(blkv_rt_step(rt, 0, EIO));
    CHECK(w.done && w.ret == -EIO);
    CHECK(blkv_rt_faults(rt) == 1);
    CHECK(blkv_lower_size(f) == 64);
    memset(r, 0x77, sizeof r);
    blkv_rt_spawn(rt, job_fn, &rd, NULL);
    CHECK(blkv_rt_step(rt, 0, ENOSPC));
    CHECK(rd.ret == -ENOSPC);
    for (int i = 0; i < 64; i++)
        CHECK(r[i] == 0x77); /* a failed read fills nothing */
    blkv_lower_peek(f, r, 64, 0);
    CHECK(memcmp(r, old, 64) == 0);
    blkv_rt_spawn(rt, job_fn, &fl, NULL);
    CHECK(blkv_rt_step(rt, 0, EIO));
    CHECK(fl.ret == -EIO && blkv_rt_faults(rt) == 3);
    blkv_rt_free(rt);
}

/* A cancelled I/O is withdrawn: it never happens and returns -ECANCELED. */
static void test_cancel(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char a[8] = "abcdefg", r[8];
    struct job w1 = {.f = f, .kind = J_WRITE, .buf = a, .len = 8, .off = 0};
    struct job w2 = {.f = f, .kind = J_WRITE, .buf = a, .len = 8, .off = 4096};
    struct blkv_co *c1 = blkv_rt_spawn(rt, job_fn, &w1, NULL);

    blkv_rt_spawn(rt, job_fn, &w2, NULL);
    CHECK(blkv_rt_pending(rt) == 2);
    blkv_rt_cancel(rt, c1);
    CHECK(blkv_rt_pending(rt) == 1);
    CHECK(blkv_rt_run_ready(rt) == 1);
    CHECK(w1.done && w1.ret == -ECANCELED && w1.saw_cancel);
    drain(rt);
    CHECK(w2.done && w2.ret == 0 && !w2.saw_cancel);
    blkv_lower_peek(f, r, 8, 0);
    CHECK(r[0] == 0 && r[7] == 0);
    CHECK(blkv_lower_size(f) == 4096 + 8);
    blkv_rt_cancel(rt, c1); /* finished: nothing */
    CHECK(blkv_rt_live(rt) == 0);
    blkv_rt_free(rt);
}

/* After a cancel, the coroutine's later I/Os run normally. */
struct two_writes {
    struct blkv_lower *f;
    int r1, r2;
    bool cancelled;
};

static void two_writes_fn(void *arg)
{
    struct two_writes *t = arg;
    t->r1 = blkv_lower_pwrite(t->f, "x", 1, 0);
    t->r2 = blkv_lower_pwrite(t->f, "y", 1, 1);
    t->cancelled = blkv_co_cancelled();
}

static void test_cancel_then_io(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_LIFO, 0, 0);
    struct two_writes t = {.f = blkv_rt_lower(rt, 0)};
    struct blkv_co *co = blkv_rt_spawn(rt, two_writes_fn, &t, NULL);
    char r[2];

    blkv_rt_cancel(rt, co);
    CHECK(blkv_rt_progress(rt)); /* runs it: second write is issued */
    CHECK(blkv_rt_pending(rt) == 1);
    drain(rt);
    CHECK(t.r1 == -ECANCELED && t.r2 == 0 && t.cancelled);
    blkv_lower_peek(t.f, r, 2, 0);
    CHECK(r[0] == 0 && r[1] == 'y');
    blkv_rt_free(rt);
}

/* ---- mutex and queue ------------------------------------------------------- */

static struct blkv_co_mutex mtx;
static struct blkv_co_queue wq;
static int order[16], norder;

struct locker {
    struct blkv_lower *f;
    int id;
};

static void locker_fn(void *arg)
{
    struct locker *l = arg;
    char c = (char)l->id;
    blkv_co_mutex_lock(&mtx);
    order[norder++] = l->id;
    CHECK(mtx.locked);
    blkv_lower_pwrite(l->f, &c, 1, 0); /* hold it across a yield */
    blkv_co_mutex_unlock(&mtx);
}

static void test_mutex(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_LIFO, 0, 0);
    struct locker l[5];

    memset(&mtx, 0, sizeof mtx);
    norder = 0;
    for (int i = 0; i < 4; i++) {
        l[i] = (struct locker){.f = blkv_rt_lower(rt, 0), .id = i};
        blkv_rt_spawn(rt, locker_fn, &l[i], NULL);
    }
    CHECK(norder == 1 && blkv_rt_pending(rt) == 1);
    /* Complete the holder's write: the mutex goes to waiter 1, not to a newcomer. */
    CHECK(blkv_rt_step(rt, 0, 0));
    l[4] = (struct locker){.f = blkv_rt_lower(rt, 0), .id = 4};
    blkv_rt_spawn(rt, locker_fn, &l[4], NULL);
    drain(rt);
    CHECK(norder == 5);
    for (int i = 0; i < 5; i++)
        CHECK(order[i] == i);
    CHECK(!mtx.locked && !mtx.head && !mtx.tail);
    CHECK(blkv_rt_live(rt) == 0);
    blkv_rt_free(rt);
}

static void waiter_fn(void *arg)
{
    blkv_co_queue_wait(&wq);
    order[norder++] = (int)(uintptr_t)arg;
}

static void test_queue(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);

    memset(&wq, 0, sizeof wq);
    norder = 0;
    for (uintptr_t i = 0; i < 4; i++)
        blkv_rt_spawn(rt, waiter_fn, (void *)i, NULL);
    CHECK(blkv_rt_live(rt) == 4 && norder == 0);
    CHECK(blkv_co_queue_wake_one(&wq));
    CHECK(blkv_rt_run_ready(rt) == 1);
    CHECK(norder == 1 && order[0] == 0);
    blkv_co_queue_wake_all(&wq);
    CHECK(blkv_rt_progress(rt));
    CHECK(norder == 4 && order[1] == 1 && order[2] == 2 && order[3] == 3);
    CHECK(!blkv_co_queue_wake_one(&wq));
    CHECK(!blkv_rt_progress(rt));
    CHECK(blkv_rt_live(rt) == 0);
    blkv_rt_free(rt);
}

/* A coroutine waiting for a wake-up that never comes: nothing can progress. */
static void test_deadlock(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_RANDOM, 5, 0);

    memset(&wq, 0, sizeof wq);
    norder = 0;
    blkv_rt_spawn(rt, waiter_fn, (void *)0, NULL);
    CHECK(!blkv_rt_progress(rt));
    CHECK(!blkv_rt_step(rt, 0, 0));
    CHECK(blkv_rt_live(rt) == 1);
    blkv_rt_free(rt); /* its fiber goes back to the pool */
    memset(&wq, 0, sizeof wq);
}

/* ---- yield and nested spawn ------------------------------------------------- */

struct poller {
    bool *flag;
    int spins;
};

static void poll_fn(void *arg)
{
    struct poller *p = arg;
    while (!*p->flag) {
        p->spins++;
        blkv_co_yield();
    }
}

static void flag_fn(void *arg)
{
    struct job *j = arg;
    job_fn(j);
}

/* A coroutine polling with yield does not starve the I/O it waits for. */
static void test_yield(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct job j = {.f = blkv_rt_lower(rt, 0), .kind = J_FLUSH};
    struct poller p = {.flag = &j.done};

    blkv_rt_spawn(rt, poll_fn, &p, NULL);
    CHECK(p.spins == 1 && blkv_rt_live(rt) == 1);
    CHECK(blkv_rt_run_ready(rt) == 1); /* one pass: it yields again */
    CHECK(p.spins == 2);
    blkv_rt_spawn(rt, flag_fn, &j, NULL);
    for (int i = 0; i < 10 && blkv_rt_live(rt); i++)
        CHECK(blkv_rt_progress(rt));
    CHECK(j.done && blkv_rt_live(rt) == 0);
    CHECK(!blkv_rt_progress(rt));
    blkv_rt_free(rt);
}

struct parent {
    struct blkv_rt *rt;
    struct job child;
    bool child_started_before_return;
};

static void parent_fn(void *arg)
{
    struct parent *p = arg;
    blkv_rt_spawn(p->rt, job_fn, &p->child, NULL);
    p->child_started_before_return = blkv_rt_pending(p->rt) > 0;
}

/* A spawn from a coroutine is queued, not run at once. */
static void test_nested_spawn(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct parent p = {.rt = rt, .child = {.f = blkv_rt_lower(rt, 0), .kind = J_FLUSH}};

    blkv_rt_spawn(rt, parent_fn, &p, NULL);
    CHECK(!p.child_started_before_return);
    CHECK(blkv_rt_live(rt) == 1 && blkv_rt_pending(rt) == 0);
    CHECK(blkv_rt_run_ready(rt) == 1 && blkv_rt_pending(rt) == 1);
    drain(rt);
    CHECK(p.child.done && p.child.ret == 0);
    blkv_rt_free(rt);
}

struct deep_arg {
    struct blkv_lower *f;
    int depth;
    uint64_t off;
    int ret;
};

struct spawner {
    struct blkv_rt *rt;
    struct deep_arg *kids;
    int n;
};

static void deep_fn(void *arg);

static void spawner_fn(void *arg)
{
    struct spawner *s = arg;
    for (int i = 0; i < s->n; i++)
        REQUIRE(blkv_rt_spawn(s->rt, deep_fn, &s->kids[i], NULL));
}

/* Many spawns from a coroutine: new fibers are made on a coroutine's stack. */
static void test_spawn_storm(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_LIFO, 0, 0);
    static struct deep_arg kids[700];
    struct spawner s = {.rt = rt, .kids = kids, .n = 700};

    for (int i = 0; i < s.n; i++)
        kids[i] = (struct deep_arg){.f = blkv_rt_lower(rt, 0), .depth = 20, .off = (uint64_t)i,
                                    .ret = 1};
    blkv_rt_spawn(rt, spawner_fn, &s, NULL);
    CHECK(blkv_rt_live(rt) == 700);
    drain(rt);
    CHECK(blkv_rt_live(rt) == 0);
    for (int i = 0; i < s.n; i++)
        CHECK(kids[i].ret == 0);
    blkv_rt_free(rt);
}

static void one_fn(void *arg)
{
    *(int *)arg += 1;
}

/* The fiber pool keeps what a window of runs had out at once: the storm's
 * hundreds of idle fibers are unmapped once two windows needed one. */
static void test_pool_follows_use(void)
{
    size_t before = blkv_fiber_pooled();
    int n = 0;

    CHECK(before >= 100); /* test_spawn_storm's */
    for (unsigned r = 0; r < 2 * BLKV_BUF_WINDOW_RUNS; r++) {
        struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
        blkv_rt_spawn(rt, one_fn, &n, NULL);
        drain(rt);
        blkv_rt_free(rt);
        blkv_fiber_run_end();
    }
    CHECK(n == (int)(2 * BLKV_BUF_WINDOW_RUNS));
    CHECK(blkv_fiber_pooled() >= 1 && blkv_fiber_pooled() <= 2);
}

/* ---- lower files ------------------------------------------------------------ */

/* Run one lower I/O to completion. */
static int io(struct blkv_rt *rt, struct job j)
{
    blkv_rt_spawn(rt, job_fn, &j, NULL);
    drain(rt);
    CHECK(j.done);
    return j.ret;
}

static bool is_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void test_sparse(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 16384);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    static unsigned char buf[3 * 4096], r[3 * 4096];
    const uint64_t far = UINT64_C(1) << 40;

    CHECK(blkv_rt_lower(rt, 2) == NULL);
    CHECK(blkv_rt_lower(rt, 1) != f);
    memset(r, 0xff, sizeof r);
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = sizeof r, .off = 123}) == 0);
    CHECK(is_zero(r, sizeof r));
    memset(buf, 0x5a, sizeof buf);
    /* far away, small: costs one page, extends the size */
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = 10, .off = far}) == 0);
    CHECK(blkv_lower_size(f) == far + 10);
    memset(r, 0xff, sizeof r);
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = 100, .off = far - 50}) == 0);
    CHECK(is_zero(r, 50) && r[50] == 0x5a && r[59] == 0x5a && is_zero(r + 60, 40));
    /* past EOF reads zeros */
    memset(r, 0xff, sizeof r);
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = 64, .off = far + 4}) == 0);
    CHECK(r[0] == 0x5a && is_zero(r + 6, 58));
    /* zeros into holes allocate nothing, so they fit under the cap */
    memset(buf, 0, sizeof buf);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf, .off = 0}) ==
          0);
    /* the cap: 16 KiB, one page held, three more would not fit */
    memset(buf, 0x33, sizeof buf);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = 4096 + 1, .off = 8192}) ==
          0); /* two pages */
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf,
                              .off = 65536}) == -ENOSPC);
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = 4096, .off = 65536}) == 0);
    CHECK(is_zero(r, 4096)); /* the failed write wrote nothing */
    /* overwriting a page with zeros gives it back */
    memset(buf, 0, sizeof buf);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = 4096, .off = 8192}) == 0);
    memset(buf, 0x44, sizeof buf);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = 4096, .off = 65536}) == 0);
    /* argument checks */
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = 2, .off = UINT64_MAX}) ==
          -EINVAL);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = buf, .len = 1, .off = UINT64_MAX}) ==
          -EINVAL);
    CHECK(io(rt, (struct job){.f = f, .kind = J_WRITE, .buf = NULL, .len = 1, .off = 0}) ==
          -EINVAL);
    CHECK(io(rt, (struct job){.f = NULL, .kind = J_READ, .buf = r, .len = 1, .off = 0}) == -EINVAL);
    blkv_rt_free(rt);
}

struct zero_len {
    struct blkv_lower *f;
    int r1, r2;
};

/* Length 0 completes at once, without yielding. */
static void zero_len_run(void *arg)
{
    struct zero_len *z = arg;
    z->r1 = blkv_lower_pread(z->f, NULL, 0, 5);
    z->r2 = blkv_lower_pwrite(z->f, NULL, 0, UINT64_C(1) << 50);
}

static void test_zero_len(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct zero_len z = {.f = blkv_rt_lower(rt, 0), .r1 = 1, .r2 = 1};
    struct blkv_co *co = blkv_rt_spawn(rt, zero_len_run, &z, NULL);

    CHECK(co && z.r1 == 0 && z.r2 == 0);
    CHECK(blkv_rt_live(rt) == 0 && blkv_rt_pending(rt) == 0);
    CHECK(blkv_lower_size(z.f) == 0);
    blkv_rt_free(rt);
}

static void test_truncate(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char buf[10000], r[10000];
    struct job t = {.f = f, .kind = J_TRUNC, .len = 5000};

    memset(buf, 0x66, sizeof buf);
    blkv_lower_poke(f, buf, sizeof buf, 0);
    CHECK(blkv_lower_size(f) == 10000);
    blkv_rt_spawn(rt, job_fn, &t, NULL);
    CHECK(blkv_lower_size(f) == 10000); /* pending until completed */
    CHECK(blkv_rt_step(rt, 0, 0) && t.ret == 0);
    CHECK(blkv_lower_size(f) == 5000);
    CHECK(io(rt, (struct job){.f = f, .kind = J_TRUNC, .len = 20000}) == 0);
    blkv_lower_peek(f, r, sizeof r, 0);
    CHECK(r[4999] == 0x66 && is_zero(r + 5000, sizeof r - 5000));
    t = (struct job){.f = f, .kind = J_TRUNC, .len = 1};
    blkv_rt_spawn(rt, job_fn, &t, NULL);
    CHECK(blkv_rt_step(rt, 0, EIO) && t.ret == -EIO);
    CHECK(blkv_lower_size(f) == 20000);
    blkv_rt_free(rt);
}

/* Zero writes are writes without a buffer: scheduled, faultable, extending
 * the size, giving back whole pages; the data and hole queries see them. */
static void test_zeroes(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 3 * 4096);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    static unsigned char buf[3 * 4096], r[4 * 4096];
    struct job z = {.f = f, .kind = J_ZERO, .len = 100, .off = 4000};

    memset(buf, 0x77, sizeof buf);
    blkv_lower_poke(f, buf, sizeof buf, 0); /* pages 0-2: the cap */
    CHECK(blkv_lower_next_data(f, 0, 1 << 20) == 0);
    CHECK(blkv_lower_next_hole(f, 0, 1 << 20) == 3 * 4096);
    CHECK(blkv_lower_next_hole(f, 5, 100) == 100);
    blkv_rt_spawn(rt, job_fn, &z, NULL);
    blkv_lower_peek(f, r, 1, 4050);
    CHECK(r[0] == 0x77); /* pending until completed */
    CHECK(blkv_rt_step(rt, 0, 0) && z.ret == 0);
    blkv_lower_peek(f, r, sizeof buf, 0);
    CHECK(r[3999] == 0x77 && is_zero(r + 4000, 100) && r[4100] == 0x77);
    /* a failed one writes nothing */
    z = (struct job){.f = f, .kind = J_ZERO, .len = 8192, .off = 0};
    blkv_rt_spawn(rt, job_fn, &z, NULL);
    CHECK(blkv_rt_step(rt, 0, EIO) && z.ret == -EIO);
    blkv_lower_peek(f, r, 1, 0);
    CHECK(r[0] == 0x77);
    /* a whole page of zeros is a hole again; far zeros extend the size at
     * no cost (the store is at its cap) */
    CHECK(io(rt, (struct job){.f = f, .kind = J_ZERO, .len = 4096, .off = 4096}) == 0);
    CHECK(blkv_lower_next_hole(f, 0, 1 << 20) == 4096);
    CHECK(blkv_lower_next_data(f, 4096, 1 << 20) == 8192);
    CHECK(io(rt, (struct job){.f = f, .kind = J_ZERO, .len = 1 << 20, .off = 1 << 20}) == 0);
    CHECK(blkv_lower_size(f) == 2 << 20);
    CHECK(blkv_lower_next_data(f, 3 * 4096, 2 << 20) == 2 << 20);
    CHECK(blkv_lower_next_hole(f, 3 * 4096, 3 << 20) == 3 * 4096);
    memset(r, 0xff, sizeof r);
    CHECK(io(rt, (struct job){.f = f, .kind = J_READ, .buf = r, .len = sizeof r,
                              .off = (1 << 20) - 4096}) == 0);
    CHECK(is_zero(r, sizeof r));
    CHECK(io(rt, (struct job){.f = f, .kind = J_ZERO, .len = 2, .off = UINT64_MAX}) == -EINVAL);
    CHECK(io(rt, (struct job){.f = NULL, .kind = J_ZERO, .len = 1, .off = 0}) == -EINVAL);
    blkv_rt_free(rt);
}

static void test_load_save(void)
{
    char path[] = "/tmp/blkv-test-runtime-XXXXXX";
    int fd = mkstemp(path);
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0), *rt2;
    struct blkv_lower *f = blkv_rt_lower(rt, 1), *g;
    static unsigned char a[20000], b[20000];
    const uint64_t size = 3 * 1048576 + 1234;
    struct stat st;

    REQUIRE(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (unsigned char)(i * 7 + 1);
    blkv_lower_poke(f, a, 100, 5);
    blkv_lower_poke(f, a, sizeof a, 1048576 - 3);
    blkv_lower_poke(f, a, 30, size - 30);
    CHECK(blkv_lower_size(f) == size);
    CHECK(blkv_rt_lower_save(rt, 1, path) == 0);
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == size);

    rt2 = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    g = blkv_rt_lower(rt2, 0);
    blkv_lower_poke(g, a, 10, 4096 * 100); /* replaced by the load */
    CHECK(blkv_rt_lower_load(rt2, 0, path) == 0);
    CHECK(blkv_lower_size(g) == size);
    for (uint64_t off = 0; off < size; off += sizeof a) {
        uint64_t n = size - off < sizeof a ? size - off : sizeof a;
        blkv_lower_peek(f, a, n, off);
        blkv_lower_peek(g, b, n, off);
        CHECK(memcmp(a, b, n) == 0);
    }
    CHECK(blkv_rt_lower_load(rt2, 0, "/nonexistent/blkv") == -ENOENT);
    CHECK(blkv_rt_lower_load(rt2, 2, path) == -EINVAL);
    /* the cap applies to loads */
    blkv_rt_free(rt2);
    rt2 = blkv_rt_new(BLKV_RT_FIFO, 0, 8192);
    CHECK(blkv_rt_lower_load(rt2, 0, path) == -ENOSPC);
    CHECK(blkv_lower_size(blkv_rt_lower(rt2, 0)) == 0);
    blkv_rt_free(rt2);
    blkv_rt_free(rt);
    unlink(path);
}

/* ---- scale: pool reuse, deep stacks, abandonment ----------------------------- */

/* Recurse with instrumented locals, do a lower I/O at the bottom. */
static int deep(struct blkv_lower *f, int depth, uint64_t off)
{
    volatile char pad[512];
    int ret;

    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (char)(depth + i);
    if (depth == 0) {
        char c = pad[7];
        return blkv_lower_pwrite(f, &c, 1, off);
    }
    ret = deep(f, depth - 1, off);
    return ret + pad[depth % sizeof pad] - (char)(depth + depth % sizeof pad);
}

static void deep_fn(void *arg)
{
    struct deep_arg *d = arg;
    d->ret = deep(d->f, d->depth, d->off);
}

/* Many concurrent coroutines with deep stacks, some abandoned mid-I/O. */
static void run_batch(unsigned sched, uint64_t seed, int n, int depth, bool abandon)
{
    struct blkv_rt *rt = blkv_rt_new(sched, seed, 0);
    struct deep_arg d[64];
    struct blkv_co *co[64];

    REQUIRE(n <= 64);
    for (int i = 0; i < n; i++) {
        d[i] = (struct deep_arg){.f = blkv_rt_lower(rt, 0), .depth = depth, .off = (uint64_t)i};
        co[i] = blkv_rt_spawn(rt, deep_fn, &d[i], NULL);
        REQUIRE(co[i]);
    }
    if (n > 2)
        blkv_rt_cancel(rt, co[1]);
    if (!abandon) {
        drain(rt);
        CHECK(blkv_rt_live(rt) == 0);
        for (int i = 0; i < n; i++)
            CHECK(d[i].ret == (i == 1 && n > 2 ? -ECANCELED : 0));
    } else {
        for (int i = 0; i < n / 2; i++)
            blkv_rt_step(rt, (uint32_t)i * 3, i % 5 == 0 ? EIO : 0);
    }
    blkv_rt_free(rt);
}

static void test_scale(void)
{
    uint64_t before, after;

    /* 10^5 spawn/finish cycles over 2000 runs, after the pool (and, under
     * ASan, the fibers' fake stacks) warmed up */
    for (int pass = 0; pass < 2; pass++) {
        before = vm_pages();
        for (int run = 0; run < (pass ? 2000 : 300); run++)
            run_batch((unsigned)run % 3, (uint64_t)run, 50, run % 7 ? 3 : 150, run % 10 == 9);
        after = vm_pages();
    }
    if (before && after)
        CHECK(after <= before + 256); /* no growth beyond noise (1 MiB) */
    printf("     vm pages before %llu after %llu\n", (unsigned long long)before,
           (unsigned long long)after);
}

/* 10^5 sequential spawns in one runtime: one pooled fiber serves them all. */
static void noop_fn(void *arg)
{
    (*(int *)arg)++;
}

static void test_many_in_one(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    int count = 0;
    uint64_t before = vm_pages(), after;

    for (int i = 0; i < 100000; i++)
        blkv_rt_spawn(rt, noop_fn, &count, NULL);
    after = vm_pages();
    CHECK(count == 100000 && blkv_rt_live(rt) == 0);
    /* handles are small and stay valid until blkv_rt_free; stacks are not kept */
    if (before && after)
        CHECK(after - before < 16384);
    blkv_rt_free(rt);
}

/* ---- misuse ------------------------------------------------------------------ */

/* A coroutine-only call from main aborts with a message. */
static void test_misuse(void)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        blkv_co_yield();
        _exit(0);
    }
    REQUIRE(pid > 0);
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}


/* ---- durability and crashes ------------------------------------------------- */

/* A runtime with durability, lower file 0 holding 4 KiB of 0x11 (durable). */
static struct blkv_rt *dur_rt(struct blkv_lower **f)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    unsigned char old[4096];
    blkv_rt_set_durability(rt, true);
    *f = blkv_rt_lower(rt, 0);
    memset(old, 0x11, sizeof old);
    blkv_lower_poke(*f, old, sizeof old, 0);
    return rt;
}

/* Which value each of the 8 sectors of [0, 4096) holds: the common byte,
 * or -1 if a sector is mixed (never allowed). */
static void sectors(struct blkv_lower *f, int v[8])
{
    unsigned char b[4096];
    blkv_lower_peek(f, b, sizeof b, 0);
    for (int s = 0; s < 8; s++) {
        v[s] = b[s * 512];
        for (int i = 1; i < 512; i++)
            if (b[s * 512 + i] != b[s * 512])
                v[s] = -1;
    }
}

/* Write 4 KiB of byte x (and wait for it), then optionally flush. */
static void write_all(struct blkv_rt *rt, struct blkv_lower *f, unsigned char x, bool flush)
{
    static unsigned char buf[4096];
    struct job w = {.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf, .off = 0};
    struct job fl = {.f = f, .kind = J_FLUSH};
    memset(buf, x, sizeof buf);
    blkv_rt_spawn(rt, job_fn, &w, NULL);
    drain(rt);
    CHECK(w.done && w.ret == 0);
    if (flush) {
        blkv_rt_spawn(rt, job_fn, &fl, NULL);
        drain(rt);
        CHECK(fl.done && fl.ret == 0);
    }
}

/* A completed and flushed write survives every crash; the memory for what
 * is not durable is given back at the flush. */
static void test_crash_flushed(void)
{
    for (uint64_t seed = 0; seed < 40; seed++) {
        struct blkv_lower *f;
        struct blkv_rt *rt = dur_rt(&f);
        int v[8];
        write_all(rt, f, 0x22, false);
        CHECK(blkv_rt_volatile_bytes(rt) > 0);
        write_all(rt, f, 0x33, true);
        CHECK(blkv_rt_volatile_bytes(rt) == 0);
        blkv_rt_crash(rt, seed);
        sectors(f, v);
        for (int s = 0; s < 8; s++)
            CHECK(v[s] == 0x33);
        blkv_rt_free(rt);
    }
}

/* Completed but unflushed writes may or may not survive, per sector, as
 * any of the sector's versions since the durable point, never a mix. */
static void test_crash_unflushed(void)
{
    bool seen[3] = {false, false, false}, mixed_sectors = false;

    for (uint64_t seed = 0; seed < 64; seed++) {
        struct blkv_lower *f;
        struct blkv_rt *rt = dur_rt(&f);
        int v[8];
        write_all(rt, f, 0x22, false);
        write_all(rt, f, 0x33, false);
        blkv_rt_crash(rt, seed);
        sectors(f, v);
        for (int s = 0; s < 8; s++) {
            CHECK(v[s] == 0x11 || v[s] == 0x22 || v[s] == 0x33);
            seen[0] |= v[s] == 0x11, seen[1] |= v[s] == 0x22, seen[2] |= v[s] == 0x33;
            mixed_sectors |= v[s] != v[0];
        }
        /* after the crash everything it holds is durable */
        CHECK(blkv_rt_volatile_bytes(rt) == 0);
        blkv_rt_crash(rt, seed + 1000);
        {
            int w[8];
            sectors(f, w);
            CHECK(memcmp(v, w, sizeof v) == 0);
        }
        blkv_rt_free(rt);
    }
    CHECK(seen[0] && seen[1] && seen[2]);
    CHECK(mixed_sectors);
}

/* A write still in flight at the crash may land or not, per sector; with
 * the power off it fails with -EIO (as no fault), its coroutine ends, and
 * nothing is pending after. */
static void test_crash_pending(void)
{
    bool landed = false, not_landed = false;

    for (uint64_t seed = 0; seed < 32; seed++) {
        struct blkv_lower *f;
        struct blkv_rt *rt = dur_rt(&f);
        unsigned char buf[1024];
        struct job w = {.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf, .off = 512};
        int v[8];
        memset(buf, 0x44, sizeof buf);
        blkv_rt_spawn(rt, job_fn, &w, NULL);
        CHECK(blkv_rt_pending(rt) == 1 && blkv_rt_live(rt) == 1);
        blkv_rt_crash(rt, seed);
        CHECK(w.done && w.ret == -EIO && blkv_rt_faults(rt) == 0);
        CHECK(blkv_rt_pending(rt) == 0 && blkv_rt_live(rt) == 0);
        CHECK(!blkv_rt_progress(rt));
        sectors(f, v);
        for (int s = 0; s < 8; s++)
            CHECK(v[s] == ((s == 1 || s == 2) && v[s] == 0x44 ? 0x44 : 0x11));
        landed |= v[1] == 0x44 || v[2] == 0x44;
        not_landed |= v[1] == 0x11 || v[2] == 0x11;
        blkv_rt_free(rt);
    }
    CHECK(landed && not_landed);
}

/* A driver's coroutine caught by a crash: its write fails, its error path
 * writes elsewhere and flushes, then frees what it held. */
struct unwinder {
    struct blkv_lower *f;
    int first, second, flushed;
    bool done;
};

static void unwinder_fn(void *arg)
{
    struct unwinder *u = arg;
    unsigned char *held = malloc(4096);
    memset(held, 0x55, 4096);
    u->first = blkv_lower_pwrite(u->f, held, 1024, 1024);
    if (u->first < 0) {
        memset(held, 0x66, 4096);
        u->second = blkv_lower_pwrite(u->f, held, 512, 0);
        u->flushed = blkv_lower_flush(u->f);
    }
    free(held);
    u->done = true;
}

struct sleeper {
    struct blkv_co_queue never; /* nobody wakes it */
    bool woke;
};

static void sleeper_fn(void *arg)
{
    struct sleeper *z = arg;
    blkv_co_queue_wait(&z->never);
    z->woke = true;
}

/* With the power off, coroutines run to their end (what they hold is
 * freed, AddressSanitizer's leak check would say otherwise), and nothing
 * they write lands; one waiting for what never comes is dropped. */
static void test_crash_unwinds(void)
{
    for (uint64_t seed = 0; seed < 16; seed++) {
        struct blkv_lower *f;
        struct blkv_rt *rt = dur_rt(&f);
        struct unwinder u = {.f = NULL};
        struct sleeper z = {.woke = false};
        int v[8];

        u.f = f;
        blkv_rt_spawn(rt, unwinder_fn, &u, NULL);
        blkv_rt_spawn(rt, sleeper_fn, &z, NULL);
        CHECK(blkv_rt_pending(rt) == 1 && blkv_rt_live(rt) == 2);
        blkv_rt_crash(rt, seed);
        CHECK(u.done && u.first == -EIO && u.second == -EIO && u.flushed == -EIO);
        CHECK(!z.woke && blkv_rt_live(rt) == 0 && blkv_rt_pending(rt) == 0);
        CHECK(blkv_rt_faults(rt) == 0);
        sectors(f, v);
        CHECK(v[0] == 0x11); /* the error path's write never happened */
        for (int s = 2; s < 4; s++)
            CHECK(v[s] == 0x11 || v[s] == 0x55);
        /* the power is back: I/O works again */
        write_all(rt, f, 0x77, true);
        sectors(f, v);
        CHECK(v[0] == 0x77);
        blkv_rt_free(rt);
    }
}

/* A flush covers only the writes that completed before it was issued, and
 * a failed flush covers none. */
static void test_crash_flush_order(void)
{
    bool lost_late = false, lost_failed = false;

    for (uint64_t seed = 0; seed < 32; seed++) {
        struct blkv_lower *f;
        struct blkv_rt *rt = dur_rt(&f);
        unsigned char buf[4096];
        struct job w = {.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf, .off = 0};
        struct job fl = {.f = f, .kind = J_FLUSH};
        int v[8];

        memset(buf, 0x55, sizeof buf);
        blkv_rt_spawn(rt, job_fn, &w, NULL);
        blkv_rt_spawn(rt, job_fn, &fl, NULL); /* issued while the write is in flight */
        drain(rt);                            /* FIFO: the write, then the flush */
        CHECK(w.ret == 0 && fl.ret == 0);
        blkv_rt_crash(rt, seed);
        sectors(f, v);
        lost_late |= v[0] == 0x11;
        blkv_rt_free(rt);

        rt = dur_rt(&f);
        write_all(rt, f, 0x66, false);
        memset(&fl, 0, sizeof fl);
        fl.f = f, fl.kind = J_FLUSH;
        blkv_rt_spawn(rt, job_fn, &fl, NULL);
        CHECK(blkv_rt_step(rt, 0, EIO) && fl.ret == -EIO);
        blkv_rt_crash(rt, seed);
        sectors(f, v);
        lost_failed |= v[0] == 0x11;
        blkv_rt_free(rt);
    }
    CHECK(lost_late && lost_failed);
}

/* Without durability a crash keeps what the files hold, and still fails
 * every pending I/O and ends every coroutine. */
static void test_crash_untracked(void)
{
    struct blkv_rt *rt = blkv_rt_new(BLKV_RT_FIFO, 0, 0);
    struct blkv_lower *f = blkv_rt_lower(rt, 0);
    unsigned char buf[4096];
    struct job w = {.f = f, .kind = J_WRITE, .buf = buf, .len = sizeof buf, .off = 0};
    struct job w2 = w;
    int v[8];

    memset(buf, 0x77, sizeof buf);
    blkv_rt_spawn(rt, job_fn, &w, NULL);
    drain(rt);
    blkv_rt_spawn(rt, job_fn, &w2, NULL);
    blkv_rt_crash(rt, 1);
    CHECK(blkv_rt_volatile_bytes(rt) == 0 && blkv_rt_pending(rt) == 0);
    CHECK(w2.done && w2.ret == -EIO && blkv_rt_live(rt) == 0);
    sectors(f, v);
    CHECK(v[0] == 0x77 && v[7] == 0x77);
    blkv_rt_free(rt);
}

int main(void)
{
    RUN(test_reuse);
    RUN(test_orders);
    RUN(test_step);
    RUN(test_fault);
    RUN(test_cancel);
    RUN(test_cancel_then_io);
    RUN(test_mutex);
    RUN(test_queue);
    RUN(test_deadlock);
    RUN(test_yield);
    RUN(test_nested_spawn);
    RUN(test_spawn_storm);
    RUN(test_pool_follows_use);
    RUN(test_sparse);
    RUN(test_zero_len);
    RUN(test_truncate);
    RUN(test_zeroes);
    RUN(test_load_save);
    RUN(test_scale);
    RUN(test_many_in_one);
    RUN(test_misuse);
    RUN(test_crash_flushed);
    RUN(test_crash_unflushed);
    RUN(test_crash_pending);
    RUN(test_crash_unwinds);
    RUN(test_crash_flush_order);
    RUN(test_crash_untracked);
    T_EXIT();
}
