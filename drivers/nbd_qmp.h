/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbd_qmp.h - a tiny blocking QMP client, for the nbd driver's
 * qemu-storage-daemon mode (server=qsd).
 *
 * One connection, one command at a time.  QEMU sends one JSON object per
 * line; a line is parsed just enough to tell a reply ("return" or "error"
 * with its "desc") from an event.  Events are skipped, except one awaited
 * event (by name and data "id"), which is remembered when it arrives, also
 * while a command's reply is awaited (QEMU may send it before the reply).
 *
 * Every function returns 0 or a negative errno and writes a one-line
 * message into err on failure: -EREMOTEIO for an "error" reply (err holds
 * its desc), -ECONNRESET when the daemon closed the connection (it died),
 * -ETIMEDOUT when it did not answer in time.
 */
#ifndef BLKV_NBD_QMP_H
#define BLKV_NBD_QMP_H

#include <stdbool.h>
#include <stddef.h>

struct nbd_qmp {
    int fd;                 /* the connection, or -1 */
    size_t have;            /* bytes in buf */
    bool skipping;          /* inside a line too long for buf: drop it */
    char await_event[48];   /* the awaited event's name, or "" */
    char await_id[48];      /* and its data "id" */
    bool seen;              /* the awaited event arrived */
    char buf[65536];
};

/* Connect to the monitor socket at path, read the greeting and leave
 * capabilities negotiation mode, all within timeout_ms. */
int nbd_qmp_connect(struct nbd_qmp *q, const char *path, int timeout_ms, char *err, size_t len);
/* Send one command (a complete {"execute": ...} object) and read its reply.
 * json may hold several commands, one per line: the reply read is the
 * first one's; read the others with nbd_qmp_reply. */
int nbd_qmp_cmd(struct nbd_qmp *q, const char *json, int timeout_ms, char *err, size_t len);
/* Read the reply to the next command sent. */
int nbd_qmp_reply(struct nbd_qmp *q, int timeout_ms, char *err, size_t len);
/* From now on, remember an event named `event` whose data "id" is `id`. */
void nbd_qmp_await(struct nbd_qmp *q, const char *event, const char *id);
/* Read until the awaited event has arrived (at once if it already has). */
int nbd_qmp_wait(struct nbd_qmp *q, int timeout_ms, char *err, size_t len);
/* Close the connection. */
void nbd_qmp_close(struct nbd_qmp *q);

/* Copy s into dst as a JSON string with its quotes; false if it does not fit. */
bool nbd_qmp_json_str(char *dst, size_t len, const char *s);

#endif
