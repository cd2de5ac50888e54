/* The transport wrappers (argument checks, exact-length reads, baud
 * read-back) and what both backends share: choosing a backend, locking,
 * waiting with a deadline, and turning errno into advice. */
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "portlist.h"
#include "strbuf.h"

/* Linux device numbers of pseudo-terminal slaves: UNIX98 (/dev/pts/N,
 * majors 136..143) and the legacy BSD ones (major 3). */
#define PTY_SLAVE_MAJOR_FIRST 136u
#define PTY_SLAVE_MAJOR_LAST 143u
#define PTY_BSD_SLAVE_MAJOR 3u

/* A rate the adapter rounds by more than this is refused: a UART framing
 * margin is about 3-5 %, and a silent wrong rate looks like a dead chip. */
#define BAUD_TOLERANCE_PERCENT 3u

uint64_t transport_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t transport_deadline_ms(unsigned ms)
{
	return transport_now_ns() + (uint64_t)ms * 1000000u;
}

static int is_pty_rdev(dev_t rdev)
{
	unsigned maj = major(rdev);
	return (maj >= PTY_SLAVE_MAJOR_FIRST && maj <= PTY_SLAVE_MAJOR_LAST) ||
		maj == PTY_BSD_SLAVE_MAJOR;
}

int transport_is_pty(const char *path)
{
	struct stat st;

	if (!path || stat(path, &st) != 0 || !S_ISCHR(st.st_mode))
		return 0;
	return is_pty_rdev(st.st_rdev);
}

/* ---- who holds the port -------------------------------------------- */

