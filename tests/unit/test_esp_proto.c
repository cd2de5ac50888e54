#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "esp_proto.h"
#include "slip.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Encodes r raw into buf (asserting success) and returns the length. */
static size_t encode(const struct esp_proto_req *r, uint8_t *buf, size_t cap)
{
	size_t len = 0;

	assert_int_equal(esp_proto_request_encode(r, buf, cap, &len, NULL), FW_OK);
	assert_int_equal(len, esp_proto_request_len(r));
	return len;
}

/* ---- documented wire transcripts (reference sections 3 and 5.1) ---- */

static void test_sync_request_frame_transcript(void **state)
{
	uint8_t want[46];
	struct esp_proto_req r;
	struct strbuf wire = STRBUF_INIT;
	const uint8_t head[] = { 0xC0, 0x00, 0x08, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00,
				 0x07, 0x07, 0x12, 0x20 };

	(void)state;
	memcpy(want, head, sizeof head);
	memset(want + sizeof head, 0x55, 32);
	want[45] = 0xC0;
	esp_proto_req_sync(&r);
	assert_int_equal(esp_proto_request_frame(&r, &wire, NULL), FW_OK);
	assert_int_equal(wire.len, 46);
	assert_memory_equal(wire.s, want, 46);
	/* the payload checker accepts exactly this */
	assert_true(esp_proto_sync_payload_ok(r.head, r.head_len));
	strbuf_free(&wire);
}

static void test_sync_payload_validator(void **state)
{
	uint8_t p[ESP_PROTO_SYNC_LEN];
	struct esp_proto_req r;

	(void)state;
	esp_proto_req_sync(&r);
	memcpy(p, r.head, sizeof p);
	assert_true(esp_proto_sync_payload_ok(p, sizeof p));
	assert_false(esp_proto_sync_payload_ok(p, sizeof p - 1));
	assert_false(esp_proto_sync_payload_ok(NULL, 0));
	p[20] = 0x54;
	assert_false(esp_proto_sync_payload_ok(p, sizeof p));
	p[20] = 0x55;
	p[2] = 0x13;
	assert_false(esp_proto_sync_payload_ok(p, sizeof p));
}

/* Real ESP8266 ROM reply to READ_REG 0x40001000 (esptool#620 trace). */
static void test_read_reg_reply_transcript(void **state)
{
	const uint8_t pkt[] = { 0x01, 0x0a, 0x02, 0x00, 0x01, 0xc1, 0xf0, 0xff, 0x00, 0x00 };
	struct esp_proto_resp r;
	const struct esp_proto_chip_info *chip;

	(void)state;
	assert_int_equal(esp_proto_response_match(pkt, sizeof pkt, ESP_OP_READ_REG),
			 ESP_MATCH_YES);
	assert_int_equal(esp_proto_response_parse(pkt, sizeof pkt,
						  esp_proto_result_len(ESP_OP_READ_REG, ESP_LOADER_ESP8266_ROM),
						  esp_proto_status_len(ESP_LOADER_ESP8266_ROM), &r, NULL),
			 FW_OK);
	assert_int_equal(r.op, ESP_OP_READ_REG);
	assert_int_equal(r.value, 0xFFF0C101u);
	assert_int_equal(r.size, 2);
	assert_int_equal(r.result_len, 0);
	assert_true(esp_proto_response_ok(&r));
	assert_int_equal(esp_proto_response_check(&r, NULL), FW_OK);
	chip = esp_proto_chip_by_magic(r.value);
	assert_non_null(chip);
	assert_int_equal(chip->chip, ESP_CHIP_ESP8266);
	assert_string_equal(chip->name, "ESP8266");
	assert_int_equal(chip->bootloader_offset, 0);
}

/* The simulator must produce exactly the real ROM's bytes. */
static void test_read_reg_reply_built_by_simulator(void **state)
{
	const uint8_t want[] = { 0x01, 0x0a, 0x02, 0x00, 0x01, 0xc1, 0xf0, 0xff, 0x00, 0x00 };
	const uint8_t req_want[] = { 0x00, 0x0a, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40 };
	uint8_t buf[32];
	size_t len = 0;
	struct esp_proto_req q, parsed;
	struct esp_proto_resp r;
	uint32_t addr = 0;

	(void)state;
	esp_proto_req_read_reg(&q, ESP_PROTO_CHIP_MAGIC_ADDR);
	len = encode(&q, buf, sizeof buf);
	assert_int_equal(len, sizeof req_want);
	assert_memory_equal(buf, req_want, sizeof req_want);
	/* simulator side: parse the request, answer it */
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(parsed.op, ESP_OP_READ_REG);
	assert_int_equal(esp_proto_request_word(&parsed, 0, &addr, NULL), FW_OK);
	assert_int_equal(addr, 0x40001000u);
	esp_proto_response_init(&r, parsed.op, ESP_LOADER_ESP8266_ROM);
	r.value = 0xFFF0C101u;
	assert_int_equal(esp_proto_response_encode(&r, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(len, sizeof want);
	assert_memory_equal(buf, want, sizeof want);
}

static void test_esp8266_sync_reply_transcript(void **state)
{
	const uint8_t pkt[] = { 0x01, 0x08, 0x02, 0x00, 0x07, 0x07, 0x12, 0x20, 0x00, 0x00 };
	uint8_t buf[32];
	size_t len;
	struct esp_proto_resp r, built;

	(void)state;
	assert_int_equal(esp_proto_response_parse(pkt, sizeof pkt, 0, 2, &r, NULL), FW_OK);
	assert_int_equal(r.op, ESP_OP_SYNC);
	assert_int_equal(r.value, ESP_PROTO_SYNC_VALUE);
	assert_true(esp_proto_response_ok(&r));
	assert_false(esp_proto_sync_reply_from_stub(&r));
	esp_proto_response_init(&built, ESP_OP_SYNC, ESP_LOADER_ESP8266_ROM);
	built.value = ESP_PROTO_SYNC_VALUE;
	assert_int_equal(esp_proto_response_encode(&built, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(len, sizeof pkt);
	assert_memory_equal(buf, pkt, sizeof pkt);
	/* ESP32 ROM: same value, 4 status bytes */
	esp_proto_response_init(&built, ESP_OP_SYNC, ESP_LOADER_ESP32_ROM);
	built.value = ESP_PROTO_SYNC_VALUE;
	assert_int_equal(esp_proto_response_encode(&built, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(len, 12);
	assert_int_equal(buf[2], 4);
	/* a stub answers SYNC with value 0 */
	built.value = 0;
	assert_true(esp_proto_sync_reply_from_stub(&built));
}

/* ---- packets ---- */

static void test_data_command_layout_and_checksum(void **state)
{
	const uint8_t block[] = { 0x01, 0x02, 0x03, 0x04 };
	/* checksum 0xEF ^ 1 ^ 2 ^ 3 ^ 4 = 0xEB */
	const uint8_t want[] = { 0x00, 0x03, 0x14, 0x00, 0xEB, 0x00, 0x00, 0x00,
				 0x04, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				 0x01, 0x02, 0x03, 0x04 };
	uint8_t buf[64];
	struct esp_proto_req r;

	(void)state;
	assert_int_equal(esp_proto_checksum(block, sizeof block), 0xEB);
	assert_int_equal(esp_proto_checksum(NULL, 0), 0xEF);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 3, block, sizeof block, NULL),
			 FW_OK);
	assert_int_equal(encode(&r, buf, sizeof buf), sizeof want);
	assert_memory_equal(buf, want, sizeof want);
	/* only data commands take a block */
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_READ_REG, 0, block, 4, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_MEM_DATA, 0, block, 4, NULL), FW_OK);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DEFL_DATA, 0, block, 4, NULL), FW_OK);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 0, block, 0xFFF0, NULL),
			 FW_EINVAL);
}

static void test_data_command_parse_mirror(void **state)
{
	uint8_t block[0x400], buf[0x500];
	size_t len, i;
	struct esp_proto_req r, parsed;
	struct esp_proto_data d;
	struct fw_err e = { 0 };

	(void)state;
	for (i = 0; i < sizeof block; i++)
		block[i] = (uint8_t)(i * 7);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 9, block, sizeof block, NULL),
			 FW_OK);
	/* parsers work on built requests too */
	assert_int_equal(esp_proto_parse_data(&r, &d, NULL), FW_OK);
	assert_ptr_equal(d.data, block);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_data(&parsed, &d, NULL), FW_OK);
	assert_int_equal(d.len, sizeof block);
	assert_int_equal(d.seq, 9);
	assert_memory_equal(d.data, block, sizeof block);
	/* one flipped bit on the line: the simulator must notice */
	buf[8 + 16 + 100] ^= 0x10;
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_data(&parsed, &d, &e), FW_EINTEGRITY);
	assert_non_null(strstr(e.msg, "block 9"));
	buf[8 + 16 + 100] ^= 0x10;
	/* length word disagrees with the payload */
	buf[8] = 0xFF;
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_data(&parsed, &d, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "announces"));
	/* shorter than the 16-byte data header */
	assert_int_equal(esp_proto_request_parse(buf, 8 + 10, &parsed, NULL), FW_EPROTO);
	buf[2] = 10;
	buf[3] = 0;
	assert_int_equal(esp_proto_request_parse(buf, 8 + 10, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_data(&parsed, &d, NULL), FW_EPROTO);
	/* not a data command */
	esp_proto_req_read_reg(&r, 0);
	assert_int_equal(esp_proto_parse_data(&r, &d, NULL), FW_EINVAL);
}

