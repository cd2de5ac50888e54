/* The serial transport: one small ops table behind which sit libserialport
 * (real serial ports) and plain termios (pseudo-terminals and any other tty).
 * Drivers talk to a `struct transport` only and never see either library.
 *
 * Time is always an absolute deadline on the monotonic clock, in
 * nanoseconds (transport_now_ns(), transport_deadline_ms()), so a retry loop
 * cannot stretch a timeout and a change of the wall clock cannot cut one.
 *
 * Every function returns FW_OK or a negative enum fw_rc and fills the
 * struct fw_err (which may be NULL) with a message a technician can act on. */
#ifndef FLASHWISE_TRANSPORT_H
#define FLASHWISE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Environment variable that forces a backend: "sp" (libserialport),
 * "termios" or "auto". Tests use it to drive the libserialport path. */
#define TRANSPORT_ENV "FLASHWISE_TRANSPORT"

#define TRANSPORT_PATH_MAX 256
#define TRANSPORT_BAUD_MAX 12000000u

enum transport_backend {
	TRANSPORT_AUTO = 0,   /* TRANSPORT_ENV if set, else pick by device */
	TRANSPORT_SP,         /* libserialport */
	TRANSPORT_TERMIOS,    /* open(2) + termios ioctls */
};

/* Capability bits (transport_caps). */
enum {
	TRANSPORT_CAP_MODEM_LINES = 1u << 0, /* DTR and RTS can be driven */
	TRANSPORT_CAP_TIGHT_LINES = 1u << 1, /* both in one ioctl (TIOCMSET) */
};

/* What transport_flush discards. */
enum {
	TRANSPORT_FLUSH_INPUT = 1u << 0,
	TRANSPORT_FLUSH_OUTPUT = 1u << 1,
	TRANSPORT_FLUSH_BOTH = TRANSPORT_FLUSH_INPUT | TRANSPORT_FLUSH_OUTPUT,
};

/* For set_lines: leave this line as it is. 1 = asserted, 0 = released. */
#define TRANSPORT_LINE_KEEP (-1)

struct transport;

/* A backend (or a test fake). Only `name`, `close` and the operations the
 * user calls need to be set; transport_*() wrappers check arguments, keep
 * t->baud and turn a NULL operation into FW_EUNSUPPORTED. */
