/* The step machine: the table against an independent statement of the
 * rules (every record x state x event), order, the flash guards, evidence
 * rules, recovery choices and the device condition. No hardware. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"
#include "steps.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

#define T0 INT64_C(1714557600) /* 2024-05-01T10:00:00Z */
#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbf9f6b4a3b1f7e"

static int64_t clock_now = T0;

static void new_job(struct job *j)
{
	clock_now = T0;
	assert_int_equal(job_start(j, "job-1", "nodemcu-v3", "/dev/ttyUSB0", T0, NULL), FW_OK);
}

/* Evidence that satisfies the done guard of a step. */
static size_t good_evidence(int step, struct step_kv kv[4])
{
	switch (step) {
	case STEP_IDENTIFY:
		kv[0] = (struct step_kv){"identify.model", "ESP-12E"};
		return 1;
	case STEP_VERIFY_IMAGE:
		kv[0] = (struct step_kv){STEP_KEY_IMAGE_SHA256, HASH_A};
		return 1;
	case STEP_BOOTLOADER:
		kv[0] = (struct step_kv){STEP_KEY_IDENTITY_MATCH, "yes"};
		kv[1] = (struct step_kv){"identity.chip", "esp8266"};
		return 2;
	case STEP_BACKUP:
		kv[0] = (struct step_kv){STEP_KEY_BACKUP_PATH, "/var/lib/fw/job-1/backup.bin"};
		kv[1] = (struct step_kv){STEP_KEY_BACKUP_SHA256, HASH_B};
		return 2;
	case STEP_VERIFY:
		kv[0] = (struct step_kv){STEP_KEY_VERIFY_METHOD, "readback"};
		kv[1] = (struct step_kv){STEP_KEY_VERIFY_RESULT, "match"};
		return 2;
	case STEP_RESTORE:
		kv[0] = (struct step_kv){STEP_KEY_RESTORE_METHOD, "md5"};
		kv[1] = (struct step_kv){STEP_KEY_RESTORE_RESULT, "match"};
		return 2;
	default:
		return 0;
	}
}

static int ev(struct job *j, enum step_event event, int step, const char *reason,
	      const struct step_kv *kv, size_t n, struct fw_err *e)
{
	struct step_input in = {
		.event = event, .step = step, .reason = reason, .evidence = kv,
		.nevidence = n, .now = ++clock_now,
	};
	return steps_apply(j, &in, e);
}

static void ok(struct job *j, enum step_event event, int step, const char *reason,
	       const struct step_kv *kv, size_t n)
{
	struct fw_err e = {0};
	int rc = ev(j, event, step, reason, kv, n, &e);

	if (rc != FW_OK)
		fail_msg("%s %s: %s", steps_event_name(event), steps_info(step)->name, e.msg);
}

static void run_step(struct job *j, int step)
{
	struct step_kv kv[4];
	size_t n = good_evidence(step, kv);

	ok(j, STEP_EV_START, step, NULL, NULL, 0);
	ok(j, STEP_EV_DONE, step, NULL, kv, n);
}

/* Runs every step before `upto` through the machine. */
static void advance(struct job *j, int upto)
{
	for (int i = 0; i < upto && i < STEP_COUNT; i++)
		run_step(j, i);
}

/* ---- the table and names ----------------------------------------------- */

static void test_names_and_order(void **state)
{
	static const char *const names[] = {
		"identify", "verify-image", "prepare", "bootloader", "backup", "flash",
		"reboot", "verify", "document",
	};
	size_t n;
	const struct step_info *t = steps_table(&n);

	(void)state;
	assert_int_equal(n, STEP_COUNT);
	assert_int_equal(n, 9);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(t[i].id, (int)i);
		assert_string_equal(t[i].name, names[i]);
		assert_true(strlen(t[i].title) > 0);
		assert_true(strlen(t[i].purpose) > 0);
		assert_int_equal(steps_by_name(names[i]), (int)i);
	}
	assert_int_equal(steps_by_name("restore"), STEP_RESTORE);
	assert_int_equal(steps_by_name("Flash"), STEP_NONE);
	assert_null(steps_info(-1));
	assert_null(steps_info(STEP_RESTORE + 1));
	/* The skip rules of the guide. */
	assert_int_equal(t[STEP_IDENTIFY].skip, STEP_SKIP_NEVER);
	assert_int_equal(t[STEP_VERIFY_IMAGE].skip, STEP_SKIP_NEVER);
	assert_int_equal(t[STEP_BOOTLOADER].skip, STEP_SKIP_NEVER);
	assert_int_equal(t[STEP_FLASH].skip, STEP_SKIP_NEVER);
	assert_int_equal(t[STEP_VERIFY].skip, STEP_SKIP_NEVER);
	assert_int_equal(t[STEP_BACKUP].skip, STEP_SKIP_CONSENT);
	assert_int_equal(steps_info(STEP_RESTORE)->skip, STEP_SKIP_NEVER);
	for (int s = 0; s < STEP_STATE_COUNT; s++)
		assert_int_equal(steps_state_by_name(steps_state_name((enum step_state)s)), s);
	for (int d = 0; d < STEP_DEVICE_COUNT; d++)
		assert_int_equal(steps_device_by_name(steps_device_name((enum step_device)d)), d);
	assert_int_equal(steps_state_by_name("done "), -1);
	assert_string_equal(steps_event_name(STEP_EV_RESTORE), "restore");
	assert_null(steps_transition(STEP_STATE_COUNT, STEP_EV_START));
}

