/* STK500v1 bytes and page planning (stk500v1-optiboot.md sections 1-3). */
#include "stk500_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- commands ---- */

static void cmd_start(struct stk500_cmd *c, uint8_t op, size_t reply_len)
{
	c->op = op;
	c->b[0] = op;
	c->len = 1;
	c->reply_len = reply_len;
}

static void cmd_end(struct stk500_cmd *c)
{
	c->b[c->len++] = STK500_CRC_EOP;
}

static void cmd_simple(struct stk500_cmd *c, uint8_t op, size_t reply_len)
{
	cmd_start(c, op, reply_len);
	cmd_end(c);
}

void stk500_cmd_get_sync(struct stk500_cmd *c)
{
	cmd_simple(c, STK500_GET_SYNC, 0);
}

void stk500_cmd_enter_progmode(struct stk500_cmd *c)
{
	cmd_simple(c, STK500_ENTER_PROGMODE, 0);
}

void stk500_cmd_leave_progmode(struct stk500_cmd *c)
{
	cmd_simple(c, STK500_LEAVE_PROGMODE, 0);
}

void stk500_cmd_read_sign(struct stk500_cmd *c)
{
	cmd_simple(c, STK500_READ_SIGN, 3);
}

void stk500_cmd_get_parameter(struct stk500_cmd *c, uint8_t id)
{
	cmd_start(c, STK500_GET_PARAMETER, 1);
	c->b[c->len++] = id;
	cmd_end(c);
}

uint16_t stk500_word_address(uint32_t byte_addr)
{
	return (uint16_t)(byte_addr >> 1);
}

int stk500_cmd_load_address(struct stk500_cmd *c, uint32_t byte_addr, struct fw_err *e)
{
	uint16_t w;

	if (byte_addr & 1u)
		return fw_err_set(e, FW_EINVAL, "stk500: address 0x%X is odd: LOAD_ADDRESS "
				  "takes word addresses", byte_addr);
	if (byte_addr >= STK500_FLASH_MAX)
		return fw_err_set(e, FW_EINVAL, "stk500: address 0x%X is beyond the 128 KB "
				  "LOAD_ADDRESS reaches", byte_addr);
	w = stk500_word_address(byte_addr);
	cmd_start(c, STK500_LOAD_ADDRESS, 0);
	c->b[c->len++] = (uint8_t)(w & 0xFFu);
	c->b[c->len++] = (uint8_t)(w >> 8);
	cmd_end(c);
	return FW_OK;
}

static int check_mem(uint8_t mem, struct fw_err *e)
{
	if (mem != STK500_MEM_FLASH && mem != STK500_MEM_EEPROM)
		return fw_err_set(e, FW_EINVAL, "stk500: memory type 0x%02X is neither 'F' nor 'E'",
				  mem);
	return FW_OK;
}

int stk500_cmd_prog_page(struct stk500_cmd *c, uint8_t mem, const uint8_t *data, size_t len,
			 struct fw_err *e)
{
	int rc;

	if ((rc = check_mem(mem, e)) != FW_OK)
		return rc;
	if (!data || len == 0 || len > STK500_PAGE_MAX)
		return fw_err_set(e, FW_EINVAL, "stk500: a PROG_PAGE carries 1 to %u bytes, not %zu",
				  STK500_PAGE_MAX, len);
	cmd_start(c, STK500_PROG_PAGE, 0);
	c->b[c->len++] = (uint8_t)(len >> 8);
	c->b[c->len++] = (uint8_t)(len & 0xFFu);
	c->b[c->len++] = mem;
	memcpy(c->b + c->len, data, len);
	c->len += len;
	cmd_end(c);
	return FW_OK;
}

int stk500_cmd_read_page(struct stk500_cmd *c, uint8_t mem, size_t len, struct fw_err *e)
{
	int rc;

	if ((rc = check_mem(mem, e)) != FW_OK)
		return rc;
	if (len == 0 || len > STK500_READ_MAX)
		return fw_err_set(e, FW_EINVAL, "stk500: a READ_PAGE asks for 1 to %u bytes, not %zu",
				  STK500_READ_MAX, len);
	cmd_start(c, STK500_READ_PAGE, len);
	c->b[c->len++] = (uint8_t)(len >> 8);
	c->b[c->len++] = (uint8_t)(len & 0xFFu);
	c->b[c->len++] = mem;
	cmd_end(c);
	return FW_OK;
}

void stk500_cmd_set_device(struct stk500_cmd *c, const uint8_t params[20])
{
	cmd_start(c, STK500_SET_DEVICE, 0);
	memcpy(c->b + c->len, params, 20);
	c->len += 20;
	cmd_end(c);
}

