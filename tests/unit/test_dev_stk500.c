/* The STK500v1 driver against a fake serial port that plays an Arduino
 * Uno's Optiboot 4.4 (or the old ATmegaBOOT 1.16) the way
 * stk500v1-optiboot.md describes it, in real time: a reset only on DTR's
 * asserting edge, bytes lost while the chip is in reset and all but two
 * lost during the LED flash, listening from 0.44 s, a 1 s watchdog restarted
 * by every byte, silence and a watchdog exit to the application on a bad
 * terminator, erase-before-data for RWW pages, whole-page programming from
 * a stale RAM buffer, READ_PAGE length low 0 = 256, no EEPROM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dev_stk500.h"
#include "dev_watch.h"
#include "devices.h"
#include "stk500_proto.h"
#include "strbuf.h"
#include "transport.h"

#define FLASH 32768u
#define PAGE 128u
#define NRWW 0x7000u
#define BOOT 0x7E00u
#define MS 1000000ull

enum bstate { B_APP, B_RESET, B_BOOT };

struct fake {
	bool atmegaboot;
	uint8_t flash[FLASH];
	uint8_t eeprom[1024];
	uint8_t buff[256];        /* the bootloader's RAM page buffer */

	enum bstate state;
	uint64_t reset_at, listen_at, wd_at;
	uint8_t fifo[2];
	size_t nfifo;
	bool has_shift;           /* the last byte, in the receive shift register */
	uint8_t shift;
	unsigned errors;          /* ATmegaBOOT: unknown commands, 5 = leave */
	uint8_t cmd[300];
	size_t ncmd;
	uint32_t addr;            /* byte address from LOAD_ADDRESS */
	bool dropping_done;
	int dtr;

	struct strbuf out;
	size_t out_off;

	/* behaviour */
	bool lines;               /* the port has DTR/RTS */
	bool autoreset;           /* DTR's asserting edge resets the chip */
	bool garbage;             /* the bootloader runs at another baud rate */
	const char *app_text;     /* what the sketch prints when spoken to */
	uint64_t boot_ms;         /* reset -> listening */
	int drop_prog;            /* drop a byte of this PROG_PAGE (0-based) */
	int reset_prog;           /* reset the chip as this PROG_PAGE starts */
	uint64_t drop_every;      /* lose every this-many-th byte too (0 off) */
	int64_t drop_out;         /* lose this byte (0-based) on its way to
	                           * the host; -1 none */
	uint64_t out_count;
	unsigned drop_offset;     /* ... its data byte number */
	uint32_t stuck[8];        /* flash bytes that keep their value */
	size_t nstuck;
	uint64_t press_at;        /* the technician presses RESET (manual) */

	/* what happened */
	unsigned resets;
	unsigned prog_started;
	uint32_t prog_log[1024];  /* pages programmed */
	size_t nprog;
	unsigned ops[256];
	unsigned read_len_hist[4];/* READ_PAGE lengths: 128, 256, 1024, other */
	size_t rx_total;
	unsigned boot_writes;
	struct { int dtr, rts; uint64_t t; } lines_log[64];
	size_t nlines;
	uint64_t first_answer_ns; /* reset edge -> first GET_SYNC answered */
	bool answered_since_reset;
};

static uint64_t now_ns(void)
{
	return transport_now_ns();
}

static void emit(struct fake *f, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if ((int64_t)f->out_count++ != f->drop_out &&
		    !(f->drop_every && f->out_count % f->drop_every == 0))
			strbuf_add(&f->out, b + i, 1);
}

static void emit1(struct fake *f, uint8_t b)
{
	emit(f, &b, 1);
}

static void reset_edge(struct fake *f, uint64_t now)
{
	f->state = B_RESET;
	f->reset_at = now;
	f->listen_at = now + f->boot_ms * MS;
	f->nfifo = 0;
	f->has_shift = false;
	f->ncmd = 0;
	f->errors = 0;
	f->resets++;
	f->answered_since_reset = false;
}

static bool is_stuck(const struct fake *f, uint32_t a)
{
	size_t i;

	for (i = 0; i < f->nstuck; i++)
		if (f->stuck[i] == a)
			return true;
	return false;
}

static void erase_page(struct fake *f, uint32_t a)
{
	a -= a % PAGE;
	if (a >= BOOT) {
		f->boot_writes++; /* lock bits: SPM cannot touch the boot section */
		return;
	}
	memset(f->flash + a, 0xFF, PAGE);
}

static void program_page(struct fake *f, uint32_t a)
{
	uint32_t i;

	a -= a % PAGE;
	if (a >= BOOT) {
		f->boot_writes++;
		return;
	}
	for (i = 0; i < PAGE; i++)
		if (!is_stuck(f, a + i))
			f->flash[a + i] = f->buff[i];
	if (f->nprog < 1024)
		f->prog_log[f->nprog++] = a;
}

/* A bad terminator: Optiboot answers nothing and its 16 ms watchdog starts
 * the application. ATmegaBOOT just ignores the command. */
static void bad_frame(struct fake *f, uint64_t now)
{
	f->ncmd = 0;
	if (!f->atmegaboot)
		f->wd_at = now + 16 * MS;
}