static void test_request_parse_errors(void **state)
{
	const uint8_t short_pkt[] = { 0x00, 0x0a, 0x00 };
	const uint8_t reply[] = { 0x01, 0x0a, 0x00, 0x00, 0, 0, 0, 0 };
	const uint8_t bad_size[] = { 0x00, 0x0a, 0x08, 0x00, 0, 0, 0, 0, 1, 2, 3, 4 };
	struct esp_proto_req r;
	struct fw_err e = { 0 };
	uint32_t w;

	(void)state;
	assert_int_equal(esp_proto_request_parse(short_pkt, sizeof short_pkt, &r, &e), FW_EPROTO);
	assert_int_equal(esp_proto_request_parse(reply, sizeof reply, &r, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "direction"));
	assert_int_equal(esp_proto_request_parse(bad_size, sizeof bad_size, &r, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "READ_REG"));
	/* empty READ_REG parses but has no word 0 */
	assert_int_equal(esp_proto_request_parse(reply + 0, 0, &r, NULL), FW_EPROTO);
	{
		const uint8_t empty[] = { 0x00, 0x0a, 0x00, 0x00, 0, 0, 0, 0 };
		assert_int_equal(esp_proto_request_parse(empty, sizeof empty, &r, NULL), FW_OK);
		assert_int_equal(esp_proto_request_word(&r, 0, &w, &e), FW_EPROTO);
	}
}

static void test_request_encode_limits(void **state)
{
	uint8_t buf[16];
	size_t len;
	struct esp_proto_req r;
	struct fw_err e = { 0 };
	static uint8_t big[0x10000];

	(void)state;
	esp_proto_req_sync(&r);
	assert_int_equal(esp_proto_request_encode(&r, buf, sizeof buf, &len, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "SYNC"));
	/* payload over the 16-bit size field */
	esp_proto_req_empty(&r, ESP_OP_FLASH_DATA);
	r.data = big;
	r.data_len = sizeof big;
	assert_int_equal(esp_proto_request_encode(&r, buf, sizeof buf, &len, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "65535"));
}

static void test_frame_escapes_header_and_payload(void **state)
{
	struct esp_proto_req r;
	struct strbuf wire = STRBUF_INIT;
	uint8_t raw[32], storage[64];
	size_t raw_len, off = 0;
	struct slip_decoder d;
	struct slip_event ev;

	(void)state;
	/* an address full of special bytes */
	esp_proto_req_read_reg(&r, 0xDBC0C0DBu);
	raw_len = encode(&r, raw, sizeof raw);
	assert_int_equal(esp_proto_request_frame(&r, &wire, NULL), FW_OK);
	assert_int_equal(wire.len, 2 + raw_len + 4);
	slip_decoder_init(&d, storage, sizeof storage);
	while (off < wire.len) {
		off += slip_decoder_feed(&d, (const uint8_t *)wire.s + off, wire.len - off, &ev);
		if (ev.kind == SLIP_EV_FRAME)
			break;
	}
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	assert_int_equal(ev.len, raw_len);
	assert_memory_equal(ev.frame, raw, raw_len);
	strbuf_free(&wire);
}

