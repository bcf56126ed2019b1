/*
 * registry.c - the one table of drivers.  A driver is listed here, not
 * registered by a constructor: static fuzz links drop objects nobody refers
 * to.  To add one: declare its struct below and put it in the table.
 */
#include <blkv/driver.h>

#include <string.h>

extern const struct blkv_driver blkv_driver_raw;
extern const struct blkv_driver blkv_driver_buggy;
#if BLKV_HAVE_NBD
extern const struct blkv_driver blkv_driver_nbd;
#endif
extern const struct blkv_driver blkv_driver_file;
extern const struct blkv_driver blkv_driver_qcow2;
#if BLKV_HAVE_LIBQCOW
extern const struct blkv_driver blkv_driver_libqcow;
#endif

const struct blkv_driver *const blkv_drivers[] = {
    &blkv_driver_raw,
    &blkv_driver_buggy,
    &blkv_driver_qcow2,
#if BLKV_HAVE_LIBQCOW
    &blkv_driver_libqcow,
#endif
#if BLKV_HAVE_NBD
    &blkv_driver_nbd,
#endif
    &blkv_driver_file,
    NULL,
};

const struct blkv_driver *blkv_driver_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; blkv_drivers[i]; i++)
        if (strcmp(blkv_drivers[i]->name, name) == 0)
            return blkv_drivers[i];
    return NULL;
}
