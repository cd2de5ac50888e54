/* The curses screens (ui_tui.h). Everything shown is kept in a model (the
 * frame, the pane's lines, the progress, the question), and every drawing is
 * a full repaint of that model into stdscr: curses sends only what changed,
 * and a resize or Ctrl-L repaints the same thing. Text from the engine and
 * from the device is cleaned before it reaches the terminal (control bytes
 * and bad UTF-8 become '?'), so a noisy boot log cannot move the cursor or
 * change the terminal's modes. */
#include "ui_tui.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "job.h"
#include "progress.h"
#include "steps.h"

#define MIN_COLS 80
#define MIN_LINES 24
#define LEFT_W 21             /* the checklist column; a rule follows it */
#define PANE_X (LEFT_W + 2)
#define MSG_MAX 64            /* facts, driver lines and answers kept */
#define BOOT_MAX 64           /* boot lines kept */
#define TEXT_MAX 512          /* one kept line */
#define FIELD_MAX 1024        /* a one-line field */
#define CLEAN_MAX 2048
#define BAR_MAX 256           /* progress bar cells */
#define REDRAW_S 0.1          /* progress repaints at most 10 times a second */
#define PURPOSE_ROWS 2
#define WAIT_ROWS 3

#define TUI_CTRL(c) ((c) & 0x1f)
#define TUI_ESC 27
#define TUI_GONE (-2)         /* read_key: the terminal is gone (hang-up) */

#define S(x) ((x) ? (x) : "")

enum style { ST_NORMAL, ST_BOLD, ST_DIM, ST_OK, ST_WARN, ST_FAIL, ST_SEL, ST_TOP, ST_COUNT };

/* Monochrome attribute first; colour (when asked for) only adds to it. */
static const struct {
	attr_t mono;
	short pair;
} styles[ST_COUNT] = {
	[ST_NORMAL] = {A_NORMAL, 0},
	[ST_BOLD] = {A_BOLD, 0},
	[ST_DIM] = {A_DIM, 0},
	[ST_OK] = {A_BOLD, 1},
	[ST_WARN] = {A_BOLD, 2},
	[ST_FAIL] = {A_BOLD, 3},
	[ST_SEL] = {A_REVERSE, 0},
	[ST_TOP] = {A_REVERSE, 0},
};

/* What the pane keeps: facts by level, driver lines, answers, step ends. */
enum msg_kind {
	MK_INFO, MK_OK, MK_WARN, MK_FAIL, MK_LOG, MK_ANSWER, MK_END_OK, MK_END_FAIL,
	MK_END_SKIP, MK_END, MK_COUNT,
};

/* The level is in the text (first column), colour is only an extra. */
static const struct {
	const char *prefix;
	enum style pst, tst;
} msg_look[MK_COUNT] = {
	[MK_INFO] = {"-    ", ST_NORMAL, ST_NORMAL},
	[MK_OK] = {"ok   ", ST_OK, ST_NORMAL},
	[MK_WARN] = {"!!   ", ST_WARN, ST_NORMAL},
	[MK_FAIL] = {"FAIL ", ST_FAIL, ST_BOLD},
	[MK_LOG] = {"     ", ST_DIM, ST_DIM},
	[MK_ANSWER] = {"?    ", ST_BOLD, ST_NORMAL},
	[MK_END_OK] = {"[OK] ", ST_OK, ST_BOLD},
	[MK_END_FAIL] = {"[FAIL] ", ST_FAIL, ST_BOLD},
	[MK_END_SKIP] = {"[SKIP] ", ST_WARN, ST_BOLD},
	[MK_END] = {"[--] ", ST_BOLD, ST_BOLD},
};

static const struct {
	const char *mark;
	enum style st;
} step_look[STEP_STATE_COUNT] = {
	[STEP_PENDING] = {"[ ]", ST_NORMAL},
	[STEP_RUNNING] = {"[>]", ST_BOLD},
	[STEP_DONE] = {"[OK]", ST_OK},
	[STEP_FAILED] = {"[FAIL]", ST_FAIL},
	[STEP_SKIPPED] = {"[SKIP]", ST_WARN},
};

static const char stop_notice[] =
	"stop requested: flashwise stops at the next safe point (a write always finishes first)";

struct msg {
	unsigned char kind;
	char text[TEXT_MAX];
};

enum qkind { Q_CONFIRM, Q_WORD, Q_TEXT, Q_CHOOSE, Q_CHECKLIST, Q_FAILURE, Q_FINISH, Q_COUNT };

/* One open question. Its strings belong to the engine and live for the
 * whole call (questions are modal). */
struct question {
	enum qkind kind;
	const char *title;     /* question, prompt, title or verdict */
	const char *sub;       /* type_word: the word; ask_text: the hint */
	bool flag;             /* confirm: the safe default; finish: success */
	const struct ui_item *items;         /* choose */
	const char *const *labels;           /* checklist, failure, finish */
	size_t n;
	const struct ui_failure *fail;
	size_t sel;            /* highlighted item */
	int top;               /* the body's scroll position */
	bool *ticked;          /* checklist */
	size_t *order;         /* choose: items grouped */
	size_t *vis;           /* choose: the grouped items the filter lets through */
	size_t nvis;
	char field[FIELD_MAX]; /* the answer, or choose's filter */
	size_t flen, maxlen;
	bool filtering;
	int tries;
	bool help;
	char notice[256];
	bool yes;
};

struct tui {
	SCREEN *scr;
	FILE *tty;
	bool detached;
	bool color, ascii, utf8;
	bool stop;
	int (*signal_pending)(void);
	/* the frame */
	char profile[JOB_PROFILE_MAX], port[JOB_PORT_MAX], device[TEXT_MAX], job[TEXT_MAX];
	int current;
	enum step_state state[STEP_COUNT + 1];
	bool restore_row;
	bool have_device;
	enum step_device device_state;
	/* the pane */
	int pane_step;
	struct msg msg[MSG_MAX];
	size_t msg_head, msg_n;
	struct msg boot[BOOT_MAX];
	size_t boot_head, boot_n;
	struct {
		bool on;
		char phase[16];
		uint64_t done, total;
		double start, elapsed;  /* at the last call: a redraw shows the same */
	} prog;
	double last_prog_draw;
	struct {
		bool on;
		char what[TEXT_MAX];
		char how[TEXT_MAX];
	} wait;
	struct question *q;
	bool cursor_on;
	int cursor_y, cursor_x;
};

/* ---- text: cleaning, widths, wrapping ----------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One UTF-8 sequence: its code point, or -1 (bad or cut short); *len bytes. */
static long u8_decode(const unsigned char *s, size_t n, size_t *len)
{
	unsigned char c = s[0];
	size_t need;
	long cp, min;

	*len = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3, cp = c & 0x07, min = 0x10000;
	} else {
		return -1;
	}
	if (n < need + 1)
		return -1;
	for (size_t i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = need + 1;
	return cp;
}

static int cp_cols(const struct tui *t, long cp)
{
	int w;

	if (cp < 0x80)
		return 1;
	w = t->utf8 ? wcwidth((wchar_t)cp) : -1;
	return w;
}

/* Safe text for the terminal: tabs and line ends become blanks, carriage
 * returns go, other control bytes, bad UTF-8 and (outside a UTF-8 locale)
 * anything not ASCII become '?'. Never cuts a character in two. */
static size_t clean(const struct tui *t, char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)S(src);
	size_t n = strlen((const char *)s), o = 0, i = 0;

	while (i < n) {
		size_t len;
		long cp = u8_decode(s + i, n - i, &len);
		const char *out = (const char *)s + i;
		size_t outlen = len;

		if (cp == '\r') {
			outlen = 0;
		} else if (cp == '\t' || cp == '\n') {
			out = " ", outlen = 1;
		} else if (cp < 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
			   cp_cols(t, cp) < 0) {
			out = "?", outlen = 1;
		}
		if (o + outlen + 1 > cap)
			break;
		memcpy(dst + o, out, outlen);
		o += outlen;
		i += len;
	}
	dst[o] = '\0';
	return o;
}

/* Width of one character of clean text; *adv bytes. */
static int char_cols(const struct tui *t, const char *s, size_t n, size_t *adv)
{
	long cp = u8_decode((const unsigned char *)s, n, adv);
	int w = cp < 0 ? 1 : cp_cols(t, cp);

	return w < 0 ? 1 : w;
}

static int text_cols(const struct tui *t, const char *s, size_t n)
{
	int cols = 0;
	size_t i = 0, adv;

	while (i < n) {
		cols += char_cols(t, s + i, n - i, &adv);
		i += adv;
	}
	return cols;
}

/* How many bytes of s fit in width columns. */
static size_t fit_bytes(const struct tui *t, const char *s, size_t n, int width)
{
	int cols = 0;
	size_t i = 0, adv;

	while (i < n) {
		int w = char_cols(t, s + i, n - i, &adv);
		if (cols + w > width)
			break;
		cols += w;
		i += adv;
	}
	return i;
}

