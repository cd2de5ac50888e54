#include "report.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "evidence.h"
#include "steps.h"

/* firmware.N counts from 1; more than this is not a job of ours. */
#define FIRMWARE_MAX 256

/* ---- text -------------------------------------------------------------- */

static bool has_text(const char *s)
{
	return s && *s;
}

void report_json_string(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	strbuf_add(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t u;

		if (c == '"' || c == '\\') {
			strbuf_add(b, "\\", 1);
			strbuf_add(b, &c, 1);
		} else if (c == '\n') {
			strbuf_adds(b, "\\n");
		} else if (c == '\r') {
			strbuf_adds(b, "\\r");
		} else if (c == '\t') {
			strbuf_adds(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_addf(b, "\\u%04x", c);
		} else if (c >= 0x80) {
			u = strbuf_utf8_len(p + i, n - i);
			if (u) {
				strbuf_add(b, p + i, u);
				i += u;
				continue;
			}
			/* JSON is UTF-8: a stray byte cannot be carried as it is. */
			strbuf_adds(b, "\\ufffd");
		} else {
			strbuf_add(b, &c, 1);
		}
		i++;
	}
	strbuf_add(b, "\"", 1);
}

/* Markdown text on one line: control bytes and bytes that are not UTF-8
 * shown as visible escapes (they would break a table row or the line),
 * table pipes and markup characters escaped, and '<' '&' as entities so a
 * value from a device cannot inject HTML into a rendered report. */
static void md_text(struct strbuf *b, const char *s)
{
	for (;;) {
		size_t run = strcspn(s, "<&");

		strbuf_add_escaped(b, s, run, "|`*[]");
		if (!s[run])
			return;
		strbuf_adds(b, s[run] == '<' ? "&lt;" : "&amp;");
		s += run + 1;
	}
}

/* Text for a terminal: printable ASCII and UTF-8 from U+00A0 up as they
 * are; control bytes (C0, DEL and C1, which some terminals obey as escape
 * sequences) and bytes that are not UTF-8 as '?'. Returns the number of
 * characters written, for column padding. */
static size_t term_text(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), cols = 0;

	for (size_t i = 0; i < n; cols++) {
		unsigned char c = p[i];
		size_t u = c >= 0x80 ? strbuf_utf8_len(p + i, n - i) : 1;

		if (c < 0x20 || c == 0x7f || u == 0 || (u == 2 && c == 0xC2 && p[i + 1] < 0xA0)) {
			strbuf_add(b, "?", 1);
			i += u ? u : 1;
			continue;
		}
		strbuf_add(b, p + i, u);
		i += u;
	}
	return cols;
}

static void term_col(struct strbuf *b, const char *s, size_t width)
{
	size_t cols = term_text(b, has_text(s) ? s : "-");

	while (cols++ < width)
		strbuf_add(b, " ", 1);
	strbuf_adds(b, "  ");
}

/* ---- facts from the record --------------------------------------------- */

const char *report_evidence(const struct job *j, const char *key)
{
	for (int s = 0; s <= STEP_RESTORE; s++) {
		const char *v = job_evidence_get(j, s, key);
		if (v)
			return v;
	}
	return NULL;
}

/* The first step that is neither done nor skipped (STEP_COUNT: none): where
 * an ended job stopped. */
static int first_open(const struct job *j)
{
	int k;

	for (k = 0; k < STEP_COUNT; k++)
		if (j->step[k].state != STEP_DONE && j->step[k].state != STEP_SKIPPED)
			break;
	return k;
}

static const char *step_name(int step)
{
	const struct step_info *i = steps_info(step);

	return i ? i->name : "?";
}

static const char *device_phrase(enum step_device d)
{
	switch (d) {
	case STEP_DEVICE_UNTOUCHED: return "device untouched";
	case STEP_DEVICE_OK: return "firmware written and verified";
	case STEP_DEVICE_RESTORED: return "the backup was written back and verified";
	case STEP_DEVICE_PENDING:
	case STEP_DEVICE_FAILED:
	default: return "device may be unsafe";
	}
}