static int read_comm(int pid, char *buf, size_t size)
{
	char p[64];
	FILE *f;
	size_t n;

	snprintf(p, sizeof p, "/proc/%d/comm", pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Does process `pid` have a descriptor on `real` (a resolved path)?
 * The link text is compared rather than stat()ed, so a scan never touches
 * another process's files (a hung network mount, a FIFO). */
static int pid_holds(int pid, const char *real)
{
	char p[64], link[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int found = 0;

	snprintf(p, sizeof p, "/proc/%d/fd", pid);
	d = opendir(p);
	if (!d)
		return 0;   /* not ours to inspect, or gone: best effort */
	while (!found && (de = readdir(d)) != NULL) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		found = strcmp(link, real) == 0;
	}
	closedir(d);
	return found;
}

int transport_find_holder(const char *path, int others_only, char *buf,
	size_t size)
{
	char real[PATH_MAX], comm[64];
	DIR *proc;
	struct dirent *de;
	int self = (int)getpid(), self_holds = 0, others = 0;
	size_t len = 0;

	if (!path || !buf || size == 0)
		return -1;
	buf[0] = '\0';
	if (!realpath(path, real))
		return -1;
	proc = opendir("/proc");
	if (!proc)
		return -1;
	/* Every other holder is named: on a pty the simulator holds the
	 * other side on purpose, and naming only the first process found
	 * would blame it for the real culprit. */
	while ((de = readdir(proc)) != NULL && len + 1 < size) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int n;

		if (*end || pid <= 0 || pid > INT_MAX)
			continue;
		if (!pid_holds((int)pid, real))
			continue;
		/* This process shows up too (the descriptor it just opened);
		 * other holders are the better answer. */
		if ((int)pid == self) {
			self_holds = 1;
			continue;
		}
		if (read_comm((int)pid, comm, sizeof comm) != 0)
			snprintf(comm, sizeof comm, "a process");
		n = snprintf(buf + len, size - len, "%s%s (pid %ld)", others ? ", " : "", comm,
			     pid);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
		others++;
	}
	closedir(proc);
	if (others)
		return 0;
	if (others_only || !self_holds)
		return -1;
	if (read_comm(self, comm, sizeof comm) != 0)
		snprintf(comm, sizeof comm, "a process");
	snprintf(buf, size, "%s (pid %d, this process)", comm, self);
	return 0;
}

/* ---- errno to advice ----------------------------------------------- */

static int busy_message(struct fw_err *e, const char *path,
	const char *holder)
{
	if (holder)
		return fw_err_set(e, FW_EBUSY,
			"port %s is in use by another program (a serial console "
			"such as screen/minicom, a running flashwise, "
			"ModemManager?): held by %s; close that program and try "
			"again", path, holder);
	return fw_err_set(e, FW_EBUSY,
		"port %s is in use by another program (a serial console such "
		"as screen/minicom, a running flashwise, ModemManager?); close "
		"it and try again", path);
}

static int busy_error(struct fw_err *e, const char *path)
{
	char holder[512];
	int found = transport_find_holder(path, 0, holder, sizeof holder) == 0;

	return busy_message(e, path, found ? holder : NULL);
}

int transport_check_other_holders(const char *path, struct fw_err *e)
{
	char holder[512];

	/* Programs that take no lock (cat, a terminal without exclusive
	 * mode, brltty grabbing a CH340) would still read our replies away. */
	if (transport_find_holder(path, 1, holder, sizeof holder) == 0)
		return busy_message(e, path, holder);
	return FW_OK;
}

static int missing_error(struct fw_err *e, const char *path)
{
	struct portlist l = PORTLIST_INIT;
	struct strbuf b = STRBUF_INIT;
	int rc;

	if (portlist_scan(&l, NULL) != FW_OK)
		return fw_err_set(e, FW_EPORT, "port %s does not exist", path);
	if (l.n == 0) {
		rc = fw_err_set(e, FW_EPORT,
			"port %s does not exist and no serial ports were found: "
			"plug the board in (with a data cable: some USB cables "
			"only carry power) and try again", path);
	} else {
		for (size_t i = 0; i < l.n; i++) {
			if (i)
				strbuf_adds(&b, ", ");
			portlist_format_entry(&l.v[i], &b);
		}
		rc = fw_err_set(e, FW_EPORT,
			"port %s does not exist; serial ports on this machine: %s",
			path, strbuf_failed(&b) ? "(out of memory)" :
			strbuf_str(&b));
	}
	strbuf_free(&b);
	portlist_free(&l);
	return rc;
}

static int permission_error(struct fw_err *e, const char *path)
{
	struct stat st;
	struct group gr, *res = NULL;
	char grbuf[1024];
	char note[128] = "";

	if (stat(path, &st) == 0 && st.st_gid != 0 &&
	    getgrgid_r(st.st_gid, &gr, grbuf, sizeof grbuf, &res) == 0 &&
	    res && strcmp(res->gr_name, "dialout") != 0)
		snprintf(note, sizeof note, " (this port belongs to group %s)",
			res->gr_name);
	return fw_err_set(e, FW_EPORT,
		"no permission to open port %s%s: add yourself to the dialout "
		"group: sudo usermod -aG dialout $USER, then log in again",
		path, note);
}

int transport_open_error(struct fw_err *e, const char *path, int err)
{
	switch (err) {
	case ENOENT:
		return missing_error(e, path);
	case EACCES:
	case EPERM:
		return permission_error(e, path);
	case EBUSY:
	case EWOULDBLOCK:
		return busy_error(e, path);
	case ENOTTY:
	case EISDIR:
	case EINVAL:
		return fw_err_set(e, FW_EPORT,
			"%s is not a serial port: give the board's port, for "
			"example /dev/ttyUSB0", path);
	case ENXIO:
	case ENODEV:
		return fw_err_set(e, FW_EPORT,
			"port %s exists but no device answers behind it "
			"(unplugged while opening, or an on-board port without "
			"hardware?)", path);
	default:
		return fw_err_set(e, FW_EPORT, "cannot open port %s: %s", path,
			strerror(err));
	}
}

int transport_no_lines_error(struct fw_err *e, const char *path)
{
	return fw_err_set(e, FW_EUNSUPPORTED,
		"port %s has no DTR/RTS lines (a pseudo-terminal, or an adapter "
		"without them), so the board cannot be reset from here: put it "
		"into its bootloader by hand", path);
}

/* ---- locking and waiting ------------------------------------------- */

int transport_lock_fd(int fd, const char *path, struct fw_err *e)
{
	/* flock is what makes two flashwise runs conflict even as root, for
	 * whom TIOCEXCL is no barrier. */
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return busy_error(e, path);
		return fw_err_set(e, FW_EPORT, "cannot lock port %s: %s", path,
			strerror(errno));
	}
	return FW_OK;
}

void transport_set_exclusive(int fd, int on)
{
	/* Best effort: a tty that refuses it is still protected by flock. */
	(void)ioctl(fd, on ? TIOCEXCL : TIOCNXCL);
}

int transport_wait_fd(int fd, short events, uint64_t deadline_ns,
	short *revents)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = transport_now_ns();
		uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
		/* Round up so a wait never ends just before its deadline. */
		uint64_t ms = (left + 999999u) / 1000000u;
		int r = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r > 0) {
			if (revents)
				*revents = p.revents;
			return 1;
		}
		if (transport_now_ns() >= deadline_ns)
			return 0;
	}
}

int transport_drain_fd(int fd, const char *path, uint64_t deadline_ns,
	struct fw_err *e)
{
	int queued = 0;

