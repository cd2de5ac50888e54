/* The job record: who, what and where (id, profile, port), every step's
 * state, reason, times and evidence, and how the job ended. steps.h changes
 * it; the journal functions turn it into a human-readable INI text and back.
 * Pure: no files, no clock (times are passed in, seconds since the epoch).
 *
 * Journal format (format 1), one UTF-8 text file, "\n" line ends:
 *
 *   # flashwise job journal ...            comment lines start with '#'
 *   [job]
 *   format = 1
 *   id = 20240501-100000-nodemcu
 *   created = 2024-05-01T10:00:00Z         UTC, always this form
 *   profile = nodemcu-v3
 *   port = /dev/ttyUSB0
 *   device = pending                       untouched|pending|ok|failed|restored
 *   unsafe = yes                           yes when device is pending or failed
 *   outcome = active                       active|complete|aborted|restored
 *   reason = ...                           only when aborted
 *   current = flash                        the step to resume at, or "none"
 *
 *   [step.identify]                        all nine steps, in order
 *   state = done                           pending|running|done|failed|skipped
 *   reason = ...                           only when failed or skipped
 *   started = 2024-05-01T10:00:01Z         once started
 *   finished = 2024-05-01T10:00:02Z        once done, failed or skipped
 *   attempts = 1                           once started
 *   image.sha256 = 9f86...                 evidence: dotted keys
 *
 *   [restore]                              only once a restore was chosen
 *   from = flash                           the failed step it was chosen on
 *   state = running ...                    then as a step
 *
 *   # sha256: <64 hex>                     SHA-256 of every byte above
 *
 * Lines are "key = value" (exactly one blank each side of '='). Values are
 * escaped: backslash as \\, newline \n, CR \r, tab \t, other control bytes
 * and bytes that are not valid UTF-8 as \xHH; everything else (including
 * '=', '[', '#' and UTF-8 text) is written as is. The parser is strict: a
 * missing or wrong trailer, an unknown section or key, a duplicate, a bad
 * value or a state the machine cannot produce is FW_EJOURNAL. */
#ifndef FLASHWISE_JOB_H
#define FLASHWISE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "steps.h"
#include "strbuf.h"

#define JOB_ID_MAX 64        /* including the NUL */
#define JOB_PROFILE_MAX 256
#define JOB_PORT_MAX 256
#define JOB_KEY_MAX 64       /* evidence key length limit, including the NUL */
#define JOB_JOURNAL_FORMAT 1

enum job_outcome {
	JOB_ACTIVE,
	JOB_COMPLETE, /* every step done or skipped */
	JOB_ABORTED,
	JOB_RESTORED, /* the backup was written back and verified */
	JOB_OUTCOME_COUNT,
};

/* One piece of evidence. Both strings are owned by the job. */
struct job_kv {
	char *key;
	char *value;
};

struct job_step {
	enum step_state state;
	char *reason;       /* failed/skipped: why; NULL otherwise */
	int64_t started;    /* 0 = never started */
	int64_t finished;   /* 0 = not finished */
	unsigned attempts;  /* how many times it was started */
	struct job_kv *ev;  /* in the order first recorded */
	size_t nev;
};

struct job {
	char id[JOB_ID_MAX];
	int64_t created;
	char profile[JOB_PROFILE_MAX];
	char port[JOB_PORT_MAX];
	enum job_outcome outcome;
	char *abort_reason;        /* when aborted */
	struct job_step step[STEP_COUNT];
	int restore_from;          /* STEP_NONE, or the failed step restore was chosen on */
	struct job_step restore;   /* pending until restore is chosen */
};

/* Empties j (every step pending). Call job_free() when done. */
void job_init(struct job *j);
/* A new job: validates the id (letters, digits, '.', '_', '-'; not starting
 * with '.'; it names the job's folder), profile and port. */
int job_start(struct job *j, const char *id, const char *profile, const char *port,
	      int64_t created, struct fw_err *e);
void job_free(struct job *j);
/* Deep copy into an uninitialised dst. FW_ENOMEM leaves dst empty. */
int job_copy(struct job *dst, const struct job *src, struct fw_err *e);
/* Every field equal (evidence in the same order). */
bool job_equal(const struct job *a, const struct job *b);

/* A step's record by id (STEP_RESTORE too); NULL when out of range. */
struct job_step *job_step_get(struct job *j, int step);
const struct job_step *job_step_cget(const struct job *j, int step);

/* Evidence of one step: value or NULL. */
const char *job_evidence_get(const struct job *j, int step, const char *key);
/* Sets (adds or replaces) one piece of evidence. FW_EINVAL for a bad key or
 * step, FW_ESTATE for a step that has not started (pending), FW_ENOMEM.
 * The machine records evidence through steps_apply(); this is for what a
 * running step learns on the way. */
int job_evidence_set(struct job *j, int step, const char *key, const char *value,
		     struct fw_err *e);
/* Dotted lowercase key: [a-z0-9_-]+ joined by single dots, at least one
 * dot, shorter than JOB_KEY_MAX. */
bool job_key_valid(const char *key);

/* Record helpers for the machine: job_step_clear() empties a record (back
 * to pending, no reason, no evidence); job_set_text() replaces an owned
 * string (NULL or "" frees it). */
void job_step_clear(struct job_step *s);
int job_set_text(char **field, const char *text, struct fw_err *e);

/* Where to carry on: the running or failed or first pending step,
 * STEP_RESTORE while a restore is under way, STEP_NONE once the job ended.
 * A step found running in a loaded journal was interrupted: the engine
 * reports it failed ("interrupted") and offers steps_choices(). */
int job_resume_step(const struct job *j);

const char *job_outcome_name(enum job_outcome o);

/* The journal text of j, ending with its SHA-256 trailer. */
int job_journal_format(const struct job *j, struct strbuf *out, struct fw_err *e);
/* Reads a journal back into j (initialised here; empty on error). Anything
 * wrong is FW_EJOURNAL with "line N: ..." in the message. */
int job_journal_parse(const char *text, size_t len, struct job *j, struct fw_err *e);

/* Time helpers of the journal: "YYYY-MM-DDTHH:MM:SSZ" (UTC), exactly. */
void job_time_format(int64_t t, char out[21]);
int job_time_parse(const char *s, int64_t *t);

#endif
