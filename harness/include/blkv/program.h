/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * <blkv/program.h> - a blkv program: a config and a list of ops, with a total binary
 * decoder (every byte string is a valid program), its encoder, and the
 * human-readable trace text that round-trips with it.
 *
 * Requests are numbered in the order their submit ops appear (#0, #1, ...),
 * so cancel and wait name requests statically: the number does not depend on
 * how a run goes.  A cancel or wait of a request that has already completed
 * does nothing.
 */
#ifndef BLKV_PROGRAM_H
#define BLKV_PROGRAM_H

#include <blkv/driver.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum blkv_opcode {
    BLKV_P_READ,    /* submit a read of [offset, offset+len) */
    BLKV_P_WRITE,   /* submit a write (flags: FUA) */
    BLKV_P_WZERO,   /* submit a write-zeroes (flags: FUA, UNMAP) */
    BLKV_P_DISCARD, /* submit a discard */
    BLKV_P_FLUSH,   /* submit a flush */
    BLKV_P_CANCEL,  /* cancel request #arg */
    BLKV_P_STEP,    /* complete pending lower I/O number arg (mod the number
                       pending), failing it with -err when err != 0; for
                       drivers with their own events: poll once */
    BLKV_P_WAIT,    /* run the scheduler until request #arg completes */
    BLKV_P_DRAIN,   /* run the scheduler until nothing is in flight */
    BLKV_P_REOPEN,  /* drain, close the driver, open it again */
    BLKV_P_CHECK,   /* drain, run the driver's consistency check */
    BLKV_P_CRASH,   /* power loss: requests in flight are lost, lower files
                       keep per sector what arg chooses, the driver opens again */
    BLKV_P_FAULT,   /* a fault rule from now on: lower I/Os of event arg fail
                       with -err (flags: BLKV_P_ONCE), the first len spared */
    BLKV_P__COUNT
};

/* Op flags. */
#define BLKV_P_FUA 0x1u
#define BLKV_P_UNMAP 0x2u
#define BLKV_P_ONCE 0x4u /* fault: fail one I/O, not every one */

/*
 * The op table: everything about an op kind that is not what the run does
 * with it (core/run.c) lives in one row of blkv_opinfo(), so that a new kind
 * is a row here, its case in the runner, and what drivers make of it.  The
 * decoder, encoder, trace reader and writer, the mutator, the shrinker and
 * the qemu-io export all read the table.
 */

/* What follows an op's word in trace text (and its opcode byte in the
 * binary form). */
enum blkv_operand {
    BLKV_OPND_NONE,  /* nothing */
    BLKV_OPND_RANGE, /* OFF LEN, then the flag words the op allows */
    BLKV_OPND_REQ,   /* #N: a request submitted earlier (arg) */
    BLKV_OPND_STEP,  /* I [fail ERRNO]: a pending lower I/O (arg), an errno (err) */
    BLKV_OPND_CRASH, /* [N]: what the lower files keep (arg, 0..255) */
    BLKV_OPND_FAULT, /* EVENT ERRNO [once] [after N]: arg, err, flags, len */
};

/* How `blkv export-qemu-io` writes an op. */
enum blkv_qemu_io {
    BLKV_QIO_READ,    /* aio_read, with -P where the content is known */
    BLKV_QIO_WRITE,   /* aio_write -P k */
    BLKV_QIO_ZERO,    /* aio_write -z */
    BLKV_QIO_DISCARD, /* discard */
    BLKV_QIO_FLUSH,   /* flush */
    BLKV_QIO_DRAIN,   /* aio_flush: wait for everything in flight */
    BLKV_QIO_REOPEN,  /* aio_flush, then reopen */
    BLKV_QIO_POLL,    /* nothing (polling), unless it injects a fault: refused */
    BLKV_QIO_REFUSED, /* no qemu-io equivalent: the export is refused */
};

struct blkv_opinfo {
    const char *name;          /* its word in trace text */
    const char *usage;         /* e.g. "write OFF LEN [fua]" */
    enum blkv_operand operand;
    uint8_t flags;             /* the BLKV_P_* flags it may carry */
    int req;                   /* the request it submits (enum blkv_op), or -1 */
    enum blkv_qemu_io qemu_io;
    uint8_t mutate_weight;     /* how often the mutator inserts one (relative) */
    /* The binary form: opcode bytes per flags value, in byte order; the
     * bytes of all ops add up to 256 (the first one with bytes 0 ends). */
    struct {
        uint8_t flags, bytes;
    } decode[4];
};

struct blkv_pop {
    uint8_t code;    /* enum blkv_opcode */
    uint8_t flags;   /* BLKV_P_FUA, BLKV_P_UNMAP */
    uint16_t err;    /* step: errno to inject (a positive errno value), 0 for none */
    uint32_t arg;    /* cancel, wait: request number; step: pending-I/O index;
                        crash: what the lower files keep; fault: the event */
    uint64_t offset; /* read, write, wzero, discard */
    uint64_t len;    /* read, write, wzero, discard: 1 .. BLKV_MAX_REQUEST;
                        fault: how many I/Os of the event pass first */
};

enum blkv_sched {
    BLKV_SCHED_RANDOM, /* pending lower I/Os complete in an order drawn from the seed */
    BLKV_SCHED_FIFO,   /* in issue order */
    BLKV_SCHED_LIFO,   /* newest first */
};