static size_t cmd_len(const struct fake *f)
{
	switch (f->cmd[0]) {
	case 'A': return 3;
	case 'B': return 22;
	case 'E': return 7;
	case 'U': return 4;
	case 'V': return 6;
	case 'd':
	case 't':
		if (f->ncmd < 3)
			return 5;
		if (f->cmd[0] == 't')
			return 5;
		if (f->atmegaboot)
			return 5u + ((size_t)f->cmd[1] << 8 | f->cmd[2]);
		/* Optiboot 4.4 ignores the length's high byte; low 0 = 256 */
		return 5u + (f->cmd[2] ? f->cmd[2] : 256u);
	default: return 2;
	}
}

static void run_cmd(struct fake *f, uint64_t now)
{
	uint8_t op = f->cmd[0];
	size_t n = f->ncmd, i, len;

	f->ncmd = 0;
	if (f->cmd[n - 1] != STK500_CRC_EOP) {
		bad_frame(f, now);
		return;
	}
	f->ops[op]++;
	emit1(f, STK500_INSYNC);
	switch (op) {
	case 'A': {
		uint8_t id = f->cmd[1], v;

		if (f->atmegaboot)
			v = id == 0x80 ? 2 : id == 0x81 ? 1 : id == 0x82 ? 16 : id == 0x98 ? 3 : 0;
		else
			v = id == 0x81 ? 4 : id == 0x82 ? 4 : 3;
		emit1(f, v);
		break;
	}
	case 'U':
		f->addr = (uint32_t)(f->cmd[1] | f->cmd[2] << 8) * 2u;
		break;
	case 'V':
		emit1(f, 0);
		break;
	case 'u': {
		static const uint8_t sig[3] = { 0x1E, 0x95, 0x0F };

		emit(f, sig, 3);
		break;
	}
	case 'd':
		len = n - 5;
		if (f->atmegaboot && f->cmd[3] == 'E') {
			for (i = 0; i < len && f->addr + i < sizeof f->eeprom; i++)
				f->eeprom[f->addr + i] = f->cmd[4 + i];
			break;
		}
		memcpy(f->buff, f->cmd + 4, len < sizeof f->buff ? len : sizeof f->buff);
		if (f->atmegaboot || f->addr >= NRWW)
			erase_page(f, f->addr);
		program_page(f, f->addr);
		break;
	case 't':
		if (f->atmegaboot)
			len = (size_t)f->cmd[1] << 8 | f->cmd[2];
		else
			len = f->cmd[2] ? f->cmd[2] : 256u;
		f->read_len_hist[len == 128 ? 0 : len == 256 ? 1 : len == 1024 ? 2 : 3]++;
		for (i = 0; i < len; i++) {
			if (f->atmegaboot && f->cmd[3] == 'E')
				emit1(f, f->eeprom[(f->addr + i) % sizeof f->eeprom]);
			else
				emit1(f, f->flash[(f->addr + i) % FLASH]);
		}
		/* Optiboot reads with address++; PROG_PAGE leaves it alone */
		if (!f->atmegaboot)
			f->addr = (f->addr + (uint32_t)len) & 0xFFFFu;
		break;
	case 'Q':
		if (!f->atmegaboot)
			f->wd_at = now + 16 * MS;
		break;
	case '0':
		if (!f->answered_since_reset) {
			f->answered_since_reset = true;
			f->first_answer_ns = now - f->reset_at;
		}
		break;
	default:
		break;
	}
	emit1(f, STK500_OK);
}

static void boot_byte(struct fake *f, uint8_t b, uint64_t now)
{
	if (f->garbage) {
		/* framing errors: no watchdog restart, and the host sees junk */
		emit1(f, (uint8_t)(0xF0 ^ b));
		return;
	}
	f->wd_at = now + 1000 * MS;
	if (f->ncmd == 0 && b == 'd') {
		if ((int)f->prog_started++ == f->reset_prog) {
			reset_edge(f, now); /* the rest of the page is lost */
			return;
		}
	}
	if (f->ncmd == 0 && f->atmegaboot && !strchr("01ABEPRQUVdtu", b)) {
		/* ATmegaBOOT: an unknown command is an error, no terminator */
		if (++f->errors == 5)
			f->state = B_APP;
		return;
	}
	if (f->cmd[0] == 'd' && f->ncmd >= 4 && (int)f->prog_started - 1 == f->drop_prog &&
	    !f->dropping_done && f->ncmd - 4 == f->drop_offset) {
		f->dropping_done = true; /* lost on the line */
		return;
	}
	f->cmd[f->ncmd++] = b;
	if (f->cmd[0] == 'd' && f->ncmd == 4 && !f->atmegaboot && f->addr < NRWW)
		erase_page(f, f->addr); /* RWW: erased before the data arrives */
	if (f->ncmd >= 2 && f->cmd[0] != 'd' && f->cmd[0] != 't' && f->ncmd == 2 &&
	    cmd_len(f) == 2) {
		run_cmd(f, now);
		return;
	}
	if (f->ncmd == cmd_len(f))
		run_cmd(f, now);
}

static void advance(struct fake *f, uint64_t now)
{
	if (f->press_at && now >= f->press_at) {
		f->press_at = 0;
		reset_edge(f, now);
	}
	if (f->state == B_RESET && now >= f->listen_at) {
		size_t i, k = f->nfifo;

		f->state = B_BOOT;
		f->wd_at = f->listen_at + 1000 * MS;
		f->nfifo = 0;
		for (i = 0; i < k; i++)
			boot_byte(f, f->fifo[i], f->listen_at);
		if (f->has_shift) {
			f->has_shift = false;
			boot_byte(f, f->shift, f->listen_at);
		}
	}
	if (f->state == B_BOOT && now >= f->wd_at)
		f->state = B_APP; /* a watchdog reset runs the application */
}

