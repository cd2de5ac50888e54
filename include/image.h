/* Firmware images as sparse memory: an ordered list of non-overlapping
 * address ranges, each owning a copy of its bytes. A raw .bin becomes one
 * range at a base address; an Intel HEX file becomes as many ranges as it has
 * contiguous runs of data. Pure: everything works on buffers the caller read.
 *
 * Addresses are flash (or memory) addresses in a 32-bit space; a range may
 * end exactly at 4 GB but never wraps past it. */
#ifndef FLASHWISE_IMAGE_H
#define FLASHWISE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

#define IMAGE_FILL 0xFF /* what erased flash reads as: the fill for gaps */

enum image_format {
	IMAGE_FORMAT_BIN, /* raw bytes (an ESP application image is one too) */
	IMAGE_FORMAT_HEX, /* Intel HEX text */
};

struct image_range {
	uint32_t addr;
	size_t len;     /* never 0 */
	uint8_t *data;  /* owned by the image */
};

struct image {
	enum image_format format;
	struct image_range *range; /* sorted by addr, non-overlapping, non-adjacent */
	size_t n;
	size_t cap;

	/* Intel HEX start address records (kept for `image info`; flash
	 * writers do not need them). */
	bool has_start_segment;    /* record 03 */
	uint16_t start_cs, start_ip;
	bool has_start_linear;     /* record 05 */
	uint32_t start_linear;
};

#define IMAGE_INIT {0}

void image_init(struct image *img);
void image_free(struct image *img);
/* Deep copy (dst is initialised first; on failure it is left empty). */
int image_copy(struct image *dst, const struct image *src, struct fw_err *e);

/* Adds a copy of data at addr. Touching neighbours are merged into one
 * range. Overlap with an existing range is FW_EIMAGE naming both ranges;
 * a range that would run past 4 GB is FW_EIMAGE; len 0 is FW_EINVAL. */
int image_add(struct image *img, uint32_t addr, const void *data, size_t len,
	      struct fw_err *e);

/* out = the bytes of a at addresses that b does not cover (out is
 * initialised first; on failure it is left empty). */
int image_subtract(const struct image *a, const struct image *b, struct image *out,
		   struct fw_err *e);

/* Iteration: ranges 0 .. image_count()-1 in address order. */
size_t image_count(const struct image *img);
const struct image_range *image_range_get(const struct image *img, size_t i);
/* The range holding addr, or NULL (binary search). */
const struct image_range *image_find(const struct image *img, uint32_t addr);
/* The byte at addr; false when addr is in no range. */
bool image_byte(const struct image *img, uint32_t addr, uint8_t *out);

/* Bytes present (sum of the range lengths, gaps not counted). */
size_t image_total(const struct image *img);
/* Lowest address and the last address that holds a byte (inclusive, so a
 * range ending at 4 GB still fits); false for an empty image. */
bool image_bounds(const struct image *img, uint32_t *lowest, uint32_t *highest);
/* One past the last byte as a 64-bit number (0 for an empty image). */
uint64_t image_end(const struct image *img);

/* Gaps between ranges: there are image_count()-1 of them (0 when <2 ranges).
 * Returns false when i is out of range. */
bool image_gap(const struct image *img, size_t i, uint32_t *addr, size_t *len);

/* Copies the window [start, start+len) into out, with `fill` wherever the
 * image has no byte. The window may extend past 4 GB only as fill. */
void image_flatten(const struct image *img, uint32_t start, size_t len, uint8_t fill,
		   uint8_t *out);

/* Which format a file's bytes are in: HEX when the text starts with ':'
 * (after blank lines), BIN otherwise (an ESP image with magic 0xE9 is BIN). */
enum image_format image_detect_format(const void *buf, size_t len);
const char *image_format_name(enum image_format f);

/* The whole buffer as one range at base. An empty buffer is FW_EIMAGE. */
int image_from_bin(struct image *img, const void *buf, size_t len, uint32_t base,
		   struct fw_err *e);

/* Parses Intel HEX text (record types 00-05, LF or CRLF, blank lines
 * allowed). Every record error is FW_EIMAGE naming the line; overlapping
 * records name both lines and their addresses. Gaps are allowed: see
 * image_gap(). img must be empty (initialised); on error it stays empty. */
int image_parse_hex(struct image *img, const char *text, size_t len, struct fw_err *e);

/* Writes img as Intel HEX (32-byte data records, type 04 for every 64 KB
 * segment, an EOF record), the form backups of sparse ranges are stored in:
 * image_parse_hex() reads it back to the same ranges. */
void image_format_hex(const struct image *img, struct strbuf *out);

/* Parses buf in the detected format: HEX, or BIN placed at base. */
int image_load(struct image *img, const void *buf, size_t len, uint32_t base,
	       struct fw_err *e);

/* Human-readable summary (format, ranges, sizes, gaps, start address) for
 * `flashwise image info`; one line per item, each ending in '\n'. */
void image_describe(const struct image *img, struct strbuf *out);

#endif
