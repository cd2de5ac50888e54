/* Espressif ROM serial loader protocol, pure core (no I/O).
 *
 * Both directions are covered so the ESP driver and flashwise-sim agree on
 * every byte: the host builds requests and parses responses, the simulated
 * ROM parses requests and builds responses. Packets here are unescaped; SLIP
 * framing is slip.h (esp_proto_*_frame() do both in one step).
 *
 * Facts come from /work/shared/reference/esp-rom-protocol.md (section numbers
 * below refer to it). All multi-byte wire fields are little-endian. */
#ifndef FLASHWISE_ESP_PROTO_H
#define FLASHWISE_ESP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

/* ---- opcodes (section 4) ---- */

enum esp_proto_op {
	ESP_OP_FLASH_BEGIN       = 0x02,
	ESP_OP_FLASH_DATA        = 0x03,
	ESP_OP_FLASH_END         = 0x04,
	ESP_OP_MEM_BEGIN         = 0x05,
	ESP_OP_MEM_END           = 0x06,
	ESP_OP_MEM_DATA          = 0x07,
	ESP_OP_SYNC              = 0x08,
	ESP_OP_WRITE_REG         = 0x09,
	ESP_OP_READ_REG          = 0x0A,
	ESP_OP_SPI_SET_PARAMS    = 0x0B,
	ESP_OP_PIN_READ          = 0x0C, /* seen in sources, unused */
	ESP_OP_SPI_ATTACH        = 0x0D,
	ESP_OP_READ_FLASH_SLOW   = 0x0E,
	ESP_OP_CHANGE_BAUDRATE   = 0x0F,
	ESP_OP_FLASH_DEFL_BEGIN  = 0x10,
	ESP_OP_FLASH_DEFL_DATA   = 0x11,
	ESP_OP_FLASH_DEFL_END    = 0x12,
	ESP_OP_SPI_FLASH_MD5     = 0x13,
	ESP_OP_GET_SECURITY_INFO = 0x14,
	/* flasher stub / our RAM helper only */
	ESP_OP_ERASE_FLASH       = 0xD0,
	ESP_OP_ERASE_REGION      = 0xD1,
	ESP_OP_READ_FLASH        = 0xD2,
	ESP_OP_RUN_USER_CODE     = 0xD3,
	ESP_OP_FLASH_ENCRYPT_DATA = 0xD4,
};

/* Who answers on the other end; decides status length, FLASH_BEGIN layout,
 * MD5 format and which opcodes exist. Our ESP8266 RAM helper answers like
 * ESP_LOADER_STUB (2 status bytes). */
enum esp_proto_loader {
	ESP_LOADER_ESP8266_ROM,
	ESP_LOADER_ESP32_ROM,  /* the original ESP32 only */
	ESP_LOADER_LATER_ROM,  /* ESP32-S2 and every later chip's ROM */
	ESP_LOADER_STUB,       /* a flasher stub or our RAM helper */
};

/* Support bits for esp_proto_op_info.support. */
#define ESP_SUP_ESP8266_ROM 0x1u
#define ESP_SUP_ESP32_ROM   0x2u
#define ESP_SUP_LATER_ROM   0x4u
#define ESP_SUP_STUB        0x8u

struct esp_proto_op_info {
	uint8_t op;
	const char *name;   /* "FLASH_BEGIN" */
	const char *what;   /* "start a flash write", for messages */
	unsigned support;   /* ESP_SUP_* */
	bool checksummed;   /* *_DATA commands carry the 0xEF XOR checksum */
};

/* NULL for an opcode not in the table. */
const struct esp_proto_op_info *esp_proto_op_info(uint8_t op);
/* "FLASH_BEGIN"; "unknown command" for opcodes not in the table. */
const char *esp_proto_op_name(uint8_t op);
bool esp_proto_supports(enum esp_proto_loader l, uint8_t op);

/* ---- sizes and fixed values ---- */

