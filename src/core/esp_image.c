#include "esp_image.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "integrity.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static bool is_esp(enum profile_family fam)
{
	return fam == PROFILE_FAMILY_ESP8266 || fam == PROFILE_FAMILY_ESP32;
}

static const char *fam_name(enum profile_family fam)
{
	return fam == PROFILE_FAMILY_ESP8266 ? "ESP8266" : "ESP32-family";
}

/* ---- flag tables (reference: esp-rom-protocol.md section 10) ---- */

static const char *const mode_names[] = {"qio", "qout", "dio", "dout"};

const char *esp_image_mode_name(uint8_t mode)
{
	return mode < 4 ? mode_names[mode] : NULL;
}

struct size_row {
	uint8_t code;
	uint32_t bytes;
	const char *name;
};

#define KB(n) ((uint32_t)(n) * 1024u)
#define MB(n) ((uint32_t)(n) * 1024u * 1024u)

/* Canonical code first for each size: encoding takes the first match. */
static const struct size_row sizes_8266[] = {
	{0x0, KB(512), "512KB"}, {0x1, KB(256), "256KB"}, {0x2, MB(1), "1MB"},
	{0x3, MB(2), "2MB"},     {0x4, MB(4), "4MB"},     {0x5, MB(2), "2MB-c1"},
	{0x6, MB(4), "4MB-c1"},  {0x8, MB(8), "8MB"},     {0x9, MB(16), "16MB"},
};

static const struct size_row sizes_esp32[] = {
	{0x0, MB(1), "1MB"},   {0x1, MB(2), "2MB"},   {0x2, MB(4), "4MB"},
	{0x3, MB(8), "8MB"},   {0x4, MB(16), "16MB"}, {0x5, MB(32), "32MB"},
	{0x6, MB(64), "64MB"}, {0x7, MB(128), "128MB"},
};

static const struct size_row *size_table(enum profile_family fam, size_t *n)
{
	if (fam == PROFILE_FAMILY_ESP8266) {
		*n = sizeof(sizes_8266) / sizeof(sizes_8266[0]);
		return sizes_8266;
	}
	if (fam == PROFILE_FAMILY_ESP32) {
		*n = sizeof(sizes_esp32) / sizeof(sizes_esp32[0]);
		return sizes_esp32;
	}
	*n = 0;
	return NULL;
}

static const struct size_row *size_row(enum profile_family fam, uint8_t code)
{
	size_t n, i;
	const struct size_row *t = size_table(fam, &n);

	for (i = 0; i < n; i++)
		if (t[i].code == code)
			return &t[i];
	return NULL;
}

const char *esp_image_size_name(enum profile_family fam, uint8_t code)
{
	const struct size_row *r = size_row(fam, code);

	return r ? r->name : NULL;
}

bool esp_image_size_bytes(enum profile_family fam, uint8_t code, uint32_t *bytes)
{
	const struct size_row *r = size_row(fam, code);

	if (!r)
		return false;
	*bytes = r->bytes;
	return true;
}

int esp_image_size_code(enum profile_family fam, uint32_t bytes)
{
	size_t n, i;
	const struct size_row *t = size_table(fam, &n);

	for (i = 0; i < n; i++)
		if (t[i].bytes == bytes)
			return t[i].code;
	return -1;
}

struct freq_row {
	uint8_t code;
	uint32_t mhz;
};

#define FREQ_END {0xFF, 0}

static const struct freq_row freq_classic[] = {{0x0, 40}, {0x1, 26}, {0x2, 20}, {0xF, 80}, FREQ_END};
static const struct freq_row freq_c2[] = {{0x0, 30}, {0x1, 20}, {0x2, 15}, {0xF, 60}, FREQ_END};
static const struct freq_row freq_h2[] = {{0x0, 24}, {0x1, 16}, {0x2, 12}, {0xF, 48}, FREQ_END};
/* The C6 stores "80m" as code 0 too: decoding shows 40, both encode to 0. */
static const struct freq_row freq_c6[] = {{0x0, 40}, {0x0, 80}, {0x2, 20}, FREQ_END};
static const struct freq_row freq_c5[] = {{0x0, 40}, {0x2, 20}, {0xF, 80}, FREQ_END};

struct chip_row {
	uint16_t id;
	const char *name;
	const struct freq_row *freq;
};

