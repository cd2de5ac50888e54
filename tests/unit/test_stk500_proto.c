/* stk500_proto: the bytes avrdude was seen sending (stk500v1-optiboot.md
 * section 4), reply parsing, noise diagnosis, loader versions and the page
 * plan of a flash write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"
#include "profile.h"
#include "stk500_proto.h"

static void assert_bytes(const struct stk500_cmd *c, const uint8_t *want, size_t n)
{
	assert_int_equal(c->len, n);
	assert_memory_equal(c->b, want, n);
}

/* ---- commands ---- */

static void test_simple_commands(void **state)
{
	struct stk500_cmd c;
	static const uint8_t sync[] = { 0x30, 0x20 };
	static const uint8_t sign[] = { 0x75, 0x20 };
	static const uint8_t leave[] = { 0x51, 0x20 };
	static const uint8_t enter[] = { 0x50, 0x20 };
	static const uint8_t param[] = { 0x41, 0x81, 0x20 };

	(void)state;
	stk500_cmd_get_sync(&c);
	assert_bytes(&c, sync, sizeof sync);
	assert_int_equal(c.reply_len, 0);
	stk500_cmd_read_sign(&c);
	assert_bytes(&c, sign, sizeof sign);
	assert_int_equal(c.reply_len, 3);
	stk500_cmd_leave_progmode(&c);
	assert_bytes(&c, leave, sizeof leave);
	stk500_cmd_enter_progmode(&c);
	assert_bytes(&c, enter, sizeof enter);
	stk500_cmd_get_parameter(&c, STK500_PARAM_SW_MAJOR);
	assert_bytes(&c, param, sizeof param);
	assert_int_equal(c.reply_len, 1);
	assert_int_equal(c.op, STK500_GET_PARAMETER);
}

static void test_load_address_is_word_address(void **state)
{
	struct stk500_cmd c;
	struct fw_err e = { 0 };
	static const uint8_t page5[] = { 0x55, 0x40, 0x01, 0x20 };   /* 5 * 64 words */
	static const uint8_t last[] = { 0x55, 0xC0, 0x3E, 0x20 };    /* 0x7D80 / 2 */

	(void)state;
	assert_int_equal(stk500_cmd_load_address(&c, 5 * 128, &e), FW_OK);
	assert_bytes(&c, page5, sizeof page5);
	assert_int_equal(stk500_cmd_load_address(&c, 0x7D80, &e), FW_OK);
	assert_bytes(&c, last, sizeof last);
	assert_int_equal(stk500_word_address(0x7E00), 0x3F00);
	assert_int_equal(stk500_cmd_load_address(&c, 0x101, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "odd"));
	assert_int_equal(stk500_cmd_load_address(&c, 0x20000, &e), FW_EINVAL);
	assert_int_equal(stk500_cmd_load_address(&c, 0x1FFFE, NULL), FW_OK);
	assert_int_equal(c.b[1], 0xFF);
	assert_int_equal(c.b[2], 0xFF);
}

static void test_prog_and_read_page(void **state)
{
	struct stk500_cmd c;
	struct fw_err e = { 0 };
	uint8_t data[256];
	static const uint8_t rd128[] = { 0x74, 0x00, 0x80, 0x46, 0x20 };
	static const uint8_t rd256[] = { 0x74, 0x01, 0x00, 0x46, 0x20 };
	static const uint8_t rde[] = { 0x74, 0x00, 0x04, 0x45, 0x20 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i ^ 0x5A);
	assert_int_equal(stk500_cmd_prog_page(&c, STK500_MEM_FLASH, data, 128, &e), FW_OK);
	assert_int_equal(c.len, 5 + 128);
	assert_int_equal(c.b[0], 0x64);
	assert_int_equal(c.b[1], 0x00);
	assert_int_equal(c.b[2], 0x80);
	assert_int_equal(c.b[3], 'F');
	assert_memory_equal(c.b + 4, data, 128);
	assert_int_equal(c.b[4 + 128], 0x20);
	assert_int_equal(c.reply_len, 0);
	assert_int_equal(stk500_cmd_prog_page(&c, STK500_MEM_FLASH, data, 256, &e), FW_OK);
	assert_int_equal(c.b[1], 0x01);
	assert_int_equal(c.b[2], 0x00);
	assert_int_equal(c.len, 261);
	assert_int_equal(stk500_cmd_prog_page(&c, STK500_MEM_FLASH, data, 257, &e), FW_EINVAL);
	assert_int_equal(stk500_cmd_prog_page(&c, STK500_MEM_FLASH, data, 0, &e), FW_EINVAL);
	assert_int_equal(stk500_cmd_prog_page(&c, 'X', data, 2, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "memory type"));

	assert_int_equal(stk500_cmd_read_page(&c, STK500_MEM_FLASH, 128, &e), FW_OK);
	assert_bytes(&c, rd128, sizeof rd128);
	assert_int_equal(c.reply_len, 128);
	assert_int_equal(stk500_cmd_read_page(&c, STK500_MEM_FLASH, 256, &e), FW_OK);
	assert_bytes(&c, rd256, sizeof rd256);
	assert_int_equal(c.reply_len, 256);
	assert_int_equal(stk500_cmd_read_page(&c, STK500_MEM_EEPROM, 4, &e), FW_OK);
	assert_bytes(&c, rde, sizeof rde);
	assert_int_equal(stk500_cmd_read_page(&c, STK500_MEM_FLASH, 0, &e), FW_EINVAL);
	assert_int_equal(stk500_cmd_read_page(&c, STK500_MEM_FLASH, 65536, &e), FW_EINVAL);
}