/* The rules, stated independently of the table: which (state, event)
 * cells exist at all, and where they lead. */
static bool rule_cell(enum step_state s, enum step_event ev, enum step_state *next)
{
	switch (s) {
	case STEP_PENDING:
		if (ev == STEP_EV_START) { *next = STEP_RUNNING; return true; }
		if (ev == STEP_EV_SKIP) { *next = STEP_SKIPPED; return true; }
		if (ev == STEP_EV_ABORT) { *next = STEP_PENDING; return true; }
		return false;
	case STEP_RUNNING:
		if (ev == STEP_EV_DONE) { *next = STEP_DONE; return true; }
		if (ev == STEP_EV_FAIL) { *next = STEP_FAILED; return true; }
		if (ev == STEP_EV_ABORT) { *next = STEP_FAILED; return true; }
		return false;
	case STEP_FAILED:
		if (ev == STEP_EV_RETRY) { *next = STEP_RUNNING; return true; }
		if (ev == STEP_EV_RESTORE || ev == STEP_EV_ABORT) { *next = STEP_FAILED; return true; }
		return false;
	default:
		return false; /* done and skipped are final */
	}
}

static void test_table_matches_rules(void **state)
{
	(void)state;
	for (int s = 0; s < STEP_STATE_COUNT; s++) {
		for (int ev = 0; ev < STEP_EV_COUNT; ev++) {
			const struct step_transition *t = steps_transition(s, ev);
			enum step_state next = STEP_PENDING;
			bool legal = rule_cell(s, ev, &next);

			assert_non_null(t);
			assert_int_equal(t->legal, legal);
			if (legal) {
				assert_int_equal(t->next, next);
				assert_int_equal(t->effect, ev == STEP_EV_ABORT ? STEP_FX_ABORT :
						 ev == STEP_EV_RESTORE ? STEP_FX_RESTORE : STEP_FX_NONE);
			}
		}
	}
}

/* Puts record `step` in state s as the machine would (by hand only for
 * states the machine can never produce, which must be refused anyway). */