#define ESP_PROTO_HDR_LEN       8       /* direction, op, size, checksum/value */
#define ESP_PROTO_DATA_HDR_LEN  16      /* size, seq, 0, 0 before a data block */
#define ESP_PROTO_CHECKSUM_SEED 0xEFu
#define ESP_PROTO_SECTOR        0x1000u /* flash erase sector */
#define ESP_PROTO_BLOCK64       0x10000u
#define ESP_PROTO_ROM_WRITE_BLOCK  0x400u  /* FLASH_DATA block, ROM loaders */
#define ESP_PROTO_STUB_WRITE_BLOCK 0x4000u /* FLASH_DATA block, stub */
#define ESP_PROTO_MEM_BLOCK     0x1800u /* MEM_DATA block */
#define ESP_PROTO_READ_SLOW_LEN 64u     /* READ_FLASH_SLOW reply data */
#define ESP_PROTO_SYNC_LEN      36u
#define ESP_PROTO_SYNC_VALUE    0x20120707u /* value field of a ROM's SYNC reply */
/* Largest packet either side sends: a stub-sized FLASH_DATA. Size SLIP
 * decoder storage with this. */
#define ESP_PROTO_PACKET_MAX (ESP_PROTO_HDR_LEN + ESP_PROTO_DATA_HDR_LEN + \
			      ESP_PROTO_STUB_WRITE_BLOCK)
/* The fixed part of any request payload fits here (WRITE_REG: 4 records). */
#define ESP_PROTO_HEAD_MAX 64
#define ESP_PROTO_WRITE_REG_MAX 4

/* FLASH_END / FLASH_DEFL_END word. */
#define ESP_PROTO_END_REBOOT   0u /* the chip reboots */
#define ESP_PROTO_END_RUN_USER 1u /* leave the loader and run the app, no reset */

/* 8-bit checksum of a data block: 0xEF XOR every byte. It protects only the
 * serial transfer, never the flash contents. */
uint8_t esp_proto_checksum(const uint8_t *data, size_t n);
/* ceil(size / block) */
uint32_t esp_proto_blocks(uint32_t size, uint32_t block);

/* ---- requests ---- */

/* A request: 8-byte header + head[0..head_len) + data[0..data_len). Builders
 * put the fixed words in head and point data at the caller's block (not
 * copied: keep it alive until encoded). esp_proto_request_parse() sets
 * head_len = 0 and points data at the whole payload. */
struct esp_proto_req {
	uint8_t op;
	uint32_t checksum;            /* header checksum field (data commands) */
	uint8_t head[ESP_PROTO_HEAD_MAX];
	size_t head_len;
	const uint8_t *data;
	size_t data_len;
};

size_t esp_proto_request_len(const struct esp_proto_req *r); /* 8 + payload */
/* Raw packet into out[0..cap). FW_EINVAL if it does not fit or the payload
 * exceeds the 16-bit size field. */
int esp_proto_request_encode(const struct esp_proto_req *r, uint8_t *out,
			     size_t cap, size_t *out_len, struct fw_err *e);
/* SLIP-framed packet appended to wire (check strbuf_failed for memory). */
int esp_proto_request_frame(const struct esp_proto_req *r, struct strbuf *wire,
			    struct fw_err *e);
/* Simulator side: one unescaped frame -> request. FW_EPROTO if shorter than
 * a header, direction is not 0 or the size field disagrees with the frame. */
int esp_proto_request_parse(const uint8_t *pkt, size_t n,
			    struct esp_proto_req *r, struct fw_err *e);
size_t esp_proto_request_payload_len(const struct esp_proto_req *r);
/* Payload byte-wise access across head and data (for parsers and tests). */
int esp_proto_request_word(const struct esp_proto_req *r, size_t index,
			   uint32_t *w, struct fw_err *e);

/* Payload-less request (ERASE_FLASH, RUN_USER_CODE, GET_SECURITY_INFO). */
void esp_proto_req_empty(struct esp_proto_req *r, uint8_t op);
/* Any request made of 32-bit words (n <= ESP_PROTO_HEAD_MAX / 4). */
int esp_proto_req_words(struct esp_proto_req *r, uint8_t op,
			const uint32_t *w, size_t n, struct fw_err *e);

