#include "image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integrity.h"

#define ADDR_SPACE ((uint64_t)1 << 32)

void image_init(struct image *img)
{
	memset(img, 0, sizeof(*img));
}

void image_free(struct image *img)
{
	size_t i;

	if (!img)
		return;
	for (i = 0; i < img->n; i++)
		free(img->range[i].data);
	free(img->range);
	image_init(img);
}

static uint64_t range_end(const struct image_range *r)
{
	return (uint64_t)r->addr + r->len;
}

/* Makes room for one more range descriptor. */
static int reserve(struct image *img, struct fw_err *e)
{
	struct image_range *r;
	size_t cap;

	if (img->n < img->cap)
		return FW_OK;
	cap = img->cap ? img->cap * 2 : 8;
	r = realloc(img->range, cap * sizeof(*r));
	if (!r)
		return fw_err_set(e, FW_ENOMEM, "out of memory while reading an image");
	img->range = r;
	img->cap = cap;
	return FW_OK;
}

int image_copy(struct image *dst, const struct image *src, struct fw_err *e)
{
	size_t i;

	image_init(dst);
	dst->format = src->format;
	dst->has_start_segment = src->has_start_segment;
	dst->start_cs = src->start_cs;
	dst->start_ip = src->start_ip;
	dst->has_start_linear = src->has_start_linear;
	dst->start_linear = src->start_linear;
	if (src->n == 0)
		return FW_OK;
	dst->range = calloc(src->n, sizeof(*dst->range));
	if (!dst->range)
		return fw_err_set(e, FW_ENOMEM, "out of memory while copying an image");
	dst->cap = src->n;
	for (i = 0; i < src->n; i++) {
		dst->range[i].data = malloc(src->range[i].len);
		if (!dst->range[i].data) {
			image_free(dst);
			return fw_err_set(e, FW_ENOMEM, "out of memory while copying an image");
		}
		memcpy(dst->range[i].data, src->range[i].data, src->range[i].len);
		dst->range[i].addr = src->range[i].addr;
		dst->range[i].len = src->range[i].len;
		dst->n++;
	}
	return FW_OK;
}

/* Index of the first range whose end is above addr (the only candidate that
 * can hold or follow addr); img->n when there is none. */