static const char *device_state_text(enum step_device d)
{
	switch (d) {
	case STEP_DEVICE_UNTOUCHED: return "untouched: nothing was written";
	case STEP_DEVICE_PENDING: return "pending: a write started and was not verified (may be unsafe)";
	case STEP_DEVICE_OK: return "ok: written and verified";
	case STEP_DEVICE_FAILED: return "failed: a write, the reboot or the check failed (may be unsafe)";
	case STEP_DEVICE_RESTORED: return "restored: the backup was written back and verified";
	default: return "unknown";
	}
}

void report_verdict(const struct job *j, char *out, size_t outlen)
{
	enum step_device d;
	int cur, k;

	if (!out || outlen == 0)
		return;
	if (!j) {
		snprintf(out, outlen, "no job");
		return;
	}
	d = steps_device(j);
	k = first_open(j);
	switch (j->outcome) {
	case JOB_COMPLETE:
		snprintf(out, outlen, "complete: firmware written and verified%s",
			 j->step[STEP_BACKUP].state == STEP_SKIPPED
				 ? " (no backup: skipped with consent)" : "");
		return;
	case JOB_RESTORED:
		snprintf(out, outlen, "restored: the backup was written back and verified");
		return;
	case JOB_ABORTED:
		snprintf(out, outlen, "aborted at step %s%s: %s", step_name(k),
			 j->restore.state == STEP_FAILED ? " after a failed restore" : "",
			 device_phrase(d));
		return;
	case JOB_ACTIVE:
		break;
	default:
		snprintf(out, outlen, "unknown outcome: %s", device_phrase(d));
		return;
	}
	/* Still open: say where it stands and how to carry on. */
	cur = job_resume_step(j);
	if (cur == STEP_RESTORE && j->restore.state == STEP_FAILED)
		snprintf(out, outlen, "restore failed (chosen at step %s): %s, resume with: "
			 "flashwise resume %s", step_name(j->restore_from), device_phrase(d), j->id);
	else if (cur == STEP_RESTORE)
		snprintf(out, outlen, "stopped during the restore (%s): %s, resume with: "
			 "flashwise resume %s", steps_state_name(j->restore.state), device_phrase(d),
			 j->id);
	else if (cur >= 0 && cur < STEP_COUNT && j->step[cur].state == STEP_FAILED)
		snprintf(out, outlen, "failed at step %s: %s, resume with: flashwise resume %s",
			 step_name(cur), device_phrase(d), j->id);
	else if (cur >= 0 && cur < STEP_COUNT)
		snprintf(out, outlen, "stopped at step %s (%s): %s, resume with: flashwise resume %s",
			 step_name(cur), steps_state_name(j->step[cur].state), device_phrase(d), j->id);
	else
		snprintf(out, outlen, "active: %s", device_phrase(d));
}

static void fmt_time(int64_t t, char out[21])
{
	if (t > 0)
		job_time_format(t, out);
	else
		out[0] = '\0';
}

/* "", or how long a record took: "42 s", "3 min 05 s", "1 h 02 min". */
static void fmt_duration(const struct job_step *r, char *out, size_t n)
{
	int64_t s;

	out[0] = '\0';
	if (!r->started || !r->finished || r->finished < r->started)
		return;
	s = r->finished - r->started;
	if (s < 60)
		snprintf(out, n, "%" PRId64 " s", s);
	else if (s < 3600)
		snprintf(out, n, "%" PRId64 " min %02" PRId64 " s", s / 60, s % 60);
	else
		snprintf(out, n, "%" PRId64 " h %02" PRId64 " min", s / 3600, s / 60 % 60);
}

/* Where the backup is: an absolute path as recorded, a relative one inside
 * the job folder. */
static void backup_location(const char *path, const char *job_dir, struct strbuf *b)
{
	if (path[0] == '/' || !has_text(job_dir))
		strbuf_adds(b, path);
	else
		strbuf_addf(b, "%s%s%s", job_dir,
			    job_dir[strlen(job_dir) - 1] == '/' ? "" : "/", path);
}

/* firmware.N.<field> of file n (from 1). */
static const char *fw_field(const struct job *j, size_t n, const char *field)
{
	char key[JOB_KEY_MAX];

	if ((size_t)snprintf(key, sizeof key, "firmware.%zu.%s", n, field) >= sizeof key)
		return NULL;
	return report_evidence(j, key);
}