static void test_command_builders(void **state)
{
	uint8_t buf[96];
	size_t len;
	struct esp_proto_req r;
	struct esp_proto_begin b = { .size = 0x3000, .blocks = 12, .block_size = 0x400,
				     .offset = 0x10000 };

	(void)state;
	/* FLASH_BEGIN: 4 words for ESP8266/ESP32 ROM, 5 for later ROMs */
	assert_false(esp_proto_begin_has_encrypted_word(ESP_LOADER_ESP8266_ROM));
	assert_false(esp_proto_begin_has_encrypted_word(ESP_LOADER_ESP32_ROM));
	assert_true(esp_proto_begin_has_encrypted_word(ESP_LOADER_LATER_ROM));
	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 8 + 16);
	assert_int_equal(buf[1], 0x02);
	assert_int_equal(le32(buf + 8), 0x3000);
	assert_int_equal(le32(buf + 12), 12);
	assert_int_equal(le32(buf + 16), 0x400);
	assert_int_equal(le32(buf + 20), 0x10000);
	b.encrypted_word = true;
	b.encrypted = 1;
	assert_int_equal(esp_proto_req_flash_defl_begin(&r, &b, NULL), FW_OK);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 8 + 20);
	assert_int_equal(buf[1], 0x10);
	assert_int_equal(le32(buf + 24), 1);
	/* MEM_BEGIN never has the 5th word */
	assert_int_equal(esp_proto_req_mem_begin(&r, &b, NULL), FW_OK);
	assert_int_equal(encode(&r, buf, sizeof buf), 8 + 16);
	b.block_size = 0;
	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_EINVAL);

	/* FLASH_END / FLASH_DEFL_END */
	esp_proto_req_flash_end(&r, ESP_PROTO_END_RUN_USER);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 12);
	assert_int_equal(buf[1], 0x04);
	assert_int_equal(le32(buf + 8), 1);
	esp_proto_req_flash_defl_end(&r, ESP_PROTO_END_REBOOT);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(buf[1], 0x12);
	assert_int_equal(le32(buf + 8), 0);

	/* MEM_END: flag set only when there is no entry point */
	esp_proto_req_mem_end(&r, 0);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 16);
	assert_int_equal(le32(buf + 8), 1);
	assert_int_equal(le32(buf + 12), 0);
	esp_proto_req_mem_end(&r, 0x4010001Cu);
	encode(&r, buf, sizeof buf);
	assert_int_equal(le32(buf + 8), 0);
	assert_int_equal(le32(buf + 12), 0x4010001Cu);

	/* SPI_SET_PARAMS */
	esp_proto_req_spi_set_params(&r, 4u << 20);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 8 + 24);
	assert_int_equal(buf[1], 0x0B);
	assert_int_equal(le32(buf + 8), 0);
	assert_int_equal(le32(buf + 12), 0x400000);
	assert_int_equal(le32(buf + 16), 0x10000);
	assert_int_equal(le32(buf + 20), 0x1000);
	assert_int_equal(le32(buf + 24), 0x100);
	assert_int_equal(le32(buf + 28), 0xFFFF);

	/* SPI_ATTACH: 8 bytes for a ROM, 4 for the stub */
	esp_proto_req_spi_attach(&r, ESP_LOADER_ESP32_ROM, 0);
	assert_int_equal(encode(&r, buf, sizeof buf), 16);
	assert_int_equal(le32(buf + 12), 0);
	esp_proto_req_spi_attach(&r, ESP_LOADER_STUB, 1);
	assert_int_equal(encode(&r, buf, sizeof buf), 12);
	assert_int_equal(le32(buf + 8), 1);

	/* CHANGE_BAUDRATE: the ROM must get 0 as old rate */
	esp_proto_req_change_baud(&r, ESP_LOADER_ESP32_ROM, 460800, 115200);
	encode(&r, buf, sizeof buf);
	assert_int_equal(buf[1], 0x0F);
	assert_int_equal(le32(buf + 8), 460800);
	assert_int_equal(le32(buf + 12), 0);
	esp_proto_req_change_baud(&r, ESP_LOADER_STUB, 921600, 460800);
	encode(&r, buf, sizeof buf);
	assert_int_equal(le32(buf + 12), 460800);

	/* SPI_FLASH_MD5 */
	esp_proto_req_flash_md5(&r, 0x1000, 0x2345);
	assert_int_equal(encode(&r, buf, sizeof buf), 8 + 16);
	assert_int_equal(buf[1], 0x13);
	assert_int_equal(le32(buf + 8), 0x1000);
	assert_int_equal(le32(buf + 12), 0x2345);
	assert_int_equal(le32(buf + 16), 0);
	assert_int_equal(le32(buf + 20), 0);

	/* READ_FLASH_SLOW: 1..64 bytes */
	assert_int_equal(esp_proto_req_read_flash_slow(&r, 0x40, 64, NULL), FW_OK);
	assert_int_equal(encode(&r, buf, sizeof buf), 16);
	assert_int_equal(le32(buf + 12), 64);
	assert_int_equal(esp_proto_req_read_flash_slow(&r, 0x40, 65, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_read_flash_slow(&r, 0x40, 0, NULL), FW_EINVAL);

	/* helper commands */
	assert_int_equal(esp_proto_req_erase_region(&r, 0x3000, 0x2000, NULL), FW_OK);
	assert_int_equal(encode(&r, buf, sizeof buf), 16);
	assert_int_equal(buf[1], 0xD1);
	assert_int_equal(esp_proto_req_erase_region(&r, 0x3100, 0x2000, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_erase_region(&r, 0x3000, 0x2001, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_erase_region(&r, 0x3000, 0, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_read_flash(&r, 0, 0x400000, 0x1000, 64, NULL), FW_OK);
	assert_int_equal(encode(&r, buf, sizeof buf), 8 + 16);
	assert_int_equal(buf[1], 0xD2);
	assert_int_equal(le32(buf + 12), 0x400000);
	assert_int_equal(le32(buf + 16), 0x1000);
	assert_int_equal(le32(buf + 20), 64);
	assert_int_equal(esp_proto_req_read_flash(&r, 0, 16, 0, 64, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_read_flash(&r, 0xFFFFF000u, 0x2000, 0x1000, 1, NULL),
			 FW_EINVAL);

	/* payload-less and generic word requests */
	esp_proto_req_empty(&r, ESP_OP_GET_SECURITY_INFO);
	assert_int_equal(encode(&r, buf, sizeof buf), 8);
	{
		const uint32_t w[2] = { 0x11223344u, 5 };
		uint32_t many[17] = { 0 };
		assert_int_equal(esp_proto_req_words(&r, ESP_OP_READ_FLASH_SLOW, w, 2, NULL), FW_OK);
		encode(&r, buf, sizeof buf);
		assert_int_equal(le32(buf + 8), 0x11223344u);
		assert_int_equal(esp_proto_req_words(&r, ESP_OP_WRITE_REG, many, 17, NULL), FW_EINVAL);
	}
}

static void test_begin_parse_mirror(void **state)
{
	uint8_t buf[64];
	size_t len;
	struct esp_proto_req r, parsed;
	struct esp_proto_begin b = { .size = 0x1000, .blocks = 4, .block_size = 0x400,
				     .offset = 0x3FC000, .encrypted_word = true }, got;
	struct fw_err e = { 0 };

	(void)state;
	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_begin(&parsed, &got, NULL), FW_OK);
	assert_int_equal(got.size, 0x1000);
	assert_int_equal(got.blocks, 4);
	assert_int_equal(got.block_size, 0x400);
	assert_int_equal(got.offset, 0x3FC000);
	assert_true(got.encrypted_word);
	/* 3 words are not a begin command */
	buf[2] = 12;
	assert_int_equal(esp_proto_request_parse(buf, 8 + 12, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_begin(&parsed, &got, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "FLASH_BEGIN"));
	/* MEM_BEGIN takes exactly 4 */
	buf[1] = ESP_OP_MEM_BEGIN;
	buf[2] = 20;
	assert_int_equal(esp_proto_request_parse(buf, 8 + 20, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_begin(&parsed, &got, NULL), FW_EPROTO);
	esp_proto_req_read_reg(&r, 0);
	assert_int_equal(esp_proto_parse_begin(&r, &got, NULL), FW_EINVAL);
}

static void test_write_reg_records(void **state)
{
	const struct esp_proto_reg_write w[2] = {
		{ 0x60000220u, 23u << 8, 0xFFFFFFFFu, 0 },
		{ 0x3FF00050u, 0, 0, 100 },
	};
	struct esp_proto_reg_write got[4];
	uint8_t buf[64];
	size_t len, n;
	struct esp_proto_req r, parsed;

	(void)state;
	assert_int_equal(esp_proto_req_write_reg(&r, w, 2, NULL), FW_OK);
	len = encode(&r, buf, sizeof buf);
	assert_int_equal(len, 8 + 32);
	assert_int_equal(le32(buf + 8), 0x60000220u);
	assert_int_equal(le32(buf + 12), 23u << 8);
	assert_int_equal(le32(buf + 16), 0xFFFFFFFFu);
	assert_int_equal(le32(buf + 36), 100);
	assert_int_equal(esp_proto_request_parse(buf, len, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_write_reg(&parsed, got, 4, &n, NULL), FW_OK);
	assert_int_equal(n, 2);
	assert_memory_equal(got, w, sizeof w);
	assert_int_equal(esp_proto_parse_write_reg(&parsed, got, 1, &n, NULL), FW_EPROTO);
	assert_int_equal(esp_proto_req_write_reg(&r, w, 0, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_req_write_reg(&r, w, 5, NULL), FW_EINVAL);
	buf[2] = 20;
	assert_int_equal(esp_proto_request_parse(buf, 8 + 20, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_write_reg(&parsed, got, 4, &n, NULL), FW_EPROTO);
}

/* ---- responses ---- */

static void test_response_parse_status_offset(void **state)
{
	/* READ_FLASH_SLOW from an ESP32 ROM: 64 data bytes then 4 status bytes */
	uint8_t pkt[8 + 64 + 4];
	struct esp_proto_resp r;
	size_t i;

	(void)state;
	memset(pkt, 0, sizeof pkt);
	pkt[0] = 1;
	pkt[1] = ESP_OP_READ_FLASH_SLOW;
	pkt[2] = 68;
	for (i = 0; i < 64; i++)
		pkt[8 + i] = (uint8_t)(0xA0 + i);
	assert_int_equal(esp_proto_response_parse(pkt, sizeof pkt,
						  esp_proto_result_len(ESP_OP_READ_FLASH_SLOW, ESP_LOADER_ESP32_ROM),
						  esp_proto_status_len(ESP_LOADER_ESP32_ROM), &r, NULL),
			 FW_OK);
	assert_int_equal(r.result_len, 64);
	assert_ptr_equal(r.result, pkt + 8);
	assert_true(esp_proto_response_ok(&r));
	assert_int_equal(r.trailing, 0);
	/* status is at the expected offset even with extra bytes after it */
	{
		const uint8_t extra[] = { 0x01, 0x0a, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x07 };
		assert_int_equal(esp_proto_response_parse(extra, sizeof extra, 0, 2, &r, NULL), FW_OK);
		assert_true(esp_proto_response_ok(&r));
		assert_int_equal(r.trailing, 2);
	}
	/* GET_SECURITY_INFO: everything before the status is result */
	{
		uint8_t si[8 + 20 + 4] = { 0x01, 0x14, 24, 0 };
		struct esp_proto_security_info s;

		si[8] = 0x05;       /* flags */
		si[12] = 3;         /* flash_crypt_cnt */
		si[13] = 9;         /* key purpose 0 */
		si[20] = 9;         /* chip id: ESP32-S3 */
		si[24] = 0x01;      /* api version */
		assert_int_equal(esp_proto_response_parse(si, sizeof si,
							  esp_proto_result_len(ESP_OP_GET_SECURITY_INFO, ESP_LOADER_LATER_ROM),
							  4, &r, NULL), FW_OK);
		assert_int_equal(r.result_len, 20);
		assert_int_equal(esp_proto_security_info_parse(&r, &s, NULL), FW_OK);
		assert_int_equal(s.flags, 5);
		assert_int_equal(s.flash_crypt_cnt, 3);
		assert_int_equal(s.key_purposes[0], 9);
		assert_true(s.has_chip_id);
		assert_int_equal(s.chip_id, 9);
		assert_int_equal(s.api_version, 1);
		assert_int_equal(esp_proto_chip_by_id(s.chip_id)->chip, ESP_CHIP_ESP32S3);
		/* ESP32-S2: 12 bytes, no chip id; the status follows at once */
		si[2] = 16;
		si[20] = 0;
		assert_int_equal(esp_proto_response_parse(si, 8 + 16, ESP_PROTO_RESULT_REST, 4, &r,
							  NULL), FW_OK);
		assert_int_equal(esp_proto_security_info_parse(&r, &s, NULL), FW_OK);
		assert_false(s.has_chip_id);
		si[2] = 12;
		assert_int_equal(esp_proto_response_parse(si, 8 + 12, ESP_PROTO_RESULT_REST, 4, &r,
							  NULL), FW_OK);
		assert_int_equal(esp_proto_security_info_parse(&r, &s, NULL), FW_EPROTO);
	}
}

static void test_response_parse_errors(void **state)
{
	const uint8_t short_pkt[] = { 0x01, 0x0a, 0x02 };
	const uint8_t request[] = { 0x00, 0x0a, 0x02, 0x00, 0, 0, 0, 0, 0, 0 };
	const uint8_t bad_size[] = { 0x01, 0x0a, 0x04, 0x00, 0, 0, 0, 0, 0, 0 };
	const uint8_t no_status[] = { 0x01, 0x0a, 0x00, 0x00, 0, 0, 0, 0 };
	/* MD5 from a ROM that sent the status but only 10 result bytes */
	uint8_t md5_short[8 + 10 + 4] = { 0x01, 0x13, 14, 0 };
	struct esp_proto_resp r;
	struct fw_err e = { 0 };

	(void)state;
	assert_int_equal(esp_proto_response_parse(short_pkt, sizeof short_pkt, 0, 2, &r, &e),
			 FW_EPROTO);
	assert_non_null(strstr(e.msg, "shorter"));
	assert_int_equal(esp_proto_response_parse(request, sizeof request, 0, 2, &r, &e),
			 FW_EPROTO);
	assert_non_null(strstr(e.msg, "direction"));
	assert_int_equal(esp_proto_response_parse(bad_size, sizeof bad_size, 0, 2, &r, &e),
			 FW_EPROTO);
	assert_non_null(strstr(e.msg, "READ_REG"));
	assert_int_equal(esp_proto_response_parse(no_status, sizeof no_status, 0, 2, &r, &e),
			 FW_EPROTO);
	/* an ESP8266 reply parsed with the ESP32 status length is too short */
	{
		const uint8_t esp8266[] = { 0x01, 0x0a, 0x02, 0x00, 0, 0, 0, 0, 0, 0 };
		assert_int_equal(esp_proto_response_parse(esp8266, sizeof esp8266, 0, 4, &r, &e),
				 FW_EPROTO);
	}
	assert_int_equal(esp_proto_response_parse(md5_short, sizeof md5_short, 32, 4, &r, &e),
			 FW_EPROTO);
	assert_non_null(strstr(e.msg, "SPI_FLASH_MD5"));
	assert_int_equal(esp_proto_response_parse(no_status, sizeof no_status, 0, 3, &r, &e),
			 FW_EINVAL);
}

static void test_failure_without_result_is_accepted(void **state)
{
	/* MD5 refused by an ESP32 ROM: status only, no 32 result bytes */
	const uint8_t pkt[] = { 0x01, 0x13, 0x04, 0x00, 0, 0, 0, 0, 0x01, 0x05, 0x00, 0x00 };
	/* the same size but "ok": the result is missing, that is an error */
	const uint8_t ok_pkt[] = { 0x01, 0x13, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x00 };
	struct esp_proto_resp r;
	struct fw_err e = { 0 };

	(void)state;
	assert_int_equal(esp_proto_response_parse(pkt, sizeof pkt, 32, 4, &r, NULL), FW_OK);
	assert_false(esp_proto_response_ok(&r));
	assert_int_equal(r.result_len, 0);
	assert_int_equal(esp_proto_response_check(&r, &e), FW_EUNSUPPORTED);
	assert_non_null(strstr(e.msg, "SPI_FLASH_MD5"));
	assert_non_null(strstr(e.msg, "0105"));
	assert_int_equal(esp_proto_response_parse(ok_pkt, sizeof ok_pkt, 32, 4, &r, NULL),
			 FW_EPROTO);
}

static void test_response_match(void **state)
{
	const uint8_t sync_reply[] = { 0x01, 0x08, 0x02, 0x00, 0x07, 0x07, 0x12, 0x20, 0, 0 };
	const uint8_t invalid_msg[] = { 0x01, 0x08, 0x04, 0x00, 0, 0, 0, 0, 0x01, 0x05, 0, 0 };
	const uint8_t request[] = { 0x00, 0x0a, 0x00, 0x00, 0, 0, 0, 0 };

	(void)state;
	/* surplus SYNC replies while waiting for READ_REG are skipped */
	assert_int_equal(esp_proto_response_match(sync_reply, sizeof sync_reply, ESP_OP_READ_REG),
			 ESP_MATCH_OTHER);
	assert_int_equal(esp_proto_response_match(sync_reply, sizeof sync_reply, ESP_OP_SYNC),
			 ESP_MATCH_YES);
	assert_int_equal(esp_proto_response_match(invalid_msg, sizeof invalid_msg,
						  ESP_OP_GET_SECURITY_INFO),
			 ESP_MATCH_UNSUPPORTED);
	assert_int_equal(esp_proto_response_match(request, sizeof request, ESP_OP_READ_REG),
			 ESP_MATCH_NOT_RESPONSE);
	assert_int_equal(esp_proto_response_match(sync_reply, 5, ESP_OP_SYNC),
			 ESP_MATCH_NOT_RESPONSE);
}

static void test_status_layouts_and_messages(void **state)
{
	uint8_t buf[32];
	size_t len;
	struct esp_proto_resp r, parsed;
	struct fw_err e = { 0 };

	(void)state;
	/* ESP8266 ROM checksum failure on FLASH_DATA: {1, 7} */
	esp_proto_response_init(&r, ESP_OP_FLASH_DATA, ESP_LOADER_ESP8266_ROM);
	esp_proto_response_fail(&r, ESP_LOADER_ESP8266_ROM, 0x07);
	assert_int_equal(esp_proto_response_encode(&r, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(len, 10);
	assert_int_equal(buf[8], 0x01);
	assert_int_equal(buf[9], 0x07);
	assert_int_equal(esp_proto_response_parse(buf, len, 0, 2, &parsed, NULL), FW_OK);
	assert_false(esp_proto_response_ok(&parsed));
	assert_int_equal(esp_proto_status_code(&parsed), 0x0107);
	assert_int_equal(esp_proto_status_reason(&parsed), 0x07);
	assert_int_equal(esp_proto_response_check(&parsed, &e), FW_EINTEGRITY);
	assert_non_null(strstr(e.msg, "FLASH_DATA"));
	assert_non_null(strstr(e.msg, "checksum mismatch: bytes were corrupted on the serial line"));
	assert_non_null(strstr(e.msg, "lower the baud rate"));

	/* ESP32 ROM: 4 status bytes, reserved ones ignored */
	esp_proto_response_init(&r, ESP_OP_FLASH_BEGIN, ESP_LOADER_ESP32_ROM);
	esp_proto_response_fail(&r, ESP_LOADER_ESP32_ROM, 0x01);
	r.status[2] = 0xAA;
	assert_int_equal(esp_proto_response_encode(&r, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(len, 12);
	assert_int_equal(esp_proto_response_parse(buf, len, 0, 4, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_status_code(&parsed), 0x0101);
	assert_int_equal(esp_proto_response_check(&parsed, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "start a flash write"));

	/* stub: {code, 0} */
	esp_proto_response_init(&r, ESP_OP_FLASH_DEFL_DATA, ESP_LOADER_STUB);
	esp_proto_response_fail(&r, ESP_LOADER_STUB, 0xC1);
	assert_int_equal(esp_proto_response_encode(&r, buf, sizeof buf, &len, NULL), FW_OK);
	assert_int_equal(esp_proto_response_parse(buf, len, 0, 2, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_status_code(&parsed), 0xC100);
	assert_int_equal(esp_proto_status_reason(&parsed), 0xC1);
	assert_int_equal(esp_proto_response_check(&parsed, &e), FW_EINTEGRITY);

	/* flash write error maps to "verify" */
	esp_proto_response_fail(&r, ESP_LOADER_ESP8266_ROM, 0x08);
	assert_int_equal(esp_proto_response_check(&r, &e), FW_EVERIFY);
	assert_non_null(strstr(e.msg, "flash write error"));
	/* unknown commands */
	assert_int_equal(esp_proto_error_rc(0x05), FW_EUNSUPPORTED);
	assert_int_equal(esp_proto_error_rc(0xC3), FW_EUNSUPPORTED);
	assert_int_equal(esp_proto_error_rc(0xFF), FW_EUNSUPPORTED);
	assert_int_equal(esp_proto_error_rc(0x42), FW_EPROTO);
}

static void test_error_table_complete(void **state)
{
	const uint8_t documented[] = {
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
		0x0C, 0x0D, 0x0E, 0x0F, 0x64, 0x65, 0x66, 0x67, 0x69,
		0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xFF,
	};
	const char *unknown = esp_proto_error_text(0x42);
	size_t i, j;

	(void)state;
	assert_non_null(unknown);
	assert_non_null(strstr(unknown, "not in the loader documentation"));
	assert_string_equal(esp_proto_error_text(0x68), unknown);
	for (i = 0; i < sizeof documented; i++) {
		const char *t = esp_proto_error_text(documented[i]);

		assert_non_null(t);
		assert_true(t != unknown);
		/* house style: messages start lowercase */
		assert_false(t[0] >= 'A' && t[0] <= 'Z');
		for (j = 0; j < i; j++)
			assert_true(strcmp(t, esp_proto_error_text(documented[j])) != 0);
	}
	assert_string_equal(esp_proto_error_text(0x07),
			    "checksum mismatch: bytes were corrupted on the serial line (check the cable, lower the baud rate)");
}

static void test_md5_rom_and_stub(void **state)
{
	const uint8_t digest[16] = { 0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
				     0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e };
	uint8_t result[32], pkt[64], got[16];
	size_t rlen, len;
	struct esp_proto_resp r, parsed;
	struct fw_err e = { 0 };

	(void)state;
	/* ROM: 32 ASCII hex characters */
	rlen = esp_proto_md5_encode(ESP_LOADER_ESP32_ROM, digest, result);
	assert_int_equal(rlen, 32);
	assert_memory_equal(result, "d41d8cd98f00b204e9800998ecf8427e", 32);
	esp_proto_response_init(&r, ESP_OP_SPI_FLASH_MD5, ESP_LOADER_ESP32_ROM);
	r.result = result;
	r.result_len = rlen;
	assert_int_equal(esp_proto_response_encode(&r, pkt, sizeof pkt, &len, NULL), FW_OK);
	assert_int_equal(len, 8 + 32 + 4);
	assert_int_equal(esp_proto_response_parse(pkt, len,
						  esp_proto_result_len(ESP_OP_SPI_FLASH_MD5, ESP_LOADER_ESP32_ROM),
						  4, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_md5_parse(&parsed, got, NULL), FW_OK);
	assert_memory_equal(got, digest, 16);
	/* upper-case hex is accepted too */
	memcpy(pkt + 8, "D41D8CD98F00B204E9800998ECF8427E", 32);
	assert_int_equal(esp_proto_response_parse(pkt, len, 32, 4, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_md5_parse(&parsed, got, NULL), FW_OK);
	assert_memory_equal(got, digest, 16);
	pkt[8 + 5] = 'x';
	assert_int_equal(esp_proto_response_parse(pkt, len, 32, 4, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_md5_parse(&parsed, got, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "position 5"));

	/* stub: 16 raw bytes, 2 status bytes */
	rlen = esp_proto_md5_encode(ESP_LOADER_STUB, digest, result);
	assert_int_equal(rlen, 16);
	esp_proto_response_init(&r, ESP_OP_SPI_FLASH_MD5, ESP_LOADER_STUB);
	r.result = result;
	r.result_len = rlen;
	assert_int_equal(esp_proto_response_encode(&r, pkt, sizeof pkt, &len, NULL), FW_OK);
	assert_int_equal(len, 8 + 16 + 2);
	assert_int_equal(esp_proto_response_parse(pkt, len,
						  esp_proto_result_len(ESP_OP_SPI_FLASH_MD5, ESP_LOADER_STUB),
						  2, &parsed, NULL), FW_OK);
	assert_int_equal(esp_proto_md5_parse(&parsed, got, NULL), FW_OK);
	assert_memory_equal(got, digest, 16);

	/* a failed MD5 reports the device's reason */
	esp_proto_response_fail(&parsed, ESP_LOADER_STUB, 0xC4);
	assert_int_equal(esp_proto_md5_parse(&parsed, got, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "SPI flash operation failed"));
	/* wrong length */
	esp_proto_response_init(&r, ESP_OP_SPI_FLASH_MD5, ESP_LOADER_STUB);
	r.result = result;
	r.result_len = 8;
	assert_int_equal(esp_proto_md5_parse(&r, got, NULL), FW_EPROTO);
}

static void test_result_and_status_lengths(void **state)
{
	(void)state;
	assert_int_equal(esp_proto_status_len(ESP_LOADER_ESP8266_ROM), 2);
	assert_int_equal(esp_proto_status_len(ESP_LOADER_ESP32_ROM), 4);
	assert_int_equal(esp_proto_status_len(ESP_LOADER_LATER_ROM), 4);
	assert_int_equal(esp_proto_status_len(ESP_LOADER_STUB), 2);
	assert_int_equal(esp_proto_result_len(ESP_OP_SPI_FLASH_MD5, ESP_LOADER_LATER_ROM), 32);
	assert_int_equal(esp_proto_result_len(ESP_OP_SPI_FLASH_MD5, ESP_LOADER_STUB), 16);
	assert_int_equal(esp_proto_result_len(ESP_OP_READ_FLASH_SLOW, ESP_LOADER_ESP32_ROM), 64);
	assert_int_equal(esp_proto_result_len(ESP_OP_READ_REG, ESP_LOADER_ESP32_ROM), 0);
	assert_int_equal(esp_proto_result_len(ESP_OP_GET_SECURITY_INFO, ESP_LOADER_STUB),
			 ESP_PROTO_RESULT_REST);
}

static void test_op_table_support(void **state)
{
	const uint8_t all_ops[] = { 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
				    0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14,
				    0xD0, 0xD1, 0xD2, 0xD3, 0xD4 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof all_ops; i++) {
		const struct esp_proto_op_info *info = esp_proto_op_info(all_ops[i]);

		assert_non_null(info);
		assert_int_equal(info->op, all_ops[i]);
		assert_string_equal(esp_proto_op_name(all_ops[i]), info->name);
	}
	assert_null(esp_proto_op_info(0x01));
	assert_string_equal(esp_proto_op_name(0x42), "unknown command");
	/* ESP8266 ROM: only 0x02..0x0A */
	assert_true(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_FLASH_BEGIN));
	assert_true(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_READ_REG));
	assert_false(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_SPI_ATTACH));
	assert_false(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_SPI_FLASH_MD5));
	assert_false(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_CHANGE_BAUDRATE));
	assert_false(esp_proto_supports(ESP_LOADER_ESP8266_ROM, ESP_OP_READ_FLASH_SLOW));
	assert_true(esp_proto_supports(ESP_LOADER_ESP32_ROM, ESP_OP_READ_FLASH_SLOW));
	assert_false(esp_proto_supports(ESP_LOADER_STUB, ESP_OP_READ_FLASH_SLOW));
	assert_false(esp_proto_supports(ESP_LOADER_ESP32_ROM, ESP_OP_GET_SECURITY_INFO));
	assert_true(esp_proto_supports(ESP_LOADER_STUB, ESP_OP_READ_FLASH));
	assert_false(esp_proto_supports(ESP_LOADER_LATER_ROM, ESP_OP_ERASE_REGION));
	assert_true(esp_proto_op_info(ESP_OP_FLASH_DATA)->checksummed);
	assert_true(esp_proto_op_info(ESP_OP_MEM_DATA)->checksummed);
	assert_true(esp_proto_op_info(ESP_OP_FLASH_DEFL_DATA)->checksummed);
	assert_false(esp_proto_op_info(ESP_OP_FLASH_BEGIN)->checksummed);
}

/* Host and simulator talk through the same code, both directions framed. */
static void test_host_sim_round_trip(void **state)
{
	static uint8_t host_store[ESP_PROTO_PACKET_MAX], sim_store[ESP_PROTO_PACKET_MAX];
	uint8_t block[ESP_PROTO_ROM_WRITE_BLOCK];
	struct strbuf to_sim = STRBUF_INIT, to_host = STRBUF_INIT;
	struct slip_decoder hd, sd;
	struct slip_event ev;
	struct esp_proto_req q, got;
	struct esp_proto_resp a, back;
	struct esp_proto_data d;
	size_t off = 0;

	(void)state;
	memset(block, 0xC0, sizeof block); /* worst case for escaping */
	slip_decoder_init(&hd, host_store, sizeof host_store);
	slip_decoder_init(&sd, sim_store, sizeof sim_store);
	assert_int_equal(esp_proto_req_data(&q, ESP_OP_FLASH_DATA, 0, block, sizeof block, NULL),
			 FW_OK);
	assert_int_equal(esp_proto_request_frame(&q, &to_sim, NULL), FW_OK);
	do {
		off += slip_decoder_feed(&sd, (const uint8_t *)to_sim.s + off, to_sim.len - off, &ev);
	} while (ev.kind == SLIP_EV_NONE && off < to_sim.len);
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	assert_int_equal(esp_proto_request_parse(ev.frame, ev.len, &got, NULL), FW_OK);
	assert_int_equal(esp_proto_parse_data(&got, &d, NULL), FW_OK);
	assert_int_equal(d.len, sizeof block);
	esp_proto_response_init(&a, got.op, ESP_LOADER_ESP8266_ROM);
	assert_int_equal(esp_proto_response_frame(&a, &to_host, NULL), FW_OK);
	off = 0;
	do {
		off += slip_decoder_feed(&hd, (const uint8_t *)to_host.s + off, to_host.len - off,
					 &ev);
	} while (ev.kind == SLIP_EV_NONE && off < to_host.len);
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	assert_int_equal(esp_proto_response_match(ev.frame, ev.len, ESP_OP_FLASH_DATA),
			 ESP_MATCH_YES);
	assert_int_equal(esp_proto_response_parse(ev.frame, ev.len, 0, 2, &back, NULL), FW_OK);
	assert_int_equal(esp_proto_response_check(&back, NULL), FW_OK);
	strbuf_free(&to_sim);
	strbuf_free(&to_host);
}

/* ---- READ_FLASH stream ---- */

static void test_read_stream_receiver(void **state)
{
	struct esp_proto_read_stream s;
	uint8_t ack[4], md5[16], digest[16];
	struct fw_err e = { 0 };

	(void)state;
	memset(digest, 0x5A, sizeof digest);
	assert_int_equal(esp_proto_read_stream_init(&s, 10000, 4096, 2, NULL), FW_OK);
	assert_int_equal(esp_proto_read_stream_expect(&s), 4096);
	assert_int_equal(esp_proto_read_stream_take(&s, 4096, ack, NULL), FW_OK);
	assert_int_equal(le32(ack), 4096);
	/* a short packet before the end = lost bytes */
	assert_int_equal(esp_proto_read_stream_take(&s, 4000, ack, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "lost"));
	assert_int_equal(esp_proto_read_stream_digest(&s, digest, 16, md5, NULL), FW_EPROTO);
	assert_int_equal(esp_proto_read_stream_take(&s, 4096, ack, NULL), FW_OK);
	assert_int_equal(esp_proto_read_stream_expect(&s), 10000 - 8192);
	assert_int_equal(esp_proto_read_stream_take(&s, 1808, ack, NULL), FW_OK);
	assert_int_equal(le32(ack), 10000);
	assert_true(esp_proto_read_stream_done(&s));
	assert_int_equal(esp_proto_read_stream_expect(&s), 0);
	assert_int_equal(esp_proto_read_stream_take(&s, 16, ack, &e), FW_EPROTO);
	assert_int_equal(esp_proto_read_stream_digest(&s, digest, 15, md5, NULL), FW_EPROTO);
	assert_int_equal(esp_proto_read_stream_digest(&s, digest, 16, md5, NULL), FW_OK);
	assert_memory_equal(md5, digest, 16);
	assert_int_equal(esp_proto_read_stream_init(&s, 100, 0, 1, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_read_stream_init(&s, 100, 64, 0, NULL), FW_EINVAL);
}

static void test_read_stream_sender_window(void **state)
{
	struct esp_proto_read_stream s;
	uint8_t ack[4];

	(void)state;
	assert_int_equal(esp_proto_read_stream_init(&s, 10000, 4096, 2, NULL), FW_OK);
	assert_int_equal(esp_proto_read_stream_next(&s), 4096);
	esp_proto_read_stream_sent(&s, 4096);
	assert_int_equal(esp_proto_read_stream_next(&s), 4096);
	esp_proto_read_stream_sent(&s, 4096);
	/* two packets in flight: wait for an ack */
	assert_int_equal(esp_proto_read_stream_next(&s), 0);
	esp_proto_read_stream_ack_encode(4096, ack);
	assert_int_equal(esp_proto_read_stream_ack(&s, ack, 4, NULL), FW_OK);
	assert_int_equal(esp_proto_read_stream_next(&s), 1808);
	esp_proto_read_stream_sent(&s, 1808);
	assert_int_equal(esp_proto_read_stream_next(&s), 0);
	/* bad acks */
	esp_proto_read_stream_ack_encode(20000, ack);
	assert_int_equal(esp_proto_read_stream_ack(&s, ack, 4, NULL), FW_EPROTO);
	esp_proto_read_stream_ack_encode(100, ack);
	assert_int_equal(esp_proto_read_stream_ack(&s, ack, 4, NULL), FW_EPROTO);
	assert_int_equal(esp_proto_read_stream_ack(&s, ack, 3, NULL), FW_EPROTO);
	esp_proto_read_stream_ack_encode(10000, ack);
	assert_int_equal(esp_proto_read_stream_ack(&s, ack, 4, NULL), FW_OK);
	assert_int_equal(s.acked, 10000);
}

/* ---- ESP8266 ROM erase-size bug ---- */

/* Values worked out by hand from the rules in reference section 5.3. */
static void test_erase_size_table(void **state)
{
	static const struct { uint32_t offset, size, send; } t[] = {
		{ 0x000000, 0, 0 },
		{ 0x000000, 0x1000, 0x1000 },     /* N=1, head 1: ceil(1/2)=1 */
		{ 0x000000, 0x2000, 0x1000 },     /* N=2 inside a block: 1 */
		{ 0x000000, 0x3000, 0x2000 },     /* N=3: 2 (erases 4) */
		{ 0x000000, 0x10000, 0x8000 },    /* N=16 = whole block: 8 */
		{ 0x000000, 0x40000, 0x30000 },   /* N=64, head 16: 48 */
		{ 0x000000, 0x100000, 0xF0000 },  /* 1 MB image at 0 */
		{ 0x001000, 0x2000, 0x1000 },     /* N=2, head 2 */
		{ 0x00F000, 0x2000, 0x1000 },     /* N=2 across a boundary, head 1 */
		{ 0x00E000, 0x5000, 0x3000 },     /* N=5, head 2: 5-2 */
		{ 0x00C000, 0x8000, 0x4000 },     /* N=8, head 4: 8 >= 8 -> 4 */
		{ 0x00C000, 0x7000, 0x4000 },     /* N=7, head 4: ceil(7/2)=4 */
		{ 0x3FC000, 0x1000, 0x1000 },     /* init data, 1 sector */
		{ 0x3FE000, 0x1000, 0x1000 },     /* blank.bin */
		{ 0x010000, 0x1, 0x1000 },        /* 1 byte still needs a sector */
		{ 0x000800, 0x1000, 0x1000 },     /* unaligned: spans 2 sectors */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint32_t got = esp_proto_erase_size(t[i].offset, t[i].size);

		if (got != t[i].send)
			fail_msg("erase size for 0x%X+0x%X: got 0x%X, want 0x%X",
				 t[i].offset, t[i].size, got, t[i].send);
	}
}

/* The ROM bug as described, written independently of the code under test:
 * it first erases the head (up to the next 64 KB boundary, at most the
 * requested count), then forgets to subtract it and erases the full
 * requested count again after it. */
static void model_rom_bitmap(uint32_t start, uint32_t m, uint8_t *erased, size_t cap)
{
	uint32_t to_boundary = 16 - start % 16;
	uint32_t head = m < to_boundary ? m : to_boundary;
	uint32_t s = start, k;

	for (k = 0; k < head; k++) {
		assert_true(s < cap);
		erased[s++] = 1;
	}
	for (k = 0; k < m; k++) {
		assert_true(s < cap);
		erased[s++] = 1;
	}
}

static void test_rom_erase_model_matches_description(void **state)
{
	uint8_t bitmap[256];
	uint32_t start, m, k;

	(void)state;
	for (start = 0; start < 40; start++) {
		for (m = 0; m <= 60; m++) {
			struct esp_proto_sectors got;
			uint32_t first = 256, last = 0, count = 0;

			memset(bitmap, 0, sizeof bitmap);
			model_rom_bitmap(start, m, bitmap, sizeof bitmap);
			for (k = 0; k < sizeof bitmap; k++) {
				if (!bitmap[k])
					continue;
				count++;
				if (k < first)
					first = k;
				last = k;
			}
			esp_proto_rom_erased(start * 0x1000, m * 0x1000, &got);
			assert_int_equal(got.count, count);
			if (count) {
				assert_int_equal(got.first, first);
				assert_int_equal(last - first + 1, count); /* contiguous */
			}
		}
	}
	/* a sent size that is not a whole sector counts as the next sector */
	{
		struct esp_proto_sectors a, b;
		esp_proto_rom_erased(0x20000, 0x1001, &a);
		esp_proto_rom_erased(0x20000, 0x2000, &b);
		assert_int_equal(a.count, b.count);
	}
	/* the naive size erases twice as much inside a block: 8 sectors at 0
	 * sent unadjusted wipe 16 */
	{
		struct esp_proto_sectors n;
		esp_proto_rom_erased(0, 0x8000, &n);
		assert_int_equal(n.first, 0);
		assert_int_equal(n.count, 16);
		esp_proto_rom_erased(0, 0x40000, &n); /* 0x40000 image at 0: 80 */
		assert_int_equal(n.count, 80);
	}
}

/* Compensation followed by the model erases exactly the needed sectors, one
 * more only for an odd count N < 2 * head (head = min(N, sectors to the next
 * 64 KB boundary)): always when N fits inside one block, and also for e.g.
 * 7 sectors at 0xC000, which cross a boundary (the reference only names the
 * first case). */
static void test_compensation_plus_model_exact(void **state)
{
	uint32_t s, n;
	unsigned odd_cases = 0;

	(void)state;
	for (s = 0; s < 64; s++) {
		for (n = 1; n <= 96; n++) {
			uint32_t offset = s * 0x1000, size = n * 0x1000;
			uint32_t send = esp_proto_erase_size(offset, size);
			uint32_t to_boundary = 16 - s % 16;
			struct esp_proto_sectors got;
			uint32_t head = n < to_boundary ? n : to_boundary;
			bool odd_extra = (n % 2 == 1) && n < 2 * head;

			esp_proto_rom_erased(offset, send, &got);
			assert_int_equal(got.first, s);
			if (odd_extra) {
				odd_cases++;
				assert_int_equal(got.count, n + 1);
			} else if (got.count != n) {
				fail_msg("offset 0x%X size 0x%X: sent 0x%X, erased %u sectors, need %u",
					 offset, size, send, got.count, n);
			}
			/* never less than needed, whatever the case */
			assert_true(got.count >= n);
		}
	}
	assert_true(odd_cases > 0);
	/* the crossing case spelled out: sectors 12..18 needed, 12..19 erased */
	{
		struct esp_proto_sectors got;
		esp_proto_rom_erased(0xC000, esp_proto_erase_size(0xC000, 0x7000), &got);
		assert_int_equal(got.first, 12);
		assert_int_equal(got.count, 8);
	}
}

static void test_erase_plan_init_data_odd_case(void **state)
{
	struct esp_proto_erase_plan p;

	(void)state;
	/* esp_init_data_default.bin, one sector at 0x3FC000 on a 4 MB chip:
	 * per our model the ROM also erases 0x3FD000 (RF cal lives at 0x3FB000,
	 * system params at 0x3FD000..): the driver must warn. */
	assert_int_equal(esp_proto_erase_plan(0x3FC000, 0x1000, 4u << 20, &p, NULL), FW_OK);
	assert_int_equal(p.send_size, 0x1000);
	assert_int_equal(p.needed.first, 0x3FC);
	assert_int_equal(p.needed.count, 1);
	assert_int_equal(p.erased.first, 0x3FC);
	assert_int_equal(p.erased.count, 2);
	assert_int_equal(p.extra_sectors, 1);
	assert_int_equal(p.head_bytes, 0);
	/* two sectors there: exact */
	assert_int_equal(esp_proto_erase_plan(0x3FC000, 0x2000, 4u << 20, &p, NULL), FW_OK);
	assert_int_equal(p.extra_sectors, 0);
	assert_int_equal(p.erased.count, 2);
	/* a big image at 0: exact */
	assert_int_equal(esp_proto_erase_plan(0, 0x65432, 4u << 20, &p, NULL), FW_OK);
	assert_int_equal(p.needed.count, 0x66);
	assert_int_equal(p.erased.count, 0x66);
	assert_int_equal(p.extra_sectors, 0);
}

static void test_erase_plan_guards(void **state)
{
	struct esp_proto_erase_plan p;
	struct fw_err e = { 0 };

	(void)state;
	/* last sector of a 4 MB chip: the extra sector would be past the end */
	assert_int_equal(esp_proto_erase_plan(0x3FF000, 0x1000, 4u << 20, &p, &e), FW_EGUARD);
	assert_int_equal(p.erased.count, 2);
	assert_int_equal(p.extra_sectors, 1);
	assert_non_null(strstr(e.msg, "0x400000"));
	assert_non_null(strstr(e.msg, "boot loader"));
	/* flash size unknown: nothing to compare against */
	assert_int_equal(esp_proto_erase_plan(0x3FF000, 0x1000, 0, &p, NULL), FW_OK);
	/* the write itself past the end */
	assert_int_equal(esp_proto_erase_plan(0x3FF000, 0x2000, 4u << 20, &p, &e), FW_EINVAL);
	assert_non_null(strstr(e.msg, "4096 KB"));
	assert_int_equal(esp_proto_erase_plan(0xFFFFF000u, 0x2000, 0, &p, NULL), FW_EINVAL);
	assert_int_equal(esp_proto_erase_plan(0x1000, 0, 4u << 20, &p, NULL), FW_EINVAL);
	/* unaligned start: the bytes before it in the sector get erased */
	assert_int_equal(esp_proto_erase_plan(0x21800, 0x1000, 4u << 20, &p, NULL), FW_OK);
	assert_int_equal(p.head_bytes, 0x800);
	assert_int_equal(p.needed.first, 0x21);
	assert_int_equal(p.needed.count, 2);
	assert_int_equal(p.erased.count, 2);
}

/* ---- chips ---- */

static void test_chip_table(void **state)
{
	static const struct { uint32_t magic; enum esp_proto_chip chip; uint32_t boot; } t[] = {
		{ 0xFFF0C101u, ESP_CHIP_ESP8266, 0x0 },
		{ 0x00F01D83u, ESP_CHIP_ESP32, 0x1000 },
		{ 0x000007C6u, ESP_CHIP_ESP32S2, 0x1000 },
		{ 0x9u, ESP_CHIP_ESP32S3, 0x0 },
		{ 0x6921506Fu, ESP_CHIP_ESP32C3, 0x0 },
		{ 0x4361606Fu, ESP_CHIP_ESP32C3, 0x0 },
		{ 0x0C21E06Fu, ESP_CHIP_ESP32C2, 0x0 },
		{ 0x2CE0806Fu, ESP_CHIP_ESP32C6, 0x0 },
		{ 0xD7B73E80u, ESP_CHIP_ESP32H2, 0x0 },
		{ 0x0ADDBAD0u, ESP_CHIP_ESP32P4, 0x2000 },
		{ 0x2421606Fu, ESP_CHIP_ESP32C61, 0x0 },
		{ 0x1101406Fu, ESP_CHIP_ESP32C5, 0x2000 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		const struct esp_proto_chip_info *c = esp_proto_chip_by_magic(t[i].magic);

		assert_non_null(c);
		assert_int_equal(c->chip, t[i].chip);
		assert_int_equal(c->bootloader_offset, t[i].boot);
		assert_ptr_equal(esp_proto_chip_info(t[i].chip), c);
	}
	assert_null(esp_proto_chip_by_magic(0x12345678u));
	assert_int_equal(esp_proto_chip_by_magic(0xFFF0C101u)->family, ESP_FAMILY_ESP8266);
	assert_int_equal(esp_proto_chip_by_magic(0xFFF0C101u)->rom, ESP_LOADER_ESP8266_ROM);
	assert_int_equal(esp_proto_chip_by_magic(0x00F01D83u)->rom, ESP_LOADER_ESP32_ROM);
	assert_int_equal(esp_proto_chip_by_magic(0x9u)->rom, ESP_LOADER_LATER_ROM);
	/* by chip id (GET_SECURITY_INFO) */
	assert_int_equal(esp_proto_chip_by_id(5)->chip, ESP_CHIP_ESP32C3);
	assert_int_equal(esp_proto_chip_by_id(25)->chip, ESP_CHIP_ESP32H21);
	assert_int_equal(esp_proto_chip_by_id(28)->bootloader_offset, 0x2000);
	assert_null(esp_proto_chip_by_id(99));
	assert_null(esp_proto_chip_info(ESP_CHIP_UNKNOWN));
}

static void test_esp8266_mac_decode(void **state)
{
	struct esp_proto_esp8266_otp otp = { { 0 } };
	struct esp_proto_esp8266_id id;
	struct fw_err e = { 0 };
	const uint8_t mac1[6] = { 0x18, 0xFE, 0x34, 0xA1, 0xB2, 0xC3 };
	const uint8_t mac2[6] = { 0xAC, 0xD0, 0x74, 0x01, 0x02, 0x03 };
	const uint8_t mac3[6] = { 0x5C, 0xCF, 0x7F, 0x0D, 0x0E, 0x0F };

	(void)state;
	/* MAC1 selector 0 -> 18:FE:34, bytes from MAC1 15..0 and MAC0 31..24 */
	/* (low bits of MAC0 stay clear: bit 4 would mean ESP8285) */
	otp.w[0] = 0xC3120000u;
	otp.w[1] = 0x0000A1B2u;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_true(id.mac_known);
	assert_memory_equal(id.mac, mac1, 6);
	assert_int_equal(id.chip_id, 0xA1B2C3u);
	assert_false(id.esp8285);
	assert_string_equal(id.name, "ESP8266EX");
	/* selector 1 -> AC:D0:74 */
	otp.w[0] = 0x03000000u;
	otp.w[1] = 0x00010102u;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_memory_equal(id.mac, mac2, 6);
	assert_int_equal(id.chip_id, 0x01010203u);
	/* MAC3 != 0 carries the OUI itself */
	otp.w[0] = 0x0F000000u;
	otp.w[1] = 0x00000D0Eu;
	otp.w[3] = 0x005CCF7Fu;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_memory_equal(id.mac, mac3, 6);
	/* unknown selector: no guessing */
	otp.w[3] = 0;
	otp.w[1] = 0x00020D0Eu;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, &e), FW_EPROTO);
	assert_false(id.mac_known);
	assert_non_null(strstr(e.msg, "0x02"));
	assert_int_equal(id.chip_id, 0x020D0E0Fu); /* still filled */
}

static void test_esp8266_otp_set_mac_round_trip(void **state)
{
	const uint8_t macs[4][6] = {
		{ 0x18, 0xFE, 0x34, 0x11, 0x22, 0x33 },
		{ 0xAC, 0xD0, 0x74, 0x44, 0x55, 0x66 },
		{ 0x5C, 0xCF, 0x7F, 0x77, 0x88, 0x99 },
		{ 0x18, 0xFE, 0x34, 0xFF, 0x00, 0xC0 },
	};
	struct esp_proto_esp8266_otp otp;
	struct esp_proto_esp8266_id id;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		memset(&otp, 0, sizeof otp);
		otp.w[0] = 0x00ABCDEFu; /* other bits survive */
		esp_proto_esp8266_otp_set_mac(&otp, macs[i]);
		assert_int_equal(otp.w[0] & 0x00FFFFFFu, 0x00ABCDEFu);
		assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
		assert_memory_equal(id.mac, macs[i], 6);
	}
	/* with ESP8285 size bits in MAC3 the OUI must move into MAC3 */
	memset(&otp, 0, sizeof otp);
	otp.w[0] = 1u << 4;
	otp.w[3] = 1u << 26;
	esp_proto_esp8266_otp_set_mac(&otp, macs[0]);
	assert_int_equal(otp.w[3], (1u << 26) | 0x18FE34u);
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_memory_equal(id.mac, macs[0], 6);
	assert_true(id.esp8285);
	assert_int_equal(id.embedded_flash_mb, 2);
}

static void test_esp8285_detection(void **state)
{
	struct esp_proto_esp8266_otp otp;
	struct esp_proto_esp8266_id id;

	(void)state;
	/* bit 4 alone: 1 MB, N08 */
	memset(&otp, 0, sizeof otp);
	otp.w[0] = 1u << 4;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_true(id.esp8285);
	assert_int_equal(id.embedded_flash_mb, 1);
	assert_false(id.high_temp);
	assert_string_equal(id.name, "ESP8285N08");
	/* + bit 5: high-temperature */
	otp.w[0] |= 1u << 5;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_string_equal(id.name, "ESP8285H08");
	/* bit 4 + bit 122 (MAC3 bit 26): 2 MB */
	otp.w[0] = 1u << 4;
	otp.w[3] = 1u << 26;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_string_equal(id.name, "ESP8285N16");
	/* bit 80 + bit 121: 2 MB */
	memset(&otp, 0, sizeof otp);
	otp.w[2] = 1u << 16;
	otp.w[3] = 1u << 25;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_true(id.esp8285);
	assert_int_equal(id.embedded_flash_mb, 2);
	/* bit 80 + 121 + 122: 4 MB, no specific name */
	otp.w[3] |= 1u << 26;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_int_equal(id.embedded_flash_mb, 4);
	assert_string_equal(id.name, "ESP8285");
	/* bit 123 set: size not decodable */
	otp.w[3] |= 1u << 27;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_int_equal(id.embedded_flash_mb, 0);
	/* bit 5 alone is not an ESP8285 */
	memset(&otp, 0, sizeof otp);
	otp.w[0] = 1u << 5;
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_false(id.esp8285);
	assert_false(id.high_temp);
}

static void test_esp32_mac(void **state)
{
	const uint8_t want[6] = { 0x24, 0x0A, 0xC4, 0xB1, 0xD2, 0xE3 };
	uint8_t mac[6];

	(void)state;
	/* word 2 high half is CRC and ignored */
	esp_proto_esp32_mac(0xC4B1D2E3u, 0x9F00240Au, mac);
	assert_memory_equal(mac, want, 6);
}

static void test_crystal(void **state)
{
	struct esp_proto_xtal x;

	(void)state;
	/* real trace: divider 0x1C4 at 115200 on an ESP8266 -> 26 MHz */
	esp_proto_xtal(ESP_FAMILY_ESP8266, 0x1C4, 115200, &x);
	assert_int_equal(x.mhz, 26);
	assert_true(x.plausible);
	assert_in_range(x.estimate_khz, 26000, 26100);
	/* upper bits of the register are not part of the divider */
	esp_proto_xtal(ESP_FAMILY_ESP8266, 0xABC00000u | 0x1C4, 115200, &x);
	assert_int_equal(x.mhz, 26);
	/* ESP8266 with a 40 MHz crystal */
	esp_proto_xtal(ESP_FAMILY_ESP8266, 694, 115200, &x);
	assert_int_equal(x.mhz, 40);
	assert_true(x.plausible);
	/* ESP32: divider 1 */
	esp_proto_xtal(ESP_FAMILY_ESP32, 347, 115200, &x);
	assert_int_equal(x.mhz, 40);
	assert_true(x.plausible);
	/* nonsense divider: normalised, but flagged */
	esp_proto_xtal(ESP_FAMILY_ESP32, 100, 115200, &x);
	assert_false(x.plausible);
}

/* ---- SPI flash ---- */

static void test_jedec_decode(void **state)
{
	static const struct { uint8_t cap; uint32_t kb; } caps[] = {
		{ 0x12, 256 }, { 0x32, 256 }, { 0x13, 512 }, { 0x33, 512 },
		{ 0x14, 1024 }, { 0x34, 1024 }, { 0x15, 2048 }, { 0x35, 2048 },
		{ 0x16, 4096 }, { 0x36, 4096 }, { 0x17, 8192 }, { 0x37, 8192 },
		{ 0x18, 16384 }, { 0x38, 16384 }, { 0x19, 32768 }, { 0x39, 32768 },
		{ 0x1A, 65536 }, { 0x3A, 65536 }, { 0x20, 65536 },
		{ 0x1B, 131072 }, { 0x21, 131072 }, { 0x1C, 262144 }, { 0x22, 262144 },
	};
	struct esp_proto_flash_id id;
	struct fw_err e = { 0 };
	size_t i;

	(void)state;
	/* ef 4016: Winbond, 4 MB (W0 byte 0 = manufacturer) */
	assert_int_equal(esp_proto_jedec_decode(0x001640EFu, &id, NULL), FW_OK);
	assert_int_equal(id.manufacturer, 0xEF);
	assert_int_equal(id.type, 0x40);
	assert_int_equal(id.capacity, 0x16);
	assert_int_equal(id.size, 4u << 20);
	assert_string_equal(id.vendor, "Winbond");
	for (i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		assert_int_equal(esp_proto_jedec_decode((uint32_t)caps[i].cap << 16 | 0x40C8u, &id,
							NULL), FW_OK);
		assert_int_equal(id.size, caps[i].kb * 1024u);
	}
	/* Adesto: density in the low 5 bits of byte 1 */
	assert_int_equal(esp_proto_jedec_decode(0x0001841Fu, &id, NULL), FW_OK);
	assert_int_equal(id.size, 512u << 10);
	assert_string_equal(id.vendor, "Adesto");
	assert_int_equal(esp_proto_jedec_decode(0x0001891Fu, &id, NULL), FW_OK);
	assert_int_equal(id.size, 16u << 20);
	assert_int_equal(esp_proto_jedec_decode(0x0001831Fu, &id, NULL), FW_OK);
	assert_int_equal(id.size, 0);
	/* unknown capacity: no silent default */
	assert_int_equal(esp_proto_jedec_decode(0x001140EFu, &id, NULL), FW_OK);
	assert_int_equal(id.size, 0);
	assert_int_equal(esp_proto_jedec_decode(0x00164077u, &id, NULL), FW_OK);
	assert_string_equal(id.vendor, "unknown vendor");
	/* flash not answering */
	assert_int_equal(esp_proto_jedec_decode(0x00FFFFFFu, &id, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "does not answer"));
	assert_non_null(strstr(e.msg, "FFFFFF"));
	assert_int_equal(esp_proto_jedec_decode(0xAB000000u, &id, &e), FW_EPROTO);
	assert_non_null(strstr(e.msg, "000000"));
}

static void test_spi_rdid_sequence_esp8266(void **state)
{
	struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
	struct esp_proto_spi_cmd c;
	size_t n = 0;
	const struct esp_proto_spi_regs *regs = esp_proto_spi_regs(ESP_FAMILY_ESP8266);

	(void)state;
	assert_int_equal(regs->base, 0x60000200u);
	assert_int_equal(regs->user, 0x6000021Cu);
	assert_int_equal(regs->w0, 0x60000240u);
	esp_proto_spi_rdid(&c);
	assert_int_equal(esp_proto_spi_program(ESP_FAMILY_ESP8266, &c, w, &n, NULL), FW_OK);
	/* the observed sequence: USER1, USER, USER2, W0, CMD */
	assert_int_equal(n, 5);
	assert_int_equal(w[0].addr, 0x60000220u);
	assert_int_equal(w[0].value, 23u << 8);
	assert_int_equal(w[1].addr, 0x6000021Cu);
	assert_int_equal(w[1].value, (1u << 31) | (1u << 28));
	assert_int_equal(w[2].addr, 0x60000224u);
	assert_int_equal(w[2].value, (7u << 28) | 0x9F);
	assert_int_equal(w[3].addr, 0x60000240u);
	assert_int_equal(w[3].value, 0);
	assert_int_equal(w[4].addr, 0x60000200u);
	assert_int_equal(w[4].value, 1u << 18);
	assert_int_equal(w[4].mask, 0xFFFFFFFFu);
}

static void test_spi_rdid_sequence_esp32(void **state)
{
	struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
	struct esp_proto_spi_cmd c;
	size_t n = 0;

	(void)state;
	esp_proto_spi_rdid(&c);
	assert_int_equal(esp_proto_spi_program(ESP_FAMILY_ESP32, &c, w, &n, NULL), FW_OK);
	assert_int_equal(n, 5);
	assert_int_equal(w[0].addr, 0x3FF4202Cu); /* MISO_DLEN */
	assert_int_equal(w[0].value, 23);
	assert_int_equal(w[1].addr, 0x3FF4201Cu);
	assert_int_equal(w[2].addr, 0x3FF42024u);
	assert_int_equal(w[3].addr, 0x3FF42080u);
	assert_int_equal(w[4].addr, 0x3FF42000u);
}

/* The simulator decodes what the driver programmed, register by register. */
static void test_spi_program_decode_round_trip(void **state)
{
	const enum esp_proto_family fams[2] = { ESP_FAMILY_ESP8266, ESP_FAMILY_ESP32 };
	struct esp_proto_spi_cmd cmds[4], got;
	size_t f, k, i, n;

	(void)state;
	esp_proto_spi_rdid(&cmds[0]);
	memset(&cmds[1], 0, sizeof cmds[1]);
	cmds[1].cmd = 0x03; /* READ 64 bytes */
	cmds[1].addr_bits = 24;
	cmds[1].addr = 0x123456;
	cmds[1].miso_bits = 512;
	memset(&cmds[2], 0, sizeof cmds[2]);
	cmds[2].cmd = 0x5A; /* SFDP */
	cmds[2].addr_bits = 24;
	cmds[2].addr = 0x30;
	cmds[2].dummy_cycles = 8;
	cmds[2].miso_bits = 32;
	memset(&cmds[3], 0, sizeof cmds[3]);
	cmds[3].cmd = 0x05; /* read status */
	cmds[3].miso_bits = 8;
	for (f = 0; f < 2; f++) {
		const struct esp_proto_spi_regs *regs = esp_proto_spi_regs(fams[f]);

		for (k = 0; k < 4; k++) {
			struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
			uint32_t user = 0, user1 = 0, user2 = 0, miso = 0, addr = 0;

			assert_int_equal(esp_proto_spi_program(fams[f], &cmds[k], w, &n, NULL), FW_OK);
			assert_true(n <= ESP_SPI_WRITES_MAX);
			/* CMD_USR last, after everything else is set */
			assert_int_equal(w[n - 1].addr, regs->cmd);
			assert_int_equal(w[n - 1].value, ESP_SPI_CMD_USR);
			for (i = 0; i < n; i++) {
				if (w[i].addr == regs->user) user = w[i].value;
				else if (w[i].addr == regs->user1) user1 = w[i].value;
				else if (w[i].addr == regs->user2) user2 = w[i].value;
				else if (regs->miso_dlen && w[i].addr == regs->miso_dlen) miso = w[i].value;
				else if (w[i].addr == regs->addr) addr = w[i].value;
			}
			if (cmds[k].addr_bits == 24)
				assert_int_equal(addr, cmds[k].addr << 8); /* top bits */
			assert_int_equal(esp_proto_spi_decode(fams[f], user, user1, user2, miso, addr,
							      &got, NULL), FW_OK);
			assert_int_equal(got.cmd, cmds[k].cmd);
			assert_int_equal(got.addr_bits, cmds[k].addr_bits);
			assert_int_equal(got.addr, cmds[k].addr);
			assert_int_equal(got.dummy_cycles, cmds[k].dummy_cycles);
			assert_int_equal(got.miso_bits, cmds[k].miso_bits);
		}
	}
}

static void test_spi_errors(void **state)
{
	struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
	struct esp_proto_spi_cmd c;
	size_t n;

	(void)state;
	esp_proto_spi_rdid(&c);
	c.miso_bits = 513;
	assert_int_equal(esp_proto_spi_program(ESP_FAMILY_ESP8266, &c, w, &n, NULL), FW_EINVAL);
	c.miso_bits = 8;
	c.addr_bits = 33;
	assert_int_equal(esp_proto_spi_program(ESP_FAMILY_ESP8266, &c, w, &n, NULL), FW_EINVAL);
	/* no command phase */
	assert_int_equal(esp_proto_spi_decode(ESP_FAMILY_ESP8266, ESP_SPI_USR_MISO, 0,
					      (7u << 28) | 0x9F, 0, 0, &c, NULL), FW_EPROTO);
	/* 16-bit command */
	assert_int_equal(esp_proto_spi_decode(ESP_FAMILY_ESP8266, ESP_SPI_USR_COMMAND, 0,
					      (15u << 28) | 0x9F, 0, 0, &c, NULL), FW_EPROTO);
	/* MOSI is not modelled */
	assert_int_equal(esp_proto_spi_decode(ESP_FAMILY_ESP32,
					      ESP_SPI_USR_COMMAND | ESP_SPI_USR_MOSI, 0,
					      (7u << 28) | 0x01, 0, 0, &c, NULL), FW_EUNSUPPORTED);
	/* ESP32 MISO length beyond the data registers */
	assert_int_equal(esp_proto_spi_decode(ESP_FAMILY_ESP32,
					      ESP_SPI_USR_COMMAND | ESP_SPI_USR_MISO, 0,
					      (7u << 28) | 0x03, 1000, 0, &c, NULL), FW_EPROTO);
}

static void test_blocks_helper(void **state)
{
	(void)state;
	assert_int_equal(esp_proto_blocks(0, 0x400), 0);
	assert_int_equal(esp_proto_blocks(1, 0x400), 1);
	assert_int_equal(esp_proto_blocks(0x400, 0x400), 1);
	assert_int_equal(esp_proto_blocks(0x401, 0x400), 2);
	assert_int_equal(esp_proto_blocks(0xFFFFFFFFu, 0x400), 0x400000);
	assert_int_equal(esp_proto_blocks(5, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_request_frame_transcript),
		cmocka_unit_test(test_sync_payload_validator),
		cmocka_unit_test(test_read_reg_reply_transcript),
		cmocka_unit_test(test_read_reg_reply_built_by_simulator),
		cmocka_unit_test(test_esp8266_sync_reply_transcript),
		cmocka_unit_test(test_data_command_layout_and_checksum),
		cmocka_unit_test(test_data_command_parse_mirror),
		cmocka_unit_test(test_request_parse_errors),
		cmocka_unit_test(test_request_encode_limits),
		cmocka_unit_test(test_frame_escapes_header_and_payload),
		cmocka_unit_test(test_command_builders),
		cmocka_unit_test(test_begin_parse_mirror),
		cmocka_unit_test(test_write_reg_records),
		cmocka_unit_test(test_response_parse_status_offset),
		cmocka_unit_test(test_response_parse_errors),
		cmocka_unit_test(test_failure_without_result_is_accepted),
		cmocka_unit_test(test_response_match),
		cmocka_unit_test(test_status_layouts_and_messages),
		cmocka_unit_test(test_error_table_complete),
		cmocka_unit_test(test_md5_rom_and_stub),
		cmocka_unit_test(test_result_and_status_lengths),
		cmocka_unit_test(test_op_table_support),
		cmocka_unit_test(test_host_sim_round_trip),
		cmocka_unit_test(test_read_stream_receiver),
		cmocka_unit_test(test_read_stream_sender_window),
		cmocka_unit_test(test_erase_size_table),
		cmocka_unit_test(test_rom_erase_model_matches_description),
		cmocka_unit_test(test_compensation_plus_model_exact),
		cmocka_unit_test(test_erase_plan_init_data_odd_case),
		cmocka_unit_test(test_erase_plan_guards),
		cmocka_unit_test(test_chip_table),
		cmocka_unit_test(test_esp8266_mac_decode),
		cmocka_unit_test(test_esp8266_otp_set_mac_round_trip),
		cmocka_unit_test(test_esp8285_detection),
		cmocka_unit_test(test_esp32_mac),
		cmocka_unit_test(test_crystal),
		cmocka_unit_test(test_jedec_decode),
		cmocka_unit_test(test_spi_rdid_sequence_esp8266),
		cmocka_unit_test(test_spi_rdid_sequence_esp32),
		cmocka_unit_test(test_spi_program_decode_round_trip),
		cmocka_unit_test(test_spi_errors),
		cmocka_unit_test(test_blocks_helper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
