/* Reports and history from job records built through the step machine:
 * the verdict in every state that matters, the Markdown facts (and no
 * "(null)"), JSON that a strict parser accepts with every hostile byte
 * escaped, and the job store's listing, finding and report files. */
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
#include "report.h"

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
#define T0 INT64_C(1714557600) /* 2024-05-01T10:00:00Z */

/* ---- building jobs through the machine --------------------------------- */

struct build {
	struct job j;
	int64_t now;
};

static void apply(struct build *b, enum step_event ev, int step, const char *reason,
		  const struct step_kv *kv, size_t n)
{
	struct step_input in = {.event = ev, .step = step, .reason = reason, .evidence = kv,
				.nevidence = n, .now = b->now += 7};
	struct fw_err e = {0};

	if (steps_apply(&b->j, &in, &e) != FW_OK)
		fail_msg("%s %s: %s", steps_event_name(ev), steps_info(step)->name, e.msg);
}

#define KV(a) a, sizeof a / sizeof a[0]

static const struct step_kv ev_identify[] = {
	{"operator.user", "alice"},
	{"operator.host", "bench-3"},
	{"profile.name", "NodeMCU 1.0 (ESP-12E)"},
	{"profile.path", "profiles/nodemcu-v1.ini"},
	{"firmware.count", "2"},
	{"firmware.1.path", "build/app.bin"},
	{"firmware.1.addr", "0x000000"},
	{"firmware.1.size", "262144"},
	{"firmware.1.sha256", HASH_A},
	{"firmware.1.partition", "app"},
	{"firmware.2.path", "fs|data.bin"},
	{"firmware.2.addr", "0x300000"},
	{"firmware.2.size", "65536"},
	{"firmware.2.sha256", HASH_B},
};
static const struct step_kv ev_image[] = {
	{STEP_KEY_IMAGE_SHA256, HASH_A},
	{"image.source", "published SHA-256 (--sha256)"},
	{"image.signature", "none"},
};
static const struct step_kv ev_prepare[] = {
	{"port.description", "CP2102 USB to UART"},
	{"conditions.confirmed", "yes"},
};
static const struct step_kv ev_boot_esp[] = {
	{STEP_KEY_IDENTITY_MATCH, "yes"},
	{"device.chip", "ESP8266EX"},
	{"device.mac", "5c:cf:7f:aa:bb:cc"},
	{"device.flash", "4 MB"},
	{"device.loader", "ROM + helper"},
};
static const struct step_kv ev_boot_avr[] = {
	{STEP_KEY_IDENTITY_MATCH, "yes"},
	{"device.chip", "ATmega328P"},
	{"device.signature", "1e950f"},
	{"device.loader", "optiboot"},
};
static const struct step_kv ev_backup[] = {
	{STEP_KEY_BACKUP_PATH, "backup.hex"},
	{STEP_KEY_BACKUP_SHA256, HASH_B},
	{"backup.ranges", "0x000000+0x400000"},
};
static const struct step_kv ev_flash[] = {{"flash.bytes", "327680"}};
static const struct step_kv ev_reboot[] = {{"boot.banner", "seen"}};
static const struct step_kv ev_verify[] = {
	{STEP_KEY_VERIFY_METHOD, "md5"},
	{STEP_KEY_VERIFY_RESULT, "match"},
};
static const struct step_kv ev_document[] = {{"report.markdown", "report.md"}};
static const struct step_kv ev_restore[] = {
	{STEP_KEY_RESTORE_METHOD, "md5"},
	{STEP_KEY_RESTORE_RESULT, "match"},
};

static void done(struct build *b, int step, const struct step_kv *kv, size_t n)
{
	apply(b, STEP_EV_START, step, NULL, NULL, 0);
	apply(b, STEP_EV_DONE, step, NULL, kv, n);
}

static void start(struct build *b, const char *id, const char *profile, int64_t created)
{
	struct fw_err e = {0};

	b->now = created;
	if (job_start(&b->j, id, profile, "/dev/ttyUSB0", created, &e) != FW_OK)
		fail_msg("job_start: %s", e.msg);
}

/* Through the bootloader step, done: the device was identified. */
static void to_bootloader_done(struct build *b, bool avr)
{
	done(b, STEP_IDENTIFY, KV(ev_identify));
	done(b, STEP_VERIFY_IMAGE, KV(ev_image));
	done(b, STEP_PREPARE, KV(ev_prepare));
	if (avr)
		done(b, STEP_BOOTLOADER, KV(ev_boot_avr));
	else
		done(b, STEP_BOOTLOADER, KV(ev_boot_esp));
}

/* Through the backup step, done: the device is untouched and writable. */
static void to_backup_done(struct build *b, bool avr)
{
	to_bootloader_done(b, avr);
	done(b, STEP_BACKUP, KV(ev_backup));
}

static void make_complete(struct build *b)
{
	start(b, "20240501-100000-nodemcu", "nodemcu-v1", T0);
	to_backup_done(b, false);
	done(b, STEP_FLASH, KV(ev_flash));
	done(b, STEP_REBOOT, KV(ev_reboot));
	done(b, STEP_VERIFY, KV(ev_verify));
	done(b, STEP_DOCUMENT, KV(ev_document));
	assert_int_equal(b->j.outcome, JOB_COMPLETE);
}

