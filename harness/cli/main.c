/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main.c - the blkv command-line tool: replay reproducers, convert
 * between binary and text, generate random programs, list drivers.
 */
#include <blkv/driver.h>
#include "cli/cli.h"
#include "cli/export.h"
#include "cli/show.h"
#include <blkv/program.h>
#include <blkv/prop.h>
#include "util/util.h"
#include <blkv/run.h>
#include "registry.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INPUT (UINT64_C(256) << 20)

static const char *prog_name = "blkv";

static void usage_main(FILE *f)
{
    fprintf(f,
            "usage: blkv COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "blkv verifies block-image drivers against a raw model.\n"
            "\n"
            "commands:\n"
            "  run FILE...      replay trace text or binary inputs; exit 0 if all are clean,\n"
            "                   1 if a driver misbehaved (with the report), 2 on bad input\n"
            "  decode FILE      print a binary input as trace text\n"
            "  encode FILE      write trace text as a binary input\n"
            "  gen --seed N     print a random program as trace text\n"
            "  prop             run random programs against a driver; shrink a failure\n"
            "  triage DIR...    replay findings, group them by signature, shrink one per group\n"
            "  drivers          list drivers, their options and capabilities\n"
            "  export-qemu-io TRACE  write a trace as a qemu-io script\n"
            "  show REPRO       draw a run as one HTML page (requests over time and offset)\n"
            "\n"
            "'blkv COMMAND --help' describes each command.\n");
}

/* ---- input files -------------------------------------------------------- */

/* Read a whole file ("-" is standard input), at most MAX_INPUT bytes. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog_name, path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb;
            cap = cap ? cap * 2 : 65536;
            if (cap > MAX_INPUT + 1)
                cap = MAX_INPUT + 1;
            nb = realloc(buf, cap + 1);
            if (!nb) {
                fprintf(stderr, "%s: %s: out of memory\n", prog_name, path);
                goto fail;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > MAX_INPUT) {
            fprintf(stderr, "%s: %s: larger than %" PRIu64 " bytes\n", prog_name, path,
                    MAX_INPUT);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: %s: read error\n", prog_name, path);
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    buf = buf ? buf : malloc(1);
    if (!buf)
        return -1;
    buf[n] = 0;
    *data = buf, *len = n;
    return 0;
fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return -1;
}

/* Make a relative image path in a trace relative to the trace's directory. */
static int resolve_path(const char *trace, char **path)
{
    const char *slash = strrchr(trace, '/');
    char *full;

    if (!*path || (*path)[0] == '/' || !slash)
        return 0;
    size_t n = (size_t)(slash - trace) + strlen(*path) + 2;
    if (!(full = malloc(n)))
        return -1;
    snprintf(full, n, "%.*s/%s", (int)(slash - trace), trace, *path);
    free(*path);
    *path = full;
    return 0;
}


int set_kind(enum input_kind *kind, int opt)
{
    enum input_kind k = opt == 'T' ? INPUT_TEXT : INPUT_BINARY;

    if (*kind != INPUT_AUTO && *kind != k) {
        fprintf(stderr, "%s: --text and --binary exclude each other\n", prog_name);
        return -1;
    }
    *kind = k;
    return 0;
}

int check_path(const char *opt, const char *path)
{
    if (*path)
        return 0;
    fprintf(stderr, "%s: %s: an empty path\n", prog_name, opt);
    return -1;
}

/* Load a program from a file, trace text or binary as `kind` says (INPUT_AUTO:
 * as blkv_program_is_text() tells); prints the error and returns -1 on failure. */
int load_program(const char *path, enum input_kind kind, struct blkv_program *p, uint8_t **raw,
                 size_t *raw_len)
{
    uint8_t *data;
    size_t len;
    char err[512];

    if (read_file(path, &data, &len))
        return -1;
    bool guessed = kind == INPUT_AUTO;
    if (guessed)
        kind = blkv_program_is_text(data, len) ? INPUT_TEXT : INPUT_BINARY;
    if (kind == INPUT_TEXT) {
        if (blkv_program_parse((const char *)data, len, path, p, err, sizeof(err))) {
            /* never fall back to binary: that would run another program */
            fprintf(stderr, "%s: %s%s\n", prog_name, err,
                    guessed ? " (read as trace text; --binary decodes it as a binary input)"
                            : "");
            free(data);
            return -1;
        }
        free(data);
        if (resolve_path(path, &p->cfg.init_image) || resolve_path(path, &p->cfg.lower_image)) {
            fprintf(stderr, "%s: out of memory\n", prog_name);
            return -1;
        }
        if (raw)
            *raw = NULL, *raw_len = 0;
        return 0;
    }
    if (blkv_program_decode(data, len, p)) {
        fprintf(stderr, "%s: %s: out of memory\n", prog_name, path);
        free(data);
        return -1;
    }
    if (raw)
        *raw = data, *raw_len = len;
    else
        free(data);
    return 0;
}

/* Check a --driver spec (NULL is fine); -1 with the error printed. */
int check_spec(const char *spec)
{
    const struct blkv_driver *drv;
    const char *opts;
    char err[512];
    if (spec && blkv_registry_resolve(spec, &drv, &opts, err, sizeof(err))) {
        fprintf(stderr, "%s: --driver: %s\n", prog_name, err);
        return -1;
    }
    return 0;
}

/* --load PATH: load a plugin; -1 with the error printed. */
int load_plugin(const char *path)
{
    char err[512];
    if (!blkv_registry_load(path, err, sizeof(err))) {
        fprintf(stderr, "%s: --load: %s\n", prog_name, err);
        return -1;
    }
    return 0;
}

/* The driver for inputs that name none (binary inputs, traces without a
 * driver line) when --driver is not given: the plugin loaded with --load if
 * there is exactly one, else raw. */
const char *default_spec(void)
{
    return blkv_registry_plugin(0) && !blkv_registry_plugin(1) ? blkv_registry_plugin(0)->name
                                                                : "raw";
}

