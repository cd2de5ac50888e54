#include "esp_proto.h"

#include <string.h>

#include "integrity.h"
#include "slip.h"

/* ---- little-endian helpers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- opcode table ---- */

#define SUP_ROMS   (ESP_SUP_ESP8266_ROM | ESP_SUP_ESP32_ROM | ESP_SUP_LATER_ROM)
#define SUP_ALL    (SUP_ROMS | ESP_SUP_STUB)
#define SUP_NO8266 (ESP_SUP_ESP32_ROM | ESP_SUP_LATER_ROM | ESP_SUP_STUB)

static const struct esp_proto_op_info op_table[] = {
	{ ESP_OP_FLASH_BEGIN, "FLASH_BEGIN", "start a flash write", SUP_ALL, false },
	{ ESP_OP_FLASH_DATA, "FLASH_DATA", "write a flash block", SUP_ALL, true },
	{ ESP_OP_FLASH_END, "FLASH_END", "finish the flash write", SUP_ALL, false },
	{ ESP_OP_MEM_BEGIN, "MEM_BEGIN", "start a RAM upload", SUP_ALL, false },
	{ ESP_OP_MEM_END, "MEM_END", "finish the RAM upload", SUP_ALL, false },
	{ ESP_OP_MEM_DATA, "MEM_DATA", "upload a RAM block", SUP_ALL, true },
	{ ESP_OP_SYNC, "SYNC", "synchronise with the boot loader", SUP_ALL, false },
	{ ESP_OP_WRITE_REG, "WRITE_REG", "write a register", SUP_ALL, false },
	{ ESP_OP_READ_REG, "READ_REG", "read a register", SUP_ALL, false },
	{ ESP_OP_SPI_SET_PARAMS, "SPI_SET_PARAMS", "set the flash parameters", SUP_NO8266, false },
	{ ESP_OP_PIN_READ, "PIN_READ", "read a pin", 0, false },
	{ ESP_OP_SPI_ATTACH, "SPI_ATTACH", "attach the SPI flash", SUP_NO8266, false },
	{ ESP_OP_READ_FLASH_SLOW, "READ_FLASH_SLOW", "read flash",
	  ESP_SUP_ESP32_ROM | ESP_SUP_LATER_ROM, false },
	{ ESP_OP_CHANGE_BAUDRATE, "CHANGE_BAUDRATE", "change the baud rate", SUP_NO8266, false },
	{ ESP_OP_FLASH_DEFL_BEGIN, "FLASH_DEFL_BEGIN", "start a compressed flash write",
	  SUP_NO8266, false },
	{ ESP_OP_FLASH_DEFL_DATA, "FLASH_DEFL_DATA", "write a compressed flash block",
	  SUP_NO8266, true },
	{ ESP_OP_FLASH_DEFL_END, "FLASH_DEFL_END", "finish the compressed flash write",
	  SUP_NO8266, false },
	{ ESP_OP_SPI_FLASH_MD5, "SPI_FLASH_MD5", "compute the MD5 of a flash range",
	  SUP_NO8266, false },
	/* the stub has it on some chips only: ask the chip, treat failure as
	 * "unsupported" */
	{ ESP_OP_GET_SECURITY_INFO, "GET_SECURITY_INFO", "report its security settings",
	  ESP_SUP_LATER_ROM | ESP_SUP_STUB, false },
	{ ESP_OP_ERASE_FLASH, "ERASE_FLASH", "erase the whole flash", ESP_SUP_STUB, false },
	{ ESP_OP_ERASE_REGION, "ERASE_REGION", "erase a flash region", ESP_SUP_STUB, false },
	{ ESP_OP_READ_FLASH, "READ_FLASH", "read flash", ESP_SUP_STUB, false },
	{ ESP_OP_RUN_USER_CODE, "RUN_USER_CODE", "run the application", ESP_SUP_STUB, false },
	{ ESP_OP_FLASH_ENCRYPT_DATA, "FLASH_ENCRYPT_DATA", "write an encrypted flash block",
	  ESP_SUP_STUB, true },
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

const struct esp_proto_op_info *esp_proto_op_info(uint8_t op)
{
	size_t i;

	for (i = 0; i < N_ELEMS(op_table); i++)
		if (op_table[i].op == op)
			return &op_table[i];
	return NULL;
}

const char *esp_proto_op_name(uint8_t op)
{
	const struct esp_proto_op_info *info = esp_proto_op_info(op);

	return info ? info->name : "unknown command";
}

static unsigned loader_bit(enum esp_proto_loader l)
{
	switch (l) {
	case ESP_LOADER_ESP8266_ROM: return ESP_SUP_ESP8266_ROM;
	case ESP_LOADER_ESP32_ROM: return ESP_SUP_ESP32_ROM;
	case ESP_LOADER_LATER_ROM: return ESP_SUP_LATER_ROM;
	case ESP_LOADER_STUB: return ESP_SUP_STUB;
	}
	return 0;
}

bool esp_proto_supports(enum esp_proto_loader l, uint8_t op)
{
	const struct esp_proto_op_info *info = esp_proto_op_info(op);

	return info && (info->support & loader_bit(l));
}

uint8_t esp_proto_checksum(const uint8_t *data, size_t n)
{
	uint8_t c = ESP_PROTO_CHECKSUM_SEED;
	size_t i;

	for (i = 0; i < n; i++)
		c ^= data[i];
	return c;
}

uint32_t esp_proto_blocks(uint32_t size, uint32_t block)
{
	if (block == 0)
		return 0;
	return (uint32_t)(((uint64_t)size + block - 1) / block);
}

/* ---- requests ---- */

size_t esp_proto_request_payload_len(const struct esp_proto_req *r)
{
	return r->head_len + r->data_len;
}

size_t esp_proto_request_len(const struct esp_proto_req *r)
{
	return ESP_PROTO_HDR_LEN + esp_proto_request_payload_len(r);
}

static int request_check(const struct esp_proto_req *r, struct fw_err *e)
{
	if (r->head_len > ESP_PROTO_HEAD_MAX || (r->data_len && !r->data))
		return fw_err_set(e, FW_EINVAL, "esp: malformed %s request",
				  esp_proto_op_name(r->op));
	if (esp_proto_request_payload_len(r) > 0xFFFF)
		return fw_err_set(e, FW_EINVAL,
				  "esp: %s payload of %zu bytes exceeds the 65535-byte packet limit",
				  esp_proto_op_name(r->op),
				  esp_proto_request_payload_len(r));
	return FW_OK;
}

static void request_header(const struct esp_proto_req *r, uint8_t hdr[8])
{
	hdr[0] = 0x00; /* direction: host to chip */
	hdr[1] = r->op;
	put_le16(hdr + 2, (uint16_t)esp_proto_request_payload_len(r));
	put_le32(hdr + 4, r->checksum);
}

int esp_proto_request_encode(const struct esp_proto_req *r, uint8_t *out,
			     size_t cap, size_t *out_len, struct fw_err *e)
{
	size_t need;
	int rc = request_check(r, e);

	if (rc)
		return rc;
	need = esp_proto_request_len(r);
	if (need > cap)
		return fw_err_set(e, FW_EINVAL,
				  "esp: %s packet needs %zu bytes, the buffer has %zu",
				  esp_proto_op_name(r->op), need, cap);
	request_header(r, out);
	if (r->head_len)
		memcpy(out + ESP_PROTO_HDR_LEN, r->head, r->head_len);
	if (r->data_len)
		memcpy(out + ESP_PROTO_HDR_LEN + r->head_len, r->data, r->data_len);
	if (out_len)
		*out_len = need;
	return FW_OK;
}

int esp_proto_request_frame(const struct esp_proto_req *r, struct strbuf *wire,
			    struct fw_err *e)
{
	uint8_t hdr[ESP_PROTO_HDR_LEN];
	int rc = request_check(r, e);

	if (rc)
		return rc;
	request_header(r, hdr);
	slip_append_delim(wire);
	slip_append_escaped(wire, hdr, sizeof hdr);
	slip_append_escaped(wire, r->head, r->head_len);
	if (r->data_len)
		slip_append_escaped(wire, r->data, r->data_len);
	slip_append_delim(wire);
	if (strbuf_failed(wire))
		return fw_err_set(e, FW_ENOMEM, "esp: out of memory framing %s",
				  esp_proto_op_name(r->op));
	return FW_OK;
}

int esp_proto_request_parse(const uint8_t *pkt, size_t n,
			    struct esp_proto_req *r, struct fw_err *e)
{
	size_t size;

	memset(r, 0, sizeof *r);
	if (n < ESP_PROTO_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: command frame of %zu bytes is shorter than the 8-byte header",
				  n);
	if (pkt[0] != 0x00)
		return fw_err_set(e, FW_EPROTO,
				  "esp: frame is not a command (direction byte 0x%02X, expected 0x00)",
				  pkt[0]);
	size = get_le16(pkt + 2);
	if (size != n - ESP_PROTO_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: %s command announces %zu payload bytes but carries %zu",
				  esp_proto_op_name(pkt[1]), size,
				  n - ESP_PROTO_HDR_LEN);
	r->op = pkt[1];
	r->checksum = get_le32(pkt + 4);
	r->data = pkt + ESP_PROTO_HDR_LEN;
	r->data_len = size;
	return FW_OK;
}

/* Payload byte i, wherever it lives (built requests keep the fixed part in
 * head, parsed ones have everything in data). */
static uint8_t payload_byte(const struct esp_proto_req *r, size_t i)
{
	return i < r->head_len ? r->head[i] : r->data[i - r->head_len];
}

static uint32_t payload_le32(const struct esp_proto_req *r, size_t off)
{
	return (uint32_t)payload_byte(r, off) |
	       (uint32_t)payload_byte(r, off + 1) << 8 |
	       (uint32_t)payload_byte(r, off + 2) << 16 |
	       (uint32_t)payload_byte(r, off + 3) << 24;
}

int esp_proto_request_word(const struct esp_proto_req *r, size_t index,
			   uint32_t *w, struct fw_err *e)
{
	size_t len = esp_proto_request_payload_len(r);

	if (index >= len / 4)
		return fw_err_set(e, FW_EPROTO,
				  "esp: %s payload has %zu bytes, word %zu is missing",
				  esp_proto_op_name(r->op), len, index);
	*w = payload_le32(r, index * 4);
	return FW_OK;
}

static void req_start(struct esp_proto_req *r, uint8_t op)
{
	memset(r, 0, sizeof *r);
	r->op = op;
}

static void head_word(struct esp_proto_req *r, uint32_t w)
{
	put_le32(r->head + r->head_len, w);
	r->head_len += 4;
}

void esp_proto_req_empty(struct esp_proto_req *r, uint8_t op)
{
	req_start(r, op);
}

int esp_proto_req_words(struct esp_proto_req *r, uint8_t op,
			const uint32_t *w, size_t n, struct fw_err *e)
{
	size_t i;

	if (n > ESP_PROTO_HEAD_MAX / 4)
		return fw_err_set(e, FW_EINVAL, "esp: %zu words do not fit a %s request",
				  n, esp_proto_op_name(op));
	req_start(r, op);
	for (i = 0; i < n; i++)
		head_word(r, w[i]);
	return FW_OK;
}

static const uint8_t sync_magic[4] = { 0x07, 0x07, 0x12, 0x20 };

void esp_proto_req_sync(struct esp_proto_req *r)
{
	req_start(r, ESP_OP_SYNC);
	memcpy(r->head, sync_magic, sizeof sync_magic);
	memset(r->head + 4, 0x55, ESP_PROTO_SYNC_LEN - 4);
	r->head_len = ESP_PROTO_SYNC_LEN;
}

bool esp_proto_sync_payload_ok(const uint8_t *p, size_t n)
{
	size_t i;

	if (!p || n != ESP_PROTO_SYNC_LEN || memcmp(p, sync_magic, 4) != 0)
		return false;
	for (i = 4; i < n; i++)
		if (p[i] != 0x55)
			return false;
	return true;
}

bool esp_proto_begin_has_encrypted_word(enum esp_proto_loader l)
{
	/* esptool 4.x sends the 5th word only to ROMs newer than the ESP32;
	 * the stub takes 4 (our simulator accepts both). */
	return l == ESP_LOADER_LATER_ROM;
}

static int req_begin(struct esp_proto_req *r, uint8_t op,
		     const struct esp_proto_begin *b, struct fw_err *e)
{
	if (b->block_size == 0 && b->size != 0)
		return fw_err_set(e, FW_EINVAL, "esp: %s with a block size of 0",
				  esp_proto_op_name(op));
	req_start(r, op);
	head_word(r, b->size);
	head_word(r, b->blocks);
	head_word(r, b->block_size);
	head_word(r, b->offset);
	if (b->encrypted_word && op != ESP_OP_MEM_BEGIN)
		head_word(r, b->encrypted);
	return FW_OK;
}

int esp_proto_req_flash_begin(struct esp_proto_req *r,
			      const struct esp_proto_begin *b, struct fw_err *e)
{
	return req_begin(r, ESP_OP_FLASH_BEGIN, b, e);
}

int esp_proto_req_mem_begin(struct esp_proto_req *r,
			    const struct esp_proto_begin *b, struct fw_err *e)
{
	return req_begin(r, ESP_OP_MEM_BEGIN, b, e);
}

int esp_proto_req_flash_defl_begin(struct esp_proto_req *r,
				   const struct esp_proto_begin *b,
				   struct fw_err *e)
{
	return req_begin(r, ESP_OP_FLASH_DEFL_BEGIN, b, e);
}

int esp_proto_parse_begin(const struct esp_proto_req *r,
			  struct esp_proto_begin *b, struct fw_err *e)
{
	size_t len = esp_proto_request_payload_len(r);

	memset(b, 0, sizeof *b);
	if (r->op != ESP_OP_FLASH_BEGIN && r->op != ESP_OP_MEM_BEGIN &&
	    r->op != ESP_OP_FLASH_DEFL_BEGIN)
		return fw_err_set(e, FW_EINVAL, "esp: %s is not a begin command",
				  esp_proto_op_name(r->op));
	if (len != 16 && !(len == 20 && r->op != ESP_OP_MEM_BEGIN))
		return fw_err_set(e, FW_EPROTO,
				  "esp: %s payload of %zu bytes (expected 16%s)",
				  esp_proto_op_name(r->op), len,
				  r->op == ESP_OP_MEM_BEGIN ? "" : " or 20");
	b->size = payload_le32(r, 0);
	b->blocks = payload_le32(r, 4);
	b->block_size = payload_le32(r, 8);
	b->offset = payload_le32(r, 12);
	if (len == 20) {
		b->encrypted_word = true;
		b->encrypted = payload_le32(r, 16);
	}
	return FW_OK;
}

int esp_proto_req_data(struct esp_proto_req *r, uint8_t op, uint32_t seq,
		       const uint8_t *block, size_t n, struct fw_err *e)
{
	const struct esp_proto_op_info *info = esp_proto_op_info(op);

	if (!info || !info->checksummed)
		return fw_err_set(e, FW_EINVAL, "esp: %s is not a data command",
				  esp_proto_op_name(op));
	if (n > 0xFFFF - ESP_PROTO_DATA_HDR_LEN || (n && !block))
		return fw_err_set(e, FW_EINVAL,
				  "esp: %s block of %zu bytes does not fit one packet",
				  info->name, n);
	req_start(r, op);
	head_word(r, (uint32_t)n);
	head_word(r, seq);
	head_word(r, 0);
	head_word(r, 0);
	r->data = block;
	r->data_len = n;
	r->checksum = esp_proto_checksum(block, n);
	return FW_OK;
}

int esp_proto_parse_data(const struct esp_proto_req *r, struct esp_proto_data *d,
			 struct fw_err *e)
{
	const struct esp_proto_op_info *info = esp_proto_op_info(r->op);
	size_t len = esp_proto_request_payload_len(r);

	memset(d, 0, sizeof *d);
	if (!info || !info->checksummed)
		return fw_err_set(e, FW_EINVAL, "esp: %s is not a data command",
				  esp_proto_op_name(r->op));
	if (len < ESP_PROTO_DATA_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: %s payload of %zu bytes is shorter than its 16-byte header",
				  info->name, len);
	/* Data always follows a 16-byte head (built) or sits in data (parsed). */
	if (r->head_len != 0 && r->head_len != ESP_PROTO_DATA_HDR_LEN)
		return fw_err_set(e, FW_EINVAL, "esp: malformed %s request", info->name);
	d->len = payload_le32(r, 0);
	d->seq = payload_le32(r, 4);
	if (d->len != len - ESP_PROTO_DATA_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: %s block %u announces %u bytes but carries %zu",
				  info->name, d->seq, d->len,
				  len - ESP_PROTO_DATA_HDR_LEN);
	d->data = r->head_len ? r->data : r->data + ESP_PROTO_DATA_HDR_LEN;
	d->checksum = esp_proto_checksum(d->data, d->len);
	if (d->checksum != (r->checksum & 0xFF))
		return fw_err_set(e, FW_EINTEGRITY,
				  "esp: %s block %u checksum 0x%02X does not match its data (0x%02X)",
				  info->name, d->seq, (unsigned)(r->checksum & 0xFF),
				  d->checksum);
	return FW_OK;
}

static void req_one(struct esp_proto_req *r, uint8_t op, uint32_t w)
{
	req_start(r, op);
	head_word(r, w);
}

void esp_proto_req_flash_end(struct esp_proto_req *r, uint32_t how)
{
	req_one(r, ESP_OP_FLASH_END, how);
}

void esp_proto_req_flash_defl_end(struct esp_proto_req *r, uint32_t how)
{
	req_one(r, ESP_OP_FLASH_DEFL_END, how);
}

void esp_proto_req_mem_end(struct esp_proto_req *r, uint32_t entry)
{
	/* entry 0 means "do not jump anywhere": the flag word says so. */
	req_one(r, ESP_OP_MEM_END, entry == 0 ? 1 : 0);
	head_word(r, entry);
}

void esp_proto_req_read_reg(struct esp_proto_req *r, uint32_t addr)
{
	req_one(r, ESP_OP_READ_REG, addr);
}

int esp_proto_req_write_reg(struct esp_proto_req *r,
			    const struct esp_proto_reg_write *w, size_t n,
			    struct fw_err *e)
{
	size_t i;

	if (n == 0 || n > ESP_PROTO_WRITE_REG_MAX)
		return fw_err_set(e, FW_EINVAL,
				  "esp: WRITE_REG takes 1 to %d records, not %zu",
				  ESP_PROTO_WRITE_REG_MAX, n);
	req_start(r, ESP_OP_WRITE_REG);
	for (i = 0; i < n; i++) {
		head_word(r, w[i].addr);
		head_word(r, w[i].value);
		head_word(r, w[i].mask);
		head_word(r, w[i].delay_us);
	}
	return FW_OK;
}

int esp_proto_parse_write_reg(const struct esp_proto_req *r,
			      struct esp_proto_reg_write *w, size_t max, size_t *n,
			      struct fw_err *e)
{
	size_t len = esp_proto_request_payload_len(r), i, count;

	*n = 0;
	if (r->op != ESP_OP_WRITE_REG)
		return fw_err_set(e, FW_EINVAL, "esp: %s is not WRITE_REG",
				  esp_proto_op_name(r->op));
	if (len == 0 || len % 16 != 0)
		return fw_err_set(e, FW_EPROTO,
				  "esp: WRITE_REG payload of %zu bytes is not a whole number of 16-byte records",
				  len);
	count = len / 16;
	if (count > max)
		return fw_err_set(e, FW_EPROTO,
				  "esp: WRITE_REG carries %zu records, at most %zu are handled",
				  count, max);
	for (i = 0; i < count; i++) {
		w[i].addr = payload_le32(r, i * 16);
		w[i].value = payload_le32(r, i * 16 + 4);
		w[i].mask = payload_le32(r, i * 16 + 8);
		w[i].delay_us = payload_le32(r, i * 16 + 12);
	}
	*n = count;
	return FW_OK;
}

void esp_proto_req_spi_set_params(struct esp_proto_req *r, uint32_t total_size)
{
	req_one(r, ESP_OP_SPI_SET_PARAMS, 0); /* flash id */
	head_word(r, total_size);
	head_word(r, ESP_PROTO_BLOCK64);
	head_word(r, ESP_PROTO_SECTOR);
	head_word(r, 256);    /* page size */
	head_word(r, 0xFFFF); /* status mask */
}

void esp_proto_req_spi_attach(struct esp_proto_req *r, enum esp_proto_loader l,
			      uint32_t pins)
{
	req_one(r, ESP_OP_SPI_ATTACH, pins);
	if (l != ESP_LOADER_STUB)
		head_word(r, 0); /* is_legacy = 0 and three zero bytes */
}

void esp_proto_req_change_baud(struct esp_proto_req *r, enum esp_proto_loader l,
			       uint32_t new_baud, uint32_t old_baud)
{
	req_one(r, ESP_OP_CHANGE_BAUDRATE, new_baud);
	head_word(r, l == ESP_LOADER_STUB ? old_baud : 0);
}

void esp_proto_req_flash_md5(struct esp_proto_req *r, uint32_t addr,
			     uint32_t size)
{
	req_one(r, ESP_OP_SPI_FLASH_MD5, addr);
	head_word(r, size);
	head_word(r, 0);
	head_word(r, 0);
}

int esp_proto_req_read_flash_slow(struct esp_proto_req *r, uint32_t addr,
				  uint32_t len, struct fw_err *e)
{
	if (len == 0 || len > ESP_PROTO_READ_SLOW_LEN)
		return fw_err_set(e, FW_EINVAL,
				  "esp: READ_FLASH_SLOW reads 1 to 64 bytes, not %u", len);
	req_one(r, ESP_OP_READ_FLASH_SLOW, addr);
	head_word(r, len);
	return FW_OK;
}

int esp_proto_req_erase_region(struct esp_proto_req *r, uint32_t offset,
			       uint32_t size, struct fw_err *e)
{
	if (size == 0 || offset % ESP_PROTO_SECTOR || size % ESP_PROTO_SECTOR)
		return fw_err_set(e, FW_EINVAL,
				  "esp: erase region 0x%X+0x%X is not whole 4 KB sectors",
				  offset, size);
	if ((uint64_t)offset + size > 0x100000000ull)
		return fw_err_set(e, FW_EINVAL,
				  "esp: erase region 0x%X+0x%X runs past 4 GB", offset, size);
	req_one(r, ESP_OP_ERASE_REGION, offset);
	head_word(r, size);
	return FW_OK;
}

int esp_proto_req_read_flash(struct esp_proto_req *r, uint32_t offset,
			     uint32_t len, uint32_t packet_size,
			     uint32_t max_inflight, struct fw_err *e)
{
	if (packet_size == 0 || packet_size > ESP_PROTO_PACKET_MAX || max_inflight == 0)
		return fw_err_set(e, FW_EINVAL,
				  "esp: READ_FLASH packet size %u / %u in flight not usable",
				  packet_size, max_inflight);
	if ((uint64_t)offset + len > 0x100000000ull)
		return fw_err_set(e, FW_EINVAL,
				  "esp: read 0x%X+0x%X runs past 4 GB", offset, len);
	req_one(r, ESP_OP_READ_FLASH, offset);
	head_word(r, len);
	head_word(r, packet_size);
	head_word(r, max_inflight);
	return FW_OK;
}

/* ---- responses ---- */

size_t esp_proto_status_len(enum esp_proto_loader l)
{
	return (l == ESP_LOADER_ESP32_ROM || l == ESP_LOADER_LATER_ROM) ? 4 : 2;
}

size_t esp_proto_result_len(uint8_t op, enum esp_proto_loader l)
{
	switch (op) {
	case ESP_OP_SPI_FLASH_MD5:
		return l == ESP_LOADER_STUB ? 16 : 32;
	case ESP_OP_READ_FLASH_SLOW:
		return ESP_PROTO_READ_SLOW_LEN;
	case ESP_OP_GET_SECURITY_INFO:
		return ESP_PROTO_RESULT_REST;
	default:
		return 0;
	}
}

int esp_proto_response_parse(const uint8_t *pkt, size_t n, size_t result_len,
			     size_t status_len, struct esp_proto_resp *r,
			     struct fw_err *e)
{
	const uint8_t *body = pkt + ESP_PROTO_HDR_LEN;
	const char *name;
	size_t size;

	memset(r, 0, sizeof *r);
	if (status_len != 2 && status_len != 4)
		return fw_err_set(e, FW_EINVAL, "esp: status length %zu (must be 2 or 4)",
				  status_len);
	if (n < ESP_PROTO_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: reply of %zu bytes is shorter than the 8-byte header (bytes were lost on the serial line)",
				  n);
	name = esp_proto_op_name(pkt[1]);
	if (pkt[0] != 0x01)
		return fw_err_set(e, FW_EPROTO,
				  "esp: frame is not a reply (direction byte 0x%02X, expected 0x01)",
				  pkt[0]);
	size = get_le16(pkt + 2);
	if (size != n - ESP_PROTO_HDR_LEN)
		return fw_err_set(e, FW_EPROTO,
				  "esp: reply to %s announces %zu data bytes but carries %zu (bytes were lost or added on the serial line)",
				  name, size, n - ESP_PROTO_HDR_LEN);
	r->op = pkt[1];
	r->value = get_le32(pkt + 4);
	r->size = size;
	r->status_len = status_len;
	if (result_len == ESP_PROTO_RESULT_REST)
		result_len = size >= status_len ? size - status_len : size + 1;
	if (result_len <= size && size - result_len >= status_len) {
		r->result = result_len ? body : NULL;
		r->result_len = result_len;
		memcpy(r->status, body + result_len, status_len);
		r->trailing = size - result_len - status_len;
		return FW_OK;
	}
	/* A loader that fails may send the status alone, without the result
	 * it would have carried: accept that, but only as a failure. */
	if (size == status_len && body[0] != 0) {
		memcpy(r->status, body, status_len);
		return FW_OK;
	}
	memset(r->status, 0, sizeof r->status);
	return fw_err_set(e, FW_EPROTO,
			  "esp: reply to %s has %zu data bytes, expected %zu result + %zu status bytes",
			  name, size,
			  result_len > size ? (size_t)0 : result_len, status_len);
}

enum esp_proto_match esp_proto_response_match(const uint8_t *pkt, size_t n,
					      uint8_t op)
{
	if (n < ESP_PROTO_HDR_LEN || pkt[0] != 0x01)
		return ESP_MATCH_NOT_RESPONSE;
	if (pkt[1] == op)
		return ESP_MATCH_YES;
	/* esptool's rule: a reply for another opcode whose first status
	 * bytes say "failed, invalid message" means our command is unknown. */
	if (n >= ESP_PROTO_HDR_LEN + 2 && pkt[8] != 0 && pkt[9] == 0x05)
		return ESP_MATCH_UNSUPPORTED;
	return ESP_MATCH_OTHER;
}

bool esp_proto_response_ok(const struct esp_proto_resp *r)
{
	return r->status[0] == 0;
}

uint16_t esp_proto_status_code(const struct esp_proto_resp *r)
{
	return (uint16_t)(r->status[0] << 8 | r->status[1]);
}

uint8_t esp_proto_status_reason(const struct esp_proto_resp *r)
{
	if (r->status[0] == 0)
		return 0;
	/* ROM layout {1, reason}; stub layout {code, 0} with codes >= 0xC0. */
	return r->status[0] == 1 ? r->status[1] : r->status[0];
}

int esp_proto_response_check(const struct esp_proto_resp *r, struct fw_err *e)
{
	const struct esp_proto_op_info *info;
	uint8_t code;

	if (esp_proto_response_ok(r))
		return FW_OK;
	info = esp_proto_op_info(r->op);
	code = esp_proto_status_reason(r);
	return fw_err_set(e, esp_proto_error_rc(code),
			  "the device refused to %s (%s, status %04X): %s",
			  info ? info->what : "run a command",
			  esp_proto_op_name(r->op), esp_proto_status_code(r),
			  esp_proto_error_text(code));
}

void esp_proto_response_init(struct esp_proto_resp *r, uint8_t op,
			     enum esp_proto_loader l)
{
	memset(r, 0, sizeof *r);
	r->op = op;
	r->status_len = esp_proto_status_len(l);
}

void esp_proto_response_fail(struct esp_proto_resp *r, enum esp_proto_loader l,
			     uint8_t code)
{
	memset(r->status, 0, sizeof r->status);
	if (l == ESP_LOADER_STUB) {
		r->status[0] = code;
	} else {
		r->status[0] = 1;
		r->status[1] = code;
	}
}

static int response_check_build(const struct esp_proto_resp *r, struct fw_err *e)
{
	if (r->status_len > 4 || (r->result_len && !r->result))
		return fw_err_set(e, FW_EINVAL, "esp: malformed %s reply",
				  esp_proto_op_name(r->op));
	if (r->result_len + r->status_len > 0xFFFF)
		return fw_err_set(e, FW_EINVAL,
				  "esp: %s reply of %zu bytes exceeds the packet limit",
				  esp_proto_op_name(r->op), r->result_len);
	return FW_OK;
}

static void response_header(const struct esp_proto_resp *r, uint8_t hdr[8])
{
	hdr[0] = 0x01; /* direction: chip to host */
	hdr[1] = r->op;
	put_le16(hdr + 2, (uint16_t)(r->result_len + r->status_len));
	put_le32(hdr + 4, r->value);
}

int esp_proto_response_encode(const struct esp_proto_resp *r, uint8_t *out,
			      size_t cap, size_t *out_len, struct fw_err *e)
{
	size_t need;
	int rc = response_check_build(r, e);

	if (rc)
		return rc;
	need = ESP_PROTO_HDR_LEN + r->result_len + r->status_len;
	if (need > cap)
		return fw_err_set(e, FW_EINVAL,
				  "esp: %s reply needs %zu bytes, the buffer has %zu",
				  esp_proto_op_name(r->op), need, cap);
	response_header(r, out);
	if (r->result_len)
		memcpy(out + ESP_PROTO_HDR_LEN, r->result, r->result_len);
	memcpy(out + ESP_PROTO_HDR_LEN + r->result_len, r->status, r->status_len);
	if (out_len)
		*out_len = need;
	return FW_OK;
}

int esp_proto_response_frame(const struct esp_proto_resp *r,
			     struct strbuf *wire, struct fw_err *e)
{
	uint8_t hdr[ESP_PROTO_HDR_LEN];
	int rc = response_check_build(r, e);

	if (rc)
		return rc;
	response_header(r, hdr);
	slip_append_delim(wire);
	slip_append_escaped(wire, hdr, sizeof hdr);
	if (r->result_len)
		slip_append_escaped(wire, r->result, r->result_len);
	slip_append_escaped(wire, r->status, r->status_len);
	slip_append_delim(wire);
	if (strbuf_failed(wire))
		return fw_err_set(e, FW_ENOMEM, "esp: out of memory framing a %s reply",
				  esp_proto_op_name(r->op));
	return FW_OK;
}

/* ---- error codes ---- */

struct err_entry {
	uint8_t code;
	int rc;
	const char *text;
};

static const struct err_entry err_table[] = {
	/* ROM loader reasons (byte 1 after a failed flag) */
	{ 0x00, FW_EPROTO, "the loader reported an unspecified error (reset the device into download mode and try again)" },
	{ 0x01, FW_EPROTO, "invalid parameter: the loader rejected an address, size or block size in the command" },
	{ 0x02, FW_EPROTO, "the loader ran out of memory (reset the device and try again)" },
	{ 0x03, FW_EPROTO, "the loader failed to send its answer (reset the device and try again)" },
	{ 0x04, FW_EPROTO, "the loader did not receive the whole command (check the cable, lower the baud rate)" },
	{ 0x05, FW_EUNSUPPORTED, "unknown or malformed command: this loader does not support it, or the bytes were garbled on the way" },
	{ 0x06, FW_EPROTO, "the command was understood but the operation failed" },
	{ 0x07, FW_EINTEGRITY, "checksum mismatch: bytes were corrupted on the serial line (check the cable, lower the baud rate)" },
	{ 0x08, FW_EVERIFY, "flash write error: the block read back differently after writing (check the power supply and the flash mode, e.g. dout for an ESP8285; the flash chip may be worn or counterfeit)" },
	{ 0x09, FW_EPROTO, "flash read error (check the power supply and the flash mode)" },
	{ 0x0A, FW_EPROTO, "flash read length error: the loader rejected the requested length" },
	{ 0x0B, FW_EPROTO, "decompression failed: the compressed data arrived damaged (check the cable, lower the baud rate)" },
	{ 0x0C, FW_EINTEGRITY, "the decompressed data failed its Adler-32 check: it arrived damaged (check the cable, lower the baud rate)" },
	{ 0x0D, FW_EPROTO, "decompression parameter error: the compressed data does not match the announced size" },
	{ 0x0E, FW_EPROTO, "invalid RAM program size" },
	{ 0x0F, FW_EPROTO, "invalid RAM program address" },
	/* newer ROMs */
	{ 0x64, FW_EPROTO, "invalid parameter" },
	{ 0x65, FW_EPROTO, "invalid format" },
	{ 0x66, FW_EPROTO, "description too long" },
	{ 0x67, FW_EPROTO, "bad encoding description" },
	{ 0x69, FW_EPROTO, "insufficient storage" },
	/* flasher stub codes (byte 0) */
	{ 0xC0, FW_EPROTO, "bad data length: a block arrived with the wrong size (check the cable, lower the baud rate)" },
	{ 0xC1, FW_EINTEGRITY, "data checksum mismatch: bytes were corrupted on the serial line (check the cable, lower the baud rate)" },
	{ 0xC2, FW_EPROTO, "bad block size in the command" },
	{ 0xC3, FW_EUNSUPPORTED, "invalid command or parameter: the flasher refused this request as sent" },
	{ 0xC4, FW_EPROTO, "the SPI flash operation failed (check the power supply and the flash mode)" },
	{ 0xC5, FW_EPROTO, "could not unlock the SPI flash: it may be write-protected" },
	{ 0xC6, FW_EPROTO, "not in flash mode: a block came without a preceding begin command" },
	{ 0xC7, FW_EPROTO, "decompression failed: the compressed data arrived damaged" },
	{ 0xC8, FW_EPROTO, "not enough data: the write ended before the announced size" },
	{ 0xC9, FW_EPROTO, "too much data: more bytes arrived than the write announced" },
	{ 0xFF, FW_EUNSUPPORTED, "command not implemented by the flasher" },
};

static const struct err_entry *err_lookup(uint8_t code)
{
	size_t i;

	for (i = 0; i < N_ELEMS(err_table); i++)
		if (err_table[i].code == code)
			return &err_table[i];
	return NULL;
}

const char *esp_proto_error_text(uint8_t code)
{
	const struct err_entry *x = err_lookup(code);

	return x ? x->text
		 : "error code not in the loader documentation (reset the device and try again)";
}

int esp_proto_error_rc(uint8_t code)
{
	const struct err_entry *x = err_lookup(code);

	return x ? x->rc : FW_EPROTO;
}

/* ---- special results ---- */

bool esp_proto_sync_reply_from_stub(const struct esp_proto_resp *r)
{
	return r->op == ESP_OP_SYNC && r->value == 0;
}

int esp_proto_md5_parse(const struct esp_proto_resp *r, uint8_t md5[16],
			struct fw_err *e)
{
	size_t i;

	if (!esp_proto_response_ok(r))
		return esp_proto_response_check(r, e);
	if (r->result_len == 16) {
		memcpy(md5, r->result, 16);
		return FW_OK;
	}
	if (r->result_len != 32)
		return fw_err_set(e, FW_EPROTO,
				  "esp: MD5 reply carries %zu bytes (expected 32 hex characters or 16 bytes)",
				  r->result_len);
	for (i = 0; i < 16; i++) {
		int hi = integrity_hex_value(r->result[2 * i]);
		int lo = integrity_hex_value(r->result[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return fw_err_set(e, FW_EPROTO,
					  "esp: MD5 reply has a non-hex character at position %zu",
					  hi < 0 ? 2 * i : 2 * i + 1);
		md5[i] = (uint8_t)(hi << 4 | lo);
	}
	return FW_OK;
}

size_t esp_proto_md5_encode(enum esp_proto_loader l, const uint8_t md5[16],
			    uint8_t out[32])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (l == ESP_LOADER_STUB) {
		memcpy(out, md5, 16);
		return 16;
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = (uint8_t)hex[md5[i] >> 4];
		out[2 * i + 1] = (uint8_t)hex[md5[i] & 0xF];
	}
	return 32;
}

int esp_proto_security_info_parse(const struct esp_proto_resp *r,
				  struct esp_proto_security_info *s,
				  struct fw_err *e)
{
	memset(s, 0, sizeof *s);
	if (!esp_proto_response_ok(r))
		return esp_proto_response_check(r, e);
	if (r->result_len < 12)
		return fw_err_set(e, FW_EPROTO,
				  "esp: security info reply carries %zu bytes (expected 12 or 20)",
				  r->result_len);
	s->flags = get_le32(r->result);
	s->flash_crypt_cnt = r->result[4];
	memcpy(s->key_purposes, r->result + 5, sizeof s->key_purposes);
	if (r->result_len >= 20) {
		s->has_chip_id = true;
		s->chip_id = get_le32(r->result + 12);
		s->api_version = get_le32(r->result + 16);
	}
	return FW_OK;
}

/* ---- READ_FLASH stream ---- */

int esp_proto_read_stream_init(struct esp_proto_read_stream *s, uint32_t length,
			       uint32_t packet_size, uint32_t max_inflight,
			       struct fw_err *e)
{
	memset(s, 0, sizeof *s);
	if (packet_size == 0 || max_inflight == 0)
		return fw_err_set(e, FW_EINVAL,
				  "esp: read stream needs a packet size and at least one packet in flight");
	s->length = length;
	s->packet_size = packet_size;
	s->max_inflight = max_inflight;
	return FW_OK;
}

uint32_t esp_proto_read_stream_expect(const struct esp_proto_read_stream *s)
{
	uint32_t left = s->length - s->received;

	return left < s->packet_size ? left : s->packet_size;
}

void esp_proto_read_stream_ack_encode(uint32_t total, uint8_t ack[4])
{
	put_le32(ack, total);
}

int esp_proto_read_stream_take(struct esp_proto_read_stream *s, size_t frame_len,
			       uint8_t ack[4], struct fw_err *e)
{
	uint32_t want = esp_proto_read_stream_expect(s);

	if (want == 0)
		return fw_err_set(e, FW_EPROTO,
				  "esp: a %zu-byte data packet arrived after all 0x%X bytes were read",
				  frame_len, s->length);
	if (frame_len != want)
		return fw_err_set(e, FW_EPROTO,
				  "esp: read packet at 0x%X has %zu bytes, expected %u: bytes were lost on the serial line (check the cable, lower the baud rate)",
				  s->received, frame_len, want);
	s->received += want;
	esp_proto_read_stream_ack_encode(s->received, ack);
	return FW_OK;
}

bool esp_proto_read_stream_done(const struct esp_proto_read_stream *s)
{
	return s->received == s->length;
}

int esp_proto_read_stream_digest(const struct esp_proto_read_stream *s,
				 const uint8_t *frame, size_t n,
				 uint8_t md5[16], struct fw_err *e)
{
	if (!esp_proto_read_stream_done(s))
		return fw_err_set(e, FW_EPROTO,
				  "esp: read ended after 0x%X of 0x%X bytes",
				  s->received, s->length);
	if (n != 16)
		return fw_err_set(e, FW_EPROTO,
				  "esp: read digest frame has %zu bytes, expected a 16-byte MD5",
				  n);
	memcpy(md5, frame, 16);
	return FW_OK;
}

uint32_t esp_proto_read_stream_next(const struct esp_proto_read_stream *s)
{
	uint64_t window = (uint64_t)s->max_inflight * s->packet_size;
	uint32_t left;

	if (s->sent >= s->length || (uint64_t)(s->sent - s->acked) >= window)
		return 0;
	left = s->length - s->sent;
	return left < s->packet_size ? left : s->packet_size;
}

void esp_proto_read_stream_sent(struct esp_proto_read_stream *s, uint32_t n)
{
	s->sent += n;
}

int esp_proto_read_stream_ack(struct esp_proto_read_stream *s,
			      const uint8_t *frame, size_t n, struct fw_err *e)
{
	uint32_t total;

	if (n != 4)
		return fw_err_set(e, FW_EPROTO,
				  "esp: read acknowledgement of %zu bytes (expected 4)", n);
	total = get_le32(frame);
	if (total < s->acked || total > s->sent)
		return fw_err_set(e, FW_EPROTO,
				  "esp: read acknowledgement 0x%X outside 0x%X..0x%X",
				  total, s->acked, s->sent);
	s->acked = total;
	return FW_OK;
}

/* ---- ESP8266 ROM erase-size bug ---- */

#define SECTORS_PER_BLOCK 16u

uint32_t esp_proto_erase_size(uint32_t offset, uint32_t size)
{
	uint64_t start, end, n, head, m;

	if (size == 0)
		return 0;
	start = offset / ESP_PROTO_SECTOR;
	end = (uint64_t)offset + size;
	if (end > 0x100000000ull)
		end = 0x100000000ull;
	n = (end + ESP_PROTO_SECTOR - 1) / ESP_PROTO_SECTOR - start;
	head = SECTORS_PER_BLOCK - start % SECTORS_PER_BLOCK;
	if (head > n)
		head = n;
	/* The ROM erases 2*M inside a block and M + head across a boundary:
	 * pick M so that comes out at N (or N+1 when N is odd). */
	m = n < 2 * head ? (n + 1) / 2 : n - head;
	return (uint32_t)(m * ESP_PROTO_SECTOR);
}

void esp_proto_rom_erased(uint32_t offset, uint32_t sent_size,
			  struct esp_proto_sectors *out)
{
	uint32_t start = offset / ESP_PROTO_SECTOR;
	uint32_t m = esp_proto_blocks(sent_size, ESP_PROTO_SECTOR);
	uint32_t head = SECTORS_PER_BLOCK - start % SECTORS_PER_BLOCK;

	out->first = start;
	out->count = m <= head ? 2 * m : m + head;
}

int esp_proto_erase_plan(uint32_t offset, uint32_t size, uint32_t flash_size,
			 struct esp_proto_erase_plan *p, struct fw_err *e)
{
	uint64_t end = (uint64_t)offset + size, need_end, erased_end;

	memset(p, 0, sizeof *p);
	if (size == 0)
		return fw_err_set(e, FW_EINVAL, "esp: nothing to write at 0x%X", offset);
	if (end > 0x100000000ull || (flash_size && end > flash_size))
		return fw_err_set(e, FW_EINVAL,
				  "esp: the write 0x%X-0x%llX ends past the end of the %u KB flash",
				  offset, (unsigned long long)end - 1, flash_size / 1024);
	p->needed.first = offset / ESP_PROTO_SECTOR;
	need_end = (end + ESP_PROTO_SECTOR - 1) / ESP_PROTO_SECTOR;
	p->needed.count = (uint32_t)(need_end - p->needed.first);
	p->send_size = esp_proto_erase_size(offset, size);
	esp_proto_rom_erased(offset, p->send_size, &p->erased);
	erased_end = (uint64_t)p->erased.first + p->erased.count;
	p->extra_sectors = erased_end > need_end ? (uint32_t)(erased_end - need_end) : 0;
	p->head_bytes = offset % ESP_PROTO_SECTOR;
	/* Past the end, flash chips commonly wrap to address 0: the extra
	 * sector would be the boot loader. Never let that happen silently. */
	if (flash_size && erased_end * ESP_PROTO_SECTOR > flash_size)
		return fw_err_set(e, FW_EGUARD,
				  "writing 0x%X-0x%llX through the ESP8266 ROM would also erase 0x%llX-0x%llX, past the end of the %u KB flash, where the chip may wrap around and erase the boot loader at 0x0: use the flashwise helper for this write",
				  offset, (unsigned long long)end - 1,
				  (unsigned long long)need_end * ESP_PROTO_SECTOR,
				  (unsigned long long)erased_end * ESP_PROTO_SECTOR - 1,
				  flash_size / 1024);
	return FW_OK;
}

/* ---- chips ---- */

static const struct esp_proto_chip_info chip_table[] = {
	{ ESP_CHIP_ESP8266, "ESP8266", ESP_FAMILY_ESP8266, ESP_LOADER_ESP8266_ROM,
	  { 0xFFF0C101u }, 1, ESP_PROTO_NO_CHIP_ID, 0x0 },
	{ ESP_CHIP_ESP32, "ESP32", ESP_FAMILY_ESP32, ESP_LOADER_ESP32_ROM,
	  { 0x00F01D83u }, 1, 0, 0x1000 },
	{ ESP_CHIP_ESP32S2, "ESP32-S2", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x000007C6u }, 1, 2, 0x1000 },
	{ ESP_CHIP_ESP32S3, "ESP32-S3", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x9u }, 1, 9, 0x0 },
	{ ESP_CHIP_ESP32C3, "ESP32-C3", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x6921506Fu, 0x1B31506Fu, 0x4881606Fu, 0x4361606Fu }, 4, 5, 0x0 },
	{ ESP_CHIP_ESP32C2, "ESP32-C2", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x6F51306Fu, 0x7C41A06Fu, 0x0C21E06Fu }, 3, 12, 0x0 },
	{ ESP_CHIP_ESP32C6, "ESP32-C6", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x2CE0806Fu }, 1, 13, 0x0 },
	{ ESP_CHIP_ESP32H2, "ESP32-H2", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0xD7B73E80u }, 1, 16, 0x0 },
	{ ESP_CHIP_ESP32P4, "ESP32-P4", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x0u, 0x0ADDBAD0u }, 2, 18, 0x2000 },
	{ ESP_CHIP_ESP32C61, "ESP32-C61", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x33F0206Fu, 0x2421606Fu }, 2, 20, 0x0 },
	{ ESP_CHIP_ESP32C5, "ESP32-C5", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0x1101406Fu }, 1, 23, 0x2000 },
	{ ESP_CHIP_ESP32H21, "ESP32-H21", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0 }, 0, 25, 0x0 },
	{ ESP_CHIP_ESP32H4, "ESP32-H4", ESP_FAMILY_ESP32, ESP_LOADER_LATER_ROM,
	  { 0 }, 0, 28, 0x2000 },
};

