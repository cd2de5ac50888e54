#include "job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integrity.h"

static const char *const outcome_names[JOB_OUTCOME_COUNT] = {
	"active", "complete", "aborted", "restored",
};

const char *job_outcome_name(enum job_outcome o)
{
	return (unsigned)o < JOB_OUTCOME_COUNT ? outcome_names[o] : "?";
}

static int outcome_by_name(const char *s)
{
	for (int i = 0; i < JOB_OUTCOME_COUNT; i++)
		if (strcmp(outcome_names[i], s) == 0)
			return i;
	return -1;
}

/* ---- the record -------------------------------------------------------- */

void job_init(struct job *j)
{
	memset(j, 0, sizeof *j);
	j->outcome = JOB_ACTIVE;
	j->restore_from = STEP_NONE;
}

void job_step_clear(struct job_step *s)
{
	for (size_t i = 0; i < s->nev; i++) {
		free(s->ev[i].key);
		free(s->ev[i].value);
	}
	free(s->ev);
	free(s->reason);
	memset(s, 0, sizeof *s);
	s->state = STEP_PENDING;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	for (int i = 0; i < STEP_COUNT; i++)
		job_step_clear(&j->step[i]);
	job_step_clear(&j->restore);
	free(j->abort_reason);
	job_init(j);
}

int job_set_text(char **field, const char *text, struct fw_err *e)
{
	char *s = NULL;

	if (text && *text) {
		s = strdup(text);
		if (!s)
			return fw_err_set(e, FW_ENOMEM, "out of memory");
	}
	free(*field);
	*field = s;
	return FW_OK;
}