static const char *ellipsis(const struct tui *t)
{
	return t->utf8 && !t->ascii ? "\xe2\x80\xa6" : "~";
}

/* Is the word at pos wider than a whole row? */
static bool word_too_long(const struct tui *t, const char *s, size_t len, size_t pos, int width)
{
	size_t end = pos;

	while (end < len && s[end] != ' ')
		end++;
	return text_cols(t, s + pos, end - pos) > width;
}

/* One row of a wrapped text starting at pos: *n bytes to show; returns
 * where the next row starts. Breaks at the last blank that fits, or inside
 * a word longer than the row (hashes, paths). */
static size_t wrap_row(const struct tui *t, const char *s, size_t len, size_t pos, int width,
		       size_t *n)
{
	size_t i = pos, last_sp = (size_t)-1, adv, next;
	int cols = 0;

	while (i < len) {
		int w = char_cols(t, s + i, len - i, &adv);
		if (cols + w > width)
			break;
		if (s[i] == ' ')
			last_sp = i;
		cols += w;
		i += adv;
	}
	if (i >= len) {
		*n = len - pos;
		return len;
	}
	if (s[i] == ' ') {
		*n = i - pos;
		next = i;
	} else if (last_sp != (size_t)-1 && last_sp > pos &&
		   !word_too_long(t, s, len, last_sp + 1, width)) {
		*n = last_sp - pos;
		next = last_sp;
	} else {
		/* No blank, or the word would not fit a row of its own either
		 * (a hash, a path): fill the row and go on inside the word. */
		if (i == pos) { /* one character wider than the row */
			char_cols(t, s + pos, len - pos, &adv);
			i = pos + adv;
		}
		*n = i - pos;
		return i;
	}
	while (next < len && s[next] == ' ')
		next++;
	return next;
}

/* ---- the pen: rows into a window that may scroll ------------------------ */

/* Draws rows into [y, y+h) at x..x+w, skipping `skip` rows first; with draw
 * false it only counts, which is how sections measure themselves. It also
 * notes which rows the marked item took, to scroll it into view. */
struct pen {
	struct tui *t;
	int x, y, w, h;
	int skip, row;
	bool draw;
	long item, mark;
	int mark_first, mark_last;
};

static void pen_init(struct pen *p, struct tui *t, int x, int y, int w, int h, bool draw)
{
	memset(p, 0, sizeof *p);
	p->t = t;
	p->x = x, p->y = y, p->w = w, p->h = h;
	p->draw = draw;
	p->item = -1, p->mark = -1;
	p->mark_first = -1, p->mark_last = -1;
}

static attr_t attr_of(const struct tui *t, enum style s)
{
	attr_t a = styles[s].mono;

	if (t->color && styles[s].pair)
		a |= COLOR_PAIR(styles[s].pair);
	return a;
}

/* The screen row of the next virtual row, or -1 when it is not shown. */
static int pen_next(struct pen *p)
{
	int r = p->row++;

	if (p->item >= 0 && p->item == p->mark) {
		if (p->mark_first < 0)
			p->mark_first = r;
		p->mark_last = r;
	}
	if (!p->draw || r < p->skip || r >= p->skip + p->h)
		return -1;
	return p->y + r - p->skip;
}

/* One row: prefix (ASCII) at indent, then n bytes of clean text. */
static void pen_put(struct pen *p, int indent, const char *prefix, enum style pst, const char *s,
		    size_t n, enum style st, bool ell)
{
	int y = pen_next(p);
	int x = p->x + indent;

	if (y < 0)
		return;
	attrset(attr_of(p->t, pst));
	mvaddstr(y, x, prefix);
	attrset(attr_of(p->t, st));
	mvaddnstr(y, x + (int)strlen(prefix), s, (int)n);
	if (ell)
		addstr(ellipsis(p->t));
	attrset(A_NORMAL);
}

/* Text wrapped under a prefix with a hanging indent; max_rows 0: no limit,
 * otherwise the last row ends with an ellipsis when text is left over. */
static void pen_wrap(struct pen *p, const char *prefix, enum style pst, const char *text,
		     enum style st, int max_rows)
{
	char buf[CLEAN_MAX];
	size_t len = clean(p->t, buf, sizeof buf, text), pos = 0, n;
	int pw = (int)strlen(prefix), width = p->w - pw, rows = 0;
	int ellw = text_cols(p->t, ellipsis(p->t), strlen(ellipsis(p->t)));

	if (width < 1)
		width = 1;
	do {
		size_t next = wrap_row(p->t, buf, len, pos, width, &n);
		bool ell = false;

		if (max_rows && rows + 1 == max_rows && next < len) {
			n = fit_bytes(p->t, buf + pos, len - pos, width - ellw);
			ell = true;
			next = len;
		}
		pen_put(p, rows ? pw : 0, rows ? "" : prefix, pst, buf + pos, n, st, ell);
		rows++;
		pos = next;
	} while (pos < len);
}

/* One row, cut with an ellipsis when too long. */
static void pen_clip(struct pen *p, int indent, const char *prefix, enum style pst,
		     const char *text, enum style st)
{
	char buf[CLEAN_MAX];
	size_t len = clean(p->t, buf, sizeof buf, text), n;
	int width = p->w - indent - (int)strlen(prefix);
	int ellw = text_cols(p->t, ellipsis(p->t), strlen(ellipsis(p->t)));
	bool ell = false;

	if (width < 0)
		width = 0;
	n = fit_bytes(p->t, buf, len, width);
	if (n < len && width > ellw) {
		n = fit_bytes(p->t, buf, len, width - ellw);
		ell = true;
	}
	pen_put(p, indent, prefix, pst, buf, n, st, ell);
}

static void pen_blank(struct pen *p)
{
	pen_next(p);
}

/* A horizontal rule with an optional label: "-- boot output ---". */
static void pen_rule(struct pen *p, const char *label)
{
	int y = pen_next(p);

	if (y < 0)
		return;
	if (p->t->ascii)
		mvhline(y, p->x, '-', p->w);
	else
		mvhline(y, p->x, ACS_HLINE, p->w);
	if (*label && p->w > 6) {
		char buf[TEXT_MAX];
		size_t len = clean(p->t, buf, sizeof buf, label);
		size_t n = fit_bytes(p->t, buf, len, p->w - 6);

		mvaddstr(y, p->x + 2, " ");
		attrset(attr_of(p->t, ST_BOLD));
		addnstr(buf, (int)n);
		attrset(A_NORMAL);
		addstr(" ");
	}
}

/* A one-line field: "> text_" showing the end of a long text; the cursor
 * goes after it. */
static void pen_field(struct pen *p, const char *prefix, const char *field, size_t flen)
{
	char buf[FIELD_MAX * 2];
	size_t len, start = 0;
	int y, x, width = p->w - (int)strlen(prefix) - 2;
	const char *more = "";
	char tmp[FIELD_MAX];

	memcpy(tmp, field, flen);
	tmp[flen] = '\0';
	len = clean(p->t, buf, sizeof buf, tmp);
	if (width < 2)
		width = 2;
	if (text_cols(p->t, buf, len) > width) {
		more = p->t->ascii || !p->t->utf8 ? "<" : "\xe2\x80\xb9";
		while (start < len && text_cols(p->t, buf + start, len - start) > width - 1) {
			size_t adv;
			char_cols(p->t, buf + start, len - start, &adv);
			start += adv;
		}
	}
	y = pen_next(p);
	if (y < 0)
		return;
	x = p->x;
	attrset(attr_of(p->t, ST_BOLD));
	mvaddstr(y, x, prefix);
	attrset(A_NORMAL);
	x += (int)strlen(prefix);
	mvaddstr(y, x, more);
	addnstr(buf + start, (int)(len - start));
	p->t->cursor_on = true;
	p->t->cursor_y = y;
	p->t->cursor_x = x + (*more ? 1 : 0) + text_cols(p->t, buf + start, len - start);
}

/* ---- the model ---------------------------------------------------------- */

static void ring_push(struct msg *ring, size_t max, size_t *head, size_t *n, int kind,
		      const char *text)
{
	struct msg *m;

	if (*n < max) {
		m = &ring[(*head + *n) % max];
		(*n)++;
	} else {
		m = &ring[*head];
		*head = (*head + 1) % max;
	}
	m->kind = (unsigned char)kind;
	snprintf(m->text, sizeof m->text, "%s", text);
}

static const struct msg *ring_at(const struct msg *ring, size_t max, size_t head, size_t i)
{
	return &ring[(head + i) % max];
}

static void msg_add(struct tui *t, int kind, const char *text)
{
	ring_push(t->msg, MSG_MAX, &t->msg_head, &t->msg_n, kind, text);
}

static void msg_addf2(struct tui *t, int kind, const char *a, const char *sep, const char *b)
{
	char buf[TEXT_MAX];

	snprintf(buf, sizeof buf, "%s%s%s", S(a), *S(b) ? sep : "", S(b));
	msg_add(t, kind, buf);
}

