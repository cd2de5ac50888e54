/* Intel HEX parsing: every record type, every record error with its line
 * number, overlaps, gaps, line endings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

/* Appends one well-formed record (checksum computed) to sb. */
static void rec(struct strbuf *sb, unsigned type, unsigned addr, const uint8_t *d, size_t n,
		const char *eol)
{
	unsigned sum = (unsigned)n + (addr >> 8) + (addr & 0xFF) + type;

	strbuf_addf(sb, ":%02X%04X%02X", (unsigned)n, addr & 0xFFFF, type);
	for (size_t i = 0; i < n; i++) {
		strbuf_addf(sb, "%02X", d[i]);
		sum += d[i];
	}
	strbuf_addf(sb, "%02X%s", (0x100 - (sum & 0xFF)) & 0xFF, eol);
}

static void rec16(struct strbuf *sb, unsigned type, unsigned v, const char *eol)
{
	uint8_t d[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	rec(sb, type, 0, d, 2, eol);
}

static void rec32(struct strbuf *sb, unsigned type, uint32_t v, const char *eol)
{
	uint8_t d[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	rec(sb, type, 0, d, 4, eol);
}

static int parse(struct image *img, const char *text, struct fw_err *e)
{
	image_init(img);
	return image_parse_hex(img, text, strlen(text), e);
}

/* Parses text expecting FW_EIMAGE; the image must stay empty. */
static void expect_fail(const char *text, const char *want1, const char *want2)
{
	struct image img;
	struct fw_err e = {0};

	assert_int_equal(parse(&img, text, &e), FW_EIMAGE);
	assert_int_equal(e.code, FW_EIMAGE);
	HAS(e.msg, want1);
	if (want2)
		HAS(e.msg, want2);
	assert_int_equal(image_count(&img), 0);
	image_free(&img);
}

static void test_known_file(void **state)
{
	/* A typical avr-gcc output fragment (checksums from the format). */
	const char *text = ":100000000C9434000C943E000C943E000C943E0082\n"
			   ":040010000C943E000E\n"
			   ":00000001FF\n";
	const uint8_t want[20] = {0x0C, 0x94, 0x34, 0x00, 0x0C, 0x94, 0x3E, 0x00, 0x0C, 0x94,
				  0x3E, 0x00, 0x0C, 0x94, 0x3E, 0x00, 0x0C, 0x94, 0x3E, 0x00};
	struct image img;
	struct fw_err e = {0};

	(void)state;
	assert_int_equal(parse(&img, text, &e), FW_OK);
	assert_int_equal(img.format, IMAGE_FORMAT_HEX);
	assert_int_equal(image_count(&img), 1);
	assert_int_equal(image_range_get(&img, 0)->addr, 0);
	assert_int_equal(image_range_get(&img, 0)->len, 20);
	assert_memory_equal(image_range_get(&img, 0)->data, want, 20);
	assert_false(img.has_start_linear);
	assert_false(img.has_start_segment);
	image_free(&img);
}

static void test_crlf_blank_lines_lowercase(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct image img;
	uint8_t d[4] = {0xAB, 0xCD, 0xEF, 0x01};
	char *lower;

	(void)state;
	strbuf_adds(&sb, "\r\n");
	rec(&sb, 0, 0x0200, d, 4, "\r\n");
	strbuf_adds(&sb, "\r\n   \r\n");
	rec(&sb, 0, 0x0204, d, 4, "  \t\r\n");
	rec(&sb, 1, 0, NULL, 0, "\r\n");
	strbuf_adds(&sb, "\r\n\r\n"); /* blank lines after EOF are fine */
	lower = strdup(strbuf_str(&sb));
	for (char *p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	assert_int_equal(parse(&img, lower, NULL), FW_OK);
	assert_int_equal(image_count(&img), 1);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x200);
	assert_int_equal(image_range_get(&img, 0)->len, 8);
	assert_int_equal(image_range_get(&img, 0)->data[4], 0xAB);
	image_free(&img);
	free(lower);
	/* No newline after the EOF record at all. */
	assert_int_equal(parse(&img, ":0100000042BD\n:00000001FF", NULL), FW_OK);
	image_free(&img);
	strbuf_free(&sb);
}

static void test_bad_checksum_names_line(void **state)
{
	(void)state;
	/* Line 3 has its checksum off by one (E2 is right). */
	expect_fail(":0100000042BD\n\n:0400100001020304E3\n:00000001FF\n", "line 3",
		    "checksum is 0xE3");
	expect_fail(":0100000042BD\n\n:0400100001020304E3\n:00000001FF\n", "need 0xE2", NULL);
}

static void test_byte_count_checked(void **state)
{
	(void)state;
	/* Says 5 bytes, holds 4. */
	expect_fail(":0100000042BD\n:0500100001020304E1\n:00000001FF\n", "line 2",
		    "byte count says 5 data bytes but the record holds 4");
	/* Says 3 bytes, holds 4. */
	expect_fail(":0300100001020304E3\n:00000001FF\n", "line 1", "holds 4");
}

static void test_hex_digits_checked(void **state)
{
	(void)state;
	expect_fail(":0100000042BD\n:04001G0001020304E2\n:00000001FF\n", "line 2, column 7",
		    "'G' is not a hex digit");
	expect_fail(":01000 00042BD\n:00000001FF\n", "line 1, column 7", "blank");
	expect_fail(":0100000042BD0\n:00000001FF\n", "line 1", "odd number");
	expect_fail(":01000000\n:00000001FF\n", "line 1", "too short");
	expect_fail(":0100000042BD\nx0100000042BD\n:00000001FF\n", "line 2", "start with ':'");
}

static void test_missing_eof(void **state)
{
	(void)state;
	expect_fail(":0100000042BD\n:0100010043BB\n", "no end-of-file record", "after line 2");
	expect_fail(":0100000042BD\n:01000000", "line 2", "too short");
}

static void test_data_after_eof(void **state)
{
	(void)state;
	expect_fail(":0100000042BD\n:00000001FF\n\n:0100010043BB\n", "line 4",
		    "after the end-of-file record on line 2");
	expect_fail(":0100000042BD\n:01000001FFFF\n", "line 2", "end-of-file record with 1");
}

static void test_overlapping_records(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t d[16] = {0};

	(void)state;
	rec(&sb, 0, 0x0100, d, 16, "\n");
	rec(&sb, 0, 0x0200, d, 16, "\n");
	rec(&sb, 0, 0x0300, d, 16, "\n");
	rec(&sb, 0, 0x0208, d, 16, "\n"); /* line 4 overlaps line 2 */
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 2 writes 0x00000200..0x0000020F",
		    "line 4 writes 0x00000208..0x00000217");
	strbuf_free(&sb);

	/* The same address twice, through different addressing. */
	rec16(&sb, 4, 0x0001, "\n");
	rec(&sb, 0, 0x0000, d, 4, "\n");
	rec16(&sb, 2, 0x1000, "\n");
	rec(&sb, 0, 0x0002, d, 4, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 2 writes 0x00010000..0x00010003",
		    "line 4 writes 0x00010002..0x00010005");
	strbuf_free(&sb);
}

static void test_extended_segment_address(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct image img;
	uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8}, v = 0;

	(void)state;
	rec(&sb, 0, 0x0010, d, 2, "\n");   /* no base yet: 0x10 */
	rec16(&sb, 2, 0x1200, "\n");       /* base 0x12000 */
	rec(&sb, 0, 0x0100, d, 4, "\n");   /* 0x12100 */
	rec(&sb, 0, 0xFFFC, d, 8, "\n");   /* wraps inside the segment: 0x21FFC.. and 0x12000.. */
	rec(&sb, 1, 0, NULL, 0, "\n");
	assert_int_equal(parse(&img, strbuf_str(&sb), NULL), FW_OK);
	assert_int_equal(image_count(&img), 4);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x10);
	assert_int_equal(image_range_get(&img, 1)->addr, 0x12000);
	assert_int_equal(image_range_get(&img, 1)->len, 4);
	assert_int_equal(image_range_get(&img, 2)->addr, 0x12100);
	assert_int_equal(image_range_get(&img, 3)->addr, 0x21FFC);
	assert_int_equal(image_range_get(&img, 3)->len, 4);
	assert_true(image_byte(&img, 0x12000, &v));
	assert_int_equal(v, 5);
	assert_true(image_byte(&img, 0x12103, &v));
	assert_int_equal(v, 4);
	image_free(&img);
	strbuf_free(&sb);
}

