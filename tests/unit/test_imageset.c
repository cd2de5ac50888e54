/* Checking a set of images against a profile (profiles built in code). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imageset.h"
#include "integrity.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))
#define MB(n) ((uint32_t)(n) << 20)

/* ---- profiles ---- */

static void add_part(struct profile *p, const char *name, uint32_t off, uint32_t size,
		     enum partition_role role, bool protect)
{
	struct profile_partition *pp = &p->part[p->npart++];

	snprintf(pp->name, sizeof(pp->name), "%s", name);
	pp->offset = off;
	pp->size = size;
	pp->role = role;
	pp->protect = protect;
}

static void esp8266_profile(struct profile *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "nodemcu-v3");
	p->family = PROFILE_FAMILY_ESP8266;
	p->protocol = PROFILE_PROTO_ESP_ROM;
	snprintf(p->chip, sizeof(p->chip), "esp8266");
	p->flash_size = MB(4);
	p->sector_size = 4096;
	p->page_size = 256;
	p->flash_mode = PROFILE_MODE_DIO;
	p->flash_freq_mhz = 40;
	p->flash_size_flag = MB(4);
	add_part(p, "firmware", 0x0, 0x100000, PART_ROLE_APP, false);
	add_part(p, "fs", 0x100000, 0x2FB000, PART_ROLE_DATA, false);
	add_part(p, "rf_cal", 0x3FB000, 0x1000, PART_ROLE_RF_CAL, false);
	add_part(p, "init_data", 0x3FC000, 0x1000, PART_ROLE_INIT_DATA, false);
	add_part(p, "blank", 0x3FE000, 0x1000, PART_ROLE_BLANK, false);
}

static void esp32_profile(struct profile *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "devkitc");
	p->family = PROFILE_FAMILY_ESP32;
	p->protocol = PROFILE_PROTO_ESP_ROM;
	snprintf(p->chip, sizeof(p->chip), "esp32");
	p->flash_size = MB(4);
	p->sector_size = 4096;
	p->page_size = 256;
	p->flash_mode = PROFILE_MODE_DIO;
	p->flash_freq_mhz = 40;
	p->flash_size_flag = MB(4);
	add_part(p, "bootloader", 0x1000, 0x7000, PART_ROLE_BOOTLOADER, false);
	add_part(p, "ptable", 0x8000, 0x1000, PART_ROLE_PARTITION_TABLE, false);
	add_part(p, "nvs", 0x9000, 0x6000, PART_ROLE_DATA, false);
	add_part(p, "app", 0x10000, 0x100000, PART_ROLE_APP, false);
}

static void avr_profile(struct profile *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "uno");
	p->family = PROFILE_FAMILY_AVR;
	p->protocol = PROFILE_PROTO_STK500V1;
	snprintf(p->chip, sizeof(p->chip), "atmega328p");
	p->flash_size = 32768;
	p->sector_size = 128;
	p->page_size = 128;
	p->flash_mode = PROFILE_MODE_NONE;
	add_part(p, "app", 0x0, 0x7E00, PART_ROLE_APP, false);
	add_part(p, "boot", 0x7E00, 0x200, PART_ROLE_BOOTLOADER, true);
}

/* ---- images ---- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A valid two-segment ESP image of at least `min` bytes (zero-filled after
 * the image proper), into a fresh image placed at addr. */
static void esp_img(struct image *img, bool esp32, uint8_t b2, uint8_t b3, bool hash,
		    uint16_t chip, size_t min, uint32_t addr)
{
	size_t cap = 4096 + min, off;
	uint8_t *b = calloc(1, cap), sum = 0xEF;

	assert_non_null(b);
	b[0] = 0xE9;
	b[1] = 2;
	b[2] = b2;
	b[3] = b3;
	put32(b + 4, 0x40080000);
	off = 8;
	if (esp32) {
		b[8] = 0xEE;
		b[12] = (uint8_t)chip;
		b[23] = hash;
		off = 24;
	}
	for (int s = 0; s < 2; s++) {
		put32(b + off, 0x40080000 + (uint32_t)s * 0x1000);
		put32(b + off + 4, 100);
		off += 8;
		for (int k = 0; k < 100; k++) {
			b[off + k] = (uint8_t)(k + s * 31);
			sum ^= b[off + k];
		}
		off += 100;
	}
	off |= 15;
	b[off++] = sum;
	if (hash) {
		assert_int_equal(integrity_sha256(b, off, b + off), 0);
		off += 32;
	}
	if (off < min)
		off = min;
	image_init(img);
	assert_int_equal(image_from_bin(img, b, off, addr, NULL), FW_OK);
	free(b);
}

