/* The libserialport backend, for ports the kernel lists in /sys/class/tty
 * (USB adapters, on-board UARTs).
 *
 * libserialport 0.1.1 takes no lock in sp_open (no TIOCEXCL, no flock:
 * checked with strace), so this file locks the port itself, on a
 * descriptor of its own opened before sp_open: a port another program
 * holds is reported busy before libserialport touches its settings.
 * Waiting uses poll(2) on the port's descriptor so that every wait has a
 * deadline; the bytes themselves go through sp_nonblocking_read/write. */
#include <errno.h>
#include <fcntl.h>
#include <libserialport.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "transport.h"

struct spt {
	struct sp_port *port;
	int fd;        /* libserialport's descriptor (sp_get_port_handle) */
	int lockfd;    /* ours, holding the flock */
	unsigned caps;
};

/* libserialport reports failures as SP_ERR_FAIL with errno kept for
 * sp_last_error_code(); the other codes carry no errno. */
static int sp_errno(enum sp_return r)
{
	return r == SP_ERR_FAIL ? sp_last_error_code() : 0;
}

static int sp_fail(struct fw_err *e, const struct transport *t,
	const char *what, enum sp_return r)
{
	char *msg = r == SP_ERR_FAIL ? sp_last_error_message() : NULL;
	int err = sp_errno(r), rc;

	if (err == EIO || err == ENXIO || err == ENODEV)
		rc = fw_err_set(e, FW_EPORT, "port %s went away (unplugged?)",
			t->path);
	else
		rc = fw_err_set(e, r == SP_ERR_MEM ? FW_ENOMEM : FW_EPORT,
			"cannot %s port %s: %s", what, t->path,
			msg ? msg : r == SP_ERR_ARG ? "invalid argument" :
			r == SP_ERR_SUPP ? "not supported" : "libserialport failed");
	if (msg)
		sp_free_error_message(msg);
	return rc;
}

static void spt_free(struct spt *p)
{
	if (p->port) {
		if (p->fd >= 0) {
			transport_set_exclusive(p->fd, 0);
			sp_close(p->port);
		}
		sp_free_port(p->port);
	}
	if (p->lockfd >= 0)
		close(p->lockfd);
	free(p);
}

static int not_for_sp(struct fw_err *e, const char *path, const char *why)
{
	if (transport_is_pty(path))
		return fw_err_set(e, FW_EPORT,
			"libserialport cannot open %s: it is a pseudo-terminal "
			"(%s); use the termios backend (unset %s or set it to "
			"termios)", path, why, TRANSPORT_ENV);
	return fw_err_set(e, FW_EPORT,
		"libserialport cannot open %s (%s); try the termios backend "
		"(%s=termios)", path, why, TRANSPORT_ENV);
}

