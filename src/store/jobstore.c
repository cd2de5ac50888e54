#include "jobstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic.h"
#include "strbuf.h"

/* A journal is a few KB; anything near this is not one of ours. */
#define JOURNAL_MAX (1024 * 1024)

int jobstore_default_root(char *out, size_t outlen, struct fw_err *e)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (xdg && xdg[0] == '/')
		snprintf(out, outlen, "%s/flashwise/jobs", xdg);
	else if (home && home[0] == '/')
		snprintf(out, outlen, "%s/.local/state/flashwise/jobs", home);
	else
		return fw_err_set(e, FW_EIO, "no place for job records: neither XDG_STATE_HOME "
				  "nor HOME is set (use --state-dir)");
	return FW_OK;
}

static void journal_path(char *out, size_t outlen, const char *dir)
{
	snprintf(out, outlen, "%s/%s", dir, JOBSTORE_JOURNAL);
}

int jobstore_save(const char *dir, const struct job *j, struct fw_err *e)
{
	struct strbuf text = STRBUF_INIT;
	char path[JOBSTORE_PATH_MAX + 32];
	int rc;

	rc = job_journal_format(j, &text, e);
	if (rc == FW_OK && strbuf_failed(&text))
		rc = fw_err_set(e, FW_ENOMEM, "out of memory formatting the journal");
	if (rc == FW_OK) {
		journal_path(path, sizeof path, dir);
		rc = atomic_write_file(path, text.s, text.len, 0600, e);
	}
	strbuf_free(&text);
	return rc;
}

int jobstore_create(const char *root, const struct job *j, char *dir, size_t dirlen,
		    struct fw_err *e)
{
	int rc;

	rc = atomic_make_dirs(root, e);
	if (rc != FW_OK)
		return rc;
	if ((size_t)snprintf(dir, dirlen, "%s/%s", root, j->id) >= dirlen)
		return fw_err_set(e, FW_EINVAL, "job folder path too long: %s/%s", root, j->id);
	/* mkdir, not make_dirs: an existing folder means another job's records. */
	if (mkdir(dir, 0700) != 0)
		return fw_err_set(e, FW_EIO, "cannot create job folder %s: %s%s", dir,
				  strerror(errno),
				  errno == EEXIST ? " (job records are never overwritten)" : "");
	return jobstore_save(dir, j, e);
}

int jobstore_load(const char *dir, struct job *j, struct fw_err *e)
{
	char path[JOBSTORE_PATH_MAX + 32];
	char *text = NULL;
	size_t len = 0;
	int rc;

	journal_path(path, sizeof path, dir);
	rc = atomic_read_file(path, JOURNAL_MAX, &text, &len, e);
	if (rc == FW_EIO) {
		/* Missing or unreadable: the job's record is gone, say it as such. */
		if (e)
			e->code = FW_EJOURNAL;
		return FW_EJOURNAL;
	}
	if (rc != FW_OK)
		return rc;
	rc = job_journal_parse(text, len, j, e);
	free(text);
	if (rc != FW_OK)
		fw_err_prefix(e, "%s", path);
	return rc;
}

int jobstore_apply(const char *dir, struct job *j, const struct step_input *in,
		   struct fw_err *e)
{
	struct job before;
	int rc;

	job_init(&before);
	rc = job_copy(&before, j, e);
	if (rc != FW_OK)
		return rc;
	rc = steps_apply(j, in, e);
	if (rc == FW_OK) {
		rc = jobstore_save(dir, j, e);
		if (rc != FW_OK) {
			/* Keep memory and disk in step: the event did not happen. */
			job_free(j);
			job_init(j);
			if (job_copy(j, &before, NULL) != FW_OK)
				rc = fw_err_set(e, FW_ENOMEM, "out of memory restoring the job "
						"after a failed journal write");
		}
	}
	job_free(&before);
	return rc;
}
