/* The simulator's wire: the pty, line-rate pacing (10 bits per byte at the
 * chip's baud), what a baud mismatch does to bytes, injected faults, and
 * the DTR/RTS side channel written by tests/shim/pty_modem_shim.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "sim_baud.h"
#include "strbuf.h"

/* EN rises through an RC network on real boards, so the chip samples its
 * strapping pins a few milliseconds after the release: a short (on,on)
 * step between "reset" and "boot with GPIO0 low" does not count. */
#define SIM_BOOT_DELAY_NS 5000000u
#define SIM_LINES_POLL_MS 5
#define SIM_RST_EXT_PIN 2

uint64_t sim_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int sim_pty_open(struct sim *s)
{
	struct termios t;
	const char *name;

	s->master = posix_openpt(O_RDWR | O_NOCTTY);
	if (s->master < 0 || grantpt(s->master) != 0 || unlockpt(s->master) != 0) {
		fprintf(stderr, "flashwise-sim: cannot create a pseudo-terminal: %s\n",
			strerror(errno));
		return -1;
	}
	name = ptsname(s->master);
	if (!name || strlen(name) >= sizeof s->slave_path) {
		fprintf(stderr, "flashwise-sim: no name for the pseudo-terminal\n");
		return -1;
	}
	strcpy(s->slave_path, name);
	/* Keeping one slave descriptor open means the master never sees a
	 * hangup while no client has the port open, as a USB adapter stays. */
	s->slave = open(s->slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s->slave < 0) {
		fprintf(stderr, "flashwise-sim: cannot open %s: %s\n", s->slave_path,
			strerror(errno));
		return -1;
	}
	if (tcgetattr(s->slave, &t) == 0) {
		cfmakeraw(&t);
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		tcsetattr(s->slave, TCSANOW, &t);
	}
	fcntl(s->master, F_SETFL, fcntl(s->master, F_GETFL) | O_NONBLOCK);
	fcntl(s->master, F_SETFD, FD_CLOEXEC);
	return 0;
}

uint32_t sim_client_baud(const struct sim *s)
{
	uint32_t b = sim_baud_get(s->master);

	return b ? b : 115200u;
}

/* A UART tolerates a few percent of rate error; beyond that, garbage. */
static bool baud_mismatch(uint32_t a, uint32_t b)
{
	uint32_t d = a > b ? a - b : b - a;

	return (uint64_t)d * 100u > (uint64_t)b * 3u;
}

/* What a byte sent at one rate looks like when read at another: not the
 * real bit-level mangling, but deterministic junk. 0xC0 is avoided so the
 * junk never fakes a SLIP delimiter (drivers must skip junk anyway). */
static uint8_t garble(struct sim *s, uint8_t b)
{
	static const uint8_t pat[8] = { 0x5A, 0x93, 0x0F, 0xE6, 0x21, 0xB8, 0x74, 0xCD };
	uint8_t o = (uint8_t)(b ^ pat[s->garble_ctr % 8] ^ (uint8_t)(s->garble_ctr >> 3));

	s->garble_ctr++;
	return o == SLIP_END ? 0xE0 : o;
}

static uint64_t byte_ns(const struct sim *s, uint32_t baud)
{
	if (!s->cfg.pacing || baud == 0)
		return 0;
	return 10000000000ull / baud;
}

/* ---- faults ---- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Counter-based, so the decision for byte i never depends on timing: the
 * same seed and the same traffic give the same faults. */
bool sim_fault_hit(struct sim *s, enum sim_dir d, enum sim_fault_kind k,
		   uint64_t index, uint64_t *rnd)
{
	double rate = s->faults.rate[d][k];
	uint64_t h;

	if (rate <= 0)
		return false;
	h = splitmix64(s->faults.seed ^ ((uint64_t)d << 62) ^ ((uint64_t)k << 56) ^
		       splitmix64(index));
	if (rnd)
		*rnd = splitmix64(h);
	return (double)(h >> 11) * (1.0 / 9007199254740992.0) < rate;
}

static uint64_t fault_delay_ns(uint64_t rnd)
{
	return (20u + rnd % 180u) * 1000000ull; /* 20..199 ms */
}

/* ---- transmit ---- */

