/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fiber.c - stacks and the switches between them (see fiber.h).
 */

/* glibc's fortified longjmp refuses to jump between stacks. */
#ifdef _FORTIFY_SOURCE
#undef _FORTIFY_SOURCE
#endif

#include "runtime/fiber.h"
#include "runtime/bufpool.h" /* BLKV_BUF_WINDOW_RUNS: one window for every pool */

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BLKV_VALGRIND 1
#endif
#endif

#define FIBER_STACK_SIZE (256u * 1024)
#define FIBER_POOL_MAX 512 /* idle fibers kept for reuse; more are unmapped */

/*
 * The sanitizer interface, declared weak: null unless the process has
 * AddressSanitizer's runtime (whoever was built with it).
 */
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size)
    __attribute__((weak));
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile *addr, size_t size)
    __attribute__((weak));

/* A stack and the parked trampoline running on it; reused across runs. */
struct blkv_fiber {
    struct blkv_fiber *next_free;
    void *map;         /* the whole mapping, guard page first */
    size_t map_size;
    void *stack;       /* usable stack: [stack, stack + size) */
    size_t size;
    sigjmp_buf env;    /* where the fiber resumes */
    void *fake_stack;  /* ASan fake stack saved while switched out */
    unsigned vg_id;    /* valgrind stack id */
    bool parked;       /* its trampoline is running (fiber_start succeeded) */
    bool killed;       /* on resume: leave for good (see fiber_kill) */
    blkv_fiber_job job; /* what it runs next */
    void *arg;
};

/* ---- process-wide state (single thread) ------------------------------------ */

static sigjmp_buf main_env;
static void *main_fake_stack;
static const void *main_stack_bottom;
static size_t main_stack_size;
static sigjmp_buf *fiber_start_env; /* the creator, while a fiber starts */
static struct blkv_fiber *fiber_pool;
static size_t fiber_pool_len;
/* the pool follows recent use, as the buffer pool does: every window of
 * runs it keeps as many idle fibers as were out at once in that window
 * (a deep queue early in a campaign does not pin its stacks' pages) */
static size_t fiber_out, fiber_peak;
static uint64_t fiber_runs;

/* ---- context switching ----------------------------------------------------- */

static inline void asan_start(void **fake, const void *bottom, size_t size)
{
    if (__sanitizer_start_switch_fiber)
        __sanitizer_start_switch_fiber(fake, bottom, size);
}

static inline void asan_finish(void *fake, const void **bottom_old, size_t *size_old)
{
    if (__sanitizer_finish_switch_fiber)
        __sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
}

static inline void asan_unpoison(void *p, size_t n)
{
    if (__asan_unpoison_memory_region)
        __asan_unpoison_memory_region(p, n);
}

/*
 * ASan intercepts siglongjmp (and instruments calls to noreturn functions)
 * to unpoison the frames a longjmp discards: all of the stack from the
 * jumper's frame up.  A switch discards nothing, though: the fiber's frames
 * resume later, and unpoisoning them would hide overflows of their locals.
 * So under ASan, switch with libc's own siglongjmp, through a pointer that
 * is not declared noreturn.  Stacks that are really abandoned are
 * unpoisoned by hand (fiber_start, fiber_destroy).
 */
typedef void (*longjmp_fn)(sigjmp_buf, int);

static longjmp_fn switch_longjmp_fn(void)
{
    static longjmp_fn fn;
    if (!fn) {
        void *libc = __sanitizer_start_switch_fiber
                         ? dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD) : NULL;
        void *sym = libc ? dlsym(libc, "siglongjmp") : NULL;
        memcpy(&fn, &sym, sizeof(fn));
        if (!fn)
            fn = siglongjmp;
    }
    return fn;
}

#define switch_longjmp(env) (switch_longjmp_fn()((env), 1))

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

static void fiber_exit(struct blkv_fiber *fb) __attribute__((noreturn));

/* From the fiber: back to main. */
void blkv_fiber_switch_out(struct blkv_fiber *fb)
{
    ctx_switch(fb->env, &fb->fake_stack, main_env, main_stack_bottom, main_stack_size,
               &main_stack_bottom, &main_stack_size);
    if (fb->killed)
        fiber_exit(fb);
}

/* On a killed fiber: jump back to main for good.  Passing no save slot
 * makes ASan free this fiber's fake stack. */
static void fiber_exit(struct blkv_fiber *fb)
{
    (void)fb;
    asan_start(NULL, main_stack_bottom, main_stack_size);
    siglongjmp(main_env, 1);
}