static void make_aborted_backup(struct build *b)
{
	start(b, "20240502-100000-uno", "arduino-uno-r3", T0 + 86400);
	to_bootloader_done(b, true);
	apply(b, STEP_EV_START, STEP_BACKUP, NULL, NULL, 0);
	apply(b, STEP_EV_FAIL, STEP_BACKUP, "no answer to read page 12", NULL, 0);
	apply(b, STEP_EV_ABORT, STEP_BACKUP, "the board was replaced", NULL, 0);
	assert_int_equal(b->j.outcome, JOB_ABORTED);
}

static void make_failed_flash(struct build *b)
{
	start(b, "20240503-100000-nodemcu", "nodemcu-v1", T0 + 2 * 86400);
	to_backup_done(b, false);
	apply(b, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
	apply(b, STEP_EV_FAIL, STEP_FLASH, "write failed at 0x001000: timeout", NULL, 0);
}

static void make_restored(struct build *b)
{
	make_failed_flash(b);
	apply(b, STEP_EV_RESTORE, STEP_FLASH, NULL, NULL, 0);
	apply(b, STEP_EV_DONE, STEP_RESTORE, NULL, KV(ev_restore));
	assert_int_equal(b->j.outcome, JOB_RESTORED);
}

static void make_interrupted(struct build *b)
{
	start(b, "20240504-100000-nodemcu", "nodemcu-v1", T0 + 3 * 86400);
	to_backup_done(b, false);
	apply(b, STEP_EV_START, STEP_FLASH, NULL, NULL, 0);
}

/* An old-bootloader board whose EEPROM was backed up, and an Optiboot one
 * whose loader could not read it. */
static void make_avr_eeprom(struct build *b)
{
	static const struct step_kv ev[] = {
		{STEP_KEY_BACKUP_PATH, "backup.hex"},
		{STEP_KEY_BACKUP_SHA256, HASH_B},
		{"eeprom.path", "eeprom.bin"},
		{"eeprom.sha256", HASH_A},
		{"eeprom.bytes", "1024"},
	};

	start(b, "20240507-100000-nano", "arduino-nano-oldboot", T0 + 6 * 86400);
	to_bootloader_done(b, true);
	done(b, STEP_BACKUP, KV(ev));
}

static void make_avr_no_eeprom(struct build *b)
{
	static const struct step_kv ev[] = {
		{STEP_KEY_BACKUP_PATH, "backup.hex"},
		{STEP_KEY_BACKUP_SHA256, HASH_B},
		{"eeprom.note", "not backed up: Optiboot 4.4 cannot read the EEPROM"},
	};

	start(b, "20240508-100000-uno", "arduino-uno-r3", T0 + 7 * 86400);
	to_bootloader_done(b, true);
	done(b, STEP_BACKUP, KV(ev));
}

static void make_empty(struct build *b)
{
	start(b, "20240505-100000-bare", "esp01", T0 + 4 * 86400);
}

/* ---- a strict JSON checker (RFC 8259, UTF-8) ---------------------------- */

struct jp {
	const unsigned char *s;
	size_t i, n;
	int depth;
};

static void jws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\r' ||
			       p->s[p->i] == '\t'))
		p->i++;
}

static bool jvalue(struct jp *p);

static bool jlit(struct jp *p, const char *w)
{
	size_t l = strlen(w);

	if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0)
		return false;
	p->i += l;
	return true;
}

static bool jhex4(struct jp *p)
{
	for (int k = 0; k < 4; k++, p->i++)
		if (p->i >= p->n || !strchr("0123456789abcdefABCDEF", p->s[p->i]) || !p->s[p->i])
			return false;
	return true;
}

static bool jstring(struct jp *p)
{
	if (p->i >= p->n || p->s[p->i] != '"')
		return false;
	p->i++;
	while (p->i < p->n) {
		unsigned char c = p->s[p->i];

		if (c == '"') {
			p->i++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			p->i++;
			if (p->i >= p->n)
				return false;
			c = p->s[p->i++];
			if (c == 'u') {
				if (!jhex4(p))
					return false;
			} else if (!strchr("\"\\/bfnrt", c) || !c) {
				return false;
			}
			continue;
		}
		if (c >= 0x80) {
			size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
			if (!len || c > 0xF4 || p->n - p->i < len)
				return false;
			for (size_t k = 1; k < len; k++)
				if ((p->s[p->i + k] & 0xC0) != 0x80)
					return false;
			p->i += len;
			continue;
		}
		p->i++;
	}
	return false;
}

static bool jnumber(struct jp *p)
{
	size_t st = p->i;

	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (p->i < p->n && p->s[p->i] == '0')
		p->i++;
	else if (p->i < p->n && p->s[p->i] >= '1' && p->s[p->i] <= '9')
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	else
		return false;
	return p->i > st;
}

static bool jcontainer(struct jp *p, char open, char close, bool members)
{
	if (p->s[p->i] != open || ++p->depth > 32)
		return false;
	p->i++;
	jws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
		p->depth--;
		return true;
	}
	for (;;) {
		jws(p);
		if (members) {
			if (!jstring(p))
				return false;
			jws(p);
			if (p->i >= p->n || p->s[p->i++] != ':')
				return false;
		}
		if (!jvalue(p))
			return false;
		jws(p);
		if (p->i >= p->n)
			return false;
		if (p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->s[p->i] != close)
			return false;
		p->i++;
		p->depth--;
		return true;
	}
}

