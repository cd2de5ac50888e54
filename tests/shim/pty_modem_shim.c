/* pty_modem_shim.so: a TEST-ONLY LD_PRELOAD library that lets
 * libserialport 0.1.1 open a pseudo-terminal slave (/dev/pts/N) and makes
 * that pty behave as if it had DTR and RTS lines, so the libserialport
 * backend and the reset sequences can run against the simulator.
 * It is never linked into flashwise.
 *
 * What libserialport 0.1.1 needs, and what this file intercepts (found
 * with `nm -D --undefined-only libserialport.so.0`, strace and
 * LIBSERIALPORT_DEBUG=1):
 *
 *  1. sp_get_port_by_name("/dev/pts/N") checks that /sys/class/tty/pts/N
 *     exists with lstat, which the Debian 12 build of 0.1.1 imports as the
 *     old glibc symbol __lxstat. A pty has no such entry, so the call fails
 *     with SP_ERR_ARG.  ->  __lxstat, __lxstat64, lstat, lstat64 answer
 *     for "/sys/class/tty/pts/N" with the stat of /dev/pts/N shown as a
 *     symlink (what a sysfs class entry is), and only while /dev/pts/N
 *     exists. Every other path goes to libc unchanged. No name under /dev
 *     is created or faked: the port keeps its real name.
 *
 *  2. get_port_details() then calls readlink("/sys/class/tty/pts/N/device")
 *     (newer libserialport reads "/sys/class/tty/pts/N") to learn the bus.
 *     ->  readlink answers both with a made-up platform path containing
 *     neither "usb" nor "bluetooth", so the port counts as a native UART
 *     (no USB VID:PID).
 *
 *  3. sp_open() reads the modem lines with ioctl(TIOCMGET) and gives up on
 *     ENOTTY (a pty has none); sp_set_dtr/sp_set_rts use TIOCMBIS and
 *     TIOCMBIC, and flashwise's "tight" reset uses TIOCMSET.
 *     ->  ioctl answers TIOCMGET, TIOCMSET, TIOCMBIS and TIOCMBIC on pty
 *     slave descriptors from a table kept here. Other requests, and other
 *     descriptors, go to libc unchanged (TIOCGSERIAL is only used by
 *     sp_list_ports on 8250 UARTs, so it is left alone).
 *
 *  4. To model the lines the way a real port moves them, open(2) (open,
 *     open64, openat, openat64, __open_2, __open64_2) and close(2) are
 *     watched for pty slaves: opening raises DTR and RTS as the kernel
 *     does for a real port; the last close drops both only when HUPCL is
 *     set (libserialport and flashwise set it; a fresh pty has it clear).
 *     The line state belongs to the pty (all descriptors of one pty share
 *     it, as on real hardware) and is reached through each descriptor;
 *     it survives a close without HUPCL, so a reopen raises nothing.
 *     Descriptors made by dup(2)/fcntl(F_DUPFD) are not watched; one used
 *     for a modem ioctl is adopted then. Descriptors >= 4096 are ignored.
 *
 * Side channel: when FLASHWISE_SHIM_LINES names a file (or a FIFO with a
 * reader), every change of the lines appends one line, written with a
 * single write(2) so readers never see half a line:
 *
 *     DTR=1 RTS=0 t=<CLOCK_MONOTONIC ns> dev=/dev/pts/N why=<reason>
 *
 * where reason is "open" (lines raised by the first open), "set"
 * (TIOCMBIS/TIOCMBIC, one line per call), "tight" (TIOCMSET: both lines in
 * one step) or "close" (dropped by the last close with HUPCL). Requests
 * that change nothing are not reported. A simulated board reads these to
 * react to reset pulses (an Uno resets on a DTR rising edge; an ESP with
 * the two-transistor circuit samples GPIO0 = !DTR when EN = !RTS rises).
 *
 * flashwise_pty_shim_present() lets a test check that the shim is loaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SHIM_FD_MAX 4096
#define SHIM_DEV_MAX 64
#define SYS_PTS "/sys/class/tty/pts/"
#define FAKE_LINK "../../devices/platform/flashwise-pty-shim/tty"

struct shim_dev {
	dev_t rdev;
	int used;
	int dtr, rts;
	int nfds;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_dev devs[SHIM_DEV_MAX];
static unsigned char fd_dev[SHIM_FD_MAX];   /* device index + 1, 0 = none */

int flashwise_pty_shim_present(void);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

int flashwise_pty_shim_present(void)
{
	return 1;
}

/* ---- the real functions -------------------------------------------- */

#define REAL(type, name) \
	static type real_##name; \
	if (!real_##name) \
		real_##name = (type)dlsym(RTLD_NEXT, #name)

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*close_fn)(int);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef ssize_t (*readlink_fn)(const char *, char *, size_t);
typedef int (*lxstat_fn)(int, const char *, struct stat *);
typedef int (*lxstat64_fn)(int, const char *, struct stat64 *);
typedef int (*lstat_fn)(const char *, struct stat *);
typedef int (*lstat64_fn)(const char *, struct stat64 *);
typedef int (*open2_fn)(const char *, int);

