/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * repro.c - saving a reproducer: the input (or the program's encoding) as a
 * binary file and the program as trace text, named by a hash of the binary.
 */
#include "report/report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok;
    if (!f)
        return false;
    ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok;
}

void blkv_repro_save(struct blkv_history *h, const char *first_line)
{
    const struct blkv_run_opts *o = h->opts;
    struct blkv_run_result *res = h->res;
    struct blkv_program copy;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    const uint8_t *bin;
    size_t bin_len;
    char *text, *full = NULL;
    size_t full_len = 0;
    FILE *f;
    uint64_t hash;

    if (!o->repro_dir)
        return;
    if (o->input) {
        bin = o->input, bin_len = o->input_len;
    } else {
        enc = blkv_program_encode(h->prog, &enc_len);
        bin = enc, bin_len = enc_len;
    }
    if (!bin)
        return;
    hash = fnv1a(bin, bin_len);
    mkdir(o->repro_dir, 0777);
    snprintf(res->repro_bin, sizeof(res->repro_bin), "%s/blkv-repro-%016" PRIx64 ".bin",
             o->repro_dir, hash);
    snprintf(res->repro_text, sizeof(res->repro_text), "%s/blkv-repro-%016" PRIx64 ".trace",
             o->repro_dir, hash);
    if (!write_file(res->repro_bin, bin, bin_len))
        res->repro_bin[0] = 0;

    copy = *h->prog;
    copy.cfg.driver = (char *)h->driver_spec;
    text = blkv_program_format(&copy);
    f = open_memstream(&full, &full_len);
    if (text && f) {
        fprintf(f, "# %s\n# replay: blkv run %s\n", first_line, res->repro_text);
        fputs(text, f);
        fclose(f);
        if (!write_file(res->repro_text, full, full_len))
            res->repro_text[0] = 0;
    } else {
        if (f)
            fclose(f);
        res->repro_text[0] = 0;
    }
    free(full);
    free(text);
    free(enc);
}

