/* The RAM helper's protocol logic (src/helper/helper_proto.c) against an
 * in-memory chip. Requests are built and answers parsed with the host's own
 * esp_proto/slip code, so the helper and the driver's view of the dialect
 * are checked against each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "esp_proto.h"
#include "helper_proto.h"
#include "slip.h"
#include "strbuf.h"

#define FLASH_SIZE (1024u * 1024u)
#define MAX_FRAMES 512
#define MAX_ERASES 64

/* ---- the in-memory chip ---- */

struct chip {
	uint8_t *flash;
	struct strbuf tx;              /* everything sent */
	EVP_MD_CTX *md5;
	unsigned sector_erases, block_erases, writes, unlocks, reboots;
	uint32_t erased[MAX_ERASES];   /* start address of each erase */
	uint32_t erased_len[MAX_ERASES];
	size_t n_erased;
	uint32_t regs[16];             /* registers at 0x60000000 + 4 * i */
	uint64_t delay_total;
	uint32_t baud_new, baud_old;
	size_t tx_at_baud;             /* bytes sent when set_baud was called */
	bool fail_unlock, fail_erase, corrupt_write;
	uint32_t fail_read_at;         /* reads covering this address fail (0: off) */
	struct helper_proto_platform pf;
	struct helper_proto h;
};

static void c_tx(void *ctx, const uint8_t *p, size_t n)
{
	struct chip *c = ctx;

	strbuf_add(&c->tx, p, n);
}

static int c_read(void *ctx, uint32_t addr, uint8_t *dst, uint32_t len)
{
	struct chip *c = ctx;

	/* The contract with the ROM routines: aligned everything. */
	assert_int_equal(addr & 3u, 0);
	assert_int_equal(len & 3u, 0);
	assert_int_equal((uintptr_t)dst & 3u, 0);
	if (c->fail_read_at && c->fail_read_at >= addr && c->fail_read_at < addr + len)
		return 1;
	for (uint32_t i = 0; i < len; i++)
		dst[i] = c->flash[(addr + i) % FLASH_SIZE];
	return 0;
}

static int c_write(void *ctx, uint32_t addr, const uint8_t *src, uint32_t len)
{
	struct chip *c = ctx;

	assert_int_equal(addr & 3u, 0);
	assert_int_equal(len & 3u, 0);
	assert_int_equal((uintptr_t)src & 3u, 0);
	c->writes++;
	for (uint32_t i = 0; i < len; i++)
		c->flash[(addr + i) % FLASH_SIZE] &= src[i]; /* NOR: 1 -> 0 only */
	if (c->corrupt_write)
		c->flash[addr % FLASH_SIZE] ^= 0x01;
	return 0;
}

static void note_erase(struct chip *c, uint32_t addr, uint32_t len)
{
	assert_true(c->n_erased < MAX_ERASES);
	c->erased[c->n_erased] = addr;
	c->erased_len[c->n_erased++] = len;
	for (uint32_t i = 0; i < len; i++)
		c->flash[(addr + i) % FLASH_SIZE] = 0xFF;
}

static int c_erase_sector(void *ctx, uint32_t sector)
{
	struct chip *c = ctx;

	if (c->fail_erase)
		return 1;
	c->sector_erases++;
	note_erase(c, sector * 0x1000u, 0x1000u);
	return 0;
}

static int c_erase_block(void *ctx, uint32_t block)
{
	struct chip *c = ctx;

	if (c->fail_erase)
		return 1;
	c->block_erases++;
	note_erase(c, block * 0x10000u, 0x10000u);
	return 0;
}

static int c_unlock(void *ctx)
{
	struct chip *c = ctx;

	c->unlocks++;
	return c->fail_unlock ? 1 : 0;
}

static void c_md5_begin(void *ctx)
{
	struct chip *c = ctx;

	assert_int_equal(EVP_DigestInit_ex(c->md5, EVP_md5(), NULL), 1);
}

static void c_md5_update(void *ctx, const uint8_t *p, uint32_t n)
{
	struct chip *c = ctx;

	assert_int_equal(EVP_DigestUpdate(c->md5, p, n), 1);
}

static void c_md5_end(void *ctx, uint8_t out[16])
{
	struct chip *c = ctx;
	unsigned len = 0;

	assert_int_equal(EVP_DigestFinal_ex(c->md5, out, &len), 1);
	assert_int_equal(len, 16);
}

static uint32_t c_reg_read(void *ctx, uint32_t addr)
{
	struct chip *c = ctx;

	assert_true(addr >= 0x60000000u && addr < 0x60000040u);
	return c->regs[(addr - 0x60000000u) / 4];
}

