/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * <blkv/driver.h> - the driver API: the one header a block driver under
 * test includes.
 *
 * A driver is one `const struct blkv_driver`, handed to the core as a
 * pointer (blkv_run, the fuzz entry), loaded from a plugin
 * (BLKV_REGISTER_PLUGIN), or opened below another driver (filters).  The
 * struct only grows at its end: new callbacks and capability fields are
 * appended, and a driver built against an older, smaller struct keeps
 * working (its struct_size says how much of it there is; the rest reads as
 * zero).  The core allocates `state_size` zeroed bytes of driver state, checks every
 * request against the driver's capabilities before the driver sees it (range,
 * alignment, max transfer, read-only), and expects exactly one completion per
 * submitted request with 0 or a negative errno.
 *
 * In-process drivers are written as plain sequential code: they implement
 * `co_submit`, which the core runs in one coroutine per request, and reach
 * their storage only through the lower files (blkv_lower_*), whose every I/O
 * yields to the deterministic scheduler.  Drivers with their own event
 * sources (sockets, threads) implement `submit` and `poll` instead.
 *
 * Every callback returns 0 or a negative errno; messages go to the error
 * context with blkv_error().  Nothing here touches the global errno.
 */
#ifndef BLKV_DRIVER_H
#define BLKV_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks what libblkv exports (it is built with hidden visibility). */
#ifndef BLKV_API
#define BLKV_API __attribute__((visibility("default")))
#endif

#define BLKV_DRIVER_API_VERSION 1

/* Largest device blkv can verify: self-describing data encodes offset/8 in 40 bits. */
#define BLKV_MAX_DEVICE_SIZE (UINT64_C(1) << 43)
/* Largest single request. */
#define BLKV_MAX_REQUEST (UINT32_C(8) << 20)

enum blkv_op {
    BLKV_OP_READ,
    BLKV_OP_WRITE,
    BLKV_OP_WRITE_ZEROES,
    BLKV_OP_DISCARD,
    BLKV_OP_FLUSH,
};

#define BLKV_REQ_ID_SETUP UINT64_MAX

/* Request flags. */
#define BLKV_REQ_FUA 0x1u   /* write: durable on completion */
#define BLKV_REQ_UNMAP 0x2u /* write-zeroes: the driver may deallocate */

/* What the image check may find after a power loss (the driver declares it). */
enum blkv_crash_check {
    BLKV_CRASH_CLEAN = 0, /* nothing: the open repairs what a crash leaves */
    BLKV_CRASH_LEAKS,     /* leaked space (blkv_check_leaks), harmless; never corruption */
};

/* What reads of a discarded range may return, as the driver declares it. */
enum blkv_discard {
    BLKV_DISCARD_IGNORED = 0,   /* discard is accepted and changes nothing */
    BLKV_DISCARD_ZEROES,        /* reads return zeros */
    BLKV_DISCARD_ZEROES_OR_OLD, /* zeros or the old data; once seen, it stays */
    BLKV_DISCARD_UNSPECIFIED,   /* anything, until rewritten */
};

