/* Job folders on disk: the journal after every transition reloads to the
 * same job; a damaged journal is refused; folders are never reused; a
 * failed journal write leaves the job as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobstore.h"

struct fixture {
	char root[64];
	char dir[JOBSTORE_PATH_MAX];
	struct job job;
	int64_t now;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct fw_err e = {0};

	if (!f)
		return -1;
	strcpy(f->root, "/tmp/fw-jobstore.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	strcat(f->root, "/jobs"); /* created by jobstore_create */
	f->now = 1700000000;
	job_init(&f->job);
	if (job_start(&f->job, "20231114-221320-test", "nodemcu-v1", "/dev/ttyUSB0", f->now,
		      &e) != FW_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	job_free(&f->job);
	f->root[strlen(f->root) - strlen("/jobs")] = '\0';
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void event(struct fixture *f, enum step_event ev, int step, const struct step_kv *kv,
		  size_t n)
{
	struct step_input in = {.event = ev, .step = step, .evidence = kv, .nevidence = n,
				.now = ++f->now, .reason = ev == STEP_EV_FAIL ? "test" : NULL};
	struct fw_err e = {0};
	int rc = jobstore_apply(f->dir, &f->job, &in, &e);

	if (rc != FW_OK)
		fail_msg("%s %d: %s", steps_event_name(ev), step, e.msg);
}

static void reload_equal(struct fixture *f)
{
	struct job back;
	struct fw_err e = {0};

	job_init(&back);
	assert_int_equal(jobstore_load(f->dir, &back, &e), FW_OK);
	assert_true(job_equal(&back, &f->job));
	job_free(&back);
}

/* Drives the job to "flash running" and reloads from disk after every event. */
static void to_flash_running(struct fixture *f)
{
	static const char hash[] =
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	const struct step_kv ev_identify[] = {{"profile.id", "nodemcu-v1"}};
	const struct step_kv ev_image[] = {{STEP_KEY_IMAGE_SHA256, hash}};
	const struct step_kv ev_prepare[] = {{"port.path", "/dev/ttyUSB0"}};
	const struct step_kv ev_boot[] = {{STEP_KEY_IDENTITY_MATCH, "yes"}};
	const struct step_kv ev_backup[] = {{STEP_KEY_BACKUP_PATH, "backup.bin"},
					    {STEP_KEY_BACKUP_SHA256, hash}};
	const struct {
		const struct step_kv *kv;
		size_t n;
	} evs[] = {{ev_identify, 1}, {ev_image, 1}, {ev_prepare, 1}, {ev_boot, 1},
		   {ev_backup, 2}};
	int s;

	for (s = STEP_IDENTIFY; s <= STEP_BACKUP; s++) {
		event(f, STEP_EV_START, s, NULL, 0);
		reload_equal(f);
		event(f, STEP_EV_DONE, s, evs[s].kv, evs[s].n);
		reload_equal(f);
	}
	event(f, STEP_EV_START, STEP_FLASH, NULL, 0);
}

static void test_journal_after_every_transition(void **state)
{
	struct fixture *f = *state;
	struct fw_err e = {0};
	struct job back;
	struct stat st;
	char path[JOBSTORE_PATH_MAX + 32];

	assert_int_equal(jobstore_create(f->root, &f->job, f->dir, sizeof f->dir, &e), FW_OK);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof path, "%s/%s", f->dir, JOBSTORE_JOURNAL);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	to_flash_running(f);
	/* A run killed here: the next one finds the flash step interrupted and
	 * the device possibly unsafe. */
	job_init(&back);
	assert_int_equal(jobstore_load(f->dir, &back, &e), FW_OK);
	assert_true(job_equal(&back, &f->job));
	assert_int_equal(job_resume_step(&back), STEP_FLASH);
	assert_int_equal(job_step_cget(&back, STEP_FLASH)->state, STEP_RUNNING);
	assert_true(steps_device_unsafe(steps_device(&back)));
	job_free(&back);
}

