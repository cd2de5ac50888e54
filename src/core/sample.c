#include "sample.h"

#include <string.h>

#include "esp_image.h"
#include "integrity.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int sample_esp_image(enum profile_family fam, int mode, uint32_t size_bytes,
		     uint32_t freq_mhz, const char *banner, size_t pad_to, struct strbuf *out,
		     struct fw_err *e)
{
	uint8_t hdr[ESP_IMAGE_HEADER_LEN + ESP_IMAGE_EXT_HEADER_LEN] = {0};
	uint8_t seg[ESP_IMAGE_SEGMENT_HEADER_LEN], csum = ESP_IMAGE_CHECKSUM_SEED;
	struct strbuf data = STRBUF_INIT;
	size_t start = out->len, hlen, i, total;
	int size_code, freq_code;
	bool esp32 = fam == PROFILE_FAMILY_ESP32;

	if (fam == PROFILE_FAMILY_AVR)
		return fw_err_set(e, FW_EINVAL, "sample images are ESP application images");
	size_code = esp_image_size_code(fam, size_bytes);
	freq_code = esp_image_freq_code(fam, esp32 ? 0 : ESP_IMAGE_CHIP_NONE, freq_mhz);
	if (mode < PROFILE_MODE_QIO || mode > PROFILE_MODE_DOUT || size_code < 0 || freq_code < 0)
		return fw_err_set(e, FW_EINVAL, "no header flags for mode %d, %u bytes, %u MHz",
				  mode, size_bytes, freq_mhz);

	/* The segment's data: the tagged banner line, then filler that looks
	 * like code rather than a run of one byte (compression benchmarks). */
	strbuf_addf(&data, "%s%s\n", SAMPLE_BANNER_TAG, banner);
	for (i = 0; data.len < pad_to; i++) {
		uint8_t b = (uint8_t)((i * 7) ^ (i >> 5) ^ (i % 13 == 0 ? 0x36 : 0x00));
		strbuf_add(&data, &b, 1);
	}
	while (data.len % 4)
		strbuf_add(&data, "\0", 1);
	if (strbuf_failed(&data)) {
		strbuf_free(&data);
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	}

	hdr[0] = ESP_IMAGE_MAGIC;
	hdr[1] = 1;
	hdr[2] = (uint8_t)mode;
	hdr[3] = (uint8_t)(size_code << 4 | freq_code);
	put32(hdr + 4, esp32 ? 0x40080000u : 0x40100004u);
	hlen = ESP_IMAGE_HEADER_LEN;
	if (esp32) {
		hdr[8] = ESP_IMAGE_WP_PIN_UNUSED;
		/* chip id 0 (ESP32), revisions 0..any, hash appended */
		hdr[8 + 9] = 0xFF;
		hdr[8 + 10] = 0xFF;
		hdr[8 + 15] = 1;
		hlen += ESP_IMAGE_EXT_HEADER_LEN;
	}
	put32(seg, esp32 ? 0x3FFB0000u : 0x3FFE8000u);
	put32(seg + 4, (uint32_t)data.len);
	strbuf_add(out, hdr, hlen);
	strbuf_add(out, seg, sizeof seg);
	strbuf_add(out, data.s, data.len);
	for (i = 0; i < data.len; i++)
		csum ^= (uint8_t)data.s[i];
	strbuf_free(&data);
	/* Zero padding up to one byte before a 16-byte boundary, then the
	 * checksum byte. */
	while ((out->len - start) % 16 != 15)
		strbuf_add(out, "\0", 1);
	strbuf_add(out, &csum, 1);
	if (esp32) {
		uint8_t digest[SHA256_LEN];
		total = out->len - start;
		if (strbuf_failed(out) ||
		    integrity_sha256(out->s + start, total, digest) != FW_OK)
			return fw_err_set(e, FW_ENOMEM, "cannot hash the sample image");
		strbuf_add(out, digest, sizeof digest);
	}
	if (strbuf_failed(out))
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	return FW_OK;
}