static void build(struct job *j, int step, enum step_state s)
{
	struct step_kv kv[4];
	size_t n;
	struct job_step *r;

	new_job(j);
	if (step == STEP_RESTORE) {
		advance(j, STEP_FLASH);
		ok(j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
		ok(j, STEP_EV_FAIL, STEP_FLASH, "write failed at 0x1000", NULL, 0);
		if (s == STEP_PENDING)
			return;
		if (s == STEP_SKIPPED) {
			j->restore.state = STEP_SKIPPED;
			j->restore.finished = clock_now;
			j->restore_from = STEP_FLASH;
			assert_int_equal(job_set_text(&j->restore.reason, "x", NULL), FW_OK);
			return;
		}
		ok(j, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0);
		if (s == STEP_FAILED)
			ok(j, STEP_EV_FAIL, STEP_RESTORE, "no answer", NULL, 0);
		if (s == STEP_DONE) {
			n = good_evidence(STEP_RESTORE, kv);
			ok(j, STEP_EV_DONE, STEP_RESTORE, NULL, kv, n);
		}
		return;
	}
	advance(j, step);
	switch (s) {
	case STEP_PENDING:
		break;
	case STEP_RUNNING:
		ok(j, STEP_EV_START, step, NULL, NULL, 0);
		break;
	case STEP_DONE:
		run_step(j, step);
		break;
	case STEP_FAILED:
		ok(j, STEP_EV_START, step, NULL, NULL, 0);
		ok(j, STEP_EV_FAIL, step, "it broke", NULL, 0);
		break;
	case STEP_SKIPPED:
		if (steps_info(step)->skip != STEP_SKIP_NEVER) {
			kv[0] = (struct step_kv){STEP_KEY_BACKUP_CONSENT, "I accept"};
			ok(j, STEP_EV_SKIP, step, "cannot", kv, 1);
		} else {
			r = job_step_get(j, step);
			r->state = STEP_SKIPPED;
			r->finished = clock_now;
			assert_int_equal(job_set_text(&r->reason, "x", NULL), FW_OK);
		}
		break;
	default:
		fail();
	}
}

/* Legal with complete input? The rules of the issue, per record. */
static bool expect_legal(int step, enum step_state s, enum step_event ev)
{
	enum step_state next;

	if (!rule_cell(s, ev, &next))
		return false;
	if (step == STEP_RESTORE) {
		/* Only reached through "restore"; once running it finishes,
		 * fails, is retried or aborted; it is never restored itself. */
		if (s == STEP_PENDING)
			return false;
		return ev != STEP_EV_RESTORE;
	}
	if (s == STEP_PENDING && ev == STEP_EV_SKIP)
		return steps_info(step)->skip != STEP_SKIP_NEVER;
	if (s == STEP_FAILED && ev == STEP_EV_RESTORE)
		return step >= STEP_FLASH; /* a write started and the backup exists */
	return true;
}

static void test_every_transition(void **state)
{
	size_t legal = 0, refused = 0;

	(void)state;
	for (int step = 0; step <= STEP_RESTORE; step++) {
		for (int s = 0; s < STEP_STATE_COUNT; s++) {
			for (int evn = 0; evn < STEP_EV_COUNT; evn++) {
				struct job j, before;
				struct step_kv kv[4];
				size_t n = 0;
				struct fw_err e = {0};
				bool want = expect_legal(step, s, evn);
				enum step_state next = STEP_PENDING;
				int rc;

				build(&j, step, s);
				assert_int_equal(job_step_cget(&j, step)->state, s);
				assert_int_equal(job_copy(&before, &j, NULL), FW_OK);
				if (evn == STEP_EV_DONE)
					n = good_evidence(step, kv);
				if (evn == STEP_EV_SKIP) {
					kv[0] = (struct step_kv){STEP_KEY_BACKUP_CONSENT, "I accept"};
					n = 1;
				}
				rc = ev(&j, evn, step, "a reason", kv, n, &e);
				if (want != (rc == FW_OK))
					fail_msg("%s in state %s, event %s: expected %s, got %d (%s)",
						 steps_info(step)->name, steps_state_name(s),
						 steps_event_name(evn), want ? "legal" : "refused",
						 rc, e.msg);
				if (rc == FW_OK) {
					legal++;
					rule_cell(s, evn, &next);
					assert_int_equal(job_step_cget(&j, step)->state, next);
					if (evn == STEP_EV_ABORT) {
						assert_int_equal(j.outcome, JOB_ABORTED);
					} else if (evn == STEP_EV_RESTORE) {
						assert_int_equal(j.restore.state, STEP_RUNNING);
						assert_int_equal(j.restore_from, step);
						assert_int_equal(job_resume_step(&j), STEP_RESTORE);
					}
					/* Whatever the machine reached must pass the
					 * journal's consistency check. */
					if (steps_validate(&j, &e) != FW_OK)
						fail_msg("after %s %s: %s", steps_event_name(evn),
							 steps_info(step)->name, e.msg);
				} else {
					refused++;
					assert_true(rc == FW_ESTATE || rc == FW_EGUARD);
					assert_true(strlen(e.msg) > 0);
					assert_true(job_equal(&j, &before)); /* untouched */
				}
				job_free(&before);
				job_free(&j);
			}
		}
	}
	assert_int_equal(legal + refused, (STEP_COUNT + 1) * STEP_STATE_COUNT * STEP_EV_COUNT);
	/* Per guide step: start, abort (pending); done, fail, abort (running);
	 * retry, abort (failed) = 7, + skip for 4 skippable steps, + restore
	 * for flash, reboot, verify, document; restore record: 5. */
	assert_int_equal(legal, 9 * 7 + 4 + 4 + 5);
}

/* ---- order ------------------------------------------------------------- */

static void test_steps_run_in_order(void **state)
{
	struct job j;
	struct fw_err e = {0};

	(void)state;
	new_job(&j);
	for (int i = 1; i < STEP_COUNT; i++) {
		assert_int_equal(ev(&j, STEP_EV_START, i, NULL, NULL, 0, &e), FW_ESTATE);
		HAS(e.msg, steps_info(i)->name);
		HAS(e.msg, "identify");
	}
	/* done/fail need a running step. */
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_IDENTIFY, NULL, NULL, 0, &e), FW_ESTATE);
	assert_int_equal(ev(&j, STEP_EV_FAIL, STEP_IDENTIFY, "x", NULL, 0, &e), FW_ESTATE);
	advance(&j, STEP_BACKUP);
	assert_int_equal(job_resume_step(&j), STEP_BACKUP);
	/* A finished step is not reopened. */
	assert_int_equal(ev(&j, STEP_EV_START, STEP_IDENTIFY, NULL, NULL, 0, &e), FW_ESTATE);
	HAS(e.msg, "done");
	assert_int_equal(ev(&j, STEP_EV_RETRY, STEP_VERIFY_IMAGE, NULL, NULL, 0, &e), FW_ESTATE);
	/* Skipping a later skippable step is out of order too. */
	assert_int_equal(ev(&j, STEP_EV_SKIP, STEP_REBOOT, "manual", NULL, 0, &e), FW_ESTATE);
	job_free(&j);
}