static bool id_valid(const char *id)
{
	size_t n = strlen(id);

	/* The id names the job's folder: no separators, no hidden names. */
	if (n == 0 || n >= JOB_ID_MAX || id[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Latest time that prints with a four-digit year: 9999-12-31T23:59:59Z. */
#define TIME_MAX_SEC INT64_C(253402300799)

int job_start(struct job *j, const char *id, const char *profile, const char *port,
	      int64_t created, struct fw_err *e)
{
	job_init(j);
	if (!id || !id_valid(id))
		return fw_err_set(e, FW_EINVAL,
				  "job id \"%s\" is not usable as a folder name: use 1 to %d letters, "
				  "digits, '.', '_' or '-', not starting with '.'",
				  id ? id : "", JOB_ID_MAX - 1);
	if (!profile || !*profile || strlen(profile) >= JOB_PROFILE_MAX)
		return fw_err_set(e, FW_EINVAL, "the job needs a profile name shorter than %d bytes",
				  JOB_PROFILE_MAX);
	if (!port)
		port = "";
	if (strlen(port) >= JOB_PORT_MAX)
		return fw_err_set(e, FW_EINVAL, "the port name is longer than %d bytes",
				  JOB_PORT_MAX - 1);
	if (created <= 0 || created > TIME_MAX_SEC)
		return fw_err_set(e, FW_EINVAL, "the job has no valid creation time");
	memcpy(j->id, id, strlen(id) + 1);
	memcpy(j->profile, profile, strlen(profile) + 1);
	memcpy(j->port, port, strlen(port) + 1);
	j->created = created;
	return FW_OK;
}

struct job_step *job_step_get(struct job *j, int step)
{
	if (step < 0 || step > STEP_RESTORE)
		return NULL;
	return step == STEP_RESTORE ? &j->restore : &j->step[step];
}

const struct job_step *job_step_cget(const struct job *j, int step)
{
	if (step < 0 || step > STEP_RESTORE)
		return NULL;
	return step == STEP_RESTORE ? &j->restore : &j->step[step];
}

bool job_key_valid(const char *key)
{
	size_t n = 0;
	bool dot = false, seg = false;

	for (; key[n]; n++) {
		char c = key[n];
		if (c == '.') {
			if (!seg)
				return false;
			dot = true;
			seg = false;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') {
			seg = true;
		} else {
			return false;
		}
	}
	return dot && seg && n < JOB_KEY_MAX;
}

static struct job_kv *ev_find(const struct job_step *s, const char *key)
{
	for (size_t i = 0; i < s->nev; i++)
		if (strcmp(s->ev[i].key, key) == 0)
			return &s->ev[i];
	return NULL;
}

const char *job_evidence_get(const struct job *j, int step, const char *key)
{
	const struct job_step *s = job_step_cget(j, step);
	const struct job_kv *kv;

	if (!s || !key)
		return NULL;
	kv = ev_find(s, key);
	return kv ? kv->value : NULL;
}

static int ev_set(struct job_step *s, const char *key, const char *value, struct fw_err *e)
{
	struct job_kv *kv = ev_find(s, key), *grown;
	char *v = strdup(value), *k;

	if (!v)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	if (kv) {
		free(kv->value);
		kv->value = v;
		return FW_OK;
	}
	k = strdup(key);
	grown = k ? realloc(s->ev, (s->nev + 1) * sizeof *s->ev) : NULL;
	if (!grown) {
		free(k);
		free(v);
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	}
	s->ev = grown;
	s->ev[s->nev].key = k;
	s->ev[s->nev].value = v;
	s->nev++;
	return FW_OK;
}

int job_evidence_set(struct job *j, int step, const char *key, const char *value,
		     struct fw_err *e)
{
	struct job_step *s = job_step_get(j, step);

	if (!s)
		return fw_err_set(e, FW_EINVAL, "unknown step %d", step);
	if (!key || !job_key_valid(key))
		return fw_err_set(e, FW_EINVAL, "evidence key \"%s\" is not a dotted lowercase name",
				  key ? key : "(null)");
	if (!value)
		return fw_err_set(e, FW_EINVAL, "evidence %s has no value", key);
	if (s->state == STEP_PENDING)
		return fw_err_set(e, FW_ESTATE, "step %s has not started: it has no evidence yet",
				  steps_info(step)->name);
	return ev_set(s, key, value, e);
}

static int step_copy(struct job_step *dst, const struct job_step *src, struct fw_err *e)
{
	memset(dst, 0, sizeof *dst);
	dst->state = src->state;
	dst->started = src->started;
	dst->finished = src->finished;
	dst->attempts = src->attempts;
	if (job_set_text(&dst->reason, src->reason, e) != FW_OK)
		return FW_ENOMEM;
	for (size_t i = 0; i < src->nev; i++)
		if (ev_set(dst, src->ev[i].key, src->ev[i].value, e) != FW_OK)
			return FW_ENOMEM;
	return FW_OK;
}

int job_copy(struct job *dst, const struct job *src, struct fw_err *e)
{
	int rc = FW_OK;

	job_init(dst);
	memcpy(dst->id, src->id, sizeof dst->id);
	memcpy(dst->profile, src->profile, sizeof dst->profile);
	memcpy(dst->port, src->port, sizeof dst->port);
	dst->created = src->created;
	dst->outcome = src->outcome;
	dst->restore_from = src->restore_from;
	for (int i = 0; i <= STEP_RESTORE && rc == FW_OK; i++)
		rc = step_copy(job_step_get(dst, i), job_step_cget(src, i), e);
	if (rc == FW_OK)
		rc = job_set_text(&dst->abort_reason, src->abort_reason, e);
	if (rc != FW_OK)
		job_free(dst);
	return rc;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool step_equal(const struct job_step *a, const struct job_step *b)
{
	if (a->state != b->state || !str_eq(a->reason, b->reason) || a->started != b->started ||
	    a->finished != b->finished || a->attempts != b->attempts || a->nev != b->nev)
		return false;
	for (size_t i = 0; i < a->nev; i++)
		if (!str_eq(a->ev[i].key, b->ev[i].key) || !str_eq(a->ev[i].value, b->ev[i].value))
			return false;
	return true;
}

bool job_equal(const struct job *a, const struct job *b)
{
	if (strcmp(a->id, b->id) != 0 || strcmp(a->profile, b->profile) != 0 ||
	    strcmp(a->port, b->port) != 0 || a->created != b->created ||
	    a->outcome != b->outcome || !str_eq(a->abort_reason, b->abort_reason) ||
	    a->restore_from != b->restore_from)
		return false;
	for (int i = 0; i <= STEP_RESTORE; i++)
		if (!step_equal(job_step_cget(a, i), job_step_cget(b, i)))
			return false;
	return true;
}

int job_resume_step(const struct job *j)
{
	if (j->outcome != JOB_ACTIVE)
		return STEP_NONE;
	if (j->restore.state != STEP_PENDING)
		return STEP_RESTORE;
	for (int i = 0; i < STEP_COUNT; i++)
		if (j->step[i].state != STEP_DONE && j->step[i].state != STEP_SKIPPED)
			return i;
	return STEP_NONE;
}

/* ---- times ------------------------------------------------------------- */

/* Civil calendar <-> days since 1970-01-01 (proleptic Gregorian), so the
 * core needs neither the C library's time zone state nor timegm(). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

void job_time_format(int64_t t, char out[21])
{
	int64_t y, days, rem;
	unsigned m, d;

	if (t < 0)
		t = 0;
	if (t > TIME_MAX_SEC)
		t = TIME_MAX_SEC;
	days = t / 86400;
	rem = t % 86400;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, 21, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d, (int)(rem / 3600),
		 (int)(rem / 60 % 60), (int)(rem % 60));
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

int job_time_parse(const char *s, int64_t *t)
{
	unsigned y, mo, d, h, mi, se;
	char back[21];
	int64_t v;

	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z')
		return FW_EINVAL;
	if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
	    !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
		return FW_EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
		return FW_EINVAL;
	v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	/* Printing it back catches dates that do not exist (30 February). */
	job_time_format(v, back);
	if (strcmp(back, s) != 0)
		return FW_EINVAL;
	*t = v;
	return FW_OK;
}

/* ---- escaping ---------------------------------------------------------- */

static void escape(struct strbuf *b, const char *s)
{
	strbuf_add_escaped(b, s, strlen(s), "");
}

static char *unescape(const char *s, size_t n, const char **why)
{
	char *out = malloc(n + 1), *o = out;

	*why = NULL;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			*why = "a control character in a value (it must be escaped)";
			goto bad;
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		if (++i >= n) {
			*why = "a value ends in a lone backslash";
			goto bad;
		}
		switch (s[i]) {
		case '\\': *o++ = '\\'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'x': {
			int hi = i + 2 < n ? integrity_hex_value(s[i + 1]) : -1;
			int lo = i + 2 < n ? integrity_hex_value(s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				*why = "a bad \\x escape (two hex digits, not 00)";
				goto bad;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
			break;
		}
		default:
			*why = "an unknown escape (use \\\\, \\n, \\r, \\t or \\xHH)";
			goto bad;
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* ---- journal: writing -------------------------------------------------- */

#define TRAILER_HEAD "# sha256: "
#define TRAILER_LEN (sizeof TRAILER_HEAD - 1 + SHA256_HEX_LEN + 1)

static void put(struct strbuf *b, const char *key, const char *value)
{
	strbuf_adds(b, key);
	strbuf_adds(b, " = ");
	escape(b, value);
	strbuf_adds(b, "\n");
}

static void put_time(struct strbuf *b, const char *key, int64_t t)
{
	char s[21];

	job_time_format(t, s);
	put(b, key, s);
}

static void put_record(struct strbuf *b, const struct job_step *s)
{
	put(b, "state", steps_state_name(s->state));
	if (s->reason)
		put(b, "reason", s->reason);
	if (s->started)
		put_time(b, "started", s->started);
	if (s->finished)
		put_time(b, "finished", s->finished);
	if (s->attempts)
		strbuf_addf(b, "attempts = %u\n", s->attempts);
	for (size_t i = 0; i < s->nev; i++)
		put(b, s->ev[i].key, s->ev[i].value);
}

int job_journal_format(const struct job *j, struct strbuf *out, struct fw_err *e)
{
	size_t start = out->len;
	enum step_device dev = steps_device(j);
	int cur = job_resume_step(j);
	uint8_t sum[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];
	int rc;

	strbuf_adds(out, "# flashwise job journal, written after every step change.\n"
		    "# Do not edit: the last line is the SHA-256 of every line above it\n"
		    "# (check it with: head -n -1 FILE | sha256sum).\n");
	strbuf_adds(out, "[job]\n");
	strbuf_addf(out, "format = %d\n", JOB_JOURNAL_FORMAT);
	put(out, "id", j->id);
	put_time(out, "created", j->created);
	put(out, "profile", j->profile);
	put(out, "port", j->port);
	put(out, "device", steps_device_name(dev));
	put(out, "unsafe", steps_device_unsafe(dev) ? "yes" : "no");
	put(out, "outcome", job_outcome_name(j->outcome));
	if (j->abort_reason)
		put(out, "reason", j->abort_reason);
	put(out, "current", cur == STEP_NONE ? "none" : steps_info(cur)->name);
	for (int i = 0; i < STEP_COUNT; i++) {
		strbuf_addf(out, "\n[step.%s]\n", steps_info(i)->name);
		put_record(out, &j->step[i]);
	}
	if (j->restore_from != STEP_NONE) {
		strbuf_adds(out, "\n[restore]\n");
		put(out, "from", steps_info(j->restore_from) ? steps_info(j->restore_from)->name : "?");
		put_record(out, &j->restore);
	}
	strbuf_adds(out, "\n");
	if (strbuf_failed(out))
		return fw_err_set(e, FW_ENOMEM, "out of memory while writing the journal");
	rc = integrity_sha256(out->s + start, out->len - start, sum);
	if (rc != FW_OK)
		return fw_err_set(e, rc, "cannot compute the journal's SHA-256");
	integrity_hex(sum, SHA256_LEN, hex);
	strbuf_addf(out, TRAILER_HEAD "%s\n", hex);
	if (strbuf_failed(out))
		return fw_err_set(e, FW_ENOMEM, "out of memory while writing the journal");
	return FW_OK;
}

/* ---- journal: reading -------------------------------------------------- */

#define SEC_NONE (-3)
#define SEC_JOB (-2)

enum { JK_FORMAT, JK_ID, JK_CREATED, JK_PROFILE, JK_PORT, JK_DEVICE, JK_UNSAFE, JK_OUTCOME,
       JK_REASON, JK_CURRENT, JK_COUNT };
static const char *const job_keys[JK_COUNT] = {
	"format", "id", "created", "profile", "port", "device", "unsafe", "outcome", "reason",
	"current",
};
/* Every [job] key but reason must be there. */
#define JK_REQUIRED (((1u << JK_COUNT) - 1) & ~(1u << JK_REASON))

enum { RK_STATE, RK_REASON, RK_STARTED, RK_FINISHED, RK_ATTEMPTS, RK_FROM, RK_COUNT };
static const char *const rec_keys[RK_COUNT] = {
	"state", "reason", "started", "finished", "attempts", "from",
};

struct parser {
	struct job *j;
	struct fw_err *e;
	unsigned line;
	int sec;                         /* SEC_NONE, SEC_JOB, or a record id */
	bool seen_sec[STEP_COUNT + 1];   /* records */
	bool seen_job;
	unsigned job_keys_seen;
	unsigned rec_keys_seen[STEP_COUNT + 1];
	int device, unsafe, current;     /* as the [job] section says */
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
	char msg[FW_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return fw_err_set(p->e, FW_EJOURNAL, "journal line %u: %s", p->line, msg);
}

static int parse_section(struct parser *p, const char *s, size_t n)
{
	char name[48];
	int id;

	if (n < 2 || s[n - 1] != ']' || n - 2 >= sizeof name)
		return perr(p, "a section header must be [job], [step.NAME] or [restore]");
	memcpy(name, s + 1, n - 2);
	name[n - 2] = '\0';
	if (strcmp(name, "job") == 0) {
		if (p->seen_job)
			return perr(p, "a second [job] section");
		p->seen_job = true;
		p->sec = SEC_JOB;
		return FW_OK;
	}
	if (!p->seen_job)
		return perr(p, "[%s] before the [job] section", name);
	if (strcmp(name, "restore") == 0)
		id = STEP_RESTORE;
	else if (strncmp(name, "step.", 5) == 0 && (id = steps_by_name(name + 5)) >= 0 &&
		 id < STEP_COUNT)
		;
	else
		return perr(p, "unknown section [%s]", name);
	if (p->seen_sec[id])
		return perr(p, "a second [%s] section", name);
	p->seen_sec[id] = true;
	p->sec = id;
	return FW_OK;
}

static int find_key(const char *const *keys, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return i;
	return -1;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return FW_EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return FW_EINVAL;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return FW_EINVAL;
	}
	*out = (unsigned)v;
	return FW_OK;
}

static int copy_field(struct parser *p, char *dst, size_t cap, const char *key, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return perr(p, "[job] %s is longer than %zu bytes", key, cap - 1);
	memcpy(dst, v, n + 1);
	return FW_OK;
}

static int job_key(struct parser *p, const char *key, const char *v)
{
	struct job *j = p->j;
	int k = find_key(job_keys, JK_COUNT, key), x;
	unsigned u;

	if (k < 0)
		return perr(p, "unknown key '%s' in [job]", key);
	if (p->job_keys_seen & (1u << k))
		return perr(p, "[job] %s appears twice", key);
	p->job_keys_seen |= 1u << k;
	switch (k) {
	case JK_FORMAT:
		if (parse_uint(v, 1000000, &u) != FW_OK || u != JOB_JOURNAL_FORMAT)
			return perr(p, "journal format \"%s\" is not one this flashwise reads (%d)",
				    v, JOB_JOURNAL_FORMAT);
		return FW_OK;
	case JK_ID:
		if (!id_valid(v))
			return perr(p, "[job] id \"%s\" is not a valid job id", v);
		return copy_field(p, j->id, sizeof j->id, key, v);
	case JK_CREATED:
		if (job_time_parse(v, &j->created) != FW_OK || j->created == 0)
			return perr(p, "[job] created \"%s\" is not a time like 2024-05-01T10:00:00Z", v);
		return FW_OK;
	case JK_PROFILE:
		if (!*v)
			return perr(p, "[job] profile is empty");
		return copy_field(p, j->profile, sizeof j->profile, key, v);
	case JK_PORT:
		return copy_field(p, j->port, sizeof j->port, key, v);
	case JK_DEVICE:
		if ((p->device = steps_device_by_name(v)) < 0)
			return perr(p, "[job] device \"%s\" is not untouched, pending, ok, failed or restored", v);
		return FW_OK;
	case JK_UNSAFE:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return perr(p, "[job] unsafe must be yes or no");
		p->unsafe = strcmp(v, "yes") == 0;
		return FW_OK;
	case JK_OUTCOME:
		if ((x = outcome_by_name(v)) < 0)
			return perr(p, "[job] outcome \"%s\" is not active, complete, aborted or restored", v);
		j->outcome = (enum job_outcome)x;
		return FW_OK;
	case JK_REASON:
		if (!*v)
			return perr(p, "[job] reason is empty");
		return job_set_text(&j->abort_reason, v, p->e) == FW_OK ? FW_OK : FW_ENOMEM;
	case JK_CURRENT:
		if (strcmp(v, "none") == 0)
			p->current = STEP_NONE;
		else if ((p->current = steps_by_name(v)) == STEP_NONE)
			return perr(p, "[job] current \"%s\" is not a step name", v);
		return FW_OK;
	}
	return perr(p, "unknown key '%s' in [job]", key);
}

static int rec_key(struct parser *p, const char *key, const char *v)
{
	struct job_step *s = job_step_get(p->j, p->sec);
	int k = find_key(rec_keys, RK_COUNT, key), x;
	int64_t t;

	if (k < 0 || (k == RK_FROM && p->sec != STEP_RESTORE)) {
		if (!job_key_valid(key) && p->sec == STEP_RESTORE)
			return perr(p, "unknown key '%s' in [restore]", key);
		if (!job_key_valid(key))
			return perr(p, "unknown key '%s' in [step.%s]", key,
				    steps_info(p->sec)->name);
		/* Evidence. */
		if (ev_find(s, key))
			return perr(p, "evidence %s appears twice", key);
		return ev_set(s, key, v, p->e) == FW_OK ? FW_OK : FW_ENOMEM;
	}
	if (p->rec_keys_seen[p->sec] & (1u << k))
		return perr(p, "%s appears twice in one section", key);
	p->rec_keys_seen[p->sec] |= 1u << k;
	switch (k) {
	case RK_STATE:
		if ((x = steps_state_by_name(v)) < 0)
			return perr(p, "state \"%s\" is not pending, running, done, failed or skipped", v);
		s->state = (enum step_state)x;
		return FW_OK;
	case RK_REASON:
		if (!*v)
			return perr(p, "reason is empty");
		return job_set_text(&s->reason, v, p->e) == FW_OK ? FW_OK : FW_ENOMEM;
	case RK_STARTED:
	case RK_FINISHED:
		if (job_time_parse(v, &t) != FW_OK || t == 0)
			return perr(p, "%s \"%s\" is not a time like 2024-05-01T10:00:00Z", key, v);
		if (k == RK_STARTED)
			s->started = t;
		else
			s->finished = t;
		return FW_OK;
	case RK_ATTEMPTS:
		if (parse_uint(v, 1000000, &s->attempts) != FW_OK || s->attempts == 0)
			return perr(p, "attempts \"%s\" is not a count from 1", v);
		return FW_OK;
	case RK_FROM:
		x = steps_by_name(v);
		if (x < 0 || x >= STEP_COUNT)
			return perr(p, "from \"%s\" is not a step name", v);
		p->j->restore_from = x;
		return FW_OK;
	}
	return perr(p, "unknown key '%s'", key);
}

static int parse_line(struct parser *p, const char *s, size_t n)
{
	char key[JOB_KEY_MAX];
	const char *why;
	size_t k = 0;
	char *v;
	int rc;

	if (n == 0 || s[0] == '#')
		return FW_OK;
	if (memchr(s, '\0', n))
		return perr(p, "a NUL byte");
	if (s[0] == '[')
		return parse_section(p, s, n);
	while (k < n && s[k] != ' ') {
		char c = s[k];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return perr(p, "not a \"key = value\" line");
		k++;
	}
	if (k == 0 || k >= sizeof key || n - k < 3 || memcmp(s + k, " = ", 3) != 0)
		return perr(p, "not a \"key = value\" line");
	memcpy(key, s, k);
	key[k] = '\0';
	if (p->sec == SEC_NONE)
		return perr(p, "%s before any section", key);
	v = unescape(s + k + 3, n - k - 3, &why);
	if (!v)
		return why ? perr(p, "%s: %s", key, why)
			   : fw_err_set(p->e, FW_ENOMEM, "out of memory");
	rc = p->sec == SEC_JOB ? job_key(p, key, v) : rec_key(p, key, v);
	free(v);
	if (rc == FW_ENOMEM)
		fw_err_set(p->e, FW_ENOMEM, "out of memory");
	return rc;
}

static int check_trailer(const char *text, size_t len, size_t *body, struct fw_err *e)
{
	const char *t;
	uint8_t sum[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];

	if (len < TRAILER_LEN)
		return fw_err_set(e, FW_EJOURNAL,
				  "the journal is truncated: it is too short to hold its SHA-256 line");
	*body = len - TRAILER_LEN;
	t = text + *body;
	if ((*body && text[*body - 1] != '\n') ||
	    memcmp(t, TRAILER_HEAD, sizeof TRAILER_HEAD - 1) != 0 || t[TRAILER_LEN - 1] != '\n')
		return fw_err_set(e, FW_EJOURNAL,
				  "the journal is truncated or damaged: its last line is not "
				  "\"" TRAILER_HEAD "<64 hex digits>\"");
	t += sizeof TRAILER_HEAD - 1;
	for (size_t i = 0; i < SHA256_HEX_LEN; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return fw_err_set(e, FW_EJOURNAL,
					  "the journal is damaged: its SHA-256 line is not 64 lowercase hex digits");
	if (integrity_sha256(text, *body, sum) != FW_OK)
		return fw_err_set(e, FW_EJOURNAL, "cannot compute the journal's SHA-256");
	integrity_hex(sum, SHA256_LEN, hex);
	if (memcmp(hex, t, SHA256_HEX_LEN) != 0)
		return fw_err_set(e, FW_EJOURNAL,
				  "the journal is damaged or was edited: its SHA-256 does not match "
				  "its contents (expected %.64s, computed %s); it cannot be trusted",
				  t, hex);
	return FW_OK;
}

static int parse_body(struct parser *p, const char *text, size_t body)
{
	size_t pos = 0;
	int rc;

	while (pos < body) {
		const char *nl = memchr(text + pos, '\n', body - pos);
		size_t n = (size_t)(nl - (text + pos)); /* the body ends with '\n' */

		p->line++;
		rc = parse_line(p, text + pos, n);
		if (rc != FW_OK)
			return rc;
		pos += n + 1;
	}
	p->line++; /* the trailer */
	if (!p->seen_job)
		return fw_err_set(p->e, FW_EJOURNAL, "the journal has no [job] section");
	if ((p->job_keys_seen & JK_REQUIRED) != JK_REQUIRED) {
		for (int k = 0; k < JK_COUNT; k++)
			if ((JK_REQUIRED & (1u << k)) && !(p->job_keys_seen & (1u << k)))
				return fw_err_set(p->e, FW_EJOURNAL, "[job] has no %s", job_keys[k]);
	}
	for (int i = 0; i < STEP_COUNT; i++) {
		if (!p->seen_sec[i])
			return fw_err_set(p->e, FW_EJOURNAL, "the journal has no [step.%s] section",
					  steps_info(i)->name);
		if (!(p->rec_keys_seen[i] & (1u << RK_STATE)))
			return fw_err_set(p->e, FW_EJOURNAL, "[step.%s] has no state",
					  steps_info(i)->name);
	}
	if (p->seen_sec[STEP_RESTORE] &&
	    (p->rec_keys_seen[STEP_RESTORE] & ((1u << RK_STATE) | (1u << RK_FROM))) !=
	    ((1u << RK_STATE) | (1u << RK_FROM)))
		return fw_err_set(p->e, FW_EJOURNAL, "[restore] needs both from and state");
	return FW_OK;
}

int job_journal_parse(const char *text, size_t len, struct job *j, struct fw_err *e)
{
	struct parser p = {.j = j, .e = e, .sec = SEC_NONE};
	size_t body = 0;
	enum step_device dev;
	int rc;

	job_init(j);
	if (!text)
		return fw_err_set(e, FW_EJOURNAL, "the journal is empty");
	rc = check_trailer(text, len, &body, e);
	if (rc == FW_OK)
		rc = parse_body(&p, text, body);
	if (rc == FW_OK)
		rc = steps_validate(j, e);
	if (rc == FW_OK) {
		/* The summary lines are derived; if they disagree with the steps,
		 * the record was not written by the machine. */
		dev = steps_device(j);
		if ((int)dev != p.device || p.unsafe != (int)steps_device_unsafe(dev))
			rc = fw_err_set(e, FW_EJOURNAL,
					"the journal says the device is %s%s, but its steps say %s",
					steps_device_name((enum step_device)p.device),
					p.unsafe ? " (unsafe)" : "", steps_device_name(dev));
		else if (p.current != job_resume_step(j))
			rc = fw_err_set(e, FW_EJOURNAL,
					"the journal says the current step is %s, but its steps say %s",
					p.current == STEP_NONE ? "none" : steps_info(p.current)->name,
					job_resume_step(j) == STEP_NONE ? "none"
						: steps_info(job_resume_step(j))->name);
	}
	if (rc != FW_OK)
		job_free(j);
	return rc;
}
