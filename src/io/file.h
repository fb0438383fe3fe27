/* file.h - opening and reading files named by untrusted paths without ever blocking.
 *
 * open(2) on a FIFO blocks until a writer appears, and a read from a character device may never
 * end: a checkpoint directory holding `mkfifo model.safetensors` would hang the loader forever.
 * These helpers open with O_NONBLOCK, check with fstat() that the path is a regular file (after
 * the open, so the check and the read see the same file), and name the file in every error.
 */
#ifndef PI0_FILE_H
#define PI0_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "pi0.h"

/* Open `path` read-only; fails with PI0_ERR_IO (no such file, permission) or PI0_ERR_FORMAT (not a
 * regular file: FIFO, directory, device, socket). On success *fd is a blocking descriptor and
 * *size the file size. `what` words the error ("checkpoint", "config"...; may be NULL). */
pi0_status pi0_file_open(const char *path, const char *what, int *fd, uint64_t *size);

/* Read a whole regular file of at most max_bytes into a malloc'd, NUL-terminated buffer (*len
 * excludes the NUL). Larger files fail with PI0_ERR_FORMAT naming the size and the limit. */
pi0_status pi0_file_read(const char *path, const char *what, size_t max_bytes, char **buf, size_t *len);

#endif
