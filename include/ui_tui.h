/* The wizard's curses screens: one struct ui (ui.h) drawn with ncursesw on
 * the controlling terminal. This is the only module that calls curses.
 *
 * The frame: a top line (step n/9, profile, port, device identity), the
 * nine steps as a checklist on the left with marks readable without colour
 * ([ ] [>] [OK] [FAIL] [SKIP]), the current step's pane on the right (facts,
 * driver lines, progress, boot output, the question) and the keys that work
 * now on the bottom line. Needs 80x24; smaller shows only a guard until the
 * terminal is resized.
 *
 * Keys: every action has a letter key; '?' shows the keys of a question; q,
 * Esc or Ctrl-C back out of it (FW_ECANCELLED, the engine fails closed).
 * While the engine works, q or Ctrl-C ask it to stop at the next safe point
 * (ui_ops.stop_requested). Keys typed ahead are dropped when a question
 * opens, so a stray Enter never answers it. In the one-line fields (typed
 * consent, free text) q and '?' are text: Esc or Ctrl-C back out there, and
 * '?' shows the help only while the field is empty. Typed consent allows one
 * retry after a mismatch, then backs out. */
#ifndef FLASHWISE_UI_TUI_H
#define FLASHWISE_UI_TUI_H

#include <stdbool.h>

#include "error.h"
#include "ui.h"

struct tui_options {
	bool color;  /* colour on top of the text marks; the caller applies
	                NO_COLOR and --no-color */
	bool ascii;  /* ASCII line art even in a UTF-8 locale */
	/* Polled while a question waits for a key: nonzero (a SIGTERM or
	 * SIGINT arrived) backs out of the question, so a stop is not held
	 * up by a screen nobody answers. May be NULL. */
	int (*signal_pending)(void);
};

/* Opens the screens on /dev/tty with newterm(), so an unusable TERM is an
 * error and not an exit. Sets LC_CTYPE from the environment when the program
 * left it at "C" (only LC_CTYPE: numbers in journals and reports keep the C
 * format). FW_EUNSUPPORTED when there is no terminal or TERM cannot be used:
 * the caller falls back to line mode. FW_ENOMEM. */
int tui_open(const struct tui_options *o, struct ui *out, struct fw_err *e);
/* Ends the screens (endwin, unless detached: the terminal is gone) and frees
 * everything. u->ops and u->ctx are cleared; NULL or a closed ui is a no-op. */
void tui_close(struct ui *u);

#endif
