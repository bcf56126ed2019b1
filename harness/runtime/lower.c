/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lower.c - lower files: the in-memory files under in-process drivers (the
 * blkv_lower_* calls of <blkv/driver.h>), and loading and saving them as
 * host files.
 *
 * Each I/O blocks its coroutine on a pending lower I/O (sched.c); the data
 * moves when the scheduler completes it (blkv_lower_io_transfer), so lower
 * I/Os really reorder.
 */
#include "runtime/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int blkv_lower_io_transfer(struct lower_io *io)
{
    struct blkv_store *s = &io->f->store;

    switch (io->kind) {
    case IO_READ:
        blkv_store_read(s, io->rbuf, io->len, io->off);
        return 0;
    case IO_WRITE:
        if (!blkv_store_write_fits(s, io->wbuf, io->len, io->off, io->f->rt->lower_cap))
            return -ENOSPC;
        return blkv_store_write(s, io->wbuf, io->len, io->off);
    case IO_FLUSH:
        return 0;
    case IO_TRUNCATE:
        blkv_store_truncate(s, io->off);
        return 0;
    }
    return -EINVAL;
}

void blkv_lower_free(struct blkv_lower *f)
{
    if (!f)
        return;
    blkv_store_clear(&f->store);
    free(f);
}

struct blkv_lower *blkv_rt_lower(struct blkv_rt *rt, unsigned idx)
{
    if (idx > 1)
        return NULL;
    if (!rt->lower[idx]) {
        struct blkv_lower *f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->rt = rt;
        blkv_store_init(&f->store, &rt->lower_held);
        rt->lower[idx] = f;
    }
    return rt->lower[idx];
}

/* Common argument checks of a data I/O: 0, or -EINVAL. */
static int lower_check(const struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    if (!f || (len && !buf) || len > SIZE_MAX || off + len < off)
        return -EINVAL;
    return 0;
}

int blkv_lower_pread(struct blkv_lower *f, void *buf, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_READ, .f = f, .rbuf = buf, .len = len, .off = off};
    int ret;

    blkv_rt_need_co("blkv_lower_pread");
    if ((ret = lower_check(f, buf, len, off)) < 0)
        return ret;
    if (!len)
        return 0;
    return blkv_rt_wait_io("blkv_lower_pread", &io);
}

int blkv_lower_pwrite(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_WRITE, .f = f, .wbuf = buf, .len = len, .off = off};
    int ret;

    blkv_rt_need_co("blkv_lower_pwrite");
    if ((ret = lower_check(f, buf, len, off)) < 0)
        return ret;
    if (off + len > LOWER_MAX_SIZE)
        return -EFBIG;
    if (!len)
        return 0;
    return blkv_rt_wait_io("blkv_lower_pwrite", &io);
}

int blkv_lower_pwrite_zeroes(struct blkv_lower *f, uint64_t len, uint64_t off)
{
    struct lower_io io = {.kind = IO_WRITE, .f = f, .wbuf = NULL, .len = len, .off = off};

    blkv_rt_need_co("blkv_lower_pwrite_zeroes");
    if (!f || off + len < off)
        return -EINVAL;
    if (off + len > LOWER_MAX_SIZE)
        return -EFBIG;
    if (!len)
        return 0;
    return blkv_rt_wait_io("blkv_lower_pwrite_zeroes", &io);
}

int blkv_lower_flush(struct blkv_lower *f)
{
    struct lower_io io = {.kind = IO_FLUSH, .f = f};

    blkv_rt_need_co("blkv_lower_flush");
    if (!f)
        return -EINVAL;
    return blkv_rt_wait_io("blkv_lower_flush", &io);
}

int blkv_lower_truncate(struct blkv_lower *f, uint64_t size)
{
    struct lower_io io = {.kind = IO_TRUNCATE, .f = f, .off = size};

    blkv_rt_need_co("blkv_lower_truncate");
    if (!f)
        return -EINVAL;
    if (size > LOWER_MAX_SIZE)
        return -EFBIG;
    return blkv_rt_wait_io("blkv_lower_truncate", &io);
}