static void view_copy(struct tui *t, const struct ui_view *v)
{
	char dir[TEXT_MAX];
	size_t n;
	const char *base;

	if (!v)
		return;
	snprintf(t->profile, sizeof t->profile, "%s", S(v->profile));
	snprintf(t->port, sizeof t->port, "%s", S(v->port));
	snprintf(t->device, sizeof t->device, "%s", S(v->device));
	/* The job's folder is named by its id: the id is what fits. */
	snprintf(dir, sizeof dir, "%s", S(v->job_dir));
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	base = strrchr(dir, '/');
	snprintf(t->job, sizeof t->job, "%s", base && base[1] ? base + 1 : dir);
	t->current = v->current;
	if (v->job) {
		for (int i = 0; i < STEP_COUNT; i++)
			t->state[i] = v->job->step[i].state;
		t->state[STEP_COUNT] = v->job->restore.state;
		t->restore_row = v->job->restore_from != STEP_NONE;
		t->device_state = steps_device(v->job);
		t->have_device = true;
	}
}

static void pane_reset(struct tui *t, int step)
{
	t->pane_step = step;
	t->msg_head = t->msg_n = 0;
	t->boot_head = t->boot_n = 0;
	memset(&t->prog, 0, sizeof t->prog);
	t->wait.on = false;
}

/* ---- drawing ------------------------------------------------------------ */

static bool too_small(void)
{
	return COLS < MIN_COLS || LINES < MIN_LINES;
}

static void vrule(struct tui *t, int x, int y0, int y1)
{
	if (y1 < y0)
		return;
	if (t->ascii)
		mvvline(y0, x, '|', y1 - y0 + 1);
	else
		mvvline(y0, x, ACS_VLINE, y1 - y0 + 1);
}

static void draw_top(struct tui *t)
{
	char head[64], f[3][CLEAN_MAX];
	size_t len[3];
	int natural[3], w[3], sum = 0, avail, x;

	if (t->current >= 0 && t->current < STEP_COUNT)
		snprintf(head, sizeof head, "flashwise  step %d/%d", t->current + 1, STEP_COUNT);
	else if (t->current == STEP_RESTORE)
		snprintf(head, sizeof head, "flashwise  restore");
	else if (t->have_device && t->state[STEP_IDENTIFY] != STEP_PENDING)
		snprintf(head, sizeof head, "flashwise  ended");
	else
		snprintf(head, sizeof head, "flashwise  step -/%d", STEP_COUNT);
	attrset(attr_of(t, ST_TOP));
	mvhline(0, 0, ' ', COLS);
	attrset(attr_of(t, ST_TOP) | A_BOLD);
	mvaddstr(0, 1, head);
	x = 1 + (int)strlen(head);
	avail = COLS - x;

	len[0] = clean(t, f[0], sizeof f[0], t->profile);
	len[1] = clean(t, f[1], sizeof f[1], t->port);
	len[2] = clean(t, f[2], sizeof f[2], t->device);
	for (int i = 0; i < 3; i++) {
		natural[i] = text_cols(t, f[i], len[i]);
		if (len[i])
			avail -= 2;
		sum += natural[i];
	}
	/* Too long: the profile's id without its description first, then the
	 * longest field gives up columns until all fit. */
	if (sum > avail) {
		char *paren = strstr(f[0], " (");
		if (paren) {
			*paren = '\0';
			len[0] = (size_t)(paren - f[0]);
			sum -= natural[0];
			natural[0] = text_cols(t, f[0], len[0]);
			sum += natural[0];
		}
	}
	memcpy(w, natural, sizeof w);
	while (sum > avail && sum > 0) {
		int m = 0;
		for (int i = 1; i < 3; i++)
			if (w[i] > w[m])
				m = i;
		w[m]--, sum--;
	}
	for (int i = 0; i < 3; i++) {
		size_t n;
		bool ell = false;
		int ellw = text_cols(t, ellipsis(t), strlen(ellipsis(t)));

		if (!len[i] || w[i] <= 0)
			continue;
		n = fit_bytes(t, f[i], len[i], w[i]);
		if (w[i] < natural[i] && w[i] > ellw) {
			n = fit_bytes(t, f[i], len[i], w[i] - ellw);
			ell = true;
		}
		attrset(attr_of(t, ST_TOP));
		mvaddnstr(0, x + 2, f[i], (int)n);
		if (ell)
			addstr(ellipsis(t));
		x += 2 + w[i];
	}
	attrset(A_NORMAL);
}

static void draw_left(struct tui *t, int bottom)
{
	size_t n;
	const struct step_info *tab = steps_table(&n);
	struct pen p;
	char buf[64];
	int hl = t->pane_step != STEP_NONE ? t->pane_step : t->current;

	pen_init(&p, t, 0, 1, LEFT_W, bottom, true);
	for (size_t i = 0; i <= n; i++) {
		const struct step_info *si = i < n ? &tab[i] : steps_info(STEP_RESTORE);
		enum step_state st = t->state[i];
		int id = i < n ? (int)i : STEP_RESTORE;

		if (i == n && !t->restore_row)
			break;
		if ((unsigned)st >= STEP_STATE_COUNT)
			st = STEP_PENDING;
		snprintf(buf, sizeof buf, " %-6s ", step_look[st].mark);
		pen_clip(&p, 0, buf, step_look[st].st, si ? si->name : "?",
			 id == hl ? ST_SEL : ST_NORMAL);
	}
	if (t->have_device) {
		pen_blank(&p);
		pen_clip(&p, 0, " device ", ST_NORMAL, steps_device_name(t->device_state),
			 ST_BOLD);
		if (steps_device_unsafe(t->device_state))
			pen_clip(&p, 0, " !! ", ST_WARN, "may be unsafe", ST_WARN);
	}
	if (t->job[0]) {
		pen_blank(&p);
		pen_wrap(&p, " job ", ST_NORMAL, t->job, ST_NORMAL, 3);
	}
}

/* ---- questions: the per-kind parts -------------------------------------- */

enum intent { K_PASS, K_OK, K_DONE, K_CANCEL };

struct keyhelp {
	const char *keys;
	const char *what;
};

struct qclass {
	const char *hints;               /* the bottom line */
	const struct keyhelp *help;      /* '?' */
	bool text;                       /* a field takes printable keys */
	void (*header)(struct tui *t, struct question *q, struct pen *p);
	void (*body)(struct tui *t, struct question *q, struct pen *p);
	void (*footer)(struct tui *t, struct question *q, struct pen *p);
	int (*key)(struct tui *t, struct question *q, int ch);
};

static bool is_enter(int ch)
{
	return ch == '\n' || ch == '\r' || ch == KEY_ENTER;
}

static bool is_up(int ch)
{
	return ch == KEY_UP || ch == 'k';
}

static bool is_down(int ch)
{
	return ch == KEY_DOWN || ch == 'j';
}

/* Backspace, Ctrl-U, Ctrl-W and printable bytes (UTF-8 comes byte by byte,
 * so a paste is just keys). True when the key was the field's. */
static bool field_key(struct question *q, int ch)
{
	if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
		while (q->flen > 0 && ((unsigned char)q->field[q->flen - 1] & 0xc0) == 0x80)
			q->flen--;
		if (q->flen > 0)
			q->flen--;
	} else if (ch == TUI_CTRL('u')) {
		q->flen = 0;
	} else if (ch == TUI_CTRL('w')) {
		while (q->flen > 0 && q->field[q->flen - 1] == ' ')
			q->flen--;
		while (q->flen > 0 && q->field[q->flen - 1] != ' ')
			q->flen--;
	} else if (ch >= 0x20 && ch <= 0xff && ch != 0x7f) {
		if (q->flen < q->maxlen)
			q->field[q->flen++] = (char)ch;
		else
			snprintf(q->notice, sizeof q->notice, "too long: at most %zu bytes",
				 q->maxlen);
	} else {
		return false;
	}
	q->field[q->flen] = '\0';
	return true;
}

/* confirm */

static void confirm_header(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_wrap(p, "", ST_NORMAL, q->title, ST_BOLD, 0);
}

static void confirm_footer(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_clip(p, 0, "", ST_NORMAL,
		 q->flag ? "y yes    n no    Enter = yes" : "y yes    n no    Enter = no (safe)",
		 ST_NORMAL);
}

static int confirm_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (ch == 'y' || ch == 'Y')
		q->yes = true;
	else if (ch == 'n' || ch == 'N')
		q->yes = false;
	else if (is_enter(ch))
		q->yes = q->flag;
	else
		return K_PASS;
	return K_DONE;
}

/* type_word */

static void word_header(struct tui *t, struct question *q, struct pen *p)
{
	char buf[TEXT_MAX];

	(void)t;
	pen_wrap(p, "", ST_NORMAL, q->title, ST_BOLD, 0);
	if (!strstr(q->title, q->sub)) {
		snprintf(buf, sizeof buf, "type %s and press Enter", q->sub);
		pen_wrap(p, "", ST_NORMAL, buf, ST_NORMAL, 0);
	}
}

