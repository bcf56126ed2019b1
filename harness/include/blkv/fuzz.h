/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * <blkv/fuzz.h> - fuzz targets: decode the input (the decoder is total, so
 * every input is a program), run it against a driver and the model, and
 * abort() with a report on the first violation.
 *
 * A whole fuzz target for a driver of your own:
 *
 *     #include <blkv/fuzz.h>
 *     extern const struct blkv_driver my_driver;
 *     BLKV_FUZZ_TARGET(my_driver, "opt=val")
 *
 * Linked with libblkv and -fsanitize=fuzzer it is a libFuzzer binary with
 * blkv's structure-aware mutator; built with afl-clang-fast and
 * -fsanitize=fuzzer, an AFL++ persistent-mode binary; linked with
 * libblkv-replay instead, a plain program that replays the files and
 * directories it is given.  Reproducers are saved (binary and trace text) in
 * $BLKV_REPRO_DIR (default: the current directory; "-": not saved).
 */
#ifndef BLKV_FUZZ_H
#define BLKV_FUZZ_H

#include <blkv/driver.h>
#include <blkv/program.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Run one fuzz input against driver drv with options opts ("opt=val ...",
 * NULL: none).  Returns 0, or -1 for an input over the data budget (below),
 * which is not run (libFuzzer keeps it out of the corpus); a violation
 * aborts after the report.  An input the driver cannot even open (a setup
 * error, say a config it refuses) is not a finding: it returns 0.
 */
BLKV_API int blkv_fuzz_one(const struct blkv_driver *drv, const char *opts, const uint8_t *data,
                           size_t size);

/*
 * The same, with the options built from the decoded program (so that
 * options such as an image format's come from the input too): opts_fn
 * writes a NUL-terminated option string into buf.
 */
typedef void (*blkv_fuzz_opts_fn)(const struct blkv_program *p, char *buf, size_t len);
BLKV_API int blkv_fuzz_one_with(const struct blkv_driver *drv, blkv_fuzz_opts_fn opts_fn,
                                const uint8_t *data, size_t size);

/*
 * The data budget.  A fuzz target sets aside (returns -1 for: libFuzzer
 * keeps it out of the corpus) a program whose requests (reads, writes,
 * write-zeroes, discards) span more bytes than its budget: max(8 x grain,
 * min(256 x grain, 2 MiB)) in all, past which each request may span at
 * most BLKV_FUZZ_PAST_BUDGET bytes.  A write or write-zeroes in a program
 * that holds a fault rule before it counts at least a grain (a rule can
 * make every write allocate, and leak, a cluster), so past the budget a
 * program with rules holds no such request at grains over
 * BLKV_FUZZ_PAST_BUDGET.  Fuzzers otherwise drift toward
 * multi-megabyte requests, whose cost is in moving and checking bytes and
 * in metadata per cluster (and a pattern-initialised device is filled
 * wherever a request reaches), not in reaching code: boundaries are
 * reached by offsets.  Likewise a program may reopen (or crash) and check
 * the image at most BLKV_FUZZ_MAX_REOPENS and BLKV_FUZZ_MAX_CHECKS times
 * (blkv_fuzz_max_reopens: fewer for grains over 256 KiB, down to one for
 * 2 MiB, whose tables an open and a check read whole): each costs a close,
 * open and full image check, and libFuzzer's hit-count buckets reward
 * doing it hundreds of times; and it may hold at most
 * BLKV_FUZZ_MAX_RULES fault rules (each lower I/O looks at every rule).
 * And the device may be at most blkv_fuzz_max_size(): the size whose
 * first-level table (qcow2's L1: 8 bytes per grain x grain/8 bytes of
 * device) is BLKV_FUZZ_MAX_TABLE, since every open and check handles that
 * table whole.  `blkv run` replays any program whole.
 * The binary decoder keeps to the same budget (lengths drawn within what
 * is left of it, one more reopen, check or rule than the limit, or a write
 * that would cost a grain past it, only after an escape byte), so most byte
 * strings run; this check is the safety net.
 */
#define BLKV_FUZZ_PAST_BUDGET 4096u
#define BLKV_FUZZ_MAX_REOPENS 8u
#define BLKV_FUZZ_MAX_CHECKS 8u
#define BLKV_FUZZ_MAX_RULES 16u
#define BLKV_FUZZ_MAX_TABLE (UINT64_C(2) << 20)
BLKV_API uint64_t blkv_fuzz_budget(const struct blkv_config *cfg);
/* The reopens and crashes (and, separately, the checks) a program of cfg
 * may hold: BLKV_FUZZ_MAX_REOPENS x 256 KiB / grain, between 1 and
 * BLKV_FUZZ_MAX_REOPENS (8 up to 256 KiB grains, 4 at 512 KiB, 2 at 1 MiB,
 * 1 at 2 MiB); BLKV_FUZZ_MAX_CHECKS scales alike. */