/* How many firmware files: firmware.count when it is a number, and any
 * firmware.N that follows it (a report never hides a recorded file). */
static size_t fw_count(const struct job *j)
{
	const char *c = report_evidence(j, WIZ_KEY_FIRMWARE_COUNT);
	size_t n = 0;

	if (c && *c && strspn(c, "0123456789") == strlen(c) && strlen(c) <= 3)
		for (const char *p = c; *p; p++)
			n = n * 10 + (size_t)(*p - '0');
	if (n > FIRMWARE_MAX)
		n = FIRMWARE_MAX;
	while (n < FIRMWARE_MAX && fw_field(j, n + 1, "path"))
		n++;
	return n;
}

/* ---- Markdown ---------------------------------------------------------- */

static void md_item(struct strbuf *b, const char *label, const char *value)
{
	if (!has_text(value))
		return;
	strbuf_addf(b, "- **%s:** ", label);
	md_text(b, value);
	strbuf_adds(b, "\n");
}

static void md_cell(struct strbuf *b, const char *value)
{
	strbuf_adds(b, " ");
	if (value)
		md_text(b, value);
	strbuf_adds(b, " |");
}

static void md_step_row(struct strbuf *b, const char *name, const struct job_step *r)
{
	char started[21], dur[32], attempts[16] = "";

	fmt_time(r->started, started);
	fmt_duration(r, dur, sizeof dur);
	if (r->attempts)
		snprintf(attempts, sizeof attempts, "%u", r->attempts);
	strbuf_adds(b, "|");
	md_cell(b, name);
	md_cell(b, steps_state_name(r->state));
	md_cell(b, started);
	md_cell(b, dur);
	md_cell(b, attempts);
	md_cell(b, r->reason);
	strbuf_adds(b, "\n");
}

static void md_evidence(struct strbuf *b, const char *name, const struct job_step *r)
{
	if (!r->nev)
		return;
	strbuf_addf(b, "\n### %s\n\n", name);
	for (size_t i = 0; i < r->nev; i++) {
		/* Keys are dotted lowercase names: safe in a code span. */
		strbuf_addf(b, "- `%s`: ", r->ev[i].key);
		md_text(b, r->ev[i].value);
		strbuf_adds(b, "\n");
	}
}

static void md_job(struct strbuf *b, const struct job *j)
{
	char created[21];
	const char *name = report_evidence(j, WIZ_KEY_PROFILE_NAME);

	fmt_time(j->created, created);
	strbuf_adds(b, "\n## Job\n\n");
	md_item(b, "Job", j->id);
	if (created[0])
		strbuf_addf(b, "- **Created:** %s (UTC)\n", created);
	md_item(b, "Operator", report_evidence(j, WIZ_KEY_OPERATOR_USER));
	md_item(b, "Host", report_evidence(j, WIZ_KEY_OPERATOR_HOST));
	md_item(b, "Profile", j->profile);
	md_item(b, "Profile name", name);
	md_item(b, "Profile file", report_evidence(j, WIZ_KEY_PROFILE_PATH));
	md_item(b, "Port", j->port);
	md_item(b, "Port description", report_evidence(j, WIZ_KEY_PORT_DESC));
	md_item(b, "Bench conditions confirmed", report_evidence(j, WIZ_KEY_CONDITIONS));
}

/* A section of "label: value" items from evidence; left out when none of
 * them was recorded. */
struct md_row {
	const char *label, *key;
};

static void md_rows(struct strbuf *b, const struct job *j, const char *title,
		    const struct md_row *rows, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any |= has_text(report_evidence(j, rows[i].key));
	if (!any)
		return;
	strbuf_addf(b, "\n## %s\n\n", title);
	for (size_t i = 0; i < n; i++)
		md_item(b, rows[i].label, report_evidence(j, rows[i].key));
}

