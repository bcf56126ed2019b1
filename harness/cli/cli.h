/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cli.h - what the blkv tool's command files share with main.c: reading
 * inputs the one way every command reads them, loading plugins, checking
 * driver specs.
 */
#ifndef BLKV_CLI_CLI_H
#define BLKV_CLI_CLI_H

#include <blkv/program.h>

#include <stddef.h>
#include <stdint.h>

/* How to read an input file: by its content, or as --text / --binary say. */
enum input_kind { INPUT_AUTO, INPUT_TEXT, INPUT_BINARY };

/* Load a program from a file ("-": standard input); with raw, a binary
 * input's bytes are kept there (NULL for trace text).  Prints a one-line
 * error and returns -1 on failure. */
int load_program(const char *path, enum input_kind kind, struct blkv_program *p, uint8_t **raw,
                 size_t *raw_len);
/* Check a --driver spec (NULL is fine); -1 with the error printed. */
int check_spec(const char *spec);
/* --load PATH: load a plugin; -1 with the error printed. */
int load_plugin(const char *path);
/* The driver for inputs that name none, when --driver is not given. */
const char *default_spec(void);
/* --text ('T') or --binary ('B'), the option's getopt value, into *kind;
 * -1 with the error printed when the other one was given too. */
int set_kind(enum input_kind *kind, int opt);
/* A path given to option opt: -1 with the error printed when it is empty
 * (which would silently mean "here", or nothing). */
int check_path(const char *opt, const char *path);

#endif
