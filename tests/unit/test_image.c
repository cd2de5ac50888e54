/* Sparse image: ranges, lookups, flattening, raw .bin, format detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

static void fill(uint8_t *b, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(start + i);
}

static void test_add_sorted_and_lookup(void **state)
{
	struct image img = IMAGE_INIT;
	struct fw_err e = {0};
	uint8_t a[16], b[8], v = 0;
	uint32_t lo = 0, hi = 0;

	(void)state;
	fill(a, sizeof(a), 0x10);
	fill(b, sizeof(b), 0xA0);
	assert_int_equal(image_add(&img, 0x2000, a, sizeof(a), &e), FW_OK);
	assert_int_equal(image_add(&img, 0x1000, b, sizeof(b), &e), FW_OK);
	assert_int_equal(image_count(&img), 2);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x1000);
	assert_int_equal(image_range_get(&img, 1)->addr, 0x2000);
	assert_null(image_range_get(&img, 2));
	assert_int_equal(image_total(&img), 24);
	assert_true(image_bounds(&img, &lo, &hi));
	assert_int_equal(lo, 0x1000);
	assert_int_equal(hi, 0x200F);
	assert_int_equal(image_end(&img), 0x2010);

	assert_true(image_byte(&img, 0x1003, &v));
	assert_int_equal(v, 0xA3);
	assert_true(image_byte(&img, 0x200F, &v));
	assert_int_equal(v, 0x1F);
	assert_false(image_byte(&img, 0x1008, &v));
	assert_false(image_byte(&img, 0x0FFF, &v));
	assert_false(image_byte(&img, 0x2010, &v));
	assert_ptr_equal(image_find(&img, 0x2004), image_range_get(&img, 1));
	assert_null(image_find(&img, 0x1800));
	image_free(&img);
	assert_int_equal(image_count(&img), 0);
}

static void test_adjacent_ranges_merge(void **state)
{
	struct image img = IMAGE_INIT;
	uint8_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 10, 11, 12};
	const struct image_range *r;

	(void)state;
	assert_int_equal(image_add(&img, 0x100, a, 4, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x108, c, 4, NULL), FW_OK);
	assert_int_equal(image_count(&img), 2);
	/* The middle piece touches both neighbours: one range results. */
	assert_int_equal(image_add(&img, 0x104, b, 4, NULL), FW_OK);
	assert_int_equal(image_count(&img), 1);
	r = image_range_get(&img, 0);
	assert_int_equal(r->addr, 0x100);
	assert_int_equal(r->len, 12);
	for (int i = 0; i < 12; i++)
		assert_int_equal(r->data[i], i + 1);
	/* Prepending merges too. */
	assert_int_equal(image_add(&img, 0xFC, c, 4, NULL), FW_OK);
	assert_int_equal(image_count(&img), 1);
	assert_int_equal(image_range_get(&img, 0)->addr, 0xFC);
	assert_int_equal(image_range_get(&img, 0)->data[0], 9);
	image_free(&img);
}

static void test_overlap_rejected_naming_both(void **state)
{
	struct image img = IMAGE_INIT;
	struct fw_err e = {0};
	uint8_t a[0x100] = {0};

	(void)state;
	assert_int_equal(image_add(&img, 0x1000, a, 0x100, &e), FW_OK);
	assert_int_equal(image_add(&img, 0x10F0, a, 0x20, &e), FW_EIMAGE);
	HAS(e.msg, "0x000010F0..0x0000110F");
	HAS(e.msg, "0x00001000..0x000010FF");
	/* Covering the whole existing range from below. */
	assert_int_equal(image_add(&img, 0x0F00, a, 0x100 + 0x20, &e), FW_EIMAGE);
	HAS(e.msg, "0x00001000..0x000010FF");
	/* The image is unchanged after a refusal. */
	assert_int_equal(image_count(&img), 1);
	assert_int_equal(image_total(&img), 0x100);
	image_free(&img);
}

static void test_range_limits(void **state)
{
	struct image img = IMAGE_INIT;
	struct fw_err e = {0};
	uint8_t a[16] = {0};
	uint32_t lo, hi;

	(void)state;
	assert_int_equal(image_add(&img, 0x10, a, 0, &e), FW_EINVAL);
	assert_int_equal(image_add(&img, 0xFFFFFFF8u, a, 16, &e), FW_EIMAGE);
	HAS(e.msg, "4 GB");
	/* Ending exactly at 4 GB is fine. */
	assert_int_equal(image_add(&img, 0xFFFFFFF0u, a, 16, &e), FW_OK);
	assert_true(image_bounds(&img, &lo, &hi));
	assert_int_equal(hi, 0xFFFFFFFFu);
	assert_true(image_end(&img) == 0x100000000ull);
	image_free(&img);
	assert_false(image_bounds(&img, &lo, &hi));
	assert_true(image_end(&img) == 0);
}

