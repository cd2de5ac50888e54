/* device_match: the identity gate before anything is erased; and
 * device_verify_widen, mismatches in whole pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

static void esp_profile(struct profile *p)
{
	memset(p, 0, sizeof *p);
	strcpy(p->id, "nodemcu-v1");
	strcpy(p->chip, "esp8266");
	p->family = PROFILE_FAMILY_ESP8266;
	p->has_chip_magic = true;
	p->chip_magic = 0xFFF0C101;
	p->flash_size = 4u << 20;
}

static void esp_identity(struct device_identity *id)
{
	memset(id, 0, sizeof *id);
	strcpy(id->chip, "esp8266");
	id->has_chip_magic = true;
	id->chip_magic = 0xFFF0C101;
	id->flash_id = 0xEF4016;
	id->flash_size = 4u << 20;
}

static void test_esp_match(void **state)
{
	struct profile p;
	struct device_identity id;
	struct fw_err e = {0};

	(void)state;
	esp_profile(&p);
	esp_identity(&id);
	assert_int_equal(device_match(&p, &id, &e), FW_OK);
}

static void test_esp_wrong_chip(void **state)
{
	struct profile p;
	struct device_identity id;
	struct fw_err e = {0};

	(void)state;
	esp_profile(&p);
	esp_identity(&id);
	id.chip_magic = 0x00F01D83;
	strcpy(id.chip, "esp32");
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
	assert_non_null(strstr(e.msg, "esp32"));
	assert_non_null(strstr(e.msg, "nodemcu-v1"));
	id.has_chip_magic = false;
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
}

static void test_esp_flash_size(void **state)
{
	struct profile p;
	struct device_identity id;
	struct fw_err e = {0};

	(void)state;
	esp_profile(&p);
	esp_identity(&id);
	id.flash_size = 512u << 10;
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
	assert_non_null(strstr(e.msg, "512 KB"));
	assert_non_null(strstr(e.msg, "4096 KB"));
	id.flash_size = 0;
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
	assert_non_null(strstr(e.msg, "did not report its size"));
}

static void test_avr_signature(void **state)
{
	struct profile p;
	struct device_identity id;
	struct fw_err e = {0};
	const uint8_t sig[3] = {0x1E, 0x95, 0x0F};

	(void)state;
	memset(&p, 0, sizeof p);
	memset(&id, 0, sizeof id);
	strcpy(p.id, "arduino-uno-r3");
	p.family = PROFILE_FAMILY_AVR;
	p.has_signature = true;
	memcpy(p.signature, sig, 3);
	id.has_signature = true;
	memcpy(id.signature, sig, 3);
	assert_int_equal(device_match(&p, &id, &e), FW_OK);
	id.signature[2] = 0x14; /* ATmega328 (non-P) */
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
	assert_non_null(strstr(e.msg, "1E 95 14"));
	id.has_signature = false;
	assert_int_equal(device_match(&p, &id, &e), FW_EMISMATCH);
}

static void test_verify_widen(void **state)
{
	struct device_verify_result r;

	(void)state;
	memset(&r, 0, sizeof r);
	/* three runs inside one page, one in the next page, one far off */
	r.mismatch[0].addr = 0x2200; r.mismatch[0].len = 0x1C;
	r.mismatch[1].addr = 0x221D; r.mismatch[1].len = 0x24;
	r.mismatch[2].addr = 0x2242; r.mismatch[2].len = 0x3E;
	r.mismatch[3].addr = 0x2281; r.mismatch[3].len = 1;
	r.mismatch[4].addr = 0x4000; r.mismatch[4].len = 0x81;
	r.nmismatch = 5;
	device_verify_widen(&r, 128);
	assert_int_equal(r.nmismatch, 2);
	assert_int_equal(r.mismatch[0].addr, 0x2200);
	assert_int_equal(r.mismatch[0].len, 0x100);
	assert_int_equal(r.mismatch[1].addr, 0x4000);
	assert_int_equal(r.mismatch[1].len, 0x100);
	/* the last unit of the address space does not wrap */
	r.mismatch[0].addr = 0xFFFFFFF0u; r.mismatch[0].len = 0x10;
	r.nmismatch = 1;
	device_verify_widen(&r, 4096);
	assert_int_equal(r.mismatch[0].addr, 0xFFFFF000u);
	assert_int_equal(r.mismatch[0].len, 0x1000);
	/* unit 0 is taken as 1: nothing changes */
	r.mismatch[0].addr = 5; r.mismatch[0].len = 3;
	device_verify_widen(&r, 0);
	assert_int_equal(r.mismatch[0].addr, 5);
	assert_int_equal(r.mismatch[0].len, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esp_match),
		cmocka_unit_test(test_verify_widen),
		cmocka_unit_test(test_esp_wrong_chip),
		cmocka_unit_test(test_esp_flash_size),
		cmocka_unit_test(test_avr_signature),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