/* SYNC: 07 07 12 20 then 32 x 0x55 (the 0x55 run lets the ROM auto-baud). */
void esp_proto_req_sync(struct esp_proto_req *r);
bool esp_proto_sync_payload_ok(const uint8_t *p, size_t n);

/* FLASH_BEGIN, MEM_BEGIN and FLASH_DEFL_BEGIN share one layout. */
struct esp_proto_begin {
	uint32_t size;        /* FLASH: erase size (ESP8266 ROM: from
	                       * esp_proto_erase_size!); MEM: total size;
	                       * DEFL: uncompressed size (ROM: rounded up to a
	                       * whole number of blocks, stub: exact) */
	uint32_t blocks;      /* number of *_DATA packets that follow */
	uint32_t block_size;
	uint32_t offset;      /* flash offset or RAM address */
	bool encrypted_word;  /* send the 5th "encrypted write" word */
	uint32_t encrypted;
};
/* Whether FLASH_BEGIN/FLASH_DEFL_BEGIN carries the 5th word for loader l. */
bool esp_proto_begin_has_encrypted_word(enum esp_proto_loader l);
int esp_proto_req_flash_begin(struct esp_proto_req *r, const struct esp_proto_begin *b,
			      struct fw_err *e);
int esp_proto_req_mem_begin(struct esp_proto_req *r, const struct esp_proto_begin *b,
			    struct fw_err *e);
int esp_proto_req_flash_defl_begin(struct esp_proto_req *r,
				   const struct esp_proto_begin *b, struct fw_err *e);
/* Simulator: 4 or 5 words (MEM_BEGIN: exactly 4). */
int esp_proto_parse_begin(const struct esp_proto_req *r, struct esp_proto_begin *b,
			  struct fw_err *e);

/* FLASH_DATA, MEM_DATA, FLASH_DEFL_DATA: header (len, seq, 0, 0) + block,
 * checksum field = esp_proto_checksum(block). The block is not copied and
 * not padded: uncompressed flash writes must pad the last block with 0xFF
 * to the block size themselves. */
int esp_proto_req_data(struct esp_proto_req *r, uint8_t op, uint32_t seq,
		       const uint8_t *block, size_t n, struct fw_err *e);
struct esp_proto_data {
	uint32_t len;         /* word 0 */
	uint32_t seq;         /* word 1 */
	const uint8_t *data;  /* len bytes */
	uint8_t checksum;     /* computed over data */
};
/* Simulator: FW_EPROTO for a malformed header or a length that disagrees
 * with the payload; FW_EINTEGRITY (d filled) if the checksum field does not
 * match the data (the ROM answers 0x07, the stub 0xC1). */
int esp_proto_parse_data(const struct esp_proto_req *r, struct esp_proto_data *d,
			 struct fw_err *e);

/* FLASH_END / FLASH_DEFL_END: one word, ESP_PROTO_END_*. */
void esp_proto_req_flash_end(struct esp_proto_req *r, uint32_t how);
void esp_proto_req_flash_defl_end(struct esp_proto_req *r, uint32_t how);
/* MEM_END: (no-execute flag, entry); the flag is set when entry is 0. */
void esp_proto_req_mem_end(struct esp_proto_req *r, uint32_t entry);

void esp_proto_req_read_reg(struct esp_proto_req *r, uint32_t addr);

struct esp_proto_reg_write {
	uint32_t addr, value, mask, delay_us;
};
/* WRITE_REG with n records (1..ESP_PROTO_WRITE_REG_MAX). Whether the
 * ESP8266 ROM honours more than one record is unverified: send one. */
int esp_proto_req_write_reg(struct esp_proto_req *r,
			    const struct esp_proto_reg_write *w, size_t n,
			    struct fw_err *e);
int esp_proto_parse_write_reg(const struct esp_proto_req *r,
			      struct esp_proto_reg_write *w, size_t max, size_t *n,
			      struct fw_err *e);

