/* The flashing guide as a state machine: nine steps in the order the
 * hardware allows, each with a state, and one const table that says, for
 * every state and event, the next state, a job-level effect and the guard
 * that must agree. Pure: the machine changes a struct job (job.h) in
 * memory; the engine persists the journal after every accepted event.
 *
 * Every event addresses the job's current step (job_resume_step()): steps
 * run strictly in order, so an event for any other step is refused. Failures
 * never dead-end: a failed step can be retried, the backup can be restored
 * (once a write started and a backup exists) or the job aborted, and the
 * machine always says what condition the device is in. */
#ifndef FLASHWISE_STEPS_H
#define FLASHWISE_STEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct job;

enum step_id {
	STEP_IDENTIFY,     /* profile, firmware, model/revision */
	STEP_VERIFY_IMAGE, /* image integrity, before anything touches the device */
	STEP_PREPARE,      /* port, power, conditions */
	STEP_BOOTLOADER,   /* enter the loader; the chip must match the profile */
	STEP_BACKUP,       /* read what is on the device (needs the loader) */
	STEP_FLASH,
	STEP_REBOOT,
	STEP_VERIFY,
	STEP_DOCUMENT,
	STEP_COUNT,
};

/* Not a step of the guide: the restore of the backup after a failure. It is
 * recorded like a step (state, times, evidence) and addressed with this id
 * once the technician chose "restore" on a failed step. */
#define STEP_RESTORE ((int)STEP_COUNT)
/* "No step": the job ended (complete, aborted or restored). */
#define STEP_NONE (-1)

enum step_state {
	STEP_PENDING,
	STEP_RUNNING,
	STEP_DONE,
	STEP_FAILED,
	STEP_SKIPPED,
	STEP_STATE_COUNT,
};

enum step_event {
	STEP_EV_START,   /* the engine begins the current step */
	STEP_EV_DONE,    /* it finished; carries its evidence */
	STEP_EV_FAIL,    /* it failed; carries a reason */
	STEP_EV_SKIP,    /* the technician skips it; carries a reason (and consent) */
	STEP_EV_RETRY,   /* run a failed step again */
	STEP_EV_RESTORE, /* write the backup back (from a failed step) */
	STEP_EV_ABORT,   /* stop the job here */
	STEP_EV_COUNT,
};

/* How a step may be skipped. */
enum step_skip {
	STEP_SKIP_NEVER,
	STEP_SKIP_REASON,  /* with a reason */
	STEP_SKIP_CONSENT, /* with a reason and typed consent (STEP_KEY_BACKUP_CONSENT) */
};

/* What the device holds, as far as the job knows. */
enum step_device {
	STEP_DEVICE_UNTOUCHED, /* nothing written yet */
	STEP_DEVICE_PENDING,   /* a write started and is not finished and verified */
	STEP_DEVICE_OK,        /* written and verified */
	STEP_DEVICE_FAILED,    /* a write, the reboot or the verification failed */
	STEP_DEVICE_RESTORED,  /* the backup was written back and verified */
	STEP_DEVICE_COUNT,
};

struct step_info {
	int id;              /* enum step_id, or STEP_RESTORE */
	const char *name;    /* short name: "verify-image" (journal, command line) */
	const char *title;   /* for screens: "Verify the image" */
	const char *purpose; /* one line: what the step does and why here */
	enum step_skip skip;
	bool writes;         /* writes to the device (a retry is not harmless) */
};

/* Evidence keys the guards read. Evidence keys are dotted lowercase names
 * ("word.word"), values any text. */
#define STEP_KEY_IMAGE_SHA256   "image.sha256"    /* 64 hex: the checked image */
#define STEP_KEY_IDENTITY_MATCH "identity.match"  /* "yes": chip matches the profile */
#define STEP_KEY_BACKUP_PATH    "backup.path"     /* where the backup was stored */
#define STEP_KEY_BACKUP_SHA256  "backup.sha256"   /* 64 hex of the stored backup */
#define STEP_KEY_BACKUP_CONSENT "backup.consent"  /* what the technician typed to skip */
#define STEP_KEY_VERIFY_METHOD  "verify.method"   /* "readback", "md5", ... */
#define STEP_KEY_VERIFY_RESULT  "verify.result"   /* "match" */
#define STEP_KEY_RESTORE_METHOD "restore.method"
#define STEP_KEY_RESTORE_RESULT "restore.result"  /* "match" */

