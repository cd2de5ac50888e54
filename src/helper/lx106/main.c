/* The lx106 side of the RAM helper: the platform functions of
 * helper_proto.h on the real chip, and the main loop. The protocol itself is
 * helper_proto.c, the same code flashwise-sim runs on the host.
 *
 * Hardware facts (ESP8266 UART0, public register descriptions in the SDK
 * headers): registers at 0x60000000; FIFO +0x00 (read: next received byte,
 * write: queue a byte), INT_ENA +0x0C, INT_CLR +0x10, CLKDIV +0x14 (bit
 * clock divider, low 20 bits), STATUS +0x1C (received bytes waiting in bits
 * 0-7, bytes queued for sending in bits 16-23); both FIFOs hold 128 bytes.
 * The ROM flash and MD5 routines are called at the addresses listed in
 * helper.ld.S. Without hardware in the loop this file is built and checked
 * for size, not run: the simulator runs helper_proto.c instead. */
#include <stdint.h>

#include "helper_proto.h"

/* ---- ROM routines (addresses: helper.ld.S) ---- */

struct rom_md5_ctx {
	uint32_t state[4];
	uint32_t bits[2];
	uint8_t in[64];
};

int SPIRead(uint32_t addr, void *dst, uint32_t len);
int SPIWrite(uint32_t addr, const void *src, uint32_t len);
int SPIEraseSector(uint32_t sector);
int SPIEraseBlock(uint32_t block);
int SPIUnlock(void);
uint32_t SPIParamCfg(uint32_t id, uint32_t chip_size, uint32_t block_size,
		     uint32_t sector_size, uint32_t page_size, uint32_t status_mask);
void spi_flash_attach(void);
void MD5Init(struct rom_md5_ctx *c);
void MD5Update(struct rom_md5_ctx *c, const void *p, uint32_t n);
void MD5Final(uint8_t digest[16], struct rom_md5_ctx *c);
void ets_delay_us(uint32_t us);
void ets_isr_mask(uint32_t mask);
void ets_wdt_disable(void);
void software_reset(void);

void helper_lx106_main(void) __attribute__((noreturn));

/* ---- UART0 ---- */

#define REG(a) (*(volatile uint32_t *)(a))
#define UART_FIFO    REG(0x60000000u)
#define UART_INT_ENA REG(0x6000000Cu)
#define UART_INT_CLR REG(0x60000010u)
#define UART_CLKDIV  REG(0x60000014u)
#define UART_STATUS  REG(0x6000001Cu)
#define UART_RX_COUNT() (UART_STATUS & 0xFFu)
#define UART_TX_COUNT() ((UART_STATUS >> 16) & 0xFFu)
#define UART_FIFO_LEN 128u

/* Bytes taken out of the receive FIFO while the helper is busy sending:
 * READ_FLASH acknowledgements keep arriving while packets go out, more of
 * them than the 128-byte FIFO holds (64 in flight x at most 10 bytes). */
#define RING_LEN 1024u

static uint8_t ring[RING_LEN];
static uint32_t ring_head, ring_tail; /* free-running; head - tail = fill */

static struct rom_md5_ctx md5_ctx;
static struct helper_proto helper;

static void rx_poll(void)
{
	while (UART_RX_COUNT()) {
		uint8_t b = (uint8_t)UART_FIFO;

		if (ring_head - ring_tail < RING_LEN)
			ring[ring_head++ & (RING_LEN - 1u)] = b;
	}
}

static void uart_tx(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		while (UART_TX_COUNT() >= UART_FIFO_LEN - 2u)
			rx_poll();
		UART_FIFO = p[i];
	}
	rx_poll();
}

static void uart_drain(void)
{
	while (UART_TX_COUNT())
		rx_poll();
}

static void uart_set_baud(void *ctx, uint32_t new_baud, uint32_t old_baud)
{
	/* The divider in use times the rate it gives is the UART clock,
	 * whatever the crystal: no clock assumption needed. */
	uint32_t clk = (UART_CLKDIV & 0xFFFFFu) * old_baud;

	(void)ctx;
	uart_drain();
	/* The FIFO is empty; the last byte may still be in the shifter. */
	ets_delay_us(20000000u / old_baud + 10u);
	UART_CLKDIV = ((clk + new_baud / 2u) / new_baud) & 0xFFFFFu;
}

