/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd.c - any NBD server through libnbd's asynchronous API.
 *
 * A run starts its own server by socket activation (LISTEN_FDS/LISTEN_PID):
 * qemu-nbd on a fresh image that qemu-img creates (every format QEMU can
 * write), or nbdkit with a plugin and filters.  An existing server can be
 * named by URI instead.  Requests go out with nbd_aio_* up to the queue
 * depth; their completion callbacks call blkv_complete(), and poll() drives
 * the connection.  Capabilities come from the handshake.
 *
 * The server and its files live in a per-run directory
 * $TMPDIR/blkv-nbd-<pid>-XXXXXX.  Socket activation is done here rather
 * than by nbd_connect_systemd_socket_activation() because libnbd keeps the
 * server's pid and socket directory private: after an abort() (which the
 * verifier calls from inside a completion callback, with the handle locked)
 * nothing could stop that server or remove its files.  Here a small table
 * of live directories and servers is cleaned by an atexit handler and by
 * signal handlers (SIGABRT, SIGINT, SIGTERM), servers get PR_SET_PDEATHSIG
 * so they die with the process even on SIGKILL, and directories of dead
 * processes are removed at the next start.
 *
 * Reopen: qemu-nbd is stopped at close and restarted on the same image at
 * open, so the image is really closed and reopened by QEMU.  nbdkit keeps
 * the data in the server (the memory plugin), so close only disconnects.
 * A run's directory and server are reclaimed when the next run starts or
 * the process exits (the core has no "end of run" callback).
 *
 * server=qsd: one qemu-storage-daemon per process, started at the first
 * run and driven over QMP (nbd_qmp.c).  Its directory is on tmpfs
 * (/dev/shm, else $XDG_RUNTIME_DIR, else $TMPDIR): blkv-qsd-<pid>-XXXXXX,
 * holding the monitor and NBD sockets, the daemon's stderr, one template
 * image per (format, size, create-opts) made once by qemu-img create, and
 * each run's image directory, a sparse copy of its template.  A run adds a
 * format node over a file node (blockdev-add) and an NBD export of it
 * (block-export-add on the daemon's one NBD server), and connects as above.
 * Close and check delete the export (waiting for BLOCK_EXPORT_DELETED, so
 * that no connection holds the node) and the node (blockdev-del closes and
 * flushes the image); check then runs qemu-img check on the file (vhdx:
 * -r all on a copy, nbd_qsd_check_vhdx), and the next request adds node
 * and export again.  Reopen deletes and adds them.
 * The daemon is in the cleanup table like the servers (killed at exit and
 * on the signals, PR_SET_PDEATHSIG); if it dies, requests, QMP commands and
 * the check fail with a message that quotes the end of its stderr (QEMU's
 * assertion), and the next run starts a new daemon.
 *
 * server=qsd fault rules (caps.fault_rules): a program's `fault` ops drive
 * a blkdebug node between the format node and its file node, put in by
 * blockdev-reopen once the image is open (opens, and the repair of a dirty
 * image, run without faults).  blkv's events map to QEMU's: data_read
 * read_aio, data_write write_aio, cow_read/cow_write the same, l1_update,
 * l2_update, l2_alloc l2_alloc_write, refblock_update refblock_update_part
 * (QEMU's refcount cache writes; its refblock_update is event-N), refblock_alloc,
 * reftable_grow, flush flush_to_disk; header_update has no blkdebug event
 * and is refused; QEMU's other events are the driver's own (event-13 ...).
 * Semantics are blkdebug's: the event arms the rule, and the next I/O of
 * any kind on the node fails; with `once` only that one, else every one
 * from then on.  `after N` (N <= 128, one event per program) is counted
 * in blkdebug's state with set-state rules.  Rules are fixed when a
 * blkdebug node is made: a fault op closes and reopens the image with a
 * new one, and so do a check and a reopen: the rules start over then (a
 * once rule may fire again).  QEMU 7.2 drops the NBD connection when a
 * read fails; the next request connects again.
 *
 * server=qsd crash (caps.crash): SIGKILL the daemon with requests in
 * flight; the image file (tmpfs) keeps what QEMU wrote to it, QEMU's
 * caches are lost; the next open starts a new daemon on the same file.
 * qemu-img check may then find leaks, never corruption (leaks it accepts
 * everywhere, as with qemu-nbd); with lazy_refcounts=on QEMU's open
 * repairs the dirty image, and the check must be clean.
 *
 * server=qsd crash-image=log: a power loss, not only a QEMU crash.  The
 * format's file child is a blklogwrites node (4 KiB log sectors) over the
 * image file, logging to disk.log; disk.base is the image as it was when
 * the node was added.  blklogwrites logs each lower request after it
 * completed, in completion order, and a request returns only once its log
 * entry is written.  At a crash op, after the SIGKILL, every write up to
 * the log's last flush stays, and of those after it a subset chosen from
 * the run's crash count is lost: each log sector whose last writer is lost
 * gets the value of the last kept writer before it (its logged data) or of
 * disk.base, and keeps the file's value where that is not known (a log
 * entry QEMU had not finished writing: holes in the tmpfs log; a discard).
 * cache=unsafe (the format node's cache.no-flush) makes QEMU complete
 * flushes without flushing: with the log's power loss, flushed writes are
 * then lost, the self-test that this power loss is real.
 */
#define _GNU_SOURCE /* execvpe */
#include <blkv/driver.h>

#include <libnbd.h>

#include "nbd_qmp.h"
#include "nbd_reader.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Runs (directories with a server) one process can hold at once. */
#define NBD_SLOTS 8
/* Longest per-run directory name: the socket path must fit sun_path. */
#define NBD_DIR_MAX 96
/* Most words in a server command line. */
#define NBD_MAX_ARGS 64
/* Most '+'-separated items in a list option (filters, args, create-opts). */
#define NBD_LIST_MAX 1024
/* How long to wait for a server to exit by itself before it is killed. */
#define NBD_EXIT_WAIT_MS 10000

/* server=qsd: fault rules a run can hold (the core's fuzz budget is 16). */
#define NBD_QSD_RULES 32
/* cache=unsafe: the format node's option that makes QEMU drop flushes */
#define NBD_NO_FLUSH "\"cache\":{\"no-flush\":true},"
/* crash-image=log: blklogwrites' log sector size (a page: see nbd_log_written) */
#define NBD_LOG_SECTOR 4096
/* server=qsd: the largest `after N`, counted with one blkdebug state per
 * occurrence (a set-state rule each). */
#define NBD_QSD_AFTER_MAX 128

enum nbd_server { NBD_SERVER_QEMU, NBD_SERVER_NBDKIT, NBD_SERVER_URI, NBD_SERVER_QSD };

/* A program's fault rule (server=qsd), as the core gave it. */
struct nbd_rule {
    unsigned event;
    int err;
    bool once;
    uint64_t after;
};

/* Requests held by the driver (reader=): a growing array, in order. */
struct nbd_reqq {
    struct blkv_req **v;
    size_t n, cap;
};

/* DAEMON: the qemu-storage-daemon and its directory, reclaimed at exit only. */
enum nbd_slot_state { NBD_SLOT_FREE, NBD_SLOT_OPEN, NBD_SLOT_CLOSED, NBD_SLOT_DAEMON };

/*
 * The cleanup table: the only global mutable state, read by the signal
 * handler.  A slot is OPEN while its run has the driver open, CLOSED between
 * close and the next run (or reopen), FREE when its server is stopped and
 * its directory removed.  The daemon's slot is DAEMON until exit; a forked
 * child leaves its parent's daemon alone (owner).
 */
struct nbd_slot {
    volatile sig_atomic_t state;
    volatile pid_t pid; /* the server, or 0 */
    volatile pid_t owner; /* DAEMON: the process that started it */
    char dir[NBD_DIR_MAX];
};
static struct nbd_slot nbd_slots[NBD_SLOTS];
static bool nbd_cleanup_installed;
static struct sigaction nbd_old_abrt, nbd_old_int, nbd_old_term;

struct nbd_state {
    struct blkv_ctx *ctx;
    struct nbd_handle *h;
    enum nbd_server server;
    int slot;            /* index in nbd_slots, or -1 (uri) */
    char img[NBD_DIR_MAX + 16];
    char sock[NBD_DIR_MAX + 16];
    char log[NBD_DIR_MAX + 16];
    const char *format;
    bool check;          /* run qemu-img check in check() */
    bool can_trim, can_flush;
    uint64_t completions; /* completion callbacks so far */
    uint64_t size;
    uint64_t export_size; /* the server's, from the handshake */
    /* server=qsd */
    bool attached;       /* node and export exist (and h is connected) */
    bool no_check;       /* the format has no check (qemu-img check exit 63) */
    uint64_t check_every; /* check=every-N: N (1: check=on) */
    uint64_t run_no;     /* this run's number in the process (check=every-N) */
    const char *discard; /* the node's discard option: unmap or ignore */
    unsigned gen;        /* the daemon generation the node was added to */
    char node[24], export[24];
    char filter[32];     /* the blkdebug node over the file node, or "" */
    unsigned filters;    /* blkdebug nodes made for this image (names them) */
    /* crash-image=log: blklogwrites under the format (its file node is the
     * image, its log disk.log); disk.base is the image as it was when the
     * node was added */
    bool log_mode;
    bool no_flush;       /* cache=unsafe: the format node drops flushes */
    unsigned crashes;    /* crash ops so far in the run (seed the lost writes) */
    bool crashed;        /* a crash op since the last open */
    int64_t t_attached;  /* when the program's part began (timing) */
    struct nbd_rule rules[NBD_QSD_RULES]; /* the program's fault rules so far */
    unsigned nrules;
    unsigned tmpl_id;    /* the template the image was copied from */
    bool conn_lost;      /* a completion said the connection is gone */
    /* reader= (server=qsd): reads through libyal's library on the image file */
    int rkind;               /* enum nbd_reader_kind */
    struct nbd_reader *rd;   /* open on the file as of rd_snap_gen, or NULL */
    uint64_t rd_gen;         /* bumped by each write-like completion */
    uint64_t rd_snap_gen;    /* rd_gen when rd was opened */
    uint64_t rd_flushed;     /* rd_gen + 1 when the reader's last flush was sent; 0: none */
    unsigned rd_writes;      /* write-like NBD commands in flight */
    bool rd_flushing;        /* the reader's flush is in flight */
    int rd_flush_err;        /* its result */
    struct nbd_reqq rd_reads; /* reads waiting for the writes to drain */
    struct nbd_reqq rd_held;  /* write-like requests held while reads wait */
};

static const struct blkv_option nbd_options[] = {
    {"server", "qemu-nbd", "qemu-nbd (one per run), qsd (one qemu-storage-daemon per process,"
     " a node and export per run over QMP), nbdkit, or none (with uri=)"},
    {"uri", NULL, "an existing server: nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
     " (its content is zeroed at the start of a run)"},
    {"format", "qcow2", "qemu-nbd, qsd: image format for qemu-img create (qcow2, raw, vmdk, vdi,"
     " vhdx, qed, vpc, parallels, ...)"},
    {"create-opts", NULL, "qemu-nbd, qsd: qemu-img create -o options, '+'-separated"
     " (cluster_size=4096+lazy_refcounts=on); qsd copies a template made once per format,"
     " size and create-opts"},
    {"check", "on", "qemu-nbd, qsd: check() closes the image in QEMU (qemu-nbd: stops the"
     " server; qsd: deletes export and node) and runs qemu-img check (on, off); qsd skips"
     " formats qemu-img has no check for (raw, vpc), checks vhdx with -r all on a copy (a"
     " log left to replay is replayed, as QEMU's next open does), and takes every-N: qemu-img check only"
     " in runs 0, N, 2N, ... of the process (the others still close the image in QEMU;"
     " a replayed reproducer is run 0)"},
    {"discard", "unmap", "qemu-nbd: --discard mode; qsd: the format node's discard option"
     " (unmap: trims and write-zeroes may free clusters; ignore)"},
    {"write-zeroes", "on", "use NBD write-zeroes when the server has it (off: the core writes"
     " zeros)"},
    {"plugin", "memory", "nbdkit: the plugin (memory, null, file, ...)"},
    {"filter", NULL, "nbdkit: filters, '+'-separated, outermost first (error+delay)"},
    {"args", NULL, "nbdkit: plugin and filter parameters, '+'-separated"
     " (error-rate=0.1+error=EIO); size=<device size> is added for sized plugins"},
    {"server-args", NULL, "extra server command-line words, '+'-separated (qsd: the daemon's;"
     " it is restarted when they change)"},
    {"faults", "auto", "the server may fail requests (caps.may_fail): on, off, or auto"
     " (on when the nbdkit error filter is used, or checkwrite, which fails with EIO a"
     " write that differs from the data)"},
    {"fault-rules", "on", "qsd: take the program's fault rules (on: through QEMU's blkdebug;"
     " off: the driver says it has none, so prop and the fuzzers leave them out)"},
    {"crash", "on", "qsd: take the program's crash ops (on: SIGKILL the daemon; off: the driver"
     " says it has no crash, so prop and the fuzzers leave them out)"},
    {"crash-image", "kept", "qsd: what a crash op leaves the next daemon: kept (the image file"
     " as the killed daemon left it: a disk without a volatile cache), log (a power loss:"
     " QEMU's lower writes, recorded by blklogwrites under the format, are kept up to its last"
     " flush and a seeded subset of the writes after it is lost), or lost (a fresh copy of the"
     " template: every write lost, a broken disk for the self-test that shows the post-crash"
     " check catches it)"},
    {"cache", "writeback", "qsd: the format node's cache mode: writeback (flushes reach the"
     " file, as qemu-nbd --cache=writeback) or unsafe (cache.no-flush: QEMU completes flushes"
     " without flushing; with crash-image=log a flushed write may then be lost, which the"
     " post-crash check reports: the self-test that the log's power loss is real)"},
    {"reader", "none", "qsd: a differential reader (none; libqcow for qcow2, libvmdk for vmdk,"
     " libvhdi for vpc and vhdx): every read is served by libyal's library from the image"
     " file, once no write is in flight and an NBD flush has put QEMU's caches in the file;"
     " writes submitted meanwhile wait"},
    {"timing", "off", "qsd: at exit, print to stderr the time spent per run in the image copy,"
     " node creation, export and connect, the program, export and node deletion, and"
     " qemu-img check (on, off; BLKV_NBD_TIMING=1 in the environment turns it on too)"},
    {NULL, NULL, NULL},
};

/* ---- cleanup (async-signal-safe parts) ----------------------------------- */

/* Remove dir (relative to the directory at), its files and, up to `depth`
 * levels down, its directories, with system calls only. */
static void nbd_drv_rmdir_at(int at, const char *dir, int depth)
{
    char buf[4096];
    int fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: ino, off, reclen, type, name */
                unsigned short reclen;
                const char *name = buf + off + 19;
                memcpy(&reclen, buf + off + 16, sizeof(reclen));
                if (strcmp(name, ".") && strcmp(name, "..") && unlinkat(fd, name, 0) < 0 &&
                    errno == EISDIR && depth > 0)
                    nbd_drv_rmdir_at(fd, name, depth - 1);
                off += reclen;
            }
        }
        close(fd);
    }
    unlinkat(at, dir, AT_REMOVEDIR);
}

