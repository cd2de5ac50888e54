/* The ESP ROM driver against a scripted fake transport that plays the ROM
 * with esp_proto's simulator-side functions (request parse, response
 * build), keeps a flash array and records what the driver sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <zlib.h>

#include "dev_esp.h"
#include "dev_watch.h"
#include "devices.h"
#include "helper_blob.h"
#include "esp_proto.h"
#include "integrity.h"
#include "slip.h"
#include "strbuf.h"
#include "transport.h"

#define FLASH_SIZE (4u << 20)
#define MAX_REGS 32
#define MAX_LOG 64

static const uint8_t mac8266[6] = { 0x18, 0xFE, 0x34, 0xA1, 0xB2, 0xC3 };
static const uint8_t mac32[6] = { 0x24, 0x0A, 0xC4, 0x11, 0x22, 0x33 };

struct fake {
	enum esp_proto_loader loader;
	enum esp_proto_family family;
	uint8_t *flash;
	struct slip_decoder dec;
	uint8_t dbuf[ESP_PROTO_PACKET_MAX + 64];
	struct strbuf out;
	size_t out_off;
	struct { uint32_t addr, value; } reg[MAX_REGS];
	size_t nreg;
	uint32_t jedec;           /* W0 after RDID, manufacturer in byte 0 */

	/* behaviour */
	bool lines, tight;
	unsigned ignore_syncs;    /* SYNCs left unanswered */
	bool silent;
	const char *junk;         /* raw bytes before the first SYNC reply */
	size_t junk_len;
	bool junk_sent;
	bool foreign;             /* a foreign reply and noise before each reply */
	int bad_checksum_seq;     /* answer 0x07 once to this data block */
	bool bad_checksum_done;
	bool drop_data;           /* never answer data blocks */
	bool refuse_defl;         /* answer FLASH_DEFL_BEGIN like an unknown
	                           * command: 0x05 under a foreign opcode */
	uint8_t fail_begin_code;  /* answer FLASH_BEGIN with this error */
	uint8_t garble_op;        /* this many replies to garble_op lose a */
	unsigned garble_left;     /* byte on the line (wrong length) */
	int malformed_seq;        /* answer 0x05 once to this data block, as */
	bool malformed_done;      /* if a byte of it had been lost */
	int reset_seq;            /* the chip resets during this data block */
	bool reset_done;
	bool lost;                /* reset: silent until the lines reset it */
	bool write_open;          /* a FLASH_(DEFL_)BEGIN since the last reset */
	uint32_t bad_read_addr;   /* one READ_FLASH_SLOW of it returns a bent */
	bool bad_read_done;       /* byte in a well-formed reply */

	/* the RAM helper: MEM_END with this image's entry and segments
	 * starts it (the fake then answers in the stub dialect) */
	const struct dev_esp_helper *helper_blob;
	bool helper_no_greeting;  /* MEM_END answered, the ROM stays */
	bool helper_crash;        /* MEM_END: silent until a reset */
	bool helper_greet_first;  /* "FWHL" before MEM_END's reply */
	bool in_helper;
	unsigned helper_starts;
	struct { uint32_t addr, len, got; uint8_t *buf; } mem[4];
	uint32_t mem_bs;          /* MEM_BEGIN block size */
	size_t nmem;
	bool mem_mismatch;        /* MEM_DATA outside the announced segment */
	bool mem_done;            /* MEM_END seen: the next MEM_BEGIN starts
	                           * a new upload */
	/* READ_FLASH stream */
	bool rs_active;
	struct esp_proto_read_stream rs;
	uint32_t rs_addr;
	uint32_t max_unacked;     /* most bytes sent and not acknowledged */
	unsigned acks;
	uint32_t corrupt_at;      /* a data frame covering it carries a bent */
	unsigned corrupt_left;    /* byte, this many times */
	uint32_t short_at;        /* a data frame covering it loses a byte */
	unsigned short_left;
	bool stall_after_first;   /* stop streaming after the first packet */
	uint32_t old_baud;

	/* what the driver did */
	unsigned syncs;
	unsigned ops[256];
	struct { int dtr, rts; bool tight; } line_log[64];
	size_t nlines;
	struct esp_proto_begin begin[16];
	uint8_t begin_op[16];
	size_t nbegin;
	uint32_t seq_log[8192];
	size_t nseq;
	unsigned bad_checksums;   /* blocks whose checksum did not match */
	uint32_t flash_end_arg;
	uint32_t set_params_size;
	uint32_t new_baud;
	unsigned host_baud;

	/* write in progress */
	uint32_t wr_addr, wr_block, wr_len;
	bool z_active;
	z_stream z;
	uint32_t z_out;
};

/* ---- registers ---- */

static uint32_t reg_get(struct fake *f, uint32_t addr)
{
	size_t i;

	for (i = 0; i < f->nreg; i++)
		if (f->reg[i].addr == addr)
			return f->reg[i].value;
	return 0;
}

static void reg_set(struct fake *f, uint32_t addr, uint32_t value)
{
	size_t i;

	for (i = 0; i < f->nreg; i++)
		if (f->reg[i].addr == addr) {
			f->reg[i].value = value;
			return;
		}
	assert_true(f->nreg < MAX_REGS);
	f->reg[f->nreg].addr = addr;
	f->reg[f->nreg].value = value;
	f->nreg++;
}

static void spi_run(struct fake *f)
{
	const struct esp_proto_spi_regs *r = esp_proto_spi_regs(f->family);
	struct esp_proto_spi_cmd c;

	assert_int_equal(esp_proto_spi_decode(f->family, reg_get(f, r->user),
					      reg_get(f, r->user1), reg_get(f, r->user2),
					      r->miso_dlen ? reg_get(f, r->miso_dlen) : 0,
					      reg_get(f, r->addr), &c, NULL), FW_OK);
	if (c.cmd == 0x9F)
		reg_set(f, r->w0, f->jedec);
	reg_set(f, r->cmd, 0); /* the command finished */
}

/* ---- the ROM ---- */

static void reply(struct fake *f, struct esp_proto_resp *resp)
{
	if (f->garble_left && resp->op == f->garble_op) {
		struct strbuf tmp = STRBUF_INIT;

		/* the frame arrives one byte short: its size field lies */
		f->garble_left--;
		assert_int_equal(esp_proto_response_frame(resp, &tmp, NULL), FW_OK);
		strbuf_add(&f->out, tmp.s, 5);
		strbuf_add(&f->out, tmp.s + 6, tmp.len - 6);
		strbuf_free(&tmp);
		return;
	}
	if (f->foreign) {
		/* a surplus SYNC reply, then noise whose stray 0xC0 swallows
		 * the real reply's opening delimiter */
		struct esp_proto_resp other;
		static const uint8_t noise[] = { 0x55, 0xC0, 0x12, 0x34 };

		esp_proto_response_init(&other, ESP_OP_SYNC, f->loader);
		other.value = ESP_PROTO_SYNC_VALUE;
		assert_int_equal(esp_proto_response_frame(&other, &f->out, NULL), FW_OK);
		strbuf_add(&f->out, noise, sizeof noise);
	}
	assert_int_equal(esp_proto_response_frame(resp, &f->out, NULL), FW_OK);
}

static void program(struct fake *f, uint32_t addr, const uint8_t *data, size_t n)
{
	size_t i;

	for (i = 0; i < n && addr + i < FLASH_SIZE; i++)
		f->flash[addr + i] &= data[i]; /* NOR: programming only clears bits */
}

static void erase(struct fake *f, uint32_t first_sector, uint32_t count)
{
	uint64_t a = (uint64_t)first_sector * ESP_PROTO_SECTOR;
	uint64_t end = a + (uint64_t)count * ESP_PROTO_SECTOR;

	if (end > FLASH_SIZE)
		end = FLASH_SIZE;
	if (a < end)
		memset(f->flash + a, 0xFF, (size_t)(end - a));
}

/* MEM_END(execute, entry) after exactly the helper's segments. */
static bool helper_recognised(struct fake *f, uint32_t no_exec, uint32_t entry)
{
	const struct dev_esp_helper *h = f->helper_blob;
	size_t i;

	if (!h || no_exec || entry != h->entry || f->nmem != h->nseg || f->mem_mismatch)
		return false;
	for (i = 0; i < h->nseg; i++)
		if (f->mem[i].addr != h->seg[i].addr || f->mem[i].len != h->seg[i].len ||
		    f->mem[i].got != h->seg[i].len ||
		    memcmp(f->mem[i].buf, h->seg[i].data, h->seg[i].len) != 0)
			return false;
	return true;
}

/* Sends what the READ_FLASH window allows; the MD5 trailer once all data
 * is acknowledged. */
static void stream_pump(struct fake *f)
{
	uint8_t buf[0x4000 + 16];
	uint32_t n;

	while (f->rs_active && (n = esp_proto_read_stream_next(&f->rs)) > 0) {
		uint32_t a = f->rs_addr + f->rs.sent;
		size_t len = n;

		if (f->stall_after_first && f->rs.sent > 0)
			return;
		assert_true(n <= sizeof buf);
		memcpy(buf, f->flash + a, n);
		if (f->corrupt_left && f->corrupt_at >= a && f->corrupt_at < a + n) {
			f->corrupt_left--;
			buf[f->corrupt_at - a] ^= 0x20;
		}
		if (f->short_left && f->short_at >= a && f->short_at < a + n) {
			f->short_left--;
			len--;
		}
		slip_append_frame(&f->out, buf, len);
		esp_proto_read_stream_sent(&f->rs, n);
		if (f->rs.sent - f->rs.acked > f->max_unacked)
			f->max_unacked = f->rs.sent - f->rs.acked;
	}
	if (f->rs_active && f->rs.acked == f->rs.length) {
		uint8_t md5[16];

		assert_int_equal(integrity_md5(f->flash + f->rs_addr, f->rs.length, md5), FW_OK);
		slip_append_frame(&f->out, md5, 16);
		f->rs_active = false;
	}
}