/* SPI_SET_PARAMS: id 0, total size, 64 KB block, 4 KB sector, 256 B page,
 * status mask 0xFFFF. Not on the ESP8266 ROM. */
void esp_proto_req_spi_set_params(struct esp_proto_req *r, uint32_t total_size);
/* SPI_ATTACH: pins word (0 = default SPI pins); ROM loaders take a second
 * word (is_legacy 0 + 3 zero bytes), the stub only the first. */
void esp_proto_req_spi_attach(struct esp_proto_req *r, enum esp_proto_loader l,
			      uint32_t pins);
/* CHANGE_BAUDRATE: (new, old); old must be 0 when a ROM answers. */
void esp_proto_req_change_baud(struct esp_proto_req *r, enum esp_proto_loader l,
			       uint32_t new_baud, uint32_t old_baud);
/* SPI_FLASH_MD5: (addr, size, 0, 0). */
void esp_proto_req_flash_md5(struct esp_proto_req *r, uint32_t addr,
			     uint32_t size);
/* READ_FLASH_SLOW (ESP32-family ROMs): len 1..64. */
int esp_proto_req_read_flash_slow(struct esp_proto_req *r, uint32_t addr,
				  uint32_t len, struct fw_err *e);
/* Stub/helper ERASE_REGION: offset and size multiples of 4096, size > 0. */
int esp_proto_req_erase_region(struct esp_proto_req *r, uint32_t offset,
			       uint32_t size, struct fw_err *e);
/* Stub/helper READ_FLASH: (offset, length, packet size, max in flight). */
int esp_proto_req_read_flash(struct esp_proto_req *r, uint32_t offset,
			     uint32_t len, uint32_t packet_size,
			     uint32_t max_inflight, struct fw_err *e);

/* ---- responses ---- */

#define ESP_PROTO_RESULT_REST ((size_t)-1) /* result = all but the status */

/* One struct for both directions. Parsing fills every field (result points
 * into the packet); building reads op, value, result, status, status_len. */
struct esp_proto_resp {
	uint8_t op;
	uint32_t value;          /* READ_REG: the register; SYNC: non-zero=ROM */
	const uint8_t *result;   /* result bytes before the status */
	size_t result_len;
	uint8_t status[4];       /* as on the wire; [0]=0 means ok */
	size_t status_len;       /* 2 (ESP8266 ROM, stub) or 4 (ESP32 ROMs) */
	size_t size;             /* parse: the size field */
	size_t trailing;         /* parse: bytes after the status (ignored) */
};

size_t esp_proto_status_len(enum esp_proto_loader l);
/* Result bytes that precede the status for op when loader l answers: MD5 32
 * (ROM, ASCII hex) or 16 (stub, raw), READ_FLASH_SLOW 64,
 * GET_SECURITY_INFO ESP_PROTO_RESULT_REST, everything else 0. */
size_t esp_proto_result_len(uint8_t op, enum esp_proto_loader l);

/* Host side: one unescaped frame -> response. The status sits right after
 * result_len bytes (later bytes are ignored, as esptool 4.9+ does); a reply
 * that carries only a failing status and no result is accepted too.
 * FW_EPROTO for a short frame, direction != 1, a size field that disagrees
 * with the frame, or too few bytes for result + status. The status itself
 * is not judged here: see esp_proto_response_check(). */
int esp_proto_response_parse(const uint8_t *pkt, size_t n, size_t result_len,
			     size_t status_len, struct esp_proto_resp *r,
			     struct fw_err *e);

/* How a received frame relates to the request the host is waiting for
 * (section 2, "matching responses"). */
enum esp_proto_match {
	ESP_MATCH_NOT_RESPONSE, /* < 8 bytes or direction != 1: ignore */
	ESP_MATCH_OTHER,        /* a response for another opcode: ignore
	                         * (e.g. surplus SYNC replies) */
	ESP_MATCH_UNSUPPORTED,  /* another opcode with status "invalid
	                         * message" (0x05): command not supported */
	ESP_MATCH_YES,
};
enum esp_proto_match esp_proto_response_match(const uint8_t *pkt, size_t n,
					      uint8_t op);

