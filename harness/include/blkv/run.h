/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * <blkv/run.h> - run a program against a driver under test and the raw model,
 * and load drivers from plugins.
 *
 * blkv_run() opens the driver, submits the program's requests through the one
 * dispatch layer that checks the driver contract, drives the scheduler, and
 * checks every completion against the model: return values first, then read
 * data.  The first violation produces the report; in fuzz mode it
 * then calls abort() so that libFuzzer, AFL++ and OSS-Fuzz see a crash, in
 * tool mode the run drains, closes and returns BLKV_RUN_VIOLATION.
 */
#ifndef BLKV_RUN_H
#define BLKV_RUN_H

#include <blkv/driver.h>
#include <blkv/program.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum blkv_run_status {
    BLKV_RUN_OK = 0,        /* every completion was explained by the model */
    BLKV_RUN_VIOLATION = 1, /* the driver misbehaved: a report was produced */
    BLKV_RUN_ERROR = 2,     /* the run could not be set up (bad driver spec,
                               option, image that the driver refuses, ...) */
};

struct blkv_run_opts {
    /* The driver under test (required) and its options, "opt=val opt=val"
     * (NULL or "": none).  The program's own driver line is not looked at:
     * the caller resolves names (the blkv tool through its registry). */
    const struct blkv_driver *driver;
    const char *driver_opts;
    /* Fuzz mode: after the report (and saving), abort(). */
    bool abort_on_violation;
    /* Directory for reproducers (binary and text); NULL: don't save. */
    const char *repro_dir;
    /* The input the program was decoded from, saved verbatim as the binary
     * reproducer; NULL: the program's encoding is saved. */
    const uint8_t *input;
    size_t input_len;
    /* Where reports and errors go; NULL: stderr. */
    FILE *out;
    /* Print nothing (the caller reads res->report). */
    bool quiet;
    /* Print each op as it runs (to out). */
    bool verbose;
    /* Driver alone, for measuring the harness's own cost: the same requests
     * through the same dispatch and scheduler, but no model, no data
     * patterns (writes carry zeros), no read checks and no image checks.
     * Return values are still checked against the contract. */
    bool no_verify;
    /* Initial content of the lower files of an in-process driver, copied in
     * before the open: lower[0] is the image, lower[1] a backing file
     * (NULL: empty; a non-NULL pointer with length 0 is an empty file).
     * With lower[0] set the driver opens what it holds (create=false), as
     * with the program's lower_image, which it replaces. */
    const uint8_t *lower[2];
    size_t lower_len[2];
    /* The lower files hold an untrusted image (fuzzed bytes) whose content
     * is unknown: there is no model and no data is checked, any request may
     * fail, and only the driver contract is checked.  Open, every request
     * and the check return 0 or a negative errno (-4095..-1); a failed open
     * leaves a message in the context; open reports valid capabilities;
     * nothing deadlocks (open, check and close included).  An open that
     * refuses the image cleanly, first or on a reopen, ends the run with
     * BLKV_RUN_ERROR and the driver's message; a reopen may change the
     * size (the ops may have overwritten a corrupt image's header). */
    bool untrusted;
    /* Directory (created if missing) for the lower files of an in-process
     * driver as each crash leaves them, before the driver opens again:
     * DIR/crash-K.lowerI for the Kth crash (from 1) and lower file I
     * (0: the image, 1: a backing file, if the driver made one).  NULL: none. */
    const char *crash_dir;
    /* Keep a timeline of the run in res->timeline (see struct blkv_timeline):
     * every request with its times and outcome, when each op ran, and what
     * a report found.  It is what `blkv show` draws. */
    bool timeline;
    /* With repro_dir: beside each saved reproducer write a picture of the
     * run as it stood at the violation (blkv-repro-HASH.html, as `blkv
     * show` draws it); res->repro_picture names it. */
    bool repro_picture;
};

struct blkv_run_stats {
    uint64_t ops;            /* ops executed */
    uint64_t requests;       /* requests submitted */
    uint64_t malformed;      /* of those, rejected by the contract checks */
    uint64_t cancels;        /* cancels delivered to the driver */
    uint64_t reads_checked;  /* successful reads whose data was verified */
    uint64_t bytes_verified; /* bytes of read data verified */
    uint64_t faults;         /* lower I/Os failed by injection */
    uint64_t reopens;
    uint64_t crashes;        /* crash ops run */
    uint64_t leaks_allowed;  /* leaked clusters image checks found where that is
                                harmless (after a fault, or a crash where the
                                driver declares BLKV_CRASH_LEAKS), summed */
};

/* ---- the timeline of a run (opts->timeline) ------------------------------ */

/* One request, numbered as trace text and reports number them (#N). */
struct blkv_timeline_req {
    size_t op;                     /* the program op that submitted it */
    enum blkv_op kind;             /* what the op asked for (a write-zeroes stays one
                                      even where the core emulates it) */
    uint32_t flags;                /* BLKV_REQ_FUA, BLKV_REQ_UNMAP, as submitted */
    uint64_t offset, len;          /* flush: 0, 0 */
    uint64_t t_submit, t_complete; /* logical times; t_complete 0: never completed */
    int ret;                       /* the completion's return value */
    bool malformed;                /* refused by the contract: the driver never saw it */
    bool cancelled;                /* a cancel was delivered to the driver */
    size_t lost_at;                /* lost in the power loss of op lost_at - 1 (0: not) */
};