static void rx_byte(struct fake *f, uint8_t b, uint64_t now)
{
	f->rx_total++;
	switch (f->state) {
	case B_APP:
		break;
	case B_RESET:
		/* lost in reset; then the UART holds two bytes (overrun) */
		if (now < f->reset_at + 65 * MS)
			break;
		if (f->nfifo < 2) {
			f->fifo[f->nfifo++] = b;
		} else {
			f->shift = b; /* overwritten by every later byte */
			f->has_shift = true;
		}
		break;
	case B_BOOT:
		boot_byte(f, b, now);
		break;
	}
}

static int fake_write(struct transport *t, const void *buf, size_t n, size_t *done,
		      uint64_t deadline_ns, struct fw_err *e)
{
	struct fake *f = t->priv;
	const uint8_t *p = buf;
	uint64_t now = now_ns();
	size_t i;

	(void)deadline_ns;
	(void)e;
	advance(f, now);
	if (f->state == B_APP && f->app_text)
		emit(f, f->app_text, strlen(f->app_text));
	for (i = 0; i < n; i++) {
		rx_byte(f, p[i], now);
		advance(f, now);
	}
	*done = n;
	return FW_OK;
}

static int fake_read(struct transport *t, void *buf, size_t n, size_t *got,
		     uint64_t deadline_ns, struct fw_err *e)
{
	struct fake *f = t->priv;

	(void)e;
	for (;;) {
		uint64_t now = now_ns(), wake = deadline_ns;
		size_t avail;

		advance(f, now);
		avail = f->out.len - f->out_off;
		if (avail) {
			if (n > avail)
				n = avail;
			memcpy(buf, f->out.s + f->out_off, n);
			f->out_off += n;
			if (f->out_off == f->out.len) {
				strbuf_reset(&f->out);
				f->out_off = 0;
			}
			*got = n;
			return FW_OK;
		}
		if (now >= deadline_ns) {
			*got = 0;
			return FW_OK;
		}
		if (f->state == B_RESET && f->listen_at < wake)
			wake = f->listen_at;
		if (f->press_at && f->press_at < wake)
			wake = f->press_at;
		if (wake > now) {
			struct timespec ts = { (time_t)((wake - now) / 1000000000u),
					       (long)((wake - now) % 1000000000u) };

			nanosleep(&ts, NULL);
		}
	}
}

static int fake_flush(struct transport *t, unsigned which, struct fw_err *e)
{
	struct fake *f = t->priv;

	(void)e;
	if (which & TRANSPORT_FLUSH_INPUT) {
		strbuf_reset(&f->out);
		f->out_off = 0;
	}
	return FW_OK;
}

static int fake_set_lines(struct transport *t, int dtr, int rts, struct fw_err *e)
{
	struct fake *f = t->priv;
	uint64_t now = now_ns();

	(void)e;
	if (f->nlines < 64) {
		f->lines_log[f->nlines].dtr = dtr;
		f->lines_log[f->nlines].rts = rts;
		f->lines_log[f->nlines].t = now;
		f->nlines++;
	}
	advance(f, now);
	if (dtr != TRANSPORT_LINE_KEEP) {
		if (f->autoreset && f->dtr == 0 && dtr == 1)
			reset_edge(f, now);
		f->dtr = dtr;
	}
	return FW_OK;
}

static unsigned fake_caps(const struct transport *t)
{
	const struct fake *f = t->priv;

	return f->lines ? TRANSPORT_CAP_MODEM_LINES | TRANSPORT_CAP_TIGHT_LINES : 0;
}

static void fake_close(struct transport *t)
{
	(void)t;
}

static const struct transport_ops fake_ops = {
	.name = "fake-optiboot",
	.close = fake_close,
	.read = fake_read,
	.write = fake_write,
	.flush = fake_flush,
	.set_lines = fake_set_lines,
	.caps = fake_caps,
};

/* ---- rig ---- */

struct rig {
	struct fake f;
	struct transport *t;
	struct profile p;
	struct device d;
	struct dev_watch w;       /* the driver's log and progress */
};

static void uno_profile(struct profile *p, unsigned baud)
{
	memset(p, 0, sizeof *p);
	strcpy(p->id, "arduino-uno-r3");
	strcpy(p->chip, "atmega328p");
	p->family = PROFILE_FAMILY_AVR;
	p->protocol = PROFILE_PROTO_STK500V1;
	p->flash_size = FLASH;
	p->page_size = PAGE;
	p->sector_size = PAGE;
	p->rom_baud = baud;
	p->flash_baud = baud;
	p->reset = PROFILE_RESET_AUTO;
	strcpy(p->manual_instructions, "press and release RESET just before flashwise connects");
	p->has_signature = true;
	p->signature[0] = 0x1E;
	p->signature[1] = 0x95;
	p->signature[2] = 0x0F;
	strcpy(p->part[0].name, "application");
	p->part[0].size = BOOT;
	p->part[0].role = PART_ROLE_APP;
	strcpy(p->part[1].name, "bootloader");
	p->part[1].offset = BOOT;
	p->part[1].size = FLASH - BOOT;
	p->part[1].role = PART_ROLE_BOOTLOADER;
	p->part[1].protect = true;
	p->npart = 2;
}

static struct rig *rig_new(bool atmegaboot)
{
	struct rig *r = calloc(1, sizeof *r);
	struct dev_stk500_options o;
	unsigned baud = atmegaboot ? 57600 : 115200;
	size_t i;

