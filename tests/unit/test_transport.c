/* The serial transport against real pseudo-terminals (posix_openpt): the
 * test holds the master side and plays the device. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "portlist.h"
#include "strbuf.h"
#include "transport.h"

#ifndef BOTHER
#define BOTHER 0010000   /* <asm/termbits.h>: "other" baud rate */
#endif

struct pty {
	int master;
	char name[64];
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

static void pty_close(struct pty *p)
{
	if (p->master >= 0)
		close(p->master);
	p->master = -1;
}

static void master_write(const struct pty *p, const void *buf, size_t n)
{
	const unsigned char *b = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(p->master, b + done, n - done);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { .fd = p->master, .events = POLLOUT };
			poll(&pf, 1, 100);
			continue;
		}
		assert_true(w > 0);
		done += (size_t)w;
	}
}

/* Reads exactly n bytes from the master within ms milliseconds. */
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

static unsigned elapsed_ms(uint64_t since)
{
	return (unsigned)((transport_now_ns() - since) / 1000000u);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the DIR's own descriptor */
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int setup(void **state)
{
	(void)state;
	unsetenv(TRANSPORT_ENV);
	return 0;
}

/* ---- data over a pty ----------------------------------------------- */

static void test_termios_roundtrip_at_several_bauds(void **state)
{
	/* the rate and how the master must see it: a B-constant, or BOTHER
	 * for a rate outside the table */
	static const struct { unsigned rate; tcflag_t code; } rates[] = {
		{ 9600, B9600 }, { 57600, B57600 }, { 74880, BOTHER },
		{ 115200, B115200 }, { 230400, B230400 }, { 250000, BOTHER },
		{ 921600, B921600 }, { 1500000, B1500000 },
	};
	struct pty p;
	unsigned char out[300], in[300];
	int fds = count_fds();

	(void)state;
	pty_open(&p);
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (unsigned char)(i * 7 + 3);
	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
		struct transport *t = NULL;
		struct fw_err e = {0};
		struct termios tio;
		size_t got = 0;

		assert_int_equal(transport_open(p.name, rates[r].rate, &t, &e),
			FW_OK);
		assert_string_equal(transport_backend_name(t), "termios");
		assert_int_equal(t->baud, rates[r].rate);
		/* The master sees the slave's settings: check them there, not
		 * through our own read-back. */
		assert_int_equal(tcgetattr(p.master, &tio), 0);
		assert_int_equal(tio.c_cflag & CBAUD, rates[r].code);
		/* Raw: no echo, no CR/LF translation. */
		assert_int_equal(tio.c_lflag & (ECHO | ICANON), 0);
		assert_int_equal(tio.c_oflag & OPOST, 0);

		assert_int_equal(transport_write(t, out, sizeof out,
			transport_deadline_ms(1000), &e), FW_OK);
		assert_int_equal(transport_drain(t, transport_deadline_ms(1000),
			&e), FW_OK);
		memset(in, 0, sizeof in);
		assert_int_equal(master_read(&p, in, sizeof in, 1000), sizeof in);
		assert_memory_equal(in, out, sizeof out);

		master_write(&p, out, sizeof out);
		memset(in, 0, sizeof in);
		assert_int_equal(transport_read(t, in, sizeof in, &got,
			transport_deadline_ms(1000), &e), FW_OK);
		assert_int_equal(got, sizeof in);
		assert_memory_equal(in, out, sizeof out);
		transport_close(t);
	}
	pty_close(&p);
	assert_int_equal(count_fds(), fds);
}