const struct esp_proto_chip_info *esp_proto_chip_by_magic(uint32_t magic)
{
	size_t i, j;

	for (i = 0; i < N_ELEMS(chip_table); i++)
		for (j = 0; j < chip_table[i].n_magic; j++)
			if (chip_table[i].magic[j] == magic)
				return &chip_table[i];
	return NULL;
}

const struct esp_proto_chip_info *esp_proto_chip_by_id(uint32_t chip_id)
{
	size_t i;

	for (i = 0; i < N_ELEMS(chip_table); i++)
		if (chip_table[i].image_chip_id != ESP_PROTO_NO_CHIP_ID &&
		    (uint32_t)chip_table[i].image_chip_id == chip_id)
			return &chip_table[i];
	return NULL;
}

const struct esp_proto_chip_info *esp_proto_chip_info(enum esp_proto_chip chip)
{
	size_t i;

	for (i = 0; i < N_ELEMS(chip_table); i++)
		if (chip_table[i].chip == chip)
			return &chip_table[i];
	return NULL;
}

/* Bit k of the 128-bit ESP8266 eFuse value (word k/32, bit k%32). */
static bool efuse_bit(const struct esp_proto_esp8266_otp *otp, unsigned k)
{
	return (otp->w[k / 32] >> (k % 32)) & 1u;
}

