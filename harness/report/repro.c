/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * repro.c - saving a reproducer: the input (or the program's encoding) as a
 * binary file and the program as trace text, named by a hash of the binary,
 * in the directory asked for (created, with its parents, if missing).  Where
 * that fails they go to the current directory, else the temp directory, and
 * the report says so: a finding is never lost in silence.
 */
#include "report/report.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Save both files as DIR/blkv-repro-HASH.{bin,trace}; 0 or an errno. */
static int save_in(struct blkv_history *h, const char *dir, uint64_t hash, const uint8_t *bin,
                   size_t bin_len, const char *text, const char *first_line)
{
    struct blkv_run_result *res = h->res;
    char *full = NULL;
    size_t full_len = 0;
    FILE *f;
    int e;

    if ((e = -blkv_mkdir_p(dir)))
        return e;
    if ((size_t)snprintf(res->repro_bin, sizeof(res->repro_bin), "%s/blkv-repro-%016" PRIx64
                         ".bin", dir, hash) >= sizeof(res->repro_bin) ||
        (size_t)snprintf(res->repro_text, sizeof(res->repro_text),
                         "%s/blkv-repro-%016" PRIx64 ".trace", dir,
                         hash) >= sizeof(res->repro_text))
        return ENAMETOOLONG;
    if (!(f = open_memstream(&full, &full_len)))
        return ENOMEM;
    fprintf(f, "# %s\n# replay: blkv run %s\n", first_line, res->repro_text);
    fputs(text, f);
    if (fclose(f)) {
        free(full);
        return ENOMEM;
    }
    e = blkv_write_file(res->repro_bin, bin, bin_len);
    if (!e && (e = blkv_write_file(res->repro_text, full, full_len)))
        remove(res->repro_bin);
    free(full);
    return e;
}

void blkv_repro_save(struct blkv_history *h, const char *first_line, FILE *report)
{
    const struct blkv_run_opts *o = h->opts;
    struct blkv_run_result *res = h->res;
    struct blkv_program copy;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    const uint8_t *bin;
    size_t bin_len;
    char *text;
    const char *tmp = getenv("TMPDIR");
    /* where asked, else here, else a temp directory: a finding is never lost */
    const char *dirs[3] = {o->repro_dir, ".", tmp && *tmp ? tmp : "/tmp"};
    int e = 0;

    res->repro_bin[0] = res->repro_text[0] = 0;
    if (!o->repro_dir)
        return;
    if (o->input) {
        bin = o->input, bin_len = o->input_len;
    } else {
        enc = blkv_program_encode(h->prog, &enc_len);
        bin = enc, bin_len = enc_len;
    }
    copy = *h->prog;
    copy.cfg.driver = (char *)h->driver_spec;
    text = blkv_program_format(&copy);
    if (!bin || !text) {
        fprintf(report, "  reproducer: not saved: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < 3; i++) {
        int ei;
        if (i && !strcmp(dirs[i], dirs[0]))
            continue;
        if (!(ei = save_in(h, dirs[i], blkv_fnv1a(bin, bin_len), bin, bin_len, text,
                           first_line))) {
            if (i)
                fprintf(report, "  reproducer: cannot save in %s (%s); saved in %s instead\n",
                        o->repro_dir, strerror(e), dirs[i]);
            goto out;
        }
        e = i ? e : ei;
        res->repro_bin[0] = res->repro_text[0] = 0;
    }
    fprintf(report, "  reproducer: not saved: cannot save in %s (%s), nor in . or %s\n",
            o->repro_dir, strerror(e), dirs[2]);
out:
    free(text);
    free(enc);
}