static const struct chip_row chips[] = {
	{0, "esp32", freq_classic},     {2, "esp32-s2", freq_classic},
	{5, "esp32-c3", freq_classic},  {9, "esp32-s3", freq_classic},
	{12, "esp32-c2", freq_c2},      {13, "esp32-c6", freq_c6},
	{16, "esp32-h2", freq_h2},      {18, "esp32-p4", NULL},
	{20, "esp32-c61", freq_c5},     {23, "esp32-c5", freq_c5},
	{25, "esp32-h21", freq_h2},     {28, "esp32-h4", freq_h2},
};

#define NCHIPS (sizeof(chips) / sizeof(chips[0]))

/* The frequency table for a chip; NULL when we do not know it, so that an
 * unknown chip's header is never decoded or patched by guesswork. */
static const struct freq_row *freq_table(enum profile_family fam, uint16_t chip_id)
{
	size_t i;

	if (fam == PROFILE_FAMILY_ESP8266)
		return freq_classic;
	if (fam != PROFILE_FAMILY_ESP32)
		return NULL;
	for (i = 0; i < NCHIPS; i++)
		if (chips[i].id == chip_id)
			return chips[i].freq;
	return NULL;
}

bool esp_image_freq_mhz(enum profile_family fam, uint16_t chip_id, uint8_t code,
			uint32_t *mhz)
{
	const struct freq_row *t = freq_table(fam, chip_id);

	for (; t && t->mhz; t++) {
		if (t->code == code) {
			*mhz = t->mhz;
			return true;
		}
	}
	return false;
}

int esp_image_freq_code(enum profile_family fam, uint16_t chip_id, uint32_t mhz)
{
	const struct freq_row *t = freq_table(fam, chip_id);

	for (; t && t->mhz; t++)
		if (t->mhz == mhz)
			return t->code;
	return -1;
}

/* Lowercase without '-' and '_', so "ESP32_C3", "esp32c3" and "esp32-c3"
 * name the same chip. */
static void chip_key(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && n + 1 < outlen; in++) {
		if (*in == '-' || *in == '_')
			continue;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
}

int esp_image_chip_id(const char *chip)
{
	char a[40], b[40];
	size_t i;

	if (!chip)
		return -1;
	chip_key(chip, a, sizeof(a));
	for (i = 0; i < NCHIPS; i++) {
		chip_key(chips[i].name, b, sizeof(b));
		if (!strcmp(a, b))
			return chips[i].id;
	}
	return -1;
}

const char *esp_image_chip_name(uint16_t chip_id)
{
	size_t i;

	for (i = 0; i < NCHIPS; i++)
		if (chips[i].id == chip_id)
			return chips[i].name;
	return NULL;
}

/* ---- parsing ---- */

#define REBUILD "rebuild the image or get a fresh copy"

static int wrong_magic(uint8_t m, struct fw_err *e)
{
	const char *why = "";

	if (m == 0xEA)
		why = " (0xEA is an ESP8266 OTA \"v2\" image, which belongs after boot.bin, "
		      "not at the bootloader offset)";
	else if (m == 0xFF)
		why = " (0xFF: the file starts blank, like erased flash)";
	else if (m == ':')
		why = " (this looks like an Intel HEX text file)";
	return fw_err_set(e, FW_EIMAGE,
			  "first byte is 0x%02X, not the ESP image magic 0xE9%s: this is not an "
			  "ESP application image; check that the right file was chosen",
			  m, why);
}

int esp_image_parse(const uint8_t *buf, size_t len, enum profile_family fam,
		    struct esp_image_info *info, struct fw_err *e)
{
	size_t off, i, cpos;
	uint8_t sum = ESP_IMAGE_CHECKSUM_SEED;

	memset(info, 0, sizeof(*info));
	info->family = fam;
	info->chip_id = ESP_IMAGE_CHIP_NONE;
	if (!is_esp(fam))
		return fw_err_set(e, FW_EINVAL,
				  "ESP image headers exist only on ESP8266 and ESP32-family chips");
	if (len == 0)
		return fw_err_set(e, FW_EIMAGE, "the image is empty (0 bytes)");
	info->magic = buf[0];
	if (buf[0] != ESP_IMAGE_MAGIC)
		return wrong_magic(buf[0], e);
	if (len < ESP_IMAGE_HEADER_LEN)
		return fw_err_set(e, FW_EIMAGE,
				  "image truncated: %zu bytes, the header alone needs %d; " REBUILD,
				  len, ESP_IMAGE_HEADER_LEN);
	info->nseg = buf[1];
	info->mode = buf[2];
	info->size_code = buf[3] >> 4;
	info->freq_code = buf[3] & 0x0F;
	info->entry = le32(buf + 4);
	off = ESP_IMAGE_HEADER_LEN;