static void handle(struct fake *f, const uint8_t *pkt, size_t n)
{
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_begin b;
	struct esp_proto_data dt;
	struct esp_proto_reg_write w[ESP_PROTO_WRITE_REG_MAX];
	uint8_t result[64];
	uint8_t md5[16];
	uint32_t w0 = 0, w1 = 0;
	size_t nw, i;
	int rc;

	if (esp_proto_request_parse(pkt, n, &r, NULL) != FW_OK)
		return;
	f->ops[r.op]++;
	if (f->silent || f->lost)
		return;
	esp_proto_response_init(&resp, r.op, f->loader);
	if (!esp_proto_supports(f->loader, r.op)) {
		/* what ROMs send for an unknown command: an error reply */
		esp_proto_response_fail(&resp, f->loader, 0x05);
		reply(f, &resp);
		return;
	}
	if (f->refuse_defl && r.op == ESP_OP_FLASH_DEFL_BEGIN) {
		esp_proto_response_init(&resp, 0x00, f->loader);
		esp_proto_response_fail(&resp, f->loader, 0x05);
		reply(f, &resp);
		return;
	}
	if (f->fail_begin_code && r.op == ESP_OP_FLASH_BEGIN) {
		esp_proto_response_fail(&resp, f->loader, f->fail_begin_code);
		reply(f, &resp);
		return;
	}
	switch (r.op) {
	case ESP_OP_SYNC:
		f->syncs++;
		if (f->in_helper) {
			/* a stub answers once, with value 0 */
			reply(f, &resp);
			return;
		}
		if (f->syncs <= f->ignore_syncs)
			return;
		if (f->junk && !f->junk_sent) {
			strbuf_add(&f->out, f->junk, f->junk_len);
			f->junk_sent = true;
		}
		resp.value = ESP_PROTO_SYNC_VALUE;
		for (i = 0; i < 8; i++)
			assert_int_equal(esp_proto_response_frame(&resp, &f->out, NULL), FW_OK);
		return;
	case ESP_OP_READ_REG:
		assert_int_equal(esp_proto_request_word(&r, 0, &w0, NULL), FW_OK);
		resp.value = reg_get(f, w0);
		break;
	case ESP_OP_WRITE_REG:
		assert_int_equal(esp_proto_parse_write_reg(&r, w, ESP_PROTO_WRITE_REG_MAX, &nw,
							   NULL), FW_OK);
		for (i = 0; i < nw; i++) {
			reg_set(f, w[i].addr, w[i].value);
			if (w[i].addr == esp_proto_spi_regs(f->family)->cmd &&
			    (w[i].value & ESP_SPI_CMD_USR))
				spi_run(f);
		}
		break;
	case ESP_OP_FLASH_BEGIN:
	case ESP_OP_FLASH_DEFL_BEGIN:
		assert_int_equal(esp_proto_parse_begin(&r, &b, NULL), FW_OK);
		assert_true(f->nbegin < 16);
		f->begin[f->nbegin] = b;
		f->begin_op[f->nbegin++] = r.op;
		if (b.size) {
			if (f->loader == ESP_LOADER_ESP8266_ROM) {
				struct esp_proto_sectors s;

				esp_proto_rom_erased(b.offset, b.size, &s);
				erase(f, s.first, s.count);
			} else {
				erase(f, b.offset / ESP_PROTO_SECTOR,
				      esp_proto_blocks(b.offset % ESP_PROTO_SECTOR + b.size,
						       ESP_PROTO_SECTOR));
			}
		}
		f->write_open = true;
		f->wr_addr = b.offset;
		f->wr_block = b.block_size;
		f->wr_len = b.size;
		if (f->z_active)
			inflateEnd(&f->z);
		f->z_active = false;
		if (r.op == ESP_OP_FLASH_DEFL_BEGIN) {
			memset(&f->z, 0, sizeof f->z);
			assert_int_equal(inflateInit(&f->z), Z_OK);
			f->z_active = true;
			f->z_out = 0;
		}
		break;
	case ESP_OP_FLASH_DATA:
	case ESP_OP_FLASH_DEFL_DATA:
		rc = esp_proto_parse_data(&r, &dt, NULL);
		if (rc == FW_EINTEGRITY) {
			f->bad_checksums++;
			esp_proto_response_fail(&resp, f->loader, 0x07);
			break;
		}
		assert_int_equal(rc, FW_OK);
		assert_true(f->nseq < 8192);
		f->seq_log[f->nseq++] = dt.seq;
		if (f->drop_data)
			return;
		if (!f->write_open) {
			/* the ROM knows of no write: "operation failed" */
			esp_proto_response_fail(&resp, f->loader, 0x06);
			break;
		}
		if ((int)dt.seq == f->malformed_seq && !f->malformed_done) {
			f->malformed_done = true;
			esp_proto_response_fail(&resp, f->loader, 0x05);
			break;
		}
		if ((int)dt.seq == f->reset_seq && !f->reset_done) {
			/* half the block reaches the flash, then the chip
			 * reboots: no reply, and the write is forgotten */
			f->reset_done = true;
			if (r.op == ESP_OP_FLASH_DATA)
				program(f, f->wr_addr + dt.seq * f->wr_block, dt.data, dt.len / 2);
			f->lost = true;
			f->write_open = false;
			if (f->z_active)
				inflateEnd(&f->z);
			f->z_active = false;
			return;
		}
		if ((int)dt.seq == f->bad_checksum_seq && !f->bad_checksum_done) {
			/* as if a byte had been corrupted on the line */
			f->bad_checksum_done = true;
			esp_proto_response_fail(&resp, f->loader, 0x07);
			break;
		}
		if (r.op == ESP_OP_FLASH_DATA) {
			program(f, f->wr_addr + dt.seq * f->wr_block, dt.data, dt.len);
		} else {
			uint8_t outbuf[4096];

			f->z.next_in = (Bytef *)dt.data;
			f->z.avail_in = dt.len;
			do {
				f->z.next_out = outbuf;
				f->z.avail_out = sizeof outbuf;
				rc = inflate(&f->z, Z_NO_FLUSH);
				assert_true(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
				program(f, f->wr_addr + f->z_out, outbuf,
					sizeof outbuf - f->z.avail_out);
				f->z_out += (uint32_t)(sizeof outbuf - f->z.avail_out);
			} while (f->z.avail_in > 0 && rc != Z_STREAM_END);
		}
		break;
	case ESP_OP_FLASH_END:
		assert_int_equal(esp_proto_request_word(&r, 0, &f->flash_end_arg, NULL), FW_OK);
		break;
	case ESP_OP_SPI_SET_PARAMS:
		assert_int_equal(esp_proto_request_word(&r, 1, &f->set_params_size, NULL),
				 FW_OK);
		break;
	case ESP_OP_CHANGE_BAUDRATE:
		assert_int_equal(esp_proto_request_word(&r, 0, &f->new_baud, NULL), FW_OK);
		assert_int_equal(esp_proto_request_word(&r, 1, &f->old_baud, NULL), FW_OK);
		break;
	case ESP_OP_MEM_BEGIN:
		assert_int_equal(esp_proto_parse_begin(&r, &b, NULL), FW_OK);
		if (f->mem_done) {
			while (f->nmem > 0)
				free(f->mem[--f->nmem].buf);
			f->mem_mismatch = false;
			f->mem_done = false;
		}
		assert_true(f->nmem < 4);
		f->mem_bs = b.block_size;
		f->mem[f->nmem].addr = b.offset;
		f->mem[f->nmem].len = b.size;
		f->mem[f->nmem].got = 0;
		f->mem[f->nmem].buf = calloc(1, b.size ? b.size : 1);
		assert_non_null(f->mem[f->nmem].buf);
		f->nmem++;
		break;
	case ESP_OP_MEM_DATA:
		rc = esp_proto_parse_data(&r, &dt, NULL);
		if (rc == FW_EINTEGRITY) {
			esp_proto_response_fail(&resp, f->loader, 0x07);
			break;
		}
		assert_int_equal(rc, FW_OK);
		assert_true(f->nmem > 0);
		{
			uint32_t off = dt.seq * f->mem_bs;
			size_t k = f->nmem - 1;

			if ((uint64_t)off + dt.len > f->mem[k].len) {
				f->mem_mismatch = true;
			} else {
				memcpy(f->mem[k].buf + off, dt.data, dt.len);
				f->mem[k].got += dt.len;
			}
		}
		break;
	case ESP_OP_MEM_END:
		assert_int_equal(esp_proto_request_word(&r, 0, &w0, NULL), FW_OK);
		assert_int_equal(esp_proto_request_word(&r, 1, &w1, NULL), FW_OK);
		f->mem_done = true;
		if (f->helper_crash) {
			f->lost = true; /* the code ran off into the weeds */
			return;
		}
		if (!f->helper_no_greeting && helper_recognised(f, w0, w1)) {
			static const uint8_t hello[4] = { 'F', 'W', 'H', 'L' };

			if (f->helper_greet_first)
				slip_append_frame(&f->out, hello, 4);
			else
				reply(f, &resp);
			if (f->helper_greet_first)
				reply(f, &resp);
			else
				slip_append_frame(&f->out, hello, 4);
			f->in_helper = true;
			f->helper_starts++;
			f->loader = ESP_LOADER_STUB;
			return;
		}
		break;
	case ESP_OP_READ_FLASH:
		assert_int_equal(esp_proto_request_word(&r, 0, &w0, NULL), FW_OK);
		assert_int_equal(esp_proto_request_word(&r, 1, &w1, NULL), FW_OK);
		{
			uint32_t pk = 0, inflight = 0;

			assert_int_equal(esp_proto_request_word(&r, 2, &pk, NULL), FW_OK);
			assert_int_equal(esp_proto_request_word(&r, 3, &inflight, NULL), FW_OK);
			assert_true((uint64_t)w0 + w1 <= FLASH_SIZE);
			assert_int_equal(esp_proto_read_stream_init(&f->rs, w1, pk, inflight, NULL),
					 FW_OK);
		}
		f->rs_addr = w0;
		f->rs_active = true;
		reply(f, &resp);
		stream_pump(f);
		return;
	case ESP_OP_SPI_FLASH_MD5:
		assert_int_equal(esp_proto_request_word(&r, 0, &w0, NULL), FW_OK);
		assert_int_equal(esp_proto_request_word(&r, 1, &w1, NULL), FW_OK);
		assert_true((uint64_t)w0 + w1 <= FLASH_SIZE);
		assert_int_equal(integrity_md5(f->flash + w0, w1, md5), FW_OK);
		resp.result = result;
		resp.result_len = esp_proto_md5_encode(f->loader, md5, result);
		break;
	case ESP_OP_READ_FLASH_SLOW:
		assert_int_equal(esp_proto_request_word(&r, 0, &w0, NULL), FW_OK);
		assert_true(w0 + 64 <= FLASH_SIZE);
		memcpy(result, f->flash + w0, 64);
		if (w0 == f->bad_read_addr && !f->bad_read_done) {
			f->bad_read_done = true;
			result[10] ^= 0x10;
		}
		resp.result = result;
		resp.result_len = 64;
		break;
	default:
		break;
	}
	reply(f, &resp);
}

/* ---- the transport ops ---- */

static int fake_read(struct transport *t, void *buf, size_t n, size_t *got,
		     uint64_t deadline_ns, struct fw_err *e)
{
	struct fake *f = t->priv;
	size_t avail = f->out.len - f->out_off;

	(void)e;
	if (avail == 0) {
		/* nothing to say: wait out the deadline like a silent port */
		uint64_t now = transport_now_ns();

		if (deadline_ns > now) {
			struct timespec ts = { (time_t)((deadline_ns - now) / 1000000000u),
					       (long)((deadline_ns - now) % 1000000000u) };
			nanosleep(&ts, NULL);
		}
		*got = 0;
		return FW_OK;
	}
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

static int fake_write(struct transport *t, const void *buf, size_t n, size_t *done,
		      uint64_t deadline_ns, struct fw_err *e)
{
	struct fake *f = t->priv;
	const uint8_t *p = buf;
	size_t off = 0;

	(void)deadline_ns;
	(void)e;
	while (off < n) {
		struct slip_event ev;

		off += slip_decoder_feed(&f->dec, p + off, n - off, &ev);
		if (ev.kind != SLIP_EV_FRAME)
			continue;
		if (f->rs_active && ev.len == 4) {
			assert_int_equal(esp_proto_read_stream_ack(&f->rs, ev.frame, 4, NULL),
					 FW_OK);
			f->acks++;
			stream_pump(f);
			continue;
		}
		/* a command while a stream is open ends it (the fake's rule) */
		f->rs_active = false;
		handle(f, ev.frame, ev.len);
	}
	*done = n;
	return FW_OK;
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

static int fake_drain(struct transport *t, uint64_t deadline_ns, struct fw_err *e)
{
	(void)t;
	(void)deadline_ns;
	(void)e;
	return FW_OK;
}

static int fake_set_baud(struct transport *t, unsigned baud, unsigned *actual,
			 struct fw_err *e)
{
	struct fake *f = t->priv;

	(void)e;
	f->host_baud = baud;
	*actual = baud;
	return FW_OK;
}

static void log_line(struct fake *f, int dtr, int rts, bool tight)
{
	if (f->nlines < 64) {
		f->line_log[f->nlines].dtr = dtr;
		f->line_log[f->nlines].rts = rts;
		f->line_log[f->nlines].tight = tight;
		f->nlines++;
	}
}

/* EN pulled low: the chip restarts (into the loader: the fake does not
 * model the boot straps) and forgets the write. */
static void lines_changed(struct fake *f, int rts)
{
	if (rts == 1) {
		f->lost = false;
		f->write_open = false;
		/* RAM is gone: the ROM answers again */
		if (f->in_helper) {
			f->in_helper = false;
			f->loader = ESP_LOADER_ESP8266_ROM;
		}
		f->rs_active = false;
		while (f->nmem > 0)
			free(f->mem[--f->nmem].buf);
		f->mem_mismatch = false;
	}
}

static int fake_set_lines(struct transport *t, int dtr, int rts, struct fw_err *e)
{
	struct fake *f = t->priv;

	(void)e;
	log_line(f, dtr, rts, false);
	lines_changed(f, rts);
	return FW_OK;
}

static int fake_set_lines_tight(struct transport *t, int dtr, int rts, struct fw_err *e)
{
	struct fake *f = t->priv;

	(void)e;
	log_line(f, dtr, rts, true);
	lines_changed(f, rts);
	return FW_OK;
}

static unsigned fake_caps(const struct transport *t)
{
	const struct fake *f = t->priv;

	return (f->lines ? TRANSPORT_CAP_MODEM_LINES : 0) |
	       (f->lines && f->tight ? TRANSPORT_CAP_TIGHT_LINES : 0);
}

static void fake_close(struct transport *t)
{
	(void)t;
}

static const struct transport_ops fake_ops = {
	.name = "fake-rom",
	.close = fake_close,
	.set_baud = fake_set_baud,
	.read = fake_read,
	.write = fake_write,
	.flush = fake_flush,
	.drain = fake_drain,
	.set_lines = fake_set_lines,
	.set_lines_tight = fake_set_lines_tight,
	.caps = fake_caps,
};

/* ---- a rig: fake ROM + transport + profile + device ---- */

struct rig {
	struct fake f;
	struct transport *t;
	struct profile p;
	struct device d;
	struct dev_watch w;       /* the driver's log and progress */
	struct dev_esp_helper real; /* the built-in helper (helper_blob.h) */
};

static struct rig *rig_new(enum esp_proto_loader l)
{
	struct rig *r = calloc(1, sizeof *r);
	struct fake *f;
	struct dev_esp_options o;
	struct esp_proto_esp8266_otp otp = { { 0, 0, 0, 0 } };
	size_t i;

	assert_non_null(r);
	f = &r->f;
	f->loader = l;
	f->family = l == ESP_LOADER_ESP8266_ROM ? ESP_FAMILY_ESP8266 : ESP_FAMILY_ESP32;
	f->flash = malloc(FLASH_SIZE);
	assert_non_null(f->flash);
	/* the chip holds old contents everywhere */
	for (i = 0; i < FLASH_SIZE; i++)
		f->flash[i] = (uint8_t)(i * 7 + 3);
	slip_decoder_init(&f->dec, f->dbuf, sizeof f->dbuf);
	f->lines = true;
	f->bad_checksum_seq = -1;
	f->malformed_seq = -1;
	f->reset_seq = -1;
	f->bad_read_addr = 0xFFFFFFFFu;
	f->jedec = 0x1640EF; /* ef 40 16: Winbond 4 MB */
	if (l == ESP_LOADER_ESP8266_ROM) {
		const struct esp_proto_spi_regs *s = esp_proto_spi_regs(ESP_FAMILY_ESP8266);

		reg_set(f, ESP_PROTO_CHIP_MAGIC_ADDR, 0xFFF0C101u);
		esp_proto_esp8266_otp_set_mac(&otp, mac8266);
		reg_set(f, ESP_PROTO_ESP8266_OTP_MAC0, otp.w[0]);
		reg_set(f, ESP_PROTO_ESP8266_OTP_MAC1, otp.w[1]);
		reg_set(f, ESP_PROTO_ESP8266_OTP_MAC2, otp.w[2]);
		reg_set(f, ESP_PROTO_ESP8266_OTP_MAC3, otp.w[3]);
		reg_set(f, ESP_PROTO_ESP8266_UART_CLKDIV, 0x1C4);
		reg_set(f, s->user, 0x80000064u);
		reg_set(f, s->user2, 0x70000003u);
	} else {
		const struct esp_proto_spi_regs *s = esp_proto_spi_regs(ESP_FAMILY_ESP32);

		reg_set(f, ESP_PROTO_CHIP_MAGIC_ADDR, 0x00F01D83u);
		reg_set(f, ESP_PROTO_ESP32_EFUSE_MAC_W1, 0xC4112233u);
		reg_set(f, ESP_PROTO_ESP32_EFUSE_MAC_W2, 0x5A5A240Au);
		reg_set(f, ESP_PROTO_ESP32_UART_CLKDIV, 347);
		reg_set(f, s->user, 0x80000064u);
		reg_set(f, s->user2, 0x70000003u);
	}
	assert_int_equal(transport_wrap(&fake_ops, f, "/dev/fake0", 115200, &r->t, NULL),
			 FW_OK);

	strcpy(r->p.id, l == ESP_LOADER_ESP8266_ROM ? "nodemcu-v1" : "esp32-devkitc");
	strcpy(r->p.chip, l == ESP_LOADER_ESP8266_ROM ? "esp8266" : "esp32");
	r->p.family = l == ESP_LOADER_ESP8266_ROM ? PROFILE_FAMILY_ESP8266
						  : PROFILE_FAMILY_ESP32;
	r->p.protocol = PROFILE_PROTO_ESP_ROM;
	r->p.flash_size = FLASH_SIZE;
	r->p.rom_baud = 115200;
	r->p.flash_baud = l == ESP_LOADER_ESP8266_ROM ? 115200 : 460800;
	r->p.reset = PROFILE_RESET_AUTO;
	strcpy(r->p.manual_instructions, "hold FLASH, press RST, release FLASH");
	r->p.has_chip_magic = true;
	r->p.chip_magic = l == ESP_LOADER_ESP8266_ROM ? 0xFFF0C101u : 0x00F01D83u;

	r->d.ops = &dev_esp_ops;
	r->d.t = r->t;
	r->d.p = &r->p;
	dev_watch_attach(&r->w, &r->d);
	dev_esp_options_default(&o);
	o.timeout_ms = 200;
	o.manual_wait_ms = 600;
	assert_int_equal(dev_esp_set_options(&r->d, &o, NULL), FW_OK);
	return r;
}

static void rig_free(struct rig *r)
{
	r->d.ops->close(&r->d);
	assert_null(r->d.priv);
	transport_close(r->t);
	if (r->f.z_active)
		inflateEnd(&r->f.z);
	strbuf_free(&r->f.out);
	dev_watch_free(&r->w);
	while (r->f.nmem > 0)
		free(r->f.mem[--r->f.nmem].buf);
	free(r->f.flash);
	free(r);
}

static const char *logtext(struct rig *r)
{
	return strbuf_str(&r->w.log);
}

static void connect_identify(struct rig *r, struct device_identity *id)
{
	struct fw_err e = { 0 };

	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->d.ops->identify(&r->d, id, &e), FW_OK);
}

static uint64_t ms_since(uint64_t start)
{
	return (transport_now_ns() - start) / 1000000u;
}

/* ---- connect ---- */

static void test_connect_junk_and_surplus_sync(void **state)
{
	static const char junk[] = "ets Jan  8 2013,rst cause:2, boot mode:(1,6)\r\n"
				   "\xC0\x12\x34"; /* a stray 0xC0 inside the noise */
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	size_t i;
	bool reset_seen = false;

	(void)state;
	r->f.junk = junk;
	r->f.junk_len = sizeof junk - 1;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->f.syncs, 1);
	/* classic sequence: RTS on (EN low), then DTR on + RTS off */
	for (i = 0; i + 1 < r->f.nlines; i++)
		if (r->f.line_log[i].dtr == 0 && r->f.line_log[i].rts == 1 &&
		    r->f.line_log[i + 1].dtr == 1 && r->f.line_log[i + 1].rts == 0)
			reset_seen = true;
	assert_true(reset_seen);
	assert_true(r->f.junk_sent);
	/* the 7 surplus SYNC replies must not be taken as the next reply */
	r->f.foreign = true;
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	assert_int_equal(id.chip_magic, 0xFFF0C101u);
	assert_string_equal(id.chip, "esp8266");
	rig_free(r);
}

static void test_connect_tight_first(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct fw_err e = { 0 };

	(void)state;
	r->f.tight = true;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_true(r->f.nlines >= 4);
	assert_true(r->f.line_log[0].tight);
	assert_int_equal(r->f.line_log[2].dtr, 0); /* (DTR off, RTS on) = reset */
	assert_int_equal(r->f.line_log[2].rts, 1);
	assert_int_equal(r->f.line_log[3].dtr, 1);
	assert_int_equal(r->f.line_log[3].rts, 0);
	rig_free(r);
}

static void test_connect_retries_reset(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct fw_err e = { 0 };

	(void)state;
	/* the first reset attempt's 5 SYNCs go unanswered */
	r->f.ignore_syncs = 5;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(r->f.syncs, 6);
	assert_non_null(strstr(logtext(r), "after 2 reset attempts"));
	rig_free(r);
}

static void test_connect_manual_no_lines(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct fw_err e = { 0 };

	(void)state;
	r->f.lines = false;    /* a pty: set_lines is FW_EUNSUPPORTED */
	r->f.ignore_syncs = 2; /* the technician is still pressing buttons */
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_non_null(strstr(logtext(r),
			       "waiting for the bootloader: hold FLASH, press RST, release FLASH"));
	assert_int_equal(r->f.nlines, 0);
	rig_free(r);
}

static void test_connect_manual_timeout_bounded(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct fw_err e = { 0 };
	uint64_t start;

	(void)state;
	r->d.manual_entry = true;
	r->f.silent = true;
	start = transport_now_ns();
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_true(ms_since(start) < 2000);
	assert_non_null(strstr(e.msg, "hold FLASH"));
	assert_non_null(strstr(e.msg, "/dev/fake0"));
	assert_int_equal(r->f.nlines, 0); /* manual: the lines were left alone */
	assert_true(r->f.ops[ESP_OP_SYNC] >= 2);
	rig_free(r);
}

static void test_connect_auto_gives_up(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct dev_esp_options o;
	struct fw_err e = { 0 };

	(void)state;
	dev_esp_options_default(&o);
	o.timeout_ms = 200;
	o.connect_attempts = 2;
	assert_int_equal(dev_esp_set_options(&r->d, &o, NULL), FW_OK);
	r->f.silent = true;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_ETIMEOUT);
	assert_non_null(strstr(e.msg, "2 reset attempts"));
	assert_int_equal(r->f.ops[ESP_OP_SYNC], 10);
	rig_free(r);
}