	/* tcdrain alone cannot be bounded; watch the queue empty first so a
	 * stalled adapter becomes a timeout instead of a hang. */
	while (ioctl(fd, TIOCOUTQ, &queued) == 0 && queued > 0) {
		struct timespec ts = { 0, 1000000 };   /* 1 ms */

		if (transport_now_ns() >= deadline_ns)
			return fw_err_set(e, FW_ETIMEOUT,
				"port %s did not send its last %d bytes in time "
				"(flow control stuck, or the adapter stopped?)",
				path, queued);
		nanosleep(&ts, NULL);
	}
	while (tcdrain(fd) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EIO || errno == ENXIO || errno == ENODEV)
			return fw_err_set(e, FW_EPORT,
				"port %s went away (unplugged?)", path);
		return fw_err_set(e, FW_EPORT, "cannot drain port %s: %s",
			path, strerror(errno));
	}
	return FW_OK;
}

/* ---- choosing and opening a backend -------------------------------- */

static int backend_from_env(enum transport_backend *b, struct fw_err *e)
{
	const char *v = getenv(TRANSPORT_ENV);

	if (!v || !*v || strcmp(v, "auto") == 0)
		*b = TRANSPORT_AUTO;
	else if (strcmp(v, "sp") == 0 || strcmp(v, "libserialport") == 0)
		*b = TRANSPORT_SP;
	else if (strcmp(v, "termios") == 0)
		*b = TRANSPORT_TERMIOS;
	else
		return fw_err_set(e, FW_EINVAL,
			"%s=%s is not understood: use sp, termios or auto (or "
			"unset it)", TRANSPORT_ENV, v);
	return FW_OK;
}

/* Is `path` a tty that /sys/class/tty lists (the check libserialport's
 * sp_get_port_by_name makes)? Symlinks such as /dev/serial/by-id/... are
 * resolved first. */
static int is_kernel_tty(const char *path)
{
	char real[PATH_MAX], sys[PATH_MAX + 32];

	if (!realpath(path, real) || strncmp(real, "/dev/", 5) != 0)
		return 0;
	snprintf(sys, sizeof sys, "/sys/class/tty/%s", real + 5);
	return access(sys, F_OK) == 0;
}

/* libserialport for ports the kernel lists, termios for pseudo-terminals
 * (libserialport 0.1.1 cannot open them) and everything else. */
static int pick_backend(const char *path, enum transport_backend *b,
	struct fw_err *e)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return transport_open_error(e, path, errno);
	if (S_ISDIR(st.st_mode) || !S_ISCHR(st.st_mode))
		return fw_err_set(e, FW_EPORT,
			"%s is not a serial port (it is a %s): give the board's "
			"port, for example /dev/ttyUSB0", path,
			S_ISDIR(st.st_mode) ? "folder" :
			S_ISREG(st.st_mode) ? "regular file" : "special file");
	*b = TRANSPORT_TERMIOS;
	if (!is_pty_rdev(st.st_rdev) && is_kernel_tty(path))
		*b = TRANSPORT_SP;
	return FW_OK;
}

static int check_baud(unsigned baud, struct fw_err *e)
{
	if (baud == 0 || baud > TRANSPORT_BAUD_MAX)
		return fw_err_set(e, FW_EINVAL,
			"baud rate %u is out of range (1..%u)", baud,
			TRANSPORT_BAUD_MAX);
	return FW_OK;
}

static int cancelled(struct fw_err *e, const struct transport *t)
{
	return fw_err_set(e, FW_ECANCELLED, "stopped on request while talking to %s", t->path);
}

void transport_set_cancel(struct transport *t, bool (*cancel)(void *ctx), void *ctx)
{
	if (!t)
		return;
	t->cancel = cancel;
	t->cancel_ctx = ctx;
}

int transport_wrap(const struct transport_ops *ops, void *priv,
	const char *path, unsigned baud, struct transport **out,
	struct fw_err *e)
{
	struct transport *t;

	if (!out)
		return fw_err_set(e, FW_EINVAL, "transport_wrap: no result");
	*out = NULL;
	if (!ops || !ops->close)
		return fw_err_set(e, FW_EINVAL, "transport_wrap: no operations");
	if (!path || strlen(path) >= TRANSPORT_PATH_MAX)
		return fw_err_set(e, FW_EINVAL, "transport_wrap: bad port name");
	t = calloc(1, sizeof *t);
	if (!t)
		return fw_err_set(e, FW_ENOMEM, "out of memory opening %s", path);
	t->ops = ops;
	t->priv = priv;
	t->baud = baud;
	memcpy(t->path, path, strlen(path) + 1);
	*out = t;
	return FW_OK;
}

