/*
 * runtime.c - coroutines, in-memory lower files and the deterministic
 * scheduler (see runtime.h for the core's view, blkv.h for the drivers').
 *
 * Coroutines.  A coroutine runs on a pooled "fiber": a 256 KiB mmap'd stack
 * with a guard page, entered once with makecontext/setcontext at creation
 * and parked in a trampoline that loops over jobs.  Every later switch is a
 * sigsetjmp/siglongjmp pair (no signal-mask system calls), the way QEMU's
 * coroutine-ucontext works, so a fuzzer that runs millions of short programs
 * maps and makes contexts only while the pool warms up.  Switches always go
 * main -> coroutine -> main; coroutines never switch to each other.
 *
 * Handles (struct blkv_co) belong to the runtime that spawned them and stay
 * valid until blkv_rt_free(), so the core may keep a pointer to a finished
 * coroutine (blkv_rt_cancel on it does nothing).  Only the fiber under a
 * handle is recycled when the coroutine returns.
 *
 * Lower files are sparse hash tables of 4 KiB pages.  Each blkv_lower_* I/O
 * registers a pending I/O (kept on the blocked coroutine's stack) and yields;
 * the data moves when main completes it with blkv_rt_step/blkv_rt_progress.
 */

/* glibc's fortified longjmp refuses to jump between stacks. */
#ifdef _FORTIFY_SOURCE
#undef _FORTIFY_SOURCE
#endif

#include "runtime.h"
#include "program.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef BLKV_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 34) /* dlopen is in libc itself */
#include <dlfcn.h>
#define BLKV_ASAN_REAL_LONGJMP 1
#endif
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BLKV_VALGRIND 1
#endif
#endif

#define CO_STACK_SIZE (256u * 1024)
#define FIBER_POOL_MAX 512 /* idle fibers kept for reuse; more are unmapped */
#define CO_SLAB_SIZE 64
#define LOWER_PAGE 4096u
#define LOWER_MAX_SIZE (UINT64_C(1) << 62) /* largest lower-file offset */

/* ---- types ---------------------------------------------------------------- */

/* A stack and the parked trampoline running on it; reused across runs. */
struct fiber {
    struct fiber *next_free;
    void *map;         /* the whole mapping, guard page first */
    size_t map_size;
    void *stack;       /* usable stack: [stack, stack + size) */
    size_t size;
    sigjmp_buf env;    /* where the fiber resumes */
    void *fake_stack;  /* ASan fake stack saved while switched out */
    unsigned vg_id;    /* valgrind stack id */
    bool parked;       /* its trampoline is running (fiber_start succeeded) */
    bool killed;       /* on resume: leave for good (see fiber_kill) */
    struct blkv_co *co; /* the job it runs */
};

enum co_state {
    CO_READY,   /* in the ready queue (or about to be entered) */
    CO_RUNNING,
    CO_IO,      /* blocked on a pending lower I/O */
    CO_WAIT,    /* blocked on a mutex or queue */
    CO_DONE,
};

struct blkv_co_waiter {
    struct blkv_co_waiter *next;
    struct blkv_co *co;
};

enum io_kind { IO_READ, IO_WRITE, IO_FLUSH, IO_TRUNCATE };

/* A pending lower I/O; lives on the stack of the coroutine that waits for it. */
struct lower_io {
    enum io_kind kind;
    struct blkv_lower *f;
    void *rbuf;
    const void *wbuf;
    uint64_t len, off; /* truncate: off is the new size */
    struct blkv_co *co;
    int ret;
};

struct blkv_co {
    struct blkv_rt *rt;
    struct fiber *fiber; /* NULL once done */
    blkv_co_fn fn;
    void *arg;
    struct blkv_req *req;
    struct lower_io *io;  /* while CO_IO */
    struct blkv_co *next; /* ready / yielded queue link */
    struct blkv_co_waiter waiter;
    enum co_state state;
    bool cancelled;
    bool yielded; /* its last slice ended in blkv_co_yield */
    bool started; /* entered at least once */
};

struct co_slab {
    struct co_slab *next;
    unsigned used;
    struct blkv_co co[CO_SLAB_SIZE];
};

struct lower_page {
    struct lower_page *next;
    uint64_t pgno;
    unsigned char data[LOWER_PAGE];
};

