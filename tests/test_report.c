/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_report.c - what a report says (DESIGN.md, "The report"), on a driver
 * of the test's own ("rp": raw over the lower file, with bugs chosen by
 * option) whose every finding is known in advance:
 *
 *  1. A word mostly of one write's bytes is classed by its majority: data
 *     read a few bytes off its place is misdirected, older data with a few
 *     bytes changed is stale, the right data with bytes changed is garbage
 *     said to be mostly that write's.
 *  2. The history lists the requests to the same cluster as the bad bytes,
 *     marked [same cluster], by the driver's grain (or 64 KiB without one).
 *  3. An image-check failure lists the requests that touched the guest bytes
 *     the check names, or the last ops when it names none, and saves the
 *     reproducer like any report.
 *  4. Correct runs stay silent: random programs on rp without bugs pass.
 *  5. blkv_prop with `vary` draws driver options per program (the given
 *     ones stay fixed) and names the failing program's; a finding that does
 *     not fail again on the final rerun is reported and saved with a note.
 */
#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/prop.h>
#include <blkv/run.h>
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rp_state {
    struct blkv_ctx *ctx;
    struct blkv_lower *f;
    uint64_t shift, lose, flip, grain;
    const char *check;
};

static const struct blkv_option rp_options[] = {
    {"shift", "0", "writes land this many bytes after their offset"},
    {"lose", NULL, "writes at this offset report success and write nothing"},
    {"flip", NULL, "reads change the bytes at this device offset and the next"},
    {"grain", "0", "the grain declared in the capabilities"},
    {"check", "ok", "what the check finds: ok, named (corruption at guest 8192..12288) "
                    "or unnamed (corruption, no guest bytes named)"},
    {NULL, NULL, NULL},
};

static int rp_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                   struct blkv_caps *caps)
{
    struct rp_state *s = state;
    int ret;

    s->ctx = ctx;
    s->f = blkv_lower_get(ctx, 0);
    s->lose = s->flip = UINT64_MAX;
    if ((ret = blkv_opt_u64(ctx, "shift", &s->shift)) < 0 ||
        (ret = blkv_opt_u64(ctx, "grain", &s->grain)) < 0 ||
        (blkv_opt(ctx, "lose") && (ret = blkv_opt_u64(ctx, "lose", &s->lose)) < 0) ||
        (blkv_opt(ctx, "flip") && (ret = blkv_opt_u64(ctx, "flip", &s->flip)) < 0))
        return ret;
    s->check = blkv_opt(ctx, "check");
    if (create && (ret = blkv_lower_truncate(s->f, size + s->shift)) < 0)
        return ret;
    caps->size = size;
    caps->fua = true;
    caps->grain = (uint32_t)s->grain;
    return 0;
}

static int rp_co_submit(void *state, struct blkv_req *req)
{
    struct rp_state *s = state;
    uint8_t *b = req->buf;
    int ret;

    switch (req->op) {
    case BLKV_OP_READ:
        if ((ret = blkv_lower_pread(s->f, req->buf, req->len, req->offset)) < 0)
            return ret;
        for (uint64_t x = s->flip; s->flip != UINT64_MAX && x < s->flip + 2 &&
                                   req->id != BLKV_REQ_ID_SETUP; x++)
            if (x >= req->offset && x < req->offset + req->len)
                b[x - req->offset] ^= 0x5a;
        return 0;
    case BLKV_OP_WRITE:
        if (req->id == BLKV_REQ_ID_SETUP) /* the initial content, as it is */
            return blkv_lower_pwrite(s->f, req->buf, req->len, req->offset);
        if (req->offset == s->lose)
            return 0;
        ret = blkv_lower_pwrite(s->f, req->buf, req->len, req->offset + s->shift);
        return ret || !(req->flags & BLKV_REQ_FUA) ? ret : blkv_lower_flush(s->f);
    case BLKV_OP_FLUSH:
        return blkv_lower_flush(s->f);
    default:
        return 0;
    }
}

