/* The wizard's front ends. The engine (wizard.c) never draws and never reads
 * a key: it tells a struct ui what is happening and asks it questions. The
 * curses screens (tui.c), line mode and batch mode (plain.c) each fill one
 * struct ui_ops, so the same engine runs, and is tested, with any of them.
 *
 * Questions return FW_OK with an answer, or FW_ECANCELLED when there is no
 * answer: the technician backed out, batch mode has no answer fixed for it,
 * or the screen is gone (SIGHUP). The engine then fails closed: a missing
 * answer never means yes. */
#ifndef FLASHWISE_UI_H
#define FLASHWISE_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "steps.h"

/* What the frame shows, read-only for the UI. Strings are never NULL ("" =
 * not known yet) and live until the next call. */
struct ui_view {
	const struct job *job;   /* step states (job->step[i].state) */
	int current;             /* the step running now, STEP_RESTORE, or STEP_NONE */
	const char *profile;     /* "nodemcu-v1 (NodeMCU DevKit 1.0)" */
	const char *port;        /* "/dev/ttyUSB0" */
	const char *device;      /* the detected identity: "esp8266 5c:cf:7f:01:02:03 4 MB" */
	const char *job_dir;     /* the job folder */
};

enum ui_level {
	UI_INFO,  /* a fact: what will be written where, a hash */
	UI_OK,    /* a check passed */
	UI_WARN,  /* worth reading: a quirk, a missing permission */
	UI_FAIL,  /* a check failed */
};

/* One entry of a list to choose from. */
struct ui_item {
	const char *label;   /* "nodemcu-v1" */
	const char *detail;  /* "NodeMCU DevKit 1.0 (ESP-12E), 4 MB" or "" */
	const char *group;   /* "esp8266": lists are grouped by it, or "" */
};

/* The failure screen: what happened, what it means for the device, and the
 * choices, the safe one first (the default). */
struct ui_failure {
	int step;                    /* enum step_id or STEP_RESTORE */
	const char *what;            /* plain words: "the device did not answer..." */
	const char *meaning;         /* "nothing was written: the device is as it was" */
	const char *const *choices;  /* labels: "Retry the backup", "Abort the job" */
	size_t nchoices;
};

struct ui_ops {
	/* The frame's facts changed (a step's state, the profile, the port,
	 * the identity): redraw what depends on them. */
	void (*update)(void *ctx, const struct ui_view *v);
	/* A step starts (steps_info(step) has its title and purpose): a fresh
	 * main pane. */
	void (*step_begin)(void *ctx, const struct ui_view *v, int step);
	/* A step ended (done, failed or skipped), with one line saying how. */
	void (*step_end)(void *ctx, const struct ui_view *v, int step, enum step_state st,
			 const char *summary);
	/* One fact for the main pane: "label: value" (value may be ""). */
	void (*fact)(void *ctx, enum ui_level level, const char *label, const char *value);
	/* A line from a driver ("resynchronised after a checksum error"). */
	void (*log)(void *ctx, const char *line);
	/* Long work: phase ("erase", "write", "read", "verify"), bytes done of
	 * total. Called often; the UI throttles. done == total ends a phase. */
	void (*progress)(void *ctx, const char *phase, uint64_t done, uint64_t total);
	/* One line the device printed while booting. */
	void (*boot_line)(void *ctx, const char *line);
	/* Something outside flashwise must happen (the technician holds FLASH
	 * and presses RST): on = show a live "waiting for ..." indicator with
	 * the instructions, off = it is over. */
	void (*waiting)(void *ctx, const char *what, const char *instructions, bool on);

	/* Yes or no. safe_default is the answer Enter gives (No for anything
	 * that writes or discards). */
	int (*confirm)(void *ctx, const char *question, bool safe_default, bool *yes);
	/* Conditions the technician confirms one by one; FW_OK only when every
	 * item was confirmed. */
	int (*checklist)(void *ctx, const char *title, const char *const *items, size_t n);
	/* Typed consent: FW_OK only when the technician typed `word` exactly. */
	int (*type_word)(void *ctx, const char *prompt, const char *word);
	/* Picks one of n items; *choice holds the default on entry. */
	int (*choose)(void *ctx, const char *title, const struct ui_item *items, size_t n,
		      size_t *choice);
	/* Free text (a file path, a pasted SHA-256). "" is a valid answer. */
	int (*ask_text)(void *ctx, const char *prompt, const char *hint, char *out,
			size_t outlen);
	/* A step failed: shows f and returns the index of the chosen choice. */
	int (*failure)(void *ctx, const struct ui_view *v, const struct ui_failure *f,
		       size_t *choice);

	/* The job ended or stopped: the verdict and where the records are. */
	void (*finish)(void *ctx, const struct ui_view *v, bool success, const char *verdict,
		       const char *const *lines, size_t nlines);
	/* The terminal is gone (SIGHUP): stop drawing; from now on every
	 * question returns FW_ECANCELLED. */
	void (*detach)(void *ctx);
	/* Polled by the engine during long work: true from the moment the
	 * technician asked to stop (Ctrl-C or q in the screens) until the next
	 * question opens (a question is where the request is answered). The UI
	 * says at once that it was heard; the engine stops only where stopping
	 * is safe, and asks after a device write instead of cutting it short.
	 * May be NULL. */
	bool (*stop_requested)(void *ctx);
};

struct ui {
	const struct ui_ops *ops;
	void *ctx;
};

#endif
