/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd_qmp.c - a tiny blocking QMP client (see nbd_qmp.h).
 */
#include "nbd_qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum qmp_line { QMP_RETURN, QMP_ERROR, QMP_OTHER };

/* Milliseconds on the monotonic clock. */
static int64_t qmp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool nbd_qmp_json_str(char *dst, size_t len, const char *s)
{
    size_t n = 0;
    if (len < 3)
        return false;
    dst[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        int w;
        if (c == '"' || c == '\\')
            w = snprintf(esc, sizeof(esc), "\\%c", c);
        else if (c < 0x20)
            w = snprintf(esc, sizeof(esc), "\\u%04x", c);
        else
            w = snprintf(esc, sizeof(esc), "%c", c);
        if (n + (size_t)w + 2 > len)
            return false;
        memcpy(dst + n, esc, (size_t)w);
        n += (size_t)w;
    }
    dst[n++] = '"';
    dst[n] = 0;
    return true;
}

/* Skip JSON white space. */
static const char *qmp_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Read the JSON string at p (at its opening quote) into out, unescaping
 * the simple escapes (\uXXXX becomes '?'); returns the end, or NULL. */
static const char *qmp_string(const char *p, char *out, size_t len)
{
    size_t n = 0;
    if (*p != '"')
        return NULL;
    for (p++; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (!c)
                return NULL;
            if (c == 'n' || c == 't' || c == 'r')
                c = ' ';
            else if (c == 'u') {
                for (int i = 0; i < 4 && p[1]; i++)
                    p++;
                c = '?';
            }
        }
        if (n + 1 < len)
            out[n++] = c;
    }
    if (len)
        out[n] = 0;
    return *p == '"' ? p + 1 : NULL;
}

/* Find `"key": "value"` in line (the first such key) and copy the value;
 * false if there is none. */
static bool qmp_find(const char *line, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = strchr(line, '"'); p; p = strchr(p + 1, '"')) {
        const char *v;
        if (strncmp(p + 1, key, klen) || p[1 + klen] != '"')
            continue;
        v = qmp_ws(p + 2 + klen);
        if (*v != ':')
            continue;
        return qmp_string(qmp_ws(v + 1), out, len) != NULL;
    }
    return false;
}

/* Classify one line: a reply or anything else; an awaited event is noted. */
static enum qmp_line qmp_classify(struct nbd_qmp *q, const char *line, char *err, size_t len)
{
    char key[16], name[64], id[64];
    const char *p = qmp_ws(line);

    if (*p != '{' || !qmp_string(qmp_ws(p + 1), key, sizeof(key)))
        return QMP_OTHER;
    if (!strcmp(key, "return"))
        return QMP_RETURN;
    if (!strcmp(key, "error")) {
        if (!qmp_find(line, "desc", err, len))
            snprintf(err, len, "error reply without desc: %.200s", line);
        return QMP_ERROR;
    }
    if (q->await_event[0] && qmp_find(line, "event", name, sizeof(name)) &&
        !strcmp(name, q->await_event)) {
        const char *data = strstr(line, "\"data\"");
        if (data && qmp_find(data, "id", id, sizeof(id)) && !strcmp(id, q->await_id))
            q->seen = true;
    }
    return QMP_OTHER;
}

/* Read the next complete line (NUL-terminated, in q->buf, removed from the
 * buffer by the next call's shift) before `deadline`; *line_len is what to
 * drop afterwards. */
static int qmp_read_line(struct nbd_qmp *q, int64_t deadline, char **line, size_t *line_len,
                         char *err, size_t len)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->have);
        struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
        int64_t left;
        ssize_t n;
        int r;

        if (nl) {
            size_t l = (size_t)(nl - q->buf) + 1;
            if (q->skipping) { /* the tail of a line too long to keep */
                memmove(q->buf, q->buf + l, q->have - l);
                q->have -= l;
                q->skipping = false;
                continue;
            }
            *nl = 0;
            *line = q->buf;
            *line_len = l;
            return 0;
        }
        if (q->have == sizeof(q->buf)) { /* no reply of ours is this long */
            q->have = 0;
            q->skipping = true;
        }
        left = deadline - qmp_now_ms();
        if (left <= 0) {
            snprintf(err, len, "no answer from the QMP monitor in time");
            return -ETIMEDOUT;
        }
        r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            snprintf(err, len, "poll on the QMP monitor: %s", strerror(e));
            return -e;
        }
        if (r == 0)
            continue;
        n = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
            snprintf(err, len, "the QMP monitor closed the connection");
            return -ECONNRESET;
        }
        if (n < 0) {
            int e = errno;
            snprintf(err, len, "read from the QMP monitor: %s", strerror(e));
            return -e;
        }
        q->have += (size_t)n;
    }
}