static void test_set_device_forms(void **state)
{
	struct stk500_cmd c;
	/* avrdude 7.1 for the Uno (section 4) */
	static const uint8_t dev[20] = { 0x86, 0x00, 0x00, 0x01, 0x01, 0x01, 0x01, 0x03,
					 0xff, 0xff, 0xff, 0xff, 0x00, 0x80, 0x04, 0x00,
					 0x00, 0x00, 0x80, 0x00 };
	static const uint8_t ext[4] = { 0x04, 0xd7, 0xc2, 0x01 };
	static const uint8_t want_ext[] = { 0x45, 0x05, 0x04, 0xd7, 0xc2, 0x01, 0x20 };

	(void)state;
	stk500_cmd_set_device(&c, dev);
	assert_int_equal(c.len, 22);
	assert_int_equal(c.b[0], 0x42);
	assert_memory_equal(c.b + 1, dev, 20);
	assert_int_equal(c.b[21], 0x20);
	/* Optiboot reads exactly 5 bytes after 'E' */
	stk500_cmd_set_device_ext(&c, ext);
	assert_bytes(&c, want_ext, sizeof want_ext);
}

/* ---- replies ---- */

static void test_reply_parse(void **state)
{
	struct stk500_reply r;
	uint8_t sig[3];
	static const uint8_t ok[] = { 0x14, 0x10 };
	static const uint8_t sign[] = { 0x14, 0x1E, 0x95, 0x0F, 0x10, 0x14, 0x10 };
	size_t i, used = 0;

	(void)state;
	stk500_reply_init(&r, NULL, 0);
	assert_int_equal(stk500_reply_feed(&r, ok, 2), 2);
	assert_int_equal(r.state, STK500_REPLY_DONE);

	/* byte by byte, and it stops at the end of its own reply */
	stk500_reply_init(&r, sig, 3);
	for (i = 0; i < sizeof sign && r.state == STK500_REPLY_MORE; i++) {
		used += stk500_reply_feed(&r, sign + i, 1);
		if (i < 4)
			assert_int_equal(r.state, STK500_REPLY_MORE);
	}
	assert_int_equal(r.state, STK500_REPLY_DONE);
	assert_int_equal(used, 5);
	assert_int_equal(sig[0], 0x1E);
	assert_int_equal(sig[1], 0x95);
	assert_int_equal(sig[2], 0x0F);
	stk500_reply_init(&r, sig, 3);
	assert_int_equal(stk500_reply_feed(&r, sign, sizeof sign), 5);
	assert_int_equal(r.state, STK500_REPLY_DONE);
}

