/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * file.c - a host file through real asynchronous I/O.
 *
 * Requests go to io_uring (liburing) when the kernel allows it, else to a
 * small pool of threads doing pread/pwrite/fdatasync/fallocate.  Either
 * way completions are delivered by poll() on the thread running the core:
 * the uring's completion queue, or the pool's done list signalled through
 * an eventfd.  blkv_complete() is never called from a pool thread.
 *
 * Write-zeroes is fallocate(ZERO_RANGE) (PUNCH_HOLE when the request may
 * unmap) and discard is fallocate(PUNCH_HOLE|KEEP_SIZE), which reads back
 * as zeros; both are probed at open and declared only if the filesystem
 * has them.  direct=on opens with O_DIRECT through aligned bounce buffers
 * and makes 4096 the alignment.  Cancel: IORING_OP_ASYNC_CANCEL, or
 * dropping a request the pool has not started.
 *
 * Without path= the device is an unnamed temporary file: created in
 * $TMPDIR (or /tmp) and unlinked at once, so nothing is left on disk
 * whatever way the process ends.  Reopen goes through /proc/self/fd of an
 * anchor descriptor that keeps the file alive between close and open; the
 * anchors of finished runs are closed when the next run starts.
 */
#define _GNU_SOURCE /* O_DIRECT, fallocate modes */
#include <blkv/driver.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if BLKV_HAVE_URING
#include <liburing.h>
#endif

#define FILE_THREADS 4
#define FILE_DIRECT_ALIGN 4096
#define FILE_RING_ENTRIES 512
/* Anchors of temporary files kept for reopen (one per run still open). */
#define FILE_ANCHORS 8

/*
 * Descriptors that keep unnamed temporary files alive between close and
 * reopen.  A run's anchor is closed when a later run starts (runs are
 * sequential) or by the kernel at exit; no cleanup is needed on abort.
 */
static int file_anchors[FILE_ANCHORS];
static int file_nanchors;

enum file_engine { FILE_ENGINE_URING, FILE_ENGINE_THREADS };

enum file_job_state { FILE_JOB_QUEUED, FILE_JOB_RUNNING, FILE_JOB_DONE };

/* One request in flight. */
struct file_job {
    struct blkv_req *req;
    struct file_job *next;
    enum file_job_state state;
    void *bounce;  /* direct: aligned copy of the data */
    uint64_t done; /* bytes transferred so far (short transfers resume) */
    int ret;
};

struct file_state {
    struct blkv_ctx *ctx;
    int fd;
    int anchor;          /* temp file: descriptor that keeps it alive, else -1 */
    char path[PATH_MAX]; /* path= or "" */
    bool direct;
    bool punch, zero_range; /* probed at create */
    enum file_engine engine;
    uint64_t size;
    uint64_t completions;
#if BLKV_HAVE_URING
    struct io_uring ring;
    bool ring_up;
    bool ring_fallocate; /* the kernel has IORING_OP_FALLOCATE */
#endif
    /* the thread pool */
    pthread_t threads[FILE_THREADS];
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct file_job *queue, *queue_tail; /* waiting for a thread */
    struct file_job *done;               /* finished, not yet delivered */
    bool stop;
    int efd;
};

static const struct blkv_option file_options[] = {
    {"path", NULL, "host file (default: an unnamed temporary file in $TMPDIR); its content"
     " is replaced by a fresh device at the start of a run"},
    {"direct", "off", "O_DIRECT (on, off); requests are then aligned to 4096"},
    {"engine", "auto", "uring, threads, or auto (io_uring if the kernel allows it)"},
    {NULL, NULL, NULL},
};

/* ---- helpers ------------------------------------------------------------- */

/* Close the anchors of finished runs (a new run is starting). */
static void file_anchors_release(void)
{
    for (int i = 0; i < file_nanchors; i++)
        close(file_anchors[i]);
    file_nanchors = 0;
}

