#include "jobstore.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic.h"
#include "report.h"
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

/* ---- reports ------------------------------------------------------------ */

static int write_report(const char *dir, const char *name, const struct strbuf *text,
			struct fw_err *e)
{
	char path[JOBSTORE_PATH_MAX + 32];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return fw_err_set(e, FW_EINVAL, "job folder path too long: %s", dir);
	return atomic_write_file(path, text->s, text->len, 0600, e);
}

int jobstore_write_reports(const char *dir, const struct job *j, struct fw_err *e)
{
	struct strbuf md = STRBUF_INIT, json = STRBUF_INIT;
	int rc;

	rc = report_markdown(j, dir, &md, e);
	if (rc == FW_OK)
		rc = report_json(j, dir, &json, e);
	if (rc == FW_OK)
		rc = write_report(dir, JOBSTORE_REPORT_MD, &md, e);
	if (rc == FW_OK)
		rc = write_report(dir, JOBSTORE_REPORT_JSON, &json, e);
	strbuf_free(&md);
	strbuf_free(&json);
	return rc;
}

/* ---- listing and finding ------------------------------------------------ */

/* A job id as job_start() accepts it: it names a folder, so no separators
 * and no hidden names. */
static bool id_usable(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= JOB_ID_MAX || id[0] == '.')
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789._-") == n;
}

/* The root must be a real folder: jobstore_create() refuses a symbolic
 * link there, so one is not a place flashwise keeps jobs. *missing is set
 * when it does not exist (not an error for a listing). */
