/* The process exit codes: one table, used by main(), --help and the man
 * page test, so the three cannot drift apart. */
#ifndef FLASHWISE_EXITCODE_H
#define FLASHWISE_EXITCODE_H

#include <stddef.h>

enum fw_exit {
	FW_EXIT_OK = 0,
	FW_EXIT_FAILED = 1,
	FW_EXIT_USAGE = 2,
	FW_EXIT_PROFILE = 3,
	FW_EXIT_IMAGE = 4,
	FW_EXIT_INTEGRITY = 5,
	FW_EXIT_PORT = 6,
	FW_EXIT_DEVICE = 7,
	FW_EXIT_DECLINED = 8,
	FW_EXIT_JOURNAL = 9,
	FW_EXIT_UNSAFE = 10,
	FW_EXIT_INTERNAL = 11,
	FW_EXIT_INTERRUPTED = 12,
};

struct exitcode_info {
	int code;
	const char *name;
	const char *meaning;
};

/* The whole table, in code order; *n receives its length. */
const struct exitcode_info *exitcode_table(size_t *n);
/* The exit code for an enum fw_rc value. FW_EUNSAFE and FW_EVERIFY map to
 * FW_EXIT_UNSAFE: a write happened and what is on the device is not proven. */
int exitcode_from_rc(int rc);

#endif