static bool jvalue(struct jp *p)
{
	jws(p);
	if (p->i >= p->n)
		return false;
	switch (p->s[p->i]) {
	case '{': return jcontainer(p, '{', '}', true);
	case '[': return jcontainer(p, '[', ']', false);
	case '"': return jstring(p);
	case 't': return jlit(p, "true");
	case 'f': return jlit(p, "false");
	case 'n': return jlit(p, "null");
	default: return jnumber(p);
	}
}

static bool json_valid(const char *s)
{
	struct jp p = {(const unsigned char *)s, 0, strlen(s), 0};

	if (!jvalue(&p))
		return false;
	jws(&p);
	return p.i == p.n;
}

static void test_json_checker_rejects(void **state)
{
	(void)state;
	/* The checker must be able to fail, or the JSON tests prove nothing. */
	assert_true(json_valid("{\"a\":[1,true,null,\"x\\u0001\"]}"));
	assert_false(json_valid("{\"a\":\"line\nbreak\"}"));
	assert_false(json_valid("{\"a\":\"bad \\x01\"}"));
	assert_false(json_valid("{\"a\":1,}"));
	assert_false(json_valid("{\"a\":\"\xff\"}"));
	assert_false(json_valid("{\"a\":(null)}"));
	assert_false(json_valid("{\"a\":1} x"));
}

/* ---- verdicts ---------------------------------------------------------- */

static void verdict_of(void (*make)(struct build *), char *out, size_t n)
{
	struct build b;

	job_init(&b.j);
	make(&b);
	report_verdict(&b.j, out, n);
	job_free(&b.j);
}

static void test_verdicts(void **state)
{
	char v[REPORT_VERDICT_MAX];

	(void)state;
	verdict_of(make_complete, v, sizeof v);
	assert_string_equal(v, "complete: firmware written and verified");
	verdict_of(make_aborted_backup, v, sizeof v);
	assert_string_equal(v, "aborted at step backup: device untouched");
	verdict_of(make_failed_flash, v, sizeof v);
	assert_string_equal(v, "failed at step flash: device may be unsafe, resume with: "
			       "flashwise resume 20240503-100000-nodemcu");
	verdict_of(make_restored, v, sizeof v);
	assert_string_equal(v, "restored: the backup was written back and verified");
	verdict_of(make_interrupted, v, sizeof v);
	assert_string_equal(v, "stopped at step flash (running): device may be unsafe, resume "
			       "with: flashwise resume 20240504-100000-nodemcu");
	verdict_of(make_empty, v, sizeof v);
	assert_string_equal(v, "stopped at step identify (pending): device untouched, resume "
			       "with: flashwise resume 20240505-100000-bare");
	/* Cut to the buffer, still terminated. */
	verdict_of(make_complete, v, 9);
	assert_string_equal(v, "complete");
}

static void test_verdict_abort_after_write_is_unsafe(void **state)
{
	struct build b;
	char v[REPORT_VERDICT_MAX];

	(void)state;
	job_init(&b.j);
	make_failed_flash(&b);
	apply(&b, STEP_EV_ABORT, STEP_FLASH, "giving up", NULL, 0);
	report_verdict(&b.j, v, sizeof v);
	assert_string_equal(v, "aborted at step flash: device may be unsafe");
	job_free(&b.j);

	/* Skipped backup: the verdict says there is none to go back to. */
	job_init(&b.j);
	start(&b, "20240506-100000-nobackup", "arduino-uno-r3", T0);
	to_bootloader_done(&b, true);
	{
		const struct step_kv consent[] = {{STEP_KEY_BACKUP_CONSENT, "NO BACKUP"}};
		apply(&b, STEP_EV_SKIP, STEP_BACKUP, "loader cannot read", KV(consent));
	}
	done(&b, STEP_FLASH, KV(ev_flash));
	done(&b, STEP_REBOOT, KV(ev_reboot));
	done(&b, STEP_VERIFY, KV(ev_verify));
	done(&b, STEP_DOCUMENT, NULL, 0);
	report_verdict(&b.j, v, sizeof v);
	assert_string_equal(v, "complete: firmware written and verified (no backup: skipped "
			       "with consent)");
	job_free(&b.j);
}

/* ---- Markdown ---------------------------------------------------------- */

static char *markdown_of(void (*make)(struct build *), const char *dir)
{
	struct build b;
	struct strbuf out = STRBUF_INIT;
	struct fw_err e = {0};

	job_init(&b.j);
	make(&b);
	assert_int_equal(report_markdown(&b.j, dir, &out, &e), FW_OK);
	job_free(&b.j);
	assert_null(strstr(strbuf_str(&out), "(null)"));
	return out.s;
}

