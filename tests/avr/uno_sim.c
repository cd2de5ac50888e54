/* uno-sim: a simulated Arduino Uno for the STK500v1 tests. TEST-ONLY: it
 * links libsimavr, never libflashwise, and is never installed.
 *
 * An ATmega328P at 16 MHz (simavr) runs a REAL Arduino bootloader (built
 * from the Debian arduino-core-avr sources by tests/avr/build-bootloaders.sh)
 * with its UART on a pseudo-terminal, paced to real time: one simulated
 * second takes one second on the wall clock.
 *
 *   uno-sim --bootloader X.hex [--app Y.hex] --flash-file F [--link PATH]
 *           [--lines FILE] [--boot-on-open] [--seed N] [--fault SPEC]...
 *           [--exit-on-stdin-eof] [--verbose]
 *
 * The first line on stdout is the pty's name (/dev/pts/N); --link also
 * makes PATH a symlink to it. Events go to stderr with --verbose.
 *
 * What is modelled, and how:
 *
 *  - Fuses as on a Uno: BOOTRST programmed, so every reset starts at the
 *    boot section. BOOTSZ follows the image: the boot section is the
 *    smallest of 512 B / 1 KB / 2 KB / 4 KB that holds it (Optiboot rebuilt
 *    at 0x7C00: 1 KB, high fuse 0xDC; ATmegaBOOT at 0x7800: 2 KB, 0xDA). An
 *    image that runs past the end of flash (the Debian package's prebuilt
 *    optiboot_atmega328.hex ends at 0x8013) is refused. Lock bits 0x0F:
 *    SPM cannot change the boot section.
 *  - Resets. Power-on at start (PORF: Optiboot jumps to the application).
 *    An external reset (EXTRF: the bootloader runs) on a DTR rising edge
 *    read from the --lines file that tests/shim/pty_modem_shim.c writes
 *    ("DTR=1 RTS=x t=<CLOCK_MONOTONIC ns> dev=/dev/pts/N why=..."; lines for
 *    other ptys are ignored), as the Uno's DTR capacitor does; and, with
 *    --boot-on-open, on every open of the pty by a client (a pty has no
 *    modem lines, so this stands in for the DTR toggle a client makes at
 *    open). The CPU starts 66 ms after the edge (1 ms reset pulse plus the
 *    65 ms start-up time of low fuse 0xFF); bytes arriving before then are
 *    lost (the UART is off). MCUSR keeps its flags across resets until the
 *    firmware clears them, as on the chip.
 *  - Detecting an open: the harness holds no slave descriptor. It opens and
 *    closes the slave once at start (a never-opened pty shows no hangup),
 *    after which the master reports POLLHUP exactly while no client has
 *    the slave open; the loop polls it every iteration (<= 1 ms), so an
 *    open is seen when POLLHUP clears. Bytes the board sends while no
 *    client is there are lost, as with a USB adapter whose port is closed.
 *  - The serial line, bit by bit. Every byte becomes a 10-bit 8N1 frame on
 *    a wire at its sender's rate: the client's rate is read from the pty
 *    (tcgetattr on the master: Linux ptys share termios), the AVR's from
 *    UBRR0/U2X0 (Optiboot: UBRR 16, U2X = 117647 baud). The receiver
 *    samples the wire at its own rate as a UART does (falling edge, then
 *    the middle of each bit, stop bit low = framing error). So a client
 *    within about 4 % of the AVR's rate talks fine (115200 against 117647
 *    is +2.1 %) and a client at another rate gets garbled bytes, with the
 *    framing-error flag the AVR really sees (Optiboot does not restart its
 *    watchdog on those). Bytes are paced at the line rate both ways.
 *  - The receive buffer: the 328P holds 2 received bytes; one arriving
 *    while 2 are unread is lost (overrun). simavr's own 64-byte FIFO is
 *    never allowed to hold more than 2. RXC is raised at the stop bit.
 *  - Page writes: simavr does the SPM at once; here SPMEN reads back as
 *    set for 4 ms after a page erase or page write (the datasheet's 3.7 to
 *    4.5 ms), so boot_spm_busy_wait() waits as on the chip. Each erased or
 *    written page is saved to the flash file at once.
 *  - The flash file holds the whole 32 KB flash: loaded at start (created
 *    erased if missing), the boot section replaced by --bootloader (as an
 *    ISP programmer would), the application space replaced by --app if
 *    given, then saved; pages are saved as the bootloader writes them.
 *  - Faults (--seed N, counter-based, so the same traffic gives the same
 *    faults): drop:RATE, corrupt:RATE (one bit flipped) for both directions,
 *    or drop-rx/drop-tx/corrupt-rx/corrupt-tx for one (rx = towards the
 *    AVR); reset-write:N resets the board (external reset) 2 ms into the
 *    N-th page write since start; that page is left erased; misplace:N
 *    erases and programs the N-th page 8 KB away from its address (Z
 *    bit 13 flipped), as a damaged LOAD_ADDRESS byte would.
 *
 * Not modelled: EEPROM persistence (simavr keeps EEPROM in memory), RWW
 * reads during a page write, non-8N1 frames, non-standard client rates.
 * When simavr declares a crash (an invalid instruction...), the CPU stays
 * stopped until the next reset. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sim_avr.h>
#include <avr_uart.h>
#include <avr_flash.h>
#include <sim_core.h>

#define F_CPU 16000000u
#define FLASH_SIZE 32768u
#define PAGE_SIZE 128u
#define MISPLACE_BIT 0x2000u /* misplace:N moves a page by 8 KB */
#define NRWW_START 0x7000u
/* 1 ms reset pulse (the DTR capacitor) + 65 ms start-up (low fuse 0xFF) */
#define START_CYCLES (66u * (F_CPU / 1000u))
#define SPM_CYCLES (4u * (F_CPU / 1000u))
#define WIRE_MAX 1024u
#define RX_READ_MAX 256u
#define SPMEN_BIT 0x01u
#define PGERS_BIT 0x02u
#define PGWRT_BIT 0x04u
#define MCUSR_ADDR 0x54u

