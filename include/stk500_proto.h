/* STK500v1 as Arduino bootloaders speak it (Optiboot, ATmegaBOOT): command
 * encoding, reply parsing, what the first bytes of a failed sync say, and
 * the page plan of a flash write. Facts: stk500v1-optiboot.md sections 1-3.
 * Pure: buffers in, results out; the conversation lives in src/dev/stk500.c.
 *
 * host -> board: command byte, its fixed arguments, CRC_EOP (0x20).
 * board -> host: INSYNC (0x14), the reply bytes, OK (0x10). Optiboot never
 * sends NOSYNC or FAILED: a bad terminator makes it go silent and leave for
 * the application through its watchdog. */
#ifndef FLASHWISE_STK500_PROTO_H
#define FLASHWISE_STK500_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "profile.h"

/* Reply bytes (stk500.h). */
#define STK500_OK       0x10
#define STK500_FAILED   0x11
#define STK500_UNKNOWN  0x12
#define STK500_NODEVICE 0x13
#define STK500_INSYNC   0x14
#define STK500_NOSYNC   0x15
#define STK500_CRC_EOP  0x20

/* Commands. */
#define STK500_GET_SYNC        0x30
#define STK500_GET_SIGN_ON     0x31
#define STK500_GET_PARAMETER   0x41
#define STK500_SET_DEVICE      0x42
#define STK500_SET_DEVICE_EXT  0x45
#define STK500_ENTER_PROGMODE  0x50
#define STK500_LEAVE_PROGMODE  0x51
#define STK500_CHIP_ERASE      0x52
#define STK500_LOAD_ADDRESS    0x55
#define STK500_UNIVERSAL       0x56
#define STK500_PROG_PAGE       0x64
#define STK500_READ_PAGE       0x74
#define STK500_READ_SIGN       0x75

/* GET_PARAMETER ids. */
#define STK500_PARAM_HW_VER   0x80
#define STK500_PARAM_SW_MAJOR 0x81
#define STK500_PARAM_SW_MINOR 0x82

/* PROG_PAGE / READ_PAGE memory types. */
#define STK500_MEM_FLASH  'F'
#define STK500_MEM_EEPROM 'E'

#define STK500_PAGE_MAX   256u   /* PROG_PAGE: the bootloaders' RAM buffer */
#define STK500_READ_MAX   65535u /* READ_PAGE's 16-bit length field */
#define STK500_OPTIBOOT_READ_MAX 256u /* Optiboot ignores the length's high
                                       * byte; low 0 means 256 */
/* LOAD_ADDRESS takes a 16-bit word address: 128 KB of flash at most. */
#define STK500_FLASH_MAX  0x20000u
#define STK500_CMD_MAX    (5u + STK500_PAGE_MAX)

/* One encoded command and the size of the reply it expects between INSYNC
 * and OK. */
struct stk500_cmd {
	uint8_t b[STK500_CMD_MAX];
	size_t len;
	uint8_t op;
	size_t reply_len;
};

void stk500_cmd_get_sync(struct stk500_cmd *c);
void stk500_cmd_get_parameter(struct stk500_cmd *c, uint8_t id);
void stk500_cmd_enter_progmode(struct stk500_cmd *c);
void stk500_cmd_leave_progmode(struct stk500_cmd *c);
void stk500_cmd_read_sign(struct stk500_cmd *c);
/* byte_addr must be even and below STK500_FLASH_MAX: it is sent as a word
 * address (byte address / 2, low byte first). FW_EINVAL otherwise. */
int stk500_cmd_load_address(struct stk500_cmd *c, uint32_t byte_addr, struct fw_err *e);
/* len 1..STK500_PAGE_MAX. */
int stk500_cmd_prog_page(struct stk500_cmd *c, uint8_t mem, const uint8_t *data, size_t len,
			 struct fw_err *e);
/* len 1..STK500_READ_MAX (Optiboot: at most STK500_OPTIBOOT_READ_MAX). */
int stk500_cmd_read_page(struct stk500_cmd *c, uint8_t mem, size_t len, struct fw_err *e);
/* SET_DEVICE (20 parameter bytes) and SET_DEVICE_EXT (always 5 bytes: the
 * count byte 5 and 4 parameters; Optiboot reads exactly 5). Not needed by
 * Optiboot or ATmegaBOOT, kept for other STK500v1 loaders. */