/* The fiber's job loop: run a coroutine function, go back to main, wait for
 * the next job.  Never returns. */
static void fiber_loop(struct blkv_fiber *fb) __attribute__((noreturn));
static void fiber_loop(struct blkv_fiber *fb)
{
    for (;;) {
        fb->job(fb->arg);
        blkv_fiber_switch_out(fb); /* main puts the fiber back in the pool */
    }
}

/* First code on a new fiber: park (back to its creator), then loop over jobs;
 * jobs are always entered from main. */
static void fiber_trampoline(unsigned lo, unsigned hi)
{
    struct blkv_fiber *fb = (struct blkv_fiber *)(uintptr_t)(((uint64_t)hi << 32) | lo);
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
static int fiber_start(struct blkv_fiber *fb)
{
    ucontext_t uc;
    sigjmp_buf env;
    void *fake = NULL;
    uint64_t p = (uintptr_t)fb;

    /* A reset fiber may hold poisoned frames of an abandoned job. */
    asan_unpoison(fb->stack, fb->size);
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
        fputs("blkv runtime: setcontext failed\n", stderr);
        abort();
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
static void fiber_kill(struct blkv_fiber *fb)
{
    if (!fb->parked)
        return;
    fb->killed = true;
    ctx_switch(main_env, &main_fake_stack, fb->env, fb->stack, fb->size, NULL, NULL);
    fb->parked = false;
    fb->fake_stack = NULL;
}

/* Unmap a fiber. */
static void fiber_destroy(struct blkv_fiber *fb)
{
    fiber_kill(fb);
#ifdef BLKV_VALGRIND
    VALGRIND_STACK_DEREGISTER(fb->vg_id);
#endif
    asan_unpoison(fb->stack, fb->size);
    munmap(fb->map, fb->map_size);
    free(fb);
}

/* A fiber leaves the pool or is made: count it out. */
static void fiber_taken(void)
{
    if (++fiber_out > fiber_peak)
        fiber_peak = fiber_out;
}

/* A parked fiber: from the pool, else a new mapping.  NULL on failure. */
struct blkv_fiber *blkv_fiber_get(void)
{
    struct blkv_fiber *fb = fiber_pool;
    long pg = sysconf(_SC_PAGESIZE);
    size_t guard = pg > 0 ? (size_t)pg : 4096;

    if (fb) {
        fiber_pool = fb->next_free;
        fiber_pool_len--;
        fb->next_free = NULL;
        fiber_taken();
        return fb;
    }
    fb = calloc(1, sizeof(*fb));
    if (!fb)
        return NULL;
    fb->map_size = FIBER_STACK_SIZE + guard;
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
    fb->size = FIBER_STACK_SIZE;
#ifdef BLKV_VALGRIND
    fb->vg_id = VALGRIND_STACK_REGISTER(fb->stack, (char *)fb->stack + fb->size);
#endif
    if (fiber_start(fb) < 0) {
        fiber_destroy(fb);
        return NULL;
    }
    fiber_taken();
    return fb;
}

/* Return a parked fiber to the pool (or unmap it when the pool is full). */
void blkv_fiber_put(struct blkv_fiber *fb)
{
    fb->job = NULL;
    fiber_out--;
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
void blkv_fiber_abandon(struct blkv_fiber *fb)
{
    fb->job = NULL;
    fiber_kill(fb);
    if (fiber_start(fb) < 0) {
        fiber_out--;
        fiber_destroy(fb);
        return;
    }
    blkv_fiber_put(fb);
}

void blkv_fiber_run_end(void)
{
    size_t keep;

    if (++fiber_runs % BLKV_BUF_WINDOW_RUNS)
        return;
    keep = fiber_peak > fiber_out ? fiber_peak - fiber_out : 0;
    while (fiber_pool_len > keep) {
        struct blkv_fiber *fb = fiber_pool;
        fiber_pool = fb->next_free;
        fiber_pool_len--;
        fiber_destroy(fb);
    }
    fiber_peak = fiber_out;
}

size_t blkv_fiber_pooled(void)
{
    return fiber_pool_len;
}

void blkv_fiber_set_job(struct blkv_fiber *fb, blkv_fiber_job job, void *arg)
{
    fb->job = job;
    fb->arg = arg;
}

void blkv_fiber_enter(struct blkv_fiber *fb)
{
    ctx_switch(main_env, &main_fake_stack, fb->env, fb->stack, fb->size, NULL, NULL);
}