static int call_real_close(int fd)
{
	REAL(close_fn, close);
	return real_close(fd);
}

/* ---- pty names ----------------------------------------------------- */

static int is_pty_slave_rdev(dev_t rdev)
{
	return major(rdev) >= 136 && major(rdev) <= 143;
}

static void pty_name(dev_t rdev, char *buf, size_t size)
{
	snprintf(buf, size, "/dev/pts/%u",
		(major(rdev) - 136u) * 256u + minor(rdev));
}

/* "/sys/class/tty/pts/N" or ".../pts/N/device" -> "/dev/pts/N", when
 * that pty exists. */
static int sys_to_dev(const char *path, char *dev, size_t size, int *is_device)
{
	const char *n;
	size_t len;
	struct stat st;

	if (!path || strncmp(path, SYS_PTS, sizeof SYS_PTS - 1) != 0)
		return 0;
	n = path + sizeof SYS_PTS - 1;
	len = strspn(n, "0123456789");
	if (len == 0 || len > 10)
		return 0;
	if (n[len] == '\0')
		*is_device = 0;
	else if (strcmp(n + len, "/device") == 0)
		*is_device = 1;
	else
		return 0;
	snprintf(dev, size, "/dev/pts/%.*s", (int)len, n);
	return stat(dev, &st) == 0 && S_ISCHR(st.st_mode) &&
		is_pty_slave_rdev(st.st_rdev);
}

/* ---- the side channel ---------------------------------------------- */

static void report(const struct shim_dev *d, const char *why)
{
	const char *file = getenv("FLASHWISE_SHIM_LINES");
	char line[160], name[32];
	struct timespec ts;
	int fd, n;
	REAL(open_fn, open);

	if (!file || !*file)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pty_name(d->rdev, name, sizeof name);
	n = snprintf(line, sizeof line, "DTR=%d RTS=%d t=%llu dev=%s why=%s\n",
		d->dtr, d->rts,
		(unsigned long long)ts.tv_sec * 1000000000ull +
		(unsigned long long)ts.tv_nsec, name, why);
	fd = real_open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		O_NONBLOCK, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n) {
		/* a full FIFO loses the event; nothing else to do */
	}
	call_real_close(fd);
}

/* ---- descriptor and device table (callers hold `lock`) -------------- */

static struct shim_dev *dev_for_rdev(dev_t rdev)
{
	struct shim_dev *free_slot = NULL;

	for (int i = 0; i < SHIM_DEV_MAX; i++) {
		if (devs[i].used && devs[i].rdev == rdev)
			return &devs[i];
		if (!devs[i].used && !free_slot)
			free_slot = &devs[i];
	}
	if (free_slot) {
		memset(free_slot, 0, sizeof *free_slot);
		free_slot->used = 1;
		free_slot->rdev = rdev;
	}
	return free_slot;
}

/* Starts watching fd if it is a pty slave; `opened` says whether this is
 * a fresh open (which raises the lines) or an adopted descriptor. */
static struct shim_dev *track(int fd, int opened)
{
	struct stat st;
	struct shim_dev *d;

	if (fd < 0 || fd >= SHIM_FD_MAX)
		return NULL;
	if (fd_dev[fd])
		return &devs[fd_dev[fd] - 1];
	if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) ||
	    !is_pty_slave_rdev(st.st_rdev))
		return NULL;
	d = dev_for_rdev(st.st_rdev);
	if (!d)
		return NULL;
	fd_dev[fd] = (unsigned char)(d - devs + 1);
	d->nfds++;
	if (!d->dtr || !d->rts) {
		/* A real port raises DTR and RTS when it is opened. */
		d->dtr = d->rts = 1;
		if (opened)
			report(d, "open");
	}
	return d;
}

static void after_open(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&lock);
	if (fd < SHIM_FD_MAX && fd_dev[fd]) {
		/* closed behind our back (a libc-internal close): the number
		 * was reused, so forget the old owner */
		devs[fd_dev[fd] - 1].nfds--;
		fd_dev[fd] = 0;
	}
	track(fd, 1);
	pthread_mutex_unlock(&lock);
}

/* ---- open and close ------------------------------------------------ */

static int needs_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	int fd;
	REAL(open_fn, open);

	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	fd = real_open(path, flags, mode);
	after_open(fd);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	int fd;
	REAL(open_fn, open64);

	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	fd = real_open64(path, flags, mode);
	after_open(fd);
	return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	int fd;
	REAL(openat_fn, openat);

	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	fd = real_openat(dirfd, path, flags, mode);
	after_open(fd);
	return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	int fd;
	REAL(openat_fn, openat64);

	if (needs_mode(flags)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	fd = real_openat64(dirfd, path, flags, mode);
	after_open(fd);
	return fd;
}