/* Pages come from chunks (one malloc for PAGE_CHUNK pages), and freed pages
 * go to a free list: a large write is one lookup per page, not one malloc. */
#define PAGE_CHUNK 15 /* a chunk stays under ASan's 128 KiB primary size classes */
struct page_chunk {
    struct page_chunk *next;
    unsigned used;
    struct lower_page pages[PAGE_CHUNK];
};

struct blkv_lower {
    struct blkv_rt *rt;
    uint64_t size;
    struct lower_page **buckets;
    size_t nbuckets; /* power of two, or 0 */
    size_t npages;
    struct page_chunk *chunks;
    struct lower_page *free_pages;
};

struct co_list {
    struct blkv_co *head, *tail;
};

struct blkv_rt {
    unsigned sched;
    struct blkv_rng rng;
    uint64_t lower_cap;
    uint64_t lower_held; /* bytes of pages held by both lower files */
    struct blkv_lower *lower[2];
    struct lower_io **pending; /* issue order */
    size_t npending, pending_cap;
    struct co_list ready;
    struct co_list yielded; /* yielded during a pass; ready after it */
    bool in_pass;
    size_t pass_progress; /* slices in this pass that did not just yield */
    uint64_t faults;
    size_t live;
    struct co_slab *slabs;
};

/* ---- process-wide state (single thread) ------------------------------------ */

