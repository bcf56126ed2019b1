/* libqcow-read IMAGE [PARENT] OFFSET LENGTH
 * Reads LENGTH bytes at OFFSET of a qcow image through libqcow (with PARENT
 * set as its parent file, if given) and writes them to stdout.
 *   cc -o libqcow-read libqcow-read.c -lqcow
 *   ./libqcow-read top.qcow2 base.qcow2 0 8192 | hexdump -C */
#include <stdio.h>
#include <stdlib.h>
#include <libqcow.h>

int main(int argc, char **argv)
{
    libqcow_file_t *file = NULL, *parent = NULL;
    libqcow_error_t *error = NULL;
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s IMAGE [PARENT] OFFSET LENGTH\n", argv[0]);
        return 2;
    }
    size_t length = strtoull(argv[argc - 1], NULL, 0);
    long long offset = strtoll(argv[argc - 2], NULL, 0);
    unsigned char *buf = malloc(length);
    fprintf(stderr, "libqcow %s\n", libqcow_get_version());
    if (buf == NULL || libqcow_file_initialize(&file, &error) != 1 ||
        libqcow_file_open(file, argv[1], LIBQCOW_OPEN_READ, &error) != 1)
        goto fail;
    if (argc == 5 &&
        (libqcow_file_initialize(&parent, &error) != 1 ||
         libqcow_file_open(parent, argv[2], LIBQCOW_OPEN_READ, &error) != 1 ||
         libqcow_file_set_parent_file(file, parent, &error) != 1))
        goto fail;
    if (libqcow_file_read_buffer_at_offset(file, buf, length, offset, &error) !=
        (ssize_t)length)
        goto fail;
    fwrite(buf, 1, length, stdout);
    return 0;
fail:
    libqcow_error_backtrace_fprint(error, stderr);
    return 1;
}