/* Remove the files of dir (and of its directories) and dir itself. */
static void nbd_drv_rmdir_safe(const char *dir)
{
    nbd_drv_rmdir_at(AT_FDCWD, dir, 2);
}

/* Kill and reap the server of slot i, then remove its directory. */
static void nbd_drv_slot_reclaim(int i)
{
    struct nbd_slot *s = &nbd_slots[i];
    pid_t pid = s->pid;
    if (s->state == NBD_SLOT_DAEMON && s->owner != getpid()) {
        s->state = NBD_SLOT_FREE; /* a forked child's copy: the parent's daemon */
        return;
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0])
        nbd_drv_rmdir_safe(s->dir);
    s->state = NBD_SLOT_FREE;
}

/* Reclaim every slot: at exit and from the signal handler. */
static void nbd_drv_cleanup_all(void)
{
    for (int i = 0; i < NBD_SLOTS; i++)
        if (nbd_slots[i].state != NBD_SLOT_FREE)
            nbd_drv_slot_reclaim(i);
}

/* Signal handler: clean up, then pass the signal on to whoever had it. */
static void nbd_drv_signal(int sig, siginfo_t *info, void *uc)
{
    const struct sigaction *old = sig == SIGABRT ? &nbd_old_abrt
                                  : sig == SIGINT ? &nbd_old_int : &nbd_old_term;
    int saved = errno;
    nbd_drv_cleanup_all();
    errno = saved;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction)
            old->sa_sigaction(sig, info, uc);
    } else if (old->sa_handler == SIG_IGN) {
        return;
    } else if (old->sa_handler != SIG_DFL) {
        old->sa_handler(sig);
    } else {
        /* abort() would re-raise SIGABRT itself, but a SIGABRT sent by
         * another process (kill -ABRT) would return to the program */
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

/* Install the atexit and signal handlers once per process. */
static void nbd_drv_cleanup_install(void)
{
    struct sigaction sa;
    if (nbd_cleanup_installed)
        return;
    nbd_cleanup_installed = true;
    atexit(nbd_drv_cleanup_all);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = nbd_drv_signal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, &nbd_old_abrt);
    sigaction(SIGINT, &sa, &nbd_old_int);
    sigaction(SIGTERM, &sa, &nbd_old_term);
}

/* The base directory for run directories: $TMPDIR if short enough, else /tmp. */
static const char *nbd_drv_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t && strlen(t) <= NBD_DIR_MAX - 32 ? t : "/tmp";
}

/* Remove <prefix><pid>-* directories in base of processes that no longer exist. */
static void nbd_drv_remove_stale(const char *base, const char *prefix)
{
    size_t plen = strlen(prefix);
    DIR *d = opendir(base);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        long pid;
        char *end;
        if (strncmp(e->d_name, prefix, plen))
            continue;
        pid = strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || *end != '-' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", base, e->d_name) < (int)sizeof(path))
            nbd_drv_rmdir_safe(path);
    }
    closedir(d);
}

/* ---- processes ----------------------------------------------------------- */

/* Milliseconds on the monotonic clock. */
static int64_t nbd_drv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether `prog` can be executed: a path, or found in $PATH. */
static bool nbd_drv_have_program(const char *prog)
{
    const char *path = getenv("PATH");
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        char full[PATH_MAX];
        if (n && snprintf(full, sizeof(full), "%.*s/%s", (int)n, path, prog) < (int)sizeof(full) &&
            access(full, X_OK) == 0)
            return true;
        path += n + (colon ? 1 : 0);
    }
    return false;
}

/* Copy the first line of a log file into buf ("" if none). */
static void nbd_drv_log_line(const char *log, char *buf, size_t len)
{
    FILE *f = fopen(log, "r");
    buf[0] = 0;
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = 0;
    fclose(f);
}

/* Write a decimal number into buf (async-signal-safe); returns buf. */
static char *nbd_drv_utoa(char *buf, size_t len, unsigned long v)
{
    char *p = buf + len;
    *--p = 0;
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) && p > buf);
    return p;
}

/*
 * Start argv with stdout and stderr going to `log`.  With listen_fd >= 0 the
 * child gets it as fd 3, with LISTEN_FDS=1 and LISTEN_PID (socket
 * activation) when `activate`; it runs in directory cwd unless that is NULL.
 * The child dies with this process (PR_SET_PDEATHSIG).  Returns the pid or
 * a negative errno.
 */
static pid_t nbd_drv_spawn(char *const argv[], const char *log, int listen_fd, bool activate,
                           const char *cwd)
{
    size_t n = 0, k = 0;
    char **envp;
    char pidvar[40] = "LISTEN_PID=";
    pid_t parent = getpid(), pid;
    int logfd;

    while (environ[n])
        n++;
    envp = calloc(n + 3, sizeof(*envp));
    if (!envp)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LISTEN_", 7))
            envp[k++] = environ[i];
    if (listen_fd >= 0 && activate) {
        envp[k++] = pidvar; /* the digits are filled in by the child */
        envp[k++] = "LISTEN_FDS=1";
    }
    envp[k] = NULL;
    logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        int e = errno;
        free(envp);
        return -e;
    }
    pid = fork();
    if (pid < 0) {
        int e = errno;
        free(envp);
        close(logfd);
        return -e;
    }
    if (pid == 0) {
        char num[24];
        int devnull = open("/dev/null", O_RDONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || (cwd && chdir(cwd) < 0))
            _exit(126);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (listen_fd >= 0) {
            const char *digits = nbd_drv_utoa(num, sizeof(num), (unsigned long)getpid());
            if (listen_fd == 3)
                fcntl(3, F_SETFD, 0);
            else if (dup2(listen_fd, 3) < 0)
                _exit(126);
            if (activate)
                memcpy(pidvar + 11, digits, strlen(digits) + 1);
        }
        execvpe(argv[0], argv, envp);
        {
            static const char msg[] = ": cannot execute\n";
            if (write(2, argv[0], strlen(argv[0])) < 0 || write(2, msg, sizeof(msg) - 1) < 0)
                _exit(127);
        }
        _exit(127);
    }
    free(envp);
    close(logfd);
    return pid;
}

/* Wait up to ms for pid to exit; true if it did (reaped). */
static bool nbd_drv_wait_exit(pid_t pid, int ms, int *status)
{
    int64_t end = nbd_drv_now_ms() + ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return true;
        if (nbd_drv_now_ms() >= end)
            return false;
        usleep(1000);
    }
}

/* Run argv to completion; 0 if it exited 0, else -EIO with a message that
 * names the command and quotes its first line of output.  Exit codes listed
 * in `ok_codes` (terminated by -1) also count as success; *code (if not
 * NULL) gets the exit code, or -1. */
static int nbd_drv_run_cmd_code(struct nbd_state *s, char *const argv[], const int *ok_codes,
                                int *code_out)
{
    char line[256];
    int status = 0;
    pid_t pid = nbd_drv_spawn(argv, s->log, -1, false, NULL);

    if (pid < 0) {
        blkv_error(s->ctx, "%s: cannot start: %s", argv[0], strerror((int)-pid));
        return (int)pid;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (code_out)
        *code_out = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (code == 0)
            return 0;
        for (const int *c = ok_codes; c && *c >= 0; c++)
            if (code == *c)
                return 0;
    }
    nbd_drv_log_line(s->log, line, sizeof(line));
    blkv_error(s->ctx, "%s %s failed (%s %d)%s%s", argv[0], argv[1] ? argv[1] : "",
               WIFEXITED(status) ? "exit" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
               line[0] ? ": " : "", line);
    return -EIO;
}

/* nbd_drv_run_cmd_code without the exit code. */
static int nbd_drv_run_cmd(struct nbd_state *s, char *const argv[], const int *ok_codes)
{
    return nbd_drv_run_cmd_code(s, argv, ok_codes, NULL);
}

/* ---- option helpers ------------------------------------------------------ */

/* A command line under construction, with its strings in `store`. */
struct nbd_drv_cmd {
    char *argv[NBD_MAX_ARGS];
    int argc;
    size_t used;
    bool overflow;
    char store[4 * NBD_LIST_MAX];
};

/* Append one word, formed as prefix + the first n bytes of word. */
static void nbd_drv_push(struct nbd_drv_cmd *c, const char *prefix, const char *word, size_t n)
{
    size_t room = sizeof(c->store) - c->used;
    int w;
    if (c->argc >= NBD_MAX_ARGS - 1) {
        c->overflow = true;
        return;
    }
    w = snprintf(c->store + c->used, room, "%s%.*s", prefix, (int)n, word);
    if (w < 0 || (size_t)w >= room) {
        c->overflow = true;
        return;
    }
    c->argv[c->argc++] = c->store + c->used;
    c->argv[c->argc] = NULL;
    c->used += (size_t)w + 1;
}

/* Append the '+'-separated items of list, each with prefix. */
static void nbd_drv_push_list(struct nbd_drv_cmd *c, const char *prefix, const char *list)
{
    while (list && *list) {
        size_t n = strcspn(list, "+");
        if (n)
            nbd_drv_push(c, prefix, list, n);
        list += n + (list[n] ? 1 : 0);
    }
}

/* Whether the '+'-separated list contains `item`, or an item starting "item=". */
static bool nbd_drv_list_has(const char *list, const char *item)
{
    size_t len = strlen(item);
    while (list && *list) {
        size_t n = strcspn(list, "+");
        if ((n == len || (n > len && list[len] == '=')) && !strncmp(list, item, len))
            return true;
        list += n + (list[n] ? 1 : 0);
    }
    return false;
}

/* Parse on/off (and auto when allowed, as -1); -EINVAL with a message. */
static int nbd_drv_opt_bool(struct blkv_ctx *ctx, const char *name, bool allow_auto)
{
    const char *v = blkv_opt(ctx, name);
    if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1"))
        return 1;
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0"))
        return 0;
    if (allow_auto && !strcmp(v, "auto"))
        return -1;
    blkv_error(ctx, "%s=%s: expected on or off%s", name, v, allow_auto ? " or auto" : "");
    return -EINVAL;
}

/* check: on, off or every-N (N >= 1, into s->check_every); 1, 0 or -EINVAL. */
static int nbd_drv_opt_check(struct nbd_state *s, struct blkv_ctx *ctx)
{
    const char *v = blkv_opt(ctx, "check");
    char *end;
    unsigned long long n;

    s->check_every = 1;
    if (!v || strncmp(v, "every-", 6))
        return nbd_drv_opt_bool(ctx, "check", false);
    errno = 0;
    n = strtoull(v + 6, &end, 10);
    if (v[6] < '0' || v[6] > '9' || *end || errno || n == 0) {
        blkv_error(ctx, "check=%s: expected on, off or every-N (N >= 1)", v);
        return -EINVAL;
    }
    s->check_every = n;
    return 1;
}

/* ---- server -------------------------------------------------------------- */

/* Take a free slot and make its directory base/<prefix>XXXXXX (removing
 * directories of dead processes in base when `stale`); 0 or a negative errno. */
static int nbd_drv_slot_new_in(struct nbd_state *s, const char *base, const char *prefix,
                               bool stale)
{
    char tmpl[NBD_DIR_MAX];
    int i;

    nbd_drv_cleanup_install();
    /* runs are sequential: whatever a previous run left closed is over */
    for (i = 0; i < NBD_SLOTS; i++)
        if (nbd_slots[i].state == NBD_SLOT_CLOSED)
            nbd_drv_slot_reclaim(i);
    if (stale)
        nbd_drv_remove_stale(base, "blkv-nbd-");
    for (i = 0; i < NBD_SLOTS && nbd_slots[i].state != NBD_SLOT_FREE; i++)
        ;
    if (i == NBD_SLOTS) {
        blkv_error(s->ctx, "more than %d NBD runs open at once", NBD_SLOTS);
        return -EMFILE;
    }
    snprintf(tmpl, sizeof(tmpl), "%s/%sXXXXXX", base, prefix);
    if (!mkdtemp(tmpl)) {
        int e = errno;
        blkv_error(s->ctx, "mkdtemp %s: %s", tmpl, strerror(e));
        return -e;
    }
    memcpy(nbd_slots[i].dir, tmpl, sizeof(tmpl));
    nbd_slots[i].pid = 0;
    nbd_slots[i].state = NBD_SLOT_OPEN;
    s->slot = i;
    snprintf(s->img, sizeof(s->img), "%s/disk", tmpl);
    snprintf(s->sock, sizeof(s->sock), "%s/sock", tmpl);
    snprintf(s->log, sizeof(s->log), "%s/log", tmpl);
    return 0;
}

/* A slot with its directory in the temporary directory. */
static int nbd_drv_slot_new(struct nbd_state *s)
{
    char prefix[40];
    snprintf(prefix, sizeof(prefix), "blkv-nbd-%ld-", (long)getpid());
    return nbd_drv_slot_new_in(s, nbd_drv_tmpdir(), prefix, true);
}

/* Create the image with qemu-img create -f FORMAT [-o OPTS] IMG SIZE. */
static int nbd_drv_create_image(struct nbd_state *s, uint64_t size)
{
    struct nbd_drv_cmd *c = calloc(1, sizeof(*c));
    const char *co = blkv_opt(s->ctx, "create-opts");
    char sizebuf[32];
    int ret;

    if (!c)
        return -ENOMEM;
    snprintf(sizebuf, sizeof(sizebuf), "%" PRIu64, size);
    nbd_drv_push(c, "", "qemu-img", 8);
    nbd_drv_push(c, "", "create", 6);
    nbd_drv_push(c, "", "-q", 2);
    nbd_drv_push(c, "", "-f", 2);
    nbd_drv_push(c, "", s->format, strlen(s->format));
    if (co && *co) {
        char *o;
        nbd_drv_push(c, "", "-o", 2);
        nbd_drv_push(c, "", co, strlen(co));
        if (!c->overflow) /* qemu-img separates options with commas */
            for (o = c->argv[c->argc - 1]; *o; o++)
                if (*o == '+')
                    *o = ',';
    }
    nbd_drv_push(c, "", s->img, strlen(s->img));
    nbd_drv_push(c, "", sizebuf, strlen(sizebuf));
    if (c->overflow) {
        blkv_error(s->ctx, "qemu-img command line too long");
        ret = -E2BIG;
    } else {
        ret = nbd_drv_run_cmd(s, c->argv, NULL);
    }
    free(c);
    return ret;
}

