/* ESP application image header (the format the ROM boots from flash):
 * 8-byte header, ESP32-family extended header, segments, checksum byte and
 * the optional appended SHA-256. Parsing, flag decoding per chip, and the
 * header flag patch (bytes 2 and 3) done when writing at the bootloader
 * offset. Pure: buffers in, results out.
 *
 * The layout differs per family, so every call takes the profile's family
 * (PROFILE_FAMILY_ESP8266 or PROFILE_FAMILY_ESP32; AVR is FW_EINVAL). */
#ifndef FLASHWISE_ESP_IMAGE_H
#define FLASHWISE_ESP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "profile.h"
#include "strbuf.h"

#define ESP_IMAGE_MAGIC 0xE9
#define ESP_IMAGE_HEADER_LEN 8
#define ESP_IMAGE_EXT_HEADER_LEN 16   /* ESP32 family only */
#define ESP_IMAGE_SEGMENT_HEADER_LEN 8
#define ESP_IMAGE_MAX_SEGMENTS 16
#define ESP_IMAGE_CHECKSUM_SEED 0xEF
#define ESP_IMAGE_DIGEST_LEN 32
#define ESP_IMAGE_WP_PIN_UNUSED 0xEE
#define ESP_IMAGE_CHIP_NONE 0xFFFF    /* ESP8266 images carry no chip id */

struct esp_image_segment {
	uint32_t load_addr;
	uint32_t len;
	size_t offset;            /* file offset of the segment's data */
};

struct esp_image_info {
	enum profile_family family;
	/* header */
	uint8_t magic;
	uint8_t nseg;
	uint8_t mode;             /* byte 2: 0 qio, 1 qout, 2 dio, 3 dout */
	uint8_t size_code;        /* byte 3, high nibble */
	uint8_t freq_code;        /* byte 3, low nibble */
	uint32_t entry;
	/* ESP32-family extended header (has_ext) */
	bool has_ext;
	uint8_t wp_pin;
	uint8_t drive[3];         /* SPI pin drive strengths, as stored */
	uint16_t chip_id;         /* ESP_IMAGE_CHIP_NONE without extended header */
	uint8_t min_rev_legacy;
	uint16_t min_rev;         /* major * 100 + minor */
	uint16_t max_rev;
	bool hash_appended;
	/* body */
	struct esp_image_segment seg[ESP_IMAGE_MAX_SEGMENTS];
	size_t nseg_parsed;       /* how many segment headers were read */
	size_t checksum_offset;
	uint8_t checksum_stored;
	uint8_t checksum_calc;
	size_t digest_offset;     /* valid when hash_appended */
	size_t end;               /* bytes the image occupies (through checksum/digest);
	                             a file may carry more after it (ESP8266 irom0) */
};

/* Parses and checks an image: magic, segment count, every segment inside
 * the buffer, the checksum byte, the appended SHA-256 when flagged. Every
 * problem is FW_EIMAGE with a message saying what and where (segment index,
 * offsets, bytes missing). info is filled as far as parsing got, so a
 * description can still show the header of a broken image. */
int esp_image_parse(const uint8_t *buf, size_t len, enum profile_family fam,
		    struct esp_image_info *info, struct fw_err *e);

/* For `image info` without a profile: the family whose layout parses
 * cleanly. FW_EIMAGE when neither or both do (then fam is untouched). */
int esp_image_guess_family(const uint8_t *buf, size_t len, enum profile_family *fam);

/* Decoding of the header flags. Names are NULL for codes the chip does not
 * define. chip_id selects the frequency table within the ESP32 family
 * (ESP_IMAGE_CHIP_NONE for ESP8266). */
const char *esp_image_mode_name(uint8_t mode);
const char *esp_image_size_name(enum profile_family fam, uint8_t code);
bool esp_image_size_bytes(enum profile_family fam, uint8_t code, uint32_t *bytes);
bool esp_image_freq_mhz(enum profile_family fam, uint16_t chip_id, uint8_t code,
			uint32_t *mhz);
/* Encoding: the header code for a value, or -1 when the chip has none. */
int esp_image_size_code(enum profile_family fam, uint32_t bytes);
int esp_image_freq_code(enum profile_family fam, uint16_t chip_id, uint32_t mhz);

/* Chip ids of the ESP32 extended header: "esp32" -> 0, "esp32-c3" -> 5, ...
 * (case, '-' and '_' ignored); -1 when unknown. */
int esp_image_chip_id(const char *chip);
const char *esp_image_chip_name(uint16_t chip_id); /* NULL when unknown */

/* What a patch would change or changed. */
struct esp_image_patch {
	bool changed;             /* bytes 2-3 differ from before */
	uint8_t old_b2, old_b3;
	uint8_t new_b2, new_b3;
	bool digest_updated;      /* the appended SHA-256 was recomputed */
};

/* The bytes 2 and 3 that esp_image_patch_flags() would write for this
 * parsed header (same keep rules and errors), without touching a buffer. */
int esp_image_flags_for(const struct esp_image_info *info, int mode, uint32_t size_bytes,
			uint32_t freq_mhz, uint8_t *b2, uint8_t *b3, struct fw_err *e);

/* Sets header bytes 2 (mode) and 3 (size << 4 | freq) in place. Keeps a
 * field when mode < 0, size_bytes == 0 or freq_mhz == 0, and keeps a size
 * code that already means size_bytes (ESP8266 "-c1" maps stay). Refuses
 * (FW_EIMAGE, buffer untouched) unless buf holds a valid image for fam:
 * patching a broken image would hide its damage. A value the chip cannot
 * encode is FW_EINVAL. When an ESP32 image carries an appended SHA-256 it
 * is recomputed so the image stays valid. what may be NULL. */
int esp_image_patch_flags(uint8_t *buf, size_t len, enum profile_family fam, int mode,
			  uint32_t size_bytes, uint32_t freq_mhz, struct esp_image_patch *what,
			  struct fw_err *e);

/* The header decode for `image info`: parses buf as fam and describes it,
 * or says why it is not a valid image. Lines end in '\n'. */
void esp_image_describe(const uint8_t *buf, size_t len, enum profile_family fam,
			struct strbuf *out);
/* Short "dio, 4MB, 40m" form of a parsed header. */
void esp_image_flags_str(const struct esp_image_info *info, struct strbuf *out);

#endif