#define LOAD_HELP "  -L, --load PATH    load a driver plugin (a shared object); repeatable\n"
#define KIND_HELP                                                                          \
    "      --text         read every input as trace text\n"                                \
    "      --binary       read every input as a binary input (a fuzzer's)\n"
/* What the tool takes for text, in each command's help. */
#define KIND_RULE                                                                          \
    "An input is trace text if it starts (after a UTF-8 byte-order mark, which is\n"      \
    "skipped, and blank lines) with a comment or with a keyword or op of trace\n"         \
    "text in any case, or if it is lines of printable text starting with a letter;\n"    \
    "anything else is a binary input.  Trace text that does not parse is an error\n"     \
    "naming FILE:LINE, never run as binary; keywords and ops are lower case ('Write'\n"  \
    "is an error).\n"

/* ---- run ----------------------------------------------------------------- */

static void usage_run(FILE *f)
{
    fprintf(f,
            "usage: blkv run [OPTIONS] FILE...\n"
            "\n"
            "Replay each FILE (trace text or a binary input; '-' reads standard input)\n"
            "against its driver and the raw model.\n"
            KIND_RULE
            "\n"
            "  -d, --driver SPEC  driver to use, e.g. 'raw', 'buggy mode=lost-write' or\n"
            "                     './mydriver.so opt=val'; overrides the trace's 'driver'\n"
            "                     line (default: the trace's, else the one plugin loaded\n"
            "                     with --load, else raw)\n"
            LOAD_HELP
            "  -s, --save DIR     save a reproducer (binary and text) of each failure in DIR\n"
            "                     (created if missing; if it cannot be, in . or the temp\n"
            "                     directory, and the report says so)\n"
            "      --show DIR|FILE\n"
            "                     write a picture of each failure (as 'blkv show' draws\n"
            "                     it) to FILE, or to DIR/NAME.html (a directory, or a path\n"
            "                     ending in '/'); with --save also beside each reproducer\n"
            "                     (BLKV_SHOW=1 does that alone)\n"
            "      --save-crash-images DIR\n"
            "                     at each crash op, write the lower files as the power\n"
            "                     loss left them to DIR/crash-K.lower0 (the image) and\n"
            "                     .lower1 (a backing file); one FILE only\n"
            KIND_HELP
            "  -v, --verbose      print each op as it runs\n"
            "  -q, --quiet        print only the first line of each report\n"
            "      --no-verify    the driver alone: the same requests, but no model, no\n"
            "                     data patterns and no read or image checks (only return\n"
            "                     values); for measuring what verification costs\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 all clean, 1 a driver misbehaved, 2 bad input or setup error.\n");
}

