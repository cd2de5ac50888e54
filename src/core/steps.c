#include "steps.h"

#include <string.h>

#include "job.h"

/* The guide. Order is the hardware's: the image is checked before anything
 * touches the device, and the backup is read through the bootloader. */
static const struct step_info rows[STEP_COUNT + 1] = {
	[STEP_IDENTIFY] = {STEP_IDENTIFY, "identify", "Identify the device and firmware",
		"choose the profile and the firmware, confirm the model and revision",
		STEP_SKIP_NEVER, false},
	[STEP_VERIFY_IMAGE] = {STEP_VERIFY_IMAGE, "verify-image", "Check the firmware image",
		"check the image's hash, signature and layout before anything touches the device",
		STEP_SKIP_NEVER, false},
	[STEP_PREPARE] = {STEP_PREPARE, "prepare", "Prepare the bench",
		"check the serial port, the power supply and the conditions",
		STEP_SKIP_REASON, false},
	[STEP_BOOTLOADER] = {STEP_BOOTLOADER, "bootloader", "Enter the bootloader",
		"start the device's loader and confirm the chip is the profile's model",
		STEP_SKIP_NEVER, false},
	[STEP_BACKUP] = {STEP_BACKUP, "backup", "Back up the device",
		"read and store what the device holds now, so that it can be restored",
		STEP_SKIP_CONSENT, false},
	[STEP_FLASH] = {STEP_FLASH, "flash", "Write the firmware",
		"write the checked image to the device",
		STEP_SKIP_NEVER, true},
	[STEP_REBOOT] = {STEP_REBOOT, "reboot", "Reboot the device",
		"leave the loader and watch the device start",
		STEP_SKIP_REASON, false},
	[STEP_VERIFY] = {STEP_VERIFY, "verify", "Verify the device",
		"compare what the device holds with what was written",
		STEP_SKIP_NEVER, false},
	[STEP_DOCUMENT] = {STEP_DOCUMENT, "document", "Document the job",
		"write the job report with every step's evidence",
		STEP_SKIP_REASON, false},
	[STEP_COUNT] = {STEP_RESTORE, "restore", "Restore the backup",
		"write the stored backup back to the device and compare it",
		STEP_SKIP_NEVER, true},
};

static const char *const state_names[STEP_STATE_COUNT] = {
	"pending", "running", "done", "failed", "skipped",
};
static const char *const event_names[STEP_EV_COUNT] = {
	"start", "done", "fail", "skip", "retry", "restore", "abort",
};
static const char *const device_names[STEP_DEVICE_COUNT] = {
	"untouched", "pending", "ok", "failed", "restored",
};