/* Capabilities, filled in by open().  The core zero-fills before the call. */
struct blkv_caps {
    uint64_t size;          /* device size in bytes */
    uint32_t align;         /* offset and length alignment; 0 means 1 */
    uint32_t max_transfer;  /* largest request in bytes; 0 means BLKV_MAX_REQUEST */
    enum blkv_discard discard;
    bool write_zeroes;      /* native write-zeroes; otherwise the core writes zeros */
    bool read_only;         /* writes, write-zeroes and discards fail with -EROFS */
    bool fua;               /* honours BLKV_REQ_FUA */
    bool cancel;            /* cancel() may make requests finish early */
    bool initialized;       /* open(create) already made the device read as the
                               initial content (blkv_initial_content), e.g. by
                               writing it into a backing file: the core then
                               writes nothing before the ops */
    uint32_t atomic;        /* largest unit (power of 2) the driver promises never
                               to tear: every aligned unit of a request lands
                               whole.  0 means 1 (no promise).  The run checks
                               min(this, the config's atomic). */
    bool may_fail;          /* requests may fail with an error at any time (a
                               server that injects faults): any negative return
                               is accepted, a failed write may or may not have
                               landed, and the data of successful requests is
                               still checked */
    enum blkv_crash_check crash_check; /* what its check may report after a crash */
    uint32_t grain;         /* the unit (power of 2) in which the driver maps and
                               allocates guest data, e.g. a cluster size: a report
                               lists the requests to the same unit as bad bytes,
                               since a culprit often wrote the neighbour.  0: none
                               (reports use 64 KiB) */
    /* Appended (read as false from drivers built before them).  For drivers
     * that are not in-process, which have no lower files for the core to
     * fail or power off: */
    bool fault_rules;       /* fault() takes the program's fault rules (its
                               server injects them, e.g. QEMU's blkdebug) */
    bool crash;             /* crash() kills the server at a crash op */
    /* Appended later (0 from drivers built before them): what the server's
     * fault rules cannot be, so that blkv_driver_fit leaves such rules out
     * before a run instead of the driver refusing them at their op (which
     * ends the run).  0: no limit. */
    uint32_t fault_after_max;    /* the largest `after N` */
    uint32_t fault_after_events; /* distinct events a program's rules with
                                    `after` may name (QEMU's blkdebug: 1) */
};

/*
 * A request.  The core owns it; the driver may use `driver_data` and must
 * call blkv_complete() exactly once (for co_submit drivers, returning from
 * co_submit does it).  `buf` is valid until completion.
 */
struct blkv_req {
    enum blkv_op op;
    uint32_t flags;
    uint64_t offset;
    uint64_t len;
    void *buf;         /* read: filled by the driver; write: the data; else NULL */
    uint64_t id;       /* request number within the run, for messages;
                          BLKV_REQ_ID_SETUP for the core's own writes of the
                          initial content before the ops */
    void *driver_data; /* free for the driver */
    struct blkv_core_req *core; /* private to the core */
};

/* Driver options: name=value pairs, declared by the driver, checked by the core. */
struct blkv_option {
    const char *name;
    const char *def;  /* default value, or NULL for "unset" */
    const char *help;
};

struct blkv_ctx; /* per-run context: options, lower files, error messages */

struct blkv_driver {
    uint32_t struct_size; /* sizeof(struct blkv_driver) the driver was built with */
    uint32_t api_version; /* BLKV_DRIVER_API_VERSION */
    const char *name;
    const char *description;
    const struct blkv_option *options; /* terminated by a { NULL } entry; may be NULL */
    size_t state_size;                 /* bytes of state the core allocates (zeroed) */
    bool in_process;                   /* runs on the runtime (co_submit, lower files) */

    /* Required.  Open the device; `create` is true on a fresh run (make a new
     * image of `size` bytes) and false on reopen (open what the lower files
     * hold).  Runs in a coroutine for in-process drivers. */
    int (*open)(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                struct blkv_caps *caps);
    /* Optional.  Close: flush and release everything.  No request is in flight. */
    void (*close)(void *state);

    /* One of these two is required. */
    void (*submit)(void *state, struct blkv_req *req);
    int (*co_submit)(void *state, struct blkv_req *req);

    /* Optional.  Ask the driver to finish `req` early.  It may complete with
     * -ECANCELED or normally, now or later, but exactly once. */
    void (*cancel)(void *state, struct blkv_req *req);
    /* Optional.  Process events for up to timeout_ms; returns the number of
     * completions delivered or a negative errno.  For drivers with their
     * own event sources. */
    int (*poll)(void *state, int timeout_ms);
    /* Optional.  Consistency check of the image; no request is in flight.
     * Returns 0, or -EUCLEAN with a message in the context. */
    int (*check)(void *state);

    /* Appended after API version 1's first struct (a driver built before
     * them has a smaller struct_size, and they read as zero). */

    /* Optional.  After a power loss: free everything the state holds, with
     * no I/O (the lower files are not what the driver last saw, and its
     * requests are gone).  The core then frees the state and opens the
     * driver again.  Without it, what the driver allocated is lost. */
    void (*release)(void *state);
    /* Optional.  Names of the driver's own lower-I/O events (fault rules),
     * numbered from BLKV_EV__STANDARD; NULL-terminated. */
    const char *const *events;
    /* Optional.  The standard events the driver tags (bit 1u << BLKV_EV_x)
     * besides data_read, data_write and flush, which every untagged lower
     * read, write and flush counts as.  For `blkv drivers` and the docs:
     * a rule on an event the driver never tags simply never fires. */
    uint32_t std_events;