BLKV_API unsigned blkv_fuzz_max_reopens(const struct blkv_config *cfg);
BLKV_API unsigned blkv_fuzz_max_checks(const struct blkv_config *cfg);
/* The largest device size a program of cfg's grain may have:
 * BLKV_FUZZ_MAX_TABLE / 8 x grain x grain / 8, at most BLKV_MAX_DEVICE_SIZE
 * (8 GiB at 512-byte grains, 512 GiB at 4 KiB, all sizes from 16 KiB). */
BLKV_API uint64_t blkv_fuzz_max_size(const struct blkv_config *cfg);
/* The index of p's first op over the budget, or p->nops (the ops only; the
 * device size is blkv_fuzz_in_budget's). */
BLKV_API size_t blkv_fuzz_over_budget(const struct blkv_program *p);
/* Whether the fuzz targets run p rather than set it aside: its device is
 * at most blkv_fuzz_max_size() and no op goes over the budget. */
BLKV_API bool blkv_fuzz_in_budget(const struct blkv_program *p);
/* Cut the requests of p that go over the budget, so that none does, and a
 * device over blkv_fuzz_max_size() to that size. */
BLKV_API void blkv_fuzz_fit_budget(struct blkv_program *p);

/*
 * The structure-aware mutator and crossover (libFuzzer's custom mutator
 * interface).  They call libFuzzer's LLVMFuzzerMutate for byte mutations
 * where it is linked in, and a simple byte mutation of their own where not.
 */
BLKV_API size_t blkv_fuzz_mutate(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
BLKV_API size_t blkv_fuzz_crossover(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                    size_t size2, uint8_t *out, size_t max_out_size,
                                    unsigned int seed);

/* The entry points libFuzzer, AFL++'s driver and libblkv-replay call. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed);

/* The custom mutator and crossover, for a target that defines its own
 * LLVMFuzzerTestOneInput over programs.  Define BLKV_FUZZ_NO_MUTATOR to
 * leave them out (libFuzzer's byte mutations only). */
#ifdef BLKV_FUZZ_NO_MUTATOR
#define BLKV_FUZZ_MUTATOR
#else
#define BLKV_FUZZ_MUTATOR                                                                   \
    size_t LLVMFuzzerCustomMutator(uint8_t *blkv_data_, size_t blkv_size_,                 \
                                   size_t blkv_max_, unsigned int blkv_seed_)              \
    {                                                                                       \
        return blkv_fuzz_mutate(blkv_data_, blkv_size_, blkv_max_, blkv_seed_);            \
    }                                                                                       \
    size_t LLVMFuzzerCustomCrossOver(const uint8_t *blkv_d1_, size_t blkv_n1_,             \
                                     const uint8_t *blkv_d2_, size_t blkv_n2_,             \
                                     uint8_t *blkv_out_, size_t blkv_max_,                 \
                                     unsigned int blkv_seed_)                              \
    {                                                                                       \
        return blkv_fuzz_crossover(blkv_d1_, blkv_n1_, blkv_d2_, blkv_n2_, blkv_out_,      \
                                   blkv_max_, blkv_seed_);                                  \
    }
#endif

/* A fuzz target: programs against driver `drv` (a struct, not a pointer)
 * with options `opts` (a string, "" for none). */
#define BLKV_FUZZ_TARGET(drv, opts)                                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *blkv_data_, size_t blkv_size_)               \
    {                                                                                       \
        return blkv_fuzz_one(&(drv), (opts), blkv_data_, blkv_size_);                      \
    }                                                                                       \
    BLKV_FUZZ_MUTATOR

/* A fuzz target whose options come from the program: opts_fn as in
 * blkv_fuzz_one_with. */
#define BLKV_FUZZ_TARGET_WITH(drv, opts_fn)                                                 \
    int LLVMFuzzerTestOneInput(const uint8_t *blkv_data_, size_t blkv_size_)               \
    {                                                                                       \
        return blkv_fuzz_one_with(&(drv), (opts_fn), blkv_data_, blkv_size_);              \
    }                                                                                       \
    BLKV_FUZZ_MUTATOR

#endif