static void c_reg_write(void *ctx, uint32_t addr, uint32_t value)
{
	struct chip *c = ctx;

	assert_true(addr >= 0x60000000u && addr < 0x60000040u);
	c->regs[(addr - 0x60000000u) / 4] = value;
}

static void c_delay(void *ctx, uint32_t us)
{
	struct chip *c = ctx;

	c->delay_total += us;
}

static void c_set_baud(void *ctx, uint32_t nb, uint32_t ob)
{
	struct chip *c = ctx;

	c->baud_new = nb;
	c->baud_old = ob;
	c->tx_at_baud = c->tx.len;
}

static void c_reboot(void *ctx)
{
	struct chip *c = ctx;

	c->reboots++;
}

static int setup(void **state)
{
	struct chip *c = calloc(1, sizeof *c);

	assert_non_null(c);
	c->flash = malloc(FLASH_SIZE);
	assert_non_null(c->flash);
	/* Not erased: every erase the helper skips would show. */
	for (uint32_t i = 0; i < FLASH_SIZE; i++)
		c->flash[i] = (uint8_t)(i * 7u + (i >> 12));
	c->md5 = EVP_MD_CTX_new();
	assert_non_null(c->md5);
	c->tx = (struct strbuf)STRBUF_INIT;
	c->pf = (struct helper_proto_platform){
		.ctx = c,
		.tx = c_tx,
		.flash_read = c_read,
		.flash_write = c_write,
		.flash_erase_sector = c_erase_sector,
		.flash_erase_block = c_erase_block,
		.flash_unlock = c_unlock,
		.md5_begin = c_md5_begin,
		.md5_update = c_md5_update,
		.md5_end = c_md5_end,
		.reg_read = c_reg_read,
		.reg_write = c_reg_write,
		.delay_us = c_delay,
		.set_baud = c_set_baud,
		.reboot = c_reboot,
	};
	helper_proto_init(&c->h, &c->pf);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct chip *c = *state;

	EVP_MD_CTX_free(c->md5);
	strbuf_free(&c->tx);
	free(c->flash);
	free(c);
	return 0;
}

/* ---- talking to it ---- */

struct frames {
	size_t n;
	uint8_t *f[MAX_FRAMES];
	size_t len[MAX_FRAMES];
};

/* Decodes (and forgets) everything the helper sent so far. */
static void take(struct chip *c, struct frames *out)
{
	static uint8_t store[0x2000];
	struct slip_decoder d;

	for (size_t i = 0; i < out->n; i++)
		free(out->f[i]);
	out->n = 0;
	assert_false(strbuf_failed(&c->tx));
	slip_decoder_init(&d, store, sizeof store);
	for (size_t off = 0; off < c->tx.len;) {
		struct slip_event ev;

		off += slip_decoder_feed(&d, (const uint8_t *)c->tx.s + off, c->tx.len - off, &ev);
		assert_true(ev.kind == SLIP_EV_NONE || ev.kind == SLIP_EV_FRAME);
		assert_int_equal(ev.junk, 0); /* the helper sends nothing between frames */
		if (ev.kind != SLIP_EV_FRAME)
			continue;
		assert_true(out->n < MAX_FRAMES);
		out->f[out->n] = malloc(ev.len);
		assert_non_null(out->f[out->n]);
		memcpy(out->f[out->n], ev.frame, ev.len);
		out->len[out->n++] = ev.len;
	}
	assert_true(slip_decoder_idle(&d));
	strbuf_reset(&c->tx);
}

static void frames_free(struct frames *fr)
{
	for (size_t i = 0; i < fr->n; i++)
		free(fr->f[i]);
	fr->n = 0;
}

static void feed(struct chip *c, const uint8_t *p, size_t n)
{
	helper_proto_input(&c->h, p, n);
}

static void send_req(struct chip *c, const struct esp_proto_req *r)
{
	struct strbuf w = STRBUF_INIT;

	assert_int_equal(esp_proto_request_frame(r, &w, NULL), FW_OK);
	assert_false(strbuf_failed(&w));
	feed(c, (const uint8_t *)w.s, w.len);
	strbuf_free(&w);
}

/* Sends r, expects exactly one frame back: a response for r's opcode with
 * result_len result bytes (stub layout, 2 status bytes). Returns the first
 * status byte (0 = ok). */
