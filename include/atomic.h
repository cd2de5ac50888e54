/* Files that are either the old version or the new one, never half of
 * each: a job journal or a backup must survive a crash or a pulled plug at
 * any moment. A write goes to a temporary file in the same folder, is
 * flushed to the disk, renamed over the target and the folder flushed.
 *
 * flashwise's files live in folders it owns: a symbolic link where a file
 * or the job folder should be is refused (someone may be trying to make us
 * write elsewhere), never followed. */
#ifndef FLASHWISE_ATOMIC_H
#define FLASHWISE_ATOMIC_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Writes len bytes to path atomically, with the given mode (0600 for
 * everything flashwise keeps: fchmod, so the umask does not widen it). The
 * folder must exist. A symbolic link or anything but a regular file at path
 * is refused. FW_EIO with the path and the reason. */
int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode,
		      struct fw_err *e);

/* Reads a whole regular file of at most maxlen bytes into a new buffer
 * (NUL-terminated for convenience, *len excludes it; free() it). A symbolic
 * link is refused; a file larger than maxlen is FW_EIO saying so. */
int atomic_read_file(const char *path, size_t maxlen, char **buf, size_t *len,
		     struct fw_err *e);

/* Creates the folder path and any missing parents with mode 0700. An
 * existing folder is fine; the last component being a symbolic link, or any
 * component being something other than a folder, is refused. */
int atomic_make_dirs(const char *path, struct fw_err *e);

#endif