static void field_footer(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_field(p, "> ", q->field, q->flen);
}

static int word_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (ch == '?' && q->flen == 0)
		return K_PASS;
	if (is_enter(ch)) {
		if (q->flen == 0 && q->sub[0]) {
			snprintf(q->notice, sizeof q->notice,
				 "type %s first, or Esc to back out", q->sub);
			return K_OK;
		}
		if (strcmp(q->field, q->sub) == 0)
			return K_DONE;
		/* Consent must be exact; one retry for a typo, then back out. */
		if (++q->tries >= 2)
			return K_CANCEL;
		snprintf(q->notice, sizeof q->notice,
			 "that did not match %s: type it exactly (one more try), or Esc to back out",
			 q->sub);
		q->flen = 0;
		q->field[0] = '\0';
		return K_OK;
	}
	return field_key(q, ch) ? K_OK : K_PASS;
}

/* ask_text */

static void text_header(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_wrap(p, "", ST_NORMAL, q->title, ST_BOLD, 0);
	if (q->sub[0])
		pen_wrap(p, "", ST_NORMAL, q->sub, ST_DIM, 3);
}

static int text_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (ch == '?' && q->flen == 0)
		return K_PASS;
	if (is_enter(ch))
		return K_DONE;
	return field_key(q, ch) ? K_OK : K_PASS;
}

/* choose */

static bool ci_contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (!n)
		return true;
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		       (hay[i] == needle[i] ||
			((unsigned char)hay[i] < 0x80 && (unsigned char)needle[i] < 0x80 &&
			 (hay[i] | 0x20) == (needle[i] | 0x20) &&
			 ((hay[i] | 0x20) >= 'a' && (hay[i] | 0x20) <= 'z'))))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

static void choose_filter(struct question *q)
{
	bool sel_in = false;

	q->nvis = 0;
	for (size_t k = 0; k < q->n; k++) {
		const struct ui_item *it = &q->items[q->order[k]];
		if (ci_contains(S(it->label), q->field) || ci_contains(S(it->detail), q->field) ||
		    ci_contains(S(it->group), q->field)) {
			q->vis[q->nvis++] = q->order[k];
			if (q->order[k] == q->sel)
				sel_in = true;
		}
	}
	if (!sel_in && q->nvis)
		q->sel = q->vis[0];
}

static bool choose_grouped(const struct question *q)
{
	for (size_t i = 0; i < q->n; i++)
		if (*S(q->items[i].group))
			return true;
	return false;
}

static void choose_header(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_wrap(p, "", ST_NORMAL, q->title, ST_BOLD, 0);
}

static void choose_body(struct tui *t, struct question *q, struct pen *p)
{
	bool grouped = choose_grouped(q);
	const char *prev = NULL;
	int labw = 0, indent = grouped ? 2 : 0;
	char lab[CLEAN_MAX], row[CLEAN_MAX];

	for (size_t k = 0; k < q->nvis; k++) {
		size_t len = clean(t, lab, sizeof lab, q->items[q->vis[k]].label);
		int c = text_cols(t, lab, len);
		if (c > labw)
			labw = c;
	}
	if (labw > (p->w - indent - 2) / 2)
		labw = (p->w - indent - 2) / 2;
	for (size_t k = 0; k < q->nvis; k++) {
		const struct ui_item *it = &q->items[q->vis[k]];
		size_t len = clean(t, lab, sizeof lab, it->label);
		int pad = labw - text_cols(t, lab, len);
		bool sel = q->vis[k] == q->sel;

		if (grouped && (!prev || strcmp(prev, S(it->group)) != 0)) {
			prev = S(it->group);
			/* The header scrolls into view with its first item. */
			p->item = (long)q->vis[k];
			pen_clip(p, 0, "", ST_NORMAL, *prev ? prev : "other", ST_BOLD);
		}
		snprintf(row, sizeof row, "%s%*s  %s", lab, pad > 0 ? pad : 0, "", S(it->detail));
		p->item = (long)q->vis[k];
		pen_clip(p, indent, sel ? "> " : "  ", ST_BOLD, row, sel ? ST_SEL : ST_NORMAL);
	}
	p->item = -1;
}

static size_t vis_pos(const struct question *q)
{
	for (size_t k = 0; k < q->nvis; k++)
		if (q->vis[k] == q->sel)
			return k;
	return 0;
}

static void choose_footer(struct tui *t, struct question *q, struct pen *p)
{
	char buf[TEXT_MAX];

	(void)t;
	if (q->nvis > 10) {
		snprintf(buf, sizeof buf, "%zu of %zu", vis_pos(q) + 1, q->nvis);
		pen_clip(p, 0, "", ST_NORMAL, buf, ST_DIM);
	}
	if (q->filtering)
		pen_field(p, "search: ", q->field, q->flen);
	else if (q->flen)
		pen_clip(p, 0, "search: ", ST_BOLD, q->field, ST_NORMAL);
	if (q->flen && !q->nvis) {
		snprintf(buf, sizeof buf, "nothing matches \"%s\"", q->field);
		pen_clip(p, 0, "!! ", ST_WARN, buf, ST_NORMAL);
	}
}

/* Moves the highlight through the shown items by delta, clamped. */
static void choose_move(struct question *q, long delta)
{
	long k = (long)vis_pos(q) + delta;

	if (!q->nvis)
		return;
	if (k < 0)
		k = 0;
	if (k >= (long)q->nvis)
		k = (long)q->nvis - 1;
	q->sel = q->vis[k];
}

static int choose_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (ch == KEY_UP)
		choose_move(q, -1);
	else if (ch == KEY_DOWN)
		choose_move(q, 1);
	else if (ch == KEY_PPAGE)
		choose_move(q, -10);
	else if (ch == KEY_NPAGE)
		choose_move(q, 10);
	else if (is_enter(ch)) {
		if (q->nvis)
			return K_DONE;
		snprintf(q->notice, sizeof q->notice,
			 "nothing to pick: change the search (Backspace) or Esc to clear it");
	} else if (q->filtering) {
		if (ch == TUI_ESC) {
			q->filtering = false;
			q->flen = 0;
			q->field[0] = '\0';
		} else if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && q->flen == 0) {
			q->filtering = false;
		} else if (ch == '?' && q->flen == 0) {
			return K_PASS;
		} else if (!field_key(q, ch)) {
			return K_PASS;
		}
		choose_filter(q);
	} else if (ch == 'k') {
		choose_move(q, -1);
	} else if (ch == 'j') {
		choose_move(q, 1);
	} else if (ch == KEY_HOME || ch == 'g') {
		choose_move(q, -(long)q->n);
	} else if (ch == KEY_END || ch == 'G') {
		choose_move(q, (long)q->n);
	} else if (ch == '/') {
		q->filtering = true;
	} else if (ch == TUI_ESC && q->flen) {
		q->flen = 0;
		q->field[0] = '\0';
		choose_filter(q);
	} else {
		return K_PASS;
	}
	return K_OK;
}

/* checklist */

static void list_header(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_wrap(p, "", ST_NORMAL, q->title, ST_BOLD, 0);
}

static void checklist_body(struct tui *t, struct question *q, struct pen *p)
{
	char prefix[32];

	(void)t;
	for (size_t i = 0; i < q->n; i++) {
		bool sel = i == q->sel;
		snprintf(prefix, sizeof prefix, "%s%zu %s ", sel ? "> " : "  ", i + 1,
			 q->ticked[i] ? "[x]" : "[ ]");
		p->item = (long)i;
		pen_wrap(p, prefix, q->ticked[i] ? ST_OK : ST_BOLD, q->labels[i],
			 sel ? ST_SEL : ST_NORMAL, 0);
	}
	p->item = -1;
}

static size_t ticked_count(const struct question *q)
{
	size_t k = 0;

	for (size_t i = 0; i < q->n; i++)
		k += q->ticked[i];
	return k;
}

static void checklist_footer(struct tui *t, struct question *q, struct pen *p)
{
	char buf[128];
	size_t k = ticked_count(q);

	(void)t;
	if (k == q->n)
		snprintf(buf, sizeof buf, "all %zu confirmed: c to continue", q->n);
	else
		snprintf(buf, sizeof buf, "%zu of %zu confirmed", k, q->n);
	pen_clip(p, 0, "", ST_NORMAL, buf, ST_NORMAL);
}

static void list_move(struct question *q, long delta)
{
	long k = (long)q->sel + delta;

	if (k < 0)
		k = 0;
	if (k >= (long)q->n)
		k = (long)q->n - 1;
	q->sel = (size_t)k;
}

