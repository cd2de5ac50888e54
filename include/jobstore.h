/* Job folders on disk: one folder per job (mode 0700), holding the journal
 * (journal.ini, 0600) that is rewritten atomically after every step
 * transition, so a crash, kill -9 or pulled cable at any moment leaves
 * either the previous or the new state, and the next run knows where the
 * job stopped. A job folder is never reused or overwritten. */
#ifndef FLASHWISE_JOBSTORE_H
#define FLASHWISE_JOBSTORE_H

#include <stddef.h>

#include "error.h"
#include "job.h"
#include "steps.h"

#define JOBSTORE_JOURNAL "journal.ini"
#define JOBSTORE_PATH_MAX 1024

/* $XDG_STATE_HOME/flashwise/jobs, or ~/.local/state/flashwise/jobs. */
int jobstore_default_root(char *out, size_t outlen, struct fw_err *e);

/* Creates <root>/<job id> (root and parents 0700 as needed) and writes the
 * first journal. An existing folder of that name is FW_EIO: never reused. */
int jobstore_create(const char *root, const struct job *j, char *dir, size_t dirlen,
		    struct fw_err *e);

/* Writes the journal of j into dir, atomically. */
int jobstore_save(const char *dir, const struct job *j, struct fw_err *e);

/* Reads and checks dir's journal into j (initialised by the caller).
 * FW_EJOURNAL for a truncated or corrupt one, prefixed with its path. */
int jobstore_load(const char *dir, struct job *j, struct fw_err *e);

/* Applies one event and persists the result before returning: the caller
 * acts on the device only after FW_OK, so the journal is never behind the
 * device. On any failure j is left as it was. */
int jobstore_apply(const char *dir, struct job *j, const struct step_input *in,
		   struct fw_err *e);

#endif