static void test_set_baud_on_open_port(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	struct termios tio;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	assert_int_equal(transport_set_baud(t, 74880, &e), FW_OK);
	assert_int_equal(t->baud, 74880);
	assert_int_equal(tcgetattr(p.master, &tio), 0);
	assert_int_equal(tio.c_cflag & CBAUD, BOTHER);
	assert_int_equal(transport_set_baud(t, 460800, &e), FW_OK);
	assert_int_equal(tcgetattr(p.master, &tio), 0);
	assert_int_equal(cfgetospeed(&tio), B460800);
	assert_int_equal(transport_set_baud(t, 0, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "baud rate 0"));
	assert_int_equal(transport_set_baud(t, TRANSPORT_BAUD_MAX + 1, &e),
		FW_EINVAL);
	assert_int_equal(t->baud, 460800);   /* unchanged by refusals */
	transport_close(t);
	pty_close(&p);
}

static void test_read_deadline_returns_what_arrived(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[10] = {0};
	size_t got = 99;
	uint64_t t0;
	unsigned ms;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	master_write(&p, "abc", 3);
	t0 = transport_now_ns();
	assert_int_equal(transport_read(t, buf, sizeof buf, &got,
		transport_deadline_ms(200), &e), FW_ETIMEOUT);
	ms = elapsed_ms(t0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_true(ms >= 199);
	assert_true(ms < 1500);
	assert_non_null(strstr(e.msg, "3 of 10 bytes"));
	assert_non_null(strstr(e.msg, p.name));

	/* Nothing at all: a clean timeout, no bytes. */
	t0 = transport_now_ns();
	assert_int_equal(transport_read(t, buf, 4, &got,
		transport_deadline_ms(100), &e), FW_ETIMEOUT);
	assert_int_equal(got, 0);
	assert_true(elapsed_ms(t0) >= 99);

	/* A deadline already past still picks up what is waiting. */
	master_write(&p, "xy", 2);
	sleep_ms(100);   /* let the pty deliver it */
	assert_int_equal(transport_read(t, buf, 2, &got, transport_now_ns(),
		&e), FW_OK);
	assert_int_equal(got, 2);
	assert_memory_equal(buf, "xy", 2);
	transport_close(t);
	pty_close(&p);
}

static void test_read_some_returns_early(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[64];
	size_t got = 0;
	uint64_t t0;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	master_write(&p, "hello", 5);
	t0 = transport_now_ns();
	assert_int_equal(transport_read_some(t, buf, sizeof buf, &got,
		transport_deadline_ms(5000), &e), FW_OK);
	assert_true(elapsed_ms(t0) < 1000);
	assert_true(got >= 1 && got <= 5);
	assert_memory_equal(buf, "hello", got);

	/* drain the rest, then time out on silence */
	if (got < 5)
		assert_int_equal(transport_read(t, buf, 5 - got, &got,
			transport_deadline_ms(500), &e), FW_OK);
	t0 = transport_now_ns();
	assert_int_equal(transport_read_some(t, buf, sizeof buf, &got,
		transport_deadline_ms(100), &e), FW_ETIMEOUT);
	assert_int_equal(got, 0);
	assert_true(elapsed_ms(t0) >= 99);
	assert_non_null(strstr(e.msg, "nothing arrived"));
	transport_close(t);
	pty_close(&p);
}

static void test_read_waits_for_late_bytes(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[4];
	size_t got = 0;
	uint64_t t0;
	pid_t child;
	int status;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		sleep_ms(150);
		if (write(p.master, "LA", 2) != 2)
			_exit(1);
		sleep_ms(50);
		_exit(write(p.master, "TE", 2) == 2 ? 0 : 1);
	}
	t0 = transport_now_ns();
	assert_int_equal(transport_read(t, buf, 4, &got,
		transport_deadline_ms(3000), &e), FW_OK);
	assert_true(elapsed_ms(t0) >= 100);   /* it did wait */
	assert_true(elapsed_ms(t0) < 2500);
	assert_memory_equal(buf, "LATE", 4);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	transport_close(t);
	pty_close(&p);
}

