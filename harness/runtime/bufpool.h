/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bufpool.h - request data buffers.
 *
 * Buffers of 4 KiB and up are kept for reuse by later runs instead of
 * going back to malloc: a fuzzer runs thousands of programs a second, and
 * fresh multi-megabyte allocations cost a page fault per page touched
 * (under ASan, an mmap and munmap each).  A buffer freed during a run is
 * reused only after 8 MiB (and at least 4 buffers) of its size were freed
 * after it, or the run ends, so a driver that touches a request's buffer
 * after completing it still finds it unallocated: under ASan the
 * pooled bytes are poisoned, and the bytes past a request's length always
 * are.  What the pool holds follows recent use: at the end of every
 * BLKV_BUF_WINDOW_RUNS runs each size class keeps as many buffers as were
 * out at once in that window and frees the rest, so one big run early in
 * a long campaign does not pin its memory for hours.  Per thread; not for
 * buffers that outlive a run.
 */
#ifndef BLKV_BUFPOOL_H
#define BLKV_BUFPOOL_H

#include <stddef.h>

#define BLKV_BUF_WINDOW_RUNS 4096u

/* A buffer of len bytes (uninitialised), or NULL. */
void *blkv_buf_get(size_t len);
/* Give it back (NULL is fine).  len as passed to blkv_buf_get. */
void blkv_buf_put(void *p, size_t len);
/* End of a run: buffers given back during it become reusable. */
void blkv_buf_run_end(void);
/* Bytes the pool holds for reuse (for tests and memory figures). */
size_t blkv_buf_pooled(void);

#endif