static int rp_check(void *state)
{
    struct rp_state *s = state;

    if (!strcmp(s->check, "ok"))
        return 0;
    if (!strcmp(s->check, "named"))
        blkv_check_range(s->ctx, 8192, 4096);
    blkv_error(s->ctx, "rp: the mapping of guest cluster 2 is corrupt");
    return -EUCLEAN;
}

static const struct blkv_driver rp_driver = {
    BLKV_DRIVER_HEADER,
    .name = "rp",
    .description = "raw with bugs chosen by option, for report tests",
    .options = rp_options,
    .state_size = sizeof(struct rp_state),
    .in_process = true,
    .open = rp_open,
    .co_submit = rp_co_submit,
    .check = rp_check,
};

static char save_dir[] = "/tmp/blkv-test-report-XXXXXX";

/* Run trace text on rp with opts, saving reproducers in save_dir; the
 * report (or "") in *report, to be freed with res. */
static int run_text(const char *opts, const char *text, struct blkv_run_result *res)
{
    struct blkv_program p;
    struct blkv_run_opts o = {.driver = &rp_driver, .driver_opts = opts, .quiet = true,
                              .repro_dir = save_dir};
    char err[512];
    int st;

    blkv_program_init(&p);
    if (blkv_program_parse(text, strlen(text), "test", &p, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    st = blkv_run(&p, &o, res);
    blkv_program_free(&p);
    return st;
}

/* Run and expect a violation with signature sig whose report holds each of
 * the NULL-terminated strings `has` and none of `hasnt`. */
static void expect(const char *what, const char *opts, const char *text, const char *sig,
                   const char *const *has, const char *const *hasnt)
{
    struct blkv_run_result res;
    int st = run_text(opts, text, &res);
    const char *rep = res.report ? res.report : "";
    bool ok = st == BLKV_RUN_VIOLATION && !strcmp(res.signature, sig);

    for (size_t i = 0; has && has[i]; i++)
        if (!strstr(rep, has[i])) {
            fprintf(stderr, "%s: the report lacks '%s'\n", what, has[i]);
            ok = false;
        }
    for (size_t i = 0; hasnt && hasnt[i]; i++)
        if (strstr(rep, hasnt[i])) {
            fprintf(stderr, "%s: the report has '%s'\n", what, hasnt[i]);
            ok = false;
        }
    if (!ok) {
        fprintf(stderr, "FAIL %s: status %d, signature '%s' (wanted '%s'): %s\n%s\n", what, st,
                res.signature, sig, res.message, rep);
        t_failures++;
    } else {
        printf("ok   %s: %s\n", what, res.signature);
    }
    blkv_run_result_free(&res);
}

/* ---- 1. classes by majority -------------------------------------------------- */

static void test_majority(void)
{
    /* read from 4104: the first bad word holds bytes of write #0's words for
     * 4096 and 4104, three bytes off: the window at 4099 is its word */
    expect("misdirected by 3 bytes", "shift=3",
           "size 1M\ninit zero\nwrite 4096 4096\ndrain\nread 4104 1024\n",
           "contents/read/misdirected",
           (const char *const[]){"written for offset 4101, found at offset 4104 (+3 bytes)",
                                 "off the 8-byte grid", NULL},
           (const char *const[]){"garbage", NULL});
    /* the same from the write's start: zeros are found first, and the read
     * also holds the write's data 3 bytes off */
    expect("misdirected by 3 bytes, from the start", "shift=3",
           "size 1M\ninit zero\nwrite 4096 4096\ndrain\nread 4096 1024\n",
           "contents/read/misdirected",
           (const char *const[]){"written for offset 4096 at offset 4099", NULL}, NULL);
    /* a lost write over the initial pattern, read with two bytes changed,
     * the first of them the first bad byte: stale, by 6 of 8 bytes */
    expect("stale with two bytes changed", "lose=8192 flip=8192",
           "size 1M\ninit pattern\nwrite 8192 4096\ndrain\nread 8192 4096\n",
           "contents/read/stale",
           (const char *const[]){"found: mostly data of initial content",
                                 "6 of the 8 bytes at 8192", NULL},
           (const char *const[]){"garbage", NULL});
    /* the right data with two bytes changed: garbage, said to be #0's */
    expect("right data with two bytes changed", "flip=8196",
           "size 1M\ninit pattern\nwrite 8192 4096\ndrain\nread 8192 4096\n",
           "contents/read/garbage",
           (const char *const[]){"found: mostly data of #0 (op 0: write 8192 4096)",
                                 "garbage: bytes of the expected data changed in place",
                                 "first unexplained run: 2 byte(s) from offset 8196", NULL},
           NULL);
}

/* ---- 2. the same cluster ----------------------------------------------------- */

static void test_same_cluster(void)
{
    static const char prog[] = "size 4M\ninit pattern\n"
                               "write 0 512\n"      /* #0: lost */
                               "write 8192 4096\n"  /* #1: same 64K cluster */
                               "write 1M 4096\n"    /* #2: far away */
                               "drain\nread 0 512\n";

    expect("same cluster, 64 KiB without a grain", "lose=0", prog, "contents/read/stale",
           (const char *const[]){"the rest of 0..65536 (65536-byte units: the driver declares "
                                 "no cluster size)",
                                 "#0 (op 0: write 0 512) t=", "#1 (op 1: write 8192 4096) ",
                                 ", ok [same cluster]", NULL},
           (const char *const[]){"write 1048576 4096", NULL});
    expect("same cluster, the driver's 4 KiB grain", "lose=0 grain=4096", prog,
           "contents/read/stale",
           (const char *const[]){"the rest of 0..4096 (4096-byte clusters, the driver's)",
                                 "#0 (op 0: write 0 512) t=", NULL},
           (const char *const[]){"write 8192 4096", "write 1048576 4096", NULL});
    expect("same cluster, the driver's 1 MiB grain", "lose=0 grain=1M", prog,
           "contents/read/stale",
           (const char *const[]){"#1 (op 1: write 8192 4096) ", NULL},
           (const char *const[]){"write 1048576 4096", NULL});
}

/* ---- 3. image-check failures ------------------------------------------------- */

/* Whether the report names a reproducer that exists and parses as a program. */
static bool repro_ok(const struct blkv_run_result *res)
{
    struct blkv_program p;
    char err[512], *text;
    FILE *f = fopen(res->repro_text, "r");
    size_t n;
    bool ok;

    if (!f)
        return false;
    text = calloc(1, 1 << 20);
    n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    blkv_program_init(&p);
    ok = n && !blkv_program_parse(text, n, res->repro_text, &p, err, sizeof(err)) &&
         strstr(text, "# blkverify: image check failed") && access(res->repro_bin, R_OK) == 0;
    blkv_program_free(&p);
    free(text);
    return ok;
}

static void test_check(void)
{
    static const char prog[] = "size 4M\ninit zero\n"
                               "write 8192 4096\n"   /* #0: the named bytes */
                               "write 0 4096\n"      /* #1: same cluster */
                               "write 2M 4096\n"     /* #2: far away */
                               "read 0 4096\n"       /* #3 */
                               "check\n";
    struct blkv_run_result res;

    expect("check names guest bytes", "check=named", prog, "check",
           (const char *const[]){"blkverify: image check failed: rp: the mapping of guest "
                                 "cluster 2 is corrupt",
                                 "  at op 4: check",
                                 "the check names guest bytes 8192..12288",
                                 "#0 (op 0: write 8192 4096) t=",
                                 "#1 (op 1: write 0 4096) t=", "ok [same cluster]",
                                 "reproducer: ", "replay: blkv run ", NULL},
           (const char *const[]){"write 2097152 4096", NULL});
    expect("check names nothing", "check=unnamed", prog, "check",
           (const char *const[]){"the check names no guest bytes; the last 5 op(s):",
                                 "    op 0: write 8192 4096: #0 t=",
                                 "    op 2: write 2097152 4096: #2 t=",
                                 "    op 4: check\n", "reproducer: ", NULL},
           NULL);
    /* more ops than are listed */
    {
        char big[8192];
        int n = snprintf(big, sizeof(big), "size 4M\ninit zero\n");
        for (int i = 0; i < 30; i++)
            n += snprintf(big + n, sizeof(big) - (size_t)n, "write %d 512\n", i * 512);
        snprintf(big + n, sizeof(big) - (size_t)n, "check\n");
        expect("check names nothing, long program", "check=unnamed", big, "check",
               (const char *const[]){"the last 16 op(s):", "(15 earlier ones not shown)",
                                     "    op 15: write 7680 512: #15", NULL},
               (const char *const[]){"op 14: ", NULL});
    }
    if (run_text("check=named", prog, &res) == BLKV_RUN_VIOLATION) {
        CHECK(repro_ok(&res));
    } else {
        CHECK(!"a check failure");
    }
    blkv_run_result_free(&res);
    /* a check that passes: no report */
    CHECK(run_text("check=ok", prog, &res) == BLKV_RUN_OK);
    blkv_run_result_free(&res);
}

/* ---- 4. correct runs --------------------------------------------------------- */

static void test_quiet(void)
{
    unsigned bad = 0;

    for (uint64_t i = 0; i < 300; i++) {
        struct blkv_program p;
        struct blkv_run_opts o = {.driver = &rp_driver, .driver_opts = "grain=4096",
                                  .quiet = true};
        struct blkv_run_result res;

        blkv_program_init(&p);
        if (blkv_program_random(7, i, 48, &p)) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        if (blkv_run(&p, &o, &res) == BLKV_RUN_VIOLATION) {
            fprintf(stderr, "program %" PRIu64 ": %s\n", i, res.report);
            bad++;
        }
        blkv_run_result_free(&res);
        blkv_program_free(&p);
    }
    CHECK(bad == 0);
    printf("ok   300 random programs on rp without bugs: no report\n");
}

/* ---- 5. the property runner ------------------------------------------------- */

/* "pv": raw whose reads come back inverted with bad=on, and, with
 * once=on, only in the first run of the process (a finding that does not
 * come back). */
static int pv_runs;

struct pv_state {
    struct blkv_lower *f;
    bool bad;
};

static const struct blkv_option pv_options[] = {
    {"bad", "off", "on: reads return inverted data"},
    {"once", "off", "on: only in the first run of the process"},
    {"other", "x", "an option nothing varies"},
    {NULL, NULL, NULL},
};

static int pv_open(void *state, struct blkv_ctx *ctx, uint64_t size, bool create,
                   struct blkv_caps *caps)
{
    struct pv_state *s = state;
    int ret;

    s->f = blkv_lower_get(ctx, 0);
    s->bad = !strcmp(blkv_opt(ctx, "bad"), "on") &&
             (strcmp(blkv_opt(ctx, "once"), "on") || pv_runs++ == 0);
    if (create && (ret = blkv_lower_truncate(s->f, size)) < 0)
        return ret;
    caps->size = size;
    return 0;
}

static int pv_co_submit(void *state, struct blkv_req *req)
{
    struct pv_state *s = state;
    uint8_t *b = req->buf;
    int ret;

    switch (req->op) {
    case BLKV_OP_READ:
        ret = blkv_lower_pread(s->f, req->buf, req->len, req->offset);
        for (uint64_t i = 0; !ret && s->bad && req->id != BLKV_REQ_ID_SETUP && i < req->len; i++)
            b[i] ^= 0xff;
        return ret;
    case BLKV_OP_WRITE:
        return blkv_lower_pwrite(s->f, req->buf, req->len, req->offset);
    default:
        return 0;
    }
}

static const struct blkv_driver pv_driver = {
    BLKV_DRIVER_HEADER,
    .name = "pv",
    .description = "raw whose reads may come back inverted",
    .options = pv_options,
    .state_size = sizeof(struct pv_state),
    .in_process = true,
    .open = pv_open,
    .co_submit = pv_co_submit,
};

/* Draws bad=on for programs with an odd seed, and other=drawn. */
static void pv_vary(const struct blkv_program *p, char *buf, size_t len)
{
    snprintf(buf, len, "bad=%s other=drawn", p->cfg.seed & 1 ? "on" : "off");
}

/* blkv_prop's output and status with driver_opts and vary. */
static int prop_out(const char *opts, void (*vary)(const struct blkv_program *, char *, size_t),
                    char **text)
{
    size_t len;
    FILE *f = open_memstream(text, &len);
    struct blkv_prop_opts o = {.driver = &pv_driver, .driver_opts = opts, .runs = 40,
                               .ops = 32, .save_dir = save_dir, .out = f, .shrink_runs = 200,
                               .vary = vary};
    int ret;

    if (!f) {
        perror("open_memstream");
        exit(1);
    }
    ret = blkv_prop(&o);
    fclose(f);
    return ret;
}

static void test_prop(void)
{
    char *out, path[4200];
    const char *at;
    int ret;

    /* drawn per program: an odd seed's program fails, and says its options */
    ret = prop_out("", pv_vary, &out);
    CHECK(ret == 1 && strstr(out, "prop: driver 'pv' and image options drawn per program"));
    CHECK(strstr(out, "prop: its driver: 'pv bad=on other=drawn'"));
    CHECK(strstr(out, "driver: pv bad=on other=drawn; seed"));
    if (ret != 1)
        fprintf(stderr, "%s", out);
    free(out);
    /* what is given stays fixed; the rest is drawn */
    ret = prop_out("bad=off", pv_vary, &out);
    CHECK(ret == 0 && strstr(out, "no failure after 40 programs"));
    free(out);
    ret = prop_out("other=given", pv_vary, &out);
    CHECK(ret == 1 && strstr(out, "prop: its driver: 'pv other=given bad=on'"));
    free(out);
    /* fixed: the same options for every program */
    ret = prop_out("", NULL, &out);
    CHECK(ret == 0 && strstr(out, "prop: driver 'pv', seed 0"));
    free(out);
    /* a finding that does not come back: reported and saved all the same */
    pv_runs = 0;
    ret = prop_out("bad=on once=on", NULL, &out);
    CHECK(ret == 1);
    CHECK(strstr(out, "prop: the shrunk program did not fail again when rerun (it ran clean)"));
    CHECK(strstr(out, "contents mismatch"));
    at = strstr(out, "reproducer: ");
    CHECK(at && sscanf(at, "reproducer: %4095s", path) == 1);
    if (at && sscanf(at, "reproducer: %4095s", path) == 1) {
        FILE *f = fopen(path, "r");
        char line[512] = "";
        CHECK(f && fgets(line, sizeof(line), f) && strstr(line, "# blkverify: read"));
        CHECK(f && fgets(line, sizeof(line), f) && strstr(line, "did not fail again"));
        if (f)
            fclose(f);
        memcpy(strrchr(path, '.'), ".report", 8);
        CHECK(access(path, R_OK) == 0);
        memcpy(strrchr(path, '.'), ".bin", 5);
        CHECK(access(path, R_OK) == 0);
    }
    if (ret != 1 || !at)
        fprintf(stderr, "%s", out);
    free(out);
    printf("ok   prop: options drawn per program, given ones fixed; an unreproduced finding "
           "saved\n");
}

int main(void)
{
    char cmd[64];

    if (!mkdtemp(save_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_majority();
    test_same_cluster();
    test_check();
    test_quiet();
    test_prop();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", save_dir);
    if (system(cmd)) {
        /* a leftover temp directory is no failure */
    }
    return t_failures ? 1 : 0;
}
