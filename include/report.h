/* Job reports, made from the job record alone (the journal holds every
 * fact as evidence, see wizard.h and steps.h for the keys): a one-line
 * verdict, a Markdown report for people, a JSON report for tools, and the
 * one-line summaries of `flashwise history`. Pure: formats into buffers,
 * no files, no clock. Evidence that was never recorded is left out of the
 * Markdown and is null in the JSON; values are escaped for where they go
 * (a device or a file name can hold any byte). */
#ifndef FLASHWISE_REPORT_H
#define FLASHWISE_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "job.h"
#include "strbuf.h"

#define REPORT_FORMAT 1       /* "format" of the JSON report */
#define REPORT_VERDICT_MAX 256

/* One line a technician reads: what happened and what the device holds,
 * e.g. "complete: firmware written and verified", "failed at step verify:
 * device may be unsafe, resume with: flashwise resume <id>". Always
 * NUL-terminated (cut to outlen). */
void report_verdict(const struct job *j, char *out, size_t outlen);

/* The Markdown report. job_dir (may be NULL) resolves a relative backup
 * path. FW_EINVAL without a job, FW_ENOMEM when out ran out of memory. */
int report_markdown(const struct job *j, const char *job_dir, struct strbuf *out,
		    struct fw_err *e);

/* The JSON report: one object (format REPORT_FORMAT) and a newline. */
int report_json(const struct job *j, const char *job_dir, struct strbuf *out,
		struct fw_err *e);

/* A piece of evidence wherever the engine recorded it: the first step (in
 * the guide's order, the restore last) that holds key; NULL if none. */
const char *report_evidence(const struct job *j, const char *key);

/* `history`: does the job match the filters? device (NULL: any) is found
 * case-insensitively in device.chip, device.mac, device.signature or the
 * port; profile (NULL: any) must equal the job's profile id. */
bool report_history_match(const struct job *j, const char *device, const char *profile);
/* The column titles, then one line per job: created, id, profile, device
 * (chip and MAC, or the AVR signature), outcome, device state, verdict.
 * Text from the journal is made safe for a terminal (no control bytes). */
void report_history_header(struct strbuf *out);
void report_history_line(const struct job *j, struct strbuf *out);
/* A job whose journal cannot be read: its folder name and why. */
void report_history_error_line(const char *id, const char *error, struct strbuf *out);
/* The same summaries as JSON objects (no trailing newline). */
void report_history_json(const struct job *j, const char *job_dir, struct strbuf *out);
void report_history_json_error(const char *id, const char *job_dir, const char *error,
			       struct strbuf *out);

/* s as a JSON string with its quotes: '"', '\\' and control bytes escaped,
 * bytes that are not valid UTF-8 replaced by U+FFFD. */
void report_json_string(struct strbuf *out, const char *s);

#endif