static void test_write_drain_and_stuck_write(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	static unsigned char big[256 * 1024];
	unsigned char in[1000];
	uint64_t t0;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	memset(big, 0x5a, sizeof big);
	assert_int_equal(transport_write(t, big, 1000,
		transport_deadline_ms(1000), &e), FW_OK);
	assert_int_equal(transport_drain(t, transport_deadline_ms(1000), &e),
		FW_OK);
	assert_int_equal(master_read(&p, in, sizeof in, 1000), sizeof in);
	assert_memory_equal(in, big, sizeof in);
	assert_int_equal(transport_write(t, big, 0, transport_now_ns(), &e),
		FW_OK);

	/* Nobody reads the master: the pty buffer fills and the deadline
	 * ends the write with a count, not a hang. */
	t0 = transport_now_ns();
	assert_int_equal(transport_write(t, big, sizeof big,
		transport_deadline_ms(200), &e), FW_ETIMEOUT);
	assert_true(elapsed_ms(t0) >= 199);
	assert_true(elapsed_ms(t0) < 2000);
	assert_non_null(strstr(e.msg, "of 262144 bytes"));
	assert_non_null(strstr(e.msg, p.name));
	transport_close(t);
	pty_close(&p);
}

static void test_flush_discards_input(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[32];
	size_t got = 0;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	master_write(&p, "stale banner", 12);
	sleep_ms(100);   /* let the pty deliver it */
	assert_int_equal(transport_flush(t, TRANSPORT_FLUSH_INPUT, &e), FW_OK);
	assert_int_equal(transport_read_some(t, buf, sizeof buf, &got,
		transport_deadline_ms(100), &e), FW_ETIMEOUT);
	assert_int_equal(got, 0);
	/* After a flush new bytes still come through. */
	master_write(&p, "ok", 2);
	assert_int_equal(transport_read(t, buf, 2, &got,
		transport_deadline_ms(1000), &e), FW_OK);
	assert_memory_equal(buf, "ok", 2);
	assert_int_equal(transport_flush(t, TRANSPORT_FLUSH_BOTH, &e), FW_OK);
	assert_int_equal(transport_flush(t, 0, &e), FW_EINVAL);
	assert_int_equal(transport_flush(t, 8, &e), FW_EINVAL);
	transport_close(t);
	pty_close(&p);
}

static void test_hangup_is_a_clear_error(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[8];
	size_t got = 0;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	pty_close(&p);   /* the "device" disappears */
	assert_int_equal(transport_read_some(t, buf, sizeof buf, &got,
		transport_deadline_ms(1000), &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "went away"));
	assert_int_equal(transport_write(t, "x", 1, transport_deadline_ms(500),
		&e), FW_EPORT);
	assert_non_null(strstr(e.msg, "went away"));
	transport_close(t);
}

/* ---- modem lines --------------------------------------------------- */

static void test_set_lines_on_pty_is_unsupported(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	assert_int_equal(transport_caps(t) & TRANSPORT_CAP_MODEM_LINES, 0);
	assert_int_equal(transport_set_lines(t, 1, 0, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, p.name));
	assert_non_null(strstr(e.msg, "DTR/RTS"));
	assert_non_null(strstr(e.msg, "bootloader by hand"));
	fw_err_clear(&e);
	assert_int_equal(transport_set_lines_tight(t, 0, 0, &e),
		FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "DTR/RTS"));
	assert_int_equal(transport_set_lines(t, 2, 0, &e), FW_EINVAL);
	/* The backend itself says the same when asked directly (the ioctl
	 * fails with ENOTTY), so the caps probe is not the only guard. */
	fw_err_clear(&e);
	assert_int_equal(t->ops->set_lines(t, 1, TRANSPORT_LINE_KEEP, &e),
		FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "DTR/RTS"));
	assert_int_equal(t->ops->set_lines_tight(t, 1, 1, &e),
		FW_EUNSUPPORTED);
	/* and the port still works */
	master_write(&p, "k", 1);
	{
		unsigned char c;
		size_t got = 0;
		assert_int_equal(transport_read(t, &c, 1, &got,
			transport_deadline_ms(1000), &e), FW_OK);
		assert_int_equal(c, 'k');
	}
	transport_close(t);
	pty_close(&p);
}

