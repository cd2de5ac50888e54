/* Line mode and batch mode of the wizard: the same steps as numbered lines
 * and prompts, progress as whole lines (never redrawn with '\r'), for
 * terminals curses cannot use, logs, pipes and scripts.
 *
 * Batch mode (`flashwise run --yes`) answers every yes/no and typed
 * confirmation with yes and every other question with nothing: a choice,
 * a file name or a failure screen fails closed (FW_ECANCELLED). */
#ifndef FLASHWISE_UI_PLAIN_H
#define FLASHWISE_UI_PLAIN_H

#include <stdbool.h>
#include <stdio.h>

#include "error.h"
#include "ui.h"

struct plain_options {
	FILE *in;     /* answers (NULL in batch mode) */
	FILE *out;    /* everything shown */
	bool batch;   /* --yes */
};

int plain_open(const struct plain_options *o, struct ui *out, struct fw_err *e);
void plain_close(struct ui *u);

#endif