/* Build the server command line for s into c. */
static void nbd_drv_server_cmd(struct nbd_state *s, struct nbd_drv_cmd *c)
{
    struct blkv_ctx *ctx = s->ctx;
    const char *extra = blkv_opt(ctx, "server-args");

    if (s->server == NBD_SERVER_QEMU) {
        static const char *const words[] = {"qemu-nbd", "-f", NULL};
        for (int i = 0; words[i]; i++)
            nbd_drv_push(c, "", words[i], strlen(words[i]));
        nbd_drv_push(c, "", s->format, strlen(s->format));
        nbd_drv_push(c, "--discard=", blkv_opt(ctx, "discard"), strlen(blkv_opt(ctx, "discard")));
        nbd_drv_push(c, "", "--cache=writeback", 17);
        nbd_drv_push_list(c, "", extra);
        nbd_drv_push(c, "", s->img, strlen(s->img));
    } else {
        static const char *const sized[] = {"memory", "null", "pattern", "random",
                                            "sparse-random", "zero", NULL};
        const char *plugin = blkv_opt(ctx, "plugin");
        const char *args = blkv_opt(ctx, "args");
        nbd_drv_push_list(c, "", "nbdkit+-f");
        nbd_drv_push_list(c, "--filter=", blkv_opt(ctx, "filter"));
        nbd_drv_push_list(c, "", extra);
        nbd_drv_push(c, "", plugin, strlen(plugin));
        nbd_drv_push_list(c, "", args);
        for (int i = 0; sized[i]; i++)
            if (!strcmp(plugin, sized[i]) && !nbd_drv_list_has(args, "size")) {
                char sizearg[40];
                int n = snprintf(sizearg, sizeof(sizearg), "size=%" PRIu64, s->size);
                nbd_drv_push(c, "", sizearg, (size_t)n);
                break;
            }
    }
}

/* Start the server on a fresh listening socket, recording its pid. */
static int nbd_drv_server_start(struct nbd_state *s)
{
    struct nbd_drv_cmd *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa;
    int fd = -1, ret = 0;
    pid_t pid;

    if (!c)
        return -ENOMEM;
    nbd_drv_server_cmd(s, c);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (c->overflow) {
        blkv_error(s->ctx, "server command line too long");
        ret = -E2BIG;
    } else if (!nbd_drv_have_program(c->argv[0])) {
        blkv_error(s->ctx, "%s: not found in PATH", c->argv[0]);
        ret = -ENOENT;
    } else if (strlen(s->sock) >= sizeof(sa.sun_path)) {
        blkv_error(s->ctx, "socket path %s: too long", s->sock);
        ret = -ENAMETOOLONG;
    }
    if (ret < 0)
        goto out;
    strcpy(sa.sun_path, s->sock);
    unlink(s->sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "socket %s: %s", s->sock, strerror(-ret));
        goto out;
    }
    pid = nbd_drv_spawn(c->argv, s->log, fd, true, NULL);
    if (pid < 0) {
        ret = (int)pid;
        blkv_error(s->ctx, "%s: cannot start: %s", c->argv[0], strerror(-ret));
        goto out;
    }
    nbd_slots[s->slot].pid = pid;
out:
    if (fd >= 0)
        close(fd);
    free(c);
    return ret;
}

/* Stop the server of s: wait for it to exit by itself when `graceful`
 * (qemu-nbd exits after its last client), else SIGTERM it first. */
static void nbd_drv_server_stop(struct nbd_state *s, bool graceful)
{
    struct nbd_slot *slot = &nbd_slots[s->slot];
    pid_t pid = slot->pid;
    int status;

    if (pid <= 0)
        return;
    if (!graceful)
        kill(pid, SIGTERM);
    if (!nbd_drv_wait_exit(pid, NBD_EXIT_WAIT_MS, &status)) {
        kill(pid, SIGTERM);
        if (!nbd_drv_wait_exit(pid, NBD_EXIT_WAIT_MS, &status)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    slot->pid = 0;
}

/* ---- connection ---------------------------------------------------------- */

static bool nbd_qsd_report_death(struct nbd_state *s, bool monitor);
static void nbd_rd_free(struct nbd_state *s);
static void nbd_drv_conn_error(struct nbd_state *s, int e);
static void nbd_drv_submit(void *state, struct blkv_req *req);

/* Report a libnbd failure of `what`; returns the negative errno.  With
 * server=qsd a dead daemon is the message (the first one counts). */
static int nbd_drv_fail(struct nbd_state *s, const char *what)
{
    int e = nbd_get_errno();
    char line[256] = "", msg[256];
    snprintf(msg, sizeof(msg), "%s", nbd_get_error() ? nbd_get_error() : "failed");
    if (s->server == NBD_SERVER_QSD)
        nbd_qsd_report_death(s, false);
    else if (s->slot >= 0)
        nbd_drv_log_line(s->log, line, sizeof(line));
    blkv_error(s->ctx, "%s: %s%s%s", what, msg, line[0] ? "; server said: " : "", line);
    return e > 0 ? -e : -EIO;
}

/* Connect to the server (our socket or the URI). */
static int nbd_drv_connect(struct nbd_state *s)
{
    int ret;
    s->h = nbd_create();
    if (!s->h)
        return nbd_drv_fail(s, "nbd_create");
    if (s->server == NBD_SERVER_URI) {
        if (nbd_connect_uri(s->h, blkv_opt(s->ctx, "uri")) < 0)
            goto fail;
    } else if ((s->export[0] && nbd_set_export_name(s->h, s->export) < 0) ||
               nbd_connect_unix(s->h, s->sock) < 0) {
        goto fail;
    }
    return 0;
fail:
    ret = nbd_drv_fail(s, s->server == NBD_SERVER_URI ? "nbd_connect_uri" : "nbd_connect_unix");
    nbd_close(s->h);
    s->h = NULL;
    return ret;
}

/* Disconnect cleanly (pending requests are done: the core drained them). */
static void nbd_drv_disconnect(struct nbd_state *s)
{
    if (!s->h)
        return;
    if (!nbd_aio_is_dead(s->h) && !nbd_aio_is_closed(s->h))
        nbd_shutdown(s->h, 0);
    nbd_close(s->h);
    s->h = NULL;
}

/* ---- qemu-storage-daemon (server=qsd) ------------------------------------ */

/* Templates (one per format, size and create-opts) kept at once. */
#define QSD_TEMPLATES 16
/* How long the daemon may take to start and answer its monitor. */
#define QSD_START_TIMEOUT_MS 10000
/* How long one QMP command may take before the daemon counts as hung. */
#define QSD_QMP_TIMEOUT_MS 30000
/* How long a lost connection waits to see whether the daemon died. */
#define QSD_DEATH_WAIT_MS 2000

struct nbd_qsd_template {
    bool used;
    bool no_check;      /* qemu-img check: the format has no check (exit 63) */
    unsigned id;        /* its directory: tmpl-<id> */
    uint64_t size;
    char format[32];
    char opts[NBD_LIST_MAX];
};

/* Totals over the process, for timing=on (nanoseconds). */
struct nbd_qsd_timing {
    bool on;
    uint64_t runs, attaches, detaches, checks, check_runs, starts, start_retries, templates;
    uint64_t log_rebuilds, log_entries, log_lost; /* crash-image=log */
    int64_t image_ns, node_ns, export_ns, program_ns, detach_ns, check_ns, start_ns,
        template_ns;
};

/* The process's daemon: one at a time, a new one after a death. */
struct nbd_qsd {
    pid_t owner;        /* the process this belongs to (a fork's child starts afresh) */
    int slot;           /* in nbd_slots (the daemon's pid, the directory), or -1 */
    unsigned gen;       /* daemon generation: names its sockets and log */
    uint64_t next_id;   /* node and export numbers */
    unsigned next_tmpl;
    bool death_reported; /* this generation's death is in a run's message */
    bool timing_installed;
    char dir[NBD_DIR_MAX];
    char qmp_path[NBD_DIR_MAX + 24], nbd_path[NBD_DIR_MAX + 24], log[NBD_DIR_MAX + 24];
    char pidfile[NBD_DIR_MAX + 24];
    char args[NBD_LIST_MAX]; /* the server-args it runs with */
    char death[400];         /* how the last daemon ended, with the end of its stderr */
    struct nbd_qsd_template tmpl[QSD_TEMPLATES];
    struct nbd_qsd_timing t;
    struct nbd_qmp qmp;
};
static struct nbd_qsd nbd_qsd = {.slot = -1, .qmp.fd = -1};

/* Nanoseconds on the monotonic clock. */
static int64_t nbd_qsd_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The base directory of the daemon's directory: tmpfs if there is one. */
static const char *nbd_qsd_base(void)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    if (x && *x && strlen(x) <= NBD_DIR_MAX - 64 && access(x, W_OK | X_OK) == 0)
        return x;
    return nbd_drv_tmpdir();
}

/* The last two non-empty lines of file path, joined by " | ", into buf. */
static void nbd_qsd_log_tail(const char *path, char *buf, size_t len)
{
    char tail[2048];
    char *lines[2] = {NULL, NULL};
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t end;

    buf[0] = 0;
    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    if (end > 0) {
        off_t from = end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0;
        n = pread(fd, tail, sizeof(tail) - 1, from);
    }
    close(fd);
    if (n <= 0)
        return;
    tail[n] = 0;
    for (char *p = strtok(tail, "\r\n"); p; p = strtok(NULL, "\r\n")) {
        while (*p == ' ')
            p++;
        if (*p) {
            lines[0] = lines[1];
            lines[1] = p;
        }
    }
    if (lines[0])
        snprintf(buf, len, "%s | %s", lines[0], lines[1]);
    else if (lines[1])
        snprintf(buf, len, "%s", lines[1]);
}

/* The daemon was reaped with `status`: say how it ended, forget it. */
static void nbd_qsd_reaped(int status)
{
    char tail[300];
    struct nbd_qsd *d = &nbd_qsd;
    pid_t pid = nbd_slots[d->slot].pid;

    nbd_qsd_log_tail(d->log, tail, sizeof(tail));
    if (WIFSIGNALED(status))
        snprintf(d->death, sizeof(d->death), "qemu-storage-daemon (pid %ld) died: signal %d (%s)%s%s",
                 (long)pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
                 tail[0] ? "; its stderr ends: " : "; its stderr is empty", tail);
    else
        snprintf(d->death, sizeof(d->death), "qemu-storage-daemon (pid %ld) exited with status %d%s%s",
                 (long)pid, WEXITSTATUS(status),
                 tail[0] ? "; its stderr ends: " : "; its stderr is empty", tail);
    nbd_slots[d->slot].pid = 0;
    nbd_qmp_close(&d->qmp);
    d->death_reported = false;
}

/* Whether the daemon is running, waiting up to wait_ms for it to end. */
static bool nbd_qsd_alive(int wait_ms)
{
    struct nbd_qsd *d = &nbd_qsd;
    int64_t end = nbd_drv_now_ms() + wait_ms;
    pid_t pid;
    int status;

    if (d->slot < 0 || (pid = nbd_slots[d->slot].pid) <= 0)
        return false;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            nbd_qsd_reaped(status);
            return false;
        }
        if (r < 0 && errno == ECHILD) {
            nbd_qsd_reaped(W_EXITCODE(255, 0));
            return false;
        }
        if (nbd_drv_now_ms() >= end)
            return true;
        usleep(1000);
    }
}

/* If the daemon has died (a connection to it was lost: the monitor's when
 * `monitor`, else the NBD client's), put how into the run's message; true
 * if it has. */
static bool nbd_qsd_report_death(struct nbd_state *s, bool monitor)
{
    struct nbd_qsd *d = &nbd_qsd;
    char tail[300], *last;
    int wait = d->death_reported ? 0 : QSD_DEATH_WAIT_MS;
    bool dead;

    /* a client QEMU dropped on purpose (its stderr's last line says so,
     * e.g. after a read failed): no death to wait for.  A monitor that
     * closed is the daemon ending, whatever its stderr says (QEMU may drop
     * a client and then abort) */
    nbd_qsd_log_tail(d->log, tail, sizeof(tail));
    last = strrchr(tail, '|'); /* the last line, unless it has a '|' itself */
    if (!monitor && strstr(last ? last : tail, "Disconnect client, due to: "))
        wait = 0;
    dead = s->gen != d->gen || !nbd_qsd_alive(wait);
    if (dead && d->death[0]) {
        blkv_error(s->ctx, "%s", d->death);
        if (s->gen == d->gen)
            d->death_reported = true;
    }
    return dead;
}

/* Kill the daemon (hung, or started with other arguments). */
static void nbd_qsd_kill(void)
{
    struct nbd_qsd *d = &nbd_qsd;
    pid_t pid = d->slot >= 0 ? nbd_slots[d->slot].pid : 0;
    int status;
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    nbd_qsd_reaped(status);
}

/* One QMP command for what (for messages); on failure the message says
 * what happened, the daemon's death with its stderr first. */
static int nbd_qsd_qmp(struct nbd_state *s, const char *what, const char *json)
{
    char err[300];
    int ret = nbd_qmp_cmd(&nbd_qsd.qmp, json, QSD_QMP_TIMEOUT_MS, err, sizeof(err));
    if (ret == -ETIMEDOUT) {
        nbd_qsd_kill();
        blkv_error(s->ctx, "qemu-storage-daemon: %s: no answer in %d s; the daemon was killed",
                   what, QSD_QMP_TIMEOUT_MS / 1000);
    } else if (ret < 0 && !(ret == -ECONNRESET && nbd_qsd_report_death(s, true))) {
        blkv_error(s->ctx, "qemu-storage-daemon: %s: %s", what, err);
    }
    return ret;
}

/* Read the reply to a command already sent, like nbd_qsd_qmp. */
static int nbd_qsd_reply(struct nbd_state *s, const char *what)
{
    char err[300];
    int ret = nbd_qmp_reply(&nbd_qsd.qmp, QSD_QMP_TIMEOUT_MS, err, sizeof(err));
    if (ret == -ETIMEDOUT) {
        nbd_qsd_kill();
        blkv_error(s->ctx, "qemu-storage-daemon: %s: no answer in %d s; the daemon was killed",
                   what, QSD_QMP_TIMEOUT_MS / 1000);
    } else if (ret < 0 && !(ret == -ECONNRESET && nbd_qsd_report_death(s, true))) {
        blkv_error(s->ctx, "qemu-storage-daemon: %s: %s", what, err);
    }
    return ret;
}