/* ---- opening errors ------------------------------------------------ */

static void test_open_twice_is_busy(void **state)
{
	struct pty p;
	struct transport *t = NULL, *t2 = NULL;
	struct fw_err e = {0};
	char pid[32];
	int fds;

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	fds = count_fds();
	assert_int_equal(transport_open(p.name, 115200, &t2, &e), FW_EBUSY);
	assert_null(t2);
	assert_int_equal(e.code, FW_EBUSY);
	assert_non_null(strstr(e.msg, p.name));
	assert_non_null(strstr(e.msg, "in use by another program"));
	assert_non_null(strstr(e.msg, "screen/minicom"));
	assert_non_null(strstr(e.msg, "ModemManager"));
	snprintf(pid, sizeof pid, "pid %d, this process", (int)getpid());
	assert_non_null(strstr(e.msg, pid));
	assert_int_equal(count_fds(), fds);   /* the failed open left nothing */
	/* forcing the other backend does not get around the lock either */
	assert_int_equal(transport_open_backend(p.name, 115200,
		TRANSPORT_TERMIOS, &t2, &e), FW_EBUSY);
	transport_close(t);
	/* released on close */
	assert_int_equal(transport_open(p.name, 115200, &t2, &e), FW_OK);
	transport_close(t2);
	pty_close(&p);
}

static void test_busy_names_the_other_process(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	int ready[2], done[2], status;
	char c, pid[32];
	pid_t child;

	(void)state;
	pty_open(&p);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* a "serial console" that locks the port like we do */
		int fd = open(p.name, O_RDWR | O_NOCTTY);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		close(done[1]);
		(void)read(done[0], &c, 1);   /* until the parent is done */
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_EBUSY);
	snprintf(pid, sizeof pid, "(pid %d)", (int)child);
	assert_non_null(strstr(e.msg, "held by "));
	assert_non_null(strstr(e.msg, pid));
	assert_null(strstr(e.msg, "this process"));
	close(done[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ready[0]);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	transport_close(t);
	pty_close(&p);
}

