/* The ROM serial loader of the simulated chip: one request in, the reply
 * (or, where the real ROM says nothing, no reply) out. Packet layout and
 * status bytes come from the pure esp_proto core, so the simulator and the
 * driver cannot drift apart silently; the behaviour modelled here is the
 * reference's (esp-rom-protocol.md), section numbers in comments. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ROM_ERR_PARAM    0x01
#define ROM_ERR_MSG      0x05 /* malformed or unknown message */
#define ROM_ERR_FAILED   0x06
#define ROM_ERR_CHECKSUM 0x07
#define ROM_ERR_INFLATE  0x0B
#define ROM_ERR_ADLER    0x0C
#define ROM_ERR_RAM_SIZE 0x0E
#define ROM_ERR_RAM_ADDR 0x0F

#define SIM_RST_WATCHDOG 4

/* ---- registers ---- */

static struct sim_reg *reg_slot(struct sim *s, uint32_t addr, bool create)
{
	for (size_t i = 0; i < s->n_regs; i++)
		if (s->regs[i].addr == addr)
			return &s->regs[i];
	if (!create)
		return NULL;
	if (s->n_regs == SIM_REGS_MAX)
		return &s->regs[SIM_REGS_MAX - 1]; /* full: reuse the last slot */
	s->regs[s->n_regs] = (struct sim_reg){ .addr = addr, .value = 0 };
	return &s->regs[s->n_regs++];
}

static uint32_t stored(struct sim *s, uint32_t addr)
{
	const struct sim_reg *r = reg_slot(s, addr, false);

	return r ? r->value : 0;
}

uint32_t sim_reg_read(struct sim *s, uint32_t addr)
{
	uint32_t baud = s->uart_baud ? s->uart_baud : 115200u;

	if (addr == ESP_PROTO_CHIP_MAGIC_ADDR)
		return s->cfg.chip->magic[0];
	if (s->fam == ESP_FAMILY_ESP8266) {
		if (addr >= ESP_PROTO_ESP8266_OTP_MAC0 && addr <= ESP_PROTO_ESP8266_OTP_MAC3 &&
		    (addr & 3) == 0)
			return s->otp.w[(addr - ESP_PROTO_ESP8266_OTP_MAC0) / 4];
		/* 26 MHz crystal: the UART divider is 2 x 26 MHz / baud
		 * (0x1C4 at 115200, as in the real trace). */
		if (addr == ESP_PROTO_ESP8266_UART_CLKDIV)
			return (52000000u + baud - 1) / baud;
	} else {
		if (addr == ESP_PROTO_ESP32_EFUSE_MAC_W1)
			return (uint32_t)s->cfg.mac[2] << 24 | (uint32_t)s->cfg.mac[3] << 16 |
			       (uint32_t)s->cfg.mac[4] << 8 | s->cfg.mac[5];
		if (addr == ESP_PROTO_ESP32_EFUSE_MAC_W2)
			return (uint32_t)s->cfg.mac[0] << 8 | s->cfg.mac[1];
		/* 40 MHz crystal. In the ROM loader the PLL is not running
		 * yet, so the UART is clocked by the crystal itself. */
		if (addr == ESP_PROTO_ESP32_UART_CLKDIV)
			return (40000000u + baud - 1) / baud;
	}
	return stored(s, addr);
}

/* CMD_USR was set: run the SPI user command the registers describe
 * (section 8). Reads fill W0.. little-endian, byte 0 first. */
static void spi_execute(struct sim *s)
{
	const struct esp_proto_spi_regs *rg = esp_proto_spi_regs(s->fam);
	struct esp_proto_spi_cmd c;
	uint8_t miso[ESP_SPI_MISO_MAX / 8];
	size_t nbytes;

	/* Without attaching (FLASH_BEGIN on the ESP8266 ROM, SPI_ATTACH on
	 * the ESP32) the flash is not wired to the controller: nothing
	 * answers and W0 keeps what was written there. */
	if (!s->spi_attached)
		return;
	if (esp_proto_spi_decode(s->fam, stored(s, rg->user), stored(s, rg->user1),
				 stored(s, rg->user2), rg->miso_dlen ? stored(s, rg->miso_dlen) : 0,
				 stored(s, rg->addr), &c, NULL) != FW_OK)
		return;
	if (!c.miso_bits)
		return;
	nbytes = (c.miso_bits + 7) / 8;
	memset(miso, 0, sizeof miso);
	switch (c.cmd) {
	case 0x9F: /* RDID */
		miso[0] = (uint8_t)s->cfg.jedec;
		miso[1] = (uint8_t)(s->cfg.jedec >> 8);
		miso[2] = (uint8_t)(s->cfg.jedec >> 16);
		break;
	case 0x03: /* READ */
	case 0x0B: /* FAST READ */
		for (size_t i = 0; i < nbytes; i++)
			miso[i] = s->flash[((size_t)c.addr + i) % s->cfg.flash_size];
		break;
	default: /* status registers (05/35/15), SFDP, ...: all zero */
		break;
	}
	for (size_t w = 0; w < (nbytes + 3) / 4; w++) {
		uint32_t v = (uint32_t)miso[4 * w] | (uint32_t)miso[4 * w + 1] << 8 |
			     (uint32_t)miso[4 * w + 2] << 16 | (uint32_t)miso[4 * w + 3] << 24;

		reg_slot(s, rg->w0 + 4 * (uint32_t)w, true)->value = v;
	}
}

