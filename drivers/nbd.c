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
 */
#define _GNU_SOURCE /* execvpe */
#include <blkv/driver.h>

#include <libnbd.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

enum nbd_server { NBD_SERVER_QEMU, NBD_SERVER_NBDKIT, NBD_SERVER_URI };

enum nbd_slot_state { NBD_SLOT_FREE, NBD_SLOT_OPEN, NBD_SLOT_CLOSED };

/*
 * The cleanup table: the only global mutable state, read by the signal
 * handler.  A slot is OPEN while its run has the driver open, CLOSED between
 * close and the next run (or reopen), FREE when its server is stopped and
 * its directory removed.
 */
struct nbd_slot {
    volatile sig_atomic_t state;
    volatile pid_t pid; /* the server, or 0 */
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
};

static const struct blkv_option nbd_options[] = {
    {"server", "qemu-nbd", "qemu-nbd, nbdkit, or none (with uri=)"},
    {"uri", NULL, "an existing server: nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
     " (its content is zeroed at the start of a run)"},
    {"format", "qcow2", "qemu-nbd: image format for qemu-img create (qcow2, raw, vmdk, vdi, vhdx,"
     " qed, vpc, ...)"},
    {"create-opts", NULL, "qemu-nbd: qemu-img create -o options, '+'-separated"
     " (cluster_size=4096+lazy_refcounts=on)"},
    {"check", "on", "qemu-nbd: check() stops the server and runs qemu-img check (on, off)"},
    {"discard", "unmap", "qemu-nbd: --discard mode (unmap: trims and write-zeroes may free"
     " clusters; ignore)"},
    {"write-zeroes", "on", "use NBD write-zeroes when the server has it (off: the core writes"
     " zeros)"},
    {"plugin", "memory", "nbdkit: the plugin (memory, null, file, ...)"},
    {"filter", NULL, "nbdkit: filters, '+'-separated, outermost first (error+delay)"},
    {"args", NULL, "nbdkit: plugin and filter parameters, '+'-separated"
     " (error-rate=0.1+error=EIO); size=<device size> is added for sized plugins"},
    {"server-args", NULL, "extra server command-line words, '+'-separated"},
    {"faults", "auto", "the server may fail requests (caps.may_fail): on, off, or auto"
     " (on when the nbdkit error filter is used)"},
    {NULL, NULL, NULL},
};

/* ---- cleanup (async-signal-safe parts) ----------------------------------- */

/* Remove the regular files of dir and dir itself, with system calls only. */
static void nbd_drv_rmdir_safe(const char *dir)
{
    char buf[4096];
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: ino, off, reclen, type, name */
                unsigned short reclen;
                const char *name = buf + off + 19;
                memcpy(&reclen, buf + off + 16, sizeof(reclen));
                if (strcmp(name, ".") && strcmp(name, ".."))
                    unlinkat(fd, name, 0);
                off += reclen;
            }
        }
        close(fd);
    }
    rmdir(dir);
}