	if (fam == PROFILE_FAMILY_ESP32) {
		const uint8_t *x = buf + ESP_IMAGE_HEADER_LEN;

		if (len < ESP_IMAGE_HEADER_LEN + ESP_IMAGE_EXT_HEADER_LEN)
			return fw_err_set(e, FW_EIMAGE,
					  "image truncated: %zu bytes, the ESP32 header and extended "
					  "header need %d; " REBUILD,
					  len, ESP_IMAGE_HEADER_LEN + ESP_IMAGE_EXT_HEADER_LEN);
		info->has_ext = true;
		info->wp_pin = x[0];
		memcpy(info->drive, x + 1, 3);
		info->chip_id = le16(x + 4);
		info->min_rev_legacy = x[6];
		info->min_rev = le16(x + 7);
		info->max_rev = le16(x + 9);
		/* x[11..14] reserved */
		if (x[15] > 1)
			return fw_err_set(e, FW_EIMAGE,
					  "hash-appended flag (offset 23) is 0x%02X, expected 0 or 1: "
					  "not a valid ESP32-family image (an ESP8266 image?)", x[15]);
		info->hash_appended = x[15] == 1;
		off += ESP_IMAGE_EXT_HEADER_LEN;
	}

	if (info->nseg == 0 || info->nseg > ESP_IMAGE_MAX_SEGMENTS)
		return fw_err_set(e, FW_EIMAGE,
				  "bad segment count %u in the header: an ESP image has 1 to %d "
				  "segments; the file is damaged or not an ESP image",
				  info->nseg, ESP_IMAGE_MAX_SEGMENTS);

	for (i = 0; i < info->nseg; i++) {
		struct esp_image_segment *s = &info->seg[i];

		if (len - off < ESP_IMAGE_SEGMENT_HEADER_LEN)
			return fw_err_set(e, FW_EIMAGE,
					  "image truncated: segment %zu header at offset 0x%zX is "
					  "cut off, %zu bytes missing; " REBUILD,
					  i, off, ESP_IMAGE_SEGMENT_HEADER_LEN - (len - off));
		s->load_addr = le32(buf + off);
		s->len = le32(buf + off + 4);
		off += ESP_IMAGE_SEGMENT_HEADER_LEN;
		s->offset = off;
		info->nseg_parsed = i + 1;
		if (s->len > len - off)
			return fw_err_set(e, FW_EIMAGE,
					  "image truncated: segment %zu (load address 0x%08X, %u "
					  "bytes at offset 0x%zX) has %llu bytes missing; " REBUILD,
					  i, (unsigned)s->load_addr, (unsigned)s->len, s->offset,
					  (unsigned long long)((uint64_t)s->len - (len - off)));
		for (size_t k = 0; k < s->len; k++)
			sum ^= buf[off + k];
		off += s->len;
	}

	/* Zero padding so the byte after the checksum is 16-byte aligned. */
	cpos = off | 15;
	info->checksum_offset = cpos;
	info->checksum_calc = sum;
	if (cpos >= len)
		return fw_err_set(e, FW_EIMAGE,
				  "image truncated: the checksum byte at offset 0x%zX is missing, "
				  "%zu bytes short; " REBUILD, cpos, cpos + 1 - len);
	info->checksum_stored = buf[cpos];
	info->end = cpos + 1;
	if (buf[cpos] != sum)
		return fw_err_set(e, FW_EIMAGE,
				  "checksum mismatch: the byte at offset 0x%zX is 0x%02X but the "
				  "segment data gives 0x%02X; the image is damaged, " REBUILD,
				  cpos, buf[cpos], sum);

	if (info->hash_appended) {
		uint8_t d[SHA256_LEN];
		int rc;

		info->digest_offset = info->end;
		if (len - info->end < ESP_IMAGE_DIGEST_LEN)
			return fw_err_set(e, FW_EIMAGE,
					  "image truncated: the appended SHA-256 at offset 0x%zX has "
					  "%zu of 32 bytes; " REBUILD,
					  info->end, len - info->end);
		rc = integrity_sha256(buf, info->end, d);
		if (rc)
			return fw_err_set(e, rc, "cannot compute the image's SHA-256");
		if (!integrity_equal(d, buf + info->end, SHA256_LEN)) {
			char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];

			integrity_hex(buf + info->end, SHA256_LEN, want);
			integrity_hex(d, SHA256_LEN, got);
			return fw_err_set(e, FW_EIMAGE,
					  "SHA-256 mismatch: the digest appended at offset 0x%zX is "
					  "%s but the image hashes to %s; the image is damaged or was "
					  "edited, " REBUILD, info->end, want, got);
		}
		info->end += ESP_IMAGE_DIGEST_LEN;
	}
	return FW_OK;
}

