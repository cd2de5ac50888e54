/* The termios backend: open(2) plus tty ioctls. It serves pseudo-terminals
 * (the simulator, which libserialport 0.1.1 refuses) and any tty that
 * /sys/class/tty does not list.
 *
 * It talks to the kernel with the termios2 ioctls of <asm/termbits.h>
 * instead of glibc's <termios.h> (the two headers cannot be mixed): only
 * termios2 with BOTHER sets rates outside the B-constant table, such as the
 * ESP8266 ROM's 74880 baud. */
#include <asm/termbits.h>
#include <sys/ioctl.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

struct tio {
	int fd;
	unsigned caps;
};

static const struct {
	unsigned rate;
	unsigned code;
} std_rates[] = {
	{ 50, B50 }, { 75, B75 }, { 110, B110 }, { 134, B134 }, { 150, B150 },
	{ 200, B200 }, { 300, B300 }, { 600, B600 }, { 1200, B1200 },
	{ 1800, B1800 }, { 2400, B2400 }, { 4800, B4800 }, { 9600, B9600 },
	{ 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 },
	{ 115200, B115200 }, { 230400, B230400 }, { 460800, B460800 },
	{ 500000, B500000 }, { 576000, B576000 }, { 921600, B921600 },
	{ 1000000, B1000000 }, { 1152000, B1152000 }, { 1500000, B1500000 },
	{ 2000000, B2000000 }, { 2500000, B2500000 }, { 3000000, B3000000 },
	{ 3500000, B3500000 }, { 4000000, B4000000 },
};

static int gone_error(struct fw_err *e, const struct transport *t)
{
	return fw_err_set(e, FW_EPORT, "port %s went away (unplugged?)",
		t->path);
}

static int io_error(struct fw_err *e, const struct transport *t,
	const char *what, int err)
{
	if (err == EIO || err == ENXIO || err == ENODEV || err == EPIPE)
		return gone_error(e, t);
	return fw_err_set(e, FW_EPORT, "cannot %s port %s: %s", what, t->path,
		strerror(err));
}

static void make_raw(struct termios2 *tio)
{
	tio->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR |
		IGNCR | ICRNL | IXON | IXOFF | IXANY | IMAXBEL | IUCLC);
	tio->c_oflag &= ~(tcflag_t)OPOST;
	tio->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	tio->c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS);
	/* CLOCAL: ignore carrier; HUPCL: drop DTR/RTS on the last close,
	 * as libserialport does, so both backends leave a board alike. */
	tio->c_cflag |= CS8 | CREAD | CLOCAL | HUPCL;
	/* VMIN 1 with O_NONBLOCK: "no data" is EAGAIN and a read of 0 means
	 * hangup. (VMIN 0 would return 0 for both.) */
	tio->c_cc[VMIN] = 1;
	tio->c_cc[VTIME] = 0;
}

static int tio_open(struct transport *t, const char *path, struct fw_err *e)
{
	struct termios2 tio;
	struct tio *p;
	int fd, bits, rc;

	/* Opening a real port raises DTR and RTS (the kernel does it, before
	 * any flag of ours could stop it): an Uno resets here, as with any
	 * serial program. */
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return transport_open_error(e, path, errno);
	if (ioctl(fd, TCGETS2, &tio) != 0) {
		int err = errno;
		close(fd);
		return transport_open_error(e, path,
			err == EINVAL ? ENOTTY : err);
	}
	if ((rc = transport_lock_fd(fd, path, e)) != FW_OK) {
		close(fd);
		return rc;
	}
	transport_set_exclusive(fd, 1);
	make_raw(&tio);
	if (ioctl(fd, TCSETS2, &tio) != 0) {
		int err = errno;
		transport_set_exclusive(fd, 0);
		close(fd);
		return fw_err_set(e, FW_EPORT, "cannot configure port %s: %s",
			path, strerror(err));
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		transport_set_exclusive(fd, 0);
		close(fd);
		return fw_err_set(e, FW_ENOMEM, "out of memory opening %s", path);
	}
	p->fd = fd;
	/* A pty answers TIOCMGET with ENOTTY: it has no modem lines. */
	if (ioctl(fd, TIOCMGET, &bits) == 0)
		p->caps = TRANSPORT_CAP_MODEM_LINES | TRANSPORT_CAP_TIGHT_LINES;
	t->priv = p;
	return FW_OK;
}

static void tio_close(struct transport *t)
{
	struct tio *p = t->priv;

	if (!p)
		return;
	transport_set_exclusive(p->fd, 0);
	close(p->fd);   /* also releases the flock */
	free(p);
	t->priv = NULL;
}

static int tio_set_baud(struct transport *t, unsigned baud, unsigned *actual,
	struct fw_err *e)
{
	struct tio *p = t->priv;
	struct termios2 tio;
	unsigned code = BOTHER;

