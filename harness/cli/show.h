/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * show.h - `blkv show`: run an input while keeping its timeline and write
 * the picture of the run (report/picture.h) as one self-contained HTML
 * file; and the same picture for `blkv run --show`.
 */
#ifndef BLKV_CLI_SHOW_H
#define BLKV_CLI_SHOW_H

#include <blkv/program.h>
#include <blkv/run.h>

#include <stddef.h>

/* blkv show ARGS (argv[0] is "show"). */
int cmd_show(int argc, char **argv);

/* Where the picture of `input` goes for `--show where`: into directory
 * `where` (one that exists, or a path ending in '/') as NAME.html, NAME the
 * input's file name without .trace or .bin; else `where` itself. */
void show_path(const char *where, const char *input, char *buf, size_t len);

/* Write the picture of run res (made with opts.timeline) of program p from
 * `input` against `driver` to path; 0, or -1 with a one-line error printed. */
int show_write(const char *path, const char *input, const char *driver,
               const struct blkv_program *p, const struct blkv_run_result *res);

#endif