static void test_unlocked_holder_is_found(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	int ready[2], done[2], status, fds;
	char c, pid[32];
	pid_t child;

	(void)state;
	pty_open(&p);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* like `cat /dev/ttyUSB0`: open, no lock at all */
		int fd = open(p.name, O_RDWR | O_NOCTTY);
		if (fd < 0 || write(ready[1], "r", 1) != 1)
			_exit(1);
		close(done[1]);
		(void)read(done[0], &c, 1);
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	fds = count_fds();
	assert_int_equal(transport_check_other_holders(p.name, &e), FW_EBUSY);
	snprintf(pid, sizeof pid, "(pid %d)", (int)child);
	assert_non_null(strstr(e.msg, pid));
	assert_non_null(strstr(e.msg, "in use by another program"));
	assert_int_equal(count_fds(), fds);
	/* transport_open applies it to real ports only: on a pty the other
	 * holder may be the simulator keeping its slave open */
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	transport_close(t);
	close(done[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	close(ready[0]);
	assert_int_equal(transport_check_other_holders(p.name, &e), FW_OK);
	pty_close(&p);
}

static void test_missing_port(void **state)
{
	struct transport *t = NULL;
	struct fw_err e = {0};

	(void)state;
	assert_int_equal(transport_open("/dev/ttyFWnope0", 115200, &t, &e),
		FW_EPORT);
	assert_null(t);
	assert_non_null(strstr(e.msg, "/dev/ttyFWnope0"));
	assert_non_null(strstr(e.msg, "does not exist"));
	assert_true(strstr(e.msg, "serial ports on this machine: /dev/") ||
		strstr(e.msg, "no serial ports were found"));
	/* forced backends say the same */
	assert_int_equal(transport_open_backend("/dev/ttyFWnope0", 115200,
		TRANSPORT_TERMIOS, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "does not exist"));
	assert_int_equal(transport_open_backend("/dev/ttyFWnope0", 115200,
		TRANSPORT_SP, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "does not exist"));
}

static void test_not_a_serial_port(void **state)
{
	char dir[] = "/tmp/fw-transport-XXXXXX", file[64];
	struct transport *t = NULL;
	struct fw_err e = {0};
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof file, "%s/firmware.bin", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("not a port", f);
	fclose(f);

	assert_int_equal(transport_open(file, 115200, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, file));
	assert_non_null(strstr(e.msg, "not a serial port"));
	assert_non_null(strstr(e.msg, "regular file"));
	assert_int_equal(transport_open(dir, 115200, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "folder"));
	/* a character device that is no tty */
	assert_int_equal(transport_open("/dev/null", 115200, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "/dev/null is not a serial port"));
	/* forcing termios onto a file still fails cleanly */
	assert_int_equal(transport_open_backend(file, 115200, TRANSPORT_TERMIOS,
		&t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "not a serial port"));
	assert_null(t);

	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_permission_denied_names_dialout(void **state)
{
	struct pty p;
	struct stat st;
	pid_t child;
	int status;

	(void)state;
	pty_open(&p);
	assert_int_equal(stat(p.name, &st), 0);
	if (geteuid() != 0)
		assert_int_equal(chmod(p.name, 0), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct transport *t = NULL;
		struct fw_err e = {0};
		int rc;

		/* root opens anything: become "nobody" (not in group tty) */
		if (geteuid() == 0 && (setgroups(0, NULL) != 0 ||
		    setgid(65534) != 0 || setuid(65534) != 0))
			_exit(77);   /* cannot drop root here: skip */
		rc = transport_open(p.name, 115200, &t, &e);
		if (rc != FW_EPORT)
			_exit(11);
		if (!strstr(e.msg, "no permission") || !strstr(e.msg, p.name) ||
		    !strstr(e.msg, "dialout") ||
		    !strstr(e.msg, "sudo usermod -aG dialout $USER"))
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	if (geteuid() != 0)
		chmod(p.name, st.st_mode & 07777);
	pty_close(&p);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_sp_backend_on_pty_fails_cleanly(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	int fds;

	(void)state;
	pty_open(&p);
	fds = count_fds();
	assert_int_equal(transport_open_backend(p.name, 115200, TRANSPORT_SP,
		&t, &e), FW_EPORT);
	assert_null(t);
	assert_non_null(strstr(e.msg, "libserialport cannot open"));
	assert_non_null(strstr(e.msg, p.name));
	assert_non_null(strstr(e.msg, "pseudo-terminal"));
	assert_non_null(strstr(e.msg, "termios"));
	assert_int_equal(count_fds(), fds);

	/* the same through the environment override */
	setenv(TRANSPORT_ENV, "sp", 1);
	fw_err_clear(&e);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "libserialport"));
	unsetenv(TRANSPORT_ENV);
	assert_int_equal(count_fds(), fds);

	/* and nothing was left locked */
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	assert_string_equal(transport_backend_name(t), "termios");
	transport_close(t);
	pty_close(&p);
}

static void test_env_override(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};

	(void)state;
	pty_open(&p);
	setenv(TRANSPORT_ENV, "bogus", 1);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "FLASHWISE_TRANSPORT=bogus"));
	assert_non_null(strstr(e.msg, "sp, termios or auto"));
	setenv(TRANSPORT_ENV, "termios", 1);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	assert_string_equal(transport_backend_name(t), "termios");
	transport_close(t);
	/* an explicit backend wins over the environment */
	setenv(TRANSPORT_ENV, "sp", 1);
	assert_int_equal(transport_open_backend(p.name, 115200,
		TRANSPORT_TERMIOS, &t, &e), FW_OK);
	transport_close(t);
	unsetenv(TRANSPORT_ENV);
	pty_close(&p);
}