int __open_2(const char *path, int flags)
{
	int fd;
	REAL(open2_fn, __open_2);

	fd = real___open_2(path, flags);
	after_open(fd);
	return fd;
}

int __open64_2(const char *path, int flags)
{
	int fd;
	REAL(open2_fn, __open64_2);

	fd = real___open64_2(path, flags);
	after_open(fd);
	return fd;
}

int close(int fd)
{
	if (fd >= 0 && fd < SHIM_FD_MAX) {
		pthread_mutex_lock(&lock);
		if (fd_dev[fd]) {
			struct shim_dev *d = &devs[fd_dev[fd] - 1];
			struct termios tio;

			fd_dev[fd] = 0;
			/* The last close drops the lines only with HUPCL,
			 * as the tty layer does for a real port. */
			if (--d->nfds == 0 && tcgetattr(fd, &tio) == 0 &&
			    (tio.c_cflag & HUPCL) && (d->dtr || d->rts)) {
				d->dtr = d->rts = 0;
				report(d, "close");
			}
		}
		pthread_mutex_unlock(&lock);
	}
	return call_real_close(fd);
}

/* ---- modem-line ioctls --------------------------------------------- */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	REAL(ioctl_fn, ioctl);

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (req == TIOCMGET || req == TIOCMSET || req == TIOCMBIS ||
	    req == TIOCMBIC) {
		struct shim_dev *d;
		int *bits = arg;

		pthread_mutex_lock(&lock);
		d = track(fd, 0);
		if (d) {
			int dtr = d->dtr, rts = d->rts;

			if (!bits) {
				pthread_mutex_unlock(&lock);
				errno = EFAULT;
				return -1;
			}
			if (req == TIOCMGET) {
				*bits = (d->dtr ? TIOCM_DTR : 0) |
					(d->rts ? TIOCM_RTS : 0);
			} else if (req == TIOCMSET) {
				dtr = !!(*bits & TIOCM_DTR);
				rts = !!(*bits & TIOCM_RTS);
			} else {
				int on = req == TIOCMBIS;
				if (*bits & TIOCM_DTR)
					dtr = on;
				if (*bits & TIOCM_RTS)
					rts = on;
			}
			if (dtr != d->dtr || rts != d->rts) {
				d->dtr = dtr;
				d->rts = rts;
				report(d, req == TIOCMSET ? "tight" : "set");
			}
			pthread_mutex_unlock(&lock);
			return 0;
		}
		pthread_mutex_unlock(&lock);
	}
	return real_ioctl(fd, req, arg);
}

/* ---- the /sys/class/tty name check --------------------------------- */

static int fake_sys_stat(const char *dev, struct stat *st)
{
	if (stat(dev, st) != 0)
		return -1;
	st->st_mode = S_IFLNK | 0777;
	return 0;
}

int __lxstat(int ver, const char *path, struct stat *st)
{
	char dev[64];
	int is_device;
	REAL(lxstat_fn, __lxstat);

	if (sys_to_dev(path, dev, sizeof dev, &is_device))
		return fake_sys_stat(dev, st);
	return real___lxstat(ver, path, st);
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	char dev[64];
	int is_device;
	REAL(lxstat64_fn, __lxstat64);

	if (sys_to_dev(path, dev, sizeof dev, &is_device)) {
		struct stat s;
		if (fake_sys_stat(dev, &s) != 0)
			return -1;
		memset(st, 0, sizeof *st);
		st->st_dev = s.st_dev;
		st->st_ino = s.st_ino;
		st->st_mode = s.st_mode;
		st->st_nlink = s.st_nlink;
		st->st_rdev = s.st_rdev;
		return 0;
	}
	return real___lxstat64(ver, path, st);
}

int lstat(const char *path, struct stat *st)
{
	char dev[64];
	int is_device;
	REAL(lstat_fn, lstat);

	if (sys_to_dev(path, dev, sizeof dev, &is_device))
		return fake_sys_stat(dev, st);
	return real_lstat(path, st);
}

int lstat64(const char *path, struct stat64 *st)
{
	char dev[64];
	int is_device;
	REAL(lstat64_fn, lstat64);

	if (sys_to_dev(path, dev, sizeof dev, &is_device))
		return __lxstat64(1, path, st);
	return real_lstat64(path, st);
}

ssize_t readlink(const char *path, char *buf, size_t size)
{
	char dev[64];
	int is_device;
	REAL(readlink_fn, readlink);

	if (sys_to_dev(path, dev, sizeof dev, &is_device)) {
		size_t n = strlen(FAKE_LINK);
		if (n > size)
			n = size;
		memcpy(buf, FAKE_LINK, n);
		return (ssize_t)n;
	}
	return real_readlink(path, buf, size);
}
