/* Line mode and batch mode (ui_plain.h) on memory streams: what Enter
 * means, that batch mode answers only confirmations and fails closed on
 * everything else, that the end of input is never a yes, and that nothing
 * is printed after the terminal is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ui_plain.h"

struct rig {
	FILE *in, *out;
	char *outbuf;
	size_t outlen;
	struct ui u;
};

static void rig_open(struct rig *r, const char *answers, bool batch)
{
	struct plain_options o;
	struct fw_err e = {0};

	memset(r, 0, sizeof *r);
	r->in = answers ? fmemopen((void *)answers, strlen(answers), "r") : NULL;
	r->out = open_memstream(&r->outbuf, &r->outlen);
	assert_non_null(r->out);
	o = (struct plain_options){.in = r->in, .out = r->out, .batch = batch};
	assert_int_equal(plain_open(&o, &r->u, &e), FW_OK);
}

static const char *rig_text(struct rig *r)
{
	fflush(r->out);
	return r->outbuf ? r->outbuf : "";
}

static void rig_close(struct rig *r)
{
	plain_close(&r->u);
	if (r->in)
		fclose(r->in);
	fclose(r->out);
	free(r->outbuf);
}

static void test_confirm_defaults_and_answers(void **state)
{
	struct rig r;
	bool yes = true;

	(void)state;
	rig_open(&r, "\n\nmaybe\ny\nno\n", false);
	/* Enter takes the default, which the prompt shows in capitals. */
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Write?", false, &yes), FW_OK);
	assert_false(yes);
	assert_non_null(strstr(rig_text(&r), "Write? [y/N]"));
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Model?", true, &yes), FW_OK);
	assert_true(yes);
	/* Anything else is asked again. */
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Go?", false, &yes), FW_OK);
	assert_true(yes);
	assert_non_null(strstr(rig_text(&r), "please answer y or n"));
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Again?", true, &yes), FW_OK);
	assert_false(yes);
	/* The end of the answers is no answer, never a yes. */
	yes = true;
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "More?", true, &yes), FW_ECANCELLED);
	assert_false(yes);
	rig_close(&r);
}

static void test_type_word_exact(void **state)
{
	struct rig r;

	(void)state;
	rig_open(&r, "write\nWRITE\n", false);
	assert_int_equal(r.u.ops->type_word(r.u.ctx, "Type WRITE", "WRITE"), FW_ECANCELLED);
	assert_non_null(strstr(rig_text(&r), "that was not WRITE"));
	assert_int_equal(r.u.ops->type_word(r.u.ctx, "Type WRITE", "WRITE"), FW_OK);
	assert_int_equal(r.u.ops->type_word(r.u.ctx, "Type WRITE", "WRITE"), FW_ECANCELLED);
	rig_close(&r);
}

static void test_choose_by_number_name_and_default(void **state)
{
	static const struct ui_item items[] = {
		{"arduino-uno-r3", "Arduino Uno R3", "avr"},
		{"esp32-devkitc", "ESP32-DevKitC", "esp32"},
		{"nodemcu-v1", "NodeMCU", "esp8266"},
	};
	struct rig r;
	size_t c = 0;

	(void)state;
	rig_open(&r, "7\n3\nesp32-devkitc\n\n", false);
	assert_int_equal(r.u.ops->choose(r.u.ctx, "Profile", items, 3, &c), FW_OK);
	assert_int_equal(c, 2);
	assert_non_null(strstr(rig_text(&r), "1 to 3, or a name"));
	assert_non_null(strstr(rig_text(&r), "    esp8266:"));
	assert_int_equal(r.u.ops->choose(r.u.ctx, "Profile", items, 3, &c), FW_OK);
	assert_int_equal(c, 1);
	assert_int_equal(r.u.ops->choose(r.u.ctx, "Profile", items, 3, &c), FW_OK);
	assert_int_equal(c, 1); /* Enter keeps the default */
	rig_close(&r);
}