bool esp_proto_response_ok(const struct esp_proto_resp *r);
/* The two status bytes as esptool prints them: 0x0107, 0xC100. */
uint16_t esp_proto_status_code(const struct esp_proto_resp *r);
/* The failure reason whatever the layout: ROM {1, reason} -> reason, stub
 * {code, 0} -> code; 0 when the status is ok. */
uint8_t esp_proto_status_reason(const struct esp_proto_resp *r);
/* FW_OK, or an error naming the command, the status and what the
 * technician can do (e.g. 0x07 -> FW_EINTEGRITY "checksum mismatch: ..."). */
int esp_proto_response_check(const struct esp_proto_resp *r, struct fw_err *e);

/* Simulator side. init: ok status of the right length for l, no result. */
void esp_proto_response_init(struct esp_proto_resp *r, uint8_t op,
			     enum esp_proto_loader l);
/* Sets a failing status in l's layout (ROM {1, code}, stub {code, 0}). */
void esp_proto_response_fail(struct esp_proto_resp *r, enum esp_proto_loader l,
			     uint8_t code);
int esp_proto_response_encode(const struct esp_proto_resp *r, uint8_t *out,
			      size_t cap, size_t *out_len, struct fw_err *e);
int esp_proto_response_frame(const struct esp_proto_resp *r,
			     struct strbuf *wire, struct fw_err *e);

/* ---- status / error codes (section 3) ---- */

/* Message for a ROM reason (0x00-0x0F, 0x64-0x69) or stub code (0xC0-0xC9,
 * 0xFF); never NULL (unknown codes get a generic text). */
const char *esp_proto_error_text(uint8_t code);
/* The fw_rc a device error maps to (FW_EINTEGRITY for checksum errors,
 * FW_EUNSUPPORTED for unknown commands, FW_EVERIFY for flash write errors,
 * FW_EPROTO otherwise). */
int esp_proto_error_rc(uint8_t code);

/* ---- special results and frames ---- */

/* SYNC reply from a running stub has value 0, from a ROM non-zero. */
bool esp_proto_sync_reply_from_stub(const struct esp_proto_resp *r);

/* SPI_FLASH_MD5 result: 32 ASCII hex chars (ROM) or 16 raw bytes (stub). */
int esp_proto_md5_parse(const struct esp_proto_resp *r, uint8_t md5[16],
			struct fw_err *e);
/* Simulator: writes the result bytes for loader l into out (32 or 16 bytes
 * used), returns the length. */
size_t esp_proto_md5_encode(enum esp_proto_loader l, const uint8_t md5[16],
			    uint8_t out[32]);

struct esp_proto_security_info {
	uint32_t flags;
	uint8_t flash_crypt_cnt;
	uint8_t key_purposes[7];
	bool has_chip_id;       /* false for the 12-byte ESP32-S2 reply */
	uint32_t chip_id;
	uint32_t api_version;
};
int esp_proto_security_info_parse(const struct esp_proto_resp *r,
				  struct esp_proto_security_info *s,
				  struct fw_err *e);

/* READ_FLASH (stub/helper) stream: after the normal response the device
 * sends raw frames of packet_size bytes (the last one may be shorter); the
 * host acks each with a 4-byte LE total of bytes received; at most
 * max_inflight packets may be unacked; finally a 16-byte raw MD5 frame of
 * everything sent. The same struct serves the receiver (host) and the
 * sender (simulator/helper). */
struct esp_proto_read_stream {
	uint32_t length, packet_size, max_inflight;
	uint32_t received; /* receiver: bytes accepted */
	uint32_t sent;     /* sender: bytes sent */
	uint32_t acked;    /* sender: highest total acknowledged */
};
int esp_proto_read_stream_init(struct esp_proto_read_stream *s, uint32_t length,
			       uint32_t packet_size, uint32_t max_inflight,
			       struct fw_err *e);
