/* ESP application image: parsing, every rejection, flag decoding, patching
 * (with the appended SHA-256 recomputed). Images are built here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "esp_image.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

#define F8266 PROFILE_FAMILY_ESP8266
#define F32 PROFILE_FAMILY_ESP32

struct seg {
	uint32_t addr;
	uint32_t len;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Independent SHA-256 (straight OpenSSL, not our integrity module). */
static void sha256(const uint8_t *d, size_t n, uint8_t out[32])
{
	unsigned int len = 32;

	assert_int_equal(EVP_Digest(d, n, out, &len, EVP_sha256(), NULL), 1);
}

/* Builds a valid image: header, (ESP32) extended header, segments filled
 * with a pattern, zero padding, checksum, optional SHA-256, then `trail`
 * extra bytes. Returns a malloc'd buffer and its length in *len. */
static uint8_t *build(enum profile_family fam, uint8_t b2, uint8_t b3, const struct seg *s,
		      size_t nseg, bool hash, uint16_t chip, size_t trail, size_t *len)
{
	size_t cap = 64 + 16 + 32 + trail, off, i;
	uint8_t *b, sum = 0xEF;

	for (i = 0; i < nseg; i++)
		cap += 8 + s[i].len;
	b = calloc(1, cap);
	assert_non_null(b);
	b[0] = 0xE9;
	b[1] = (uint8_t)nseg;
	b[2] = b2;
	b[3] = b3;
	put32(b + 4, 0x40100004);
	off = 8;
	if (fam == F32) {
		b[8] = 0xEE;        /* WP pin unused */
		b[12] = (uint8_t)chip;
		b[13] = (uint8_t)(chip >> 8);
		b[15] = 3;          /* min revision v0.3 */
		b[17] = 0x2B;       /* max revision 299 = v2.99 */
		b[18] = 0x01;
		b[23] = hash ? 1 : 0;
		off = 24;
	}
	for (i = 0; i < nseg; i++) {
		put32(b + off, s[i].addr);
		put32(b + off + 4, s[i].len);
		off += 8;
		for (uint32_t k = 0; k < s[i].len; k++) {
			b[off + k] = (uint8_t)(k * 7 + i * 13 + 1);
			sum ^= b[off + k];
		}
		off += s[i].len;
	}
	off |= 15;
	b[off++] = sum;
	if (hash) {
		sha256(b, off, b + off);
		off += 32;
	}
	for (i = 0; i < trail; i++)
		b[off++] = 0xA5;
	*len = off;
	return b;
}

static const struct seg two[] = {{0x40100000, 0x40}, {0x3FFE8000, 0x23}};

static void test_esp8266_valid(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 100, &len);

	(void)state;
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_OK);
	assert_int_equal(info.magic, 0xE9);
	assert_int_equal(info.nseg, 2);
	assert_int_equal(info.mode, 2);
	assert_int_equal(info.size_code, 4);
	assert_int_equal(info.freq_code, 0);
	assert_int_equal(info.entry, 0x40100004);
	assert_false(info.has_ext);
	assert_int_equal(info.chip_id, ESP_IMAGE_CHIP_NONE);
	assert_int_equal(info.seg[0].load_addr, 0x40100000);
	assert_int_equal(info.seg[0].offset, 16);
	assert_int_equal(info.seg[1].len, 0x23);
	assert_int_equal(info.seg[1].offset, 16 + 0x40 + 8);
	/* data ends at 0x7B: checksum at 0x7F so that 0x80 is aligned */
	assert_int_equal(info.checksum_offset, 0x7F);
	assert_int_equal(info.checksum_stored, info.checksum_calc);
	assert_int_equal(info.end, 0x80);
	assert_int_equal(len - info.end, 100); /* trailing data (irom0) is allowed */
	free(b);
}