static void test_bad_arguments(void **state)
{
	struct transport *t = (struct transport *)&t;
	struct fw_err e = {0};
	unsigned char buf[4];
	size_t got = 7;
	char longname[TRANSPORT_PATH_MAX + 8];

	(void)state;
	assert_int_equal(transport_open(NULL, 115200, &t, &e), FW_EINVAL);
	assert_null(t);
	assert_int_equal(transport_open("", 115200, &t, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "no serial port given"));
	assert_int_equal(transport_open("/dev/ttyUSB0", 0, &t, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "baud rate 0"));
	assert_int_equal(transport_open("/dev/ttyUSB0", 115200, NULL, &e),
		FW_EINVAL);
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(transport_open(longname, 115200, &t, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "too long"));
	assert_int_equal(transport_read(NULL, buf, 4, &got, 0, &e), FW_EINVAL);
	assert_int_equal(got, 0);
	assert_int_equal(transport_write(NULL, buf, 4, 0, &e), FW_EINVAL);
	assert_int_equal(transport_set_lines(NULL, 1, 1, NULL), FW_EINVAL);
	assert_int_equal(transport_caps(NULL), 0);
	assert_string_equal(transport_backend_name(NULL), "unknown");
	transport_close(NULL);
}

/* ---- the wrappers over a scripted fake ----------------------------- */

struct fake {
	const char *script;   /* bytes to hand out, two per read */
	size_t pos;
	unsigned reply_baud;  /* what set_baud claims the port chose */
	int closed;
};

static int fake_read(struct transport *t, void *buf, size_t n, size_t *got,
	uint64_t deadline_ns, struct fw_err *e)
{
	struct fake *f = t->priv;
	size_t left = strlen(f->script) - f->pos;
	size_t k = n < 2 ? n : 2;

	(void)deadline_ns;
	(void)e;
	if (k > left)
		k = left;
	memcpy(buf, f->script + f->pos, k);
	f->pos += k;
	*got = k;
	return FW_OK;
}

static int fake_set_baud(struct transport *t, unsigned baud,
	unsigned *actual, struct fw_err *e)
{
	struct fake *f = t->priv;
	(void)e;
	*actual = f->reply_baud ? f->reply_baud : baud;
	return FW_OK;
}

static void fake_close(struct transport *t)
{
	struct fake *f = t->priv;
	f->closed++;
}

static const struct transport_ops fake_ops = {
	.name = "fake",
	.close = fake_close,
	.read = fake_read,
	.set_baud = fake_set_baud,
};

static void test_wrapped_fake(void **state)
{
	struct fake f = { .script = "SYNCED" };
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[16] = {0};
	size_t got = 0;

	(void)state;
	assert_int_equal(transport_wrap(&fake_ops, &f, "fake0", 115200, &t, &e),
		FW_OK);
	assert_string_equal(transport_backend_name(t), "fake");
	/* an exact read gathers several short backend reads */
	assert_int_equal(transport_read(t, buf, 5, &got, 0, &e), FW_OK);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "SYNCE", 5);
	/* the script runs dry: a timeout that keeps the partial byte */
	assert_int_equal(transport_read(t, buf, 4, &got, 0, &e), FW_ETIMEOUT);
	assert_int_equal(got, 1);
	assert_int_equal(buf[0], 'D');
	assert_non_null(strstr(e.msg, "1 of 4 bytes"));
	/* operations the fake lacks */
	assert_int_equal(transport_write(t, "x", 1, 0, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "fake0"));
	assert_int_equal(transport_drain(t, 0, &e), FW_EUNSUPPORTED);
	assert_int_equal(transport_set_lines(t, 1, 0, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "DTR/RTS"));
	/* baud read-back: a close rate is taken, a far one refused */
	f.reply_baud = 115000;
	assert_int_equal(transport_set_baud(t, 115200, &e), FW_OK);
	assert_int_equal(t->baud, 115000);
	f.reply_baud = 100000;
	assert_int_equal(transport_set_baud(t, 115200, &e), FW_EPORT);
	assert_non_null(strstr(e.msg, "cannot run at 115200 baud"));
	assert_non_null(strstr(e.msg, "100000"));
	assert_int_equal(t->baud, 115000);
	transport_close(t);
	assert_int_equal(f.closed, 1);
	assert_int_equal(transport_wrap(NULL, &f, "x", 1, &t, &e), FW_EINVAL);
}

