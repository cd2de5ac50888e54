/* The libserialport backend against a pseudo-terminal, under the test-only
 * LD_PRELOAD shim (tests/shim/pty_modem_shim.c): the port opens, bytes go
 * both ways, and every DTR/RTS change arrives in the side-channel file.
 *
 * Run it like any test program: when the shim is not loaded yet it
 * re-executes itself with LD_PRELOAD set to pty_modem_shim.so from its own
 * folder (or $FLASHWISE_SHIM), so `make check` needs no wrapper script. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "transport.h"

#define SHIM_NAME "pty_modem_shim.so"

struct pty {
	int master;
	char name[64];
};

struct ev {
	int dtr, rts;
	unsigned long long t;
	char dev[64];
	char why[16];
};

struct fixture {
	char dir[64];
	char lines[96];
	struct pty p;
};

static void pty_open(struct pty *p)
{
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	assert_true(p->master >= 0);
	assert_int_equal(grantpt(p->master), 0);
	assert_int_equal(unlockpt(p->master), 0);
	assert_non_null(ptsname(p->master));
	snprintf(p->name, sizeof p->name, "%s", ptsname(p->master));
}

static void master_write(const struct pty *p, const void *buf, size_t n)
{
	assert_int_equal(write(p->master, buf, n), (ssize_t)n);
}

static size_t master_read(const struct pty *p, void *buf, size_t n, int ms)
{
	unsigned char *b = buf;
	size_t have = 0;
	uint64_t deadline = transport_deadline_ms((unsigned)ms);

	while (have < n && transport_now_ns() < deadline) {
		struct pollfd pf = { .fd = p->master, .events = POLLIN };
		ssize_t r;

		poll(&pf, 1, 20);
		r = read(p->master, b + have, n - have);
		if (r > 0)
			have += (size_t)r;
	}
	return have;
}

/* The side-channel lines about this fixture's pty, in order. */
static size_t read_events(const struct fixture *f, struct ev *ev, size_t max)
{
	FILE *in = fopen(f->lines, "r");
	char line[256];
	size_t n = 0;

	if (!in)
		return 0;
	while (n < max && fgets(line, sizeof line, in)) {
		struct ev x;
		if (sscanf(line, "DTR=%d RTS=%d t=%llu dev=%63s why=%15s",
		    &x.dtr, &x.rts, &x.t, x.dev, x.why) != 5)
			fail_msg("malformed side-channel line: %s", line);
		if (strcmp(x.dev, f->p.name) == 0)
			ev[n++] = x;
	}
	fclose(in);
	return n;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/fw-shim-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->lines, sizeof f->lines, "%s/lines", f->dir);
	setenv("FLASHWISE_SHIM_LINES", f->lines, 1);
	unsetenv(TRANSPORT_ENV);
	pty_open(&f->p);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->p.master);
	unlink(f->lines);
	rmdir(f->dir);
	unsetenv("FLASHWISE_SHIM_LINES");
	unsetenv(TRANSPORT_ENV);
	free(f);
	return 0;
}

static void expect_ev(const struct ev *e, int dtr, int rts, const char *why)
{
	if (e->dtr != dtr || e->rts != rts || strcmp(e->why, why) != 0)
		fail_msg("event DTR=%d RTS=%d why=%s, expected DTR=%d RTS=%d "
			"why=%s", e->dtr, e->rts, e->why, dtr, rts, why);
}

static void test_shim_is_loaded(void **state)
{
	int (*present)(void) = (int (*)(void))dlsym(RTLD_DEFAULT,
		"flashwise_pty_shim_present");

	(void)state;
	assert_non_null(present);
	assert_int_equal(present(), 1);
}

