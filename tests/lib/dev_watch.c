#include "dev_watch.h"

#include <stdio.h>
#include <string.h>

static void on_log(void *ctx, const char *line)
{
	struct dev_watch *w = ctx;

	strbuf_adds(&w->log, line);
	strbuf_adds(&w->log, "\n");
}

static void on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	struct dev_watch *w = ctx;

	if ((strcmp(phase, w->last_phase) == 0 && done < w->last_done) || done > total)
		w->progress_backwards = true;
	snprintf(w->last_phase, sizeof w->last_phase, "%s", phase);
	w->last_done = done;
	w->last_total = total;
	w->progress_calls++;
}

void dev_watch_attach(struct dev_watch *w, struct device *d)
{
	memset(w, 0, sizeof *w);
	d->log = on_log;
	d->progress = on_progress;
	d->cb_ctx = w;
}

void dev_watch_free(struct dev_watch *w)
{
	strbuf_free(&w->log);
}
