/* The STK500v1 driver for Arduino bootloaders. Facts: stk500v1-optiboot.md
 * sections 1-6; the bytes come from stk500_proto. Every wait is a
 * monotonic deadline, nothing here prints (d->log), and every operation
 * ends within a bounded time: a lost reply costs one timeout and a resync
 * (or, where the bootloader has left, a reset), never a loop on
 * "programmer is not responding". */
#include "dev_stk500.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices.h"
#include "stk500_proto.h"
#include "transport.h"

/* ---- timing (section 5) ---- */

#define PULSE_MS         50u   /* lines released before the asserting edge:
                                * the reset capacitor recharges in ~1 ms */
#define SYNC_FIRST_MS    250u  /* first GET_SYNC after the edge: before it
                                * the chip is in reset (bytes are lost);
                                * during the LED flash two bytes wait in the
                                * UART, so an early GET_SYNC is answered as
                                * soon as Optiboot listens (~0.44 s) */
#define SYNC_EVERY_MS    50u
#define SYNC_HOLD_MS     350u  /* after the first GET_SYNC: wait this long
                                * for its answer before sending more (see
                                * clear_stray) */
#define STRAY_MS         50u
#define SYNC_WINDOW_MS   1500u /* the bootloader listens until ~1.44 s */
#define SYNC_QUIET_MS    30u   /* after the first answer: let late answers
                                * to earlier GET_SYNCs arrive */
#define SYNC_QUIET_MAX   200u
#define SESSION_IDLE_MS  700u  /* the watchdog leaves after 1 s without a
                                * byte: past this, reset before talking */
#define REENTER_ATTEMPTS 3u
#define RESYNC_WITHIN_MS 700u  /* resync only while the bootloader's 1 s
                                * watchdog, restarted by every byte it
                                * received, surely still runs */
#define RESYNC_ANSWER_MS 40u   /* GET_SYNC answer, plus PAGE_WRITE_MS: the
                                * GET_SYNC may complete a PROG_PAGE */
#define RESYNC_QUIET_MS  20u   /* silence that ends a damaged reply */
#define RESYNC_DRAIN_MAX 300u  /* a 1 KB READ_PAGE at 57600 takes 180 ms */
#define PAGE_WRITE_MS    20u   /* erase + write, 2 x 4.5 ms, with margin */
#define EEPROM_BYTE_MS   4u    /* EEPROM writes 3.3 ms per byte */
#define WRITE_TIMEOUT_MS 2000u
#define NOISE_KEEP       64u
#define RECOVERY_ALL     4u    /* an operation's recoveries in all: this
                                * many times the ones allowed in a row */

enum stk_fail {
	FAIL_NONE,
	FAIL_TIMEOUT,  /* no reply, or part of one */
	FAIL_GARBLED,  /* a reply that breaks the INSYNC..OK frame */
};

/* What flashwise knows about a page's current contents. */
enum {
	KNOWN_NONE = 0,
	KNOWN_READ,     /* read() or dev_stk500_set_previous() */
	KNOWN_VERIFIED, /* read back by verify() */
};

struct stk_dev {
	struct dev_stk500_options opt;
	enum stk_fail fail;
	bool identified;
	bool in_session;         /* synced since the last reset, not left */
	uint64_t last_io_ns;     /* last complete reply */
	uint64_t last_tx_ns;     /* last bytes handed to the port */
	/* Where the bootloader's address pointer stands after the last
	 * READ_PAGE (Optiboot advances it by the bytes sent), so the next
	 * read there needs no LOAD_ADDRESS; any other exchange clears it. */
	bool rd_valid;
	uint32_t rd_next;
	struct stk500_loader_info loader;
	uint8_t sig[3];
	/* page knowledge, sized to the profile's flash */
	uint8_t *shadow;
	uint8_t *known;
	uint32_t flash_size, page_size;
	struct dev_stk500_stats stats;
	/* bytes that arrived instead of sync answers (connect diagnosis) */
	uint8_t noise[NOISE_KEEP];
	size_t nnoise, noise_total;
	uint8_t rx[512];
	uint8_t tx[2 * STK500_CMD_MAX];
};

/* ---- small helpers ---- */

