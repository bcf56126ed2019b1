/*
 * fuzz.h - what every fuzz target shares: decode the input (the decoder is
 * total, so every input is a program), run it against a driver and the model,
 * and abort() with a report on the first violation.
 */
#ifndef BLKV_FUZZ_H
#define BLKV_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Run one fuzz input against the driver `spec` (overridden by the
 * environment variable BLKV_DRIVER when set).  Reproducers go to
 * $BLKV_REPRO_DIR (default: the current directory; "-": not saved).
 * Returns 0, or -1 for an input over the data budget (below), which is
 * not run; a violation aborts.
 */
int blkv_fuzz_one(const char *spec, const uint8_t *data, size_t size);

/*
 * The same, with the driver spec built from the decoded program (so that
 * driver options, such as an image format's, come from the input too):
 * spec_fn writes a NUL-terminated spec into buf.
 */
struct blkv_program;
typedef void (*blkv_fuzz_spec_fn)(const struct blkv_program *p, char *buf, size_t len);
int blkv_fuzz_one_with(blkv_fuzz_spec_fn spec_fn, const char *spec, const uint8_t *data,
                       size_t size);

/*
 * qcow2 image options drawn from program p, for targets whose driver takes
 * qcow2's options: the cluster size is the config's grain, and bits of its
 * seed choose the version (2 unless allow_v3), refcount width, lazy
 * refcounts, cache sizes and the backing file, backing[(seed >> 5) & 3].
 * Writes "DRIVER version=... ..." into buf.
 */
void blkv_fuzz_qcow2_spec(const struct blkv_program *p, const char *driver, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len);

/*
 * The data budget.  A fuzz target sets aside (returns -1 for: libFuzzer
 * keeps it out of the corpus) a program whose requests (reads, writes,
 * write-zeroes, discards) span more bytes than its budget: max(8 x grain,
 * min(256 x grain, 2 MiB)) in all, past which each request may span at
 * most BLKV_FUZZ_PAST_BUDGET bytes.  Fuzzers otherwise drift toward
 * multi-megabyte requests, whose cost is in moving and checking bytes and
 * in metadata per cluster (and a pattern-initialised device is filled
 * wherever a request reaches), not in reaching code: boundaries are
 * reached by offsets.  Likewise a program may reopen and check the image at most
 * BLKV_FUZZ_MAX_REOPENS and BLKV_FUZZ_MAX_CHECKS times: each costs a
 * close, open and full image check, and libFuzzer's hit-count buckets
 * reward doing it hundreds of times.  `blkv run` replays any program whole.
 */
#define BLKV_FUZZ_PAST_BUDGET 4096u
#define BLKV_FUZZ_MAX_REOPENS 8u
#define BLKV_FUZZ_MAX_CHECKS 8u
struct blkv_config;
uint64_t blkv_fuzz_budget(const struct blkv_config *cfg);
/* The index of p's first op over the budget, or p->nops. */
size_t blkv_fuzz_over_budget(const struct blkv_program *p);
/* Cut the requests of p that go over the budget, so that none does. */
void blkv_fuzz_fit_budget(struct blkv_program *p);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The structure-aware mutator and crossover (mutator.c, libFuzzer builds). */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed);
/* libFuzzer's own byte mutations, which the custom mutator falls back to. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#endif