/* Open the device file for s (create: a fresh one of `size` bytes). */
static int file_open_fd(struct file_state *s, uint64_t size, bool create)
{
    int flags = O_RDWR | O_CLOEXEC | (s->direct ? O_DIRECT : 0);
    char p[64];

    if (s->path[0]) {
        s->fd = open(s->path, flags | (create ? O_CREAT : 0), 0600);
        if (s->fd < 0) {
            int e = errno;
            blkv_error(s->ctx, "open %s: %s", s->path, strerror(e));
            return -e;
        }
    } else if (create) {
        const char *t = getenv("TMPDIR");
        char tmpl[PATH_MAX];
        snprintf(tmpl, sizeof(tmpl), "%s/blkv-file-%ld-XXXXXX", t && *t ? t : "/tmp",
                 (long)getpid());
        s->anchor = mkostemp(tmpl, O_CLOEXEC);
        if (s->anchor < 0) {
            int e = errno;
            blkv_error(s->ctx, "mkostemp %s: %s", tmpl, strerror(e));
            return -e;
        }
        unlink(tmpl);
        if (file_nanchors < FILE_ANCHORS)
            file_anchors[file_nanchors++] = s->anchor;
    }
    if (!s->path[0]) {
        snprintf(p, sizeof(p), "/proc/self/fd/%d", s->anchor);
        s->fd = open(p, flags);
        if (s->fd < 0) {
            int e = errno;
            blkv_error(s->ctx, "open %s%s: %s", p, s->direct ? " with O_DIRECT" : "",
                       strerror(e));
            return -e;
        }
    }
    if (create && (ftruncate(s->fd, 0) < 0 || ftruncate(s->fd, (off_t)size) < 0)) {
        int e = errno;
        blkv_error(s->ctx, "ftruncate to %" PRIu64 " bytes: %s", size, strerror(e));
        return -e;
    }
    return 0;
}

/* Probe fallocate on the fresh (all-zero) file: harmless there. */
static void file_probe(struct file_state *s)
{
    uint64_t n = s->size < 4096 ? s->size : 4096;
    s->punch = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)n) == 0;
    s->zero_range = fallocate(s->fd, FALLOC_FL_ZERO_RANGE, 0, (off_t)n) == 0;
}

/* The fallocate mode for a write-zeroes or discard request, or -1: write zeros. */
static int file_falloc_mode(const struct file_state *s, const struct blkv_req *req)
{
    if (req->op == BLKV_OP_DISCARD ||
        (req->op == BLKV_OP_WRITE_ZEROES && (req->flags & BLKV_REQ_UNMAP) && s->punch))
        return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    return FALLOC_FL_ZERO_RANGE;
}

/* Allocate the job of a request (and its bounce buffer for O_DIRECT). */
static struct file_job *file_job_new(struct file_state *s, struct blkv_req *req)
{
    struct file_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->req = req;
    if (s->direct && (req->op == BLKV_OP_READ || req->op == BLKV_OP_WRITE)) {
        if (posix_memalign(&j->bounce, FILE_DIRECT_ALIGN, req->len)) {
            free(j);
            return NULL;
        }
        if (req->op == BLKV_OP_WRITE)
            memcpy(j->bounce, req->buf, req->len);
    }
    return j;
}

/* Deliver a finished job to the core and free it. */
static void file_job_finish(struct file_state *s, struct file_job *j, int ret)
{
    struct blkv_req *req = j->req;
    if (ret == 0 && j->bounce && req->op == BLKV_OP_READ)
        memcpy(req->buf, j->bounce, req->len);
    free(j->bounce);
    free(j);
    s->completions++;
    blkv_complete(req, ret);
}

/* The synchronous I/O of a job (pool threads; also uring ops the kernel
 * lacks).  Returns 0 or a negative errno. */