static void sleep_until(uint64_t t)
{
	uint64_t now = transport_now_ns();
	struct timespec ts;

	if (t <= now)
		return;
	ts.tv_sec = (time_t)((t - now) / 1000000000u);
	ts.tv_nsec = (long)((t - now) % 1000000000u);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static uint64_t ms_ns(unsigned ms)
{
	return (uint64_t)ms * 1000000u;
}

static const char *instructions(const struct profile *p)
{
	return p->manual_instructions[0] ? p->manual_instructions
		: "press and release the board's RESET button just before flashwise connects";
}

void dev_stk500_options_default(struct dev_stk500_options *o)
{
	memset(o, 0, sizeof *o);
	o->connect_attempts = 5;
	o->manual_wait_ms = 30000;
	o->timeout_ms = 500;
	o->recoveries = 3;
	o->read_chunk = 0;
	o->fill_erased = false;
	o->skip_unchanged = false;
}

static void knowledge_forget(struct stk_dev *x)
{
	if (x->known)
		memset(x->known, KNOWN_NONE, x->flash_size / x->page_size);
}

static int priv_get(struct device *d, struct stk_dev **out, struct fw_err *e)
{
	struct stk_dev *x;
	const struct profile *p;

	if (!d || !d->t || !d->p)
		return fw_err_set(e, FW_EINVAL, "stk500: device without a port or profile");
	if (d->priv) {
		*out = d->priv;
		return FW_OK;
	}
	p = d->p;
	if (p->page_size < 2 || p->page_size > STK500_PAGE_MAX ||
	    (p->page_size & (p->page_size - 1)) || p->flash_size == 0 ||
	    p->flash_size > STK500_FLASH_MAX || p->flash_size % p->page_size)
		return fw_err_set(e, FW_EPROFILE,
				  "profile %s: flash size %u with page size %u cannot be written "
				  "over STK500v1 (whole pages of 2 to 256 bytes, at most 128 KB)",
				  p->id, p->flash_size, p->page_size);
	x = calloc(1, sizeof *x);
	if (!x)
		return fw_err_set(e, FW_ENOMEM, "out of memory starting the STK500 driver");
	x->flash_size = p->flash_size;
	x->page_size = p->page_size;
	x->shadow = malloc(x->flash_size);
	x->known = calloc(x->flash_size / x->page_size, 1);
	if (!x->shadow || !x->known) {
		free(x->shadow);
		free(x->known);
		free(x);
		return fw_err_set(e, FW_ENOMEM, "out of memory starting the STK500 driver");
	}
	dev_stk500_options_default(&x->opt);
	stk500_loader_from_version(0, 0, &x->loader);
	d->priv = x;
	*out = x;
	return FW_OK;
}

int dev_stk500_set_options(struct device *d, const struct dev_stk500_options *o,
			   struct fw_err *e)
{
	struct stk_dev *x;
	int rc;

	if (!o)
		return fw_err_set(e, FW_EINVAL, "stk500: no options");
	if ((rc = priv_get(d, &x, e)) != FW_OK)
		return rc;
	x->opt = *o;
	if (x->opt.connect_attempts == 0)
		x->opt.connect_attempts = 1;
	if (x->opt.timeout_ms == 0)
		x->opt.timeout_ms = 500;
	return FW_OK;
}

static bool can_reset(const struct device *d)
{
	return !d->manual_entry && d->p->reset == PROFILE_RESET_AUTO &&
	       (transport_caps(d->t) & TRANSPORT_CAP_MODEM_LINES);
}

/* ---- one exchange ---- */

/* Time on the line for n bytes at the port's rate (10 bits per byte). */
static unsigned wire_ms(const struct device *d, size_t n)
{
	unsigned baud = d->t->baud ? d->t->baud : 9600;

	return (unsigned)((uint64_t)n * 10u * 1000u / baud) + 1u;
}

static const char *op_name(uint8_t op)
{
	switch (op) {
	case STK500_GET_SYNC: return "GET_SYNC";
	case STK500_GET_PARAMETER: return "GET_PARAMETER";
	case STK500_ENTER_PROGMODE: return "ENTER_PROGMODE";
	case STK500_LEAVE_PROGMODE: return "LEAVE_PROGMODE";
	case STK500_LOAD_ADDRESS: return "LOAD_ADDRESS";
	case STK500_PROG_PAGE: return "PROG_PAGE";
	case STK500_READ_PAGE: return "READ_PAGE";
	case STK500_READ_SIGN: return "READ_SIGN";
	default: return "a command";
	}
}

/* Sends nc commands in one write and reads their replies in order; the
 * last one's reply bytes go to `reply`. Two at most: a LOAD_ADDRESS may go
 * ahead of a PROG_PAGE / READ_PAGE without waiting for its answer (the
 * bootloader answers it at once and is reading again long before the next
 * command's bytes could overrun its 2-byte receive buffer), which saves a
 * round trip per page. Nothing more is queued: while it programs a page
 * or sends a reply the bootloader does not read. */
static int xfer_within(struct device *d, const struct stk500_cmd *c, size_t nc,
		       uint8_t *reply, unsigned wait_ms, unsigned extra_ms, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	size_t i, off = 0, in = 0, rx_off = 0, rx_len = 0;
	uint64_t deadline;
	unsigned ms;
	int rc;

	x->fail = FAIL_NONE;
	x->rd_valid = false;
	for (i = 0; i < nc; i++) {
		memcpy(x->tx + off, c[i].b, c[i].len);
		off += c[i].len;
		in += c[i].reply_len + 2;
	}
	rc = transport_write(d->t, x->tx, off, transport_deadline_ms(WRITE_TIMEOUT_MS), e);
	x->last_tx_ns = transport_now_ns();
	if (rc != FW_OK)
		return rc;
	ms = wait_ms + wire_ms(d, off + in) + extra_ms;
	deadline = transport_deadline_ms(ms);
	for (i = 0; i < nc; i++) {
		struct stk500_reply r;

		stk500_reply_init(&r, i + 1 == nc ? reply : NULL, c[i].reply_len);
		while (r.state == STK500_REPLY_MORE) {
			if (rx_off == rx_len) {
				size_t got = 0;
				struct fw_err re = { 0 };

				rc = transport_read_some(d->t, x->rx, sizeof x->rx, &got, deadline,
							 &re);
				if (rc == FW_ETIMEOUT && got == 0) {
					x->fail = FAIL_TIMEOUT;
					return fw_err_set(e, FW_ETIMEOUT,
							  "the bootloader did not answer %s within "
							  "%u ms (%zu of %zu reply bytes arrived)",
							  op_name(c[i].op), ms, r.have + (r.stage > 0),
							  c[i].reply_len + 2);
				}
				if (rc != FW_OK) {
					fw_err_copy(e, &re);
					return rc;
				}
				rx_off = 0;
				rx_len = got;
			}
			rx_off += stk500_reply_feed(&r, x->rx + rx_off, rx_len - rx_off);
		}
		if (r.state == STK500_REPLY_BAD) {
			char why[96];

			stk500_reply_describe(&r, why, sizeof why);
			x->fail = FAIL_GARBLED;
			return fw_err_set(e, FW_EPROTO, "the bootloader's answer to %s made no "
					  "sense: %s", op_name(c[i].op), why);
		}
	}
	/* Bytes beyond the last reply belong to no request: dropped. */
	x->last_io_ns = transport_now_ns();
	return FW_OK;
}

static int xfer(struct device *d, const struct stk500_cmd *c, size_t nc, uint8_t *reply,
		unsigned extra_ms, struct fw_err *e)
{
	struct stk_dev *x = d->priv;

	return xfer_within(d, c, nc, reply, x->opt.timeout_ms, extra_ms, e);
}

static int command(struct device *d, const struct stk500_cmd *c, uint8_t *reply,
		   struct fw_err *e)
{
	return xfer(d, c, 1, reply, 0, e);
}

/* ---- connect ---- */

static void noise_reset(struct stk_dev *x)
{
	x->nnoise = x->noise_total = 0;
}

static void noise_add(struct stk_dev *x, uint8_t b)
{
	if (x->nnoise < NOISE_KEEP)
		x->noise[x->nnoise++] = b;
	x->noise_total++;
}

/* Reads what arrives until `until`, looking for an INSYNC OK pair; the
 * other bytes are kept for the diagnosis. *prev carries a trailing INSYNC
 * from one read to the next. */
static bool sync_listen(struct device *d, uint64_t until, int *prev)
{
	struct stk_dev *x = d->priv;

	for (;;) {
		size_t got = 0, i;

		if (transport_now_ns() >= until)
			return false;
		if (transport_read_some(d->t, x->rx, sizeof x->rx, &got, until, NULL) != FW_OK ||
		    got == 0)
			return false;
		for (i = 0; i < got; i++) {
			uint8_t b = x->rx[i];

			if (*prev == STK500_INSYNC && b == STK500_OK)
				return true;
			if (*prev >= 0)
				noise_add(x, (uint8_t)*prev);
			*prev = b == STK500_INSYNC ? b : -1;
			if (b != STK500_INSYNC)
				noise_add(x, b);
		}
	}
}

/* Whether INSYNC OK arrives within ms (other bytes are dropped). */
static bool answered_within(struct device *d, unsigned ms)
{
	int prev = -1;

	return sync_listen(d, transport_now_ns() + ms_ns(ms), &prev);
}

/* GET_SYNCs sent while the bootloader was not reading yet (LED flash) are
 * lost except the first two bytes and, on the real chip, the last byte
 * received, which waits in the receive shift register: usually the 0x20 of
 * the last GET_SYNC. Optiboot then takes that 0x20 as a command and wants
 * a terminator; a GET_SYNC now would give it 0x30 instead and send it
 * away through its watchdog, the same way on every attempt. A lone 0x20
 * settles both cases: it completes a pending command (answered), or is
 * itself a command a second 0x20 completes. ATmegaBOOT drops a lone 0x20
 * as unknown (it leaves only after 5 such errors). */
static void clear_stray(struct device *d)
{
	static const uint8_t eop = STK500_CRC_EOP;
	unsigned i;

	for (i = 0; i < 2; i++) {
		if (transport_write(d->t, &eop, 1, transport_deadline_ms(WRITE_TIMEOUT_MS),
				    NULL) != FW_OK)
			return;
		if (answered_within(d, STRAY_MS))
			return;
	}
}

/* When more than one GET_SYNC went out: lets late answers to the earlier
 * ones arrive and drops them, and settles a stray byte. Then asks once
 * more and wants exactly INSYNC OK: the session starts clean. */
static int sync_confirm(struct device *d, unsigned polls, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	uint64_t end = transport_now_ns() + ms_ns(SYNC_QUIET_MAX);
	struct stk500_cmd c;

	/* One GET_SYNC out and its answer in: nothing else can follow, so
	 * no wait for late answers (the confirming GET_SYNC still checks). */
	for (; polls > 1;) {
		uint64_t dl = transport_now_ns() + ms_ns(SYNC_QUIET_MS);
		size_t got = 0;

		if (dl > end)
			dl = end;
		if (transport_read_some(d->t, x->rx, sizeof x->rx, &got, dl, NULL) != FW_OK ||
		    got == 0)
			break;
	}
	if (polls > 1)
		clear_stray(d);
	(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
	stk500_cmd_get_sync(&c);
	return command(d, &c, NULL, e);
}

/* Sends GET_SYNC from `first` until `end` and stops at the first INSYNC OK
 * (then confirms it). The first one is left alone for SYNC_HOLD_MS: sent
 * during the LED flash it waits in the UART and is answered the moment
 * Optiboot listens, with nothing stray behind it; only when it goes
 * unanswered do more follow, every SYNC_EVERY_MS. FW_ETIMEOUT when none
 * was answered. */
static int sync_poll(struct device *d, uint64_t first, uint64_t end, struct fw_err *e)
{
	struct stk500_cmd c;
	uint64_t next = first;
	unsigned polls = 0;
	int prev = -1;

	stk500_cmd_get_sync(&c);
	sleep_until(first);
	/* Nothing was asked in this attempt yet: whatever arrived belongs to
	 * an earlier conversation (a late answer to a resync that gave up)
	 * and must not pass for this attempt's answer. */
	(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
	while (transport_now_ns() < end) {
		uint64_t now = transport_now_ns(), until;
		int rc;

		if (now >= next) {
			if ((rc = transport_write(d->t, c.b, c.len,
						  transport_deadline_ms(WRITE_TIMEOUT_MS), e)) != FW_OK)
				return rc;
			next += ms_ns(polls++ == 0 ? SYNC_HOLD_MS : SYNC_EVERY_MS);
			if (next <= now)
				next = now + ms_ns(SYNC_EVERY_MS);
		}
		until = next < end ? next : end;
		if (sync_listen(d, until, &prev)) {
			struct fw_err le = { 0 };

			if (sync_confirm(d, polls, &le) == FW_OK)
				return FW_OK;
			device_logf(d, "the bootloader answered once but not again (%s)", le.msg);
			return FW_ETIMEOUT;
		}
	}
	return FW_ETIMEOUT;
}

/* DTR (and RTS, which some clones wire instead) released, then asserted:
 * the asserting edge pulls RESET low through the board's capacitor.
 * *edge receives the time of that edge. */
static int reset_pulse(struct device *d, uint64_t *edge, struct fw_err *e)
{
	int rc;

	if ((rc = transport_set_lines(d->t, 0, 0, e)) != FW_OK)
		return rc;
	sleep_until(transport_now_ns() + ms_ns(PULSE_MS));
	if ((rc = transport_set_lines(d->t, 1, 1, e)) != FW_OK)
		return rc;
	*edge = transport_now_ns();
	return FW_OK;
}

/* Up to `attempts` rounds of reset pulse + GET_SYNC polling. Optiboot
 * gives up after ~1 s and starts the application, and only an external
 * reset brings it back, so every attempt starts with a fresh pulse.
 * *no_lines is set (FW_ETIMEOUT returned) when the port has no DTR/RTS. */
static int connect_auto(struct device *d, unsigned attempts, bool *no_lines, struct fw_err *e)
{
	unsigned attempt;

	*no_lines = false;
	for (attempt = 0; attempt < attempts; attempt++) {
		struct fw_err le = { 0 };
		uint64_t edge = 0;
		int rc;

		(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
		rc = reset_pulse(d, &edge, &le);
		if (rc == FW_EUNSUPPORTED) {
			device_logf(d, "%s", le.msg);
			*no_lines = true;
			return FW_ETIMEOUT;
		}
		if (rc != FW_OK) {
			fw_err_copy(e, &le);
			return rc;
		}
		rc = sync_poll(d, edge + ms_ns(SYNC_FIRST_MS), edge + ms_ns(SYNC_WINDOW_MS), &le);
		if (rc == FW_OK) {
			if (attempt > 0)
				device_logf(d, "the bootloader answered after %u reset attempts",
					attempt + 1);
			return FW_OK;
		}
		if (rc != FW_ETIMEOUT) {
			fw_err_copy(e, &le);
			return rc;
		}
	}
	return FW_ETIMEOUT;
}

static int connect_manual(struct device *d, unsigned wait_ms, struct fw_err *e)
{
	uint64_t now = transport_now_ns();

	device_logf(d, "waiting for the bootloader: %s", instructions(d->p));
	return sync_poll(d, now, now + ms_ns(wait_ms), e);
}

/* The message for a connect that found no bootloader, from what arrived. */
static int connect_failed(struct device *d, const char *after, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	char sample[48];
	size_t i, k = 0;

	switch (stk500_classify_noise(x->noise, x->nnoise)) {
	case STK500_NOISE_NONE:
		return fw_err_set(e, FW_ETIMEOUT,
				  "no answer on %s %s: wrong port, or the board has no auto-reset: "
				  "%s; check that the USB cable carries data", d->t->path, after,
				  instructions(d->p));
	case STK500_NOISE_TEXT:
		for (i = 0; i < x->nnoise && k + 1 < sizeof sample; i++) {
			uint8_t b = x->noise[i];

			sample[k++] = (b >= 0x20 && b < 0x7F) ? (char)b : ' ';
		}
		sample[k] = '\0';
		return fw_err_set(e, FW_ETIMEOUT,
				  "the application answered on %s instead of the bootloader (it sent "
				  "\"%s\") %s: the bootloader was not entered; check the board's "
				  "auto-reset circuit (DTR to RESET through a 100 nF capacitor), or %s",
				  d->t->path, sample, after, instructions(d->p));
	case STK500_NOISE_GARBAGE:
		break;
	}
	for (i = 0; i < x->nnoise && i < 6; i++)
		k += (size_t)snprintf(sample + k, sizeof sample - k, " %02X", x->noise[i]);
	return fw_err_set(e, FW_ETIMEOUT,
			  "bytes arrive on %s but make no sense (%zu bytes:%s ...) %s: the baud "
			  "rate %u is probably wrong for this bootloader (Optiboot, on the Uno "
			  "and new Nanos, talks at 115200; the old ATmegaBOOT, Nano \"old "
			  "bootloader\" and Duemilanove, at 57600): choose the profile that "
			  "matches the board's bootloader", d->t->path, x->noise_total, sample,
			  after, d->t->baud);
}

/* The rates Arduino bootloaders talk at: Optiboot 115200, ATmegaBOOT
 * 57600. */
static const unsigned loader_rates[] = { 115200u, 57600u };

/* After no sync at the profile's rate: one reset + sync at each other
 * bootloader rate. A bootloader at another rate is usually silent (it
 * answers nothing it cannot frame), which otherwise reads like a dead
 * port. Returns the rate that answered, or 0; the port is put back to its
 * rate and the noise heard at the other rates is forgotten. */
static unsigned probe_other_rates(struct device *d)
{
	struct stk_dev *x = d->priv;
	unsigned orig = d->t->baud, found = 0;
	size_t nnoise = x->nnoise, total = x->noise_total;
	size_t i;

	for (i = 0; i < sizeof loader_rates / sizeof loader_rates[0] && !found; i++) {
		bool no_lines = false;

		if (loader_rates[i] == orig)
			continue;
		if (transport_set_baud(d->t, loader_rates[i], NULL) != FW_OK)
			break; /* a port that cannot change rate: no probe */
		if (connect_auto(d, 1, &no_lines, NULL) == FW_OK)
			found = loader_rates[i];
	}
	if (d->t->baud != orig)
		(void)transport_set_baud(d->t, orig, NULL);
	x->nnoise = nnoise;
	x->noise_total = total;
	return found;
}

static int stk_connect(struct device *d, struct fw_err *e)
{
	struct stk_dev *x;
	bool manual, no_lines = false;
	char after[64];
	int rc;

	if ((rc = priv_get(d, &x, e)) != FW_OK)
		return rc;
	/* A new session may face another board: forget everything. */
	x->identified = x->in_session = false;
	knowledge_forget(x);
	noise_reset(x);
	manual = d->manual_entry || d->p->reset == PROFILE_RESET_MANUAL;
	if (!manual) {
		rc = connect_auto(d, x->opt.connect_attempts, &no_lines, e);
		if (rc == FW_OK)
			goto ok;
		if (rc != FW_ETIMEOUT)
			return rc;
		if (!no_lines) {
			unsigned other = probe_other_rates(d);

			if (other)
				return fw_err_set(e, FW_ETIMEOUT,
						  "the bootloader on %s answers at %u baud, not at "
						  "the %u baud of profile %s: the baud rate is wrong "
						  "for this board's bootloader (Optiboot, on the Uno "
						  "and new Nanos, talks at 115200; the old ATmegaBOOT, "
						  "Nano \"old bootloader\" and Duemilanove, at 57600): "
						  "choose the profile that matches the board, or give "
						  "--baud %u", d->t->path, other, d->t->baud,
						  d->p->id, other);
			snprintf(after, sizeof after, "after %u reset attempts",
				 x->opt.connect_attempts);
			return connect_failed(d, after, e);
		}
	}
	rc = connect_manual(d, x->opt.manual_wait_ms, e);
	if (rc == FW_ETIMEOUT) {
		snprintf(after, sizeof after, "within %u s", (x->opt.manual_wait_ms + 999) / 1000);
		return connect_failed(d, after, e);
	}
	if (rc != FW_OK)
		return rc;
ok:
	x->in_session = true;
	return FW_OK;
}

/* ---- identify ---- */

struct avr_part {
	uint8_t sig[3];
	const char *name;
	uint32_t flash;
	uint32_t eeprom;
};

static const struct avr_part parts[] = {
	{ { 0x1E, 0x95, 0x0F }, "atmega328p", 32768, 1024 },
	{ { 0x1E, 0x95, 0x14 }, "atmega328", 32768, 1024 },
	{ { 0x1E, 0x94, 0x06 }, "atmega168", 16384, 512 },
	{ { 0x1E, 0x94, 0x0B }, "atmega168p", 16384, 512 },
	{ { 0x1E, 0x93, 0x0A }, "atmega88", 8192, 512 },
	{ { 0x1E, 0x93, 0x07 }, "atmega8", 8192, 512 },
};

static const struct avr_part *part_by_sig(const uint8_t sig[3])
{
	size_t i;

	for (i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (memcmp(parts[i].sig, sig, 3) == 0)
			return &parts[i];
	return NULL;
}

static int read_signature(struct device *d, uint8_t sig[3], struct fw_err *e)
{
	struct stk500_cmd c;

	stk500_cmd_read_sign(&c);
	return command(d, &c, sig, e);
}

/* Puts the session back after the bootloader went silent or left: a
 * fresh reset and sync (or the technician's RESET press without lines),
 * the same signature as before, and ENTER_PROGMODE as in identify(). */
static int recover(struct device *d, const char *what, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct fw_err le = { 0 };
	struct stk500_cmd c;
	uint8_t sig[3];
	bool no_lines = false;
	int rc;

	x->in_session = false;
	noise_reset(x);
	if (can_reset(d)) {
		device_logf(d, "%s: resetting the board into the bootloader", what);
		rc = connect_auto(d, REENTER_ATTEMPTS, &no_lines, &le);
	} else {
		rc = FW_ETIMEOUT;
		no_lines = true;
	}
	if (rc == FW_ETIMEOUT && no_lines) {
		device_logf(d, "%s: the bootloader has left and flashwise cannot reset the board "
			"(no DTR/RTS on %s)", what, d->t->path);
		rc = connect_manual(d, x->opt.manual_wait_ms, &le);
	}
	if (rc == FW_ETIMEOUT)
		return fw_err_set(e, FW_ETIMEOUT,
				  "%s: the bootloader stopped answering and did not come back: "
				  "check the cable and the board's power supply, then run the same "
				  "command again", what);
	if (rc != FW_OK) {
		fw_err_copy(e, &le);
		return rc;
	}
	if ((rc = read_signature(d, sig, e)) != FW_OK)
		return rc;
	if (memcmp(sig, x->sig, 3) != 0)
		return fw_err_set(e, FW_EMISMATCH,
				  "%s: after the reset the chip reports signature %02X %02X %02X, "
				  "not the %02X %02X %02X identified before: check which board is "
				  "connected", what, sig[0], sig[1], sig[2], x->sig[0], x->sig[1],
				  x->sig[2]);
	stk500_cmd_enter_progmode(&c);
	if ((rc = command(d, &c, NULL, e)) != FW_OK)
		return rc;
	x->in_session = true;
	return FW_OK;
}

/* The bootloader leaves by itself after ~1 s without a byte: after a
 * longer pause (a prompt between steps) it is reset into again first. */
static int ensure_session(struct device *d, const char *what, struct fw_err *e)
{
	struct stk_dev *x = d->priv;

	if (x->in_session && transport_now_ns() - x->last_io_ns < ms_ns(SESSION_IDLE_MS))
		return FW_OK;
	device_logf(d, "%s: the bootloader leaves after about 1 s without traffic; entering it "
		"again", what);
	return recover(d, what, e);
}

static int stk_identify(struct device *d, struct device_identity *id, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct stk500_cmd c;
	const struct avr_part *part;
	uint8_t major = 0, minor = 0;
	int rc;

	if (!x || !id)
		return fw_err_set(e, FW_ESTATE, "stk500: identify before connect");
	memset(id, 0, sizeof *id);
	x->identified = false;
	if (!x->in_session)
		return fw_err_set(e, FW_ESTATE, "stk500: identify before connect");
	if (transport_now_ns() - x->last_io_ns >= ms_ns(SESSION_IDLE_MS)) {
		/* No signature to compare yet: a plain reconnect. */
		if ((rc = stk_connect(d, e)) != FW_OK)
			return rc;
	}
	stk500_cmd_get_parameter(&c, STK500_PARAM_SW_MAJOR);
	if ((rc = command(d, &c, &major, e)) != FW_OK)
		return rc;
	stk500_cmd_get_parameter(&c, STK500_PARAM_SW_MINOR);
	if ((rc = command(d, &c, &minor, e)) != FW_OK)
		return rc;
	stk500_loader_from_version(major, minor, &x->loader);
	if ((rc = read_signature(d, x->sig, e)) != FW_OK)
		return rc;
	/* Optiboot and ATmegaBOOT answer ENTER_PROGMODE without doing
	 * anything, and SET_DEVICE / SET_DEVICE_EXT are read and ignored by
	 * both, so those two are not sent. ENTER_PROGMODE costs two bytes
	 * and keeps loaders that do want it working. */
	stk500_cmd_enter_progmode(&c);
	if ((rc = command(d, &c, NULL, e)) != FW_OK)
		return rc;
	id->has_signature = true;
	memcpy(id->signature, x->sig, 3);
	part = part_by_sig(x->sig);
	if (part) {
		snprintf(id->chip, sizeof id->chip, "%s", part->name);
		id->flash_size = part->flash;
	} else {
		/* The part's size is fixed; device_match() judges by the
		 * signature alone for AVR profiles. */
		id->flash_size = d->p->flash_size;
	}
	snprintf(id->loader, sizeof id->loader, "%s", x->loader.name);
	if (x->loader.kind == STK500_LOADER_UNKNOWN)
		device_logf(d, "bootloader version %u.%u is neither Optiboot nor ATmegaBOOT: "
			"reading in small pieces, no EEPROM", major, minor);
	x->identified = true;
	return FW_OK;
}

/* ---- caps ---- */

/* The EEPROM a backup can hold: known only once the chip and its loader
 * were identified. */
static void eeprom_caps(struct device *d, struct device_caps *c)
{
	const struct stk_dev *x = d->priv;
	const struct avr_part *part = x && x->identified ? part_by_sig(x->sig) : NULL;

	if (!x || !x->identified)
		snprintf(c->eeprom_why_not, sizeof c->eeprom_why_not,
			 "the bootloader was not identified yet");
	else if (!x->loader.eeprom)
		snprintf(c->eeprom_why_not, sizeof c->eeprom_why_not,
			 "%s cannot read the EEPROM (it ignores the memory type); an ISP "
			 "programmer can", x->loader.name);
	else if (!part)
		snprintf(c->eeprom_why_not, sizeof c->eeprom_why_not,
			 "the EEPROM size of signature %02X %02X %02X is not known",
			 x->sig[0], x->sig[1], x->sig[2]);
	else
		c->eeprom_size = part->eeprom;
}

static void stk_caps(struct device *d, struct device_caps *c)
{
	memset(c, 0, sizeof *c);
	c->can_reset = can_reset(d);
	c->can_read = true;
	c->can_hash = false;
	c->exact_erase = true; /* PROG_PAGE erases only the page it writes */
	c->can_change_baud = false;
	c->compressed_write = false;
	snprintf(c->why_not, sizeof c->why_not, "%s", DEV_STK500_WHY_NOT);
	eeprom_caps(d, c);
}

/* ---- reading ---- */

static int require_identified(struct device *d, struct fw_err *e)
{
	struct stk_dev *x = d->priv;

	if (!x || !x->identified)
		return fw_err_set(e, FW_ESTATE,
				  "stk500: the chip was not identified yet (connect and identify first)");
	if (d->p->has_signature && memcmp(d->p->signature, x->sig, 3) != 0)
		return fw_err_set(e, FW_EMISMATCH,
				  "wrong chip: signature %02X %02X %02X, profile %s expects %02X %02X "
				  "%02X (%s)", x->sig[0], x->sig[1], x->sig[2], d->p->id,
				  d->p->signature[0], d->p->signature[1], d->p->signature[2],
				  d->p->chip);
	return FW_OK;
}

static bool recoverable(const struct stk_dev *x, int rc)
{
	return (rc == FW_ETIMEOUT || rc == FW_EPROTO) && x->fail != FAIL_NONE;
}

/* Reads and drops what arrives until RESYNC_QUIET_MS pass in silence
 * (the rest of a damaged reply); false if it keeps coming. *dropped
 * counts the bytes. */
static bool drain_quiet(struct device *d, size_t *dropped)
{
	struct stk_dev *x = d->priv;
	uint64_t end = transport_now_ns() + ms_ns(RESYNC_DRAIN_MAX);

	*dropped = 0;
	for (;;) {
		uint64_t dl = transport_now_ns() + ms_ns(RESYNC_QUIET_MS);
		size_t got = 0;

		if (dl > end)
			return false;
		if (transport_read_some(d->t, x->rx, sizeof x->rx, &got, dl, NULL) != FW_OK ||
		    got == 0)
			return true;
		*dropped += got;
	}
}

/* After a lost or damaged reply, while the bootloader may still listen:
 * back in step without a reset (~1 s less). Only where it cannot mislead:
 * the last bytes went out less than RESYNC_WITHIN_MS ago (the watchdog
 * still runs), the line falls silent, a GET_SYNC gets exactly INSYNC OK
 * and nothing after it, a second one the same, and READ_SIGN the chip
 * identified before. If the bootloader was in the middle of a command,
 * the GET_SYNC's two bytes either complete it (a PROG_PAGE then programs
 * the page whose address was loaded for it: the caller writes that page
 * again) or break its frame (Optiboot goes silent and leaves): then the
 * caller resets. Nothing is taken as verified here: the failed read or
 * write is repeated in full, from its LOAD_ADDRESS. */
static bool resync(struct device *d)
{
	struct stk_dev *x = d->priv;
	struct stk500_cmd c;
	uint8_t sig[3];
	size_t dropped;

	if (!x->in_session || !drain_quiet(d, &dropped) ||
	    transport_now_ns() - x->last_tx_ns >= ms_ns(RESYNC_WITHIN_MS))
		return false;
	(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
	stk500_cmd_get_sync(&c);
	if (xfer_within(d, &c, 1, NULL, RESYNC_ANSWER_MS, PAGE_WRITE_MS, NULL) != FW_OK ||
	    !drain_quiet(d, &dropped) || dropped)
		return false;
	if (xfer_within(d, &c, 1, NULL, RESYNC_ANSWER_MS, 0, NULL) != FW_OK)
		return false;
	stk500_cmd_read_sign(&c);
	if (xfer_within(d, &c, 1, sig, RESYNC_ANSWER_MS, 0, NULL) != FW_OK)
		return false;
	return memcmp(sig, x->sig, 3) == 0;
}

/* Recoveries one read, write or verify may spend: opt.recoveries in a row
 * without progress (a chunk read, a page written), and RECOVERY_ALL times
 * that in all. Losses scattered over a long transfer are outlived; a line
 * that keeps failing still ends the operation in bounded time. */
struct budget {
	unsigned row;
	unsigned total;
};

static void budget_init(const struct stk_dev *x, struct budget *b)
{
	b->row = x->opt.recoveries;
	b->total = x->opt.recoveries * RECOVERY_ALL;
}

/* Spends one recovery of the operation's budget, or says why not: a
 * resync where the bootloader still listens, else a reset. */
static int spend_recovery(struct device *d, int rc, const struct fw_err *le, struct budget *b,
			  const char *what, struct fw_err *e)
{
	struct stk_dev *x = d->priv;

	if (!recoverable(x, rc)) {
		fw_err_copy(e, le);
		return rc;
	}
	if (b->row == 0 || b->total == 0) {
		fw_err_copy(e, le);
		fw_err_prefix(e, "%s: gave up after %u recoveries (resync or reset)%s", what,
			      b->row == 0 ? x->opt.recoveries : x->opt.recoveries * RECOVERY_ALL,
			      b->row == 0 ? " in a row" : " in this operation");
		return rc;
	}
	b->row--;
	b->total--;
	x->stats.recoveries++;
	device_logf(d, "%s: %s", what, le->msg);
	if (resync(d)) {
		x->stats.resyncs++;
		device_logf(d, "%s: back in step with the bootloader without a reset", what);
		return FW_OK;
	}
	return recover(d, what, e);
}

/* Whether a flash READ_PAGE at addr may go without LOAD_ADDRESS. Only on
 * Optiboot, whose READ_PAGE advances its address by every byte it sends
 * (optiboot.c 4.4: pgm_read_byte_near(address++)); PROG_PAGE leaves it
 * where it was, so every page write loads its address. Within one 64 KB
 * bank: on larger chips the bank (RAMPZ) is set by LOAD_ADDRESS only. */
static bool continues_read(const struct stk_dev *x, uint8_t mem, uint32_t addr, size_t n)
{
	return x->rd_valid && mem == STK500_MEM_FLASH && x->loader.kind == STK500_LOADER_OPTIBOOT &&
	       addr == x->rd_next && (addr & 0xFFFFu) != 0 &&
	       (addr >> 16) == ((addr + (uint32_t)n - 1) >> 16);
}

/* READ_PAGE of n bytes at addr (even) into buf, with a resync or reset
 * after a lost or damaged reply (reading twice changes nothing). */
static int read_mem(struct device *d, uint8_t mem, uint32_t addr, size_t n, uint8_t *buf,
		    struct budget *budget, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct stk500_cmd c[2];
	char what[64];
	int rc;

	snprintf(what, sizeof what, "reading %s 0x%X", mem == STK500_MEM_EEPROM ? "EEPROM" :
		 "flash", addr);
	if ((rc = stk500_cmd_load_address(&c[0], addr, e)) != FW_OK ||
	    (rc = stk500_cmd_read_page(&c[1], mem, n, e)) != FW_OK)
		return rc;
	for (;;) {
		struct fw_err le = { 0 };
		bool cont = continues_read(x, mem, addr, n);

		/* Right after a read that ended at addr, the pointer is
		 * already there: READ_PAGE alone. Anything in between (a
		 * failure, a recovery, another command) loads it again. */
		if ((rc = xfer(d, cont ? &c[1] : c, cont ? 1 : 2, buf, 0, &le)) == FW_OK) {
			if (x->loader.kind == STK500_LOADER_OPTIBOOT && mem == STK500_MEM_FLASH) {
				x->rd_valid = true;
				x->rd_next = addr + (uint32_t)n;
			}
			budget->row = x->opt.recoveries;
			return FW_OK;
		}
		if ((rc = spend_recovery(d, rc, &le, budget, what, e)) != FW_OK)
			return rc;
	}
}

static size_t read_chunk(const struct stk_dev *x)
{
	size_t n = x->loader.read_max;

	if (x->opt.read_chunk && x->opt.read_chunk < n)
		n = x->opt.read_chunk;
	if (n < 2)
		n = 2;
	return n & ~(size_t)1;
}

/* Reads [start, end) (even, within flash) into out and records what the
 * whole pages in it hold (known_as); KNOWN_READ also reports progress. */
static int read_flash(struct device *d, uint32_t start, uint32_t end, uint8_t *out,
		      int known_as, struct budget *budget, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	size_t chunk = read_chunk(x);
	uint32_t off = start, p;
	int rc;

	while (off < end) {
		size_t n = end - off < chunk ? end - off : chunk;

		if ((rc = read_mem(d, STK500_MEM_FLASH, off, n, out + (off - start), budget, e)) !=
		    FW_OK)
			return rc;
		off += (uint32_t)n;
		if (known_as == KNOWN_READ)
			device_progress(d, "read", off - start, end - start);
	}
	for (p = (start + x->page_size - 1) / x->page_size * x->page_size;
	     p + x->page_size <= end; p += x->page_size) {
		memcpy(x->shadow + p, out + (p - start), x->page_size);
		x->known[p / x->page_size] = (uint8_t)known_as;
	}
	return FW_OK;
}

static int stk_read(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
		    struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	uint32_t start, end;
	struct budget budget;
	uint8_t *buf;
	int rc;

	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (len == 0 || !out)
		return fw_err_set(e, FW_EINVAL, "stk500: nothing to read");
	if ((uint64_t)addr + len > x->flash_size)
		return fw_err_set(e, FW_EINVAL, "cannot read 0x%X-0x%llX: the %s has only %u KB "
				  "of flash", addr, (unsigned long long)addr + len - 1, d->p->chip,
				  x->flash_size / 1024);
	if ((rc = ensure_session(d, "reading", e)) != FW_OK)
		return rc;
	/* READ_PAGE starts at a word address: read the even-aligned window. */
	start = addr & ~1u;
	end = (uint32_t)(((uint64_t)addr + len + 1) & ~1ull);
	buf = malloc(end - start);
	if (!buf)
		return fw_err_set(e, FW_ENOMEM, "out of memory reading the flash");
	budget_init(x, &budget);
	rc = read_flash(d, start, end, buf, KNOWN_READ, &budget, e);
	if (rc == FW_OK)
		memcpy(out, buf + (addr - start), len);
	free(buf);
	return rc;
}

int dev_stk500_set_previous(struct device *d, uint32_t addr, const uint8_t *data,
			    uint32_t len, struct fw_err *e)
{
	struct stk_dev *x;
	uint32_t p;
	int rc;

	if (!data || len == 0)
		return fw_err_set(e, FW_EINVAL, "stk500: no previous contents");
	if ((rc = priv_get(d, &x, e)) != FW_OK)
		return rc;
	if ((uint64_t)addr + len > x->flash_size)
		return fw_err_set(e, FW_EINVAL, "stk500: previous contents 0x%X-0x%llX run past "
				  "the %u KB flash", addr, (unsigned long long)addr + len - 1,
				  x->flash_size / 1024);
	for (p = (addr + x->page_size - 1) / x->page_size * x->page_size;
	     (uint64_t)p + x->page_size <= (uint64_t)addr + len; p += x->page_size) {
		/* What a verify read back is fresher than a caller's copy. */
		if (x->known[p / x->page_size] == KNOWN_VERIFIED)
			continue;
		memcpy(x->shadow + p, data + (p - addr), x->page_size);
		x->known[p / x->page_size] = KNOWN_READ;
	}
	return FW_OK;
}

int dev_stk500_last_stats(const struct device *d, struct dev_stk500_stats *out)
{
	const struct stk_dev *x = d ? d->priv : NULL;

	if (!out)
		return FW_EINVAL;
	memset(out, 0, sizeof *out);
	if (!x)
		return FW_ESTATE;
	*out = x->stats;
	return FW_OK;
}

/* ---- writing ---- */

static bool may_skip(const struct stk_dev *x, uint32_t page_addr, const uint8_t *content)
{
	uint8_t k = x->known[page_addr / x->page_size];

	if (k == KNOWN_NONE || (k == KNOWN_READ && !x->opt.skip_unchanged))
		return false;
	return memcmp(x->shadow + page_addr, content, x->page_size) == 0;
}

/* LOAD_ADDRESS + PROG_PAGE for one page; after a lost or damaged reply
 * the board is reset and the same page is written again (the bootloader
 * may have erased it already), never the pages before it. */
static int write_page(struct device *d, uint32_t addr, const uint8_t *content, struct budget *budget,
		      struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct stk500_cmd c[2];
	char what[64];
	bool again = false;
	int rc;

	snprintf(what, sizeof what, "writing page 0x%X", addr);
	if ((rc = stk500_cmd_load_address(&c[0], addr, e)) != FW_OK ||
	    (rc = stk500_cmd_prog_page(&c[1], STK500_MEM_FLASH, content, x->page_size, e)) !=
	    FW_OK)
		return rc;
	for (;;) {
		struct fw_err le = { 0 };

		/* From the first byte sent, the page's contents are unknown. */
		x->known[addr / x->page_size] = KNOWN_NONE;
		rc = xfer(d, c, 2, NULL, PAGE_WRITE_MS, &le);
		if (rc == FW_OK) {
			if (again)
				x->stats.pages_rewritten++;
			budget->row = x->opt.recoveries;
			return FW_OK;
		}
		if ((rc = spend_recovery(d, rc, &le, budget, what, e)) != FW_OK)
			return rc;
		again = true;
	}
}

static int stk_write(struct device *d, const struct image *img, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct stk500_plan plan;
	uint8_t content[STK500_PAGE_MAX], current[STK500_PAGE_MAX];
	struct budget budget;
	size_t i;
	int rc;

	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (!img)
		return fw_err_set(e, FW_EINVAL, "stk500: no image to write");
	/* Every refusal (the bootloader's pages, past the end of flash)
	 * before the first byte goes out. */
	if ((rc = stk500_plan_pages(d->p, img, &plan, e)) != FW_OK)
		return rc;
	memset(&x->stats, 0, sizeof x->stats);
	budget_init(x, &budget);
	if ((rc = ensure_session(d, "writing", e)) != FW_OK)
		goto out;
	for (i = 0; i < plan.n; i++) {
		uint32_t a = plan.page[i].addr;
		const uint8_t *fill = NULL;

		if (plan.page[i].partial && !x->opt.fill_erased) {
			/* PROG_PAGE rewrites the whole page: keep the chip's
			 * bytes where the image has none, as avrdude does. */
			if (x->known[a / x->page_size] != KNOWN_NONE) {
				fill = x->shadow + a;
			} else {
				if ((rc = read_mem(d, STK500_MEM_FLASH, a, x->page_size, current,
						   &budget, e)) != FW_OK)
					goto out;
				x->stats.pages_filled++;
				fill = current;
			}
		}
		stk500_page_fill(img, a, x->page_size, fill, content);
		if (may_skip(x, a, content)) {
			x->stats.pages_skipped++;
		} else {
			if ((rc = write_page(d, a, content, &budget, e)) != FW_OK)
				goto out;
			x->stats.pages_written++;
		}
		device_progress(d, "write", (uint64_t)(i + 1) * x->page_size,
			 (uint64_t)plan.n * x->page_size);
	}
	if (x->stats.pages_skipped)
		device_logf(d, "%zu of %zu pages already held the new contents and were not written",
			x->stats.pages_skipped, plan.n);
out:
	stk500_plan_free(&plan);
	return rc;
}

/* ---- verifying ---- */

static void mismatch_add(struct device_verify_result *r, uint32_t addr, uint32_t len)
{
	if (r->nmismatch > 0) {
		uint32_t *pa = &r->mismatch[r->nmismatch - 1].addr;
		uint32_t *pl = &r->mismatch[r->nmismatch - 1].len;

		/* Adjacent, or no room left: widen the last entry so nothing
		 * that differs goes unreported. */
		if (*pa + *pl == addr || r->nmismatch == DEVICE_MAX_MISMATCH) {
			*pl = addr + len - *pa;
			return;
		}
	}
	r->mismatch[r->nmismatch].addr = addr;
	r->mismatch[r->nmismatch].len = len;
	r->nmismatch++;
}

/* Compares the image's bytes in [start, start+n) with what was read. */
static uint64_t compare(const struct image *img, uint32_t start, const uint8_t *got, uint32_t n,
			struct device_verify_result *r)
{
	uint32_t i, run = 0;
	uint64_t bad = 0;

	for (i = 0; i <= n; i++) {
		uint8_t want;
		bool differs = i < n && image_byte(img, start + i, &want) && want != got[i];

		if (differs) {
			run++;
			bad++;
			continue;
		}
		if (run) {
			mismatch_add(r, start + i - run, run);
			run = 0;
		}
	}
	return bad;
}

static int stk_verify(struct device *d, const struct image *img,
		      struct device_verify_result *r, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	uint64_t total, done = 0, bad = 0;
	uint32_t ps;
	struct budget budget;
	uint8_t *buf;
	size_t i;
	int rc;

	if (r)
		memset(r, 0, sizeof *r);
	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (!img || !r || image_count(img) == 0)
		return fw_err_set(e, FW_EINVAL, "stk500: nothing to verify");
	if (image_end(img) > x->flash_size)
		return fw_err_set(e, FW_EINVAL, "cannot verify: the image reaches 0x%llX, past the "
				  "end of the %u KB flash", (unsigned long long)image_end(img) - 1,
				  x->flash_size / 1024);
	snprintf(r->method, sizeof r->method, "read-back");
	if ((rc = ensure_session(d, "verifying", e)) != FW_OK)
		return rc;
	buf = malloc(x->flash_size);
	if (!buf)
		return fw_err_set(e, FW_ENOMEM, "out of memory verifying");
	ps = x->page_size;
	budget_init(x, &budget);
	total = image_total(img);
	/* Whole pages around each range: a partly covered page is read in
	 * full, so the next write knows all of it. */
	for (i = 0; i < image_count(img); i++) {
		const struct image_range *rg = image_range_get(img, i);
		uint32_t start = rg->addr - rg->addr % ps;
		uint64_t end = ((uint64_t)rg->addr + rg->len + ps - 1) / ps * ps;

		if (i > 0) {
			const struct image_range *pr = image_range_get(img, i - 1);

			/* the page shared with the previous range was read */
			if ((uint64_t)pr->addr + pr->len > start)
				start += ps;
		}
		if (end > x->flash_size)
			end = x->flash_size;
		if (start >= end) {
			done += rg->len;
			continue;
		}
		rc = read_flash(d, start, (uint32_t)end, buf + start, KNOWN_VERIFIED, &budget, e);
		if (rc != FW_OK)
			goto out;
		done += rg->len;
		r->bytes_checked = done;
		device_progress(d, "verify", done, total);
	}
	/* Compared only after all reads: a range's bytes may sit in a page
	 * read for the range before. */
	for (i = 0; i < image_count(img); i++) {
		const struct image_range *rg = image_range_get(img, i);

		bad += compare(img, rg->addr, buf + rg->addr, (uint32_t)rg->len, r);
	}
	r->bytes_checked = total;
	if (r->nmismatch)
		rc = fw_err_set(e, FW_EVERIFY,
				"the flash differs from the image in %llu byte%s (%zu range%s, first "
				"0x%X-0x%X): write again (only the differing pages are rewritten); "
				"if it keeps failing, check the power supply and the cable",
				(unsigned long long)bad, bad == 1 ? "" : "s", r->nmismatch,
				r->nmismatch == 1 ? "" : "s", r->mismatch[0].addr,
				r->mismatch[0].addr + r->mismatch[0].len - 1);
out:
	free(buf);
	return rc;
}

/* ---- leaving ---- */

static int stk_leave(struct device *d, bool run, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	struct stk500_cmd c;
	struct fw_err le = { 0 };
	int rc;

	if (!x)
		return fw_err_set(e, FW_ESTATE, "stk500: leave before connect");
	/* Without LEAVE_PROGMODE the bootloader still leaves for the
	 * application within about a second (its watchdog or timeout). */
	if (!run || !x->in_session)
		goto done;
	if (transport_now_ns() - x->last_io_ns >= ms_ns(SESSION_IDLE_MS)) {
		device_logf(d, "the bootloader has already left: the application is starting");
		goto done;
	}
	stk500_cmd_leave_progmode(&c);
	rc = command(d, &c, NULL, &le);
	if (rc == FW_ETIMEOUT) {
		/* Silence: the watchdog starts the application anyway. */
		device_logf(d, "no answer to LEAVE_PROGMODE (the application starts anyway)");
	} else if (rc != FW_OK && rc != FW_EPROTO) {
		fw_err_copy(e, &le);
		return rc;
	}
done:
	x->in_session = false;
	x->identified = false;
	return FW_OK;
}

/* ---- EEPROM ---- */

static int eeprom_check(struct device *d, uint32_t addr, uint32_t len, uint32_t max_len,
			const char *what, struct fw_err *e)
{
	struct stk_dev *x = d->priv;
	const struct avr_part *part;
	int rc;

	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (!x->loader.eeprom)
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "cannot %s the EEPROM through %s: this bootloader ignores the "
				  "memory type, so an EEPROM write would erase and reprogram flash "
				  "page 0 (the application's start); use an ISP programmer for the "
				  "EEPROM", what, x->loader.name);
	part = part_by_sig(x->sig);
	if (!part)
		return fw_err_set(e, FW_EUNSUPPORTED, "cannot %s the EEPROM: flashwise does not "
				  "know the EEPROM size of signature %02X %02X %02X", what,
				  x->sig[0], x->sig[1], x->sig[2]);
	if (len == 0 || (addr | len) & 1u || len > max_len ||
	    (uint64_t)addr + len > part->eeprom)
		return fw_err_set(e, FW_EINVAL, "cannot %s EEPROM 0x%X+%u: even address and "
				  "length, at most %u bytes, within the %s's %u bytes", what, addr,
				  len, max_len, part->name, part->eeprom);
	return ensure_session(d, "EEPROM", e);
}

int dev_stk500_eeprom_read(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
			   struct fw_err *e)
{
	struct stk_dev *x;
	struct budget budget;
	uint32_t off = 0;
	int rc;

	if (!d || !d->priv || !out)
		return fw_err_set(e, FW_ESTATE, "stk500: EEPROM read before connect");
	x = d->priv;
	if ((rc = eeprom_check(d, addr, len, 0xFFFFu, "read", e)) != FW_OK)
		return rc;
	budget_init(x, &budget);
	while (off < len) {
		uint32_t n = len - off < 256u ? len - off : 256u;

		/* ATmegaBOOT doubles the loaded address for EEPROM too. */
		if ((rc = read_mem(d, STK500_MEM_EEPROM, addr + off, n, out + off, &budget, e)) !=
		    FW_OK)
			return rc;
		off += n;
	}
	return FW_OK;
}

int dev_stk500_eeprom_write(struct device *d, uint32_t addr, const uint8_t *data,
			    uint32_t len, struct fw_err *e)
{
	struct stk500_cmd c[2];
	int rc;

	if (!d || !d->priv || !data)
		return fw_err_set(e, FW_ESTATE, "stk500: EEPROM write before connect");
	if ((rc = eeprom_check(d, addr, len, STK500_PAGE_MAX, "write", e)) != FW_OK)
		return rc;
	if ((rc = stk500_cmd_load_address(&c[0], addr, e)) != FW_OK ||
	    (rc = stk500_cmd_prog_page(&c[1], STK500_MEM_EEPROM, data, len, e)) != FW_OK)
		return rc;
	/* Not repeated after a lost reply: the caller reads back and decides. */
	return xfer(d, c, 2, NULL, EEPROM_BYTE_MS * len, e);
}

static void stk_close(struct device *d)
{
	struct stk_dev *x;

	if (!d || !d->priv)
		return;
	x = d->priv;
	free(x->shadow);
	free(x->known);
	free(x);
	d->priv = NULL;
}

const struct device_ops dev_stk500_ops = {
	.name = "stk500v1",
	.connect = stk_connect,
	.identify = stk_identify,
	.caps = stk_caps,
	.read = stk_read,
	.write = stk_write,
	.verify = stk_verify,
	.leave = stk_leave,
	.read_eeprom = dev_stk500_eeprom_read,
	.close = stk_close,
};