	assert_non_null(r);
	r->f.atmegaboot = atmegaboot;
	for (i = 0; i < FLASH; i++)
		r->f.flash[i] = (uint8_t)(i * 13 + 7); /* an old sketch */
	for (i = 0; i < sizeof r->f.buff; i++)
		r->f.buff[i] = 0xEE;
	r->f.state = B_APP; /* the port was opened long ago */
	r->f.dtr = 1;
	r->f.lines = true;
	r->f.autoreset = true;
	r->f.boot_ms = atmegaboot ? 300 : 440;
	r->f.drop_prog = -1;
	r->f.reset_prog = -1;
	r->f.drop_out = -1;
	assert_int_equal(transport_wrap(&fake_ops, &r->f, "/dev/ttyACM0", baud, &r->t, NULL),
			 FW_OK);
	uno_profile(&r->p, baud);
	if (atmegaboot) {
		strcpy(r->p.id, "arduino-nano-oldboot");
		r->p.part[0].size = 0x7800;
		r->p.part[1].offset = 0x7800;
		r->p.part[1].size = 0x800;
	}
	r->d.ops = device_ops_for(&r->p);
	assert_ptr_equal(r->d.ops, &dev_stk500_ops);
	r->d.t = r->t;
	r->d.p = &r->p;
	dev_watch_attach(&r->w, &r->d);
	dev_stk500_options_default(&o);
	o.connect_attempts = 2;
	o.manual_wait_ms = 1500;
	o.timeout_ms = 300;
	assert_int_equal(dev_stk500_set_options(&r->d, &o, NULL), FW_OK);
	return r;
}

static void rig_free(struct rig *r)
{
	r->d.ops->close(&r->d);
	assert_null(r->d.priv);
	transport_close(r->t);
	strbuf_free(&r->f.out);
	dev_watch_free(&r->w);
	free(r);
}

static void set_opt(struct rig *r, void (*fn)(struct dev_stk500_options *))
{
	struct dev_stk500_options o;

	dev_stk500_options_default(&o);
	o.connect_attempts = 2;
	o.manual_wait_ms = 1500;
	o.timeout_ms = 300;
	fn(&o);
	assert_int_equal(dev_stk500_set_options(&r->d, &o, NULL), FW_OK);
}

static void connect_identify(struct rig *r, struct device_identity *id)
{
	struct fw_err e = { 0 };

	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->d.ops->identify(&r->d, id, &e), FW_OK);
}

static uint64_t ms_since(uint64_t start)
{
	return (now_ns() - start) / MS;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 31u + seed) ^ (i >> 7));
	return b;
}

static void image_of(struct image *img, uint32_t addr, const uint8_t *b, size_t n)
{
	image_init(img);
	assert_int_equal(image_add(img, addr, b, n, NULL), FW_OK);
}

/* ---- connect ---- */

static void test_connect_pulse_and_timing(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };
	uint64_t t0 = now_ns(), took;

	(void)state;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	took = ms_since(t0);
	/* released, then asserted: one reset on the asserting edge */
	assert_true(r->f.nlines >= 2);
	assert_int_equal(r->f.lines_log[0].dtr, 0);
	assert_int_equal(r->f.lines_log[0].rts, 0);
	assert_int_equal(r->f.lines_log[1].dtr, 1);
	assert_int_equal(r->f.lines_log[1].rts, 1);
	assert_int_equal(r->f.resets, 1);
	/* the GET_SYNC that waited in the UART is answered as Optiboot starts */
	assert_true(r->f.first_answer_ns >= 440 * MS);
	assert_true(r->f.first_answer_ns < 520 * MS);
	/* avrdude needs ~1.08 s for a whole signature session */
	assert_true(took < 700);
	assert_int_equal(r->f.state, B_BOOT);
	rig_free(r);
}

static void test_connect_retries_with_fresh_pulse(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };

	(void)state;
	/* the first boot is too slow for the window: the bootloader leaves
	 * before it listens, as a board without a working reset would */
	r->f.boot_ms = 1600;
	r->f.press_at = 0;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_int_equal(r->f.resets, 2); /* one pulse per attempt */
	r->f.boot_ms = 440;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->f.resets, 3);
	rig_free(r);
}

static void test_late_boot_stray_byte(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };

	(void)state;
	/* the LED flash ends late: more GET_SYNCs pile up, and the last 0x20
	 * waits in the shift register as a command of its own */
	r->f.boot_ms = 700;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->f.resets, 1);
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	assert_string_equal(id.loader, "Optiboot 4.4");
	rig_free(r);

	r = rig_new(true);
	r->f.boot_ms = 700;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->f.resets, 1);
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	assert_string_equal(id.loader, "ATmegaBOOT 1.16");
	rig_free(r);
}

static void test_no_answer_bounded(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };
	uint64_t t0 = now_ns();

	(void)state;
	r->f.autoreset = false; /* no auto-reset circuit, a silent sketch */
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_true(ms_since(t0) < 2 * 1600 + 500);
	assert_non_null(strstr(e.msg, "no answer"));
	assert_non_null(strstr(e.msg, "/dev/ttyACM0"));
	assert_non_null(strstr(e.msg, "wrong port"));
	assert_non_null(strstr(e.msg, "RESET"));
	assert_int_equal(r->f.nlines, 4); /* two pulses */
	rig_free(r);
}

