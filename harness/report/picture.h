/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * picture.h - the picture of a run: one self-contained HTML page (inline
 * SVG, CSS and script; nothing fetched) that draws each request as a bar
 * on axes of logical time by device offset, the ops between them (lower
 * I/O steps, faults, crashes, reopens, checks), and, for a finding, the
 * failing read, the candidate writes and the write the found data came
 * from, beside the report text.  `blkv show` writes it, and so does the
 * reproducer saving (opts->repro_picture).
 */
#ifndef BLKV_REPORT_PICTURE_H
#define BLKV_REPORT_PICTURE_H

#include "report/history.h"

struct blkv_picture {
    const struct blkv_program *prog;
    const struct blkv_timeline *tl;
    const struct blkv_run_result *res; /* message, signature, stats */
    bool violation;                    /* a finding (else a clean run) */
    const char *report;                /* the report text, or NULL */
    const char *title;                 /* what was run: the input's name */
    const char *driver;                /* the driver spec as run */
};

/* Write the page to f; 0, or -EIO when writing failed. */
int blkv_picture_write(FILE *f, const struct blkv_picture *pic);

/* With opts->repro_picture, beside the reproducer just saved: the picture
 * of the run as it stands (requests so far), as blkv-repro-HASH.html, with
 * the report written so far to rf (an open_memstream stream on *buf) as
 * its text; then says where it is in the report.  Sets res->repro_picture,
 * empty when not written. */
void blkv_picture_save(struct blkv_history *h, FILE *rf, char *const *buf);

#endif