static void bin_img(struct image *img, uint32_t addr, size_t len, uint8_t v)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	memset(b, v, len);
	image_init(img);
	assert_int_equal(image_from_bin(img, b, len, addr, NULL), FW_OK);
	free(b);
}

/* Text of the first verdict at this level that mentions `needle`. */
static const char *find(const struct imageset_report *r, enum imageset_level lvl,
			const char *needle)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].level == lvl && strstr(r->v[i].text, needle))
			return r->v[i].text;
	return NULL;
}

/* ---- tests ---- */

static void test_esp8266_nodemcu_ok(void **state)
{
	struct profile p;
	struct image fw, init;
	struct imageset_report r;
	struct fw_err e = {0};
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	esp8266_profile(&p);
	esp_img(&fw, false, 0x02, 0x40, false, 0, 0x60000, 0x0); /* dio/4MB/40m */
	bin_img(&init, 0x3FC000, 128, 0x05);
	{
		struct imageset_item it[] = {
			{"nodemcu.bin", NULL, &fw},
			{"esp_init_data_default.bin", "init_data", &init},
		};

		assert_int_equal(imageset_check(&p, it, 2, &r, &e), FW_OK);
	}
	assert_int_equal(r.nerr, 0);
	assert_int_equal(r.nwarn, 0);
	assert_int_equal(r.npatch, 0);
	assert_non_null(find(&r, IMAGESET_OK, "header agrees with the profile (dio, 4MB, 40m"));
	assert_non_null(find(&r, IMAGESET_OK, "nodemcu.bin: 0x00000000..0x0005FFFF"));
	assert_non_null(find(&r, IMAGESET_OK, "partition 'init_data'"));
	imageset_format(&r, &sb);
	HAS(strbuf_str(&sb), "ok: nodemcu.bin");
	HAS(strbuf_str(&sb), "0 errors, 0 warnings");
	strbuf_free(&sb);
	image_free(&fw);
	image_free(&init);
}

static void test_image_larger_than_partition(void **state)
{
	struct profile p;
	struct image app;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"app.bin", "app", &app};

	(void)state;
	esp32_profile(&p);
	esp_img(&app, true, 0x02, 0x20, false, 0, 0x100000 + 300, 0x10000);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	assert_int_equal(e.code, FW_EIMAGE);
	HAS(e.msg, "app.bin");
	HAS(e.msg, "1048876 bytes from 0x00010000 do not fit in partition 'app'");
	HAS(e.msg, "1048576 bytes): 300 bytes too large");
	assert_int_equal(r.nerr, 1);
	assert_null(find(&r, IMAGESET_OK, "app.bin"));
	image_free(&app);
}

static void test_overlap_and_shared_sector(void **state)
{
	struct profile p;
	struct image a, b;
	struct imageset_report r;
	struct fw_err e = {0};

	(void)state;
	esp8266_profile(&p);
	bin_img(&a, 0x100000, 0x3000, 0);
	bin_img(&b, 0x102000, 0x2000, 1);
	{
		struct imageset_item it[] = {{"fs1.bin", NULL, &a}, {"fs2.bin", NULL, &b}};

		assert_int_equal(imageset_check(&p, it, 2, &r, &e), FW_EIMAGE);
	}
	HAS(e.msg, "fs2.bin (0x00102000..0x00103FFF) overlaps fs1.bin (0x00100000..0x00102FFF)");
	image_free(&b);

	/* Next to each other in separate sectors: fine. */
	bin_img(&b, 0x103000 + 0x800, 0x800, 1);
	{
		struct imageset_item it[] = {{"fs1.bin", NULL, &a}, {"fs2.bin", NULL, &b}};

		assert_int_equal(imageset_check(&p, it, 2, &r, &e), FW_OK);
	}
	/* No byte in common, but the same 4 KB sector. */
	image_free(&a);
	bin_img(&a, 0x100000, 0x3100, 0);
	{
		struct imageset_item it[] = {{"fs1.bin", NULL, &a}, {"fs2.bin", NULL, &b}};

		assert_int_equal(imageset_check(&p, it, 2, &r, &e), FW_EIMAGE);
	}
	assert_non_null(find(&r, IMAGESET_ERROR, "share the erase sector at 0x00103000"));
	image_free(&a);
	image_free(&b);
}