int esp_proto_esp8266_decode(const struct esp_proto_esp8266_otp *otp,
			     struct esp_proto_esp8266_id *id, struct fw_err *e)
{
	uint32_t mac0 = otp->w[0], mac1 = otp->w[1], mac3 = otp->w[3];
	uint32_t sel = (mac1 >> 16) & 0xFF;
	bool r0_4, r3_25, r3_26, r3_27;

	memset(id, 0, sizeof *id);
	id->chip_id = (mac0 >> 24) | ((mac1 & 0xFFFFFFu) << 8);

	r0_4 = efuse_bit(otp, 4);
	r3_25 = efuse_bit(otp, 121);
	r3_26 = efuse_bit(otp, 122);
	r3_27 = efuse_bit(otp, 123);
	id->esp8285 = r0_4 || efuse_bit(otp, 80);
	id->high_temp = id->esp8285 && efuse_bit(otp, 5);
	if (id->esp8285 && !r3_27) {
		if (r0_4 && !r3_25)
			id->embedded_flash_mb = r3_26 ? 2 : 1;
		else if (!r0_4 && r3_25)
			id->embedded_flash_mb = r3_26 ? 4 : 2;
	}
	if (!id->esp8285)
		id->name = "ESP8266EX";
	else if (id->embedded_flash_mb == 1)
		id->name = id->high_temp ? "ESP8285H08" : "ESP8285N08";
	else if (id->embedded_flash_mb == 2)
		id->name = id->high_temp ? "ESP8285H16" : "ESP8285N16";
	else
		id->name = "ESP8285";