/* ---- flash, MD5, registers ---- */

static int flash_read(void *ctx, uint32_t addr, uint8_t *dst, uint32_t len)
{
	(void)ctx;
	return SPIRead(addr, dst, len) != 0;
}

static int flash_write(void *ctx, uint32_t addr, const uint8_t *src, uint32_t len)
{
	(void)ctx;
	return SPIWrite(addr, src, len) != 0;
}

static int flash_erase_sector(void *ctx, uint32_t sector)
{
	(void)ctx;
	return SPIEraseSector(sector) != 0;
}

static int flash_erase_block(void *ctx, uint32_t block)
{
	(void)ctx;
	return SPIEraseBlock(block) != 0;
}

static int flash_unlock(void *ctx)
{
	(void)ctx;
	return SPIUnlock() != 0;
}

/* The ROM routines refuse addresses past the size configured here. */
static void flash_set_size(void *ctx, uint32_t size)
{
	(void)ctx;
	SPIParamCfg(0, size, 0x10000u, 0x1000u, 0x100u, 0xFFFFu);
}

static void md5_begin(void *ctx)
{
	(void)ctx;
	MD5Init(&md5_ctx);
}

static void md5_update(void *ctx, const uint8_t *p, uint32_t n)
{
	(void)ctx;
	MD5Update(&md5_ctx, p, n);
}

static void md5_end(void *ctx, uint8_t out[16])
{
	(void)ctx;
	MD5Final(out, &md5_ctx);
}

static uint32_t reg_read(void *ctx, uint32_t addr)
{
	(void)ctx;
	return REG(addr);
}

static void reg_write(void *ctx, uint32_t addr, uint32_t value)
{
	(void)ctx;
	REG(addr) = value;
}

static void delay_us(void *ctx, uint32_t us)
{
	(void)ctx;
	ets_delay_us(us);
}

static void reboot(void *ctx)
{
	(void)ctx;
	uart_drain();
	ets_delay_us(2000);
	software_reset();
	for (;;)
		;
}

static const struct helper_proto_platform platform = {
	.tx = uart_tx,
	.flash_read = flash_read,
	.flash_write = flash_write,
	.flash_erase_sector = flash_erase_sector,
	.flash_erase_block = flash_erase_block,
	.flash_unlock = flash_unlock,
	.flash_set_size = flash_set_size,
	.md5_begin = md5_begin,
	.md5_update = md5_update,
	.md5_end = md5_end,
	.reg_read = reg_read,
	.reg_write = reg_write,
	.delay_us = delay_us,
	.set_baud = uart_set_baud,
	.reboot = reboot,
};

extern uint32_t _helper_bss_start[], _helper_bss_end[];

void helper_lx106_main(void)
{
	uint8_t chunk[64];

	for (uint32_t *w = _helper_bss_start; w < _helper_bss_end; w++)
		*w = 0;
	/* The ROM loader received through its UART interrupt: from here on
	 * the helper polls, and nothing else may take bytes from the FIFO. */
	ets_isr_mask(0xFFFFFFFFu);
	UART_INT_ENA = 0;
	UART_INT_CLR = 0xFFFFFFFFu;
	ets_wdt_disable();
	/* Flash pins and mode as the ROM boots, and the ROM flash routines
	 * sized for the largest chip until SPI_SET_PARAMS. */
	spi_flash_attach();
	flash_set_size(0, HELPER_PROTO_FLASH_MAX);

	helper_proto_init(&helper, &platform);
	helper_proto_start(&helper);
	for (;;) {
		uint32_t n = 0;

		rx_poll();
		while (n < sizeof chunk && ring_tail != ring_head)
			chunk[n++] = ring[ring_tail++ & (RING_LEN - 1u)];
		if (n)
			helper_proto_input(&helper, chunk, n);
	}
}