/* One piece of evidence handed to the machine (the job keeps its own copy). */
struct step_kv {
	const char *key;
	const char *value;
};

/* One event for the machine. */
struct step_input {
	enum step_event event;
	int step;                       /* enum step_id or STEP_RESTORE */
	const char *reason;             /* fail and skip: required; abort: optional */
	const struct step_kv *evidence; /* recorded on the addressed step (restore:
	                                   on the restore record); abort takes none */
	size_t nevidence;
	int64_t now;                    /* the caller's clock: seconds since the epoch */
};

/* The table. A guard returns FW_OK or FW_EGUARD/FW_ESTATE/FW_EINVAL with a
 * message; it never changes the job. */
enum step_effect {
	STEP_FX_NONE,
	STEP_FX_ABORT,   /* the job ends as aborted */
	STEP_FX_RESTORE, /* the restore record starts running */
};

typedef int (*step_guard_fn)(const struct job *j, const struct step_input *in,
			     struct fw_err *e);

struct step_transition {
	bool legal;
	enum step_state next;  /* of the addressed step */
	enum step_effect effect;
	step_guard_fn guard;   /* NULL: no guard beyond "current step, job active" */
};

/* The nine steps in order (*n = STEP_COUNT). */
const struct step_info *steps_table(size_t *n);
/* A step's row, STEP_RESTORE's too; NULL when out of range. */
const struct step_info *steps_info(int step);
/* Id from a short name ("restore" gives STEP_RESTORE); STEP_NONE if unknown. */
int steps_by_name(const char *name);
/* The cell for (state, event); NULL when out of range. */
const struct step_transition *steps_transition(enum step_state s, enum step_event ev);

const char *steps_state_name(enum step_state s);   /* "pending" ... "?" */
int steps_state_by_name(const char *name);         /* -1 if unknown */
const char *steps_event_name(enum step_event ev);  /* "start" ... */
const char *steps_device_name(enum step_device d); /* "untouched" ... */
int steps_device_by_name(const char *name);        /* -1 if unknown */

/* Would the machine accept this event? FW_OK, or FW_ESTATE (illegal in this
 * state / not the current step / job ended), FW_EGUARD (a safety guard
 * refused, message says what is missing), FW_EINVAL (bad input). */
int steps_check(const struct job *j, const struct step_input *in, struct fw_err *e);
/* Checks, then applies. All or nothing: on error the job is unchanged. */
int steps_apply(struct job *j, const struct step_input *in, struct fw_err *e);

/* Preconditions the guards use, public for screens ("why can't I flash?"):
 * FW_OK or FW_EGUARD naming the first missing piece of evidence. */
int steps_can_flash(const struct job *j, struct fw_err *e);
/* FW_OK when the backup step is done with a stored path and SHA-256. */
int steps_backup_exists(const struct job *j, struct fw_err *e);

/* The device condition, computed from the step states. */
enum step_device steps_device(const struct job *j);
/* True when the device may be unsafe (pending or failed). */
bool steps_device_unsafe(enum step_device d);

/* The technician's legal choices now, safe one first: a harmless retry
 * (a step that does not write), restore, a retry that writes, start, skip,
 * abort. done/fail are the engine's events and never listed. */
struct step_choice {
	enum step_event event;
	int step;    /* enum step_id or STEP_RESTORE */
	bool unsafe; /* may leave the device unsafe: a UI defaults to No */
};
#define STEP_CHOICES_MAX 4
size_t steps_choices(const struct job *j, struct step_choice out[STEP_CHOICES_MAX]);

/* Checks a whole job record for combinations the machine cannot produce
 * (a later step started while an earlier one is not done, a done step
 * without its evidence, flash done while backup pending, ...). FW_EJOURNAL
 * naming the step, used on every journal loaded back. */
int steps_validate(const struct job *j, struct fw_err *e);

#endif