int transport_open_backend(const char *path, unsigned baud,
	enum transport_backend backend, struct transport **out,
	struct fw_err *e)
{
	const struct transport_ops *ops;
	struct transport *t;
	int rc;

	if (!out)
		return fw_err_set(e, FW_EINVAL, "transport_open: no result");
	*out = NULL;
	if (!path || !*path)
		return fw_err_set(e, FW_EINVAL,
			"no serial port given: name the board's port, for example "
			"/dev/ttyUSB0");
	if (strlen(path) >= TRANSPORT_PATH_MAX)
		return fw_err_set(e, FW_EINVAL,
			"serial port name is too long (%zu characters, at most %d)",
			strlen(path), TRANSPORT_PATH_MAX - 1);
	if ((rc = check_baud(baud, e)) != FW_OK)
		return rc;
	if (backend == TRANSPORT_AUTO &&
	    (rc = backend_from_env(&backend, e)) != FW_OK)
		return rc;
	if (backend == TRANSPORT_AUTO &&
	    (rc = pick_backend(path, &backend, e)) != FW_OK)
		return rc;
	ops = backend == TRANSPORT_SP ? &transport_sp_ops :
		&transport_termios_ops;
	/* Checked before opening, so a port in use is not even touched (no
	 * DTR edge, no settings changed under the other program). Only for
	 * ttys the kernel lists (/dev/null is "held" by everyone); pseudo-
	 * terminals are exempt: the simulator on the master side may keep
	 * the slave open on purpose. */
	if (is_kernel_tty(path) && !transport_is_pty(path) &&
	    (rc = transport_check_other_holders(path, e)) != FW_OK)
		return rc;

	t = calloc(1, sizeof *t);
	if (!t)
		return fw_err_set(e, FW_ENOMEM, "out of memory opening %s", path);
	t->ops = ops;
	memcpy(t->path, path, strlen(path) + 1);
	rc = ops->open(t, path, e);
	if (rc != FW_OK) {
		free(t);
		return rc;
	}
	rc = transport_set_baud(t, baud, e);
	if (rc != FW_OK) {
		transport_close(t);
		return rc;
	}
	*out = t;
	return FW_OK;
}

int transport_open(const char *path, unsigned baud, struct transport **out,
	struct fw_err *e)
{
	return transport_open_backend(path, baud, TRANSPORT_AUTO, out, e);
}

void transport_close(struct transport *t)
{
	if (!t)
		return;
	if (t->ops && t->ops->close)
		t->ops->close(t);
	free(t);
}

/* ---- the wrappers -------------------------------------------------- */

static int unsupported(struct fw_err *e, const struct transport *t,
	const char *what)
{
	return fw_err_set(e, FW_EUNSUPPORTED, "port %s (%s) cannot %s",
		t->path, transport_backend_name(t), what);
}

#define CHECK_T(t, e) do { \
	if (!(t) || !(t)->ops) \
		return fw_err_set((e), FW_EINVAL, "%s: no open port", __func__); \
} while (0)

int transport_set_baud(struct transport *t, unsigned baud, struct fw_err *e)
{
	unsigned actual = 0;
	unsigned long long diff;
	int rc;

	CHECK_T(t, e);
	if ((rc = check_baud(baud, e)) != FW_OK)
		return rc;
	if (!t->ops->set_baud)
		return unsupported(e, t, "change its baud rate");
	rc = t->ops->set_baud(t, baud, &actual, e);
	if (rc != FW_OK)
		return rc;
	if (actual == 0)
		actual = baud;   /* the port could not say: trust the request */
	diff = actual > baud ? actual - baud : baud - actual;
	if (diff * 100u > (unsigned long long)baud * BAUD_TOLERANCE_PERCENT)
		return fw_err_set(e, FW_EPORT,
			"port %s cannot run at %u baud (the adapter chose %u): "
			"pick another rate or another adapter", t->path, baud,
			actual);
	t->baud = actual;
	return FW_OK;
}

int transport_read_some(struct transport *t, void *buf, size_t n,
	size_t *got, uint64_t deadline_ns, struct fw_err *e)
{
	size_t k = 0;
	int rc;

	if (got)
		*got = 0;
	CHECK_T(t, e);
	if (!buf || !got)
		return fw_err_set(e, FW_EINVAL, "transport_read_some: no buffer");
	if (n == 0)
		return FW_OK;
	if (!t->ops->read)
		return unsupported(e, t, "read");
	if (t->cancel && t->cancel(t->cancel_ctx))
		return cancelled(e, t);
	rc = t->ops->read(t, buf, n, &k, deadline_ns, e);
	*got = k;
	if (rc != FW_OK)
		return rc;
	if (k == 0)
		return fw_err_set(e, FW_ETIMEOUT,
			"nothing arrived on port %s in time", t->path);
	return FW_OK;
}

