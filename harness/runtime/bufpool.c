/* SPDX-License-Identifier: BSD-3-Clause */
/* bufpool.c - reusable request data buffers (see bufpool.h). */
#include "runtime/bufpool.h"

#include <blkv/driver.h>

#include <stdint.h>
#include <stdlib.h>

/* AddressSanitizer's interface, weak: null unless the process has ASan's
 * runtime, so that a driver built with ASan gets poisoned pooled buffers
 * from a libblkv built without it. */
void __asan_poison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile *addr, size_t size)
    __attribute__((weak));

#define POISON(p, n) (__asan_poison_memory_region ? __asan_poison_memory_region(p, n) : (void)0)
#define UNPOISON(p, n) \
    (__asan_unpoison_memory_region ? __asan_unpoison_memory_region(p, n) : (void)0)

#define MIN_BITS 12                          /* pooled from 4 KiB */
#define MAX_BITS 23                          /* to 8 MiB (BLKV_MAX_REQUEST) */
#define NCLASS (MAX_BITS - MIN_BITS + 1)
/* kept at most, per thread: room for a run of 2 MiB clusters (cache
 * tables, requests of several clusters, copies kept for durability) with
 * nothing given back to malloc, which under ASan is an munmap each */
#define POOL_MAX_BYTES (UINT64_C(256) << 20)

/* Lives in front of the buffer, never handed out. */
struct pooled {
    struct pooled *next;
    unsigned cls;
    _Alignas(16) unsigned char data[];
};

/* The pool follows recent use, not the most that any run of the process
 * ever needed (which only grows): at the end of every window of runs,
 * each class keeps at most as many buffers as were out at once during
 * that window (none, for a class no run asked for), and frees the rest. */
#define WINDOW_RUNS BLKV_BUF_WINDOW_RUNS

/* A buffer given back during a run stays unallocated (poisoned) until
 * SPENT_BYTES of its class were given back after it, and at least
 * SPENT_MIN buffers, or the run ends: a driver that touches a completed
 * request's buffer soon after still trips, and a run that cycles through
 * many large buffers needs the most it had out at once plus that window,
 * not a buffer for every one it ever asked for. */
#define SPENT_BYTES (UINT64_C(8) << 20)
#define SPENT_MIN 4u

static _Thread_local struct {
    struct pooled *ready[NCLASS]; /* reusable now */
    struct pooled *spent[NCLASS]; /* given back during this run, oldest first */
    struct pooled **spent_tail[NCLASS];
    uint32_t nspent[NCLASS];
    uint64_t bytes;               /* held in both lists */
    uint64_t runs;                /* runs ended */
    uint32_t nready[NCLASS];      /* buffers in ready[c] */
    uint32_t out[NCLASS];         /* handed out and not given back */
    uint32_t peak[NCLASS];        /* most out at once in this window */
} pool;

static int class_of(size_t len)
{
    unsigned b = MIN_BITS;
    if (len < (size_t)1 << MIN_BITS || len > (size_t)1 << MAX_BITS)
        return -1;
    while (((size_t)1 << b) < len)
        b++;
    return (int)(b - MIN_BITS);
}

void *blkv_buf_get(size_t len)
{
    int c = class_of(len);
    struct pooled *h;

    if (c < 0)
        return malloc(len ? len : 1);
    if ((h = pool.ready[c])) {
        pool.ready[c] = h->next;
        pool.nready[c]--;
        pool.bytes -= (size_t)1 << (c + MIN_BITS);
    } else if (!(h = malloc(sizeof(*h) + ((size_t)1 << (c + MIN_BITS))))) {
        return NULL;
    }
    if (++pool.out[c] > pool.peak[c])
        pool.peak[c] = pool.out[c];
    h->cls = (unsigned)c;
    UNPOISON(h->data, len);
    POISON(h->data + len, ((size_t)1 << (c + MIN_BITS)) - len); /* as malloc(len) would */
    return h->data;
}

void blkv_buf_put(void *p, size_t len)
{
    int c = class_of(len);
    struct pooled *h;
    size_t size;

    if (!p)
        return;
    if (c < 0) {
        free(p);
        return;
    }
    h = (struct pooled *)((unsigned char *)p - offsetof(struct pooled, data));
    size = (size_t)1 << (h->cls + MIN_BITS);
    pool.out[h->cls]--;
    if (pool.bytes + size > POOL_MAX_BYTES) {
        UNPOISON(h->data, size);
        free(h);
        return;
    }
    POISON(h->data, size);
    c = (int)h->cls;
    h->next = NULL;
    if (!pool.spent[c])
        pool.spent_tail[c] = &pool.spent[c];
    *pool.spent_tail[c] = h;
    pool.spent_tail[c] = &h->next;
    pool.bytes += size;
    if (++pool.nspent[c] > SPENT_MIN && (pool.nspent[c] - 1) * (uint64_t)size >= SPENT_BYTES) {
        h = pool.spent[c]; /* the oldest has waited long enough */
        pool.spent[c] = h->next;
        pool.nspent[c]--;
        h->next = pool.ready[c];
        pool.ready[c] = h;
        pool.nready[c]++;
    }
}

void *blkv_scratch_get(size_t len)
{
    return blkv_buf_get(len);
}

void blkv_scratch_put(void *p, size_t len)
{
    blkv_buf_put(p, len);
}

void blkv_buf_run_end(void)
{
    for (unsigned c = 0; c < NCLASS; c++) { /* the longest given back first */
        if (!pool.spent[c])
            continue;
        *pool.spent_tail[c] = pool.ready[c];
        pool.ready[c] = pool.spent[c];
        pool.nready[c] += pool.nspent[c];
        pool.spent[c] = NULL;
        pool.nspent[c] = 0;
    }
    if (++pool.runs % WINDOW_RUNS)
        return;
    for (unsigned c = 0; c < NCLASS; c++) {
        uint32_t keep = pool.peak[c] > pool.out[c] ? pool.peak[c] - pool.out[c] : 0;
        while (pool.nready[c] > keep) {
            struct pooled *h = pool.ready[c];
            pool.ready[c] = h->next;
            pool.nready[c]--;
            pool.bytes -= (size_t)1 << (c + MIN_BITS);
            UNPOISON(h->data, (size_t)1 << (c + MIN_BITS));
            free(h);
        }
        pool.peak[c] = pool.out[c];
    }
}

size_t blkv_buf_pooled(void)
{
    return (size_t)pool.bytes;
}