/* Kill and reap the server of slot i, then remove its directory. */
static void nbd_drv_slot_reclaim(int i)
{
    struct nbd_slot *s = &nbd_slots[i];
    pid_t pid = s->pid;
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
        /* abort() re-raises SIGABRT with the default action itself */
        signal(sig, SIG_DFL);
        if (sig != SIGABRT)
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

/* Remove blkv-nbd-<pid>-* directories of processes that no longer exist. */
static void nbd_drv_remove_stale(void)
{
    const char *base = nbd_drv_tmpdir();
    DIR *d = opendir(base);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        long pid;
        char *end;
        if (strncmp(e->d_name, "blkv-nbd-", 9))
            continue;
        pid = strtol(e->d_name + 9, &end, 10);
        if (end == e->d_name + 9 || *end != '-' || pid <= 0 || pid == (long)getpid())
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
 * child gets it as fd 3 with LISTEN_FDS=1 and LISTEN_PID (socket activation).
 * The child dies with this process (PR_SET_PDEATHSIG).  Returns the pid or
 * a negative errno.
 */
static pid_t nbd_drv_spawn(char *const argv[], const char *log, int listen_fd)
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
    if (listen_fd >= 0) {
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
        if (getppid() != parent)
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
 * in `ok_codes` (terminated by -1) also count as success. */
static int nbd_drv_run_cmd(struct nbd_state *s, char *const argv[], const int *ok_codes)
{
    char line[256];
    int status = 0;
    pid_t pid = nbd_drv_spawn(argv, s->log, -1);

    if (pid < 0) {
        blkv_error(s->ctx, "%s: cannot start: %s", argv[0], strerror((int)-pid));
        return (int)pid;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
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

/* ---- server -------------------------------------------------------------- */

/* Take a free slot and make its directory; 0 or a negative errno. */
static int nbd_drv_slot_new(struct nbd_state *s)
{
    char tmpl[NBD_DIR_MAX];
    int i;

    nbd_drv_cleanup_install();
    /* runs are sequential: whatever a previous run left closed is over */
    for (i = 0; i < NBD_SLOTS; i++)
        if (nbd_slots[i].state == NBD_SLOT_CLOSED)
            nbd_drv_slot_reclaim(i);
    nbd_drv_remove_stale();
    for (i = 0; i < NBD_SLOTS && nbd_slots[i].state != NBD_SLOT_FREE; i++)
        ;
    if (i == NBD_SLOTS) {
        blkv_error(s->ctx, "more than %d NBD runs open at once", NBD_SLOTS);
        return -EMFILE;
    }
    snprintf(tmpl, sizeof(tmpl), "%s/blkv-nbd-%ld-XXXXXX", nbd_drv_tmpdir(), (long)getpid());
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
    pid = nbd_drv_spawn(c->argv, s->log, fd);
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

/* Report a libnbd failure of `what`; returns the negative errno. */
static int nbd_drv_fail(struct nbd_state *s, const char *what)
{
    int e = nbd_get_errno();
    char line[256] = "";
    if (s->slot >= 0)
        nbd_drv_log_line(s->log, line, sizeof(line));
    blkv_error(s->ctx, "%s: %s%s%s", what, nbd_get_error() ? nbd_get_error() : "failed",
               line[0] ? "; server said: " : "", line);
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
    } else if (nbd_connect_unix(s->h, s->sock) < 0) {
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

static int nbd_drv_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                    struct blkv_caps *caps)
{
    struct nbd_state *s = state;
    const char *server = blkv_opt(ctx, "server");
    const char *uri = blkv_opt(ctx, "uri");
    const char *filter = blkv_opt(ctx, "filter");
    int faults, check, zeroes, ret;

    if (create) {
        memset(s, 0, sizeof(*s));
        s->slot = -1;
    }
    s->ctx = ctx;
    if ((faults = nbd_drv_opt_bool(ctx, "faults", true)) == -EINVAL ||
        (check = nbd_drv_opt_bool(ctx, "check", false)) < 0 ||
        (zeroes = nbd_drv_opt_bool(ctx, "write-zeroes", false)) < 0)
        return -EINVAL;
    if (uri && *uri)
        s->server = NBD_SERVER_URI;
    else if (!strcmp(server, "qemu-nbd"))
        s->server = NBD_SERVER_QEMU;
    else if (!strcmp(server, "nbdkit"))
        s->server = NBD_SERVER_NBDKIT;
    else {
        blkv_error(ctx, "server=%s: expected qemu-nbd or nbdkit (or uri=)", server);
        return -EINVAL;
    }
    if (faults < 0)
        faults = s->server == NBD_SERVER_NBDKIT && nbd_drv_list_has(filter, "error");
    s->format = blkv_opt(ctx, "format");
    s->check = check && s->server == NBD_SERVER_QEMU;

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
    blkv_complete(req, e ? -e : 0);
    return 1; /* retire the command */
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
    req->driver_data = s;
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
        blkv_complete(req, e > 0 ? -e : -EIO);
    }
}

/* Drive the connection for up to timeout_ms; returns completions delivered. */
static int nbd_drv_poll(void *state, int timeout_ms)
{
    struct nbd_state *s = state;
    uint64_t before = s->completions;
    int64_t end = nbd_drv_now_ms() + timeout_ms;

    for (;;) {
        int64_t left = end - nbd_drv_now_ms();
        int r = nbd_poll(s->h, left > 0 ? (int)left : 0);
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

const struct blkv_driver blkv_driver_nbd = {
    BLKV_DRIVER_HEADER,
    .name = "nbd",
    .description = "an NBD server through libnbd: qemu-nbd (any QEMU format), nbdkit, or a URI",
    .options = nbd_options,
    .state_size = sizeof(struct nbd_state),
    .in_process = false,
    .open = nbd_drv_open,
    .close = nbd_drv_close,
    .submit = nbd_drv_submit,
    .poll = nbd_drv_poll,
    .check = nbd_drv_check,
};
