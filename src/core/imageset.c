#include "imageset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
	const struct profile *p;
	struct imageset_report *r;
	char first_err[sizeof(((struct imageset_verdict *)0)->text)];
};

static void verdict(struct ctx *c, enum imageset_level lvl, size_t item, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

static void verdict(struct ctx *c, enum imageset_level lvl, size_t item, const char *fmt,
		    ...)
{
	struct imageset_report *r = c->r;
	char text[sizeof(r->v[0].text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (lvl == IMAGESET_ERROR) {
		if (r->nerr == 0)
			snprintf(c->first_err, sizeof(c->first_err), "%s", text);
		r->nerr++;
	} else if (lvl == IMAGESET_WARN) {
		r->nwarn++;
	}
	r->total++;
	if (r->n < IMAGESET_MAX_VERDICTS) {
		r->v[r->n].level = lvl;
		r->v[r->n].item = item;
		snprintf(r->v[r->n].text, sizeof(r->v[r->n].text), "%s", text);
		r->n++;
	}
}

static uint64_t part_end(const struct profile_partition *pp)
{
	return (uint64_t)pp->offset + pp->size;
}

static const struct profile_partition *part_holding(const struct profile *p, uint32_t addr)
{
	size_t i;

	for (i = 0; i < p->npart; i++)
		if (addr >= p->part[i].offset && addr < part_end(&p->part[i]))
			return &p->part[i];
	return NULL;
}

static const struct profile_partition *part_named(const struct profile *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->npart; i++)
		if (!strcmp(p->part[i].name, name))
			return &p->part[i];
	return NULL;
}

/* "boot at 0x0, app at 0x10000, ..." for messages that send the technician
 * back to the profile's layout. */
static void part_list(const struct profile *p, char *out, size_t n)
{
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < p->npart && len < n; i++) {
		int w = snprintf(out + len, n - len, "%s%s at 0x%X", i ? ", " : "",
				 p->part[i].name, (unsigned)p->part[i].offset);

		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (p->npart == 0)
		snprintf(out, n, "none");
}

static const char *prof_name(const struct profile *p)
{
	return p->id[0] ? p->id : p->name[0] ? p->name : "(unnamed)";
}

int imageset_addr_for(const struct profile *p, const char *partition, uint32_t *addr,
		      struct fw_err *e)
{
	const struct profile_partition *pp;
	char list[256];

	if (!p || !partition || !addr)
		return fw_err_set(e, FW_EINVAL, "no partition name given");
	pp = part_named(p, partition);
	if (!pp) {
		part_list(p, list, sizeof(list));
		return fw_err_set(e, FW_EINVAL,
				  "profile '%s' has no partition '%s'; its partitions are: %s",
				  prof_name(p), partition, list);
	}
	*addr = pp->offset;
	return FW_OK;
}

static bool ranges_overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	return a0 < b1 && b0 < a1;
}

/* Where the ESP bootloader offset falls inside img: the bytes from there to
 * the end of that range. False when img does not cover the offset. */
static bool boot_slice(const struct profile *p, const struct image *img, uint8_t **buf,
		       size_t *len)
{
	uint32_t boot;
	const struct image_range *rg;

	if (p->family != PROFILE_FAMILY_ESP8266 && p->family != PROFILE_FAMILY_ESP32)
		return false;
	boot = profile_esp_bootloader_offset(p);
	if (boot == UINT32_MAX)
		return false;
	rg = image_find(img, boot);
	if (!rg)
		return false;
	*buf = rg->data + (boot - rg->addr);
	*len = rg->len - (boot - rg->addr);
	return true;
}

static void describe_bytes(const struct esp_image_info *info, uint8_t b2, uint8_t b3,
			   struct strbuf *sb)
{
	struct esp_image_info t = *info;

	t.mode = b2;
	t.size_code = b3 >> 4;
	t.freq_code = b3 & 0x0F;
	esp_image_flags_str(&t, sb);
	strbuf_addf(sb, " (0x%02X%02X)", b2, b3);
}

/* Checks the chip id against the profile's chip (ESP32 family only: the
 * ESP8266 header has no chip id). */
static void check_chip(struct ctx *c, size_t item, const char *name,
		       const struct esp_image_info *info)
{
	int want;

	if (!info->has_ext)
		return;
	want = esp_image_chip_id(c->p->chip);
	if (want >= 0 && info->chip_id != (uint16_t)want) {
		const char *got = esp_image_chip_name(info->chip_id);

		verdict(c, IMAGESET_ERROR, item,
			"%s: built for %s (chip id %u) but the profile's chip is %s; use a build "
			"for %s", name, got ? got : "an unknown chip", info->chip_id, c->p->chip,
			c->p->chip);
	}
}

/* The image at the bootloader offset: it must be an ESP image the ROM
 * boots, and its flash parameters must match the device or be patched. */
static void check_boot(struct ctx *c, size_t item, const char *name, const uint8_t *buf,
		       size_t len)
{
	const struct profile *p = c->p;
	uint32_t boot = profile_esp_bootloader_offset(p);
	struct esp_image_info info;
	struct fw_err err = {0};
	struct strbuf have = STRBUF_INIT, want = STRBUF_INIT;
	uint8_t b2, b3;

	if (esp_image_parse(buf, len, p->family, &info, &err)) {
		verdict(c, IMAGESET_ERROR, item,
			"%s: the image at the bootloader offset 0x%X must be a valid ESP image "
			"for %s: %s", name, (unsigned)boot, p->chip[0] ? p->chip : "this chip",
			err.msg);
		return;
	}
	check_chip(c, item, name, &info);
	if (esp_image_flags_for(&info, p->flash_mode, p->flash_size_flag, p->flash_freq_mhz,
				&b2, &b3, &err)) {
		verdict(c, IMAGESET_ERROR, item, "%s: cannot set the header to the profile's "
			"flash parameters: %s", name, err.msg);
		return;
	}
	describe_bytes(&info, buf[2], buf[3], &have);
	if (b2 == buf[2] && b3 == buf[3]) {
		verdict(c, IMAGESET_OK, item,
			"%s: ESP image header agrees with the profile (%s)", name,
			strbuf_str(&have));
	} else {
		describe_bytes(&info, b2, b3, &want);
		c->r->npatch++;
		verdict(c, IMAGESET_WARN, item,
			"%s: header flash parameters are %s but the profile wants %s: flashwise "
			"will patch bytes 2-3%s before writing, so the written bytes differ from "
			"the file", name, strbuf_str(&have), strbuf_str(&want),
			info.hash_appended ? " and recompute the appended SHA-256" : "");
	}
	strbuf_free(&have);
	strbuf_free(&want);
}

/* ESP32-family application partitions hold ESP images too; one that does
 * not parse would leave the device boot-looping. */
static void check_app(struct ctx *c, size_t item, const char *name, const struct image *img)
{
	const struct image_range *rg = image_range_get(img, 0);
	struct esp_image_info info;
	struct fw_err err = {0};

	if (esp_image_parse(rg->data, rg->len, c->p->family, &info, &err)) {
		verdict(c, IMAGESET_ERROR, item,
			"%s: an application partition needs a valid ESP image, the bootloader "
			"will not start this one: %s", name, err.msg);
		return;
	}
	check_chip(c, item, name, &info);
}

static void check_item(struct ctx *c, size_t i, const struct imageset_item *it,
		       const char *name)
{
	const struct profile *p = c->p;
	const struct image *img = it->img;
	const struct profile_partition *pp = NULL;
	size_t before = c->r->nerr, k, q;
	uint32_t lo, hi;
	uint64_t end;
	char list[256];
	uint8_t *bbuf;
	size_t blen;

	if (!img || !image_bounds(img, &lo, &hi)) {
		verdict(c, IMAGESET_ERROR, i, "%s: the image is empty: nothing to write", name);
		return;
	}
	end = image_end(img);

	if (end > p->flash_size) {
		if (lo >= p->flash_size)
			verdict(c, IMAGESET_ERROR, i,
				"%s: starts at 0x%08X, beyond the end of the %u-byte flash "
				"(last address 0x%08X); check the address", name, (unsigned)lo,
				(unsigned)p->flash_size, (unsigned)(p->flash_size - 1));
		else
			verdict(c, IMAGESET_ERROR, i,
				"%s: runs past the end of the %u-byte flash by %llu bytes (ends at "
				"0x%08llX, flash ends at 0x%08X); use an image built for this "
				"device", name, (unsigned)p->flash_size,
				(unsigned long long)(end - p->flash_size),
				(unsigned long long)(end - 1), (unsigned)(p->flash_size - 1));
	}

	if (it->partition && it->partition[0]) {
		const struct profile_partition *named = part_named(p, it->partition);

		if (!named) {
			part_list(p, list, sizeof(list));
			verdict(c, IMAGESET_ERROR, i,
				"%s: profile '%s' has no partition '%s'; its partitions are: %s",
				name, prof_name(p), it->partition, list);
		} else if (lo < named->offset || lo >= part_end(named)) {
			verdict(c, IMAGESET_ERROR, i,
				"%s: starts at 0x%08X, outside the partition '%s' it was meant for "
				"(0x%08X..0x%08llX)", name, (unsigned)lo, named->name,
				(unsigned)named->offset,
				(unsigned long long)(part_end(named) - 1));
		}
	}

	pp = part_holding(p, lo);
	if (!pp) {
		part_list(p, list, sizeof(list));
		verdict(c, IMAGESET_ERROR, i,
			"%s: starts at 0x%08X, which is in no partition of profile '%s'; "
			"partitions: %s", name, (unsigned)lo, prof_name(p), list);
	} else if (end > part_end(pp)) {
		verdict(c, IMAGESET_ERROR, i,
			"%s: %llu bytes from 0x%08X do not fit in partition '%s' "
			"(0x%08X..0x%08llX, %u bytes): %llu bytes too large; use an image "
			"built for this device's layout",
			name, (unsigned long long)(end - lo), (unsigned)lo, pp->name,
			(unsigned)pp->offset, (unsigned long long)(part_end(pp) - 1),
			(unsigned)pp->size, (unsigned long long)(end - part_end(pp)));
	}

	/* Protected partitions are checked per range, so each offending part of
	 * a sparse image is named. */
	for (k = 0; k < image_count(img); k++) {
		const struct image_range *rg = image_range_get(img, k);
		uint64_t r0 = rg->addr, r1 = (uint64_t)rg->addr + rg->len;

		for (q = 0; q < p->npart; q++) {
			const struct profile_partition *x = &p->part[q];
			uint64_t a, b;

			if (!x->protect || !ranges_overlap(r0, r1, x->offset, part_end(x)))
				continue;
			a = r0 > x->offset ? r0 : x->offset;
			b = r1 < part_end(x) ? r1 : part_end(x);
			verdict(c, IMAGESET_ERROR, i,
				"%s: would write 0x%08llX..0x%08llX inside protected partition "
				"'%s' (0x%08X..0x%08llX), which flashwise never writes; remove "
				"that part or use an image without it", name,
				(unsigned long long)a, (unsigned long long)(b - 1), x->name,
				(unsigned)x->offset, (unsigned long long)(part_end(x) - 1));
		}
	}

	/* The ESP8266 ROM loader starts every write on a sector boundary: the
	 * bytes before the image in that sector are erased. */
	if (p->family == PROFILE_FAMILY_ESP8266 && p->sector_size) {
		for (k = 0; k < image_count(img); k++) {
			const struct image_range *rg = image_range_get(img, k);
			uint32_t head = rg->addr % p->sector_size;

			if (head)
				verdict(c, IMAGESET_WARN, i,
					"%s: 0x%08X is not on a %u-byte sector boundary: the ROM "
					"loader starts the write at 0x%08X and erases "
					"0x%08X..0x%08X (%u bytes) that are not part of this image",
					name, (unsigned)rg->addr, (unsigned)p->sector_size,
					(unsigned)(rg->addr - head), (unsigned)(rg->addr - head),
					(unsigned)(rg->addr - 1), (unsigned)head);
		}
	}

	if (c->r->nerr != before)
		return;

	if (boot_slice(p, img, &bbuf, &blen))
		check_boot(c, i, name, bbuf, blen);
	else if (p->family == PROFILE_FAMILY_ESP32 && pp->role == PART_ROLE_APP)
		check_app(c, i, name, img);

	if (c->r->nerr != before)
		return;
	verdict(c, IMAGESET_OK, i,
		"%s: 0x%08X..0x%08X, %zu bytes in partition '%s' (%u bytes, %u%% used)", name,
		(unsigned)lo, (unsigned)hi, image_total(img), pp->name, (unsigned)pp->size,
		pp->size ? (unsigned)((end - lo) * 100 / pp->size) : 0);
}

/* Two images must not overlap, nor share an erase sector: writing the
 * second would erase part of the first. */
static void check_pair(struct ctx *c, const char *ni, const struct image *a, size_t j,
		       const char *nj, const struct image *b)
{
	uint32_t ss = c->p->sector_size;
	size_t x, y;

	for (x = 0; x < image_count(a); x++) {
		const struct image_range *ra = image_range_get(a, x);
		uint64_t a0 = ra->addr, a1 = (uint64_t)ra->addr + ra->len;

		for (y = 0; y < image_count(b); y++) {
			const struct image_range *rb = image_range_get(b, y);
			uint64_t b0 = rb->addr, b1 = (uint64_t)rb->addr + rb->len;

			if (ranges_overlap(a0, a1, b0, b1)) {
				verdict(c, IMAGESET_ERROR, j,
					"%s (0x%08llX..0x%08llX) overlaps %s (0x%08llX..0x%08llX); "
					"each address may be written by one file only",
					nj, (unsigned long long)b0, (unsigned long long)(b1 - 1), ni,
					(unsigned long long)a0, (unsigned long long)(a1 - 1));
				return;
			}
			if (ss && a0 / ss <= (b1 - 1) / ss && b0 / ss <= (a1 - 1) / ss) {
				uint64_t s = (a0 > b0 ? a0 : b0) / ss * ss;

				verdict(c, IMAGESET_ERROR, j,
					"%s and %s share the erase sector at 0x%08llX: writing one "
					"erases part of the other; place them in separate sectors",
					ni, nj, (unsigned long long)s);
				return;
			}
		}
	}
}

static const char *item_name(const struct imageset_item *it, size_t i, char *buf, size_t n)
{
	if (it->file && it->file[0])
		return it->file;
	snprintf(buf, n, "image %zu", i + 1);
	return buf;
}

int imageset_check(const struct profile *p, const struct imageset_item *items, size_t n,
		   struct imageset_report *r, struct fw_err *e)
{
	struct ctx c;
	char fa[32], fb[32];
	size_t i, j;

	if (!r)
		return fw_err_set(e, FW_EINVAL, "no report to fill");
	memset(r, 0, sizeof(*r));
	if (!p || (n && !items))
		return fw_err_set(e, FW_EINVAL, "no profile or no image list to check");
	memset(&c, 0, sizeof(c));
	c.p = p;
	c.r = r;
	if (n == 0)
		verdict(&c, IMAGESET_ERROR, IMAGESET_ALL, "no images given: nothing to write");
	for (i = 0; i < n; i++)
		check_item(&c, i, &items[i], item_name(&items[i], i, fa, sizeof(fa)));
	for (i = 0; i < n; i++) {
		for (j = i + 1; j < n; j++) {
			if (!items[i].img || !items[j].img)
				continue;
			check_pair(&c, item_name(&items[i], i, fa, sizeof(fa)), items[i].img, j,
				   item_name(&items[j], j, fb, sizeof(fb)), items[j].img);
		}
	}
	if (r->nerr)
		return fw_err_set(e, FW_EIMAGE, "%s", c.first_err);
	return FW_OK;
}

int imageset_patch(const struct profile *p, struct image *img, struct esp_image_patch *what,
		   struct fw_err *e)
{
	uint8_t *buf;
	size_t len;

	if (what)
		memset(what, 0, sizeof(*what));
	if (!p || !img)
		return fw_err_set(e, FW_EINVAL, "no profile or image to patch");
	if (!boot_slice(p, img, &buf, &len))
		return FW_OK;
	return esp_image_patch_flags(buf, len, p->family, p->flash_mode, p->flash_size_flag,
				     p->flash_freq_mhz, what, e);
}

const char *imageset_level_name(enum imageset_level l)
{
	switch (l) {
	case IMAGESET_OK:
		return "ok";
	case IMAGESET_WARN:
		return "warning";
	case IMAGESET_ERROR:
		return "error";
	}
	return "?";
}

void imageset_format(const struct imageset_report *r, struct strbuf *out)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		strbuf_addf(out, "%s: %s\n", imageset_level_name(r->v[i].level), r->v[i].text);
	if (r->total > r->n)
		strbuf_addf(out, "(%zu more lines not shown)\n", r->total - r->n);
	strbuf_addf(out, "%zu error%s, %zu warning%s", r->nerr, r->nerr == 1 ? "" : "s",
		    r->nwarn, r->nwarn == 1 ? "" : "s");
	if (r->npatch)
		strbuf_addf(out, ", %zu header%s to patch", r->npatch, r->npatch == 1 ? "" : "s");
	strbuf_adds(out, "\n");
}