static void test_wrong_baud_garbage(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };

	(void)state;
	r->f.garbage = true;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_non_null(strstr(e.msg, "make no sense"));
	assert_non_null(strstr(e.msg, "baud rate 115200"));
	assert_non_null(strstr(e.msg, "57600"));
	assert_null(strstr(e.msg, "no answer"));
	rig_free(r);
}

static void test_application_answered(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };

	(void)state;
	r->f.autoreset = false;
	r->f.app_text = "Hello from the sketch\r\n";
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_non_null(strstr(e.msg, "application answered"));
	assert_non_null(strstr(e.msg, "Hello from the sketch"));
	assert_non_null(strstr(e.msg, "auto-reset"));
	rig_free(r);
}

static void test_manual_without_lines(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };

	(void)state;
	r->f.lines = false; /* a pty: set_lines is FW_EUNSUPPORTED */
	r->f.press_at = now_ns() + 300 * MS;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_non_null(strstr(strbuf_str(&r->w.log), "press and release RESET"));
	assert_int_equal(r->f.nlines, 0);
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);

	/* nobody presses: bounded, and the message says what to do */
	r->f.state = B_APP;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_non_null(strstr(e.msg, "no answer"));
	assert_non_null(strstr(e.msg, "within 2 s"));
	rig_free(r);
}

/* ---- identify ---- */

static void test_identify_optiboot(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_caps caps;
	struct fw_err e = { 0 };

	(void)state;
	connect_identify(r, &id);
	assert_true(id.has_signature);
	assert_int_equal(id.signature[0], 0x1E);
	assert_int_equal(id.signature[1], 0x95);
	assert_int_equal(id.signature[2], 0x0F);
	assert_string_equal(id.chip, "atmega328p");
	assert_string_equal(id.loader, "Optiboot 4.4");
	assert_int_equal(id.flash_size, FLASH);
	assert_int_equal(device_match(&r->p, &id, &e), FW_OK);
	/* minimal session: no SET_DEVICE / SET_DEVICE_EXT, no chip erase */
	assert_int_equal(r->f.ops['B'], 0);
	assert_int_equal(r->f.ops['E'], 0);
	assert_int_equal(r->f.ops['V'], 0);
	assert_int_equal(r->f.ops['A'], 2);
	assert_int_equal(r->f.ops['u'], 1);
	r->d.ops->caps(&r->d, &caps);
	assert_true(caps.can_reset);
	assert_true(caps.can_read);
	assert_false(caps.can_hash);
	assert_true(caps.exact_erase);
	assert_false(caps.can_change_baud);
	assert_non_null(strstr(caps.why_not, "checksum"));

	/* a profile for another part: device_match names both */
	r->p.signature[2] = 0x14;
	assert_int_equal(device_match(&r->p, &id, &e), FW_EMISMATCH);
	assert_int_equal(r->d.ops->read(&r->d, 0, 16, (uint8_t[16]){ 0 }, &e), FW_EMISMATCH);
	rig_free(r);
}

static void test_not_identified_refuses(void **state)
{
	struct rig *r = rig_new(false);
	struct fw_err e = { 0 };
	uint8_t buf[4];
	struct device_identity id;

	(void)state;
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_ESTATE);
	assert_int_equal(r->d.ops->read(&r->d, 0, 4, buf, &e), FW_ESTATE);
	assert_int_equal(r->f.rx_total, 0);
	rig_free(r);
}

/* ---- read ---- */

static void test_backup_read_in_large_chunks(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t *buf = malloc(FLASH);
	uint8_t odd[5];

	(void)state;
	assert_non_null(buf);
	connect_identify(r, &id);
	assert_int_equal(r->d.ops->read(&r->d, 0, FLASH, buf, &e), FW_OK);
	/* all of it, the bootloader's bytes too (Optiboot can read them) */
	assert_memory_equal(buf, r->f.flash, FLASH);
	assert_int_equal(r->f.read_len_hist[1], FLASH / 256);
	assert_int_equal(r->f.read_len_hist[0] + r->f.read_len_hist[2] + r->f.read_len_hist[3],
			 0);
	/* one LOAD_ADDRESS: Optiboot's READ_PAGE moves its pointer on */
	assert_int_equal(r->f.ops['U'], 1);
	assert_false(r->w.progress_backwards);
	assert_string_equal(r->w.last_phase, "read");
	/* an odd start and length */
	assert_int_equal(r->d.ops->read(&r->d, 0x101, 5, odd, &e), FW_OK);
	assert_memory_equal(odd, r->f.flash + 0x101, 5);
	assert_int_equal(r->f.ops['U'], 2); /* elsewhere: loaded again */
	assert_int_equal(r->d.ops->read(&r->d, FLASH - 2, 4, odd, &e), FW_EINVAL);
	free(buf);
	rig_free(r);
}

static void test_pause_between_steps_reenters(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t buf[300];
	struct timespec ts = { 1, 200000000L };

	(void)state;
	connect_identify(r, &id);
	/* the technician reads a prompt: the watchdog starts the sketch */
	nanosleep(&ts, NULL);
	assert_int_equal(r->d.ops->read(&r->d, 0x200, sizeof buf, buf, &e), FW_OK);
	assert_memory_equal(buf, r->f.flash + 0x200, sizeof buf);
	assert_int_equal(r->f.resets, 2);
	assert_non_null(strstr(strbuf_str(&r->w.log), "about 1 s"));
	rig_free(r);
}

/* ---- write + verify ---- */