int transport_read(struct transport *t, void *buf, size_t n, size_t *got,
	uint64_t deadline_ns, struct fw_err *e)
{
	unsigned char *p = buf;
	size_t have = 0;

	if (got)
		*got = 0;
	CHECK_T(t, e);
	if (!buf || !got)
		return fw_err_set(e, FW_EINVAL, "transport_read: no buffer");
	if (!t->ops->read)
		return unsupported(e, t, "read");
	while (have < n) {
		size_t k = 0;
		int rc;

		if (t->cancel && t->cancel(t->cancel_ctx))
			return cancelled(e, t);
		rc = t->ops->read(t, p + have, n - have, &k, deadline_ns, e);

		have += k;
		*got = have;
		if (rc != FW_OK)
			return rc;
		if (k == 0)
			return fw_err_set(e, FW_ETIMEOUT,
				"port %s: only %zu of %zu bytes arrived in time",
				t->path, have, n);
	}
	return FW_OK;
}

int transport_write(struct transport *t, const void *buf, size_t n,
	uint64_t deadline_ns, struct fw_err *e)
{
	size_t done = 0;
	int rc;

	CHECK_T(t, e);
	if (!buf && n)
		return fw_err_set(e, FW_EINVAL, "transport_write: no buffer");
	if (n == 0)
		return FW_OK;
	if (!t->ops->write)
		return unsupported(e, t, "write");
	if (t->cancel && t->cancel(t->cancel_ctx))
		return cancelled(e, t);
	rc = t->ops->write(t, buf, n, &done, deadline_ns, e);
	if (rc != FW_OK)
		return rc;
	if (done < n)
		return fw_err_set(e, FW_ETIMEOUT,
			"port %s took only %zu of %zu bytes in time (flow control "
			"stuck, or the adapter stopped?)", t->path, done, n);
	return FW_OK;
}

int transport_flush(struct transport *t, unsigned which, struct fw_err *e)
{
	CHECK_T(t, e);
	if (which == 0 || (which & ~(unsigned)TRANSPORT_FLUSH_BOTH))
		return fw_err_set(e, FW_EINVAL, "transport_flush: bad selection");
	if (!t->ops->flush)
		return unsupported(e, t, "discard its buffers");
	return t->ops->flush(t, which, e);
}

int transport_drain(struct transport *t, uint64_t deadline_ns,
	struct fw_err *e)
{
	CHECK_T(t, e);
	if (!t->ops->drain)
		return unsupported(e, t, "wait for its output to be sent");
	return t->ops->drain(t, deadline_ns, e);
}

static int line_ok(int v)
{
	return v == 0 || v == 1 || v == TRANSPORT_LINE_KEEP;
}

int transport_set_lines(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	CHECK_T(t, e);
	if (!line_ok(dtr) || !line_ok(rts))
		return fw_err_set(e, FW_EINVAL,
			"transport_set_lines: a line is 1, 0 or keep");
	if (!(transport_caps(t) & TRANSPORT_CAP_MODEM_LINES) ||
	    !t->ops->set_lines)
		return transport_no_lines_error(e, t->path);
	return t->ops->set_lines(t, dtr, rts, e);
}

int transport_set_lines_tight(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	unsigned caps;

	CHECK_T(t, e);
	if (!line_ok(dtr) || !line_ok(rts))
		return fw_err_set(e, FW_EINVAL,
			"transport_set_lines_tight: a line is 1, 0 or keep");
	caps = transport_caps(t);
	if (!(caps & TRANSPORT_CAP_MODEM_LINES))
		return transport_no_lines_error(e, t->path);
	if (!(caps & TRANSPORT_CAP_TIGHT_LINES) || !t->ops->set_lines_tight)
		return unsupported(e, t,
			"switch DTR and RTS together (use the classic sequence)");
	return t->ops->set_lines_tight(t, dtr, rts, e);
}

unsigned transport_caps(const struct transport *t)
{
	if (!t || !t->ops || !t->ops->caps)
		return 0;
	return t->ops->caps(t);
}

const char *transport_backend_name(const struct transport *t)
{
	if (!t || !t->ops || !t->ops->name)
		return "unknown";
	return t->ops->name;
}
