/* Line mode and batch mode: struct ui_ops on two stdio streams. Every line
 * stands alone (a log of the run reads top to bottom); prompts say what
 * Enter does. */
#include "ui_plain.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"

struct plain {
	struct plain_options o;
	struct progress prog;
	bool detached;
	int step;
};

static void out(struct plain *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct plain *p, const char *fmt, ...)
{
	va_list ap;

	if (p->detached)
		return;
	progress_end(&p->prog);
	va_start(ap, fmt);
	vfprintf(p->o.out, fmt, ap);
	va_end(ap);
	fflush(p->o.out);
}

/* One answer line without its line end; FW_ECANCELLED at the end of input
 * or when a signal interrupted the read. */
static int read_line(struct plain *p, char *buf, size_t n)
{
	size_t l;

	if (p->detached || !p->o.in || !fgets(buf, (int)n, p->o.in))
		return FW_ECANCELLED;
	l = strlen(buf);
	while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
		buf[--l] = '\0';
	/* Answers from a pipe or file are not echoed by a terminal: show
	 * them, so the transcript reads as a dialogue. */
	if (!isatty(fileno(p->o.in)))
		out(p, "%s\n", buf);
	return FW_OK;
}

static void p_update(void *ctx, const struct ui_view *v)
{
	(void)ctx;
	(void)v;
}

static void p_step_begin(void *ctx, const struct ui_view *v, int step)
{
	struct plain *p = ctx;
	const struct step_info *si = steps_info(step);

	(void)v;
	p->step = step;
	if (step == STEP_RESTORE)
		out(p, "\n[restore] %s: %s\n", si->title, si->purpose);
	else
		out(p, "\n[%d/%d] %s: %s\n", step + 1, STEP_COUNT, si->title, si->purpose);
}

static void p_step_end(void *ctx, const struct ui_view *v, int step, enum step_state st,
		       const char *summary)
{
	struct plain *p = ctx;
	const char *what = st == STEP_DONE ? "done" : st == STEP_SKIPPED ? "SKIPPED" : "FAILED";

	(void)v;
	if (step == STEP_RESTORE)
		out(p, "[restore] %s%s%s\n", what, st == STEP_DONE ? "" : ": ",
		    st == STEP_DONE ? "" : summary);
	else
		out(p, "[%d/%d] %s %s%s%s\n", step + 1, STEP_COUNT, steps_info(step)->name, what,
		    st == STEP_DONE ? "" : ": ", st == STEP_DONE ? "" : summary);
}

static void p_fact(void *ctx, enum ui_level level, const char *label, const char *value)
{
	static const char *const mark[] = {"    ", "ok  ", "!!  ", "FAIL"};

	out(ctx, "  %s %s%s%s\n", mark[level <= UI_FAIL ? level : 0], label,
	    label[0] ? ": " : "", value);
}

static void p_log(void *ctx, const char *line)
{
	out(ctx, "  | %s\n", line);
}

static void p_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	struct plain *p = ctx;

	if (!p->detached)
		progress_update(&p->prog, phase, done, total);
}

static void p_boot_line(void *ctx, const char *line)
{
	out(ctx, "  boot> %s\n", line);
}

static void p_waiting(void *ctx, const char *what, const char *instructions, bool on)
{
	if (on)
		out(ctx, "  waiting for %s: %s\n", what, instructions);
}

static int p_confirm(void *ctx, const char *question, bool safe_default, bool *yes)
{
	struct plain *p = ctx;
	char buf[64];

	*yes = false;
	if (p->o.batch) {
		out(p, "  %s yes (--yes)\n", question);
		*yes = true;
		return FW_OK;
	}
	for (;;) {
		out(p, "  %s [%s] ", question, safe_default ? "Y/n" : "y/N");
		if (read_line(p, buf, sizeof buf) != FW_OK) {
			out(p, "\n");
			return FW_ECANCELLED;
		}
		if (!buf[0]) {
			*yes = safe_default;
			return FW_OK;
		}
		if (strcmp(buf, "y") == 0 || strcmp(buf, "yes") == 0 || strcmp(buf, "Y") == 0) {
			*yes = true;
			return FW_OK;
		}
		if (strcmp(buf, "n") == 0 || strcmp(buf, "no") == 0 || strcmp(buf, "N") == 0)
			return FW_OK;
		out(p, "  please answer y or n\n");
	}
}

static int p_checklist(void *ctx, const char *title, const char *const *items, size_t n)
{
	struct plain *p = ctx;

	out(p, "  %s\n", title);
	for (size_t i = 0; i < n; i++) {
		bool yes = false;
		char q[512];

		snprintf(q, sizeof q, "%zu. %s?", i + 1, items[i]);
		if (p_confirm(p, q, false, &yes) != FW_OK || !yes)
			return FW_ECANCELLED;
	}
	return FW_OK;
}