/* The stop request: armed, reads stop between backend calls with
 * FW_ECANCELLED (a driver unwinds as from a lost device); disarmed, the
 * same transport reads on. */
static bool stop_after(void *ctx)
{
	int *calls = ctx;

	return ++*calls > 2;
}

static void test_cancel_stops_reads(void **state)
{
	struct fake f = { .script = "ABCDEFGHIJ" };
	struct transport *t = NULL;
	struct fw_err e = {0};
	unsigned char buf[16] = {0};
	size_t got = 0;
	int calls = 0;

	(void)state;
	assert_int_equal(transport_wrap(&fake_ops, &f, "fake0", 115200, &t, &e), FW_OK);
	transport_set_cancel(t, stop_after, &calls);
	/* two backend reads (2 bytes each) pass, the third check stops it */
	assert_int_equal(transport_read(t, buf, 8, &got, 0, &e), FW_ECANCELLED);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "ABCD", 4);
	assert_non_null(strstr(e.msg, "fake0"));
	assert_int_equal(transport_read_some(t, buf, 2, &got, 0, &e), FW_ECANCELLED);
	transport_set_cancel(t, NULL, NULL);
	assert_int_equal(transport_read(t, buf, 4, &got, 0, &e), FW_OK);
	assert_memory_equal(buf, "EFGH", 4);
	transport_close(t);
}

/* ---- helpers ------------------------------------------------------- */

static void test_clock_and_deadlines(void **state)
{
	uint64_t a = transport_now_ns(), d = transport_deadline_ms(100);
	uint64_t b = transport_now_ns();

	(void)state;
	assert_true(b >= a);
	assert_true(d >= a + 100000000u);
	assert_true(d <= b + 100000000u);
}

static void test_find_holder_and_is_pty(void **state)
{
	struct pty p;
	struct transport *t = NULL;
	struct fw_err e = {0};
	char buf[128], pid[32];

	(void)state;
	pty_open(&p);
	assert_int_equal(transport_is_pty(p.name), 1);
	assert_int_equal(transport_is_pty("/dev/null"), 0);
	assert_int_equal(transport_is_pty("/nonexistent"), 0);
	assert_int_equal(transport_find_holder(p.name, 0, buf, sizeof buf), -1);
	assert_int_equal(transport_open(p.name, 115200, &t, &e), FW_OK);
	assert_int_equal(transport_find_holder(p.name, 0, buf, sizeof buf), 0);
	snprintf(pid, sizeof pid, "(pid %d, this process)", (int)getpid());
	assert_non_null(strstr(buf, pid));
	/* only this process holds it */
	assert_int_equal(transport_find_holder(p.name, 1, buf, sizeof buf), -1);
	assert_int_equal(transport_find_holder("/nonexistent", 0, buf,
		sizeof buf), -1);
	transport_close(t);
	pty_close(&p);
}

/* ---- port listing -------------------------------------------------- */