static void md_device(struct strbuf *b, const struct job *j)
{
	static const struct md_row rows[] = {
		{"Chip", WIZ_KEY_DEVICE_CHIP},
		{"MAC", WIZ_KEY_DEVICE_MAC},
		{"Signature", WIZ_KEY_DEVICE_SIG},
		{"Flash", WIZ_KEY_DEVICE_FLASH},
		{"Loader", WIZ_KEY_DEVICE_LOADER},
		{"Matches the profile", STEP_KEY_IDENTITY_MATCH},
	};

	md_rows(b, j, "Device", rows, sizeof rows / sizeof rows[0]);
}

static void md_firmware(struct strbuf *b, const struct job *j)
{
	size_t n = fw_count(j);

	if (n == 0)
		return;
	strbuf_adds(b, "\n## Firmware\n\n"
		    "| # | File | Address | Size | SHA-256 | Partition |\n"
		    "|---|---|---|---|---|---|\n");
	for (size_t i = 1; i <= n; i++) {
		strbuf_addf(b, "| %zu |", i);
		md_cell(b, fw_field(j, i, "path"));
		md_cell(b, fw_field(j, i, "addr"));
		md_cell(b, fw_field(j, i, "size"));
		md_cell(b, fw_field(j, i, "sha256"));
		md_cell(b, fw_field(j, i, "partition"));
		strbuf_adds(b, "\n");
	}
}

static void md_image(struct strbuf *b, const struct job *j)
{
	static const struct md_row rows[] = {
		{"SHA-256", STEP_KEY_IMAGE_SHA256},
		{"Hash checked against", WIZ_KEY_IMAGE_SOURCE},
		{"Signature", WIZ_KEY_IMAGE_SIGNATURE},
		{"Bytes", WIZ_KEY_IMAGE_BYTES},
	};

	md_rows(b, j, "Image checks", rows, sizeof rows / sizeof rows[0]);
}

/* A file of the job as an item, placed in the job folder. */
static void md_location(struct strbuf *b, const char *label, const char *path,
			const char *job_dir)
{
	struct strbuf loc = STRBUF_INIT;

	if (!has_text(path))
		return;
	backup_location(path, job_dir, &loc);
	md_item(b, label, strbuf_str(&loc));
	if (strbuf_failed(&loc))
		b->oom = true;
	strbuf_free(&loc);
}

static void md_backup(struct strbuf *b, const struct job *j, const char *job_dir)
{
	const struct job_step *r = &j->step[STEP_BACKUP];
	const char *path = job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_PATH);

	if (r->state == STEP_PENDING)
		return;
	strbuf_adds(b, "\n## Backup\n\n");
	if (r->state != STEP_DONE)
		md_item(b, "State", steps_state_name(r->state));
	md_item(b, "Reason", r->reason);
	md_item(b, "Consent to go on without a backup",
		job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_CONSENT));
	md_location(b, "File", path, job_dir);
	md_item(b, "SHA-256", job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_SHA256));
	md_item(b, "Ranges", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_BACKUP_RANGES));
	md_item(b, "Bytes", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_BACKUP_BYTES));
	md_location(b, "EEPROM file", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_EEPROM_PATH),
		    job_dir);
	md_item(b, "EEPROM SHA-256", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_EEPROM_SHA256));
	md_item(b, "EEPROM bytes", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_EEPROM_BYTES));
	md_item(b, "EEPROM", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_EEPROM_NOTE));
}

static void md_result(struct strbuf *b, const struct job *j)
{
	static const struct md_row rows[] = {
		{"Bytes written", WIZ_KEY_FLASH_BYTES},
		{"Write check", WIZ_KEY_FLASH_VERIFY},
		{"Boot banner", WIZ_KEY_BOOT_BANNER},
		{"Boot line", WIZ_KEY_BOOT_LINE},
		{"Boot log", WIZ_KEY_BOOT_LOG},
		{"Verified by", STEP_KEY_VERIFY_METHOD},
		{"Verification result", STEP_KEY_VERIFY_RESULT},
	};

	md_rows(b, j, "Write and verification", rows, sizeof rows / sizeof rows[0]);
}

