/* The job record and its journal: ids, evidence, times, escaping, the
 * round trip after every kind of transition, and damage detection
 * (truncation at every offset, every flipped byte, edits re-signed with a
 * valid SHA-256 that still describe impossible states). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "integrity.h"
#include "job.h"
#include "steps.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

#define T0 INT64_C(1714557600) /* 2024-05-01T10:00:00Z */
#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbf9f6b4a3b1f7e"

static int64_t clock_now;

static void new_job(struct job *j)
{
	clock_now = T0;
	assert_int_equal(job_start(j, "20240501-100000-nodemcu", "nodemcu-v3", "/dev/ttyUSB0",
				   T0, NULL), FW_OK);
}

static size_t good_evidence(int step, struct step_kv kv[4])
{
	switch (step) {
	case STEP_IDENTIFY:
		kv[0] = (struct step_kv){"identify.model", "ESP-12E"};
		kv[1] = (struct step_kv){"identify.firmware", "tasmota-13.2.bin"};
		return 2;
	case STEP_VERIFY_IMAGE:
		kv[0] = (struct step_kv){STEP_KEY_IMAGE_SHA256, HASH_A};
		return 1;
	case STEP_BOOTLOADER:
		kv[0] = (struct step_kv){STEP_KEY_IDENTITY_MATCH, "yes"};
		kv[1] = (struct step_kv){"identity.mac", "5c:cf:7f:01:02:03"};
		return 2;
	case STEP_BACKUP:
		kv[0] = (struct step_kv){STEP_KEY_BACKUP_PATH, "/var/lib/flashwise/jobs/x/backup.bin"};
		kv[1] = (struct step_kv){STEP_KEY_BACKUP_SHA256, HASH_B};
		kv[2] = (struct step_kv){"backup.duration-ms", "41250"};
		return 3;
	case STEP_VERIFY:
		kv[0] = (struct step_kv){STEP_KEY_VERIFY_METHOD, "md5"};
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

static void ok(struct job *j, enum step_event event, int step, const char *reason,
	       const struct step_kv *kv, size_t n)
{
	struct fw_err e = {0};
	struct step_input in = {
		.event = event, .step = step, .reason = reason, .evidence = kv,
		.nevidence = n, .now = clock_now += 7,
	};

	if (steps_apply(j, &in, &e) != FW_OK)
		fail_msg("%s %s: %s", steps_event_name(event), steps_info(step)->name, e.msg);
}

static void done_ev(struct job *j, int step)
{
	struct step_kv kv[4];
	size_t n = good_evidence(step, kv);

	ok(j, STEP_EV_DONE, step, NULL, kv, n);
}

static void advance(struct job *j, int upto)
{
	for (int i = 0; i < upto; i++) {
		ok(j, STEP_EV_START, i, NULL, NULL, 0);
		done_ev(j, i);
	}
}

static char *format(const struct job *j, size_t *len)
{
	struct strbuf b = STRBUF_INIT;
	struct fw_err e = {0};

	if (job_journal_format(j, &b, &e) != FW_OK)
		fail_msg("format: %s", e.msg);
	*len = b.len;
	return b.s;
}

/* Formats, parses back, and demands the very same job. */
static void roundtrip(const struct job *j)
{
	struct job back;
	struct fw_err e = {0};
	size_t len;
	char *text = format(j, &len);

	if (job_journal_parse(text, len, &back, &e) != FW_OK)
		fail_msg("parse: %s\n%s", e.msg, text);
	assert_true(job_equal(j, &back));
	assert_int_equal(job_resume_step(&back), job_resume_step(j));
	assert_int_equal(steps_device(&back), steps_device(j));
	job_free(&back);
	free(text);
}

/* A journal body with a freshly computed trailer, as a forger (or a bug in
 * a later writer) would make it: only the semantic checks can catch it. */
static char *resign(const char *body)
{
	uint8_t sum[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];
	struct strbuf b = STRBUF_INIT;

	assert_int_equal(integrity_sha256(body, strlen(body), sum), FW_OK);
	integrity_hex(sum, SHA256_LEN, hex);
	strbuf_adds(&b, body);
	strbuf_addf(&b, "# sha256: %s\n", hex);
	assert_false(strbuf_failed(&b));
	return b.s;
}

/* The body of a journal (without its trailer line). */
static char *body_of(const struct job *j)
{
	size_t len;
	char *text = format(j, &len);
	char *t = strstr(text, "# sha256: ");

	assert_non_null(t);
	*t = '\0';
	return text;
}

/* Replaces the first `old` with `new` in the body, re-signs and parses:
 * must be refused with a message containing `needle`. */
static void edited_refused(const struct job *j, const char *old, const char *new,
			   const char *needle)
{
	char *body = body_of(j), *p = strstr(body, old), *text;
	struct strbuf b = STRBUF_INIT;
	struct job back;
	struct fw_err e = {0};
	int rc;

	if (!p)
		fail_msg("\"%s\" not in the journal", old);
	strbuf_add(&b, body, (size_t)(p - body));
	strbuf_adds(&b, new);
	strbuf_adds(&b, p + strlen(old));
	text = resign(strbuf_str(&b));
	rc = job_journal_parse(text, strlen(text), &back, &e);
	if (rc != FW_EJOURNAL)
		fail_msg("editing \"%s\" into \"%s\" was accepted (%d)", old, new, rc);
	if (!strstr(e.msg, needle))
		fail_msg("message \"%s\" does not mention \"%s\"", e.msg, needle);
	/* A refused journal leaves an empty job behind. */
	assert_int_equal(back.step[STEP_IDENTIFY].nev, 0);
	assert_string_equal(back.id, "");
	job_free(&back);
	free(text);
	strbuf_free(&b);
	free(body);
}

/* ---- the record -------------------------------------------------------- */

static void test_start_validates(void **state)
{
	static const char *const bad_ids[] = {
		"", ".hidden", "../x", "a/b", "a b", "x\n", "ümlaut",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	struct job j;
	struct fw_err e = {0};
	char longport[JOB_PORT_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
		assert_int_equal(job_start(&j, bad_ids[i], "p", "", T0, &e), FW_EINVAL);
		HAS(e.msg, "job id");
		job_free(&j);
	}
	assert_int_equal(job_start(&j, "a", "", "", T0, &e), FW_EINVAL);
	HAS(e.msg, "profile");
	assert_int_equal(job_start(&j, "a", "p", "", 0, &e), FW_EINVAL);
	HAS(e.msg, "time");
	memset(longport, 'x', sizeof longport - 1);
	longport[sizeof longport - 1] = '\0';
	assert_int_equal(job_start(&j, "a", "p", longport, T0, &e), FW_EINVAL);
	HAS(e.msg, "port");
	assert_int_equal(job_start(&j, "job_2024-05-01.1", "p", NULL, T0, &e), FW_OK);
	assert_string_equal(j.port, "");
	assert_int_equal(j.outcome, JOB_ACTIVE);
	assert_int_equal(j.restore_from, STEP_NONE);
	assert_int_equal(job_resume_step(&j), STEP_IDENTIFY);
	job_free(&j);
}

static void test_evidence(void **state)
{
	struct job j, c;
	struct fw_err e = {0};

	(void)state;
	assert_true(job_key_valid("image.sha256"));
	assert_true(job_key_valid("a-b.c_d.e9"));
	assert_false(job_key_valid("state"));       /* no dot: reserved for the record */
	assert_false(job_key_valid("Image.sha256"));
	assert_false(job_key_valid(".a"));
	assert_false(job_key_valid("a."));
	assert_false(job_key_valid("a..b"));
	assert_false(job_key_valid("a.b c"));
	assert_false(job_key_valid("a.b=c"));
	assert_false(job_key_valid("a.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));

	new_job(&j);
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "x.y", "1", &e), FW_ESTATE);
	HAS(e.msg, "identify");
	ok(&j, STEP_EV_START, STEP_IDENTIFY, NULL, NULL, 0);
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "x.y", "1", &e), FW_OK);
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "a.b", "2", &e), FW_OK);
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "x.y", "3", &e), FW_OK);
	assert_int_equal(j.step[STEP_IDENTIFY].nev, 2);
	assert_string_equal(job_evidence_get(&j, STEP_IDENTIFY, "x.y"), "3");
	assert_string_equal(j.step[STEP_IDENTIFY].ev[0].key, "x.y"); /* first-recorded order */
	assert_null(job_evidence_get(&j, STEP_IDENTIFY, "q.q"));
	assert_null(job_evidence_get(&j, 99, "x.y"));
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "bad key", "v", &e), FW_EINVAL);
	HAS(e.msg, "bad key");
	assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, "x.z", NULL, &e), FW_EINVAL);
	assert_int_equal(job_evidence_set(&j, -1, "x.z", "v", &e), FW_EINVAL);

	assert_int_equal(job_copy(&c, &j, NULL), FW_OK);
	assert_true(job_equal(&c, &j));
	assert_int_equal(job_evidence_set(&c, STEP_IDENTIFY, "x.y", "4", NULL), FW_OK);
	assert_false(job_equal(&c, &j)); /* a deep copy */
	assert_string_equal(job_evidence_get(&j, STEP_IDENTIFY, "x.y"), "3");
	job_free(&c);
	job_free(&j);
}