	if (mac3 != 0) {
		id->mac[0] = (uint8_t)(mac3 >> 16);
		id->mac[1] = (uint8_t)(mac3 >> 8);
		id->mac[2] = (uint8_t)mac3;
	} else if (sel == 0) {
		id->mac[0] = 0x18; id->mac[1] = 0xFE; id->mac[2] = 0x34;
	} else if (sel == 1) {
		id->mac[0] = 0xAC; id->mac[1] = 0xD0; id->mac[2] = 0x74;
	} else {
		return fw_err_set(e, FW_EPROTO,
				  "esp: unknown MAC vendor prefix selector 0x%02X in OTP word 0x%08X",
				  sel, mac1);
	}
	id->mac[3] = (uint8_t)(mac1 >> 8);
	id->mac[4] = (uint8_t)mac1;
	id->mac[5] = (uint8_t)(mac0 >> 24);
	id->mac_known = true;
	return FW_OK;
}

void esp_proto_esp8266_otp_set_mac(struct esp_proto_esp8266_otp *otp,
				   const uint8_t mac[6])
{
	static const uint8_t oui0[3] = { 0x18, 0xFE, 0x34 };
	static const uint8_t oui1[3] = { 0xAC, 0xD0, 0x74 };
	uint32_t sel = 0;

	/* The selector byte only works while MAC3 is entirely 0; if MAC3 has
	 * other bits set (ESP8285 size bits) the OUI must go there. */
	if ((otp->w[3] & 0xFF000000u) == 0 && memcmp(mac, oui0, 3) == 0) {
		otp->w[3] = 0;
	} else if ((otp->w[3] & 0xFF000000u) == 0 && memcmp(mac, oui1, 3) == 0) {
		otp->w[3] = 0;
		sel = 1;
	} else {
		otp->w[3] = (otp->w[3] & 0xFF000000u) | (uint32_t)mac[0] << 16 |
			    (uint32_t)mac[1] << 8 | mac[2];
	}
	otp->w[1] = (otp->w[1] & 0xFF000000u) | sel << 16 |
		    (uint32_t)mac[3] << 8 | mac[4];
	otp->w[0] = (otp->w[0] & 0x00FFFFFFu) | (uint32_t)mac[5] << 24;
}

