/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * export.h - turn a blkv program into a qemu-io script, so that a finding
 * can be reproduced with QEMU's own tools.
 */
#ifndef BLKV_EXPORT_H
#define BLKV_EXPORT_H

#include <blkv/program.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct blkv_export_opts {
    const char *format; /* image format for qemu-img create and qemu-io -f (NULL:
                           from the program's driver line); a plain word or refused */
    const char *source; /* name of the trace, for the header comment; may be NULL */
    bool commands_only; /* only the qemu-io commands, no shell wrapper */
};

/*
 * Write p as qemu-io commands: aio_write -P with a distinct byte per write,
 * aio_write -z [-u] for write-zeroes, discard, flush, aio_flush for drain
 * and wait, reopen; reads check with -P where the expected content is one
 * known byte, and are plain reads elsewhere.  Out-of-range requests, which
 * fail and change nothing in both, are left out.  By default the commands are
 * wrapped in a shell script that creates the image, runs qemu-io, and then
 * qemu-img check; the image is created with the options of the program's
 * driver line (nbd: create-opts, discard; blkv's qcow2: version,
 * cluster-size, refcount-bits, lazy-refcounts), and everything pasted into
 * the script is checked to be a plain word and quoted.  Returns 0, or
 * -EINVAL with a message in err for a program that uses what qemu-io cannot
 * express (cancel, fault injection, initial content other than zero, lower
 * image, a qcow2 backing file) or a value that is not a plain word.
 */
int blkv_export_qemu_io(const struct blkv_program *p, const struct blkv_export_opts *o,
                        FILE *out, char *err, size_t errlen);

#endif