static void test_times(void **state)
{
	static const struct { int64_t t; const char *s; } known[] = {
		{0, "1970-01-01T00:00:00Z"},
		{T0, "2024-05-01T10:00:00Z"},
		{INT64_C(951782400), "2000-02-29T00:00:00Z"},
		{INT64_C(1709251199), "2024-02-29T23:59:59Z"},
		{INT64_C(4102444800), "2100-01-01T00:00:00Z"},
		{INT64_C(253402300799), "9999-12-31T23:59:59Z"},
	};
	static const char *const bad[] = {
		"2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
		"2024-05-01T24:00:00Z", "2024-05-01T10:60:00Z", "2024-05-01 10:00:00Z",
		"2024-05-01T10:00:00", "2024-05-01T10:00:00Z ", "1969-12-31T23:59:59Z",
		"2024-5-01T10:00:00Z", "2024-00-01T10:00:00Z", "+024-05-01T10:00:00Z", "",
	};
	char s[21];
	int64_t t;

	(void)state;
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		job_time_format(known[i].t, s);
		assert_string_equal(s, known[i].s);
		assert_int_equal(job_time_parse(known[i].s, &t), FW_OK);
		assert_int_equal(t, known[i].t);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (job_time_parse(bad[i], &t) == FW_OK)
			fail_msg("\"%s\" was accepted as a time", bad[i]);
	/* Every day of four years round-trips (leap days, month ends). */
	for (int64_t d = 0; d < 4 * 366; d++) {
		int64_t v = T0 + d * 86400 + d * 37 % 86400;
		job_time_format(v, s);
		assert_int_equal(job_time_parse(s, &t), FW_OK);
		assert_int_equal(t, v);
	}
}