/* ---- identify ---- */

static void test_identify_esp8266(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	const struct esp_proto_spi_regs *s = esp_proto_spi_regs(ESP_FAMILY_ESP8266);
	struct device_identity id;
	struct fw_err e = { 0 };

	(void)state;
	connect_identify(r, &id);
	assert_string_equal(id.chip, "esp8266");
	assert_string_equal(id.loader, "ESP8266 ROM");
	assert_true(id.has_chip_magic);
	assert_true(id.has_mac);
	assert_memory_equal(id.mac, mac8266, 6);
	assert_true(id.has_chip_id);
	assert_int_equal(id.chip_id, 0xA1B2C3u);
	assert_int_equal(id.flash_id, 0xEF4016u);
	assert_int_equal(id.flash_size, 4u << 20);
	assert_int_equal(id.crystal_mhz, 26);
	/* attached with FLASH_BEGIN(0, 0, 0x400, 0), nothing erased */
	assert_int_equal(r->f.nbegin, 1);
	assert_int_equal(r->f.begin[0].size, 0);
	assert_int_equal(r->f.begin[0].offset, 0);
	assert_int_equal(r->f.begin[0].block_size, 0x400);
	/* USER and USER2 restored */
	assert_int_equal(reg_get(&r->f, s->user), 0x80000064u);
	assert_int_equal(reg_get(&r->f, s->user2), 0x70000003u);
	assert_int_equal(device_match(&r->p, &id, &e), FW_OK);
	rig_free(r);
}