void esp_proto_esp32_mac(uint32_t w1, uint32_t w2, uint8_t mac[6])
{
	/* big-endian (w2, w1) = 2 CRC bytes, then the 6 MAC bytes */
	mac[0] = (uint8_t)(w2 >> 8);
	mac[1] = (uint8_t)w2;
	mac[2] = (uint8_t)(w1 >> 24);
	mac[3] = (uint8_t)(w1 >> 16);
	mac[4] = (uint8_t)(w1 >> 8);
	mac[5] = (uint8_t)w1;
}

void esp_proto_xtal(enum esp_proto_family f, uint32_t uart_clkdiv_reg,
		    uint32_t baud, struct esp_proto_xtal *x)
{
	uint64_t div = uart_clkdiv_reg & 0xFFFFFu;
	uint64_t khz = (uint64_t)baud * div / 1000u;
	unsigned diff;

	/* The ESP8266 UART runs from twice the crystal frequency. */
	if (f == ESP_FAMILY_ESP8266)
		khz /= 2;
	x->estimate_khz = khz > 0xFFFFFFFFu ? 0xFFFFFFFFu : (unsigned)khz;
	x->mhz = x->estimate_khz > 33000 ? 40 : 26;
	diff = x->estimate_khz > x->mhz * 1000u ? x->estimate_khz - x->mhz * 1000u
						 : x->mhz * 1000u - x->estimate_khz;
	x->plausible = diff <= 1000;
}

