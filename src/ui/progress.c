#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human_rate(char *out, size_t len, double bps)
{
	if (bps >= 1024.0 * 1024.0)
		snprintf(out, len, "%.1f MB/s", bps / (1024.0 * 1024.0));
	else
		snprintf(out, len, "%.1f KB/s", bps / 1024.0);
}

void progress_format(char *out, size_t outlen, const char *phase, uint64_t done,
		     uint64_t total, double elapsed_s)
{
	char rate[32] = "--", eta[32] = "--";
	unsigned pct = total ? (unsigned)(done * 100 / total) : 0;

	if (elapsed_s > 0 && done > 0) {
		double bps = (double)done / elapsed_s;
		human_rate(rate, sizeof rate, bps);
		if (total >= done) {
			unsigned long s = (unsigned long)((double)(total - done) / bps + 0.5);
			snprintf(eta, sizeof eta, "%lu:%02lu", s / 60, s % 60);
		}
	}
	snprintf(out, outlen, "%-7s %llu/%llu bytes %3u%%  %s  ETA %s", phase,
		 (unsigned long long)done, (unsigned long long)total, pct, rate, eta);
}

void progress_init(struct progress *p, FILE *f, bool tty)
{
	memset(p, 0, sizeof *p);
	p->f = f;
	p->tty = tty;
}

void progress_update(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	double t = now_s();
	bool new_phase = strncmp(p->phase, phase, sizeof p->phase - 1) != 0;
	bool finished = done >= total;
	char line[160];

	if (new_phase) {
		progress_end(p);
		snprintf(p->phase, sizeof p->phase, "%s", phase);
		p->phase_start = t;
		p->last_print = 0;
	}
	/* Throttle, but always show the start and the end of a phase. */
	if (!new_phase && !finished && t - p->last_print < (p->tty ? 0.1 : 1.0))
		return;
	p->last_print = t;
	progress_format(line, sizeof line, phase, done, total, t - p->phase_start);
	if (p->tty) {
		fprintf(p->f, "\r%s\033[K", line);
		p->line_open = !finished;
		if (finished)
			fputc('\n', p->f);
	} else {
		fprintf(p->f, "%s\n", line);
	}
	fflush(p->f);
}

void progress_end(struct progress *p)
{
	if (p->line_open) {
		fputc('\n', p->f);
		p->line_open = false;
	}
}
