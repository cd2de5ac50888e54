/* Reset and boot of the simulated chip: the ROM's boot messages, the
 * choice between the serial loader and the image in flash, and the
 * "application" output taken from that image (sample firmware carries a
 * SAMPLE_BANNER_TAG line), so a post-flash boot check reads real text. */
#include <stdio.h>
#include <string.h>

#include "esp_image.h"
#include "sample.h"
#include "sim.h"
#include "strbuf.h"

#define ESP8266_ROM_BAUD 74880u /* 26 MHz crystal */
#define APP_BAUD 115200u
#define BANNER_MAX 200

static void say(struct sim *s, struct strbuf *b, uint32_t baud)
{
	if (!strbuf_failed(b) && b->len)
		sim_tx(s, (const uint8_t *)b->s, b->len, baud);
	strbuf_reset(b);
}

/* The text after SAMPLE_BANNER_TAG inside img[0..n), up to the line end;
 * false when the image carries none. */
static bool find_banner(const uint8_t *img, size_t n, struct strbuf *out)
{
	size_t tl = strlen(SAMPLE_BANNER_TAG);

	for (size_t i = 0; i + tl <= n; i++) {
		if (memcmp(img + i, SAMPLE_BANNER_TAG, tl) != 0)
			continue;
		for (size_t j = i + tl; j < n && j - i - tl < BANNER_MAX; j++) {
			if (img[j] == '\n' || img[j] == '\r' || img[j] == 0)
				break;
			strbuf_add(out, &img[j], 1);
		}
		return true;
	}
	return false;
}

static void boot_app_esp8266(struct sim *s, struct strbuf *b)
{
	struct esp_image_info info;
	int rc;

	memset(&info, 0, sizeof info);
	rc = esp_image_parse(s->flash, s->cfg.flash_size, PROFILE_FAMILY_ESP8266, &info, NULL);
	if (s->flash[0] != ESP_IMAGE_MAGIC) {
		/* Blank or foreign data at 0: the ROM gives up. */
		strbuf_adds(b, "ets_main.c \r\n");
		say(s, b, ESP8266_ROM_BAUD);
		return;
	}
	for (size_t i = 0; i < info.nseg_parsed; i++) {
		uint8_t sum = ESP_IMAGE_CHECKSUM_SEED;

		for (size_t k = 0; k <= i; k++)
			for (uint32_t j = 0; j < info.seg[k].len &&
			     info.seg[k].offset + j < s->cfg.flash_size; j++)
				sum ^= s->flash[info.seg[k].offset + j];
		strbuf_addf(b, "load 0x%08x, len %u, room 16 \r\ntail %u\r\nchksum 0x%02x\r\n",
			    info.seg[i].load_addr, info.seg[i].len, info.seg[i].len % 16, sum);
	}
	if (rc != FW_OK) {
		if (info.checksum_offset && info.checksum_calc != info.checksum_stored)
			strbuf_addf(b, "csum 0x%02x\r\ncsum err\r\nets_main.c \r\n",
				    info.checksum_stored);
		else
			strbuf_adds(b, "flash read err, ets_unpack_flash_code\r\n");
		say(s, b, ESP8266_ROM_BAUD);
		return;
	}
	strbuf_addf(b, "csum 0x%02x\r\n", info.checksum_stored);
	say(s, b, ESP8266_ROM_BAUD);
	/* The application sets its own UART rate. */
	if (find_banner(s->flash, info.end, b)) {
		struct strbuf line = STRBUF_INIT;

		strbuf_adds(&line, "\r\n");
		strbuf_add(&line, b->s, b->len);
		strbuf_adds(&line, "\r\n");
		strbuf_reset(b);
		say(s, &line, APP_BAUD);
		strbuf_free(&line);
	}
}

static bool esp32_image_at(struct sim *s, uint32_t off, struct esp_image_info *info)
{
	memset(info, 0, sizeof *info);
	if (off >= s->cfg.flash_size)
		return false;
	return esp_image_parse(s->flash + off, s->cfg.flash_size - off, PROFILE_FAMILY_ESP32,
			       info, NULL) == FW_OK;
}