void sim_tx(struct sim *s, const uint8_t *p, size_t n, uint32_t baud)
{
	uint64_t t = s->tx.last_due, now = sim_now(), step = byte_ns(s, baud);

	if (t < now)
		t = now;
	if (t < s->busy_until)
		t = s->busy_until;
	for (size_t i = 0; i < n; i++) {
		uint64_t idx = s->faults.index[SIM_TX]++, rnd = 0;
		uint8_t b = p[i];

		if (sim_fault_hit(s, SIM_TX, SIM_FAULT_DROP, idx, NULL))
			continue;
		if (sim_fault_hit(s, SIM_TX, SIM_FAULT_CORRUPT, idx, &rnd))
			b ^= (uint8_t)(1u << (rnd % 8));
		if (sim_fault_hit(s, SIM_TX, SIM_FAULT_DELAY, idx, &rnd))
			t += fault_delay_ns(rnd);
		t += step;
		if (s->tx.len == s->tx.cap) {
			size_t nc = s->tx.cap ? s->tx.cap * 2 : 4096;
			struct sim_txb *nv;

			if (s->tx.head > 0) {
				memmove(s->tx.v, s->tx.v + s->tx.head,
					(s->tx.len - s->tx.head) * sizeof *s->tx.v);
				s->tx.len -= s->tx.head;
				s->tx.head = 0;
			}
			if (s->tx.len == s->tx.cap) {
				nv = realloc(s->tx.v, nc * sizeof *nv);
				if (!nv) {
					fprintf(stderr, "flashwise-sim: out of memory\n");
					return;
				}
				s->tx.v = nv;
				s->tx.cap = nc;
			}
		}
		s->tx.v[s->tx.len++] = (struct sim_txb){ .due = t, .baud = baud, .b = b };
	}
	s->tx.last_due = t;
}

void sim_tx_frame(struct sim *s, const struct esp_proto_resp *r)
{
	struct strbuf w = STRBUF_INIT;

	if (esp_proto_response_frame(r, &w, NULL) == FW_OK && !strbuf_failed(&w))
		sim_tx(s, (const uint8_t *)w.s, w.len, s->uart_baud);
	strbuf_free(&w);
}

void sim_tx_drop_all(struct sim *s)
{
	s->tx.head = s->tx.len = 0;
	s->tx.last_due = 0;
}

static int64_t ns_until(uint64_t t, uint64_t now)
{
	return t <= now ? 0 : (int64_t)(t - now);
}

/* When to look at a queue again: bytes in the middle of a burst are
 * handled in batches (waking for every 11 us byte at 921600 baud would
 * only burn CPU), but the last queued byte, which ends a frame the other
 * side waits for, is handled on time. */
#define SIM_BATCH_NS 250000u

static int64_t next_wait(uint64_t next_due, uint64_t last_due, uint64_t now)
{
	uint64_t t = next_due;

	if (t < now + SIM_BATCH_NS)
		t = now + SIM_BATCH_NS;
	if (t > last_due)
		t = last_due > next_due ? last_due : next_due;
	return ns_until(t, now);
}

int64_t sim_tx_flush(struct sim *s, bool *want_pollout)
{
	uint64_t now = sim_now();
	uint32_t client = 0;
	uint8_t buf[4096];
	size_t n = 0;

	*want_pollout = false;
	while (s->tx.head < s->tx.len) {
		n = 0;
		while (s->tx.head + n < s->tx.len && n < sizeof buf &&
		       s->tx.v[s->tx.head + n].due <= now) {
			const struct sim_txb *x = &s->tx.v[s->tx.head + n];

			if (!client)
				client = sim_client_baud(s);
			buf[n++] = baud_mismatch(x->baud, client) ? garble(s, x->b) : x->b;
		}
		if (n == 0)
			break;
		ssize_t w = write(s->master, buf, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				*want_pollout = true;
				/* garble() advanced its counter for unsent bytes:
				 * harmless, the junk stays junk. */
				return -1;
			}
			/* Nobody will ever read these: drop them. */
			sim_tx_drop_all(s);
			return -1;
		}
		s->tx.head += (size_t)w;
		s->wire_tx += (uint64_t)w;
		if ((size_t)w < n) {
			*want_pollout = true;
			return -1;
		}
	}
	if (s->tx.head >= s->tx.len) {
		s->tx.head = s->tx.len = 0;
		return -1;
	}
	return next_wait(s->tx.v[s->tx.head].due, s->tx.v[s->tx.len - 1].due, now);
}