static uint8_t call(struct chip *c, const struct esp_proto_req *r, size_t result_len,
		    struct esp_proto_resp *resp, uint8_t *result)
{
	struct frames fr = { 0 };
	struct esp_proto_resp rr;
	uint8_t code;

	send_req(c, r);
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	assert_int_equal(esp_proto_response_match(fr.f[0], fr.len[0], r->op), ESP_MATCH_YES);
	assert_int_equal(esp_proto_response_parse(fr.f[0], fr.len[0], result_len, 2, &rr, NULL),
			 FW_OK);
	code = rr.status[0];
	assert_int_equal(rr.status[1], 0);
	if (code == 0)
		assert_int_equal(rr.result_len, result_len);
	else
		assert_int_equal(rr.result_len, 0); /* a failure carries no result */
	if (result && code == 0)
		memcpy(result, rr.result, result_len);
	if (resp) {
		*resp = rr;
		resp->result = NULL;
	}
	frames_free(&fr);
	return code;
}

static uint8_t words(struct chip *c, uint8_t op, const uint32_t *w, size_t n)
{
	struct esp_proto_req r;

	assert_int_equal(esp_proto_req_words(&r, op, w, n, NULL), FW_OK);
	return call(c, &r, 0, NULL, NULL);
}

static uint8_t flash_begin(struct chip *c, uint32_t size, uint32_t block, uint32_t offset)
{
	struct esp_proto_req r;
	struct esp_proto_begin b = { .size = size, .blocks = esp_proto_blocks(size, block),
				     .block_size = block, .offset = offset,
				     .encrypted_word = true };

	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	return call(c, &r, 0, NULL, NULL);
}

static uint8_t flash_data(struct chip *c, uint32_t seq, const uint8_t *p, size_t n)
{
	struct esp_proto_req r;

	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, seq, p, n, NULL), FW_OK);
	return call(c, &r, 0, NULL, NULL);
}

static uint8_t flash_end(struct chip *c, uint32_t how)
{
	struct esp_proto_req r;

	esp_proto_req_flash_end(&r, how);
	return call(c, &r, 0, NULL, NULL);
}

static void md5_of(const uint8_t *p, size_t n, uint8_t out[16])
{
	unsigned len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_md5(), NULL), 1);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	/* Plenty of 0xC0 and 0xDB so the SLIP escapes are exercised. */
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (seed >> 16) % 5 == 0 ? 0xC0 : (seed >> 16) % 7 == 0 ? 0xDB
									       : (uint8_t)(seed >> 8);
	}
}

/* ---- greeting, SYNC, registers ---- */

static void test_greeting(void **state)
{
	struct chip *c = *state;
	const uint8_t want[] = { 0xC0, 'F', 'W', 'H', 'L', 0xC0 };

	helper_proto_start(&c->h);
	assert_int_equal(c->tx.len, sizeof want);
	assert_memory_equal(c->tx.s, want, sizeof want);
	assert_int_equal(HELPER_PROTO_GREETING_LEN, 4);
}

static void test_sync_once_value_zero(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	struct esp_proto_resp resp;

	esp_proto_req_sync(&r);
	assert_int_equal(call(c, &r, 0, &resp, NULL), 0);
	assert_true(esp_proto_sync_reply_from_stub(&resp));
	/* A SYNC without its payload is answered "bad data length". */
	assert_int_equal(words(c, ESP_OP_SYNC, (const uint32_t[]){ 0x20120707 }, 1), 0xC0);
}

static void test_registers(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_reg_write w[2] = {
		{ .addr = 0x60000014, .value = 0x12345678, .mask = 0xFFFFFFFF, .delay_us = 0 },
		{ .addr = 0x60000018, .value = 0x0000AB00, .mask = 0x0000FF00, .delay_us = 250 },
	};

	c->regs[6] = 0x11223344; /* 0x60000018 */
	assert_int_equal(esp_proto_req_write_reg(&r, w, 2, NULL), FW_OK);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	assert_int_equal(c->regs[5], 0x12345678);
	assert_int_equal(c->regs[6], 0x1122AB44); /* only the masked bits */
	assert_int_equal(c->delay_total, 250);
	esp_proto_req_read_reg(&r, 0x60000018);
	assert_int_equal(call(c, &r, 0, &resp, NULL), 0);
	assert_int_equal(resp.value, 0x1122AB44);
	/* Malformed: a READ_REG without its word, a partial WRITE_REG record. */
	assert_int_equal(words(c, ESP_OP_READ_REG, NULL, 0), 0xC0);
	assert_int_equal(words(c, ESP_OP_WRITE_REG, (const uint32_t[]){ 1, 2, 3 }, 3), 0xC0);
}