int esp_image_guess_family(const uint8_t *buf, size_t len, enum profile_family *fam)
{
	struct esp_image_info info;
	bool a = esp_image_parse(buf, len, PROFILE_FAMILY_ESP8266, &info, NULL) == FW_OK;
	bool b = esp_image_parse(buf, len, PROFILE_FAMILY_ESP32, &info, NULL) == FW_OK;

	if (a == b)
		return FW_EIMAGE;
	*fam = a ? PROFILE_FAMILY_ESP8266 : PROFILE_FAMILY_ESP32;
	return FW_OK;
}

/* ---- patching ---- */

static void size_text(uint32_t bytes, char *out, size_t n)
{
	if (bytes >= MB(1) && bytes % MB(1) == 0)
		snprintf(out, n, "%uMB", (unsigned)(bytes / MB(1)));
	else if (bytes % KB(1) == 0)
		snprintf(out, n, "%uKB", (unsigned)(bytes / KB(1)));
	else
		snprintf(out, n, "%u bytes", (unsigned)bytes);
}

int esp_image_flags_for(const struct esp_image_info *info, int mode, uint32_t size_bytes,
			uint32_t freq_mhz, uint8_t *b2, uint8_t *b3, struct fw_err *e)
{
	enum profile_family fam = info->family;
	uint8_t size_code = info->size_code, freq_code = info->freq_code;

	*b2 = info->mode;
	if (mode >= 0) {
		if (mode > 3)
			return fw_err_set(e, FW_EINVAL,
					  "flash mode %d has no header code (qio 0, qout 1, dio 2, "
					  "dout 3)", mode);
		*b2 = (uint8_t)mode;
	}
	if (size_bytes) {
		uint32_t cur;

		/* A code that already means this size stays: rewriting an ESP8266
		 * "4MB-c1" header to plain "4MB" would change the memory map. */
		if (!esp_image_size_bytes(fam, size_code, &cur) || cur != size_bytes) {
			int c = esp_image_size_code(fam, size_bytes);

			if (c < 0) {
				char t[24];

				size_text(size_bytes, t, sizeof(t));
				return fw_err_set(e, FW_EINVAL,
						  "the %s image header has no code for a flash size "
						  "of %s; check the profile's flash size",
						  fam_name(fam), t);
			}
			size_code = (uint8_t)c;
		}
	}
	if (freq_mhz) {
		int c = esp_image_freq_code(fam, info->chip_id, freq_mhz);

		if (c < 0) {
			const char *cn = esp_image_chip_name(info->chip_id);

			return fw_err_set(e, FW_EINVAL,
					  "the image header for %s has no code for a flash frequency "
					  "of %u MHz; check the profile's flash frequency",
					  fam == PROFILE_FAMILY_ESP8266 ? "ESP8266"
					  : cn                          ? cn
									: "an unknown chip",
					  (unsigned)freq_mhz);
		}
		freq_code = (uint8_t)c;
	}
	*b3 = (uint8_t)(size_code << 4 | freq_code);
	return FW_OK;
}

int esp_image_patch_flags(uint8_t *buf, size_t len, enum profile_family fam, int mode,
			  uint32_t size_bytes, uint32_t freq_mhz, struct esp_image_patch *what,
			  struct fw_err *e)
{
	struct esp_image_info info;
	struct esp_image_patch w = {0};
	int rc;

	if (what)
		memset(what, 0, sizeof(*what));
	rc = esp_image_parse(buf, len, fam, &info, e);
	if (rc) {
		fw_err_prefix(e, "not patching the flash parameters");
		return rc;
	}
	w.old_b2 = buf[2];
	w.old_b3 = buf[3];
	rc = esp_image_flags_for(&info, mode, size_bytes, freq_mhz, &w.new_b2, &w.new_b3, e);
	if (rc)
		return rc;
	w.changed = w.new_b2 != w.old_b2 || w.new_b3 != w.old_b3;
	if (w.changed) {
		buf[2] = w.new_b2;
		buf[3] = w.new_b3;
		/* The digest covers bytes 2-3: without a new one the bootloader
		 * would reject the image we just patched. */
		if (info.hash_appended) {
			rc = integrity_sha256(buf, info.digest_offset, buf + info.digest_offset);
			if (rc) {
				buf[2] = w.old_b2;
				buf[3] = w.old_b3;
				return fw_err_set(e, rc, "cannot recompute the image's SHA-256");
			}
			w.digest_updated = true;
		}
	}
	if (what)
		*what = w;
	return FW_OK;
}