/* Receiver: size the next data frame must have (0 once all data is in). */
uint32_t esp_proto_read_stream_expect(const struct esp_proto_read_stream *s);
/* Receiver: accepts one data frame and writes the ack frame to send.
 * FW_EPROTO for a frame of the wrong size (a short frame before the end
 * means bytes were lost) or data after the end. */
int esp_proto_read_stream_take(struct esp_proto_read_stream *s, size_t frame_len,
			       uint8_t ack[4], struct fw_err *e);
bool esp_proto_read_stream_done(const struct esp_proto_read_stream *s);
/* Receiver: the trailer must be exactly 16 bytes and come after all data. */
int esp_proto_read_stream_digest(const struct esp_proto_read_stream *s,
				 const uint8_t *frame, size_t n,
				 uint8_t md5[16], struct fw_err *e);
/* Sender: length of the next packet it may send now (0 = wait for an ack or
 * all sent). */
uint32_t esp_proto_read_stream_next(const struct esp_proto_read_stream *s);
void esp_proto_read_stream_sent(struct esp_proto_read_stream *s, uint32_t n);
/* Sender: parses an ack frame; FW_EPROTO if not 4 bytes, going backwards or
 * acknowledging more than was sent. */
int esp_proto_read_stream_ack(struct esp_proto_read_stream *s, const uint8_t *frame,
			      size_t n, struct fw_err *e);
void esp_proto_read_stream_ack_encode(uint32_t total, uint8_t ack[4]);

/* ---- ESP8266 ROM erase-size bug (section 5.3) ---- */

struct esp_proto_sectors {
	uint32_t first; /* sector number (address / 4096) */
	uint32_t count;
};

/* The erase size to put in FLASH_BEGIN on the ESP8266 ROM so that it erases
 * the sectors [offset, offset + size) needs. With N needed sectors and
 * head = min(N, sectors to the next 64 KB boundary): N < 2*head -> ceil(N/2)
 * sectors, else N - head. size 0 gives 0 (FLASH_BEGIN(0) only attaches). */
uint32_t esp_proto_erase_size(uint32_t offset, uint32_t size);

/* Our model of what the ESP8266 ROM really erases for FLASH_BEGIN(sent_size,
 * offset): M = sectors in sent_size from the start sector, head = sectors to
 * the next 64 KB boundary. Inside one 64 KB block (M <= head) it erases 2*M
 * sectors; crossing a boundary M + head. Always contiguous from the start
 * sector. The simulator erases exactly this; a driver uses it to warn. With
 * compensation the result is exact except for an odd N < 2*head (every odd
 * N inside one block, and e.g. 7 sectors at 0xC000 across a boundary): then
 * the sector after the data is erased too. 1 sector at 0x3FC000 also wipes
 * 0x3FD000. (Model inferred from esptool#33, unverified on hardware.) */
void esp_proto_rom_erased(uint32_t offset, uint32_t sent_size,
			  struct esp_proto_sectors *out);

struct esp_proto_erase_plan {
	uint32_t send_size;        /* for FLASH_BEGIN */
	struct esp_proto_sectors needed; /* sectors the data touches */
	struct esp_proto_sectors erased; /* what the ROM will erase (model) */
	uint32_t extra_sectors;    /* erased beyond needed: warn the user */
	uint32_t head_bytes;       /* bytes before an unaligned offset in its
	                            * sector that get erased: warn too */
};
/* Fills p for writing size bytes at offset on the ESP8266 ROM. FW_EINVAL for
 * size 0 or a range past 4 GB or past flash_size (0 = unknown, not checked);
 * FW_EGUARD (p still filled) when the over-erase would run past the end of
 * flash_size, where the chip may wrap around and wipe address 0. */
int esp_proto_erase_plan(uint32_t offset, uint32_t size, uint32_t flash_size,
			 struct esp_proto_erase_plan *p, struct fw_err *e);

/* ---- chips (section 7) ---- */