	for (size_t i = 0; i < sizeof std_rates / sizeof std_rates[0]; i++)
		if (std_rates[i].rate == baud)
			code = std_rates[i].code;
	if (ioctl(p->fd, TCGETS2, &tio) != 0)
		return io_error(e, t, "configure", errno);
	/* CIBAUD cleared: the input rate follows the output rate. */
	tio.c_cflag &= ~(tcflag_t)(CBAUD | CIBAUD);
	tio.c_cflag |= code;
	tio.c_ispeed = baud;
	tio.c_ospeed = baud;
	if (ioctl(p->fd, TCSETS2, &tio) != 0)
		return fw_err_set(e, FW_EPORT,
			"port %s refused %u baud: %s", t->path, baud,
			strerror(errno));
	/* Read back what the driver really chose. */
	if (ioctl(p->fd, TCGETS2, &tio) != 0)
		return io_error(e, t, "configure", errno);
	*actual = tio.c_ospeed;
	return FW_OK;
}

static int tio_read(struct transport *t, void *buf, size_t n, size_t *got,
	uint64_t deadline_ns, struct fw_err *e)
{
	struct tio *p = t->priv;

	*got = 0;
	for (;;) {
		short rev = 0;
		ssize_t r = read(p->fd, buf, n);
		int w;

		if (r > 0) {
			*got = (size_t)r;
			return FW_OK;
		}
		if (r == 0)
			return gone_error(e, t);   /* hangup */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return io_error(e, t, "read from", errno);
		w = transport_wait_fd(p->fd, POLLIN, deadline_ns, &rev);
		if (w < 0)
			return io_error(e, t, "wait on", errno);
		if (w == 0)
			return FW_OK;
		if ((rev & (POLLERR | POLLNVAL)) && !(rev & POLLIN))
			return gone_error(e, t);
	}
}

static int tio_write(struct transport *t, const void *buf, size_t n,
	size_t *done, uint64_t deadline_ns, struct fw_err *e)
{
	struct tio *p = t->priv;
	const unsigned char *b = buf;

	*done = 0;
	while (*done < n) {
		short rev = 0;
		ssize_t r = write(p->fd, b + *done, n - *done);
		int w;

		if (r > 0) {
			*done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return io_error(e, t, "write to", errno);
		w = transport_wait_fd(p->fd, POLLOUT, deadline_ns, &rev);
		if (w < 0)
			return io_error(e, t, "wait on", errno);
		if (w == 0)
			return FW_OK;   /* the wrapper reports the shortfall */
		if ((rev & (POLLERR | POLLHUP | POLLNVAL)) && !(rev & POLLOUT))
			return gone_error(e, t);
	}
	return FW_OK;
}

static int tio_flush(struct transport *t, unsigned which, struct fw_err *e)
{
	struct tio *p = t->priv;
	int how = which == TRANSPORT_FLUSH_BOTH ? TCIOFLUSH :
		which == TRANSPORT_FLUSH_INPUT ? TCIFLUSH : TCOFLUSH;

	if (ioctl(p->fd, TCFLSH, how) != 0)
		return io_error(e, t, "flush", errno);
	return FW_OK;
}

static int tio_drain(struct transport *t, uint64_t deadline_ns,
	struct fw_err *e)
{
	struct tio *p = t->priv;
	return transport_drain_fd(p->fd, t->path, deadline_ns, e);
}

static int lines_error(struct fw_err *e, const struct transport *t, int err)
{
	if (err == ENOTTY || err == EINVAL)
		return transport_no_lines_error(e, t->path);
	return io_error(e, t, "set DTR/RTS on", err);
}

static int tio_set_lines(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	struct tio *p = t->priv;
	const int val[2] = { dtr, rts };
	const int bit[2] = { TIOCM_DTR, TIOCM_RTS };

	/* One ioctl per line, DTR first: the "classic" order that the reset
	 * sequences in esp-rom-protocol.md section 9 are written for. */
	for (int i = 0; i < 2; i++) {
		if (val[i] == TRANSPORT_LINE_KEEP)
			continue;
		if (ioctl(p->fd, val[i] ? TIOCMBIS : TIOCMBIC, &bit[i]) != 0)
			return lines_error(e, t, errno);
	}
	return FW_OK;
}

static int tio_set_lines_tight(struct transport *t, int dtr, int rts,
	struct fw_err *e)
{
	struct tio *p = t->priv;
	int bits;

	if (ioctl(p->fd, TIOCMGET, &bits) != 0)
		return lines_error(e, t, errno);
	if (dtr != TRANSPORT_LINE_KEEP)
		bits = dtr ? bits | TIOCM_DTR : bits & ~TIOCM_DTR;
	if (rts != TRANSPORT_LINE_KEEP)
		bits = rts ? bits | TIOCM_RTS : bits & ~TIOCM_RTS;
	if (ioctl(p->fd, TIOCMSET, &bits) != 0)
		return lines_error(e, t, errno);
	return FW_OK;
}

static unsigned tio_caps(const struct transport *t)
{
	const struct tio *p = t->priv;
	return p ? p->caps : 0;
}

const struct transport_ops transport_termios_ops = {
	.name = "termios",
	.open = tio_open,
	.close = tio_close,
	.set_baud = tio_set_baud,
	.read = tio_read,
	.write = tio_write,
	.flush = tio_flush,
	.drain = tio_drain,
	.set_lines = tio_set_lines,
	.set_lines_tight = tio_set_lines_tight,
	.caps = tio_caps,
};