static void test_checksum_at_boundary_needs_no_padding(void **state)
{
	/* 8 + 8 + 15 = 31: the checksum is byte 31 with no padding. */
	const struct seg one[] = {{0x40100000, 15}};
	struct esp_image_info info;
	size_t len;
	uint8_t *b = build(F8266, 0, 0, one, 1, false, 0, 0, &len);

	(void)state;
	assert_int_equal(len, 32);
	assert_int_equal(esp_image_parse(b, len, F8266, &info, NULL), FW_OK);
	assert_int_equal(info.checksum_offset, 31);
	free(b);
}

static void test_esp32_valid_with_sha(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F32, 0x02, 0x20, two, 2, true, 0, 0, &len);

	(void)state;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_OK);
	assert_true(info.has_ext);
	assert_int_equal(info.wp_pin, 0xEE);
	assert_int_equal(info.chip_id, 0);
	assert_int_equal(info.min_rev, 3);
	assert_int_equal(info.max_rev, 299);
	assert_true(info.hash_appended);
	assert_int_equal(info.seg[0].offset, 32);
	assert_int_equal(info.digest_offset, info.checksum_offset + 1);
	assert_int_equal(info.end, len);
	free(b);
}

static void test_wrong_magic(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 0, &len);

	(void)state;
	b[0] = 0xEA;
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "first byte is 0xEA");
	HAS(e.msg, "not the ESP image magic 0xE9");
	HAS(e.msg, "v2");
	b[0] = 0xFF;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "0xFF");
	assert_int_equal(esp_image_parse(b, 0, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "empty");
	free(b);
}

static void test_truncated_segment(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 0, &len);

	(void)state;
	/* Cut 5 bytes into segment 1's 0x23 bytes: 0x1E missing. */
	assert_int_equal(esp_image_parse(b, 16 + 0x40 + 8 + 5, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "truncated");
	HAS(e.msg, "segment 1");
	HAS(e.msg, "30 bytes missing");
	HAS(e.msg, "0x3FFE8000");
	assert_int_equal(info.nseg_parsed, 2);
	/* Cut inside segment 1's header. */
	assert_int_equal(esp_image_parse(b, 16 + 0x40 + 3, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "segment 1 header");
	HAS(e.msg, "5 bytes missing");
	/* Header itself cut. */
	assert_int_equal(esp_image_parse(b, 5, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "the header alone needs 8");
	/* Checksum byte missing. */
	assert_int_equal(esp_image_parse(b, len - 1, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "checksum byte at offset 0x7F is missing");
	free(b);

	b = build(F32, 0x02, 0x20, two, 2, true, 0, 0, &len);
	assert_int_equal(esp_image_parse(b, 20, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "extended header");
	assert_int_equal(esp_image_parse(b, len - 10, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "SHA-256");
	HAS(e.msg, "22 of 32 bytes");
	free(b);
}

static void test_bad_segment_count(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 0, &len);

	(void)state;
	b[1] = 0;
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "bad segment count 0");
	b[1] = 17;
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "bad segment count 17");
	HAS(e.msg, "1 to 16");
	free(b);
}

static void test_checksum_verified(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 0, &len);
	uint8_t good;

	(void)state;
	/* Independently: 0xEF xor every data byte. */
	good = 0xEF;
	for (size_t k = 0; k < 0x40; k++)
		good ^= b[16 + k];
	for (size_t k = 0; k < 0x23; k++)
		good ^= b[16 + 0x40 + 8 + k];
	assert_int_equal(b[0x7F], good);

	b[20] ^= 0x01; /* one data bit flipped */
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "checksum mismatch");
	HAS(e.msg, "offset 0x7F");
	b[20] ^= 0x01;
	b[0x7F] ^= 0x80; /* the checksum byte itself */
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	HAS(e.msg, "checksum mismatch");
	assert_int_equal(info.checksum_calc, good);
	/* Header bytes are not covered by the checksum. */
	b[0x7F] ^= 0x80;
	b[2] = 0x03;
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_OK);
	free(b);
}