static void test_flatten_and_gaps(void **state)
{
	struct image img = IMAGE_INIT;
	uint8_t a[4] = {1, 2, 3, 4}, b[2] = {7, 8}, out[16];
	uint32_t ga = 0;
	size_t gl = 0;

	(void)state;
	assert_int_equal(image_add(&img, 0x10, a, 4, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x18, b, 2, NULL), FW_OK);
	image_flatten(&img, 0x0E, 14, IMAGE_FILL, out);
	{
		const uint8_t want[14] = {0xFF, 0xFF, 1, 2, 3, 4, 0xFF, 0xFF,
					  0xFF, 0xFF, 7, 8, 0xFF, 0xFF};

		assert_memory_equal(out, want, sizeof(want));
	}
	/* A window that cuts both ranges. */
	image_flatten(&img, 0x12, 7, 0x00, out);
	{
		const uint8_t want[7] = {3, 4, 0, 0, 0, 0, 7};

		assert_memory_equal(out, want, sizeof(want));
	}
	/* A window with no data is all fill. */
	image_flatten(&img, 0x100, 4, 0xFF, out);
	assert_int_equal(out[0] & out[1] & out[2] & out[3], 0xFF);

	assert_true(image_gap(&img, 0, &ga, &gl));
	assert_int_equal(ga, 0x14);
	assert_int_equal(gl, 4);
	assert_false(image_gap(&img, 1, &ga, &gl));
	image_free(&img);
}

static void test_subtract(void **state)
{
	struct image a = IMAGE_INIT, b = IMAGE_INIT, out;
	uint8_t d[0x200];
	const struct image_range *r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)i;
	assert_int_equal(image_add(&a, 0x000, d, 0x100, NULL), FW_OK);
	assert_int_equal(image_add(&a, 0x200, d, 0x80, NULL), FW_OK);
	/* nothing to take away: a copy */
	assert_int_equal(image_subtract(&a, &b, &out, NULL), FW_OK);
	assert_int_equal(image_count(&out), 2);
	assert_int_equal(image_total(&out), 0x180);
	image_free(&out);
	/* a hole inside the first range, one across the gap into the second */
	assert_int_equal(image_add(&b, 0x010, d, 0x10, NULL), FW_OK);
	assert_int_equal(image_add(&b, 0x080, d, 0x1A0, NULL), FW_OK);
	assert_int_equal(image_subtract(&a, &b, &out, NULL), FW_OK);
	assert_int_equal(image_count(&out), 3);
	r = image_range_get(&out, 0);
	assert_int_equal(r->addr, 0x000);
	assert_int_equal(r->len, 0x10);
	r = image_range_get(&out, 1);
	assert_int_equal(r->addr, 0x020);
	assert_int_equal(r->len, 0x60);
	assert_int_equal(r->data[0], 0x20);
	r = image_range_get(&out, 2);
	assert_int_equal(r->addr, 0x220);
	assert_int_equal(r->len, 0x60);
	assert_int_equal(r->data[0], 0x20); /* the second range's own bytes */
	image_free(&out);
	image_free(&b);
	/* covered whole, starting before and ending after: nothing left */
	assert_int_equal(image_add(&b, 0x000, d, 0x100, NULL), FW_OK);
	assert_int_equal(image_add(&b, 0x1F0, d, 0xA0, NULL), FW_OK);
	assert_int_equal(image_subtract(&a, &b, &out, NULL), FW_OK);
	assert_int_equal(image_count(&out), 0);
	image_free(&out);
	image_free(&b);
	image_free(&a);
}

static void test_copy_is_deep(void **state)
{
	struct image img = IMAGE_INIT, cp;
	uint8_t a[4] = {1, 2, 3, 4};

	(void)state;
	assert_int_equal(image_add(&img, 0x40, a, 4, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x80, a, 4, NULL), FW_OK);
	img.has_start_linear = true;
	img.start_linear = 0x1234;
	assert_int_equal(image_copy(&cp, &img, NULL), FW_OK);
	assert_int_equal(image_count(&cp), 2);
	assert_true(cp.has_start_linear);
	cp.range[0].data[0] = 99;
	assert_int_equal(img.range[0].data[0], 1);
	image_free(&cp);
	image_free(&img);
}