static void test_extended_linear_address(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct image img;
	uint8_t d[16], v = 0;

	(void)state;
	for (int i = 0; i < 16; i++)
		d[i] = (uint8_t)i;
	strbuf_adds(&sb, ":020000040800F2\n"); /* literal: base 0x08000000 */
	rec(&sb, 0, 0x0000, d, 16, "\n");
	rec(&sb, 0, 0xFFF8, d, 16, "\n");   /* linear mode: continues into 0x08010000 */
	rec16(&sb, 4, 0x0801, "\n");
	rec(&sb, 0, 0x0008, d, 8, "\n");    /* joins the run above */
	rec(&sb, 1, 0, NULL, 0, "\n");
	assert_int_equal(parse(&img, strbuf_str(&sb), NULL), FW_OK);
	assert_int_equal(image_count(&img), 2);
	assert_int_equal(image_range_get(&img, 0)->addr, 0x08000000);
	assert_int_equal(image_range_get(&img, 1)->addr, 0x0800FFF8);
	assert_int_equal(image_range_get(&img, 1)->len, 24);
	assert_true(image_byte(&img, 0x08010000, &v));
	assert_int_equal(v, 8);
	assert_true(image_byte(&img, 0x0801000F, &v));
	assert_int_equal(v, 7);
	image_free(&img);
	strbuf_free(&sb);

	/* Running past 4 GB is refused with the line. */
	rec16(&sb, 4, 0xFFFF, "\n");
	rec(&sb, 0, 0xFFF8, d, 16, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 2", "4 GB");
	strbuf_free(&sb);
}

static void test_start_addresses_kept(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct image img;
	uint8_t d[1] = {0x42};

	(void)state;
	rec(&sb, 0, 0, d, 1, "\n");
	strbuf_adds(&sb, ":0400000300003800C1\n");     /* literal: CS:IP 0000:3800 */
	rec32(&sb, 5, 0x08000131, "\n");
	rec32(&sb, 5, 0x08000131, "\n");                /* a repeat that agrees is fine */
	rec(&sb, 1, 0, NULL, 0, "\n");
	assert_int_equal(parse(&img, strbuf_str(&sb), NULL), FW_OK);
	assert_true(img.has_start_segment);
	assert_int_equal(img.start_cs, 0x0000);
	assert_int_equal(img.start_ip, 0x3800);
	assert_true(img.has_start_linear);
	assert_int_equal(img.start_linear, 0x08000131);
	image_free(&img);
	strbuf_free(&sb);

	rec(&sb, 0, 0, d, 1, "\n");
	rec32(&sb, 5, 0x08000131, "\n");
	rec32(&sb, 5, 0x08000201, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 3", "contradicts 0x08000131 on line 2");
	strbuf_free(&sb);
}

static void test_record_type_errors(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t d[3] = {1, 2, 3};

	(void)state;
	rec(&sb, 0, 0, d, 1, "\n");
	rec(&sb, 6, 0, d, 2, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 2", "unknown record type 06");
	strbuf_free(&sb);

	rec(&sb, 4, 0, d, 3, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 1", "extended linear address record (type 04) with 3");
	strbuf_free(&sb);

	rec(&sb, 3, 0, d, 2, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	expect_fail(strbuf_str(&sb), "line 1", "expected 4");
	strbuf_free(&sb);
}

static void test_gaps_reported(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct image img;
	uint8_t d[16] = {0};
	uint32_t ga = 0;
	size_t gl = 0;

	(void)state;
	/* Out of order on purpose: the ranges come out sorted. */
	rec(&sb, 0, 0x7E00, d, 16, "\n");
	rec(&sb, 0, 0x0000, d, 16, "\n");
	rec(&sb, 0, 0x0010, d, 16, "\n");
	rec(&sb, 1, 0, NULL, 0, "\n");
	assert_int_equal(parse(&img, strbuf_str(&sb), NULL), FW_OK);
	assert_int_equal(image_count(&img), 2);
	assert_int_equal(image_range_get(&img, 0)->len, 32);
	assert_true(image_gap(&img, 0, &ga, &gl));
	assert_int_equal(ga, 0x20);
	assert_int_equal(gl, 0x7E00 - 0x20);
	assert_int_equal(image_total(&img), 48);
	image_free(&img);
	strbuf_free(&sb);
}

static void test_no_data(void **state)
{
	(void)state;
	expect_fail(":00000001FF\n", "no data records", NULL);
	/* A zero-length data record is not data either. */
	expect_fail(":00001000F0\n:00000001FF\n", "no data records", NULL);
	expect_fail("", "no end-of-file record", NULL);
}

static void test_error_leaves_image_empty(void **state)
{
	struct image img = IMAGE_INIT;
	struct fw_err e = {0};
	const char *text = ":0100000042BD\n:0100000042BD\n:00000001FF\n";

	(void)state;
	/* Overlap is found after records were collected: nothing must leak. */
	assert_int_equal(image_parse_hex(&img, text, strlen(text), &e), FW_EIMAGE);
	HAS(e.msg, "line 1");
	HAS(e.msg, "line 2");
	assert_int_equal(image_count(&img), 0);
	image_free(&img);
}

/* Backups of sparse ranges are stored as Intel HEX: written and parsed
 * back, every range comes back at its address with its bytes, including a
 * range that crosses a 64 KB segment and one far above it. */
static void test_format_hex_round_trip(void **state)
{
	struct image a, b;
	struct strbuf hex = STRBUF_INIT;
	struct fw_err e = {0};
	uint8_t d1[100], d2[40], d3[33];

	(void)state;
	for (size_t i = 0; i < sizeof d1; i++)
		d1[i] = (uint8_t)(i * 7);
	memset(d2, 0xA5, sizeof d2);
	memset(d3, 0x00, sizeof d3);
	image_init(&a);
	image_init(&b);
	assert_int_equal(image_add(&a, 0x0FFD0, d1, sizeof d1, &e), FW_OK);
	assert_int_equal(image_add(&a, 0x3FE000, d2, sizeof d2, &e), FW_OK);
	assert_int_equal(image_add(&a, 0x3FFFE0, d3, sizeof d3, &e), FW_OK);
	image_format_hex(&a, &hex);
	assert_false(strbuf_failed(&hex));
	/* an extended linear address record for segment 1 and an EOF record */
	assert_non_null(strstr(hex.s, ":020000040001F9\n"));
	assert_non_null(strstr(hex.s, ":00000001FF\n"));
	assert_int_equal(image_parse_hex(&b, hex.s, hex.len, &e), FW_OK);
	assert_int_equal(image_count(&b), 3);
	for (size_t i = 0; i < 3; i++) {
		const struct image_range *ra = image_range_get(&a, i);
		const struct image_range *rb = image_range_get(&b, i);

		assert_int_equal(ra->addr, rb->addr);
		assert_int_equal(ra->len, rb->len);
		assert_memory_equal(ra->data, rb->data, ra->len);
	}
	strbuf_free(&hex);
	image_free(&a);
	image_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_file),
		cmocka_unit_test(test_crlf_blank_lines_lowercase),
		cmocka_unit_test(test_bad_checksum_names_line),
		cmocka_unit_test(test_byte_count_checked),
		cmocka_unit_test(test_hex_digits_checked),
		cmocka_unit_test(test_missing_eof),
		cmocka_unit_test(test_data_after_eof),
		cmocka_unit_test(test_overlapping_records),
		cmocka_unit_test(test_extended_segment_address),
		cmocka_unit_test(test_extended_linear_address),
		cmocka_unit_test(test_start_addresses_kept),
		cmocka_unit_test(test_record_type_errors),
		cmocka_unit_test(test_gaps_reported),
		cmocka_unit_test(test_no_data),
		cmocka_unit_test(test_error_leaves_image_empty),
		cmocka_unit_test(test_format_hex_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