static void test_write_verify_multipage(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	uint8_t *old = malloc(FLASH);
	uint32_t start = 0x0010;                 /* unaligned start */
	size_t len = 0x70A0 - start;             /* ends inside an NRWW page */
	uint8_t *data = pattern(len, 3);
	size_t i;

	(void)state;
	assert_non_null(old);
	memcpy(old, r->f.flash, FLASH);
	image_of(&img, start, data, len);
	connect_identify(r, &id);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* the image's bytes, and the chip's old bytes around them */
	assert_memory_equal(r->f.flash + start, data, len);
	assert_memory_equal(r->f.flash, old, start);
	assert_memory_equal(r->f.flash + start + len, old + start + len,
			    0x7100 - (start + len));
	assert_int_equal(r->f.nprog, 0x7100 / PAGE);
	for (i = 0; i < r->f.nprog; i++)
		assert_int_equal(r->f.prog_log[i], i * PAGE);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.pages_written, 0x7100 / PAGE);
	assert_int_equal(st.pages_filled, 2);
	assert_int_equal(st.recoveries, 0);
	assert_int_equal(r->f.boot_writes, 0);
	assert_false(r->w.progress_backwards);

	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_int_equal(vr.nmismatch, 0);
	assert_int_equal(vr.bytes_checked, len);
	assert_string_equal(vr.method, "read-back");

	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_OK);
	assert_int_equal(r->f.ops['Q'], 1);
	{
		struct timespec ts = { 0, 30000000L };

		nanosleep(&ts, NULL);
		advance(&r->f, now_ns());
		assert_int_equal(r->f.state, B_APP);
	}
	image_free(&img);
	free(data);
	free(old);
	rig_free(r);
}

static void opt_fill_erased(struct dev_stk500_options *o)
{
	o->fill_erased = true;
}

static void opt_skip_unchanged(struct dev_stk500_options *o)
{
	o->skip_unchanged = true;
}

static void test_fill_erased(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	uint8_t data[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	size_t i;

	(void)state;
	image_of(&img, 0x205, data, sizeof data);
	connect_identify(r, &id);
	set_opt(r, opt_fill_erased);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.pages_filled, 0);
	assert_int_equal(st.pages_written, 1);
	assert_int_equal(r->f.read_len_hist[0] + r->f.read_len_hist[1], 0);
	for (i = 0x200; i < 0x280; i++) {
		if (i >= 0x205 && i < 0x205 + sizeof data)
			assert_int_equal(r->f.flash[i], data[i - 0x205]);
		else
			assert_int_equal(r->f.flash[i], 0xFF);
	}
	image_free(&img);
	rig_free(r);
}

static void test_mismatch_ranges_and_rewrite_only_failed(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	size_t len = 8 * PAGE;
	uint8_t *data = pattern(len, 9);

	(void)state;
	/* flash cells that do not take the new value */
	r->f.stuck[0] = 0x0105;
	r->f.stuck[1] = 0x0106;
	r->f.stuck[2] = 0x0107;
	r->f.stuck[3] = 0x0300;
	r->f.stuck[4] = 0x03FF;
	r->f.nstuck = 5;
	image_of(&img, 0, data, len);
	connect_identify(r, &id);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_EVERIFY);
	assert_int_equal(vr.nmismatch, 3);
	assert_int_equal(vr.mismatch[0].addr, 0x0105);
	assert_int_equal(vr.mismatch[0].len, 3);
	assert_int_equal(vr.mismatch[1].addr, 0x0300);
	assert_int_equal(vr.mismatch[1].len, 1);
	assert_int_equal(vr.mismatch[2].addr, 0x03FF);
	assert_int_equal(vr.mismatch[2].len, 1);
	assert_non_null(strstr(e.msg, "5 bytes"));
	assert_non_null(strstr(e.msg, "0x105-0x107"));

	/* the next write goes only to the pages that failed */
	r->f.nstuck = 0;
	r->f.nprog = 0;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.pages_written, 3);
	assert_int_equal(st.pages_skipped, 5);
	assert_int_equal(r->f.nprog, 3);
	assert_int_equal(r->f.prog_log[0], 0x100);
	assert_int_equal(r->f.prog_log[1], 0x300);
	assert_int_equal(r->f.prog_log[2], 0x380);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_dropped_byte_recovers_unfinished_pages(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	size_t len = 8 * PAGE, i;
	uint8_t *data = pattern(len, 5);
	unsigned count[8] = { 0 };

	(void)state;
	image_of(&img, 0x1000, data, len);
	connect_identify(r, &id);
	r->f.drop_prog = 3;
	r->f.drop_offset = 77;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_true(r->f.dropping_done);
	assert_int_equal(r->f.resets, 2);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.recoveries, 1);
	/* a byte lost towards the board breaks Optiboot's frame: the resync
	 * finds it gone, and only the reset brings it back */
	assert_int_equal(st.resyncs, 0);
	assert_int_equal(st.pages_rewritten, 1);
	assert_int_equal(st.pages_written, 8);
	/* every page programmed once: the interrupted one after the reset,
	 * none of the finished ones again */
	assert_int_equal(r->f.nprog, 8);
	for (i = 0; i < r->f.nprog; i++)
		count[(r->f.prog_log[i] - 0x1000) / PAGE]++;
	for (i = 0; i < 8; i++)
		assert_int_equal(count[i], 1);
	assert_non_null(strstr(strbuf_str(&r->w.log), "writing page 0x1180"));
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	image_free(&img);
	free(data);
	rig_free(r);
}

/* A reply byte lost on its way to the host: the bootloader did its part
 * and still listens, so a GET_SYNC gets it back in step without a reset;
 * the page whose answer was lost is written again, the reads go on. */