static void md_restore(struct strbuf *b, const struct job *j)
{
	const struct job_step *r = &j->restore;
	char t[21], dur[32];

	if (j->restore_from == STEP_NONE)
		return;
	strbuf_adds(b, "\n## Restore\n\n");
	md_item(b, "Chosen on the failed step", step_name(j->restore_from));
	md_item(b, "State", steps_state_name(r->state));
	md_item(b, "Reason", r->reason);
	fmt_time(r->started, t);
	md_item(b, "Started", t);
	fmt_duration(r, dur, sizeof dur);
	md_item(b, "Duration", dur);
	md_item(b, "Method", job_evidence_get(j, STEP_RESTORE, STEP_KEY_RESTORE_METHOD));
	md_item(b, "Result", job_evidence_get(j, STEP_RESTORE, STEP_KEY_RESTORE_RESULT));
}

static int finish(struct strbuf *out, struct fw_err *e, const char *what)
{
	if (strbuf_failed(out))
		return fw_err_set(e, FW_ENOMEM, "out of memory formatting the %s report", what);
	return FW_OK;
}

int report_markdown(const struct job *j, const char *job_dir, struct strbuf *out,
		    struct fw_err *e)
{
	char verdict[REPORT_VERDICT_MAX];
	enum step_device d;
	int cur;

	if (!j || !out)
		return fw_err_set(e, FW_EINVAL, "no job to report");
	d = steps_device(j);
	cur = job_resume_step(j);
	report_verdict(j, verdict, sizeof verdict);

	strbuf_adds(out, "# flashwise job report: ");
	md_text(out, j->id);
	strbuf_adds(out, "\n\n**");
	md_text(out, verdict);
	strbuf_adds(out, "**\n");

	md_job(out, j);
	md_device(out, j);
	md_firmware(out, j);
	md_image(out, j);
	md_backup(out, j, job_dir);
	md_result(out, j);

	strbuf_adds(out, "\n## Steps\n\n"
		    "| Step | State | Started (UTC) | Duration | Attempts | Reason |\n"
		    "|---|---|---|---|---|---|\n");
	for (int s = 0; s < STEP_COUNT; s++)
		md_step_row(out, step_name(s), &j->step[s]);
	if (j->restore_from != STEP_NONE)
		md_step_row(out, step_name(STEP_RESTORE), &j->restore);

	md_restore(out, j);

	strbuf_adds(out, "\n## Outcome\n\n");
	md_item(out, "Verdict", verdict);
	md_item(out, "Outcome", job_outcome_name(j->outcome));
	md_item(out, "Abort reason", j->abort_reason);
	md_item(out, "Device state", device_state_text(d));
	if (cur != STEP_NONE)
		md_item(out, "Resume at step", step_name(cur));

	strbuf_adds(out, "\n## Evidence\n");
	for (int s = 0; s < STEP_COUNT; s++)
		md_evidence(out, step_name(s), &j->step[s]);
	md_evidence(out, step_name(STEP_RESTORE), &j->restore);
	return finish(out, e, "Markdown");
}

/* ---- JSON -------------------------------------------------------------- */

/* Members of one object: a comma before all but the first. */
struct jobj {
	struct strbuf *b;
	bool first;
};

static void jopen(struct jobj *o, struct strbuf *b)
{
	o->b = b;
	o->first = true;
	strbuf_adds(b, "{");
}

static void jclose(struct jobj *o)
{
	strbuf_adds(o->b, "}");
}

static void jkey(struct jobj *o, const char *key)
{
	if (!o->first)
		strbuf_adds(o->b, ",");
	o->first = false;
	report_json_string(o->b, key);
	strbuf_adds(o->b, ":");
}

static void jstr(struct jobj *o, const char *key, const char *v)
{
	jkey(o, key);
	if (v)
		report_json_string(o->b, v);
	else
		strbuf_adds(o->b, "null");
}

static void jraw(struct jobj *o, const char *key, const char *raw)
{
	jkey(o, key);
	strbuf_adds(o->b, raw);
}

static void jtime(struct jobj *o, const char *key, int64_t t)
{
	char s[21];

	fmt_time(t, s);
	jstr(o, key, s[0] ? s : NULL);
}

/* A decimal size as a number, anything else as the text it is. */
static void jnum_or_str(struct jobj *o, const char *key, const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (n > 0 && n <= 15 && strspn(v, "0123456789") == n && (v[0] != '0' || n == 1))
		jraw(o, key, v);
	else
		jstr(o, key, v);
}