static void test_from_bin(void **state)
{
	struct image img = IMAGE_INIT;
	struct fw_err e = {0};
	uint8_t buf[300];

	(void)state;
	fill(buf, sizeof(buf), 0);
	assert_int_equal(image_from_bin(&img, buf, sizeof(buf), 0x10000, &e), FW_OK);
	assert_int_equal(img.format, IMAGE_FORMAT_BIN);
	assert_int_equal(image_count(&img), 1);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x10000);
	assert_int_equal(image_range_get(&img, 0)->len, 300);
	assert_memory_equal(image_range_get(&img, 0)->data, buf, 300);
	image_free(&img);

	assert_int_equal(image_from_bin(&img, buf, 0, 0, &e), FW_EIMAGE);
	HAS(e.msg, "empty");
	assert_int_equal(image_from_bin(&img, buf, 300, 0xFFFFFF00u, &e), FW_EIMAGE);
	HAS(e.msg, "4 GB");
	assert_int_equal(image_count(&img), 0);
}

static void test_detect_format(void **state)
{
	const uint8_t esp[] = {0xE9, 0x03, 0x02, 0x40};
	const char *hex = ":00000001FF\n";
	const char *hex2 = "\r\n\n:00000001FF\n";
	const char *text = "hello:";

	(void)state;
	assert_int_equal(image_detect_format(esp, sizeof(esp)), IMAGE_FORMAT_BIN);
	assert_int_equal(image_detect_format(hex, strlen(hex)), IMAGE_FORMAT_HEX);
	assert_int_equal(image_detect_format(hex2, strlen(hex2)), IMAGE_FORMAT_HEX);
	assert_int_equal(image_detect_format(text, strlen(text)), IMAGE_FORMAT_BIN);
	assert_int_equal(image_detect_format("", 0), IMAGE_FORMAT_BIN);
	assert_string_equal(image_format_name(IMAGE_FORMAT_HEX), "Intel HEX");
}

static void test_load_dispatches(void **state)
{
	struct image img = IMAGE_INIT;
	const char *hex = ":0400100001020304E2\n:00000001FF\n";
	const uint8_t bin[] = {0xE9, 1, 2, 3};

	(void)state;
	assert_int_equal(image_load(&img, hex, strlen(hex), 0x5000, NULL), FW_OK);
	assert_int_equal(img.format, IMAGE_FORMAT_HEX);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x10); /* base ignored for HEX */
	image_free(&img);
	assert_int_equal(image_load(&img, bin, sizeof(bin), 0x5000, NULL), FW_OK);
	assert_int_equal(img.format, IMAGE_FORMAT_BIN);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x5000);
	image_free(&img);
}

static void test_describe(void **state)
{
	struct image img = IMAGE_INIT;
	struct strbuf sb = STRBUF_INIT;
	uint8_t a[1024] = {0};

	(void)state;
	image_describe(&img, &sb);
	HAS(strbuf_str(&sb), "contents: none");
	strbuf_free(&sb);

	assert_int_equal(image_add(&img, 0x0, a, 1024, NULL), FW_OK);
	assert_int_equal(image_add(&img, 0x1000, a, 16, NULL), FW_OK);
	img.format = IMAGE_FORMAT_HEX;
	img.has_start_linear = true;
	img.start_linear = 0x08000101;
	image_describe(&img, &sb);
	assert_false(strbuf_failed(&sb));
	HAS(strbuf_str(&sb), "format: Intel HEX");
	HAS(strbuf_str(&sb), "size: 1040 bytes");
	HAS(strbuf_str(&sb), "ranges: 2");
	HAS(strbuf_str(&sb), "0x00000000..0x000003FF  1024 bytes (1 KB)");
	HAS(strbuf_str(&sb), "gaps");
	HAS(strbuf_str(&sb), "0x00000400..0x00000FFF  3072 bytes (3 KB)");
	HAS(strbuf_str(&sb), "start address (linear): 0x08000101");
	strbuf_free(&sb);
	image_free(&img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_sorted_and_lookup),
		cmocka_unit_test(test_subtract),
		cmocka_unit_test(test_adjacent_ranges_merge),
		cmocka_unit_test(test_overlap_rejected_naming_both),
		cmocka_unit_test(test_range_limits),
		cmocka_unit_test(test_flatten_and_gaps),
		cmocka_unit_test(test_copy_is_deep),
		cmocka_unit_test(test_from_bin),
		cmocka_unit_test(test_detect_format),
		cmocka_unit_test(test_load_dispatches),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
