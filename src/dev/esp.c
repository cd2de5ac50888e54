/* The Espressif ROM loader driver. Facts: esp-rom-protocol.md sections 2-9
 * and the design rules of section 12; the bytes themselves come from
 * esp_proto and slip. Every wait is a monotonic deadline, nothing here
 * prints (d->log), and no path reports success for data the loader did not
 * accept intact.
 *
 * On the ESP8266 the driver uploads flashwise's RAM helper after identify()
 * (sections 5.5 and 5.6: the flasher-stub dialect) and then reads, hashes,
 * erases exactly and changes the baud rate through it. */
#include "dev_esp.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "devices.h"
#include "esp_proto.h"
#include "helper_blob.h"
#define HELPER_PROTO_CONSTANTS_ONLY
#include "helper_proto.h"
#include "integrity.h"
#include "slip.h"
#include "strbuf.h"
#include "transport.h"

/* ---- timing (esptool's defaults, section 5.2) ---- */

#define SYNC_REPLY_MS      100u  /* first SYNC reply */
#define SYNC_TRIES         5u    /* SYNCs per reset attempt */
#define SYNC_PAUSE_MS      50u   /* after a failed SYNC */
#define SYNC_SURPLUS       7u    /* the ROM answers one SYNC 8 times */
#define RESET_HOLD_MS      100u  /* EN held low */
#define RESET_DELAY_SHORT  50u
#define RESET_DELAY_LONG   550u
#define HARD_RESET_MS      100u
#define BAUD_SETTLE_MS     50u
#define WRITE_TIMEOUT_MS   10000u /* serial write */
#define RESYNC_QUIET_MS    50u
#define RESYNC_MAX_MS      500u
#define TIMEOUT_TRIES      2u    /* two silences in a row: the loader is gone */
#define PROBE_MS           300u  /* "is the loader still there?" */
#define REENTER_ATTEMPTS   3u    /* reset + sync rounds when re-entering */
#define REGION_RESTARTS    2u    /* a write region started again from scratch */
#define READ_REENTRIES     2u    /* loader re-entries during one read */
#define READ_REPAIRS       2u    /* repair rounds when a read's MD5 differs */
#define REPAIR_PIECE       256u  /* what is read again (READ_FLASH_SLOW has no
                                  * checksum: small pieces come back clean) */
#define MD5_ASKS           3u    /* SPI_FLASH_MD5 asked before "differs" */
#define MATCH_FRAMES       100u  /* frames read while waiting for a reply */
#define ERASE_MS_PER_MB    40000u
#define WRITE_MS_PER_MB    40000u
#define MD5_MS_PER_MB      8000u
#define HELPER_WAIT_MS     1000u /* greeting after MEM_END */
#define HELPER_STARTS      3u    /* uploads before giving up on the helper */
#define HELPER_MEM_BLOCK   0x400u /* MEM_DATA block: small, so a damaged
                                   * one costs little to send again (the
                                   * helper is a few KB; esptool's 0x1800
                                   * gains nothing here) */
#define REPAIR_SPLIT       4u    /* a damaged read is checked in this many
                                  * pieces (on-chip MD5 each) */
#define REPAIR_MIN         0x400u /* pieces this small are read again as a
                                   * whole, up to REPAIR_TRIES times */
#define REPAIR_TRIES       5u
#define HELPER_BLOCK       HELPER_PROTO_WRITE_BLOCK_MAX /* FLASH_DATA block */
#define HELPER_PACKET      HELPER_PROTO_READ_PACKET_MAX /* READ_FLASH packet */
#define HELPER_INFLIGHT    8u    /* READ_FLASH packets unacknowledged: enough
                                  * to keep a USB adapter's latency off the
                                  * line, far below the helper's limit */
#define READ_CHUNK         0x40000u /* bytes per READ_FLASH: a damaged
                                     * stream costs at most this again */

#define SECTOR ESP_PROTO_SECTOR
#define BLOCK  ESP_PROTO_ROM_WRITE_BLOCK

/* How the last command() failed: decides whether sending it again can
 * help (a damaged frame, silence) or cannot (a real refusal). */
enum esp_fail {
	FAIL_NONE,      /* succeeded, or failed for a reason no retry helps */
	FAIL_TIMEOUT,   /* no reply at all */
	FAIL_GARBLED,   /* a reply arrived damaged (wrong length, bad hex) */
	FAIL_FOREIGN,   /* "invalid message" under another opcode */
	FAIL_REFUSED,   /* a well-formed reply with an error status */
};

/* What a command is, for the retry rule (command_retry). */
enum esp_retry {
	RETRY_IDEMPOTENT, /* READ_REG, WRITE_REG (SPI), READ_FLASH_SLOW, MD5, ... */
	RETRY_BEGIN,      /* FLASH_(DEFL_)BEGIN: erases again, same range */
	RETRY_BLOCK,      /* FLASH_DATA: same bytes, same address */
	RETRY_DEFL_BLOCK, /* FLASH_DEFL_DATA: feeds the ROM's inflate state */
};

struct esp_dev {
	struct dev_esp_options opt;
	enum esp_fail fail;      /* how the last command failed */
	uint8_t fail_code;       /* its status reason (FAIL_REFUSED) */
	uint8_t fail_op;         /* and its opcode */
	struct slip_decoder dec;
	uint8_t frame[ESP_PROTO_PACKET_MAX + 64];
	uint8_t rx[4096];
	size_t rx_off, rx_len;
	uint8_t result[128];     /* copy of the last reply's result bytes */
	struct strbuf wire;
	bool identified;
	bool loader_known;
	enum esp_proto_loader loader;
	const struct esp_proto_chip_info *chip;
	uint32_t flash_size;     /* from the JEDEC id; 0 unknown */
	bool attached, params_set, baud_changed;
	unsigned base_baud;      /* the rate before CHANGE_BAUDRATE */
	bool stub_answered;      /* the last SYNC reply came from a stub */
	bool helper;             /* our RAM helper runs: loader is STUB */
	char helper_why[200];    /* why it does not run (caps' why_not) */
	struct dev_esp_helper hp; /* the helper image in use */
};

/* One write unit: a sector-aligned run that covers one or more image ranges
 * (ranges sharing a sector must go out together, or the second erase would
 * wipe the first one's bytes). */
struct esp_unit {
	uint32_t addr;           /* sector-aligned */
	uint32_t len;            /* up to the last image byte */
	uint32_t first_data;     /* address of the first image byte */
};

/* ---- small helpers ---- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static unsigned scaled_ms(const struct esp_dev *x, unsigned ms_per_mb, uint64_t bytes)
{
	uint64_t ms = bytes * ms_per_mb / (1024u * 1024u);

	if (ms < x->opt.timeout_ms)
		ms = x->opt.timeout_ms;
	if (ms > 240000u) /* esptool's cap for any command */
		ms = 240000u;
	return (unsigned)ms;
}

void dev_esp_options_default(struct dev_esp_options *o)
{
	memset(o, 0, sizeof *o);
	o->connect_attempts = 7;
	o->manual_wait_ms = 60000;
	o->timeout_ms = 3000;
	o->block_attempts = 3;
	o->change_baud = true;
	o->compress = true;
	o->skip_unchanged = false;
	o->helper = true;
	o->helper_baud = 0;
	o->helper_wait_ms = HELPER_WAIT_MS;
	o->helper_image = NULL;
}

static int priv_get(struct device *d, struct esp_dev **out, struct fw_err *e)
{
	struct esp_dev *x;

	if (!d || !d->t || !d->p)
		return fw_err_set(e, FW_EINVAL, "esp: device without a port or profile");
	if (d->priv) {
		*out = d->priv;
		return FW_OK;
	}
	x = calloc(1, sizeof *x);
	if (!x)
		return fw_err_set(e, FW_ENOMEM, "out of memory starting the ESP driver");
	dev_esp_options_default(&x->opt);
	slip_decoder_init(&x->dec, x->frame, sizeof x->frame);
	d->priv = x;
	*out = x;
	return FW_OK;
}

int dev_esp_set_options(struct device *d, const struct dev_esp_options *o,
			struct fw_err *e)
{
	struct esp_dev *x;
	int rc;

	if (!o)
		return fw_err_set(e, FW_EINVAL, "esp: no options");
	if ((rc = priv_get(d, &x, e)) != FW_OK)
		return rc;
	x->opt = *o;
	if (x->opt.connect_attempts == 0)
		x->opt.connect_attempts = 1;
	if (x->opt.block_attempts == 0)
		x->opt.block_attempts = 1;
	if (x->opt.timeout_ms == 0)
		x->opt.timeout_ms = 3000;
	if (x->opt.helper_wait_ms == 0)
		x->opt.helper_wait_ms = HELPER_WAIT_MS;
	return FW_OK;
}

static const char *loader_name(const struct esp_dev *x)
{
	if (!x->loader_known)
		return "ESP ROM loader";
	switch (x->loader) {
	case ESP_LOADER_ESP8266_ROM:
		return "ESP8266 ROM loader";
	case ESP_LOADER_ESP32_ROM:
		return "ESP32 ROM loader";
	case ESP_LOADER_LATER_ROM:
		return "ESP32-family ROM loader";
	case ESP_LOADER_STUB:
		return x->helper ? "flashwise helper" : "flasher stub";
	}
	return "ESP ROM loader";
}

/* The loader the profile's chip has, for caps() before identify(). */
static enum esp_proto_loader profile_loader(const struct profile *p)
{
	if (p->family == PROFILE_FAMILY_ESP8266)
		return ESP_LOADER_ESP8266_ROM;
	if (strcmp(p->chip, "esp32") == 0)
		return ESP_LOADER_ESP32_ROM;
	return ESP_LOADER_LATER_ROM;
}

/* ---- receiving frames ---- */

static void rx_forget(struct esp_dev *x)
{
	x->rx_off = x->rx_len = 0;
	slip_decoder_reset(&x->dec);
}

/* The next SLIP frame (junk between frames is skipped by the decoder). The
 * frame stays valid until the next call. FW_ETIMEOUT without a message. */
static int recv_frame(struct device *d, uint64_t deadline, const uint8_t **pkt,
		      size_t *n, struct fw_err *e)
{
	struct esp_dev *x = d->priv;

	for (;;) {
		size_t got = 0;
		struct fw_err re = { 0 };
		int rc;

		while (x->rx_off < x->rx_len) {
			struct slip_event ev;

			x->rx_off += slip_decoder_feed(&x->dec, x->rx + x->rx_off,
						       x->rx_len - x->rx_off, &ev);
			if (ev.kind == SLIP_EV_FRAME) {
				*pkt = ev.frame;
				*n = ev.len;
				return FW_OK;
			}
			/* Frames with a bad escape or too long are dropped by
			 * the decoder; the reply loop just waits on. */
		}
		if (transport_now_ns() >= deadline)
			return FW_ETIMEOUT;
		rc = transport_read_some(d->t, x->rx, sizeof x->rx, &got, deadline, &re);
		x->rx_off = 0;
		x->rx_len = got;
		if (rc == FW_ETIMEOUT && got == 0)
			return FW_ETIMEOUT;
		if (rc != FW_OK) {
			fw_err_copy(e, &re);
			return rc;
		}
	}
}

/* Throws away whatever the chip is still sending (a late reply, surplus
 * SYNC answers, a half frame) so the next request starts clean. A lone
 * 0xC0 first ends a request whose closing delimiter was lost: otherwise
 * the loader would glue it to the resent one, and its late error reply
 * would be taken as the answer to the resend. An empty frame is ignored
 * by the ROM. */
