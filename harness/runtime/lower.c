/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lower.c - lower files: the in-memory files under in-process drivers (the
 * blkv_lower_* calls of <blkv/driver.h>), and loading and saving them as
 * host files.
 *
 * Each I/O blocks its coroutine on a pending lower I/O (sched.c); the data
 * moves when the scheduler completes it (blkv_lower_io_transfer), so lower
 * I/Os really reorder.
 *
 * Durability (on when the runtime tracks it, for programs that crash): a
 * lower write is durable once a flush issued after it completed has
 * completed successfully.  Each lower file keeps the writes that completed
 * since then as records (what they wrote, in completion order) and the
 * durable content of every page they touch (a page map, filled with a
 * page's content the first time a record touches it).  A successful flush
 * folds the records it covers into the page map; with no record left the
 * map is empty again.  So the memory is what was written since the last
 * durable point.  Truncation is durable at once (the size is file system
 * metadata, journalled by the host).
 */
#include "runtime/internal.h"
#include "runtime/bufpool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512u

/* ---- durability ------------------------------------------------------------ */

static void dur_oom(void)
{
    blkv_rt_die("out of memory keeping the not-yet-durable lower writes");
}

/* Records live no longer than the run, so their copies are pool buffers:
 * a fuzzer's writes of megabytes cost no fresh pages each run. */
static void dur_rec_free(struct dur_rec *r)
{
    blkv_buf_put(r->data, r->data_len);
    free(r);
}

/* Drop every record and the page map: all of f is durable as it is. */
static void dur_reset(struct blkv_lower *f)
{
    while (f->recs) {
        struct dur_rec *r = f->recs;
        f->recs = r->next;
        dur_rec_free(r);
    }
    f->recs_tail = &f->recs;
    f->rec_bytes = 0;
    blkv_store_clear(&f->durable);
}

/* A page of the map, made from the current content if it is not there yet. */
static unsigned char *dur_page(struct blkv_lower *f, uint64_t pg)
{
    unsigned char *d = blkv_store_page(&f->durable, pg, false);
    if (d)
        return d;
    if (!(d = blkv_store_page(&f->durable, pg, true)))
        dur_oom();
    blkv_store_read(&f->store, d, BLKV_STORE_PAGE, pg * BLKV_STORE_PAGE);
    if (f->durable.size < (pg + 1) * BLKV_STORE_PAGE)
        f->durable.size = (pg + 1) * BLKV_STORE_PAGE;
    return d;
}

/* Before a write of [off, off+len) lands: the page map gets the durable
 * content (the current one) of each page it touches for the first time. */
static void dur_save_pages(struct blkv_lower *f, uint64_t off, uint64_t len)
{
    for (uint64_t pg = off / BLKV_STORE_PAGE; pg <= (off + len - 1) / BLKV_STORE_PAGE; pg++)
        dur_page(f, pg);
}

/* The file is cut to `size` (durable at once): records and the page map
 * lose what lies past it. */
static void dur_truncate(struct blkv_lower *f, uint64_t size)
{
    struct dur_rec **rp = &f->recs;
    unsigned char *d;

    while (*rp) {
        struct dur_rec *r = *rp;
        if (r->off >= size) {
            *rp = r->next;
            f->rec_bytes -= r->len;
            dur_rec_free(r);
            continue;
        }
        if (r->off + r->len > size) {
            f->rec_bytes -= r->off + r->len - size;
            r->len = size - r->off;
        }
        rp = &r->next;
    }
    f->recs_tail = rp;
    if (!f->recs) {
        dur_reset(f);
        return;
    }
    blkv_store_truncate(&f->durable, size);
    if (size % BLKV_STORE_PAGE && (d = blkv_store_page(&f->durable, size / BLKV_STORE_PAGE, false)))
        memset(d + size % BLKV_STORE_PAGE, 0, BLKV_STORE_PAGE - size % BLKV_STORE_PAGE);
}

/* After a write landed: its record. */
static void dur_record(struct blkv_lower *f, const void *buf, uint64_t len, uint64_t off)
{
    struct dur_rec *r = calloc(1, sizeof(*r));
    if (!r || (buf && !(r->data = blkv_buf_get(r->data_len = len))))
        dur_oom();
    if (buf)
        memcpy(r->data, buf, len);
    r->seq = ++f->seq;
    r->off = off;
    r->len = len;
    *f->recs_tail = r;
    f->recs_tail = &r->next;
    f->rec_bytes += len;
}

/* Apply [off, off+len) of data (NULL: zeros) to the page map's pages. */
static void dur_apply(struct blkv_lower *f, const unsigned char *data, uint64_t len, uint64_t off)
{
    while (len) {
        uint64_t pg = off / BLKV_STORE_PAGE;
        size_t in = (size_t)(off % BLKV_STORE_PAGE);
        size_t n = BLKV_STORE_PAGE - in < len ? BLKV_STORE_PAGE - in : (size_t)len;
        unsigned char *d = blkv_store_page(&f->durable, pg, false);
        if (d) { /* every page a record touches is there */
            if (data)
                memcpy(d + in, data, n);
            else
                memset(d + in, 0, n);
        }
        if (data)
            data += n;
        off += n;
        len -= n;
    }
}

/* A flush that was issued when `seq` writes had completed succeeded: they
 * are durable. */
static void dur_flushed(struct blkv_lower *f, uint64_t seq)
{
    while (f->recs && f->recs->seq <= seq) {
        struct dur_rec *r = f->recs;
        dur_apply(f, r->data, r->len, r->off);
        f->recs = r->next;
        f->rec_bytes -= r->len;
        dur_rec_free(r);
    }
    if (!f->recs)
        dur_reset(f);
}

/* Apply the part of [off, off+len) of data (NULL: zeros) that falls in the
 * sector at `sec` to its bytes `buf`. */
static void sector_apply(unsigned char *buf, uint64_t sec, const unsigned char *data,
                         uint64_t off, uint64_t len)
{
    uint64_t a = off > sec ? off : sec, b = off + len < sec + SECTOR ? off + len : sec + SECTOR;
    if (a >= b)
        return;
    if (data)
        memcpy(buf + (a - sec), data + (a - off), b - a);
    else
        memset(buf + (a - sec), 0, b - a);
}

static bool touches(uint64_t off, uint64_t len, uint64_t sec)
{
    return off < sec + SECTOR && sec < off + len;
}

/* Collects the offsets of the page map's pages. */
struct page_list {
    uint64_t *off;
    size_t n, cap;
};

static int collect_page(void *opaque, uint64_t off, const void *data, size_t n)
{
    struct page_list *l = opaque;
    (void)data, (void)n;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        uint64_t *p = realloc(l->off, cap * sizeof(*p));
        if (!p)
            dur_oom();
        l->off = p, l->cap = cap;
    }
    l->off[l->n++] = off;
    return 0;
}