static int check_root(const char *root, bool *missing, struct fw_err *e)
{
	struct stat st;

	*missing = false;
	if (!root || !*root)
		return fw_err_set(e, FW_EINVAL, "no folder of job records given");
	if (lstat(root, &st) != 0) {
		if (errno == ENOENT) {
			*missing = true;
			return FW_OK;
		}
		return fw_err_set(e, FW_EIO, "cannot read the job records in %s: %s", root,
				  strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return fw_err_set(e, FW_EIO, "refusing to read the job records in %s: it is a "
				  "symbolic link", root);
	if (!S_ISDIR(st.st_mode))
		return fw_err_set(e, FW_EIO, "cannot read the job records in %s: it is not a "
				  "folder", root);
	return FW_OK;
}

/* Fills one entry for folder name of root; false when it is not a job
 * folder at all (a plain file, no journal, vanished meanwhile). */
static bool list_one(const char *root, const char *name, struct jobstore_entry *en)
{
	char journal[JOBSTORE_PATH_MAX + 32];
	struct fw_err err = {0};
	struct stat st;

	memset(en, 0, sizeof *en);
	job_init(&en->job);
	snprintf(en->id, sizeof en->id, "%s", name);
	if ((size_t)snprintf(en->dir, sizeof en->dir, "%s/%s", root, name) >= sizeof en->dir) {
		snprintf(en->error, sizeof en->error, "%s/%s: the path is too long", root, name);
		return true;
	}
	if (lstat(en->dir, &st) != 0) {
		if (errno == ENOENT)
			return false; /* removed while we listed */
		snprintf(en->error, sizeof en->error, "%s: %s", en->dir, strerror(errno));
		return true;
	}
	if (S_ISLNK(st.st_mode)) {
		/* Someone may be pointing us at another place: say so, never follow. */
		snprintf(en->error, sizeof en->error,
			 "%s is a symbolic link, not a job folder: not followed", en->dir);
		return true;
	}
	if (!S_ISDIR(st.st_mode))
		return false;
	journal_path(journal, sizeof journal, en->dir);
	if (lstat(journal, &st) != 0 && errno == ENOENT)
		return false;
	if (!id_usable(name)) {
		snprintf(en->error, sizeof en->error,
			 "%s: the folder name is not a job id", en->dir);
		return true;
	}
	if (jobstore_load(en->dir, &en->job, &err) != FW_OK) {
		job_free(&en->job);
		job_init(&en->job);
		snprintf(en->error, sizeof en->error, "%s", err.msg);
		return true;
	}
	if (strcmp(en->job.id, name) != 0) {
		/* A copied or renamed folder: resume and restore find jobs by
		 * folder name, so this one would be taken for another job. */
		snprintf(en->error, sizeof en->error,
			 "%s holds the journal of job %s, not of %s", en->dir, en->job.id, name);
		job_free(&en->job);
		job_init(&en->job);
		return true;
	}
	en->ok = true;
	return true;
}

/* Newest first; unreadable entries last; ties by id, newest first too
 * (ids start with the date). */
static int by_age(const void *pa, const void *pb)
{
	const struct jobstore_entry *a = pa, *b = pb;

	if (a->ok != b->ok)
		return a->ok ? -1 : 1;
	if (a->ok && a->job.created != b->job.created)
		return a->job.created > b->job.created ? -1 : 1;
	return strcmp(b->id, a->id);
}

int jobstore_list(const char *root, struct jobstore_entry **out, size_t *n, struct fw_err *e)
{
	struct jobstore_entry *v = NULL, *grown;
	size_t count = 0, cap = 0;
	struct dirent *de;
	bool missing;
	DIR *d;
	int rc;

	*out = NULL;
	*n = 0;
	rc = check_root(root, &missing, e);
	if (rc != FW_OK || missing)
		return rc;
	d = opendir(root);
	if (!d)
		return fw_err_set(e, FW_EIO, "cannot read the job records in %s: %s", root,
				  strerror(errno));
	while ((de = readdir(d)) != NULL) {
		/* Job ids never start with '.': ".", "..", hidden and temporary
		 * names are not jobs. */
		if (de->d_name[0] == '.')
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(v, cap * sizeof *v);
			if (!grown) {
				rc = fw_err_set(e, FW_ENOMEM, "out of memory listing %s", root);
				break;
			}
			v = grown;
		}
		if (list_one(root, de->d_name, &v[count]))
			count++;
	}
	closedir(d);
	if (rc != FW_OK) {
		jobstore_list_free(v, count);
		return rc;
	}
	if (count)
		qsort(v, count, sizeof *v, by_age);
	*out = v;
	*n = count;
	return FW_OK;
}

void jobstore_list_free(struct jobstore_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		job_free(&v[i].job);
	free(v);
}

int jobstore_find(const char *root, const char *id, char *dir, size_t dirlen,
		  struct fw_err *e)
{
	char journal[JOBSTORE_PATH_MAX + 32];
	struct stat st;
	bool missing;
	int rc;

	if (!id || !id_usable(id))
		return fw_err_set(e, FW_EINVAL,
				  "\"%s\" is not a job id: ids are 1 to %d letters, digits, '.', '_' "
				  "or '-', not starting with '.' (see flashwise history)",
				  id ? id : "", JOB_ID_MAX - 1);
	rc = check_root(root, &missing, e);
	if (rc != FW_OK)
		return rc;
	if (missing)
		return fw_err_set(e, FW_EIO, "no job %s in %s (the folder does not exist)", id, root);
	if ((size_t)snprintf(dir, dirlen, "%s/%s", root, id) >= dirlen)
		return fw_err_set(e, FW_EINVAL, "job folder path too long: %s/%s", root, id);
	if (lstat(dir, &st) != 0) {
		if (errno == ENOENT)
			return fw_err_set(e, FW_EIO, "no job %s in %s (see flashwise history)", id,
					  root);
		return fw_err_set(e, FW_EIO, "cannot read the job folder %s: %s", dir,
				  strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return fw_err_set(e, FW_EIO, "no job %s in %s: %s is a symbolic link, not followed",
				  id, root, dir);
	if (!S_ISDIR(st.st_mode))
		return fw_err_set(e, FW_EIO, "no job %s in %s: %s is not a folder", id, root, dir);
	journal_path(journal, sizeof journal, dir);
	if (lstat(journal, &st) != 0)
		return fw_err_set(e, FW_EJOURNAL, "job %s has no journal (%s: %s)", id, journal,
				  strerror(errno));
	return FW_OK;
}
