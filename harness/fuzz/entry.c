/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * entry.c - the fuzz entry (blkv_fuzz_one), the data budget, and the trace
 * text of an input that a sanitizer stops.
 */
#include <blkv/fuzz.h>
#include <blkv/run.h>

#include "program/limits.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The formula lives with the decoder, which draws lengths within it. */
uint64_t blkv_fuzz_budget(const struct blkv_config *cfg)
{
    return blkv_budget_of(cfg);
}

unsigned blkv_fuzz_max_reopens(const struct blkv_config *cfg)
{
    return blkv_limit_of(cfg, BLKV_FUZZ_MAX_REOPENS);
}

unsigned blkv_fuzz_max_checks(const struct blkv_config *cfg)
{
    return blkv_limit_of(cfg, BLKV_FUZZ_MAX_CHECKS);
}

uint64_t blkv_fuzz_max_size(const struct blkv_config *cfg)
{
    return blkv_size_cap_of(cfg->grain);
}

/* What a program of a config may hold. */
struct fuzz_limits {
    uint64_t budget, grain;
    unsigned reopens, checks;
};

static struct fuzz_limits limits_of(const struct blkv_config *cfg)
{
    return (struct fuzz_limits){.budget = blkv_fuzz_budget(cfg),
                                .grain = cfg->grain,
                                .reopens = blkv_fuzz_max_reopens(cfg),
                                .checks = blkv_fuzz_max_checks(cfg)};
}

/* Whether op goes over the limits after the ops before it (whose counts
 * are in *moved, *reopens, *checks, *rules); counts it in if not. */
static bool op_over(const struct blkv_pop *op, const struct fuzz_limits *lim, uint64_t *moved,
                    unsigned *reopens, unsigned *checks, unsigned *rules)
{
    if (blkv_opcode_ranged(op->code)) {
        uint64_t cost = blkv_budget_cost(op->code, op->len, lim->grain, *rules);
        if (cost > blkv_budget_left(lim->budget, *moved))
            return true;
        *moved += cost;
        return false;
    }
    switch (op->code) {
    case BLKV_P_REOPEN:
    case BLKV_P_CRASH: /* an open and a check too */
        return ++*reopens > lim->reopens;
    case BLKV_P_FAULT:
        return ++*rules > BLKV_FUZZ_MAX_RULES;
    case BLKV_P_CHECK:
        return ++*checks > lim->checks;
    default:
        return false;
    }
}

size_t blkv_fuzz_over_budget(const struct blkv_program *p)
{
    struct fuzz_limits lim = limits_of(&p->cfg);
    uint64_t moved = 0;
    unsigned reopens = 0, checks = 0, rules = 0;

    for (size_t i = 0; i < p->nops; i++)
        if (op_over(&p->ops[i], &lim, &moved, &reopens, &checks, &rules))
            return i;
    return p->nops;
}

bool blkv_fuzz_in_budget(const struct blkv_program *p)
{
    return p->cfg.size <= blkv_fuzz_max_size(&p->cfg) && blkv_fuzz_over_budget(p) == p->nops;
}

/* Why the targets set p aside (BLKV_FUZZ_VERBOSE), to stderr. */
static void say_set_aside(const struct blkv_program *p)
{
    if (p->cfg.size > blkv_fuzz_max_size(&p->cfg))
        fprintf(stderr, "blkv: input set aside: a %" PRIu64 "-byte device is over the %" PRIu64
                " bytes its grain allows\n", p->cfg.size, blkv_fuzz_max_size(&p->cfg));
    else
        fprintf(stderr, "blkv: input set aside: op %zu goes over the budget (%" PRIu64
                " bytes of data, %u reopens and crashes, %u checks, %u fault rules)\n",
                blkv_fuzz_over_budget(p), blkv_fuzz_budget(&p->cfg),
                blkv_fuzz_max_reopens(&p->cfg), blkv_fuzz_max_checks(&p->cfg),
                BLKV_FUZZ_MAX_RULES);
}

/* Requests over the budget are cut, or made reads where a write would
 * cost a grain past it (a request is kept, so request numbers stay);
 * reopens, crashes, checks and fault rules over it are dropped (they
 * submit nothing). */
