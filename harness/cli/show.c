/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * show.c - `blkv show REPRO`: run it as `blkv run` does, keeping the run's
 * timeline, and write the picture of the run (report/picture.h).
 */
#include "cli/show.h"
#include "cli/cli.h"
#include "registry.h"
#include "report/picture.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage_show(FILE *f)
{
    fprintf(f,
            "usage: blkv show [OPTIONS] REPRO\n"
            "\n"
            "Run REPRO (trace text or a binary input, read as 'blkv run' reads it)\n"
            "against its driver and the raw model, and write a picture of the run: one\n"
            "self-contained HTML file (inline SVG, no network) to open in a browser.\n"
            "Each request is a bar over logical time (x) and device offset (y), from\n"
            "its submit (dot) to its completion (end mark); reads, writes, write-zeroes,\n"
            "discards and flushes have their own colours; cancelled, failed, malformed\n"
            "and lost requests their own outlines.  Lower-I/O steps, injected faults,\n"
            "fault rules, cancels, reopens, checks and crashes are marked on the\n"
            "timeline.  For a finding, the failing request, the candidate writes, the\n"
            "write the found data came from (an arrow) and a completed write whose\n"
            "data is missing are highlighted, and the report is shown beside; the\n"
            "first view is the failing range (its offsets and times, axes broken\n"
            "where nothing ran), a button shows the whole run.  Hovering over a\n"
            "request or an op shows its op line.\n"
            "\n"
            "  -o, --output OUT   write the page to OUT (default: NAME.html in the\n"
            "                     current directory, NAME the file name of REPRO\n"
            "                     without .trace or .bin)\n"
            "  -d, --driver SPEC  driver to use (default: the trace's 'driver' line, else\n"
            "                     the one plugin loaded with --load, else raw)\n"
            "  -L, --load PATH    load a driver plugin (a shared object); repeatable\n"
            "      --text         read REPRO as trace text\n"
            "      --binary       read REPRO as a binary input (a fuzzer's)\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 the run was clean, 1 a driver misbehaved (the picture is\n"
            "written either way), 2 bad input, a setup error or an unwritable OUT.\n");
}

void show_path(const char *where, const char *input, char *buf, size_t len)
{
    struct stat st;
    size_t n = strlen(where);
    const char *base = strrchr(input, '/') ? strrchr(input, '/') + 1 : input;
    size_t bn = strlen(base);

    if (!(n && where[n - 1] == '/') && !(stat(where, &st) == 0 && S_ISDIR(st.st_mode))) {
        snprintf(buf, len, "%s", where);
        return;
    }
    if (!strcmp(input, "-"))
        base = "stdin", bn = 5;
    else if (bn > 6 && !strcmp(base + bn - 6, ".trace"))
        bn -= 6;
    else if (bn > 4 && !strcmp(base + bn - 4, ".bin"))
        bn -= 4;
    snprintf(buf, len, "%s%s%.*s.html", where, n && where[n - 1] == '/' ? "" : "/", (int)bn,
             base);
}

int show_write(const char *path, const char *input, const char *driver,
               const struct blkv_program *p, const struct blkv_run_result *res)
{
    struct blkv_picture pic = {.prog = p, .tl = res->timeline, .res = res,
                               .violation = res->status == BLKV_RUN_VIOLATION,
                               .report = res->report, .title = input, .driver = driver};
    FILE *f;
    int ret, e;

    if (!res->timeline) {
        fprintf(stderr, "blkv: %s: out of memory for the timeline\n", path);
        return -1;
    }
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "blkv: %s: %s\n", path, strerror(errno));
        return -1;
    }
    errno = 0;
    ret = blkv_picture_write(f, &pic);
    e = errno;
    if (fclose(f) && !ret)
        ret = -errno, e = errno;
    if (ret) {
        fprintf(stderr, "blkv: %s: %s\n", path,
                ret == -ENOMEM ? "out of memory" : e ? strerror(e) : "write error");
        remove(path);
        return -1;
    }
    return 0;
}

int cmd_show(int argc, char **argv)
{
    static const struct option lo[] = {
        {"output", required_argument, NULL, 'o'}, {"driver", required_argument, NULL, 'd'},
        {"load", required_argument, NULL, 'L'},   {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct blkv_run_opts o = {.quiet = true, .timeline = true};
    struct blkv_run_result res;
    enum input_kind kind = INPUT_AUTO;
    const char *out = NULL, *spec = NULL, *driver;
    char path[4096];
    struct blkv_program p;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int c, st, ret;

    while ((c = getopt_long(argc, argv, "o:d:L:h", lo, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (check_path("--output", optarg))
                return 2;
            out = optarg;
            break;
        case 'd': spec = optarg; break;
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 'T':
        case 'B':
            if (set_kind(&kind, c))
                return 2;
            break;
        case 'h': usage_show(stdout); return 0;
        default: usage_show(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "blkv show: expected one input file (see blkv show --help)\n");
        return 2;
    }
    if (out && !*out) {
        fprintf(stderr, "blkv show: --output: empty path\n");
        return 2;
    }
    if (check_spec(spec))
        return 2;
    if (!out && !strcmp(argv[optind], "-")) {
        fprintf(stderr, "blkv show: reading standard input needs --output\n");
        return 2;
    }
    show_path(out ? out : ".", argv[optind], path, sizeof(path));
    blkv_program_init(&p);
    if (load_program(argv[optind], kind, &p, &raw, &raw_len)) {
        blkv_program_free(&p);
        return 2;
    }
    o.input = raw, o.input_len = raw_len;
    driver = spec ? spec : p.cfg.driver ? p.cfg.driver : default_spec();
    if (spec && p.cfg.driver && strcmp(spec, p.cfg.driver) != 0)
        fprintf(stderr, "%s: runs on '%s' (--driver), not its driver line '%s'\n", argv[optind],
                spec, p.cfg.driver);
    st = blkv_run_spec(&p, driver, &o, &res);
    if (st == BLKV_RUN_ERROR) {
        fprintf(stderr, "blkv: %s: %s\n", argv[optind], res.message);
        ret = 2;
    } else if (show_write(path, argv[optind], driver, &p, &res)) {
        ret = 2;
    } else if (st == BLKV_RUN_VIOLATION) {
        printf("%s: FAILED (%s): %s\npicture: %s\n", argv[optind], res.signature, res.message,
               path);
        ret = 1;
    } else {
        printf("%s: ok (%" PRIu64 " ops, %" PRIu64 " requests)\npicture: %s\n", argv[optind],
               res.stats.ops, res.stats.requests, path);
        ret = 0;
    }
    blkv_run_result_free(&res);
    blkv_program_free(&p);
    free(raw);
    return ret;
}