static void test_reply_errors(void **state)
{
	struct stk500_reply r;
	uint8_t v;
	char why[96];
	static const uint8_t nosync[] = { 0x15, 0x10 };
	static const uint8_t junk[] = { 0xF8, 0x14, 0x10 };
	static const uint8_t failed[] = { 0x14, 0x11 };
	static const uint8_t short_data[] = { 0x14, 0x04, 0x14 };

	(void)state;
	stk500_reply_init(&r, NULL, 0);
	assert_int_equal(stk500_reply_feed(&r, nosync, 2), 1);
	assert_int_equal(r.state, STK500_REPLY_BAD);
	assert_int_equal(r.why, STK500_WHY_NOSYNC);
	stk500_reply_describe(&r, why, sizeof why);
	assert_non_null(strstr(why, "NOSYNC"));

	stk500_reply_init(&r, NULL, 0);
	assert_int_equal(stk500_reply_feed(&r, junk, 3), 1);
	assert_int_equal(r.why, STK500_WHY_NOT_INSYNC);
	assert_int_equal(r.bad, 0xF8);
	stk500_reply_describe(&r, why, sizeof why);
	assert_non_null(strstr(why, "0xF8"));

	stk500_reply_init(&r, NULL, 0);
	stk500_reply_feed(&r, failed, 2);
	assert_int_equal(r.why, STK500_WHY_FAILED);

	stk500_reply_init(&r, &v, 1);
	stk500_reply_feed(&r, short_data, 3);
	assert_int_equal(r.state, STK500_REPLY_BAD);
	assert_int_equal(r.why, STK500_WHY_NOT_OK);
	assert_int_equal(v, 0x04);
	stk500_reply_describe(&r, why, sizeof why);
	assert_non_null(strstr(why, "0x14 instead of OK"));
}

/* ---- noise ---- */

static void test_classify_noise(void **state)
{
	static const char text[] = "Temperature: 21.5 C\r\n";
	static const uint8_t garbage[] = { 0xF8, 0x80, 0x00, 0xFE, 0x78, 0x80, 0xE0, 0x00 };
	static const uint8_t digits[] = "0000000000";

	(void)state;
	assert_int_equal(stk500_classify_noise(NULL, 0), STK500_NOISE_NONE);
	assert_int_equal(stk500_classify_noise((const uint8_t *)text, strlen(text)),
			 STK500_NOISE_TEXT);
	assert_int_equal(stk500_classify_noise(garbage, sizeof garbage), STK500_NOISE_GARBAGE);
	/* printable but no words: not evidence of a sketch's text */
	assert_int_equal(stk500_classify_noise(digits, 10), STK500_NOISE_GARBAGE);
	assert_int_equal(stk500_classify_noise((const uint8_t *)"ab", 2), STK500_NOISE_GARBAGE);
}

/* ---- loaders ---- */

static void test_loader_versions(void **state)
{
	struct stk500_loader_info li;

	(void)state;
	stk500_loader_from_version(4, 4, &li);
	assert_int_equal(li.kind, STK500_LOADER_OPTIBOOT);
	assert_false(li.eeprom);
	assert_int_equal(li.read_max, 256);
	assert_string_equal(li.name, "Optiboot 4.4");
	stk500_loader_from_version(1, 16, &li);
	assert_int_equal(li.kind, STK500_LOADER_ATMEGABOOT);
	assert_true(li.eeprom);
	assert_true(li.read_max > 256);
	assert_string_equal(li.name, "ATmegaBOOT 1.16");
	stk500_loader_from_version(2, 10, &li);
	assert_int_equal(li.kind, STK500_LOADER_UNKNOWN);
	assert_false(li.eeprom);
	assert_int_equal(li.read_max, 128);
}

/* ---- planning ---- */

static void uno(struct profile *p)
{
	memset(p, 0, sizeof *p);
	strcpy(p->id, "arduino-uno-r3");
	strcpy(p->chip, "atmega328p");
	p->family = PROFILE_FAMILY_AVR;
	p->protocol = PROFILE_PROTO_STK500V1;
	p->flash_size = 32768;
	p->page_size = 128;
	p->sector_size = 128;
	strcpy(p->part[0].name, "application");
	p->part[0].offset = 0;
	p->part[0].size = 0x7E00;
	p->part[0].role = PART_ROLE_APP;
	strcpy(p->part[1].name, "bootloader");
	p->part[1].offset = 0x7E00;
	p->part[1].size = 0x200;
	p->part[1].role = PART_ROLE_BOOTLOADER;
	p->part[1].protect = true;
	p->npart = 2;
}

static void add(struct image *img, uint32_t addr, size_t len, uint8_t seed)
{
	uint8_t *b = malloc(len);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i);
	assert_int_equal(image_add(img, addr, b, len, NULL), FW_OK);
	free(b);
}