/* ---- receive ---- */

bool sim_rx_read(struct sim *s)
{
	uint8_t buf[4096];
	size_t room;
	ssize_t r;

	if (s->rx.head > 0 && s->rx.head == s->rx.len)
		s->rx.head = s->rx.len = 0;
	if (s->rx.head > 0) {
		memmove(s->rx.v, s->rx.v + s->rx.head,
			(s->rx.len - s->rx.head) * sizeof *s->rx.v);
		s->rx.len -= s->rx.head;
		s->rx.head = 0;
	}
	if (!s->rx.v) {
		s->rx.v = malloc(SIM_RXQ_MAX * sizeof *s->rx.v);
		if (!s->rx.v)
			return false;
		s->rx.cap = SIM_RXQ_MAX;
	}
	room = s->rx.cap - s->rx.len;
	if (room == 0)
		return true;
	r = read(s->master, buf, room < sizeof buf ? room : sizeof buf);
	if (r < 0)
		return errno == EAGAIN || errno == EINTR || errno == EIO;
	s->wire_rx += (uint64_t)r;
	uint32_t client = sim_client_baud(s);
	uint64_t now = sim_now(), t = s->rx.last_due, step = byte_ns(s, client);
	bool garbled = false;

	if (t < now)
		t = now;
	if (s->mode == SIM_MODE_LOADER) {
		/* The ROM measures the rate from the SYNC's 0x55 run: until a
		 * CHANGE_BAUDRATE fixes it, it follows the host. */
		if (!s->baud_locked)
			s->uart_baud = client;
		else
			garbled = baud_mismatch(client, s->uart_baud);
	} else if (s->mode == SIM_MODE_HELPER) {
		/* The helper keeps the rate it took over from the ROM. */
		garbled = baud_mismatch(client, s->uart_baud);
	}
	for (ssize_t i = 0; i < r; i++) {
		uint64_t idx = s->faults.index[SIM_RX]++, rnd = 0;
		uint8_t b = buf[i];

		if (sim_fault_hit(s, SIM_RX, SIM_FAULT_DROP, idx, NULL))
			continue;
		if (sim_fault_hit(s, SIM_RX, SIM_FAULT_CORRUPT, idx, &rnd))
			b ^= (uint8_t)(1u << (rnd % 8));
		if (sim_fault_hit(s, SIM_RX, SIM_FAULT_DELAY, idx, &rnd))
			t += fault_delay_ns(rnd);
		t += step;
		if (garbled)
			b = garble(s, b);
		s->rx.v[s->rx.len++] = (struct sim_rxb){ .due = t, .b = b };
	}
	s->rx.last_due = t;
	return true;
}

int64_t sim_rx_process(struct sim *s)
{
	uint64_t now = sim_now();

	while (s->rx.head < s->rx.len) {
		const struct sim_rxb *x = &s->rx.v[s->rx.head];
		struct slip_event ev;

		if (x->due > now)
			return next_wait(x->due, s->rx.v[s->rx.len - 1].due, now);
		if (s->mode != SIM_MODE_LOADER && s->mode != SIM_MODE_HELPER) {
			/* In reset, hung or running the app: input goes nowhere. */
			s->rx.head++;
			continue;
		}
		if (s->busy_until > now)
			return ns_until(s->busy_until, now);
		s->rx.head++;
		if (s->mode == SIM_MODE_HELPER) {
			sim_helper_input(s, x->b);
		} else {
			slip_decoder_feed(&s->dec, &x->b, 1, &ev);
			if (ev.kind == SLIP_EV_FRAME)
				sim_rom_packet(s, ev.frame, ev.len);
		}
		now = sim_now();
	}
	return -1;
}

void sim_queues_free(struct sim *s)
{
	free(s->tx.v);
	free(s->rx.v);
	s->tx.v = NULL;
	s->rx.v = NULL;
}