static void test_lost_reply_byte_resyncs_without_reset(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	size_t len = 8 * PAGE, i;
	uint8_t *data = pattern(len, 7);
	uint8_t *buf = malloc(4096);
	unsigned count[8] = { 0 }, loads;
	uint64_t t0;

	(void)state;
	assert_non_null(buf);
	image_of(&img, 0x2000, data, len);
	connect_identify(r, &id);
	/* per page: LOAD_ADDRESS INSYNC OK, PROG_PAGE INSYNC OK; lose the
	 * OK of the fourth page, after it was programmed */
	r->f.drop_out = (int64_t)r->f.out_count + 3 * 4 + 3;
	t0 = now_ns();
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_true(ms_since(t0) < 300 + 200); /* one timeout, no reset */
	assert_int_equal(r->f.resets, 1);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.recoveries, 1);
	assert_int_equal(st.resyncs, 1);
	assert_int_equal(st.pages_rewritten, 1);
	assert_int_equal(r->f.nprog, 9);
	for (i = 0; i < r->f.nprog; i++)
		count[(r->f.prog_log[i] - 0x2000) / PAGE]++;
	assert_int_equal(count[3], 2);
	assert_non_null(strstr(strbuf_str(&r->w.log), "writing page 0x2180"));
	assert_non_null(strstr(strbuf_str(&r->w.log), "without a reset"));
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);

	/* a data byte lost in the middle of a 256-byte READ_PAGE */
	loads = r->f.ops['U'];
	r->f.drop_out = (int64_t)r->f.out_count + 256 + 4 + 100;
	assert_int_equal(r->d.ops->read(&r->d, 0x1000, 4096, buf, &e), FW_OK);
	assert_memory_equal(buf, r->f.flash + 0x1000, 4096);
	assert_int_equal(r->f.resets, 1);
	/* the first chunk, and the repeated one after the resync */
	assert_int_equal(r->f.ops['U'] - loads, 2);
	image_free(&img);
	free(data);
	free(buf);
	rig_free(r);
}

/* The chip resets as a page write begins (a brown-out of the reset line):
 * the resync's GET_SYNC waits in the UART of a bootloader still flashing
 * its LED, its late answer must not pass for the answer after the reset
 * the driver then makes, and the write ends with every page right. */
static void test_reset_during_write_recovers(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	size_t len = 8 * PAGE;
	uint8_t *data = pattern(len, 11);

	(void)state;
	image_of(&img, 0x3000, data, len);
	connect_identify(r, &id);
	r->f.reset_prog = 5;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.recoveries, 1);
	assert_int_equal(st.pages_written, 8);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_memory_equal(r->f.flash + 0x3000, data, len);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_bootloader_write_refused_before_sending(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img;
	uint8_t *data = pattern(0x300, 1);
	size_t before;

	(void)state;
	image_of(&img, 0x7C00, data, 0x300); /* runs 0x100 into the boot section */
	connect_identify(r, &id);
	before = r->f.rx_total;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EGUARD);
	assert_non_null(strstr(e.msg, "bootloader"));
	assert_int_equal(r->f.rx_total, before);
	assert_int_equal(r->f.boot_writes, 0);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_skip_unchanged_from_backup(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	struct image img;
	uint8_t *backup = malloc(BOOT);
	uint8_t *data = malloc(4 * PAGE);

	(void)state;
	assert_non_null(backup);
	assert_non_null(data);
	connect_identify(r, &id);
	set_opt(r, opt_skip_unchanged);
	assert_int_equal(r->d.ops->read(&r->d, 0, BOOT, backup, &e), FW_OK);
	/* the new image equals the chip except in its third page */
	memcpy(data, backup + 0x800, 4 * PAGE);
	data[2 * PAGE + 7] ^= 0xFF;
	image_of(&img, 0x800, data, 4 * PAGE);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_int_equal(st.pages_written, 1);
	assert_int_equal(st.pages_skipped, 3);
	assert_int_equal(r->f.nprog, 1);
	assert_int_equal(r->f.prog_log[0], 0x900);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	image_free(&img);

	/* set_previous: the caller's copy, e.g. a backup file */
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	memcpy(backup + 0x900, data + 2 * PAGE, PAGE);
	assert_int_equal(dev_stk500_set_previous(&r->d, 0, backup, BOOT, &e), FW_OK);
	data[7] ^= 0x01;
	image_of(&img, 0x800, data, 4 * PAGE);
	r->f.nprog = 0;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.nprog, 1);
	assert_int_equal(r->f.prog_log[0], 0x800);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_int_equal(dev_stk500_set_previous(&r->d, FLASH - 2, backup, 4, &e), FW_EINVAL);
	image_free(&img);
	free(data);
	free(backup);
	rig_free(r);
}

/* The recovery budget: losses scattered over a long read are outlived
 * (three in a row without progress would end it, not three in all), and
 * a line that keeps losing bytes still ends the read, after 12. */