bool imageset_backup_is_whole(const struct profile *p)
{
	return p->family == PROFILE_FAMILY_AVR;
}

static int span_add(struct imageset_span **v, size_t *n, size_t *cap, uint32_t lo,
		    uint64_t hi, struct fw_err *e)
{
	if (*n > 0 && (*v)[*n - 1].addr + (uint64_t)(*v)[*n - 1].len >= lo) {
		struct imageset_span *last = &(*v)[*n - 1];

		if (hi > (uint64_t)last->addr + last->len)
			last->len = (uint32_t)(hi - last->addr);
		return FW_OK;
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct imageset_span *nv = realloc(*v, nc * sizeof *nv);

		if (!nv)
			return fw_err_set(e, FW_ENOMEM, "out of memory planning the backup");
		*v = nv;
		*cap = nc;
	}
	(*v)[*n].addr = lo;
	(*v)[*n].len = (uint32_t)(hi - lo);
	(*n)++;
	return FW_OK;
}

int imageset_backup_spans(const struct profile *p, const struct image *img,
			  struct imageset_span **out, size_t *n, struct fw_err *e)
{
	uint32_t unit = p->sector_size ? p->sector_size : 4096;
	size_t cap = 0;
	int rc = FW_OK;

	*out = NULL;
	*n = 0;
	if (imageset_backup_is_whole(p)) {
		for (uint64_t a = 0; a < p->flash_size && rc == FW_OK; a += unit) {
			const struct profile_partition *pp = profile_partition_at(p, (uint32_t)a);

			if (!(pp && pp->protect))
				rc = span_add(out, n, &cap, (uint32_t)a, a + unit, e);
		}
	} else {
		for (size_t i = 0; i < image_count(img) && rc == FW_OK; i++) {
			const struct image_range *rg = image_range_get(img, i);
			uint32_t lo = rg->addr - rg->addr % unit;
			uint64_t hi = ((uint64_t)rg->addr + rg->len + unit - 1) / unit * unit;

			if (hi > p->flash_size)
				hi = p->flash_size;
			if (lo < hi)
				rc = span_add(out, n, &cap, lo, hi, e);
		}
	}
	if (rc != FW_OK) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