static size_t lower_bound(const struct image *img, uint64_t addr)
{
	size_t lo = 0, hi = img->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (range_end(&img->range[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int image_add(struct image *img, uint32_t addr, const void *data, size_t len,
	      struct fw_err *e)
{
	uint64_t end = (uint64_t)addr + len;
	size_t i;
	bool join_prev, join_next;
	int rc;

	if (len == 0)
		return fw_err_set(e, FW_EINVAL, "empty range at 0x%08X", (unsigned)addr);
	if (len > ADDR_SPACE || end > ADDR_SPACE)
		return fw_err_set(e, FW_EIMAGE,
				  "range at 0x%08X of %zu bytes runs past the 4 GB address space",
				  (unsigned)addr, len);

	i = lower_bound(img, addr);
	if (i < img->n && img->range[i].addr < end) {
		const struct image_range *o = &img->range[i];

		return fw_err_set(e, FW_EIMAGE,
				  "range 0x%08X..0x%08llX (%zu bytes) overlaps range "
				  "0x%08X..0x%08llX (%zu bytes)",
				  (unsigned)addr, (unsigned long long)(end - 1), len,
				  (unsigned)o->addr, (unsigned long long)(range_end(o) - 1), o->len);
	}

	/* Merge with touching neighbours so a HEX file's many short records end
	 * up as one range per contiguous run. */
	join_prev = i > 0 && range_end(&img->range[i - 1]) == addr;
	join_next = i < img->n && img->range[i].addr == end;

	if (join_prev) {
		struct image_range *p = &img->range[i - 1];
		size_t extra = join_next ? img->range[i].len : 0;
		uint8_t *d = realloc(p->data, p->len + len + extra);

		if (!d)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading an image");
		p->data = d;
		memcpy(d + p->len, data, len);
		p->len += len;
		if (join_next) {
			memcpy(d + p->len, img->range[i].data, extra);
			p->len += extra;
			free(img->range[i].data);
			memmove(&img->range[i], &img->range[i + 1],
				(img->n - i - 1) * sizeof(*img->range));
			img->n--;
		}
		return FW_OK;
	}
	if (join_next) {
		struct image_range *nx = &img->range[i];
		uint8_t *d = malloc(len + nx->len);

		if (!d)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading an image");
		memcpy(d, data, len);
		memcpy(d + len, nx->data, nx->len);
		free(nx->data);
		nx->data = d;
		nx->addr = addr;
		nx->len += len;
		return FW_OK;
	}

	rc = reserve(img, e);
	if (rc)
		return rc;
	{
		uint8_t *d = malloc(len);

		if (!d)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading an image");
		memcpy(d, data, len);
		memmove(&img->range[i + 1], &img->range[i], (img->n - i) * sizeof(*img->range));
		img->range[i].addr = addr;
		img->range[i].len = len;
		img->range[i].data = d;
		img->n++;
	}
	return FW_OK;
}

int image_subtract(const struct image *a, const struct image *b, struct image *out,
		   struct fw_err *e)
{
	size_t i, k = 0;
	int rc = FW_OK;

	image_init(out);
	for (i = 0; i < a->n && rc == FW_OK; i++) {
		const struct image_range *r = &a->range[i];
		uint64_t pos = r->addr, end = range_end(r);

		/* b's ranges are sorted: walk them alongside, never back. */
		while (k < b->n && range_end(&b->range[k]) <= pos)
			k++;
		for (size_t j = k; pos < end && rc == FW_OK; j++) {
			uint64_t cut = j < b->n && b->range[j].addr < end ? b->range[j].addr : end;

			if (cut > pos)
				rc = image_add(out, (uint32_t)pos, r->data + (pos - r->addr),
					       (size_t)(cut - pos), e);
			if (j >= b->n || b->range[j].addr >= end)
				break;
			pos = range_end(&b->range[j]);
		}
	}
	if (rc != FW_OK)
		image_free(out);
	return rc;
}

size_t image_count(const struct image *img)
{
	return img->n;
}

const struct image_range *image_range_get(const struct image *img, size_t i)
{
	return i < img->n ? &img->range[i] : NULL;
}

const struct image_range *image_find(const struct image *img, uint32_t addr)
{
	size_t i = lower_bound(img, addr);

	if (i < img->n && img->range[i].addr <= addr)
		return &img->range[i];
	return NULL;
}

bool image_byte(const struct image *img, uint32_t addr, uint8_t *out)
{
	const struct image_range *r = image_find(img, addr);

	if (!r)
		return false;
	*out = r->data[addr - r->addr];
	return true;
}

size_t image_total(const struct image *img)
{
	size_t i, t = 0;

	for (i = 0; i < img->n; i++)
		t += img->range[i].len;
	return t;
}

bool image_bounds(const struct image *img, uint32_t *lowest, uint32_t *highest)
{
	if (img->n == 0)
		return false;
	if (lowest)
		*lowest = img->range[0].addr;
	if (highest)
		*highest = (uint32_t)(range_end(&img->range[img->n - 1]) - 1);
	return true;
}

uint64_t image_end(const struct image *img)
{
	return img->n ? range_end(&img->range[img->n - 1]) : 0;
}

bool image_gap(const struct image *img, size_t i, uint32_t *addr, size_t *len)
{
	uint64_t from;

	if (img->n < 2 || i >= img->n - 1)
		return false;
	from = range_end(&img->range[i]);
	if (addr)
		*addr = (uint32_t)from;
	if (len)
		*len = (size_t)(img->range[i + 1].addr - from);
	return true;
}

void image_flatten(const struct image *img, uint32_t start, size_t len, uint8_t fill,
		   uint8_t *out)
{
	uint64_t wend = (uint64_t)start + len;
	size_t i;

	memset(out, fill, len);
	for (i = lower_bound(img, start); i < img->n; i++) {
		const struct image_range *r = &img->range[i];
		uint64_t from, to;

		if (r->addr >= wend)
			break;
		from = r->addr > start ? r->addr : start;
		to = range_end(r) < wend ? range_end(r) : wend;
		memcpy(out + (from - start), r->data + (from - r->addr), (size_t)(to - from));
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum image_format image_detect_format(const void *buf, size_t len)
{
	const char *s = buf;
	size_t i = 0;

	/* Only text skips blanks: a binary starting with 0xE9 or anything but
	 * ':' stays BIN. A binary that happens to start with blanks and ':'
	 * fails loudly in the HEX parser rather than being written. */
	while (i < len && is_blank(s[i]))
		i++;
	return i < len && s[i] == ':' ? IMAGE_FORMAT_HEX : IMAGE_FORMAT_BIN;
}

const char *image_format_name(enum image_format f)
{
	return f == IMAGE_FORMAT_HEX ? "Intel HEX" : "raw binary";
}

int image_from_bin(struct image *img, const void *buf, size_t len, uint32_t base,
		   struct fw_err *e)
{
	int rc;

	if (len == 0)
		return fw_err_set(e, FW_EIMAGE, "the image is empty (0 bytes): check the file");
	img->format = IMAGE_FORMAT_BIN;
	rc = image_add(img, base, buf, len, e);
	if (rc == FW_EIMAGE)
		return fw_err_set(e, FW_EIMAGE,
				  "an image of %zu bytes at 0x%08X runs past the 4 GB address space",
				  len, (unsigned)base);
	return rc;
}

int image_load(struct image *img, const void *buf, size_t len, uint32_t base,
	       struct fw_err *e)
{
	if (image_detect_format(buf, len) == IMAGE_FORMAT_HEX)
		return image_parse_hex(img, buf, len, e);
	return image_from_bin(img, buf, len, base, e);
}

/* ---- Intel HEX ---- */

enum {
	REC_DATA = 0,
	REC_EOF = 1,
	REC_EXT_SEGMENT = 2,
	REC_START_SEGMENT = 3,
	REC_EXT_LINEAR = 4,
	REC_START_LINEAR = 5,
};

/* One data record (or a piece of one that wrapped in segment mode). */
struct hex_rec {
	uint32_t addr;
	uint32_t len;
	size_t line;
	size_t pool_off; /* where its bytes are in the pool */
};

struct hex_parse {
	struct hex_rec *rec;
	size_t nrec, caprec;
	uint8_t *pool;
	size_t npool, cappool;
};

static int hex_push(struct hex_parse *hp, uint32_t addr, const uint8_t *data, uint32_t len,
		    size_t line, struct fw_err *e)
{
	if (hp->nrec == hp->caprec) {
		size_t cap = hp->caprec ? hp->caprec * 2 : 64;
		struct hex_rec *r = realloc(hp->rec, cap * sizeof(*r));

		if (!r)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading a HEX file");
		hp->rec = r;
		hp->caprec = cap;
	}
	if (hp->npool + len > hp->cappool) {
		size_t cap = hp->cappool ? hp->cappool : 4096;
		uint8_t *p;

		while (cap < hp->npool + len)
			cap *= 2;
		p = realloc(hp->pool, cap);
		if (!p)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading a HEX file");
		hp->pool = p;
		hp->cappool = cap;
	}
	memcpy(hp->pool + hp->npool, data, len);
	hp->rec[hp->nrec].addr = addr;
	hp->rec[hp->nrec].len = len;
	hp->rec[hp->nrec].line = line;
	hp->rec[hp->nrec].pool_off = hp->npool;
	hp->nrec++;
	hp->npool += len;
	return FW_OK;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct hex_rec *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return 0;
}

#define HEX_DAMAGED "the file is damaged or not Intel HEX; get a fresh copy"

/* Decodes one record line (without its line ending) into bytes. */
static int hex_decode_line(const char *s, size_t n, size_t line, uint8_t *bytes,
			   size_t *nbytes, struct fw_err *e)
{
	size_t i, ndig;

	if (s[0] != ':')
		return fw_err_set(e, FW_EIMAGE,
				  "line %zu: a record must start with ':' (found '%c'); " HEX_DAMAGED,
				  line, (s[0] >= 0x20 && s[0] < 0x7f) ? s[0] : '?');
	ndig = n - 1;
	for (i = 1; i < n; i++) {
		if (integrity_hex_value(s[i]) < 0) {
			char what[8] = "a blank";

			if (s[i] > 0x20 && s[i] < 0x7f)
				snprintf(what, sizeof(what), "'%c'", s[i]);
			else if (s[i] != ' ' && s[i] != '\t')
				snprintf(what, sizeof(what), "byte %02X", (unsigned char)s[i]);
			return fw_err_set(e, FW_EIMAGE,
					  "line %zu, column %zu: %s is not a hex digit; " HEX_DAMAGED,
					  line, i + 1, what);
		}
	}
	if (ndig % 2)
		return fw_err_set(e, FW_EIMAGE,
				  "line %zu: odd number of hex digits (%zu), the record is cut or "
				  "has a stray digit; " HEX_DAMAGED, line, ndig);
	if (ndig < 10)
		return fw_err_set(e, FW_EIMAGE,
				  "line %zu: record too short (%zu hex digits, at least 10 needed); "
				  HEX_DAMAGED, line, ndig);
	*nbytes = ndig / 2;
	for (i = 0; i < *nbytes; i++)
		bytes[i] = (uint8_t)(integrity_hex_value(s[1 + 2 * i]) << 4 |
				     integrity_hex_value(s[2 + 2 * i]));
	if ((size_t)bytes[0] + 5 != *nbytes)
		return fw_err_set(e, FW_EIMAGE,
				  "line %zu: byte count says %u data bytes but the record holds %zu; "
				  HEX_DAMAGED, line, bytes[0], *nbytes - 5);
	{
		uint8_t sum = 0;

		for (i = 0; i + 1 < *nbytes; i++)
			sum = (uint8_t)(sum + bytes[i]);
		sum = (uint8_t)(0x100 - sum);
		if (sum != bytes[*nbytes - 1])
			return fw_err_set(e, FW_EIMAGE,
					  "line %zu: record checksum is 0x%02X but the record's bytes "
					  "need 0x%02X; " HEX_DAMAGED,
					  line, bytes[*nbytes - 1], sum);
	}
	return FW_OK;
}

static const char *rec_type_name(unsigned t)
{
	static const char *const names[] = {
		"data", "end-of-file", "extended segment address", "start segment address",
		"extended linear address", "start linear address",
	};

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* Turns the collected records into image ranges: sort, reject overlaps
 * (naming both lines), and join contiguous runs. */
static int hex_build(struct image *img, struct hex_parse *hp, struct fw_err *e)
{
	size_t i, j, far = 0;
	int rc;

	qsort(hp->rec, hp->nrec, sizeof(*hp->rec), cmp_rec);
	/* far = the record reaching highest so far; since records are sorted by
	 * start, any overlap shows up against it. */
	for (i = 1; i < hp->nrec; i++) {
		const struct hex_rec *a = &hp->rec[far], *b = &hp->rec[i];
		uint64_t aend = (uint64_t)a->addr + a->len;

		if (b->addr < aend) {
			const struct hex_rec *first = a->line <= b->line ? a : b;
			const struct hex_rec *second = first == a ? b : a;

			return fw_err_set(e, FW_EIMAGE,
					  "records overlap: line %zu writes 0x%08X..0x%08X and line "
					  "%zu writes 0x%08X..0x%08X; the file is inconsistent, fix "
					  "or rebuild it",
					  first->line, (unsigned)first->addr,
					  (unsigned)(first->addr + first->len - 1), second->line,
					  (unsigned)second->addr,
					  (unsigned)(second->addr + second->len - 1));
		}
		if ((uint64_t)b->addr + b->len > aend)
			far = i;
	}
	for (i = 0; i < hp->nrec; i = j) {
		uint64_t end = (uint64_t)hp->rec[i].addr + hp->rec[i].len;
		size_t total = hp->rec[i].len, off = 0;
		uint8_t *d;

		for (j = i + 1; j < hp->nrec && hp->rec[j].addr == end; j++) {
			end += hp->rec[j].len;
			total += hp->rec[j].len;
		}
		rc = reserve(img, e);
		if (rc)
			return rc;
		d = malloc(total);
		if (!d)
			return fw_err_set(e, FW_ENOMEM, "out of memory while reading a HEX file");
		for (size_t k = i; k < j; k++) {
			memcpy(d + off, hp->pool + hp->rec[k].pool_off, hp->rec[k].len);
			off += hp->rec[k].len;
		}
		img->range[img->n].addr = hp->rec[i].addr;
		img->range[img->n].len = total;
		img->range[img->n].data = d;
		img->n++;
	}
	return FW_OK;
}

int image_parse_hex(struct image *img, const char *text, size_t len, struct fw_err *e)
{
	enum { ADDR_NONE, ADDR_SEGMENT, ADDR_LINEAR } mode = ADDR_NONE;
	struct hex_parse hp = {0};
	uint8_t bytes[5 + 255 + 1];
	uint32_t base = 0;
	size_t pos = 0, line = 0, eof_line = 0, start_seg_line = 0, start_lin_line = 0;
	int rc = FW_OK;

	image_free(img);
	img->format = IMAGE_FORMAT_HEX;
	while (pos < len) {
		const char *s = text + pos;
		size_t n = 0, next, nb = 0;
		unsigned count, type, off;

		while (pos + n < len && text[pos + n] != '\n')
			n++;
		next = pos + n + 1;
		line++;
		/* Tolerate CRLF and trailing blanks; skip blank lines. */
		while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		pos = next;
		if (n == 0)
			continue;
		if (eof_line) {
			rc = fw_err_set(e, FW_EIMAGE,
					"line %zu: data after the end-of-file record on line %zu; the "
					"file may be two files joined together, check it", line,
					eof_line);
			goto out;
		}
		/* The longest valid record is 1 + 2 * 261 characters. */
		if (n > 1 + 2 * sizeof(bytes)) {
			rc = fw_err_set(e, FW_EIMAGE,
					"line %zu: record too long (%zu characters, at most %zu); "
					HEX_DAMAGED, line, n, 1 + 2 * sizeof(bytes));
			goto out;
		}
		rc = hex_decode_line(s, n, line, bytes, &nb, e);
		if (rc)
			goto out;
		count = bytes[0];
		off = (unsigned)bytes[1] << 8 | bytes[2];
		type = bytes[3];

		switch (type) {
		case REC_DATA:
			if (count == 0)
				break;
			if (mode == ADDR_SEGMENT && off + count > 0x10000) {
				/* Segment addressing wraps inside the 64 KB segment. */
				uint32_t first = 0x10000 - off;

				rc = hex_push(&hp, base + off, bytes + 4, first, line, e);
				if (!rc)
					rc = hex_push(&hp, base, bytes + 4 + first, count - first,
						      line, e);
			} else {
				uint64_t a = (uint64_t)base + off;

				if (a + count > ADDR_SPACE) {
					rc = fw_err_set(e, FW_EIMAGE,
							"line %zu: data at 0x%08llX runs past the 4 GB "
							"address space; " HEX_DAMAGED, line,
							(unsigned long long)a);
					goto out;
				}
				rc = hex_push(&hp, (uint32_t)a, bytes + 4, count, line, e);
			}
			if (rc)
				goto out;
			break;
		case REC_EOF:
			if (count != 0) {
				rc = fw_err_set(e, FW_EIMAGE,
						"line %zu: end-of-file record with %u data bytes, expected "
						"0; " HEX_DAMAGED, line, count);
				goto out;
			}
			eof_line = line;
			break;
		case REC_EXT_SEGMENT:
		case REC_EXT_LINEAR:
		case REC_START_SEGMENT:
		case REC_START_LINEAR: {
			unsigned want = (type == REC_EXT_SEGMENT || type == REC_EXT_LINEAR) ? 2 : 4;
			uint32_t v = 0;

			if (count != want) {
				rc = fw_err_set(e, FW_EIMAGE,
						"line %zu: %s record (type %02X) with %u data bytes, "
						"expected %u; " HEX_DAMAGED, line, rec_type_name(type),
						type, count, want);
				goto out;
			}
			for (unsigned k = 0; k < count; k++)
				v = v << 8 | bytes[4 + k];
			if (type == REC_EXT_SEGMENT) {
				mode = ADDR_SEGMENT;
				base = v << 4;
			} else if (type == REC_EXT_LINEAR) {
				mode = ADDR_LINEAR;
				base = v << 16;
			} else if (type == REC_START_SEGMENT) {
				uint16_t cs = (uint16_t)(v >> 16), ip = (uint16_t)v;

				/* Two different entry points cannot both be right. */
				if (img->has_start_segment &&
				    (img->start_cs != cs || img->start_ip != ip)) {
					rc = fw_err_set(e, FW_EIMAGE,
							"line %zu: start segment address %04X:%04X "
							"contradicts %04X:%04X on line %zu; fix the file",
							line, cs, ip, img->start_cs, img->start_ip,
							start_seg_line);
					goto out;
				}
				img->has_start_segment = true;
				img->start_cs = cs;
				img->start_ip = ip;
				start_seg_line = line;
			} else {
				if (img->has_start_linear && img->start_linear != v) {
					rc = fw_err_set(e, FW_EIMAGE,
							"line %zu: start linear address 0x%08X "
							"contradicts 0x%08X on line %zu; fix the file",
							line, (unsigned)v, (unsigned)img->start_linear,
							start_lin_line);
					goto out;
				}
				img->has_start_linear = true;
				img->start_linear = v;
				start_lin_line = line;
			}
			break;
		}
		default:
			rc = fw_err_set(e, FW_EIMAGE,
					"line %zu: unknown record type %02X (Intel HEX has 00 to 05); "
					HEX_DAMAGED, line, type);
			goto out;
		}
	}
	if (!eof_line) {
		rc = fw_err_set(e, FW_EIMAGE,
				"no end-of-file record (:00000001FF) after line %zu: the file is "
				"probably cut short; get a complete copy", line);
		goto out;
	}
	if (hp.nrec == 0) {
		rc = fw_err_set(e, FW_EIMAGE,
				"the HEX file holds no data records: there is nothing to write");
		goto out;
	}
	rc = hex_build(img, &hp, e);
out:
	free(hp.rec);
	free(hp.pool);
	if (rc)
		image_free(img);
	return rc;
}

/* ---- description ---- */

static void add_size(struct strbuf *out, uint64_t n)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		strbuf_addf(out, "%llu bytes (%llu MB)", (unsigned long long)n,
			    (unsigned long long)(n >> 20));
	else if (n >= 1024 && n % 1024 == 0)
		strbuf_addf(out, "%llu bytes (%llu KB)", (unsigned long long)n,
			    (unsigned long long)(n >> 10));
	else
		strbuf_addf(out, "%llu bytes", (unsigned long long)n);
}

void image_describe(const struct image *img, struct strbuf *out)
{
	uint32_t lo, hi;
	size_t i;

	strbuf_addf(out, "format: %s\n", image_format_name(img->format));
	if (!image_bounds(img, &lo, &hi)) {
		strbuf_adds(out, "contents: none\n");
		return;
	}
	strbuf_adds(out, "size: ");
	add_size(out, image_total(img));
	strbuf_adds(out, "\n");
	strbuf_addf(out, "span: 0x%08X..0x%08X, ", (unsigned)lo, (unsigned)hi);
	add_size(out, (uint64_t)hi - lo + 1);
	strbuf_adds(out, "\n");
	strbuf_addf(out, "ranges: %zu\n", img->n);
	for (i = 0; i < img->n; i++) {
		const struct image_range *r = &img->range[i];

		strbuf_addf(out, "  0x%08X..0x%08llX  ", (unsigned)r->addr,
			    (unsigned long long)(range_end(r) - 1));
		add_size(out, r->len);
		strbuf_adds(out, "\n");
	}
	if (img->n > 1) {
		strbuf_addf(out, "gaps (not written; erased flash reads 0xFF): %zu\n", img->n - 1);
		for (i = 0; i + 1 < img->n; i++) {
			uint32_t ga = 0;
			size_t gl = 0;

			image_gap(img, i, &ga, &gl);
			strbuf_addf(out, "  0x%08X..0x%08llX  ", (unsigned)ga,
				    (unsigned long long)((uint64_t)ga + gl - 1));
			add_size(out, gl);
			strbuf_adds(out, "\n");
		}
	}
	if (img->has_start_segment)
		strbuf_addf(out, "start address (segment): %04X:%04X\n", img->start_cs,
			    img->start_ip);
	if (img->has_start_linear)
		strbuf_addf(out, "start address (linear): 0x%08X\n", (unsigned)img->start_linear);
}

static void hex_record(struct strbuf *out, uint8_t type, uint16_t addr, const uint8_t *data,
		       size_t n)
{
	uint8_t sum = (uint8_t)(n + (addr >> 8) + (addr & 0xFF) + type);

	strbuf_addf(out, ":%02X%04X%02X", (unsigned)n, (unsigned)addr, (unsigned)type);
	for (size_t i = 0; i < n; i++) {
		strbuf_addf(out, "%02X", (unsigned)data[i]);
		sum = (uint8_t)(sum + data[i]);
	}
	strbuf_addf(out, "%02X\n", (unsigned)(uint8_t)(0x100 - sum));
}

void image_format_hex(const struct image *img, struct strbuf *out)
{
	uint32_t segment = 0;

	for (size_t i = 0; i < image_count(img); i++) {
		const struct image_range *r = image_range_get(img, i);
		size_t off = 0;

		while (off < r->len) {
			uint32_t addr = r->addr + (uint32_t)off;
			size_t n = r->len - off;

			if (addr >> 16 != segment || (i == 0 && off == 0)) {
				uint8_t hi[2] = {(uint8_t)(addr >> 24), (uint8_t)(addr >> 16)};

				segment = addr >> 16;
				hex_record(out, 4, 0, hi, 2);
			}
			/* A record never crosses a 64 KB segment boundary. */
			if (n > 32)
				n = 32;
			if ((addr & 0xFFFF) + n > 0x10000)
				n = 0x10000 - (addr & 0xFFFF);
			hex_record(out, 0, (uint16_t)(addr & 0xFFFF), r->data + off, n);
			off += n;
		}
	}
	hex_record(out, 1, 0, NULL, 0);
}