static void test_scattered_losses_outlived(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct dev_stk500_stats st;
	struct fw_err e = { 0 };
	uint8_t *buf = malloc(0x4000);

	(void)state;
	assert_non_null(buf);
	connect_identify(r, &id);
	/* one byte in 2000: about 8 lost over 16 KB */
	r->f.drop_every = 2000;
	assert_int_equal(r->d.ops->read(&r->d, 0, 0x4000, buf, &e), FW_OK);
	assert_memory_equal(buf, r->f.flash, 0x4000);
	assert_int_equal(dev_stk500_last_stats(&r->d, &st), FW_OK);
	assert_in_range(st.recoveries, 4, 12);
	/* one in 500: more than 12 recoveries would be needed for 8 KB */
	r->f.drop_every = 500;
	assert_int_equal(r->d.ops->read(&r->d, 0, 0x2000, buf, &e), FW_ETIMEOUT);
	assert_non_null(strstr(e.msg, "gave up after 12 recoveries (resync or reset) in this "
			       "operation"));
	free(buf);
	rig_free(r);
}

/* ---- EEPROM and the old bootloader ---- */

static void test_eeprom_refused_on_optiboot(void **state)
{
	struct rig *r = rig_new(false);
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t b[4] = { 1, 2, 3, 4 };
	struct device_caps c;
	size_t before;

	(void)state;
	/* Before identify nothing is known; after it, caps say why not. */
	r->d.ops->caps(&r->d, &c);
	assert_int_equal(c.eeprom_size, 0);
	assert_non_null(strstr(c.eeprom_why_not, "not identified"));
	connect_identify(r, &id);
	r->d.ops->caps(&r->d, &c);
	assert_int_equal(c.eeprom_size, 0);
	assert_non_null(strstr(c.eeprom_why_not, "Optiboot 4.4 cannot read the EEPROM"));
	assert_non_null(r->d.ops->read_eeprom);
	before = r->f.rx_total;
	assert_int_equal(dev_stk500_eeprom_write(&r->d, 0, b, 4, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "Optiboot 4.4"));
	assert_non_null(strstr(e.msg, "flash page 0"));
	assert_int_equal(dev_stk500_eeprom_read(&r->d, 0, 4, b, &e), FW_EUNSUPPORTED);
	assert_int_equal(r->f.rx_total, before);
	rig_free(r);
}

static void test_atmegaboot(void **state)
{
	struct rig *r = rig_new(true);
	struct device_identity id;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img;
	uint8_t *buf = malloc(0x7800);
	uint8_t *data = pattern(3 * PAGE + 20, 11);
	uint8_t ee[8] = { 9, 8, 7, 6, 5, 4, 3, 2 }, back[8];

	(void)state;
	assert_non_null(buf);
	connect_identify(r, &id);
	assert_string_equal(id.loader, "ATmegaBOOT 1.16");
	assert_int_equal(r->d.ops->read(&r->d, 0, 0x7800, buf, &e), FW_OK);
	assert_memory_equal(buf, r->f.flash, 0x7800);
	assert_int_equal(r->f.read_len_hist[2], 0x7800 / 1024);
	image_of(&img, 0x400, data, 3 * PAGE + 20);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_int_equal(dev_stk500_eeprom_write(&r->d, 0x10, ee, sizeof ee, &e), FW_OK);
	assert_memory_equal(r->f.eeprom + 0x10, ee, sizeof ee);
	assert_int_equal(dev_stk500_eeprom_read(&r->d, 0x10, sizeof back, back, &e), FW_OK);
	assert_memory_equal(back, ee, sizeof ee);
	/* The whole EEPROM through the seam, as a backup reads it. */
	{
		struct device_caps c;
		uint8_t all[1024];

		r->d.ops->caps(&r->d, &c);
		assert_int_equal(c.eeprom_size, 1024);
		assert_string_equal(c.eeprom_why_not, "");
		r->f.eeprom[1023] = 0x5A;
		assert_int_equal(r->d.ops->read_eeprom(&r->d, 0, c.eeprom_size, all, &e), FW_OK);
		assert_memory_equal(all, r->f.eeprom, sizeof all);
	}
	assert_int_equal(dev_stk500_eeprom_write(&r->d, 0x11, ee, 2, &e), FW_EINVAL);
	assert_int_equal(dev_stk500_eeprom_write(&r->d, 1020, ee, 8, &e), FW_EINVAL);
	/* the old bootloader's 2 KB boot section is protected too */
	image_free(&img);
	image_of(&img, 0x7800, data, 4);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EGUARD);
	image_free(&img);
	free(data);
	free(buf);
	rig_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_pulse_and_timing),
		cmocka_unit_test(test_connect_retries_with_fresh_pulse),
		cmocka_unit_test(test_late_boot_stray_byte),
		cmocka_unit_test(test_no_answer_bounded),
		cmocka_unit_test(test_wrong_baud_garbage),
		cmocka_unit_test(test_application_answered),
		cmocka_unit_test(test_manual_without_lines),
		cmocka_unit_test(test_identify_optiboot),
		cmocka_unit_test(test_not_identified_refuses),
		cmocka_unit_test(test_backup_read_in_large_chunks),
		cmocka_unit_test(test_pause_between_steps_reenters),
		cmocka_unit_test(test_write_verify_multipage),
		cmocka_unit_test(test_fill_erased),
		cmocka_unit_test(test_mismatch_ranges_and_rewrite_only_failed),
		cmocka_unit_test(test_dropped_byte_recovers_unfinished_pages),
		cmocka_unit_test(test_lost_reply_byte_resyncs_without_reset),
		cmocka_unit_test(test_reset_during_write_recovers),
		cmocka_unit_test(test_bootloader_write_refused_before_sending),
		cmocka_unit_test(test_skip_unchanged_from_backup),
		cmocka_unit_test(test_scattered_losses_outlived),
		cmocka_unit_test(test_eeprom_refused_on_optiboot),
		cmocka_unit_test(test_atmegaboot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
