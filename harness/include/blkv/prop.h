/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * <blkv/prop.h> - the property runner: random programs from a seed, no coverage
 * guidance, and shrinking of a failing program to a minimal one.
 */
#ifndef BLKV_PROP_H
#define BLKV_PROP_H

#include <blkv/program.h>
#include <blkv/run.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * A random program for (seed, index): random bytes decoded like a fuzz
 * input, cut to at most nops ops, with a config drawn from a matrix of
 * device sizes, queue depths, scheduling policies and initial contents.
 * Deterministic.  p must be initialised.
 */
BLKV_API int blkv_program_random(uint64_t seed, uint64_t index, size_t nops, struct blkv_program *p);

/* Whether a run result counts as "the same failure" for shrinking. */
typedef bool (*blkv_shrink_pred)(const struct blkv_run_result *res, void *opaque);

/*
 * Shrink p in place while pred holds for its runs against driver with its
 * options driver_opts: delta
 * debugging over ops (dropping cancels and waits of removed requests and
 * renumbering the rest), then simpler configs, offsets and lengths.  Stops
 * after max_runs runs.  Returns the number of runs made.
 */
BLKV_API uint64_t blkv_shrink(struct blkv_program *p, const struct blkv_driver *driver,
                     const char *driver_opts, blkv_shrink_pred pred, void *opaque,
                     uint64_t max_runs);

/* Keeps a failure whose signature equals `sig` (a NUL-terminated string). */
BLKV_API bool blkv_same_signature(const struct blkv_run_result *res, void *sig);

struct blkv_prop_opts {
    const struct blkv_driver *driver;
    const char *driver_opts; /* "opt=val ..." or NULL */
    uint64_t seed;
    uint64_t runs;        /* programs to run (0: unlimited, bounded by time) */
    double seconds;       /* time budget (0: unlimited, bounded by runs) */
    size_t ops;           /* ops per program */
    const char *save_dir; /* where the minimal reproducer goes */
    bool progress;        /* a live progress line on stderr */
    double progress_every; /* without it: a progress line on stderr every so many
                              seconds (0: none), for logs */
    uint64_t shrink_runs; /* budget of runs for shrinking (0: 2000) */
    FILE *out;
    /* Draws each program's driver options from the program, as a fuzz
     * target that takes image options from its input does (NULL: the same
     * driver_opts for every program).  The options driver_opts sets stay
     * as given; drawn ones are added for the rest.  A finding's report and
     * reproducer carry the options it ran with. */
    void (*vary)(const struct blkv_program *p, char *buf, size_t len);
    /* On SIGINT and SIGTERM (unless ignored), write the summary so far to
     * out (while a failure is shrunk: the failure, and its first run's
     * reproducer, which is saved before the shrink) and die of the signal
     * as before.  The handlers are installed for the call only; a driver's
     * own handler installed meanwhile runs first.  Off: no handlers. */
    bool signal_summary;
};

/* Run the property loop; 0 clean, 1 a failure (shrunk, saved, reported;
 * one that does not fail again on the final rerun is reported and saved
 * from its first run, with a note), 2 error. */
BLKV_API int blkv_prop(const struct blkv_prop_opts *o);

#endif
