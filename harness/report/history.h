/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * history.h - the record of a run that a report explains: the program, each
 * request as the driver saw it with its logical times and outcome, the
 * model, and where the run stands.  The core (one layer up) keeps it up to
 * date as the run goes; the report (report.h) only reads it.
 */
#ifndef BLKV_REPORT_HISTORY_H
#define BLKV_REPORT_HISTORY_H

#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/run.h>

#include "model/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct blkv_run;
struct blkv_co;

/* One request of the run, indexed by request number. */
struct blkv_core_req {
    struct blkv_req req;  /* what the driver sees */
    size_t op;            /* index of the op that submitted it */
    uint64_t t_submit, t_complete;
    int ret;
    int expect_err;       /* malformed: the error the raw model gives; else 0 */
    bool submitted, completed;
    bool cancelled;       /* a cancel was delivered */
    bool setup;           /* writes the initial content: not checked */
    size_t lost_at;       /* in flight at the crash of this op + 1 (0: not lost) */
    void *data;           /* buffer owned by the core (bufpool.h): a read's data */

    /* The core's own; the report does not look at these. */
    struct blkv_run *run;
    bool co_running;      /* its coroutine has not returned yet */
    bool in_model;        /* write-like request registered as a model source */
    bool evicts;          /* its successful completion evicts older data */
    enum blkv_src_kind kind;
    struct blkv_co *co;   /* in-process drivers: the request's coroutine */
    bool child;           /* a filter's request to its child (child.c): not
                             in the history, its completion only recorded */
    struct blkv_core_req *child_req; /* the request to a child in flight for it */
    size_t data_len;      /* size of data, for giving it back */
};

struct blkv_history {
    const struct blkv_program *prog;
    const struct blkv_run_opts *opts; /* where the report goes, reproducer saving */
    struct blkv_run_result *res;      /* filled in by the report */
    FILE *out;
    const char *driver_spec;          /* "name opt=val ...", as run */
    struct blkv_caps caps;            /* what the driver declared at its last open */
    unsigned atomic;                  /* atomicity unit checked */
    struct blkv_model *model;         /* NULL when nothing is verified */
    struct blkv_core_req *reqs;       /* reqs[0 .. next_req) were submitted */
    uint64_t next_req;
    size_t cur_op;                    /* the op running; prog->nops after the last */
    bool setting_up;                  /* writing the initial content */
    size_t crash_op;                  /* the op of the last crash + 1 (0: none yet) */
    const char *driver_error;         /* the first message the driver recorded, or "" */
    bool failed;                      /* a violation was reported */
    /* opts->timeline or opts->repro_picture: the ops' times (the core
     * records them), what the report found (the report records it);
     * requests are copied in by blkv_timeline_sync.  NULL otherwise. */
    struct blkv_timeline *timeline;
};

/* timeline.c */
/* A timeline for a program of nops ops, nothing found yet; NULL: no memory. */
struct blkv_timeline *blkv_timeline_new(size_t nops);
/* Copy the requests of the history so far into h->timeline (if any). */
void blkv_timeline_sync(struct blkv_history *h);
/* The timeline's name of source src (a model source number). */
uint64_t blkv_timeline_src(uint32_t src);

#endif