void stk500_cmd_set_device(struct stk500_cmd *c, const uint8_t params[20]);
void stk500_cmd_set_device_ext(struct stk500_cmd *c, const uint8_t params[4]);
/* The word address a LOAD_ADDRESS carries for a byte address. */
uint16_t stk500_word_address(uint32_t byte_addr);

/* ---- replies: fed byte by byte as they arrive ---- */

enum stk500_reply_state {
	STK500_REPLY_MORE,  /* needs more bytes */
	STK500_REPLY_DONE,  /* INSYNC, reply_len bytes, OK */
	STK500_REPLY_BAD,   /* see why */
};

enum stk500_reply_why {
	STK500_WHY_NONE,
	STK500_WHY_NOSYNC,  /* 0x15 instead of INSYNC: the loader lost the frame */
	STK500_WHY_NOT_INSYNC, /* another byte where INSYNC belongs */
	STK500_WHY_FAILED,  /* 0x11 where OK belongs */
	STK500_WHY_NOT_OK,  /* another byte where OK belongs */
};

struct stk500_reply {
	enum stk500_reply_state state;
	enum stk500_reply_why why;
	uint8_t bad;        /* the byte that made it BAD */
	uint8_t *data;      /* reply_len bytes, the caller's */
	size_t want, have;
	int stage;          /* 0 INSYNC, 1 data, 2 OK, 3 done */
};

void stk500_reply_init(struct stk500_reply *r, uint8_t *data, size_t want);
/* Consumes bytes until the reply is DONE or BAD; returns how many it took
 * (the rest belongs to whatever follows). */
size_t stk500_reply_feed(struct stk500_reply *r, const uint8_t *in, size_t n);
/* "0x15 (NOSYNC) instead of INSYNC", for messages. */
void stk500_reply_describe(const struct stk500_reply *r, char *buf, size_t size);

/* ---- what arrived when no sync succeeded ---- */

enum stk500_noise {
	STK500_NOISE_NONE,    /* nothing at all */
	STK500_NOISE_TEXT,    /* readable text: an application is talking */
	STK500_NOISE_GARBAGE, /* bytes that make no sense: usually a wrong baud rate */
};

/* Classifies the bytes that arrived instead of INSYNC/OK. */
enum stk500_noise stk500_classify_noise(const uint8_t *buf, size_t n);

/* ---- which bootloader ---- */

enum stk500_loader {
	STK500_LOADER_UNKNOWN,
	STK500_LOADER_OPTIBOOT,   /* software version 4.x and later */
	STK500_LOADER_ATMEGABOOT, /* software version 1.x (1.16 on the 328P) */
};

struct stk500_loader_info {
	enum stk500_loader kind;
	uint8_t major, minor;
	bool eeprom;          /* the memory type byte is honoured */
	size_t read_max;      /* largest READ_PAGE it answers in full */
	char name[32];        /* "Optiboot 4.4", "ATmegaBOOT 1.16" */
};

/* From GET_PARAMETER 0x81 / 0x82. EEPROM is claimed only where it was seen
 * to work (ATmegaBOOT); Optiboot 4.4 ignores the memory type and an EEPROM
 * write would reprogram flash page 0, so unknown versions get no EEPROM. */
void stk500_loader_from_version(uint8_t major, uint8_t minor, struct stk500_loader_info *out);

/* ---- planning a flash write ---- */

struct stk500_page {
	uint32_t addr;      /* byte address, page-aligned */
	bool partial;       /* the image covers only part of the page */
};

struct stk500_plan {
	struct stk500_page *page;
	size_t n;
	size_t npartial;
	uint32_t page_size;
};

/* Splits img into the aligned whole pages (p->page_size) that hold its
 * bytes. Refuses, before anything is sent: a page overlapping a protected
 * partition (FW_EGUARD naming it; a page is erased as a whole, so touching
 * one byte of it is touching the bootloader), a page past the end of flash
 * (FW_EIMAGE), an empty image (FW_EINVAL), a page size that is not a power
 * of two up to STK500_PAGE_MAX or flash over STK500_FLASH_MAX
 * (FW_EUNSUPPORTED). plan is empty on failure. */
int stk500_plan_pages(const struct profile *p, const struct image *img, struct stk500_plan *plan,
		      struct fw_err *e);
void stk500_plan_free(struct stk500_plan *plan);
/* The bytes a page is programmed with: the image's bytes, and where the
 * image has none, `current` (the page as the chip holds it; NULL = erased
 * 0xFF). out and current hold page_size bytes. */
void stk500_page_fill(const struct image *img, uint32_t addr, uint32_t page_size,
		      const uint8_t *current, uint8_t *out);

#endif