static int checklist_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (is_up(ch)) {
		list_move(q, -1);
	} else if (is_down(ch)) {
		list_move(q, 1);
	} else if (ch >= '1' && ch <= '9' && (size_t)(ch - '0') <= q->n) {
		q->sel = (size_t)(ch - '1');
		q->ticked[q->sel] = !q->ticked[q->sel];
	} else if (ch == ' ') {
		q->ticked[q->sel] = !q->ticked[q->sel];
	} else if (ch == 'c' || ch == 'C' || is_enter(ch)) {
		size_t k = ticked_count(q);
		if (k == q->n)
			return K_DONE;
		snprintf(q->notice, sizeof q->notice,
			 "%zu not confirmed yet: tick every item (its number or Space), or q to back out",
			 q->n - k);
	} else {
		return K_PASS;
	}
	return K_OK;
}

/* failure */

static void failure_header(struct tui *t, struct question *q, struct pen *p)
{
	const struct step_info *si = steps_info(q->fail->step);
	char buf[TEXT_MAX];

	(void)t;
	snprintf(buf, sizeof buf, "%s failed", si ? si->title : "the step");
	pen_wrap(p, "FAIL ", ST_FAIL, buf, ST_BOLD, 0);
	pen_wrap(p, "what:    ", ST_BOLD, q->fail->what, ST_NORMAL, 0);
	pen_wrap(p, "meaning: ", ST_BOLD, q->fail->meaning, ST_NORMAL, 0);
	pen_blank(p);
}

static void choices_body(struct tui *t, struct question *q, struct pen *p)
{
	char prefix[32];

	(void)t;
	for (size_t i = 0; i < q->n; i++) {
		bool sel = i == q->sel;
		snprintf(prefix, sizeof prefix, "%s%zu ", sel ? "> " : "  ", i + 1);
		p->item = (long)i;
		pen_wrap(p, prefix, ST_BOLD, q->labels[i], sel ? ST_SEL : ST_NORMAL, 0);
	}
	p->item = -1;
}

static int failure_key(struct tui *t, struct question *q, int ch)
{
	(void)t;
	if (is_up(ch))
		list_move(q, -1);
	else if (is_down(ch))
		list_move(q, 1);
	else if (ch >= '1' && ch <= '9' && (size_t)(ch - '0') <= q->n)
		q->sel = (size_t)(ch - '1');
	else if (is_enter(ch))
		return K_DONE;
	else
		return K_PASS;
	return K_OK;
}

/* finish */

static void finish_header(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	pen_wrap(p, q->flag ? "[OK] " : "[FAIL] ", q->flag ? ST_OK : ST_FAIL, q->title, ST_BOLD, 0);
}

static void finish_body(struct tui *t, struct question *q, struct pen *p)
{
	(void)t;
	for (size_t i = 0; i < q->n; i++)
		pen_wrap(p, "  ", ST_NORMAL, q->labels[i], ST_NORMAL, 0);
}

static void finish_footer(struct tui *t, struct question *q, struct pen *p)
{
	(void)t, (void)q;
	pen_clip(p, 0, "", ST_NORMAL, "press Enter or q to leave", ST_DIM);
}

static int finish_key(struct tui *t, struct question *q, int ch)
{
	(void)t, (void)q;
	return is_enter(ch) ? K_DONE : K_PASS;
}

static const struct keyhelp help_confirm[] = {
	{"y", "answer yes"},
	{"n", "answer no"},
	{"Enter", "the default shown on the screen (no for anything that writes)"},
	{"q, Esc, ^C", "back out without an answer: nothing is done"},
	{NULL, NULL},
};
static const struct keyhelp help_word[] = {
	{"letters", "type the word exactly as shown"},
	{"Enter", "submit; only the exact word is accepted (one retry)"},
	{"Backspace", "erase a character (^U the whole field)"},
	{"Esc, ^C", "back out: nothing is done"},
	{NULL, NULL},
};
static const struct keyhelp help_text[] = {
	{"typing, paste", "edit the answer"},
	{"Backspace", "erase a character (^U all, ^W a word)"},
	{"Enter", "submit (an empty answer is an answer)"},
	{"Esc, ^C", "back out without an answer"},
	{NULL, NULL},
};
static const struct keyhelp help_choose[] = {
	{"Up/Down, j/k", "move (PgUp/PgDn, g/G: further)"},
	{"Enter", "pick the highlighted entry"},
	{"/", "search: type to filter, Esc clears"},
	{"q, Esc, ^C", "back out without a choice"},
	{NULL, NULL},
};
static const struct keyhelp help_checklist[] = {
	{"1-9", "confirm (or unconfirm) that item"},
	{"Space", "confirm (or unconfirm) the highlighted item"},
	{"Up/Down, j/k", "move"},
	{"c, Enter", "continue, once every item is confirmed"},
	{"q, Esc, ^C", "back out: nothing is done"},
	{NULL, NULL},
};
static const struct keyhelp help_failure[] = {
	{"Up/Down, j/k", "move (1-9: that choice)"},
	{"Enter", "take the highlighted choice; the first is the safe one"},
	{"q, Esc, ^C", "back out without a choice: flashwise stops safely"},
	{NULL, NULL},
};
static const struct keyhelp help_finish[] = {
	{"Enter, q", "leave"},
	{NULL, NULL},
};
static const struct keyhelp help_common[] = {
	{"?", "this help (in a text field: when empty)"},
	{"^L", "redraw the screen"},
	{NULL, NULL},
};

static const struct qclass qclasses[Q_COUNT] = {
	[Q_CONFIRM] = {"y yes  n no  Enter default  q back out  ? help", help_confirm, false,
		confirm_header, NULL, confirm_footer, confirm_key},
	[Q_WORD] = {"type the word  Enter submit  Esc back out  ? help", help_word, true,
		word_header, NULL, field_footer, word_key},
	[Q_TEXT] = {"Enter submit  Backspace  ^U clear  Esc back out  ? help", help_text, true,
		text_header, NULL, field_footer, text_key},
	[Q_CHOOSE] = {"j/k move  Enter pick  / search  q back out  ? help", help_choose, false,
		choose_header, choose_body, choose_footer, choose_key},
	[Q_CHECKLIST] = {"1-9/Space confirm  j/k move  c continue  q back out  ? help",
		help_checklist, false, list_header, checklist_body, checklist_footer,
		checklist_key},
	[Q_FAILURE] = {"j/k move  Enter take the choice  q back out  ? help", help_failure,
		false, failure_header, choices_body, NULL, failure_key},
	[Q_FINISH] = {"Enter or q leave", help_finish, false, finish_header, finish_body,
		finish_footer, finish_key},
};

/* ---- the pane ------------------------------------------------------------ */

/* The kind's footer, then what the last key got wrong. */
static void footer_all(struct tui *t, struct question *q, struct pen *p)
{
	const struct qclass *c = &qclasses[q->kind];

	if (c->footer)
		c->footer(t, q, p);
	if (q->notice[0])
		pen_wrap(p, "!! ", ST_WARN, q->notice, ST_NORMAL, 3);
}

static int measure(struct tui *t, struct question *q, int w,
		   void (*fn)(struct tui *, struct question *, struct pen *), struct pen *out)
{
	struct pen p;

	pen_init(&p, t, PANE_X, 0, w, 0, false);
	p.mark = (long)q->sel;
	if (fn)
		fn(t, q, &p);
	if (out)
		*out = p;
	return p.row;
}

/* The question at the bottom of the pane, in rows [y, y+h): a rule, the
 * header, the body scrolled so the highlight shows, the footer. */
static void draw_question(struct tui *t, struct question *q, int y, int h, int w)
{
	const struct qclass *c = &qclasses[q->kind];
	struct pen m, p;
	int fh = measure(t, q, w, footer_all, NULL);
	int hh = measure(t, q, w, c->header, NULL);
	int bh = measure(t, q, w, c->body, &m);
	int win;

	pen_init(&p, t, PANE_X, y, w, 1, true);
	pen_rule(&p, "");
	y++, h--;
	if (fh > h)
		fh = h;
	if (hh > h - fh - (bh ? 1 : 0))
		hh = h - fh - (bh ? 1 : 0);
	if (hh < 0)
		hh = 0;
	win = h - fh - hh;
	if (win > bh)
		win = bh;
	if (hh) {
		pen_init(&p, t, PANE_X, y, w, hh, true);
		c->header(t, q, &p);
	}
	if (win > 0 && c->body) {
		if (m.mark_first >= 0 && m.mark_first < q->top)
			q->top = m.mark_first;
		if (m.mark_last >= 0 && m.mark_last >= q->top + win)
			q->top = m.mark_last - win + 1;
		if (q->top > bh - win)
			q->top = bh - win;
		if (q->top < 0)
			q->top = 0;
		pen_init(&p, t, PANE_X, y + hh, w, win, true);
		p.skip = q->top;
		c->body(t, q, &p);
	}
	if (fh > 0) {
		pen_init(&p, t, PANE_X, y + hh + (win > 0 ? win : 0), w, fh, true);
		footer_all(t, q, &p);
	}
}