static void test_sp_backend_opens_pty_and_exchanges_bytes(void **state)
{
	struct fixture *f = *state;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char out[200], in[200];
	struct termios tio;
	size_t got = 0;

	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (unsigned char)(255 - i);
	assert_int_equal(transport_open_backend(f->p.name, 115200,
		TRANSPORT_SP, &t, &e), FW_OK);
	assert_string_equal(transport_backend_name(t), "libserialport");
	assert_int_equal(transport_caps(t),
		TRANSPORT_CAP_MODEM_LINES | TRANSPORT_CAP_TIGHT_LINES);
	assert_int_equal(t->baud, 115200);
	assert_int_equal(tcgetattr(f->p.master, &tio), 0);
	assert_int_equal(cfgetospeed(&tio), B115200);
	assert_int_equal(tio.c_lflag & (ECHO | ICANON), 0);

	assert_int_equal(transport_write(t, out, sizeof out,
		transport_deadline_ms(1000), &e), FW_OK);
	assert_int_equal(transport_drain(t, transport_deadline_ms(1000), &e),
		FW_OK);
	assert_int_equal(master_read(&f->p, in, sizeof in, 1000), sizeof in);
	assert_memory_equal(in, out, sizeof out);

	/* the ESP8266 ROM banner rate, outside the B-constant table */
	assert_int_equal(transport_set_baud(t, 74880, &e), FW_OK);
	assert_int_equal(t->baud, 74880);
	master_write(&f->p, out, sizeof out);
	assert_int_equal(transport_read(t, in, sizeof in, &got,
		transport_deadline_ms(1000), &e), FW_OK);
	assert_memory_equal(in, out, sizeof out);

	/* deadline and flush behave as with termios */
	master_write(&f->p, "zz", 2);
	assert_int_equal(transport_read(t, in, 3, &got,
		transport_deadline_ms(100), &e), FW_ETIMEOUT);
	assert_int_equal(got, 2);
	master_write(&f->p, "old", 3);
	{
		struct timespec ts = { 0, 100000000 };   /* delivery */
		nanosleep(&ts, NULL);
	}
	assert_int_equal(transport_flush(t, TRANSPORT_FLUSH_INPUT, &e), FW_OK);
	assert_int_equal(transport_read_some(t, in, sizeof in, &got,
		transport_deadline_ms(50), &e), FW_ETIMEOUT);
	transport_close(t);
}

static void test_sp_line_changes_reach_the_side_channel(void **state)
{
	struct fixture *f = *state;
	struct transport *t = NULL;
	struct fw_err e = {0};
	struct ev ev[32];
	uint64_t t0 = transport_now_ns(), t1;
	size_t n;

	/* through the environment override, as a test of the driver would */
	setenv(TRANSPORT_ENV, "sp", 1);
	assert_int_equal(transport_open(f->p.name, 115200, &t, &e), FW_OK);
	assert_string_equal(transport_backend_name(t), "libserialport");
	/* esptool's classic reset: separate calls, DTR first */
	assert_int_equal(transport_set_lines(t, 0, 1, &e), FW_OK);
	assert_int_equal(transport_set_lines(t, 1, 0, &e), FW_OK);
	assert_int_equal(transport_set_lines(t, 0, TRANSPORT_LINE_KEEP, &e),
		FW_OK);
	/* the tight variant: one step for both lines */
	assert_int_equal(transport_set_lines_tight(t, 1, 1, &e), FW_OK);
	assert_int_equal(transport_set_lines_tight(t, 0, 1, &e), FW_OK);
	assert_int_equal(transport_set_lines_tight(t, 0, 1, &e), FW_OK);
	transport_close(t);
	t1 = transport_now_ns();

	n = read_events(f, ev, 32);
	assert_int_equal(n, 8);
	expect_ev(&ev[0], 1, 1, "open");    /* opening raised both */
	expect_ev(&ev[1], 0, 1, "set");     /* RTS already up: one change */
	expect_ev(&ev[2], 1, 1, "set");     /* DTR up ... */
	expect_ev(&ev[3], 1, 0, "set");     /* ... then RTS down */
	expect_ev(&ev[4], 0, 0, "set");
	expect_ev(&ev[5], 1, 1, "tight");   /* no (1,0)/(0,1) in between */
	expect_ev(&ev[6], 0, 1, "tight");   /* the repeat changed nothing */
	expect_ev(&ev[7], 0, 0, "close");   /* HUPCL drops both */
	for (size_t i = 0; i < n; i++) {
		assert_true(ev[i].t >= t0 && ev[i].t <= t1);
		if (i)
			assert_true(ev[i].t >= ev[i - 1].t);
	}
}

