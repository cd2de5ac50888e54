/* The RAM helper's protocol logic (see include/helper_proto.h). Freestanding
 * on purpose: it runs on the ESP8266 with nothing but the ROM underneath,
 * so no libc, no allocation, no division by variables (the lx106 has no
 * divide instruction; shifts and masks do the work), and the chip-specific
 * parts are the platform's. */
#include "helper_proto.h"

#define SLIP_END     0xC0u
#define SLIP_ESC     0xDBu
#define SLIP_ESC_END 0xDCu
#define SLIP_ESC_ESC 0xDDu

#define SECTOR  0x1000u
#define BLOCK64 0x10000u

#define OP_FLASH_BEGIN     0x02u
#define OP_FLASH_DATA      0x03u
#define OP_FLASH_END       0x04u
#define OP_SYNC            0x08u
#define OP_WRITE_REG       0x09u
#define OP_READ_REG        0x0Au
#define OP_SPI_SET_PARAMS  0x0Bu
#define OP_SPI_ATTACH      0x0Du
#define OP_CHANGE_BAUDRATE 0x0Fu
#define OP_SPI_FLASH_MD5   0x13u
#define OP_ERASE_REGION    0xD1u
#define OP_READ_FLASH      0xD2u

#define HDR_LEN      8u  /* direction, op, size, checksum */
#define DATA_HDR_LEN 16u /* len, seq, 0, 0 */
#define SYNC_LEN     36u
#define CHECKSUM_SEED 0xEFu

enum rx_state { RX_HUNT, RX_FRAME, RX_ESCAPE, RX_DROP };

/* ---- little helpers ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint8_t *rx_buf(struct helper_proto *h)
{
	return (uint8_t *)h->rx_w;
}

static uint8_t *work_buf(struct helper_proto *h)
{
	return (uint8_t *)h->buf_w;
}

static uint32_t round_up(uint32_t v, uint32_t pow2)
{
	return (v + pow2 - 1u) & ~(pow2 - 1u);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* [off, off + len) lies inside the flash the helper was told about. */
static bool in_flash(const struct helper_proto *h, uint32_t off, uint32_t len)
{
	return off <= h->flash_size && len <= h->flash_size - off;
}

/* ---- output: SLIP-escaped bytes, handed to tx in chunks ---- */

static void out_flush(struct helper_proto *h)
{
	if (h->out_len) {
		h->pf->tx(h->pf->ctx, h->out, h->out_len);
		h->out_len = 0;
	}
}

static void out_raw(struct helper_proto *h, uint8_t b)
{
	h->out[h->out_len++] = b;
	if (h->out_len == HELPER_PROTO_OUT_CHUNK)
		out_flush(h);
}

static void out_byte(struct helper_proto *h, uint8_t b)
{
	if (b == SLIP_END) {
		out_raw(h, SLIP_ESC);
		out_raw(h, SLIP_ESC_END);
	} else if (b == SLIP_ESC) {
		out_raw(h, SLIP_ESC);
		out_raw(h, SLIP_ESC_ESC);
	} else {
		out_raw(h, b);
	}
}

static void out_bytes(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		out_byte(h, p[i]);
}

static void out_le(struct helper_proto *h, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out_byte(h, (uint8_t)(v >> (8 * i)));
}

/* A frame that is not a response: greeting, read data, read digest. */
static void send_frame(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	out_raw(h, SLIP_END);
	out_bytes(h, p, n);
	out_raw(h, SLIP_END);
	out_flush(h);
}

/* Response: 01, op, size, value, result, then the status {code, 0}. A
 * failed command carries no result. */
static void respond(struct helper_proto *h, uint8_t op, uint32_t value,
		    const uint8_t *result, uint32_t n, uint8_t status)
{
	if (status != HELPER_PROTO_OK)
		n = 0;
	out_raw(h, SLIP_END);
	out_byte(h, 0x01);
	out_byte(h, op);
	out_le(h, n + 2u, 2);
	out_le(h, value, 4);
	out_bytes(h, result, n);
	out_byte(h, status);
	out_byte(h, 0);
	out_raw(h, SLIP_END);
	out_flush(h);
}