/* Wait for the event nbd_qmp_await armed, like nbd_qsd_qmp. */
static int nbd_qsd_wait(struct nbd_state *s, const char *what)
{
    char err[300];
    int ret = nbd_qmp_wait(&nbd_qsd.qmp, QSD_QMP_TIMEOUT_MS, err, sizeof(err));
    if (ret == -ETIMEDOUT) {
        nbd_qsd_kill();
        blkv_error(s->ctx, "qemu-storage-daemon: %s did not come in %d s; the daemon was killed",
                   what, QSD_QMP_TIMEOUT_MS / 1000);
    } else if (ret < 0 && !(ret == -ECONNRESET && nbd_qsd_report_death(s, true))) {
        blkv_error(s->ctx, "qemu-storage-daemon: waiting for %s: %s", what, err);
    }
    return ret;
}

/* Make the process's directory and take its slot. */
static int nbd_qsd_dir(struct nbd_state *s)
{
    struct nbd_qsd *d = &nbd_qsd;
    const char *base = nbd_qsd_base();
    int i;

    if (strlen(base) > NBD_DIR_MAX - 64 || strpbrk(base, ",\"\\")) {
        blkv_error(s->ctx, "server=qsd: directory %s: too long, or has ',', '\"' or '\\\\'", base);
        return -EINVAL;
    }
    nbd_drv_remove_stale(base, "blkv-qsd-");
    for (i = 0; i < NBD_SLOTS && nbd_slots[i].state != NBD_SLOT_FREE; i++)
        ;
    if (i == NBD_SLOTS) {
        blkv_error(s->ctx, "more than %d NBD runs open at once", NBD_SLOTS);
        return -EMFILE;
    }
    snprintf(d->dir, sizeof(d->dir), "%s/blkv-qsd-%ld-XXXXXX", base, (long)getpid());
    if (!mkdtemp(d->dir)) {
        int e = errno;
        blkv_error(s->ctx, "mkdtemp %s: %s", d->dir, strerror(e));
        return -e;
    }
    memcpy(nbd_slots[i].dir, d->dir, sizeof(d->dir));
    nbd_slots[i].pid = 0;
    nbd_slots[i].owner = getpid();
    nbd_slots[i].state = NBD_SLOT_DAEMON;
    d->slot = i;
    return 0;
}

/* Whether QEMU has written its pid file (it writes the file whole, once). */
static bool nbd_qsd_pidfile_written(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Wait until the daemon pid has written its pid file (path, in dir): QEMU
 * writes it once its chardevs, monitors and NBD server exist and before its
 * main loop accepts anything.  Connecting to the monitor only then keeps
 * clear of a start race of QEMU before 2026 (tests/findings entry 14,
 * fixed upstream): until the monitor I/O thread has taken the listening
 * socket over, the main loop listens on it too, and a connection already
 * queued is seen by both (one then blocks in accept4, or both parse the
 * stream and QEMU aborts).  Measured: 11 failed starts in 8,080 before, 0
 * in 10,051 after (BENCHMARKS.md).  inotify reports the write, a pidfd the
 * daemon's death (-ECHILD); -ETIMEDOUT after timeout_ms. */
static int nbd_qsd_wait_pidfile(const char *path, const char *dir, pid_t pid, int timeout_ms)
{
    int64_t deadline = nbd_qsd_ns() / 1000000 + timeout_ms;
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 on kernels before 5.3: time out */
    int ret;

    if (in < 0 || inotify_add_watch(in, dir, IN_CREATE | IN_MODIFY) < 0) {
        ret = -errno;
        goto out;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = in, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
        char buf[4096];
        int64_t left;

        if (nbd_qsd_pidfile_written(path)) {
            ret = 0;
            break;
        }
        if ((left = deadline - nbd_qsd_ns() / 1000000) <= 0) {
            ret = -ETIMEDOUT;
            break;
        }
        if (poll(p, pfd >= 0 ? 2 : 1, (int)left) < 0 && errno != EINTR) {
            ret = -errno;
            break;
        }
        if (pfd >= 0 && (p[1].revents & POLLIN) && !nbd_qsd_pidfile_written(path)) {
            ret = -ECHILD;
            break;
        }
        while (read(in, buf, sizeof(buf)) > 0)
            ;
    }
out:
    if (in >= 0)
        close(in);
    if (pfd >= 0)
        close(pfd);
    return ret;
}

/* Start a daemon: its monitor on a socket bound here (passed as fd 3), its
 * NBD server on another; connect to the monitor.  A daemon that does not
 * come up (it died or hung before its monitor answered: no image is open
 * yet, so no program is involved) is started once more, with a warning
 * on stderr and a count in the timing line; a second failure is the
 * run's error. */
static int nbd_qsd_start(struct nbd_state *s, const char *args, bool again)
{
    struct nbd_qsd *d = &nbd_qsd;
    struct nbd_drv_cmd *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa;
    char err[300], word[NBD_DIR_MAX + 64];
    int fd = -1, ret = 0, n;
    int64_t t0 = nbd_qsd_ns();
    pid_t pid;

    if (!c)
        return -ENOMEM;
    if (!nbd_drv_have_program("qemu-storage-daemon")) {
        blkv_error(s->ctx, "qemu-storage-daemon: not found in PATH (Debian: qemu-system-common)");
        ret = -ENOENT;
        goto out;
    }
    /* the files of the generation before (a dead daemon's log is quoted by now) */
    unlink(d->qmp_path);
    unlink(d->nbd_path);
    unlink(d->log);
    unlink(d->pidfile);
    d->gen++;
    /* d->dir is at most NBD_DIR_MAX - 40 long (nbd_qsd_dir) */
    snprintf(d->qmp_path, sizeof(d->qmp_path), "%.*s/qmp-%u.sock", NBD_DIR_MAX, d->dir, d->gen);
    snprintf(d->nbd_path, sizeof(d->nbd_path), "%.*s/nbd-%u.sock", NBD_DIR_MAX, d->dir, d->gen);
    snprintf(d->log, sizeof(d->log), "%.*s/qsd-%u.log", NBD_DIR_MAX, d->dir, d->gen);
    snprintf(d->pidfile, sizeof(d->pidfile), "%.*s/qsd-%u.pid", NBD_DIR_MAX, d->dir, d->gen);
    snprintf(d->args, sizeof(d->args), "%s", args);
    nbd_drv_push(c, "", "qemu-storage-daemon", 19);
    nbd_drv_push(c, "", "--chardev", 9);
    nbd_drv_push_list(c, "", "socket,id=qmp,fd=3,server=on,wait=off");
    nbd_drv_push(c, "", "--monitor", 9);
    nbd_drv_push(c, "", "chardev=qmp", 11);
    nbd_drv_push(c, "", "--pidfile", 9);
    nbd_drv_push(c, "", d->pidfile, strlen(d->pidfile));
    nbd_drv_push(c, "", "--nbd-server", 12);
    n = snprintf(word, sizeof(word), "addr.type=unix,addr.path=%s", d->nbd_path);
    nbd_drv_push(c, "", word, (size_t)n);
    nbd_drv_push_list(c, "", args);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (c->overflow) {
        blkv_error(s->ctx, "qemu-storage-daemon command line too long");
        ret = -E2BIG;
        goto out;
    }
    strcpy(sa.sun_path, d->qmp_path); /* fits: NBD_DIR_MAX + 16 < sun_path */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "socket %s: %s", d->qmp_path, strerror(-ret));
        goto out;
    }
    pid = nbd_drv_spawn(c->argv, d->log, fd, false, d->dir); /* QMP names files in it */
    if (pid < 0) {
        ret = (int)pid;
        blkv_error(s->ctx, "qemu-storage-daemon: cannot start: %s", strerror(-ret));
        goto out;
    }
    nbd_slots[d->slot].pid = pid;
    d->death[0] = 0;
    d->death_reported = false;
    s->gen = d->gen;
    ret = nbd_qsd_wait_pidfile(d->pidfile, d->dir, pid, QSD_START_TIMEOUT_MS);
    if (ret < 0)
        snprintf(err, sizeof(err), "no pid file %s: %s", d->pidfile,
                 ret == -ECHILD ? "the daemon ended first" : strerror(-ret));
    else { /* queued on the listening socket until the main loop accepts it */
        /* one deadline for the whole start: what the pid file left of it */
        int64_t left = QSD_START_TIMEOUT_MS - (nbd_qsd_ns() - t0) / 1000000;
        ret = nbd_qmp_connect(&d->qmp, d->qmp_path, left > 1 ? (int)left : 1, err, sizeof(err));
    }
    if (ret < 0) {
        if (nbd_qsd_alive(ret == -ECONNRESET || ret == -ECHILD ? QSD_DEATH_WAIT_MS : 0))
            nbd_qsd_kill();
        if (again) {
            fprintf(stderr, "blkv: nbd: qemu-storage-daemon did not start: %s (%s); starting"
                            " it again\n", err, d->death);
            d->t.start_retries++;
            close(fd);
            free(c);
            return nbd_qsd_start(s, args, false);
        }
        blkv_error(s->ctx, "qemu-storage-daemon did not start: %s (%s)", err, d->death);
        goto out;
    }
    d->t.starts++;
    d->t.start_ns += nbd_qsd_ns() - t0;
out:
    if (fd >= 0)
        close(fd);
    free(c);
    return ret;
}

/* Print the timing totals (timing=on) at exit. */
static void nbd_qsd_timing_print(void)
{
    struct nbd_qsd_timing *t = &nbd_qsd.t;
    double runs = t->runs ? (double)t->runs : 1;
    if (nbd_qsd.owner != getpid())
        return;
    fprintf(stderr,
            "nbd qsd timing: %" PRIu64 " runs; per run, ms: image copy %.3f, blockdev-add %.3f,"
            " export+connect %.3f, program %.3f, export+node deletion %.3f, qemu-img check %.3f"
            " (%" PRIu64 " attaches, %" PRIu64 " detaches, %" PRIu64 " checks, %" PRIu64
            " qemu-img check runs); templates %" PRIu64 " (%.1f ms each); daemon starts %" PRIu64
            " (%.1f ms each, %" PRIu64 " started again)\n",
            t->runs, (double)t->image_ns / 1e6 / runs, (double)t->node_ns / 1e6 / runs,
            (double)t->export_ns / 1e6 / runs, (double)t->program_ns / 1e6 / runs,
            (double)t->detach_ns / 1e6 / runs, (double)t->check_ns / 1e6 / runs, t->attaches,
            t->detaches, t->checks, t->check_runs, t->templates,
            t->templates ? (double)t->template_ns / 1e6 / (double)t->templates : 0.0, t->starts,
            t->starts ? (double)t->start_ns / 1e6 / (double)t->starts : 0.0, t->start_retries);
    if (t->log_rebuilds)
        fprintf(stderr, "nbd qsd crash-image=log: %" PRIu64 " crash images rebuilt from %" PRIu64
                " logged lower requests, %" PRIu64 " of them lost\n", t->log_rebuilds,
                t->log_entries, t->log_lost);
}

/* A running daemon for this run, with the run's server-args. */
static int nbd_qsd_ensure(struct nbd_state *s, bool timing)
{
    struct nbd_qsd *d = &nbd_qsd;
    const char *args = blkv_opt(s->ctx, "server-args");
    int ret;

    if (!args)
        args = "";
    if (d->owner != getpid()) { /* new, or a forked child's copy of its parent's */
        if (d->qmp.fd >= 0)
            close(d->qmp.fd);
        if (d->slot >= 0 && nbd_slots[d->slot].owner != getpid())
            nbd_slots[d->slot].state = NBD_SLOT_FREE;
        memset(d, 0, sizeof(*d) - sizeof(d->qmp));
        d->slot = -1;
        d->qmp.fd = -1;
        d->owner = getpid();
    }
    nbd_drv_cleanup_install();
    if (timing && !d->timing_installed) {
        d->timing_installed = true;
        d->t.on = true;
        atexit(nbd_qsd_timing_print);
    }
    if (d->slot < 0 && (ret = nbd_qsd_dir(s)) < 0)
        return ret;
    if (nbd_qsd_alive(0) && strcmp(d->args, args))
        nbd_qsd_kill(); /* started with other server-args */
    if (!nbd_qsd_alive(0))
        return nbd_qsd_start(s, args, true);
    return 0;
}

/* Copy file src to dst, holes as holes (tmpfs has no reflinks). */
static int nbd_qsd_copy_file(struct nbd_state *s, int sdir, const char *name, int ddir,
                             const char *dname)
{
    int in = openat(sdir, name, O_RDONLY | O_CLOEXEC);
    int out = -1, ret = 0;
    struct stat st;
    off_t off = 0;

    if (in < 0 || fstat(in, &st) < 0 ||
        (out = openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
        ftruncate(out, st.st_size) < 0) {
        ret = -errno;
        goto out;
    }
    while (off < st.st_size) {
        off_t data = lseek(in, off, SEEK_DATA), hole;
        if (data < 0) {
            if (errno != ENXIO) /* ENXIO: only a hole is left */
                ret = -errno;
            break;
        }
        hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0) {
            ret = -errno;
            break;
        }
        for (off = data; off < hole;) {
            loff_t io = off, oo = off;
            ssize_t n = copy_file_range(in, &io, out, &oo, (size_t)(hole - off), 0);
            if (n <= 0) {
                char buf[65536];
                n = pread(in, buf, (size_t)(hole - off) < sizeof(buf) ? (size_t)(hole - off)
                                                                      : sizeof(buf), off);
                if (n <= 0 || pwrite(out, buf, (size_t)n, off) != n) {
                    ret = n < 0 ? -errno : -EIO;
                    goto out;
                }
            }
            off += n;
        }
    }
out:
    if (ret < 0)
        blkv_error(s->ctx, "copying %s to %s: %s", name, dname, strerror(-ret));
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return ret;
}

/* Copy every file of directory src into directory dst. */
static int nbd_qsd_copy_dir(struct nbd_state *s, const char *src, const char *dst)
{
    DIR *d = opendir(src);
    int ddir = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *e;
    int ret = 0;

    if (!d || ddir < 0) {
        ret = -errno;
        blkv_error(s->ctx, "%s: %s", d ? dst : src, strerror(-ret));
    }
    while (!ret && (e = readdir(d)))
        if (e->d_name[0] != '.')
            ret = nbd_qsd_copy_file(s, dirfd(d), e->d_name, ddir, e->d_name);
    if (d)
        closedir(d);
    if (ddir >= 0)
        close(ddir);
    return ret;
}

/* ---- crash-image=log: power loss from blklogwrites' record --------------- */

/* A blklogwrites log entry (dm-log-writes' format, little-endian): its
 * header fills one log sector, the data (none for a flush or a discard)
 * follows; sector and count are in log sectors. */
#define NBD_LOG_FLUSH 1u
#define NBD_LOG_DISCARD 4u
#define NBD_LOG_FLAGS 15u