    /* Optional, for drivers that are not in-process and say so in
     * caps.fault_rules: a fault rule from now on, as for in-process drivers
     * (fail I/Os of event `event` with -err, the first `after` spared; with
     * `once`, one), which the driver's server applies below the format.  No
     * request is in flight (the core drains first).  After a rule any
     * request may fail (as with caps.may_fail); one that succeeds is still
     * checked.  0, or a negative errno with a message when the rule cannot
     * be expressed (the run stops with an error). */
    int (*fault)(void *state, unsigned event, int err, bool once, uint64_t after);
    /* Optional, for drivers that are not in-process and say so in
     * caps.crash: lose power now.  Kill the server at once (what it has not
     * written to its files is lost; requests in flight never complete: the
     * core ignores any completion they still get), keeping in the state what
     * open(create=false) needs, which the core calls next.  0, or a negative
     * errno with a message. */
    int (*crash)(void *state);
};

/* Helper for the struct_size/api_version header fields. */
#define BLKV_DRIVER_HEADER .struct_size = sizeof(struct blkv_driver), \
                           .api_version = BLKV_DRIVER_API_VERSION

/*
 * Plugins: a shared object that exports blkv_plugin_init, returning its
 * driver.  `blkv run --load PATH` (and a driver spec naming PATH) loads it.
 * Build it with `pkg-config --cflags blkv` and leave the blkv_* symbols
 * undefined: they come from the program that loads it.
 *
 *     BLKV_REGISTER_PLUGIN(my_driver)
 */
#define BLKV_PLUGIN_ENTRY_NAME "blkv_plugin_init"
#define BLKV_REGISTER_PLUGIN(drv)                                                      \
    __attribute__((visibility("default"))) const struct blkv_driver *blkv_plugin_init(void); \
    const struct blkv_driver *blkv_plugin_init(void)                                   \
    {                                                                                  \
        return &(drv);                                                                 \
    }

/* The smallest struct_size the core takes: API version 1's struct, through
 * co_submit.  Fields past a driver's struct_size read as zero. */
#define BLKV_DRIVER_MIN_SIZE offsetof(struct blkv_driver, cancel)

/* ---- services for drivers ---------------------------------------------- */

/* Complete a request.  Exactly once per request. */
BLKV_API void blkv_complete(struct blkv_req *req, int ret);

/* Option value (the driver's declared default when not given), or NULL. */
BLKV_API const char *blkv_opt(struct blkv_ctx *ctx, const char *name);
/* Parse an option as an unsigned integer with optional K/M/G suffix;
 * returns 0 or -EINVAL (with a message in the context). */
BLKV_API int blkv_opt_u64(struct blkv_ctx *ctx, const char *name, uint64_t *out);

