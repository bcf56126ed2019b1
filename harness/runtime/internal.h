/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * internal.h - what the runtime's files share: coroutines, the runtime, and
 * pending lower I/Os.  Private to harness/runtime/.
 */
#ifndef BLKV_RUNTIME_INTERNAL_H
#define BLKV_RUNTIME_INTERNAL_H

#include "runtime/fiber.h"
#include "runtime/runtime.h"
#include "runtime/store.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CO_SLAB_SIZE 64
#define LOWER_MAX_SIZE (UINT64_C(1) << 62) /* largest lower-file offset */

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
    const void *wbuf; /* NULL for a write of zeros */
    uint64_t len, off; /* truncate: off is the new size */
    uint64_t flush_seq; /* flush: the writes completed when it was issued */
    unsigned event;     /* what it is for (enum blkv_event) */
    int inject;         /* a fault rule fails it with -inject at completion, or 0 */
    struct blkv_co *co;
    int ret;
};

/* A lower write that completed but is not durable yet (durability on). */
struct dur_rec {
    struct dur_rec *next;
    uint64_t seq;        /* completion order on its file, from 1 */
    uint64_t off, len;
    unsigned char *data; /* what it wrote; NULL: zeros */
    uint64_t data_len;   /* bytes of data as allocated (len may shrink) */
};

struct blkv_co {
    struct blkv_rt *rt;
    struct blkv_fiber *fiber; /* NULL once done */
    blkv_co_fn fn;
    void *arg;
    struct blkv_req *req;
    struct lower_io *io;  /* while CO_IO */
    struct blkv_co *next; /* ready / yielded queue link */
    struct blkv_co_waiter waiter;
    enum co_state state;
    bool cancelled;
    unsigned next_event;          /* blkv_lower_event: for its next I/O on next_event_file */
    struct blkv_lower *next_event_file;
    bool yielded; /* its last slice ended in blkv_co_yield */
    bool started; /* entered at least once */
};

struct co_slab {
    struct co_slab *next;
    unsigned used;
    struct blkv_co co[CO_SLAB_SIZE];
};

struct blkv_lower {
    struct blkv_rt *rt;
    struct blkv_store store;   /* the current content: what reads see */
    /* Durability (when the runtime tracks it): the durable content of every
     * page a record touches (a page map), and the records in completion
     * order.  A page that is not in `durable` is durable as it is now. */
    struct blkv_store durable;
    struct dur_rec *recs, **recs_tail;
    uint64_t seq;              /* writes completed so far */
    uint64_t rec_bytes;        /* bytes of data the records hold */
};

/* A fault rule: I/Os of `event` fail with -err, the first `after` spared. */
struct fault_rule {
    unsigned event;
    int err;
    bool once, fired;
    uint64_t after, seen;
};

struct co_list {
    struct blkv_co *head, *tail;
};

struct blkv_rt {
    enum blkv_rt_policy sched;
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
    bool durability;     /* lower files keep what is durable (crash ops) */
    bool off;            /* the power is off (within blkv_rt_crash): lower I/O
                            fails with -EIO and changes nothing */
    struct fault_rule *rules;
    size_t nrules;
    uint64_t dur_held;   /* bytes of the durable page maps */
    size_t live;
    struct co_slab *slabs;
};

/* sched.c */
/* Print a programming error and abort. */
void blkv_rt_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* The current coroutine; abort (naming fn) if called from main. */
struct blkv_co *blkv_rt_need_co(const char *fn);
/* Register io as pending for the current coroutine and block until main
 * completes (or withdraws) it; returns its result. */
int blkv_rt_wait_io(const char *fn, struct lower_io *io);

/* lower.c */
/* Do the data transfer of a completed I/O; returns its result. */
int blkv_lower_io_transfer(struct lower_io *io);
/* A lower I/O is issued (before it blocks): flushes note what completed. */
void blkv_lower_io_issue(struct lower_io *io);
void blkv_lower_free(struct blkv_lower *f);
/* Everything f holds is durable from now on. */
void blkv_lower_durable_now(struct blkv_lower *f);
/* A power loss: the lower file keeps, per 512-byte sector, its durable
 * content or one not-yet-durable version (rng chooses), `pending` being
 * the writes in flight to it.  Everything it then holds is durable. */
void blkv_lower_crash(struct blkv_lower *f, struct lower_io *const *pending, size_t npending,
                      struct blkv_rng *rng);

#endif