struct nbd_log_entry {
    uint64_t sector, n, flags;
    uint64_t data; /* the log offset of its data */
    bool lost;
};

/* A log sector written by one entry: (image sector, entry index). */
struct nbd_log_touch {
    uint64_t sector;
    uint32_t entry;
};

static int nbd_log_touch_cmp(const void *a, const void *b)
{
    const struct nbd_log_touch *x = a, *y = b;
    if (x->sector != y->sector)
        return x->sector < y->sector ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* Whether QEMU wrote the log sector at off: on tmpfs (and disk file
 * systems) a page nobody wrote is a hole. */
static bool nbd_log_written(int fd, uint64_t off)
{
    return lseek(fd, (off_t)off, SEEK_DATA) == (off_t)off;
}

static uint64_t nbd_log_mix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Before a node is added: the image as it is now (disk.base) and an empty
 * log (disk.log).  The image must be one file: blklogwrites logs the
 * format's file child only, not a vmdk's extents. */
static int nbd_qsd_log_prepare(struct nbd_state *s)
{
    const char *dir = nbd_slots[s->slot].dir;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), lfd, ret = 0, files = 0;
    DIR *d;
    struct dirent *e;

    if (sysconf(_SC_PAGESIZE) != NBD_LOG_SECTOR) {
        blkv_error(s->ctx, "crash-image=log: needs %d-byte pages (holes in the log mark the log"
                   " sectors QEMU never wrote)", NBD_LOG_SECTOR);
        if (dfd >= 0)
            close(dfd);
        return -ENOTSUP;
    }
    if (dfd < 0 || !(d = opendir(dir))) {
        ret = -errno;
        blkv_error(s->ctx, "%s: %s", dir, strerror(-ret));
        if (dfd >= 0)
            close(dfd);
        return ret;
    }
    while ((e = readdir(d)))
        files += !strncmp(e->d_name, "disk", 4) && strcmp(e->d_name, "disk.base") &&
                 strcmp(e->d_name, "disk.log"); /* the image and its extents */
    closedir(d);
    if (files != 1) {
        blkv_error(s->ctx, "crash-image=log: the image is %d files (extents?); blklogwrites"
                   " records the format's own file only", files);
        close(dfd);
        return -ENOTSUP;
    }
    unlinkat(dfd, "disk.base", 0);
    unlinkat(dfd, "disk.log", 0);
    if ((ret = nbd_qsd_copy_file(s, dfd, "disk", dfd, "disk.base")) == 0) {
        if ((lfd = openat(dfd, "disk.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
            ret = -errno;
            blkv_error(s->ctx, "%s/disk.log: %s", dir, strerror(-ret));
        } else {
            close(lfd);
        }
    }
    close(dfd);
    return ret;
}

/* Read the log's entries: scanned from sector 1 (the superblock is written
 * at flushes only).  A hole where a header should be is an entry QEMU had
 * not begun to write when it was killed (a log write is one pwritev, so
 * what it wrote is a prefix): the next written sector starts the next
 * entry.  An entry whose header is garbage ends the scan. */
static int nbd_qsd_log_entries(int fd, uint64_t len, struct nbd_log_entry **out, size_t *nout)
{
    struct nbd_log_entry *v = NULL;
    size_t n = 0, cap = 0;

    for (uint64_t pos = NBD_LOG_SECTOR; pos + NBD_LOG_SECTOR <= len;) {
        uint8_t h[32];
        struct nbd_log_entry e = {0};
        if (!nbd_log_written(fd, pos)) {
            off_t next = lseek(fd, (off_t)pos, SEEK_DATA);
            if (next < 0)
                break;
            pos = ((uint64_t)next + NBD_LOG_SECTOR - 1) / NBD_LOG_SECTOR * NBD_LOG_SECTOR;
            continue;
        }
        if (pread(fd, h, sizeof(h), (off_t)pos) != (ssize_t)sizeof(h))
            break;
        memcpy(&e.sector, h, 8);
        memcpy(&e.n, h + 8, 8);
        memcpy(&e.flags, h + 16, 8);
        e.sector = le64toh(e.sector);
        e.n = le64toh(e.n);
        e.flags = le64toh(e.flags);
        if (e.flags & ~(uint64_t)NBD_LOG_FLAGS || e.n > (BLKV_MAX_DEVICE_SIZE / NBD_LOG_SECTOR) ||
            e.sector > (BLKV_MAX_DEVICE_SIZE / NBD_LOG_SECTOR) * 4)
            break;
        e.data = pos + NBD_LOG_SECTOR;
        pos = e.data + (e.flags & NBD_LOG_DISCARD ? 0 : e.n * NBD_LOG_SECTOR);
        if (n == cap) {
            struct nbd_log_entry *w = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));
            if (!w) {
                free(v);
                return -ENOMEM;
            }
            v = w;
        }
        v[n++] = e;
    }
    *out = v;
    *nout = n;
    return 0;
}

/*
 * After the kill: the image file holds every lower write blklogwrites
 * passed on (each is logged after it completed, in completion order), and
 * the log says which.  Everything up to the log's last flush stays; of the
 * writes after it, a subset chosen by the run's crash count is lost: where
 * a lost write was the last to write a log sector, the sector gets the
 * value of the last kept write before it (its logged data), or of the
 * image when the node was added (disk.base).  Where that value is not
 * known (a log entry QEMU had not finished writing, a discard), the sector
 * keeps what the file holds: a write that may survive does.  Every state
 * made so is one a disk with a volatile cache could hold after a power
 * loss at the kill, so the post-crash rules apply as for any crash.
 */
static int nbd_qsd_log_rebuild(struct nbd_state *s)
{
    char path[NBD_DIR_MAX + 24];
    const char *dir = nbd_slots[s->slot].dir;
    int lfd = -1, bfd = -1, ifd = -1, ret = 0;
    struct nbd_log_entry *e = NULL;
    struct nbd_log_touch *t = NULL;
    size_t ne = 0, nt = 0, last_flush = SIZE_MAX;
    uint8_t *buf = NULL;
    struct stat st, bst;

    snprintf(path, sizeof(path), "%s/disk.log", dir);
    lfd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof(path), "%s/disk.base", dir);
    bfd = open(path, O_RDONLY | O_CLOEXEC);
    ifd = open(s->img, O_RDWR | O_CLOEXEC);
    if (lfd < 0 || bfd < 0 || ifd < 0 || fstat(lfd, &st) < 0 || fstat(bfd, &bst) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "crash-image=log: %s: %s", dir, strerror(-ret));
        goto out;
    }
    if ((ret = nbd_qsd_log_entries(lfd, (uint64_t)st.st_size, &e, &ne)) < 0)
        goto out;
    for (size_t i = 0; i < ne; i++)
        if (e[i].flags & NBD_LOG_FLUSH)
            last_flush = i;
    s->crashes++;
    for (size_t i = last_flush == SIZE_MAX ? 0 : last_flush + 1; i < ne; i++)
        e[i].lost = nbd_log_mix(((uint64_t)s->crashes << 32) ^ i) & 1;
    for (size_t i = 0; i < ne; i++)
        nt += e[i].n;
    if (nt && !(t = malloc(nt * sizeof(*t)))) {
        ret = -ENOMEM;
        goto out;
    }
    nt = 0;
    for (size_t i = 0; i < ne; i++)
        for (uint64_t k = 0; k < e[i].n; k++)
            t[nt++] = (struct nbd_log_touch){.sector = e[i].sector + k, .entry = (uint32_t)i};
    if (nt)
        qsort(t, nt, sizeof(*t), nbd_log_touch_cmp);
    if (!(buf = malloc(NBD_LOG_SECTOR))) {
        ret = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < nt; j++) {
        size_t last = j, k;
        uint64_t x = t[j].sector, off = x * NBD_LOG_SECTOR;
        const struct nbd_log_entry *w;
        bool known;
        while (last + 1 < nt && t[last + 1].sector == x)
            last++;
        k = last;
        if (e[t[last].entry].lost) {
            while (k > j && e[t[k].entry].lost)
                k--;
            if (e[t[k].entry].lost) { /* no kept write before: the image at the start */
                memset(buf, 0, NBD_LOG_SECTOR);
                known = off >= (uint64_t)bst.st_size ||
                        pread(bfd, buf, NBD_LOG_SECTOR, (off_t)off) >= 0;
            } else {
                uint64_t lo;
                w = &e[t[k].entry];
                lo = w->data + (x - w->sector) * NBD_LOG_SECTOR;
                known = !(w->flags & NBD_LOG_DISCARD) && nbd_log_written(lfd, lo) &&
                        pread(lfd, buf, NBD_LOG_SECTOR, (off_t)lo) == NBD_LOG_SECTOR;
            }
            if (known && pwrite(ifd, buf, NBD_LOG_SECTOR, (off_t)off) != NBD_LOG_SECTOR) {
                ret = -EIO;
                blkv_error(s->ctx, "crash-image=log: cannot write %s", s->img);
                goto out;
            }
        }
        j = last;
    }
    for (size_t i = 0; i < ne; i++)
        nbd_qsd.t.log_lost += e[i].lost;
    nbd_qsd.t.log_entries += ne;
    nbd_qsd.t.log_rebuilds++;
out:
    free(buf);
    free(t);
    free(e);
    if (lfd >= 0)
        close(lfd);
    if (bfd >= 0)
        close(bfd);
    if (ifd >= 0)
        close(ifd);
    return ret;
}

/* The template for the run's format, size and create-opts: made by
 * qemu-img create (and probed by qemu-img check) the first time. */
static int nbd_qsd_template(struct nbd_state *s, uint64_t size, struct nbd_qsd_template **out)
{
    struct nbd_qsd *d = &nbd_qsd;
    const char *co = blkv_opt(s->ctx, "create-opts");
    char *argv[] = {"qemu-img", "check", "-q", "-f", (char *)s->format, s->img, NULL};
    struct nbd_qsd_template *t;
    int64_t t0 = nbd_qsd_ns();
    char path[NBD_DIR_MAX + 24];
    int ret, code;

    if (!co)
        co = "";
    for (int i = 0; i < QSD_TEMPLATES; i++) {
        t = &d->tmpl[i];
        if (t->used && t->size == size && !strcmp(t->format, s->format) && !strcmp(t->opts, co)) {
            *out = t;
            return 0;
        }
    }
    t = &d->tmpl[d->next_tmpl++ % QSD_TEMPLATES];
    if (t->used) {
        snprintf(path, sizeof(path), "%.*s/tmpl-%u", NBD_DIR_MAX, d->dir, t->id);
        nbd_drv_rmdir_safe(path);
    }
    memset(t, 0, sizeof(*t));
    t->id = d->next_tmpl;
    snprintf(path, sizeof(path), "%.*s/tmpl-%u", NBD_DIR_MAX, d->dir, t->id);
    if (mkdir(path, 0700) < 0) {
        ret = -errno;
        blkv_error(s->ctx, "mkdir %s: %s", path, strerror(-ret));
        return ret;
    }
    snprintf(s->img, sizeof(s->img), "%.*s/disk", (int)sizeof(s->img) - 6, path);
    if ((ret = nbd_drv_create_image(s, size)) < 0)
        return ret;
    /* does the format have a check?  (63: no; 3: leaks, as QEMU 7.2 finds in a new
     * 1 TiB parallels image; anything else but 0: a bad template) */
    if ((ret = nbd_drv_run_cmd_code(s, argv, (const int[]){3, 63, -1}, &code)) < 0)
        return ret;
    t->no_check = code == 63;
    t->size = size;
    snprintf(t->format, sizeof(t->format), "%s", s->format);
    snprintf(t->opts, sizeof(t->opts), "%s", co);
    t->used = true;
    d->t.templates++;
    d->t.template_ns += nbd_qsd_ns() - t0;
    *out = t;
    return 0;
}

/* A fresh run: a daemon, and the run's image, a copy of its template. */
static int nbd_qsd_create(struct nbd_state *s, uint64_t size, bool timing)
{
    struct nbd_qsd_template *t = NULL;
    char src[NBD_DIR_MAX + 24], dst[NBD_DIR_MAX];
    int64_t t0;
    int ret;

    if ((ret = nbd_qsd_ensure(s, timing)) < 0)
        return ret;
    if ((ret = nbd_drv_slot_new_in(s, nbd_qsd.dir, "i", false)) < 0)
        return ret;
    if ((ret = nbd_qsd_template(s, size, &t)) < 0)
        return ret;
    t0 = nbd_qsd_ns();
    snprintf(src, sizeof(src), "%s/tmpl-%u", nbd_qsd.dir, t->id);
    snprintf(dst, sizeof(dst), "%s", nbd_slots[s->slot].dir);
    if ((ret = nbd_qsd_copy_dir(s, src, dst)) < 0)
        return ret;
    s->no_check = t->no_check;
    s->tmpl_id = t->id;
    snprintf(s->img, sizeof(s->img), "%s/disk", dst);
    s->run_no = nbd_qsd.t.runs++;
    nbd_qsd.t.image_ns += nbd_qsd_ns() - t0;
    return 0;
}

/* blkv's standard events as QEMU's blkdebug names them (NULL: none; a
 * qcow2 header update has no blkdebug event). */
static const char *const nbd_qsd_std_events[BLKV_EV__STANDARD] = {
    [BLKV_EV_DATA_READ] = "read_aio",
    [BLKV_EV_DATA_WRITE] = "write_aio",
    [BLKV_EV_COW_READ] = "cow_read",
    [BLKV_EV_COW_WRITE] = "cow_write",
    [BLKV_EV_L1_UPDATE] = "l1_update",
    [BLKV_EV_L2_UPDATE] = "l2_update",
    [BLKV_EV_L2_ALLOC] = "l2_alloc_write",
    [BLKV_EV_REFBLOCK_UPDATE] = "refblock_update_part", /* every refblock cache write */
    [BLKV_EV_REFBLOCK_ALLOC] = "refblock_alloc",
    [BLKV_EV_REFTABLE_GROW] = "reftable_grow",
    [BLKV_EV_FLUSH] = "flush_to_disk",
};

/* QEMU 7.2's other blkdebug events (qapi/block-core.json BlkdebugEvent),
 * the driver's own: event-13 on.  The binary decoder reaches the first 15.
 * Left out: reftable_load and none, which fire only while an image opens
 * (the rules are not in force then, see nbd_qsd_filter). */