static int file_do_sync(struct file_state *s, struct file_job *j)
{
    struct blkv_req *req = j->req;
    char *buf = j->bounce ? j->bounce : req->buf;

    switch (req->op) {
    case BLKV_OP_READ:
    case BLKV_OP_WRITE:
        while (j->done < req->len) {
            ssize_t n = req->op == BLKV_OP_READ
                            ? pread(s->fd, buf + j->done, req->len - j->done,
                                    (off_t)(req->offset + j->done))
                            : pwrite(s->fd, buf + j->done, req->len - j->done,
                                     (off_t)(req->offset + j->done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return -errno;
            if (n == 0)
                return -EIO; /* past the end: the file was truncated behind us */
            j->done += (uint64_t)n;
        }
        if (req->op == BLKV_OP_WRITE && (req->flags & BLKV_REQ_FUA) && fdatasync(s->fd) < 0)
            return -errno;
        return 0;
    case BLKV_OP_WRITE_ZEROES:
    case BLKV_OP_DISCARD:
        if (fallocate(s->fd, file_falloc_mode(s, req), (off_t)req->offset, (off_t)req->len) < 0)
            return -errno;
        if ((req->flags & BLKV_REQ_FUA) && fdatasync(s->fd) < 0)
            return -errno;
        return 0;
    case BLKV_OP_FLUSH:
        return fdatasync(s->fd) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

/* ---- the thread pool ----------------------------------------------------- */

/* A pool thread: run queued jobs, put them on the done list, signal. */
static void *file_worker(void *arg)
{
    struct file_state *s = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct file_job *j;
        while (!s->stop && !s->queue)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop)
            break;
        j = s->queue;
        s->queue = j->next;
        if (!s->queue)
            s->queue_tail = NULL;
        j->state = FILE_JOB_RUNNING;
        pthread_mutex_unlock(&s->lock);
        j->ret = file_do_sync(s, j);
        pthread_mutex_lock(&s->lock);
        j->state = FILE_JOB_DONE;
        j->next = s->done;
        s->done = j;
        if (write(s->efd, &one, sizeof(one)) < 0) {
            /* the counter cannot overflow with so few jobs; nothing to do */
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Start the pool; 0 or a negative errno. */
static int file_pool_start(struct file_state *s)
{
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        int e = errno;
        blkv_error(s->ctx, "eventfd: %s", strerror(e));
        return -e;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->stop = false;
    for (s->nthreads = 0; s->nthreads < FILE_THREADS; s->nthreads++) {
        int e = pthread_create(&s->threads[s->nthreads], NULL, file_worker, s);
        if (e) {
            blkv_error(s->ctx, "pthread_create: %s", strerror(e));
            return -e;
        }
    }
    return 0;
}

/* Stop the pool (no request is in flight). */
static void file_pool_stop(struct file_state *s)
{
    if (s->efd < 0)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    close(s->efd);
    s->efd = -1;
}

/* Queue a job for the pool. */
static void file_pool_submit(struct file_state *s, struct file_job *j)
{
    pthread_mutex_lock(&s->lock);
    j->state = FILE_JOB_QUEUED;
    j->next = NULL;
    if (s->queue_tail)
        s->queue_tail->next = j;
    else
        s->queue = j;
    s->queue_tail = j;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Cancel a job the pool has not started: it completes with -ECANCELED. */
static void file_pool_cancel(struct file_state *s, struct file_job *j)
{
    struct file_job **pp, *prev = NULL;
    bool found = false;

    pthread_mutex_lock(&s->lock);
    for (pp = &s->queue; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            if (s->queue_tail == j)
                s->queue_tail = prev;
            found = true;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    if (found)
        file_job_finish(s, j, -ECANCELED);
}

/* Deliver the pool's finished jobs, waiting up to timeout_ms for one. */
static int file_pool_poll(struct file_state *s, int timeout_ms)
{
    struct pollfd pfd = {.fd = s->efd, .events = POLLIN};
    struct file_job *list;
    uint64_t cnt;
    int n = 0;

    pthread_mutex_lock(&s->lock);
    list = s->done;
    s->done = NULL;
    pthread_mutex_unlock(&s->lock);
    if (!list) {
        if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
            return -errno;
        pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = NULL;
        pthread_mutex_unlock(&s->lock);
    }
    if (read(s->efd, &cnt, sizeof(cnt)) < 0) {
        /* EAGAIN: nothing was signalled since the last read */
    }
    while (list) {
        struct file_job *j = list;
        list = j->next;
        file_job_finish(s, j, j->ret);
        n++;
    }
    return n;
}

/* ---- io_uring ------------------------------------------------------------ */

#if BLKV_HAVE_URING
/* Set up the ring; 0, or a negative errno (the caller may fall back). */
static int file_uring_start(struct file_state *s)
{
    struct io_uring_probe *probe;
    int ret = io_uring_queue_init(FILE_RING_ENTRIES, &s->ring, 0);
    if (ret < 0)
        return ret;
    s->ring_up = true;
    probe = io_uring_get_probe_ring(&s->ring);
    s->ring_fallocate = probe && io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
    if (probe)
        io_uring_free_probe(probe);
    return 0;
}

/* A free submission entry, flushing the queue to the kernel if it is full. */
static struct io_uring_sqe *file_uring_sqe(struct file_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/* Queue (the rest of) a job on the ring; 0 or a negative errno. */
static int file_uring_queue(struct file_state *s, struct file_job *j)
{
    struct blkv_req *req = j->req;
    char *buf = j->bounce ? j->bounce : req->buf;
    struct io_uring_sqe *sqe = file_uring_sqe(s);
    int ret;

    if (!sqe)
        return -EAGAIN;
    switch (req->op) {
    case BLKV_OP_READ:
        io_uring_prep_read(sqe, s->fd, buf + j->done, (unsigned)(req->len - j->done),
                           req->offset + j->done);
        break;
    case BLKV_OP_WRITE:
        io_uring_prep_write(sqe, s->fd, buf + j->done, (unsigned)(req->len - j->done),
                            req->offset + j->done);
        if (req->flags & BLKV_REQ_FUA)
            sqe->rw_flags = RWF_DSYNC;
        break;
    case BLKV_OP_WRITE_ZEROES:
    case BLKV_OP_DISCARD:
        io_uring_prep_fallocate(sqe, s->fd, file_falloc_mode(s, req), (off_t)req->offset,
                                (off_t)req->len);
        if (req->flags & BLKV_REQ_FUA) /* then an fdatasync, in order */
            sqe->flags |= IOSQE_IO_LINK;
        break;
    case BLKV_OP_FLUSH:
        io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data(sqe, j);
    if (sqe->flags & IOSQE_IO_LINK) {
        struct io_uring_sqe *sync = file_uring_sqe(s);
        if (!sync) { /* cannot link: no FUA via the ring; do it at completion */
            sqe->flags &= (__u8)~IOSQE_IO_LINK;
        } else {
            io_uring_prep_fsync(sync, s->fd, IORING_FSYNC_DATASYNC);
            io_uring_sqe_set_data(sync, j);
            j->state = FILE_JOB_RUNNING; /* marks "two completions to come" */
        }
    }
    ret = io_uring_submit(&s->ring);
    return ret < 0 ? ret : 0;
}

/* Handle one completion entry. */
static void file_uring_cqe(struct file_state *s, struct io_uring_cqe *cqe)
{
    struct file_job *j = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    struct blkv_req *req;

    if (!j) /* a cancel's own completion */
        return;
    req = j->req;
    if (j->state == FILE_JOB_RUNNING) { /* first of a linked pair */
        j->state = FILE_JOB_QUEUED;
        if (res < 0)
            j->ret = res; /* the linked fsync completes with -ECANCELED */
        return;
    }
    if (j->ret < 0) {
        file_job_finish(s, j, j->ret);
        return;
    }
    if (res >= 0 && (req->op == BLKV_OP_READ || req->op == BLKV_OP_WRITE)) {
        j->done += (uint64_t)res;
        if (res == 0) {
            file_job_finish(s, j, -EIO);
            return;
        }
        if (j->done < req->len) { /* short transfer: go on */
            int ret = file_uring_queue(s, j);
            if (ret < 0)
                file_job_finish(s, j, ret);
            return;
        }
        res = 0;
    }
    file_job_finish(s, j, res < 0 ? res : 0);
}

/* Deliver ring completions, waiting up to timeout_ms for the first. */
static int file_uring_poll(struct file_state *s, int timeout_ms)
{
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    uint64_t before = s->completions;
    int ret = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);

    if (ret < 0 && ret != -ETIME && ret != -EINTR)
        return ret;
    while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        struct io_uring_cqe copy = *cqe;
        io_uring_cqe_seen(&s->ring, cqe);
        file_uring_cqe(s, &copy);
    }
    return (int)(s->completions - before);
}
#endif

/* ---- driver callbacks ---------------------------------------------------- */

static int file_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                     struct blkv_caps *caps)
{
    struct file_state *s = state;
    const char *path = blkv_opt(ctx, "path");
    const char *direct = blkv_opt(ctx, "direct");
    const char *engine = blkv_opt(ctx, "engine");
    struct stat st;
    int ret;

    if (create) {
        file_anchors_release();
        memset(s, 0, sizeof(*s));
        s->anchor = -1;
        if (path && *path) {
            if (strlen(path) >= sizeof(s->path)) {
                blkv_error(ctx, "path=%s: too long", path);
                return -ENAMETOOLONG;
            }
            strcpy(s->path, path);
        }
    }
    s->ctx = ctx;
    s->fd = -1;
    s->efd = -1;
    if (!strcmp(direct, "on")) {
        s->direct = true;
    } else if (strcmp(direct, "off")) {
        blkv_error(ctx, "direct=%s: expected on or off", direct);
        return -EINVAL;
    }
    if (strcmp(engine, "auto") && strcmp(engine, "uring") && strcmp(engine, "threads")) {
        blkv_error(ctx, "engine=%s: expected uring, threads or auto", engine);
        return -EINVAL;
    }
    if ((ret = file_open_fd(s, size, create)) < 0)
        return ret;
    if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        blkv_error(ctx, "%s: not a regular file", s->path[0] ? s->path : "temporary file");
        return -ENOTSUP;
    }
    caps->align = s->direct ? FILE_DIRECT_ALIGN : 1;
    s->size = caps->size = (uint64_t)st.st_size - (uint64_t)st.st_size % caps->align;
    if (caps->size == 0) {
        blkv_error(ctx, "empty file");
        return -EINVAL;
    }
    if (create)
        file_probe(s);
    caps->write_zeroes = s->zero_range;
    caps->discard = s->punch ? BLKV_DISCARD_ZEROES : BLKV_DISCARD_IGNORED;
    caps->fua = true;
    caps->cancel = true;

    s->engine = FILE_ENGINE_THREADS;
#if BLKV_HAVE_URING
    if (strcmp(engine, "threads")) {
        ret = file_uring_start(s);
        if (ret == 0) {
            s->engine = FILE_ENGINE_URING;
        } else if (!strcmp(engine, "uring")) {
            blkv_error(ctx, "io_uring_queue_init: %s", strerror(-ret));
            return ret;
        }
    }
#else
    if (!strcmp(engine, "uring")) {
        blkv_error(ctx, "engine=uring: built without liburing");
        return -ENOTSUP;
    }
#endif
    if (s->engine == FILE_ENGINE_THREADS && (ret = file_pool_start(s)) < 0)
        return ret;
    return 0;
}

static void file_close(void *state)
{
    struct file_state *s = state;
#if BLKV_HAVE_URING
    if (s->ring_up) {
        io_uring_queue_exit(&s->ring);
        s->ring_up = false;
    }
#endif
    file_pool_stop(s);
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
        s->fd = -1;
    }
}

static void file_submit(void *state, struct blkv_req *req)
{
    struct file_state *s = state;
    struct file_job *j;

    if (req->op == BLKV_OP_DISCARD && !s->punch) { /* declared ignored */
        s->completions++;
        blkv_complete(req, 0);
        return;
    }
    j = file_job_new(s, req);
    if (!j) {
        s->completions++;
        blkv_complete(req, -ENOMEM);
        return;
    }
    req->driver_data = j;
#if BLKV_HAVE_URING
    if (s->engine == FILE_ENGINE_URING) {
        int ret;
        if ((req->op == BLKV_OP_WRITE_ZEROES || req->op == BLKV_OP_DISCARD) &&
            !s->ring_fallocate) {
            file_job_finish(s, j, file_do_sync(s, j)); /* an old kernel */
            return;
        }
        if ((ret = file_uring_queue(s, j)) < 0)
            file_job_finish(s, j, ret);
        return;
    }
#endif
    file_pool_submit(s, j);
}

/* Ask the engine to drop req; it completes with -ECANCELED or normally. */
static void file_cancel(void *state, struct blkv_req *req)
{
    struct file_state *s = state;
    struct file_job *j = req->driver_data;
#if BLKV_HAVE_URING
    if (s->engine == FILE_ENGINE_URING) {
        struct io_uring_sqe *sqe = file_uring_sqe(s);
        if (sqe) {
            io_uring_prep_cancel(sqe, j, 0);
            io_uring_sqe_set_data(sqe, NULL);
            io_uring_submit(&s->ring);
        }
        return;
    }
#endif
    file_pool_cancel(s, j);
}

static int file_poll(void *state, int timeout_ms)
{
    struct file_state *s = state;
#if BLKV_HAVE_URING
    if (s->engine == FILE_ENGINE_URING)
        return file_uring_poll(s, timeout_ms);
#endif
    return file_pool_poll(s, timeout_ms);
}

/* The file still holds the whole device. */
static int file_check(void *state)
{
    struct file_state *s = state;
    struct stat st;
    if (fstat(s->fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size >= s->size)
        return 0;
    blkv_error(s->ctx, "file holds %" PRIu64 " bytes of a %" PRIu64 "-byte device",
               (uint64_t)st.st_size, s->size);
    return -EUCLEAN;
}

const struct blkv_driver blkv_driver_file = {
    BLKV_DRIVER_HEADER,
    .name = "file",
    .description = "a host file through io_uring (or a thread pool)",
    .options = file_options,
    .state_size = sizeof(struct file_state),
    .in_process = false,
    .open = file_open,
    .close = file_close,
    .submit = file_submit,
    .cancel = file_cancel,
    .poll = file_poll,
    .check = file_check,
};