/* When an op ran: the logical clock before and after it, and how many
 * lower I/Os fault injection failed meanwhile. */
struct blkv_timeline_op {
    bool ran;                      /* false: the run ended before it */
    uint64_t t_begin, t_end;
    uint64_t faults;
};

/* A source of data in a finding: a request number, or one of these. */
#define BLKV_TL_NONE UINT64_MAX            /* nothing: no write explains the data */
#define BLKV_TL_INITIAL (UINT64_MAX - 1)   /* the initial content */
#define BLKV_TL_ZEROS (UINT64_MAX - 2)     /* zeros of older data (not attributed) */
#define BLKV_TL_MAX_CANDS 16

struct blkv_timeline {
    size_t nops;                   /* the program's ops, in order */
    struct blkv_timeline_op *ops;
    uint64_t nreqs;                /* every request submitted */
    struct blkv_timeline_req *reqs;
    /* What the report said, the same facts it prints; fail_req is
     * BLKV_TL_NONE for a clean run or a violation of no request (a failed
     * image check, say), and the rest is set for a read that returned
     * unexplained data only. */
    uint64_t fail_req;             /* the request the report is about */
    uint64_t mismatch_offset, mismatch_len; /* the first unexplained run */
    size_t ncands;                 /* the candidates there visible to the read */
    uint64_t cands[BLKV_TL_MAX_CANDS];
    size_t nevicted;               /* candidates no longer visible to it */
    uint64_t evicted[BLKV_TL_MAX_CANDS];
    uint64_t found;                /* whose data was found there */
    uint64_t missing;              /* a write that completed before the read was
                                      submitted yet is not (all) there, or BLKV_TL_NONE */
};

struct blkv_run_result {
    enum blkv_run_status status;
    /* ERROR: the message; VIOLATION: the report's first line. */
    char message[512];
    /* VIOLATION: a short signature for deduplication, e.g.
     * "contents/read/stale" or "retval/write". */
    char signature[96];
    /* VIOLATION: the whole report (malloc'd; free with blkv_run_result_free). */
    char *report;
    /* Paths of the saved reproducer, empty if not saved. */
    char repro_bin[4096];
    char repro_text[4096];
    struct blkv_run_stats stats;
    /* The capabilities the driver declared at its last successful open. */
    struct blkv_caps caps;
    /* opts->timeline: the run's timeline (freed by blkv_run_result_free);
     * NULL otherwise or when out of memory. */
    struct blkv_timeline *timeline;
    /* opts->repro_picture: the path of the picture saved, empty if none. */
    char repro_picture[4096];
    /* ERROR because the driver refused a fault rule (one its server cannot
     * express): that op's index plus one; else 0. */
    uint64_t refused_op;
};

BLKV_API int blkv_run(const struct blkv_program *p, const struct blkv_run_opts *opts,
             struct blkv_run_result *res);
/* Free what res holds (the report, the timeline). */
BLKV_API void blkv_run_result_free(struct blkv_run_result *res);
/* Free a timeline (NULL is fine). */
BLKV_API void blkv_timeline_free(struct blkv_timeline *tl);

/* Check a driver struct (API version, size, required callbacks) and its
 * options "opt=val ..." without running: 0, or -EINVAL with a message in err. */
BLKV_API int blkv_driver_opts_check(const struct blkv_driver *d, const char *opts, char *err,
                           size_t errlen);

/* Open driver d with opts on a fresh default device and report its
 * capabilities; 0, or a negative errno with a message in err. */
BLKV_API int blkv_driver_probe(const struct blkv_driver *d, const char *opts, struct blkv_caps *caps,
                      char *err, size_t errlen);

/* Whether driver d with opts takes crash ops (*crash) and fault ops
 * (*fault): in-process drivers always; others when they have the crash and
 * fault callbacks and say so at open (caps.crash, caps.fault_rules), which
 * this finds out with blkv_driver_probe (a run) when they have them, and
 * remembers for the last d and opts asked. */
BLKV_API void blkv_driver_takes(const struct blkv_driver *d, const char *opts, bool *crash,
                                bool *fault);

/* Drop from p the ops driver d with opts would refuse or never act on:
 * crash and fault ops where blkv_driver_takes says no, and, for drivers
 * that are not in-process, fault rules on an event the driver never tags
 * (not data_read, data_write or flush, not in std_events, not one of its
 * events), which such a driver's server cannot express, and rules past the
 * limits its caps give (fault_after_max, fault_after_events).  In-process
 * drivers keep every op (a rule that never fires still lets requests
 * fail).  Returns how many ops were dropped. */
BLKV_API size_t blkv_driver_fit(const struct blkv_driver *d, const char *opts,
                                struct blkv_program *p);

/* Load the plugin at path (a shared object exporting blkv_plugin_init; a
 * bare file name is taken in the current directory) and check its driver.
 * Returns the driver, a copy at this blkv's full struct size that stays
 * valid for the life of the process (loading a path again returns it), or
 * NULL with a one-line message naming the file in err. */
BLKV_API const struct blkv_driver *blkv_plugin_load(const char *path, char *err, size_t errlen);
/* The path a driver returned by blkv_plugin_load came from; NULL for any
 * other driver. */
BLKV_API const char *blkv_plugin_path(const struct blkv_driver *d);

/* "name opts" (malloc'd), as a trace's driver line and reports name a
 * driver, or NULL on -ENOMEM. */
BLKV_API char *blkv_driver_spec_format(const struct blkv_driver *d, const char *opts);

#endif