static int cmd_run(int argc, char **argv)
{
    static const struct option lo[] = {
        {"driver", required_argument, NULL, 'd'}, {"save", required_argument, NULL, 's'},
        {"text", no_argument, NULL, 'T'},         {"binary", no_argument, NULL, 'B'},
        {"verbose", no_argument, NULL, 'v'},      {"quiet", no_argument, NULL, 'q'},
        {"no-verify", no_argument, NULL, 'N'},    {"help", no_argument, NULL, 'h'},
        {"load", required_argument, NULL, 'L'},   {"save-crash-images", required_argument, NULL, 'C'},
        {"show", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    struct blkv_run_opts o = {0};
    const char *spec = NULL, *show = NULL, *env_show = getenv("BLKV_SHOW");
    enum input_kind kind = INPUT_AUTO;
    int c, worst = 0, clean = 0, bad = 0, errors = 0;
    bool quiet = false;

    while ((c = getopt_long(argc, argv, "d:s:vqhL:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': spec = optarg; break;
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 's':
            if (check_path("--save", optarg))
                return 2;
            o.repro_dir = optarg;
            break;
        case 'C':
            if (check_path("--save-crash-images", optarg))
                return 2;
            o.crash_dir = optarg;
            break;
        case 'S':
            if (check_path("--show", optarg))
                return 2;
            show = optarg;
            break;
        case 'T':
        case 'B':
            if (set_kind(&kind, c))
                return 2;
            break;
        case 'v': o.verbose = true; break;
        case 'q': quiet = true; break;
        case 'N': o.no_verify = true; break;
        case 'h': usage_run(stdout); return 0;
        default: usage_run(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s run: no input files (see blkv run --help)\n", prog_name);
        return 2;
    }
    if (o.crash_dir && argc - optind > 1) {
        fprintf(stderr, "%s run: --save-crash-images takes one input file\n", prog_name);
        return 2;
    }
    if (check_spec(spec))
        return 2;
    if (show) {
        char one[4096], two[4096];
        show_path(show, "a", one, sizeof(one));
        show_path(show, "b", two, sizeof(two));
        if (!*show || (argc - optind > 1 && !strcmp(one, two))) {
            fprintf(stderr, "%s run: --show %s: %s\n", prog_name, show,
                    *show ? "a file takes one input; give a directory" : "empty path");
            return 2;
        }
    }
    /* pictures beside reproducers: --show with --save, or BLKV_SHOW=1 */
    o.timeline = show != NULL;
    o.repro_picture = show || (env_show && !strcmp(env_show, "1"));
    o.quiet = quiet;
    o.out = stdout;
    for (int i = optind; i < argc; i++) {
        struct blkv_program p;
        struct blkv_run_result res;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        int st;

        blkv_program_init(&p);
        if (load_program(argv[i], kind, &p, &raw, &raw_len)) {
            blkv_program_free(&p);
            errors++;
            worst = worst > 2 ? worst : 2;
            continue;
        }
        o.input = raw, o.input_len = raw_len;
        if (spec && p.cfg.driver && strcmp(spec, p.cfg.driver) != 0)
            fprintf(stderr, "%s: runs on '%s' (--driver), not its driver line '%s'\n", argv[i],
                    spec, p.cfg.driver);
        st = blkv_run_spec(&p, spec ? spec : p.cfg.driver ? p.cfg.driver : default_spec(), &o,
                           &res);
        if (st == BLKV_RUN_OK && o.no_verify) {
            clean++;
            printf("%s: ran unverified (%" PRIu64 " ops, %" PRIu64 " requests)\n", argv[i],
                   res.stats.ops, res.stats.requests);
        } else if (st == BLKV_RUN_OK) {
            clean++;
            printf("%s: ok (%" PRIu64 " ops, %" PRIu64 " requests, %" PRIu64 " reads verified, %"
                   PRIu64 " bytes", argv[i], res.stats.ops, res.stats.requests,
                   res.stats.reads_checked, res.stats.bytes_verified);
            if (res.stats.crashes)
                printf(", %" PRIu64 " crash%s", res.stats.crashes,
                       res.stats.crashes == 1 ? "" : "es");
            if (res.stats.faults)
                printf(", %" PRIu64 " fault%s injected", res.stats.faults,
                       res.stats.faults == 1 ? "" : "s");
            if (res.stats.leaks_allowed)
                printf(", %" PRIu64 " leaked cluster%s (harmless here)", res.stats.leaks_allowed,
                       res.stats.leaks_allowed == 1 ? "" : "s");
            printf(")\n");
        } else if (st == BLKV_RUN_VIOLATION) {
            bad++;
            if (show) {
                char path[4096];
                show_path(show, argv[i], path, sizeof(path));
                if (show_write(path, argv[i],
                               spec ? spec : p.cfg.driver ? p.cfg.driver : default_spec(), &p,
                               &res))
                    errors++, worst = 2;
                else
                    printf("%s: picture %s\n", argv[i], path);
            }
            if (quiet)
                printf("%s: %s%s%s%s\n", argv[i], res.message,
                       res.repro_text[0] ? " (reproducer: " : "", res.repro_text,
                       res.repro_text[0] ? ")" : "");
            else
                printf("%s: FAILED (%s)\n", argv[i], res.signature);
            worst = worst == 2 ? 2 : 1;
            if (o.repro_dir && !res.repro_text[0]) {
                fprintf(stderr, "%s run: %s: the reproducer was not saved (see the report)\n",
                        prog_name, argv[i]);
                worst = 2;
            }
        } else {
            errors++;
            if (quiet)
                fprintf(stderr, "%s: %s: %s\n", prog_name, argv[i], res.message);
            worst = 2;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
        free(raw);
        fflush(stdout);
    }
    if (argc - optind > 1)
        printf("%d clean, %d failed, %d errors\n", clean, bad, errors);
    return worst;
}

/* ---- decode / encode ----------------------------------------------------- */

static void usage_decode(FILE *f)
{
    fprintf(f,
            "usage: blkv decode [-d SPEC] [-o OUT] [--text|--binary] FILE\n"
            "\n"
            "Print the program a binary input decodes to, as trace text.  Every byte\n"
            "string is a valid program.  A FILE that is trace text is refused: decoding\n"
            "its bytes would print some other program.\n"
            KIND_RULE
            "\n"
            "  -d, --driver SPEC  write a 'driver SPEC' line into the trace\n"
            "  -o, --output OUT   write to OUT instead of standard output\n"
            "      --text         FILE is trace text: print it in canonical form\n"
            "      --binary       decode FILE even if it looks like trace text\n"
            "  -h, --help         this help\n");
}

static void usage_encode(FILE *f)
{
    fprintf(f,
            "usage: blkv encode [-o OUT] FILE\n"
            "\n"
            "Write the binary input that decodes to the program in trace text FILE.\n"
            "The driver line and image paths are not part of the binary form.\n"
            "\n"
            "  -o, --output OUT   write to OUT (default: standard output, if not a terminal)\n"
            "  -h, --help         this help\n");
}

static int write_out(const char *path, const void *data, size_t len)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    bool ok;
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog_name, path, strerror(errno));
        return 2;
    }
    errno = 0;
    ok = fwrite(data, 1, len, f) == len;
    ok &= (path ? fclose(f) : fflush(f)) == 0;
    if (!ok) {
        fprintf(stderr, "%s: %s: %s\n", prog_name, path ? path : "standard output",
                errno ? strerror(errno) : "write error");
        if (!path)
            clearerr(stdout); /* said once */
        return 2;
    }
    return 0;
}

static int cmd_decode_encode(int argc, char **argv, bool decode)
{
    static const struct option dlo[] = {
        {"driver", required_argument, NULL, 'd'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    static const struct option elo[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *driver = NULL;
    enum input_kind kind = decode ? INPUT_AUTO : INPUT_TEXT;
    struct blkv_program p;
    uint8_t *raw = NULL;
    size_t raw_len;
    int c, ret;

    while ((c = getopt_long(argc, argv, decode ? "d:o:h" : "o:h", decode ? dlo : elo, NULL)) !=
           -1) {
        switch (c) {
        case 'd': driver = optarg; break;
        case 'o':
            if (check_path("--output", optarg))
                return 2;
            out = optarg;
            break;
        case 'T':
        case 'B':
            if (set_kind(&kind, c))
                return 2;
            break;
        case 'h': (decode ? usage_decode : usage_encode)(stdout); return 0;
        default: (decode ? usage_decode : usage_encode)(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s %s: expected one input file\n", prog_name,
                decode ? "decode" : "encode");
        return 2;
    }
    if (check_spec(driver))
        return 2;
    blkv_program_init(&p);
    if (load_program(argv[optind], kind, &p, &raw, &raw_len)) {
        blkv_program_free(&p);
        return 2;
    }
    free(raw);
    if (decode && kind == INPUT_AUTO && !raw) {
        fprintf(stderr,
                "%s decode: %s: trace text, not a binary input (--text prints it in canonical "
                "form, --binary decodes its bytes)\n",
                prog_name, argv[optind]);
        blkv_program_free(&p);
        return 2;
    }
    if (decode) {
        char *text;
        if (driver) {
            free(p.cfg.driver);
            p.cfg.driver = strdup(driver);
        }
        text = blkv_program_format(&p);
        ret = text ? write_out(out, text, strlen(text)) : 2;
        free(text);
    } else {
        size_t len;
        uint8_t *bin;
        if (!out && isatty(STDOUT_FILENO)) {
            fprintf(stderr, "%s encode: not writing binary to a terminal (use -o OUT)\n",
                    prog_name);
            blkv_program_free(&p);
            return 2;
        }
        bin = blkv_program_encode(&p, &len);
        ret = bin ? write_out(out, bin, len) : 2;
        free(bin);
    }
    blkv_program_free(&p);
    return ret;
}

/* ---- gen ----------------------------------------------------------------- */

static void usage_gen(FILE *f)
{
    fprintf(f,
            "usage: blkv gen --seed N [OPTIONS]\n"
            "\n"
            "Print a random program as trace text: program number I of 'blkv prop\n"
            "--seed N' (random bytes decoded like a fuzz input, with a config drawn\n"
            "from a matrix of sizes, queue depths and schedules).  The same N and I\n"
            "give the same program.\n"
            "\n"
            "  -S, --seed N        the seed (required)\n"
            "  -i, --index I       which program of the seed's sequence (default 0)\n"
            "  -n, --ops K         at most K ops (default 64)\n"
            "  -d, --driver SPEC   write a 'driver SPEC' line into the trace\n"
            "  -h, --help          this help\n");
}

static int parse_num(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *v)
{
    if (blkv_parse_u64(arg, v) || *v < min || *v > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number in %" PRIu64 "..%" PRIu64 "\n", prog_name,
                opt, arg, min, max);
        return -1;
    }
    return 0;
}

static int cmd_gen(int argc, char **argv)
{
    static const struct option lo[] = {
        {"seed", required_argument, NULL, 'S'}, {"index", required_argument, NULL, 'i'},
        {"ops", required_argument, NULL, 'n'},  {"driver", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    uint64_t seed = 0, index = 0, ops = 64;
    bool have_seed = false;
    const char *driver = NULL;
    struct blkv_program p;
    char *text;
    int c;

    while ((c = getopt_long(argc, argv, "S:i:n:d:h", lo, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (parse_num("--seed", optarg, 0, UINT64_MAX, &seed))
                return 2;
            have_seed = true;
            break;
        case 'i':
            if (parse_num("--index", optarg, 0, UINT64_MAX, &index))
                return 2;
            break;
        case 'n':
            if (parse_num("--ops", optarg, 1, BLKV_PROGRAM_MAX_OPS, &ops))
                return 2;
            break;
        case 'd': driver = optarg; break;
        case 'h': usage_gen(stdout); return 0;
        default: usage_gen(stderr); return 2;
        }
    }
    if (!have_seed || optind != argc) {
        usage_gen(stderr);
        return 2;
    }
    if (check_spec(driver))
        return 2;
    blkv_program_init(&p);
    if (blkv_program_random(seed, index, ops, &p)) {
        fprintf(stderr, "%s gen: out of memory\n", prog_name);
        return 2;
    }
    if (driver)
        p.cfg.driver = strdup(driver);
    text = blkv_program_format(&p);
    if (text) {
        printf("# blkv gen --seed %" PRIu64 " --index %" PRIu64 " --ops %" PRIu64 "\n%s", seed,
               index, ops, text);
        free(text);
    }
    blkv_program_free(&p);
    return text ? 0 : 2;
}

/* ---- prop ---------------------------------------------------------------- */

static void usage_prop(FILE *f)
{
    fprintf(f,
            "usage: blkv prop [OPTIONS]\n"
            "\n"
            "Run random programs (no coverage guidance) against a driver until one fails,\n"
            "the run count or the time budget is reached.  A failing program is shrunk\n"
            "(ops removed, then config, offsets and lengths simplified) while it fails\n"
            "with the same signature; the minimal program's report is printed and its\n"
            "reproducer saved.  The same seed gives the same programs.  A failure that\n"
            "does not fail again when the shrunk program is rerun (undefined behaviour, a\n"
            "race) is still reported, from its first run, and saved, with a note.\n"
            "For a driver that is not in-process, crash and fault ops are kept only when\n"
            "the driver takes them, and a fault rule its server cannot express is left\n"
            "out (the program runs again without it; the summary counts them).\n"
            "\n"
            "  -d, --driver SPEC   driver (default: the one plugin loaded with --load,\n"
            "                      else raw)\n"
            "      --fixed         run every program with SPEC's options as given.  By\n"
            "                      default, for drivers whose fuzz target takes image\n"
            "                      options from its input (qcow2: version, cluster size,\n"
            "                      refcount width, lazy refcounts, backing file, cache\n"
            "                      sizes; libqcow: version 2 options), each program draws\n"
            "                      them from its seed as the fuzzer does; options SPEC\n"
            "                      sets stay fixed and only the rest vary\n"
            "  -L, --load PATH     load a driver plugin (a shared object); repeatable\n"
            "  -S, --seed N        seed (default 0)\n"
            "  -r, --runs N        at most N programs (default: unlimited with --time,\n"
            "                      else 1000)\n"
            "  -t, --time SECONDS  time budget (default: none)\n"
            "  -n, --ops K         ops per program (default 64)\n"
            "  -s, --save DIR      where the reproducer goes (default .; created if missing;\n"
            "                      if it cannot be, the report says where it went instead)\n"
            "      --shrink-runs N runs the shrinker may make (default 2000)\n"
            "  -q, --quiet         no progress (a live line on a terminal, else a line a\n"
            "                      minute; the report of a failure is printed and its\n"
            "                      reproducer saved all the same)\n"
            "  -h, --help          this help\n"
            "\n"
            "On SIGINT or SIGTERM, prop prints what it has done so far (while shrinking a\n"
            "failure: the failure, and its first run's reproducer, saved before the shrink\n"
            "began) and dies of the signal.\n"
            "\n"
            "Exit status: 0 no failure, 1 a failure (reported), 2 bad usage or no program\n"
            "could run (say, a driver spec that does not open).\n");
}

static int cmd_prop(int argc, char **argv)
{
    static const struct option lo[] = {
        {"driver", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 'S'},
        {"runs", required_argument, NULL, 'r'},   {"time", required_argument, NULL, 't'},
        {"ops", required_argument, NULL, 'n'},    {"save", required_argument, NULL, 's'},
        {"shrink-runs", required_argument, NULL, 'R'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {"load", required_argument, NULL, 'L'},
        {"fixed", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    struct blkv_prop_opts o = {.ops = 64, .save_dir = ".", .progress = true, .shrink_runs = 2000};
    const char *spec = NULL;
    char err[512];
    uint64_t v;
    int c;
    bool fixed = false;

    o.progress = isatty(STDERR_FILENO);
    o.progress_every = o.progress ? 0 : 60; /* a log: a line a minute */
    o.signal_summary = true;
    while ((c = getopt_long(argc, argv, "d:S:r:t:n:s:qhL:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': spec = optarg; break;
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 'S':
            if (parse_num("--seed", optarg, 0, UINT64_MAX, &o.seed))
                return 2;
            break;
        case 'r':
            if (parse_num("--runs", optarg, 1, UINT64_MAX, &o.runs))
                return 2;
            break;
        case 't':
            if (parse_num("--time", optarg, 1, 86400 * 365, &v))
                return 2;
            o.seconds = (double)v;
            break;
        case 'n':
            if (parse_num("--ops", optarg, 1, BLKV_PROGRAM_MAX_OPS, &v))
                return 2;
            o.ops = v;
            break;
        case 's':
            if (check_path("--save", optarg))
                return 2;
            o.save_dir = optarg;
            break;
        case 'R':
            if (parse_num("--shrink-runs", optarg, 1, UINT64_MAX, &o.shrink_runs))
                return 2;
            break;
        case 'q': o.progress = false, o.progress_every = 0; break;
        case 'F': fixed = true; break;
        case 'h': usage_prop(stdout); return 0;
        default: usage_prop(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage_prop(stderr);
        return 2;
    }
    if (!o.runs && !o.seconds)
        o.runs = 1000;
    if (blkv_registry_resolve(spec ? spec : default_spec(), &o.driver, &o.driver_opts, err,
                              sizeof(err))) {
        fprintf(stderr, "%s prop: --driver: %s\n", prog_name, err);
        return 2;
    }
    if (!fixed && (o.vary = blkv_registry_vary(o.driver)))
        printf("prop: varying image options per program%s%s (--fixed to keep '%s' for every"
               " program)\n", o.driver_opts[strspn(o.driver_opts, " \t,")] ? "; fixed:" : "",
               o.driver_opts, spec ? spec : default_spec());
    fflush(stdout);
    return blkv_prop(&o);
}

/* ---- triage --------------------------------------------------------------- */

static void usage_triage(FILE *f)
{
    fprintf(f,
            "usage: blkv triage [OPTIONS] DIR|FILE...\n"
            "\n"
            "Replay every finding (each file in each DIR, or each FILE: binary inputs such\n"
            "as libFuzzer and AFL++ crash files, or trace text), group the failures by\n"
            "driver and report signature, shrink one example per group, and print a\n"
            "table.  The minimal trace of each group is saved as text in the output\n"
            "directory.  Trace text runs against its own 'driver' line; binary inputs\n"
            "(and traces without one) need --driver.\n"
            KIND_RULE
            "\n"
            "  -d, --driver SPEC    driver for binary inputs, e.g. 'buggy mode=lost-write'\n"
            "  -L, --load PATH      load a driver plugin (a shared object); repeatable\n"
            "  -o, --out DIR        where the minimal traces go (default triage)\n"
            "      --shrink-runs N  runs the shrinker may make per group (default 2000)\n"
            KIND_HELP
            "  -h, --help           this help\n"
            "\n"
            "Exit status: 0 every file ran clean, 1 failures were grouped, 2 bad usage, a\n"
            "file that could not run (and none failed), or a minimal trace not saved.\n");
}

/* One group of findings: same driver, same signature. */
struct triage_group {
    char sig[96];
    char *driver;  /* the driver spec the findings ran against */
    char *example; /* the first file of the group */
    uint64_t count;
    size_t ops, min_ops;
    char min_path[4096];
};

struct triage {
    const char *spec; /* --driver */
    enum input_kind kind; /* --text, --binary */
    struct triage_group *g;
    size_t ng;
    uint64_t files, clean, errors;
};

/* Replay one file and add it to its group. */
static void triage_file(struct triage *t, const char *path)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.quiet = true};
    struct blkv_run_result res;
    const char *driver;
    size_t i;

    t->files++;
    blkv_program_init(&p);
    if (load_program(path, t->kind, &p, NULL, NULL)) {
        t->errors++;
        blkv_program_free(&p);
        return;
    }
    driver = p.cfg.driver ? p.cfg.driver : t->spec;
    if (!driver) {
        fprintf(stderr, "%s triage: %s: a binary input needs --driver\n", prog_name, path);
        t->errors++;
        blkv_program_free(&p);
        return;
    }
    if (blkv_run_spec(&p, driver, &o, &res) != BLKV_RUN_VIOLATION) {
        if (res.status == BLKV_RUN_OK)
            t->clean++;
        else {
            fprintf(stderr, "%s triage: %s: %s\n", prog_name, path, res.message);
            t->errors++;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
        return;
    }
    for (i = 0; i < t->ng; i++)
        if (!strcmp(t->g[i].sig, res.signature) && !strcmp(t->g[i].driver, driver))
            break;
    if (i == t->ng) {
        struct triage_group *g = realloc(t->g, (t->ng + 1) * sizeof(*g));
        if (!g) {
            t->errors++;
            goto out;
        }
        t->g = g;
        g = &t->g[t->ng++];
        memset(g, 0, sizeof(*g));
        snprintf(g->sig, sizeof(g->sig), "%s", res.signature);
        g->driver = strdup(driver);
        g->example = strdup(path);
        g->ops = p.nops;
        if (!g->driver || !g->example) {
            t->ng--;
            free(g->driver), free(g->example);
            t->errors++;
            goto out;
        }
    }
    t->g[i].count++;
out:
    blkv_run_result_free(&res);
    blkv_program_free(&p);
}

/* Replay a file, or every file of a directory (not recursing, sorted). */
static void triage_path(struct triage *t, const char *path)
{
    struct stat st;
    char pat[4096];
    glob_t gl;
    int ret;

    if (stat(path, &st)) {
        fprintf(stderr, "%s triage: %s: %s\n", prog_name, path, strerror(errno));
        t->files++, t->errors++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        triage_file(t, path);
        return;
    }
    snprintf(pat, sizeof(pat), "%s/*", path); /* hidden files are left out */
    ret = glob(pat, 0, NULL, &gl);
    if (ret && ret != GLOB_NOMATCH) {
        fprintf(stderr, "%s triage: %s: cannot list\n", prog_name, path);
        t->files++, t->errors++;
        return;
    }
    for (size_t i = 0; !ret && i < gl.gl_pathc; i++) {
        const char *base = strrchr(gl.gl_pathv[i], '/') + 1;
        /* AFL++ leaves a README.txt among its crashes */
        if (strcmp(base, "README.txt") && stat(gl.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode))
            triage_file(t, gl.gl_pathv[i]);
    }
    if (!ret)
        globfree(&gl);
}

/* Shrink the group's example and save it as OUT/N-SIGNATURE.trace. */
static void triage_minimise(struct triage_group *g, size_t idx, const char *out,
                            uint64_t shrink_runs, enum input_kind kind)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.quiet = true};
    struct blkv_run_result res;
    char name[128], err[512], *text, *own;
    FILE *f;

    blkv_program_init(&p);
    g->min_ops = 0;
    if (load_program(g->example, kind, &p, NULL, NULL))
        return;
    /* the group's findings ran against it: it resolves */
    if (blkv_registry_resolve(g->driver, &o.driver, &o.driver_opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s triage: %s\n", prog_name, err);
        blkv_program_free(&p);
        return;
    }
    blkv_shrink(&p, o.driver, o.driver_opts, blkv_same_signature, g->sig, shrink_runs);
    g->min_ops = p.nops;
    blkv_run(&p, &o, &res);
    snprintf(name, sizeof(name), "%zu-%s", idx + 1, g->sig);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '_'))
            *c = '-';
    snprintf(g->min_path, sizeof(g->min_path), "%s/%s.trace", out, name);
    own = p.cfg.driver; /* the trace names the driver the group ran against */
    p.cfg.driver = g->driver;
    text = blkv_program_format(&p);
    p.cfg.driver = own;
    f = text ? fopen(g->min_path, "w") : NULL;
    if (f) {
        fprintf(f, "# %s\n# triage group %zu: %s, %" PRIu64 " finding(s), e.g. %s\n"
                   "# replay: blkv run %s\n%s",
                res.status == BLKV_RUN_VIOLATION ? res.message : "(no longer fails)", idx + 1,
                g->sig, g->count, g->example, g->min_path, text);
        if (fclose(f)) {
            fprintf(stderr, "%s triage: %s: %s\n", prog_name, g->min_path, strerror(errno));
            g->min_path[0] = 0;
        }
    } else {
        fprintf(stderr, "%s triage: %s: %s\n", prog_name, g->min_path, strerror(errno));
        g->min_path[0] = 0;
    }
    free(text);
    blkv_run_result_free(&res);
    blkv_program_free(&p);
}

/* Largest count first, then signature and driver: a stable table. */
static int triage_cmp(const void *a, const void *b)
{
    const struct triage_group *x = a, *y = b;
    int c;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    c = strcmp(x->sig, y->sig);
    return c ? c : strcmp(x->driver, y->driver);
}

static int cmd_triage(int argc, char **argv)
{
    static const struct option lo[] = {
        {"driver", required_argument, NULL, 'd'}, {"out", required_argument, NULL, 'o'},
        {"shrink-runs", required_argument, NULL, 'R'}, {"help", no_argument, NULL, 'h'},
        {"load", required_argument, NULL, 'L'},   {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},       {NULL, 0, NULL, 0},
    };
    struct triage t = {0};
    const char *out = "triage";
    uint64_t shrink_runs = 2000, failed = 0;
    size_t unsaved = 0;
    int c, ret;

    while ((c = getopt_long(argc, argv, "d:o:hL:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': t.spec = optarg; break;
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 'o':
            if (check_path("--out", optarg))
                return 2;
            out = optarg;
            break;
        case 'R':
            if (parse_num("--shrink-runs", optarg, 1, UINT64_MAX, &shrink_runs))
                return 2;
            break;
        case 'T':
        case 'B':
            if (set_kind(&t.kind, c))
                return 2;
            break;
        case 'h': usage_triage(stdout); return 0;
        default: usage_triage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s triage: no directories or files (see blkv triage --help)\n",
                prog_name);
        return 2;
    }
    if (check_spec(t.spec))
        return 2;
    for (int i = optind; i < argc; i++)
        triage_path(&t, argv[i]);
    if (t.ng && (ret = blkv_mkdir_p(out))) {
        fprintf(stderr, "%s triage: --out %s: %s\n", prog_name, out, strerror(-ret));
        for (size_t i = 0; i < t.ng; i++)
            free(t.g[i].driver), free(t.g[i].example);
        free(t.g);
        return 2;
    }
    if (t.ng) /* t.g is NULL without groups, and qsort wants an array */
        qsort(t.g, t.ng, sizeof(*t.g), triage_cmp);
    for (size_t i = 0; i < t.ng; i++) {
        failed += t.g[i].count;
        triage_minimise(&t.g[i], i, out, shrink_runs, t.kind);
    }
    printf("triage: %" PRIu64 " file(s): %" PRIu64 " failed in %zu group(s), %" PRIu64
           " clean, %" PRIu64 " not runnable\n", t.files, failed, t.ng, t.clean, t.errors);
    if (t.ng)
        printf("  %-3s %-30s %6s %5s %5s  %-26s %s\n", "#", "signature", "count", "ops",
               "min", "driver", "example");
    for (size_t i = 0; i < t.ng; i++) {
        struct triage_group *g = &t.g[i];
        printf("  %-3zu %-30s %6" PRIu64 " %5zu %5zu  %-26s %s\n", i + 1, g->sig, g->count,
               g->ops, g->min_ops, g->driver, g->example);
    }
    for (size_t i = 0; i < t.ng; i++)
        if (t.g[i].min_path[0])
            printf("  minimal %zu: blkv run %s\n", i + 1, t.g[i].min_path);
        else
            unsaved++;
    for (size_t i = 0; i < t.ng; i++)
        free(t.g[i].driver), free(t.g[i].example);
    free(t.g);
    if (unsaved) {
        fprintf(stderr, "%s triage: %zu minimal trace(s) not saved (see above)\n", prog_name,
                unsaved);
        return 2;
    }
    return t.ng ? 1 : t.errors ? 2 : 0;
}

/* ---- drivers ------------------------------------------------------------- */

static void usage_drivers(FILE *f)
{
    fprintf(f,
            "usage: blkv drivers [--load PATH]... [NAME]\n"
            "\n"
            "List drivers (built in, and loaded from plugins with --load) with their\n"
            "options and capabilities (as reported by opening each on a fresh default\n"
            "device), or just driver NAME (a name, or a plugin's path).\n"
            "\n"
            LOAD_HELP
            "  -h, --help         this help\n");
}

/* Print the fault events driver d names: the three every driver has, the
 * standard ones it tags, and its own. */
static void print_events(const struct blkv_driver *d)
{
    char name[32];
    printf("data_read data_write flush");
    for (unsigned ev = 1; ev < BLKV_EV__STANDARD; ev++)
        if (ev != BLKV_EV_DATA_READ && ev != BLKV_EV_DATA_WRITE && ev != BLKV_EV_FLUSH &&
            (d->std_events >> ev & 1))
            printf(" %s", blkv_event_name(ev, name, sizeof(name)));
    for (unsigned i = 0; d->events && d->events[i]; i++)
        printf(" %s (event-%u)", d->events[i], BLKV_EV__STANDARD + i);
    printf("\n");
}

/* Print one driver: name, description, options, capabilities. */
static void print_driver(const struct blkv_driver *d)
{
    static const char *const discard[] = {"ignored", "zeroes", "zeroes-or-old", "unspecified"};
    const char *from = blkv_plugin_path(d);
    struct blkv_caps caps;
    char err[512];
    bool probed;

    printf("%s%s%s%s%s\n  %s\n", d->name, d->in_process ? " (in-process)" : "",
           from ? " (plugin " : "", from ? from : "", from ? ")" : "",
           d->description ? d->description : "");
    for (const struct blkv_option *o = d->options; o && o->name; o++)
        printf("  %-16s %s%s%s%s\n", o->name, o->help ? o->help : "", o->def ? " (default " : "",
               o->def ? o->def : "", o->def ? ")" : "");
    probed = blkv_driver_probe(d, NULL, &caps, err, sizeof(err)) == 0;
    if (probed) {
        printf("  capabilities: align %u, max transfer %u, atomic %u, discard %s%s%s%s%s\n",
               caps.align, caps.max_transfer, caps.atomic ? caps.atomic : 1,
               discard[caps.discard % 4], caps.write_zeroes ? ", write-zeroes" : "",
               caps.fua ? ", fua" : "", caps.cancel ? ", cancel" : "",
               caps.read_only ? ", read-only" : "");
    } else {
        printf("  capabilities: unknown (%s)\n", err);
    }
    /* crash and fault: fields a plugin's smaller struct may not have */
    bool server_ops = d->struct_size >= offsetof(struct blkv_driver, crash) + sizeof(d->crash) &&
                      (d->crash || d->fault);
    if (d->in_process) {
        if (!d->check)
            printf("  after a crash: no image check\n");
        else if (probed)
            printf("  after a crash: the check may find %s\n",
                   caps.crash_check == BLKV_CRASH_LEAKS ? "leaked space, never corruption"
                                                        : "nothing (the open repairs)");
        printf("  fault events: ");
        print_events(d);
    } else if (server_ops) {
        printf("  crash ops: %s\n", !d->crash ? "no" : probed && caps.crash ?
               "kill its server (with the default options)" :
               "kill its server where its options allow (not the default ones)");
        if (d->fault) {
            printf("  fault events (%s): ", probed && caps.fault_rules ? "with the default options"
                                            : "where its options allow, not the default ones");
            print_events(d);
        }
    } else {
        printf("  fault events: none (crash and fault ops need an in-process driver)\n");
    }
}

static int cmd_drivers(int argc, char **argv)
{
    static const struct option lo[] = {
        {"load", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct blkv_driver *only = NULL;
    int c;

    while ((c = getopt_long(argc, argv, "L:h", lo, NULL)) != -1) {
        switch (c) {
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 'h': usage_drivers(stdout); return 0;
        default: usage_drivers(stderr); return 2;
        }
    }
    if (argc - optind > 1) {
        usage_drivers(stderr);
        return 2;
    }
    if (optind < argc) {
        const char *opts;
        char err[512];
        if (blkv_registry_resolve(argv[optind], &only, &opts, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s drivers: %s\n", prog_name, err);
            return 2;
        }
        print_driver(only);
        return 0;
    }
    for (size_t i = 0; blkv_builtin_drivers[i]; i++)
        print_driver(blkv_builtin_drivers[i]);
    for (size_t i = 0; blkv_registry_plugin(i); i++)
        print_driver(blkv_registry_plugin(i));
    return 0;
}

/* ---- export-qemu-io ------------------------------------------------------ */

static void usage_export_qemu_io(FILE *f)
{
    fprintf(f,
            "usage: blkv export-qemu-io [-f FORMAT] [-c] [-o OUT] TRACE\n"
            "\n"
            "Write a trace (text or binary) as a qemu-io script, to reproduce a finding\n"
            "with QEMU's own tools.  Each write writes its own byte (-P 1, 2, ...);\n"
            "reads check with -P where the content is known (nothing overlapping in\n"
            "flight), drain and wait become aio_flush.  Cancel, fault injection and\n"
            "initial content other than zero cannot be expressed.  The script creates\n"
            "the image as the trace's driver line does: an nbd driver's create-opts and\n"
            "discard mode, blkv qcow2's version, cluster-size, refcount-bits and\n"
            "lazy-refcounts (a backing file is refused).  Whatever goes into the script\n"
            "is checked to be a plain word and quoted; anything else is refused.\n"
            KIND_RULE
            "\n"
            "  -f, --format FMT  image format, a plain word (default: format= of an nbd\n"
            "                    driver line; raw for raw, buggy and file; else qcow2)\n"
            "  -c, --commands    only the qemu-io commands (default: a shell script that\n"
            "                    creates the image, runs qemu-io and qemu-img check)\n"
            "  -o, --output OUT  write to OUT (default: standard output)\n"
            "  -L, --load PATH   load a driver plugin (a shared object); repeatable\n"
            "      --text        read TRACE as trace text\n"
            "      --binary      read TRACE as a binary input (a fuzzer's)\n"
            "  -h, --help        this help\n"
            "\n"
            "Example: blkv export-qemu-io repro.trace > repro.sh && sh repro.sh\n");
}

static int cmd_export_qemu_io(int argc, char **argv)
{
    static const struct option lo[] = {
        {"format", required_argument, NULL, 'f'},
        {"commands", no_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"load", required_argument, NULL, 'L'},
        {"text", no_argument, NULL, 'T'},
        {"binary", no_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    enum input_kind kind = INPUT_AUTO;
    struct blkv_export_opts eo = {0};
    const char *out = NULL;
    char err[512];
    struct blkv_program p;
    FILE *f = stdout;
    int c, ret;

    while ((c = getopt_long(argc, argv, "f:co:hL:", lo, NULL)) != -1) {
        switch (c) {
        case 'L':
            if (load_plugin(optarg))
                return 2;
            break;
        case 'f': eo.format = optarg; break;
        case 'c': eo.commands_only = true; break;
        case 'T':
        case 'B':
            if (set_kind(&kind, c))
                return 2;
            break;
        case 'o':
            if (check_path("--output", optarg))
                return 2;
            out = optarg;
            break;
        case 'h': usage_export_qemu_io(stdout); return 0;
        default: usage_export_qemu_io(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s export-qemu-io: expected one trace\n", prog_name);
        return 2;
    }
    blkv_program_init(&p);
    if (load_program(argv[optind], kind, &p, NULL, NULL)) {
        blkv_program_free(&p);
        return 2;
    }
    eo.source = argv[optind];
    if (out && !(f = fopen(out, "w"))) {
        fprintf(stderr, "%s: %s: %s\n", prog_name, out, strerror(errno));
        blkv_program_free(&p);
        return 2;
    }
    ret = blkv_export_qemu_io(&p, &eo, f, err, sizeof(err));
    if (ret < 0)
        fprintf(stderr, "%s export-qemu-io: %s: %s\n", prog_name, argv[optind], err);
    if (f != stdout && fclose(f) != 0 && ret == 0) {
        fprintf(stderr, "%s: %s: %s\n", prog_name, out, strerror(errno));
        ret = -EIO;
    }
    blkv_program_free(&p);
    return ret < 0 ? 2 : 0;
}

static int run_command(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage_main(stdout);
        return 0;
    }
    argc--, argv++;
    if (!strcmp(cmd, "run"))
        return cmd_run(argc, argv);
    if (!strcmp(cmd, "decode"))
        return cmd_decode_encode(argc, argv, true);
    if (!strcmp(cmd, "encode"))
        return cmd_decode_encode(argc, argv, false);
    if (!strcmp(cmd, "gen"))
        return cmd_gen(argc, argv);
    if (!strcmp(cmd, "prop"))
        return cmd_prop(argc, argv);
    if (!strcmp(cmd, "triage"))
        return cmd_triage(argc, argv);
    if (!strcmp(cmd, "drivers"))
        return cmd_drivers(argc, argv);
    if (!strcmp(cmd, "show"))
        return cmd_show(argc, argv);
    if (!strcmp(cmd, "export-qemu-io"))
        return cmd_export_qemu_io(argc, argv);
    fprintf(stderr, "%s: unknown command '%s' (see blkv --help)\n", prog_name, cmd);
    return 2;
}

/* SIGPIPE does nothing: a write to a closed pipe fails with EPIPE, and the
 * check at exit says so.  (A handler, unlike SIG_IGN, is not inherited by
 * the servers that drivers start.) */
static void on_sigpipe(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_sigpipe, .sa_flags = SA_RESTART};
    int ret, e;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    ret = run_command(argc, argv);
    /* output that did not reach its file is a failure, whatever the command says */
    errno = 0;
    e = fflush(stdout) ? errno : 0;
    if (ferror(stdout) || e) {
        fprintf(stderr, "%s: standard output: %s\n", prog_name,
                e ? strerror(e) : "write error");
        return 2;
    }
    if (fclose(stdout)) {
        fprintf(stderr, "%s: standard output: %s\n", prog_name, strerror(errno));
        return 2;
    }
    return ret;
}