/* ---- SPI flash ---- */

static const struct {
	uint8_t id;
	const char *name;
} vendors[] = {
	{ 0x01, "Spansion/Cypress" }, { 0x0B, "XTX" }, { 0x1C, "EON" },
	{ 0x1F, "Adesto" }, { 0x20, "XMC or Micron" }, { 0x5E, "Zbit" },
	{ 0x68, "Boya" }, { 0x85, "Puya" }, { 0x9D, "ISSI" },
	{ 0xBF, "SST/Microchip" }, { 0xC2, "Macronix" }, { 0xC8, "GigaDevice" },
	{ 0xEF, "Winbond" },
};

static const struct {
	uint8_t code;
	uint32_t kb;
} capacities[] = {
	{ 0x12, 256 }, { 0x32, 256 }, { 0x13, 512 }, { 0x33, 512 },
	{ 0x14, 1024 }, { 0x34, 1024 }, { 0x15, 2048 }, { 0x35, 2048 },
	{ 0x16, 4096 }, { 0x36, 4096 }, { 0x17, 8192 }, { 0x37, 8192 },
	{ 0x18, 16384 }, { 0x38, 16384 }, { 0x19, 32768 }, { 0x39, 32768 },
	{ 0x1A, 65536 }, { 0x3A, 65536 }, { 0x20, 65536 },
	{ 0x1B, 131072 }, { 0x21, 131072 }, { 0x1C, 262144 }, { 0x22, 262144 },
};