static void resync(struct device *d)
{
	struct esp_dev *x = d->priv;
	static const uint8_t end_frame = 0xC0;
	uint64_t end = transport_deadline_ms(RESYNC_MAX_MS);

	(void)transport_write(d->t, &end_frame, 1, transport_deadline_ms(WRITE_TIMEOUT_MS),
			      NULL);
	for (;;) {
		uint64_t dl = transport_deadline_ms(RESYNC_QUIET_MS);
		size_t got = 0;

		if (dl > end)
			dl = end;
		if (transport_read_some(d->t, x->rx, sizeof x->rx, &got, dl, NULL) != FW_OK ||
		    got == 0)
			break;
	}
	(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
	rx_forget(x);
}

/* ---- one command ---- */

static int send_req(struct device *d, const struct esp_proto_req *r, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	int rc;

	strbuf_reset(&x->wire);
	if ((rc = esp_proto_request_frame(r, &x->wire, e)) != FW_OK)
		return rc;
	return transport_write(d->t, x->wire.s, x->wire.len,
			       transport_deadline_ms(WRITE_TIMEOUT_MS), e);
}

static const char *op_what(uint8_t op)
{
	const struct esp_proto_op_info *info = esp_proto_op_info(op);

	return info ? info->what : "run a command";
}

/* Sends r and waits for its reply: frames for other opcodes (surplus SYNC
 * answers) and non-replies are skipped; a foreign reply saying "invalid
 * message" means the loader does not know r->op. The status is checked
 * (esp_proto_response_check). resp->result points into x->result. */
static int command(struct device *d, const struct esp_proto_req *r, unsigned timeout_ms,
		   struct esp_proto_resp *resp, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	/* Before identify() the dialect is unknown; the first two status
	 * bytes mean the same in both layouts, so parse just those. */
	size_t status_len = x->loader_known ? esp_proto_status_len(x->loader) : 2;
	size_t result_len = esp_proto_result_len(r->op, x->loader_known ? x->loader
							: ESP_LOADER_ESP8266_ROM);
	uint64_t deadline;
	unsigned i;
	int rc;

	x->fail = FAIL_NONE;
	x->fail_code = 0;
	x->fail_op = r->op;
	if ((rc = send_req(d, r, e)) != FW_OK)
		return rc;
	deadline = transport_deadline_ms(timeout_ms);
	for (i = 0; i < MATCH_FRAMES; i++) {
		const uint8_t *pkt = NULL;
		size_t n = 0;

		rc = recv_frame(d, deadline, &pkt, &n, e);
		if (rc == FW_ETIMEOUT) {
			x->fail = FAIL_TIMEOUT;
			return fw_err_set(e, FW_ETIMEOUT,
					  "the %s did not answer %s (to %s) within %u ms: check the "
					  "cable and the board's power supply",
					  loader_name(x), esp_proto_op_name(r->op),
					  op_what(r->op), timeout_ms);
		}
		if (rc != FW_OK)
			return rc;
		switch (esp_proto_response_match(pkt, n, r->op)) {
		case ESP_MATCH_NOT_RESPONSE:
			/* Noise that happened to hold a 0xC0: its end may be
			 * the start of the real reply. */
			slip_decoder_reopen(&x->dec);
			continue;
		case ESP_MATCH_OTHER:
			continue;
		case ESP_MATCH_UNSUPPORTED:
			x->fail = FAIL_FOREIGN;
			x->fail_code = 0x05;
			return fw_err_set(e, FW_EUNSUPPORTED,
					  "the %s does not support %s (it cannot %s)",
					  loader_name(x), esp_proto_op_name(r->op),
					  op_what(r->op));
		case ESP_MATCH_YES:
			break;
		}
		rc = esp_proto_response_parse(pkt, n, result_len, status_len, resp, e);
		if (rc != FW_OK) {
			/* Bytes lost or added on the line: the reply says
			 * nothing reliable, not even whether it is an error. */
			if (rc == FW_EPROTO)
				x->fail = FAIL_GARBLED;
			return rc;
		}
		if (resp->result_len) {
			size_t k = resp->result_len < sizeof x->result ? resp->result_len
								       : sizeof x->result;

			memcpy(x->result, resp->result, k);
			resp->result = x->result;
			resp->result_len = k;
		}
		rc = esp_proto_response_check(resp, e);
		if (rc != FW_OK) {
			x->fail = FAIL_REFUSED;
			x->fail_code = esp_proto_status_reason(resp);
		}
		return rc;
	}
	return fw_err_set(e, FW_EPROTO,
			  "%u frames arrived from the %s but none answered %s: another "
			  "program may be talking to the board", MATCH_FRAMES,
			  loader_name(x), esp_proto_op_name(r->op));
}

/* Whether sending the same request again can help after command() failed
 * as x->fail says. A refusal for a damaged request (0x05 malformed, 0x07
 * checksum, 0x01 a parameter bent on the line) means the loader did
 * nothing with it. A compressed block is the exception: the ROM's inflate
 * state moves on with every block it takes, so it is resent only when the
 * loader said plainly that it rejected it; silence or a damaged reply may
 * hide an accepted block (the caller then starts the region again). */
static bool retry_helps(const struct esp_dev *x, enum esp_retry k)
{
	switch (x->fail) {
	case FAIL_NONE:
		return false;
	case FAIL_TIMEOUT:
		return k != RETRY_DEFL_BLOCK && k != RETRY_BEGIN;
	case FAIL_GARBLED:
		return k != RETRY_DEFL_BLOCK;
	case FAIL_FOREIGN:
		/* A known command answered as unknown: its opcode byte was
		 * damaged. FLASH_DEFL_BEGIN may really be unknown (the
		 * caller falls back), so it is not asked twice. */
		return k == RETRY_IDEMPOTENT || k == RETRY_BLOCK;
	case FAIL_REFUSED:
		/* 0xC0/0xC1: the helper's "bad data length/checksum". */
		if (x->fail_code == 0x05 || x->fail_code == 0x07 || x->fail_code == 0xC0 ||
		    x->fail_code == 0xC1)
			return true;
		return x->fail_code == 0x01 && k != RETRY_DEFL_BLOCK;
	}
	return false;
}

/* command() with the retry rule: after a damaged or missing reply (see
 * retry_helps) the same packet (same sequence number) goes again after a
 * resync, up to opt.block_attempts tries; two silences in a row end it
 * early (the loader is gone: a retry would only wait again). */
static int command_retry(struct device *d, const struct esp_proto_req *r,
			 unsigned timeout_ms, struct esp_proto_resp *resp,
			 const char *what, enum esp_retry k, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct fw_err le = { 0 };
	unsigned attempt, silences = 0;
	int rc = FW_OK;

	for (attempt = 1;; attempt++) {
		fw_err_clear(&le);
		rc = command(d, r, timeout_ms, resp, &le);
		if (rc == FW_OK)
			return FW_OK;
		if (!retry_helps(x, k) || attempt >= x->opt.block_attempts)
			break;
		if (x->fail == FAIL_TIMEOUT && ++silences >= TIMEOUT_TRIES)
			break;
		if (x->fail != FAIL_TIMEOUT)
			silences = 0;
		device_logf(d, "%s: %s; resynchronising and sending it again (try %u of %u)",
			what, le.msg, attempt + 1, x->opt.block_attempts);
		resync(d);
	}
	fw_err_copy(e, &le);
	if (attempt > 1)
		fw_err_prefix(e, "%s failed %u times", what, attempt);
	return rc;
}

static int read_reg_ms(struct device *d, uint32_t addr, uint32_t *v, unsigned timeout_ms,
		       struct fw_err *e)
{
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	int rc;

	esp_proto_req_read_reg(&r, addr);
	rc = command_retry(d, &r, timeout_ms, &resp, "READ_REG", RETRY_IDEMPOTENT, e);
	if (rc == FW_OK)
		*v = resp.value;
	return rc;
}

static int read_reg(struct device *d, uint32_t addr, uint32_t *v, struct fw_err *e)
{
	struct esp_dev *x = d->priv;

	return read_reg_ms(d, addr, v, x->opt.timeout_ms, e);
}

static int write_reg(struct device *d, uint32_t addr, uint32_t value, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_reg_write w = { addr, value, 0xFFFFFFFFu, 0 };
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	int rc;

	/* One record per packet: whether the ESP8266 ROM honours more is
	 * unverified. */
	if ((rc = esp_proto_req_write_reg(&r, &w, 1, e)) != FW_OK)
		return rc;
	/* Only SPI controller registers are written: the same value twice
	 * (or RDID run twice) does no harm. */
	return command_retry(d, &r, x->opt.timeout_ms, &resp, "WRITE_REG", RETRY_IDEMPOTENT, e);
}

/* FLASH_DATA block size of the loader in use: the ROMs take 0x400, the
 * helper what its header says. */
static uint32_t write_block(const struct esp_dev *x)
{
	if (x->helper)
		return x->hp.write_block ? x->hp.write_block : HELPER_BLOCK;
	return BLOCK;
}

static int flash_begin(struct device *d, uint8_t op, uint32_t size, uint32_t blocks,
		       uint32_t offset, unsigned timeout_ms, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_begin b = { 0 };
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	int rc;

	b.size = size;
	b.blocks = blocks;
	b.block_size = op == ESP_OP_FLASH_DEFL_BEGIN ? BLOCK : write_block(x);
	b.offset = offset;
	b.encrypted_word = esp_proto_begin_has_encrypted_word(x->loader);
	rc = op == ESP_OP_FLASH_DEFL_BEGIN ? esp_proto_req_flash_defl_begin(&r, &b, e)
					   : esp_proto_req_flash_begin(&r, &b, e);
	if (rc != FW_OK)
		return rc;
	/* Sent again, it erases the same range again: harmless. */
	return command_retry(d, &r, timeout_ms, &resp, esp_proto_op_name(op), RETRY_BEGIN, e);
}

/* ---- connect ---- */

/* One SYNC: flush, send, take the first reply, then drain the surplus
 * copies the ROM sends so they cannot be mistaken for later replies. */
static int sync_once(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	unsigned i;
	int rc;

	(void)transport_flush(d->t, TRANSPORT_FLUSH_BOTH, NULL);
	rx_forget(x);
	esp_proto_req_sync(&r);
	rc = command(d, &r, SYNC_REPLY_MS, &resp, e);
	if (rc != FW_OK)
		return rc;
	x->stub_answered = esp_proto_sync_reply_from_stub(&resp);
	if (x->stub_answered)
		device_logf(d, "a flasher stub is already running on the chip");
	for (i = 0; i < SYNC_SURPLUS; i++) {
		const uint8_t *pkt;
		size_t n;

		if (recv_frame(d, transport_deadline_ms(SYNC_REPLY_MS), &pkt, &n, NULL) != FW_OK)
			break;
	}
	return FW_OK;
}

/* A SYNC that failed in a way another SYNC can cure: silence, or a reply
 * damaged on the line. FW_ETIMEOUT stands for all of them. */
static int sync_result(struct device *d, int rc)
{
	struct esp_dev *x = d->priv;

	if (rc != FW_OK && x->fail != FAIL_NONE)
		return FW_ETIMEOUT;
	return rc;
}

static int sync_tries(struct device *d, unsigned tries, struct fw_err *e)
{
	unsigned i;
	int rc = FW_ETIMEOUT;

	for (i = 0; i < tries; i++) {
		rc = sync_result(d, sync_once(d, e));
		if (rc != FW_ETIMEOUT)
			return rc;
		sleep_ms(SYNC_PAUSE_MS);
	}
	return rc;
}

/* DTR pulls GPIO0 low, RTS pulls EN low (section 9). The tight variant
 * moves both lines in one ioctl so the pair never passes through an
 * unintended state. */
static int reset_into_loader(struct device *d, bool tight, unsigned delay_ms,
			     struct fw_err *e)
{
	struct transport *t = d->t;
	int rc;

	if (tight) {
		if ((rc = transport_set_lines_tight(t, 0, 0, e)) != FW_OK ||
		    (rc = transport_set_lines_tight(t, 1, 1, e)) != FW_OK ||
		    (rc = transport_set_lines_tight(t, 0, 1, e)) != FW_OK)
			return rc;
		sleep_ms(RESET_HOLD_MS);
		if ((rc = transport_set_lines_tight(t, 1, 0, e)) != FW_OK)
			return rc;
		sleep_ms(delay_ms);
		if ((rc = transport_set_lines_tight(t, 0, 0, e)) != FW_OK)
			return rc;
		return transport_set_lines(t, 0, TRANSPORT_LINE_KEEP, e);
	}
	if ((rc = transport_set_lines(t, 0, 1, e)) != FW_OK)
		return rc;
	sleep_ms(RESET_HOLD_MS);
	if ((rc = transport_set_lines(t, 1, 0, e)) != FW_OK)
		return rc;
	sleep_ms(delay_ms);
	return transport_set_lines(t, 0, TRANSPORT_LINE_KEEP, e);
}

static const char *instructions(const struct profile *p)
{
	return p->manual_instructions[0] ? p->manual_instructions
		: "hold the BOOT/FLASH button, press and release RESET/EN, then release BOOT/FLASH";
}

static int connect_manual(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint64_t deadline = transport_deadline_ms(x->opt.manual_wait_ms);
	struct fw_err le = { 0 };
	int rc;

	device_logf(d, "waiting for the bootloader: %s", instructions(d->p));
	do {
		fw_err_clear(&le);
		rc = sync_result(d, sync_once(d, &le));
		if (rc == FW_OK)
			return FW_OK;
		if (rc != FW_ETIMEOUT) {
			fw_err_copy(e, &le);
			return rc;
		}
		sleep_ms(SYNC_PAUSE_MS);
	} while (transport_now_ns() < deadline);
	return fw_err_set(e, FW_ETIMEOUT,
			  "the ESP bootloader on %s did not answer within %u s: %s; check "
			  "the cable (some carry only power) and the board's power supply",
			  d->t->path, (x->opt.manual_wait_ms + 999) / 1000, instructions(d->p));
}

/* Up to `attempts` rounds of reset + SYNCs, cycling through the reset
 * variants. *no_lines is set (FW_ETIMEOUT returned) when the port cannot
 * drive DTR/RTS. */
static int connect_auto(struct device *d, unsigned attempts, bool *no_lines,
			struct fw_err *e)
{
	unsigned attempt;
	int rc = FW_ETIMEOUT;

	*no_lines = false;
	for (attempt = 0; attempt < attempts; attempt++) {
		bool tight = (transport_caps(d->t) & TRANSPORT_CAP_TIGHT_LINES) &&
			     attempt % 4 < 2;
		unsigned delay = attempt % 2 ? RESET_DELAY_LONG : RESET_DELAY_SHORT;
		struct fw_err le = { 0 };

		fw_err_clear(&le);
		rc = reset_into_loader(d, tight, delay, &le);
		if (rc == FW_EUNSUPPORTED) {
			/* A pty or an adapter without modem lines: the
			 * technician has to press the buttons. */
			device_logf(d, "%s", le.msg);
			*no_lines = true;
			return FW_ETIMEOUT;
		}
		if (rc != FW_OK) {
			fw_err_copy(e, &le);
			return rc;
		}
		rc = sync_tries(d, SYNC_TRIES, &le);
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

static int esp_connect(struct device *d, struct fw_err *e)
{
	struct esp_dev *x;
	bool manual, no_lines = false;
	int rc;

	if ((rc = priv_get(d, &x, e)) != FW_OK)
		return rc;
	/* After a baud change of an earlier session the ROM starts again at
	 * its own rate; otherwise keep the rate the port was opened with. */
	if (x->baud_changed && (rc = transport_set_baud(d->t, x->base_baud, e)) != FW_OK)
		return rc;
	/* A reset wipes everything the chip knew about this session. */
	x->identified = x->loader_known = false;
	x->chip = NULL;
	x->flash_size = 0;
	x->attached = x->params_set = x->baud_changed = false;
	x->helper = x->stub_answered = false;
	x->helper_why[0] = '\0';
	manual = d->manual_entry || d->p->reset == PROFILE_RESET_MANUAL;
	if (!manual) {
		rc = connect_auto(d, x->opt.connect_attempts, &no_lines, e);
		if (rc != FW_ETIMEOUT || !no_lines) {
			if (rc == FW_ETIMEOUT)
				return fw_err_set(e, FW_ETIMEOUT,
						  "the ESP bootloader on %s did not answer after %u "
						  "reset attempts: check that the board is powered and "
						  "the USB cable carries data; if the board has no "
						  "automatic reset: %s",
						  d->t->path, x->opt.connect_attempts,
						  instructions(d->p));
			return rc;
		}
	}
	return connect_manual(d, e);
}

/* Whether the driver may reset the chip by itself (DTR/RTS). */
static bool can_reset(const struct device *d)
{
	return !d->manual_entry && d->p->reset == PROFILE_RESET_AUTO &&
	       (transport_caps(d->t) & TRANSPORT_CAP_MODEM_LINES);
}

/* ---- identify ---- */

/* A raw SPI command through the controller's user-command registers; USER
 * and USER2 are put back afterwards because the ROM's own flash routines
 * rely on them. */
static int spi_command(struct device *d, enum esp_proto_family f,
		       const struct esp_proto_spi_cmd *c, uint32_t *w0, struct fw_err *e)
{
	const struct esp_proto_spi_regs *regs = esp_proto_spi_regs(f);
	struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
	uint32_t user, user2, v = 0;
	size_t n, i;
	int rc, rc2;

	if ((rc = read_reg(d, regs->user, &user, e)) != FW_OK ||
	    (rc = read_reg(d, regs->user2, &user2, e)) != FW_OK)
		return rc;
	if ((rc = esp_proto_spi_program(f, c, w, &n, e)) != FW_OK)
		return rc;
	for (i = 0; i < n && rc == FW_OK; i++)
		rc = write_reg(d, w[i].addr, w[i].value, e);
	for (i = 0; rc == FW_OK; i++) {
		if ((rc = read_reg(d, regs->cmd, &v, e)) != FW_OK)
			break;
		if (!(v & ESP_SPI_CMD_USR))
			break;
		if (i + 1 >= ESP_SPI_POLLS)
			rc = fw_err_set(e, FW_EPROTO,
					"the SPI flash controller did not finish command 0x%02X: "
					"power-cycle the board and try again", c->cmd);
	}
	if (rc == FW_OK)
		rc = read_reg(d, regs->w0, w0, e);
	rc2 = write_reg(d, regs->user, user, rc == FW_OK ? e : NULL);
	if (rc == FW_OK)
		rc = rc2;
	rc2 = write_reg(d, regs->user2, user2, rc == FW_OK ? e : NULL);
	if (rc == FW_OK)
		rc = rc2;
	return rc;
}

static int spi_attach(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	int rc;

	if (x->attached)
		return FW_OK;
	if (x->loader == ESP_LOADER_ESP8266_ROM) {
		/* The ESP8266 ROM has no SPI_ATTACH: FLASH_BEGIN with size 0
		 * attaches the flash and erases nothing. */
		rc = flash_begin(d, ESP_OP_FLASH_BEGIN, 0, 0, 0, x->opt.timeout_ms, e);
	} else {
		esp_proto_req_spi_attach(&r, x->loader, 0);
		rc = command_retry(d, &r, x->opt.timeout_ms, &resp, "SPI_ATTACH",
				   RETRY_IDEMPOTENT, e);
	}
	if (rc == FW_OK)
		x->attached = true;
	return rc;
}

static int identify_flash(struct device *d, struct device_identity *id, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_spi_cmd c;
	struct esp_proto_flash_id fid;
	struct fw_err le = { 0 };
	uint32_t w0 = 0;
	int rc;

	if ((rc = spi_attach(d, e)) != FW_OK)
		return rc;
	esp_proto_spi_rdid(&c);
	if ((rc = spi_command(d, x->chip->family, &c, &w0, e)) != FW_OK)
		return rc;
	id->flash_id = (w0 & 0xFFu) << 16 | ((w0 >> 8) & 0xFFu) << 8 | ((w0 >> 16) & 0xFFu);
	fw_err_clear(&le);
	if (esp_proto_jedec_decode(w0, &fid, &le) != FW_OK) {
		/* Not fatal here: device_match() refuses an unknown size
		 * with the profile's expectation in the message. */
		device_logf(d, "%s", le.msg);
		return FW_OK;
	}
	id->flash_size = fid.size;
	x->flash_size = fid.size;
	if (fid.size == 0)
		device_logf(d, "flash chip %06X (%s) has a capacity code flashwise does not know",
			id->flash_id, fid.vendor);
	return FW_OK;
}

/* ---- the ESP8266 RAM helper ---- */

/* As helper_blob.h records it: per segment in order, its address and
 * length (4 bytes each, little-endian), then its bytes. */
int dev_esp_helper_sha256(const struct dev_esp_helper *h, uint8_t out[32], struct fw_err *e)
{
	struct integrity_hash *ctx;
	size_t i;
	int rc = FW_OK;

	if (!h || h->nseg == 0 || h->nseg > DEV_ESP_HELPER_MAX_SEGMENTS)
		return fw_err_set(e, FW_EINVAL, "esp: no helper segments to hash");
	ctx = integrity_hash_new(INTEGRITY_SHA256);
	if (!ctx)
		return fw_err_set(e, FW_ENOMEM, "out of memory hashing the helper");
	for (i = 0; i < h->nseg && rc == FW_OK; i++) {
		uint8_t hdr[8];
		unsigned k;

		for (k = 0; k < 4; k++) {
			hdr[k] = (uint8_t)(h->seg[i].addr >> (8 * k));
			hdr[4 + k] = (uint8_t)(h->seg[i].len >> (8 * k));
		}
		if (h->seg[i].len && !h->seg[i].data)
			rc = fw_err_set(e, FW_EINVAL, "esp: helper segment %zu has no data", i);
		else if ((rc = integrity_hash_update(ctx, hdr, sizeof hdr)) == FW_OK)
			rc = integrity_hash_update(ctx, h->seg[i].data, h->seg[i].len);
	}
	if (rc == FW_OK)
		rc = integrity_hash_final(ctx, out);
	integrity_hash_free(ctx);
	if (rc != FW_OK && e && !e->msg[0])
		fw_err_set(e, rc, "could not hash the helper");
	return rc;
}

int dev_esp_helper_builtin(struct dev_esp_helper *h, struct fw_err *e)
{
	size_t i;

	memset(h, 0, sizeof *h);
	if (HELPER_BLOB_SEGMENTS > DEV_ESP_HELPER_MAX_SEGMENTS)
		return fw_err_set(e, FW_EUNSUPPORTED, "the built-in helper has %d segments, the "
				  "driver takes %d", HELPER_BLOB_SEGMENTS,
				  DEV_ESP_HELPER_MAX_SEGMENTS);
	for (i = 0; i < HELPER_BLOB_SEGMENTS; i++) {
		h->seg[i].addr = helper_blob_segments[i].addr;
		h->seg[i].len = helper_blob_segments[i].len;
		h->seg[i].data = helper_blob_segments[i].data;
	}
	h->nseg = HELPER_BLOB_SEGMENTS;
	h->entry = HELPER_BLOB_ENTRY;
	memcpy(h->sha256, helper_blob_sha256, sizeof h->sha256);
	h->write_block = HELPER_PROTO_WRITE_BLOCK_MAX;
	h->read_packet = HELPER_PROTO_READ_PACKET_MAX;
	h->read_inflight = HELPER_INFLIGHT;
	h->max_baud = HELPER_PROTO_BAUD_MAX;
	return FW_OK;
}

bool dev_esp_helper_running(const struct device *d)
{
	const struct esp_dev *x = d ? d->priv : NULL;

	return x && x->helper;
}

/* Sends one RAM segment with MEM_BEGIN and MEM_DATA blocks. */
static int helper_segment(struct device *d, const struct dev_esp_helper_segment *sg,
			  struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_begin b = { 0 };
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint32_t seq, n = esp_proto_blocks(sg->len, HELPER_MEM_BLOCK);
	int rc;

	b.size = sg->len;
	b.blocks = n;
	b.block_size = HELPER_MEM_BLOCK;
	b.offset = sg->addr;
	if ((rc = esp_proto_req_mem_begin(&r, &b, e)) != FW_OK)
		return rc;
	/* Sent again, MEM_BEGIN only starts the same segment again. */
	if ((rc = command_retry(d, &r, x->opt.timeout_ms, &resp, "MEM_BEGIN", RETRY_IDEMPOTENT,
				e)) != FW_OK)
		return rc;
	for (seq = 0; seq < n; seq++) {
		uint32_t off = seq * HELPER_MEM_BLOCK;
		uint32_t len = sg->len - off < HELPER_MEM_BLOCK ? sg->len - off : HELPER_MEM_BLOCK;

		if ((rc = esp_proto_req_data(&r, ESP_OP_MEM_DATA, seq, sg->data + off, len,
					     e)) != FW_OK)
			return rc;
		if ((rc = command_retry(d, &r, x->opt.timeout_ms, &resp, "MEM_DATA", RETRY_BLOCK,
					e)) != FW_OK)
			return rc;
	}
	return FW_OK;
}

/* MEM_END with the entry point, then the helper's unsolicited "FWHL"
 * frame. The ROM's reply to MEM_END may come before it, after it or not at
 * all (the code may start before the reply leaves); only a refusal
 * counts. */
static int helper_greeting(struct device *d, struct fw_err *e)
{
	static const uint8_t hello[4] = { 'F', 'W', 'H', 'L' };
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	uint64_t deadline;
	int rc;

	esp_proto_req_mem_end(&r, x->hp.entry);
	if ((rc = send_req(d, &r, e)) != FW_OK)
		return rc;
	deadline = transport_deadline_ms(x->opt.helper_wait_ms);
	for (;;) {
		const uint8_t *pkt = NULL;
		size_t n = 0;
		struct esp_proto_resp resp;

		rc = recv_frame(d, deadline, &pkt, &n, e);
		if (rc == FW_ETIMEOUT)
			return fw_err_set(e, FW_ETIMEOUT, "the helper did not greet within %u ms "
					  "after it was loaded", x->opt.helper_wait_ms);
		if (rc != FW_OK)
			return rc;
		if (n == sizeof hello && memcmp(pkt, hello, sizeof hello) == 0)
			return FW_OK;
		if (esp_proto_response_match(pkt, n, ESP_OP_MEM_END) == ESP_MATCH_YES &&
		    esp_proto_response_parse(pkt, n, 0, 2, &resp, NULL) == FW_OK &&
		    !esp_proto_response_ok(&resp))
			return esp_proto_response_check(&resp, e);
	}
}

/* Uploads and starts the helper; x->hp holds the image. */
static int helper_upload(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint8_t sha[32];
	size_t i;
	int rc;

	/* A blob that is not the one that was built and reviewed never goes
	 * to the chip: it would run with full access to the flash. */
	if ((rc = dev_esp_helper_sha256(&x->hp, sha, e)) != FW_OK)
		return rc;
	if (!integrity_equal(sha, x->hp.sha256, sizeof sha))
		return fw_err_set(e, FW_EINTEGRITY, "the helper's SHA-256 does not match the value "
				  "recorded when it was built (the program file may be damaged: "
				  "reinstall flashwise)");
	for (i = 0; i < x->hp.nseg; i++)
		if ((rc = helper_segment(d, &x->hp.seg[i], e)) != FW_OK) {
			fw_err_prefix(e, "loading segment %zu at 0x%08X", i + 1, x->hp.seg[i].addr);
			return rc;
		}
	return helper_greeting(d, e);
}

/* After a failed start: make sure the ROM loader (not half-started RAM
 * code) answers, resetting into it when needed; a ROM write to a loader
 * that erases differently would destroy data. fresh: reset anyway when
 * the lines allow (a new upload then starts from clean RAM). */
static int helper_back_to_rom(struct device *d, bool fresh, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct fw_err le = { 0 };
	bool no_lines = false;
	int rc;

	resync(d);
	if (!(fresh && can_reset(d)) && sync_tries(d, 2, &le) == FW_OK && !x->stub_answered) {
		x->attached = false;
		return spi_attach(d, e);
	}
	if (!can_reset(d))
		return fw_err_set(e, FW_ESTATE,
				  "the ESP8266 did not return to its ROM loader after the helper "
				  "failed to start: %s, then run the same command again",
				  instructions(d->p));
	fw_err_clear(&le);
	rc = connect_auto(d, REENTER_ATTEMPTS, &no_lines, &le);
	if (rc == FW_OK && x->stub_answered)
		rc = FW_ETIMEOUT;
	if (rc != FW_OK)
		return fw_err_set(e, rc,
				  "the ESP8266 did not return to its ROM loader after the helper "
				  "failed to start (%s): check the board's power supply, then run the "
				  "same command again", le.msg[0] ? le.msg : "no answer");
	x->attached = false;
	return spi_attach(d, e);
}

/* identify() on an ESP8266: start the helper if the profile and options
 * allow. A failure to start is not an error: the session goes on with the
 * ROM loader and caps() tells why it cannot read or hash. Only a chip that
 * does not come back to the ROM is. */
static int helper_start(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct fw_err le = { 0 };
	unsigned attempt;
	int rc;

	x->helper = false;
	x->helper_why[0] = '\0';
	if (!d->p->helper) {
		snprintf(x->helper_why, sizeof x->helper_why,
			 "profile %s disables flashwise's RAM helper ([loader] helper = no)",
			 d->p->id);
		return FW_OK;
	}
	if (!x->opt.helper) {
		snprintf(x->helper_why, sizeof x->helper_why,
			 "flashwise's RAM helper was switched off for this session");
		return FW_OK;
	}
	if (x->opt.helper_image) {
		x->hp = *x->opt.helper_image;
		rc = FW_OK;
	} else {
		rc = dev_esp_helper_builtin(&x->hp, &le);
	}
	for (attempt = 1; rc == FW_OK; attempt++) {
		fw_err_clear(&le);
		rc = helper_upload(d, &le);
		if (rc == FW_OK) {
			x->helper = true;
			x->loader = ESP_LOADER_STUB;
			/* It works on the flash the ROM attached. */
			x->attached = true;
			device_logf(d, "flashwise helper running");
			return FW_OK;
		}
		/* A byte lost on the line (a block, the greeting) is worth
		 * another upload from a clean ROM; a blob that fails its
		 * SHA-256 check is not. */
		if (rc == FW_EINTEGRITY || rc == FW_ENOMEM || rc == FW_EINVAL ||
		    attempt >= HELPER_STARTS)
			break;
		device_logf(d, "flashwise's RAM helper did not start (%s); loading it again (try %u "
			"of %u)", le.msg, attempt + 1, HELPER_STARTS);
		x->loader = ESP_LOADER_ESP8266_ROM;
		if ((rc = helper_back_to_rom(d, true, e)) != FW_OK)
			return rc;
	}
	snprintf(x->helper_why, sizeof x->helper_why,
		 "flashwise's RAM helper could not start (%s)", le.msg);
	device_logf(d, "%s; going on with the ROM loader, which cannot back up or verify",
		x->helper_why);
	x->loader = ESP_LOADER_ESP8266_ROM;
	return helper_back_to_rom(d, false, e);
}

static int esp_identify(struct device *d, struct device_identity *id, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	const struct esp_proto_chip_info *chip;
	struct esp_proto_xtal xt;
	uint32_t magic = 0, clkdiv = 0;
	size_t i;
	int rc;

	if (!x)
		return fw_err_set(e, FW_ESTATE, "esp: identify before connect");
	memset(id, 0, sizeof *id);
	if ((rc = read_reg(d, ESP_PROTO_CHIP_MAGIC_ADDR, &magic, e)) != FW_OK)
		return rc;
	id->has_chip_magic = true;
	id->chip_magic = magic;
	chip = esp_proto_chip_by_magic(magic);
	if (!chip) {
		/* Never guess a chip: leave the name empty and let
		 * device_match() name the magic against the profile's. */
		snprintf(id->loader, sizeof id->loader, "unknown ESP ROM");
		device_logf(d, "the chip reports magic 0x%08X, which is not a chip flashwise knows",
			magic);
		x->identified = false;
		return FW_OK;
	}
	x->chip = chip;
	/* identify() again in the same session: the helper still runs. */
	x->loader = x->helper ? ESP_LOADER_STUB : chip->rom;
	x->loader_known = true;
	for (i = 0; chip->name[i] && i + 1 < sizeof id->chip; i++)
		id->chip[i] = (char)tolower((unsigned char)chip->name[i]);
	id->chip[i] = '\0';
	snprintf(id->loader, sizeof id->loader, "%s ROM", chip->name);

	if (chip->chip == ESP_CHIP_ESP8266) {
		struct esp_proto_esp8266_otp otp;
		struct esp_proto_esp8266_id eid;
		static const uint32_t otp_addr[4] = {
			ESP_PROTO_ESP8266_OTP_MAC0, ESP_PROTO_ESP8266_OTP_MAC1,
			ESP_PROTO_ESP8266_OTP_MAC2, ESP_PROTO_ESP8266_OTP_MAC3,
		};
		struct fw_err le = { 0 };

		for (i = 0; i < 4; i++)
			if ((rc = read_reg(d, otp_addr[i], &otp.w[i], e)) != FW_OK)
				return rc;
		fw_err_clear(&le);
		if (esp_proto_esp8266_decode(&otp, &eid, &le) != FW_OK)
			device_logf(d, "MAC address unknown: %s", le.msg);
		if (eid.mac_known) {
			id->has_mac = true;
			memcpy(id->mac, eid.mac, 6);
		}
		id->has_chip_id = true;
		id->chip_id = eid.chip_id;
		if (eid.esp8285)
			snprintf(id->chip, sizeof id->chip, "esp8285");
		if ((rc = read_reg(d, ESP_PROTO_ESP8266_UART_CLKDIV, &clkdiv, e)) != FW_OK)
			return rc;
	} else if (chip->chip == ESP_CHIP_ESP32) {
		uint32_t w1, w2;

		if ((rc = read_reg(d, ESP_PROTO_ESP32_EFUSE_MAC_W1, &w1, e)) != FW_OK ||
		    (rc = read_reg(d, ESP_PROTO_ESP32_EFUSE_MAC_W2, &w2, e)) != FW_OK)
			return rc;
		id->has_mac = true;
		esp_proto_esp32_mac(w1, w2, id->mac);
		if ((rc = read_reg(d, ESP_PROTO_ESP32_UART_CLKDIV, &clkdiv, e)) != FW_OK)
			return rc;
	}
	if (clkdiv) {
		esp_proto_xtal(chip->family, clkdiv, d->t->baud, &xt);
		if (xt.plausible)
			id->crystal_mhz = xt.mhz;
		else
			device_logf(d, "crystal frequency unclear (about %u kHz measured)",
				xt.estimate_khz);
	}
	if (chip->chip == ESP_CHIP_ESP8266 || chip->chip == ESP_CHIP_ESP32) {
		rc = identify_flash(d, id, e);
		/* Only for an ESP8266 profile: the helper is the ESP8266's,
		 * and a wrong profile is refused before any upload. */
		if (rc == FW_OK && chip->chip == ESP_CHIP_ESP8266 && !x->helper &&
		    d->p->family == PROFILE_FAMILY_ESP8266)
			rc = helper_start(d, e);
	} else {
		/* Later chips keep their SPI controller elsewhere; esp_proto
		 * only models the ESP8266 and ESP32 ones so far. */
		device_logf(d, "flash id and MAC are not read on the %s yet", chip->name);
		rc = spi_attach(d, e);
	}
	/* Only a complete identity lets read, write and verify go ahead. */
	x->identified = rc == FW_OK;
	return rc;
}

/* ---- caps ---- */

/* Why an ESP8266 session has only the ROM loader's abilities. */
static void why_not_8266(const struct device *d, char *out, size_t cap)
{
	const struct esp_dev *x = d->priv;

	if (!d->p->helper)
		snprintf(out, cap, "%s, and profile %s disables flashwise's RAM helper "
			 "([loader] helper = no)", DEV_ESP_ESP8266_WHY_NOT, d->p->id);
	else if (x && x->helper_why[0])
		snprintf(out, cap, "%s, and %s", DEV_ESP_ESP8266_WHY_NOT, x->helper_why);
	else
		snprintf(out, cap, "%s (flashwise's RAM helper, which can, starts when the "
			 "chip is identified)", DEV_ESP_ESP8266_WHY_NOT);
}

static void esp_caps(struct device *d, struct device_caps *c)
{
	struct esp_dev *x = d->priv;
	enum esp_proto_loader l = x && x->loader_known ? x->loader : profile_loader(d->p);

	memset(c, 0, sizeof *c);
	c->can_reset = !d->manual_entry && d->p->reset == PROFILE_RESET_AUTO &&
		       (transport_caps(d->t) & TRANSPORT_CAP_MODEM_LINES);
	if (l == ESP_LOADER_ESP8266_ROM) {
		why_not_8266(d, c->why_not, sizeof c->why_not);
		return;
	}
	c->can_read = true;
	c->can_hash = true;
	c->exact_erase = true;
	c->can_change_baud = true;
	/* The helper writes plain blocks; only the ESP32 ROMs inflate. */
	c->compressed_write = l != ESP_LOADER_STUB && (!x || x->opt.compress);
}

/* ---- planning writes ---- */

/* Groups the image's ranges into sector-aligned write units. */
static int plan_units(const struct image *img, struct esp_unit **out, size_t *nout,
		      struct fw_err *e)
{
	size_t n = image_count(img), i, k = 0;
	struct esp_unit *u;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return fw_err_set(e, FW_EINVAL, "esp: the image is empty: nothing to write");
	u = calloc(n, sizeof *u);
	if (!u)
		return fw_err_set(e, FW_ENOMEM, "out of memory planning the write");
	for (i = 0; i < n; i++) {
		const struct image_range *r = image_range_get(img, i);
		uint64_t end = (uint64_t)r->addr + r->len;

		if (end > 0xFFFFFFFFull) {
			free(u);
			return fw_err_set(e, FW_EINVAL,
					  "esp: the image range at 0x%X runs past 4 GB", r->addr);
		}
		if (k > 0) {
			uint64_t prev_end = (uint64_t)u[k - 1].addr + u[k - 1].len;

			/* Same sector as the previous unit's last byte: one unit. */
			if (r->addr / SECTOR <= (prev_end - 1) / SECTOR) {
				u[k - 1].len = (uint32_t)(end - u[k - 1].addr);
				continue;
			}
		}
		u[k].addr = r->addr - r->addr % SECTOR;
		u[k].first_data = r->addr;
		u[k].len = (uint32_t)(end - u[k].addr);
		k++;
	}
	*out = u;
	*nout = k;
	return FW_OK;
}

static void warn_add(struct dev_esp_warnings *w, uint32_t addr, uint32_t len,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void warn_add(struct dev_esp_warnings *w, uint32_t addr, uint32_t len,
		     const char *fmt, ...)
{
	va_list ap;

	w->total++;
	if (w->n >= DEV_ESP_MAX_WARNINGS)
		return;
	w->w[w->n].addr = addr;
	w->w[w->n].len = len;
	va_start(ap, fmt);
	vsnprintf(w->w[w->n].text, sizeof w->w[w->n].text, fmt, ap);
	va_end(ap);
	w->n++;
}

/* helper: the ESP8266 helper writes (exact erases, no ROM overshoot). */
static int warnings_for(const struct profile *p, uint32_t flash_size, bool helper,
			const struct image *img, const struct esp_unit *u, size_t nu,
			struct dev_esp_warnings *w, struct fw_err *e)
{
	size_t i, j, n = image_count(img);
	int rc = FW_OK;

	memset(w, 0, sizeof *w);
	if (!flash_size)
		flash_size = p->flash_size;
	for (i = 0; i < nu; i++) {
		uint64_t end = (uint64_t)u[i].addr + u[i].len;

		if (u[i].first_data > u[i].addr)
			warn_add(w, u[i].addr, u[i].first_data - u[i].addr,
				 "0x%X-0x%X will be erased: the %s writes whole 4 KB "
				 "sectors, and the image starts at 0x%X, inside the sector",
				 u[i].addr, u[i].first_data - 1,
				 helper ? "flashwise helper" : "ROM loader", u[i].first_data);
		if (flash_size && end > flash_size)
			return fw_err_set(e, FW_EINVAL,
					  "the image range 0x%X-0x%llX runs past the end of the "
					  "%u KB flash: choose the image built for this module",
					  u[i].first_data, (unsigned long long)end - 1,
					  flash_size / 1024);
		if (p->family == PROFILE_FAMILY_ESP8266 && !helper) {
			struct esp_proto_erase_plan plan;
			uint32_t after;

			rc = esp_proto_erase_plan(u[i].addr, u[i].len, flash_size, &plan, e);
			if (rc != FW_OK && rc != FW_EGUARD)
				return rc;
			if (plan.extra_sectors) {
				after = (plan.needed.first + plan.needed.count) * SECTOR;
				warn_add(w, after, plan.extra_sectors * SECTOR,
					 "the ESP8266 ROM also erases 0x%X-0x%X after the data at "
					 "0x%X-0x%llX (its erase routine overshoots an odd sector "
					 "count); whatever is stored there is lost",
					 after, after + plan.extra_sectors * SECTOR - 1,
					 u[i].addr, (unsigned long long)end - 1);
			}
			if (rc == FW_EGUARD)
				return rc;
		}
	}
	/* Bytes between two ranges that share a sector are erased too (the
	 * same test plan_units() merges them by). */
	for (j = 1; j < n; j++) {
		const struct image_range *a = image_range_get(img, j - 1);
		const struct image_range *b = image_range_get(img, j);
		uint32_t gap = (uint32_t)(a->addr + a->len);

		if (b->addr / SECTOR <= (gap - 1) / SECTOR)
			warn_add(w, gap, b->addr - gap,
				 "0x%X-0x%X between two parts of the image will be erased "
				 "(they share a 4 KB sector)", gap, b->addr - 1);
	}
	/* In address order, as the technician reads a flash map. */
	for (i = 1; i < w->n; i++)
		for (j = i; j > 0 && w->w[j - 1].addr > w->w[j].addr; j--) {
			struct dev_esp_warning tmp = w->w[j];

			w->w[j] = w->w[j - 1];
			w->w[j - 1] = tmp;
		}
	return FW_OK;
}

int dev_esp_erase_warnings(const struct profile *p, uint32_t flash_size,
			   const struct image *img, struct dev_esp_warnings *w,
			   struct fw_err *e)
{
	struct esp_unit *u;
	size_t nu;
	int rc;

	if (!p || !img || !w)
		return fw_err_set(e, FW_EINVAL, "esp: no profile, image or result");
	memset(w, 0, sizeof *w);
	if ((rc = plan_units(img, &u, &nu, e)) != FW_OK)
		return rc;
	rc = warnings_for(p, flash_size, false, img, u, nu, w, e);
	free(u);
	return rc;
}

int dev_esp_device_erase_warnings(struct device *d, const struct image *img,
				  struct dev_esp_warnings *w, struct fw_err *e)
{
	const struct esp_dev *x = d ? d->priv : NULL;
	struct esp_unit *u;
	size_t nu;
	int rc;

	if (!d || !d->p || !img || !w)
		return fw_err_set(e, FW_EINVAL, "esp: no device, image or result");
	memset(w, 0, sizeof *w);
	if ((rc = plan_units(img, &u, &nu, e)) != FW_OK)
		return rc;
	rc = warnings_for(d->p, x && x->flash_size ? x->flash_size : d->p->flash_size,
			  x && x->helper, img, u, nu, w, e);
	free(u);
	return rc;
}

/* ---- ESP32 ROM session setup ---- */

static int change_baud(struct device *d, unsigned want, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	unsigned old = d->t->baud;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct fw_err le = { 0 };
	int rc;

	/* A ROM takes 0 as the old rate, a stub (our helper) the current one. */
	esp_proto_req_change_baud(&r, x->loader, want, x->loader == ESP_LOADER_STUB ? old : 0);
	fw_err_clear(&le);
	rc = command(d, &r, x->opt.timeout_ms, &resp, &le);
	if (rc != FW_OK) {
		/* The chip kept its rate: carry on at the old one. */
		device_logf(d, "staying at %u baud: %s", old, le.msg);
		return FW_OK;
	}
	/* The reply left at the old rate; now both sides switch. */
	(void)transport_drain(d->t, transport_deadline_ms(x->opt.timeout_ms), NULL);
	rc = transport_set_baud(d->t, want, e);
	if (rc != FW_OK) {
		fw_err_prefix(e, "the chip switched to %u baud but the port cannot follow; "
			      "reconnect", want);
		return rc;
	}
	x->baud_changed = true;
	x->base_baud = old;
	sleep_ms(BAUD_SETTLE_MS);
	(void)transport_flush(d->t, TRANSPORT_FLUSH_INPUT, NULL);
	rx_forget(x);
	device_logf(d, "changed the baud rate from %u to %u", old, want);
	return FW_OK;
}

static uint32_t flash_size_of(const struct device *d)
{
	const struct esp_dev *x = d->priv;

	return x->flash_size ? x->flash_size : d->p->flash_size;
}

/* What every flash operation on an ESP32-family ROM needs first: the flash
 * attached, its real size set (the ROM assumes 2 MB otherwise) and the
 * faster baud rate. */
static int esp32_prepare(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	int rc;

	if ((rc = spi_attach(d, e)) != FW_OK)
		return rc;
	if (!x->params_set) {
		esp_proto_req_spi_set_params(&r, flash_size_of(d));
		if ((rc = command_retry(d, &r, x->opt.timeout_ms, &resp, "SPI_SET_PARAMS",
					RETRY_IDEMPOTENT, e)) != FW_OK)
			return rc;
		x->params_set = true;
	}
	if (x->opt.change_baud && !x->baud_changed && d->p->flash_baud &&
	    d->p->flash_baud != d->t->baud)
		return change_baud(d, d->p->flash_baud, e);
	return FW_OK;
}

/* The ESP8266 helper: the flash is attached (the ROM did it before the
 * upload); switch to the faster rate once. */
static int helper_prepare(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	unsigned want = x->opt.helper_baud ? x->opt.helper_baud : d->p->flash_baud;

	if (x->hp.max_baud && want > x->hp.max_baud) {
		device_logf(d, "the helper goes up to %u baud, not %u", x->hp.max_baud, want);
		want = x->hp.max_baud;
	}
	if (x->opt.change_baud && !x->baud_changed && want && want != d->t->baud)
		return change_baud(d, want, e);
	return FW_OK;
}

/* What a flash operation needs first, whoever answers. */
static int prepare(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;

	if (x->helper)
		return helper_prepare(d, e);
	if (x->loader == ESP_LOADER_ESP8266_ROM)
		return spi_attach(d, e);
	return esp32_prepare(d, e);
}

static int require_identified(struct device *d, struct fw_err *e)
{
	struct esp_dev *x = d->priv;

	if (!x || !x->identified)
		return fw_err_set(e, FW_ESTATE,
				  "esp: the chip was not identified yet (connect and identify first)");
	if ((x->chip->family == ESP_FAMILY_ESP8266) !=
	    (d->p->family == PROFILE_FAMILY_ESP8266))
		return fw_err_set(e, FW_EMISMATCH,
				  "wrong chip: the device is an %s, profile %s is for %s",
				  x->chip->name, d->p->id, d->p->chip);
	return FW_OK;
}

/* Puts the session back after the loader stopped answering or the chip was
 * reset under us: a short question first (the loader may just have lost
 * one frame); if it stays silent, reset into the loader and SYNC (needs
 * DTR/RTS), check that the same chip answers, then attach the flash, set
 * its size and the baud rate again (a reset forgot them; doing them again
 * on a loader that kept them does no harm). `what` names the interrupted
 * work for the messages. */
static int recover_loader(struct device *d, const char *what, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct fw_err le = { 0 };
	uint32_t magic = 0;
	bool no_lines = false, had_helper = x->helper;
	const char *who = had_helper ? "flashwise helper" : loader_name(x);
	int rc;

	resync(d);
	if (had_helper) {
		/* SYNC tells the helper (value 0) from a ROM that took over
		 * after a reset: a ROM must never get the helper's exact-size
		 * FLASH_BEGIN (it would over-erase). */
		rc = sync_result(d, sync_once(d, &le));
		if (rc == FW_OK && x->stub_answered)
			return helper_prepare(d, e);
		/* Gone: a clean reset into the ROM and a new upload. */
		x->helper = false;
		x->loader = ESP_LOADER_ESP8266_ROM;
		rc = FW_ETIMEOUT;
	} else {
		rc = read_reg_ms(d, ESP_PROTO_CHIP_MAGIC_ADDR, &magic, PROBE_MS, &le);
	}
	if (rc != FW_OK) {
		if (!can_reset(d))
			return fw_err_set(e, FW_ETIMEOUT,
					  "%s: the %s stopped answering and flashwise cannot reset "
					  "the board (no DTR/RTS on %s): %s, then run the same "
					  "command again", what, who, d->t->path,
					  instructions(d->p));
		device_logf(d, "%s: the %s does not answer; resetting the chip into the "
			"bootloader", what, who);
		/* A reset puts the chip's UART back to its own rate. */
		if (x->baud_changed) {
			if ((rc = transport_set_baud(d->t, x->base_baud, e)) != FW_OK)
				return rc;
			x->baud_changed = false;
		}
		fw_err_clear(&le);
		rc = connect_auto(d, REENTER_ATTEMPTS, &no_lines, &le);
		if (rc == FW_ETIMEOUT)
			return fw_err_set(e, FW_ETIMEOUT,
					  "%s: the %s stopped answering and did not come back "
					  "after %u resets: check the board's power supply and "
					  "the cable, then run the same command again", what,
					  who, REENTER_ATTEMPTS);
		if (rc != FW_OK) {
			fw_err_copy(e, &le);
			return rc;
		}
		if ((rc = read_reg(d, ESP_PROTO_CHIP_MAGIC_ADDR, &magic, e)) != FW_OK)
			return rc;
	}
	if (esp_proto_chip_by_magic(magic) != x->chip)
		return fw_err_set(e, FW_EMISMATCH,
				  "%s: after the interruption the chip reports magic 0x%08X, not "
				  "the %s identified before: check which board is connected",
				  what, magic, x->chip->name);
	x->attached = x->params_set = false;
	if (x->loader != ESP_LOADER_ESP8266_ROM)
		return esp32_prepare(d, e);
	if ((rc = spi_attach(d, e)) != FW_OK || !had_helper)
		return rc;
	/* The reset wiped the helper from RAM: load it again. */
	fw_err_clear(&le);
	if ((rc = helper_upload(d, &le)) != FW_OK)
		return fw_err_set(e, rc, "%s: flashwise's helper did not start again after the "
				  "reset (%s): run the same command again", what, le.msg);
	x->helper = true;
	x->loader = ESP_LOADER_STUB;
	x->attached = true;
	device_logf(d, "flashwise helper running again");
	return helper_prepare(d, e);
}

/* Whether starting an interrupted region again (after recover_loader) can
 * help: the loader went silent, its replies were damaged, or it lost the
 * write (0x06 to a data block: no write open any more; inflate errors: the
 * compressed stream went wrong). Not for a real refusal of FLASH_BEGIN,
 * a flash write error or a problem on this computer. */
static bool restart_helps(const struct esp_dev *x, int rc)
{
	bool data_op = x->fail_op == ESP_OP_FLASH_DATA || x->fail_op == ESP_OP_FLASH_DEFL_DATA;

	if (rc == FW_ENOMEM || rc == FW_EINVAL || rc == FW_EGUARD || rc == FW_EMISMATCH)
		return false;
	switch (x->fail) {
	case FAIL_NONE:
		return false;
	case FAIL_TIMEOUT:
	case FAIL_GARBLED:
	case FAIL_FOREIGN:
		return true;
	case FAIL_REFUSED:
		switch (x->fail_code) {
		case 0x01:
		case 0x05:
		case 0x07:
		case 0xC0:
		case 0xC1:
			return true;
		case 0x06:
		case 0x0B:
		case 0x0C:
		case 0xC6: /* helper: "not in flash mode", the write was lost */
			return data_op;
		default:
			return false;
		}
	}
	return false;
}

/* ---- writing ---- */

struct write_ctx {
	uint64_t done, total;
};

static int send_blocks(struct device *d, uint8_t op, const uint8_t *data, size_t len,
		       unsigned block_timeout_ms, uint32_t addr, uint64_t *done_unc,
		       uint64_t unc_len, struct write_ctx *w, struct fw_err *e)
{
	const uint32_t bs = op == ESP_OP_FLASH_DEFL_DATA ? BLOCK : write_block(d->priv);
	uint32_t seq, nblocks = esp_proto_blocks((uint32_t)len, bs);
	uint64_t base = w->done;
	int rc;

	for (seq = 0; seq < nblocks; seq++) {
		struct esp_proto_req r;
		struct esp_proto_resp resp;
		size_t off = (size_t)seq * bs;
		size_t n = len - off < bs ? len - off : bs;
		char what[96];

		if ((rc = esp_proto_req_data(&r, op, seq, data + off, n, e)) != FW_OK)
			return rc;
		snprintf(what, sizeof what, "block %u of %u at 0x%X", seq + 1, nblocks, addr);
		rc = command_retry(d, &r, block_timeout_ms, &resp, what,
				   op == ESP_OP_FLASH_DEFL_DATA ? RETRY_DEFL_BLOCK : RETRY_BLOCK, e);
		if (rc != FW_OK)
			return rc;
		*done_unc = (uint64_t)(seq + 1) * unc_len / nblocks;
		w->done = base + *done_unc;
		device_progress(d, "write", w->done, w->total);
	}
	return FW_OK;
}

/* An uncompressed write of [addr, addr+len): FLASH_BEGIN erases (sent_size
 * is what to put in it: exact, or the ESP8266's compensated size), then
 * blocks of the loader's size (0x400 for the ROMs), the last one padded
 * with 0xFF. */
static int write_plain(struct device *d, uint32_t addr, const uint8_t *data, uint32_t len,
		       uint32_t sent_size, uint64_t erase_bytes, struct write_ctx *w,
		       struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	const uint32_t bs = write_block(x);
	uint32_t nblocks = esp_proto_blocks(len, bs);
	uint8_t *buf;
	uint64_t done = 0;
	int rc;

	buf = malloc((size_t)nblocks * bs);
	if (!buf)
		return fw_err_set(e, FW_ENOMEM, "out of memory writing 0x%X", addr);
	memset(buf, 0xFF, (size_t)nblocks * bs);
	memcpy(buf, data, len);
	device_progress(d, "erase", w->done, w->total);
	rc = flash_begin(d, ESP_OP_FLASH_BEGIN, sent_size, nblocks, addr,
			 scaled_ms(x, ERASE_MS_PER_MB, erase_bytes), e);
	/* The helper erases each sector as its first block arrives and
	 * answers a block once it is on flash: time a block for both. */
	if (rc == FW_OK)
		rc = send_blocks(d, ESP_OP_FLASH_DATA, buf, (size_t)nblocks * bs,
				 scaled_ms(x, WRITE_MS_PER_MB + (x->helper ? ERASE_MS_PER_MB : 0),
					   bs), addr, &done, len, w, e);
	free(buf);
	if (rc != FW_OK)
		fw_err_prefix(e, "writing 0x%X-0x%X", addr, addr + len - 1);
	return rc;
}

/* A zlib-compressed write (ESP32-family ROMs). FW_EUNSUPPORTED when the
 * loader refuses FLASH_DEFL_BEGIN, before anything was erased. */
static int write_deflated(struct device *d, uint32_t addr, const uint8_t *data,
			  uint32_t len, struct write_ctx *w, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uLongf clen = compressBound(len);
	uint8_t *cbuf = malloc(clen);
	uint32_t rounded = esp_proto_blocks(len, BLOCK) * BLOCK;
	uint64_t done = 0, per_block;
	int rc;

	if (!cbuf)
		return fw_err_set(e, FW_ENOMEM, "out of memory compressing 0x%X", addr);
	if (compress2(cbuf, &clen, data, len, 9) != Z_OK) {
		free(cbuf);
		return fw_err_set(e, FW_ENOMEM, "zlib could not compress the data for 0x%X", addr);
	}
	device_progress(d, "erase", w->done, w->total);
	/* The ROM takes the uncompressed size rounded up to whole blocks. */
	rc = flash_begin(d, ESP_OP_FLASH_DEFL_BEGIN, rounded,
			 esp_proto_blocks((uint32_t)clen, BLOCK), addr,
			 scaled_ms(x, ERASE_MS_PER_MB, rounded), e);
	if (rc == FW_OK) {
		/* Each compressed block may inflate to many: time it by the
		 * uncompressed bytes it stands for. */
		per_block = clen ? (uint64_t)len * BLOCK / clen + 1 : BLOCK;
		rc = send_blocks(d, ESP_OP_FLASH_DEFL_DATA, cbuf, clen,
				 scaled_ms(x, WRITE_MS_PER_MB, per_block), addr, &done, len,
				 w, e);
		/* "Unknown command" to a data block is a damaged opcode, not a
		 * loader without compression: the region was erased already,
		 * so the caller must not take it for the refusal it falls
		 * back on. */
		if (rc == FW_EUNSUPPORTED) {
			rc = FW_EPROTO;
			if (e)
				e->code = rc;
		}
		if (rc != FW_OK)
			fw_err_prefix(e, "writing 0x%X-0x%X (compressed)", addr, addr + len - 1);
	}
	free(cbuf);
	return rc;
}

static int md5_on_chip(struct device *d, uint32_t addr, uint32_t len, uint8_t md5[16],
		       struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	unsigned attempt;
	int rc;

	esp_proto_req_flash_md5(&r, addr, len);
	for (attempt = 1;; attempt++) {
		struct fw_err le = { 0 };

		rc = command_retry(d, &r, scaled_ms(x, MD5_MS_PER_MB, len), &resp,
				   "SPI_FLASH_MD5", RETRY_IDEMPOTENT, e);
		if (rc != FW_OK)
			return rc;
		fw_err_clear(&le);
		if ((rc = esp_proto_md5_parse(&resp, md5, &le)) == FW_OK)
			return FW_OK;
		/* Hex digits bent on the line: ask again. */
		x->fail = FAIL_GARBLED;
		if (attempt >= x->opt.block_attempts) {
			fw_err_copy(e, &le);
			return rc;
		}
		device_logf(d, "SPI_FLASH_MD5: %s; resynchronising and asking again (try %u of %u)",
			le.msg, attempt + 1, x->opt.block_attempts);
		resync(d);
	}
}

static int md5_differs(struct device *d, uint32_t addr, const uint8_t *data, uint32_t len,
		       unsigned asks, bool *differs, struct fw_err *e)
{
	uint8_t chip[MD5_LEN], host[MD5_LEN];
	unsigned i;
	int rc;

	if (integrity_md5(data, len, host) != FW_OK)
		return fw_err_set(e, FW_ENOMEM, "could not compute an MD5 on this computer");
	/* A digest bent on the line into other valid hex reads as "differs";
	 * bent into exactly the expected one it cannot be. So a difference is
	 * asked again, a match is final. */
	*differs = true;
	for (i = 0; i < asks && *differs; i++) {
		if ((rc = md5_on_chip(d, addr, len, chip, e)) != FW_OK)
			return rc;
		*differs = !integrity_equal(chip, host, MD5_LEN);
	}
	return FW_OK;
}

static int write_esp32_run(struct device *d, uint32_t addr, const uint8_t *data,
			   uint32_t len, struct write_ctx *w, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct fw_err le = { 0 };
	int rc;

	if (x->opt.compress) {
		fw_err_clear(&le);
		rc = write_deflated(d, addr, data, len, w, &le);
		if (rc != FW_EUNSUPPORTED) {
			fw_err_copy(e, &le);
			return rc;
		}
		device_logf(d, "compressed writing refused (%s); writing uncompressed", le.msg);
		x->opt.compress = false;
		resync(d);
	}
	return write_plain(d, addr, data, len, len, len, w, e);
}

/* ESP32-family ROM: exact erase, compression, and optionally skipping the
 * sectors whose MD5 on the chip already matches. */
static int write_esp32_unit(struct device *d, uint32_t addr, const uint8_t *data,
			    uint32_t len, struct write_ctx *w, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint32_t off = 0, run_start = 0, skipped = 0;
	bool in_run = false;
	int rc;

	if (!x->opt.skip_unchanged)
		return write_esp32_run(d, addr, data, len, w, e);
	while (off < len) {
		uint32_t n = len - off < SECTOR ? len - off : SECTOR;
		bool differs = true;

		/* A false "differs" only costs a rewrite: asked once. */
		if ((rc = md5_differs(d, addr + off, data + off, n, 1, &differs, e)) != FW_OK)
			return rc;
		if (differs && !in_run) {
			in_run = true;
			run_start = off;
		} else if (!differs && in_run) {
			in_run = false;
			rc = write_esp32_run(d, addr + run_start, data + run_start,
					     off - run_start, w, e);
			if (rc != FW_OK)
				return rc;
		}
		if (!differs) {
			skipped += n;
			w->done += n;
			device_progress(d, "write", w->done, w->total);
		}
		off += n;
	}
	if (in_run && (rc = write_esp32_run(d, addr + run_start, data + run_start,
					    len - run_start, w, e)) != FW_OK)
		return rc;
	if (skipped)
		device_logf(d, "0x%X-0x%X: %u bytes already matched on the chip and were not "
			"rewritten", addr, addr + len - 1, skipped);
	return FW_OK;
}

static int write_unit(struct device *d, const struct esp_unit *u, const uint8_t *data,
		      struct write_ctx *w, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_erase_plan plan;
	int rc;

	/* The helper erases exactly the sectors FLASH_BEGIN names: no
	 * compensation, and the unit already starts on a sector. */
	if (x->helper)
		return write_plain(d, u->addr, data, u->len, u->len, u->len, w, e);
	if (x->loader != ESP_LOADER_ESP8266_ROM)
		return write_esp32_unit(d, u->addr, data, u->len, w, e);
	/* Planned afresh for every start: FLASH_BEGIN erases again, and the
	 * ROM's over-erase needs the same compensation again. */
	if ((rc = esp_proto_erase_plan(u->addr, u->len, flash_size_of(d), &plan, e)) != FW_OK)
		return rc;
	return write_plain(d, u->addr, data, u->len, plan.send_size,
			   (uint64_t)plan.erased.count * SECTOR, w, e);
}

/* One write unit; when the loader goes silent, is reset under us or loses
 * the write (restart_helps), the session is put back (recover_loader) and
 * the unit is written again from its FLASH_BEGIN: a block can only go to
 * the write that FLASH_BEGIN opened, and a compressed stream only from its
 * start. Bounded by REGION_RESTARTS; the final verify (ESP32) judges the
 * result, the ESP8266 ROM stays "not verified". */
static int write_unit_restarts(struct device *d, const struct esp_unit *u,
			       const uint8_t *data, struct write_ctx *w, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint64_t done0 = w->done;
	unsigned restarts;
	char what[64];
	int rc;

	snprintf(what, sizeof what, "writing 0x%X-0x%X", u->addr, u->addr + u->len - 1);
	for (restarts = 0;; restarts++) {
		struct fw_err le = { 0 };

		fw_err_clear(&le);
		w->done = done0;
		rc = write_unit(d, u, data, w, &le);
		if (rc == FW_OK || restarts >= REGION_RESTARTS || !restart_helps(x, rc)) {
			fw_err_copy(e, &le);
			if (rc != FW_OK && restarts > 0)
				fw_err_prefix(e, "started %u times", restarts + 1);
			return rc;
		}
		device_logf(d, "%s; writing 0x%X-0x%X again from its start (try %u of %u)", le.msg,
			u->addr, u->addr + u->len - 1, restarts + 2, REGION_RESTARTS + 1);
		if ((rc = recover_loader(d, what, e)) != FW_OK)
			return rc;
	}
}

static int esp_write(struct device *d, const struct image *img, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct dev_esp_warnings warn;
	struct esp_unit *u = NULL;
	struct write_ctx w = { 0, 0 };
	size_t nu = 0, i;
	int rc;

	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (!img)
		return fw_err_set(e, FW_EINVAL, "esp: no image to write");
	if ((rc = plan_units(img, &u, &nu, e)) != FW_OK)
		return rc;
	/* Every warning (and every refusal, e.g. an over-erase that would
	 * wrap around to 0x0) before the first byte is erased. */
	rc = warnings_for(d->p, flash_size_of(d), x->helper, img, u, nu, &warn, e);
	for (i = 0; i < warn.n; i++)
		device_logf(d, "WARNING: %s", warn.w[i].text);
	if (rc != FW_OK)
		goto out;
	for (i = 0; i < nu; i++)
		w.total += u[i].len;
	if ((rc = prepare(d, e)) != FW_OK)
		goto out;
	for (i = 0; i < nu && rc == FW_OK; i++) {
		uint8_t *data = malloc(u[i].len);

		if (!data) {
			rc = fw_err_set(e, FW_ENOMEM, "out of memory writing 0x%X", u[i].addr);
			break;
		}
		/* Bytes between ranges (and before an unaligned start) are
		 * erased anyway: write them as erased flash reads. */
		image_flatten(img, u[i].addr, u[i].len, IMAGE_FILL, data);
		rc = write_unit_restarts(d, &u[i], data, &w, e);
		free(data);
	}
	if (rc == FW_OK)
		device_progress(d, "write", w.total, w.total);
	/* No FLASH_END: on a ROM it would leave the loader (section 5.3). */
out:
	free(u);
	return rc;
}

/* ---- reading and verifying ---- */

/* READ_FLASH_SLOW over [addr, addr+len) into out. When the loader goes
 * silent, it is put back (recover_loader, at most READ_REENTRIES times per
 * *reentries budget) and the read goes on where it stopped: reading twice
 * changes nothing. */
static int read_range(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
		      bool show, unsigned *reentries, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint32_t off = 0;
	int rc;

	while (off < len) {
		uint32_t n = len - off < ESP_PROTO_READ_SLOW_LEN ? len - off
								 : ESP_PROTO_READ_SLOW_LEN;
		struct esp_proto_req r;
		struct esp_proto_resp resp;
		struct fw_err le = { 0 };
		char what[64];

		if ((rc = esp_proto_req_read_flash_slow(&r, addr + off, n, e)) != FW_OK)
			return rc;
		snprintf(what, sizeof what, "reading 0x%X", addr + off);
		fw_err_clear(&le);
		rc = command_retry(d, &r, x->opt.timeout_ms, &resp, what, RETRY_IDEMPOTENT, &le);
		if (rc != FW_OK) {
			if (x->fail != FAIL_TIMEOUT || *reentries >= READ_REENTRIES) {
				fw_err_copy(e, &le);
				return rc;
			}
			(*reentries)++;
			device_logf(d, "%s; reading on from 0x%X (try %u of %u)", le.msg, addr + off,
				*reentries + 1, READ_REENTRIES + 1);
			if ((rc = recover_loader(d, what, e)) != FW_OK)
				return rc;
			continue;
		}
		if (resp.result_len < n)
			return fw_err_set(e, FW_EPROTO, "the chip sent %zu bytes for 0x%X, "
					  "expected %u", resp.result_len, addr + off, n);
		memcpy(out + off, resp.result, n);
		off += n;
		if (show)
			device_progress(d, "read", off, len);
	}
	return FW_OK;
}

/* Reads again the pieces of [addr, addr+len) whose MD5 on the chip differs
 * from out: 4 KB sectors first, then REPAIR_PIECE bytes inside a differing
 * sector. A false "differs" only costs a re-read, so each MD5 is asked once. */
static int repair_range(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
			unsigned *reentries, struct fw_err *e)
{
	uint32_t off = 0;
	int rc;

	while (off < len) {
		uint32_t a = addr + off, n = SECTOR - a % SECTOR, poff;
		bool differs = true;

		if (n > len - off)
			n = len - off;
		if ((rc = md5_differs(d, a, out + off, n, 1, &differs, e)) != FW_OK)
			return rc;
		for (poff = 0; differs && poff < n; poff += REPAIR_PIECE) {
			uint32_t pn = n - poff < REPAIR_PIECE ? n - poff : REPAIR_PIECE;
			bool pdiff = true;

			if ((rc = md5_differs(d, a + poff, out + off + poff, pn, 1, &pdiff,
					      e)) != FW_OK)
				return rc;
			if (pdiff && (rc = read_range(d, a + poff, pn, out + off + poff, false,
						      reentries, e)) != FW_OK)
				return rc;
		}
		off += n;
	}
	return FW_OK;
}

/* A 4-byte READ_FLASH acknowledgement: the total received so far. */
static int send_ack(struct device *d, uint32_t total, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint8_t ack[4];

	esp_proto_read_stream_ack_encode(total, ack);
	strbuf_reset(&x->wire);
	slip_append_frame(&x->wire, ack, sizeof ack);
	if (strbuf_failed(&x->wire))
		return fw_err_set(e, FW_ENOMEM, "out of memory acknowledging a read");
	return transport_write(d->t, x->wire.s, x->wire.len,
			       transport_deadline_ms(WRITE_TIMEOUT_MS), e);
}

/* One READ_FLASH of [addr, addr+len) through the helper: the reply, then
 * data frames, each acknowledged, then the MD5 of what the helper read.
 * *clean is false when the helper finished but the data cannot be trusted
 * (a frame of the wrong size, or the MD5 disagrees): reading again cures
 * that. A silence is FW_ETIMEOUT with x->fail = FAIL_TIMEOUT: the helper's
 * state is then unknown. *shown: progress already reported. */
static int helper_read_once(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
			    uint64_t done0, uint64_t total, uint64_t *shown, bool *clean,
			    struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint32_t packet = x->hp.read_packet ? x->hp.read_packet : HELPER_PACKET;
	uint32_t inflight = x->hp.read_inflight ? x->hp.read_inflight : HELPER_INFLIGHT;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t host[MD5_LEN];
	const uint8_t *pkt = NULL;
	size_t n = 0;
	uint32_t got = 0;
	int rc;

	*clean = true;
	if ((rc = esp_proto_req_read_flash(&r, addr, len, packet, inflight, e)) != FW_OK)
		return rc;
	/* Not resent blindly: after a damaged reply the helper may already
	 * be streaming (the caller recovers instead). */
	if ((rc = command(d, &r, x->opt.timeout_ms, &resp, e)) != FW_OK)
		return rc;
	while (got <= len) {
		uint32_t want = len - got < packet ? len - got : packet;

		rc = recv_frame(d, transport_deadline_ms(x->opt.timeout_ms), &pkt, &n, e);
		if (rc == FW_ETIMEOUT) {
			x->fail = FAIL_TIMEOUT;
			return fw_err_set(e, FW_ETIMEOUT, "the flashwise helper stopped sending "
					  "at 0x%X (%u of %u bytes of this read arrived)", addr + got,
					  got, len);
		}
		if (rc != FW_OK)
			return rc;
		if (got == len)
			break; /* the MD5 trailer */
		if (n != want && esp_proto_response_match(pkt, n, ESP_OP_READ_FLASH) ==
				 ESP_MATCH_YES &&
		    esp_proto_response_parse(pkt, n, 0, 2, &resp, NULL) == FW_OK &&
		    !esp_proto_response_ok(&resp)) {
			/* The helper ended the stream: its flash read failed. */
			x->fail = FAIL_REFUSED;
			x->fail_code = esp_proto_status_reason(&resp);
			rc = esp_proto_response_check(&resp, e);
			fw_err_prefix(e, "reading 0x%X", addr + got);
			return rc;
		}
		/* A frame of another size lost or gained bytes on the line: keep
		 * counting whole packets so the helper finishes the stream, and
		 * read the range again afterwards. */
		if (n == want)
			memcpy(out + got, pkt, n);
		else
			*clean = false;
		got += want;
		if ((rc = send_ack(d, got, e)) != FW_OK)
			return rc;
		if (done0 + got > *shown) {
			*shown = done0 + got;
			device_progress(d, "read", *shown, total);
		}
	}
	if (n != MD5_LEN) {
		*clean = false;
		return FW_OK;
	}
	if (integrity_md5(out, len, host) != FW_OK)
		return fw_err_set(e, FW_ENOMEM, "could not compute an MD5 on this computer");
	if (!integrity_equal(host, pkt, MD5_LEN))
		*clean = false;
	return FW_OK;
}

/* Puts right [addr, addr+n) (its bytes in out) after a read whose MD5
 * trailer disagreed: the range is split in REPAIR_SPLIT pieces, a piece
 * whose on-chip MD5 matches what arrived is kept, the others are read
 * again (and split again when that read is damaged too). Pieces of
 * REPAIR_MIN bytes are read again as a whole, REPAIR_TRIES times at most:
 * on a noisy line only the damaged kilobytes cross it again. base and len
 * are the whole read, for progress. */
static int helper_repair(struct device *d, uint32_t base, uint32_t len, uint32_t addr,
			 uint32_t n, uint8_t *out, uint64_t *shown, struct fw_err *e)
{
	uint32_t piece, off;
	unsigned tries;
	bool clean = true;
	int rc;

	if (n <= REPAIR_MIN) {
		for (tries = 1;; tries++) {
			rc = helper_read_once(d, addr, n, out, addr - base, len, shown, &clean, e);
			if (rc != FW_OK || clean)
				return rc;
			if (tries >= REPAIR_TRIES)
				return fw_err_set(e, FW_EINTEGRITY,
						  "the data read from 0x%X-0x%X does not match the "
						  "helper's MD5 of it after %u more reads (bytes keep "
						  "being corrupted on the serial line): check the "
						  "cable, or choose a lower baud rate", addr,
						  addr + n - 1, tries);
			resync(d);
		}
	}
	piece = (n / REPAIR_SPLIT + REPAIR_MIN - 1) / REPAIR_MIN * REPAIR_MIN;
	for (off = 0; off < n; off += piece) {
		uint32_t pn = n - off < piece ? n - off : piece;
		bool differs = true;

		/* A digest bent on the line only costs a re-read. */
		if ((rc = md5_differs(d, addr + off, out + off, pn, 1, &differs, e)) != FW_OK)
			return rc;
		if (!differs)
			continue;
		rc = helper_read_once(d, addr + off, pn, out + off, addr + off - base, len, shown,
				      &clean, e);
		if (rc != FW_OK)
			return rc;
		if (!clean) {
			resync(d);
			if ((rc = helper_repair(d, base, len, addr + off, pn, out + off, shown,
						e)) != FW_OK)
				return rc;
		}
	}
	return FW_OK;
}

/* A backup through the helper, in READ_CHUNK pieces: a piece whose data
 * does not match the helper's MD5 is repaired (helper_repair); a helper
 * that goes silent is put back (probe, else reset and upload again, at most
 * READ_REENTRIES times) and the piece read again. */
static int helper_read(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
		       struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint32_t off = 0;
	uint64_t shown = 0;
	unsigned reentries = 0;
	int rc;

	while (off < len) {
		uint32_t n = len - off < READ_CHUNK ? len - off : READ_CHUNK;

		for (;;) {
			struct fw_err le = { 0 };
			bool clean = true;
			char what[64];

			fw_err_clear(&le);
			rc = helper_read_once(d, addr + off, n, out + off, off, len, &shown, &clean,
					      &le);
			if (rc == FW_OK && !clean) {
				device_logf(d, "the data read from 0x%X-0x%X does not match the helper's "
					"MD5 of it (bytes were damaged on the serial line); reading "
					"the damaged pieces again", addr + off, addr + off + n - 1);
				resync(d);
				fw_err_clear(&le);
				rc = helper_repair(d, addr, len, addr + off, n, out + off, &shown, &le);
			}
			if (rc == FW_OK)
				break;
			if (rc == FW_EINTEGRITY || x->fail == FAIL_NONE || x->fail == FAIL_REFUSED ||
			    reentries >= READ_REENTRIES) {
				fw_err_copy(e, &le);
				return rc;
			}
			reentries++;
			snprintf(what, sizeof what, "reading 0x%X", addr + off);
			device_logf(d, "%s; reading 0x%X-0x%X again (try %u of %u)", le.msg,
				addr + off, addr + off + n - 1, reentries + 1, READ_REENTRIES + 1);
			if ((rc = recover_loader(d, what, e)) != FW_OK)
				return rc;
		}
		off += n;
	}
	device_progress(d, "read", len, len);
	return FW_OK;
}

static int esp_read(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
		    struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint8_t want[MD5_LEN], got[MD5_LEN];
	unsigned pass, reentries = 0;
	int rc;

	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (x->loader == ESP_LOADER_ESP8266_ROM) {
		char why[256];

		why_not_8266(d, why, sizeof why);
		return fw_err_set(e, FW_EUNSUPPORTED, "cannot back up the flash: %s", why);
	}
	if (len == 0 || !out)
		return fw_err_set(e, FW_EINVAL, "esp: nothing to read");
	if ((uint64_t)addr + len > flash_size_of(d))
		return fw_err_set(e, FW_EINVAL,
				  "cannot read 0x%X-0x%llX: the flash has only %u KB", addr,
				  (unsigned long long)addr + len - 1, flash_size_of(d) / 1024);
	if ((rc = prepare(d, e)) != FW_OK)
		return rc;
	if (x->helper)
		return helper_read(d, addr, len, out, e);
	if ((rc = read_range(d, addr, len, out, true, &reentries, e)) != FW_OK)
		return rc;
	/* READ_FLASH_SLOW carries no checksum: a backup counts only once the
	 * chip's own MD5 of the region agrees with what arrived. When it does
	 * not, the pieces whose MD5 differs are read again. */
	for (pass = 0;; pass++) {
		if ((rc = md5_on_chip(d, addr, len, want, e)) != FW_OK)
			return rc;
		if (integrity_md5(out, len, got) != FW_OK)
			return fw_err_set(e, FW_ENOMEM, "could not compute an MD5 on this computer");
		if (integrity_equal(want, got, MD5_LEN))
			return FW_OK;
		if (pass >= READ_REPAIRS)
			break;
		device_logf(d, "the data read from 0x%X-0x%X does not match the chip's MD5 of that "
			"region (bytes were damaged on the serial line); reading the differing "
			"pieces again (try %u of %u)", addr, addr + len - 1, pass + 2,
			READ_REPAIRS + 1);
		if ((rc = repair_range(d, addr, len, out, &reentries, e)) != FW_OK)
			return rc;
	}
	return fw_err_set(e, FW_EINTEGRITY,
			  "the data read from 0x%X-0x%X does not match the chip's MD5 of that "
			  "region after %u reads (bytes keep being corrupted on the serial "
			  "line): check the cable, or choose a lower baud rate in the profile",
			  addr, addr + len - 1, READ_REPAIRS + 1);
}

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

/* A range whose MD5 differs: find the differing 4 KB sectors. */
static int narrow_down(struct device *d, uint32_t addr, const uint8_t *data, uint32_t len,
		       struct device_verify_result *r, struct fw_err *e)
{
	uint32_t off = 0;
	int rc;

	while (off < len) {
		uint32_t a = addr + off;
		uint32_t n = SECTOR - a % SECTOR;
		bool differs = true;

		if (n > len - off)
			n = len - off;
		if ((rc = md5_differs(d, a, data + off, n, MD5_ASKS, &differs, e)) != FW_OK)
			return rc;
		if (differs)
			mismatch_add(r, a, n);
		off += n;
	}
	return FW_OK;
}

static int verify_once(struct device *d, const struct image *img,
		       struct device_verify_result *r, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	uint64_t total, done = 0;
	size_t i, before;
	int rc;

	memset(r, 0, sizeof *r);
	if ((rc = prepare(d, e)) != FW_OK)
		return rc;
	snprintf(r->method, sizeof r->method, "%s", x->helper ? "md5 on chip (flashwise helper)"
								: "md5 on chip");
	total = image_total(img);
	/* Exactly the image's bytes: a verify must not depend on what the
	 * write did around them. */
	for (i = 0; i < image_count(img); i++) {
		const struct image_range *rg = image_range_get(img, i);
		bool differs = false;

		if ((rc = md5_differs(d, rg->addr, rg->data, (uint32_t)rg->len, MD5_ASKS,
				      &differs, e)) != FW_OK)
			return rc;
		if (differs) {
			before = r->nmismatch;
			if ((rc = narrow_down(d, rg->addr, rg->data, (uint32_t)rg->len, r,
					      e)) != FW_OK)
				return rc;
			/* The whole range differed but no sector did (the
			 * flash changed under us): report the range. */
			if (r->nmismatch == before)
				mismatch_add(r, rg->addr, (uint32_t)rg->len);
		}
		done += rg->len;
		r->bytes_checked = done;
		device_progress(d, "verify", done, total);
	}
	if (r->nmismatch)
		return fw_err_set(e, FW_EVERIFY,
				  "the flash differs from the image in %zu place%s, first at "
				  "0x%X-0x%X: write again; if it keeps failing, check the power "
				  "supply and the profile's flash mode",
				  r->nmismatch, r->nmismatch == 1 ? "" : "s", r->mismatch[0].addr,
				  r->mismatch[0].addr + r->mismatch[0].len - 1);
	return FW_OK;
}

/* verify_once(); when the loader goes silent it is put back and the verify
 * runs again from the start (at most READ_REENTRIES times). */
static int esp_verify(struct device *d, const struct image *img,
		      struct device_verify_result *r, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	unsigned tries;
	int rc;

	if (r)
		memset(r, 0, sizeof *r);
	if ((rc = require_identified(d, e)) != FW_OK)
		return rc;
	if (!img || !r)
		return fw_err_set(e, FW_EINVAL, "esp: nothing to verify");
	if (x->loader == ESP_LOADER_ESP8266_ROM) {
		char why[256];

		why_not_8266(d, why, sizeof why);
		return fw_err_set(e, FW_EUNSUPPORTED, "cannot verify on this loader: %s", why);
	}
	for (tries = 0;; tries++) {
		struct fw_err le = { 0 };

		fw_err_clear(&le);
		rc = verify_once(d, img, r, &le);
		if (rc == FW_OK || rc == FW_EVERIFY || x->fail != FAIL_TIMEOUT ||
		    tries >= READ_REENTRIES) {
			fw_err_copy(e, &le);
			return rc;
		}
		device_logf(d, "%s; verifying again (try %u of %u)", le.msg, tries + 2,
			READ_REENTRIES + 1);
		if ((rc = recover_loader(d, "verifying", e)) != FW_OK)
			return rc;
	}
}

/* ---- leaving ---- */

static int esp_leave(struct device *d, bool run, struct fw_err *e)
{
	struct esp_dev *x = d->priv;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct fw_err le = { 0 };
	int rc;

	if (!x)
		return fw_err_set(e, FW_ESTATE, "esp: leave before connect");
	if (!run)
		return FW_OK;
	fw_err_clear(&le);
	rc = d->manual_entry ? FW_EUNSUPPORTED : transport_set_lines(d->t, 0, 1, &le);
	if (rc == FW_OK) {
		/* EN low with GPIO0 released: a plain reset into the app. */
		sleep_ms(HARD_RESET_MS);
		rc = transport_set_lines(d->t, 0, 0, e);
	} else if (rc == FW_EUNSUPPORTED && x->helper) {
		/* The helper cannot hand back to the ROM or start the app. */
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "the flashwise helper cannot start the application and there is "
				  "no reset line on %s: press RST on the board (or power-cycle it) "
				  "to start it", d->t->path);
	} else if (rc == FW_EUNSUPPORTED) {
		/* No reset line: ask the ROM to run the application. */
		if (!x->loader_known) {
			x->loader = profile_loader(d->p);
			x->loader_known = true;
		}
		rc = flash_begin(d, ESP_OP_FLASH_BEGIN, 0, 0, 0, x->opt.timeout_ms, e);
		if (rc == FW_OK) {
			esp_proto_req_flash_end(&r, ESP_PROTO_END_RUN_USER);
			fw_err_clear(&le);
			rc = command(d, &r, x->opt.timeout_ms, &resp, &le);
			/* The app may start before the reply leaves the chip:
			 * silence is expected, a refusal is not. */
			if (rc == FW_ETIMEOUT) {
				device_logf(d, "no reply to FLASH_END (the application may "
					"already be running)");
				rc = FW_OK;
			} else if (rc != FW_OK) {
				fw_err_copy(e, &le);
			}
		}
	} else {
		fw_err_copy(e, &le);
	}
	if (rc != FW_OK)
		return rc;
	x->identified = false;
	x->attached = x->params_set = false;
	/* The reset wiped the helper from RAM. */
	if (x->helper) {
		x->helper = false;
		x->loader = x->chip ? x->chip->rom : ESP_LOADER_ESP8266_ROM;
	}
	if (x->baud_changed) {
		/* the reset put the chip's UART back to its own rate */
		x->baud_changed = false;
		rc = transport_set_baud(d->t, x->base_baud, e);
	}
	return rc;
}

static void esp_close(struct device *d)
{
	struct esp_dev *x;

	if (!d || !d->priv)
		return;
	x = d->priv;
	strbuf_free(&x->wire);
	free(x);
	d->priv = NULL;
}

const struct device_ops dev_esp_ops = {
	.name = "esp-rom",
	.connect = esp_connect,
	.identify = esp_identify,
	.caps = esp_caps,
	.read = esp_read,
	.write = esp_write,
	.verify = esp_verify,
	.leave = esp_leave,
	.close = esp_close,
};
