/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ops.c - the op table (see <blkv/program.h>).
 *
 * The decode column is the binary form's opcode byte ranges, in this order:
 *
 *   0..59 read        60..115 write     116..123 write fua
 *   124..131 wzero    132..135 wzero unmap   136..137 wzero fua
 *   138..139 wzero unmap fua   140..153 discard   154..167 flush
 *   168..183 cancel   184..223 step     224..239 wait
 *   240..247 drain    248..251 reopen   252..255 check
 *
 * Changing it changes what every saved binary reproducer means
 * (tests/test_reproducers.sh says so).
 */
#include "program/limits.h"

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
                     {{0, 40}}},
    [BLKV_P_WAIT] = {"wait", "wait #N", BLKV_OPND_REQ, 0, -1, BLKV_QIO_DRAIN, 2, {{0, 16}}},
    [BLKV_P_DRAIN] = {"drain", "drain", BLKV_OPND_NONE, 0, -1, BLKV_QIO_DRAIN, 1, {{0, 8}}},
    [BLKV_P_REOPEN] = {"reopen", "reopen", BLKV_OPND_NONE, 0, -1, BLKV_QIO_REOPEN, 1, {{0, 4}}},
    [BLKV_P_CHECK] = {"check", "check", BLKV_OPND_NONE, 0, -1, BLKV_QIO_DRAIN, 1, {{0, 4}}},
};

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