static void test_portlist_format(void **state)
{
	struct portlist l = PORTLIST_INIT;
	struct strbuf b = STRBUF_INIT;
	struct portlist_entry usb = {
		.path = "/dev/ttyUSB10", .kind = PORTLIST_USB, .has_usb_ids = true,
		.vid = 0x10c4, .pid = 0xea60, .manufacturer = "Silicon Labs",
		.product = "CP2102 USB to UART\x1b[2J", .serial = "0001",
	};
	struct portlist_entry ch = {
		.path = "/dev/ttyUSB2", .kind = PORTLIST_USB, .has_usb_ids = true,
		.vid = 0x1a86, .pid = 0x7523, .product = "USB Serial",
	};
	struct portlist_entry native = {
		.path = "/dev/ttyS0", .description = "ttyS0",
	};
	const char *s;

	(void)state;
	portlist_format(&l, &b);
	assert_string_equal(strbuf_str(&b), "no serial ports found\n");
	strbuf_free(&b);

	assert_int_equal(portlist_add(&l, &usb, NULL), FW_OK);
	assert_int_equal(portlist_add(&l, &ch, NULL), FW_OK);
	assert_int_equal(portlist_add(&l, &native, NULL), FW_OK);
	assert_int_equal(l.n, 3);
	portlist_format(&l, &b);
	s = strbuf_str(&b);
	assert_non_null(strstr(s, "/dev/ttyUSB10  10c4:ea60  Silicon Labs "
		"CP2102 USB to UART?[2J (CP210x)  serial 0001\n"));
	assert_non_null(strstr(s, "/dev/ttyUSB2  1a86:7523  USB Serial (CH340)\n"));
	assert_non_null(strstr(s, "/dev/ttyS0  -          on-board serial\n"));
	assert_null(strchr(s, '\x1b'));   /* device strings cannot drive the terminal */
	strbuf_free(&b);

	portlist_format_entry(&l.v[0], &b);
	assert_string_equal(strbuf_str(&b),
		"/dev/ttyUSB10 (10c4:ea60 CP210x, serial 0001)");
	strbuf_free(&b);
	portlist_format_entry(&l.v[2], &b);
	assert_string_equal(strbuf_str(&b), "/dev/ttyS0");
	strbuf_free(&b);

	assert_string_equal(portlist_chip_name(0x303a, 0x1001),
		"Espressif USB-JTAG-Serial");
	assert_null(portlist_chip_name(0x1234, 0x5678));
	assert_int_equal(portlist_add(&l, NULL, NULL), FW_EINVAL);
	portlist_free(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

static void test_portlist_scan(void **state)
{
	struct portlist l = PORTLIST_INIT;
	struct fw_err e = {0};

	(void)state;
	assert_int_equal(portlist_scan(&l, &e), FW_OK);
	for (size_t i = 0; i < l.n; i++) {
		assert_non_null(l.v[i].path);
		assert_int_equal(strncmp(l.v[i].path, "/dev/", 5), 0);
	}
	/* a list that is not empty is refused rather than appended to */
	if (l.n == 0) {
		struct portlist_entry x = { .path = "/dev/ttyX" };
		assert_int_equal(portlist_add(&l, &x, NULL), FW_OK);
	}
	assert_int_equal(portlist_scan(&l, &e), FW_EINVAL);
	portlist_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_termios_roundtrip_at_several_bauds),
		cmocka_unit_test(test_cancel_stops_reads),
		cmocka_unit_test(test_set_baud_on_open_port),
		cmocka_unit_test(test_read_deadline_returns_what_arrived),
		cmocka_unit_test(test_read_some_returns_early),
		cmocka_unit_test(test_read_waits_for_late_bytes),
		cmocka_unit_test(test_write_drain_and_stuck_write),
		cmocka_unit_test(test_flush_discards_input),
		cmocka_unit_test(test_hangup_is_a_clear_error),
		cmocka_unit_test(test_set_lines_on_pty_is_unsupported),
		cmocka_unit_test(test_open_twice_is_busy),
		cmocka_unit_test(test_busy_names_the_other_process),
		cmocka_unit_test(test_unlocked_holder_is_found),
		cmocka_unit_test(test_missing_port),
		cmocka_unit_test(test_not_a_serial_port),
		cmocka_unit_test(test_permission_denied_names_dialout),
		cmocka_unit_test(test_sp_backend_on_pty_fails_cleanly),
		cmocka_unit_test(test_env_override),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_wrapped_fake),
		cmocka_unit_test(test_clock_and_deadlines),
		cmocka_unit_test(test_find_holder_and_is_pty),
		cmocka_unit_test(test_portlist_format),
		cmocka_unit_test(test_portlist_scan),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