static const char *const nbd_qsd_events[] = {
    "cluster_alloc", "cluster_alloc_bytes", "cluster_alloc_space", "cluster_free", "l2_load",
    "l2_alloc_cow_read", "refblock_load", "refblock_update", "refblock_alloc_hookup",
    "refblock_alloc_write", "reftable_update", "flush_to_os", "pwritev", "pwritev_zero",
    "pwritev_done", "refblock_alloc_write_blocks", "refblock_alloc_write_table",
    "refblock_alloc_switch_table", "l1_grow_alloc_table", "l1_grow_write_table",
    "l1_grow_activate_table", "l1_shrink_write_table", "l1_shrink_free_l2_clusters",
    "l2_update_compressed", "read_backing_aio", "read_compressed", "write_compressed",
    "vmstate_load", "vmstate_save", "pwritev_rmw_head", "pwritev_rmw_after_head",
    "pwritev_rmw_tail", "pwritev_rmw_after_tail", "empty_image_prepare", "cor_write", NULL,
};

/* QEMU's name of blkv event ev, or NULL if blkdebug has none. */
static const char *nbd_qsd_event_name(unsigned ev)
{
    size_t n = sizeof(nbd_qsd_events) / sizeof(nbd_qsd_events[0]) - 1;
    if (ev < BLKV_EV__STANDARD)
        return nbd_qsd_std_events[ev];
    return ev - BLKV_EV__STANDARD < n ? nbd_qsd_events[ev - BLKV_EV__STANDARD] : NULL;
}

/* One QMP command, formatted; like nbd_qsd_qmp. */
static int nbd_qsd_qmpf(struct nbd_state *s, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int nbd_qsd_qmpf(struct nbd_state *s, const char *what, const char *fmt, ...)
{
    char json[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(json)) {
        blkv_error(s->ctx, "qemu-storage-daemon: %s: command too long", what);
        return -E2BIG;
    }
    return nbd_qsd_qmp(s, what, json);
}

/* Delete the blkdebug node (after the format node above it). */
static int nbd_qsd_filter_del(struct nbd_state *s)
{
    int ret = 0;
    if (s->filter[0])
        ret = nbd_qsd_qmpf(s, "blockdev-del", "{\"execute\":\"blockdev-del\",\"arguments\":"
                           "{\"node-name\":\"%s\"}}", s->filter);
    s->filter[0] = 0;
    return ret;
}

/* Disconnect, delete the export (waiting until it is really gone, so that
 * no connection holds the node) and the node, and the blkdebug node under
 * it: QEMU flushes and closes the image. */
static int nbd_qsd_detach(struct nbd_state *s)
{
    struct nbd_qsd *d = &nbd_qsd;
    char json[256];
    int64_t t0 = nbd_qsd_ns();
    int ret;

    if (!s->attached)
        return 0;
    s->attached = false;
    nbd_reader_close(s->rd); /* QEMU's next open may write the file */
    s->rd = NULL;
    if (s->t_attached)
        d->t.program_ns += t0 - s->t_attached;
    nbd_drv_disconnect(s);
    if (s->gen != d->gen || !nbd_qsd_alive(0)) {
        s->filter[0] = 0;
        if (!nbd_qsd_report_death(s, true) || !d->death[0])
            blkv_error(s->ctx, "qemu-storage-daemon: gone before export %s was deleted", s->export);
        return -EIO;
    }
    nbd_qmp_await(&d->qmp, "BLOCK_EXPORT_DELETED", s->export);
    snprintf(json, sizeof(json),
             "{\"execute\":\"block-export-del\",\"arguments\":{\"id\":\"%s\",\"mode\":\"hard\"}}",
             s->export);
    if ((ret = nbd_qsd_qmp(s, "block-export-del", json)) < 0 ||
        (ret = nbd_qsd_wait(s, "BLOCK_EXPORT_DELETED")) < 0)
        return ret;
    snprintf(json, sizeof(json), "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"%s\"}}",
             s->node);
    if ((ret = nbd_qsd_qmp(s, "blockdev-del", json)) < 0)
        return ret;
    if ((ret = nbd_qsd_filter_del(s)) < 0)
        return ret;
    d->t.detaches++;
    d->t.detach_ns += nbd_qsd_ns() - t0;
    return 0;
}

/* Append to buf (of len, `*used` in it); false if it does not fit. */
static bool nbd_qsd_cat(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool nbd_qsd_cat(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (*used >= len)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *used) {
        *used = len;
        return false;
    }
    *used += (size_t)n;
    return true;
}

/*
 * The program's fault rules as a blkdebug node between the format node and
 * its file node, put in by blockdev-reopen of the format node once the
 * image is open (so that an open, and the repair a dirty image gets, runs
 * without faults, as in-process drivers' opens do).  blkdebug's own rules:
 * an event arms the rules on it, and the next I/O of any kind on the node
 * then fails; with `once` that one, else every one from then on.  `after N`
 * (one event per program) is counted with blkdebug's state: set-state
 * rules on the event step it 1, 2, ... N+1, and the rule is armed from
 * state N+1 (a `once` rule in state N+1 only).
 */
static int nbd_qsd_filter(struct nbd_state *s)
{
    size_t len = 65536, used = 0;
    char *json = malloc(len);
    const char *counted = NULL;
    uint64_t maxn = 0;
    bool ok = true;
    int ret;

    if (!json)
        return -ENOMEM;
    for (unsigned i = 0; i < s->nrules; i++)
        if (s->rules[i].after) {
            counted = nbd_qsd_event_name(s->rules[i].event);
            maxn = s->rules[i].after > maxn ? s->rules[i].after : maxn;
        }
    snprintf(s->filter, sizeof(s->filter), "%sb%u", s->node, ++s->filters);
    ok &= nbd_qsd_cat(json, len, &used, "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":"
                      "\"blkdebug\",\"node-name\":\"%s\",\"image\":\"%sf\",\"inject-error\":[",
                      s->filter, s->node);
    for (unsigned i = 0; i < s->nrules; i++) {
        const struct nbd_rule *r = &s->rules[i];
        const char *ev = nbd_qsd_event_name(r->event);
        uint64_t from = r->after ? r->after + 1 : 0, to = r->after && !r->once ? maxn + 1 : from;
        for (uint64_t st = from; st <= to; st++) {
            ok &= nbd_qsd_cat(json, len, &used, "%s{\"event\":\"%s\",\"errno\":%d,\"once\":%s",
                              used && json[used - 1] == '}' ? "," : "", ev, r->err,
                              r->once ? "true" : "false");
            ok &= st ? nbd_qsd_cat(json, len, &used, ",\"state\":%" PRIu64 "}", st)
                     : nbd_qsd_cat(json, len, &used, "}");
        }
    }
    ok &= nbd_qsd_cat(json, len, &used, "]");
    if (counted) {
        ok &= nbd_qsd_cat(json, len, &used, ",\"set-state\":[");
        for (uint64_t st = 1; st <= maxn; st++)
            ok &= nbd_qsd_cat(json, len, &used, "%s{\"event\":\"%s\",\"state\":%" PRIu64
                              ",\"new_state\":%" PRIu64 "}", st > 1 ? "," : "", counted, st,
                              st + 1);
        ok &= nbd_qsd_cat(json, len, &used, "]");
    }
    ok &= nbd_qsd_cat(json, len, &used, "}}");
    if (!ok) {
        free(json);
        s->filter[0] = 0;
        blkv_error(s->ctx, "blkdebug: the rules do not fit in a QMP command");
        return -E2BIG;
    }
    ret = nbd_qsd_qmp(s, "blockdev-add (blkdebug)", json);
    free(json);
    if (ret < 0) {
        s->filter[0] = 0;
        return ret;
    }
    /* every option the node was added with, the file child now the filter */
    ret = nbd_qsd_qmpf(s, "blockdev-reopen", "{\"execute\":\"blockdev-reopen\",\"arguments\":"
                       "{\"options\":[{\"driver\":\"%s\",\"node-name\":\"%s\",\"discard\":\"%s\","
                       "%s\"file\":\"%s\"}]}}", s->format, s->node, s->discard,
                       s->no_flush ? NBD_NO_FLUSH : "", s->filter);
    if (ret < 0)
        nbd_qsd_filter_del(s);
    return ret;
}

/*
 * Add the format node over the image file (both named), put the blkdebug
 * node under it if there are rules, export it and connect.  Without rules
 * the two commands go out together: QEMU's monitor reads a byte per
 * main-loop turn, so a command costs by its length (hence compact JSON, a
 * file name relative to the daemon's directory, one name for node and
 * export) and the reply to the first need not be awaited.
 */
static int nbd_qsd_attach(struct nbd_state *s)
{
    struct nbd_qsd *d = &nbd_qsd;
    char json[NBD_DIR_MAX * 4 + 768], file[NBD_DIR_MAX * 2 + 32], log[NBD_DIR_MAX * 2 + 48];
    char child[NBD_DIR_MAX * 4 + 320], err[300];
    const char *rel = s->img;
    size_t dl = strlen(d->dir);
    int64_t t0 = nbd_qsd_ns(), t1;
    int n, ret, ret2;

    if (!nbd_qsd_alive(0)) { /* it died since the run began: a new one */
        if ((ret = nbd_qsd_ensure(s, false)) < 0)
            return ret;
    }
    s->gen = d->gen;
    s->filter[0] = 0;
    snprintf(s->node, sizeof(s->node), "n%" PRIu64, ++d->next_id);
    snprintf(s->export, sizeof(s->export), "%s", s->node);
    snprintf(s->sock, sizeof(s->sock), "%.*s", (int)sizeof(s->sock) - 1, d->nbd_path);
    if (!strncmp(rel, d->dir, dl) && rel[dl] == '/')
        rel += dl + 1;
    if (!nbd_qmp_json_str(file, sizeof(file), rel)) {
        blkv_error(s->ctx, "image path %s: too long", s->img);
        return -ENAMETOOLONG;
    }
    if (s->log_mode) {
        /* blklogwrites between the format and the image file: 4 KiB log
         * sectors, so that a tmpfs page is one log sector (holes in the log
         * are log sectors QEMU never wrote) */
        char lrel[NBD_DIR_MAX + 24];
        snprintf(lrel, sizeof(lrel), "%s.log", rel);
        if (!nbd_qmp_json_str(log, sizeof(log), lrel) || (ret = nbd_qsd_log_prepare(s)) < 0)
            return log[0] ? ret : -ENAMETOOLONG;
        n = snprintf(child, sizeof(child),
                     "{\"driver\":\"blklogwrites\",\"node-name\":\"%sf\",\"log-sector-size\":%u,"
                     "\"file\":{\"driver\":\"file\",\"node-name\":\"%sr\",\"filename\":%s},"
                     "\"log\":{\"driver\":\"file\",\"node-name\":\"%sl\",\"filename\":%s}}",
                     s->node, NBD_LOG_SECTOR, s->node, file, s->node, log);
    } else {
        n = snprintf(child, sizeof(child), "{\"driver\":\"file\",\"node-name\":\"%sf\","
                     "\"filename\":%s}", s->node, file);
    }
    if (n < 0 || (size_t)n >= sizeof(child)) {
        blkv_error(s->ctx, "blockdev-add command too long");
        return -E2BIG;
    }
    /* as qemu-nbd --cache=writeback --discard=MODE: cache.direct and
     * cache.no-flush are off, and so is the export's writethrough (the
     * defaults); file nodes take discard=unmap by default, as qemu-nbd's */
    n = snprintf(json, sizeof(json),
                 "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"%s\","
                 "\"node-name\":\"%s\",\"discard\":\"%s\",%s\"file\":%s}}%s",
                 s->format, s->node, s->discard, s->no_flush ? NBD_NO_FLUSH : "", child,
                 s->nrules ? "" : "\n");
    if (n > 0 && (size_t)n < sizeof(json) && !s->nrules)
        n += snprintf(json + n, sizeof(json) - (size_t)n,
                      "{\"execute\":\"block-export-add\",\"arguments\":{\"type\":\"nbd\","
                      "\"id\":\"%s\",\"node-name\":\"%s\",\"writable\":true}}", s->node, s->node);
    if (n < 0 || (size_t)n >= sizeof(json)) {
        blkv_error(s->ctx, "blockdev-add command too long");
        return -E2BIG;
    }
    ret = nbd_qsd_qmp(s, "blockdev-add", json);
    t1 = nbd_qsd_ns();
    if (ret == -EREMOTEIO && !s->nrules) { /* the export's reply (an error too) is still to come */
        nbd_qmp_reply(&d->qmp, QSD_QMP_TIMEOUT_MS, err, sizeof(err));
        return ret;
    }
    if (ret < 0)
        return ret;
    if (s->nrules && ((ret = nbd_qsd_filter(s)) < 0 ||
                      (ret = nbd_qsd_qmpf(s, "block-export-add", "{\"execute\":"
                                          "\"block-export-add\",\"arguments\":{\"type\":\"nbd\","
                                          "\"id\":\"%s\",\"node-name\":\"%s\",\"writable\":true}}",
                                          s->node, s->node)) < 0)) {
        if (ret == -EREMOTEIO) {
            nbd_qsd_qmpf(s, "blockdev-del", "{\"execute\":\"blockdev-del\",\"arguments\":"
                         "{\"node-name\":\"%s\"}}", s->node);
            nbd_qsd_filter_del(s);
        }
        return ret;
    }
    if (!s->nrules && (ret = nbd_qsd_reply(s, "block-export-add")) < 0) {
        if (ret == -EREMOTEIO) {
            snprintf(json, sizeof(json),
                     "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"%s\"}}",
                     s->node);
            nbd_qsd_qmp(s, "blockdev-del", json);
        }
        return ret;
    }
    s->attached = true;
    s->t_attached = 0;
    s->conn_lost = false;
    if ((ret2 = nbd_drv_connect(s)) < 0) {
        nbd_qsd_detach(s);
        return ret2;
    }
    d->t.attaches++;
    d->t.node_ns += t1 - t0;
    s->t_attached = nbd_qsd_ns();
    d->t.export_ns += s->t_attached - t1;
    return 0;
}

/* Whether the qcow2 image at path has its dirty bit set (version 3,
 * incompatible feature bit 0): lazy refcounts, and the last close did not
 * get to mark it clean (a failed flush, say), so its refcounts are stale
 * until an open repairs them. */
static bool nbd_qcow2_dirty(const char *path)
{
    unsigned char h[80];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool dirty = false;

    if (fd < 0)
        return false;
    if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h)) {
        uint32_t magic, version;
        uint64_t incompat;
        memcpy(&magic, h, 4), memcpy(&version, h + 4, 4), memcpy(&incompat, h + 72, 8);
        dirty = be32toh(magic) == 0x514649fbu && be32toh(version) >= 3 && (be64toh(incompat) & 1);
    }
    close(fd);
    return dirty;
}