/* ---- writing ---- */

static void test_write_exact_erase(void **state)
{
	struct chip *c = *state;
	uint8_t data[0x1800], before[0x2000], md5[16], want[16];
	struct esp_proto_req r;

	fill(data, sizeof data, 1);
	memcpy(before, c->flash + 0x0F000, 0x1000);            /* sector before */
	memcpy(before + 0x1000, c->flash + 0x12000, 0x1000);   /* sector after */
	assert_int_equal(flash_begin(c, sizeof data, 0x1000, 0x10000), 0);
	assert_int_equal(c->n_erased, 0); /* nothing erased until data comes */
	assert_int_equal(c->unlocks, 1);
	assert_int_equal(flash_data(c, 0, data, 0x1000), 0);
	{
		/* The last block padded to the block size with 0xFF. */
		uint8_t last[0x1000];

		memset(last, 0xFF, sizeof last);
		memcpy(last, data + 0x1000, 0x800);
		assert_int_equal(flash_data(c, 1, last, sizeof last), 0);
	}
	assert_int_equal(flash_end(c, 1), 0);
	assert_int_equal(c->reboots, 0); /* 1 = stay in the helper */
	assert_memory_equal(c->flash + 0x10000, data, sizeof data);
	/* Exactly the two sectors of the image, no block erase, no neighbour. */
	assert_int_equal(c->sector_erases, 2);
	assert_int_equal(c->block_erases, 0);
	assert_int_equal(c->erased[0], 0x10000);
	assert_int_equal(c->erased[1], 0x11000);
	assert_memory_equal(c->flash + 0x0F000, before, 0x1000);
	assert_memory_equal(c->flash + 0x12000, before + 0x1000, 0x1000);
	/* The rest of the last sector is erased, not left with old bytes. */
	for (uint32_t i = 0x11800; i < 0x12000; i++)
		assert_int_equal(c->flash[i], 0xFF);

	esp_proto_req_flash_md5(&r, 0x10000, sizeof data);
	assert_int_equal(call(c, &r, 16, NULL, md5), 0);
	md5_of(data, sizeof data, want);
	assert_memory_equal(md5, want, 16);
}

static void test_write_uses_whole_blocks_inside_region(void **state)
{
	struct chip *c = *state;
	static uint8_t data[0x11000];
	uint8_t after[0x1000];

	fill(data, sizeof data, 2);
	memcpy(after, c->flash + 0x31000, sizeof after);
	assert_int_equal(flash_begin(c, sizeof data, 0x1000, 0x20000), 0);
	for (uint32_t seq = 0; seq < sizeof data / 0x1000; seq++) {
		assert_int_equal(flash_data(c, seq, data + seq * 0x1000, 0x1000), 0);
		if (seq == 0) {
			/* A whole 64 KB block lies inside: erased in one go. */
			assert_int_equal(c->block_erases, 1);
			assert_int_equal(c->erased[0], 0x20000);
		}
	}
	assert_int_equal(flash_end(c, 1), 0);
	assert_int_equal(c->block_erases, 1);
	assert_int_equal(c->sector_erases, 1); /* the 68th KB: one sector */
	assert_int_equal(c->erased[1], 0x30000);
	assert_memory_equal(c->flash + 0x20000, data, sizeof data);
	assert_memory_equal(c->flash + 0x31000, after, sizeof after);
}

static void test_write_odd_sizes_and_escapes(void **state)
{
	struct chip *c = *state;
	uint8_t data[1001];

	/* 1001 bytes, unpadded: the helper pads to whole words itself and the
	 * bytes past the size stay erased. Data full of 0xC0/0xDB. */
	fill(data, sizeof data, 3);
	assert_int_equal(flash_begin(c, sizeof data, 0x400, 0x5000), 0);
	assert_int_equal(flash_data(c, 0, data, sizeof data), 0);
	assert_int_equal(flash_end(c, 1), 0);
	assert_memory_equal(c->flash + 0x5000, data, sizeof data);
	for (uint32_t i = 0x5000 + 1001; i < 0x6000; i++)
		assert_int_equal(c->flash[i], 0xFF);
}