void stk500_cmd_set_device_ext(struct stk500_cmd *c, const uint8_t params[4])
{
	cmd_start(c, STK500_SET_DEVICE_EXT, 0);
	/* Always the 5-byte form: Optiboot reads exactly 5 argument bytes,
	 * and a 4-byte form would make it take 0x20 as the fifth and leave. */
	c->b[c->len++] = 5;
	memcpy(c->b + c->len, params, 4);
	c->len += 4;
	cmd_end(c);
}

/* ---- replies ---- */

void stk500_reply_init(struct stk500_reply *r, uint8_t *data, size_t want)
{
	memset(r, 0, sizeof *r);
	r->data = data;
	r->want = want;
}

size_t stk500_reply_feed(struct stk500_reply *r, const uint8_t *in, size_t n)
{
	size_t i = 0;

	while (i < n && r->state == STK500_REPLY_MORE) {
		uint8_t b = in[i++];

		switch (r->stage) {
		case 0:
			if (b != STK500_INSYNC) {
				r->state = STK500_REPLY_BAD;
				r->why = b == STK500_NOSYNC ? STK500_WHY_NOSYNC
							    : STK500_WHY_NOT_INSYNC;
				r->bad = b;
				break;
			}
			r->stage = r->want ? 1 : 2;
			break;
		case 1:
			if (r->data)
				r->data[r->have] = b;
			if (++r->have == r->want)
				r->stage = 2;
			break;
		case 2:
			if (b != STK500_OK) {
				r->state = STK500_REPLY_BAD;
				r->why = b == STK500_FAILED ? STK500_WHY_FAILED : STK500_WHY_NOT_OK;
				r->bad = b;
				break;
			}
			r->stage = 3;
			r->state = STK500_REPLY_DONE;
			break;
		default:
			break;
		}
	}
	return i;
}

void stk500_reply_describe(const struct stk500_reply *r, char *buf, size_t size)
{
	switch (r->why) {
	case STK500_WHY_NONE:
		snprintf(buf, size, "%s", r->state == STK500_REPLY_DONE ? "a complete reply"
			 : "an incomplete reply");
		return;
	case STK500_WHY_NOSYNC:
		snprintf(buf, size, "0x15 (NOSYNC) instead of INSYNC");
		return;
	case STK500_WHY_NOT_INSYNC:
		snprintf(buf, size, "0x%02X instead of INSYNC (0x14)", r->bad);
		return;
	case STK500_WHY_FAILED:
		snprintf(buf, size, "0x11 (FAILED) after %zu reply bytes", r->have);
		return;
	case STK500_WHY_NOT_OK:
		snprintf(buf, size, "0x%02X instead of OK (0x10) after %zu reply bytes", r->bad,
			 r->have);
		return;
	}
	snprintf(buf, size, "an unexpected reply");
}

/* ---- noise ---- */

enum stk500_noise stk500_classify_noise(const uint8_t *buf, size_t n)
{
	size_t i, text = 0, letters = 0;

	if (!buf || n == 0)
		return STK500_NOISE_NONE;
	for (i = 0; i < n; i++) {
		uint8_t b = buf[i];

		if ((b >= 0x20 && b < 0x7F) || b == '\r' || b == '\n' || b == '\t')
			text++;
		if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z'))
			letters++;
	}
	/* A sketch's Serial.print output is printable ASCII with some
	 * letters; a wrong baud rate turns bytes into mostly non-printable
	 * values (and never into words). Needs a few bytes to judge. */
	if (n >= 4 && text * 10 >= n * 9 && letters * 4 >= n)
		return STK500_NOISE_TEXT;
	return STK500_NOISE_GARBAGE;
}

/* ---- loaders ---- */

void stk500_loader_from_version(uint8_t major, uint8_t minor, struct stk500_loader_info *out)
{
	memset(out, 0, sizeof *out);
	out->major = major;
	out->minor = minor;
	if (major >= 4) {
		out->kind = STK500_LOADER_OPTIBOOT;
		out->eeprom = false;
		out->read_max = STK500_OPTIBOOT_READ_MAX;
		snprintf(out->name, sizeof out->name, "Optiboot %u.%u", major, minor);
	} else if (major == 1) {
		/* ATmegaBOOT streams READ_PAGE for a 16-bit length (no buffer)
		 * and honours 'E' with word addresses. */
		out->kind = STK500_LOADER_ATMEGABOOT;
		out->eeprom = true;
		out->read_max = 1024;
		snprintf(out->name, sizeof out->name, "ATmegaBOOT %u.%u", major, minor);
	} else {
		/* Something else: only what every STK500v1 loader does. */
		out->kind = STK500_LOADER_UNKNOWN;
		out->eeprom = false;
		out->read_max = 128;
		snprintf(out->name, sizeof out->name, "STK500v1 loader %u.%u", major, minor);
	}
}