void sim_reg_write(struct sim *s, const struct esp_proto_reg_write *w)
{
	const struct esp_proto_spi_regs *rg = esp_proto_spi_regs(s->fam);
	struct sim_reg *r = reg_slot(s, w->addr, true);

	r->value = (r->value & ~w->mask) | (w->value & w->mask);
	if (w->addr == rg->cmd && (r->value & ESP_SPI_CMD_USR)) {
		spi_execute(s);
		/* The command completes at once: the bit self-clears before
		 * the host's first poll. */
		reg_slot(s, rg->cmd, true)->value &= ~ESP_SPI_CMD_USR;
	}
}

/* ---- replies ---- */

static void reply(struct sim *s, uint8_t op, uint32_t value, const uint8_t *result,
		  size_t result_len, uint8_t fail_code)
{
	struct esp_proto_resp r;

	esp_proto_response_init(&r, op, s->rom);
	r.value = value;
	r.result = result;
	r.result_len = result_len;
	if (fail_code)
		esp_proto_response_fail(&r, s->rom, fail_code);
	sim_tx_frame(s, &r);
}

static void ok(struct sim *s, uint8_t op)
{
	reply(s, op, 0, NULL, 0, 0);
}

static void fail(struct sim *s, uint8_t op, uint8_t code)
{
	reply(s, op, 0, NULL, 0, code);
}

static uint32_t word(const struct esp_proto_req *r, size_t i, uint32_t dflt)
{
	uint32_t w;

	return esp_proto_request_word(r, i, &w, NULL) == FW_OK ? w : dflt;
}

void sim_busy_for(struct sim *s, uint64_t ns)
{
	uint64_t now = sim_now();

	if (!ns)
		return;
	if (s->busy_until < now)
		s->busy_until = now;
	s->busy_until += ns;
}

bool sim_straps_download(const struct sim *s)
{
	if (s->lines_fd >= 0)
		return s->dtr && !s->rts;
	return s->cfg.boot_download;
}

/* ---- state ---- */

static void defl_end(struct sim *s)
{
	if (s->zs_init)
		inflateEnd(&s->zs);
	s->zs_init = false;
	s->defl_open = false;
}

void sim_rom_reset(struct sim *s)
{
	defl_end(s);
	s->n_regs = 0;
	s->spi_attached = false;
	s->rom_flash_size = 2u * 1024u * 1024u;
	s->flash_open = s->mem_open = false;
	s->ram_used = 0;
	s->n_ram_seg = 0;
	s->baud_locked = false;
	s->busy_until = 0;
	slip_decoder_reset(&s->dec);
}

/* ---- flash commands ---- */

static bool range_ok(const struct sim *s, uint32_t offset, uint32_t size)
{
	uint32_t limit = s->fam == ESP_FAMILY_ESP32 ? s->rom_flash_size : s->cfg.flash_size;

	if (limit > s->cfg.flash_size)
		limit = s->cfg.flash_size;
	return offset <= limit && size <= limit - offset;
}