static void test_identify_esp32(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };

	(void)state;
	connect_identify(r, &id);
	assert_string_equal(id.chip, "esp32");
	assert_string_equal(id.loader, "ESP32 ROM");
	assert_true(id.has_mac);
	assert_memory_equal(id.mac, mac32, 6);
	assert_int_equal(id.flash_size, 4u << 20);
	assert_int_equal(id.crystal_mhz, 40);
	assert_int_equal(r->f.ops[ESP_OP_SPI_ATTACH], 1);
	assert_int_equal(device_match(&r->p, &id, &e), FW_OK);
	rig_free(r);
}

static void test_identify_dead_flash_and_wrong_chip(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t data[16] = { 0 };

	(void)state;
	r->f.jedec = 0xFFFFFF;
	connect_identify(r, &id);
	assert_int_equal(id.flash_size, 0);
	assert_non_null(strstr(logtext(r), "does not answer"));
	assert_int_equal(device_match(&r->p, &id, &e), FW_EMISMATCH);

	/* an ESP32 profile on this ESP8266: the driver refuses to write */
	r->p.family = PROFILE_FAMILY_ESP32;
	strcpy(r->p.chip, "esp32");
	assert_int_equal(image_from_bin(&img, data, sizeof data, 0x10000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EMISMATCH);
	assert_int_equal(r->f.nbegin, 1); /* only the attach */
	image_free(&img);
	rig_free(r);
}

static void test_not_identified_refuses(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t data[16] = { 0 };

	(void)state;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_equal(image_from_bin(&img, data, sizeof data, 0, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_ESTATE);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_BEGIN], 0);
	image_free(&img);
	rig_free(r);
}

/* ---- ESP8266 write ---- */

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 31 + seed) ^ (i >> 8));
	return p;
}

