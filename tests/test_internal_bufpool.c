/* SPDX-License-Identifier: BSD-3-Clause */
/* test_bufpool.c - request buffers: sizes, reuse only after a run or 8 MiB, ASan poison,
 * what is kept follows recent use. */
#include "runtime/bufpool.h"
#include "test.h"
#include "util/util.h"

#include <stdint.h>
#include <string.h>

#ifdef BLKV_ASAN
#include <sanitizer/asan_interface.h>
#endif

int main(void)
{
    size_t sizes[] = {1, 4096, 65535, 65536, 65537, 1u << 20, (1u << 20) + 1, 8u << 20};

    /* every size is usable in full */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = blkv_buf_get(sizes[i]);
        CHECK(p != NULL);
        memset(p, 0x5a, sizes[i]);
        CHECK(p[sizes[i] - 1] == 0x5a);
        blkv_buf_put(p, sizes[i]);
    }
    blkv_buf_run_end();

    /* a buffer given back is not handed out again in the same run */
    {
        void *a = blkv_buf_get(100000), *b;
        blkv_buf_put(a, 100000);
        b = blkv_buf_get(100000);
        CHECK(b != a);
#ifdef BLKV_ASAN
        /* and while pooled it is poisoned: a late access would be reported */
        CHECK(__asan_address_is_poisoned(a));
        CHECK(__asan_address_is_poisoned((char *)a + 99999));
        /* bytes past the requested length are poisoned too */
        CHECK(!__asan_address_is_poisoned((char *)b + 99999));
        CHECK(__asan_address_is_poisoned((char *)b + 100000));
#endif
        blkv_buf_put(b, 100000);
        blkv_buf_run_end();
        /* after the run, it is */
        b = blkv_buf_get(100000);
        CHECK(b == a);
        blkv_buf_put(b, 100000);
        blkv_buf_run_end();
    }
    /* within a run, a buffer given back is handed out again only once 8 MiB
     * (at least 4 buffers) of its class were given back after it */
    {
        size_t big = 2u << 20, small = 4096;
        void *a = blkv_buf_get(big), *s = blkv_buf_get(small), *b;
        blkv_buf_put(a, big);
        blkv_buf_put(s, small);
        for (int i = 0; i < 4; i++) {
            CHECK((b = blkv_buf_get(big)) != a);
#ifdef BLKV_ASAN
            CHECK(__asan_address_is_poisoned(a));
#endif
            blkv_buf_put(b, big);
        }
        for (int i = 0; i < 100; i++) { /* 400 KiB of 4 KiB buffers: not yet */
            CHECK((b = blkv_buf_get(small)) != s);
            blkv_buf_put(b, small);
        }
        b = blkv_buf_get(big); /* four given back after a, 8 MiB */
        CHECK(b == a);
        blkv_buf_put(b, big);
        blkv_buf_run_end();
    }
    /* a pooled buffer reused for a shorter request of its class */
    {
        unsigned char *a = blkv_buf_get(130000), *b;
        blkv_buf_put(a, 130000);
        blkv_buf_run_end();
        b = blkv_buf_get(70000);
        CHECK(b == a);
        memset(b, 1, 70000);
#ifdef BLKV_ASAN
        CHECK(__asan_address_is_poisoned(b + 70000));
#endif
        blkv_buf_put(b, 70000);
        blkv_buf_run_end();
    }
    /* what one big run pooled is freed once two windows of runs needed
     * less: the pool keeps a window's peak, no more */
    {
        void *a[8];
        for (int i = 0; i < 8; i++)
            CHECK((a[i] = blkv_buf_get(1u << 20)) != NULL);
        for (int i = 0; i < 8; i++)
            blkv_buf_put(a[i], 1u << 20);
        blkv_buf_run_end();
        CHECK(blkv_buf_pooled() >= 8u << 20);
        for (unsigned r = 0; r < 2 * BLKV_BUF_WINDOW_RUNS; r++) {
            void *b = blkv_buf_get(1u << 20);
            CHECK(b != NULL);
            blkv_buf_put(b, 1u << 20);
            blkv_buf_run_end();
        }
        /* one 1 MiB buffer, reused run after run; every other class idle */
        CHECK(blkv_buf_pooled() == 1u << 20);
    }
    printf("%s bufpool\n", t_failures ? "FAIL" : "ok  ");
    T_EXIT();
}
