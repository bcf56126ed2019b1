/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * core.h - the state of one run, shared by the files of the core: driver
 * services (services.c), driver specs and loading (options.c), the dispatch
 * layer (dispatch.c) and the run loop (run.c).  Not for drivers.
 */
#ifndef BLKV_CORE_H
#define BLKV_CORE_H

#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/run.h>

#include "model/model.h"
#include "report/history.h"
#include "report/report.h"
#include "runtime/runtime.h"

#include <stdarg.h>

#define BLKV_MAX_OPTIONS 32

/* The per-run context drivers see. */
struct blkv_ctx {
    struct blkv_run *run;
    struct blkv_ctx *parent;  /* a child's: its filter's context (errors go up) */
    const struct blkv_driver *drv;
    const char *opt_name[BLKV_MAX_OPTIONS];
    const char *opt_val[BLKV_MAX_OPTIONS];
    size_t nopts;
    char *spec_copy;      /* backing storage of the option strings */
    char *opts;           /* the option string as given */
    char error[512];      /* first error message of the run */
};

struct blkv_run {
    struct blkv_history h;   /* what the report reads: program, requests, model, ... */
    struct blkv_driver drv;  /* the driver, copied to full size */
    struct blkv_ctx ctx;
    void *state;
    bool opened;
    struct blkv_rt *rt;
    uint64_t nreqs;
    uint64_t inflight;
    uint64_t inflight_bytes;
    uint64_t clock;
    bool stuck;            /* requests can never complete: do not close */
    bool checked;          /* the check ran, and no request or reopen since */
    char *spec;            /* "name opts", for reports and reproducers */
    int image_fd;          /* init image, or -1 */
    struct blkv_child *children; /* opened by filters, not closed yet */
    uint64_t crashes;      /* crash ops so far */
    uint64_t leaks;        /* what the last check reported leaked (blkv_check_leaks) */
    bool check_named;      /* the last check named the guest bytes of its finding */
    struct blkv_extent check_range; /* which (blkv_check_range) */
    struct blkv_extent *foot; /* what the program can reach, 4 KiB-rounded */
    size_t nfoot;
    bool ext_faults;       /* an out-of-process driver took a fault rule: any
                              request may fail from now on */
};

/* options.c */
/* Parse d's options "k=v k=v" (NULL: none) into ctx (which keeps d); 0 or
 * -EINVAL with a message in err.  ctx->spec_copy is malloc'd either way. */
int blkv_core_opts_parse(const struct blkv_driver *d, const char *opts, struct blkv_ctx *ctx,
                         char *err, size_t errlen);
/* Copy driver struct d to full size in *out, zero-filling what an older,
 * smaller struct lacks, and check it (version, size, required callbacks);
 * 0 or -EINVAL with a message in err. */
int blkv_core_driver_copy(struct blkv_driver *out, const struct blkv_driver *d, char *err,
                          size_t len);

/* child.c: free the children the drivers left open; with release, let
 * them release what they hold first (a crash: no I/O). */
void blkv_core_children_free(struct blkv_run *run, bool release);

/* services.c */
/* The initial image's bytes at [off, off+len); zeros past its end. */
void blkv_core_image_read(void *opaque, void *buf, uint64_t len, uint64_t off);

/* dispatch.c: the contract */
/* Normalise the capabilities open reported (align 0 means 1, max transfer
 * 0 or too big means BLKV_MAX_REQUEST); false if they are invalid. */
bool blkv_core_caps_ok(struct blkv_caps *c);
/* The atomicity unit to check: what the config asks for (0: 1), as far as
 * the driver promises it. */
unsigned blkv_core_atomic(const struct blkv_caps *c, unsigned want);
/* What the raw model says of a request to a device of capabilities c: 0,
 * or the error a malformed one fails with (-EINVAL, -EROFS). */
int blkv_core_request_error(const struct blkv_caps *c, enum blkv_op op, uint64_t off,
                            uint64_t len);
/* dispatch.c: requests */
/* Submit the request of a read, write, wzero, discard or flush op: wait for
 * room, check it against the contract, register it with the model, hand it
 * to the driver. */
void blkv_core_submit(struct blkv_run *run, const struct blkv_pop *op);
/* Coroutine body of a co_submit request. */
void blkv_core_co_submit_entry(void *arg);

/* run.c */
/* Make one unit of progress; false when nothing can progress (reported). */
bool blkv_core_progress(struct blkv_run *run);
/* Record a setup error in the result; returns BLKV_RUN_ERROR. */
int blkv_core_run_error(struct blkv_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether ret is a negative errno, as callbacks must return on failure. */
static inline bool blkv_core_is_errno(int ret)
{
    return ret < 0 && ret >= -4095;
}

#endif