static void test_esp8266_write_small_image(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct device_caps caps;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t at = 0x3FC100, len = 1500;
	uint8_t *data = pattern(len, 1);
	uint8_t md5[16];
	size_t i;

	(void)state;
	connect_identify(r, &id);
	r->d.ops->caps(&r->d, &caps);
	assert_false(caps.can_read);
	assert_false(caps.can_hash);
	assert_false(caps.exact_erase);
	assert_false(caps.can_change_baud);
	assert_true(caps.can_reset);
	assert_non_null(strstr(caps.why_not, "cannot read or hash"));

	assert_int_equal(image_from_bin(&img, data, len, at, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* FLASH_BEGIN: sector-aligned start, compensated erase size */
	assert_int_equal(r->f.nbegin, 2);
	assert_int_equal(r->f.begin_op[1], ESP_OP_FLASH_BEGIN);
	assert_int_equal(r->f.begin[1].offset, 0x3FC000);
	assert_int_equal(r->f.begin[1].size, esp_proto_erase_size(0x3FC000, 0x100 + len));
	assert_int_equal(r->f.begin[1].size, 0x1000); /* 1 sector: ceil(1/2) */
	assert_int_equal(r->f.begin[1].block_size, 0x400);
	assert_int_equal(r->f.begin[1].blocks, 2);    /* 0x100 + 1500 = 1756 */
	assert_false(r->f.begin[1].encrypted_word);
	assert_int_equal(r->f.bad_checksums, 0);
	assert_int_equal(r->f.nseq, 2);
	assert_int_equal(r->f.seq_log[0], 0);
	assert_int_equal(r->f.seq_log[1], 1);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 0);
	/* flash: 0xFF before the data, the data, 0xFF padding after */
	for (i = 0x3FC000; i < at; i++)
		assert_int_equal(r->f.flash[i], 0xFF);
	assert_memory_equal(r->f.flash + at, data, len);
	for (i = at + len; i < 0x3FC800; i++)
		assert_int_equal(r->f.flash[i], 0xFF);
	/* the ROM's over-erase wiped the next sector: modelled and warned */
	assert_int_equal(r->f.flash[0x3FD000], 0xFF);
	assert_non_null(strstr(logtext(r), "WARNING"));
	assert_non_null(strstr(logtext(r), "0x3FC000-0x3FC0FF"));
	assert_non_null(strstr(logtext(r), "0x3FD000-0x3FDFFF"));
	/* progress went through erase and write, never backwards */
	assert_string_equal(r->w.last_phase, "write");
	assert_int_equal(r->w.last_done, r->w.last_total);
	assert_false(r->w.progress_backwards);

	/* the ESP8266 ROM cannot read back or hash: said, not skipped */
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "cannot verify"));
	assert_int_equal(r->d.ops->read(&r->d, 0, 16, md5, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "helper"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_esp8266_write_across_blocks(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x9000; /* 9 sectors at 0xC000: crosses 0x10000 */
	uint8_t *data = pattern(len, 5);

	(void)state;
	connect_identify(r, &id);
	assert_int_equal(image_from_bin(&img, data, len, 0xC000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* N=9, head=4: N - head = 5 sectors sent, the ROM erases 9 */
	assert_int_equal(r->f.begin[1].size, 5 * 0x1000);
	assert_int_equal(r->f.begin[1].blocks, 36);
	assert_memory_equal(r->f.flash + 0xC000, data, len);
	/* nothing outside was erased */
	assert_int_not_equal(r->f.flash[0xBFFF], 0xFF);
	assert_int_equal(r->f.flash[0x15000], (uint8_t)(0x15000 * 7 + 3));
	assert_null(strstr(logtext(r), "WARNING"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_esp8266_two_ranges_share_sector(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	struct dev_esp_warnings w;
	uint8_t *a = pattern(0x800, 7), *b = pattern(0x100, 9);
	size_t i;

	(void)state;
	connect_identify(r, &id);
	assert_int_equal(image_add(&img, 0x20000, a, 0x800, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x20C00, b, 0x100, NULL), FW_OK);
	assert_int_equal(dev_esp_erase_warnings(&r->p, 0, &img, &w, &e), FW_OK);
	assert_int_equal(w.n, 2); /* the gap and the over-erased next sector */
	assert_int_equal(w.w[0].addr, 0x20800);
	assert_int_equal(w.w[0].len, 0x400);
	assert_int_equal(w.w[1].addr, 0x21000);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* one FLASH_BEGIN for both: a second erase would wipe the first */
	assert_int_equal(r->f.nbegin, 2);
	assert_memory_equal(r->f.flash + 0x20000, a, 0x800);
	for (i = 0x20800; i < 0x20C00; i++)
		assert_int_equal(r->f.flash[i], 0xFF);
	assert_memory_equal(r->f.flash + 0x20C00, b, 0x100);
	image_free(&img);
	free(a);
	free(b);
	rig_free(r);
}

static void test_esp8266_over_erase_past_end_refused(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 3);

	(void)state;
	connect_identify(r, &id);
	/* 1 sector in the last one: the ROM would erase one past the end */
	assert_int_equal(image_from_bin(&img, data, 0x1000, FLASH_SIZE - 0x1000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EGUARD);
	assert_non_null(strstr(e.msg, "wrap"));
	assert_int_equal(r->f.nbegin, 1); /* nothing erased */
	image_free(&img);
	img = (struct image)IMAGE_INIT;
	assert_int_equal(image_from_bin(&img, data, 0x1000, FLASH_SIZE - 0x800, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "past the end"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_checksum_error_retried(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 11);

	(void)state;
	connect_identify(r, &id);
	r->f.bad_checksum_seq = 1;
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x10000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* block 1 went twice with the same sequence number */
	assert_int_equal(r->f.nseq, 5);
	assert_int_equal(r->f.seq_log[1], 1);
	assert_int_equal(r->f.seq_log[2], 1);
	assert_int_equal(r->f.seq_log[3], 2);
	assert_memory_equal(r->f.flash + 0x10000, data, 0x1000);
	assert_non_null(strstr(logtext(r), "resynchronising"));
	assert_non_null(strstr(logtext(r), "checksum"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_block_timeout_gives_up(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 13);
	uint64_t start;

	(void)state;
	connect_identify(r, &id);
	r->f.drop_data = true;
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x10000, NULL), FW_OK);
	start = transport_now_ns();
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_ETIMEOUT);
	assert_true(ms_since(start) < 3000);
	/* two silences end a try; the region is started 3 times, always
	 * with FLASH_BEGIN, and block 0 never gets an answer */
	assert_int_equal(r->f.nseq, 6);
	assert_int_equal(r->f.seq_log[5], 0);
	/* the attach, then 3 starts with an attach before each restart */
	assert_int_equal(r->f.ops[ESP_OP_FLASH_BEGIN], 1 + 3 + 2);
	assert_non_null(strstr(e.msg, "started 3 times"));
	assert_non_null(strstr(e.msg, "failed 2 times"));
	assert_non_null(strstr(e.msg, "0x10000"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_device_error_message(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 13);

	(void)state;
	connect_identify(r, &id);
	r->f.fail_begin_code = 0x06;
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x10000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "FLASH_BEGIN"));
	assert_non_null(strstr(e.msg, "0106"));
	assert_non_null(strstr(e.msg, "0x10000"));
	assert_int_equal(r->f.nseq, 0);
	image_free(&img);
	free(data);
	rig_free(r);
}

/* ---- ESP32 ---- */

static void test_esp32_write_compressed_and_verify(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct device_caps caps;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x5000 + 123;
	uint8_t *data = pattern(len, 17);

	(void)state;
	connect_identify(r, &id);
	r->d.ops->caps(&r->d, &caps);
	assert_true(caps.can_read && caps.can_hash && caps.exact_erase);
	assert_true(caps.can_change_baud && caps.compressed_write);
	assert_int_equal(image_from_bin(&img, data, len, 0x10000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.set_params_size, FLASH_SIZE);
	assert_int_equal(r->f.new_baud, 460800);
	assert_int_equal(r->f.host_baud, 460800);
	assert_int_equal(r->f.begin_op[0], ESP_OP_FLASH_DEFL_BEGIN);
	assert_int_equal(r->f.begin[0].size, 0x5400); /* rounded to blocks */
	assert_int_equal(r->f.begin[0].offset, 0x10000);
	assert_false(r->f.begin[0].encrypted_word);
	assert_true(r->f.ops[ESP_OP_FLASH_DEFL_DATA] >= 1);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_DATA], 0);
	assert_memory_equal(r->f.flash + 0x10000, data, len);
	/* exact erase: the byte after the last sector is untouched */
	assert_int_equal(r->f.flash[0x16000], (uint8_t)(0x16000 * 7 + 3));

	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_int_equal(vr.nmismatch, 0);
	assert_int_equal(vr.bytes_checked, len);
	assert_string_equal(vr.method, "md5 on chip");

	/* a flipped byte in the third sector is found and located */
	r->f.flash[0x12345] ^= 0x40;
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_EVERIFY);
	assert_int_equal(vr.nmismatch, 1);
	assert_int_equal(vr.mismatch[0].addr, 0x12000);
	assert_int_equal(vr.mismatch[0].len, 0x1000);
	assert_non_null(strstr(e.msg, "0x12000-0x12FFF"));

	/* leaving resets the chip, whose UART is back at the ROM's rate */
	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_OK);
	assert_int_equal(r->f.host_baud, 115200);
	assert_int_equal(r->t->baud, 115200);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_esp32_uncompressed_fallback_and_read(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x900;
	uint8_t *data = pattern(len, 19);
	uint8_t back[0x1000];

	(void)state;
	connect_identify(r, &id);
	r->f.refuse_defl = true;
	assert_int_equal(image_from_bin(&img, data, len, 0x8000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_non_null(strstr(logtext(r), "uncompressed"));
	assert_int_equal(r->f.begin_op[r->f.nbegin - 1], ESP_OP_FLASH_BEGIN);
	assert_int_equal(r->f.begin[r->f.nbegin - 1].size, len); /* exact */
	assert_memory_equal(r->f.flash + 0x8000, data, len);

	/* backup read: READ_FLASH_SLOW in 64-byte steps, checked by MD5 */
	assert_int_equal(r->d.ops->read(&r->d, 0x8000, 0x1000, back, &e), FW_OK);
	assert_memory_equal(back, data, len);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH_SLOW], 0x1000 / 64);
	assert_string_equal(r->w.last_phase, "read");
	assert_int_equal(r->d.ops->read(&r->d, FLASH_SIZE - 16, 32, back, &e), FW_EINVAL);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_esp32_skip_unchanged(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct dev_esp_options o;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x4000;
	uint8_t *data = pattern(len, 23);
	unsigned before;

	(void)state;
	connect_identify(r, &id);
	assert_int_equal(image_from_bin(&img, data, len, 0x20000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	dev_esp_options_default(&o);
	o.timeout_ms = 200;
	o.skip_unchanged = true;
	assert_int_equal(dev_esp_set_options(&r->d, &o, NULL), FW_OK);
	/* unchanged: nothing is erased or written again */
	before = (unsigned)r->f.nbegin;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.nbegin, before);
	/* one sector changed on the chip: only that one is rewritten */
	r->f.flash[0x22010] ^= 1;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.nbegin, before + 1);
	assert_int_equal(r->f.begin[before].offset, 0x22000);
	assert_memory_equal(r->f.flash + 0x20000, data, len);
	image_free(&img);
	free(data);
	rig_free(r);
}


/* ---- recovery ---- */

/* Bytes zlib cannot shrink, so a compressed write takes several blocks. */
static uint8_t *noise(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n);
	uint32_t v = seed | 1u;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		v ^= v << 13;
		v ^= v >> 17;
		v ^= v << 5;
		p[i] = (uint8_t)v;
	}
	return p;
}

static void test_garbled_reply_resent(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t back[0x100];

	(void)state;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	/* the first READ_REG reply (the chip magic) loses a byte */
	r->f.garble_op = ESP_OP_READ_REG;
	r->f.garble_left = 1;
	assert_int_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	assert_int_equal(id.chip_magic, 0x00F01D83u);
	assert_int_equal(r->f.garble_left, 0);
	assert_non_null(strstr(logtext(r), "announces"));
	assert_non_null(strstr(logtext(r), "try 2 of 3"));

	/* a damaged READ_FLASH_SLOW reply: asked again, the backup holds */
	r->f.garble_op = ESP_OP_READ_FLASH_SLOW;
	r->f.garble_left = 1;
	assert_int_equal(r->d.ops->read(&r->d, 0x8000, sizeof back, back, &e), FW_OK);
	assert_memory_equal(back, r->f.flash + 0x8000, sizeof back);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH_SLOW], sizeof back / 64 + 1);

	/* damaged every time: bounded, and said */
	r->f.garble_left = 100;
	assert_int_equal(r->d.ops->read(&r->d, 0x8000, 64, back, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "failed 3 times"));
	assert_non_null(strstr(e.msg, "0x8000"));
	rig_free(r);
}

static void test_malformed_block_resent(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 29);

	(void)state;
	connect_identify(r, &id);
	r->f.malformed_seq = 2;
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x30000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* block 2 answered 0x05 (a short frame): sent again, same number,
	 * without a second erase */
	assert_int_equal(r->f.nseq, 5);
	assert_int_equal(r->f.seq_log[2], 2);
	assert_int_equal(r->f.seq_log[3], 2);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_BEGIN], 2);
	assert_memory_equal(r->f.flash + 0x30000, data, 0x1000);
	assert_non_null(strstr(logtext(r), "0105"));
	assert_non_null(strstr(logtext(r), "resynchronising"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_reset_mid_write_recovered(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x2000;
	uint8_t *data = pattern(len, 31);
	size_t i, begins = 0, syncs;

	(void)state;
	connect_identify(r, &id);
	syncs = r->f.syncs;
	r->f.reset_seq = 3;
	assert_int_equal(image_from_bin(&img, data, len, 0x20000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	/* the loader was entered again (a reset, a SYNC, the magic) */
	assert_true(r->f.syncs > syncs);
	assert_non_null(strstr(logtext(r), "resetting the chip into the bootloader"));
	assert_non_null(strstr(logtext(r), "again from its start (try 2 of 3)"));
	/* and the region written again from FLASH_BEGIN with the same
	 * compensated erase: attach, begin, attach again, begin again */
	for (i = 0; i < r->f.nbegin; i++)
		if (r->f.begin[i].size) {
			assert_int_equal(r->f.begin[i].offset, 0x20000);
			assert_int_equal(r->f.begin[i].size,
					 esp_proto_erase_size(0x20000, len));
			begins++;
		}
	assert_int_equal(begins, 2);
	assert_int_equal(r->f.seq_log[r->f.nseq - 8], 0);
	assert_int_equal(r->f.seq_log[r->f.nseq - 1], 7);
	assert_memory_equal(r->f.flash + 0x20000, data, len);
	assert_false(r->w.progress_backwards);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_reset_mid_write_compressed(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x6000;
	uint8_t *data = noise(len, 41);

	(void)state;
	connect_identify(r, &id);
	r->f.reset_seq = 2;
	assert_int_equal(image_from_bin(&img, data, len, 0x40000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_DEFL_BEGIN], 2);
	/* after the reset: attach, flash size and baud rate again */
	assert_int_equal(r->f.ops[ESP_OP_SPI_ATTACH], 2);
	assert_int_equal(r->f.ops[ESP_OP_SPI_SET_PARAMS], 2);
	assert_int_equal(r->f.ops[ESP_OP_CHANGE_BAUDRATE], 2);
	assert_int_equal(r->f.host_baud, 460800);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_memory_equal(r->f.flash + 0x40000, data, len);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_compressed_garbled_reply_restarts(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x6000;
	uint8_t *data = noise(len, 43);

	(void)state;
	connect_identify(r, &id);
	/* the ROM took block 0 but its reply was damaged: sending block 0
	 * again would feed it to inflate twice, so the region starts over */
	r->f.garble_op = ESP_OP_FLASH_DEFL_DATA;
	r->f.garble_left = 1;
	assert_int_equal(image_from_bin(&img, data, len, 0x50000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_DEFL_BEGIN], 2);
	assert_int_equal(r->f.seq_log[0], 0);
	assert_int_equal(r->f.seq_log[1], 0); /* the new stream's first block */
	assert_null(strstr(logtext(r), "resetting")); /* the loader answered */
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_memory_equal(r->f.flash + 0x50000, data, len);

	/* a block the ROM plainly rejected (checksum) is resent in place */
	r->f.bad_checksum_seq = 1;
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_DEFL_BEGIN], 3);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_reset_mid_write_without_lines(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 37);
	uint64_t start;

	(void)state;
	r->f.lines = false;
	connect_identify(r, &id);
	r->f.reset_seq = 1;
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x10000, NULL), FW_OK);
	start = transport_now_ns();
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_ETIMEOUT);
	assert_true(ms_since(start) < 3000);
	assert_non_null(strstr(e.msg, "no DTR/RTS"));
	assert_non_null(strstr(e.msg, "0x10000"));
	assert_non_null(strstr(e.msg, "hold FLASH"));
	assert_int_equal(r->f.nlines, 0);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_backup_md5_mismatch_reread(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t *back = malloc(0x2000);

	(void)state;
	assert_non_null(back);
	connect_identify(r, &id);
	/* one byte bent inside a well-formed reply: only the MD5 sees it */
	r->f.bad_read_addr = 0x61040;
	assert_int_equal(r->d.ops->read(&r->d, 0x60000, 0x2000, back, &e), FW_OK);
	assert_memory_equal(back, r->f.flash + 0x60000, 0x2000);
	/* only the differing 256 bytes were read again */
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH_SLOW], 0x2000 / 64 + 256 / 64);
	assert_non_null(strstr(logtext(r), "reading the differing pieces again"));
	free(back);
	rig_free(r);
}

/* ---- leave, caps, table ---- */

static void test_leave_hard_and_soft(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct device_identity id;
	struct fw_err e = { 0 };
	size_t n;

	(void)state;
	connect_identify(r, &id);
	n = r->f.nlines;
	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_OK);
	assert_int_equal(r->f.nlines, n + 2);
	assert_int_equal(r->f.line_log[n].dtr, 0); /* GPIO0 released */
	assert_int_equal(r->f.line_log[n].rts, 1); /* EN low */
	assert_int_equal(r->f.line_log[n + 1].rts, 0);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 0);

	/* no lines: FLASH_BEGIN(0) + FLASH_END(run user code) */
	r->f.lines = false;
	connect_identify(r, &id);
	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_OK);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 1);
	assert_int_equal(r->f.flash_end_arg, ESP_PROTO_END_RUN_USER);
	assert_int_equal(r->f.begin[r->f.nbegin - 1].size, 0);
	rig_free(r);
}