static void test_bad_input(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv bad = {"Backup Path", "x"};
	struct step_input in = {.event = STEP_EV_START, .step = STEP_IDENTIFY, .now = 0};

	(void)state;
	new_job(&j);
	assert_int_equal(steps_apply(&j, &in, &e), FW_EINVAL); /* no time */
	HAS(e.msg, "time");
	in.now = T0;
	in.step = 42;
	assert_int_equal(steps_apply(&j, &in, &e), FW_EINVAL);
	in.step = STEP_IDENTIFY;
	in.event = STEP_EV_COUNT;
	assert_int_equal(steps_apply(&j, &in, &e), FW_EINVAL);
	in.event = STEP_EV_START;
	in.evidence = &bad;
	in.nevidence = 1;
	assert_int_equal(steps_apply(&j, &in, &e), FW_EINVAL);
	HAS(e.msg, "Backup Path");
	assert_int_equal(j.step[STEP_IDENTIFY].state, STEP_PENDING);
	/* A failure needs a reason. */
	ok(&j, STEP_EV_START, STEP_IDENTIFY, NULL, NULL, 0);
	assert_int_equal(ev(&j, STEP_EV_FAIL, STEP_IDENTIFY, NULL, NULL, 0, &e), FW_EINVAL);
	assert_int_equal(ev(&j, STEP_EV_FAIL, STEP_IDENTIFY, "", NULL, 0, &e), FW_EINVAL);
	HAS(e.msg, "reason");
	job_free(&j);
}

static void expect_choices(const struct job *j, const enum step_event *want, size_t n,
			   int step, bool last_unsafe)
{
	struct step_choice c[STEP_CHOICES_MAX];
	size_t got = steps_choices(j, c);

	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		if (c[i].event != want[i])
			fail_msg("choice %zu is %s, expected %s", i, steps_event_name(c[i].event),
				 steps_event_name(want[i]));
		assert_int_equal(c[i].step, step);
		assert_int_equal(c[i].unsafe, i + 1 == n && last_unsafe);
	}
}

/* ---- guards ------------------------------------------------------------ */

static void test_done_needs_evidence(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv kv[2];

	(void)state;
	new_job(&j);
	run_step(&j, STEP_IDENTIFY);
	ok(&j, STEP_EV_START, STEP_VERIFY_IMAGE, NULL, NULL, 0);
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY_IMAGE, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_IMAGE_SHA256);
	kv[0] = (struct step_kv){STEP_KEY_IMAGE_SHA256, "abc"};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY_IMAGE, NULL, kv, 1, &e), FW_EGUARD);
	HAS(e.msg, "64 hex");
	/* Evidence recorded on the way counts. */
	assert_int_equal(job_evidence_set(&j, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256, HASH_A,
					  NULL), FW_OK);
	ok(&j, STEP_EV_DONE, STEP_VERIFY_IMAGE, NULL, NULL, 0);
	run_step(&j, STEP_PREPARE);

	ok(&j, STEP_EV_START, STEP_BOOTLOADER, NULL, NULL, 0);
	kv[0] = (struct step_kv){STEP_KEY_IDENTITY_MATCH, "no"};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_BOOTLOADER, NULL, kv, 1, &e), FW_EGUARD);
	HAS(e.msg, "identity.match");
	HAS(e.msg, "\"no\"");
	kv[0] = (struct step_kv){STEP_KEY_IDENTITY_MATCH, "yes"};
	ok(&j, STEP_EV_DONE, STEP_BOOTLOADER, NULL, kv, 1);
	assert_int_equal(j.step[STEP_BOOTLOADER].state, STEP_DONE);
	assert_string_equal(job_evidence_get(&j, STEP_BOOTLOADER, STEP_KEY_IDENTITY_MATCH), "yes");
	job_free(&j);

	new_job(&j);
	advance(&j, STEP_BACKUP);
	ok(&j, STEP_EV_START, STEP_BACKUP, NULL, NULL, 0);
	kv[0] = (struct step_kv){STEP_KEY_BACKUP_PATH, "/b/backup.bin"};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_BACKUP, NULL, kv, 1, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_BACKUP_SHA256);
	kv[0] = (struct step_kv){STEP_KEY_BACKUP_SHA256, HASH_B};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_BACKUP, NULL, kv, 1, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_BACKUP_PATH);
	job_free(&j);
}

static void test_verify_needs_a_comparison(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv kv[2];

	(void)state;
	new_job(&j);
	advance(&j, STEP_VERIFY);
	ok(&j, STEP_EV_START, STEP_VERIFY, NULL, NULL, 0);
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_VERIFY_METHOD);
	kv[0] = (struct step_kv){STEP_KEY_VERIFY_METHOD, "readback"};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY, NULL, kv, 1, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_VERIFY_RESULT);
	kv[1] = (struct step_kv){STEP_KEY_VERIFY_RESULT, "mismatch"};
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY, NULL, kv, 2, &e), FW_EGUARD);
	assert_int_equal(steps_device(&j), STEP_DEVICE_PENDING);
	kv[1] = (struct step_kv){STEP_KEY_VERIFY_RESULT, "match"};
	ok(&j, STEP_EV_DONE, STEP_VERIFY, NULL, kv, 2);
	assert_int_equal(steps_device(&j), STEP_DEVICE_OK);
	job_free(&j);
}

/* A job where everything before flash is done, then one piece of the
 * flash guard's evidence is taken away by hand (as a bug or a damaged
 * record would): the machine must still refuse to write. */