static void test_sha_verified(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F32, 0x02, 0x20, two, 2, true, 0, 0, &len);

	(void)state;
	/* Editing the flags without a new digest must be caught. */
	b[2] = 0x00;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "SHA-256 mismatch");
	b[2] = 0x02;
	b[len - 1] ^= 1;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "SHA-256 mismatch");
	b[len - 1] ^= 1;
	b[23] = 2;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_EIMAGE);
	HAS(e.msg, "hash-appended flag");
	free(b);
}

static void test_family_required(void **state)
{
	struct esp_image_info info;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F8266, 0x02, 0x40, two, 2, false, 0, 0, &len);
	enum profile_family fam = PROFILE_FAMILY_AVR;

	(void)state;
	assert_int_equal(esp_image_parse(b, len, PROFILE_FAMILY_AVR, &info, &e), FW_EINVAL);
	/* The ESP8266 image does not parse as ESP32 (and the other way). */
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_EIMAGE);
	assert_int_equal(esp_image_guess_family(b, len, &fam), FW_OK);
	assert_int_equal(fam, F8266);
	free(b);
	b = build(F32, 0x02, 0x20, two, 2, true, 9, 0, &len);
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_EIMAGE);
	assert_int_equal(esp_image_guess_family(b, len, &fam), FW_OK);
	assert_int_equal(fam, F32);
	b[0] = 0;
	fam = PROFILE_FAMILY_AVR;
	assert_int_equal(esp_image_guess_family(b, len, &fam), FW_EIMAGE);
	assert_int_equal(fam, PROFILE_FAMILY_AVR);
	free(b);
}

static void test_decode_tables(void **state)
{
	uint32_t v = 0;

	(void)state;
	assert_string_equal(esp_image_mode_name(0), "qio");
	assert_string_equal(esp_image_mode_name(3), "dout");
	assert_null(esp_image_mode_name(4));
	/* The ESP8266 size table differs from the ESP32 one. */
	assert_string_equal(esp_image_size_name(F8266, 0), "512KB");
	assert_string_equal(esp_image_size_name(F32, 0), "1MB");
	assert_string_equal(esp_image_size_name(F8266, 4), "4MB");
	assert_string_equal(esp_image_size_name(F32, 4), "16MB");
	assert_string_equal(esp_image_size_name(F8266, 6), "4MB-c1");
	assert_null(esp_image_size_name(F8266, 7));
	assert_null(esp_image_size_name(F32, 8));
	assert_true(esp_image_size_bytes(F8266, 9, &v));
	assert_int_equal(v, 16u << 20);
	assert_int_equal(esp_image_size_code(F8266, 4u << 20), 4);
	assert_int_equal(esp_image_size_code(F8266, 2u << 20), 3); /* not the -c1 code */
	assert_int_equal(esp_image_size_code(F32, 4u << 20), 2);
	assert_int_equal(esp_image_size_code(F32, 3u << 20), -1);
	/* Frequencies per chip. */
	assert_true(esp_image_freq_mhz(F8266, ESP_IMAGE_CHIP_NONE, 0xF, &v));
	assert_int_equal(v, 80);
	assert_true(esp_image_freq_mhz(F32, 12, 0x0, &v)); /* C2 */
	assert_int_equal(v, 30);
	assert_true(esp_image_freq_mhz(F32, 16, 0xF, &v)); /* H2 */
	assert_int_equal(v, 48);
	assert_int_equal(esp_image_freq_code(F32, 13, 80), 0); /* C6 stores 80m as 0 */
	assert_int_equal(esp_image_freq_code(F32, 13, 26), -1);
	assert_int_equal(esp_image_freq_code(F8266, ESP_IMAGE_CHIP_NONE, 26), 1);
	/* A chip whose table we do not know is never guessed. */
	assert_false(esp_image_freq_mhz(F32, 18, 0, &v));
	assert_int_equal(esp_image_freq_code(F32, 18, 40), -1);
	/* Chip names. */
	assert_int_equal(esp_image_chip_id("esp32"), 0);
	assert_int_equal(esp_image_chip_id("ESP32-C3"), 5);
	assert_int_equal(esp_image_chip_id("esp32c3"), 5);
	assert_int_equal(esp_image_chip_id("esp32_s3"), 9);
	assert_int_equal(esp_image_chip_id("esp8266"), -1);
	assert_string_equal(esp_image_chip_name(13), "esp32-c6");
	assert_null(esp_image_chip_name(99));
}