/* Drop a line returned by qmp_read_line. */
static void qmp_drop(struct nbd_qmp *q, size_t line_len)
{
    memmove(q->buf, q->buf + line_len, q->have - line_len);
    q->have -= line_len;
}

/* Read lines until a reply; 0 for "return", -EREMOTEIO for "error". */
static int qmp_reply(struct nbd_qmp *q, int64_t deadline, char *err, size_t len)
{
    for (;;) {
        char *line = NULL; /* set when qmp_read_line succeeds */
        size_t l = 0;
        enum qmp_line k;
        int ret = qmp_read_line(q, deadline, &line, &l, err, len);
        if (ret < 0)
            return ret;
        k = qmp_classify(q, line, err, len);
        qmp_drop(q, l);
        if (k == QMP_RETURN)
            return 0;
        if (k == QMP_ERROR)
            return -EREMOTEIO;
    }
}

/* Send all of s. */
static int qmp_send(struct nbd_qmp *q, const char *s, char *err, size_t len)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            if (e == EPIPE || e == ECONNRESET) {
                snprintf(err, len, "the QMP monitor closed the connection");
                return -ECONNRESET;
            }
            snprintf(err, len, "write to the QMP monitor: %s", strerror(e));
            return -e;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int nbd_qmp_connect(struct nbd_qmp *q, const char *path, int timeout_ms, char *err, size_t len)
{
    struct sockaddr_un sa;
    int64_t deadline = qmp_now_ms() + timeout_ms;
    char *line;
    size_t l;
    int ret;

    memset(q, 0, sizeof(*q) - sizeof(q->buf));
    q->fd = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, len, "QMP socket path %s: too long", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        snprintf(err, len, "connect to the QMP monitor %s: %s", path, strerror(e));
        nbd_qmp_close(q);
        return -e;
    }
    /* the greeting: {"QMP": {...}} */
    if ((ret = qmp_read_line(q, deadline, &line, &l, err, len)) < 0) {
        nbd_qmp_close(q);
        return ret;
    }
    if (!strstr(line, "\"QMP\"")) {
        snprintf(err, len, "not a QMP greeting: %.200s", line);
        nbd_qmp_close(q);
        return -EPROTO;
    }
    qmp_drop(q, l);
    /* what is left of the same deadline (at least 1 ms: the answer may be here) */
    ret = nbd_qmp_cmd(q, "{\"execute\": \"qmp_capabilities\"}",
                      (int)(deadline - qmp_now_ms() > 1 ? deadline - qmp_now_ms() : 1), err, len);
    if (ret < 0)
        nbd_qmp_close(q);
    return ret;
}

int nbd_qmp_cmd(struct nbd_qmp *q, const char *json, int timeout_ms, char *err, size_t len)
{
    int ret;
    if (q->fd < 0) {
        snprintf(err, len, "no QMP connection");
        return -ENOTCONN;
    }
    if ((ret = qmp_send(q, json, err, len)) < 0 || (ret = qmp_send(q, "\n", err, len)) < 0)
        return ret;
    return qmp_reply(q, qmp_now_ms() + timeout_ms, err, len);
}

int nbd_qmp_reply(struct nbd_qmp *q, int timeout_ms, char *err, size_t len)
{
    if (q->fd < 0) {
        snprintf(err, len, "no QMP connection");
        return -ENOTCONN;
    }
    return qmp_reply(q, qmp_now_ms() + timeout_ms, err, len);
}

void nbd_qmp_await(struct nbd_qmp *q, const char *event, const char *id)
{
    snprintf(q->await_event, sizeof(q->await_event), "%s", event);
    snprintf(q->await_id, sizeof(q->await_id), "%s", id);
    q->seen = false;
}

int nbd_qmp_wait(struct nbd_qmp *q, int timeout_ms, char *err, size_t len)
{
    int64_t deadline = qmp_now_ms() + timeout_ms;
    while (!q->seen) {
        char *line = NULL; /* set when qmp_read_line succeeds */
        size_t l = 0;
        int ret = qmp_read_line(q, deadline, &line, &l, err, len);
        if (ret < 0)
            return ret;
        qmp_classify(q, line, err, len);
        qmp_drop(q, l);
    }
    q->await_event[0] = 0;
    return 0;
}

void nbd_qmp_close(struct nbd_qmp *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    q->have = 0;
    q->skipping = false;
}