static int p_type_word(void *ctx, const char *prompt, const char *word)
{
	struct plain *p = ctx;
	char buf[128];

	if (p->o.batch) {
		out(p, "  %s: %s (--yes)\n", prompt, word);
		return FW_OK;
	}
	out(p, "  %s: ", prompt);
	if (read_line(p, buf, sizeof buf) != FW_OK) {
		out(p, "\n");
		return FW_ECANCELLED;
	}
	if (strcmp(buf, word) != 0) {
		out(p, "  that was not %s: nothing done\n", word);
		return FW_ECANCELLED;
	}
	return FW_OK;
}

static int p_choose(void *ctx, const char *title, const struct ui_item *items, size_t n,
		    size_t *choice)
{
	struct plain *p = ctx;
	const char *group = NULL;
	char buf[64];

	out(p, "  %s\n", title);
	for (size_t i = 0; i < n; i++) {
		if (items[i].group[0] && (!group || strcmp(group, items[i].group) != 0))
			out(p, "    %s:\n", items[i].group);
		group = items[i].group;
		out(p, "    %2zu. %s%s%s\n", i + 1, items[i].label, items[i].detail[0] ? "  " : "",
		    items[i].detail);
	}
	if (p->o.batch)
		return FW_ECANCELLED;
	for (;;) {
		char *end;
		unsigned long v;

		out(p, "  number [%zu]: ", *choice + 1);
		if (read_line(p, buf, sizeof buf) != FW_OK) {
			out(p, "\n");
			return FW_ECANCELLED;
		}
		if (!buf[0])
			return FW_OK;
		v = strtoul(buf, &end, 10);
		if (!*end && v >= 1 && v <= n) {
			*choice = v - 1;
			return FW_OK;
		}
		/* A name typed in full picks it too. */
		for (size_t i = 0; i < n; i++)
			if (strcmp(buf, items[i].label) == 0) {
				*choice = i;
				return FW_OK;
			}
		out(p, "  1 to %zu, or a name from the list\n", n);
	}
}

static int p_ask_text(void *ctx, const char *prompt, const char *hint, char *buf, size_t n)
{
	struct plain *p = ctx;

	if (p->o.batch)
		return FW_ECANCELLED;
	out(p, "  %s (%s): ", prompt, hint);
	if (read_line(p, buf, n) != FW_OK) {
		out(p, "\n");
		return FW_ECANCELLED;
	}
	return FW_OK;
}

static int p_failure(void *ctx, const struct ui_view *v, const struct ui_failure *f,
		     size_t *choice)
{
	struct plain *p = ctx;
	struct ui_item items[8];
	size_t n = f->nchoices < 8 ? f->nchoices : 8;

	(void)v;
	out(p, "  FAILED: %s\n  what it means: %s\n", f->what, f->meaning);
	for (size_t i = 0; i < n; i++)
		items[i] = (struct ui_item){f->choices[i], "", ""};
	*choice = 0;
	return p_choose(p, "What now? (the first choice is the safe one)", items, n, choice);
}

static void p_finish(void *ctx, const struct ui_view *v, bool success, const char *verdict,
		     const char *const *lines, size_t nlines)
{
	(void)v;
	out(ctx, "\n%s %s\n", success ? "RESULT: OK," : "RESULT: NOT OK,", verdict);
	for (size_t i = 0; i < nlines; i++)
		out(ctx, "  %s\n", lines[i]);
}

static void p_detach(void *ctx)
{
	((struct plain *)ctx)->detached = true;
}

static const struct ui_ops plain_ops = {
	.update = p_update,
	.step_begin = p_step_begin,
	.step_end = p_step_end,
	.fact = p_fact,
	.log = p_log,
	.progress = p_progress,
	.boot_line = p_boot_line,
	.waiting = p_waiting,
	.confirm = p_confirm,
	.checklist = p_checklist,
	.type_word = p_type_word,
	.choose = p_choose,
	.ask_text = p_ask_text,
	.failure = p_failure,
	.finish = p_finish,
	.detach = p_detach,
	.stop_requested = NULL,
};

int plain_open(const struct plain_options *o, struct ui *u, struct fw_err *e)
{
	struct plain *p = calloc(1, sizeof *p);

	if (!p)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	p->o = *o;
	/* Whole lines, never '\r': line mode is read in logs as often as live. */
	progress_init(&p->prog, o->out, false);
	u->ops = &plain_ops;
	u->ctx = p;
	return FW_OK;
}

void plain_close(struct ui *u)
{
	struct plain *p = u ? u->ctx : NULL;

	if (!p)
		return;
	if (!p->detached)
		progress_end(&p->prog);
	free(p);
	u->ctx = NULL;
}
