/* Progress text: bytes, percentage, rate and ETA; no \r off a terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static void test_format(void **state)
{
	char out[160];

	(void)state;
	progress_format(out, sizeof out, "write", 262144, 1048576, 20.0);
	assert_non_null(strstr(out, "262144/1048576 bytes"));
	assert_non_null(strstr(out, " 25%"));
	assert_non_null(strstr(out, "12.8 KB/s"));
	assert_non_null(strstr(out, "ETA 1:00"));
	progress_format(out, sizeof out, "read", 0, 4096, 0.0);
	assert_non_null(strstr(out, "--  ETA --"));
	progress_format(out, sizeof out, "read", 3u << 20, 3u << 20, 1.5);
	assert_non_null(strstr(out, "100%"));
	assert_non_null(strstr(out, "2.0 MB/s"));
	assert_non_null(strstr(out, "ETA 0:00"));
}

static void test_plain_lines_throttled(void **state)
{
	char *buf = NULL;
	size_t len = 0, lines = 0, i;
	FILE *f = open_memstream(&buf, &len);
	struct progress p;
	uint64_t done;

	(void)state;
	assert_non_null(f);
	progress_init(&p, f, false);
	/* 1000 updates in far less than a second: the first and the last only. */
	for (done = 0; done <= 1000; done++)
		progress_update(&p, "write", done, 1000);
	progress_update(&p, "verify", 0, 10);
	progress_end(&p);
	fclose(f);
	for (i = 0; i < len; i++)
		lines += buf[i] == '\n';
	assert_int_equal(lines, 3);
	assert_null(strchr(buf, '\r'));
	assert_non_null(strstr(buf, "1000/1000"));
	free(buf);
}

static void test_tty_redraws_in_place(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct progress p;

	(void)state;
	assert_non_null(f);
	progress_init(&p, f, true);
	progress_update(&p, "read", 0, 100);
	progress_update(&p, "read", 100, 100);
	progress_end(&p);
	fclose(f);
	assert_non_null(strchr(buf, '\r'));
	assert_int_equal(buf[len - 1], '\n');
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_plain_lines_throttled),
		cmocka_unit_test(test_tty_redraws_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