static void test_markdown_complete(void **state)
{
	char *md = markdown_of(make_complete, "/var/jobs/20240501-100000-nodemcu");
	static const char *const facts[] = {
		"# flashwise job report: 20240501-100000-nodemcu",
		"**complete: firmware written and verified**",
		"- **Created:** 2024-05-01T10:00:00Z (UTC)",
		"- **Operator:** alice", "- **Host:** bench-3",
		"- **Profile:** nodemcu-v1", "NodeMCU 1.0 (ESP-12E)",
		"- **Port:** /dev/ttyUSB0", "CP2102 USB to UART",
		"- **Chip:** ESP8266EX", "- **MAC:** 5c:cf:7f:aa:bb:cc", "- **Flash:** 4 MB",
		"- **Loader:** ROM + helper",
		"| 1 | build/app.bin | 0x000000 | 262144 | " HASH_A " | app |",
		/* A pipe in a file name does not split the row. */
		"| 2 | fs\\|data.bin | 0x300000 | 65536 | " HASH_B " |  |",
		"- **SHA-256:** " HASH_A, "published SHA-256 (--sha256)", "- **Signature:** none",
		"- **File:** /var/jobs/20240501-100000-nodemcu/backup.hex",
		"- **SHA-256:** " HASH_B, "- **Ranges:** 0x000000+0x400000",
		"| identify | done | 2024-05-01T10:00:07Z | 7 s | 1 |  |",
		"| flash | done |", "| document | done |",
		"- **Outcome:** complete", "- **Device state:** ok: written and verified",
		"### verify", "- `verify.result`: match",
	};

	(void)state;
	for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
		if (!strstr(md, facts[i]))
			fail_msg("missing \"%s\" in:\n%s", facts[i], md);
	/* Facts that were never recorded are not shown at all. */
	assert_null(strstr(md, "Signature:** 1e"));
	assert_null(strstr(md, "## Restore"));
	assert_null(strstr(md, "Abort reason"));
	assert_null(strstr(md, "Resume at step"));
	free(md);
}

static void test_markdown_failed_and_restored(void **state)
{
	char *md;

	(void)state;
	md = markdown_of(make_failed_flash, NULL);
	assert_non_null(strstr(md, "| flash | failed | 2024-05-03T10:01:17Z | 7 s | 1 | "
				   "write failed at 0x001000: timeout |"));
	assert_non_null(strstr(md, "may be unsafe"));
	assert_non_null(strstr(md, "- **Resume at step:** flash"));
	/* No folder given: the backup path as recorded. */
	assert_non_null(strstr(md, "- **File:** backup.hex\n"));
	free(md);

	md = markdown_of(make_restored, NULL);
	assert_non_null(strstr(md, "## Restore"));
	assert_non_null(strstr(md, "- **Chosen on the failed step:** flash"));
	assert_non_null(strstr(md, "- **Result:** match"));
	assert_non_null(strstr(md, "| restore | done |"));
	assert_non_null(strstr(md, "- **Outcome:** restored"));
	free(md);

	md = markdown_of(make_aborted_backup, NULL);
	assert_non_null(strstr(md, "- **Abort reason:** the board was replaced"));
	assert_non_null(strstr(md, "- **Signature:** 1e950f"));
	assert_non_null(strstr(md, "| backup | failed |"));
	assert_non_null(strstr(md, "- **Device state:** untouched"));
	free(md);
}

static void test_markdown_no_evidence(void **state)
{
	char *md = markdown_of(make_empty, "/x");

	(void)state;
	assert_non_null(strstr(md, "| identify | pending |  |  |  |  |"));
	assert_null(strstr(md, "## Device"));
	assert_null(strstr(md, "## Firmware"));
	assert_null(strstr(md, "## Backup"));
	assert_null(strstr(md, "Operator"));
	assert_null(strstr(md, "### "));
	free(md);
}

/* A job whose evidence holds every troublesome byte. */
static void make_hostile(struct build *b)
{
	const struct step_kv kv[] = {
		{"operator.user", "quote\" back\\slash"},
		{"operator.host", "line1\nline2\r\t|pipe"},
		{"profile.name", "bell\x07 esc\x1b[31m del\x7f"},
		{"device.chip", "<script>alert(1)</script> & co"},
		{"device.mac", "aa\x1b[2Jbb"},
		{"image.source", "bad utf8 \xff\xfe end"},
		{"boot.line", "caf\xc3\xa9 \xe2\x9c\x93"},
	};

	start(b, "20240507-100000-hostile", "nodemcu-v1", T0);
	done(b, STEP_IDENTIFY, KV(kv));
}

static void test_markdown_escaping(void **state)
{
	char *md = markdown_of(make_hostile, NULL);

	(void)state;
	assert_non_null(strstr(md, "quote\" back\\\\slash"));
	assert_non_null(strstr(md, "line1\\nline2\\r\\t\\|pipe"));
	assert_non_null(strstr(md, "bell\\x07 esc\\x1b\\[31m del\\x7f"));
	assert_non_null(strstr(md, "&lt;script>alert(1)&lt;/script> &amp; co"));
	assert_non_null(strstr(md, "- **MAC:** aa\\x1b\\[2Jbb\n"));
	assert_non_null(strstr(md, "bad utf8 \\xff\\xfe end"));
	assert_non_null(strstr(md, "caf\xc3\xa9 \xe2\x9c\x93"));
	/* No raw control byte made it into the file. */
	for (const char *p = md; *p; p++)
		assert_false((unsigned char)*p < 0x20 && *p != '\n');
	free(md);
}

/* ---- JSON -------------------------------------------------------------- */

static char *json_of(void (*make)(struct build *), const char *dir)
{
	struct build b;
	struct strbuf out = STRBUF_INIT;
	struct fw_err e = {0};

	job_init(&b.j);
	make(&b);
	assert_int_equal(report_json(&b.j, dir, &out, &e), FW_OK);
	job_free(&b.j);
	if (!json_valid(strbuf_str(&out)))
		fail_msg("not valid JSON:\n%s", strbuf_str(&out));
	assert_null(strstr(strbuf_str(&out), "(null)"));
	return out.s;
}

static void expect_all(const char *text, const char *const *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strstr(text, want[i]))
			fail_msg("missing %s in:\n%s", want[i], text);
}