void blkv_fuzz_fit_budget(struct blkv_program *p)
{
    struct fuzz_limits lim = limits_of(&p->cfg);
    uint64_t moved = 0;
    unsigned reopens = 0, checks = 0, rules = 0;
    size_t n = 0;

    if (p->cfg.size > blkv_fuzz_max_size(&p->cfg))
        p->cfg.size = blkv_fuzz_max_size(&p->cfg); /* requests past it fail, as they may */
    for (size_t i = 0; i < p->nops; i++) {
        struct blkv_pop op = p->ops[i];
        if (op_over(&op, &lim, &moved, &reopens, &checks, &rules)) {
            uint64_t left = blkv_budget_left(lim.budget, moved);
            if (!blkv_opcode_ranged(op.code))
                continue;
            if (blkv_budget_cost(op.code, 1, lim.grain, rules) > left)
                op.code = BLKV_P_READ, op.flags = 0;
            if (op.len > left)
                op.len = left;
            moved += blkv_budget_cost(op.code, op.len, lim.grain, rules);
        }
        p->ops[n++] = op;
    }
    p->nops = n;
}

/* ---- the trace text of a sanitizer finding -------------------------------
 * An oracle violation saves its reproducer itself; a sanitizer (ASan,
 * UBSan) stops the process in the middle of a run instead.  Every sanitizer
 * prints a summary line through __sanitizer_report_error_summary, a weak
 * hook of theirs that this strong definition replaces: it prints the line
 * as theirs does, then writes the trace text of the input running (with
 * its driver spec) beside the crash file libFuzzer is about to write,
 * crash-SHA1 (-artifact_prefix, default ./; -exact_artifact_path=P gives
 * P.trace), as crash-SHA1.trace.  Outside libFuzzer it goes to
 * $BLKV_REPRO_DIR (default .; "-": nowhere).  It costs nothing per input:
 * the text is made only when a sanitizer reports. */

/* The input running now. */
static struct {
    const struct blkv_program *prog;
    const struct blkv_driver *drv;
    const char *opts;
    const uint8_t *data;
    size_t size;
} fuzz_now;

/* Defined where libFuzzer is linked in. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))
    __attribute__((weak));
void __sanitizer_report_error_summary(const char *error_summary);

/* The value of libFuzzer flag -name=VALUE on our command line (the last
 * one), or NULL. */
static const char *libfuzzer_flag(const char *name)
{
    static char cmd[1 << 16];
    const char *found = NULL;
    size_t nlen = strlen(name), n = 0;
    ssize_t k;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    while (n < sizeof(cmd) - 1 && (k = read(fd, cmd + n, sizeof(cmd) - 1 - n)) > 0)
        n += (size_t)k;
    close(fd);
    cmd[n] = 0;
    for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
        if (cmd[i] == '-' && !strncmp(cmd + i + 1, name, nlen) && cmd[i + 1 + nlen] == '=')
            found = cmd + i + 2 + nlen;
    return found;
}

