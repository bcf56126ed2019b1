/*
 * core.h - state of one run, shared by the verifier (verify.c) and the
 * report writer (report.c).  Not for drivers.
 */
#ifndef BLKV_CORE_H
#define BLKV_CORE_H

#include "blkv.h"
#include "model.h"
#include "program.h"
#include "runtime.h"
#include "verify.h"

#define BLKV_MAX_OPTIONS 32

/* One request of the run, indexed by request number. */
struct blkv_core_req {
    struct blkv_req req;  /* what the driver sees */
    struct blkv_run *run;
    size_t op;            /* index of the op that submitted it */
    uint64_t t_submit, t_complete;
    int ret;
    int expect_err;       /* malformed: the error the raw model gives; else 0 */
    bool submitted, completed;
    bool cancelled;       /* a cancel was delivered */
    bool setup;           /* writes the initial content: not checked */
    bool co_running;      /* its coroutine has not returned yet */
    bool in_model;        /* write-like request registered as a model source */
    bool evicts;          /* its successful completion evicts older data */
    enum blkv_src_kind kind;
    struct blkv_co *co;   /* in-process drivers: the request's coroutine */
    void *data;           /* buffer owned by the core (bufpool.h) */
    size_t data_len;      /* its size, for giving it back */
};

/* The per-run context drivers see. */
struct blkv_ctx {
    struct blkv_run *run;
    const struct blkv_driver *drv;
    const char *opt_name[BLKV_MAX_OPTIONS];
    const char *opt_val[BLKV_MAX_OPTIONS];
    size_t nopts;
    char *spec_copy;      /* backing storage of the option strings */
    char error[512];      /* first error message of the run */
};

struct blkv_run {
    const struct blkv_program *prog;
    const struct blkv_run_opts *opts;
    struct blkv_run_result *res;
    FILE *out;
    struct blkv_driver drv;  /* the driver, copied to full size */
    const char *driver_spec;
    struct blkv_ctx ctx;
    void *state;
    bool opened;
    struct blkv_caps caps;
    unsigned atomic;         /* atomicity unit checked: config's, capped by the driver's */
    struct blkv_rt *rt;
    struct blkv_model *model;
    struct blkv_core_req *reqs;
    uint64_t nreqs, next_req;
    uint64_t inflight;
    uint64_t inflight_bytes;
    uint64_t clock;
    size_t cur_op;
    bool failed;           /* a violation was reported: verify nothing more */
    bool stuck;            /* requests can never complete: do not close */
    bool checked;          /* the check ran, and no request or reopen since */
    bool setting_up;       /* writing the initial content, before the first op */
    int image_fd;          /* init image, or -1 */
    struct blkv_extent *foot; /* what the program can reach, 4 KiB-rounded */
    size_t nfoot;
};

/* report.c: produce the report for a violation and fill res (status,
 * message, signature, report, repro paths).  `what` is NULL for a read
 * data mismatch (then mm is set), else a sentence for other violations. */
void blkv_report_mismatch(struct blkv_run *run, struct blkv_core_req *r,
                          const struct blkv_mismatch *mm);
void blkv_report_retval(struct blkv_run *run, struct blkv_core_req *r, int expected);
void blkv_report_other(struct blkv_run *run, struct blkv_core_req *r, const char *kind,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

const char *blkv_req_op_name(enum blkv_op op);

#endif
