/* flashwise's RAM helper on the simulated ESP8266. When the driver uploads
 * exactly the bytes of include/helper_blob.h and starts them, the simulator
 * does not imitate the helper: it runs the helper's own protocol code
 * (src/helper/helper_proto.c, built for the host) on top of the simulated
 * UART, flash and registers. What the tests see is therefore the logic the
 * chip runs; only the platform functions below stand in for the ROM
 * routines and UART registers of src/helper/lx106/main.c. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_blob.h"
#include "helper_proto.h"
#include "sim.h"

#define SIM_RST_SOFTWARE 2 /* as the FLASH_END reboot of the ROM */

struct sim_helper {
	struct sim *s;
	struct helper_proto_platform pf;
	EVP_MD_CTX *md5;
	struct helper_proto h;
};

/* ---- platform ---- */

static void p_tx(void *ctx, const uint8_t *p, size_t n)
{
	struct sim *s = ctx;

	sim_tx(s, p, n, s->uart_baud);
}

static int p_flash_read(void *ctx, uint32_t addr, uint8_t *dst, uint32_t len)
{
	struct sim *s = ctx;

	/* Addresses past the chip wrap around, as on real flash. */
	for (uint32_t i = 0; i < len; i++)
		dst[i] = s->flash[((size_t)addr + i) % s->cfg.flash_size];
	sim_busy_for(s, s->cfg.flash_timing ? (uint64_t)len * 50u : 0);
	return 0;
}

static int p_flash_write(void *ctx, uint32_t addr, const uint8_t *src, uint32_t len)
{
	struct sim *s = ctx;

	sim_flash_program(s, addr, src, len);
	sim_busy_for(s, sim_flash_program_ns(s, len));
	return 0;
}

static int p_erase_sector(void *ctx, uint32_t sector)
{
	struct sim *s = ctx;

	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: helper erases sector 0x%X\n",
			sector * ESP_PROTO_SECTOR);
	sim_flash_erase(s, sector, 1);
	sim_busy_for(s, sim_flash_erase_ns(s, 1));
	return 0;
}

static int p_erase_block(void *ctx, uint32_t block)
{
	struct sim *s = ctx;
	const uint32_t per = ESP_PROTO_BLOCK64 / ESP_PROTO_SECTOR;

	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: helper erases 64 KB block 0x%X\n",
			block * ESP_PROTO_BLOCK64);
	sim_flash_erase(s, block * per, per);
	sim_busy_for(s, sim_flash_erase_ns(s, per));
	return 0;
}

static void p_md5_begin(void *ctx)
{
	struct sim *s = ctx;

	EVP_DigestInit_ex(s->helper->md5, EVP_md5(), NULL);
}

static void p_md5_update(void *ctx, const uint8_t *p, uint32_t n)
{
	struct sim *s = ctx;

	EVP_DigestUpdate(s->helper->md5, p, n);
}

static void p_md5_end(void *ctx, uint8_t out[16])
{
	struct sim *s = ctx;
	unsigned len = 0;

	if (EVP_DigestFinal_ex(s->helper->md5, out, &len) != 1 || len != 16)
		memset(out, 0, 16); /* a wrong digest the host will reject */
}

static uint32_t p_reg_read(void *ctx, uint32_t addr)
{
	return sim_reg_read(ctx, addr);
}

static void p_reg_write(void *ctx, uint32_t addr, uint32_t value)
{
	struct esp_proto_reg_write w = { .addr = addr, .value = value, .mask = 0xFFFFFFFFu };

	sim_reg_write(ctx, &w);
}

static void p_delay_us(void *ctx, uint32_t us)
{
	sim_busy_for(ctx, (uint64_t)us * 1000u);
}

/* The answer is already queued at the old rate (sim_tx stamps each byte
 * with the rate it leaves at); everything after goes at the new one. */
static void p_set_baud(void *ctx, uint32_t new_baud, uint32_t old_baud)
{
	struct sim *s = ctx;

	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: helper switches from %u to %u baud\n", old_baud,
			new_baud);
	s->uart_baud = new_baud;
}

static void p_reboot(void *ctx)
{
	struct sim *s = ctx;

	sim_boot(s, sim_straps_download(s), SIM_RST_SOFTWARE);
}

/* ---- recognising the upload ---- */

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The uploaded regions hash to helper_blob_sha256 (same definition as
 * src/helper/mkblob.c: address, length, bytes per region, in order). */
static bool upload_is_helper(const struct sim *s)
{
	EVP_MD_CTX *c;
	uint8_t sha[32];
	unsigned len = 0;
	bool ok;

	if (s->n_ram_seg != HELPER_BLOB_SEGMENTS)
		return false;
	c = EVP_MD_CTX_new();
	ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < s->n_ram_seg; i++) {
		const struct sim_ram_seg *g = &s->ram_seg[i];
		uint8_t head[8];

		le32(head, g->addr);
		le32(head + 4, g->len);
		ok = EVP_DigestUpdate(c, head, sizeof head) == 1 &&
		     EVP_DigestUpdate(c, s->ram + g->off, g->len) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(c, sha, &len) == 1 && len == sizeof sha;
	EVP_MD_CTX_free(c);
	return ok && memcmp(sha, helper_blob_sha256, sizeof sha) == 0;
}

bool sim_helper_start(struct sim *s, uint32_t entry)
{
	struct sim_helper *sh;

	if (s->fam != ESP_FAMILY_ESP8266 || entry != HELPER_BLOB_ENTRY || !upload_is_helper(s))
		return false;
	if (!s->helper) {
		s->helper = calloc(1, sizeof *s->helper);
		if (!s->helper || !(s->helper->md5 = EVP_MD_CTX_new())) {
			fprintf(stderr, "flashwise-sim: out of memory starting the RAM helper\n");
			sim_helper_free(s);
			return false;
		}
	}
	sh = s->helper;
	sh->s = s;
	sh->pf = (struct helper_proto_platform){
		.ctx = s,
		.tx = p_tx,
		.flash_read = p_flash_read,
		.flash_write = p_flash_write,
		.flash_erase_sector = p_erase_sector,
		.flash_erase_block = p_erase_block,
		.md5_begin = p_md5_begin,
		.md5_update = p_md5_update,
		.md5_end = p_md5_end,
		.reg_read = p_reg_read,
		.reg_write = p_reg_write,
		.delay_us = p_delay_us,
		.set_baud = p_set_baud,
		.reboot = p_reboot,
	};
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: MEM_END entry 0x%08X: flashwise RAM helper runs\n",
			entry);
	/* The helper attaches the flash itself and owns the UART from here;
	 * the ROM loader's state is gone. */
	s->mode = SIM_MODE_HELPER;
	s->spi_attached = true;
	s->flash_open = s->mem_open = false;
	slip_decoder_reset(&s->dec);
	helper_proto_init(&sh->h, &sh->pf);
	helper_proto_start(&sh->h);
	return true;
}

void sim_helper_input(struct sim *s, uint8_t b)
{
	if (s->helper)
		helper_proto_input(&s->helper->h, &b, 1);
}

void sim_helper_free(struct sim *s)
{
	if (!s->helper)
		return;
	EVP_MD_CTX_free(s->helper->md5);
	free(s->helper);
	s->helper = NULL;
}