static void test_plan_partial_pages(void **state)
{
	struct profile p;
	struct image img;
	struct stk500_plan plan;
	struct fw_err e = { 0 };

	(void)state;
	uno(&p);
	image_init(&img);
	add(&img, 0, 145, 1); /* the 145-byte image of section 3 */
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_OK);
	assert_int_equal(plan.n, 2);
	assert_int_equal(plan.page_size, 128);
	assert_int_equal(plan.page[0].addr, 0);
	assert_false(plan.page[0].partial);
	assert_int_equal(plan.page[1].addr, 128);
	assert_true(plan.page[1].partial);
	assert_int_equal(plan.npartial, 1);
	stk500_plan_free(&plan);
	assert_null(plan.page);

	/* an unaligned start, and two ranges sharing one page */
	add(&img, 0x300 + 10, 20, 2);
	add(&img, 0x300 + 100, 10, 3);
	add(&img, 0x7D80, 128, 4); /* the last application page */
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_OK);
	assert_int_equal(plan.n, 4);
	assert_int_equal(plan.page[2].addr, 0x300);
	assert_true(plan.page[2].partial);
	assert_int_equal(plan.page[3].addr, 0x7D80);
	assert_false(plan.page[3].partial);
	assert_int_equal(plan.npartial, 2);
	stk500_plan_free(&plan);
	image_free(&img);
}

static void test_plan_refuses_bootloader(void **state)
{
	struct profile p;
	struct image img;
	struct stk500_plan plan;
	struct fw_err e = { 0 };

	(void)state;
	uno(&p);
	image_init(&img);
	add(&img, 0, 256, 1);
	add(&img, 0x7E00, 2, 9); /* two bytes in the boot section */
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EGUARD);
	assert_non_null(strstr(e.msg, "bootloader"));
	assert_non_null(strstr(e.msg, "0x7E00"));
	assert_non_null(strstr(e.msg, "arduino-uno-r3"));
	assert_null(plan.page);
	assert_int_equal(plan.n, 0);
	image_free(&img);

	/* a partition boundary inside a page: the page is erased as a whole */
	p.part[0].size = 0x7E40;
	p.part[1].offset = 0x7E40;
	p.part[1].size = 0x1C0;
	image_init(&img);
	add(&img, 0x7E00, 4, 1);
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EGUARD);
	image_free(&img);

	/* past the end of flash without a partition there */
	uno(&p);
	p.npart = 1;
	image_init(&img);
	add(&img, 0x7FF0, 0x20, 1);
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EIMAGE);
	assert_non_null(strstr(e.msg, "past the end"));
	image_free(&img);
}

static void test_plan_bad_inputs(void **state)
{
	struct profile p;
	struct image img;
	struct stk500_plan plan;
	struct fw_err e = { 0 };

	(void)state;
	uno(&p);
	image_init(&img);
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EINVAL);
	add(&img, 0, 16, 1);
	p.page_size = 96;
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "page_size"));
	p.page_size = 256;
	p.flash_size = 256 * 1024;
	assert_int_equal(stk500_plan_pages(&p, &img, &plan, &e), FW_EUNSUPPORTED);
	image_free(&img);
}

static void test_page_fill(void **state)
{
	struct image img;
	uint8_t cur[128], out[128];
	size_t i;

	(void)state;
	image_init(&img);
	add(&img, 0x90, 16, 0x40); /* bytes 0x10..0x1F of page 0x80 */
	for (i = 0; i < sizeof cur; i++)
		cur[i] = (uint8_t)(0xA0 + i);
	stk500_page_fill(&img, 0x80, 128, NULL, out);
	assert_int_equal(out[0], 0xFF);
	assert_int_equal(out[0x10], 0x40);
	assert_int_equal(out[0x1F], 0x4F);
	assert_int_equal(out[0x20], 0xFF);
	stk500_page_fill(&img, 0x80, 128, cur, out);
	assert_int_equal(out[0], 0xA0);
	assert_int_equal(out[0x10], 0x40);
	assert_int_equal(out[0x7F], (uint8_t)(0xA0 + 0x7F));
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_load_address_is_word_address),
		cmocka_unit_test(test_prog_and_read_page),
		cmocka_unit_test(test_set_device_forms),
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_errors),
		cmocka_unit_test(test_classify_noise),
		cmocka_unit_test(test_loader_versions),
		cmocka_unit_test(test_plan_partial_pages),
		cmocka_unit_test(test_plan_refuses_bootloader),
		cmocka_unit_test(test_plan_bad_inputs),
		cmocka_unit_test(test_page_fill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