int esp_proto_jedec_decode(uint32_t w0, struct esp_proto_flash_id *id,
			   struct fw_err *e)
{
	uint32_t id24 = w0 & 0xFFFFFFu;
	size_t i;

	memset(id, 0, sizeof *id);
	id->manufacturer = (uint8_t)w0;
	id->type = (uint8_t)(w0 >> 8);
	id->capacity = (uint8_t)(w0 >> 16);
	id->vendor = "unknown vendor";
	if (id24 == 0xFFFFFFu || id24 == 0)
		return fw_err_set(e, FW_EPROTO,
				  "the flash chip does not answer (ID %06X): check the power supply and the module's flash wiring; the chip may be dead",
				  id24);
	for (i = 0; i < N_ELEMS(vendors); i++)
		if (vendors[i].id == id->manufacturer)
			id->vendor = vendors[i].name;
	if (id->manufacturer == 0x1F) {
		/* Adesto encodes the density in the low 5 bits of byte 1:
		 * 4 = 512 KB ... 9 = 16 MB. */
		unsigned code = id->type & 0x1Fu;

		if (code >= 4 && code <= 9)
			id->size = 1u << (code + 15);
		return FW_OK;
	}
	for (i = 0; i < N_ELEMS(capacities); i++)
		if (capacities[i].code == id->capacity)
			id->size = capacities[i].kb * 1024u;
	return FW_OK;
}