static void status(struct helper_proto *h, uint8_t op, uint8_t code)
{
	respond(h, op, 0, 0, 0, code);
}

/* ---- flash access ---- */

/* Reads [addr, addr + len) (len <= HELPER_PROTO_READ_PACKET_MAX) into the
 * work buffer through an aligned read around it; *p points at addr's byte. */
static int read_span(struct helper_proto *h, uint32_t addr, uint32_t len, const uint8_t **p)
{
	uint32_t lead = addr & 3u;

	if (h->pf->flash_read(h->pf->ctx, addr - lead, work_buf(h), round_up(lead + len, 4)))
		return -1;
	*p = work_buf(h) + lead;
	return 0;
}

/* Flash at addr holds exactly data[0..n) (n a multiple of 4). */
static int flash_equals(struct helper_proto *h, uint32_t addr, const uint8_t *data, uint32_t n,
			bool *same)
{
	*same = true;
	for (uint32_t done = 0; done < n;) {
		uint32_t k = min_u32(n - done, HELPER_PROTO_READ_PACKET_MAX);
		const uint8_t *got;

		if (read_span(h, addr + done, k, &got))
			return -1;
		for (uint32_t i = 0; i < k; i++)
			if (got[i] != data[done + i])
				*same = false;
		done += k;
	}
	return 0;
}

/* Erases [off, off + len), both sector aligned: 64 KB blocks where a whole
 * aligned block lies inside, sectors elsewhere. Never beyond the range. */
static int erase_range(struct helper_proto *h, uint32_t off, uint32_t len)
{
	const struct helper_proto_platform *pf = h->pf;

	while (len) {
		if (pf->flash_erase_block && (off & (BLOCK64 - 1u)) == 0 && len >= BLOCK64) {
			if (pf->flash_erase_block(pf->ctx, off >> 16))
				return -1;
			off += BLOCK64;
			len -= BLOCK64;
		} else {
			if (pf->flash_erase_sector(pf->ctx, off >> 12))
				return -1;
			off += SECTOR;
			len -= SECTOR;
		}
	}
	return 0;
}

static bool unlock(struct helper_proto *h)
{
	return !h->pf->flash_unlock || h->pf->flash_unlock(h->pf->ctx) == 0;
}

/* ---- commands ---- */