/* "location": a job file's path placed in the job folder, or null. */
static void jlocation(struct jobj *o, const char *path, const char *job_dir)
{
	struct strbuf loc = STRBUF_INIT;

	jkey(o, "location");
	if (!has_text(path)) {
		strbuf_adds(o->b, "null");
		return;
	}
	backup_location(path, job_dir, &loc);
	report_json_string(o->b, strbuf_str(&loc));
	if (strbuf_failed(&loc))
		o->b->oom = true;
	strbuf_free(&loc);
}

/* A file the backup step stored: path, location, sha256, bytes. */
static void jfile(struct jobj *o, const struct job *j, const char *job_dir, const char *kpath,
		  const char *ksha, const char *kbytes)
{
	const char *path = job_evidence_get(j, STEP_BACKUP, kpath);

	jstr(o, "path", path);
	jlocation(o, path, job_dir);
	jstr(o, "sha256", job_evidence_get(j, STEP_BACKUP, ksha));
	jnum_or_str(o, "bytes", job_evidence_get(j, STEP_BACKUP, kbytes));
}

static void jrecord(struct jobj *o, const struct job_step *r)
{
	struct jobj ev;

	jstr(o, "state", steps_state_name(r->state));
	jstr(o, "reason", r->reason);
	jtime(o, "started", r->started);
	jtime(o, "finished", r->finished);
	jkey(o, "duration_s");
	if (r->started && r->finished && r->finished >= r->started)
		strbuf_addf(o->b, "%" PRId64, r->finished - r->started);
	else
		strbuf_adds(o->b, "null");
	jkey(o, "attempts");
	strbuf_addf(o->b, "%u", r->attempts);
	jkey(o, "evidence");
	jopen(&ev, o->b);
	for (size_t i = 0; i < r->nev; i++)
		jstr(&ev, r->ev[i].key, r->ev[i].value);
	jclose(&ev);
}

int report_json(const struct job *j, const char *job_dir, struct strbuf *out,
		struct fw_err *e)
{
	char verdict[REPORT_VERDICT_MAX];
	struct jobj top, o;
	enum step_device d;
	size_t n;
	int cur;

	if (!j || !out)
		return fw_err_set(e, FW_EINVAL, "no job to report");
	d = steps_device(j);
	cur = job_resume_step(j);
	report_verdict(j, verdict, sizeof verdict);

	jopen(&top, out);
	jkey(&top, "format");
	strbuf_addf(out, "%d", REPORT_FORMAT);
	jstr(&top, "id", j->id);
	jtime(&top, "created", j->created);

	jkey(&top, "operator");
	jopen(&o, out);
	jstr(&o, "user", report_evidence(j, WIZ_KEY_OPERATOR_USER));
	jstr(&o, "host", report_evidence(j, WIZ_KEY_OPERATOR_HOST));
	jclose(&o);

	jstr(&top, "profile", j->profile);
	jstr(&top, "profile_name", report_evidence(j, WIZ_KEY_PROFILE_NAME));
	jstr(&top, "port", j->port);
	jstr(&top, "port_description", report_evidence(j, WIZ_KEY_PORT_DESC));

	jkey(&top, "device");
	jopen(&o, out);
	jstr(&o, "chip", report_evidence(j, WIZ_KEY_DEVICE_CHIP));
	jstr(&o, "mac", report_evidence(j, WIZ_KEY_DEVICE_MAC));
	jstr(&o, "signature", report_evidence(j, WIZ_KEY_DEVICE_SIG));
	jstr(&o, "flash", report_evidence(j, WIZ_KEY_DEVICE_FLASH));
	jstr(&o, "loader", report_evidence(j, WIZ_KEY_DEVICE_LOADER));
	jstr(&o, "identity_match", report_evidence(j, STEP_KEY_IDENTITY_MATCH));
	jclose(&o);