static void test_json_complete(void **state)
{
	char *js = json_of(make_complete, "/var/jobs/20240501-100000-nodemcu");
	static const char *const want[] = {
		"{\"format\":1,\"id\":\"20240501-100000-nodemcu\",\"created\":\"2024-05-01T10:00:00Z\"",
		"\"operator\":{\"user\":\"alice\",\"host\":\"bench-3\"}",
		"\"profile\":\"nodemcu-v1\",\"profile_name\":\"NodeMCU 1.0 (ESP-12E)\"",
		"\"port\":\"/dev/ttyUSB0\"",
		"\"device\":{\"chip\":\"ESP8266EX\",\"mac\":\"5c:cf:7f:aa:bb:cc\",\"signature\":null,",
		"\"firmware\":[{\"path\":\"build/app.bin\",\"addr\":\"0x000000\",\"size\":262144,"
		"\"sha256\":\"" HASH_A "\",\"partition\":\"app\"},{\"path\":\"fs|data.bin\"",
		"\"partition\":null}]",
		"\"image\":{\"sha256\":\"" HASH_A "\"",
		"\"backup\":{\"state\":\"done\",\"path\":\"backup.hex\","
		"\"location\":\"/var/jobs/20240501-100000-nodemcu/backup.hex\",\"sha256\":\"" HASH_B "\"",
		"{\"name\":\"identify\",\"state\":\"done\",\"reason\":null,"
		"\"started\":\"2024-05-01T10:00:07Z\",\"finished\":\"2024-05-01T10:00:14Z\","
		"\"duration_s\":7,\"attempts\":1,\"evidence\":{\"operator.user\":\"alice\"",
		"\"restore\":null",
		"\"outcome\":\"complete\",\"abort_reason\":null,\"resume_step\":null,"
		"\"device_state\":\"ok\",\"unsafe\":false,"
		"\"verdict\":\"complete: firmware written and verified\"}\n",
	};

	(void)state;
	expect_all(js, want, sizeof want / sizeof want[0]);
	free(js);
}

static void test_json_states(void **state)
{
	char *js;

	(void)state;
	js = json_of(make_failed_flash, NULL);
	assert_non_null(strstr(js, "\"name\":\"flash\",\"state\":\"failed\","
				   "\"reason\":\"write failed at 0x001000: timeout\""));
	assert_non_null(strstr(js, "\"resume_step\":\"flash\",\"device_state\":\"failed\","
				   "\"unsafe\":true"));
	assert_non_null(strstr(js, "\"location\":\"backup.hex\""));
	free(js);

	js = json_of(make_restored, NULL);
	assert_non_null(strstr(js, "\"restore\":{\"from\":\"flash\",\"state\":\"done\""));
	assert_non_null(strstr(js, "\"method\":\"md5\",\"result\":\"match\"}"));
	assert_non_null(strstr(js, "\"device_state\":\"restored\",\"unsafe\":false"));
	free(js);

	js = json_of(make_interrupted, NULL);
	assert_non_null(strstr(js, "\"name\":\"flash\",\"state\":\"running\",\"reason\":null,"
				   "\"started\":\"2024-05-04T10:01:17Z\",\"finished\":null,"
				   "\"duration_s\":null,\"attempts\":1,\"evidence\":{}"));
	assert_non_null(strstr(js, "\"device_state\":\"pending\",\"unsafe\":true"));
	free(js);

	js = json_of(make_aborted_backup, NULL);
	assert_non_null(strstr(js, "\"outcome\":\"aborted\",\"abort_reason\":\"the board was "
				   "replaced\",\"resume_step\":null,\"device_state\":\"untouched\""));
	assert_non_null(strstr(js, "\"signature\":\"1e950f\""));
	free(js);

	js = json_of(make_empty, NULL);
	assert_non_null(strstr(js, "\"operator\":{\"user\":null,\"host\":null}"));
	assert_non_null(strstr(js, "\"firmware\":[]"));
	assert_non_null(strstr(js, "\"backup\":{\"state\":\"pending\",\"path\":null,"
				   "\"location\":null"));
	free(js);
}

static void test_eeprom_backup(void **state)
{
	char *md, *js;

	(void)state;
	md = markdown_of(make_avr_eeprom, "/var/jobs/20240507-100000-nano");
	assert_non_null(strstr(md, "- **EEPROM file:** /var/jobs/20240507-100000-nano/eeprom.bin\n"
			       "- **EEPROM SHA-256:** " HASH_A "\n- **EEPROM bytes:** 1024\n"));
	assert_null(strstr(md, "- **EEPROM:**"));
	free(md);
	js = json_of(make_avr_eeprom, "/var/jobs/20240507-100000-nano");
	assert_non_null(strstr(js, "\"eeprom\":{\"path\":\"eeprom.bin\",\"location\":"
			       "\"/var/jobs/20240507-100000-nano/eeprom.bin\",\"sha256\":\"" HASH_A
			       "\",\"bytes\":1024,\"note\":null}}"));
	free(js);

	md = markdown_of(make_avr_no_eeprom, NULL);
	assert_non_null(strstr(md, "- **EEPROM:** not backed up: Optiboot 4.4 cannot read the "
			       "EEPROM\n"));
	assert_null(strstr(md, "EEPROM file"));
	free(md);
	js = json_of(make_avr_no_eeprom, NULL);
	assert_non_null(strstr(js, "\"eeprom\":{\"path\":null,\"location\":null,\"sha256\":"
			       "null,\"bytes\":null,\"note\":\"not backed up: Optiboot 4.4 cannot "
			       "read the EEPROM\"}}"));
	free(js);

	/* An ESP job has no EEPROM: every member null. */
	js = json_of(make_complete, NULL);
	assert_non_null(strstr(js, "\"eeprom\":{\"path\":null,\"location\":null,\"sha256\":"
			       "null,\"bytes\":null,\"note\":null}}"));
	free(js);
}