static void test_write_errors(void **state)
{
	struct chip *c = *state;
	uint8_t blk[0x400], other[0x400];
	struct esp_proto_req r;
	unsigned writes;

	fill(blk, sizeof blk, 4);
	fill(other, sizeof other, 5);
	/* FLASH_DATA / FLASH_END with no FLASH_BEGIN. */
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0xC6);
	assert_int_equal(flash_end(c, 1), 0xC6);
	/* Bad parameters. */
	assert_int_equal(flash_begin(c, 0x1000, 0x2000, 0x0), 0xC2); /* block too big */
	assert_int_equal(flash_begin(c, 0x1000, 0x3FE, 0x0), 0xC2);  /* not whole words */
	assert_int_equal(flash_begin(c, 0x1000, 0x400, 0x800), 0xC3); /* not a sector */
	assert_int_equal(words(c, ESP_OP_FLASH_BEGIN,
			       (const uint32_t[]){ 0x1000, 4, 0x400, 0, 1 }, 5), 0xC3);
	assert_int_equal(words(c, ESP_OP_FLASH_BEGIN, (const uint32_t[]){ 0x1000, 4, 0x400 }, 3),
			 0xC0);
	/* 4 words are accepted as well as 5. */
	assert_int_equal(words(c, ESP_OP_FLASH_BEGIN, (const uint32_t[]){ 0x800, 2, 0x400, 0 }, 4),
			 0);
	/* Checksum. */
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 0, blk, sizeof blk, NULL), FW_OK);
	r.checksum ^= 0x5A;
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC1);
	/* A gap in the sequence. */
	assert_int_equal(flash_data(c, 1, blk, sizeof blk), 0xC8);
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0);
	/* The same block again (our answer was lost): accepted, not rewritten;
	 * different bytes for it: refused. */
	writes = c->writes;
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0);
	assert_int_equal(c->writes, writes);
	assert_int_equal(flash_data(c, 0, other, sizeof other), 0xC4);
	/* FLASH_END before the announced 0x800 bytes arrived. */
	assert_int_equal(flash_end(c, 0), 0xC8);
	assert_int_equal(c->reboots, 0); /* no reboot into a partial image */
	assert_int_equal(flash_data(c, 1, blk, sizeof blk), 0xC6); /* closed */

	/* Bytes past the announced size must be 0xFF padding. */
	assert_int_equal(flash_begin(c, 0x200, 0x400, 0x8000), 0);
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0xC9);
	memset(other, 0xFF, sizeof other);
	memcpy(other, blk, 0x200);
	assert_int_equal(flash_data(c, 0, other, sizeof other), 0);
	assert_int_equal(flash_data(c, 1, other, sizeof other), 0xC9); /* past the end */
	/* A block larger than announced. */
	assert_int_equal(flash_begin(c, 0x1000, 0x400, 0x9000), 0);
	{
		uint8_t big[0x800];

		memset(big, 0xFF, sizeof big);
		assert_int_equal(flash_data(c, 0, big, sizeof big), 0xC0);
	}
	/* A length word that disagrees with the payload. */
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 0, blk, sizeof blk, NULL), FW_OK);
	r.head[0] ^= 0x01;
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC0);
	/* Past the end of the flash (after SPI_SET_PARAMS). */
	esp_proto_req_spi_set_params(&r, FLASH_SIZE);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	assert_int_equal(flash_begin(c, 0x2000, 0x400, FLASH_SIZE - 0x1000), 0xC3);
}

static void test_write_flash_failures(void **state)
{
	struct chip *c = *state;
	uint8_t blk[0x400];

	fill(blk, sizeof blk, 6);
	c->fail_unlock = true;
	assert_int_equal(flash_begin(c, 0x400, 0x400, 0x3000), 0xC5);
	c->fail_unlock = false;
	assert_int_equal(flash_begin(c, 0x400, 0x400, 0x3000), 0);
	c->fail_erase = true;
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0xC4);
	c->fail_erase = false;
	/* The read-back catches a write that did not take. */
	c->corrupt_write = true;
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0xC4);
	c->corrupt_write = false;
	assert_int_equal(flash_begin(c, 0x400, 0x400, 0x3000), 0);
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0);
	assert_memory_equal(c->flash + 0x3000, blk, sizeof blk);
	c->fail_read_at = 0x3010;
	assert_int_equal(flash_data(c, 0, blk, sizeof blk), 0xC4); /* resend, unreadable */
}

static void test_flash_end_reboot(void **state)
{
	struct chip *c = *state;
	struct frames fr = { 0 };
	struct esp_proto_req r;

	assert_int_equal(flash_begin(c, 0, 0x400, 0), 0);
	assert_int_equal(flash_end(c, 0), 0);
	assert_int_equal(c->reboots, 1);
	/* The reboot returned (as in the simulator): the helper is gone. */
	esp_proto_req_sync(&r);
	send_req(c, &r);
	take(c, &fr);
	assert_int_equal(fr.n, 0);
}