static void boot_app_esp32(struct sim *s, struct strbuf *b)
{
	uint32_t bl = s->cfg.chip->bootloader_offset;
	struct esp_image_info info, app;
	const uint8_t *hdr = s->flash + bl;

	strbuf_adds(b, "configsip: 0, SPIWP:0xee\r\n"
		       "clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
		       "mode:DIO, clock div:2\r\n");
	if (!esp32_image_at(s, bl, &info)) {
		if (hdr[0] != ESP_IMAGE_MAGIC) {
			/* The real ROM repeats this forever; three show it. */
			for (int i = 0; i < 3; i++)
				strbuf_addf(b, "invalid header: 0x%02x%02x%02x%02x\r\n", hdr[3],
					    hdr[2], hdr[1], hdr[0]);
		} else if (info.checksum_offset && info.checksum_calc != info.checksum_stored) {
			strbuf_addf(b, "csum err:0x%02x!=0x%02x\r\nets_main.c 371 \r\n",
				    info.checksum_calc, info.checksum_stored);
		} else {
			strbuf_adds(b, "flash read err, 1000\r\nets_main.c 371 \r\n");
		}
		say(s, b, APP_BAUD);
		return;
	}
	for (size_t i = 0; i < info.nseg_parsed; i++)
		strbuf_addf(b, "load:0x%08x,len:%u\r\n", info.seg[i].load_addr, info.seg[i].len);
	strbuf_addf(b, "entry 0x%08x\r\n", info.entry);
	say(s, b, APP_BAUD);
	/* The second stage runs the app partition (0x10000 on the usual
	 * table); its banner wins, else the bootloader's own. */
	if ((esp32_image_at(s, 0x10000u, &app) &&
	     find_banner(s->flash + 0x10000u, app.end, b)) ||
	    find_banner(s->flash + bl, info.end, b)) {
		struct strbuf line = STRBUF_INIT;

		strbuf_add(&line, b->s, b->len);
		strbuf_adds(&line, "\r\n");
		strbuf_reset(b);
		say(s, &line, APP_BAUD);
		strbuf_free(&line);
	}
}

void sim_hold_reset(struct sim *s)
{
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: EN low: chip in reset\n");
	s->mode = SIM_MODE_RESET;
	/* Bytes still in the chip's UART FIFO never leave. */
	sim_tx_drop_all(s);
	sim_rom_reset(s);
}

void sim_boot(struct sim *s, bool download, unsigned rst_cause)
{
	struct strbuf b = STRBUF_INIT;

	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: boot (%s), rst cause %u\n",
			download ? "download mode" : "flash", rst_cause);
	sim_rom_reset(s);
	if (s->faults.hang_after >= 0)
		s->faults.commands = 0;
	if (s->fam == ESP_FAMILY_ESP8266) {
		s->uart_baud = ESP8266_ROM_BAUD;
		/* boot mode: strapping pins (GPIO15, GPIO0, GPIO2) as bits
		 * 2..0: 1 = UART download, 3 = flash (section 9). */
		strbuf_addf(&b, "\r\n ets Jan  8 2013,rst cause:%u, boot mode:(%u,7)\r\n\r\n",
			    rst_cause, download ? 1u : 3u);
		if (download) {
			say(s, &b, ESP8266_ROM_BAUD);
			s->mode = SIM_MODE_LOADER;
		} else {
			s->mode = SIM_MODE_APP;
			boot_app_esp8266(s, &b);
		}
	} else {
		s->uart_baud = APP_BAUD;
		strbuf_addf(&b, "ets Jun  8 2016 00:22:57\r\n\r\nrst:%s,boot:%s\r\n",
			    rst_cause == 4 ? "0x10 (RTCWDT_RTC_RESET)" : "0x1 (POWERON_RESET)",
			    download ? "0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
				     : "0x13 (SPI_FAST_FLASH_BOOT)");
		if (download) {
			strbuf_adds(&b, "waiting for download\r\n");
			say(s, &b, APP_BAUD);
			s->mode = SIM_MODE_LOADER;
		} else {
			s->mode = SIM_MODE_APP;
			boot_app_esp32(s, &b);
		}
	}
	say(s, &b, s->uart_baud);
	strbuf_free(&b);
}

bool sim_run_ram_code(struct sim *s, uint32_t entry)
{
	if (sim_helper_start(s, entry))
		return true;
	if (s->cfg.verbose)
		fprintf(stderr,
			"flashwise-sim: MEM_END entry 0x%08X: %zu uploaded region(s) not recognised, "
			"staying in the loader\n",
			entry, s->n_ram_seg);
	return false;
}