#define ESP_PROTO_CHIP_MAGIC_ADDR  0x40001000u
#define ESP_PROTO_ESP8266_OTP_MAC0 0x3FF00050u
#define ESP_PROTO_ESP8266_OTP_MAC1 0x3FF00054u
#define ESP_PROTO_ESP8266_OTP_MAC2 0x3FF00058u
#define ESP_PROTO_ESP8266_OTP_MAC3 0x3FF0005Cu
#define ESP_PROTO_ESP8266_UART_CLKDIV 0x60000014u
#define ESP_PROTO_ESP32_UART_CLKDIV   0x3FF40014u
#define ESP_PROTO_ESP32_EFUSE_MAC_W1  0x3FF5A004u
#define ESP_PROTO_ESP32_EFUSE_MAC_W2  0x3FF5A008u

enum esp_proto_chip {
	ESP_CHIP_UNKNOWN,
	ESP_CHIP_ESP8266, /* includes the ESP8285, told apart via OTP */
	ESP_CHIP_ESP32,
	ESP_CHIP_ESP32S2,
	ESP_CHIP_ESP32S3,
	ESP_CHIP_ESP32C3,
	ESP_CHIP_ESP32C2,
	ESP_CHIP_ESP32C6,
	ESP_CHIP_ESP32H2,
	ESP_CHIP_ESP32P4,
	ESP_CHIP_ESP32C61,
	ESP_CHIP_ESP32C5,
	ESP_CHIP_ESP32H21,
	ESP_CHIP_ESP32H4,
};

enum esp_proto_family {
	ESP_FAMILY_ESP8266,
	ESP_FAMILY_ESP32, /* the whole ESP32 family */
};

#define ESP_PROTO_MAGIC_MAX 4
#define ESP_PROTO_NO_CHIP_ID (-1)

struct esp_proto_chip_info {
	enum esp_proto_chip chip;
	const char *name;            /* "ESP8266", "ESP32-C3" */
	enum esp_proto_family family;
	enum esp_proto_loader rom;         /* which ROM loader variant it has */
	uint32_t magic[ESP_PROTO_MAGIC_MAX]; /* value at 0x40001000 */
	size_t n_magic;              /* 0: identified by chip id only */
	int image_chip_id;           /* ESP_PROTO_NO_CHIP_ID for ESP8266 */
	uint32_t bootloader_offset;
};

/* NULL when the magic is not known (never guess a chip). Note the table has
 * 0x0 for ESP32-P4: a READ_REG that returns 0 identifies as P4. */
const struct esp_proto_chip_info *esp_proto_chip_by_magic(uint32_t magic);
/* GET_SECURITY_INFO chip id -> chip; NULL when unknown. */
const struct esp_proto_chip_info *esp_proto_chip_by_id(uint32_t chip_id);
const struct esp_proto_chip_info *esp_proto_chip_info(enum esp_proto_chip chip);

/* ESP8266 OTP words as read at 0x3FF00050/54/58/5C. */
struct esp_proto_esp8266_otp {
	uint32_t w[4]; /* w[0] = MAC0 @0x50 ... w[3] = MAC3 @0x5C */
};

struct esp_proto_esp8266_id {
	bool mac_known;          /* false: OUI byte not one we know */
	uint8_t mac[6];
	uint32_t chip_id;        /* SDK system_get_chip_id() */
	bool esp8285;            /* embedded flash */
	unsigned embedded_flash_mb; /* ESP8285: 1, 2 or 4; 0 = not decodable */
	bool high_temp;          /* ESP8285 "H" variant */
	const char *name;        /* "ESP8266EX", "ESP8285N08", "ESP8285H16",
	                          * "ESP8285" */
};
/* Decodes MAC, chip id and variant. FW_EPROTO (id still filled, mac_known
 * false) when the OUI cannot be determined. */
int esp_proto_esp8266_decode(const struct esp_proto_esp8266_otp *otp,
			     struct esp_proto_esp8266_id *id, struct fw_err *e);
/* Simulator: stores mac in the OTP words (OUI 18:FE:34 and AC:D0:74 via the
 * MAC1 selector byte, any other OUI via MAC3). Other bits are kept. */
void esp_proto_esp8266_otp_set_mac(struct esp_proto_esp8266_otp *otp,
				   const uint8_t mac[6]);