/* ---- planning ---- */

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

void stk500_plan_free(struct stk500_plan *plan)
{
	if (!plan)
		return;
	free(plan->page);
	memset(plan, 0, sizeof *plan);
}

/* Whether the image holds every byte of [addr, addr+len). */
static bool covers(const struct image *img, uint32_t addr, uint32_t len)
{
	const struct image_range *r = image_find(img, addr);

	return r && (uint64_t)r->addr + r->len >= (uint64_t)addr + len;
}

static int add_page(struct stk500_plan *plan, size_t *cap, uint32_t addr, bool partial,
		    struct fw_err *e)
{
	if (plan->n > 0 && plan->page[plan->n - 1].addr == addr)
		return FW_OK; /* two ranges in one page: planned once */
	if (plan->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct stk500_page *np = realloc(plan->page, ncap * sizeof *np);

		if (!np)
			return fw_err_set(e, FW_ENOMEM, "out of memory planning the write");
		plan->page = np;
		*cap = ncap;
	}
	plan->page[plan->n].addr = addr;
	plan->page[plan->n].partial = partial;
	plan->n++;
	if (partial)
		plan->npartial++;
	return FW_OK;
}

static int check_page(const struct profile *p, uint32_t addr, uint32_t ps, struct fw_err *e)
{
	size_t i;

	if ((uint64_t)addr + ps > p->flash_size)
		return fw_err_set(e, FW_EIMAGE,
				  "the image has bytes at 0x%X, past the end of the %s's %u KB flash "
				  "(last address 0x%X): check the image's addresses and the profile",
				  addr, p->chip, p->flash_size / 1024, p->flash_size - 1);
	for (i = 0; i < p->npart; i++) {
		const struct profile_partition *pt = &p->part[i];
		uint64_t pend = (uint64_t)pt->offset + pt->size;

		if (!pt->protect)
			continue;
		if (addr < pend && (uint64_t)addr + ps > pt->offset)
			return fw_err_set(e, FW_EGUARD,
					  "the image writes page 0x%X-0x%X, which lies in the protected "
					  "partition '%s' (0x%X-0x%llX) of profile %s: flashwise never "
					  "rewrites the bootloader; remove those bytes from the image "
					  "(a sketch must end below 0x%X)", addr, addr + ps - 1,
					  pt->name, pt->offset, (unsigned long long)pend - 1, p->id,
					  pt->offset);
	}
	return FW_OK;
}

int stk500_plan_pages(const struct profile *p, const struct image *img, struct stk500_plan *plan,
		      struct fw_err *e)
{
	uint32_t ps;
	size_t i, cap = 0;
	int rc;

	if (!plan)
		return fw_err_set(e, FW_EINVAL, "stk500: no plan");
	memset(plan, 0, sizeof *plan);
	if (!p || !img || image_count(img) == 0)
		return fw_err_set(e, FW_EINVAL, "stk500: the image is empty: nothing to write");
	ps = p->page_size;
	if (!is_pow2(ps) || ps > STK500_PAGE_MAX || ps < 2)
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "profile %s: page_size %u cannot be written over STK500v1 (a power "
				  "of two from 2 to %u)", p->id, ps, STK500_PAGE_MAX);
	if (p->flash_size > STK500_FLASH_MAX || p->flash_size % ps)
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "profile %s: %u bytes of flash cannot be addressed over STK500v1 "
				  "(at most 128 KB, whole pages)", p->id, p->flash_size);
	plan->page_size = ps;
	for (i = 0; i < image_count(img); i++) {
		const struct image_range *r = image_range_get(img, i);
		uint64_t end = (uint64_t)r->addr + r->len;
		uint64_t a;

		for (a = r->addr - r->addr % ps; a < end; a += ps) {
			uint32_t pa = (uint32_t)a;

			if ((rc = check_page(p, pa, ps, e)) != FW_OK)
				goto fail;
			if ((rc = add_page(plan, &cap, pa, !covers(img, pa, ps), e)) != FW_OK)
				goto fail;
		}
	}
	return FW_OK;
fail:
	stk500_plan_free(plan);
	return rc;
}

void stk500_page_fill(const struct image *img, uint32_t addr, uint32_t page_size,
		      const uint8_t *current, uint8_t *out)
{
	uint32_t i;

	if (current)
		memcpy(out, current, page_size);
	else
		memset(out, IMAGE_FILL, page_size);
	for (i = 0; i < page_size; i++) {
		uint8_t b;

		if (image_byte(img, addr + i, &b))
			out[i] = b;
	}
}