static int spt_open(struct transport *t, const char *path, struct fw_err *e)
{
	char real[PATH_MAX];
	struct sp_port_config *cfg = NULL;
	struct spt *p;
	enum sp_return r;
	int rc;

	/* libserialport wants /dev/NAME with a /sys/class/tty/NAME entry,
	 * so a /dev/serial/by-id/... link is resolved first. */
	if (!realpath(path, real))
		return transport_open_error(e, path, errno);
	p = calloc(1, sizeof *p);
	if (!p)
		return fw_err_set(e, FW_ENOMEM, "out of memory opening %s", path);
	p->fd = -1;
	p->lockfd = open(real, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (p->lockfd < 0) {
		rc = transport_open_error(e, path, errno);
		goto fail;
	}
	if ((rc = transport_lock_fd(p->lockfd, path, e)) != FW_OK)
		goto fail;

	r = sp_get_port_by_name(real, &p->port);
	if (r != SP_OK) {
		p->port = NULL;
		rc = r == SP_ERR_MEM ?
			fw_err_set(e, FW_ENOMEM, "out of memory opening %s", path) :
			not_for_sp(e, path, "the kernel lists no serial port by "
				"that name in /sys/class/tty");
		goto fail;
	}
	r = sp_open(p->port, SP_MODE_READ_WRITE);
	if (r != SP_OK) {
		int err = sp_errno(r);

		if (err == ENOTTY || err == EINVAL)
			/* sp_open reads the modem lines and gives up when a
			 * tty has none (a pty says ENOTTY to TIOCMGET). */
			rc = not_for_sp(e, path, "it has no modem lines");
		else if (err)
			rc = transport_open_error(e, path, err);
		else
			rc = sp_fail(e, t, "open", r);
		goto fail;
	}
	if (sp_get_port_handle(p->port, &p->fd) != SP_OK || p->fd < 0) {
		p->fd = -1;
		rc = fw_err_set(e, FW_EPORT,
			"libserialport opened %s but gave no descriptor", path);
		goto fail;
	}
	transport_set_exclusive(p->fd, 1);

	/* 8N1 without flow control; DTR and RTS stay as they are (-1 in a
	 * new config means "leave unchanged"). */
	r = sp_new_config(&cfg);
	if (r == SP_OK)
		r = sp_set_config_bits(cfg, 8);
	if (r == SP_OK)
		r = sp_set_config_parity(cfg, SP_PARITY_NONE);
	if (r == SP_OK)
		r = sp_set_config_stopbits(cfg, 1);
	if (r == SP_OK)
		r = sp_set_config_flowcontrol(cfg, SP_FLOWCONTROL_NONE);
	if (r == SP_OK)
		r = sp_set_config(p->port, cfg);
	if (cfg)
		sp_free_config(cfg);
	if (r != SP_OK) {
		rc = sp_fail(e, t, "configure", r);
		goto fail;
	}
	/* sp_open succeeded, so TIOCMGET works: the port has modem lines,
	 * and TIOCMSET on its descriptor switches both at once. */
	p->caps = TRANSPORT_CAP_MODEM_LINES | TRANSPORT_CAP_TIGHT_LINES;
	t->priv = p;
	return FW_OK;
fail:
	spt_free(p);
	return rc;
}

static void spt_close(struct transport *t)
{
	if (t->priv)
		spt_free(t->priv);
	t->priv = NULL;
}

static int spt_set_baud(struct transport *t, unsigned baud, unsigned *actual,
	struct fw_err *e)
{
	struct spt *p = t->priv;
	struct sp_port_config *cfg = NULL;
	enum sp_return r;
	int got = 0;

	if (baud > INT_MAX)
		return fw_err_set(e, FW_EINVAL, "baud rate %u is too high", baud);
	r = sp_set_baudrate(p->port, (int)baud);
	if (r != SP_OK)
		return sp_fail(e, t, "set the baud rate of", r);
	/* Read back what the driver really chose. */
	r = sp_new_config(&cfg);
	if (r == SP_OK)
		r = sp_get_config(p->port, cfg);
	if (r == SP_OK)
		r = sp_get_config_baudrate(cfg, &got);
	if (cfg)
		sp_free_config(cfg);
	if (r != SP_OK)
		return sp_fail(e, t, "read the settings of", r);
	*actual = got > 0 ? (unsigned)got : 0;
	return FW_OK;
}

static int spt_read(struct transport *t, void *buf, size_t n, size_t *got,
	uint64_t deadline_ns, struct fw_err *e)
{
	struct spt *p = t->priv;

	*got = 0;
	for (;;) {
		short rev = 0;
		int w = transport_wait_fd(p->fd, POLLIN, deadline_ns, &rev);
		enum sp_return r;

		if (w < 0)
			return fw_err_set(e, FW_EPORT, "cannot wait on port %s: %s",
				t->path, strerror(errno));
		if (w == 0)
			return FW_OK;
		r = sp_nonblocking_read(p->port, buf, n);
		if (r < 0)
			return sp_fail(e, t, "read from", r);
		if (r > 0) {
			*got = (size_t)r;
			return FW_OK;
		}
		/* Readable but nothing read: end of file, the device is gone. */
		if (rev & (POLLHUP | POLLERR | POLLNVAL))
			return fw_err_set(e, FW_EPORT,
				"port %s went away (unplugged?)", t->path);
	}
}

static int spt_write(struct transport *t, const void *buf, size_t n,
	size_t *done, uint64_t deadline_ns, struct fw_err *e)
{
	struct spt *p = t->priv;
	const unsigned char *b = buf;

	*done = 0;
	while (*done < n) {
		short rev = 0;
		enum sp_return r = sp_nonblocking_write(p->port, b + *done,
			n - *done);
		int w;

		if (r < 0)
			return sp_fail(e, t, "write to", r);
		if (r > 0) {
			*done += (size_t)r;
			continue;
		}
		w = transport_wait_fd(p->fd, POLLOUT, deadline_ns, &rev);
		if (w < 0)
			return fw_err_set(e, FW_EPORT, "cannot wait on port %s: %s",
				t->path, strerror(errno));
		if (w == 0)
			return FW_OK;   /* the wrapper reports the shortfall */
		if ((rev & (POLLERR | POLLHUP | POLLNVAL)) && !(rev & POLLOUT))
			return fw_err_set(e, FW_EPORT,
				"port %s went away (unplugged?)", t->path);
	}
	return FW_OK;
}

static int spt_flush(struct transport *t, unsigned which, struct fw_err *e)
{
	struct spt *p = t->priv;
	enum sp_buffer b = which == TRANSPORT_FLUSH_BOTH ? SP_BUF_BOTH :
		which == TRANSPORT_FLUSH_INPUT ? SP_BUF_INPUT : SP_BUF_OUTPUT;
	enum sp_return r = sp_flush(p->port, b);

	return r == SP_OK ? FW_OK : sp_fail(e, t, "flush", r);
}

static int spt_drain(struct transport *t, uint64_t deadline_ns,
	struct fw_err *e)
{
	struct spt *p = t->priv;
	/* Same bounded wait as termios; sp_drain alone cannot time out. */
	return transport_drain_fd(p->fd, t->path, deadline_ns, e);
}

static int spt_lines_fail(struct fw_err *e, const struct transport *t,
	enum sp_return r)
{
	int err = sp_errno(r);

	if (err == ENOTTY || err == EINVAL)
		return transport_no_lines_error(e, t->path);
	return sp_fail(e, t, "set DTR/RTS on", r);
}

static int spt_set_lines(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	struct spt *p = t->priv;
	enum sp_return r;

	/* Separate calls, DTR first: the "classic" sequence. */
	if (dtr != TRANSPORT_LINE_KEEP) {
		r = sp_set_dtr(p->port, dtr ? SP_DTR_ON : SP_DTR_OFF);
		if (r != SP_OK)
			return spt_lines_fail(e, t, r);
	}
	if (rts != TRANSPORT_LINE_KEEP) {
		r = sp_set_rts(p->port, rts ? SP_RTS_ON : SP_RTS_OFF);
		if (r != SP_OK)
			return spt_lines_fail(e, t, r);
	}
	return FW_OK;
}

static int lines_errno(struct fw_err *e, const struct transport *t, int err)
{
	if (err == ENOTTY || err == EINVAL)
		return transport_no_lines_error(e, t->path);
	return fw_err_set(e, FW_EPORT, "cannot set DTR/RTS on port %s: %s",
		t->path, strerror(err));
}

static int spt_set_lines_tight(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	struct spt *p = t->priv;
	int bits;

	/* libserialport has no call that moves both lines at once; the
	 * "tight" variant is one TIOCMSET on its descriptor. */
	if (ioctl(p->fd, TIOCMGET, &bits) != 0)
		return lines_errno(e, t, errno);
	if (dtr != TRANSPORT_LINE_KEEP)
		bits = dtr ? bits | TIOCM_DTR : bits & ~TIOCM_DTR;
	if (rts != TRANSPORT_LINE_KEEP)
		bits = rts ? bits | TIOCM_RTS : bits & ~TIOCM_RTS;
	if (ioctl(p->fd, TIOCMSET, &bits) != 0)
		return lines_errno(e, t, errno);
	return FW_OK;
}

static unsigned spt_caps(const struct transport *t)
{
	const struct spt *p = t->priv;
	return p ? p->caps : 0;
}

const struct transport_ops transport_sp_ops = {
	.name = "libserialport",
	.open = spt_open,
	.close = spt_close,
	.set_baud = spt_set_baud,
	.read = spt_read,
	.write = spt_write,
	.flush = spt_flush,
	.drain = spt_drain,
	.set_lines = spt_set_lines,
	.set_lines_tight = spt_set_lines_tight,
	.caps = spt_caps,
};