/* ESP32 MAC from eFuse words 1 (0x3FF5A004) and 2 (0x3FF5A008). */
void esp_proto_esp32_mac(uint32_t w1, uint32_t w2, uint8_t mac[6]);

/* Crystal from the UART clock divider register and the baud rate in use. */
struct esp_proto_xtal {
	unsigned estimate_khz;
	unsigned mhz;    /* normalised: 26 or 40 */
	bool plausible;  /* estimate within 1 MHz of mhz */
};
void esp_proto_xtal(enum esp_proto_family f, uint32_t uart_clkdiv_reg,
		    uint32_t baud, struct esp_proto_xtal *x);

/* ---- SPI flash (section 8) ---- */

struct esp_proto_flash_id {
	uint8_t manufacturer, type, capacity;
	uint32_t size;          /* bytes; 0 = capacity code not known */
	const char *vendor;     /* "Winbond" or "unknown vendor" */
};
/* w0 = SPI W0 after RDID (byte 0 = manufacturer). FW_EPROTO when the ID is
 * 0xFFFFFF or 0x000000: the flash chip is not answering. An unknown
 * capacity code is FW_OK with size 0: the caller decides, we never assume. */
int esp_proto_jedec_decode(uint32_t w0, struct esp_proto_flash_id *id,
			   struct fw_err *e);

/* SPI controller registers used for raw "user" commands. mosi_dlen and
 * miso_dlen are 0 on the ESP8266 (lengths live in USER1 there). */
struct esp_proto_spi_regs {
	uint32_t base, cmd, addr, user, user1, user2, mosi_dlen, miso_dlen, w0;
};
#define ESP_SPI_CMD_USR      (1u << 18) /* start user command, self-clearing */
#define ESP_SPI_USR_COMMAND  (1u << 31)
#define ESP_SPI_USR_ADDR     (1u << 30)
#define ESP_SPI_USR_DUMMY    (1u << 29)
#define ESP_SPI_USR_MISO     (1u << 28)
#define ESP_SPI_USR_MOSI     (1u << 27)
#define ESP8266_SPI_USR1_ADDR_SHIFT 26
#define ESP8266_SPI_USR1_MOSI_SHIFT 17
#define ESP8266_SPI_USR1_MISO_SHIFT 8
#define ESP_SPI_USR2_LEN_SHIFT 28
#define ESP_SPI_POLLS        10 /* CMD polls before giving up (esptool) */
#define ESP_SPI_MISO_MAX     512 /* 16 data words */
#define ESP_SPI_WRITES_MAX   8

const struct esp_proto_spi_regs *esp_proto_spi_regs(enum esp_proto_family f);

/* A raw SPI command that reads miso_bits back (RDID, status, SFDP, READ). */
struct esp_proto_spi_cmd {
	uint8_t cmd;
	unsigned addr_bits;    /* 0 = no address phase, else 1..32 */
	uint32_t addr;
	unsigned dummy_cycles; /* 0..256 */
	unsigned miso_bits;    /* 1..ESP_SPI_MISO_MAX */
};
/* The register writes that program and start c, in order (the last one sets
 * ESP_SPI_CMD_USR). The driver first saves USER and USER2, sends these,
 * polls CMD until bit 18 clears (ESP_SPI_POLLS tries), reads W0.. and then
 * restores USER and USER2. */
int esp_proto_spi_program(enum esp_proto_family f, const struct esp_proto_spi_cmd *c,
			  struct esp_proto_reg_write *out, size_t *n,
			  struct fw_err *e);
/* Simulator: decodes the register values at the moment CMD_USR is set back
 * into a command. FW_EPROTO when no command phase / odd command length. */
int esp_proto_spi_decode(enum esp_proto_family f, uint32_t user, uint32_t user1,
			 uint32_t user2, uint32_t miso_dlen, uint32_t addr_reg,
			 struct esp_proto_spi_cmd *c, struct fw_err *e);
/* The RDID (0x9F, 24 bits in) command. */
void esp_proto_spi_rdid(struct esp_proto_spi_cmd *c);

#endif
