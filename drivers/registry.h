/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * registry.h - the built-in drivers, and driver specs by name.
 *
 * A spec is "NAME opt=val opt=val" (or with commas).  NAME is a built-in
 * driver, a driver loaded from a plugin earlier, or the path of a plugin
 * (it contains a '/' or ends in ".so"), which is then loaded.  The core
 * never looks drivers up; this is for its clients: the blkv tool, the
 * in-tree fuzz targets, tests and benchmarks.
 */
#ifndef BLKV_DRIVERS_REGISTRY_H
#define BLKV_DRIVERS_REGISTRY_H

#include <blkv/driver.h>
#include <blkv/program.h>
#include <blkv/run.h>

#include <stdbool.h>
#include <stddef.h>

/* The built-in drivers (nbd and libqcow only where their libraries are). */
extern const struct blkv_driver blkv_driver_raw;
extern const struct blkv_driver blkv_driver_buggy;
extern const struct blkv_driver blkv_driver_qcow2;
extern const struct blkv_driver blkv_driver_libqcow;
extern const struct blkv_driver blkv_driver_nbd;
extern const struct blkv_driver blkv_driver_file;

/* qcow2's options, for drivers that take the same (libqcow). */
extern const struct blkv_option blkv_qcow2_options[];

/*
 * qcow2 image options drawn from program p, as the fuzz targets draw them
 * from their input: the cluster size is the config's grain, and bits of
 * its seed choose the version (2 unless allow_v3), refcount width, lazy
 * refcounts, cache sizes and the backing file, backing[(seed >> 5) & 3].
 * One seed in 8 (with allow_v3, clusters of 8K or less, and a device its
 * L1 table covers) instead draws an image that grows early: version 3,
 * 64-bit refcounts and an l1-size that ends the new image's metadata 0 to
 * 15 clusters before its refcount table (512-byte clusters) or its first
 * refcount block (1K to 8K) runs out.
 * Writes "version=... cluster-size=... ..." into buf.
 */
void blkv_qcow2_opts_draw(const struct blkv_program *p, bool allow_v3,
                          const char *const backing[4], char *buf, size_t len);
/* For `blkv prop`: how driver d's fuzz target draws its options from the
 * input (qcow2: every option above; libqcow: as libqcow_fuzzer does by
 * default, version 2 without a backing file), or NULL for a driver whose
 * options are fixed. */
void (*blkv_registry_vary(const struct blkv_driver *d))(const struct blkv_program *p, char *buf,
                                                        size_t len);

/* All of them, NULL-terminated. */
extern const struct blkv_driver *const blkv_builtin_drivers[];

/* A built-in driver or a loaded plugin's, by name; NULL if none. */
const struct blkv_driver *blkv_registry_find(const char *name);
/* Load a plugin (blkv_plugin_load) and make its driver known by name; a
 * name that is taken already is refused.  Returns the driver, or NULL
 * with a message in err. */
const struct blkv_driver *blkv_registry_load(const char *path, char *err, size_t errlen);
/* The drivers of the plugins loaded so far, in load order: the i-th, or NULL. */
const struct blkv_driver *blkv_registry_plugin(size_t i);

/* Resolve a spec: *drv, and *opts pointing into spec past NAME.  0, or
 * -EINVAL with a message in err (unknown driver, a plugin that does not
 * load, bad options). */
int blkv_registry_resolve(const char *spec, const struct blkv_driver **drv, const char **opts,
                          char *err, size_t errlen);

/* Run p against spec; NULL: the program's own driver line, else raw.  o's
 * driver fields are filled in; a spec that does not resolve is a setup
 * error (BLKV_RUN_ERROR with the message in res, printed unless quiet). */
int blkv_run_spec(const struct blkv_program *p, const char *spec, struct blkv_run_opts *o,
                  struct blkv_run_result *res);

#endif