/* qemu-img check -r all on a copy of the vhdx image, the copy removed
 * after.  A vhdx image can hold a log that QEMU replays at its next
 * read-write open and refuses to open read-only past ("contains a log that
 * needs to be replayed"): a failed flush between the log write and its
 * replay leaves one, as the format intends.  QEMU's vhdx check repairs by
 * replaying the log and nothing else, and counts the same BAT errors either
 * way, so the copy is checked the way the daemon's next open will find it,
 * while the image keeps its log for that open to replay. */
static int nbd_qsd_check_vhdx(struct nbd_state *s, const int *ok)
{
    char dir[sizeof(s->img)], copy[sizeof(s->img) + 8];
    char *argv[] = {"qemu-img", "check", "-q", "-r", "all", "-f", "vhdx", copy, NULL};
    char *slash;
    int dfd, ret;

    snprintf(dir, sizeof(dir), "%s", s->img);
    if (!(slash = strrchr(dir, '/')))
        return -EINVAL; /* s->img is always DIR/disk */
    *slash = 0;
    snprintf(copy, sizeof(copy), "%s.check", s->img);
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        blkv_error(s->ctx, "%s: %s", dir, strerror(errno));
        return -EIO;
    }
    unlinkat(dfd, "disk.check", 0);
    if ((ret = nbd_qsd_copy_file(s, dfd, "disk", dfd, "disk.check")) == 0)
        ret = nbd_drv_run_cmd(s, argv, ok);
    unlinkat(dfd, "disk.check", 0);
    close(dfd);
    return ret;
}

/* check(): close the image in QEMU and run qemu-img check on its file; the
 * next request adds node and export again. */
static int nbd_qsd_check(struct nbd_state *s)
{
    static const int ok[] = {3, -1}; /* leaked clusters, as with qemu-nbd */
    char *ro[] = {"qemu-img", "check", "-q", "-f", (char *)s->format, s->img, NULL};
    char *repair[] = {"qemu-img", "check", "-q", "-r", "all", "-f", (char *)s->format, s->img,
                      NULL};
    int64_t t0;
    int ret;

    nbd_qsd.t.checks++;
    if ((ret = nbd_qsd_detach(s)) < 0)
        return ret; /* the message says why (a dead daemon: QEMU's own words) */
    if (s->no_check || s->run_no % s->check_every)
        return 0;
    /* a dirty lazy-refcounts image: checked the way QEMU's next open takes
     * it, refcounts repaired first (what a read-only check would report
     * as corruption is the stale refcounts); anything left is reported */
    t0 = nbd_qsd_ns();
    if (!strcmp(s->format, "vhdx"))
        ret = nbd_qsd_check_vhdx(s, ok);
    else
        ret = nbd_drv_run_cmd(s, !strcmp(s->format, "qcow2") && nbd_qcow2_dirty(s->img) ? repair
                              : ro, ok);
    nbd_qsd.t.check_runs++;
    nbd_qsd.t.check_ns += nbd_qsd_ns() - t0;
    return ret < 0 ? -EUCLEAN : 0;
}

/* server=qsd options: the format's name goes into QMP, discard is the
 * node's (qemu-nbd's names accepted). */
static int nbd_qsd_opts(struct nbd_state *s)
{
    const char *d = blkv_opt(s->ctx, "discard"), *ci = blkv_opt(s->ctx, "crash-image");
    if (strcmp(ci, "kept") && strcmp(ci, "lost") && strcmp(ci, "log")) {
        blkv_error(s->ctx, "crash-image=%s: expected kept, lost or log", ci);
        return -EINVAL;
    }
    s->log_mode = !strcmp(ci, "log");
    if (!strcmp(blkv_opt(s->ctx, "cache"), "unsafe"))
        s->no_flush = true;
    else if (strcmp(blkv_opt(s->ctx, "cache"), "writeback")) {
        blkv_error(s->ctx, "cache=%s: expected writeback or unsafe", blkv_opt(s->ctx, "cache"));
        return -EINVAL;
    }
    if (!*s->format || strlen(s->format) >= 32 ||
        strspn(s->format, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(s->format)) {
        blkv_error(s->ctx, "format=%s: not a QEMU format name", s->format);
        return -EINVAL;
    }
    if ((s->rkind = nbd_reader_kind(s->ctx, blkv_opt(s->ctx, "reader"), s->format)) < 0)
        return s->rkind;
    if (!strcmp(d, "unmap") || !strcmp(d, "on"))
        s->discard = "unmap";
    else if (!strcmp(d, "ignore") || !strcmp(d, "off"))
        s->discard = "ignore";
    else {
        blkv_error(s->ctx, "discard=%s: expected unmap or ignore", d);
        return -EINVAL;
    }
    return 0;
}

/* Fill caps from the handshake. */
static int nbd_drv_caps(struct nbd_state *s, struct blkv_caps *caps, int faults, int zeroes)
{
    struct nbd_handle *h = s->h;
    int64_t size = nbd_get_size(h);
    int64_t minb = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    int64_t maxb = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    uint64_t align = minb > 1 ? (uint64_t)minb : 1;

    if (size < 0)
        return nbd_drv_fail(s, "nbd_get_size");
    s->export_size = (uint64_t)size;
    if (align & (align - 1) || align > (1u << 20)) {
        blkv_error(s->ctx, "server minimum block size %" PRIu64 " is not supported", align);
        return -ENOTSUP;
    }
    caps->align = (uint32_t)align;
    if (maxb > 0 && (uint64_t)maxb < BLKV_MAX_REQUEST)
        caps->max_transfer = (uint32_t)((uint64_t)maxb - (uint64_t)maxb % align);
    if ((uint64_t)size > BLKV_MAX_DEVICE_SIZE)
        size = (int64_t)BLKV_MAX_DEVICE_SIZE;
    caps->size = (uint64_t)size - (uint64_t)size % align;
    if (caps->size == 0) {
        blkv_error(s->ctx, "the server exports an empty device");
        return -EINVAL;
    }
    s->can_trim = nbd_can_trim(h) == 1;
    s->can_flush = nbd_can_flush(h) == 1;
    caps->read_only = nbd_is_read_only(h) == 1;
    caps->fua = nbd_can_fua(h) == 1;
    caps->write_zeroes = zeroes && nbd_can_zero(h) == 1;
    /* NBD: "the client MUST NOT make any assumptions about the contents of
     * the export affected by this [TRIM] command, until overwriting it" */
    caps->discard = s->can_trim ? BLKV_DISCARD_UNSPECIFIED : BLKV_DISCARD_IGNORED;
    caps->may_fail = faults;
    return 0;
}

/* An existing server: make it read as zeros (the initial content). */
static int nbd_drv_zero_all(struct nbd_state *s, const struct blkv_caps *caps)
{
    uint64_t chunk = caps->max_transfer ? caps->max_transfer : (UINT64_C(1) << 30);
    uint64_t wchunk = chunk < (UINT64_C(1) << 20) ? chunk : (UINT64_C(1) << 20);
    void *zeros = NULL;
    int ret = 0;

    if (caps->read_only)
        return 0;
    for (uint64_t off = 0; off < caps->size && !ret;) {
        uint64_t n;
        if (caps->write_zeroes) {
            n = caps->size - off < chunk ? caps->size - off : chunk;
            if (nbd_zero(s->h, n, off, 0) < 0)
                ret = nbd_drv_fail(s, "nbd_zero");
        } else {
            if (!zeros && !(zeros = calloc(1, wchunk)))
                return -ENOMEM;
            n = caps->size - off < wchunk ? caps->size - off : wchunk;
            if (nbd_pwrite(s->h, zeros, n, off, 0) < 0)
                ret = nbd_drv_fail(s, "nbd_pwrite");
        }
        off += n;
    }
    free(zeros);
    return ret;
}

/* ---- driver callbacks ---------------------------------------------------- */

/* open() for server=qsd: a fresh image (create) or the same one again, a
 * node and an export of it, and the capabilities; a failed open leaves
 * nothing attached and the image to the next run. */
static int nbd_qsd_open(struct nbd_state *s, uint64_t size, bool create, struct blkv_caps *caps,
                        int faults, int zeroes, int timing)
{
    int crash = nbd_drv_opt_bool(s->ctx, "crash", false);
    int rules = nbd_drv_opt_bool(s->ctx, "fault-rules", false);
    int ret;
    if (crash < 0 || rules < 0)
        return -EINVAL;
    if ((ret = nbd_qsd_opts(s)) < 0)
        return ret;
    if (create) {
        s->size = size;
        ret = nbd_qsd_create(s, size, timing);
    }
    if (s->slot >= 0)
        nbd_slots[s->slot].state = NBD_SLOT_OPEN;
    if (!create && s->crashed && !strcmp(s->format, "parallels")) {
        /* QEMU opens a parallels image that was not closed read-only only
         * ("Image was not closed correctly"): its documented recovery,
         * qemu-img check -r all, comes first (leaks may remain: exit 3) */
        static const int ok[] = {3, -1};
        char *argv[] = {"qemu-img", "check", "-q", "-r", "all", "-f", "parallels", s->img, NULL};
        if ((ret = nbd_drv_run_cmd(s, argv, ok)) < 0)
            blkv_error(s->ctx, "after the crash: qemu-img check -r all failed on the parallels"
                       " image");
    }
    s->crashed = false;
    if (ret >= 0 && (ret = nbd_qsd_attach(s)) >= 0 &&
        (ret = nbd_drv_caps(s, caps, faults, zeroes)) < 0)
        nbd_qsd_detach(s);
    if (ret >= 0) {
        const char *co = blkv_opt(s->ctx, "create-opts");
        /* through blkdebug, which counts one event (nbd_drv_fault); QEMU
         * cannot reopen a parallels image to put it in */
        caps->fault_rules = rules && strcmp(s->format, "parallels");
        caps->fault_after_max = NBD_QSD_AFTER_MAX;
        caps->fault_after_events = 1;
        caps->crash = crash;      /* SIGKILL; the image file stays */
        /* after a crash qemu-img check may find leaks (exit 3, which the
         * check accepts anywhere), never corruption; with lazy refcounts
         * the image is dirty, and QEMU's open repairs it */
        caps->crash_check = strstr(co ? co : "", "lazy_refcounts=on") ? BLKV_CRASH_CLEAN
                                                                    : BLKV_CRASH_LEAKS;
    }
    if (ret < 0 && s->slot >= 0)
        nbd_slots[s->slot].state = NBD_SLOT_CLOSED;
    return ret;
}

static int nbd_drv_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                    struct blkv_caps *caps)
{
    struct nbd_state *s = state;
    const char *server = blkv_opt(ctx, "server");
    const char *uri = blkv_opt(ctx, "uri");
    const char *filter = blkv_opt(ctx, "filter");
    int faults, check, zeroes, timing, ret;

    if (create) {
        memset(s, 0, sizeof(*s));
        s->slot = -1;
    }
    s->ctx = ctx;
    if ((faults = nbd_drv_opt_bool(ctx, "faults", true)) == -EINVAL ||
        (check = nbd_drv_opt_check(s, ctx)) < 0 ||
        (zeroes = nbd_drv_opt_bool(ctx, "write-zeroes", false)) < 0 ||
        (timing = nbd_drv_opt_bool(ctx, "timing", false)) < 0)
        return -EINVAL;
    if (uri && *uri)
        s->server = NBD_SERVER_URI;
    else if (!strcmp(server, "qemu-nbd"))
        s->server = NBD_SERVER_QEMU;
    else if (!strcmp(server, "nbdkit"))
        s->server = NBD_SERVER_NBDKIT;
    else if (!strcmp(server, "qsd"))
        s->server = NBD_SERVER_QSD;
    else {
        blkv_error(ctx, "server=%s: expected qemu-nbd, qsd or nbdkit (or uri=)", server);
        return -EINVAL;
    }
    if (timing && s->server != NBD_SERVER_QSD) {
        blkv_error(ctx, "timing=on: only with server=qsd");
        return -EINVAL;
    }
    if (strcmp(blkv_opt(ctx, "reader"), "none") && s->server != NBD_SERVER_QSD) {
        blkv_error(ctx, "reader=%s: only with server=qsd", blkv_opt(ctx, "reader"));
        return -EINVAL;
    }
    if (s->check_every > 1 && s->server != NBD_SERVER_QSD) {
        blkv_error(ctx, "check=%s: every-N only with server=qsd", blkv_opt(ctx, "check"));
        return -EINVAL;
    }
    if (getenv("BLKV_NBD_TIMING") && !strcmp(getenv("BLKV_NBD_TIMING"), "1"))
        timing = s->server == NBD_SERVER_QSD;
    if (faults < 0)
        faults = s->server == NBD_SERVER_NBDKIT &&
                 (nbd_drv_list_has(filter, "error") || nbd_drv_list_has(filter, "checkwrite"));
    s->format = blkv_opt(ctx, "format");
    s->check = check && (s->server == NBD_SERVER_QEMU || s->server == NBD_SERVER_QSD);
    if (s->server == NBD_SERVER_QSD)
        return nbd_qsd_open(s, size, create, caps, faults, zeroes, timing);

    if (create) {
        s->size = size;
        if (s->server != NBD_SERVER_URI) {
            if ((ret = nbd_drv_slot_new(s)) < 0)
                return ret;
            if (s->server == NBD_SERVER_QEMU && (ret = nbd_drv_create_image(s, size)) < 0)
                return ret;
        }
    }
    if (s->slot >= 0) {
        nbd_slots[s->slot].state = NBD_SLOT_OPEN;
        if (nbd_slots[s->slot].pid == 0 && (ret = nbd_drv_server_start(s)) < 0)
            return ret;
    }
    if ((ret = nbd_drv_connect(s)) < 0)
        return ret;
    if ((ret = nbd_drv_caps(s, caps, faults, zeroes)) < 0)
        return ret;
    if (create && s->server == NBD_SERVER_URI && (ret = nbd_drv_zero_all(s, caps)) < 0)
        return ret;
    return 0;
}

static void nbd_drv_close(void *state)
{
    struct nbd_state *s = state;
    if (s->server == NBD_SERVER_QSD) {
        nbd_qsd_detach(s); /* the core reports nothing from close */
        nbd_rd_free(s);
        if (s->slot >= 0)
            nbd_slots[s->slot].state = NBD_SLOT_CLOSED; /* the image goes at the next run */
        return;
    }
    nbd_drv_disconnect(s);
    if (s->slot < 0)
        return;
    /* qemu-nbd exits after its last client, closing the image */
    if (s->server == NBD_SERVER_QEMU)
        nbd_drv_server_stop(s, true);
    nbd_slots[s->slot].state = NBD_SLOT_CLOSED;
}

/* Completion callback: hand the result to the core. */
static int nbd_drv_done(void *user_data, int *error)
{
    struct blkv_req *req = user_data;
    struct nbd_state *s = req->driver_data;
    int e = *error;
    req->driver_data = NULL; /* completed */
    s->completions++;
    nbd_drv_conn_error(s, e);
    blkv_complete(req, e ? -e : 0);
    return 1; /* retire the command */
}