static void flash_refused(void (*spoil)(struct job *), int want, const char *needle)
{
	struct job j;
	struct fw_err e = {0};

	new_job(&j);
	advance(&j, STEP_FLASH);
	assert_int_equal(steps_can_flash(&j, NULL), FW_OK);
	spoil(&j);
	/* Without an error record too: the refusal may not depend on it. */
	assert_int_equal(steps_can_flash(&j, NULL), FW_EGUARD);
	assert_int_equal(steps_can_flash(&j, &e), FW_EGUARD);
	HAS(e.msg, needle);
	memset(&e, 0, sizeof e);
	/* An unfinished earlier step is refused by the order rule first. */
	assert_int_equal(ev(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0, &e), want);
	if (want == FW_EGUARD)
		HAS(e.msg, "refusing to flash");
	HAS(e.msg, needle);
	assert_int_equal(j.step[STEP_FLASH].state, STEP_PENDING);
	assert_int_equal(steps_device(&j), STEP_DEVICE_UNTOUCHED);
	job_free(&j);
}

static void drop(struct job *j, int step, const char *key)
{
	struct job_step *s = job_step_get(j, step);

	for (size_t i = 0; i < s->nev; i++) {
		if (strcmp(s->ev[i].key, key) == 0) {
			free(s->ev[i].key);
			free(s->ev[i].value);
			s->ev[i] = s->ev[--s->nev];
			return;
		}
	}
	fail_msg("no %s to drop", key);
}

static void no_backup_hash(struct job *j) { drop(j, STEP_BACKUP, STEP_KEY_BACKUP_SHA256); }
static void no_backup_path(struct job *j) { drop(j, STEP_BACKUP, STEP_KEY_BACKUP_PATH); }
static void bad_backup_hash(struct job *j)
{
	assert_int_equal(job_evidence_set(j, STEP_BACKUP, STEP_KEY_BACKUP_SHA256, "xyz", NULL), FW_OK);
}
static void backup_pending(struct job *j) { job_step_clear(&j->step[STEP_BACKUP]); }
static void backup_skipped_no_consent(struct job *j)
{
	job_step_clear(&j->step[STEP_BACKUP]);
	j->step[STEP_BACKUP].state = STEP_SKIPPED;
	j->step[STEP_BACKUP].finished = T0;
	assert_int_equal(job_set_text(&j->step[STEP_BACKUP].reason, "cannot read", NULL), FW_OK);
}
static void no_identity(struct job *j) { drop(j, STEP_BOOTLOADER, STEP_KEY_IDENTITY_MATCH); }
static void identity_no(struct job *j)
{
	assert_int_equal(job_evidence_set(j, STEP_BOOTLOADER, STEP_KEY_IDENTITY_MATCH, "no", NULL), FW_OK);
}
static void bootloader_failed(struct job *j) { j->step[STEP_BOOTLOADER].state = STEP_FAILED; }
static void image_not_done(struct job *j) { j->step[STEP_VERIFY_IMAGE].state = STEP_RUNNING; }
static void image_skipped(struct job *j) { j->step[STEP_VERIFY_IMAGE].state = STEP_SKIPPED; }
static void no_image_hash(struct job *j) { drop(j, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256); }

static void test_flash_guards(void **state)
{
	(void)state;
	flash_refused(backup_pending, FW_ESTATE, "backup");
	flash_refused(no_backup_hash, FW_EGUARD, STEP_KEY_BACKUP_SHA256);
	flash_refused(bad_backup_hash, FW_EGUARD, STEP_KEY_BACKUP_SHA256);
	flash_refused(no_backup_path, FW_EGUARD, STEP_KEY_BACKUP_PATH);
	flash_refused(backup_skipped_no_consent, FW_EGUARD, "consent");
	flash_refused(no_identity, FW_EGUARD, STEP_KEY_IDENTITY_MATCH);
	flash_refused(identity_no, FW_EGUARD, STEP_KEY_IDENTITY_MATCH);
	flash_refused(bootloader_failed, FW_ESTATE, "bootloader");
	flash_refused(image_not_done, FW_ESTATE, "verify-image");
	flash_refused(image_skipped, FW_EGUARD, "verify-image");
	flash_refused(no_image_hash, FW_EGUARD, STEP_KEY_IMAGE_SHA256);
}