/* Batch mode: --yes answers confirmations and the typed word, nothing else. */
static void test_batch_fails_closed(void **state)
{
	static const struct ui_item items[] = {{"a", "", ""}, {"b", "", ""}};
	static const char *const choices[] = {"Retry", "Abort"};
	struct ui_failure f = {STEP_FLASH, "it broke", "unsafe", choices, 2};
	struct ui_view v = {0};
	struct rig r;
	char text[64] = "x";
	size_t c = 0;
	bool yes = false;

	(void)state;
	rig_open(&r, NULL, true);
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Write?", false, &yes), FW_OK);
	assert_true(yes);
	assert_int_equal(r.u.ops->type_word(r.u.ctx, "Type WRITE", "WRITE"), FW_OK);
	assert_non_null(strstr(rig_text(&r), "(--yes)"));
	assert_int_equal(r.u.ops->choose(r.u.ctx, "Which?", items, 2, &c), FW_ECANCELLED);
	assert_int_equal(r.u.ops->ask_text(r.u.ctx, "File", "FILE", text, sizeof text),
			 FW_ECANCELLED);
	assert_int_equal(r.u.ops->failure(r.u.ctx, &v, &f, &c), FW_ECANCELLED);
	assert_non_null(strstr(rig_text(&r), "FAILED: it broke"));
	rig_close(&r);
}

/* Progress as whole lines: a log never holds a '\r'. */
static void test_progress_lines_without_cr(void **state)
{
	struct rig r;

	(void)state;
	rig_open(&r, NULL, true);
	r.u.ops->progress(r.u.ctx, "write", 0, 1000);
	r.u.ops->progress(r.u.ctx, "write", 500, 1000);
	r.u.ops->progress(r.u.ctx, "write", 1000, 1000);
	r.u.ops->fact(r.u.ctx, UI_OK, "verified", "1000 bytes match");
	assert_null(strchr(rig_text(&r), '\r'));
	assert_non_null(strstr(rig_text(&r), "write"));
	assert_non_null(strstr(rig_text(&r), "ok   verified: 1000 bytes match"));
	rig_close(&r);
}

/* After detach (SIGHUP) nothing is written and every question fails. */
static void test_detach_is_silent_and_closed(void **state)
{
	struct rig r;
	size_t before;
	bool yes = true;

	(void)state;
	rig_open(&r, "y\nWRITE\n", false);
	r.u.ops->log(r.u.ctx, "before");
	before = strlen(rig_text(&r));
	r.u.ops->detach(r.u.ctx);
	r.u.ops->log(r.u.ctx, "after");
	r.u.ops->fact(r.u.ctx, UI_INFO, "x", "y");
	r.u.ops->step_begin(r.u.ctx, NULL, STEP_FLASH);
	assert_int_equal(r.u.ops->confirm(r.u.ctx, "Go?", true, &yes), FW_ECANCELLED);
	assert_false(yes);
	assert_int_equal(r.u.ops->type_word(r.u.ctx, "Type", "WRITE"), FW_ECANCELLED);
	assert_int_equal(strlen(rig_text(&r)), before);
	rig_close(&r);
}

static void test_steps_are_numbered(void **state)
{
	struct rig r;

	(void)state;
	rig_open(&r, NULL, true);
	r.u.ops->step_begin(r.u.ctx, NULL, STEP_BACKUP);
	r.u.ops->step_end(r.u.ctx, NULL, STEP_BACKUP, STEP_FAILED, "no answer");
	r.u.ops->step_begin(r.u.ctx, NULL, STEP_RESTORE);
	assert_non_null(strstr(rig_text(&r), "[5/9] Back up the device"));
	assert_non_null(strstr(rig_text(&r), "[5/9] backup FAILED: no answer"));
	assert_non_null(strstr(rig_text(&r), "[restore] Restore the backup"));
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_confirm_defaults_and_answers),
		cmocka_unit_test(test_type_word_exact),
		cmocka_unit_test(test_choose_by_number_name_and_default),
		cmocka_unit_test(test_batch_fails_closed),
		cmocka_unit_test(test_progress_lines_without_cr),
		cmocka_unit_test(test_detach_is_silent_and_closed),
		cmocka_unit_test(test_steps_are_numbered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