enum dir { DIR_RX, DIR_TX };
enum fault_kind { FAULT_DROP, FAULT_CORRUPT };

struct frame {
	double start;	/* cycle of the start bit's leading edge */
	double bit;	/* cycles per bit at the sender's rate */
	uint8_t data;
};

/* One direction of the serial line: frames in the order they were sent. */
struct wire {
	struct frame q[WIRE_MAX];
	unsigned head, n;
	double free_at;	 /* the sender's line is busy until then */
	double ready_at; /* the receiver looks for a start bit from then on */
};

struct uno {
	avr_t *avr;
	avr_uart_t *uart;
	avr_flash_t *flash;
	int (*flash_ioctl)(struct avr_io_t *io, uint32_t ctl, void *param);
	avr_irq_t *uart_in;
	uint32_t boot_start;
	uint8_t hfuse;

	uint64_t t0_ns;		/* CLOCK_MONOTONIC at cycle 0 */
	uint64_t cycle;		/* simulated cycles since start */
	avr_cycle_count_t avr_last;
	bool held;		/* in reset or start-up until run_at */
	uint64_t run_at;
	bool stopped;		/* crashed: waits for a reset */
	uint64_t spm_busy_until;
	bool spm_forced;

	struct wire rx, tx;
	uint64_t fault_index[2];

	int master;
	char slave[64];
	bool client;
	uint32_t client_baud;

	int flash_fd;
	const char *flash_path;

	int lines_fd;
	bool lines_fifo;
	char lbuf[1024];
	size_t llen;
	bool dtr;
	bool reset_pending;
	uint64_t reset_at;
	const char *reset_why;

	uint64_t seed;
	double rate[2][2];
	long reset_write_n;
	long page_writes;
	long misplace_n;          /* misplace:N, the N-th page erase */
	long page_erases;
	bool misplacing;          /* until that page's write */
	bool fault_reset;
	uint64_t fault_reset_at;
	uint32_t fault_page;

