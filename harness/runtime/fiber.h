/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fiber.h - stacks to run code on, switched to from the main context and
 * back, pooled across runs.  The scheduler (sched.c) builds coroutines on
 * them; nothing else uses them.
 *
 * A fiber is a 256 KiB mmap'd stack with a guard page, entered once with
 * makecontext/setcontext when it is made and parked in a trampoline that
 * loops over jobs.  Every later switch is a sigsetjmp/siglongjmp pair (no
 * signal-mask system calls), the way QEMU's coroutine-ucontext works, so a
 * fuzzer that runs millions of short programs maps and makes contexts only
 * while the pool warms up.  Switches always go main -> fiber -> main.
 *
 * Under AddressSanitizer every switch is announced to it (fiber
 * annotations).  Whether ASan is there is decided at run time, not when
 * libblkv is built: a driver built with ASan and linked with a libblkv built
 * without it still runs on annotated stacks.
 */
#ifndef BLKV_RUNTIME_FIBER_H
#define BLKV_RUNTIME_FIBER_H

#include <stddef.h>

struct blkv_fiber;
typedef void (*blkv_fiber_job)(void *arg);

/* A parked fiber, from the pool or newly mapped; NULL on failure. */
struct blkv_fiber *blkv_fiber_get(void);
/* Give the fiber its next job; it runs at the next blkv_fiber_enter. */
void blkv_fiber_set_job(struct blkv_fiber *fb, blkv_fiber_job job, void *arg);
/* From main: run the fiber until it switches out (blocks, or its job returned). */
void blkv_fiber_enter(struct blkv_fiber *fb);
/* From the fiber: back to main; returns when main enters it again. */
void blkv_fiber_switch_out(struct blkv_fiber *fb);
/* From main: the job returned; pool the fiber (or unmap it). */
void blkv_fiber_put(struct blkv_fiber *fb);
/* From main: the job will never resume; restart the fiber and pool it. */
void blkv_fiber_abandon(struct blkv_fiber *fb);
/* End of a run: every BLKV_BUF_WINDOW_RUNS runs the pool keeps as many idle
 * fibers as were out at once in that window and unmaps the rest. */
void blkv_fiber_run_end(void);
/* Idle fibers in the pool (for tests). */
size_t blkv_fiber_pooled(void);

#endif