static void test_skip_rules(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv consent = {STEP_KEY_BACKUP_CONSENT, "no backup, I accept"};

	(void)state;
	/* Never-skippable steps, each as the current step. */
	static const int never[] = {STEP_IDENTIFY, STEP_VERIFY_IMAGE, STEP_BOOTLOADER, STEP_FLASH,
				    STEP_VERIFY};
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
		new_job(&j);
		advance(&j, never[i]);
		assert_int_equal(ev(&j, STEP_EV_SKIP, never[i], "hurry", &consent, 1, &e), FW_EGUARD);
		HAS(e.msg, "never");
		HAS(e.msg, steps_info(never[i])->name);
		job_free(&j);
	}

	new_job(&j);
	advance(&j, STEP_PREPARE);
	assert_int_equal(ev(&j, STEP_EV_SKIP, STEP_PREPARE, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, "reason");
	ok(&j, STEP_EV_SKIP, STEP_PREPARE, "bench checked by hand", NULL, 0);
	assert_string_equal(j.step[STEP_PREPARE].reason, "bench checked by hand");
	run_step(&j, STEP_BOOTLOADER);
	/* Backup: a reason alone is not enough; typed consent is. */
	assert_int_equal(ev(&j, STEP_EV_SKIP, STEP_BACKUP, "loader cannot read", NULL, 0, &e),
			 FW_EGUARD);
	HAS(e.msg, "consent");
	assert_int_equal(ev(&j, STEP_EV_SKIP, STEP_BACKUP, NULL, &consent, 1, &e), FW_EGUARD);
	ok(&j, STEP_EV_SKIP, STEP_BACKUP, "loader cannot read", &consent, 1);
	assert_string_equal(job_evidence_get(&j, STEP_BACKUP, STEP_KEY_BACKUP_CONSENT),
			    "no backup, I accept");
	assert_int_equal(steps_can_flash(&j, NULL), FW_OK);
	ok(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	/* Without a backup there is nothing to restore. */
	ok(&j, STEP_EV_FAIL, STEP_FLASH, "timeout", NULL, 0);
	assert_int_equal(ev(&j, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0, NULL), FW_EGUARD);
	assert_int_equal(ev(&j, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, "backup");
	{
		static const enum step_event no_restore[] = {STEP_EV_RETRY, STEP_EV_ABORT};
		expect_choices(&j, no_restore, 2, STEP_FLASH, true);
	}
	job_free(&j);
}

static void test_retry_starts_over(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv kv = {STEP_KEY_IMAGE_SHA256, HASH_A};

	(void)state;
	new_job(&j);
	run_step(&j, STEP_IDENTIFY);
	ok(&j, STEP_EV_START, STEP_VERIFY_IMAGE, NULL, NULL, 0);
	ok(&j, STEP_EV_FAIL, STEP_VERIFY_IMAGE, "signature did not verify", &kv, 1);
	assert_string_equal(j.step[STEP_VERIFY_IMAGE].reason, "signature did not verify");
	ok(&j, STEP_EV_RETRY, STEP_VERIFY_IMAGE, NULL, NULL, 0);
	assert_int_equal(j.step[STEP_VERIFY_IMAGE].attempts, 2);
	assert_null(j.step[STEP_VERIFY_IMAGE].reason);
	assert_int_equal(j.step[STEP_VERIFY_IMAGE].finished, 0);
	/* The failed attempt's hash does not carry over. */
	assert_null(job_evidence_get(&j, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256));
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_VERIFY_IMAGE, NULL, NULL, 0, &e), FW_EGUARD);
	ok(&j, STEP_EV_DONE, STEP_VERIFY_IMAGE, NULL, &kv, 1);
	job_free(&j);
}

/* ---- recovery and the device condition --------------------------------- */

static void test_happy_path_device(void **state)
{
	static const enum step_device after_done[STEP_COUNT] = {
		STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED,
		STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED, STEP_DEVICE_PENDING,
		STEP_DEVICE_PENDING, STEP_DEVICE_OK, STEP_DEVICE_OK,
	};
	static const enum step_device while_running[STEP_COUNT] = {
		STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED,
		STEP_DEVICE_UNTOUCHED, STEP_DEVICE_UNTOUCHED, STEP_DEVICE_PENDING,
		STEP_DEVICE_PENDING, STEP_DEVICE_PENDING, STEP_DEVICE_OK,
	};
	static const enum step_event pending_choices[] = {STEP_EV_START, STEP_EV_ABORT};
	struct job j;
	struct step_kv kv[4];
	size_t n;

	(void)state;
	new_job(&j);
	for (int i = 0; i < STEP_COUNT; i++) {
		assert_int_equal(job_resume_step(&j), i);
		if (steps_info(i)->skip == STEP_SKIP_NEVER)
			/* Stopping before the verification leaves the write unproven. */
			expect_choices(&j, pending_choices, 2, i, i > STEP_FLASH);
		ok(&j, STEP_EV_START, i, NULL, NULL, 0);
		assert_int_equal(j.step[i].started, clock_now);
		assert_int_equal(steps_device(&j), while_running[i]);
		n = good_evidence(i, kv);
		ok(&j, STEP_EV_DONE, i, NULL, kv, n);
		assert_int_equal(j.step[i].finished, clock_now);
		assert_int_equal(steps_device(&j), after_done[i]);
	}
	assert_int_equal(j.outcome, JOB_COMPLETE);
	assert_int_equal(job_resume_step(&j), STEP_NONE);
	assert_false(steps_device_unsafe(steps_device(&j)));
	assert_int_equal(steps_choices(&j, (struct step_choice[STEP_CHOICES_MAX]){0}), 0);
	assert_int_equal(steps_validate(&j, NULL), FW_OK);
	job_free(&j);
}