static void test_damaged_journal_refused(void **state)
{
	struct fixture *f = *state;
	struct fw_err e = {0};
	struct job back;
	char path[JOBSTORE_PATH_MAX + 32];
	FILE *fp;
	long size;

	assert_int_equal(jobstore_create(f->root, &f->job, f->dir, sizeof f->dir, &e), FW_OK);
	to_flash_running(f);
	snprintf(path, sizeof path, "%s/%s", f->dir, JOBSTORE_JOURNAL);

	/* Cut the file in half, as a crash in a non-atomic writer would. */
	fp = fopen(path, "r+");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fclose(fp);
	assert_int_equal(truncate(path, size / 2), 0);
	job_init(&back);
	assert_int_equal(jobstore_load(f->dir, &back, &e), FW_EJOURNAL);
	assert_non_null(strstr(e.msg, path));
	job_free(&back);

	/* A missing journal is a journal problem too, never an empty job. */
	assert_int_equal(unlink(path), 0);
	job_init(&back);
	assert_int_equal(jobstore_load(f->dir, &back, &e), FW_EJOURNAL);
	job_free(&back);
}

static void test_folder_never_reused(void **state)
{
	struct fixture *f = *state;
	struct fw_err e = {0};
	char dir2[JOBSTORE_PATH_MAX];

	assert_int_equal(jobstore_create(f->root, &f->job, f->dir, sizeof f->dir, &e), FW_OK);
	assert_int_equal(jobstore_create(f->root, &f->job, dir2, sizeof dir2, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "never overwritten"));
}

static void test_failed_write_keeps_job(void **state)
{
	struct fixture *f = *state;
	struct fw_err e = {0};
	struct job before;
	char path[JOBSTORE_PATH_MAX + 32];
	struct step_input in = {.event = STEP_EV_START, .step = STEP_IDENTIFY, .now = 1};

	assert_int_equal(jobstore_create(f->root, &f->job, f->dir, sizeof f->dir, &e), FW_OK);
	/* A symbolic link where the journal goes: the write is refused. */
	snprintf(path, sizeof path, "%s/%s", f->dir, JOBSTORE_JOURNAL);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/tmp/elsewhere", path), 0);
	job_init(&before);
	assert_int_equal(job_copy(&before, &f->job, &e), FW_OK);
	assert_int_not_equal(jobstore_apply(f->dir, &f->job, &in, &e), FW_OK);
	assert_true(job_equal(&before, &f->job));
	assert_int_equal(job_step_cget(&f->job, STEP_IDENTIFY)->state, STEP_PENDING);
	job_free(&before);
}

static void test_illegal_event_not_saved(void **state)
{
	struct fixture *f = *state;
	struct fw_err e = {0};
	struct job back;
	struct step_input in = {.event = STEP_EV_START, .step = STEP_FLASH, .now = 1};

	assert_int_equal(jobstore_create(f->root, &f->job, f->dir, sizeof f->dir, &e), FW_OK);
	assert_int_not_equal(jobstore_apply(f->dir, &f->job, &in, &e), FW_OK);
	job_init(&back);
	assert_int_equal(jobstore_load(f->dir, &back, &e), FW_OK);
	assert_true(job_equal(&back, &f->job));
	assert_int_equal(job_step_cget(&back, STEP_FLASH)->state, STEP_PENDING);
	job_free(&back);
}

static void test_default_root(void **state)
{
	char out[512];
	struct fw_err e = {0};

	(void)state;
	setenv("XDG_STATE_HOME", "/var/tmp/state", 1);
	assert_int_equal(jobstore_default_root(out, sizeof out, &e), FW_OK);
	assert_string_equal(out, "/var/tmp/state/flashwise/jobs");
	unsetenv("XDG_STATE_HOME");
	setenv("HOME", "/home/tech", 1);
	assert_int_equal(jobstore_default_root(out, sizeof out, &e), FW_OK);
	assert_string_equal(out, "/home/tech/.local/state/flashwise/jobs");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_journal_after_every_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_journal_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folder_never_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_keeps_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_illegal_event_not_saved, setup, teardown),
		cmocka_unit_test(test_default_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