static void test_json_escaping(void **state)
{
	char *js = json_of(make_hostile, NULL);
	static const char *const want[] = {
		"\"user\":\"quote\\\" back\\\\slash\"",
		"\"host\":\"line1\\nline2\\r\\t|pipe\"",
		"\"profile_name\":\"bell\\u0007 esc\\u001b[31m del\\u007f\"",
		"\"chip\":\"<script>alert(1)</script> & co\",\"mac\":\"aa\\u001b[2Jbb\"",
		"\"source\":\"bad utf8 \\ufffd\\ufffd end\"",
		"\"boot.line\":\"caf\xc3\xa9 \xe2\x9c\x93\"",
	};

	(void)state;
	expect_all(js, want, sizeof want / sizeof want[0]);
	free(js);
}

static void test_json_string_edges(void **state)
{
	struct strbuf b = STRBUF_INIT;

	(void)state;
	report_json_string(&b, "");
	report_json_string(&b, NULL);
	report_json_string(&b, "\xc3");        /* truncated sequence */
	report_json_string(&b, "\xed\xa0\x80"); /* a UTF-16 surrogate */
	report_json_string(&b, "\xf0\x9f\x94\xa5");
	assert_string_equal(strbuf_str(&b), "\"\"\"\"\"\\ufffd\"\"\\ufffd\\ufffd\\ufffd\""
			    "\"\xf0\x9f\x94\xa5\"");
	strbuf_free(&b);
}

static void test_report_bad_args(void **state)
{
	struct strbuf b = STRBUF_INIT;
	struct fw_err e = {0};

	(void)state;
	assert_int_equal(report_markdown(NULL, NULL, &b, &e), FW_EINVAL);
	assert_int_equal(report_json(NULL, NULL, &b, &e), FW_EINVAL);
	strbuf_free(&b);
}

/* ---- history lines ----------------------------------------------------- */

static void test_history_line_and_match(void **state)
{
	struct build b;
	struct strbuf out = STRBUF_INIT;

	(void)state;
	job_init(&b.j);
	make_complete(&b);
	report_history_line(&b.j, &out);
	assert_non_null(strstr(out.s, "2024-05-01T10:00:00Z  20240501-100000-nodemcu  "));
	assert_non_null(strstr(out.s, "nodemcu-v1"));
	assert_non_null(strstr(out.s, "ESP8266EX 5c:cf:7f:aa:bb:cc"));
	assert_non_null(strstr(out.s, "complete   ok         complete: firmware written and "
				      "verified\n"));
	assert_true(report_history_match(&b.j, NULL, NULL));
	assert_true(report_history_match(&b.j, "5C:CF:7F", NULL));
	assert_true(report_history_match(&b.j, "esp8266", "nodemcu-v1"));
	assert_true(report_history_match(&b.j, "ttyusb0", NULL));
	assert_false(report_history_match(&b.j, "1e950f", NULL));
	assert_false(report_history_match(&b.j, NULL, "nodemcu"));
	assert_false(report_history_match(&b.j, "esp8266", "esp01"));
	strbuf_reset(&out);
	report_history_json(&b.j, "/jobs/x", &out);
	assert_true(json_valid(out.s));
	assert_non_null(strstr(out.s, "\"dir\":\"/jobs/x\""));
	assert_non_null(strstr(out.s, "\"device\":{\"chip\":\"ESP8266EX\","
				      "\"mac\":\"5c:cf:7f:aa:bb:cc\",\"signature\":null}"));
	assert_non_null(strstr(out.s, "\"unsafe\":false"));
	job_free(&b.j);

	job_init(&b.j);
	make_aborted_backup(&b);
	strbuf_reset(&out);
	report_history_line(&b.j, &out);
	assert_non_null(strstr(out.s, "ATmega328P 1e950f"));
	assert_non_null(strstr(out.s, "aborted at step backup: device untouched"));
	assert_true(report_history_match(&b.j, "1E950F", NULL));
	job_free(&b.j);

	job_init(&b.j);
	make_empty(&b);
	strbuf_reset(&out);
	report_history_line(&b.j, &out);
	assert_non_null(strstr(out.s, "esp01             -     "));
	assert_false(report_history_match(&b.j, "esp", NULL));
	assert_true(report_history_match(&b.j, "USB", NULL)); /* the port */
	job_free(&b.j);
	strbuf_free(&out);
}