static void test_protected_partition(void **state)
{
	struct profile p;
	struct image img = IMAGE_INIT;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"blink_with_bootloader.hex", NULL, &img};
	const char *v;
	uint8_t d[64] = {0};

	(void)state;
	avr_profile(&p);
	assert_int_equal(image_add(&img, 0x0, d, 64, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x7E00, d, 64, NULL), FW_OK);
	img.format = IMAGE_FORMAT_HEX;
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	v = find(&r, IMAGESET_ERROR, "protected partition 'boot'");
	assert_non_null(v);
	HAS(v, "0x00007E00..0x00007E3F");
	image_free(&img);

	/* The same sketch without the bootloader is fine. */
	assert_int_equal(image_add(&img, 0x0, d, 64, NULL), FW_OK);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	assert_non_null(find(&r, IMAGESET_OK, "partition 'app'"));
	image_free(&img);
}

static void test_past_flash_and_outside_partitions(void **state)
{
	struct profile p;
	struct image img;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"big.bin", NULL, &img};

	(void)state;
	esp8266_profile(&p);
	bin_img(&img, 0x3FE000, 0x3000, 0xFF);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	assert_non_null(find(&r, IMAGESET_ERROR, "past the end of the 4194304-byte flash by 4096"));
	image_free(&img);

	bin_img(&img, 0x500000, 16, 0xFF);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	assert_non_null(find(&r, IMAGESET_ERROR, "beyond the end"));
	image_free(&img);

	/* 0x3FD000 lies between init_data and blank. */
	bin_img(&img, 0x3FD000, 16, 0xFF);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "in no partition of profile 'nodemcu-v3'");
	HAS(e.msg, "init_data at 0x3FC000");
	image_free(&img);
}

static void test_bootloader_must_be_valid(void **state)
{
	struct profile p;
	struct image img;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"bootloader.bin", "bootloader", &img};

	(void)state;
	esp32_profile(&p);
	bin_img(&img, 0x1000, 0x100, 0x00);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "bootloader.bin");
	HAS(e.msg, "bootloader offset 0x1000 must be a valid ESP image");
	HAS(e.msg, "first byte is 0x00");
	image_free(&img);

	/* Truncated: the valid header promises more than the file has. */
	{
		struct image full;

		esp_img(&full, true, 0x02, 0x20, false, 0, 0, 0x1000);
		assert_int_equal(image_from_bin(&img, full.range[0].data, 100, 0x1000, NULL),
				 FW_OK);
		image_free(&full);
	}
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "truncated");
	HAS(e.msg, "segment 0");
	image_free(&img);
}

static void test_flags_mismatch_warns_and_patch_fixes(void **state)
{
	struct profile p;
	struct image fw, orig;
	struct imageset_report r;
	struct esp_image_patch w;
	struct fw_err e = {0};
	struct imageset_item it = {"nodemcu.bin", NULL, &fw};
	const char *v;

	(void)state;
	esp8266_profile(&p);
	esp_img(&fw, false, 0x00, 0x00, false, 0, 0x2000, 0x0); /* qio/512KB/40m */
	assert_int_equal(image_copy(&orig, &fw, NULL), FW_OK);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	assert_int_equal(r.nwarn, 1);
	assert_int_equal(r.npatch, 1);
	v = find(&r, IMAGESET_WARN, "nodemcu.bin");
	assert_non_null(v);
	HAS(v, "qio, 512KB, 40m (0x0000)");
	HAS(v, "dio, 4MB, 40m (0x0240)");
	HAS(v, "will patch bytes 2-3");
	/* The check does not touch the image. */
	assert_memory_equal(fw.range[0].data, orig.range[0].data, fw.range[0].len);

	assert_int_equal(imageset_patch(&p, &fw, &w, &e), FW_OK);
	assert_true(w.changed);
	assert_int_equal(fw.range[0].data[2], 0x02);
	assert_int_equal(fw.range[0].data[3], 0x40);
	assert_memory_equal(fw.range[0].data + 4, orig.range[0].data + 4, fw.range[0].len - 4);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	assert_int_equal(r.npatch, 0);
	assert_non_null(find(&r, IMAGESET_OK, "agrees"));
	image_free(&fw);
	image_free(&orig);
}