static void flash_begin(struct sim *s, const struct esp_proto_req *r, bool deflate)
{
	struct esp_proto_begin b;
	struct esp_proto_sectors sec;

	if (esp_proto_parse_begin(r, &b, NULL) != FW_OK) {
		fail(s, r->op, ROM_ERR_MSG);
		return;
	}
	if (s->fam == ESP_FAMILY_ESP8266) {
		/* The ESP8266 ROM attaches the flash in FLASH_BEGIN; the
		 * erase runs through its buggy size logic (section 5.3). */
		s->spi_attached = true;
		esp_proto_rom_erased(b.offset, b.size, &sec);
	} else {
		if (!s->spi_attached) {
			fail(s, r->op, ROM_ERR_FAILED);
			return;
		}
		if (!range_ok(s, b.offset, b.size)) {
			fail(s, r->op, ROM_ERR_PARAM);
			return;
		}
		sec.first = b.offset / ESP_PROTO_SECTOR;
		sec.count = b.size ? (b.offset % ESP_PROTO_SECTOR + b.size + ESP_PROTO_SECTOR - 1) /
					     ESP_PROTO_SECTOR
				   : 0;
	}
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: %s size 0x%X at 0x%X erases %u sectors from 0x%X\n",
			esp_proto_op_name(r->op), b.size, b.offset, sec.count,
			sec.first * ESP_PROTO_SECTOR);
	sim_flash_erase(s, sec.first, sec.count);
	sim_busy_for(s, sim_flash_erase_ns(s, sec.count));
	defl_end(s);
	s->fbeg = b;
	s->flash_open = !deflate;
	if (deflate) {
		memset(&s->zs, 0, sizeof s->zs);
		if (inflateInit(&s->zs) != Z_OK) {
			fail(s, r->op, ROM_ERR_FAILED);
			return;
		}
		s->zs_init = true;
		s->defl_open = true;
		s->defl_written = 0;
		s->defl_done = false;
	}
	ok(s, r->op);
}

/* The reset-in-the-middle-of-a-write fault: half of the block reaches the
 * flash, then the chip reboots and the reply never comes. */
static bool fault_reset_now(struct sim *s, uint32_t addr, const struct esp_proto_data *d)
{
	if (s->faults.reset_after_blocks < 0)
		return false;
	if (++s->faults.data_blocks <= s->faults.reset_after_blocks)
		return false;
	s->faults.reset_after_blocks = -1; /* once: a retry can succeed */
	sim_flash_program(s, addr, d->data, d->len / 2);
	sim_boot(s, sim_straps_download(s), SIM_RST_WATCHDOG);
	return true;
}

/* The checks every *_DATA command makes before its block is used, with the
 * ROM's answer to each failure: checksum, malformed, no BEGIN before it. */
static bool data_block(struct sim *s, const struct esp_proto_req *r, struct esp_proto_data *d,
		       bool begun)
{
	int rc = esp_proto_parse_data(r, d, NULL);

	if (rc == FW_EINTEGRITY)
		fail(s, r->op, ROM_ERR_CHECKSUM);
	else if (rc != FW_OK)
		fail(s, r->op, ROM_ERR_MSG);
	else if (!begun)
		fail(s, r->op, ROM_ERR_FAILED);
	return rc == FW_OK && begun;
}

static void flash_data(struct sim *s, const struct esp_proto_req *r)
{
	struct esp_proto_data d;
	uint32_t addr;

	if (!data_block(s, r, &d, s->flash_open))
		return;
	addr = s->fbeg.offset + d.seq * s->fbeg.block_size;
	if (s->fam == ESP_FAMILY_ESP32 && !range_ok(s, addr, d.len)) {
		fail(s, r->op, ROM_ERR_PARAM);
		return;
	}
	if (fault_reset_now(s, addr, &d))
		return;
	sim_flash_program(s, addr, d.data, d.len);
	sim_busy_for(s, sim_flash_program_ns(s, d.len));
	ok(s, r->op);
}

static void defl_data(struct sim *s, const struct esp_proto_req *r)
{
	struct esp_proto_data d;
	int zr = Z_OK;
	uint8_t out[4096];
	size_t total = 0;

	if (!data_block(s, r, &d, s->defl_open))
		return;
	if (s->defl_done) {
		ok(s, r->op); /* padding after the stream end */
		return;
	}
	if (fault_reset_now(s, s->fbeg.offset + s->defl_written, &d))
		return;
	s->zs.next_in = (Bytef *)(uintptr_t)d.data;
	s->zs.avail_in = d.len;
	while (s->zs.avail_in > 0 || zr == Z_OK) {
		size_t got;

		s->zs.next_out = out;
		s->zs.avail_out = sizeof out;
		zr = inflate(&s->zs, Z_NO_FLUSH);
		got = sizeof out - s->zs.avail_out;
		if (got) {
			if (!range_ok(s, s->fbeg.offset + s->defl_written, (uint32_t)got) ||
			    s->defl_written + got > s->fbeg.size) {
				fail(s, r->op, ROM_ERR_INFLATE);
				return;
			}
			sim_flash_program(s, s->fbeg.offset + s->defl_written, out, got);
			s->defl_written += (uint32_t)got;
			total += got;
		}
		if (zr == Z_STREAM_END) {
			s->defl_done = true;
			break;
		}
		if (zr == Z_BUF_ERROR || (zr == Z_OK && got == 0 && s->zs.avail_in == 0))
			break; /* needs the next block */
		if (zr != Z_OK) {
			/* zlib reports a bad trailer as "incorrect data check". */
			bool adler = zr == Z_DATA_ERROR && s->zs.msg &&
				     strstr(s->zs.msg, "data check");
			fail(s, r->op, adler ? ROM_ERR_ADLER : ROM_ERR_INFLATE);
			defl_end(s);
			return;
		}
	}
	sim_busy_for(s, sim_flash_program_ns(s, total));
	ok(s, r->op);
}