static void test_history_terminal_safe(void **state)
{
	struct build b;
	struct strbuf out = STRBUF_INIT;

	(void)state;
	job_init(&b.j);
	make_hostile(&b);
	report_history_line(&b.j, &out);
	/* The chip text arrives, its escape sequence does not. */
	assert_non_null(strstr(out.s, "<script>alert(1)</script> & co aa?[2Jbb"));
	for (const char *p = out.s; *p; p++)
		assert_false((unsigned char)*p < 0x20 && *p != '\n');
	job_free(&b.j);

	strbuf_reset(&out);
	report_history_error_line("bad-job", "line 3: \x1b]0;owned\x07 \xc2\x9b" "2J", &out);
	assert_non_null(strstr(out.s, "bad-job"));
	assert_non_null(strstr(out.s, "unreadable: line 3: ?]0;owned? ?2J\n"));
	strbuf_reset(&out);
	report_history_json_error("bad-job", "/j/bad-job", "a \"quoted\" error", &out);
	assert_true(json_valid(out.s));
	assert_non_null(strstr(out.s, "\"error\":\"a \\\"quoted\\\" error\""));
	strbuf_free(&out);
}

/* ---- the job store: list, find, report files ---------------------------- */

struct tmp {
	char base[64];
	char root[128];
};

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof *t);

	if (!t)
		return -1;
	strcpy(t->base, "/tmp/fw-report.XXXXXX");
	if (!mkdtemp(t->base))
		return -1;
	snprintf(t->root, sizeof t->root, "%s/jobs", t->base);
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[160];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->base);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static void store(const char *root, void (*make)(struct build *), char *dir, size_t dirlen)
{
	struct build b;
	struct fw_err e = {0};

	job_init(&b.j);
	make(&b);
	if (jobstore_create(root, &b.j, dir, dirlen, &e) != FW_OK)
		fail_msg("jobstore_create: %s", e.msg);
	job_free(&b.j);
}

/* Same creation time as make_complete, a later id. */
static void make_complete_twin(struct build *b)
{
	start(b, "20240501-100000-nodemcu2", "nodemcu-v1", T0);
}

static void test_list_missing_root(void **state)
{
	struct tmp *t = *state;
	struct jobstore_entry *v = (void *)1;
	size_t n = 99;
	struct fw_err e = {0};

	assert_int_equal(jobstore_list(t->root, &v, &n, &e), FW_OK);
	assert_int_equal(n, 0);
	assert_null(v);
	jobstore_list_free(v, n);
}

static void test_list_order_and_damage(void **state)
{
	struct tmp *t = *state;
	struct jobstore_entry *v;
	char dir[JOBSTORE_PATH_MAX], path[JOBSTORE_PATH_MAX + 64], target[JOBSTORE_PATH_MAX];
	size_t n;
	struct fw_err e = {0};
	FILE *f;

	store(t->root, make_aborted_backup, dir, sizeof dir);    /* day 2 */
	store(t->root, make_complete, dir, sizeof dir);          /* day 1 */
	snprintf(target, sizeof target, "%s", dir);
	store(t->root, make_complete_twin, dir, sizeof dir);     /* day 1, later id */
	store(t->root, make_failed_flash, dir, sizeof dir);      /* day 3 */
	store(t->root, make_interrupted, dir, sizeof dir);       /* day 4: damaged below */
	snprintf(path, sizeof path, "%s/%s", dir, JOBSTORE_JOURNAL);
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, 200, SEEK_SET), 0);
	fputc('X', f);
	fclose(f);
	/* Not jobs: a plain file, a folder without a journal, a hidden one. */
	snprintf(path, sizeof path, "%s/notes.txt", t->root);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof path, "%s/empty-folder", t->root);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/.hidden", t->root);
	assert_int_equal(mkdir(path, 0700), 0);
	/* A link to a real job: listed as such, never followed. */
	snprintf(path, sizeof path, "%s/zz-link", t->root);
	assert_int_equal(symlink(target, path), 0);
	/* A copy under another name: the journal names another job. */
	snprintf(path, sizeof path, "cp -r '%s' '%s/renamed-job'", target, t->root);
	assert_int_equal(system(path), 0);

	assert_int_equal(jobstore_list(t->root, &v, &n, &e), FW_OK);
	assert_int_equal(n, 7);
	assert_true(v[0].ok);
	assert_string_equal(v[0].id, "20240503-100000-nodemcu");
	assert_string_equal(v[0].job.id, "20240503-100000-nodemcu");
	assert_int_equal(v[0].job.step[STEP_FLASH].state, STEP_FAILED);
	assert_string_equal(v[1].id, "20240502-100000-uno");
	assert_string_equal(v[2].id, "20240501-100000-nodemcu2");
	assert_string_equal(v[3].id, "20240501-100000-nodemcu");
	assert_true(v[1].ok && v[2].ok && v[3].ok);
	snprintf(path, sizeof path, "%s/20240501-100000-nodemcu", t->root);
	assert_string_equal(v[3].dir, path);
	/* Unreadable ones last, by id, each with why. */
	assert_false(v[4].ok);
	assert_string_equal(v[4].id, "zz-link");
	assert_non_null(strstr(v[4].error, "symbolic link"));
	assert_false(v[5].ok);
	assert_string_equal(v[5].id, "renamed-job");
	assert_non_null(strstr(v[5].error, "20240501-100000-nodemcu"));
	assert_false(v[6].ok);
	assert_string_equal(v[6].id, "20240504-100000-nodemcu");
	assert_non_null(strstr(v[6].error, JOBSTORE_JOURNAL));
	assert_int_equal(v[6].job.id[0], '\0');
	jobstore_list_free(v, n);
}

