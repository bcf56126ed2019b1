/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * runtime.h - coroutines, lower files and the deterministic scheduler, as the
 * core sees them (drivers see the blkv_lower_* and blkv_co_* calls in
 * <blkv/driver.h>).
 *
 * Single thread.  The "main" context is the core's loop; every request of an
 * in-process driver runs in its own coroutine, which runs until it blocks on
 * a lower I/O, a mutex or queue, or a yield, and then switches back to main.
 * Nothing completes unless main asks: blkv_rt_step() completes one chosen
 * pending lower I/O (transferring its data at that moment), and
 * blkv_rt_progress() makes one unit of progress in the order the scheduling
 * policy draws from the seed.  Every interleaving is a function of the
 * program alone.
 */
#ifndef BLKV_RUNTIME_H
#define BLKV_RUNTIME_H

#include <blkv/driver.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blkv_rt;
struct blkv_co;

/* Which pending lower I/O completes next when the policy decides. */
enum blkv_rt_policy {
    BLKV_RT_RANDOM, /* drawn from the seed */
    BLKV_RT_FIFO,   /* in issue order */
    BLKV_RT_LIFO,   /* newest first */
};

/* Bytes of lower-file data a run may hold before lower writes fail with -ENOSPC. */
#define BLKV_LOWER_DEFAULT_CAP (UINT64_C(1) << 30)

struct blkv_rt *blkv_rt_new(enum blkv_rt_policy sched, uint64_t seed, uint64_t lower_cap);
/* Free everything, including coroutines that never finished (their stacks
 * are simply dropped: call only when no driver code will touch them again). */
void blkv_rt_free(struct blkv_rt *rt);

/* Lower file idx (0 or 1), created empty on first use. */
struct blkv_lower *blkv_rt_lower(struct blkv_rt *rt, unsigned idx);
/* Whether lower file idx was ever used (created by a driver or loaded). */
bool blkv_rt_lower_exists(const struct blkv_rt *rt, unsigned idx);
/* Replace lower file idx's content with a host file's; 0 or -errno. */
int blkv_rt_lower_load(struct blkv_rt *rt, unsigned idx, const char *path);
/* Write lower file idx's content to a host file; 0 or -errno. */
int blkv_rt_lower_save(struct blkv_rt *rt, unsigned idx, const char *path);

/*
 * Start fn(arg) in a new coroutine.  From main, it runs at once until it
 * blocks or returns; from a coroutine, it is queued to run.  `req` is the
 * request it serves (NULL for open/close/check), for blkv_co_cancelled().
 * Returns NULL on -ENOMEM.
 */
typedef void (*blkv_co_fn)(void *arg);
struct blkv_co *blkv_rt_spawn(struct blkv_rt *rt, blkv_co_fn fn, void *arg,
                              struct blkv_req *req);
/* The coroutine running now, or NULL in main. */
struct blkv_co *blkv_rt_current(void);
/* Mark co's request cancelled and withdraw the lower I/O it waits for, if any
 * (it then returns -ECANCELED).  No effect on a finished coroutine. */
void blkv_rt_cancel(struct blkv_rt *rt, struct blkv_co *co);

/* Run queued coroutines until all are blocked.  Returns how many ran. */
size_t blkv_rt_run_ready(struct blkv_rt *rt);
/* Number of lower I/Os waiting to complete (after blkv_rt_run_ready). */
size_t blkv_rt_pending(struct blkv_rt *rt);
/*
 * Run ready coroutines, then complete pending lower I/O number idx % pending,
 * failing it with -err if err != 0 (a failed write transfers nothing), and
 * run what that wakes.  Returns false when nothing was pending.
 */
bool blkv_rt_step(struct blkv_rt *rt, uint32_t idx, int err);
/* One unit of progress by the policy: run ready coroutines, or else complete
 * one pending lower I/O.  Returns false when nothing can progress. */
bool blkv_rt_progress(struct blkv_rt *rt);
/* Number of lower I/Os failed by blkv_rt_step with err != 0 so far. */
uint64_t blkv_rt_faults(const struct blkv_rt *rt);
/* Whether lower files keep what is durable, as a crash needs (lower.c);
 * set before the first lower I/O.  Off, a crash keeps everything. */
void blkv_rt_set_durability(struct blkv_rt *rt, bool on);
/* Everything the lower files hold is durable from now on (the device as
 * the program finds it: made, filled with its initial content, synced). */
void blkv_rt_durable_now(struct blkv_rt *rt);
/* A power loss, from main: each lower file keeps, per 512-byte sector, its
 * durable content or one of the versions written since (completed or in
 * flight), as `seed` chooses.  Then, with the power off, the coroutines run
 * on until they end: every lower I/O, pending or new, fails with -EIO and
 * changes nothing (and counts as no fault), so that a driver's error paths
 * free what its coroutines hold; the caller ignores their completions.
 * Coroutines still blocked after that are dropped where they stand.  Lower
 * files and the runtime stay usable (coroutine handles stay valid, as
 * finished ones). */
void blkv_rt_crash(struct blkv_rt *rt, uint64_t seed);
/* A fault rule (blkdebug's, as data): from now on lower I/Os tagged
 * `event` (blkv_lower_event, or by their kind) fail with -err at their
 * completion, transferring nothing, but for the first `after` of them; with
 * `once`, only one.  The first rule that matches an I/O takes it.  Only
 * the I/Os of requests' coroutines count (not open's, close's or a
 * check's: those are how the harness looks at the image).  0 or -ENOMEM. */
int blkv_rt_fault_rule(struct blkv_rt *rt, unsigned event, int err, bool once, uint64_t after);
/* Bytes held for what is not durable yet (records and durable pages). */
uint64_t blkv_rt_volatile_bytes(const struct blkv_rt *rt);
/* Live coroutines (started, not finished). */
size_t blkv_rt_live(const struct blkv_rt *rt);

#endif