/* Record an error message for the current run (printf-style). */
BLKV_API void blkv_error(struct blkv_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The seed of this run, for drivers that make choices. */
BLKV_API uint64_t blkv_seed(struct blkv_ctx *ctx);

/* The initial content of device bytes [off, off+len): what every byte must
 * read as before the first write (zeros, pattern or a user's image). */
BLKV_API void blkv_initial_content(struct blkv_ctx *ctx, void *buf, uint64_t len, uint64_t off);

/* A range of device bytes. */
struct blkv_extent {
    uint64_t off, len;
};

/* Where a driver that stores the initial content itself (caps.initialized,
 * e.g. in a backing file it makes at open) must store it: the ranges of the
 * device the run's program can reach, rounded out to 4 KiB, sorted and
 * disjoint.  No read reaches any other byte, so those may hold anything.
 * None when the initial content is all zeros.  Valid until the run ends. */
BLKV_API size_t blkv_initial_extents(struct blkv_ctx *ctx, const struct blkv_extent **ext);

/* ---- lower files (in-process drivers only) ------------------------------
 * An in-memory sparse file.  Each I/O yields to the scheduler, which decides
 * when it completes and whether it fails; data is transferred at completion,
 * so lower I/Os really reorder.  Reads past the end return zeros; writes past
 * the end extend the file.  Call only from a coroutine (co_submit, open,
 * close, check of an in-process driver). */
struct blkv_lower;

/* Lower file `idx` (0: the image; 1: a backing file), or NULL. */
BLKV_API struct blkv_lower *blkv_lower_get(struct blkv_ctx *ctx, unsigned idx);
BLKV_API int blkv_lower_pread(struct blkv_lower *f, void *buf, uint64_t len, uint64_t off);
BLKV_API int blkv_lower_pwrite(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off);
/* Write len zero bytes at off (a write like any other, without a buffer;
 * the store keeps holes as holes). */
BLKV_API int blkv_lower_pwrite_zeroes(struct blkv_lower *f, uint64_t len, uint64_t off);
BLKV_API int blkv_lower_flush(struct blkv_lower *f);
BLKV_API int blkv_lower_truncate(struct blkv_lower *f, uint64_t size);
BLKV_API uint64_t blkv_lower_size(const struct blkv_lower *f);
/* Where data may be, like lseek's SEEK_DATA and SEEK_HOLE, at the store's
 * page granularity: the first offset in [off, end) that may hold non-zero
 * bytes, or that surely reads as zeros; end if there is none.  Immediate (a
 * metadata query, not an I/O): it sees completed writes only.  Drivers use
 * it to skip reading tables that are mostly holes. */
BLKV_API uint64_t blkv_lower_next_data(const struct blkv_lower *f, uint64_t off, uint64_t end);
BLKV_API uint64_t blkv_lower_next_hole(const struct blkv_lower *f, uint64_t off, uint64_t end);
/* Immediate, unscheduled access (no yield, no faults), for test drivers
 * and setup code.  Reads past the end return zeros. */
BLKV_API void blkv_lower_peek(const struct blkv_lower *f, void *buf, uint64_t len, uint64_t off);
BLKV_API void blkv_lower_poke(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off);

/* Scratch memory for in-process drivers (cache slots, bounce buffers):
 * malloc and free, but recycled across runs, so that thousands of runs a
 * second do not each fault in fresh pages.  What is given back stays out of
 * use until the run ends (poisoned under ASan, so a late access is still
 * caught).  Uninitialised; len as passed to blkv_scratch_get. */
BLKV_API void *blkv_scratch_get(size_t len);
BLKV_API void blkv_scratch_put(void *p, size_t len);

/* ---- events and faults (in-process drivers) ------------------------------
 * A driver tags a lower I/O with what it is for, so that a program's fault
 * rules ("fault l2_update EIO once") can fail the I/Os of one kind, the way
 * QEMU's blkdebug does.  An untagged I/O is data_read, data_write or flush
 * by its kind. */
enum blkv_event {
    BLKV_EV_NONE,            /* untagged */
    BLKV_EV_DATA_READ,       /* guest data read */
    BLKV_EV_DATA_WRITE,      /* guest data written */
    BLKV_EV_COW_READ,        /* data read to copy on write */
    BLKV_EV_COW_WRITE,       /* data written by a copy on write */
    BLKV_EV_L1_UPDATE,       /* an L1 (top-level table) entry written */
    BLKV_EV_L2_UPDATE,       /* an L2 (second-level table) entry written */
    BLKV_EV_L2_ALLOC,        /* a new L2 table written */
    BLKV_EV_REFBLOCK_UPDATE, /* a refcount block entry written */
    BLKV_EV_REFBLOCK_ALLOC,  /* a new refcount block written */
    BLKV_EV_REFTABLE_GROW,   /* a grown refcount table written */
    BLKV_EV_HEADER_UPDATE,   /* the image header written */
    BLKV_EV_FLUSH,           /* a flush */
    BLKV_EV__STANDARD        /* a driver's own events are numbered from here */
};

/* The next lower I/O the calling coroutine issues on f is for event ev. */
BLKV_API void blkv_lower_event(struct blkv_lower *f, unsigned ev);
/* From check: the image leaks `clusters` units of space (referenced by
 * nothing, counted as used): harmless after a crash where the driver
 * declares BLKV_CRASH_LEAKS, a finding anywhere else.  The check then
 * returns 0 if nothing else is wrong. */
BLKV_API void blkv_check_leaks(struct blkv_ctx *ctx, uint64_t clusters);
/* From check: the problem the check reports (the first one, whose message
 * it records) concerns guest bytes [off, off+len), e.g. the guest cluster
 * of a corrupt mapping.  The report then lists the requests that touched
 * them; without it, the last ops before the check.  Name a range only when
 * the image says which guest bytes are involved: a guess misleads. */
BLKV_API void blkv_check_range(struct blkv_ctx *ctx, uint64_t off, uint64_t len);

/* ---- filters: drivers over other drivers (in-process drivers only) -------
 * A filter opens another driver through the core (its child), on the same
 * run and lower files, and passes requests down, as nbdkit's filters call
 * their next layer.  The child's requests run in the calling coroutine;
 * the core checks them against the child's capabilities (a malformed one
 * fails with -EINVAL, -EROFS, as the raw model says) but not against the
 * model: what the filter makes of them is the filter's.  Messages the child
 * records go to the run's context.  Children not closed are freed when the
 * run ends. */
struct blkv_child;

/* The options the driver of ctx was given, as one string ("" for none):
 * for a filter that hands its own options to its child. */
BLKV_API const char *blkv_opts(struct blkv_ctx *ctx);
/* From open: open drv (in-process) with opts below the driver of ctx, on a
 * device of `size` bytes (create: a new image), reporting its capabilities
 * in *caps.  0, or a negative errno with a message in the context. */
BLKV_API int blkv_child_open(struct blkv_ctx *ctx, const struct blkv_driver *drv, const char *opts,
                             uint64_t size, bool create, struct blkv_caps *caps,
                             struct blkv_child **child);
/* Close the child (from the filter's close or open) and free it. */
BLKV_API void blkv_child_close(struct blkv_child *c);
/* A request of the filter's own to the child, on behalf of request `parent`
 * (NULL: none, e.g. from open or close); returns the child's result. */
BLKV_API int blkv_child_io(struct blkv_child *c, struct blkv_req *parent, enum blkv_op op,
                           uint32_t flags, uint64_t offset, uint64_t len, void *buf);
/* Pass request req down unchanged: blkv_child_io with req's own fields. */
BLKV_API int blkv_child_submit(struct blkv_child *c, struct blkv_req *req);
/* Deliver a cancel of `parent` to the child's request in flight for it
 * (through the child's cancel callback, if it has one); with none in
 * flight, blkv_co_cancel(parent), so that the child's next request sees it. */
BLKV_API void blkv_child_cancel(struct blkv_child *c, struct blkv_req *parent);
/* The child's consistency check (0 when it has none). */
BLKV_API int blkv_child_check(struct blkv_child *c);

/* ---- coroutine services (in-process drivers only) ----------------------- */

/* Make a blocked request give up: if its coroutine waits for a lower I/O
 * that has not completed, that I/O is withdrawn (it never happens) and
 * returns -ECANCELED.  Later lower I/Os of the request run normally. */
BLKV_API void blkv_co_cancel(struct blkv_req *req);
/* Whether blkv_co_cancel() was called for the current coroutine's request. */
BLKV_API bool blkv_co_cancelled(void);
/* Let other coroutines run; the scheduler decides when this one resumes. */
BLKV_API void blkv_co_yield(void);

/* A FIFO coroutine mutex.  Zero-initialised is unlocked. */
struct blkv_co_waiter;
struct blkv_co_mutex {
    bool locked;
    struct blkv_co_waiter *head, *tail;
};
BLKV_API void blkv_co_mutex_lock(struct blkv_co_mutex *m);
BLKV_API void blkv_co_mutex_unlock(struct blkv_co_mutex *m);

/* A wait queue.  Zero-initialised is empty. */
struct blkv_co_queue {
    struct blkv_co_waiter *head, *tail;
};
BLKV_API void blkv_co_queue_wait(struct blkv_co_queue *q);
BLKV_API bool blkv_co_queue_wake_one(struct blkv_co_queue *q); /* false if empty */
BLKV_API void blkv_co_queue_wake_all(struct blkv_co_queue *q);

#endif