	jkey(&top, "firmware");
	strbuf_adds(out, "[");
	n = fw_count(j);
	for (size_t i = 1; i <= n; i++) {
		if (i > 1)
			strbuf_adds(out, ",");
		jopen(&o, out);
		jstr(&o, "path", fw_field(j, i, "path"));
		jstr(&o, "addr", fw_field(j, i, "addr"));
		jnum_or_str(&o, "size", fw_field(j, i, "size"));
		jstr(&o, "sha256", fw_field(j, i, "sha256"));
		jstr(&o, "partition", fw_field(j, i, "partition"));
		jclose(&o);
	}
	strbuf_adds(out, "]");

	jkey(&top, "image");
	jopen(&o, out);
	jstr(&o, "sha256", report_evidence(j, STEP_KEY_IMAGE_SHA256));
	jstr(&o, "source", report_evidence(j, WIZ_KEY_IMAGE_SOURCE));
	jstr(&o, "signature", report_evidence(j, WIZ_KEY_IMAGE_SIGNATURE));
	jnum_or_str(&o, "bytes", report_evidence(j, WIZ_KEY_IMAGE_BYTES));
	jclose(&o);

	jkey(&top, "backup");
	jopen(&o, out);
	jstr(&o, "state", steps_state_name(j->step[STEP_BACKUP].state));
	jfile(&o, j, job_dir, STEP_KEY_BACKUP_PATH, STEP_KEY_BACKUP_SHA256, WIZ_KEY_BACKUP_BYTES);
	jstr(&o, "ranges", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_BACKUP_RANGES));
	jstr(&o, "consent", job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_CONSENT));
	/* null members: the loader read no EEPROM, "note" says why */
	jkey(&o, "eeprom");
	{
		struct jobj ee;

		jopen(&ee, out);
		jfile(&ee, j, job_dir, WIZ_KEY_EEPROM_PATH, WIZ_KEY_EEPROM_SHA256,
		      WIZ_KEY_EEPROM_BYTES);
		jstr(&ee, "note", job_evidence_get(j, STEP_BACKUP, WIZ_KEY_EEPROM_NOTE));
		jclose(&ee);
	}
	jclose(&o);

	jkey(&top, "steps");
	strbuf_adds(out, "[");
	for (int s = 0; s < STEP_COUNT; s++) {
		if (s > 0)
			strbuf_adds(out, ",");
		jopen(&o, out);
		jstr(&o, "name", step_name(s));
		jrecord(&o, &j->step[s]);
		jclose(&o);
	}
	strbuf_adds(out, "]");

	jkey(&top, "restore");
	if (j->restore_from == STEP_NONE) {
		strbuf_adds(out, "null");
	} else {
		jopen(&o, out);
		jstr(&o, "from", step_name(j->restore_from));
		jrecord(&o, &j->restore);
		jstr(&o, "method", job_evidence_get(j, STEP_RESTORE, STEP_KEY_RESTORE_METHOD));
		jstr(&o, "result", job_evidence_get(j, STEP_RESTORE, STEP_KEY_RESTORE_RESULT));
		jclose(&o);
	}

	jstr(&top, "outcome", job_outcome_name(j->outcome));
	jstr(&top, "abort_reason", j->abort_reason);
	jstr(&top, "resume_step", cur == STEP_NONE ? NULL : step_name(cur));
	jstr(&top, "device_state", steps_device_name(d));
	jraw(&top, "unsafe", steps_device_unsafe(d) ? "true" : "false");
	jstr(&top, "verdict", verdict);
	jclose(&top);
	strbuf_adds(out, "\n");
	return finish(out, e, "JSON");
}

/* ---- history ----------------------------------------------------------- */

/* Case-insensitive (ASCII) substring search. */
static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (!hay)
		return false;
	for (; *hay; hay++) {
		size_t i = 0;

		while (i < n && hay[i]) {
			char a = hay[i], b = needle[i];
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (char)(b - 'A' + 'a');
			if (a != b)
				break;
			i++;
		}
		if (i == n)
			return true;
	}
	return n == 0;
}

bool report_history_match(const struct job *j, const char *device, const char *profile)
{
	if (profile && strcmp(j->profile, profile) != 0)
		return false;
	if (!device)
		return true;
	return contains_ci(report_evidence(j, WIZ_KEY_DEVICE_CHIP), device) ||
	       contains_ci(report_evidence(j, WIZ_KEY_DEVICE_MAC), device) ||
	       contains_ci(report_evidence(j, WIZ_KEY_DEVICE_SIG), device) ||
	       contains_ci(j->port, device);
}