void blkv_lower_crash(struct blkv_lower *f, struct lower_io *const *pending, size_t npending,
                      struct blkv_rng *rng)
{
    struct page_list pages = {NULL, 0, 0};
    unsigned char cur[SECTOR], out[SECTOR];

    /* the pages of the writes in flight join the map, at their durable content */
    for (size_t i = 0; i < npending; i++)
        if (pending[i]->f == f && pending[i]->kind == IO_WRITE && pending[i]->len)
            dur_save_pages(f, pending[i]->off, pending[i]->len);
    blkv_store_each(&f->durable, collect_page, &pages);
    for (size_t p = 0; p < pages.n; p++) {
        const unsigned char *d = blkv_store_page(&f->durable, pages.off[p] / BLKV_STORE_PAGE,
                                                 false);
        for (uint64_t sec = pages.off[p]; sec < pages.off[p] + BLKV_STORE_PAGE; sec += SECTOR) {
            uint64_t nrec = 0, npend = 0, c, n;
            for (const struct dur_rec *r = f->recs; r; r = r->next)
                nrec += touches(r->off, r->len, sec);
            for (size_t i = 0; i < npending; i++)
                npend += pending[i]->f == f && pending[i]->kind == IO_WRITE &&
                         touches(pending[i]->off, pending[i]->len, sec);
            if (nrec + npend == 0)
                continue; /* nothing but its durable content was ever here */
            /* 0: the durable content; 1..nrec: as it was after the c-th
             * record here landed; past that: a write in flight landed */
            c = blkv_rng_below(rng, 1 + nrec + npend);
            memcpy(out, d + (sec - pages.off[p]), SECTOR);
            /* the file keeps its size, but for a write in flight past it */
            n = f->store.size > sec ? f->store.size - sec : 0;
            if (c > nrec) {
                uint64_t k = c - nrec;
                blkv_store_read(&f->store, out, SECTOR, sec);
                for (size_t i = 0; i < npending; i++) {
                    const struct lower_io *io = pending[i];
                    if (io->f == f && io->kind == IO_WRITE && touches(io->off, io->len, sec) &&
                        --k == 0) {
                        sector_apply(out, sec, io->wbuf, io->off, io->len);
                        if (io->off + io->len - sec > n)
                            n = io->off + io->len - sec;
                    }
                }
            } else {
                uint64_t k = c;
                for (const struct dur_rec *r = f->recs; r && k; r = r->next)
                    if (touches(r->off, r->len, sec)) {
                        sector_apply(out, sec, r->data, r->off, r->len);
                        k--;
                    }
            }
            n = n < SECTOR ? n : SECTOR;
            blkv_store_read(&f->store, cur, SECTOR, sec);
            if (n && memcmp(cur, out, n) && blkv_store_write(&f->store, out, n, sec) < 0)
                dur_oom();
        }
    }
    free(pages.off);
    dur_reset(f);
}

void blkv_lower_durable_now(struct blkv_lower *f)
{
    dur_reset(f);
}

void blkv_lower_io_issue(struct lower_io *io)
{
    if (io->kind == IO_FLUSH)
        io->flush_seq = io->f->seq;
}

int blkv_lower_io_transfer(struct lower_io *io)
{
    struct blkv_lower *f = io->f;
    struct blkv_store *s = &f->store;
    bool dur = f->rt->durability;
    int ret;

    switch (io->kind) {
    case IO_READ:
        blkv_store_read(s, io->rbuf, io->len, io->off);
        return 0;
    case IO_WRITE:
        if (!blkv_store_write_fits(s, io->wbuf, io->len, io->off, f->rt->lower_cap))
            return -ENOSPC;
        if (dur)
            dur_save_pages(f, io->off, io->len);
        ret = blkv_store_write(s, io->wbuf, io->len, io->off);
        if (dur && ret == 0)
            dur_record(f, io->wbuf, io->len, io->off);
        return ret;
    case IO_FLUSH:
        if (dur)
            dur_flushed(f, io->flush_seq);
        return 0;
    case IO_TRUNCATE:
        blkv_store_truncate(s, io->off);
        if (dur && f->recs) /* durable at once: what lies past the end is gone */
            dur_truncate(f, io->off);
        return 0;
    }
    return -EINVAL;
}

void blkv_lower_free(struct blkv_lower *f)
{
    if (!f)
        return;
    dur_reset(f);
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
        blkv_store_init(&f->durable, &rt->dur_held);
        f->recs_tail = &f->recs;
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

bool blkv_rt_lower_exists(const struct blkv_rt *rt, unsigned idx)
{
    return idx <= 1 && rt->lower[idx];
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