enum blkv_init {
    BLKV_INIT_ZERO,    /* the device starts as zeros */
    BLKV_INIT_PATTERN, /* filled with source 1's pattern before the ops run */
    BLKV_INIT_IMAGE,   /* the bytes of a raw image file (trace text only) */
};

struct blkv_config {
    uint64_t size;     /* device size: 4096 .. BLKV_MAX_DEVICE_SIZE, multiple of 512 */
    uint32_t grain;    /* boundary hint for biasing (cluster size): power of 2, 512 .. 2M */
    uint32_t qd;       /* max requests in flight: 1 .. 256 */
    uint32_t atomic;   /* atomicity unit: power of 2, 1 .. 4096 */
    uint8_t sched;     /* enum blkv_sched */
    uint8_t init;      /* enum blkv_init */
    bool serialize;    /* serialize-overlaps mode */
    uint64_t seed;     /* scheduler and driver seed */
    /* Text-only settings (not in the binary form); NULL when unset.  Owned
     * by the program (malloc'd). */
    char *driver;      /* driver spec: "name" or "name opt=val opt=val" */
    char *init_image;  /* init image: path of a raw image */
    char *lower_image; /* path of a host file to load as lower file 0 (implies reopen) */
};

struct blkv_program {
    struct blkv_config cfg;
    struct blkv_pop *ops;
    size_t nops, cap;
};

#define BLKV_PROGRAM_MAX_OPS (1u << 20)

/* Defaults: size 64M, grain 64K, qd 8, atomic 1, random, zero, seed 0. */
BLKV_API void blkv_config_default(struct blkv_config *cfg);

BLKV_API void blkv_program_init(struct blkv_program *p);
BLKV_API void blkv_program_free(struct blkv_program *p);
/* Append an op; returns 0 or -ENOMEM / -E2BIG (over BLKV_PROGRAM_MAX_OPS). */
BLKV_API int blkv_program_push(struct blkv_program *p, const struct blkv_pop *op);
/* Remove every op of kind code that submits no request (request numbers
 * stay), e.g. crash and fault ops for a driver that has no lower files;
 * returns how many went. */
BLKV_API size_t blkv_program_drop(struct blkv_program *p, unsigned code);
/* Number of requests the program submits (read, write, wzero, discard, flush ops). */
BLKV_API uint64_t blkv_program_nreqs(const struct blkv_program *p);
/* The name of lower-I/O event ev ("l2_update"; "event-N" past the standard
 * ones) into buf; and the event a name means, or -1. */
BLKV_API const char *blkv_event_name(unsigned ev, char *buf, size_t len);
BLKV_API int blkv_event_parse(const char *name);

/* The op table row of code (NULL for an unknown code). */
BLKV_API const struct blkv_opinfo *blkv_opinfo(unsigned code);
/* Whether an op submits a request (read, write, wzero, discard, flush). */
BLKV_API bool blkv_opcode_submits(unsigned code);
/* Whether an op carries an offset and a length. */
BLKV_API bool blkv_opcode_ranged(unsigned code);
/* Its trace word ("unknown" for an unknown code). */
BLKV_API const char *blkv_opcode_name(unsigned code);
/* "read", "write", "write-zeroes", "discard", "flush". */
BLKV_API const char *blkv_req_op_name(enum blkv_op op);

/*
 * Decode bytes into a program.  Total: any input decodes (returns 0; only
 * -ENOMEM can fail), with a bounded number of ops (at most one per input
 * byte).  Offsets and lengths are biased toward grain and 512-byte
 * boundaries, the device end, and ranges of recent requests.  p must be
 * initialised; its previous content is replaced.
 */
BLKV_API int blkv_program_decode(const uint8_t *data, size_t size, struct blkv_program *p);

/*
 * Encode a program so that blkv_program_decode() gives it back exactly
 * (text-only config fields excepted).  Returns a malloc'd buffer and its
 * size in *size, or NULL on -ENOMEM.
 */
BLKV_API uint8_t *blkv_program_encode(const struct blkv_program *p, size_t *size);

/*
 * Parse trace text.  On error returns -EINVAL with "FILE:LINE: message" in
 * err (FILE is `name`).  p must be initialised.
 */
BLKV_API int blkv_program_parse(const char *text, size_t len, const char *name,
                       struct blkv_program *p, char *err, size_t errlen);

/*
 * Whether an input is trace text rather than a binary input: it starts
 * (after an optional UTF-8 byte-order mark and blank lines) with a comment
 * line of printable text or with a keyword or op of trace text, in any case
 * ("Write" counts, and blkv_program_parse() then refuses it, saying why);
 * or it is lines of printable UTF-8 text (a line feed in it) starting with a
 * letter.  Anything else (and an empty input) is binary.  A caller that
 * finds text should parse it and report its errors, never fall back to
 * decoding it as binary.
 */
BLKV_API bool blkv_program_is_text(const uint8_t *data, size_t len);

/* Format a program as trace text (malloc'd, NUL-terminated), or NULL. */
BLKV_API char *blkv_program_format(const struct blkv_program *p);
/* Format one op as a single line without newline into buf. */
BLKV_API void blkv_pop_format(const struct blkv_pop *op, char *buf, size_t len);

#endif