static void test_list_root_refused(void **state)
{
	struct tmp *t = *state;
	struct jobstore_entry *v;
	char link[160], dir[JOBSTORE_PATH_MAX];
	size_t n;
	struct fw_err e = {0};

	store(t->root, make_complete, dir, sizeof dir);
	snprintf(link, sizeof link, "%s/link-root", t->base);
	assert_int_equal(symlink(t->root, link), 0);
	assert_int_equal(jobstore_list(link, &v, &n, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_int_equal(n, 0);
	snprintf(link, sizeof link, "%s/%s", dir, JOBSTORE_JOURNAL);
	assert_int_equal(jobstore_list(link, &v, &n, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "not a folder"));
}

static void test_find(void **state)
{
	struct tmp *t = *state;
	char dir[JOBSTORE_PATH_MAX], found[JOBSTORE_PATH_MAX], path[JOBSTORE_PATH_MAX + 64];
	struct fw_err e = {0};

	assert_int_equal(jobstore_find(t->root, "20240501-100000-nodemcu", found, sizeof found, &e),
			 FW_EIO);
	assert_non_null(strstr(e.msg, "no job 20240501-100000-nodemcu in"));
	store(t->root, make_complete, dir, sizeof dir);
	assert_int_equal(jobstore_find(t->root, "20240501-100000-nodemcu", found, sizeof found, &e),
			 FW_OK);
	assert_string_equal(found, dir);

	assert_int_equal(jobstore_find(t->root, "nope", found, sizeof found, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "no job nope in "));
	assert_non_null(strstr(e.msg, t->root));
	assert_int_equal(jobstore_find(t->root, "../etc", found, sizeof found, &e), FW_EINVAL);
	assert_int_equal(jobstore_find(t->root, "a/b", found, sizeof found, &e), FW_EINVAL);
	assert_int_equal(jobstore_find(t->root, ".hidden", found, sizeof found, &e), FW_EINVAL);
	assert_int_equal(jobstore_find(t->root, "", found, sizeof found, &e), FW_EINVAL);
	assert_int_equal(jobstore_find(t->root, NULL, found, sizeof found, &e), FW_EINVAL);

	snprintf(path, sizeof path, "%s/linked", t->root);
	assert_int_equal(symlink(dir, path), 0);
	assert_int_equal(jobstore_find(t->root, "linked", found, sizeof found, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "symbolic link"));

	snprintf(path, sizeof path, "%s/no-journal", t->root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(jobstore_find(t->root, "no-journal", found, sizeof found, &e),
			 FW_EJOURNAL);
	assert_non_null(strstr(e.msg, JOBSTORE_JOURNAL));
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static void test_write_reports(void **state)
{
	struct tmp *t = *state;
	struct build b;
	char dir[JOBSTORE_PATH_MAX], path[JOBSTORE_PATH_MAX + 64];
	struct strbuf want = STRBUF_INIT;
	struct fw_err e = {0};
	struct stat st;
	mode_t old = umask(0);
	char *text;

	job_init(&b.j);
	make_complete(&b);
	assert_int_equal(jobstore_create(t->root, &b.j, dir, sizeof dir, &e), FW_OK);
	assert_int_equal(jobstore_write_reports(dir, &b.j, &e), FW_OK);
	/* Derived from the journal: writing them again is allowed. */
	assert_int_equal(jobstore_write_reports(dir, &b.j, &e), FW_OK);
	umask(old);

	snprintf(path, sizeof path, "%s/%s", dir, JOBSTORE_REPORT_MD);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = slurp(path);
	assert_int_equal(report_markdown(&b.j, dir, &want, &e), FW_OK);
	assert_string_equal(text, want.s);
	free(text);
	snprintf(path, sizeof path, "%s/backup.hex", dir);
	assert_non_null(strstr(want.s, path)); /* resolved inside the job folder */

	snprintf(path, sizeof path, "%s/%s", dir, JOBSTORE_REPORT_JSON);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	text = slurp(path);
	assert_true(json_valid(text));
	strbuf_reset(&want);
	assert_int_equal(report_json(&b.j, dir, &want, &e), FW_OK);
	assert_string_equal(text, want.s);
	free(text);

	/* A link planted where a report goes is refused, not followed. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/tmp/fw-report-elsewhere", path), 0);
	assert_int_equal(jobstore_write_reports(dir, &b.j, &e), FW_EIO);
	assert_non_null(strstr(e.msg, JOBSTORE_REPORT_JSON));
	assert_int_equal(access("/tmp/fw-report-elsewhere", F_OK), -1);

	/* No folder: an error naming it. */
	assert_int_equal(jobstore_write_reports("/nonexistent/fw-job", &b.j, &e), FW_EIO);
	assert_non_null(strstr(e.msg, "/nonexistent/fw-job"));
	strbuf_free(&want);
	job_free(&b.j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_checker_rejects),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_verdict_abort_after_write_is_unsafe),
		cmocka_unit_test(test_markdown_complete),
		cmocka_unit_test(test_markdown_failed_and_restored),
		cmocka_unit_test(test_markdown_no_evidence),
		cmocka_unit_test(test_markdown_escaping),
		cmocka_unit_test(test_json_complete),
		cmocka_unit_test(test_json_states),
		cmocka_unit_test(test_eeprom_backup),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_json_string_edges),
		cmocka_unit_test(test_report_bad_args),
		cmocka_unit_test(test_history_line_and_match),
		cmocka_unit_test(test_history_terminal_safe),
		cmocka_unit_test_setup_teardown(test_list_missing_root, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_list_order_and_damage, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_list_root_refused, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_find, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_write_reports, tmp_setup, tmp_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