	bool boot_on_open, verbose;
	uint64_t overruns, lost_in_reset, max_lag;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

static void note(const struct uno *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(const struct uno *u, const char *fmt, ...)
{
	va_list ap;

	if (!u->verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "uno-sim: %8.3f s: ", (double)u->cycle / F_CPU);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 62.5 ns per cycle */
static uint64_t ns_to_cycles(uint64_t ns)
{
	return ns * 2u / 125u;
}

/* ---- faults ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Decided by the byte's index, never by timing. */
static bool fault_hit(const struct uno *u, enum dir d, enum fault_kind k, uint64_t index,
		      uint64_t *rnd)
{
	double rate = u->rate[d][k];
	uint64_t h;

	if (rate <= 0)
		return false;
	h = mix64(u->seed ^ ((uint64_t)d << 62) ^ ((uint64_t)k << 56) ^ mix64(index));
	if (rnd)
		*rnd = mix64(h);
	return (double)(h >> 11) * (1.0 / 9007199254740992.0) < rate;
}

/* ---- the wire ---- */

static struct frame *wire_at(struct wire *w, unsigned i)
{
	return &w->q[(w->head + i) % WIRE_MAX];
}

static int frame_bit(const struct frame *f, int k)
{
	if (k <= 0)
		return 0;
	if (k >= 9)
		return 1;
	return (f->data >> (k - 1)) & 1;
}

static void wire_send(struct wire *w, double now, double bit, uint8_t data)
{
	double start = now > w->free_at ? now : w->free_at;

	if (w->n == WIRE_MAX) {
		/* cannot happen at line rate; keep the newest */
		w->head = (w->head + 1) % WIRE_MAX;
		w->n--;
	}
	w->q[(w->head + w->n) % WIRE_MAX] = (struct frame){ start, bit, data };
	w->n++;
	w->free_at = start + 10.0 * bit;
}

static int wire_level(struct wire *w, double t)
{
	for (unsigned i = 0; i < w->n; i++) {
		const struct frame *f = wire_at(w, i);

		if (t < f->start)
			return 1;
		if (t < f->start + 10.0 * f->bit)
			return frame_bit(f, (int)((t - f->start) / f->bit));
	}
	return 1;
}

/* The first high-to-low step at or after `from`. The line is high before
 * every frame (idle, or the previous frame's stop bit). */
static bool wire_edge(struct wire *w, double from, double *edge)
{
	for (unsigned i = 0; i < w->n; i++) {
		const struct frame *f = wire_at(w, i);
		int prev = 1;

		if (f->start + 10.0 * f->bit <= from)
			continue;
		for (int k = 0; k < 10; k++) {
			int lv = frame_bit(f, k);
			double t = f->start + k * f->bit;

			if (lv == 0 && prev == 1 && t >= from) {
				*edge = t;
				return true;
			}
			prev = lv;
		}
	}
	return false;
}

static void wire_prune(struct wire *w)
{
	while (w->n > 0) {
		const struct frame *f = wire_at(w, 0);

		if (f->start + 10.0 * f->bit > w->ready_at)
			break;
		w->head = (w->head + 1) % WIRE_MAX;
		w->n--;
	}
}

/* A UART receiving at `bit` cycles per bit: returns true with a byte once
 * its stop bit has been sampled by `now`; otherwise sets *due to the cycle
 * when the next byte could be complete (INFINITY when the wire is idle). */
static bool wire_recv(struct wire *w, double bit, double now, uint8_t *out, bool *fe,
		      double *due)
{
	double e;

	for (;;) {
		double stop;
		uint8_t v = 0;

		if (!wire_edge(w, w->ready_at, &e)) {
			*due = INFINITY;
			wire_prune(w);
			return false;
		}
		stop = e + 9.5 * bit;
		if (stop > now) {
			*due = stop;
			return false;
		}
		if (wire_level(w, e + 0.5 * bit) != 0) {
			/* too short to be a start bit */
			w->ready_at = e + 0.5 * bit;
			continue;
		}
		for (int k = 0; k < 8; k++)
			if (wire_level(w, e + (1.5 + k) * bit))
				v |= (uint8_t)(1u << k);
		*fe = wire_level(w, stop) == 0;
		*out = v;
		w->ready_at = stop;
		wire_prune(w);
		return true;
	}
}

/* ---- the AVR ---- */

static uint64_t uno_now(const struct uno *u)
{
	avr_cycle_count_t c = u->avr->cycle;

	return u->cycle + (c >= u->avr_last ? c - u->avr_last : c);
}

static double avr_bit_cycles(const struct uno *u)
{
	avr_t *avr = u->avr;
	uint32_t ubrr = avr_regbit_get(avr, u->uart->ubrrl) |
			((uint32_t)avr_regbit_get(avr, u->uart->ubrrh) << 8);

	return (double)(ubrr + 1) * (avr_regbit_get(avr, u->uart->u2x) ? 8.0 : 16.0);
}

static uint32_t avr_baud(const struct uno *u)
{
	return (uint32_t)(F_CPU / avr_bit_cycles(u) + 0.5);
}

/* simavr times a byte as 11 bits (it always counts a parity bit); 8N1 is
 * 10, which is what the firmware here uses. */
static void fix_uart_timing(struct uno *u)
{
	avr_cycle_count_t want = (avr_cycle_count_t)(avr_bit_cycles(u) * 10.0);

	if (u->uart->cycles_per_byte != want)
		u->uart->cycles_per_byte = want;
}

static const char *reset_name(uint8_t flags)
{
	if (flags & 0x02)
		return "external";
	if (flags & 0x08)
		return "watchdog";
	if (flags & 0x01)
		return "power-on";
	return "other";
}

/* Pulls RESET: the CPU stops now and starts START_CYCLES later. */
static void uno_reset(struct uno *u, bool external, const char *why)
{
	avr_t *avr = u->avr;
	uint16_t reg = avr->reset_flags.extrf.reg ? avr->reset_flags.extrf.reg : MCUSR_ADDR;
	uint8_t flags = avr->data[reg];

	avr_reset(avr);
	/* MCUSR keeps its flags until the firmware clears them */
	avr->data[reg] = flags | (external ? 0x02 : 0x01);
	u->avr_last = avr->cycle;
	u->held = true;
	u->run_at = u->cycle + START_CYCLES;
	u->stopped = false;
	u->spm_busy_until = 0;
	u->spm_forced = false;
	note(u, "%s reset (%s), MCUSR=0x%02x, CPU starts at 0x%04x in 66 ms",
	     external ? "external" : "power-on", why, avr->data[reg], (unsigned)u->boot_start);
}

static void on_uart_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
	struct uno *u = param;
	uint64_t idx = u->fault_index[DIR_TX]++, rnd = 0;
	uint8_t b = (uint8_t)value;

	(void)irq;
	if (fault_hit(u, DIR_TX, FAULT_DROP, idx, NULL)) {
		note(u, "fault: dropped byte %llu to the host (0x%02x)", (unsigned long long)idx, b);
		return;
	}
	if (fault_hit(u, DIR_TX, FAULT_CORRUPT, idx, &rnd)) {
		note(u, "fault: corrupted byte %llu to the host (0x%02x)", (unsigned long long)idx, b);
		b ^= (uint8_t)(1u << (rnd % 8));
	}
	wire_send(&u->tx, (double)uno_now(u), avr_bit_cycles(u), b);
}

/* A byte reaches the AVR's receiver at its stop bit. */
static void avr_receive(struct uno *u, uint8_t b, bool fe)
{
	avr_t *avr = u->avr;
	avr_uart_t *p = u->uart;
	unsigned held = ((unsigned)p->input.write + uart_fifo_fifo_size - p->input.read) &
			(uart_fifo_fifo_size - 1);

	if (u->held || !avr_regbit_get(avr, p->rxen)) {
		u->lost_in_reset++;
		return;
	}
	if (held >= 2) {
		/* the 328P's receive buffer is two bytes deep */
		u->overruns++;
		note(u, "overrun: byte 0x%02x lost (2 unread)", b);
		return;
	}
	avr_raise_irq(u->uart_in, b | (fe ? UART_INPUT_FE : 0));
	avr_raise_interrupt(avr, &p->rxc);
}

static uint8_t spm_read(struct avr_t *avr, avr_io_addr_t addr, void *param)
{
	struct uno *u = param;
	uint8_t v = avr->data[addr];

	if (uno_now(u) < u->spm_busy_until) {
		u->spm_forced = true;
		return v | SPMEN_BIT;
	}
	if (u->spm_forced) {
		u->spm_forced = false;
		v &= (uint8_t)~SPMEN_BIT;
	}
	return v;
}

static void save_page(struct uno *u, uint32_t page)
{
	off_t off = (off_t)page * PAGE_SIZE;

	if (pwrite(u->flash_fd, u->avr->flash + off, PAGE_SIZE, off) != (ssize_t)PAGE_SIZE)
		fprintf(stderr, "uno-sim: cannot save page 0x%04x to %s: %s\n",
			(unsigned)(page * PAGE_SIZE), u->flash_path, strerror(errno));
}

/* simavr calls this for every SPM instruction. */
static int flash_ioctl_hook(struct avr_io_t *io, uint32_t ctl, void *param)
{
	avr_t *avr = io->avr;
	struct uno *u = avr->custom.data;
	uint8_t cs = avr->data[u->flash->r_spm];
	bool op = ctl == AVR_IOCTL_FLASH_SPM && (cs & SPMEN_BIT) && (cs & (PGERS_BIT | PGWRT_BIT));
	bool moved = false;
	uint32_t z, page;
	bool locked;
	uint8_t keep[PAGE_SIZE];
	int r;

	if (op && (cs & PGERS_BIT) && u->misplace_n > 0 && ++u->page_erases == u->misplace_n)
		u->misplacing = true;
	if (op && u->misplacing) {
		/* Only the SPM sees the other address; the bootloader's own
		 * registers are put back after it. */
		avr->data[R_ZH] ^= MISPLACE_BIT >> 8;
		moved = true;
	}
	z = (uint32_t)avr->data[R_ZL] | ((uint32_t)avr->data[R_ZH] << 8);
	page = (z % FLASH_SIZE) / PAGE_SIZE;
	locked = op && page * PAGE_SIZE >= u->boot_start;
	if (locked)
		memcpy(keep, avr->flash + page * PAGE_SIZE, PAGE_SIZE);
	r = u->flash_ioctl(io, ctl, param);
	if (moved) {
		avr->data[R_ZH] ^= MISPLACE_BIT >> 8;
		note(u, "fault: page 0x%04x %s at 0x%04x instead", (unsigned)((z ^ MISPLACE_BIT) &
		     ~(PAGE_SIZE - 1)), cs & PGERS_BIT ? "erased" : "programmed",
		     (unsigned)(page * PAGE_SIZE));
		if (cs & PGWRT_BIT)
			u->misplacing = false;
	}
	if (!op)
		return r;
	if (locked) {
		/* lock bits 0x0F: SPM cannot change the boot section */
		memcpy(avr->flash + page * PAGE_SIZE, keep, PAGE_SIZE);
		note(u, "SPM on boot-section page 0x%04x ignored (locked)",
		     (unsigned)(page * PAGE_SIZE));
		return r;
	}
	u->spm_busy_until = uno_now(u) + SPM_CYCLES;
	save_page(u, page);
	if (cs & PGERS_BIT) {
		note(u, "page 0x%04x erased", (unsigned)(page * PAGE_SIZE));
		return r;
	}
	u->page_writes++;
	note(u, "page 0x%04x written (%ld)", (unsigned)(page * PAGE_SIZE), u->page_writes);
	if (u->reset_write_n > 0 && u->page_writes == u->reset_write_n) {
		u->fault_reset = true;
		u->fault_reset_at = uno_now(u) + SPM_CYCLES / 2;
		u->fault_page = page;
	}
	return r;
}

static void fault_reset_now(struct uno *u)
{
	uint32_t off = u->fault_page * PAGE_SIZE;

	u->fault_reset = false;
	/* the erase finished, the write did not */
	memset(u->avr->flash + off, 0xFF, PAGE_SIZE);
	save_page(u, u->fault_page);
	note(u, "fault: reset during the write of page 0x%04x (left erased)", (unsigned)off);
	uno_reset(u, true, "fault reset-write");
}

/* Runs the CPU (or waits out a reset) up to cycle `until`. */
static void run_until(struct uno *u, uint64_t until)
{
	avr_t *avr = u->avr;

	while (u->cycle < until) {
		if (u->held) {
			if (u->run_at > until) {
				u->cycle = until;
				break;
			}
			if (u->cycle < u->run_at)
				u->cycle = u->run_at;
			u->held = false;
			u->avr_last = avr->cycle;
			note(u, "CPU running from 0x%04x (reset cause: %s)", (unsigned)avr->pc,
			     reset_name(avr->data[avr->reset_flags.porf.reg ?
							  avr->reset_flags.porf.reg : MCUSR_ADDR]));
			continue;
		}
		if (u->stopped) {
			u->cycle = until;
			break;
		}
		fix_uart_timing(u);
		while (u->cycle < until) {
			int st = avr_run(avr);
			avr_cycle_count_t c = avr->cycle;

			u->cycle += c >= u->avr_last ? c - u->avr_last : c;
			u->avr_last = c;
			if (st == cpu_Crashed || st == cpu_Stopped || st == cpu_Done) {
				fprintf(stderr, "uno-sim: the AVR crashed at 0x%04x; waiting for a "
						"reset\n", (unsigned)avr->pc);
				u->stopped = true;
				break;
			}
			if (u->fault_reset && u->cycle >= u->fault_reset_at)
				break;
		}
		if (u->fault_reset && u->cycle >= u->fault_reset_at)
			fault_reset_now(u);
	}
}

/* ---- files ---- */

/* Intel HEX into a 32 KB image; *lo and *hi get the lowest address and
 * one past the highest. Addresses beyond the flash are an error. */
static int ihex_load(const char *path, uint8_t *img, uint32_t *lo, uint32_t *hi)
{
	FILE *f = fopen(path, "r");
	char line[600];
	uint32_t base = 0;
	int ln = 0;

	*lo = UINT32_MAX;
	*hi = 0;
	if (!f) {
		fprintf(stderr, "uno-sim: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		uint8_t rec[300];
		size_t len = strcspn(line, "\r\n"), n;
		unsigned sum = 0, cnt, type, addr;

		ln++;
		line[len] = '\0';
		if (len == 0)
			continue;
		if (line[0] != ':' || len < 11 || (len - 1) % 2 || (len - 1) / 2 > sizeof rec)
			goto bad;
		n = (len - 1) / 2;
		for (size_t i = 0; i < n; i++) {
			unsigned v;

			if (sscanf(line + 1 + 2 * i, "%2x", &v) != 1)
				goto bad;
			rec[i] = (uint8_t)v;
			sum += v;
		}
		cnt = rec[0];
		addr = ((unsigned)rec[1] << 8) | rec[2];
		type = rec[3];
		if (cnt + 5 != n || (sum & 0xFF) != 0)
			goto bad;
		if (type == 1)
			break;
		if (type == 2 || type == 4) {
			if (cnt != 2)
				goto bad;
			base = (((uint32_t)rec[4] << 8) | rec[5]) << (type == 2 ? 4 : 16);
			continue;
		}
		if (type != 0)
			continue;
		for (unsigned i = 0; i < cnt; i++) {
			uint32_t a = base + addr + i;

			if (a >= FLASH_SIZE) {
				fprintf(stderr, "uno-sim: %s:%d: data at 0x%04x is past the end of "
						"the 32 KB flash\n", path, ln, (unsigned)a);
				fclose(f);
				return -1;
			}
			img[a] = rec[4 + i];
			if (a < *lo)
				*lo = a;
			if (a + 1 > *hi)
				*hi = a + 1;
		}
	}
	fclose(f);
	if (*hi == 0) {
		fprintf(stderr, "uno-sim: %s holds no data\n", path);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "uno-sim: %s:%d: not a valid Intel HEX record\n", path, ln);
	fclose(f);
	return -1;
}

static int load_flash(struct uno *u, const char *boot, const char *app)
{
	static const struct {
		uint32_t start;
		uint8_t hfuse;
	} sizes[] = { { 0x7E00, 0xDE }, { 0x7C00, 0xDC }, { 0x7800, 0xDA }, { 0x7000, 0xD8 } };
	uint8_t *img = malloc(FLASH_SIZE), *tmp = malloc(FLASH_SIZE);
	uint32_t lo, hi;
	struct stat st;
	int rc = -1;

	if (!img || !tmp) {
		fprintf(stderr, "uno-sim: out of memory\n");
		goto out;
	}
	memset(img, 0xFF, FLASH_SIZE);
	u->flash_fd = open(u->flash_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (u->flash_fd < 0 || fstat(u->flash_fd, &st) != 0) {
		fprintf(stderr, "uno-sim: cannot open the flash file %s: %s\n", u->flash_path,
			strerror(errno));
		goto out;
	}
	if (st.st_size != 0 && st.st_size != FLASH_SIZE) {
		fprintf(stderr, "uno-sim: %s is %lld bytes; a flash file holds 32768\n",
			u->flash_path, (long long)st.st_size);
		goto out;
	}
	if (st.st_size == FLASH_SIZE &&
	    pread(u->flash_fd, img, FLASH_SIZE, 0) != (ssize_t)FLASH_SIZE) {
		fprintf(stderr, "uno-sim: cannot read %s\n", u->flash_path);
		goto out;
	}

	memset(tmp, 0xFF, FLASH_SIZE);
	if (ihex_load(boot, tmp, &lo, &hi) != 0)
		goto out;
	u->boot_start = 0;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		if (lo >= sizes[i].start) {
			u->boot_start = sizes[i].start;
			u->hfuse = sizes[i].hfuse;
			break;
		}
	if (!u->boot_start) {
		fprintf(stderr, "uno-sim: %s starts at 0x%04x, below the largest boot section "
				"(0x7000)\n", boot, (unsigned)lo);
		goto out;
	}
	memcpy(img + u->boot_start, tmp + u->boot_start, FLASH_SIZE - u->boot_start);

	if (app) {
		memset(tmp, 0xFF, FLASH_SIZE);
		if (ihex_load(app, tmp, &lo, &hi) != 0)
			goto out;
		if (hi > u->boot_start) {
			fprintf(stderr, "uno-sim: %s reaches 0x%04x, into the boot section at "
					"0x%04x\n", app, (unsigned)(hi - 1), (unsigned)u->boot_start);
			goto out;
		}
		memcpy(img, tmp, u->boot_start);
	}
	memcpy(u->avr->flash, img, FLASH_SIZE);
	if (pwrite(u->flash_fd, img, FLASH_SIZE, 0) != (ssize_t)FLASH_SIZE) {
		fprintf(stderr, "uno-sim: cannot write %s: %s\n", u->flash_path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(img);
	free(tmp);
	return rc;
}

/* ---- the pty ---- */

static uint32_t speed_to_baud(speed_t s)
{
	static const struct {
		speed_t s;
		uint32_t b;
	} t[] = { { B1200, 1200 },     { B2400, 2400 },	    { B4800, 4800 },
		  { B9600, 9600 },     { B19200, 19200 },   { B38400, 38400 },
		  { B57600, 57600 },   { B115200, 115200 }, { B230400, 230400 },
		  { B460800, 460800 }, { B500000, 500000 }, { B921600, 921600 },
		  { B1000000, 1000000 } };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].s == s)
			return t[i].b;
	return 0;
}

static int pty_open(struct uno *u)
{
	struct termios t;
	const char *name;
	int s;

	u->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (u->master < 0 || grantpt(u->master) != 0 || unlockpt(u->master) != 0) {
		fprintf(stderr, "uno-sim: cannot create a pseudo-terminal: %s\n", strerror(errno));
		return -1;
	}
	name = ptsname(u->master);
	if (!name || strlen(name) >= sizeof u->slave) {
		fprintf(stderr, "uno-sim: no name for the pseudo-terminal\n");
		return -1;
	}
	strcpy(u->slave, name);
	/* One open and close: from then on the master shows POLLHUP exactly
	 * while no client has the port open (a never-opened pty shows none).
	 * Raw 115200 by default, so a plain `cat` sees the board's bytes. */
	s = open(u->slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		fprintf(stderr, "uno-sim: cannot open %s: %s\n", u->slave, strerror(errno));
		return -1;
	}
	if (tcgetattr(s, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		tcsetattr(s, TCSANOW, &t);
	}
	close(s);
	fcntl(u->master, F_SETFL, fcntl(u->master, F_GETFL) | O_NONBLOCK);
	return 0;
}

static void client_check(struct uno *u)
{
	struct pollfd p = { .fd = u->master, .events = POLLIN };
	struct termios t;
	bool present;

	if (poll(&p, 1, 0) < 0)
		return;
	present = !(p.revents & POLLHUP);
	u->client_baud = tcgetattr(u->master, &t) == 0 ? speed_to_baud(cfgetospeed(&t)) : 0;
	if (present == u->client)
		return;
	u->client = present;
	note(u, "client %s (%u baud; the board's UART: %u baud)",
	     present ? "opened the port" : "closed the port", (unsigned)u->client_baud,
	     (unsigned)avr_baud(u));
	if (present && u->boot_on_open) {
		u->reset_pending = true;
		u->reset_at = u->cycle;
		u->reset_why = "port opened";
	}
}

static void client_read(struct uno *u)
{
	uint8_t buf[RX_READ_MAX];
	ssize_t r;
	double bit;

	if (!u->client || u->rx.n >= RX_READ_MAX)
		return;
	r = read(u->master, buf, RX_READ_MAX - u->rx.n);
	if (r <= 0)
		return;
	bit = u->client_baud ? (double)F_CPU / u->client_baud : 0;
	for (ssize_t i = 0; i < r; i++) {
		uint64_t idx = u->fault_index[DIR_RX]++, rnd = 0;
		uint8_t b = buf[i];

		if (!bit)
			continue; /* B0: the line is down */
		if (fault_hit(u, DIR_RX, FAULT_DROP, idx, NULL)) {
			note(u, "fault: dropped byte %llu from the host (0x%02x)",
			     (unsigned long long)idx, b);
			continue;
		}
		if (fault_hit(u, DIR_RX, FAULT_CORRUPT, idx, &rnd)) {
			note(u, "fault: corrupted byte %llu from the host (0x%02x)",
			     (unsigned long long)idx, b);
			b ^= (uint8_t)(1u << (rnd % 8));
		}
		wire_send(&u->rx, (double)u->cycle, bit, b);
	}
}

/* The host's UART decodes what the board sent, at the client's rate.
 * Returns the cycle when the next byte will be complete (INFINITY: none). */
static double client_write(struct uno *u)
{
	uint8_t buf[512];
	size_t n = 0;
	uint8_t b;
	bool fe;
	double due = INFINITY;

	if (!u->client_baud) {
		u->tx.ready_at = (double)u->cycle;
		wire_prune(&u->tx);
		return INFINITY;
	}
	while (n < sizeof buf &&
	       wire_recv(&u->tx, (double)F_CPU / u->client_baud, (double)u->cycle, &b, &fe, &due))
		buf[n++] = b;
	/* a client that does not read loses bytes, as with a real adapter */
	if (n && u->client && write(u->master, buf, n) < 0 && errno != EAGAIN)
		note(u, "writing the pty: %s", strerror(errno));
	return n == sizeof buf ? (double)u->cycle : due;
}

/* ---- the DTR side channel ---- */

static int lines_open(struct uno *u, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
		u->lines_fifo = true;
		u->lines_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	} else {
		u->lines_fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
		/* lines from earlier runs describe another board's past */
		if (u->lines_fd >= 0)
			lseek(u->lines_fd, 0, SEEK_END);
	}
	if (u->lines_fd < 0) {
		fprintf(stderr, "uno-sim: cannot open the lines file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void lines_parse(struct uno *u, const char *line)
{
	int dtr, rts;
	unsigned long long t;
	char dev[128];
	uint64_t at;

	if (sscanf(line, "DTR=%d RTS=%d t=%llu dev=%127s", &dtr, &rts, &t, dev) != 4 ||
	    strcmp(dev, u->slave) != 0)
		return;
	if (dtr && !u->dtr) {
		/* the Uno's DTR capacitor turns the rising edge into a reset pulse */
		at = t > u->t0_ns ? ns_to_cycles(t - u->t0_ns) : 0;
		u->reset_pending = true;
		u->reset_at = at > u->cycle ? at : u->cycle;
		u->reset_why = "DTR rising";
	}
	u->dtr = dtr != 0;
}

static void lines_poll(struct uno *u)
{
	if (u->lines_fd < 0)
		return;
	for (;;) {
		ssize_t r = read(u->lines_fd, u->lbuf + u->llen, sizeof u->lbuf - 1 - u->llen);
		char *start, *nl;

		if (r <= 0)
			break;
		u->llen += (size_t)r;
		u->lbuf[u->llen] = '\0';
		start = u->lbuf;
		while ((nl = strchr(start, '\n')) != NULL) {
			*nl = '\0';
			lines_parse(u, start);
			start = nl + 1;
		}
		u->llen -= (size_t)(start - u->lbuf);
		memmove(u->lbuf, start, u->llen);
		if (u->llen == sizeof u->lbuf - 1)
			u->llen = 0;
	}
	if (!u->lines_fifo) {
		struct stat st;

		if (fstat(u->lines_fd, &st) == 0 && lseek(u->lines_fd, 0, SEEK_CUR) > st.st_size) {
			lseek(u->lines_fd, 0, SEEK_SET);
			u->llen = 0;
		}
	}
}

/* ---- main loop ---- */

static void step(struct uno *u, uint64_t target)
{
	while (u->cycle < target) {
		uint64_t ev = target;
		uint8_t b;
		bool fe;
		double due;

		if (u->reset_pending && u->reset_at <= u->cycle) {
			u->reset_pending = false;
			uno_reset(u, true, u->reset_why);
		}
		if (u->reset_pending && u->reset_at < ev)
			ev = u->reset_at;
		while (wire_recv(&u->rx, avr_bit_cycles(u), (double)u->cycle, &b, &fe, &due))
			avr_receive(u, b, fe);
		if (due < (double)ev)
			ev = due <= (double)u->cycle ? u->cycle + 1 : (uint64_t)ceil(due);
		run_until(u, ev);
	}
}

static int serve(struct uno *u, bool exit_on_eof)
{
	while (!stop_signal) {
		struct pollfd pf[3];
		nfds_t n = 0;
		int stdin_i = -1;
		uint64_t now = mono_ns(), target = ns_to_cycles(now - u->t0_ns);
		/* at least every millisecond; sooner when a byte for the host
		 * completes, so replies are not held back */
		int64_t wait_ns = 1000000;
		struct timespec ts;
		double due;

		client_check(u);
		client_read(u);
		lines_poll(u);
		step(u, target);
		due = client_write(u);

		now = mono_ns();
		target = ns_to_cycles(now - u->t0_ns);
		if (target > u->cycle + F_CPU / 1000 && target - u->cycle > u->max_lag)
			u->max_lag = target - u->cycle;
		if (due < INFINITY) {
			double ns = (due - (double)target) * 62.5;

			if (ns < (double)wait_ns)
				wait_ns = ns > 0 ? (int64_t)ns + 1000 : 0;
		}
		if (target > u->cycle + F_CPU / 1000)
			wait_ns = 0; /* behind the wall clock: catch up */
		ts.tv_sec = 0;
		ts.tv_nsec = (long)wait_ns;
		if (u->client)
			pf[n++] = (struct pollfd){ .fd = u->master, .events = POLLIN };
		if (u->lines_fd >= 0 && u->lines_fifo)
			pf[n++] = (struct pollfd){ .fd = u->lines_fd, .events = POLLIN };
		if (exit_on_eof) {
			stdin_i = (int)n;
			pf[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (ppoll(pf, n, &ts, NULL) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "uno-sim: poll: %s\n", strerror(errno));
			return 1;
		}
		if (stdin_i >= 0 && pf[stdin_i].revents) {
			char buf[256];
			ssize_t r = read(STDIN_FILENO, buf, sizeof buf);

			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
				return 0;
		}
	}
	return 0;
}

/* ---- set-up ---- */

static void quiet_logger(struct avr_t *avr, const int level, const char *fmt, va_list ap)
{
	struct uno *u = avr ? avr->custom.data : NULL;

	if (level > LOG_ERROR && !(u && u->verbose && level <= LOG_WARNING))
		return;
	fputs("uno-sim: simavr: ", stderr);
	vfprintf(stderr, fmt, ap);
}

static void no_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
	(void)avr;
	(void)how_long;
}

/* simavr's avr_callback_run_raw() without its two surprises: it would
 * usleep() while the AVR sleeps (pacing is ours), and it ends the whole
 * simulation (freeing the flash) when the AVR sleeps with interrupts off.
 * A chip that does that sleeps until a reset; the watchdog, a cycle timer,
 * can still reset it. */
static void uno_run_one(avr_t *avr)
{
	avr_flashaddr_t new_pc = avr->pc;
	avr_cycle_count_t sleep;

	if (avr->state == cpu_Running)
		new_pc = avr_run_one(avr);
	sleep = avr_cycle_timer_process(avr);
	avr->pc = new_pc;
	if (avr->state == cpu_Sleeping)
		avr->cycle += 1 + sleep;
	if ((avr->state == cpu_Running || avr->state == cpu_Sleeping) && avr->interrupt_state)
		avr_service_interrupts(avr);
}

static avr_io_t *find_io(avr_t *avr, const char *kind)
{
	for (avr_io_t *p = avr->io_port; p; p = p->next)
		if (p->kind && !strcmp(p->kind, kind))
			return p;
	return NULL;
}

static avr_t *make_avr(void)
{
	avr_t *avr;
	int save;

	/* avr_make_mcu_by_name() prints a banner on stdout, where the pty
	 * name must be the first line */
	fflush(stdout);
	save = dup(STDOUT_FILENO);
	if (save >= 0) {
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (nul >= 0) {
			dup2(nul, STDOUT_FILENO);
			close(nul);
		}
	}
	avr = avr_make_mcu_by_name("atmega328p");
	fflush(stdout);
	if (save >= 0) {
		dup2(save, STDOUT_FILENO);
		close(save);
	}
	return avr;
}

static int parse_fault(struct uno *u, const char *v)
{
	static const struct {
		const char *name;
		int dir; /* -1: both */
		enum fault_kind kind;
	} kinds[] = { { "drop", -1, FAULT_DROP },	{ "corrupt", -1, FAULT_CORRUPT },
		      { "drop-rx", DIR_RX, FAULT_DROP }, { "drop-tx", DIR_TX, FAULT_DROP },
		      { "corrupt-rx", DIR_RX, FAULT_CORRUPT },
		      { "corrupt-tx", DIR_TX, FAULT_CORRUPT } };
	const char *colon = strchr(v, ':');
	size_t nl = colon ? (size_t)(colon - v) : strlen(v);
	char *end;

	if (nl == 8 && !strncmp(v, "misplace", 8)) {
		long n = colon ? strtol(colon + 1, &end, 10) : 0;

		if (!colon || *end || end == colon + 1 || n < 1) {
			fprintf(stderr, "uno-sim: --fault misplace:N needs N >= 1\n");
			return -1;
		}
		u->misplace_n = n;
		return 0;
	}
	if (nl == 11 && !strncmp(v, "reset-write", 11)) {
		long n = colon ? strtol(colon + 1, &end, 10) : 1;

		if ((colon && (*end || end == colon + 1)) || n < 1) {
			fprintf(stderr, "uno-sim: --fault reset-write:N needs N >= 1\n");
			return -1;
		}
		u->reset_write_n = n;
		return 0;
	}
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		double rate;

		if (strlen(kinds[i].name) != nl || strncmp(v, kinds[i].name, nl))
			continue;
		if (!colon) {
			fprintf(stderr, "uno-sim: --fault %s needs a rate, e.g. %s:0.01\n", v, v);
			return -1;
		}
		errno = 0;
		rate = strtod(colon + 1, &end);
		if (errno || *end || end == colon + 1 || !(rate >= 0 && rate <= 1)) {
			fprintf(stderr, "uno-sim: --fault %s: the rate must be 0..1\n", v);
			return -1;
		}
		for (int d = 0; d < 2; d++)
			if (kinds[i].dir < 0 || kinds[i].dir == d)
				u->rate[d][kinds[i].kind] = rate;
		return 0;
	}
	fprintf(stderr, "uno-sim: unknown fault '%s' (drop, corrupt, drop-rx, drop-tx, "
			"corrupt-rx, corrupt-tx with :RATE, reset-write:N or misplace:N)\n", v);
	return -1;
}

static void usage(FILE *f)
{
	fputs("usage: uno-sim --bootloader X.hex [--app Y.hex] --flash-file F [--link PATH]\n"
	      "               [--lines FILE] [--boot-on-open] [--seed N] [--fault SPEC]...\n"
	      "               [--exit-on-stdin-eof] [--verbose]\n"
	      "faults: drop:RATE, corrupt:RATE (both directions), drop-rx, drop-tx,\n"
	      "        corrupt-rx, corrupt-tx (rx = towards the AVR), reset-write:N,\n"
	      "        misplace:N\n",
	      f);
}

int main(int argc, char **argv)
{
	struct uno *u = calloc(1, sizeof *u);
	const char *boot = NULL, *app = NULL, *link_path = NULL, *lines = NULL;
	bool exit_on_eof = false;
	struct sigaction sa;
	int rc = 2;

	if (!u) {
		fprintf(stderr, "uno-sim: out of memory\n");
		return 1;
	}
	u->master = u->flash_fd = u->lines_fd = -1;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--boot-on-open")) {
			u->boot_on_open = true;
			continue;
		}
		if (!strcmp(o, "--exit-on-stdin-eof")) {
			exit_on_eof = true;
			continue;
		}
		if (!strcmp(o, "--verbose")) {
			u->verbose = true;
			continue;
		}
		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			free(u);
			return 0;
		}
		if (!v) {
			fprintf(stderr, "uno-sim: unknown option or missing value: %s\n", o);
			usage(stderr);
			goto out;
		}
		i++;
		if (!strcmp(o, "--bootloader")) {
			boot = v;
		} else if (!strcmp(o, "--app")) {
			app = v;
		} else if (!strcmp(o, "--flash-file")) {
			u->flash_path = v;
		} else if (!strcmp(o, "--link")) {
			link_path = v;
		} else if (!strcmp(o, "--lines")) {
			lines = v;
		} else if (!strcmp(o, "--seed")) {
			char *end;

			errno = 0;
			u->seed = strtoull(v, &end, 0);
			if (errno || *end || end == v) {
				fprintf(stderr, "uno-sim: --seed wants a number, not '%s'\n", v);
				goto out;
			}
		} else if (!strcmp(o, "--fault")) {
			if (parse_fault(u, v) != 0)
				goto out;
		} else {
			fprintf(stderr, "uno-sim: unknown option %s\n", o);
			usage(stderr);
			goto out;
		}
	}
	if (!boot || !u->flash_path) {
		fprintf(stderr, "uno-sim: --bootloader and --flash-file are required\n");
		usage(stderr);
		goto out;
	}
	rc = 1;

	avr_global_logger_set(quiet_logger);
	u->avr = make_avr();
	if (!u->avr) {
		fprintf(stderr, "uno-sim: simavr has no atmega328p\n");
		goto out;
	}
	avr_init(u->avr);
	u->avr->custom.data = u;
	u->avr->frequency = F_CPU;
	u->avr->log = LOG_WARNING;
	/* pacing is ours: a sleeping AVR must not sleep the process */
	u->avr->sleep = no_sleep;
	u->avr->run = uno_run_one;
	u->uart = (avr_uart_t *)find_io(u->avr, "uart");
	u->flash = (avr_flash_t *)find_io(u->avr, "flash");
	if (!u->uart || !u->flash) {
		fprintf(stderr, "uno-sim: simavr's atmega328p lacks a UART or SPM module\n");
		goto out;
	}
	if (load_flash(u, boot, app) != 0)
		goto out;
	u->avr->fuse[AVR_FUSE_LOW] = 0xFF;
	u->avr->fuse[AVR_FUSE_HIGH] = u->hfuse;
	u->avr->fuse[AVR_FUSE_EXT] = 0xFD;
	u->avr->lockbits = 0x0F;
	u->avr->reset_pc = u->boot_start;
	{
		uint32_t flags = 0; /* no console echo, no usleep while polling */

		avr_ioctl(u->avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	}
	u->uart_in = avr_io_getirq(u->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_irq_register_notify(avr_io_getirq(u->avr, AVR_IOCTL_UART_GETIRQ('0'),
					      UART_IRQ_OUTPUT), on_uart_out, u);
	u->flash_ioctl = u->flash->io.ioctl;
	u->flash->io.ioctl = flash_ioctl_hook;
	avr_register_io_read(u->avr, u->flash->r_spm, spm_read, u);

	if (lines && lines_open(u, lines) != 0)
		goto out;
	if (pty_open(u) != 0)
		goto out;
	if (link_path) {
		unlink(link_path);
		if (symlink(u->slave, link_path) != 0) {
			fprintf(stderr, "uno-sim: cannot create the link %s: %s\n", link_path,
				strerror(errno));
			link_path = NULL;
			goto out;
		}
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	u->t0_ns = mono_ns();
	/* power-on: PORF, so Optiboot goes straight to the application */
	{
		uint16_t reg = u->avr->reset_flags.porf.reg ? u->avr->reset_flags.porf.reg
							     : MCUSR_ADDR;

		u->avr->data[reg] = 0;
		uno_reset(u, false, "power-on");
	}
	note(u, "%s: boot section 0x%04x-0x7fff (high fuse 0x%02x), flash file %s",
	     boot, (unsigned)u->boot_start, u->hfuse, u->flash_path);
	printf("%s\n", u->slave);
	fflush(stdout);
	rc = serve(u, exit_on_eof);
	note(u, "exit: %ld page writes, %llu overruns, %llu bytes lost in reset, max lag %.1f ms",
	     u->page_writes, (unsigned long long)u->overruns,
	     (unsigned long long)u->lost_in_reset, (double)u->max_lag * 1000.0 / F_CPU);
	if (u->avr->flash && pwrite(u->flash_fd, u->avr->flash, FLASH_SIZE, 0) != FLASH_SIZE) {
		fprintf(stderr, "uno-sim: cannot save %s: %s\n", u->flash_path, strerror(errno));
		rc = 1;
	}
out:
	if (link_path)
		unlink(link_path);
	if (u->lines_fd >= 0)
		close(u->lines_fd);
	if (u->flash_fd >= 0)
		close(u->flash_fd);
	if (u->master >= 0)
		close(u->master);
	if (u->avr) {
		avr_terminate(u->avr);
		free(u->avr);
	}
	free(u);
	return rc;
}