/* ---- the journal ------------------------------------------------------- */

/* Backup done, flash running: the moment a crash hurts most. */
static void mid_job(struct job *j)
{
	new_job(j);
	advance(j, STEP_BACKUP);
	ok(j, STEP_EV_START, STEP_BACKUP, NULL, NULL, 0);
	ok(j, STEP_EV_FAIL, STEP_BACKUP, "read timed out at 0x7000", NULL, 0);
	ok(j, STEP_EV_RETRY, STEP_BACKUP, NULL, NULL, 0);
	done_ev(j, STEP_BACKUP);
	ok(j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	assert_int_equal(job_evidence_set(j, STEP_FLASH, "flash.written", "0x4000", NULL), FW_OK);
}

static void test_mid_job_reloads(void **state)
{
	struct job j, back;
	struct fw_err e = {0};
	size_t len;
	char *text;

	(void)state;
	mid_job(&j);
	text = format(&j, &len);
	HAS(text, "[job]\nformat = 1\nid = 20240501-100000-nodemcu\ncreated = 2024-05-01T10:00:00Z\n"
		  "profile = nodemcu-v3\nport = /dev/ttyUSB0\ndevice = pending\nunsafe = yes\n"
		  "outcome = active\ncurrent = flash\n");
	HAS(text, "[step.backup]\nstate = done\n");
	HAS(text, "attempts = 2\n");
	HAS(text, "[step.flash]\nstate = running\nstarted = ");
	HAS(text, "flash.written = 0x4000\n");
	HAS(text, "[step.reboot]\nstate = pending\n");
	assert_null(strstr(text, "[restore]"));

	assert_int_equal(job_journal_parse(text, len, &back, &e), FW_OK);
	/* Every field, one by one (job_equal is tested against this too). */
	assert_string_equal(back.id, j.id);
	assert_int_equal(back.created, j.created);
	assert_string_equal(back.profile, j.profile);
	assert_string_equal(back.port, j.port);
	assert_int_equal(back.outcome, j.outcome);
	assert_null(back.abort_reason);
	assert_int_equal(back.restore_from, STEP_NONE);
	for (int i = 0; i <= STEP_RESTORE; i++) {
		const struct job_step *a = job_step_cget(&j, i), *b = job_step_cget(&back, i);

		assert_int_equal(b->state, a->state);
		if (a->reason)
			assert_string_equal(b->reason, a->reason);
		else
			assert_null(b->reason);
		assert_int_equal(b->started, a->started);
		assert_int_equal(b->finished, a->finished);
		assert_int_equal(b->attempts, a->attempts);
		assert_int_equal(b->nev, a->nev);
		for (size_t k = 0; k < a->nev; k++) {
			assert_string_equal(b->ev[k].key, a->ev[k].key);
			assert_string_equal(b->ev[k].value, a->ev[k].value);
		}
	}
	assert_true(job_equal(&j, &back));
	assert_int_equal(job_resume_step(&back), STEP_FLASH);
	assert_int_equal(back.step[STEP_FLASH].state, STEP_RUNNING);
	assert_int_equal(steps_device(&back), STEP_DEVICE_PENDING);
	assert_int_equal(back.step[STEP_BACKUP].attempts, 2);
	assert_string_equal(job_evidence_get(&back, STEP_BACKUP, STEP_KEY_BACKUP_SHA256), HASH_B);

	/* The reloaded job carries on: the interrupted write is reported
	 * failed, and the recovery choices are offered. */
	{
		struct step_input in = {.event = STEP_EV_FAIL, .step = STEP_FLASH,
					.reason = "interrupted", .now = clock_now + 60};
		struct step_choice c[STEP_CHOICES_MAX];

		assert_int_equal(steps_apply(&back, &in, &e), FW_OK);
		assert_int_equal(steps_choices(&back, c), 3);
		assert_int_equal(c[0].event, STEP_EV_RESTORE);
	}
	job_free(&back);
	free(text);
	job_free(&j);
}

static void test_roundtrip_after_every_transition(void **state)
{
	struct job j;
	struct step_kv consent = {STEP_KEY_BACKUP_CONSENT, "YES, WITHOUT BACKUP"};
	struct step_kv kv[4];

	(void)state;
	/* The whole happy path. */
	new_job(&j);
	roundtrip(&j);
	for (int i = 0; i < STEP_COUNT; i++) {
		ok(&j, STEP_EV_START, i, NULL, NULL, 0);
		roundtrip(&j);
		done_ev(&j, i);
		roundtrip(&j);
	}
	assert_int_equal(j.outcome, JOB_COMPLETE);
	job_free(&j);

	/* Write failures, a failed restore, its retry, the restored end. */
	new_job(&j);
	advance(&j, STEP_FLASH);
	ok(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	ok(&j, STEP_EV_FAIL, STEP_FLASH, "write failed", NULL, 0);
	roundtrip(&j);
	ok(&j, STEP_EV_RETRY, STEP_FLASH, NULL, NULL, 0);
	roundtrip(&j);
	ok(&j, STEP_EV_FAIL, STEP_FLASH, "write failed again", NULL, 0);
	ok(&j, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0);
	roundtrip(&j);
	ok(&j, STEP_EV_FAIL, STEP_RESTORE, "no answer", NULL, 0);
	roundtrip(&j);
	ok(&j, STEP_EV_RETRY, STEP_RESTORE, NULL, NULL, 0);
	roundtrip(&j);
	done_ev(&j, STEP_RESTORE);
	assert_int_equal(j.outcome, JOB_RESTORED);
	roundtrip(&j);
	job_free(&j);

	/* Skips with consent, then an abort during the write. */
	new_job(&j);
	advance(&j, STEP_PREPARE);
	ok(&j, STEP_EV_SKIP, STEP_PREPARE, "checked by hand", NULL, 0);
	ok(&j, STEP_EV_START, STEP_BOOTLOADER, NULL, NULL, 0);
	done_ev(&j, STEP_BOOTLOADER);
	ok(&j, STEP_EV_SKIP, STEP_BACKUP, "loader cannot read", &consent, 1);
	roundtrip(&j);
	ok(&j, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	ok(&j, STEP_EV_ABORT, STEP_FLASH, "power cut", NULL, 0);
	assert_true(steps_device_unsafe(steps_device(&j)));
	roundtrip(&j);
	job_free(&j);

	/* An abort before anything was written; a failed verification. */
	new_job(&j);
	ok(&j, STEP_EV_ABORT, STEP_IDENTIFY, NULL, NULL, 0);
	roundtrip(&j);
	job_free(&j);
	new_job(&j);
	advance(&j, STEP_VERIFY);
	ok(&j, STEP_EV_START, STEP_VERIFY, NULL, NULL, 0);
	kv[0] = (struct step_kv){STEP_KEY_VERIFY_RESULT, "mismatch at 0x1000"};
	ok(&j, STEP_EV_FAIL, STEP_VERIFY, "contents differ", kv, 1);
	roundtrip(&j);
	job_free(&j);
}

static void test_truncation_at_every_offset(void **state)
{
	struct job j, back;
	struct fw_err e = {0};
	size_t len;
	char *text;

	(void)state;
	mid_job(&j);
	text = format(&j, &len);
	for (size_t cut = 0; cut < len; cut++) {
		char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees over-reads */

		assert_non_null(copy);
		memcpy(copy, text, cut);
		if (job_journal_parse(copy, cut, &back, &e) != FW_EJOURNAL)
			fail_msg("a journal cut to %zu of %zu bytes was accepted", cut, len);
		job_free(&back);
		free(copy);
	}
	assert_int_equal(job_journal_parse(text, len, &back, &e), FW_OK);
	job_free(&back);
	/* Something appended after the trailer is damage too. */
	text = realloc(text, len + 2);
	assert_non_null(text);
	memcpy(text + len, "x\n", 2);
	assert_int_equal(job_journal_parse(text, len + 2, &back, &e), FW_EJOURNAL);
	free(text);
	job_free(&j);
}

static void test_flipped_byte_anywhere(void **state)
{
	struct job j, back;
	struct fw_err e = {0};
	size_t len;
	char *text;

	(void)state;
	mid_job(&j);
	text = format(&j, &len);
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			text[i] ^= (char)(1u << bit);
			if (job_journal_parse(text, len, &back, &e) != FW_EJOURNAL)
				fail_msg("flipping bit %u of byte %zu was not detected", bit, i);
			text[i] ^= (char)(1u << bit);
			job_free(&back);
		}
	}
	/* A body change is reported as a checksum mismatch. */
	text[20] ^= 1;
	assert_int_equal(job_journal_parse(text, len, &back, &e), FW_EJOURNAL);
	HAS(e.msg, "SHA-256 does not match");
	job_free(&back);
	free(text);
	job_free(&j);
}

static void test_escaping_roundtrip(void **state)
{
	static const char *const odd[] = {
		"line one\nline two\r\n",
		"a = b = c",
		"[step.flash]",
		"\n[job]\nid = evil\n",
		"# sha256: 0000000000000000000000000000000000000000000000000000000000000000",
		"back\\slash \\n not a newline",
		"tab\there",
		"ctrl \x01\x02\x1b[31m del \x7f",
		"Grüße, ✓ 𝄞 日本語",
		"bad utf-8 \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xc0\xaf",
		"  leading and trailing  ",
		"",
		"=",
		"\\x41",
	};
	struct job j, back;
	struct fw_err e = {0};
	char key[32];
	size_t len;
	char *text;

	(void)state;
	new_job(&j);
	strcpy(j.profile, "odd = [profile]\\");
	strcpy(j.port, "/dev/serial/by-id/usb-Ünïcode\tport");
	ok(&j, STEP_EV_START, STEP_IDENTIFY, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		snprintf(key, sizeof key, "odd.v%zu", i);
		assert_int_equal(job_evidence_set(&j, STEP_IDENTIFY, key, odd[i], NULL), FW_OK);
	}
	ok(&j, STEP_EV_FAIL, STEP_IDENTIFY, "reason with\nnewline and = and [x]", NULL, 0);
	ok(&j, STEP_EV_ABORT, STEP_IDENTIFY, "abort \\ reason\n[job]", NULL, 0);
	text = format(&j, &len);

	/* Values never break a line or start a section. */
	assert_int_equal(strstr(text, "\n[job]\n") - text, strstr(text, "[job]") - text - 1);
	assert_null(strstr(strstr(text, "[job]") + 1, "\n[job]"));
	HAS(text, "odd.v0 = line one\\nline two\\r\\n\n");
	HAS(text, "odd.v1 = a = b = c\n");
	HAS(text, "odd.v5 = back\\\\slash \\\\n not a newline\n");
	HAS(text, "odd.v7 = ctrl \\x01\\x02\\x1b[31m del \\x7f\n");
	HAS(text, "odd.v8 = Grüße, ✓ 𝄞 日本語\n");                  /* UTF-8 stays readable */
	HAS(text, "odd.v9 = bad utf-8 \\xff\\xfe \\xc3 \\xe2\\x82 \\xed\\xa0\\x80 \\xc0\\xaf\n");
	HAS(text, "odd.v11 = \n");
	HAS(text, "odd.v13 = \\\\x41\n");

	assert_int_equal(job_journal_parse(text, len, &back, &e), FW_OK);
	assert_true(job_equal(&j, &back));
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		snprintf(key, sizeof key, "odd.v%zu", i);
		assert_string_equal(job_evidence_get(&back, STEP_IDENTIFY, key), odd[i]);
	}
	assert_string_equal(back.profile, "odd = [profile]\\");
	assert_string_equal(back.port, "/dev/serial/by-id/usb-Ünïcode\tport");
	assert_string_equal(back.abort_reason, "abort \\ reason\n[job]");
	job_free(&back);
	free(text);
	job_free(&j);
}