/* Where the trace text of the running input goes; false: nowhere. */
static bool sanitizer_trace_path(char *path, size_t len)
{
    uint8_t sum[20];
    char hex[41];
    const char *exact, *prefix, *dir;

    blkv_sha1(fuzz_now.data, fuzz_now.size, sum);
    for (unsigned i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", sum[i]);
    if (LLVMFuzzerRunDriver) {
        if ((exact = libfuzzer_flag("exact_artifact_path")))
            return (size_t)snprintf(path, len, "%s.trace", exact) < len;
        prefix = libfuzzer_flag("artifact_prefix");
        return (size_t)snprintf(path, len, "%scrash-%s.trace", prefix ? prefix : "./", hex) < len;
    }
    dir = getenv("BLKV_REPRO_DIR");
    if (dir && !strcmp(dir, "-"))
        return false;
    return (size_t)snprintf(path, len, "%s/crash-%s.trace", dir && *dir ? dir : ".", hex) < len;
}

/* Write the running input's trace text, with the summary as a comment. */
static void save_sanitizer_trace(const char *summary)
{
    struct blkv_program copy = *fuzz_now.prog;
    char path[4096], *spec = blkv_driver_spec_format(fuzz_now.drv, fuzz_now.opts), *text;
    FILE *f;

    copy.cfg.driver = spec;
    text = spec ? blkv_program_format(&copy) : NULL;
    if (!text) {
        fprintf(stderr, "blkv: out of memory for the trace text of this input\n");
    } else if (sanitizer_trace_path(path, sizeof(path))) {
        if ((f = fopen(path, "w")) &&
            fprintf(f, "# %s\n# replay: blkv run %s\n%s", summary, path, text) > 0 &&
            !fclose(f))
            fprintf(stderr, "blkv: trace text of this input: %s (replay: blkv run %s)\n", path,
                    path);
        else
            fprintf(stderr, "blkv: cannot write %s: %s\n", path, strerror(errno));
    }
    free(text);
    free(spec);
}

void __sanitizer_report_error_summary(const char *error_summary)
{
    fprintf(stderr, "%s\n", error_summary); /* what the sanitizers' own does */
    if (fuzz_now.prog) {
        save_sanitizer_trace(error_summary);
        fuzz_now.prog = NULL; /* once per input */
    }
}

/* Whether p has a crash or fault op. */
static bool has_server_ops(const struct blkv_program *p)
{
    for (size_t i = 0; i < p->nops; i++)
        if (p->ops[i].code == BLKV_P_CRASH || p->ops[i].code == BLKV_P_FAULT)
            return true;
    return false;
}

/* Both entries: opts, or opts_fn's for the program. */
static int fuzz_run(const struct blkv_driver *drv, const char *opts, blkv_fuzz_opts_fn opts_fn,
                    const uint8_t *data, size_t size)
{
    static struct blkv_program p; /* reused: its op array grows once */
    static char built[256];
    struct blkv_run_opts o = {0};
    struct blkv_run_result res;
    const char *dir = getenv("BLKV_REPRO_DIR");

    if (!p.ops)
        blkv_program_init(&p);
    if (blkv_program_decode(data, size, &p))
        return 0;
    if (!blkv_fuzz_in_budget(&p)) {
        if (getenv("BLKV_FUZZ_VERBOSE"))
            say_set_aside(&p);
        return -1;
    }
    if (opts_fn) {
        opts_fn(&p, built, sizeof(built));
        opts = built;
    }
    o.driver = drv;
    o.driver_opts = opts;
    o.abort_on_violation = true;
    /* "-": save nothing (AFL++ campaigns replay their crashes afterwards) */
    o.repro_dir = !dir || !*dir ? "." : strcmp(dir, "-") ? dir : NULL;
    o.input = data;
    o.input_len = size;
    /* BLKV_SHOW=1: a picture of the run beside each reproducer (blkv show's) */
    o.repro_picture = getenv("BLKV_SHOW") && !strcmp(getenv("BLKV_SHOW"), "1");
    /* power loss and fault rules need lower files, or a server the driver
     * can kill or have inject faults: out-of-process drivers without them
     * run without those ops, and what ran is saved, not the input */
    if (!drv->in_process && has_server_ops(&p) && blkv_driver_fit(drv, opts, &p))
        o.input = NULL;
    o.quiet = false;
    /* a setup error (say, a config the driver refuses) is not a finding */
    o.out = stderr;
    fuzz_now.prog = &p, fuzz_now.drv = drv, fuzz_now.opts = opts;
    fuzz_now.data = data, fuzz_now.size = size;
    if (blkv_run(&p, &o, &res) == BLKV_RUN_ERROR && getenv("BLKV_FUZZ_VERBOSE"))
        fprintf(stderr, "blkv: input not runnable: %s\n", res.message);
    fuzz_now.prog = NULL;
    blkv_run_result_free(&res);
    return 0;
}

int blkv_fuzz_one(const struct blkv_driver *drv, const char *opts, const uint8_t *data,
                  size_t size)
{
    return fuzz_run(drv, opts, NULL, data, size);
}

int blkv_fuzz_one_with(const struct blkv_driver *drv, blkv_fuzz_opts_fn opts_fn,
                       const uint8_t *data, size_t size)
{
    return fuzz_run(drv, NULL, opts_fn, data, size);
}
