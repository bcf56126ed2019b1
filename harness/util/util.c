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

static uint32_t sha1_rol(uint32_t x, unsigned n)
{
    return x << n | x >> (32 - n);
}

/* One 64-byte block into state h. */
static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (unsigned i = 16; i < 80; i++)
        w[i] = sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (unsigned i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else
            f = b ^ c ^ d, k = 0xca62c1d6;
        t = sha1_rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = sha1_rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void blkv_sha1(const void *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const uint8_t *p = data;
    uint8_t tail[128] = {0};
    size_t full = len & ~(size_t)63, rest = len - full, n;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, p + i);
    if (rest)
        memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    n = rest < 56 ? 64 : 128;
    for (unsigned i = 0; i < 8; i++)
        tail[n - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < n; i += 64)
        sha1_block(h, tail + i);
    for (unsigned i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

uint64_t blkv_fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

int blkv_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int e = 0;
    if (!f)
        return errno;
    if (fwrite(data, 1, len, f) != len)
        e = errno ? errno : EIO;
    if (fclose(f) && !e)
        e = errno ? errno : EIO;
    if (e)
        remove(path);
    return e;
}
