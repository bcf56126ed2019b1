/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * replay_main.c - main() for fuzz targets (libblkv-replay) built without a fuzzing
 * engine: replay every file named on the command line (directories: every
 * file in them) through LLVMFuzzerTestOneInput.  Any compiler will do.
 */
#include <blkv/fuzz.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_FILE_BYTES (16u << 20)

/* BLKV_REPLAY_TIMES=FILE: one line per input, "MICROSECONDS PATH", the
 * process CPU time the input took (what a busy machine does not inflate) */
static FILE *times;

/* A target's one-time setup, where it has one (as libFuzzer calls it). */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f) || n > MAX_FILE_BYTES) {
        fprintf(stderr, "%s: %s\n", path, ferror(f) ? "read error" : "larger than 16 MiB");
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "running %s (%zu bytes)\n", path, n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    int r = LLVMFuzzerTestOneInput(buf, n);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    if (times)
        fprintf(times, "%lld %s\n",
                (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000,
                path);
    if (r < 0)
        fprintf(stderr, "%s: set aside by the target, not run (over the data budget; "
                "'blkv run' replays it whole)\n", path);
    free(buf);
    return 0;
}

static int replay(const char *path)
{
    struct stat st;
    struct dirent **list;
    int n, ret = 0;

    if (stat(path, &st)) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    n = scandir(path, &list, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (list[i]->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", path, list[i]->d_name);
            if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) && replay_file(sub))
                ret = -1;
        }
        free(list[i]);
    }
    free(list);
    return ret;
}

int main(int argc, char **argv)
{
    int ret = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n"
                        "Replay fuzz inputs; a finding prints a report and aborts.\n"
                        "BLKV_REPLAY_TIMES=FILE: each input's CPU time there (us, path).\n",
                argv[0]);
        return 2;
    }
    const char *tp = getenv("BLKV_REPLAY_TIMES");
    if (tp && *tp && !(times = fopen(tp, "w"))) {
        fprintf(stderr, "BLKV_REPLAY_TIMES=%s: %s\n", tp, strerror(errno));
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        if (replay(argv[i]))
            ret = 2;
    if (times && fclose(times)) {
        fprintf(stderr, "BLKV_REPLAY_TIMES=%s: %s\n", tp, strerror(errno));
        ret = 2;
    }
    return ret;
}