/* ---- DTR/RTS side channel ---- */

int sim_lines_open(struct sim *s, const char *path, bool create)
{
	struct stat st;

	if (strlen(path) >= sizeof s->lines_path) {
		fprintf(stderr, "flashwise-sim: lines file name too long\n");
		return -1;
	}
	strcpy(s->lines_path, path);
	if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
		s->lines_fifo = true;
		/* Read-write: holding a writer ourselves keeps poll() from
		 * reporting a hangup whenever no client has the FIFO open. */
		s->lines_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	} else {
		s->lines_fd = open(path, O_RDONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
		/* Lines from earlier runs describe another chip's past. */
		if (s->lines_fd >= 0)
			lseek(s->lines_fd, 0, SEEK_END);
	}
	if (s->lines_fd < 0) {
		fprintf(stderr, "flashwise-sim: cannot open the lines file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void lines_apply(struct sim *s, bool dtr, bool rts, uint64_t t)
{
	bool en_low_old = s->rts && !s->dtr, en_low = rts && !dtr;

	if (s->boot_pending && t > s->boot_at) {
		s->boot_pending = false;
		sim_boot(s, s->gpio0_low_at_boot, SIM_RST_EXT_PIN);
	}
	s->dtr = dtr;
	s->rts = rts;
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: DTR=%d RTS=%d -> EN %s, GPIO0 %s\n", dtr, rts,
			en_low ? "low" : "high", dtr && !rts ? "low" : "high");
	if (en_low && !en_low_old) {
		s->boot_pending = false;
		sim_hold_reset(s);
	} else if (!en_low && en_low_old) {
		s->boot_pending = true;
		s->boot_at = t + SIM_BOOT_DELAY_NS;
		s->gpio0_low_at_boot = dtr && !rts;
	} else if (s->boot_pending) {
		s->gpio0_low_at_boot = dtr && !rts;
	}
}

static void lines_parse(struct sim *s, const char *line)
{
	int dtr, rts;
	unsigned long long t;
	char dev[128];

	if (sscanf(line, "DTR=%d RTS=%d t=%llu dev=%127s", &dtr, &rts, &t, dev) != 4)
		return;
	if (strcmp(dev, s->slave_path) != 0)
		return; /* another pty sharing the file */
	lines_apply(s, dtr != 0, rts != 0, (uint64_t)t);
}

int64_t sim_lines_poll(struct sim *s)
{
	int64_t wait = -1;

	if (s->lines_fd >= 0) {
		for (;;) {
			ssize_t r = read(s->lines_fd, s->lines_buf + s->lines_len,
					 sizeof s->lines_buf - 1 - s->lines_len);
			char *start, *nl;

			if (r <= 0)
				break;
			s->lines_len += (size_t)r;
			s->lines_buf[s->lines_len] = '\0';
			start = s->lines_buf;
			while ((nl = strchr(start, '\n')) != NULL) {
				*nl = '\0';
				lines_parse(s, start);
				start = nl + 1;
			}
			s->lines_len -= (size_t)(start - s->lines_buf);
			memmove(s->lines_buf, start, s->lines_len);
			if (s->lines_len == sizeof s->lines_buf - 1)
				s->lines_len = 0; /* an absurd line: forget it */
		}
		if (!s->lines_fifo) {
			struct stat st;

			/* A truncated file starts over. */
			if (fstat(s->lines_fd, &st) == 0 &&
			    lseek(s->lines_fd, 0, SEEK_CUR) > st.st_size) {
				lseek(s->lines_fd, 0, SEEK_SET);
				s->lines_len = 0;
			}
			wait = (int64_t)SIM_LINES_POLL_MS * 1000000;
		}
	}
	if (s->boot_pending) {
		uint64_t now = sim_now();

		/* Give the writer a moment past boot_at: a line stamped just
		 * before it may still be on its way. */
		if (now >= s->boot_at + 1000000u) {
			s->boot_pending = false;
			sim_boot(s, s->gpio0_low_at_boot, SIM_RST_EXT_PIN);
		} else {
			int64_t ns = ns_until(s->boot_at + 1000000u, now);

			if (wait < 0 || ns < wait)
				wait = ns;
		}
	}
	return wait;
}
