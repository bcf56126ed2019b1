/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ops.c - the op table (see <blkv/program.h>).
 *
 * The decode column is the binary form's opcode byte ranges; decode_order
 * lists the kinds in byte order:
 *
 *   0..59 read        60..115 write     116..123 write fua
 *   124..131 wzero    132..135 wzero unmap   136..137 wzero fua
 *   138..139 wzero unmap fua   140..153 discard   154..167 flush
 *   168..183 cancel   184..215 step     216..219 crash
 *   220..221 fault    222..223 fault once       224..239 wait
 *   240..247 drain    248..251 reopen   252..255 check
 *
 * Changing it changes what saved binary reproducers mean
 * (tests/test_reproducers.sh says so).  crash and fault took bytes 216..223
 * from step in December 2026; the checked-in reproducers were decoded again
 * (their traces keep what they meant before: the text form is stable).
 */
#include "program/limits.h"

#include <stdio.h>
#include <string.h>

#define F BLKV_P_FUA
#define U BLKV_P_UNMAP

static const struct blkv_opinfo op_table[BLKV_P__COUNT] = {
    [BLKV_P_READ] = {"read", "read OFF LEN", BLKV_OPND_RANGE, 0, BLKV_OP_READ, BLKV_QIO_READ, 3,
                     {{0, 60}}},
    [BLKV_P_WRITE] = {"write", "write OFF LEN [fua]", BLKV_OPND_RANGE, F, BLKV_OP_WRITE,
                      BLKV_QIO_WRITE, 4, {{0, 56}, {F, 8}}},
    [BLKV_P_WZERO] = {"wzero", "wzero OFF LEN [unmap] [fua]", BLKV_OPND_RANGE, F | U,
                      BLKV_OP_WRITE_ZEROES, BLKV_QIO_ZERO, 1, {{0, 8}, {U, 4}, {F, 2}, {U | F, 2}}},
    [BLKV_P_DISCARD] = {"discard", "discard OFF LEN", BLKV_OPND_RANGE, 0, BLKV_OP_DISCARD,
                        BLKV_QIO_DISCARD, 1, {{0, 14}}},
    [BLKV_P_FLUSH] = {"flush", "flush", BLKV_OPND_NONE, 0, BLKV_OP_FLUSH, BLKV_QIO_FLUSH, 1,
                      {{0, 14}}},
    [BLKV_P_CANCEL] = {"cancel", "cancel #N", BLKV_OPND_REQ, 0, -1, BLKV_QIO_REFUSED, 2,
                       {{0, 16}}},
    [BLKV_P_STEP] = {"step", "step I [fail ERRNO]", BLKV_OPND_STEP, 0, -1, BLKV_QIO_POLL, 3,
                     {{0, 32}}},
    [BLKV_P_WAIT] = {"wait", "wait #N", BLKV_OPND_REQ, 0, -1, BLKV_QIO_DRAIN, 2, {{0, 16}}},
    [BLKV_P_DRAIN] = {"drain", "drain", BLKV_OPND_NONE, 0, -1, BLKV_QIO_DRAIN, 1, {{0, 8}}},
    [BLKV_P_REOPEN] = {"reopen", "reopen", BLKV_OPND_NONE, 0, -1, BLKV_QIO_REOPEN, 1, {{0, 4}}},
    [BLKV_P_CHECK] = {"check", "check", BLKV_OPND_NONE, 0, -1, BLKV_QIO_DRAIN, 1, {{0, 4}}},
    [BLKV_P_CRASH] = {"crash", "crash [N]", BLKV_OPND_CRASH, 0, -1, BLKV_QIO_REFUSED, 1, {{0, 4}}},
    [BLKV_P_FAULT] = {"fault", "fault EVENT ERRNO [once] [after N]", BLKV_OPND_FAULT,
                      BLKV_P_ONCE, -1, BLKV_QIO_REFUSED, 1, {{0, 2}, {BLKV_P_ONCE, 2}}},
};

/* The kinds in the order of their opcode bytes. */
static const uint8_t decode_order[BLKV_P__COUNT] = {
    BLKV_P_READ,  BLKV_P_WRITE, BLKV_P_WZERO, BLKV_P_DISCARD, BLKV_P_FLUSH,
    BLKV_P_CANCEL, BLKV_P_STEP, BLKV_P_CRASH, BLKV_P_FAULT,   BLKV_P_WAIT,
    BLKV_P_DRAIN, BLKV_P_REOPEN, BLKV_P_CHECK,
};

static const char *const event_names[BLKV_EV__STANDARD] = {
    [BLKV_EV_NONE] = "none",
    [BLKV_EV_DATA_READ] = "data_read",
    [BLKV_EV_DATA_WRITE] = "data_write",
    [BLKV_EV_COW_READ] = "cow_read",
    [BLKV_EV_COW_WRITE] = "cow_write",
    [BLKV_EV_L1_UPDATE] = "l1_update",
    [BLKV_EV_L2_UPDATE] = "l2_update",
    [BLKV_EV_L2_ALLOC] = "l2_alloc",
    [BLKV_EV_REFBLOCK_UPDATE] = "refblock_update",
    [BLKV_EV_REFBLOCK_ALLOC] = "refblock_alloc",
    [BLKV_EV_REFTABLE_GROW] = "reftable_grow",
    [BLKV_EV_HEADER_UPDATE] = "header_update",
    [BLKV_EV_FLUSH] = "flush",
};

const char *blkv_event_name(unsigned ev, char *buf, size_t len)
{
    if (ev < BLKV_EV__STANDARD)
        snprintf(buf, len, "%s", event_names[ev]);
    else
        snprintf(buf, len, "event-%u", ev);
    return buf;
}

int blkv_event_parse(const char *name)
{
    uint64_t n;
    for (unsigned ev = 1; ev < BLKV_EV__STANDARD; ev++)
        if (!strcmp(name, event_names[ev]))
            return (int)ev;
    if (!strncmp(name, "event-", 6) && blkv_parse_u64(name + 6, &n) == 0 && n >= 1 &&
        n <= BLKV_EVENT_MAX)
        return (int)n;
    return -1;
}

unsigned blkv_opcode_in_order(unsigned i)
{
    return i < BLKV_P__COUNT ? decode_order[i] : BLKV_P__COUNT;
}

#undef F
#undef U

const struct blkv_opinfo *blkv_opinfo(unsigned code)
{
    return code < BLKV_P__COUNT ? &op_table[code] : NULL;
}

bool blkv_opcode_submits(unsigned code)
{
    return code < BLKV_P__COUNT && op_table[code].req >= 0;
}

bool blkv_opcode_ranged(unsigned code)
{
    return code < BLKV_P__COUNT && op_table[code].operand == BLKV_OPND_RANGE;
}

const char *blkv_opcode_name(unsigned code)
{
    return code < BLKV_P__COUNT ? op_table[code].name : "unknown";
}