/* ---- reader= ------------------------------------------------------------ */

static int nbd_reqq_push(struct nbd_reqq *q, struct blkv_req *req)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct blkv_req **v = realloc(q->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = req;
    return 0;
}

/* What the reader holds: its library's view and the queues (empty when no
 * request is in flight, or forgotten after a crash). */
static void nbd_rd_free(struct nbd_state *s)
{
    nbd_reader_close(s->rd);
    s->rd = NULL;
    free(s->rd_reads.v);
    free(s->rd_held.v);
    memset(&s->rd_reads, 0, sizeof(s->rd_reads));
    memset(&s->rd_held, 0, sizeof(s->rd_held));
    s->rd_writes = 0;
    s->rd_flushing = false;
    s->rd_flushed = 0;
}

/* A lost connection: if the daemon died, the report quotes it. */
static void nbd_drv_conn_error(struct nbd_state *s, int e)
{
    if (s->server == NBD_SERVER_QSD && !s->conn_lost &&
        (e == ENOTCONN || e == ECONNRESET || e == EPIPE || e == ESHUTDOWN)) {
        s->conn_lost = true; /* once per connection: the wait is long */
        nbd_qsd_report_death(s, false);
    }
}

/* The completion of a write-like request while reader= is on. */
static int nbd_rd_done_write(void *user_data, int *error)
{
    struct blkv_req *req = user_data;
    struct nbd_state *s = req->driver_data;
    s->rd_writes--;
    s->rd_gen++;
    return nbd_drv_done(user_data, error);
}

/* The completion of the reader's own flush. */
static int nbd_rd_flushed(void *user_data, int *error)
{
    struct nbd_state *s = user_data;
    s->rd_flushing = false;
    s->rd_flush_err = -*error;
    nbd_drv_conn_error(s, *error);
    return 1;
}

/*
 * Serve the queued reads once no write-like request is in flight: flush
 * over NBD (QEMU writes its caches to the file), open the reader on the
 * file afresh when a write completed since it was opened, read, and then
 * send the requests held meanwhile.  Every read is thus linearised at a
 * point where the file holds everything QEMU completed.  A failed flush
 * fails the reads with it (-EIO and why): nothing is read from a file
 * that may be behind QEMU.
 */
static void nbd_rd_progress(struct nbd_state *s)
{
    struct nbd_reqq held;
    int ret = 0;

    if (!s->rd_reads.n || s->rd_flushing || s->rd_writes)
        return;
    if (!s->rd || s->rd_snap_gen != s->rd_gen) {
        if (s->can_flush && s->rd_flushed != s->rd_gen + 1) {
            nbd_completion_callback cb = {.callback = nbd_rd_flushed, .user_data = s};
            s->rd_flushed = s->rd_gen + 1;
            if (s->h && nbd_aio_flush(s->h, cb, 0) >= 0) {
                s->rd_flushing = true;
                return;
            }
            s->rd_flush_err = nbd_get_errno() > 0 ? -nbd_get_errno() : -EIO;
        }
        ret = s->can_flush ? s->rd_flush_err : 0;
        if (ret < 0) {
            blkv_error(s->ctx, "%s: read #%" PRIu64 ": the NBD flush before it failed: %s",
                       nbd_reader_name(s->rkind), s->rd_reads.v[0]->id, strerror(-ret));
            ret = -EIO;
        } else {
            nbd_reader_close(s->rd);
            s->rd = NULL;
            if ((ret = nbd_reader_open(s->ctx, s->rkind, s->img, s->export_size, &s->rd)) == 0)
                s->rd_snap_gen = s->rd_gen;
            else
                ret = -EIO;
        }
    }
    for (size_t i = 0; i < s->rd_reads.n; i++) {
        struct blkv_req *req = s->rd_reads.v[i];
        int r = ret < 0 ? ret : nbd_reader_read(s->rd, req->buf, req->len, req->offset, req->id);
        s->completions++;
        blkv_complete(req, r);
    }
    s->rd_reads.n = 0;
    held = s->rd_held; /* sent in order; none of them waits now */
    memset(&s->rd_held, 0, sizeof(s->rd_held));
    for (size_t i = 0; i < held.n; i++)
        nbd_drv_submit(s, held.v[i]);
    if (!s->rd_held.v) {
        held.n = 0;
        s->rd_held = held; /* keep the array */
    } else
        free(held.v);
}

static void nbd_drv_submit(void *state, struct blkv_req *req)
{
    struct nbd_state *s = state;
    nbd_completion_callback cb = {.callback = nbd_drv_done, .user_data = req};
    uint32_t flags = 0;
    int64_t r = -1;

    if (req->flags & BLKV_REQ_FUA)
        flags |= LIBNBD_CMD_FLAG_FUA;
    if ((req->op == BLKV_OP_FLUSH && !s->can_flush) ||
        (req->op == BLKV_OP_DISCARD && !s->can_trim)) {
        blkv_complete(req, 0); /* nothing to do: no cache / discard ignored */
        return;
    }
    if (s->server == NBD_SERVER_QSD && !s->attached && nbd_qsd_attach(s) < 0) {
        blkv_complete(req, -EIO); /* after a check: node and export again */
        return;
    }
    if (s->rkind && (req->op == BLKV_OP_READ || s->rd_reads.n || s->rd_flushing)) {
        /* the reader's: reads, and what comes while they wait */
        if (nbd_reqq_push(req->op == BLKV_OP_READ ? &s->rd_reads : &s->rd_held, req) < 0)
            blkv_complete(req, -ENOMEM);
        return;
    }
    if (s->server == NBD_SERVER_QSD && s->h && nbd_aio_is_dead(s->h) &&
        nbd_aio_in_flight(s->h) == 0 && nbd_qsd_alive(0)) {
        /* QEMU 7.2 drops the connection when a read fails (an injected
         * fault): the export is still there, so connect again */
        nbd_close(s->h);
        s->h = NULL;
        if (nbd_drv_connect(s) < 0) {
            blkv_complete(req, -ENOTCONN);
            return;
        }
        s->conn_lost = false;
    }
    req->driver_data = s;
    if (s->rkind) { /* write-like: counted until it completes */
        cb.callback = nbd_rd_done_write;
        s->rd_writes++;
    }
    switch (req->op) {
    case BLKV_OP_READ:
        r = nbd_aio_pread(s->h, req->buf, req->len, req->offset, cb, 0);
        break;
    case BLKV_OP_WRITE:
        r = nbd_aio_pwrite(s->h, req->buf, req->len, req->offset, cb, flags);
        break;
    case BLKV_OP_WRITE_ZEROES:
        if (!(req->flags & BLKV_REQ_UNMAP))
            flags |= LIBNBD_CMD_FLAG_NO_HOLE;
        r = nbd_aio_zero(s->h, req->len, req->offset, cb, flags);
        break;
    case BLKV_OP_DISCARD:
        r = nbd_aio_trim(s->h, req->len, req->offset, cb, 0);
        break;
    case BLKV_OP_FLUSH:
        r = nbd_aio_flush(s->h, cb, 0);
        break;
    }
    if (r < 0 && req->driver_data) {
        /* not queued: libnbd does not call the callback */
        int e = nbd_get_errno();
        req->driver_data = NULL;
        s->completions++;
        if (s->rkind) {
            s->rd_writes--;
            s->rd_gen++;
        }
        blkv_complete(req, e > 0 ? -e : -EIO);
    }
}

/* Drive the connection for up to timeout_ms; returns completions delivered. */
static int nbd_drv_poll(void *state, int timeout_ms)
{
    struct nbd_state *s = state;
    uint64_t before = s->completions;
    int64_t end = nbd_drv_now_ms() + timeout_ms;

    if (s->rkind) {
        nbd_rd_progress(s);
        if (s->completions != before)
            return (int)(s->completions - before);
    }
    if (!s->h) {
        if (!timeout_ms)
            return 0; /* a step between ops, e.g. after a check: nothing to drive */
        blkv_error(s->ctx, "nbd: poll without a connection");
        return -EIO;
    }
    for (;;) {
        int64_t left = end - nbd_drv_now_ms();
        int r = nbd_poll(s->h, left > 0 ? (int)left : 0);
        if (s->rkind)
            nbd_rd_progress(s);
        if (r < 0) {
            if (s->completions != before)
                break;
            nbd_drv_fail(s, "nbd_poll");
            return -EIO;
        }
        if (s->completions != before || r == 0 || nbd_drv_now_ms() >= end)
            break;
    }
    return (int)(s->completions - before);
}

/* qemu-nbd: stop the server, run qemu-img check, and start it again. */
static int nbd_drv_check(void *state)
{
    struct nbd_state *s = state;
    static const int ok[] = {3, 63, -1}; /* leaked clusters; format without checks */
    char *argv[] = {"qemu-img", "check", "-q", "-f", (char *)s->format, s->img, NULL};
    int ret;

    if (s->server == NBD_SERVER_QSD)
        return s->check ? nbd_qsd_check(s) : 0;
    if (!s->check || s->slot < 0)
        return 0;
    nbd_drv_disconnect(s);
    nbd_drv_server_stop(s, true);
    ret = nbd_drv_run_cmd(s, argv, ok);
    if (ret < 0)
        ret = -EUCLEAN;
    if (nbd_drv_server_start(s) < 0 || nbd_drv_connect(s) < 0)
        return ret < 0 ? ret : -EIO;
    return ret;
}

/* A fault rule (server=qsd): kept, and in force from now on through a new
 * blkdebug node (the image is closed and opened again in QEMU; the core has
 * drained).  Refused, with why, where blkdebug cannot express it. */
static int nbd_drv_fault(void *state, unsigned event, int err, bool once, uint64_t after)
{
    struct nbd_state *s = state;
    const char *ev = nbd_qsd_event_name(event);
    int ret;

    if (s->server != NBD_SERVER_QSD) {
        blkv_error(s->ctx, "fault rules: only with server=qsd (QEMU's blkdebug under the format)");
        return -ENOTSUP;
    }
    if (!strcmp(s->format, "parallels")) {
        blkv_error(s->ctx, "fault rules: QEMU's parallels driver cannot be reopened, and the"
                   " blkdebug node goes in by blockdev-reopen");
        return -ENOTSUP;
    }
    if (!ev) {
        blkv_error(s->ctx, event == BLKV_EV_HEADER_UPDATE
                   ? "header_update: QEMU's blkdebug has no event for a header write"
                   : "event-%u: not one of QEMU's blkdebug events (blkv drivers nbd lists them)",
                   event);
        return -ENOTSUP;
    }
    if (after > NBD_QSD_AFTER_MAX) {
        blkv_error(s->ctx, "after %" PRIu64 ": at most %d with blkdebug (one state per "
                   "occurrence counted)", after, NBD_QSD_AFTER_MAX);
        return -ERANGE;
    }
    for (unsigned i = 0; after && i < s->nrules; i++)
        if (s->rules[i].after && s->rules[i].event != event) {
            blkv_error(s->ctx, "after %" PRIu64 " on %s: blkdebug's one state already counts %s;"
                       " one event per program may take 'after'", after, ev,
                       nbd_qsd_event_name(s->rules[i].event));
            return -ENOTSUP;
        }
    if (s->nrules == NBD_QSD_RULES) {
        blkv_error(s->ctx, "more than %d fault rules", NBD_QSD_RULES);
        return -E2BIG;
    }
    s->rules[s->nrules++] = (struct nbd_rule){.event = event, .err = err, .once = once,
                                              .after = after};
    if (!s->attached)
        return 0; /* the next request attaches with the rules */
    if ((ret = nbd_qsd_detach(s)) < 0)
        return ret;
    return nbd_qsd_attach(s);
}

/* A crash (server=qsd): SIGKILL the daemon with requests in flight; its
 * caches are lost, the image file (on tmpfs) keeps what QEMU wrote to it.
 * The next open starts a new daemon on the same file. */
static int nbd_drv_crash(void *state)
{
    struct nbd_state *s = state;

    if (s->server != NBD_SERVER_QSD) {
        blkv_error(s->ctx, "crash: only with server=qsd (one daemon to kill)");
        return -ENOTSUP;
    }
    if (s->gen == nbd_qsd.gen)
        nbd_qsd_kill();
    if (s->h) { /* no shutdown: what is in flight stays unanswered */
        nbd_close(s->h);
        s->h = NULL;
    }
    s->attached = false;
    s->filter[0] = 0;
    nbd_qsd.death[0] = 0; /* a kill of ours, not a death to report */
    nbd_rd_free(s); /* what the reader held never completes */
    s->crashed = true;
    if (!strcmp(blkv_opt(s->ctx, "crash-image"), "lost")) { /* the self-test's broken disk */
        char src[NBD_DIR_MAX + 24];
        const char *dst = nbd_slots[s->slot].dir;
        nbd_drv_rmdir_safe(dst);
        snprintf(src, sizeof(src), "%s/tmpl-%u", nbd_qsd.dir, s->tmpl_id);
        if (mkdir(dst, 0700) < 0) {
            blkv_error(s->ctx, "mkdir %s: %s", dst, strerror(errno));
            return -EIO;
        }
        return nbd_qsd_copy_dir(s, src, dst);
    }
    if (s->log_mode && s->slot >= 0) {
        int ret = nbd_qsd_log_rebuild(s); /* the power loss the log allows */
        nbd_slots[s->slot].state = NBD_SLOT_CLOSED;
        return ret;
    }
    if (s->slot >= 0)
        nbd_slots[s->slot].state = NBD_SLOT_CLOSED;
    return 0;
}

const struct blkv_driver blkv_driver_nbd = {
    BLKV_DRIVER_HEADER,
    .name = "nbd",
    .description = "an NBD server through libnbd: qemu-nbd (any QEMU format), one"
                   " qemu-storage-daemon per process (server=qsd), nbdkit, or a URI",
    .options = nbd_options,
    .state_size = sizeof(struct nbd_state),
    .in_process = false,
    .open = nbd_drv_open,
    .close = nbd_drv_close,
    .submit = nbd_drv_submit,
    .poll = nbd_drv_poll,
    .check = nbd_drv_check,
    .events = nbd_qsd_events,
    .std_events = 1u << BLKV_EV_COW_READ | 1u << BLKV_EV_COW_WRITE | 1u << BLKV_EV_L1_UPDATE |
                  1u << BLKV_EV_L2_UPDATE | 1u << BLKV_EV_L2_ALLOC |
                  1u << BLKV_EV_REFBLOCK_UPDATE | 1u << BLKV_EV_REFBLOCK_ALLOC |
                  1u << BLKV_EV_REFTABLE_GROW,
    .fault = nbd_drv_fault,
    .crash = nbd_drv_crash,
};
