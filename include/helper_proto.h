/* flashwise's own ESP8266 RAM helper: the protocol logic, in portable,
 * freestanding C (no libc, no allocation). It compiles twice: for the
 * chip's lx106 core (src/helper/lx106/, the binary flashwise uploads; see
 * include/helper_blob.h) and for the host, where flashwise-sim runs it when
 * the driver uploads that binary. The chip-specific parts (UART, ROM flash
 * and MD5 routines) sit behind struct helper_proto_platform.
 *
 * Dialect: the documented flasher-stub protocol (esp-rom-protocol.md
 * sections 2-5, ESP_LOADER_STUB in esp_proto.h): SLIP frames, responses with
 * two status bytes ({0, 0} ok, {code, 0} with the stub codes below), SYNC
 * answered once with value 0. After MEM_END the helper sends one SLIP frame
 * holding the 4 ASCII bytes "FWHL" (HELPER_PROTO_GREETING).
 *
 * Commands served:
 *   SYNC 0x08            36-byte payload; one reply, value 0.
 *   READ_REG 0x0A        address -> value field.
 *   WRITE_REG 0x09       records of (address, value, mask, delay us).
 *   FLASH_BEGIN 0x02     (size, blocks, block size, offset[, encrypted]):
 *                        offset on a 4 KB sector boundary, block size a
 *                        multiple of 4 up to HELPER_PROTO_WRITE_BLOCK_MAX,
 *                        encrypted 0. Answers at once: nothing is erased
 *                        yet (see FLASH_DATA).
 *   FLASH_DATA 0x03      (len, seq, 0, 0) + block, checksummed. The block
 *                        goes to offset + seq * block size. Before writing,
 *                        the sectors it touches are erased (a whole 64 KB
 *                        block at once where one lies inside the announced
 *                        region), never anything outside
 *                        [offset, offset + size rounded up to 4 KB). The
 *                        block is written, read back and compared before
 *                        the answer goes out: an ok means it is on flash.
 *                        Bytes past the announced size must be 0xFF padding.
 *                        A block sent again (seq already written) is
 *                        accepted when flash already holds exactly it.
 *   FLASH_END 0x04       word 0 = reboot after the answer, else stay.
 *                        0xC8 when fewer bytes than announced were written.
 *   ERASE_REGION 0xD1    (offset, size), both multiples of 4096: erases
 *                        exactly that range.
 *   SPI_FLASH_MD5 0x13   (address, size, 0, 0) -> 16 raw MD5 bytes + status.
 *   READ_FLASH 0xD2      (offset, length, packet size, max in flight): the
 *                        ok response, then raw data frames of packet size
 *                        (the last one shorter); the host acks each with a
 *                        4-byte little-endian "total bytes received" frame;
 *                        at most max-in-flight packets are unacked; once
 *                        every byte is acked, a 16-byte raw MD5 frame of all
 *                        data. Packet size 1..HELPER_PROTO_READ_PACKET_MAX;
 *                        max in flight above HELPER_PROTO_READ_INFLIGHT_MAX
 *                        is treated as that maximum. Any frame other than a
 *                        4-byte ack ends the stream and is served as a
 *                        command (a host that gave up can SYNC). A flash
 *                        error mid-stream ends it with a READ_FLASH error
 *                        response (status 0xC4) instead of the next packet.
 *   CHANGE_BAUDRATE 0x0F (new baud, old baud): old must be the rate in use
 *                        (the UART clock is derived from it); the answer
 *                        leaves at the old rate, then the UART switches.
 *   SPI_SET_PARAMS 0x0B  (id, total size, ...): total size becomes the
 *                        range limit (default HELPER_PROTO_FLASH_MAX).
 *   SPI_ATTACH 0x0D      pins word 0 only (the helper attaches at start).
 *   anything else        status 0xFF (not implemented).
 *
 * Parameters out of range (misaligned, past the flash, bad baud) are
 * answered 0xC3. All fields little-endian. */
#ifndef FLASHWISE_HELPER_PROTO_H
#define FLASHWISE_HELPER_PROTO_H

/* ---- constants (also read by the lx106 linker script: keep them plain) ---- */

#define HELPER_PROTO_GREETING          "FWHL"
#define HELPER_PROTO_GREETING_LEN      4

/* FLASH_DATA payload per block (FLASH_BEGIN block size) and READ_FLASH
 * packet size limits. One 4 KB flash sector each: the receive buffer holds
 * one block, the read buffer one packet. */
#define HELPER_PROTO_WRITE_BLOCK_MAX   0x1000
#define HELPER_PROTO_READ_PACKET_MAX   0x1000
#define HELPER_PROTO_READ_INFLIGHT_MAX 64
/* Largest request frame (unescaped): header + data header + one block. */
#define HELPER_PROTO_FRAME_MAX         (8 + 16 + HELPER_PROTO_WRITE_BLOCK_MAX)
/* Address range accepted until SPI_SET_PARAMS says otherwise (the ROM flash
 * routines are configured for this size at start). */
#define HELPER_PROTO_FLASH_MAX         0x1000000
#define HELPER_PROTO_BAUD_MIN          1200
#define HELPER_PROTO_BAUD_MAX          4000000

/* Where the lx106 build lives (the exact segment addresses and the entry
 * point are in helper_blob.h, generated from the linked binary). IRAM: the
 * SDK's linker script gives applications 0x40100000-0x40108000 as
 * instruction RAM; the ROM loader runs from ROM and keeps its variables
 * above 0x3FFFC000 (the ROM symbol addresses in the SDK's
 * eagle.rom.addr.v6.ld), so neither region below is in its way while it
 * receives the upload. DRAM: applications get 0x3FFE8000-0x3FFFC000; the
 * helper leaves the first 4 KB alone (the public flasher stub keeps clear
 * of the start of that region too, for reasons not documented). Budgets:
 * code (IRAM) and everything else (data, rodata, bss, stack) in DRAM. The
 * build fails when a budget is exceeded. */
