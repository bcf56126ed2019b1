/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * trace_fuzzer: the trace-text parser.  Any text either is refused with an
 * error ("NAME:LINE: ...") or parses, and then round-trips: formatting it
 * and parsing that gives the same program, and formatting again gives the
 * same text.  A difference aborts.
 */
#include <blkv/program.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether two programs are the same: config and ops. */
static int trace_same(const struct blkv_program *a, const struct blkv_program *b)
{
    const struct blkv_config *x = &a->cfg, *y = &b->cfg;
#define STR_EQ(s, t) ((!(s) && !(t)) || ((s) && (t) && !strcmp((s), (t))))
    return x->size == y->size && x->grain == y->grain && x->qd == y->qd &&
           x->atomic == y->atomic && x->sched == y->sched && x->seed == y->seed &&
           x->init == y->init && x->serialize == y->serialize && STR_EQ(x->driver, y->driver) &&
           STR_EQ(x->init_image, y->init_image) && STR_EQ(x->lower_image, y->lower_image) &&
           a->nops == b->nops && (!a->nops || !memcmp(a->ops, b->ops, a->nops * sizeof(*a->ops)));
#undef STR_EQ
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct blkv_program p, q;
    char err[512], *t1, *t2;

    if (size > (1u << 20)) /* the parser's memory is bounded by its input */
        return -1;
    blkv_program_init(&p);
    blkv_program_init(&q);
    if (blkv_program_parse((const char *)data, size, "fuzz", &p, err, sizeof(err))) {
        if (strncmp(err, "fuzz:", 5) || strchr(err, '\n')) {
            fprintf(stderr, "trace_fuzzer: malformed error: %s\n", err);
            abort();
        }
        blkv_program_free(&p);
        return 0;
    }
    t1 = blkv_program_format(&p);
    if (!t1)
        abort();
    if (blkv_program_parse(t1, strlen(t1), "formatted", &q, err, sizeof(err))) {
        fprintf(stderr, "trace_fuzzer: the formatted program does not parse: %s\n", err);
        abort();
    }
    if (!trace_same(&p, &q)) {
        fprintf(stderr, "trace_fuzzer: print then parse gives another program\n");
        abort();
    }
    t2 = blkv_program_format(&q);
    if (!t2 || strcmp(t1, t2)) {
        fprintf(stderr, "trace_fuzzer: printing again gives other text\n");
        abort();
    }
    free(t1);
    free(t2);
    blkv_program_free(&p);
    blkv_program_free(&q);
    return 0;
}