static void flash_end(struct sim *s, const struct esp_proto_req *r)
{
	uint32_t how = word(r, 0, ESP_PROTO_END_REBOOT);

	s->flash_open = false;
	defl_end(s);
	sim_flash_sync(s);
	ok(s, r->op);
	/* The ROM leaves the loader either way (section 5.3): reboot (the
	 * straps decide the mode again) or run the app in flash. */
	if (how == ESP_PROTO_END_RUN_USER)
		sim_boot(s, false, 2);
	else
		sim_boot(s, sim_straps_download(s), 2);
}

static void read_flash_slow(struct sim *s, const struct esp_proto_req *r)
{
	uint32_t off = word(r, 0, 0), len = word(r, 1, 0);
	uint8_t data[ESP_PROTO_READ_SLOW_LEN];

	if (!s->spi_attached) {
		fail(s, r->op, ROM_ERR_FAILED);
		return;
	}
	if (len == 0 || len > ESP_PROTO_READ_SLOW_LEN || !range_ok(s, off, len)) {
		fail(s, r->op, ROM_ERR_PARAM);
		return;
	}
	/* The reply always carries 64 bytes; only len of them are meant. */
	memset(data, 0, sizeof data);
	memcpy(data, s->flash + off, len);
	reply(s, r->op, 0, data, sizeof data, 0);
}

static void flash_md5(struct sim *s, const struct esp_proto_req *r)
{
	uint32_t addr = word(r, 0, 0), size = word(r, 1, 0);
	uint8_t md5[16], hex[32];
	unsigned int mdlen = 0;
	size_t n;

	if (!s->spi_attached) {
		fail(s, r->op, ROM_ERR_FAILED);
		return;
	}
	if (!range_ok(s, addr, size)) {
		fail(s, r->op, ROM_ERR_PARAM);
		return;
	}
	if (EVP_Digest(s->flash + addr, size, md5, &mdlen, EVP_md5(), NULL) != 1 ||
	    mdlen != 16) {
		fail(s, r->op, ROM_ERR_FAILED);
		return;
	}
	n = esp_proto_md5_encode(s->rom, md5, hex);
	/* Reading takes time on real flash; roughly like a read-back. */
	sim_busy_for(s, s->cfg.flash_timing ? (uint64_t)size * 50u : 0);
	reply(s, r->op, 0, hex, n, 0);
}

/* ---- RAM commands ---- */

static void mem_begin(struct sim *s, const struct esp_proto_req *r)
{
	struct esp_proto_begin b;

	if (esp_proto_parse_begin(r, &b, NULL) != FW_OK) {
		fail(s, r->op, ROM_ERR_MSG);
		return;
	}
	/* Regions add up until a reset, as in real RAM (code in IRAM, data
	 * in DRAM); the simulator keeps them side by side. */
	if (b.size > SIM_RAM_MAX - s->ram_used || s->n_ram_seg == SIM_RAM_SEGS) {
		fail(s, r->op, ROM_ERR_RAM_SIZE);
		return;
	}
	s->mbeg = b;
	s->mem_open = true;
	s->ram_seg[s->n_ram_seg++] = (struct sim_ram_seg){ .addr = b.offset, .size = b.size,
							   .off = s->ram_used };
	s->ram_used += b.size;
	ok(s, r->op);
}

static void mem_data(struct sim *s, const struct esp_proto_req *r)
{
	struct esp_proto_data d;
	struct sim_ram_seg *seg;
	uint64_t off;

	if (!data_block(s, r, &d, s->mem_open))
		return;
	seg = &s->ram_seg[s->n_ram_seg - 1];
	off = (uint64_t)d.seq * s->mbeg.block_size;
	if (off + d.len > seg->size) {
		fail(s, r->op, ROM_ERR_RAM_ADDR);
		return;
	}
	memcpy(s->ram + seg->off + off, d.data, d.len);
	if (off + d.len > seg->len)
		seg->len = (uint32_t)(off + d.len);
	ok(s, r->op);
}