static void test_patch_esp8266_0240(void **state)
{
	struct esp_image_info info;
	struct esp_image_patch w;
	struct fw_err e = {0};
	size_t len;
	/* qio / 512KB / 40m as the SDK builds it */
	uint8_t *b = build(F8266, 0x00, 0x00, two, 2, false, 0, 64, &len);
	uint8_t *orig = malloc(len);

	(void)state;
	memcpy(orig, b, len);
	assert_int_equal(esp_image_patch_flags(b, len, F8266, PROFILE_MODE_DIO, 4u << 20, 40, &w,
					       &e), FW_OK);
	assert_int_equal(b[2], 0x02);
	assert_int_equal(b[3], 0x40);
	assert_true(w.changed);
	assert_int_equal(w.old_b2, 0x00);
	assert_int_equal(w.new_b3, 0x40);
	assert_false(w.digest_updated);
	/* Only bytes 2 and 3 changed; the image is still valid. */
	assert_memory_equal(b + 4, orig + 4, len - 4);
	assert_int_equal(esp_image_parse(b, len, F8266, &info, &e), FW_OK);
	/* Patching again is a no-op. */
	assert_int_equal(esp_image_patch_flags(b, len, F8266, PROFILE_MODE_DIO, 4u << 20, 40, &w,
					       &e), FW_OK);
	assert_false(w.changed);
	free(orig);
	free(b);
}

static void test_patch_keeps(void **state)
{
	struct esp_image_patch w;
	size_t len;
	/* 4MB-c1 / 80m */
	uint8_t *b = build(F8266, 0x00, 0x6F, two, 2, false, 0, 0, &len);

	(void)state;
	/* The -c1 map already means 4 MB: the size code stays. */
	assert_int_equal(esp_image_patch_flags(b, len, F8266, PROFILE_MODE_DOUT, 4u << 20, 40, &w,
					       NULL), FW_OK);
	assert_int_equal(b[2], 0x03);
	assert_int_equal(b[3], 0x60);
	/* Keep everything: nothing changes. */
	assert_int_equal(esp_image_patch_flags(b, len, F8266, -1, 0, 0, &w, NULL), FW_OK);
	assert_false(w.changed);
	assert_int_equal(b[2], 0x03);
	assert_int_equal(b[3], 0x60);
	/* Keep mode and frequency, set the size. */
	assert_int_equal(esp_image_patch_flags(b, len, F8266, -1, 1u << 20, 0, &w, NULL), FW_OK);
	assert_int_equal(b[2], 0x03);
	assert_int_equal(b[3], 0x20);
	free(b);
}

static void test_patch_esp32_recomputes_sha(void **state)
{
	struct esp_image_info info;
	struct esp_image_patch w;
	struct fw_err e = {0};
	uint8_t want[32];
	size_t len;
	uint8_t *b = build(F32, 0x02, 0x20, two, 2, true, 0, 0, &len);

	(void)state;
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_OK);
	assert_int_equal(esp_image_patch_flags(b, len, F32, PROFILE_MODE_QIO, 16u << 20, 80, &w,
					       &e), FW_OK);
	assert_int_equal(b[2], 0x00);
	assert_int_equal(b[3], 0x4F);
	assert_true(w.changed);
	assert_true(w.digest_updated);
	sha256(b, info.digest_offset, want);
	assert_memory_equal(b + info.digest_offset, want, 32);
	assert_int_equal(esp_image_parse(b, len, F32, &info, &e), FW_OK);
	free(b);

	/* The C6 frequency table is chosen from the image's chip id. */
	b = build(F32, 0x02, 0x2F, two, 2, false, 13, 0, &len);
	assert_int_equal(esp_image_patch_flags(b, len, F32, -1, 0, 80, &w, &e), FW_OK);
	assert_int_equal(b[3], 0x20);
	free(b);
}