static void msg_pen(struct pen *p, const struct tui *t, size_t i)
{
	const struct msg *m = ring_at(t->msg, MSG_MAX, t->msg_head, i);
	unsigned k = m->kind < MK_COUNT ? m->kind : MK_INFO;

	pen_wrap(p, msg_look[k].prefix, msg_look[k].pst, m->text, msg_look[k].tst, 0);
}

static int msg_rows(struct tui *t, size_t i, int w)
{
	struct pen p;

	pen_init(&p, t, PANE_X, 0, w, 0, false);
	msg_pen(&p, t, i);
	return p.row;
}

/* The newest lines that fit, whole: a line cut at the top would lose its
 * mark. Only a line taller than the area is cut, at its end. */
static void draw_messages(struct tui *t, int y, int h, int w)
{
	struct pen p;
	size_t first = t->msg_n;
	int used = 0, skip = 0;

	if (h <= 0)
		return;
	while (first > 0) {
		int r = msg_rows(t, first - 1, w);
		if (used + r > h)
			break;
		used += r;
		first--;
	}
	if (first == t->msg_n && first > 0)
		first--;
	for (size_t i = 0; i < first; i++)
		skip += msg_rows(t, i, w);
	pen_init(&p, t, PANE_X, y, w, h, true);
	p.skip = skip;
	for (size_t i = 0; i < t->msg_n; i++)
		msg_pen(&p, t, i);
}

static void draw_boot(struct tui *t, int y, int h, int w)
{
	struct pen p;
	size_t shown = (size_t)(h - 1), first;

	pen_init(&p, t, PANE_X, y, w, h, true);
	pen_rule(&p, "boot output");
	first = t->boot_n > shown ? t->boot_n - shown : 0;
	for (size_t i = first; i < t->boot_n; i++)
		pen_clip(&p, 0, "", ST_NORMAL,
			 ring_at(t->boot, BOOT_MAX, t->boot_head, i)->text, ST_NORMAL);
}

static void draw_progress(struct tui *t, int y, int h, int w)
{
	char bar[BAR_MAX * 3 + 3], text[160];
	struct pen p;
	int inner = w - 2, fill, o = 0;
	double el = t->prog.elapsed;
	const char *full = t->ascii || !t->utf8 ? "#" : "\xe2\x96\x88";
	const char *empty = t->ascii || !t->utf8 ? "." : "\xe2\x96\x91";

	if (inner > BAR_MAX)
		inner = BAR_MAX;
	if (inner < 1)
		return;
	fill = t->prog.total ? (int)((double)inner * (double)t->prog.done / (double)t->prog.total)
			     : 0;
	if (fill > inner)
		fill = inner;
	bar[o++] = '[';
	for (int i = 0; i < inner; i++) {
		const char *cell = i < fill ? full : empty;
		size_t n = strlen(cell);
		memcpy(bar + o, cell, n);
		o += (int)n;
	}
	bar[o++] = ']';
	bar[o] = '\0';
	progress_format(text, sizeof text, t->prog.phase, t->prog.done, t->prog.total, el);
	pen_init(&p, t, PANE_X, y, w, h, true);
	pen_put(&p, 0, "", ST_NORMAL, bar, (size_t)o, ST_BOLD, false);
	pen_clip(&p, 0, "", ST_NORMAL, text, ST_NORMAL);
}

static void draw_waiting(struct tui *t, int y, int h, int w)
{
	char buf[TEXT_MAX + 32];
	struct pen p;

	snprintf(buf, sizeof buf, "waiting for %s...", t->wait.what);
	pen_init(&p, t, PANE_X, y, w, h, true);
	pen_wrap(&p, ".. ", ST_WARN, buf, ST_BOLD, 1);
	if (t->wait.how[0])
		pen_wrap(&p, "   ", ST_NORMAL, t->wait.how, ST_NORMAL, WAIT_ROWS);
}

static void draw_pane(struct tui *t, int bottom)
{
	int w = COLS - PANE_X - 1, y = 1, avail, qh = 0, nh = 0, wh = 0, ph = 0, bh = 0, mh, mt = 0;
	const struct step_info *si = t->pane_step != STEP_NONE ? steps_info(t->pane_step) : NULL;
	struct question *q = t->q;
	bool show_stop = t->stop && !(q && q->kind == Q_FINISH);
	struct pen p;
	char title[TEXT_MAX];

	pen_init(&p, t, PANE_X, y, w, 1 + PURPOSE_ROWS, true);
	if (si && t->pane_step < STEP_COUNT)
		snprintf(title, sizeof title, "Step %d/%d  %s", t->pane_step + 1, STEP_COUNT,
			 si->title);
	else if (si)
		snprintf(title, sizeof title, "%s", si->title);
	else if (q && q->kind == Q_FINISH)
		snprintf(title, sizeof title, "The job ended");
	else
		snprintf(title, sizeof title, "flashwise");
	pen_clip(&p, 0, "", ST_NORMAL, title, ST_BOLD);
	if (si)
		pen_wrap(&p, "", ST_NORMAL, si->purpose, ST_DIM, PURPOSE_ROWS);
	y += p.row + 1;
	avail = bottom - y + 1;

	/* From the bottom up, most urgent first: the question, the stop
	 * notice, the waiting indicator, the progress; the boot output and
	 * the pane's lines share what is left. */
	if (q) {
		const struct qclass *c = &qclasses[q->kind];
		qh = 1 + measure(t, q, w, c->header, NULL) + measure(t, q, w, c->body, NULL) +
		     measure(t, q, w, footer_all, NULL);
		if (qh > avail)
			qh = avail;
		avail -= qh;
	}
	if (show_stop) {
		pen_init(&p, t, PANE_X, 0, w, 0, false);
		pen_wrap(&p, "!! ", ST_WARN, stop_notice, ST_WARN, 0);
		nh = p.row < avail ? p.row : avail;
		avail -= nh;
	}
	if (t->wait.on) {
		/* "waiting for ..." is one row, the instructions up to three. */
		pen_init(&p, t, PANE_X, 0, w, 0, false);
		if (t->wait.how[0])
			pen_wrap(&p, "   ", ST_NORMAL, t->wait.how, ST_NORMAL, WAIT_ROWS);
		wh = 1 + p.row < avail ? 1 + p.row : avail;
		avail -= wh;
	}
	if (t->prog.on) {
		ph = avail >= 2 ? 2 : avail;
		avail -= ph;
	}
	for (size_t i = 0; i < t->msg_n; i++)
		mt += msg_rows(t, i, w);
	if (t->boot_n) {
		bh = 1 + (int)t->boot_n;
		if (mt + bh > avail) {
			/* Short of room: the boot output leaves the pane's newest
			 * lines a few rows. */
			int keep = mt < 3 ? mt : 3;
			if (bh > avail - keep)
				bh = avail - keep;
			if (bh < 2)
				bh = 0;
		}
		avail -= bh;
	}
	mh = mt < avail ? mt : avail;

	/* Everything stacks from the top; the question keeps the bottom. */
	draw_messages(t, y, mh, w);
	y += mh;
	if (bh) {
		draw_boot(t, y, bh, w);
		y += bh;
	}
	if (ph) {
		draw_progress(t, y, ph, w);
		y += ph;
	}
	if (wh) {
		draw_waiting(t, y, wh, w);
		y += wh;
	}
	if (nh) {
		pen_init(&p, t, PANE_X, y, w, nh, true);
		pen_wrap(&p, "!! ", ST_WARN, stop_notice, ST_WARN, 0);
		y += nh;
	}
	if (qh)
		draw_question(t, q, bottom - qh + 1, qh, w);
}

static void help_rows(struct pen *p, const struct qclass *c)
{
	char key[32];

	pen_clip(p, 0, "", ST_NORMAL, "keys for this question", ST_BOLD);
	pen_blank(p);
	for (int pass = 0; pass < 2; pass++)
		for (const struct keyhelp *k = pass ? help_common : c->help; k->keys; k++) {
			snprintf(key, sizeof key, "%-14s ", k->keys);
			pen_wrap(p, key, ST_BOLD, k->what, ST_NORMAL, 0);
		}
	pen_clip(p, 0, "", ST_NORMAL, "any key closes this help", ST_DIM);
}

/* The keys of the open question, over the pane. */
static void draw_help(struct tui *t, const struct qclass *c, int bottom)
{
	int w = COLS - PANE_X - 1, y = 3, x = PANE_X, rows;
	struct pen p;

	pen_init(&p, t, x + 1, 0, w - 2, 0, false);
	help_rows(&p, c);
	rows = p.row + 2;
	if (y + rows - 1 > bottom)
		rows = bottom - y + 1;
	for (int r = 0; r < rows; r++)
		mvhline(y + r, x, ' ', w);
	if (t->ascii) {
		mvhline(y, x, '-', w);
		mvhline(y + rows - 1, x, '-', w);
	} else {
		mvhline(y, x, ACS_HLINE, w);
		mvhline(y + rows - 1, x, ACS_HLINE, w);
	}
	pen_init(&p, t, x + 1, y + 1, w - 2, rows - 2, true);
	help_rows(&p, c);
}

