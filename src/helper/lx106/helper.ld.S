/* Linker script of the lx106 build (run through the C preprocessor so the
 * addresses and budgets come from include/helper_proto.h alone). Exceeding
 * a budget is a link error ("region ... overflowed").
 *
 * Segments: code and its literal pools in IRAM (instruction RAM only takes
 * 32-bit accesses, so nothing byte-addressed goes there); data and
 * read-only data in DRAM right after; then bss and the stack, which are not
 * uploaded (the entry zeroes bss). */
#define HELPER_PROTO_CONSTANTS_ONLY
#include "helper_proto.h"

MEMORY
{
	iram (rx) : ORIGIN = HELPER_PROTO_IRAM_BASE, LENGTH = HELPER_PROTO_IRAM_BUDGET
	dram (rw) : ORIGIN = HELPER_PROTO_DRAM_BASE, LENGTH = HELPER_PROTO_DRAM_BUDGET
}

PHDRS
{
	iram_seg PT_LOAD;
	dram_seg PT_LOAD;
	bss_seg PT_LOAD;
}

ENTRY(helper_lx106_entry)

SECTIONS
{
	/* Literals first: l32r only loads from addresses below the code. */
	.text : ALIGN(4)
	{
		*(.literal .literal.*)
		*(.text .text.*)
		. = ALIGN(4);
	} > iram :iram_seg

	.data : ALIGN(4)
	{
		*(.rodata .rodata.*)
		*(.data .data.*)
		*(.sdata .sdata.*)
		. = ALIGN(4);
	} > dram :dram_seg

	.bss (NOLOAD) : ALIGN(8)
	{
		_helper_bss_start = .;
		*(.sbss .sbss.*)
		*(.bss .bss.*)
		*(COMMON)
		. = ALIGN(4);
		_helper_bss_end = .;
	} > dram :bss_seg

	.stack (NOLOAD) : ALIGN(16)
	{
		. += HELPER_PROTO_STACK_SIZE;
		_helper_stack_top = .;
	} > dram :bss_seg
}

/* ESP8266 ROM routines the helper calls. Addresses: the ROM symbol table
 * Espressif publishes with its SDK (ld/eagle.rom.addr.v6.ld in
 * ESP8266_NONOS_SDK; SPIRead at 0x40004B1C is also named in the protocol
 * reference, section 6). The ROM's integer division and memory routines
 * come from the same table, for what the compiler calls on its own. */
PROVIDE(SPIRead = 0x40004b1c);
PROVIDE(SPIWrite = 0x40004a4c);
PROVIDE(SPIEraseSector = 0x40004a00);
PROVIDE(SPIEraseBlock = 0x400049b4);
PROVIDE(SPIUnlock = 0x40004878);
PROVIDE(SPIParamCfg = 0x40004c2c);
PROVIDE(spi_flash_attach = 0x40004644);
PROVIDE(MD5Init = 0x40009818);
PROVIDE(MD5Update = 0x40009834);
PROVIDE(MD5Final = 0x40009900);
PROVIDE(ets_delay_us = 0x40002ecc);
PROVIDE(ets_isr_mask = 0x40000f98);
PROVIDE(ets_wdt_disable = 0x400030f0);
PROVIDE(software_reset = 0x4000264c);
PROVIDE(__udivsi3 = 0x4000e21c);
PROVIDE(__umodsi3 = 0x4000e268);
PROVIDE(__divsi3 = 0x4000dc88);
PROVIDE(__muldi3 = 0x40000650);
PROVIDE(memcpy = 0x4000df48);
PROVIDE(memset = 0x4000e190);