uint64_t blkv_lower_size(const struct blkv_lower *f)
{
    return f ? f->store.size : 0;
}

uint64_t blkv_lower_next_data(const struct blkv_lower *f, uint64_t off, uint64_t end)
{
    return f && off < end ? blkv_store_seek(&f->store, off, end, true) : end;
}

uint64_t blkv_lower_next_hole(const struct blkv_lower *f, uint64_t off, uint64_t end)
{
    return f && off < end ? blkv_store_seek(&f->store, off, end, false) : end;
}

void blkv_lower_peek(const struct blkv_lower *f, void *buf, uint64_t len, uint64_t off)
{
    if (lower_check(f, buf, len, off) < 0)
        blkv_rt_die("blkv_lower_peek(): bad arguments (len %llu, off %llu)", (unsigned long long)len,
            (unsigned long long)off);
    blkv_store_read(&f->store, buf, len, off);
}

void blkv_lower_poke(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    if (lower_check(f, buf, len, off) < 0 || off + len > LOWER_MAX_SIZE)
        blkv_rt_die("blkv_lower_poke(): bad arguments (len %llu, off %llu)", (unsigned long long)len,
            (unsigned long long)off);
    if (blkv_store_write(&f->store, buf, len, off) < 0)
        blkv_rt_die("blkv_lower_poke(): out of memory");
}

/* ---- host files ------------------------------------------------------------ */

int blkv_rt_lower_load(struct blkv_rt *rt, unsigned idx, const char *path)
{
    struct blkv_lower *f = blkv_rt_lower(rt, idx);
    unsigned char *buf;
    struct stat st;
    uint64_t off = 0;
    int fd, ret = 0;

    if (!f)
        return idx > 1 ? -EINVAL : -ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    if ((uint64_t)st.st_size > LOWER_MAX_SIZE) {
        close(fd);
        return -EFBIG;
    }
    buf = malloc(BLKV_STORE_PAGE);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    blkv_store_clear(&f->store);
    f->store.size = 0;
    while (off < (uint64_t)st.st_size) {
        ssize_t n;
#ifdef SEEK_DATA
        /* skip holes of sparse host files */
        off_t data = lseek(fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;
        if (data >= 0 && (uint64_t)data > off)
            off = (uint64_t)data / BLKV_STORE_PAGE * BLKV_STORE_PAGE;
#endif
        n = pread(fd, buf, BLKV_STORE_PAGE, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        if (!blkv_store_write_fits(&f->store, buf, (uint64_t)n, off, rt->lower_cap)) {
            ret = -ENOSPC;
            break;
        }
        if ((ret = blkv_store_write(&f->store, buf, (uint64_t)n, off)) < 0)
            break;
        off += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (ret < 0) {
        blkv_store_clear(&f->store);
        f->store.size = 0;
        return ret;
    }
    f->store.size = (uint64_t)st.st_size;
    return 0;
}

/* Write all of buf at off; 0 or -errno. */
static int write_all(int fd, const void *data, size_t len, uint64_t off)
{
    const unsigned char *buf = data;
    while (len) {
        ssize_t n = pwrite(fd, buf, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int save_page(void *opaque, uint64_t off, const void *data, size_t n)
{
    return write_all(*(int *)opaque, data, n, off);
}

int blkv_rt_lower_save(struct blkv_rt *rt, unsigned idx, const char *path)
{
    struct blkv_lower *f = blkv_rt_lower(rt, idx);
    int fd, ret = 0;

    if (!f)
        return idx > 1 ? -EINVAL : -ENOMEM;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ret = blkv_store_each(&f->store, save_page, &fd);
    if (!ret && ftruncate(fd, (off_t)f->store.size) < 0)
        ret = -errno;
    if (close(fd) < 0 && !ret)
        ret = -errno;
    return ret;
}