static const char *hints(const struct tui *t)
{
	if (!t->q)
		return t->stop ? "stop requested  ^L redraw"
			       : "q or ^C stop at the next safe point  ^L redraw";
	if (t->q->help)
		return "any key closes the help";
	if (t->q->kind == Q_CHOOSE && t->q->filtering)
		return "type to search  Up/Down move  Enter pick  Esc clear the search";
	return qclasses[t->q->kind].hints;
}

static void draw(struct tui *t)
{
	int bottom = LINES - 2;
	struct pen p;
	char buf[96];

	if (t->detached)
		return;
	t->cursor_on = false;
	erase();
	if (too_small()) {
		snprintf(buf, sizeof buf, "terminal too small: need %dx%d, have %dx%d", MIN_COLS,
			 MIN_LINES, COLS, LINES);
		pen_init(&p, t, 0, 0, COLS > 1 ? COLS - 1 : 1, LINES, true);
		pen_wrap(&p, "", ST_NORMAL, buf, ST_BOLD, 0);
		curs_set(0);
		wnoutrefresh(stdscr);
		doupdate();
		return;
	}
	draw_top(t);
	draw_left(t, bottom);
	vrule(t, LEFT_W, 1, bottom);
	draw_pane(t, bottom);
	if (t->q && t->q->help)
		draw_help(t, &qclasses[t->q->kind], bottom);
	pen_init(&p, t, 1, LINES - 1, COLS - 2, 1, true);
	pen_clip(&p, 0, "", ST_NORMAL, hints(t), ST_DIM);
	if (t->cursor_on && !(t->q && t->q->help)) {
		curs_set(1);
		move(t->cursor_y, t->cursor_x);
	} else {
		curs_set(0);
	}
	wnoutrefresh(stdscr);
	doupdate();
}

/* ---- keys --------------------------------------------------------------- */

/* The next key, waiting for it. TUI_GONE when the terminal hung up: reads
 * then fail at once, and waiting on them would spin. */
static int read_key(struct tui *t)
{
	int empty = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fileno(t->tty), .events = POLLIN};
		int ch = wgetch(stdscr), n;

		if (ch != ERR)
			return ch;
		n = poll(&pfd, 1, 1000);
		if (n < 0 && errno != EINTR)
			return TUI_GONE;
		if (t->signal_pending && t->signal_pending())
			return TUI_GONE;
		/* EINTR: a resize; the next wgetch() gives KEY_RESIZE. */
		if (n > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
			return TUI_GONE;
		/* Readable again and again with nothing to read: end of file or
		 * an error the poll does not flag. */
		empty = n > 0 ? empty + 1 : 0;
		if (empty > 100)
			return TUI_GONE;
	}
}

/* While the engine works: handle what is waiting, never block. */
static void busy_keys(struct tui *t)
{
	bool redraw = false;
	int ch;

	if (t->detached)
		return;
	while ((ch = wgetch(stdscr)) != ERR) {
		if (ch == KEY_RESIZE) {
			redraw = true;
		} else if (ch == TUI_CTRL('l')) {
			clearok(curscr, TRUE);
			redraw = true;
		} else if (ch == TUI_CTRL('c') || ch == 'q' || ch == 'Q') {
			if (!t->stop)
				redraw = true;
			t->stop = true;
		}
		/* Anything else typed now is dropped: type-ahead must never
		 * answer the next question. */
	}
	if (redraw)
		draw(t);
}

static void busy_draw(struct tui *t)
{
	if (t->detached)
		return;
	draw(t);
	busy_keys(t);
}

static int q_run(struct tui *t, struct question *q)
{
	const struct qclass *c = &qclasses[q->kind];
	int r = K_OK;

	if (t->detached)
		return FW_ECANCELLED;
	flushinp();
	/* A question is a safe point and the engine asks here about a stop it
	 * saw: the request is answered, and a later retry must not stop again
	 * at once. (q backs out of this question if the engine did not ask.) */
	t->stop = false;
	q->field[0] = '\0';
	t->q = q;
	draw(t);
	for (;;) {
		int ch = read_key(t);

		if (ch == TUI_GONE) {
			r = K_CANCEL;
			break;
		}
		if (ch == KEY_RESIZE) {
			draw(t);
			continue;
		}
		if (ch == TUI_CTRL('l')) {
			clearok(curscr, TRUE);
			draw(t);
			continue;
		}
		if (too_small()) {
			/* Nothing is answered blind; backing out still works. */
			if (ch == TUI_CTRL('c')) {
				r = K_CANCEL;
				break;
			}
			continue;
		}
		if (q->help) {
			q->help = false;
			draw(t);
			continue;
		}
		if (ch == TUI_CTRL('c')) {
			r = K_CANCEL;
			break;
		}
		if (q->kind != Q_WORD)
			q->notice[0] = '\0';
		r = c->key(t, q, ch);
		if (r == K_PASS) {
			if (ch == '?')
				q->help = true;
			else if (ch == 'q' || ch == 'Q' || ch == TUI_ESC)
				r = K_CANCEL;
			else if (!c->text)
				snprintf(q->notice, sizeof q->notice,
					 "that key does nothing here: ? shows the keys");
		}
		if (r == K_DONE || r == K_CANCEL)
			break;
		draw(t);
	}
	t->q = NULL;
	return r == K_DONE ? FW_OK : FW_ECANCELLED;
}

static void q_init(struct question *q, enum qkind kind, const char *title)
{
	memset(q, 0, sizeof *q);
	q->kind = kind;
	q->title = S(title);
	q->sub = "";
}

/* ---- the ops ------------------------------------------------------------ */

static void op_update(void *ctx, const struct ui_view *v)
{
	struct tui *t = ctx;

	view_copy(t, v);
	busy_draw(t);
}

static void op_step_begin(void *ctx, const struct ui_view *v, int step)
{
	struct tui *t = ctx;

	view_copy(t, v);
	pane_reset(t, step);
	busy_draw(t);
}

static void op_step_end(void *ctx, const struct ui_view *v, int step, enum step_state st,
			const char *summary)
{
	struct tui *t = ctx;
	int kind = st == STEP_DONE ? MK_END_OK
		 : st == STEP_FAILED ? MK_END_FAIL
		 : st == STEP_SKIPPED ? MK_END_SKIP : MK_END;
	const struct step_info *si = steps_info(step);

	view_copy(t, v);
	t->wait.on = false;
	msg_add(t, kind, *S(summary) ? summary : si ? si->title : "");
	busy_draw(t);
}

static void op_fact(void *ctx, enum ui_level level, const char *label, const char *value)
{
	struct tui *t = ctx;
	int kind = level == UI_OK ? MK_OK
		 : level == UI_WARN ? MK_WARN
		 : level == UI_FAIL ? MK_FAIL : MK_INFO;

	msg_addf2(t, kind, label, ": ", value);
	busy_draw(t);
}

static void op_log(void *ctx, const char *line)
{
	struct tui *t = ctx;

	msg_add(t, MK_LOG, S(line));
	busy_draw(t);
}

static void op_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	struct tui *t = ctx;
	double now = now_s();
	bool fresh = !t->prog.on || strncmp(t->prog.phase, S(phase), sizeof t->prog.phase - 1) ||
		     done < t->prog.done;

	if (fresh) {
		snprintf(t->prog.phase, sizeof t->prog.phase, "%s", S(phase));
		t->prog.start = now;
		t->prog.on = true;
	}
	t->prog.done = done;
	t->prog.total = total;
	t->prog.elapsed = now - t->prog.start;
	/* A phase's start and end always show; in between at most 10/s. */
	if (fresh || done >= total || now - t->last_prog_draw >= REDRAW_S) {
		t->last_prog_draw = now;
		busy_draw(t);
	} else {
		busy_keys(t);
	}
}

static void op_boot_line(void *ctx, const char *line)
{
	struct tui *t = ctx;

	ring_push(t->boot, BOOT_MAX, &t->boot_head, &t->boot_n, MK_LOG, S(line));
	busy_draw(t);
}

static void op_waiting(void *ctx, const char *what, const char *instructions, bool on)
{
	struct tui *t = ctx;

	t->wait.on = on;
	snprintf(t->wait.what, sizeof t->wait.what, "%s", S(what));
	snprintf(t->wait.how, sizeof t->wait.how, "%s", S(instructions));
	busy_draw(t);
}

static int op_confirm(void *ctx, const char *question, bool safe_default, bool *yes)
{
	struct tui *t = ctx;
	struct question q;
	int rc;

	q_init(&q, Q_CONFIRM, question);
	q.flag = safe_default;
	rc = q_run(t, &q);
	/* No answer is never yes. */
	if (yes)
		*yes = rc == FW_OK && q.yes;
	msg_addf2(t, MK_ANSWER, question, " -> ", rc == FW_OK ? (q.yes ? "yes" : "no")
							      : "backed out");
	busy_draw(t);
	return rc;
}