static void cmd_flash_begin(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint32_t size, block, offset;

	if (n != 16 && n != 20) {
		status(h, OP_FLASH_BEGIN, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	size = le32(p);
	block = le32(p + 8);
	offset = le32(p + 12);
	h->w_open = false;
	if (block == 0 || block > HELPER_PROTO_WRITE_BLOCK_MAX || (block & 3u)) {
		status(h, OP_FLASH_BEGIN, HELPER_PROTO_E_BLOCK_SIZE);
		return;
	}
	/* Exact erase works on whole sectors: an unaligned start would wipe
	 * the bytes before it in its sector, so it is refused. No flash
	 * encryption on the ESP8266. */
	if ((offset & (SECTOR - 1u)) || !in_flash(h, offset, size) ||
	    (n == 20 && le32(p + 16) != 0)) {
		status(h, OP_FLASH_BEGIN, HELPER_PROTO_E_INVALID);
		return;
	}
	if (!unlock(h)) {
		status(h, OP_FLASH_BEGIN, HELPER_PROTO_E_UNLOCK);
		return;
	}
	h->w_open = true;
	h->w_offset = offset;
	h->w_size = size;
	h->w_block = block;
	h->w_next_seq = 0;
	h->w_done = 0;
	h->w_erased = 0;
	status(h, OP_FLASH_BEGIN, HELPER_PROTO_OK);
}

/* The FLASH_DATA work once the packet is known to be sound; returns the
 * status to answer. */
static uint8_t flash_block(struct helper_proto *h, uint32_t seq, uint8_t *data, uint32_t len)
{
	uint32_t rel, keep, wlen, need, region;
	bool same;

	if (!h->w_open)
		return HELPER_PROTO_E_NOT_WRITING;
	if (len > h->w_block)
		return HELPER_PROTO_E_DATA_LEN;
	if (seq > h->w_next_seq)
		return HELPER_PROTO_E_NOT_ENOUGH; /* a block is missing before it */
	rel = seq * h->w_block; /* seq <= size / block + 1: no overflow */
	if (rel >= h->w_size)
		return HELPER_PROTO_E_TOO_MUCH;
	keep = min_u32(len, h->w_size - rel);
	/* Past the announced size only 0xFF padding is allowed: anything else
	 * would land outside what the host asked to be erased. */
	for (uint32_t i = keep; i < len; i++)
		if (data[i] != 0xFF)
			return HELPER_PROTO_E_TOO_MUCH;
	wlen = round_up(keep, 4);
	for (uint32_t i = keep; i < wlen; i++)
		data[i] = 0xFF; /* programs nothing */
	if (seq < h->w_next_seq) {
		/* Sent again (our answer was lost): fine if it is already
		 * there; different data cannot be written over it. */
		if (flash_equals(h, h->w_offset + rel, data, wlen, &same))
			return HELPER_PROTO_E_FLASH;
		return same ? HELPER_PROTO_OK : HELPER_PROTO_E_FLASH;
	}
	region = round_up(h->w_size, SECTOR);
	need = min_u32(round_up(rel + wlen, SECTOR), region);
	if (need > h->w_erased) {
		uint32_t from = h->w_erased, len_e;

		/* Whole 64 KB blocks ahead are erased in one go when they lie
		 * inside the region: faster, and still exact. */
		if (((h->w_offset + from) & (BLOCK64 - 1u)) == 0 && region - from >= BLOCK64 &&
		    need - from < BLOCK64)
			need = from + BLOCK64;
		len_e = need - from;
		if (erase_range(h, h->w_offset + from, len_e))
			return HELPER_PROTO_E_FLASH;
		h->w_erased = need;
	}
	if (h->pf->flash_write(h->pf->ctx, h->w_offset + rel, data, wlen))
		return HELPER_PROTO_E_FLASH;
	/* Read back before saying ok: an ok means the bytes are on flash. */
	if (flash_equals(h, h->w_offset + rel, data, wlen, &same) || !same)
		return HELPER_PROTO_E_FLASH;
	h->w_next_seq = seq + 1u;
	if (rel + keep > h->w_done)
		h->w_done = rel + keep;
	return HELPER_PROTO_OK;
}

static void cmd_flash_data(struct helper_proto *h, uint32_t checksum, uint8_t *p, uint32_t n)
{
	uint32_t len;
	uint8_t sum = CHECKSUM_SEED;

	if (n < DATA_HDR_LEN || (len = le32(p)) != n - DATA_HDR_LEN) {
		status(h, OP_FLASH_DATA, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	for (uint32_t i = 0; i < len; i++)
		sum ^= p[DATA_HDR_LEN + i];
	if ((checksum & 0xFFu) != sum) {
		status(h, OP_FLASH_DATA, HELPER_PROTO_E_CHECKSUM);
		return;
	}
	status(h, OP_FLASH_DATA, flash_block(h, le32(p + 4), p + DATA_HDR_LEN, len));
}

static void cmd_flash_end(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint8_t st = HELPER_PROTO_OK;

	if (n != 4) {
		status(h, OP_FLASH_END, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	if (!h->w_open)
		st = HELPER_PROTO_E_NOT_WRITING;
	else if (h->w_done < h->w_size)
		st = HELPER_PROTO_E_NOT_ENOUGH;
	h->w_open = false;
	status(h, OP_FLASH_END, st);
	/* Reboot only after a complete write: a partial image is not booted. */
	if (st == HELPER_PROTO_OK && le32(p) == 0 && h->pf->reboot) {
		h->pf->reboot(h->pf->ctx);
		h->stopped = true;
	}
}

static void cmd_erase_region(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint32_t off, size;

	if (n != 8) {
		status(h, OP_ERASE_REGION, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	off = le32(p);
	size = le32(p + 4);
	if ((off & (SECTOR - 1u)) || (size & (SECTOR - 1u)) || !in_flash(h, off, size)) {
		status(h, OP_ERASE_REGION, HELPER_PROTO_E_INVALID);
		return;
	}
	if (!unlock(h)) {
		status(h, OP_ERASE_REGION, HELPER_PROTO_E_UNLOCK);
		return;
	}
	status(h, OP_ERASE_REGION,
	       erase_range(h, off, size) ? HELPER_PROTO_E_FLASH : HELPER_PROTO_OK);
}

static void cmd_md5(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	const struct helper_proto_platform *pf = h->pf;
	uint32_t addr, size;
	uint8_t md5[16];

	if (n != 16) {
		status(h, OP_SPI_FLASH_MD5, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	addr = le32(p);
	size = le32(p + 4);
	if (!in_flash(h, addr, size)) {
		status(h, OP_SPI_FLASH_MD5, HELPER_PROTO_E_INVALID);
		return;
	}
	pf->md5_begin(pf->ctx);
	for (uint32_t done = 0; done < size;) {
		uint32_t k = min_u32(size - done, HELPER_PROTO_READ_PACKET_MAX);
		const uint8_t *got;

		if (read_span(h, addr + done, k, &got)) {
			pf->md5_end(pf->ctx, md5); /* closes the digest */
			status(h, OP_SPI_FLASH_MD5, HELPER_PROTO_E_FLASH);
			return;
		}
		pf->md5_update(pf->ctx, got, k);
		done += k;
	}
	pf->md5_end(pf->ctx, md5);
	respond(h, OP_SPI_FLASH_MD5, 0, md5, 16, HELPER_PROTO_OK);
}

/* Sends READ_FLASH packets while the window allows; the digest once every
 * byte is acknowledged. */
static void read_pump(struct helper_proto *h)
{
	const struct helper_proto_platform *pf = h->pf;

	while (h->r_active && h->r_sent < h->r_len && h->r_sent - h->r_acked < h->r_window) {
		uint32_t k = min_u32(h->r_len - h->r_sent, h->r_packet);
		const uint8_t *got;

		if (read_span(h, h->r_offset + h->r_sent, k, &got)) {
			uint8_t md5[16];

			pf->md5_end(pf->ctx, md5);
			h->r_active = false;
			status(h, OP_READ_FLASH, HELPER_PROTO_E_FLASH);
			return;
		}
		pf->md5_update(pf->ctx, got, k);
		send_frame(h, got, k);
		h->r_sent += k;
	}
	if (h->r_active && h->r_acked == h->r_len) {
		uint8_t md5[16];

		pf->md5_end(pf->ctx, md5);
		h->r_active = false;
		send_frame(h, md5, 16);
	}
}

static void cmd_read_flash(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint32_t off, len, packet, inflight;

	if (n != 16) {
		status(h, OP_READ_FLASH, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	off = le32(p);
	len = le32(p + 4);
	packet = le32(p + 8);
	inflight = le32(p + 12);
	if (packet == 0 || packet > HELPER_PROTO_READ_PACKET_MAX || inflight == 0) {
		status(h, OP_READ_FLASH, HELPER_PROTO_E_BLOCK_SIZE);
		return;
	}
	if (!in_flash(h, off, len)) {
		status(h, OP_READ_FLASH, HELPER_PROTO_E_INVALID);
		return;
	}
	/* Fewer packets in flight than the host allows is always valid; the
	 * limit bounds the acknowledgements queued while packets go out. */
	inflight = min_u32(inflight, HELPER_PROTO_READ_INFLIGHT_MAX);
	status(h, OP_READ_FLASH, HELPER_PROTO_OK);
	h->r_active = true;
	h->r_offset = off;
	h->r_len = len;
	h->r_packet = packet;
	h->r_window = packet * inflight;
	h->r_sent = 0;
	h->r_acked = 0;
	h->pf->md5_begin(h->pf->ctx);
	read_pump(h);
}

static void read_ack(struct helper_proto *h, const uint8_t *p)
{
	uint32_t total = le32(p);

	/* An ack beyond what was sent, or older than the last, says nothing
	 * new: ignored. */
	if (total <= h->r_sent && total > h->r_acked)
		h->r_acked = total;
	read_pump(h);
}

static void cmd_change_baud(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint32_t nb, ob;

	if (n != 8) {
		status(h, OP_CHANGE_BAUDRATE, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	nb = le32(p);
	ob = le32(p + 4);
	/* The old rate is needed: the UART clock is derived from it. */
	if (nb < HELPER_PROTO_BAUD_MIN || nb > HELPER_PROTO_BAUD_MAX ||
	    ob < HELPER_PROTO_BAUD_MIN || ob > HELPER_PROTO_BAUD_MAX) {
		status(h, OP_CHANGE_BAUDRATE, HELPER_PROTO_E_INVALID);
		return;
	}
	status(h, OP_CHANGE_BAUDRATE, HELPER_PROTO_OK);
	h->pf->set_baud(h->pf->ctx, nb, ob);
}

static void cmd_write_reg(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	const struct helper_proto_platform *pf = h->pf;

	if (n == 0 || (n & 15u)) {
		status(h, OP_WRITE_REG, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	for (uint32_t i = 0; i < n; i += 16) {
		uint32_t addr = le32(p + i), value = le32(p + i + 4), mask = le32(p + i + 8),
			 delay = le32(p + i + 12);

		/* A full mask writes without reading first: reads of some
		 * registers have side effects. */
		if (mask != 0xFFFFFFFFu)
			value = (pf->reg_read(pf->ctx, addr) & ~mask) | (value & mask);
		pf->reg_write(pf->ctx, addr, value);
		if (delay)
			pf->delay_us(pf->ctx, delay);
	}
	status(h, OP_WRITE_REG, HELPER_PROTO_OK);
}

static void cmd_set_params(struct helper_proto *h, const uint8_t *p, uint32_t n)
{
	uint32_t total;

	if (n != 24) {
		status(h, OP_SPI_SET_PARAMS, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	total = le32(p + 4);
	if (total == 0 || total > HELPER_PROTO_FLASH_MAX) {
		status(h, OP_SPI_SET_PARAMS, HELPER_PROTO_E_INVALID);
		return;
	}
	h->flash_size = total;
	if (h->pf->flash_set_size)
		h->pf->flash_set_size(h->pf->ctx, total);
	status(h, OP_SPI_SET_PARAMS, HELPER_PROTO_OK);
}

static void serve(struct helper_proto *h, uint8_t *f, uint32_t n)
{
	uint8_t op;
	uint32_t size;
	uint8_t *p = f + HDR_LEN;

	if (h->r_active) {
		if (n == 4) {
			read_ack(h, f);
			return;
		}
		/* The host moved on (or gave up): the stream ends here. */
		uint8_t md5[16];

		h->pf->md5_end(h->pf->ctx, md5);
		h->r_active = false;
	}
	if (n < HDR_LEN || f[0] != 0x00)
		return; /* not a request */
	op = f[1];
	size = (uint32_t)f[2] | (uint32_t)f[3] << 8;
	if (size != n - HDR_LEN) {
		status(h, op, HELPER_PROTO_E_DATA_LEN);
		return;
	}
	switch (op) {
	case OP_SYNC:
		status(h, op, size == SYNC_LEN ? HELPER_PROTO_OK : HELPER_PROTO_E_DATA_LEN);
		break;
	case OP_READ_REG:
		if (size != 4)
			status(h, op, HELPER_PROTO_E_DATA_LEN);
		else
			respond(h, op, h->pf->reg_read(h->pf->ctx, le32(p)), 0, 0,
				HELPER_PROTO_OK);
		break;
	case OP_WRITE_REG:
		cmd_write_reg(h, p, size);
		break;
	case OP_FLASH_BEGIN:
		cmd_flash_begin(h, p, size);
		break;
	case OP_FLASH_DATA:
		cmd_flash_data(h, le32(f + 4), p, size);
		break;
	case OP_FLASH_END:
		cmd_flash_end(h, p, size);
		break;
	case OP_ERASE_REGION:
		cmd_erase_region(h, p, size);
		break;
	case OP_SPI_FLASH_MD5:
		cmd_md5(h, p, size);
		break;
	case OP_READ_FLASH:
		cmd_read_flash(h, p, size);
		break;
	case OP_CHANGE_BAUDRATE:
		cmd_change_baud(h, p, size);
		break;
	case OP_SPI_SET_PARAMS:
		cmd_set_params(h, p, size);
		break;
	case OP_SPI_ATTACH:
		if (size != 4 && size != 8)
			status(h, op, HELPER_PROTO_E_DATA_LEN);
		else
			status(h, op, le32(p) == 0 ? HELPER_PROTO_OK : HELPER_PROTO_E_INVALID);
		break;
	default:
		status(h, op, HELPER_PROTO_E_UNKNOWN_CMD);
		break;
	}
}

/* ---- public ---- */

void helper_proto_init(struct helper_proto *h, const struct helper_proto_platform *pf)
{
	uint8_t *b = (uint8_t *)h;

	/* No memset: freestanding. */
	for (uint32_t i = 0; i < sizeof *h; i++)
		b[i] = 0;
	h->pf = pf;
	h->rx_state = RX_HUNT;
	h->flash_size = HELPER_PROTO_FLASH_MAX;
}

void helper_proto_start(struct helper_proto *h)
{
	send_frame(h, (const uint8_t *)HELPER_PROTO_GREETING, HELPER_PROTO_GREETING_LEN);
}

bool helper_proto_reading(const struct helper_proto *h)
{
	return h->r_active;
}

void helper_proto_input(struct helper_proto *h, const uint8_t *p, size_t n)
{
	uint8_t *buf = rx_buf(h);

	for (size_t i = 0; i < n && !h->stopped; i++) {
		uint8_t c = p[i];

		switch (h->rx_state) {
		case RX_HUNT:
			if (c == SLIP_END) {
				h->rx_state = RX_FRAME;
				h->rx_len = 0;
			}
			break;
		case RX_FRAME:
			if (c == SLIP_END) {
				/* Back-to-back delimiters: the second one opens. */
				if (h->rx_len == 0)
					break;
				h->rx_state = RX_HUNT;
				serve(h, buf, h->rx_len);
			} else if (c == SLIP_ESC) {
				h->rx_state = RX_ESCAPE;
			} else if (h->rx_len < HELPER_PROTO_FRAME_MAX) {
				buf[h->rx_len++] = c;
			} else {
				h->rx_state = RX_DROP; /* too long for any request */
			}
			break;
		case RX_ESCAPE:
			if ((c == SLIP_ESC_END || c == SLIP_ESC_ESC) &&
			    h->rx_len < HELPER_PROTO_FRAME_MAX) {
				buf[h->rx_len++] = c == SLIP_ESC_END ? SLIP_END : SLIP_ESC;
				h->rx_state = RX_FRAME;
			} else {
				/* A damaged escape spoils the frame: drop it and
				 * wait for the next delimiter. */
				h->rx_state = c == SLIP_END ? RX_HUNT : RX_DROP;
			}
			break;
		default: /* RX_DROP */
			if (c == SLIP_END)
				h->rx_state = RX_HUNT;
			break;
		}
	}
}