/* ---- erase, MD5 ---- */

static void test_erase_region_exact(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	uint8_t before[0x1000], after[0x1000];

	memcpy(before, c->flash + 0x3F000, sizeof before);
	memcpy(after, c->flash + 0x61000, sizeof after);
	assert_int_equal(esp_proto_req_erase_region(&r, 0x40000, 0x21000, NULL), FW_OK);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	assert_int_equal(c->block_erases, 2);
	assert_int_equal(c->sector_erases, 1);
	for (uint32_t i = 0x40000; i < 0x61000; i++)
		assert_int_equal(c->flash[i], 0xFF);
	assert_memory_equal(c->flash + 0x3F000, before, sizeof before);
	assert_memory_equal(c->flash + 0x61000, after, sizeof after);
	/* Unaligned start (sectors, not blocks, where it is not aligned). */
	c->n_erased = 0;
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x71000, 0x10000 }, 2),
			 0);
	assert_int_equal(c->n_erased, 16);
	/* Not sector multiples, past the end, bad length. */
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x1000, 0x800 }, 2),
			 0xC3);
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x1800, 0x1000 }, 2),
			 0xC3);
	assert_int_equal(words(c, ESP_OP_ERASE_REGION,
			       (const uint32_t[]){ HELPER_PROTO_FLASH_MAX - 0x1000, 0x2000 }, 2),
			 0xC3);
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x1000 }, 1), 0xC0);
	c->fail_erase = true;
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x1000, 0x1000 }, 2),
			 0xC4);
	c->fail_erase = false;
	c->fail_unlock = true;
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x1000, 0x1000 }, 2),
			 0xC5);
}

static void test_md5(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	uint8_t md5[16], want[16];

	/* Unaligned start and length, longer than one read buffer. */
	esp_proto_req_flash_md5(&r, 0x1003, 0x2001);
	assert_int_equal(call(c, &r, 16, NULL, md5), 0);
	md5_of(c->flash + 0x1003, 0x2001, want);
	assert_memory_equal(md5, want, 16);
	/* Empty region: the MD5 of nothing. */
	esp_proto_req_flash_md5(&r, 0x0, 0);
	assert_int_equal(call(c, &r, 16, NULL, md5), 0);
	md5_of(c->flash, 0, want);
	assert_memory_equal(md5, want, 16);
	esp_proto_req_flash_md5(&r, HELPER_PROTO_FLASH_MAX - 4, 8);
	assert_int_equal(call(c, &r, 16, NULL, md5), 0xC3);
	c->fail_read_at = 0x2000;
	esp_proto_req_flash_md5(&r, 0x1003, 0x2001);
	assert_int_equal(call(c, &r, 16, NULL, md5), 0xC4);
	assert_int_equal(words(c, ESP_OP_SPI_FLASH_MD5, (const uint32_t[]){ 0, 4 }, 2), 0xC0);
}

/* ---- READ_FLASH ---- */

static void ack(struct chip *c, uint32_t total)
{
	uint8_t a[4];
	struct strbuf w = STRBUF_INIT;

	esp_proto_read_stream_ack_encode(total, a);
	slip_append_frame(&w, a, 4);
	assert_false(strbuf_failed(&w));
	feed(c, (const uint8_t *)w.s, w.len);
	strbuf_free(&w);
}

static void test_read_flash_flow_control(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct frames fr = { 0 };
	const uint32_t off = 0x1001, len = 10000, packet = 1024;
	uint8_t got[10000], md5[16];
	uint32_t have = 0;

	assert_int_equal(esp_proto_req_read_flash(&r, off, len, packet, 2, NULL), FW_OK);
	send_req(c, &r);
	take(c, &fr);
	/* The ok response, then exactly the window: 2 packets. */
	assert_int_equal(fr.n, 3);
	assert_int_equal(esp_proto_response_parse(fr.f[0], fr.len[0], 0, 2, &resp, NULL), FW_OK);
	assert_int_equal(resp.op, ESP_OP_READ_FLASH);
	assert_true(esp_proto_response_ok(&resp));
	for (size_t i = 1; i < fr.n; i++) {
		assert_int_equal(fr.len[i], packet);
		memcpy(got + have, fr.f[i], packet);
		have += packet;
	}
	assert_true(helper_proto_reading(&c->h));
	/* An ack for bytes never sent, and a stale one, change nothing. */
	ack(c, have + 1);
	ack(c, 0);
	take(c, &fr);
	assert_int_equal(fr.n, 0);
	while (have < len) {
		ack(c, have); /* everything so far */
		take(c, &fr);
		assert_true(fr.n >= 1);
		for (size_t i = 0; i < fr.n; i++) {
			uint32_t want = len - have < packet ? len - have : packet;

			assert_int_equal(fr.len[i], want);
			memcpy(got + have, fr.f[i], want);
			have += want;
		}
		assert_true(fr.n <= 2);
	}
	assert_int_equal(have, len);
	/* No digest until the last byte is acknowledged. */
	assert_true(helper_proto_reading(&c->h));
	ack(c, len);
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.len[0], 16);
	md5_of(c->flash + off, len, md5);
	assert_memory_equal(fr.f[0], md5, 16);
	assert_memory_equal(got, c->flash + off, len);
	assert_false(helper_proto_reading(&c->h));
	frames_free(&fr);
}

