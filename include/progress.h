/* Progress of long work for the line-mode front ends: bytes, rate and ETA.
 * On a terminal one line redrawn with '\r' at most 10 times a second; on
 * anything else (a log, CI) whole lines, at most one a second, so a long
 * backup does not flood a log. The text is made by a pure function so it is
 * tested without a clock; the reporter owns the clock and the stream. */
#ifndef FLASHWISE_PROGRESS_H
#define FLASHWISE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* "write   262144/1048576 bytes  25%  11.2 KB/s  ETA 1:10" into out.
 * elapsed_s <= 0 or done == 0: rate and ETA are "--". */
void progress_format(char *out, size_t outlen, const char *phase, uint64_t done,
		     uint64_t total, double elapsed_s);

struct progress {
	FILE *f;
	bool tty;
	char phase[16];
	double phase_start;   /* monotonic seconds */
	double last_print;
	bool line_open;       /* a '\r' line is on the screen */
};

void progress_init(struct progress *p, FILE *f, bool tty);
/* Matches device_progress_fn: ctx is a struct progress. */
void progress_update(void *ctx, const char *phase, uint64_t done, uint64_t total);
/* Ends an open '\r' line so the next message starts on its own line. */
void progress_end(struct progress *p);

#endif