static void test_caps_before_identify_and_table(void **state)
{
	struct rig *r = rig_new(ESP_LOADER_ESP32_ROM);
	struct device_caps caps;
	struct profile avr;

	(void)state;
	r->d.ops->caps(&r->d, &caps);
	assert_true(caps.can_read);
	r->d.manual_entry = true;
	r->d.ops->caps(&r->d, &caps);
	assert_false(caps.can_reset);
	assert_ptr_equal(device_ops_for(&r->p), &dev_esp_ops);
	memset(&avr, 0, sizeof avr);
	avr.protocol = PROFILE_PROTO_STK500V1;
	assert_ptr_not_equal(device_ops_for(&avr), &dev_esp_ops);
	assert_null(device_ops_for(NULL));
	assert_string_equal(dev_esp_ops.name, "esp-rom");
	rig_free(r);
}

/* ---- ESP8266 with flashwise's RAM helper ---- */

static uint8_t blob_text[0x1900]; /* two MEM_DATA blocks */
static uint8_t blob_data[100];

/* A made-up helper image (the upload of more than one MEM_DATA block per
 * segment); the fake recognises an image by its segments and entry, as the
 * simulator recognises the real one. */
static void test_blob(struct dev_esp_helper *h)
{
	size_t i;

	for (i = 0; i < sizeof blob_text; i++)
		blob_text[i] = (uint8_t)(i * 13 + 1);
	for (i = 0; i < sizeof blob_data; i++)
		blob_data[i] = (uint8_t)(0xC0 + i); /* SLIP specials on the wire */
	memset(h, 0, sizeof *h);
	h->seg[0].addr = 0x4010E000u;
	h->seg[0].data = blob_text;
	h->seg[0].len = sizeof blob_text;
	h->seg[1].addr = 0x3FFE8000u;
	h->seg[1].data = blob_data;
	h->seg[1].len = sizeof blob_data;
	h->nseg = 2;
	h->entry = 0x4010E004u;
	h->write_block = 0x1000;
	h->read_packet = 0x1000;
	h->read_inflight = 4;
	assert_int_equal(dev_esp_helper_sha256(h, h->sha256, NULL), FW_OK);
}

/* An ESP8266 rig whose profile allows the helper. blob NULL: the driver
 * uploads the built-in helper; else blob (which must outlive the rig). The
 * fake starts the helper only for the built-in image unless told. */
static struct rig *rig_helper(const struct dev_esp_helper *blob, unsigned baud)
{
	struct rig *r = rig_new(ESP_LOADER_ESP8266_ROM);
	struct dev_esp_options o;

	r->p.helper = true;
	assert_int_equal(dev_esp_helper_builtin(&r->real, NULL), FW_OK);
	r->f.helper_blob = &r->real;
	dev_esp_options_default(&o);
	o.timeout_ms = 200;
	o.manual_wait_ms = 600;
	o.helper_wait_ms = 300;
	o.helper_image = blob;
	o.helper_baud = baud;
	assert_int_equal(dev_esp_set_options(&r->d, &o, NULL), FW_OK);
	return r;
}