static void test_termios_backend_under_the_shim(void **state)
{
	struct fixture *f = *state;
	struct transport *t = NULL;
	struct fw_err e = {0};
	struct ev ev[16];

	assert_int_equal(transport_open(f->p.name, 115200, &t, &e), FW_OK);
	assert_string_equal(transport_backend_name(t), "termios");
	/* with the shim the pty has modem lines for termios too */
	assert_int_equal(transport_caps(t),
		TRANSPORT_CAP_MODEM_LINES | TRANSPORT_CAP_TIGHT_LINES);
	assert_int_equal(transport_set_lines(t, 0, 0, &e), FW_OK);
	assert_int_equal(transport_set_lines_tight(t, 1, 0, &e), FW_OK);
	transport_close(t);
	assert_int_equal(read_events(f, ev, 16), 5);
	expect_ev(&ev[0], 1, 1, "open");
	expect_ev(&ev[1], 0, 1, "set");
	expect_ev(&ev[2], 0, 0, "set");
	expect_ev(&ev[3], 1, 0, "tight");
	expect_ev(&ev[4], 0, 0, "close");
}

static void test_sp_backend_port_is_locked(void **state)
{
	struct fixture *f = *state;
	struct transport *t = NULL, *t2 = NULL;
	struct fw_err e = {0};

	assert_int_equal(transport_open_backend(f->p.name, 115200,
		TRANSPORT_SP, &t, &e), FW_OK);
	assert_int_equal(transport_open_backend(f->p.name, 115200,
		TRANSPORT_SP, &t2, &e), FW_EBUSY);
	assert_null(t2);
	assert_non_null(strstr(e.msg, "in use by another program"));
	assert_non_null(strstr(e.msg, f->p.name));
	assert_int_equal(transport_open_backend(f->p.name, 115200,
		TRANSPORT_TERMIOS, &t2, &e), FW_EBUSY);
	transport_close(t);
	assert_int_equal(transport_open_backend(f->p.name, 115200,
		TRANSPORT_SP, &t2, &e), FW_OK);
	transport_close(t2);
}

/* Re-executes this program with the shim preloaded; returns only on
 * failure. */
static int reexec_with_shim(char **argv)
{
	char exe[PATH_MAX], shim[PATH_MAX + 32], *slash, *env;
	const char *explicit = getenv("FLASHWISE_SHIM");
	const char *asan = getenv("ASAN_OPTIONS");
	const char *pre = getenv("LD_PRELOAD");
	ssize_t n;
	size_t len;

	if (getenv("FLASHWISE_SHIM_REEXEC")) {
		fprintf(stderr, "the shim did not load after re-executing\n");
		return 1;
	}
	if (explicit && *explicit) {
		snprintf(shim, sizeof shim, "%s", explicit);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (n <= 0) {
			perror("/proc/self/exe");
			return 1;
		}
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		*slash = '\0';
		snprintf(shim, sizeof shim, "%s/%s", exe, SHIM_NAME);
	}
	if (access(shim, R_OK) != 0) {
		fprintf(stderr, "cannot find the test shim %s (%s): build it "
			"first, e.g. make <build>/tests/%s\n", shim,
			strerror(errno), SHIM_NAME);
		return 1;
	}
	len = strlen(shim) + (pre ? strlen(pre) + 1 : 0) + 1;
	env = malloc(len);
	if (!env)
		return 1;
	snprintf(env, len, "%s%s%s", shim, pre ? ":" : "", pre ? pre : "");
	setenv("LD_PRELOAD", env, 1);
	free(env);
	/* Under AddressSanitizer the shim comes before the ASan runtime in
	 * the search order; that is intended here. */
	len = (asan ? strlen(asan) + 1 : 0) + 32;
	env = malloc(len);
	if (!env)
		return 1;
	snprintf(env, len, "%s%sverify_asan_link_order=0", asan ? asan : "",
		asan ? ":" : "");
	setenv("ASAN_OPTIONS", env, 1);
	free(env);
	setenv("FLASHWISE_SHIM_REEXEC", "1", 1);
	execv("/proc/self/exe", argv);
	perror("execv");
	return 1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shim_is_loaded),
		cmocka_unit_test_setup_teardown(
			test_sp_backend_opens_pty_and_exchanges_bytes, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_sp_line_changes_reach_the_side_channel, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_termios_backend_under_the_shim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sp_backend_port_is_locked,
			setup, teardown),
	};

	(void)argc;
	if (!dlsym(RTLD_DEFAULT, "flashwise_pty_shim_present"))
		return reexec_with_shim(argv);
	unsetenv("FLASHWISE_SHIM_REEXEC");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