static int g_start(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_done(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_fail(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_skip(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_retry(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_restore(const struct job *j, const struct step_input *in, struct fw_err *e);
static int g_abort(const struct job *j, const struct step_input *in, struct fw_err *e);

#define T(nx, fx, g) {true, nx, fx, g}
/* Every cell not listed is illegal. done and skipped are final: a step
 * that finished is never reopened (a new job starts over). */
static const struct step_transition table[STEP_STATE_COUNT][STEP_EV_COUNT] = {
	[STEP_PENDING] = {
		[STEP_EV_START] = T(STEP_RUNNING, STEP_FX_NONE, g_start),
		[STEP_EV_SKIP] = T(STEP_SKIPPED, STEP_FX_NONE, g_skip),
		[STEP_EV_ABORT] = T(STEP_PENDING, STEP_FX_ABORT, g_abort),
	},
	[STEP_RUNNING] = {
		[STEP_EV_DONE] = T(STEP_DONE, STEP_FX_NONE, g_done),
		[STEP_EV_FAIL] = T(STEP_FAILED, STEP_FX_NONE, g_fail),
		/* An abort interrupts the step: it failed. */
		[STEP_EV_ABORT] = T(STEP_FAILED, STEP_FX_ABORT, g_abort),
	},
	[STEP_FAILED] = {
		[STEP_EV_RETRY] = T(STEP_RUNNING, STEP_FX_NONE, g_retry),
		[STEP_EV_RESTORE] = T(STEP_FAILED, STEP_FX_RESTORE, g_restore),
		[STEP_EV_ABORT] = T(STEP_FAILED, STEP_FX_ABORT, g_abort),
	},
};
#undef T

const struct step_info *steps_table(size_t *n)
{
	if (n)
		*n = STEP_COUNT;
	return rows;
}

const struct step_info *steps_info(int step)
{
	if (step < 0 || step > STEP_RESTORE)
		return NULL;
	return &rows[step];
}

int steps_by_name(const char *name)
{
	for (int i = 0; name && i <= STEP_RESTORE; i++)
		if (strcmp(rows[i].name, name) == 0)
			return i;
	return STEP_NONE;
}

const struct step_transition *steps_transition(enum step_state s, enum step_event ev)
{
	if ((unsigned)s >= STEP_STATE_COUNT || (unsigned)ev >= STEP_EV_COUNT)
		return NULL;
	return &table[s][ev];
}

const char *steps_state_name(enum step_state s)
{
	return (unsigned)s < STEP_STATE_COUNT ? state_names[s] : "?";
}

int steps_state_by_name(const char *name)
{
	for (int i = 0; name && i < STEP_STATE_COUNT; i++)
		if (strcmp(state_names[i], name) == 0)
			return i;
	return -1;
}

const char *steps_event_name(enum step_event ev)
{
	return (unsigned)ev < STEP_EV_COUNT ? event_names[ev] : "?";
}

const char *steps_device_name(enum step_device d)
{
	return (unsigned)d < STEP_DEVICE_COUNT ? device_names[d] : "?";
}

int steps_device_by_name(const char *name)
{
	for (int i = 0; name && i < STEP_DEVICE_COUNT; i++)
		if (strcmp(device_names[i], name) == 0)
			return i;
	return -1;
}

/* ---- evidence ---------------------------------------------------------- */

static bool is_sha256_hex(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; s[i]; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return i == 64;
}

/* The value a step would have after this event: the event's own evidence
 * wins (the last of equal keys), then what the step recorded already. */
static const char *ev_after(const struct job *j, const struct step_input *in, const char *key)
{
	for (size_t i = in->nevidence; i-- > 0;)
		if (in->evidence[i].key && strcmp(in->evidence[i].key, key) == 0)
			return in->evidence[i].value;
	/* A retry starts the step over without its old evidence. */
	if (in->event == STEP_EV_RETRY)
		return NULL;
	return job_evidence_get(j, in->step, key);
}

enum req_kind { REQ_NONEMPTY, REQ_SHA256, REQ_EQUALS };

/* What a step must have recorded before it may be reported done. */
static const struct ev_req {
	int step;
	const char *key;
	enum req_kind kind;
	const char *want;
	const char *what;
} done_reqs[] = {
	{STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256, REQ_SHA256, NULL, "the image's SHA-256"},
	{STEP_BOOTLOADER, STEP_KEY_IDENTITY_MATCH, REQ_EQUALS, "yes",
		"a confirmed match between the chip and the profile"},
	{STEP_BACKUP, STEP_KEY_BACKUP_PATH, REQ_NONEMPTY, NULL, "the stored backup's path"},
	{STEP_BACKUP, STEP_KEY_BACKUP_SHA256, REQ_SHA256, NULL, "the stored backup's SHA-256"},
	{STEP_VERIFY, STEP_KEY_VERIFY_METHOD, REQ_NONEMPTY, NULL, "how the device was compared"},
	{STEP_VERIFY, STEP_KEY_VERIFY_RESULT, REQ_EQUALS, "match", "a matching comparison"},
	{STEP_RESTORE, STEP_KEY_RESTORE_METHOD, REQ_NONEMPTY, NULL, "how the restore was compared"},
	{STEP_RESTORE, STEP_KEY_RESTORE_RESULT, REQ_EQUALS, "match", "a matching comparison"},
};

static bool req_met(const struct ev_req *r, const char *v)
{
	switch (r->kind) {
	case REQ_NONEMPTY: return v && *v;
	case REQ_SHA256: return is_sha256_hex(v);
	case REQ_EQUALS: return v && strcmp(v, r->want) == 0;
	}
	return false;
}

static int req_fail(const struct ev_req *r, const char *v, const char *verb, struct fw_err *e)
{
	const char *name = rows[r->step].name;

	if (!v || !*v)
		return fw_err_set(e, FW_EGUARD, "step %s %s without %s (evidence %s is missing)",
				  name, verb, r->what, r->key);
	if (r->kind == REQ_EQUALS)
		return fw_err_set(e, FW_EGUARD, "step %s %s without %s (evidence %s is \"%s\", not \"%s\")",
				  name, verb, r->what, r->key, v, r->want);
	return fw_err_set(e, FW_EGUARD, "step %s %s without %s (evidence %s is not 64 hex digits)",
			  name, verb, r->what, r->key);
}

/* ---- preconditions ----------------------------------------------------- */

/* Adds context to a refusal. The code comes from rc, never from e: e may be
 * NULL (steps_choices() probes without one) and a refusal must stay one. */
static int refused(int rc, struct fw_err *e, const char *context)
{
	if (rc != FW_OK)
		fw_err_prefix(e, "%s", context);
	return rc;
}

int steps_backup_exists(const struct job *j, struct fw_err *e)
{
	const struct job_step *b = &j->step[STEP_BACKUP];
	const char *path = job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_PATH);
	const char *sha = job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_SHA256);

	if (b->state != STEP_DONE)
		return fw_err_set(e, FW_EGUARD, "no backup exists: the backup step is %s",
				  steps_state_name(b->state));
	if (!path || !*path)
		return fw_err_set(e, FW_EGUARD, "no backup exists: the backup step recorded no %s",
				  STEP_KEY_BACKUP_PATH);
	if (!is_sha256_hex(sha))
		return fw_err_set(e, FW_EGUARD,
				  "the backup cannot be trusted: the backup step recorded no valid %s",
				  STEP_KEY_BACKUP_SHA256);
	return FW_OK;
}

/* Nothing is written unless the image passed its checks, the chip was
 * identified as the profile's model and a backup was stored (or the
 * technician typed their consent to go on without one). */
int steps_can_flash(const struct job *j, struct fw_err *e)
{
	const struct job_step *img = &j->step[STEP_VERIFY_IMAGE];
	const struct job_step *boot = &j->step[STEP_BOOTLOADER];
	const struct job_step *bak = &j->step[STEP_BACKUP];
	const char *v;

	if (img->state != STEP_DONE)
		return fw_err_set(e, FW_EGUARD,
				  "refusing to flash: the image was not checked (step verify-image is %s)",
				  steps_state_name(img->state));
	if (!is_sha256_hex(job_evidence_get(j, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256)))
		return fw_err_set(e, FW_EGUARD,
				  "refusing to flash: step verify-image recorded no image hash (%s)",
				  STEP_KEY_IMAGE_SHA256);
	if (boot->state != STEP_DONE)
		return fw_err_set(e, FW_EGUARD,
				  "refusing to flash: the chip was not identified (step bootloader is %s)",
				  steps_state_name(boot->state));
	v = job_evidence_get(j, STEP_BOOTLOADER, STEP_KEY_IDENTITY_MATCH);
	if (!v || strcmp(v, "yes") != 0)
		return fw_err_set(e, FW_EGUARD,
				  "refusing to flash: the chip was not confirmed to be the profile's model "
				  "(step bootloader: %s is %s%s%s)", STEP_KEY_IDENTITY_MATCH,
				  v ? "\"" : "missing", v ? v : "", v ? "\"" : "");
	if (bak->state == STEP_SKIPPED) {
		v = job_evidence_get(j, STEP_BACKUP, STEP_KEY_BACKUP_CONSENT);
		if (!v || !*v)
			return fw_err_set(e, FW_EGUARD,
					  "refusing to flash: the backup was skipped without typed consent (%s)",
					  STEP_KEY_BACKUP_CONSENT);
		return FW_OK;
	}
	return refused(steps_backup_exists(j, e), e, "refusing to flash");
}

static int precondition(const struct job *j, int step, struct fw_err *e)
{
	if (step == STEP_FLASH)
		return steps_can_flash(j, e);
	if (step == STEP_RESTORE)
		return refused(steps_backup_exists(j, e), e, "cannot restore");
	return FW_OK;
}

/* ---- guards ------------------------------------------------------------ */

static bool has_text(const char *s)
{
	return s && *s;
}

static int g_start(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	if (in->step == STEP_RESTORE)
		return fw_err_set(e, FW_ESTATE,
				  "the restore is not started directly: choose restore on the failed step");
	return precondition(j, in->step, e);
}

static int g_done(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	for (size_t i = 0; i < sizeof done_reqs / sizeof done_reqs[0]; i++) {
		const struct ev_req *r = &done_reqs[i];
		const char *v;

		if (r->step != in->step)
			continue;
		v = ev_after(j, in, r->key);
		if (!req_met(r, v))
			return req_fail(r, v, "cannot be done", e);
	}
	return FW_OK;
}

static int g_fail(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	(void)j;
	if (!has_text(in->reason))
		return fw_err_set(e, FW_EINVAL, "a failure of step %s needs a reason",
				  rows[in->step].name);
	return FW_OK;
}

static int g_skip(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	const struct step_info *s = &rows[in->step];
	const char *v;

	(void)j;
	if (s->skip == STEP_SKIP_NEVER)
		return fw_err_set(e, FW_EGUARD, "step %s can never be skipped", s->name);
	if (!has_text(in->reason))
		return fw_err_set(e, FW_EGUARD, "skipping step %s needs a reason", s->name);
	if (s->skip == STEP_SKIP_CONSENT) {
		v = ev_after(j, in, STEP_KEY_BACKUP_CONSENT);
		if (!has_text(v))
			return fw_err_set(e, FW_EGUARD,
					  "skipping step %s needs the technician's typed consent (%s): "
					  "without a backup a failed write cannot be undone",
					  s->name, STEP_KEY_BACKUP_CONSENT);
	}
	return FW_OK;
}

static int g_retry(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	/* The preconditions held when the step first started; checking them
	 * again costs nothing and keeps the guard in one place. */
	return precondition(j, in->step, e);
}

static int g_restore(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	if (in->step == STEP_RESTORE)
		return fw_err_set(e, FW_ESTATE, "the restore failed: retry it or abort");
	if (j->step[STEP_FLASH].state == STEP_PENDING)
		return fw_err_set(e, FW_EGUARD,
				  "nothing was written: the device is untouched, there is nothing to restore");
	return refused(steps_backup_exists(j, e), e, "cannot restore");
}

static int g_abort(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	(void)j;
	if (in->nevidence)
		return fw_err_set(e, FW_EINVAL, "an abort records no evidence, only a reason");
	return FW_OK;
}

/* ---- the machine ------------------------------------------------------- */

/* Latest a time can be and still print as a four-digit year. */
#define TIME_MAX_SEC INT64_C(253402300799)

int steps_check(const struct job *j, const struct step_input *in, struct fw_err *e)
{
	const struct step_transition *t;
	const struct job_step *r;
	int cur;

	if (!j || !in)
		return fw_err_set(e, FW_EINVAL, "no job or event");
	if ((unsigned)in->event >= STEP_EV_COUNT)
		return fw_err_set(e, FW_EINVAL, "unknown event %d", (int)in->event);
	if (in->step < 0 || in->step > STEP_RESTORE)
		return fw_err_set(e, FW_EINVAL, "unknown step %d", in->step);
	if (in->now <= 0 || in->now > TIME_MAX_SEC)
		return fw_err_set(e, FW_EINVAL, "event %s has no valid time",
				  event_names[in->event]);
	if (in->nevidence && !in->evidence)
		return fw_err_set(e, FW_EINVAL, "evidence count without evidence");
	for (size_t i = 0; i < in->nevidence; i++) {
		if (!in->evidence[i].key || !job_key_valid(in->evidence[i].key))
			return fw_err_set(e, FW_EINVAL,
					  "evidence key \"%s\" is not a dotted lowercase name",
					  in->evidence[i].key ? in->evidence[i].key : "(null)");
		if (!in->evidence[i].value)
			return fw_err_set(e, FW_EINVAL, "evidence %s has no value",
					  in->evidence[i].key);
	}

	if (j->outcome != JOB_ACTIVE)
		return fw_err_set(e, FW_ESTATE, "the job has ended (%s): start a new job",
				  job_outcome_name(j->outcome));
	r = job_step_cget(j, in->step);
	t = &table[r->state][in->event];
	if (!t->legal)
		return fw_err_set(e, FW_ESTATE, "cannot %s step %s: it is %s",
				  event_names[in->event], rows[in->step].name,
				  steps_state_name(r->state));
	cur = job_resume_step(j);
	if (cur != in->step) {
		if (cur >= 0 && cur < in->step && in->step != STEP_RESTORE)
			return fw_err_set(e, FW_ESTATE,
					  "cannot %s step %s: step %s comes first and is %s",
					  event_names[in->event], rows[in->step].name,
					  rows[cur].name,
					  steps_state_name(job_step_cget(j, cur)->state));
		return fw_err_set(e, FW_ESTATE, "cannot %s step %s: the current step is %s",
				  event_names[in->event], rows[in->step].name,
				  cur == STEP_NONE ? "none" : rows[cur].name);
	}
	return t->guard ? t->guard(j, in, e) : FW_OK;
}

static int record_evidence(struct job *j, int step, const struct step_input *in,
			   struct fw_err *e)
{
	for (size_t i = 0; i < in->nevidence; i++) {
		int rc = job_evidence_set(j, step, in->evidence[i].key, in->evidence[i].value, e);
		if (rc != FW_OK)
			return rc;
	}
	return FW_OK;
}


static int mutate(struct job *j, const struct step_input *in, struct fw_err *e)
{
	const struct step_transition *t;
	struct job_step *r = job_step_get(j, in->step);
	int ev_step = in->step;
	unsigned attempts;
	int rc = FW_OK;

	t = &table[r->state][in->event];
	switch (in->event) {
	case STEP_EV_START:
	case STEP_EV_RETRY:
		if (in->event == STEP_EV_RETRY) {
			/* A retry starts over: nothing of the failed attempt may
			 * satisfy a guard later. The attempt count stays. */
			attempts = r->attempts;
			job_step_clear(r);
			r->attempts = attempts;
		}
		r->attempts++;
		r->started = in->now;
		r->finished = 0;
		break;
	case STEP_EV_DONE:
		r->finished = in->now;
		break;
	case STEP_EV_FAIL:
	case STEP_EV_SKIP:
		rc = job_set_text(&r->reason, in->reason, e);
		r->finished = in->now;
		break;
	case STEP_EV_RESTORE:
	case STEP_EV_ABORT:
	case STEP_EV_COUNT:
		break;
	}
	if (rc != FW_OK)
		return rc;

	if (t->effect == STEP_FX_RESTORE) {
		job_step_clear(&j->restore);
		j->restore.state = STEP_RUNNING;
		j->restore.attempts = 1;
		j->restore.started = in->now;
		j->restore_from = in->step;
		ev_step = STEP_RESTORE;
	} else if (t->effect == STEP_FX_ABORT) {
		const char *why = has_text(in->reason) ? in->reason : "aborted by the technician";

		if (r->state == STEP_RUNNING) {
			rc = job_set_text(&r->reason, why, e);
			r->finished = in->now;
		}
		if (rc == FW_OK)
			rc = job_set_text(&j->abort_reason, why, e);
		if (rc != FW_OK)
			return rc;
		j->outcome = JOB_ABORTED;
	}
	r->state = t->next;

	rc = record_evidence(j, ev_step, in, e);
	if (rc != FW_OK)
		return rc;

	if (j->outcome == JOB_ACTIVE) {
		if (j->restore.state == STEP_DONE)
			j->outcome = JOB_RESTORED;
		else if (job_resume_step(j) == STEP_NONE)
			j->outcome = JOB_COMPLETE;
	}
	return FW_OK;
}

int steps_apply(struct job *j, const struct step_input *in, struct fw_err *e)
{
	struct job tmp;
	int rc;

	rc = steps_check(j, in, e);
	if (rc != FW_OK)
		return rc;
	/* Work on a copy so that running out of memory half-way leaves the
	 * job exactly as it was: the journal must never describe a state the
	 * machine did not reach. */
	rc = job_copy(&tmp, j, e);
	if (rc != FW_OK)
		return rc;
	rc = mutate(&tmp, in, e);
	if (rc != FW_OK) {
		job_free(&tmp);
		return rc;
	}
	job_free(j);
	*j = tmp;
	return FW_OK;
}

/* ---- device condition and choices -------------------------------------- */

static enum step_state state_of(const struct job *j, int step, int ov_step, enum step_state ov)
{
	return step == ov_step ? ov : job_step_cget(j, step)->state;
}

/* The condition, optionally as if one record were in another state (to
 * tell what an abort would leave behind). */
static enum step_device device_of(const struct job *j, int ov_step, enum step_state ov)
{
	static const int late[] = {STEP_VERIFY, STEP_REBOOT, STEP_FLASH};

	switch (state_of(j, STEP_RESTORE, ov_step, ov)) {
	case STEP_RUNNING: return STEP_DEVICE_PENDING;
	case STEP_DONE: return STEP_DEVICE_RESTORED;
	case STEP_FAILED: return STEP_DEVICE_FAILED;
	default: break;
	}
	if (state_of(j, STEP_FLASH, ov_step, ov) == STEP_PENDING)
		return STEP_DEVICE_UNTOUCHED;
	/* The latest of flash, reboot and verify that moved tells. */
	for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) {
		switch (state_of(j, late[i], ov_step, ov)) {
		case STEP_RUNNING: return STEP_DEVICE_PENDING;
		case STEP_FAILED: return STEP_DEVICE_FAILED;
		case STEP_DONE:
			return late[i] == STEP_VERIFY ? STEP_DEVICE_OK : STEP_DEVICE_PENDING;
		default: break;
		}
	}
	return STEP_DEVICE_PENDING;
}

enum step_device steps_device(const struct job *j)
{
	return device_of(j, STEP_NONE, STEP_PENDING);
}

bool steps_device_unsafe(enum step_device d)
{
	return d == STEP_DEVICE_PENDING || d == STEP_DEVICE_FAILED;
}

size_t steps_choices(const struct job *j, struct step_choice out[STEP_CHOICES_MAX])
{
	static const struct step_kv probe_consent = {STEP_KEY_BACKUP_CONSENT, "?"};
	enum step_event order[STEP_CHOICES_MAX + 1];
	size_t norder = 0, n = 0;
	const struct job_step *r;
	bool writes;
	int cur = job_resume_step(j);

	if (cur == STEP_NONE)
		return 0;
	r = job_step_cget(j, cur);
	writes = rows[cur].writes;
	switch (r->state) {
	case STEP_PENDING:
		order[norder++] = STEP_EV_START;
		order[norder++] = STEP_EV_SKIP;
		break;
	case STEP_FAILED:
		/* Re-running a step that only reads is harmless; a restore puts
		 * back what the device held; a new write comes after both. */
		if (!writes)
			order[norder++] = STEP_EV_RETRY;
		order[norder++] = STEP_EV_RESTORE;
		if (writes)
			order[norder++] = STEP_EV_RETRY;
		break;
	default:
		break;
	}
	order[norder++] = STEP_EV_ABORT;

	for (size_t i = 0; i < norder && n < STEP_CHOICES_MAX; i++) {
		/* A probe with a reason and consent: the choice is legal when the
		 * technician will be asked for them. */
		struct step_input probe = {
			.event = order[i], .step = cur, .reason = "?", .now = 1,
			.evidence = order[i] == STEP_EV_SKIP ? &probe_consent : NULL,
			.nevidence = order[i] == STEP_EV_SKIP ? 1 : 0,
		};

		if (steps_check(j, &probe, NULL) != FW_OK)
			continue;
		out[n].event = order[i];
		out[n].step = cur;
		out[n].unsafe = order[i] == STEP_EV_ABORT &&
			steps_device_unsafe(device_of(j, cur, table[r->state][STEP_EV_ABORT].next));
		n++;
	}
	return n;
}

/* ---- whole-record validation ------------------------------------------- */

/* A guard's refusal, restated as a damaged record. */
static int as_journal(struct fw_err *e, const char *context)
{
	if (e) {
		fw_err_prefix(e, "%s", context);
		e->code = FW_EJOURNAL;
	}
	return FW_EJOURNAL;
}

static int bad(struct fw_err *e, const char *name, const char *what)
{
	return fw_err_set(e, FW_EJOURNAL, "impossible job state: step %s %s", name, what);
}

static int check_record(const struct job *j, int step, struct fw_err *e)
{
	const struct job_step *r = job_step_cget(j, step);
	const struct step_info *s = &rows[step];

	switch (r->state) {
	case STEP_PENDING:
		if (r->attempts || r->started || r->finished || r->reason || r->nev)
			return bad(e, s->name, "is pending but has times, a reason or evidence");
		return FW_OK;
	case STEP_RUNNING:
		if (!r->attempts || !r->started || r->finished || r->reason)
			return bad(e, s->name, "is running but its start, end or reason is wrong");
		return FW_OK;
	case STEP_DONE:
		if (!r->attempts || !r->started || !r->finished || r->reason)
			return bad(e, s->name, "is done but its start, end or reason is wrong");
		for (size_t i = 0; i < sizeof done_reqs / sizeof done_reqs[0]; i++) {
			const struct ev_req *q = &done_reqs[i];
			if (q->step == step && !req_met(q, job_evidence_get(j, step, q->key))) {
				req_fail(q, job_evidence_get(j, step, q->key), "is done", e);
				return as_journal(e, "impossible job state");
			}
		}
		return FW_OK;
	case STEP_FAILED:
		if (!r->attempts || !r->started || !r->finished || !has_text(r->reason))
			return bad(e, s->name, "failed but its start, end or reason is missing");
		return FW_OK;
	case STEP_SKIPPED:
		if (s->skip == STEP_SKIP_NEVER)
			return bad(e, s->name, "is skipped but can never be skipped");
		if (r->attempts || r->started || !r->finished || !has_text(r->reason))
			return bad(e, s->name, "is skipped but its times or reason are wrong");
		if (s->skip == STEP_SKIP_CONSENT &&
		    !has_text(job_evidence_get(j, step, STEP_KEY_BACKUP_CONSENT)))
			return bad(e, s->name, "is skipped without the technician's typed consent");
		return FW_OK;
	default:
		return bad(e, s->name, "has an unknown state");
	}
}

int steps_validate(const struct job *j, struct fw_err *e)
{
	const struct job_step *rs = &j->restore;
	int k, rc;

	for (int i = 0; i <= STEP_RESTORE; i++) {
		rc = check_record(j, i, e);
		if (rc != FW_OK)
			return rc;
	}
	for (k = 0; k < STEP_COUNT; k++)
		if (j->step[k].state != STEP_DONE && j->step[k].state != STEP_SKIPPED)
			break;
	/* Steps run in order: everything after the first unfinished step is
	 * untouched (this is what catches "flash done while backup pending"). */
	for (int i = k + 1; i < STEP_COUNT; i++) {
		if (j->step[i].state != STEP_PENDING) {
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: step %s is %s while step %s before it is %s",
					  rows[i].name, steps_state_name(j->step[i].state),
					  rows[k].name, steps_state_name(j->step[k].state));
		}
	}
	if (j->step[STEP_FLASH].state != STEP_PENDING && steps_can_flash(j, e) != FW_OK)
		return as_journal(e, "impossible job state: step flash started, but");

	if (j->restore_from == STEP_NONE) {
		if (rs->state != STEP_PENDING)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: a restore without the step it was chosen on");
	} else {
		if (j->restore_from < 0 || j->restore_from >= STEP_COUNT)
			return fw_err_set(e, FW_EJOURNAL, "impossible job state: restore from an unknown step");
		if (rs->state == STEP_PENDING || j->restore_from != k ||
		    j->step[k].state != STEP_FAILED)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: a restore must follow the failed current step");
		if (j->step[STEP_FLASH].state == STEP_PENDING)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: a restore although nothing was written");
		if (steps_backup_exists(j, e) != FW_OK)
			return as_journal(e, "impossible job state: a restore, but");
	}

	switch (j->outcome) {
	case JOB_ACTIVE:
		if (k == STEP_COUNT || rs->state == STEP_DONE || j->abort_reason)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: the job is active but has ended");
		break;
	case JOB_COMPLETE:
		if (k != STEP_COUNT || j->restore_from != STEP_NONE || j->abort_reason)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: the job is complete but step %s is %s",
					  k < STEP_COUNT ? rows[k].name : "restore",
					  k < STEP_COUNT ? steps_state_name(j->step[k].state) : "chosen");
		break;
	case JOB_ABORTED:
		if (k == STEP_COUNT || rs->state == STEP_DONE || !has_text(j->abort_reason) ||
		    j->step[k].state == STEP_RUNNING || rs->state == STEP_RUNNING)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: the job was aborted but a step is still "
					  "running, the job finished, or no reason was recorded");
		break;
	case JOB_RESTORED:
		if (rs->state != STEP_DONE || j->abort_reason)
			return fw_err_set(e, FW_EJOURNAL,
					  "impossible job state: the job is restored but the restore is %s",
					  steps_state_name(rs->state));
		break;
	default:
		return fw_err_set(e, FW_EJOURNAL, "impossible job state: unknown outcome");
	}
	return FW_OK;
}