static void assert_helper_caps(struct rig *r)
{
	struct device_caps caps;

	r->d.ops->caps(&r->d, &caps);
	assert_true(caps.can_read);
	assert_true(caps.can_hash);
	assert_true(caps.exact_erase);
	assert_true(caps.can_change_baud);
	assert_false(caps.compressed_write);
	assert_string_equal(caps.why_not, "");
	assert_true(dev_esp_helper_running(&r->d));
}

static void assert_rom_caps(struct rig *r, const char *why)
{
	struct device_caps caps;

	r->d.ops->caps(&r->d, &caps);
	assert_false(caps.can_read);
	assert_false(caps.can_hash);
	assert_false(caps.exact_erase);
	assert_non_null(strstr(caps.why_not, "cannot read or hash"));
	if (!strstr(caps.why_not, why))
		fail_msg("why_not '%s' lacks '%s'", caps.why_not, why);
	assert_false(dev_esp_helper_running(&r->d));
}

static void test_helper_builtin_blob(void **state)
{
	struct dev_esp_helper h;
	uint8_t sha[32];
	size_t i;

	(void)state;
	/* the built-in image is helper_blob.h's, and its segments hash to the
	 * recorded value under the rule the header states */
	assert_int_equal(dev_esp_helper_builtin(&h, NULL), FW_OK);
	assert_int_equal(h.nseg, HELPER_BLOB_SEGMENTS);
	assert_int_equal(h.entry, HELPER_BLOB_ENTRY);
	for (i = 0; i < h.nseg; i++) {
		assert_int_equal(h.seg[i].addr, helper_blob_segments[i].addr);
		assert_int_equal(h.seg[i].len, helper_blob_segments[i].len);
		assert_memory_equal(h.seg[i].data, helper_blob_segments[i].data, h.seg[i].len);
	}
	assert_int_equal(dev_esp_helper_sha256(&h, sha, NULL), FW_OK);
	assert_memory_equal(sha, helper_blob_sha256, 32);
	assert_memory_equal(h.sha256, helper_blob_sha256, 32);
	assert_int_equal(h.write_block, 0x1000);
	assert_int_equal(h.read_packet, 0x1000);
	/* the hash covers the addresses too, not only the bytes */
	h.seg[1].addr += 4;
	assert_int_equal(dev_esp_helper_sha256(&h, sha, NULL), FW_OK);
	assert_memory_not_equal(sha, helper_blob_sha256, 32);
	h.nseg = 0;
	assert_int_equal(dev_esp_helper_sha256(&h, sha, NULL), FW_EINVAL);
}

static void test_helper_upload(void **state)
{
	struct dev_esp_helper blob;
	struct rig *r;
	struct device_identity id;
	unsigned blocks = 0;
	size_t i;

	(void)state;
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	assert_string_equal(id.chip, "esp8266");
	/* the real segments, in order, each with its MEM_DATA blocks */
	for (i = 0; i < r->real.nseg; i++)
		blocks += esp_proto_blocks(r->real.seg[i].len, r->f.mem_bs);
	assert_true(r->f.mem_bs >= 0x400 && r->f.mem_bs <= ESP_PROTO_MEM_BLOCK);
	assert_int_equal(r->f.ops[ESP_OP_MEM_BEGIN], r->real.nseg);
	assert_int_equal(r->f.ops[ESP_OP_MEM_DATA], blocks);
	assert_int_equal(r->f.ops[ESP_OP_MEM_END], 1);
	assert_int_equal(r->f.helper_starts, 1);
	for (i = 0; i < r->real.nseg; i++) {
		assert_int_equal(r->f.mem[i].addr, r->real.seg[i].addr);
		assert_int_equal(r->f.mem[i].len, r->real.seg[i].len);
		assert_memory_equal(r->f.mem[i].buf, r->real.seg[i].data, r->real.seg[i].len);
	}
	assert_non_null(strstr(logtext(r), "flashwise helper running"));
	assert_helper_caps(r);
	/* the profile's flash_baud equals the port's rate: no change */
	assert_int_equal(r->f.ops[ESP_OP_CHANGE_BAUDRATE], 0);
	rig_free(r);

	/* the greeting may arrive before MEM_END's reply */
	r = rig_helper(NULL, 0);
	r->f.helper_greet_first = true;
	connect_identify(r, &id);
	assert_helper_caps(r);
	rig_free(r);

	/* a segment larger than one MEM_DATA block goes in several */
	test_blob(&blob);
	r = rig_helper(&blob, 0);
	r->f.helper_blob = &blob;
	connect_identify(r, &id);
	assert_int_equal(r->f.ops[ESP_OP_MEM_DATA],
			 esp_proto_blocks(sizeof blob_text, r->f.mem_bs) + 1);
	assert_true(esp_proto_blocks(sizeof blob_text, r->f.mem_bs) >= 2);
	assert_memory_equal(r->f.mem[0].buf, blob_text, sizeof blob_text);
	assert_helper_caps(r);
	rig_free(r);
}

static void test_helper_sha_mismatch_refused(void **state)
{
	struct dev_esp_helper bad;
	struct rig *r;
	struct device_identity id;
	uint8_t *copy;

	(void)state;
	assert_int_equal(dev_esp_helper_builtin(&bad, NULL), FW_OK);
	bad.sha256[5] ^= 1; /* the recorded value no longer matches */
	r = rig_helper(&bad, 0);
	connect_identify(r, &id);
	assert_int_equal(r->f.ops[ESP_OP_MEM_BEGIN], 0); /* nothing uploaded */
	assert_int_equal(r->f.ops[ESP_OP_MEM_END], 0);
	assert_rom_caps(r, "SHA-256");
	assert_non_null(strstr(logtext(r), "could not start"));
	rig_free(r);

	/* one changed byte of the real code, with the real record */
	assert_int_equal(dev_esp_helper_builtin(&bad, NULL), FW_OK);
	copy = malloc(bad.seg[0].len);
	assert_non_null(copy);
	memcpy(copy, bad.seg[0].data, bad.seg[0].len);
	copy[100] ^= 0x40;
	bad.seg[0].data = copy;
	r = rig_helper(&bad, 0);
	connect_identify(r, &id);
	assert_int_equal(r->f.ops[ESP_OP_MEM_BEGIN], 0);
	assert_rom_caps(r, "could not start");
	rig_free(r);
	free(copy);
}

static void test_helper_no_greeting_rom_caps(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	uint8_t *data = pattern(0x1000, 3);
	uint64_t start;

	(void)state;
	r = rig_helper(NULL, 0);
	r->f.helper_no_greeting = true;
	start = transport_now_ns();
	connect_identify(r, &id);
	assert_true(ms_since(start) < 5000); /* bounded wait */
	assert_int_equal(r->f.ops[ESP_OP_MEM_END], 3); /* three uploads, then the ROM */
	assert_non_null(strstr(logtext(r), "loading it again (try 2 of 3)"));
	assert_rom_caps(r, "did not greet");
	assert_non_null(strstr(logtext(r), "cannot back up or verify"));
	/* the session goes on with the ROM: compensated erase, 0x400 blocks */
	assert_int_equal(image_from_bin(&img, data, 0x1000, 0x20000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.begin[r->f.nbegin - 1].block_size, 0x400);
	assert_int_equal(r->f.begin[r->f.nbegin - 1].size, esp_proto_erase_size(0x20000, 0x1000));
	assert_non_null(strstr(logtext(r), "also erases"));
	assert_memory_equal(r->f.flash + 0x20000, data, 0x1000);
	image_free(&img);
	rig_free(r);

	/* the uploaded code crashed: the driver resets back into the ROM */
	r = rig_helper(NULL, 0);
	r->f.helper_crash = true;
	connect_identify(r, &id);
	assert_rom_caps(r, "could not start");
	assert_false(r->f.lost); /* a reset brought the ROM back */
	r->f.lost = false;
	rig_free(r);

	/* ... and without reset lines the technician is asked to act */
	r = rig_helper(NULL, 0);
	r->f.helper_crash = true;
	r->f.lines = false;
	assert_int_equal(r->d.ops->connect(&r->d, &e), FW_OK);
	assert_int_not_equal(r->d.ops->identify(&r->d, &id, &e), FW_OK);
	assert_non_null(strstr(e.msg, "hold FLASH"));
	rig_free(r);
	free(data);
}

static void test_helper_profile_disabled(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t buf[16];

	(void)state;
	r = rig_helper(NULL, 0);
	r->p.helper = false;
	connect_identify(r, &id);
	assert_int_equal(r->f.ops[ESP_OP_MEM_BEGIN], 0);
	assert_int_equal(r->f.ops[ESP_OP_MEM_END], 0);
	assert_rom_caps(r, "helper = no");
	assert_int_equal(r->d.ops->read(&r->d, 0, sizeof buf, buf, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "helper = no"));
	rig_free(r);
}

static void test_helper_backup_4mb(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	uint8_t *out = malloc(FLASH_SIZE);

	(void)state;
	assert_non_null(out);
	r = rig_helper(NULL, 921600);
	connect_identify(r, &id);
	assert_int_equal(r->d.ops->read(&r->d, 0, FLASH_SIZE, out, &e), FW_OK);
	assert_memory_equal(out, r->f.flash, FLASH_SIZE);
	/* through the helper's stream, in 256 KB reads, never the ROM path */
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH], FLASH_SIZE / 0x40000);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH_SLOW], 0);
	/* every packet acknowledged, never more than 8 in flight */
	assert_int_equal(r->f.acks, FLASH_SIZE / 0x1000);
	assert_true(r->f.max_unacked <= 8 * 0x1000);
	assert_true(r->f.max_unacked > 0x1000); /* but more than one: a window */
	/* the faster rate: (new, old) to the helper, then the port follows */
	assert_int_equal(r->f.ops[ESP_OP_CHANGE_BAUDRATE], 1);
	assert_int_equal(r->f.new_baud, 921600);
	assert_int_equal(r->f.old_baud, 115200);
	assert_int_equal(r->f.host_baud, 921600);
	assert_string_equal(r->w.last_phase, "read");
	assert_int_equal(r->w.last_done, FLASH_SIZE);
	assert_false(r->w.progress_backwards);
	rig_free(r);
	free(out);
}