static void test_flash_failure_paths(void **state)
{
	static const enum step_event failed_write[] = {STEP_EV_RESTORE, STEP_EV_RETRY, STEP_EV_ABORT};
	static const enum step_event failed_read[] = {STEP_EV_RETRY, STEP_EV_RESTORE, STEP_EV_ABORT};
	static const enum step_event failed_restore[] = {STEP_EV_RETRY, STEP_EV_ABORT};
	static const enum step_event running[] = {STEP_EV_ABORT};
	struct job j;
	struct fw_err e = {0};
	struct step_kv kv[4];
	size_t n;

	(void)state;
	new_job(&j);
	advance(&j, STEP_FLASH);
	ok(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_PENDING);
	expect_choices(&j, running, 1, STEP_FLASH, true);
	ok(&j, STEP_EV_FAIL, STEP_FLASH, "write failed at 0x3000", NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_FAILED);
	assert_true(steps_device_unsafe(steps_device(&j)));
	expect_choices(&j, failed_write, 3, STEP_FLASH, true);

	/* Retry, and the retry fails too. */
	ok(&j, STEP_EV_RETRY, STEP_FLASH, NULL, NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_PENDING);
	ok(&j, STEP_EV_FAIL, STEP_FLASH, "write failed again", NULL, 0);

	/* Restore: the restore record runs, the flash step stays failed. */
	ok(&j, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0);
	assert_int_equal(job_resume_step(&j), STEP_RESTORE);
	assert_int_equal(j.step[STEP_FLASH].state, STEP_FAILED);
	assert_int_equal(steps_device(&j), STEP_DEVICE_PENDING);
	expect_choices(&j, running, 1, STEP_RESTORE, true);
	assert_int_equal(ev(&j, STEP_EV_RETRY, STEP_FLASH, NULL, NULL, 0, &e), FW_ESTATE);
	assert_int_equal(ev(&j, STEP_EV_START, STEP_RESTORE, NULL, NULL, 0, &e), FW_ESTATE);
	assert_int_equal(ev(&j, STEP_EV_DONE, STEP_RESTORE, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, STEP_KEY_RESTORE_METHOD);
	ok(&j, STEP_EV_FAIL, STEP_RESTORE, "no answer", NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_FAILED);
	expect_choices(&j, failed_restore, 2, STEP_RESTORE, true);
	assert_int_equal(ev(&j, STEP_EV_RESTORE, STEP_RESTORE, NULL, NULL, 0, &e), FW_ESTATE);
	ok(&j, STEP_EV_RETRY, STEP_RESTORE, NULL, NULL, 0);
	assert_int_equal(j.restore.attempts, 2);
	n = good_evidence(STEP_RESTORE, kv);
	ok(&j, STEP_EV_DONE, STEP_RESTORE, NULL, kv, n);
	assert_int_equal(j.outcome, JOB_RESTORED);
	assert_int_equal(steps_device(&j), STEP_DEVICE_RESTORED);
	assert_false(steps_device_unsafe(steps_device(&j)));
	assert_int_equal(job_resume_step(&j), STEP_NONE);
	assert_int_equal(ev(&j, STEP_EV_ABORT, STEP_RESTORE, NULL, NULL, 0, &e), FW_ESTATE);
	HAS(e.msg, "ended");
	assert_int_equal(steps_validate(&j, NULL), FW_OK);
	job_free(&j);

	/* A failed verification: re-reading is harmless, so it comes first. */
	new_job(&j);
	advance(&j, STEP_VERIFY);
	ok(&j, STEP_EV_START, STEP_VERIFY, NULL, NULL, 0);
	kv[0] = (struct step_kv){STEP_KEY_VERIFY_METHOD, "readback"};
	kv[1] = (struct step_kv){STEP_KEY_VERIFY_RESULT, "mismatch"};
	ok(&j, STEP_EV_FAIL, STEP_VERIFY, "3 bytes differ at 0x1000", kv, 2);
	assert_int_equal(steps_device(&j), STEP_DEVICE_FAILED);
	expect_choices(&j, failed_read, 3, STEP_VERIFY, true);
	job_free(&j);
}

static void test_early_failure_and_abort(void **state)
{
	static const enum step_event failed[] = {STEP_EV_RETRY, STEP_EV_ABORT};
	static const enum step_event backup_pending[] = {STEP_EV_START, STEP_EV_SKIP, STEP_EV_ABORT};
	struct job j;
	struct fw_err e = {0};

	(void)state;
	new_job(&j);
	advance(&j, STEP_BOOTLOADER);
	ok(&j, STEP_EV_START, STEP_BOOTLOADER, NULL, NULL, 0);
	ok(&j, STEP_EV_FAIL, STEP_BOOTLOADER, "chip is an esp32, the profile says esp8266", NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_UNTOUCHED);
	/* Nothing written: no restore, and aborting is safe. */
	expect_choices(&j, failed, 2, STEP_BOOTLOADER, false);
	assert_int_equal(ev(&j, STEP_EV_RESTORE, STEP_BOOTLOADER, NULL, NULL, 0, &e), FW_EGUARD);
	HAS(e.msg, "untouched");
	ok(&j, STEP_EV_RETRY, STEP_BOOTLOADER, NULL, NULL, 0);
	assert_int_equal(j.step[STEP_BOOTLOADER].attempts, 2);
	{
		struct step_kv kv[4];
		size_t n = good_evidence(STEP_BOOTLOADER, kv);
		ok(&j, STEP_EV_DONE, STEP_BOOTLOADER, NULL, kv, n);
	}
	assert_int_equal(job_resume_step(&j), STEP_BACKUP);
	job_free(&j);

	new_job(&j);
	advance(&j, STEP_BACKUP);
	expect_choices(&j, backup_pending, 3, STEP_BACKUP, false);
	ok(&j, STEP_EV_ABORT, STEP_BACKUP, NULL, NULL, 0);
	assert_int_equal(j.outcome, JOB_ABORTED);
	assert_string_equal(j.abort_reason, "aborted by the technician");
	assert_int_equal(j.step[STEP_BACKUP].state, STEP_PENDING);
	assert_int_equal(steps_device(&j), STEP_DEVICE_UNTOUCHED);
	assert_false(steps_device_unsafe(steps_device(&j)));
	assert_int_equal(job_resume_step(&j), STEP_NONE);
	assert_int_equal(ev(&j, STEP_EV_START, STEP_BACKUP, NULL, NULL, 0, &e), FW_ESTATE);
	assert_int_equal(steps_validate(&j, NULL), FW_OK);
	job_free(&j);

	/* Abort in the middle of the write: the device may be unsafe. */
	new_job(&j);
	advance(&j, STEP_FLASH);
	ok(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	ok(&j, STEP_EV_ABORT, STEP_FLASH, "Ctrl-C", NULL, 0);
	assert_int_equal(j.outcome, JOB_ABORTED);
	assert_int_equal(j.step[STEP_FLASH].state, STEP_FAILED);
	assert_string_equal(j.step[STEP_FLASH].reason, "Ctrl-C");
	assert_int_equal(j.step[STEP_FLASH].finished, clock_now);
	assert_int_equal(steps_device(&j), STEP_DEVICE_FAILED);
	assert_true(steps_device_unsafe(steps_device(&j)));
	assert_int_equal(steps_validate(&j, NULL), FW_OK);
	job_free(&j);

	/* Abort after the write, before the verification. */
	new_job(&j);
	advance(&j, STEP_REBOOT);
	ok(&j, STEP_EV_ABORT, STEP_REBOOT, "lunch", NULL, 0);
	assert_int_equal(steps_device(&j), STEP_DEVICE_PENDING);
	assert_true(steps_device_unsafe(steps_device(&j)));
	job_free(&j);
}

static void test_abort_takes_no_evidence(void **state)
{
	struct job j;
	struct fw_err e = {0};
	struct step_kv kv = {"note.text", "x"};

	(void)state;
	new_job(&j);
	assert_int_equal(ev(&j, STEP_EV_ABORT, STEP_IDENTIFY, NULL, &kv, 1, &e), FW_EINVAL);
	assert_int_equal(j.outcome, JOB_ACTIVE);
	job_free(&j);
}

/* ---- validation of whole records --------------------------------------- */

static void test_validate_impossible(void **state)
{
	struct job j;
	struct fw_err e = {0};

	(void)state;
	/* Flash done while backup pending. */
	new_job(&j);
	advance(&j, STEP_BACKUP);
	j.step[STEP_FLASH].state = STEP_DONE;
	j.step[STEP_FLASH].attempts = 1;
	j.step[STEP_FLASH].started = T0 + 1;
	j.step[STEP_FLASH].finished = T0 + 2;
	assert_int_equal(steps_validate(&j, &e), FW_EJOURNAL);
	HAS(e.msg, "flash");
	HAS(e.msg, "backup");
	job_free(&j);

	/* A done step missing its evidence. */
	new_job(&j);
	advance(&j, STEP_PREPARE);
	drop(&j, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256);
	assert_int_equal(steps_validate(&j, &e), FW_EJOURNAL);
	HAS(e.msg, "verify-image");
	job_free(&j);

	/* Complete while a step is pending; active with everything done. */
	new_job(&j);
	advance(&j, STEP_PREPARE);
	j.outcome = JOB_COMPLETE;
	assert_int_equal(steps_validate(&j, &e), FW_EJOURNAL);
	job_free(&j);
	new_job(&j);
	advance(&j, STEP_COUNT);
	j.outcome = JOB_ACTIVE;
	assert_int_equal(steps_validate(&j, &e), FW_EJOURNAL);
	job_free(&j);

	/* A pending step with a start time. */
	new_job(&j);
	j.step[STEP_PREPARE].started = T0;
	assert_int_equal(steps_validate(&j, &e), FW_EJOURNAL);
	HAS(e.msg, "prepare");
	job_free(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_order),
		cmocka_unit_test(test_table_matches_rules),
		cmocka_unit_test(test_every_transition),
		cmocka_unit_test(test_steps_run_in_order),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_done_needs_evidence),
		cmocka_unit_test(test_verify_needs_a_comparison),
		cmocka_unit_test(test_flash_guards),
		cmocka_unit_test(test_skip_rules),
		cmocka_unit_test(test_retry_starts_over),
		cmocka_unit_test(test_happy_path_device),
		cmocka_unit_test(test_flash_failure_paths),
		cmocka_unit_test(test_early_failure_and_abort),
		cmocka_unit_test(test_abort_takes_no_evidence),
		cmocka_unit_test(test_validate_impossible),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
