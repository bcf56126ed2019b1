/* SPDX-License-Identifier: BSD-3-Clause */
/* util.c - number and errno parsing shared by the trace reader and the tool. */
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int blkv_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    bool hex;

    /* strtoull alone would take blanks, a sign, and "010" as octal 8 */
    if (!s || !(*s >= '0' && *s <= '9'))
        return -EINVAL;
    hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    if (hex && !((s[2] >= '0' && s[2] <= '9') || (s[2] >= 'a' && s[2] <= 'f') ||
                 (s[2] >= 'A' && s[2] <= 'F')))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, hex ? 16 : 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (end == s)
        return -EINVAL;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

void blkv_format_size(uint64_t v, char *buf, size_t len)
{
    static const char suffix[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        unsigned shift = 40 - 10 * i;
        if (v && v % (UINT64_C(1) << shift) == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", v >> shift, suffix[i]);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, v);
}

static const struct {
    int err;
    const char *name;
} errno_names[] = {
    {EIO, "EIO"},       {ENOSPC, "ENOSPC"},   {EPERM, "EPERM"},   {EINVAL, "EINVAL"},
    {ENOMEM, "ENOMEM"}, {EROFS, "EROFS"},     {EFBIG, "EFBIG"},   {EAGAIN, "EAGAIN"},
    {EDQUOT, "EDQUOT"}, {ECANCELED, "ECANCELED"}, {ENOTSUP, "ENOTSUP"},
    {ETIMEDOUT, "ETIMEDOUT"}, {EUCLEAN, "EUCLEAN"}, {ENODEV, "ENODEV"},
    {ESHUTDOWN, "ESHUTDOWN"}, {EBADF, "EBADF"}, {ENOENT, "ENOENT"},
};

const char *blkv_errno_name(int err)
{
    if (err < 0)
        err = -err;
    for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
        if (errno_names[i].err == err)
            return errno_names[i].name;
    return NULL;
}

int blkv_errno_parse(const char *name)
{
    uint64_t v;
    for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
        if (strcmp(errno_names[i].name, name) == 0)
            return errno_names[i].err;
    if (blkv_parse_u64(name, &v) == 0 && v >= 1 && v <= 4095)
        return (int)v;
    return 0;
}

int blkv_mkdir_p(const char *dir)
{
    char buf[4096];
    struct stat st;
    size_t n = strlen(dir);

    if (n == 0)
        return -ENOENT;
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        buf[i] = 0;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return -errno;
        if (stat(buf, &st))
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        buf[i] = i < n ? '/' : 0;
    }
    return 0;
}