static void test_helper_read_damaged_reread(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	const uint32_t len = 0x10000;
	uint8_t *out = malloc(len);

	(void)state;
	assert_non_null(out);
	/* one bent byte: the MD5 trailer disagrees, the range is read again */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->f.corrupt_at = 0x31234;
	r->f.corrupt_left = 1;
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_OK);
	assert_memory_equal(out, r->f.flash + 0x30000, len);
	/* the on-chip MD5 of each quarter finds the damaged one: only its
	 * 16 KB cross the line again */
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH], 2);
	assert_int_equal(r->f.ops[ESP_OP_SPI_FLASH_MD5], 4);
	assert_non_null(strstr(logtext(r), "reading the damaged pieces again"));
	rig_free(r);

	/* a frame one byte short: the stream still ends, then a re-read */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->f.short_at = 0x32000;
	r->f.short_left = 1;
	memset(out, 0, len); /* no help from the last read's bytes */
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_OK);
	assert_memory_equal(out, r->f.flash + 0x30000, len);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH], 2);
	rig_free(r);

	/* damaged every time: narrowed to 1 KB, bounded, then a clear failure
	 * naming that kilobyte: 64K, 16K, 4K, 1K, then 1K five more times */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->f.corrupt_at = 0x30010;
	r->f.corrupt_left = 100;
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_EINTEGRITY);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH], 1 + 1 + 1 + 1 + 5);
	assert_non_null(strstr(e.msg, "0x30000-0x303FF"));
	assert_non_null(strstr(e.msg, "cable"));
	rig_free(r);

	/* two damaged places far apart: both found, both repaired */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->f.corrupt_at = 0x30500;
	r->f.corrupt_left = 2; /* the first read and the 16K re-read */
	r->f.short_at = 0x3E000;
	r->f.short_left = 1;
	memset(out, 0, len);
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_OK);
	assert_memory_equal(out, r->f.flash + 0x30000, len);
	rig_free(r);

	/* the helper stops sending: probed, found alive, read again */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->f.stall_after_first = true;
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_ETIMEOUT);
	assert_int_equal(r->f.ops[ESP_OP_READ_FLASH], 3); /* 1 + READ_REENTRIES */
	assert_non_null(strstr(e.msg, "stopped sending"));
	r->f.stall_after_first = false;
	assert_int_equal(r->d.ops->read(&r->d, 0x30000, len, out, &e), FW_OK);
	assert_memory_equal(out, r->f.flash + 0x30000, len);
	rig_free(r);
	free(out);
}

static void test_helper_write_exact_erase(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct device_verify_result vr;
	struct dev_esp_warnings w;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t at = 0x3FC100, len = 1500;
	uint8_t *data = pattern(len, 11);
	uint8_t before = 0;
	size_t i;

	(void)state;
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	before = r->f.flash[0x3FD000];
	assert_int_equal(image_from_bin(&img, data, len, at, NULL), FW_OK);
	/* the ROM's view warns of its overshoot; the helper's does not */
	assert_int_equal(dev_esp_erase_warnings(&r->p, 0, &img, &w, &e), FW_OK);
	assert_int_equal(w.n, 2);
	assert_int_equal(dev_esp_device_erase_warnings(&r->d, &img, &w, &e), FW_OK);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.w[0].addr, 0x3FC000);
	assert_non_null(strstr(w.w[0].text, "flashwise helper"));

	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.nbegin, 2);
	assert_int_equal(r->f.begin[1].offset, 0x3FC000);
	assert_int_equal(r->f.begin[1].size, 0x100 + len); /* exact, no compensation */
	assert_int_equal(r->f.begin[1].block_size, 0x1000);
	assert_int_equal(r->f.begin[1].blocks, 1);
	assert_int_equal(r->f.nseq, 1);
	for (i = 0x3FC000; i < at; i++)
		assert_int_equal(r->f.flash[i], 0xFF);
	assert_memory_equal(r->f.flash + at, data, len);
	assert_int_equal(r->f.flash[0x3FD000], before); /* nothing after it erased */
	assert_null(strstr(logtext(r), "also erases"));
	assert_non_null(strstr(logtext(r), "0x3FC000-0x3FC0FF"));
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 0);

	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	assert_int_equal(vr.bytes_checked, len);
	assert_non_null(strstr(vr.method, "helper"));
	assert_true(r->f.ops[ESP_OP_SPI_FLASH_MD5] >= 1);
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_helper_verify_mismatch_narrowed(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct device_verify_result vr;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x3000;
	uint8_t *data = pattern(len, 21);

	(void)state;
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	assert_int_equal(image_from_bin(&img, data, len, 0x10000, NULL), FW_OK);
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_OK);
	/* one byte changes on the chip after writing */
	r->f.flash[0x11234] ^= 0x01;
	assert_int_equal(r->d.ops->verify(&r->d, &img, &vr, &e), FW_EVERIFY);
	assert_int_equal(vr.nmismatch, 1);
	assert_int_equal(vr.mismatch[0].addr, 0x11000);
	assert_int_equal(vr.mismatch[0].len, 0x1000);
	assert_non_null(strstr(e.msg, "0x11000-0x11FFF"));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_helper_reset_reupload(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	struct image img = IMAGE_INIT;
	const uint32_t len = 0x8000;
	uint8_t *data = pattern(len, 31);

	(void)state;
	r = rig_helper(NULL, 460800);
	connect_identify(r, &id);
	assert_int_equal(image_from_bin(&img, data, len, 0x40000, NULL), FW_OK);
	r->f.reset_seq = 3; /* the chip resets during block 4 */
	assert_int_equal(r->d.ops->write(&r->d, &img, &e), FW_OK);
	assert_int_equal(r->f.helper_starts, 2);
	assert_int_equal(r->f.ops[ESP_OP_MEM_END], 2);
	assert_non_null(strstr(logtext(r), "flashwise helper running again"));
	/* the rate was set again after the reset */
	assert_int_equal(r->f.ops[ESP_OP_CHANGE_BAUDRATE], 2);
	assert_int_equal(r->f.host_baud, 460800);
	assert_memory_equal(r->f.flash + 0x40000, data, len);
	assert_true(dev_esp_helper_running(&r->d));
	image_free(&img);
	free(data);
	rig_free(r);
}

static void test_helper_leave(void **state)
{
	struct rig *r;
	struct device_identity id;
	struct fw_err e = { 0 };
	size_t n0;

	(void)state;
	r = rig_helper(NULL, 921600);
	connect_identify(r, &id);
	n0 = r->f.nlines;
	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_OK);
	/* a hard reset via RTS: the helper cannot hand back to the ROM */
	assert_true(r->f.nlines > n0);
	assert_int_equal(r->f.line_log[n0].rts, 1);
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 0);
	assert_false(dev_esp_helper_running(&r->d));
	rig_free(r);

	/* manual entry: nothing to reset with, the technician is told */
	r = rig_helper(NULL, 0);
	connect_identify(r, &id);
	r->d.manual_entry = true;
	assert_int_equal(r->d.ops->leave(&r->d, true, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "press RST"));
	assert_int_equal(r->f.ops[ESP_OP_FLASH_END], 0);
	rig_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_junk_and_surplus_sync),
		cmocka_unit_test(test_connect_tight_first),
		cmocka_unit_test(test_connect_retries_reset),
		cmocka_unit_test(test_connect_manual_no_lines),
		cmocka_unit_test(test_connect_manual_timeout_bounded),
		cmocka_unit_test(test_connect_auto_gives_up),
		cmocka_unit_test(test_identify_esp8266),
		cmocka_unit_test(test_identify_esp32),
		cmocka_unit_test(test_identify_dead_flash_and_wrong_chip),
		cmocka_unit_test(test_not_identified_refuses),
		cmocka_unit_test(test_esp8266_write_small_image),
		cmocka_unit_test(test_esp8266_write_across_blocks),
		cmocka_unit_test(test_esp8266_two_ranges_share_sector),
		cmocka_unit_test(test_esp8266_over_erase_past_end_refused),
		cmocka_unit_test(test_checksum_error_retried),
		cmocka_unit_test(test_block_timeout_gives_up),
		cmocka_unit_test(test_device_error_message),
		cmocka_unit_test(test_esp32_write_compressed_and_verify),
		cmocka_unit_test(test_esp32_uncompressed_fallback_and_read),
		cmocka_unit_test(test_esp32_skip_unchanged),
		cmocka_unit_test(test_garbled_reply_resent),
		cmocka_unit_test(test_malformed_block_resent),
		cmocka_unit_test(test_reset_mid_write_recovered),
		cmocka_unit_test(test_reset_mid_write_compressed),
		cmocka_unit_test(test_compressed_garbled_reply_restarts),
		cmocka_unit_test(test_reset_mid_write_without_lines),
		cmocka_unit_test(test_backup_md5_mismatch_reread),
		cmocka_unit_test(test_leave_hard_and_soft),
		cmocka_unit_test(test_caps_before_identify_and_table),
		cmocka_unit_test(test_helper_builtin_blob),
		cmocka_unit_test(test_helper_upload),
		cmocka_unit_test(test_helper_sha_mismatch_refused),
		cmocka_unit_test(test_helper_no_greeting_rom_caps),
		cmocka_unit_test(test_helper_profile_disabled),
		cmocka_unit_test(test_helper_backup_4mb),
		cmocka_unit_test(test_helper_read_damaged_reread),
		cmocka_unit_test(test_helper_write_exact_erase),
		cmocka_unit_test(test_helper_verify_mismatch_narrowed),
		cmocka_unit_test(test_helper_reset_reupload),
		cmocka_unit_test(test_helper_leave),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