/* Column widths of the history lines (characters). */
#define H_CREATED 20
#define H_ID 26
#define H_PROFILE 16
#define H_DEVICE 30
#define H_OUTCOME 9
#define H_STATE 9

void report_history_header(struct strbuf *out)
{
	term_col(out, "CREATED (UTC)", H_CREATED);
	term_col(out, "JOB", H_ID);
	term_col(out, "PROFILE", H_PROFILE);
	term_col(out, "DEVICE", H_DEVICE);
	term_col(out, "OUTCOME", H_OUTCOME);
	term_col(out, "STATE", H_STATE);
	strbuf_adds(out, "VERDICT\n");
}

/* "chip mac", "chip signature", or whichever of them exists. */
static void device_summary(const struct job *j, struct strbuf *b)
{
	const char *chip = report_evidence(j, WIZ_KEY_DEVICE_CHIP);
	const char *mac = report_evidence(j, WIZ_KEY_DEVICE_MAC);
	const char *sig = report_evidence(j, WIZ_KEY_DEVICE_SIG);
	const char *second = has_text(mac) ? mac : sig;

	if (has_text(chip))
		strbuf_adds(b, chip);
	if (has_text(chip) && has_text(second))
		strbuf_adds(b, " ");
	if (has_text(second))
		strbuf_adds(b, second);
}

void report_history_line(const struct job *j, struct strbuf *out)
{
	char created[21], verdict[REPORT_VERDICT_MAX];
	struct strbuf dev = STRBUF_INIT;

	fmt_time(j->created, created);
	report_verdict(j, verdict, sizeof verdict);
	device_summary(j, &dev);
	term_col(out, created, H_CREATED);
	term_col(out, j->id, H_ID);
	term_col(out, j->profile, H_PROFILE);
	term_col(out, strbuf_str(&dev), H_DEVICE);
	term_col(out, job_outcome_name(j->outcome), H_OUTCOME);
	term_col(out, steps_device_name(steps_device(j)), H_STATE);
	term_text(out, verdict);
	strbuf_adds(out, "\n");
	if (strbuf_failed(&dev))
		out->oom = true;
	strbuf_free(&dev);
}

void report_history_error_line(const char *id, const char *error, struct strbuf *out)
{
	term_col(out, "?", H_CREATED);
	term_col(out, id, H_ID);
	strbuf_adds(out, "unreadable: ");
	term_text(out, has_text(error) ? error : "unknown error");
	strbuf_adds(out, "\n");
}

void report_history_json(const struct job *j, const char *job_dir, struct strbuf *out)
{
	char verdict[REPORT_VERDICT_MAX];
	enum step_device d = steps_device(j);
	struct jobj top, o;

	report_verdict(j, verdict, sizeof verdict);
	jopen(&top, out);
	jstr(&top, "id", j->id);
	jstr(&top, "dir", job_dir);
	jtime(&top, "created", j->created);
	jstr(&top, "profile", j->profile);
	jstr(&top, "port", j->port);
	jkey(&top, "device");
	jopen(&o, out);
	jstr(&o, "chip", report_evidence(j, WIZ_KEY_DEVICE_CHIP));
	jstr(&o, "mac", report_evidence(j, WIZ_KEY_DEVICE_MAC));
	jstr(&o, "signature", report_evidence(j, WIZ_KEY_DEVICE_SIG));
	jclose(&o);
	jstr(&top, "outcome", job_outcome_name(j->outcome));
	jstr(&top, "device_state", steps_device_name(d));
	jraw(&top, "unsafe", steps_device_unsafe(d) ? "true" : "false");
	jstr(&top, "verdict", verdict);
	jstr(&top, "error", NULL);
	jclose(&top);
}

void report_history_json_error(const char *id, const char *job_dir, const char *error,
			       struct strbuf *out)
{
	struct jobj top;

	jopen(&top, out);
	jstr(&top, "id", id);
	jstr(&top, "dir", job_dir);
	jstr(&top, "error", has_text(error) ? error : "unknown error");
	jclose(&top);
}
