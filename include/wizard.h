/* The engine: walks one job through the nine steps of the guide (steps.h),
 * asks the technician through a struct ui (ui.h), talks to the device
 * through its driver (device.h) and persists the journal in the job's folder
 * (jobstore.h) before every action on the device, so an interrupted run can
 * always be resumed or restored.
 *
 * Everything a report needs is recorded as evidence in the journal
 * (evidence.h), so reports and history are made from the journal alone. */
#ifndef FLASHWISE_WIZARD_H
#define FLASHWISE_WIZARD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "evidence.h"
#include "ui.h"

#define WIZARD_MAX_FILES 16

enum wizard_mode {
	WIZARD_NEW,      /* a new job */
	WIZARD_RESUME,   /* carry on with job_id */
	WIZARD_RESTORE,  /* write job_id's backup back */
};

struct wizard_config {
	enum wizard_mode mode;
	const char *job_id;          /* resume/restore */
	const char *profiles;        /* profile search path */
	const char *profile;         /* id or path; NULL: the technician chooses */
	const char *port;            /* NULL: the technician chooses */
	unsigned baud;               /* 0: the profile's */
	const char *firmware[WIZARD_MAX_FILES]; /* FILE[@ADDR|@PARTITION] */
	size_t nfirmware;            /* 0: the technician names them */
	const char *sha256;          /* published SHA-256 of the (one) file */
	const char *sha256_file;
	const char *manifest;
	const char *sig;
	const char *state_dir;       /* NULL: jobstore_default_root() */
	bool yes;                    /* batch: every confirmation answered yes */
	bool conditions_confirmed;   /* --yes implies it: the bench was checked */
};

/* How the run ended, for the exit code. */
struct wizard_result {
	int exit_code;               /* enum fw_exit */
	char job_dir[1024];
	char job_id[64];
	bool success;                /* all nine steps done and verified */
	char verdict[512];           /* the report's verdict, when there was a job */
};

/* Runs a job from start (or where it stopped) to its end or to a stop the
 * technician chose. Never prints: everything goes through ui. */
int wizard_run(const struct wizard_config *cfg, struct ui *ui, struct wizard_result *res,
	       struct fw_err *e);

/* Signal flags, the only process-wide state: SIGHUP detaches the screen,
 * SIGINT/SIGTERM ask to stop at the next safe point. A device write always
 * runs to the end of its step first. */
void wizard_signals_install(void);
/* For tests and the demo: what was received (0 when nothing). */
int wizard_signal_pending(void);

#endif