static void test_read_flash_limits(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	struct frames fr = { 0 };
	uint8_t md5[16];

	/* More in flight than the helper allows: it sends its maximum. */
	assert_int_equal(esp_proto_req_read_flash(&r, 0, 16u * 200u, 16, 1000, NULL), FW_OK);
	send_req(c, &r);
	take(c, &fr);
	assert_int_equal(fr.n, 1 + HELPER_PROTO_READ_INFLIGHT_MAX);
	/* Any other frame ends the stream and is served. */
	esp_proto_req_sync(&r);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	assert_false(helper_proto_reading(&c->h));
	ack(c, 16u * 64u); /* a late ack is not a request: ignored */
	take(c, &fr);
	assert_int_equal(fr.n, 0);

	/* Zero length: the response, then the digest of nothing. */
	assert_int_equal(esp_proto_req_read_flash(&r, 0x100, 0, 4096, 64, NULL), FW_OK);
	send_req(c, &r);
	take(c, &fr);
	assert_int_equal(fr.n, 2);
	md5_of(c->flash, 0, md5);
	assert_int_equal(fr.len[1], 16);
	assert_memory_equal(fr.f[1], md5, 16);

	/* Bad parameters. */
	assert_int_equal(esp_proto_req_read_flash(&r, 0, 4096, HELPER_PROTO_READ_PACKET_MAX + 4, 1,
						  NULL),
			 FW_OK);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC2);
	assert_int_equal(words(c, ESP_OP_READ_FLASH, (const uint32_t[]){ 0, 4096, 0, 1 }, 4), 0xC2);
	assert_int_equal(words(c, ESP_OP_READ_FLASH, (const uint32_t[]){ 0, 4096, 64, 0 }, 4), 0xC2);
	assert_int_equal(words(c, ESP_OP_READ_FLASH,
			       (const uint32_t[]){ HELPER_PROTO_FLASH_MAX, 1, 64, 1 }, 4),
			 0xC3);
	assert_int_equal(words(c, ESP_OP_READ_FLASH, (const uint32_t[]){ 0, 4096, 64 }, 3), 0xC0);

	/* A flash error mid-stream ends it with an error response. */
	c->fail_read_at = 0x2000;
	assert_int_equal(esp_proto_req_read_flash(&r, 0x1000, 0x2000, 0x1000, 1, NULL), FW_OK);
	send_req(c, &r);
	take(c, &fr);
	assert_int_equal(fr.n, 2); /* ok + first packet */
	ack(c, 0x1000);
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	assert_int_equal(esp_proto_response_match(fr.f[0], fr.len[0], ESP_OP_READ_FLASH),
			 ESP_MATCH_YES);
	assert_int_equal(fr.f[0][8], 0xC4);
	assert_false(helper_proto_reading(&c->h));
	frames_free(&fr);
}

/* ---- baud rate, parameters, framing ---- */

static void test_change_baud_after_answer(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;
	struct frames fr = { 0 };

	esp_proto_req_change_baud(&r, ESP_LOADER_STUB, 921600, 115200);
	send_req(c, &r);
	/* set_baud saw the whole answer already handed to tx. */
	assert_int_equal(c->baud_new, 921600);
	assert_int_equal(c->baud_old, 115200);
	assert_int_equal(c->tx_at_baud, c->tx.len);
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.f[0][1], ESP_OP_CHANGE_BAUDRATE);
	assert_int_equal(fr.f[0][8], 0);
	frames_free(&fr);
	c->baud_new = 0;
	/* The old rate is required (the ROM dialect sends 0), limits hold. */
	esp_proto_req_change_baud(&r, ESP_LOADER_STUB, 921600, 0);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC3);
	esp_proto_req_change_baud(&r, ESP_LOADER_STUB, HELPER_PROTO_BAUD_MAX + 1, 115200);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC3);
	assert_int_equal(c->baud_new, 0);
	assert_int_equal(words(c, ESP_OP_CHANGE_BAUDRATE, (const uint32_t[]){ 921600 }, 1), 0xC0);
}