struct transport_ops {
	const char *name;
	/* Opens t->path (t->priv is NULL before); on failure leaves nothing
	 * open. The wrapper sets the baud rate afterwards. */
	int (*open)(struct transport *t, const char *path, struct fw_err *e);
	/* Releases everything open() acquired, including t->priv. */
	void (*close)(struct transport *t);
	/* Sets the rate; *actual receives what the port reports back. */
	int (*set_baud)(struct transport *t, unsigned baud, unsigned *actual,
		struct fw_err *e);
	/* Waits until at least one byte is available or the deadline passes,
	 * then returns what is there (up to n) in *got. FW_OK with *got == 0
	 * means the deadline passed. */
	int (*read)(struct transport *t, void *buf, size_t n, size_t *got,
		uint64_t deadline_ns, struct fw_err *e);
	/* Writes as much as it can until the deadline; *done says how much. */
	int (*write)(struct transport *t, const void *buf, size_t n,
		size_t *done, uint64_t deadline_ns, struct fw_err *e);
	int (*flush)(struct transport *t, unsigned which, struct fw_err *e);
	int (*drain)(struct transport *t, uint64_t deadline_ns,
		struct fw_err *e);
	/* dtr/rts: 1, 0 or TRANSPORT_LINE_KEEP; DTR changes first. */
	int (*set_lines)(struct transport *t, int dtr, int rts,
		struct fw_err *e);
	/* Both lines in one step; NULL when the backend cannot. */
	int (*set_lines_tight)(struct transport *t, int dtr, int rts,
		struct fw_err *e);
	unsigned (*caps)(const struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	void *priv;                     /* the backend's state */
	char path[TRANSPORT_PATH_MAX];  /* as the user gave it, for messages */
	unsigned baud;                  /* as the port reported it back */
	bool (*cancel)(void *ctx);      /* transport_set_cancel() */
	void *cancel_ctx;
};

/* Opens `path` at `baud` with the backend TRANSPORT_ENV names, else
 * libserialport for ports the kernel lists in /sys/class/tty and termios
 * for pseudo-terminals (libserialport 0.1.1 cannot open those) and other
 * ttys. The port is locked against other programs (flock + TIOCEXCL), put
 * in raw 8N1 mode without flow control. Errors: FW_EPORT (missing, not a
 * serial port, no permission: the message says what to do), FW_EBUSY
 * (held by another program, named when /proc shows it), FW_EINVAL. */
int transport_open(const char *path, unsigned baud, struct transport **out,
	struct fw_err *e);
/* The same with an explicit backend (TRANSPORT_AUTO = transport_open). */
int transport_open_backend(const char *path, unsigned baud,
	enum transport_backend backend, struct transport **out,
	struct fw_err *e);
/* Wraps a caller-made ops table (a test fake, a network port) so that the
 * same transport_*() calls and transport_close() work on it. */
int transport_wrap(const struct transport_ops *ops, void *priv,
	const char *path, unsigned baud, struct transport **out,
	struct fw_err *e);
/* Closes the port (the backend drops DTR/RTS only as HUPCL says) and frees
 * t. NULL is fine. */
void transport_close(struct transport *t);

/* Lets the caller stop long work at a point where stopping is safe: while
 * cancel(ctx) returns true, reads and writes fail at once with
 * FW_ECANCELLED, so a driver unwinds as from a lost device. NULL disarms
 * it; the engine disarms it while the device is being written. */
void transport_set_cancel(struct transport *t, bool (*cancel)(void *ctx), void *ctx);
/* Changes the rate at once (no implicit drain): drain first when bytes may
 * still be going out. FW_EPORT when the adapter rounds the rate by more
 * than 3 %; t->baud holds the rate the port reported back. */
int transport_set_baud(struct transport *t, unsigned baud, struct fw_err *e);
/* Reads exactly n bytes unless the deadline passes first: FW_OK, or
 * FW_ETIMEOUT with *got = the bytes that did arrive (they are in buf). */
int transport_read(struct transport *t, void *buf, size_t n, size_t *got,
	uint64_t deadline_ns, struct fw_err *e);
/* Returns as soon as anything arrived (up to n bytes): FW_OK with
 * *got >= 1, or FW_ETIMEOUT with *got == 0. */
int transport_read_some(struct transport *t, void *buf, size_t n,
	size_t *got, uint64_t deadline_ns, struct fw_err *e);
/* Writes all n bytes or fails: FW_ETIMEOUT names how many went out. */
int transport_write(struct transport *t, const void *buf, size_t n,
	uint64_t deadline_ns, struct fw_err *e);
/* Discards unread input and/or unsent output (TRANSPORT_FLUSH_*). */
int transport_flush(struct transport *t, unsigned which, struct fw_err *e);
/* Waits until everything written has left the port, or the deadline. */
int transport_drain(struct transport *t, uint64_t deadline_ns,
	struct fw_err *e);
/* Drives DTR then RTS (1 asserted, 0 released, TRANSPORT_LINE_KEEP).
 * FW_EUNSUPPORTED when the port has no modem lines (a pseudo-terminal):
 * the caller then asks the technician to enter the bootloader by hand. */
int transport_set_lines(struct transport *t, int dtr, int rts,
	struct fw_err *e);
/* Both lines in one ioctl, so the pair never passes through an
 * intermediate state (esptool's "tight" reset). FW_EUNSUPPORTED without
 * TRANSPORT_CAP_TIGHT_LINES. */
int transport_set_lines_tight(struct transport *t, int dtr, int rts,
	struct fw_err *e);
unsigned transport_caps(const struct transport *t);
/* "libserialport", "termios" or the fake's name. */
const char *transport_backend_name(const struct transport *t);

/* The monotonic clock in nanoseconds, and now + ms as a deadline. */
uint64_t transport_now_ns(void);
uint64_t transport_deadline_ms(unsigned ms);

/* ---- for backends (src/transport/) -------------------------------- */

extern const struct transport_ops transport_sp_ops;
extern const struct transport_ops transport_termios_ops;

/* Fills e for a failed open(2)/flock of `path` from its errno: missing
 * port (lists the ports that exist), permission (dialout), busy (names the
 * holder), not a tty. Returns the fw_rc it chose. */
int transport_open_error(struct fw_err *e, const char *path, int err);
/* Takes the lock other flashwise instances (and well-behaved serial
 * programs) respect: flock(LOCK_EX|LOCK_NB). FW_EBUSY with the holder
 * named when /proc shows it. */
int transport_lock_fd(int fd, const char *path, struct fw_err *e);
/* TIOCEXCL on (1) or off (0): later opens by other unprivileged programs
 * then fail with EBUSY. Turn it off before the last close: on a pty the
 * flag outlives the descriptor while the master stays open. */
void transport_set_exclusive(int fd, int on);
/* The FW_EUNSUPPORTED "no DTR/RTS lines" error, the same for all. */
int transport_no_lines_error(struct fw_err *e, const char *path);
/* 1 when `path` is a pseudo-terminal slave (/dev/pts/N), else 0. */
int transport_is_pty(const char *path);
/* poll(2) for `events` until the deadline, retrying after signals.
 * Returns 1 ready (revents filled), 0 deadline passed, -1 errno set. */
int transport_wait_fd(int fd, short events, uint64_t deadline_ns,
	short *revents);
/* Loops TIOCOUTQ until the output queue is empty, then tcdrain. */
int transport_drain_fd(int fd, const char *path, uint64_t deadline_ns,
	struct fw_err *e);
/* Scans /proc/<pid>/fd for processes that have `path` open and writes them
 * all, e.g. "screen (pid 1234), minicom (pid 99)", into buf (as many as
 * fit); 0 if one was found, -1 if not. Other processes are preferred; this
 * one counts only without others_only. Best effort: processes we may not
 * inspect are skipped. */
int transport_find_holder(const char *path, int others_only, char *buf,
	size_t size);
/* FW_EBUSY when another process has `path` open even without a lock (cat,
 * brltty, a terminal program): it would read the device's replies away.
 * transport_open runs it for every port except pseudo-terminals, whose
 * other end (the simulator) may hold the slave open on purpose. */
int transport_check_other_holders(const char *path, struct fw_err *e);

#endif