static void test_resigned_edits_refused(void **state)
{
	struct job j, aborted, restoring;
	char big[400];

	(void)state;
	mid_job(&j);
	/* Syntax. */
	edited_refused(&j, "[step.reboot]", "[step.rebot]", "unknown section [step.rebot]");
	edited_refused(&j, "[step.reboot]", "[reboot]", "unknown section");
	edited_refused(&j, "[step.reboot]", "[step.reboot", "section header");
	edited_refused(&j, "state = running", "state = running\nstate = running", "twice");
	edited_refused(&j, "state = running", "state = running\ncolour = blue", "unknown key 'colour'");
	edited_refused(&j, "state = running", "state = running\nflash.written = 1", "evidence");
	edited_refused(&j, "port = ", "color = red\nport = ", "unknown key 'color' in [job]");
	edited_refused(&j, "state = running", "state = runnin", "state \"runnin\"");
	edited_refused(&j, "state = running", "state=running", "key = value");
	edited_refused(&j, "state = running", "state = running\\q", "unknown escape");
	edited_refused(&j, "state = running", "state = running\\", "backslash");
	edited_refused(&j, "state = running", "state = run\x01ning", "control character");
	edited_refused(&j, "state = running", "state = run\\x00ning", "\\x");
	edited_refused(&j, "format = 1", "format = 2", "format");
	edited_refused(&j, "format = 1\n", "", "[job] has no format");
	edited_refused(&j, "created = 2024-05-01T10:00:00Z", "created = yesterday", "created");
	edited_refused(&j, "attempts = 2", "attempts = 0", "attempts");
	edited_refused(&j, "attempts = 2", "attempts = -2", "attempts");
	edited_refused(&j, "[job]", "[job]\n[job]", "a second [job]");
	edited_refused(&j, "[job]", "id = x\n[job]", "before any section");
	edited_refused(&j, "id = 20240501-100000-nodemcu", "id = ../../etc", "job id");
	memset(big, 'p', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	{
		char line[sizeof big + 16];
		snprintf(line, sizeof line, "profile = %s", big);
		edited_refused(&j, "profile = nodemcu-v3", line, "longer than");
	}

	/* Missing pieces. */
	edited_refused(&j, "[step.document]\nstate = pending\n", "", "no [step.document]");
	edited_refused(&j, "[step.reboot]\nstate = pending\n", "[step.reboot]\n", "[step.reboot] has no state");

	/* Impossible states with a valid checksum. */
	edited_refused(&j, "[step.backup]\nstate = done", "[step.backup]\nstate = pending",
		       "pending");
	edited_refused(&j, "[step.flash]\nstate = running", "[step.flash]\nstate = done\nfinished = 2024-05-01T11:00:00Z",
		       "current step is flash, but its steps say reboot");
	edited_refused(&j, "[step.reboot]\nstate = pending", "[step.reboot]\nstate = done\nattempts = 1\n"
		       "started = 2024-05-01T11:00:00Z\nfinished = 2024-05-01T11:00:00Z",
		       "reboot is done while step flash before it is running");
	edited_refused(&j, "backup.sha256 = ", "backup.sha = ", "backup.sha256");
	edited_refused(&j, "identity.match = yes", "identity.match = no", "identity.match");
	edited_refused(&j, "device = pending", "device = untouched", "device");
	edited_refused(&j, "unsafe = yes", "unsafe = no", "device");
	edited_refused(&j, "current = flash", "current = reboot", "current step");
	edited_refused(&j, "outcome = active", "outcome = complete", "complete");
	edited_refused(&j, "outcome = active", "outcome = aborted", "aborted");
	edited_refused(&j, "current = flash\n", "current = flash\nreason = why\n", "active");
	edited_refused(&j, "[step.prepare]\nstate = done", "[step.prepare]\nstate = skipped",
		       "prepare");
	edited_refused(&j, "[step.document]\nstate = pending",
		       "[step.document]\nstate = pending\n\n[restore]\nfrom = flash\nstate = running\n"
		       "attempts = 1\nstarted = 2024-05-01T11:00:00Z", "restore");

	/* An aborted job, and a job in the middle of a restore. */
	job_copy(&aborted, &j, NULL);
	ok(&aborted, STEP_EV_ABORT, STEP_FLASH, "stop", NULL, 0);
	roundtrip(&aborted);
	edited_refused(&aborted, "reason = stop\n", "", "aborted");
	edited_refused(&aborted, "[step.flash]\nstate = failed", "[step.flash]\nstate = running",
		       "running");
	job_copy(&restoring, &j, NULL);
	ok(&restoring, STEP_EV_FAIL, STEP_FLASH, "bad", NULL, 0);
	ok(&restoring, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0);
	roundtrip(&restoring);
	edited_refused(&restoring, "from = flash", "from = verify", "restore");
	edited_refused(&restoring, "from = flash\n", "", "[restore] needs");
	edited_refused(&restoring, "[restore]\nfrom = flash\nstate = running",
		       "[restore]\nfrom = flash\nstate = skipped", "restore");
	edited_refused(&restoring, "[restore]", "[restore]\n[restore]", "a second [restore]");

	job_free(&restoring);
	job_free(&aborted);
	job_free(&j);
}

static void test_garbage_refused(void **state)
{
	static const char *const junk[] = {
		"", "\n", "[job]\n", "# sha256: \n",
		"# sha256: 0000000000000000000000000000000000000000000000000000000000000000\n",
	};
	struct job j;
	struct fw_err e = {0};
	char *text;

	(void)state;
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		assert_int_equal(job_journal_parse(junk[i], strlen(junk[i]), &j, &e), FW_EJOURNAL);
		job_free(&j);
	}
	assert_int_equal(job_journal_parse(NULL, 0, &j, &e), FW_EJOURNAL);
	/* A correctly signed but empty body has no [job]. */
	text = resign("");
	assert_int_equal(job_journal_parse(text, strlen(text), &j, &e), FW_EJOURNAL);
	HAS(e.msg, "[job]");
	free(text);
	/* The trailer must be lowercase hex and exactly one line. */
	text = resign("# only a comment\n");
	for (char *p = strstr(text, "# sha256: ") + 10; *p != '\n'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(job_journal_parse(text, strlen(text), &j, &e), FW_EJOURNAL);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_validates),
		cmocka_unit_test(test_evidence),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_mid_job_reloads),
		cmocka_unit_test(test_roundtrip_after_every_transition),
		cmocka_unit_test(test_truncation_at_every_offset),
		cmocka_unit_test(test_flipped_byte_anywhere),
		cmocka_unit_test(test_escaping_roundtrip),
		cmocka_unit_test(test_resigned_edits_refused),
		cmocka_unit_test(test_garbage_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