static const struct esp_proto_spi_regs spi_esp8266 = {
	.base = 0x60000200u, .cmd = 0x60000200u, .addr = 0x60000204u,
	.user = 0x6000021Cu, .user1 = 0x60000220u, .user2 = 0x60000224u,
	.mosi_dlen = 0, .miso_dlen = 0, .w0 = 0x60000240u,
};

static const struct esp_proto_spi_regs spi_esp32 = {
	.base = 0x3FF42000u, .cmd = 0x3FF42000u, .addr = 0x3FF42004u,
	.user = 0x3FF4201Cu, .user1 = 0x3FF42020u, .user2 = 0x3FF42024u,
	.mosi_dlen = 0x3FF42028u, .miso_dlen = 0x3FF4202Cu, .w0 = 0x3FF42080u,
};

const struct esp_proto_spi_regs *esp_proto_spi_regs(enum esp_proto_family f)
{
	return f == ESP_FAMILY_ESP8266 ? &spi_esp8266 : &spi_esp32;
}

void esp_proto_spi_rdid(struct esp_proto_spi_cmd *c)
{
	memset(c, 0, sizeof *c);
	c->cmd = 0x9F;
	c->miso_bits = 24;
}

static void reg_write(struct esp_proto_reg_write *out, size_t *n, uint32_t addr,
		      uint32_t value)
{
	out[*n].addr = addr;
	out[*n].value = value;
	out[*n].mask = 0xFFFFFFFFu;
	out[*n].delay_us = 0;
	(*n)++;
}

int esp_proto_spi_program(enum esp_proto_family f, const struct esp_proto_spi_cmd *c,
			  struct esp_proto_reg_write *out, size_t *n,
			  struct fw_err *e)
{
	const struct esp_proto_spi_regs *regs = esp_proto_spi_regs(f);
	uint32_t user = ESP_SPI_USR_COMMAND, lens = 0;

	*n = 0;
	if (c->miso_bits > ESP_SPI_MISO_MAX || c->addr_bits > 32 ||
	    c->dummy_cycles > 256)
		return fw_err_set(e, FW_EINVAL,
				  "esp: SPI command 0x%02X with %u address bits, %u dummy cycles, %u data bits is out of range",
				  c->cmd, c->addr_bits, c->dummy_cycles, c->miso_bits);
	if (c->addr_bits) {
		user |= ESP_SPI_USR_ADDR;
		lens |= (uint32_t)(c->addr_bits - 1) << ESP8266_SPI_USR1_ADDR_SHIFT;
	}
	if (c->dummy_cycles) {
		user |= ESP_SPI_USR_DUMMY;
		lens |= c->dummy_cycles - 1;
	}
	if (c->miso_bits)
		user |= ESP_SPI_USR_MISO;
	if (f == ESP_FAMILY_ESP8266) {
		/* lengths all live in USER1 on the ESP8266 */
		if (c->miso_bits)
			lens |= (uint32_t)(c->miso_bits - 1) << ESP8266_SPI_USR1_MISO_SHIFT;
		reg_write(out, n, regs->user1, lens);
	} else {
		if (c->miso_bits)
			reg_write(out, n, regs->miso_dlen, c->miso_bits - 1);
		if (lens)
			reg_write(out, n, regs->user1, lens);
	}
	if (c->addr_bits)
		/* ESP8266 and ESP32 want the address in the top bits */
		reg_write(out, n, regs->addr,
			  c->addr_bits == 32 ? c->addr : c->addr << (32 - c->addr_bits));
	reg_write(out, n, regs->user, user);
	reg_write(out, n, regs->user2, (7u << ESP_SPI_USR2_LEN_SHIFT) | c->cmd);
	reg_write(out, n, regs->w0, 0);
	reg_write(out, n, regs->cmd, ESP_SPI_CMD_USR);
	return FW_OK;
}

int esp_proto_spi_decode(enum esp_proto_family f, uint32_t user, uint32_t user1,
			 uint32_t user2, uint32_t miso_dlen, uint32_t addr_reg,
			 struct esp_proto_spi_cmd *c, struct fw_err *e)
{
	memset(c, 0, sizeof *c);
	if (!(user & ESP_SPI_USR_COMMAND) || (user2 >> ESP_SPI_USR2_LEN_SHIFT) != 7)
		return fw_err_set(e, FW_EPROTO,
				  "esp: SPI user command without an 8-bit command phase (USER 0x%08X, USER2 0x%08X)",
				  user, user2);
	if (user & ESP_SPI_USR_MOSI)
		return fw_err_set(e, FW_EUNSUPPORTED,
				  "esp: SPI user command 0x%02X sends data, which is not modelled",
				  user2 & 0xFF);
	c->cmd = (uint8_t)user2;
	if (user & ESP_SPI_USR_ADDR) {
		c->addr_bits = ((user1 >> ESP8266_SPI_USR1_ADDR_SHIFT) & 0x3F) + 1;
		if (c->addr_bits > 32)
			return fw_err_set(e, FW_EPROTO,
					  "esp: SPI address length of %u bits", c->addr_bits);
		c->addr = c->addr_bits == 32 ? addr_reg : addr_reg >> (32 - c->addr_bits);
	}
	if (user & ESP_SPI_USR_DUMMY)
		c->dummy_cycles = (user1 & 0xFF) + 1;
	if (user & ESP_SPI_USR_MISO) {
		if (f == ESP_FAMILY_ESP8266)
			c->miso_bits = ((user1 >> ESP8266_SPI_USR1_MISO_SHIFT) & 0x1FF) + 1;
		else
			c->miso_bits = (miso_dlen & 0xFFFFFF) + 1;
		if (c->miso_bits > ESP_SPI_MISO_MAX)
			return fw_err_set(e, FW_EPROTO,
					  "esp: SPI read of %u bits exceeds the 16 data registers",
					  c->miso_bits);
	}
	return FW_OK;
}
