/* Checking a set of images (already placed at their flash addresses)
 * against a device profile before anything is written: every image inside
 * one partition, no overlaps, nothing in a protected partition or past the
 * flash, a valid ESP image with agreeing header flags at the bootloader
 * offset, and what an unaligned ESP8266 ROM write erases. The result is a
 * list of ok / warning / error lines for the front end to print. Pure. */
#ifndef FLASHWISE_IMAGESET_H
#define FLASHWISE_IMAGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "esp_image.h"
#include "image.h"
#include "profile.h"
#include "strbuf.h"

#define IMAGESET_MAX_VERDICTS 64
#define IMAGESET_ALL ((size_t)-1) /* a verdict about the whole set */

enum imageset_level {
	IMAGESET_OK,
	IMAGESET_WARN,  /* will be written, but the technician should know */
	IMAGESET_ERROR, /* refuses the whole set */
};

struct imageset_verdict {
	enum imageset_level level;
	size_t item;        /* index into the items, or IMAGESET_ALL */
	char text[448];     /* starts with the file name */
};

struct imageset_report {
	struct imageset_verdict v[IMAGESET_MAX_VERDICTS];
	size_t n;           /* stored */
	size_t total;       /* found (more than n when the list overflowed) */
	size_t nerr;
	size_t nwarn;
	size_t npatch;      /* images whose ESP header flags will be patched */
};

struct imageset_item {
	const char *file;       /* as the technician named it; NULL = "image N" */
	const char *partition;  /* the partition asked for, or NULL when placed by address */
	const struct image *img;/* at its final addresses */
};

/* The address a file goes to when the technician names a partition.
 * FW_EINVAL naming the profile's partitions when there is no such one. */
int imageset_addr_for(const struct profile *p, const char *partition, uint32_t *addr,
		      struct fw_err *e);

/* Checks the set; fills r (always, also on error). Returns FW_OK when there
 * is no error line (warnings allowed), FW_EIMAGE with the first error in e
 * otherwise, FW_EINVAL for bad arguments. Never modifies an image. */
int imageset_check(const struct profile *p, const struct imageset_item *items, size_t n,
		   struct imageset_report *r, struct fw_err *e);

/* Produces the bytes to write: when img covers the profile's ESP
 * bootloader offset, sets the header flags there to the profile's mode,
 * size and frequency (recomputing an appended SHA-256), in place. Anything
 * else is left alone (FW_OK, what->changed false). An invalid ESP image at
 * the bootloader offset is FW_EIMAGE. what may be NULL. */
int imageset_patch(const struct profile *p, struct image *img, struct esp_image_patch *what,
		   struct fw_err *e);

/* What a backup before writing img reads: on AVR (the erase unit is the
 * page, and PROG_PAGE keeps a partly covered page's other bytes) every
 * page outside the protected partitions, so that everything the image does
 * not cover can be proven unchanged afterwards; elsewhere the whole erase
 * units img touches, adjacent ones merged. *out is malloc'd (free it),
 * sorted, never empty for a non-empty img. */
struct imageset_span {
	uint32_t addr;
	uint32_t len;
};
bool imageset_backup_is_whole(const struct profile *p);
int imageset_backup_spans(const struct profile *p, const struct image *img,
			  struct imageset_span **out, size_t *n, struct fw_err *e);

const char *imageset_level_name(enum imageset_level l);
/* One line per verdict ("ok: ...", "warning: ...", "error: ..."), then a
 * summary line. */
void imageset_format(const struct imageset_report *r, struct strbuf *out);

#endif
