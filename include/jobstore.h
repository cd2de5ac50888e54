/* Job folders on disk: one folder per job (mode 0700), holding the journal
 * (journal.ini, 0600) that is rewritten atomically after every step
 * transition, so a crash, kill -9 or pulled cable at any moment leaves
 * either the previous or the new state, and the next run knows where the
 * job stopped. A job folder is never reused or overwritten. */
#ifndef FLASHWISE_JOBSTORE_H
#define FLASHWISE_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "job.h"
#include "steps.h"

#define JOBSTORE_JOURNAL "journal.ini"
#define JOBSTORE_REPORT_MD "report.md"     /* report.h, made from the journal */
#define JOBSTORE_REPORT_JSON "report.json"
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

/* Writes report.md and report.json (report.h) into the job folder dir,
 * each atomically with mode 0600. Reports are derived from the journal, so
 * unlike the journal's folder they may be rewritten. */
int jobstore_write_reports(const char *dir, const struct job *j, struct fw_err *e);

/* One job folder found by jobstore_list(). */
struct jobstore_entry {
	char dir[JOBSTORE_PATH_MAX];  /* <root>/<id> */
	char id[JOB_ID_MAX];          /* the folder's name */
	bool ok;                      /* job holds its journal */
	struct job job;               /* empty unless ok */
	char error[FW_ERR_MSG_MAX];   /* why not ok */
};

/* Every folder of root that holds a journal, newest first (created, then
 * id); entries that could not be read come last, with ok false and the
 * reason (never silently dropped): a corrupt journal, a journal for another
 * id than its folder, a symbolic link where a folder should be (never
 * followed). Hidden names and plain files are not jobs and are left out. A
 * missing root is an empty list; a root that is a symbolic link or not a
 * folder is FW_EIO. Free with jobstore_list_free(). */
int jobstore_list(const char *root, struct jobstore_entry **out, size_t *n,
		  struct fw_err *e);
void jobstore_list_free(struct jobstore_entry *v, size_t n);

/* The folder of job id under root, into dir. FW_EINVAL for an id that
 * cannot be a job folder's name ('/', a leading '.', other characters);
 * FW_EIO "no job <id> in <root>" when absent (or a symbolic link, never
 * followed); FW_EJOURNAL when the folder has no journal. */
int jobstore_find(const char *root, const char *id, char *dir, size_t dirlen,
		  struct fw_err *e);

#endif