#define HELPER_PROTO_IRAM_BASE         0x40100000
#define HELPER_PROTO_IRAM_BUDGET       0x2000
#define HELPER_PROTO_DRAM_BASE         0x3FFE9000
#define HELPER_PROTO_DRAM_BUDGET       0x4000
#define HELPER_PROTO_STACK_SIZE        0x800

/* Status codes (first status byte; the second is 0). */
#define HELPER_PROTO_OK                0x00
#define HELPER_PROTO_E_DATA_LEN        0xC0 /* payload length wrong */
#define HELPER_PROTO_E_CHECKSUM        0xC1 /* FLASH_DATA checksum */
#define HELPER_PROTO_E_BLOCK_SIZE      0xC2 /* block/packet size, in flight */
#define HELPER_PROTO_E_INVALID         0xC3 /* parameter out of range */
#define HELPER_PROTO_E_FLASH           0xC4 /* flash op failed / read-back */
#define HELPER_PROTO_E_UNLOCK          0xC5 /* write protection not cleared */
#define HELPER_PROTO_E_NOT_WRITING     0xC6 /* FLASH_DATA/END without BEGIN */
#define HELPER_PROTO_E_NOT_ENOUGH      0xC8 /* FLASH_END before all data, or
                                             * a FLASH_DATA sequence gap */
#define HELPER_PROTO_E_TOO_MUCH        0xC9 /* data past the announced size */
#define HELPER_PROTO_E_UNKNOWN_CMD     0xFF

#ifndef HELPER_PROTO_CONSTANTS_ONLY

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the helper needs from the chip (or the simulator). Every function
 * gets ctx. Flash functions return 0 on success. flash_write gets a 4-byte
 * aligned buffer, address and length; flash_read a 4-byte aligned buffer,
 * address and length. Optional members may be NULL. */
struct helper_proto_platform {
	void *ctx;
	/* Sends bytes; blocks until they are queued for the wire. */
	void (*tx)(void *ctx, const uint8_t *p, size_t n);
	int (*flash_read)(void *ctx, uint32_t addr, uint8_t *dst, uint32_t len);
	int (*flash_write)(void *ctx, uint32_t addr, const uint8_t *src, uint32_t len);
	int (*flash_erase_sector)(void *ctx, uint32_t sector);      /* 4 KB */
	int (*flash_erase_block)(void *ctx, uint32_t block);        /* 64 KB; optional */
	int (*flash_unlock)(void *ctx);                             /* optional */
	void (*flash_set_size)(void *ctx, uint32_t size);           /* optional */
	/* One digest at a time: begin, any number of updates, end. */
	void (*md5_begin)(void *ctx);
	void (*md5_update)(void *ctx, const uint8_t *p, uint32_t n);
	void (*md5_end)(void *ctx, uint8_t out[16]);
	uint32_t (*reg_read)(void *ctx, uint32_t addr);
	void (*reg_write)(void *ctx, uint32_t addr, uint32_t value);
	void (*delay_us)(void *ctx, uint32_t us);
	/* Called after the CHANGE_BAUDRATE answer was handed to tx(): waits
	 * until it has left, then switches the UART. */
	void (*set_baud)(void *ctx, uint32_t new_baud, uint32_t old_baud);
	/* Called after the FLASH_END(0) answer was handed to tx(). May not
	 * return (the chip); if it does, the helper stops handling input. */
	void (*reboot)(void *ctx);
};

/* Buffers are words so the flash routines get aligned memory. */
#define HELPER_PROTO_RX_WORDS  ((HELPER_PROTO_FRAME_MAX + 4 + 3) / 4)
#define HELPER_PROTO_BUF_WORDS ((HELPER_PROTO_READ_PACKET_MAX + 8) / 4)
#define HELPER_PROTO_OUT_CHUNK 64

struct helper_proto {
	const struct helper_proto_platform *pf;
	/* SLIP receiver */
	uint32_t rx_w[HELPER_PROTO_RX_WORDS];
	uint32_t rx_len;
	uint8_t rx_state;
	bool stopped;             /* reboot returned: input is ignored */
	/* transmit chunk (escaped bytes waiting for tx) */
	uint8_t out[HELPER_PROTO_OUT_CHUNK];
	uint32_t out_len;
	uint32_t flash_size;      /* range limit for every flash command */
	/* FLASH_BEGIN .. FLASH_END */
	bool w_open;
	uint32_t w_offset, w_size, w_block;
	uint32_t w_next_seq;      /* next block expected */
	uint32_t w_done;          /* bytes from w_offset on flash (high mark) */
	uint32_t w_erased;        /* bytes from w_offset erased (whole sectors) */
	/* READ_FLASH stream */
	bool r_active;
	uint32_t r_offset, r_len, r_packet, r_window, r_sent, r_acked;
	/* flash read / read-back buffer */
	uint32_t buf_w[HELPER_PROTO_BUF_WORDS];
};

/* Prepares h (no output yet). pf must outlive h. */
void helper_proto_init(struct helper_proto *h, const struct helper_proto_platform *pf);
/* Sends the "FWHL" greeting frame: call once when the helper starts. */
void helper_proto_start(struct helper_proto *h);
/* Feeds received bytes; every complete request is served before this
 * returns (the answers go out through pf->tx). */
void helper_proto_input(struct helper_proto *h, const uint8_t *p, size_t n);
/* True while a READ_FLASH stream waits for acknowledgements. */
bool helper_proto_reading(const struct helper_proto *h);

#endif /* HELPER_PROTO_CONSTANTS_ONLY */
#endif
