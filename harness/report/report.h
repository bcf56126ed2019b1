/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * report.h - the violation report.  Each call writes the report of one
 * violation from the run's history, fills in the result (status, first
 * line, signature, the whole report, reproducer paths), saves the
 * reproducer, prints the report unless quiet, marks the history failed,
 * and aborts in fuzz mode (opts->abort_on_violation).
 */
#ifndef BLKV_REPORT_REPORT_H
#define BLKV_REPORT_REPORT_H

#include "report/history.h"

/* A read returned data the model does not explain. */
void blkv_report_mismatch(struct blkv_history *h, const struct blkv_core_req *r,
                          const struct blkv_mismatch *mm);
/* A request returned r->ret where `expected` (0, or the errno of a malformed request) was due. */
void blkv_report_retval(struct blkv_history *h, const struct blkv_core_req *r, int expected);
/* Any other violation: a signature kind and a sentence. */
void blkv_report_other(struct blkv_history *h, const struct blkv_core_req *r, const char *kind,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The image check failed (kind "check", or "check/leak" for leaks where
 * none may be): the sentence, then the requests that touched the guest
 * bytes the check named (named, or NULL: the last ops before it). */
void blkv_report_check(struct blkv_history *h, const char *kind, const struct blkv_extent *named,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* repro.c: save the reproducer where opts->repro_dir says (if it does),
 * with `first_line` (the report's) as a comment; fills res->repro_* (empty
 * if nothing could be saved).  Where it was saved instead, or why nothing
 * was, goes into the report stream. */
void blkv_repro_save(struct blkv_history *h, const char *first_line, FILE *report);

#endif