static void test_patch_refuses(void **state)
{
	struct esp_image_patch w;
	struct fw_err e = {0};
	size_t len;
	uint8_t *b = build(F32, 0x02, 0x20, two, 2, true, 0, 0, &len);
	uint8_t *orig = malloc(len);

	(void)state;
	b[40] ^= 0xFF; /* damaged data */
	memcpy(orig, b, len);
	assert_int_equal(esp_image_patch_flags(b, len, F32, PROFILE_MODE_QIO, 4u << 20, 40, &w,
					       &e), FW_EIMAGE);
	HAS(e.msg, "not patching");
	HAS(e.msg, "checksum mismatch");
	assert_memory_equal(b, orig, len);
	assert_false(w.changed);
	b[40] ^= 0xFF;
	memcpy(orig, b, len);
	assert_int_equal(esp_image_patch_flags(b, len, F32, PROFILE_MODE_QIO, 3u << 20, 40, &w,
					       &e), FW_EINVAL);
	HAS(e.msg, "3MB");
	assert_int_equal(esp_image_patch_flags(b, len, F32, 7, 0, 0, &w, &e), FW_EINVAL);
	HAS(e.msg, "flash mode 7");
	assert_int_equal(esp_image_patch_flags(b, len, F32, -1, 0, 33, &w, &e), FW_EINVAL);
	HAS(e.msg, "33 MHz");
	assert_memory_equal(b, orig, len);
	b[0] = 0xEA;
	assert_int_equal(esp_image_patch_flags(b, len, F32, 2, 0, 0, &w, &e), FW_EIMAGE);
	assert_int_equal(b[2], 0x02);
	free(orig);
	free(b);
}

static void test_describe(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	uint8_t *b = build(F32, 0x02, 0x20, two, 2, true, 5, 48, &len);

	(void)state;
	esp_image_describe(b, len, F32, &sb);
	assert_false(strbuf_failed(&sb));
	HAS(strbuf_str(&sb), "valid");
	HAS(strbuf_str(&sb), "dio, 4MB, 40m (bytes 2-3: 0x0220)");
	HAS(strbuf_str(&sb), "chip: esp32-c3 (id 5)");
	HAS(strbuf_str(&sb), "v0.3 to v2.99");
	HAS(strbuf_str(&sb), "segments: 2");
	HAS(strbuf_str(&sb), "load 0x40100000, 64 bytes at offset 0x20");
	HAS(strbuf_str(&sb), "appended SHA-256: ok");
	HAS(strbuf_str(&sb), "48 more bytes follow");
	strbuf_free(&sb);

	b[40] ^= 1;
	esp_image_describe(b, len, F32, &sb);
	HAS(strbuf_str(&sb), "INVALID");
	HAS(strbuf_str(&sb), "checksum mismatch");
	HAS(strbuf_str(&sb), "MISMATCH");
	strbuf_free(&sb);

	esp_image_describe((const uint8_t *)":00000001FF", 11, F8266, &sb);
	HAS(strbuf_str(&sb), "ESP image: no");
	HAS(strbuf_str(&sb), "Intel HEX");
	strbuf_free(&sb);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esp8266_valid),
		cmocka_unit_test(test_checksum_at_boundary_needs_no_padding),
		cmocka_unit_test(test_esp32_valid_with_sha),
		cmocka_unit_test(test_wrong_magic),
		cmocka_unit_test(test_truncated_segment),
		cmocka_unit_test(test_bad_segment_count),
		cmocka_unit_test(test_checksum_verified),
		cmocka_unit_test(test_sha_verified),
		cmocka_unit_test(test_family_required),
		cmocka_unit_test(test_decode_tables),
		cmocka_unit_test(test_patch_esp8266_0240),
		cmocka_unit_test(test_patch_keeps),
		cmocka_unit_test(test_patch_esp32_recomputes_sha),
		cmocka_unit_test(test_patch_refuses),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