static void mem_end(struct sim *s, const struct esp_proto_req *r)
{
	uint32_t no_exec = word(r, 0, 1), entry = word(r, 1, 0);

	s->mem_open = false;
	/* Code that runs may own the UART before the reply would leave. */
	if (!no_exec && entry && sim_run_ram_code(s, entry))
		return;
	ok(s, r->op);
}

/* ---- dispatch ---- */

void sim_rom_packet(struct sim *s, const uint8_t *pkt, size_t n)
{
	struct esp_proto_req r;
	uint8_t op;

	if (n < ESP_PROTO_HDR_LEN || pkt[0] != 0x00)
		return; /* not a request: the ROM ignores it */
	op = pkt[1];
	if (s->faults.hang_after >= 0 && s->faults.commands++ >= s->faults.hang_after) {
		if (s->cfg.verbose)
			fprintf(stderr, "flashwise-sim: fault: stops answering\n");
		s->mode = SIM_MODE_HUNG;
		return;
	}
	if (esp_proto_request_parse(pkt, n, &r, NULL) != FW_OK) {
		fail(s, op, ROM_ERR_MSG);
		return;
	}
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: %s (%zu bytes)\n", esp_proto_op_name(op),
			r.data_len);
	if (!esp_proto_supports(s->rom, op)) {
		fail(s, op, ROM_ERR_MSG);
		return;
	}
	switch (op) {
	case ESP_OP_SYNC:
		/* Without the 0x55 run the ROM cannot measure the rate and
		 * stays silent. */
		if (!esp_proto_sync_payload_ok(r.data, r.data_len))
			return;
		for (int i = 0; i < 8; i++)
			reply(s, op, ESP_PROTO_SYNC_VALUE, NULL, 0, 0);
		return;
	case ESP_OP_READ_REG:
		if (r.data_len != 4) {
			fail(s, op, ROM_ERR_MSG);
			return;
		}
		reply(s, op, sim_reg_read(s, word(&r, 0, 0)), NULL, 0, 0);
		return;
	case ESP_OP_WRITE_REG: {
		struct esp_proto_reg_write w[ESP_PROTO_WRITE_REG_MAX];
		size_t nw = 0;

		if (esp_proto_parse_write_reg(&r, w, ESP_PROTO_WRITE_REG_MAX, &nw, NULL) != FW_OK) {
			fail(s, op, ROM_ERR_MSG);
			return;
		}
		for (size_t i = 0; i < nw; i++)
			sim_reg_write(s, &w[i]);
		ok(s, op);
		return;
	}
	case ESP_OP_FLASH_BEGIN:
		flash_begin(s, &r, false);
		return;
	case ESP_OP_FLASH_DEFL_BEGIN:
		flash_begin(s, &r, true);
		return;
	case ESP_OP_FLASH_DATA:
		flash_data(s, &r);
		return;
	case ESP_OP_FLASH_DEFL_DATA:
		defl_data(s, &r);
		return;
	case ESP_OP_FLASH_END:
	case ESP_OP_FLASH_DEFL_END:
		flash_end(s, &r);
		return;
	case ESP_OP_MEM_BEGIN:
		mem_begin(s, &r);
		return;
	case ESP_OP_MEM_DATA:
		mem_data(s, &r);
		return;
	case ESP_OP_MEM_END:
		mem_end(s, &r);
		return;
	case ESP_OP_SPI_ATTACH:
		s->spi_attached = true;
		ok(s, op);
		return;
	case ESP_OP_SPI_SET_PARAMS: {
		uint32_t total = word(&r, 1, 0);

		if (total == 0 || total > s->cfg.flash_size) {
			fail(s, op, ROM_ERR_PARAM);
			return;
		}
		s->rom_flash_size = total;
		ok(s, op);
		return;
	}
	case ESP_OP_CHANGE_BAUDRATE: {
		uint32_t nb = word(&r, 0, 0);

		if (nb < 300 || nb > 5000000) {
			fail(s, op, ROM_ERR_PARAM);
			return;
		}
		/* The reply leaves at the old rate; then the UART switches. */
		ok(s, op);
		s->uart_baud = nb;
		s->baud_locked = true;
		return;
	}
	case ESP_OP_READ_FLASH_SLOW:
		read_flash_slow(s, &r);
		return;
	case ESP_OP_SPI_FLASH_MD5:
		flash_md5(s, &r);
		return;
	default:
		fail(s, op, ROM_ERR_MSG);
		return;
	}
}