static int op_checklist(void *ctx, const char *title, const char *const *items, size_t n)
{
	struct tui *t = ctx;
	struct question q;
	char buf[64];
	int rc;

	if (t->detached)
		return FW_ECANCELLED;
	q_init(&q, Q_CHECKLIST, title);
	q.labels = items;
	q.n = n;
	q.ticked = calloc(n ? n : 1, sizeof *q.ticked);
	if (!q.ticked)
		return FW_ECANCELLED;
	rc = n ? q_run(t, &q) : FW_OK;
	if (rc == FW_OK && ticked_count(&q) != n)
		rc = FW_ECANCELLED;
	free(q.ticked);
	snprintf(buf, sizeof buf, "all %zu confirmed", n);
	msg_addf2(t, MK_ANSWER, title, " -> ", rc == FW_OK ? buf : "backed out");
	busy_draw(t);
	return rc;
}

static int op_type_word(void *ctx, const char *prompt, const char *word)
{
	struct tui *t = ctx;
	struct question q;
	int rc;

	q_init(&q, Q_WORD, prompt);
	q.sub = S(word);
	q.maxlen = FIELD_MAX - 1;
	rc = q_run(t, &q);
	/* Checked again here: consent is only ever the exact word. */
	if (rc == FW_OK && strcmp(q.field, q.sub) != 0)
		rc = FW_ECANCELLED;
	msg_addf2(t, MK_ANSWER, prompt, " -> ",
		  rc == FW_OK ? "typed" : q.tries >= 2 ? "did not match: backed out" : "backed out");
	busy_draw(t);
	return rc;
}

static int op_choose(void *ctx, const char *title, const struct ui_item *items, size_t n,
		     size_t *choice)
{
	struct tui *t = ctx;
	struct question q;
	bool *placed;
	size_t k = 0;
	int rc;

	if (t->detached || !n || !items || !choice)
		return FW_ECANCELLED;
	q_init(&q, Q_CHOOSE, title);
	q.items = items;
	q.n = n;
	q.sel = *choice < n ? *choice : 0;
	q.maxlen = 127;
	q.order = calloc(n, sizeof *q.order);
	q.vis = calloc(n, sizeof *q.vis);
	placed = calloc(n, sizeof *placed);
	if (!q.order || !q.vis || !placed) {
		free(q.order), free(q.vis), free(placed);
		return FW_ECANCELLED;
	}
	/* Grouped by ui_item.group in order of first appearance, each group
	 * keeping the engine's order. */
	for (size_t i = 0; i < n; i++) {
		if (placed[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!placed[j] && strcmp(S(items[i].group), S(items[j].group)) == 0) {
				placed[j] = true;
				q.order[k++] = j;
			}
	}
	free(placed);
	choose_filter(&q);
	rc = q_run(t, &q);
	if (rc == FW_OK)
		*choice = q.sel;
	free(q.order);
	free(q.vis);
	msg_addf2(t, MK_ANSWER, title, " -> ", rc == FW_OK ? S(items[q.sel].label) : "backed out");
	busy_draw(t);
	return rc;
}

static int op_ask_text(void *ctx, const char *prompt, const char *hint, char *out, size_t outlen)
{
	struct tui *t = ctx;
	struct question q;
	int rc;

	if (t->detached || !out || !outlen)
		return FW_ECANCELLED;
	q_init(&q, Q_TEXT, prompt);
	q.sub = S(hint);
	q.maxlen = outlen - 1 < FIELD_MAX - 1 ? outlen - 1 : FIELD_MAX - 1;
	rc = q_run(t, &q);
	if (rc == FW_OK)
		snprintf(out, outlen, "%s", q.field);
	msg_addf2(t, MK_ANSWER, prompt, " -> ",
		  rc == FW_OK ? (q.flen ? q.field : "(empty)") : "backed out");
	busy_draw(t);
	return rc;
}

static int op_failure(void *ctx, const struct ui_view *v, const struct ui_failure *f,
		      size_t *choice)
{
	struct tui *t = ctx;
	struct question q;
	int rc;

	if (t->detached || !f || !f->nchoices || !f->choices || !choice)
		return FW_ECANCELLED;
	view_copy(t, v);
	t->wait.on = false;
	q_init(&q, Q_FAILURE, "");
	q.fail = f;
	q.labels = f->choices;
	q.n = f->nchoices;
	q.sel = 0; /* the safe choice is first */
	rc = q_run(t, &q);
	if (rc == FW_OK)
		*choice = q.sel;
	msg_addf2(t, MK_ANSWER, "after the failure", " -> ",
		  rc == FW_OK ? S(f->choices[q.sel]) : "backed out");
	busy_draw(t);
	return rc;
}

static void op_finish(void *ctx, const struct ui_view *v, bool success, const char *verdict,
		      const char *const *lines, size_t nlines)
{
	struct tui *t = ctx;
	struct question q;

	if (t->detached)
		return;
	view_copy(t, v);
	/* The final screen has the pane to itself: the verdict and where the
	 * records are. */
	pane_reset(t, STEP_NONE);
	q_init(&q, Q_FINISH, verdict);
	q.flag = success;
	q.labels = lines;
	q.n = lines ? nlines : 0;
	q.sel = (size_t)-1;
	q_run(t, &q);
}

static void op_detach(void *ctx)
{
	struct tui *t = ctx;

	/* The terminal is gone (SIGHUP): from now on no curses call and no
	 * read or write on it. */
	t->detached = true;
}

static bool op_stop_requested(void *ctx)
{
	const struct tui *t = ctx;

	return t->stop;
}

static const struct ui_ops tui_ops = {
	.update = op_update,
	.step_begin = op_step_begin,
	.step_end = op_step_end,
	.fact = op_fact,
	.log = op_log,
	.progress = op_progress,
	.boot_line = op_boot_line,
	.waiting = op_waiting,
	.confirm = op_confirm,
	.checklist = op_checklist,
	.type_word = op_type_word,
	.choose = op_choose,
	.ask_text = op_ask_text,
	.failure = op_failure,
	.finish = op_finish,
	.detach = op_detach,
	.stop_requested = op_stop_requested,
};

/* ---- open and close ----------------------------------------------------- */

int tui_open(const struct tui_options *o, struct ui *out, struct fw_err *e)
{
	const char *term = getenv("TERM"), *loc, *cup;
	struct tui *t;
	FILE *tty;

	if (!out)
		return fw_err_set(e, FW_EINVAL, "tui_open: no ui to fill");
	out->ops = NULL;
	out->ctx = NULL;
	if (!term || !*term)
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "no terminal type: TERM is not set (line mode works without it)");
	/* ncursesw needs the character type of the locale; only LC_CTYPE, so
	 * numbers elsewhere keep their C format. */
	loc = setlocale(LC_CTYPE, NULL);
	if (!loc || strcmp(loc, "C") == 0 || strcmp(loc, "POSIX") == 0)
		setlocale(LC_CTYPE, "");
	tty = fopen("/dev/tty", "r+");
	if (!tty)
		return fw_err_set(e, FW_EUNSUPPORTED, "no terminal to draw on: /dev/tty: %s",
				  strerror(errno));
	(void)fcntl(fileno(tty), F_SETFD, FD_CLOEXEC);
	t = calloc(1, sizeof *t);
	if (!t) {
		fclose(tty);
		return fw_err_set(e, FW_ENOMEM, "out of memory opening the screens");
	}
	t->tty = tty;
	t->scr = newterm(term, tty, tty);
	if (!t->scr) {
		fclose(tty);
		free(t);
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "the terminal type \"%s\" is not known here: set TERM to one in "
				  "the terminfo database (e.g. xterm-256color), or use line mode",
				  term);
	}
	cup = tigetstr("cup");
	if (!cup || cup == (const char *)-1) {
		endwin();
		delscreen(t->scr);
		fclose(tty);
		free(t);
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "the terminal type \"%s\" cannot place the cursor: the screens "
				  "need a full-screen terminal, or use line mode", term);
	}
	t->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	t->ascii = (o && o->ascii) || !t->utf8;
	t->signal_pending = o ? o->signal_pending : NULL;
	/* raw: Ctrl-C arrives as a key and asks for a safe stop; it never
	 * kills the program in the middle of a write. */
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	meta(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	if (o && o->color && has_colors()) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_GREEN, -1);
		init_pair(2, COLOR_YELLOW, -1);
		init_pair(3, COLOR_RED, -1);
		t->color = true;
	}
	t->current = STEP_NONE;
	t->pane_step = STEP_NONE;
	out->ops = &tui_ops;
	out->ctx = t;
	draw(t);
	return FW_OK;
}

void tui_close(struct ui *u)
{
	struct tui *t;

	if (!u || !u->ctx || u->ops != &tui_ops)
		return;
	t = u->ctx;
	if (!t->detached) {
		curs_set(1);
		endwin();
	}
	delscreen(t->scr);
	fclose(t->tty);
	free(t);
	u->ops = NULL;
	u->ctx = NULL;
}