static struct blkv_co *co_current; /* NULL in main */
static sigjmp_buf main_env;
static void *main_fake_stack;
static const void *main_stack_bottom;
static size_t main_stack_size;
static sigjmp_buf *fiber_start_env; /* the creator, while a fiber starts */
static struct fiber *fiber_pool;
static size_t fiber_pool_len;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Print a programming error and abort. */
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("blkv runtime: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* The current coroutine; abort if called from main. */
static struct blkv_co *need_co(const char *fn)
{
    if (!co_current)
        die("%s() called outside a coroutine", fn);
    return co_current;
}

/* Abort if called from a coroutine. */
static void need_main(const char *fn)
{
    if (co_current)
        die("%s() called from a coroutine; it is for the core's main loop", fn);
}

/* ---- context switching ----------------------------------------------------- */

static inline void asan_start(void **fake, const void *bottom, size_t size)
{
#ifdef BLKV_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

static inline void asan_finish(void *fake, const void **bottom_old, size_t *size_old)
{
#ifdef BLKV_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
#else
    (void)fake, (void)bottom_old, (void)size_old;
#endif
}

#ifdef BLKV_ASAN_REAL_LONGJMP
/*
 * ASan intercepts siglongjmp (and instruments calls to noreturn functions)
 * to unpoison the frames a longjmp discards: all of the stack from the
 * jumper's frame up.  A switch discards nothing, though: the coroutine's
 * frames resume later, and unpoisoning them would hide overflows of their
 * locals.  So switch with libc's own siglongjmp, through a pointer that is
 * not declared noreturn.  Stacks that are really abandoned are unpoisoned
 * by hand (fiber_start, fiber_destroy).
 */
typedef void (*longjmp_fn)(sigjmp_buf, int);

static longjmp_fn real_siglongjmp(void)
{
    static longjmp_fn fn;
    if (!fn) {
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        void *sym = libc ? dlsym(libc, "siglongjmp") : NULL;
        memcpy(&fn, &sym, sizeof(fn));
        if (!fn)
            fn = siglongjmp;
    }
    return fn;
}

#define switch_longjmp(env) (real_siglongjmp()((env), 1))
#else
#define switch_longjmp(env) siglongjmp((env), 1)
#endif

/* Save the current context in `save` and jump to `to`, whose stack is
 * [bottom, bottom + size).  Returns when something jumps back to `save`. */
static void ctx_switch(sigjmp_buf save, void **fake, sigjmp_buf to, const void *bottom,
                       size_t size, const void **from_bottom, size_t *from_size)
{
    if (!sigsetjmp(save, 0)) {
        asan_start(fake, bottom, size);
        switch_longjmp(to);
    }
    asan_finish(*fake, from_bottom, from_size);
}

static void fiber_exit(struct fiber *fb) __attribute__((noreturn));

/* From a coroutine: back to main. */
static void co_switch_out(struct fiber *fb)
{
    ctx_switch(fb->env, &fb->fake_stack, main_env, main_stack_bottom, main_stack_size,
               &main_stack_bottom, &main_stack_size);
    if (fb->killed)
        fiber_exit(fb);
}

/* On a killed fiber: jump back to main for good.  Passing no save slot
 * makes ASan free this fiber's fake stack. */
static void fiber_exit(struct fiber *fb)
{
    (void)fb;
    asan_start(NULL, main_stack_bottom, main_stack_size);
    siglongjmp(main_env, 1);
}

/* The fiber's job loop: run a coroutine function, go back to main, wait for
 * the next job.  Never returns. */
static void fiber_loop(struct fiber *fb) __attribute__((noreturn));
static void fiber_loop(struct fiber *fb)
{
    for (;;) {
        struct blkv_co *co = fb->co;
        co->fn(co->arg);
        co->state = CO_DONE;
        co->rt->live--;
        co_switch_out(fb); /* main puts the fiber back in the pool */
    }
}

/* First code on a new fiber: park (back to its creator), then loop over jobs;
 * jobs are always entered from main. */
static void fiber_trampoline(unsigned lo, unsigned hi)
{
    struct fiber *fb = (struct fiber *)(uintptr_t)(((uint64_t)hi << 32) | lo);
    const void *creator_bottom = NULL;
    size_t creator_size = 0;

    /* The creator is main or, for a spawn from a coroutine, that coroutine. */
    asan_finish(NULL, &creator_bottom, &creator_size);
    if (!sigsetjmp(fb->env, 0)) {
        asan_start(&fb->fake_stack, creator_bottom, creator_size);
        switch_longjmp(*fiber_start_env);
    }
    asan_finish(fb->fake_stack, &main_stack_bottom, &main_stack_size);
    if (fb->killed)
        fiber_exit(fb);
    fiber_loop(fb);
}

/* (Re)start the trampoline on fb's stack and let it park; 0 or -errno. */
static int fiber_start(struct fiber *fb)
{
    ucontext_t uc;
    sigjmp_buf env;
    void *fake = NULL;
    uint64_t p = (uintptr_t)fb;

#ifdef BLKV_ASAN
    /* A reset fiber may hold poisoned frames of an abandoned coroutine. */
    ASAN_UNPOISON_MEMORY_REGION(fb->stack, fb->size);
#endif
    if (getcontext(&uc) < 0)
        return -errno;
    uc.uc_link = NULL;
    uc.uc_stack.ss_sp = fb->stack;
    uc.uc_stack.ss_size = fb->size;
    uc.uc_stack.ss_flags = 0;
    makecontext(&uc, (void (*)(void))fiber_trampoline, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
    fiber_start_env = &env;
    if (!sigsetjmp(env, 0)) {
        asan_start(&fake, fb->stack, fb->size);
        /* setcontext, not swapcontext: the trampoline comes back with
         * siglongjmp, and ASan warns about (and intercepts) swapcontext. */
        setcontext(&uc);
        die("setcontext failed");
    }
    asan_finish(fake, NULL, NULL);
    fiber_start_env = NULL;
    fb->parked = true;
    fb->killed = false;
    return 0;
}

/* From main: make a parked fiber (idle, or holding an abandoned coroutine)
 * leave its stack for good, so that the stack can be restarted or unmapped
 * without leaking its sanitizer state. */
static void fiber_kill(struct fiber *fb)
{
    if (!fb->parked)
        return;
    fb->killed = true;
    ctx_switch(main_env, &main_fake_stack, fb->env, fb->stack, fb->size, NULL, NULL);
    fb->parked = false;
    fb->fake_stack = NULL;
}

/* Unmap a fiber. */
static void fiber_destroy(struct fiber *fb)
{
    fiber_kill(fb);
#ifdef BLKV_VALGRIND
    VALGRIND_STACK_DEREGISTER(fb->vg_id);
#endif
#ifdef BLKV_ASAN
    ASAN_UNPOISON_MEMORY_REGION(fb->stack, fb->size);
#endif
    munmap(fb->map, fb->map_size);
    free(fb);
}

/* A parked fiber: from the pool, else a new mapping.  NULL on failure. */
static struct fiber *fiber_get(void)
{
    struct fiber *fb = fiber_pool;
    long pg = sysconf(_SC_PAGESIZE);
    size_t guard = pg > 0 ? (size_t)pg : 4096;

    if (fb) {
        fiber_pool = fb->next_free;
        fiber_pool_len--;
        fb->next_free = NULL;
        return fb;
    }
    fb = calloc(1, sizeof(*fb));
    if (!fb)
        return NULL;
    fb->map_size = CO_STACK_SIZE + guard;
    fb->map = mmap(NULL, fb->map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (fb->map == MAP_FAILED) {
        free(fb);
        return NULL;
    }
    /* Stacks grow down: the guard page is the lowest one. */
    if (mprotect(fb->map, guard, PROT_NONE) < 0) {
        munmap(fb->map, fb->map_size);
        free(fb);
        return NULL;
    }
    fb->stack = (char *)fb->map + guard;
    fb->size = CO_STACK_SIZE;
#ifdef BLKV_VALGRIND
    fb->vg_id = VALGRIND_STACK_REGISTER(fb->stack, (char *)fb->stack + fb->size);
#endif
    if (fiber_start(fb) < 0) {
        fiber_destroy(fb);
        return NULL;
    }
    return fb;
}

/* Return a parked fiber to the pool (or unmap it when the pool is full). */
static void fiber_put(struct fiber *fb)
{
    fb->co = NULL;
    if (fiber_pool_len >= FIBER_POOL_MAX) {
        fiber_destroy(fb);
        return;
    }
    fb->next_free = fiber_pool;
    fiber_pool = fb;
    fiber_pool_len++;
}

/* A fiber whose coroutine will never resume: restart its trampoline and
 * pool it (unmap it if that fails). */
static void fiber_abandon(struct fiber *fb)
{
    fb->co = NULL;
    fiber_kill(fb);
    if (fiber_start(fb) < 0) {
        fiber_destroy(fb);
        return;
    }
    fiber_put(fb);
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
    struct fiber *fb = co->fiber;

    co->state = CO_RUNNING;
    co->yielded = false;
    co->started = true;
    co_current = co;
    ctx_switch(main_env, &main_fake_stack, fb->env, fb->stack, fb->size, NULL, NULL);
    co_current = NULL;
    if (co->state == CO_DONE) {
        co->fiber = NULL;
        fiber_put(fb);
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

struct blkv_rt *blkv_rt_new(unsigned sched, uint64_t seed, uint64_t lower_cap)
{
    struct blkv_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->sched = sched;
    blkv_rng_seed(&rt->rng, seed);
    rt->lower_cap = lower_cap ? lower_cap : BLKV_LOWER_DEFAULT_CAP;
    return rt;
}

static void lower_free(struct blkv_lower *f);

void blkv_rt_free(struct blkv_rt *rt)
{
    struct co_slab *s, *next;

    if (!rt)
        return;
    need_main("blkv_rt_free");
    for (s = rt->slabs; s; s = next) {
        next = s->next;
        for (unsigned i = 0; i < s->used; i++) {
            struct blkv_co *co = &s->co[i];
            if (!co->fiber)
                continue;
            /* a fiber that never ran its job is still parked cleanly */
            if (co->started)
                fiber_abandon(co->fiber);
            else
                fiber_put(co->fiber);
        }
        free(s);
    }
    for (unsigned i = 0; i < 2; i++)
        lower_free(rt->lower[i]);
    free(rt->pending);
    free(rt);
}

struct blkv_co *blkv_rt_spawn(struct blkv_rt *rt, blkv_co_fn fn, void *arg, struct blkv_req *req)
{
    struct blkv_co *co;
    struct fiber *fb;

    if (!rt->slabs || rt->slabs->used == CO_SLAB_SIZE) {
        struct co_slab *s = malloc(sizeof(*s));
        if (!s)
            return NULL;
        s->used = 0;
        s->next = rt->slabs;
        rt->slabs = s;
    }
    fb = fiber_get();
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
    fb->co = co;
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

static int io_transfer(struct lower_io *io);

/* Complete pending I/O i (failing it with err, a positive errno, if nonzero),
 * resume its coroutine, then run what is ready. */
static void rt_complete(struct blkv_rt *rt, size_t i, int err)
{
    struct lower_io *io = rt->pending[i];
    struct blkv_co *co = io->co;

    pending_remove(rt, i);
    if (err) {
        io->ret = err > 0 ? -err : err;
        rt->faults++;
    } else {
        io->ret = io_transfer(io);
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
    case BLKV_SCHED_FIFO:
        i = 0;
        break;
    case BLKV_SCHED_LIFO:
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
    return need_co("blkv_co_cancelled")->cancelled;
}

void blkv_co_yield(void)
{
    struct blkv_co *co = need_co("blkv_co_yield");

    co->state = CO_READY;
    co->yielded = true;
    list_push(&co->rt->yielded, co);
    co_switch_out(co->fiber);
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
    co_switch_out(co->fiber);
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
    struct blkv_co *co = need_co("blkv_co_mutex_lock");

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
        die("blkv_co_mutex_unlock() of a mutex that is not locked");
    next = waiter_pop(&m->head, &m->tail);
    if (next)
        co_make_ready(next); /* stays locked: owned by next */
    else
        m->locked = false;
}

void blkv_co_queue_wait(struct blkv_co_queue *q)
{
    co_wait_on(need_co("blkv_co_queue_wait"), &q->head, &q->tail);
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

/* ---- sparse page store ----------------------------------------------------- */

static size_t page_hash(const struct blkv_lower *f, uint64_t pgno)
{
    return (size_t)((pgno * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (f->nbuckets - 1);
}

static struct lower_page *page_find(const struct blkv_lower *f, uint64_t pgno)
{
    struct lower_page *p;
    if (!f->nbuckets)
        return NULL;
    for (p = f->buckets[page_hash(f, pgno)]; p; p = p->next)
        if (p->pgno == pgno)
            return p;
    return NULL;
}

/* Double the bucket array; false on ENOMEM (the table still works). */
static bool page_grow(struct blkv_lower *f)
{
    size_t n = f->nbuckets ? f->nbuckets * 2 : 64;
    struct lower_page **nb = calloc(n, sizeof(*nb));
    struct lower_page **old = f->buckets;
    size_t oldn = f->nbuckets;

    if (!nb)
        return false;
    f->buckets = nb;
    f->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        struct lower_page *p = old[i], *next;
        for (; p; p = next) {
            size_t h = page_hash(f, p->pgno);
            next = p->next;
            p->next = nb[h];
            nb[h] = p;
        }
    }
    free(old);
    return true;
}

/* Chunks of dropped lower files, kept for the next run's: fresh memory
 * costs a page fault per page (and under ASan, which holds freed memory in
 * quarantine, every allocation is fresh).  Per thread, bounded. */
#define CHUNK_CACHE_MAX ((64u << 20) / sizeof(struct page_chunk))
static _Thread_local struct page_chunk *chunk_cache;
static _Thread_local size_t chunk_cache_n;

static struct page_chunk *chunk_new(void)
{
    struct page_chunk *c = chunk_cache;
    if (c) {
        chunk_cache = c->next;
        chunk_cache_n--;
    } else if (!(c = malloc(sizeof(*c)))) {
        return NULL;
    }
    c->used = 0;
    return c;
}

static void chunk_drop(struct page_chunk *c)
{
    if (chunk_cache_n >= CHUNK_CACHE_MAX) {
        free(c);
        return;
    }
    c->next = chunk_cache;
    chunk_cache = c;
    chunk_cache_n++;
}

/* Return a page to the free list. */
static void page_release(struct blkv_lower *f, struct lower_page *p)
{
    p->next = f->free_pages;
    f->free_pages = p;
}

/* A new page, zeroed unless the caller overwrites all of it; NULL on ENOMEM. */
static struct lower_page *page_add(struct blkv_lower *f, uint64_t pgno, bool zero)
{
    struct lower_page *p;
    size_t h;

    if (f->npages >= f->nbuckets && !page_grow(f) && !f->nbuckets)
        return NULL;
    if (f->free_pages) {
        p = f->free_pages;
        f->free_pages = p->next;
    } else {
        struct page_chunk *c = f->chunks;
        if (!c || c->used == PAGE_CHUNK) {
            if (!(c = chunk_new()))
                return NULL;
            c->next = f->chunks;
            f->chunks = c;
        }
        p = &c->pages[c->used++];
    }
    if (zero)
        memset(p->data, 0, LOWER_PAGE);
    p->pgno = pgno;
    h = page_hash(f, pgno);
    p->next = f->buckets[h];
    f->buckets[h] = p;
    f->npages++;
    f->rt->lower_held += LOWER_PAGE;
    return p;
}

static void page_remove(struct blkv_lower *f, uint64_t pgno)
{
    struct lower_page **pp;
    if (!f->nbuckets)
        return;
    for (pp = &f->buckets[page_hash(f, pgno)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->pgno == pgno) {
            struct lower_page *p = *pp;
            *pp = p->next;
            page_release(f, p);
            f->npages--;
            f->rt->lower_held -= LOWER_PAGE;
            return;
        }
    }
}

/* Drop every page, keeping the size. */
static void store_clear(struct blkv_lower *f)
{
    while (f->chunks) {
        struct page_chunk *c = f->chunks;
        f->chunks = c->next;
        chunk_drop(c);
    }
    f->free_pages = NULL;
    f->rt->lower_held -= (uint64_t)f->npages * LOWER_PAGE;
    free(f->buckets);
    f->buckets = NULL;
    f->nbuckets = 0;
    f->npages = 0;
}

static void lower_free(struct blkv_lower *f)
{
    if (!f)
        return;
    store_clear(f);
    free(f);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copy [off, off+len) out of the store; holes read as zeros. */
static void store_read(const struct blkv_lower *f, void *buf, uint64_t len, uint64_t off)
{
    unsigned char *b = buf;
    while (len) {
        uint64_t pgno = off / LOWER_PAGE;
        size_t in = (size_t)(off % LOWER_PAGE);
        size_t n = LOWER_PAGE - in < len ? LOWER_PAGE - in : (size_t)len;
        const struct lower_page *p = page_find(f, pgno);
        if (p)
            memcpy(b, p->data + in, n);
        else
            memset(b, 0, n);
        b += n;
        off += n;
        len -= n;
    }
}

/* Bytes of new pages a write of buf at off would allocate. */
static uint64_t store_write_cost(const struct blkv_lower *f, const void *buf, uint64_t len,
                                 uint64_t off)
{
    const unsigned char *b = buf;
    uint64_t cost = 0;
    while (len) {
        size_t in = (size_t)(off % LOWER_PAGE);
        size_t n = LOWER_PAGE - in < len ? LOWER_PAGE - in : (size_t)len;
        if (b && !page_find(f, off / LOWER_PAGE) && !all_zero(b, n))
            cost += LOWER_PAGE;
        if (b)
            b += n;
        off += n;
        len -= n;
    }
    return cost;
}

/* Whether a write of buf at off fits under the cap: at once when even one
 * new page per page spanned would, else by counting the new pages. */
static bool store_write_fits(const struct blkv_lower *f, const void *buf, uint64_t len,
                             uint64_t off)
{
    uint64_t span = (off + len + LOWER_PAGE - 1) / LOWER_PAGE - off / LOWER_PAGE;
    const struct blkv_rt *rt = f->rt;
    if (rt->lower_held <= rt->lower_cap && span <= (rt->lower_cap - rt->lower_held) / LOWER_PAGE)
        return true;
    return rt->lower_held + store_write_cost(f, buf, len, off) <= rt->lower_cap;
}

/* Write buf (NULL: zeros) at off, extending the size; zeros into holes
 * allocate nothing and whole pages of zeros are freed.  0 or -ENOMEM
 * (partly written). */
static int store_write(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    const unsigned char *b = buf;
    uint64_t end = off + len;

    while (len) {
        uint64_t pgno = off / LOWER_PAGE;
        size_t in = (size_t)(off % LOWER_PAGE);
        size_t n = LOWER_PAGE - in < len ? LOWER_PAGE - in : (size_t)len;
        struct lower_page *p = page_find(f, pgno);
        bool zero = !b || all_zero(b, n);

        if (zero && n == LOWER_PAGE) {
            if (p)
                page_remove(f, pgno);
        } else if (p || !zero) {
            if (!p && !(p = page_add(f, pgno, n < LOWER_PAGE)))
                return -ENOMEM;
            if (b)
                memcpy(p->data + in, b, n);
            else
                memset(p->data + in, 0, n);
        }
        if (b)
            b += n;
        off += n;
        len -= n;
    }
    if (end > f->size)
        f->size = end;
    return 0;
}

/* Set the size; shrinking drops the pages past the end and zeroes the tail
 * of the last one, so that growing again reads zeros. */
static void store_truncate(struct blkv_lower *f, uint64_t size)
{
    if (size < f->size) {
        uint64_t first = (size + LOWER_PAGE - 1) / LOWER_PAGE;
        struct lower_page *p;

        for (size_t i = 0; i < f->nbuckets; i++) {
            struct lower_page **pp = &f->buckets[i];
            while (*pp) {
                if ((*pp)->pgno >= first) {
                    p = *pp;
                    *pp = p->next;
                    page_release(f, p);
                    f->npages--;
                    f->rt->lower_held -= LOWER_PAGE;
                } else {
                    pp = &(*pp)->next;
                }
            }
        }
        if (size % LOWER_PAGE && (p = page_find(f, size / LOWER_PAGE)))
            memset(p->data + size % LOWER_PAGE, 0, LOWER_PAGE - size % LOWER_PAGE);
    }
    f->size = size;
}

/* Do the data transfer of a completed I/O; returns its result. */
static int io_transfer(struct lower_io *io)
{
    struct blkv_lower *f = io->f;

    switch (io->kind) {
    case IO_READ:
        store_read(f, io->rbuf, io->len, io->off);
        return 0;
    case IO_WRITE:
        if (!store_write_fits(f, io->wbuf, io->len, io->off))
            return -ENOSPC;
        return store_write(f, io->wbuf, io->len, io->off);
    case IO_FLUSH:
        return 0;
    case IO_TRUNCATE:
        store_truncate(f, io->off);
        return 0;
    }
    return -EINVAL;
}

/* ---- lower files ----------------------------------------------------------- */

struct blkv_lower *blkv_rt_lower(struct blkv_rt *rt, unsigned idx)
{
    if (idx > 1)
        return NULL;
    if (!rt->lower[idx]) {
        struct blkv_lower *f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->rt = rt;
        rt->lower[idx] = f;
    }
    return rt->lower[idx];
}

/* Register io as pending, block until main completes (or withdraws) it. */
static int lower_submit(const char *fn, struct lower_io *io)
{
    struct blkv_co *co = need_co(fn);
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
    rt->pending[rt->npending++] = io;
    co->io = io;
    co->state = CO_IO;
    co_switch_out(co->fiber);
    return io->ret;
}

/* Common argument checks of a data I/O: 0, or -EINVAL. */
static int lower_check(const struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    if (!f || (len && !buf) || len > SIZE_MAX || off + len < off)
        return -EINVAL;
    return 0;
}

int blkv_lower_pread(struct blkv_lower *f, void *buf, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_READ, .f = f, .rbuf = buf, .len = len, .off = off};
    int ret;

    need_co("blkv_lower_pread");
    if ((ret = lower_check(f, buf, len, off)) < 0)
        return ret;
    if (!len)
        return 0;
    return lower_submit("blkv_lower_pread", &io);
}

int blkv_lower_pwrite(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_WRITE, .f = f, .wbuf = buf, .len = len, .off = off};
    int ret;

    need_co("blkv_lower_pwrite");
    if ((ret = lower_check(f, buf, len, off)) < 0)
        return ret;
    if (off + len > LOWER_MAX_SIZE)
        return -EFBIG;
    if (!len)
        return 0;
    return lower_submit("blkv_lower_pwrite", &io);
}

int blkv_lower_pwrite_zeroes(struct blkv_lower *f, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_WRITE, .f = f, .wbuf = NULL, .len = len, .off = off};

    need_co("blkv_lower_pwrite_zeroes");
    if (!f || off + len < off)
        return -EINVAL;
    if (off + len > LOWER_MAX_SIZE)
        return -EFBIG;
    if (!len)
        return 0;
    return lower_submit("blkv_lower_pwrite_zeroes", &io);
}

int blkv_lower_flush(struct blkv_lower *f)
{
    struct lower_io io = {.kind = IO_FLUSH, .f = f};

    need_co("blkv_lower_flush");
    if (!f)
        return -EINVAL;
    return lower_submit("blkv_lower_flush", &io);
}

int blkv_lower_truncate(struct blkv_lower *f, uint64_t size)
{
    struct lower_io io = {.kind = IO_TRUNCATE, .f = f, .off = size};

    need_co("blkv_lower_truncate");
    if (!f)
        return -EINVAL;
    if (size > LOWER_MAX_SIZE)
        return -EFBIG;
    return lower_submit("blkv_lower_truncate", &io);
}

uint64_t blkv_lower_size(const struct blkv_lower *f)
{
    return f ? f->size : 0;
}

/* The first offset in [off, end) on a page that exists (data) or not; end
 * if none.  Pages past the size do not exist.  Requires off < end. */
static uint64_t store_seek(const struct blkv_lower *f, uint64_t off, uint64_t end, bool data)
{
    uint64_t stop = end < f->size ? end : f->size;
    for (uint64_t pos = off; pos < stop; pos = (pos / LOWER_PAGE + 1) * LOWER_PAGE)
        if ((page_find(f, pos / LOWER_PAGE) != NULL) == data)
            return pos;
    return data ? end : off > stop ? off : stop;
}

uint64_t blkv_lower_next_data(const struct blkv_lower *f, uint64_t off, uint64_t end)
{
    return f && off < end ? store_seek(f, off, end, true) : end;
}

uint64_t blkv_lower_next_hole(const struct blkv_lower *f, uint64_t off, uint64_t end)
{
    return f && off < end ? store_seek(f, off, end, false) : end;
}

void blkv_lower_peek(const struct blkv_lower *f, void *buf, uint64_t len, uint64_t off)
{
    if (lower_check(f, buf, len, off) < 0)
        die("blkv_lower_peek(): bad arguments (len %llu, off %llu)", (unsigned long long)len,
            (unsigned long long)off);
    store_read(f, buf, len, off);
}

void blkv_lower_poke(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    if (lower_check(f, buf, len, off) < 0 || off + len > LOWER_MAX_SIZE)
        die("blkv_lower_poke(): bad arguments (len %llu, off %llu)", (unsigned long long)len,
            (unsigned long long)off);
    if (store_write(f, buf, len, off) < 0)
        die("blkv_lower_poke(): out of memory");
}

/* ---- host files ------------------------------------------------------------ */

int blkv_rt_lower_load(struct blkv_rt *rt, unsigned idx, const char *path)
{
    struct blkv_lower *f = blkv_rt_lower(rt, idx);
    unsigned char *buf;
    struct stat st;
    uint64_t off = 0;
    int fd, ret = 0;

    if (!f)
        return idx > 1 ? -EINVAL : -ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    if ((uint64_t)st.st_size > LOWER_MAX_SIZE) {
        close(fd);
        return -EFBIG;
    }
    buf = malloc(LOWER_PAGE);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    store_clear(f);
    f->size = 0;
    while (off < (uint64_t)st.st_size) {
        ssize_t n;
#ifdef SEEK_DATA
        /* skip holes of sparse host files */
        off_t data = lseek(fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;
        if (data >= 0 && (uint64_t)data > off)
            off = (uint64_t)data / LOWER_PAGE * LOWER_PAGE;
#endif
        n = pread(fd, buf, LOWER_PAGE, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        if (!store_write_fits(f, buf, (uint64_t)n, off)) {
            ret = -ENOSPC;
            break;
        }
        if ((ret = store_write(f, buf, (uint64_t)n, off)) < 0)
            break;
        off += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (ret < 0) {
        store_clear(f);
        f->size = 0;
        return ret;
    }
    f->size = (uint64_t)st.st_size;
    return 0;
}

/* Write all of buf at off; 0 or -errno. */
static int write_all(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int blkv_rt_lower_save(struct blkv_rt *rt, unsigned idx, const char *path)
{
    struct blkv_lower *f = blkv_rt_lower(rt, idx);
    int fd, ret = 0;

    if (!f)
        return idx > 1 ? -EINVAL : -ENOMEM;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    for (size_t i = 0; i < f->nbuckets && !ret; i++) {
        for (const struct lower_page *p = f->buckets[i]; p && !ret; p = p->next) {
            uint64_t off = p->pgno * LOWER_PAGE;
            size_t n = LOWER_PAGE;
            if (off >= f->size)
                continue;
            if (f->size - off < n)
                n = (size_t)(f->size - off);
            ret = write_all(fd, p->data, n, off);
        }
    }
    if (!ret && ftruncate(fd, (off_t)f->size) < 0)
        ret = -errno;
    if (close(fd) < 0 && !ret)
        ret = -errno;
    return ret;
}