/* ---- description ---- */

static void freq_text(const struct esp_image_info *info, char *out, size_t n)
{
	uint32_t mhz;

	if (esp_image_freq_mhz(info->family, info->chip_id, info->freq_code, &mhz))
		snprintf(out, n, "%um", (unsigned)mhz);
	else
		snprintf(out, n, "unknown freq 0x%X", info->freq_code);
}

void esp_image_flags_str(const struct esp_image_info *info, struct strbuf *out)
{
	const char *m = esp_image_mode_name(info->mode);
	const char *s = esp_image_size_name(info->family, info->size_code);
	char f[32];

	freq_text(info, f, sizeof(f));
	if (m)
		strbuf_adds(out, m);
	else
		strbuf_addf(out, "unknown mode 0x%02X", info->mode);
	if (s)
		strbuf_addf(out, ", %s", s);
	else
		strbuf_addf(out, ", unknown size 0x%X", info->size_code);
	strbuf_addf(out, ", %s", f);
}

static void rev_text(uint16_t rev, char *out, size_t n)
{
	snprintf(out, n, "v%u.%u", rev / 100u, rev % 100u);
}

void esp_image_describe(const uint8_t *buf, size_t len, enum profile_family fam,
			struct strbuf *out)
{
	struct esp_image_info info;
	struct fw_err err = {0};
	int rc = esp_image_parse(buf, len, fam, &info, &err);
	size_t i;

	if (!is_esp(fam)) {
		strbuf_adds(out, "ESP image: not applicable to this chip family\n");
		return;
	}
	if (info.magic != ESP_IMAGE_MAGIC || len < ESP_IMAGE_HEADER_LEN) {
		strbuf_addf(out, "ESP image: no (%s)\n", err.msg);
		return;
	}
	strbuf_addf(out, "ESP image (%s layout): %s\n", fam_name(fam),
		    rc ? "INVALID" : "valid");
	if (rc)
		strbuf_addf(out, "  problem: %s\n", err.msg);
	strbuf_addf(out, "  flash parameters: ");
	esp_image_flags_str(&info, out);
	strbuf_addf(out, " (bytes 2-3: 0x%02X%02X)\n", buf[2], buf[3]);
	strbuf_addf(out, "  entry point: 0x%08X\n", (unsigned)info.entry);
	if (info.has_ext) {
		const char *cn = esp_image_chip_name(info.chip_id);
		char a[16], b[16];

		strbuf_addf(out, "  chip: %s (id %u)\n", cn ? cn : "unknown", info.chip_id);
		rev_text(info.min_rev, a, sizeof(a));
		rev_text(info.max_rev, b, sizeof(b));
		strbuf_addf(out, "  chip revision: %s to %s\n", a, b);
		if (info.wp_pin == ESP_IMAGE_WP_PIN_UNUSED)
			strbuf_adds(out, "  WP pin: unused\n");
		else
			strbuf_addf(out, "  WP pin: GPIO%u\n", info.wp_pin);
		strbuf_addf(out, "  SPI drive strengths: %02X %02X %02X\n", info.drive[0],
			    info.drive[1], info.drive[2]);
	}
	strbuf_addf(out, "  segments: %u\n", info.nseg);
	for (i = 0; i < info.nseg_parsed; i++)
		strbuf_addf(out, "    %2zu: load 0x%08X, %u bytes at offset 0x%zX\n", i,
			    (unsigned)info.seg[i].load_addr, (unsigned)info.seg[i].len,
			    info.seg[i].offset);
	if (info.end) {
		strbuf_addf(out, "  checksum: 0x%02X at offset 0x%zX (%s)\n", info.checksum_stored,
			    info.checksum_offset,
			    info.checksum_stored == info.checksum_calc ? "ok" : "MISMATCH");
	}
	if (info.has_ext)
		strbuf_addf(out, "  appended SHA-256: %s\n",
			    !info.hash_appended ? "none"
			    : rc ? "not verified"
				 : "ok");
	if (!rc && info.end < len)
		strbuf_addf(out, "  image ends at offset 0x%zX; %zu more bytes follow in the file\n",
			    info.end, len - info.end);
}