static void test_esp32_sha_patch(void **state)
{
	struct profile p;
	struct image bl, app;
	struct imageset_report r;
	struct esp_image_patch w;
	struct esp_image_info info;
	struct fw_err e = {0};

	(void)state;
	esp32_profile(&p);
	p.flash_mode = PROFILE_MODE_QIO;
	p.flash_freq_mhz = 80;
	esp_img(&bl, true, 0x02, 0x20, true, 0, 0, 0x1000);
	esp_img(&app, true, 0x02, 0x20, true, 0, 0x20000, 0x10000);
	{
		struct imageset_item it[] = {{"bootloader.bin", NULL, &bl}, {"app.bin", "app", &app}};

		assert_int_equal(imageset_check(&p, it, 2, &r, &e), FW_OK);
	}
	assert_non_null(find(&r, IMAGESET_WARN, "recompute the appended SHA-256"));
	assert_int_equal(r.npatch, 1); /* only the image at the bootloader offset */
	assert_int_equal(imageset_patch(&p, &bl, &w, &e), FW_OK);
	assert_true(w.digest_updated);
	assert_int_equal(bl.range[0].data[2], 0x00);
	assert_int_equal(bl.range[0].data[3], 0x2F);
	assert_int_equal(esp_image_parse(bl.range[0].data, bl.range[0].len, PROFILE_FAMILY_ESP32,
					 &info, &e), FW_OK);
	/* The app is not at the bootloader offset: left alone. */
	assert_int_equal(imageset_patch(&p, &app, &w, &e), FW_OK);
	assert_false(w.changed);
	assert_int_equal(app.range[0].data[2], 0x02);
	image_free(&bl);
	image_free(&app);
}

static void test_esp8266_unaligned_start_warns(void **state)
{
	struct profile p;
	struct image img;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"data.bin", NULL, &img};
	const char *v;

	(void)state;
	esp8266_profile(&p);
	bin_img(&img, 0x121800, 0x400, 0x11);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	assert_int_equal(r.nwarn, 1);
	v = find(&r, IMAGESET_WARN, "data.bin: 0x00121800 is not on a 4096-byte sector boundary");
	assert_non_null(v);
	HAS(v, "erases 0x00121000..0x001217FF (2048 bytes)");
	image_free(&img);

	/* ESP32 does not get the ROM warning. */
	esp32_profile(&p);
	bin_img(&img, 0x9800, 0x100, 0x11);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	assert_int_equal(r.nwarn, 0);
	image_free(&img);
}

static void test_esp32_chip_and_app_checks(void **state)
{
	struct profile p;
	struct image img;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {"bootloader.bin", NULL, &img};

	(void)state;
	esp32_profile(&p);
	esp_img(&img, true, 0x02, 0x20, false, 5, 0, 0x1000); /* built for esp32-c3 */
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "built for esp32-c3 (chip id 5) but the profile's chip is esp32");
	image_free(&img);

	/* An application partition needs an ESP image. */
	it.file = "app.bin";
	bin_img(&img, 0x10000, 0x1000, 0x00);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "app.bin: an application partition needs a valid ESP image");
	image_free(&img);

	/* Data partitions hold anything. */
	it.file = "nvs.bin";
	bin_img(&img, 0x9000, 0x1000, 0x00);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_OK);
	image_free(&img);
}

static void test_addr_for_and_named_partition(void **state)
{
	struct profile p;
	struct image img;
	struct imageset_report r;
	struct fw_err e = {0};
	uint32_t addr = 0;
	struct imageset_item it = {"nvs.bin", "app", &img};

	(void)state;
	esp32_profile(&p);
	assert_int_equal(imageset_addr_for(&p, "app", &addr, &e), FW_OK);
	assert_int_equal(addr, 0x10000);
	assert_int_equal(imageset_addr_for(&p, "spiffs", &addr, &e), FW_EINVAL);
	HAS(e.msg, "no partition 'spiffs'");
	HAS(e.msg, "bootloader at 0x1000, ptable at 0x8000, nvs at 0x9000, app at 0x10000");

	bin_img(&img, 0x9000, 0x100, 0);
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "outside the partition 'app' it was meant for");
	it.partition = "nope";
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "no partition 'nope'");
	image_free(&img);
}