static void test_params_attach_unknown(void **state)
{
	struct chip *c = *state;
	struct esp_proto_req r;

	esp_proto_req_spi_set_params(&r, 512u * 1024u);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	assert_int_equal(words(c, ESP_OP_ERASE_REGION, (const uint32_t[]){ 0x80000, 0x1000 }, 2),
			 0xC3); /* now past the end */
	esp_proto_req_spi_set_params(&r, 0);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC3);
	esp_proto_req_spi_attach(&r, ESP_LOADER_STUB, 0);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0);
	esp_proto_req_spi_attach(&r, ESP_LOADER_STUB, 1);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xC3);
	/* What the helper does not do: "not implemented". */
	assert_int_equal(words(c, ESP_OP_MEM_BEGIN, (const uint32_t[]){ 0, 0, 0, 0 }, 4), 0xFF);
	esp_proto_req_empty(&r, ESP_OP_ERASE_FLASH);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xFF);
	esp_proto_req_empty(&r, ESP_OP_RUN_USER_CODE);
	assert_int_equal(call(c, &r, 0, NULL, NULL), 0xFF);
}

static void test_framing_robustness(void **state)
{
	struct chip *c = *state;
	struct frames fr = { 0 };
	struct esp_proto_req r;
	static uint8_t big[HELPER_PROTO_FRAME_MAX + 10];
	/* Junk; a READ_REG spoilt by a bad escape (dropped whole, not
	 * answered); a response-direction frame; a short frame. */
	const uint8_t noise[] = { 0x55, 0x13,
				  0xC0, 0x00, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0xDB, 0x01,
				  0x00, 0x60, 0xC0,
				  0xC0, 0x01, 0x08, 0x00, 0x00, 0, 0, 0, 0, 0xC0,
				  0xC0, 0x00, 0x08, 0xC0 };
	/* A size field that disagrees with the frame. */
	const uint8_t badsize[] = { 0xC0, 0x00, 0x0A, 0x08, 0x00, 0, 0, 0, 0,
				    0x00, 0x00, 0x00, 0x60, 0xC0 };

	feed(c, noise, sizeof noise);
	take(c, &fr);
	assert_int_equal(fr.n, 0);
	/* An oversize frame is dropped whole. */
	memset(big, 0x11, sizeof big);
	big[0] = 0xC0;
	big[sizeof big - 1] = 0xC0;
	feed(c, big, sizeof big);
	take(c, &fr);
	assert_int_equal(fr.n, 0);
	feed(c, badsize, sizeof badsize);
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	assert_int_equal(fr.f[0][1], ESP_OP_READ_REG);
	assert_int_equal(fr.f[0][8], 0xC0);
	/* Still in step: a request split into single bytes works. */
	{
		struct strbuf w = STRBUF_INIT;

		esp_proto_req_read_reg(&r, 0x60000000);
		c->regs[0] = 0xC0DBC0DB; /* escapes in the answer too */
		assert_int_equal(esp_proto_request_frame(&r, &w, NULL), FW_OK);
		for (size_t i = 0; i < w.len; i++)
			feed(c, (const uint8_t *)w.s + i, 1);
		strbuf_free(&w);
	}
	take(c, &fr);
	assert_int_equal(fr.n, 1);
	{
		struct esp_proto_resp resp;

		assert_int_equal(esp_proto_response_parse(fr.f[0], fr.len[0], 0, 2, &resp, NULL),
				 FW_OK);
		assert_int_equal(resp.value, 0xC0DBC0DB);
	}
	frames_free(&fr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_greeting),
		T(test_sync_once_value_zero),
		T(test_registers),
		T(test_write_exact_erase),
		T(test_write_uses_whole_blocks_inside_region),
		T(test_write_odd_sizes_and_escapes),
		T(test_write_errors),
		T(test_write_flash_failures),
		T(test_flash_end_reboot),
		T(test_erase_region_exact),
		T(test_md5),
		T(test_read_flash_flow_control),
		T(test_read_flash_limits),
		T(test_change_baud_after_answer),
		T(test_params_attach_unknown),
		T(test_framing_robustness),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
