/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * trace.c - the trace text: a program as human-readable lines, parsed and
 * formatted.  It round-trips with the binary form (program.c).
 *
 * TRACE TEXT
 *
 *   # a comment                  comments run to the end of the line
 *   blkv-trace 1                 optional; if present, the first line (version)
 *   driver buggy mode=lost-write every=3    the rest of the line is the spec
 *   size 64M                     device size: multiple of 512, 4K..8T
 *   grain 64K                    cluster size for biasing: power of 2, 512..2M
 *   qd 8                         max requests in flight: 1..256
 *   atomic 512                   atomicity unit: power of 2, 1..4096
 *   sched random                 random | fifo | lifo
 *   seed 42                      0..2^64-1
 *   init zero                    zero | pattern | image PATH
 *   serialize off                on | off
 *   lower PATH                   host file loaded as lower file 0
 *
 *   read OFF LEN                 submit a read (request #k for the k-th submit)
 *   write OFF LEN [fua]          a write
 *   wzero OFF LEN [unmap] [fua]  a write-zeroes
 *   discard OFF LEN              a discard
 *   flush                        a flush
 *   cancel #N                    cancel request #N
 *   wait #N                      run until request #N completes
 *   step I [fail ERRNO]          complete pending lower I/O I (0..255), failing
 *                                it with ERRNO (EIO, ENOSPC, ... or 1..4095)
 *   drain                        run until nothing is in flight
 *   reopen                       drain, close and reopen the driver
 *   check                        drain, check the image
 *
 * Words are separated by spaces or tabs.  Numbers are decimal or 0x hex,
 * with an optional K, M, G or T suffix (powers of 1024).  OFF is below 8T
 * and LEN in 1..8M; a range may lie past the device end (the core fails
 * such a request, as a raw disk would).  N must name a request already
 * submitted by an earlier line (the '#' is optional).  Every config line
 * is optional (defaults: size 64M, grain 64K, qd 8, atomic 1, sched
 * random, seed 0, init zero, serialize off), may appear once and must come
 * before the first op.  Lines are at most 4096 bytes (CRLF ends are fine,
 * and the last line may lack its newline); at most 1048576 ops.  A NUL byte
 * or another control byte (other than tab, and CR before the line feed)
 * anywhere is an error; a UTF-8 byte-order mark at the start is skipped.
 * Keywords and ops are lower case: "Write" is an error that says so.
 *
 * '#' starts a comment when it is the first character of a line (after
 * blanks), or begins a word and is not followed by a digit: "cancel #3" is
 * an operand, "write 0 512  # #1" ends in a comment.  The driver spec and
 * the paths are the rest of their line, without a trailing comment and
 * trailing blanks, so they cannot hold line feeds or such a comment.
 *
 * The formatter writes the canonical form: a header comment, every config
 * line, then one op per line, each submit op with a comment naming its
 * request number.  Parsing it gives the program back, and formatting that
 * gives the same text.  Errors are reported as "NAME:LINE: message".
 */
#include "program/limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_BYTES 4096
#define MAX_WORDS 8

/* The words of op flags, in the order they are written. */
static const struct {
    unsigned flag;
    const char *word;
} flag_words[] = {
    {BLKV_P_UNMAP, "unmap"},
    {BLKV_P_FUA, "fua"},
};

/* ---- parsing ------------------------------------------------------------- */

enum key {
    K_HEADER,
    K_DRIVER,
    K_SIZE,
    K_GRAIN,
    K_QD,
    K_ATOMIC,
    K_SCHED,
    K_SEED,
    K_INIT,
    K_SERIALIZE,
    K_LOWER,
    K__COUNT
};

static const char *const key_names[K__COUNT] = {
    "blkv-trace", "driver", "size", "grain",     "qd",    "atomic",
    "sched",      "seed",   "init", "serialize", "lower",
};

struct parser {
    const char *name;
    unsigned long line;
    char *err;
    size_t errlen;
    struct blkv_program *p;
    bool seen_line;                   /* a non-blank line came before */
    unsigned long key_line[K__COUNT]; /* where each config key was set, or 0 */
    uint64_t nsub;                    /* requests submitted so far */
    /* the current line */
    char text[LINE_BYTES + 1]; /* without comment and trailing blanks */
    char split[LINE_BYTES + 1];
    char *w[MAX_WORDS];     /* words, NUL-terminated, in split */
    size_t wpos[MAX_WORDS]; /* where each word starts in text */
    size_t nw;
    bool too_many; /* more than MAX_WORDS words */
};

/* Record "NAME:LINE: message" and fail. */
__attribute__((format(printf, 2, 3))) static int perr(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!ps->err || !ps->errlen)
        return -EINVAL;
    n = snprintf(ps->err, ps->errlen, "%s:%lu: ", ps->name, ps->line);
    if (n >= 0 && (size_t)n < ps->errlen) {
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Copy a line, drop its comment and trailing blanks (and a CR), split it. */
static void split_line(struct parser *ps, const char *line, size_t len)
{
    char *t = ps->text;
    size_t i, n = len;

    memcpy(t, line, len);
    t[len] = 0;
    for (i = 0; i < n && is_blank(t[i]); i++)
        ;
    if (i < n && t[i] == '#') {
        n = i;
    } else {
        for (; i < n; i++) {
            if (t[i] == '#' && (i == 0 || is_blank(t[i - 1])) &&
                !(t[i + 1] >= '0' && t[i + 1] <= '9')) {
                n = i;
                break;
            }
        }
    }
    while (n > 0 && (is_blank(t[n - 1]) || t[n - 1] == '\r'))
        n--;
    t[n] = 0;

    memcpy(ps->split, t, n + 1);
    ps->nw = 0;
    ps->too_many = false;
    for (i = 0; i < n;) {
        if (is_blank(ps->split[i])) {
            ps->split[i++] = 0;
            continue;
        }
        if (ps->nw == MAX_WORDS) {
            ps->too_many = true;
            break;
        }
        ps->w[ps->nw] = &ps->split[i];
        ps->wpos[ps->nw++] = i;
        while (i < n && !is_blank(ps->split[i]))
            i++;
    }
}

/* The text of the line from word i on. */
static const char *rest(const struct parser *ps, size_t i)
{
    return ps->text + ps->wpos[i];
}

/* Require exactly n words (the key and n-1 values). */
static int want_words(struct parser *ps, size_t n, const char *usage)
{
    if (ps->nw < n)
        return perr(ps, "%s: missing operand (expected '%s')", ps->w[0], usage);
    if (ps->nw > n || ps->too_many)
        return perr(ps, "%s: unexpected '%s' (expected '%s')", ps->w[0],
                    ps->nw > n ? ps->w[n] : "...", usage);
    return 0;
}

/* Parse word i as a number in lo..hi; what names it in messages. */
static int word_u64(struct parser *ps, size_t i, const char *what, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    int ret = blkv_parse_u64(ps->w[i], out);
    if (ret == -ERANGE || (ret == 0 && (*out < lo || *out > hi)))
        return perr(ps, "%s %s out of range %" PRIu64 "..%" PRIu64, what, ps->w[i], lo, hi);
    if (ret)
        return perr(ps, "%s: '%s' is not a number", what, ps->w[i]);
    return 0;
}

static int set_string(struct parser *ps, char **dst, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

static int parse_config(struct parser *ps, enum key k)
{
    struct blkv_config *cfg = &ps->p->cfg;
    const char *v;
    uint64_t n;
    int ret;

    if (ps->key_line[k])
        return perr(ps, "'%s' given twice (first on line %lu)", key_names[k], ps->key_line[k]);
    ps->key_line[k] = ps->line;

    switch (k) {
    case K_HEADER:
        if ((ret = want_words(ps, 2, "blkv-trace 1")))
            return ret;
        if (strcmp(ps->w[1], "1") != 0)
            return perr(ps, "unsupported trace version '%s' (this blkv reads version 1)", ps->w[1]);
        return 0;
    case K_DRIVER:
    case K_LOWER:
        if (ps->nw < 2)
            return perr(ps, "%s: missing %s", ps->w[0], k == K_DRIVER ? "spec" : "path");
        return set_string(ps, k == K_DRIVER ? &cfg->driver : &cfg->lower_image, rest(ps, 1));
    case K_SIZE:
        if ((ret = want_words(ps, 2, "size BYTES")) ||
            (ret = word_u64(ps, 1, "size", BLKV_MIN_DEVICE_SIZE, BLKV_MAX_DEVICE_SIZE, &n)))
            return ret;
        if (n % 512)
            return perr(ps, "size must be a multiple of 512");
        cfg->size = n;
        return 0;
    case K_GRAIN:
        if ((ret = want_words(ps, 2, "grain BYTES")) ||
            (ret = word_u64(ps, 1, "grain", BLKV_GRAIN_MIN, BLKV_GRAIN_MAX, &n)))
            return ret;
        if (!blkv_cfg_grain_ok(n))
            return perr(ps, "grain must be a power of 2");
        cfg->grain = (uint32_t)n;
        return 0;
    case K_QD:
        if ((ret = want_words(ps, 2, "qd N")) || (ret = word_u64(ps, 1, "qd", 1, BLKV_QD_MAX, &n)))
            return ret;
        cfg->qd = (uint32_t)n;
        return 0;
    case K_ATOMIC:
        if ((ret = want_words(ps, 2, "atomic BYTES")) ||
            (ret = word_u64(ps, 1, "atomic", 1, BLKV_ATOMIC_MAX, &n)))
            return ret;
        if (!blkv_cfg_atomic_ok(n))
            return perr(ps, "atomic must be a power of 2");
        cfg->atomic = (uint32_t)n;
        return 0;
    case K_SCHED:
        if ((ret = want_words(ps, 2, "sched random|fifo|lifo")))
            return ret;
        v = ps->w[1];
        if (strcmp(v, "random") == 0)
            cfg->sched = BLKV_SCHED_RANDOM;
        else if (strcmp(v, "fifo") == 0)
            cfg->sched = BLKV_SCHED_FIFO;
        else if (strcmp(v, "lifo") == 0)
            cfg->sched = BLKV_SCHED_LIFO;
        else
            return perr(ps, "unknown sched '%s' (random, fifo or lifo)", v);
        return 0;
    case K_SEED:
        if ((ret = want_words(ps, 2, "seed N")) ||
            (ret = word_u64(ps, 1, "seed", 0, UINT64_MAX, &n)))
            return ret;
        cfg->seed = n;
        return 0;
    case K_INIT:
        if (ps->nw >= 2 && strcmp(ps->w[1], "image") == 0) {
            if (ps->nw < 3)
                return perr(ps, "init image: missing path");
            cfg->init = BLKV_INIT_IMAGE;
            return set_string(ps, &cfg->init_image, rest(ps, 2));
        }
        if ((ret = want_words(ps, 2, "init zero|pattern|image PATH")))
            return ret;
        if (strcmp(ps->w[1], "zero") == 0)
            cfg->init = BLKV_INIT_ZERO;
        else if (strcmp(ps->w[1], "pattern") == 0)
            cfg->init = BLKV_INIT_PATTERN;
        else
            return perr(ps, "unknown init '%s' (zero, pattern or image PATH)", ps->w[1]);
        return 0;
    case K_SERIALIZE:
        if ((ret = want_words(ps, 2, "serialize on|off")))
            return ret;
        if (strcmp(ps->w[1], "on") == 0)
            cfg->serialize = true;
        else if (strcmp(ps->w[1], "off") == 0)
            cfg->serialize = false;
        else
            return perr(ps, "serialize must be on or off, not '%s'", ps->w[1]);
        return 0;
    case K__COUNT:
        break;
    }
    return 0;
}

/* OFF LEN in words 1 and 2. */
static int parse_range(struct parser *ps, struct blkv_pop *op)
{
    int ret;
    if ((ret = word_u64(ps, 1, "offset", 0, BLKV_MAX_DEVICE_SIZE - 1, &op->offset)) ||
        (ret = word_u64(ps, 2, "length", 1, BLKV_MAX_REQUEST, &op->len)))
        return ret;
    return 0;
}

/* Words 3.. of a ranged op with flags: flags from `allowed`, each at most once. */
static int parse_flags(struct parser *ps, struct blkv_pop *op, unsigned allowed, const char *usage)
{
    if (ps->too_many)
        return perr(ps, "%s: too many words (expected '%s')", ps->w[0], usage);
    for (size_t i = 3; i < ps->nw; i++) {
        unsigned f = 0;
        for (size_t k = 0; k < ARRAY_SIZE(flag_words); k++)
            if (strcmp(ps->w[i], flag_words[k].word) == 0)
                f = flag_words[k].flag;
        if (!(f & allowed) || (op->flags & f))
            return perr(ps, "%s: unexpected '%s' (expected '%s')", ps->w[0], ps->w[i], usage);
        op->flags |= (uint8_t)f;
    }
    return 0;
}

/* "#N" or "N" in word 1, a request submitted earlier. */
static int parse_reqnum(struct parser *ps, struct blkv_pop *op)
{
    const char *s = ps->w[1][0] == '#' ? ps->w[1] + 1 : ps->w[1];
    uint64_t n;
    int ret = blkv_parse_u64(s, &n);

    if (ret == -EINVAL)
        return perr(ps, "%s: '%s' is not a request number", ps->w[0], ps->w[1]);
    if (ret || n >= ps->nsub)
        return perr(ps, "%s #%s: only %" PRIu64 " request%s submitted so far", ps->w[0], s,
                    ps->nsub, ps->nsub == 1 ? "" : "s");
    op->arg = (uint32_t)n;
    return 0;
}

static int parse_op(struct parser *ps, unsigned code)
{
    const struct blkv_opinfo *oi = blkv_opinfo(code);
    struct blkv_pop op = {.code = (uint8_t)code};
    uint64_t n;
    int ret = 0;

    switch (oi->operand) {
    case BLKV_OPND_RANGE:
        if (!oi->flags) {
            ret = want_words(ps, 3, oi->usage);
            if (!ret)
                ret = parse_range(ps, &op);
            break;
        }
        if (ps->nw < 3)
            ret = perr(ps, "%s: missing operand (expected '%s')", ps->w[0], oi->usage);
        if (!ret)
            ret = parse_range(ps, &op);
        if (!ret)
            ret = parse_flags(ps, &op, oi->flags, oi->usage);
        break;
    case BLKV_OPND_REQ:
        ret = want_words(ps, 2, oi->usage);
        if (!ret)
            ret = parse_reqnum(ps, &op);
        break;
    case BLKV_OPND_STEP:
        if (ps->nw < 2)
            return perr(ps, "step: missing operand (expected 'step I [fail ERRNO]')");
        if ((ret = word_u64(ps, 1, "step index", 0, BLKV_STEP_INDEX_MAX, &n)))
            return ret;
        op.arg = (uint32_t)n;
        if (ps->nw == 2 && !ps->too_many)
            break;
        if (strcmp(ps->w[2], "fail") != 0)
            return perr(ps, "step: unexpected '%s' (expected 'step I [fail ERRNO]')", ps->w[2]);
        if (ps->nw < 4)
            return perr(ps, "step: missing errno after 'fail'");
        if (ps->nw > 4 || ps->too_many)
            return perr(ps, "step: unexpected '%s' (expected 'step I [fail ERRNO]')",
                        ps->nw > 4 ? ps->w[4] : "...");
        op.err = (uint16_t)blkv_errno_parse(ps->w[3]);
        if (!op.err)
            return perr(ps, "step: unknown errno '%s' (a name like EIO or 1..%d)", ps->w[3],
                        BLKV_STEP_ERRNO_MAX);
        break;
    case BLKV_OPND_CRASH:
        if (ps->nw > 2 || ps->too_many)
            return perr(ps, "crash: too many words (expected '%s')", oi->usage);
        if (ps->nw == 2 && (ret = word_u64(ps, 1, "crash choice", 0, BLKV_CRASH_ARG_MAX, &n)))
            return ret;
        op.arg = ps->nw == 2 ? (uint32_t)n : 0;
        break;
    case BLKV_OPND_FAULT: {
        int ev;
        if (ps->nw < 3)
            return perr(ps, "fault: missing operand (expected '%s')", oi->usage);
        if ((ev = blkv_event_parse(ps->w[1])) < 0)
            return perr(ps, "fault: unknown event '%s' (data_read, data_write, cow_read, "
                        "cow_write, l1_update, l2_update, l2_alloc, refblock_update, "
                        "refblock_alloc, reftable_grow, header_update, flush, or event-N)",
                        ps->w[1]);
        op.arg = (uint32_t)ev;
        op.err = (uint16_t)blkv_errno_parse(ps->w[2]);
        if (!op.err)
            return perr(ps, "fault: unknown errno '%s' (a name like EIO or 1..%d)", ps->w[2],
                        BLKV_STEP_ERRNO_MAX);
        if (ps->too_many)
            return perr(ps, "fault: too many words (expected '%s')", oi->usage);
        for (size_t i = 3; i < ps->nw; i++) {
            if (!strcmp(ps->w[i], "once") && !(op.flags & BLKV_P_ONCE)) {
                op.flags |= BLKV_P_ONCE;
            } else if (!strcmp(ps->w[i], "after") && i + 1 < ps->nw && !op.len) {
                if ((ret = word_u64(ps, i + 1, "fault after", 0, BLKV_FAULT_AFTER_MAX,
                                    &op.len)))
                    return ret;
                i++;
            } else {
                return perr(ps, "fault: unexpected '%s' (expected '%s')", ps->w[i], oi->usage);
            }
        }
        break;
    }
    case BLKV_OPND_NONE:
        ret = want_words(ps, 1, oi->usage);
        break;
    }
    if (ret)
        return ret;
    if (ps->p->nops >= BLKV_PROGRAM_MAX_OPS)
        return perr(ps, "too many ops (at most %u)", BLKV_PROGRAM_MAX_OPS);
    ret = blkv_program_push(ps->p, &op);
    if (ret == -ENOMEM) {
        perr(ps, "out of memory");
        return -ENOMEM;
    }
    ps->nsub += blkv_opcode_submits(code);
    return 0;
}

static int parse_line(struct parser *ps)
{
    const char *w0;

    if (ps->nw == 0)
        return 0;
    w0 = ps->w[0];
    for (unsigned code = 0; code < BLKV_P__COUNT; code++) {
        if (strcmp(w0, blkv_opcode_name(code)) == 0) {
            ps->seen_line = true;
            return parse_op(ps, code);
        }
    }
    for (unsigned k = 0; k < K__COUNT; k++) {
        if (strcmp(w0, key_names[k]) != 0)
            continue;
        if (k == K_HEADER && ps->seen_line)
            return perr(ps, "'blkv-trace' must be the first line");
        if (ps->p->nops)
            return perr(ps, "'%s' after the first op", w0);
        ps->seen_line = true;
        return parse_config(ps, (enum key)k);
    }
    for (unsigned code = 0; code < BLKV_P__COUNT; code++)
        if (strcasecmp(w0, blkv_opcode_name(code)) == 0)
            return perr(ps, "unknown op '%s' (ops are lower case: '%s')", w0,
                        blkv_opcode_name(code));
    for (unsigned k = 0; k < K__COUNT; k++)
        if (strcasecmp(w0, key_names[k]) == 0)
            return perr(ps, "unknown op '%s' (keywords are lower case: '%s')", w0, key_names[k]);
    return perr(ps, "unknown op '%s'", w0);
}

int blkv_program_parse(const char *text, size_t len, const char *name, struct blkv_program *p,
                       char *err, size_t errlen)
{
    struct parser *ps = calloc(1, sizeof(*ps));
    size_t pos = 0;
    int ret = 0;

    if (err && errlen)
        err[0] = 0;
    blkv_program_free(p);
    if (!ps) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", name ? name : "trace");
        return -ENOMEM;
    }
    ps->name = name ? name : "trace";
    ps->err = err;
    ps->errlen = errlen;
    ps->p = p;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        pos = 3; /* a UTF-8 byte-order mark, as some editors write */

    while (pos < len && !ret) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;

        pos += n + (nl != NULL);
        ps->line++;
        if (n > LINE_BYTES) {
            ret = perr(ps, "line too long (more than %d bytes)", LINE_BYTES);
            break;
        }
        if (memchr(line, 0, n)) {
            ret = perr(ps, "NUL byte in line");
            break;
        }
        for (size_t i = 0; i < n && !ret; i++) {
            unsigned char ch = (unsigned char)line[i];
            if ((ch < 0x20 && ch != '\t' && !(ch == '\r' && i == n - 1)) || ch == 0x7f)
                ret = perr(ps, "control byte 0x%02x at column %zu", ch, i + 1);
        }
        if (ret)
            break;
        split_line(ps, line, n);
        ret = parse_line(ps);
    }
    free(ps);
    if (ret)
        blkv_program_free(p);
    return ret;
}

/* ---- telling text from binary --------------------------------------------- */

/* Length of the UTF-8 sequence at d (at most n bytes), or 0 if it is not
 * printable text: an ASCII control byte other than tab, CR or LF, or an
 * invalid sequence. */
static size_t text_char(const uint8_t *d, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (d[0] < 0x80)
        return (d[0] >= 0x20 && d[0] != 0x7f) || d[0] == '\t' || d[0] == '\r' || d[0] == '\n';
    if (d[0] >= 0xc2 && d[0] <= 0xdf)
        len = 2, cp = d[0] & 0x1f;
    else if (d[0] >= 0xe0 && d[0] <= 0xef)
        len = 3, cp = d[0] & 0x0f;
    else if (d[0] >= 0xf0 && d[0] <= 0xf4)
        len = 4, cp = d[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (i = 1; i < len; i++) {
        if ((d[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (d[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Whether d[0..n) is all printable UTF-8 text. */
static bool all_text(const uint8_t *d, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = text_char(d + i, n - i)))
            return false;
    return true;
}

bool blkv_program_is_text(const uint8_t *d, size_t n)
{
    size_t i = 0, w;

    if (n == 0)
        return false;
    if (n >= 3 && !memcmp(d, "\xef\xbb\xbf", 3))
        i = 3;
    while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r'))
        i++;
    if (i < n && d[i] == '#') { /* a comment line, if it is text */
        const uint8_t *nl = memchr(d + i, '\n', n - i);
        if (all_text(d + i, nl ? (size_t)(nl - (d + i)) : n - i))
            return true;
    }
    for (w = i; w < n && w - i < 16 &&
                ((d[w] >= 'a' && d[w] <= 'z') || (d[w] >= 'A' && d[w] <= 'Z') || d[w] == '-');
         w++)
        ;
    if (w > i && (w == n || d[w] == ' ' || d[w] == '\t' || d[w] == '\r' || d[w] == '\n')) {
        char word[17];
        memcpy(word, d + i, w - i);
        word[w - i] = 0;
        for (unsigned code = 0; code < BLKV_P__COUNT; code++)
            if (strcasecmp(word, blkv_opcode_name(code)) == 0)
                return true;
        for (unsigned k = 0; k < K__COUNT; k++)
            if (strcasecmp(word, key_names[k]) == 0)
                return true;
    }
    /* hand-written lines with a typo in the first word; a short fuzzer input
     * ("+u") is printable too, but seldom starts with a letter and holds a
     * line feed */
    return i < n && ((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= 'A' && d[i] <= 'Z')) &&
           memchr(d, '\n', n) && all_text(d, n);
}

/* ---- formatting ---------------------------------------------------------- */

struct sb {
    char *d;
    size_t n, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->d ? b->d + b->n : NULL, b->d ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->d && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap - b->n <= (size_t)n)
            ncap *= 2;
        char *d = realloc(b->d, ncap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->d = d, b->cap = ncap;
    }
}

/* A config string on one line: line feeds become spaces. */
static void sb_line_string(struct sb *b, const char *key, const char *s)
{
    size_t start;
    sb_printf(b, "%s %s", key, s);
    if (b->oom)
        return;
    start = b->n - strlen(s);
    for (size_t i = start; i < b->n; i++)
        if (b->d[i] == '\n')
            b->d[i] = ' ';
    sb_printf(b, "\n");
}

void blkv_pop_format(const struct blkv_pop *op, char *buf, size_t len)
{
    const struct blkv_opinfo *oi = blkv_opinfo(op->code);

    if (!buf || !len)
        return;
    if (!oi) {
        snprintf(buf, len, "unknown-op-%u", (unsigned)op->code);
        return;
    }
    switch (oi->operand) {
    case BLKV_OPND_RANGE: {
        int n = snprintf(buf, len, "%s %" PRIu64 " %" PRIu64, oi->name, op->offset, op->len);
        for (size_t i = 0; i < ARRAY_SIZE(flag_words); i++)
            if ((oi->flags & op->flags & flag_words[i].flag) && n >= 0 && (size_t)n < len)
                n += snprintf(buf + n, len - (size_t)n, " %s", flag_words[i].word);
        break;
    }
    case BLKV_OPND_REQ:
        snprintf(buf, len, "%s #%" PRIu32, oi->name, op->arg);
        break;
    case BLKV_OPND_STEP:
        if (op->err) {
            const char *e = blkv_errno_name(op->err);
            if (e)
                snprintf(buf, len, "%s %" PRIu32 " fail %s", oi->name, op->arg, e);
            else
                snprintf(buf, len, "%s %" PRIu32 " fail %u", oi->name, op->arg,
                         (unsigned)op->err);
        } else {
            snprintf(buf, len, "%s %" PRIu32, oi->name, op->arg);
        }
        break;
    case BLKV_OPND_CRASH:
        if (op->arg)
            snprintf(buf, len, "%s %" PRIu32, oi->name, op->arg);
        else
            snprintf(buf, len, "%s", oi->name);
        break;
    case BLKV_OPND_FAULT: {
        char ev[32], en[16];
        const char *e = blkv_errno_name(op->err);
        int n;
        if (!e)
            snprintf(en, sizeof(en), "%u", (unsigned)op->err);
        n = snprintf(buf, len, "%s %s %s%s", oi->name, blkv_event_name(op->arg, ev, sizeof(ev)),
                     e ? e : en, (op->flags & BLKV_P_ONCE) ? " once" : "");
        if (op->len && n >= 0 && (size_t)n < len)
            snprintf(buf + n, len - (size_t)n, " after %" PRIu64, op->len);
        break;
    }
    case BLKV_OPND_NONE:
        snprintf(buf, len, "%s", oi->name);
        break;
    }
}

char *blkv_program_format(const struct blkv_program *p)
{
    static const char *const sched[] = {"random", "fifo", "lifo"};
    const struct blkv_config *c = &p->cfg;
    struct sb b = {.d = NULL};
    char num[32], line[160];
    uint64_t req = 0;

    sb_printf(&b, "# blkv trace: %zu op%s, %" PRIu64 " request%s\n", p->nops,
              p->nops == 1 ? "" : "s", blkv_program_nreqs(p),
              blkv_program_nreqs(p) == 1 ? "" : "s");
    sb_printf(&b, "blkv-trace 1\n");
    if (c->driver && *c->driver)
        sb_line_string(&b, "driver", c->driver);
    blkv_format_size(c->size, num, sizeof(num));
    sb_printf(&b, "size %s\n", num);
    blkv_format_size(c->grain, num, sizeof(num));
    sb_printf(&b, "grain %s\n", num);
    sb_printf(&b, "qd %" PRIu32 "\n", c->qd);
    blkv_format_size(c->atomic, num, sizeof(num));
    sb_printf(&b, "atomic %s\n", num);
    sb_printf(&b, "sched %s\n", sched[c->sched < 3 ? c->sched : 0]);
    sb_printf(&b, "seed %" PRIu64 "\n", c->seed);
    if (c->init == BLKV_INIT_IMAGE && c->init_image && *c->init_image)
        sb_line_string(&b, "init image", c->init_image);
    else
        sb_printf(&b, "init %s\n", c->init == BLKV_INIT_PATTERN ? "pattern" : "zero");
    sb_printf(&b, "serialize %s\n", c->serialize ? "on" : "off");
    if (c->lower_image && *c->lower_image)
        sb_line_string(&b, "lower", c->lower_image);

    for (size_t i = 0; i < p->nops && !b.oom; i++) {
        const struct blkv_pop *op = &p->ops[i];
        blkv_pop_format(op, line, sizeof(line));
        if (blkv_opcode_submits(op->code))
            sb_printf(&b, "%s  # #%" PRIu64 "\n", line, req++);
        else
            sb_printf(&b, "%s\n", line);
    }
    if (b.oom) {
        free(b.d);
        return NULL;
    }
    return b.d;
}