static void test_empty_inputs(void **state)
{
	struct profile p;
	struct image img = IMAGE_INIT;
	struct imageset_report r;
	struct fw_err e = {0};
	struct imageset_item it = {NULL, NULL, &img};
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	avr_profile(&p);
	assert_int_equal(imageset_check(&p, NULL, 0, &r, &e), FW_EIMAGE);
	HAS(e.msg, "no images");
	assert_int_equal(imageset_check(&p, &it, 1, &r, &e), FW_EIMAGE);
	HAS(e.msg, "image 1: the image is empty");
	assert_int_equal(imageset_check(NULL, &it, 1, &r, &e), FW_EINVAL);
	assert_int_equal(imageset_check(&p, &it, 1, NULL, &e), FW_EINVAL);
	assert_int_equal(imageset_check(&p, &it, 1, &r, NULL), FW_EIMAGE);
	imageset_format(&r, &sb);
	HAS(strbuf_str(&sb), "error: image 1: the image is empty");
	HAS(strbuf_str(&sb), "1 error, 0 warnings");
	strbuf_free(&sb);
	/* Patching a non-ESP profile's image is a no-op. */
	assert_int_equal(image_add(&img, 0, "x", 1, NULL), FW_OK);
	assert_int_equal(imageset_patch(&p, &img, NULL, &e), FW_OK);
	image_free(&img);
}

/* What a backup before a write reads: the erase units the image touches
 * on ESP (adjacent ones merged, clipped to the flash); on AVR every page
 * outside the protected boot section, whatever the image. */
static void test_backup_spans(void **state)
{
	struct profile p;
	struct image img = IMAGE_INIT;
	struct imageset_span *sp;
	struct fw_err e = {0};
	static uint8_t d[0x2000];
	size_t n;

	(void)state;
	esp8266_profile(&p);
	assert_true(!imageset_backup_is_whole(&p));
	assert_int_equal(image_add(&img, 0x0FF0, d, 0x20, NULL), FW_OK);     /* 2 sectors */
	assert_int_equal(image_add(&img, 0x2000, d, 0x10, NULL), FW_OK);     /* touches them */
	assert_int_equal(image_add(&img, 0x10000, d, 0x1001, NULL), FW_OK);  /* 2 sectors */
	assert_int_equal(image_add(&img, MB(4) - 8, d, 8, NULL), FW_OK);     /* the last */
	assert_int_equal(imageset_backup_spans(&p, &img, &sp, &n, &e), FW_OK);
	assert_int_equal(n, 3);
	assert_int_equal(sp[0].addr, 0x0000);
	assert_int_equal(sp[0].len, 0x3000);
	assert_int_equal(sp[1].addr, 0x10000);
	assert_int_equal(sp[1].len, 0x2000);
	assert_int_equal(sp[2].addr, MB(4) - 0x1000);
	assert_int_equal(sp[2].len, 0x1000);
	free(sp);

	avr_profile(&p);
	assert_true(imageset_backup_is_whole(&p));
	assert_int_equal(imageset_backup_spans(&p, &img, &sp, &n, &e), FW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].addr, 0);
	assert_int_equal(sp[0].len, 0x7E00);
	free(sp);
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esp8266_nodemcu_ok),
		cmocka_unit_test(test_backup_spans),
		cmocka_unit_test(test_image_larger_than_partition),
		cmocka_unit_test(test_overlap_and_shared_sector),
		cmocka_unit_test(test_protected_partition),
		cmocka_unit_test(test_past_flash_and_outside_partitions),
		cmocka_unit_test(test_bootloader_must_be_valid),
		cmocka_unit_test(test_flags_mismatch_warns_and_patch_fixes),
		cmocka_unit_test(test_esp32_sha_patch),
		cmocka_unit_test(test_esp8266_unaligned_start_warns),
		cmocka_unit_test(test_esp32_chip_and_app_checks),
		cmocka_unit_test(test_addr_for_and_named_partition),
		cmocka_unit_test(test_empty_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
