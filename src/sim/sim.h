/* flashwise-sim internals: a simulated ESP8266/ESP32 behind a pseudo-
 * terminal, speaking the ROM serial loader protocol byte for byte (see
 * /work/shared/reference/esp-rom-protocol.md). Not part of the library: the
 * simulator is a test and demo tool, a front end of its own.
 *
 * Files: main.c (options, main loop), sim_io.c (pty, line-rate pacing,
 * baud mismatch, faults, DTR/RTS side channel), sim_flash.c (flash file,
 * erase/program model), sim_rom.c (the ROM loader commands), sim_boot.c
 * (reset, ROM banner, booting the image in flash), sim_helper.c
 * (flashwise's RAM helper, uploaded by the driver: the helper's own
 * protocol code, src/helper/helper_proto.c, runs on the simulated chip). */
#ifndef FLASHWISE_SIM_H
#define FLASHWISE_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "esp_proto.h"
#include "slip.h"

/* ---- faults (--fault KIND[:RATE]) ---- */

enum sim_dir { SIM_RX = 0, SIM_TX = 1 }; /* RX: host -> device */

enum sim_fault_kind {
	SIM_FAULT_DROP,
	SIM_FAULT_CORRUPT,
	SIM_FAULT_DELAY,
	SIM_FAULT_KINDS
};

struct sim_faults {
	uint64_t seed;
	double rate[2][SIM_FAULT_KINDS]; /* per byte probability, [dir][kind] */
	uint64_t index[2];               /* bytes seen per direction */
	long hang_after;                 /* commands answered before silence; -1 off */
	long reset_after_blocks;         /* FLASH_DATA blocks before a reset; -1 off */
	long commands;
	long data_blocks;
};

/* ---- byte queues with per-byte due times (pacing, delays, busy flash) ---- */

struct sim_txb {
	uint64_t due;   /* not written before this time */
	uint32_t baud;  /* the chip's UART rate for this byte */
	uint8_t b;
};

struct sim_rxb {
	uint64_t due;   /* the byte has fully "arrived" at the chip */
	uint8_t b;
};

struct sim_txq {
	struct sim_txb *v;
	size_t head, len, cap;
	uint64_t last_due;
};

struct sim_rxq {
	struct sim_rxb *v;
	size_t head, len, cap;
	uint64_t last_due;
};

#define SIM_RXQ_MAX 65536u

/* ---- chip state ---- */

enum sim_mode {
	SIM_MODE_RESET,  /* EN held low: deaf and mute */
	SIM_MODE_LOADER, /* ROM serial loader (download mode) */
	SIM_MODE_APP,    /* running the application from flash (or hung ROM) */
	SIM_MODE_HUNG,   /* fault: stopped answering */
	SIM_MODE_HELPER, /* flashwise's RAM helper owns the UART */
};

#define SIM_REGS_MAX 64
#define SIM_RAM_MAX  (512u * 1024u)
#define SIM_RAM_SEGS 8

/* One MEM_BEGIN region: size bytes at addr, kept at ram[off..off+size). */
struct sim_ram_seg {
	uint32_t addr, size, off;
	uint32_t len;            /* bytes received (highest MEM_DATA end) */
};

struct sim_reg {
	uint32_t addr, value;
};

struct sim_config {
	const struct esp_proto_chip_info *chip;
	uint32_t flash_size;
	uint32_t jedec;          /* manufacturer | type << 8 | capacity << 16 */
	uint8_t mac[6];
	bool pacing;
	bool flash_timing;
	bool boot_download;      /* initial boot (and without a lines file) */
	bool verbose;
};

struct sim {
	struct sim_config cfg;
	enum esp_proto_family fam;
	enum esp_proto_loader rom;

	/* flash */
	uint8_t *flash;
	int flash_fd;            /* -1: anonymous memory */

	/* pty */
	int master, slave;
	char slave_path[128];

	/* chip */
	enum sim_mode mode;
	uint32_t uart_baud;      /* the chip's rate */
	bool baud_locked;        /* CHANGE_BAUDRATE fixed the rate (no autobaud) */
	uint64_t busy_until;     /* flash busy: no command processing before */
	struct sim_reg regs[SIM_REGS_MAX];
	size_t n_regs;
	struct esp_proto_esp8266_otp otp;
	bool spi_attached;       /* ESP8266: FLASH_BEGIN; ESP32: SPI_ATTACH */
	uint32_t rom_flash_size; /* ESP32 ROM: 2 MB until SPI_SET_PARAMS */

	/* FLASH_BEGIN / FLASH_DEFL_BEGIN */
	bool flash_open, defl_open;
	struct esp_proto_begin fbeg;
	z_stream zs;
	bool zs_init;
	uint32_t defl_written;
	bool defl_done;

	/* MEM_BEGIN: every region uploaded since the last reset, in order */
	bool mem_open;
	struct esp_proto_begin mbeg;
	uint8_t *ram;            /* SIM_RAM_MAX bytes shared by the regions */
	uint32_t ram_used;
	struct sim_ram_seg ram_seg[SIM_RAM_SEGS];
	size_t n_ram_seg;

	/* flashwise's RAM helper (SIM_MODE_HELPER); allocated on first use */
	struct sim_helper *helper;

	/* SLIP */
	struct slip_decoder dec;
	uint8_t dec_buf[ESP_PROTO_PACKET_MAX + 64];

	/* io */
	struct sim_txq tx;
	struct sim_rxq rx;
	uint32_t garble_ctr;
	struct sim_faults faults;
	/* Bytes that crossed the pty (before rx faults, after tx faults), for
	 * --stats: what the line carried, whatever the ROM made of it. */
	uint64_t wire_rx, wire_tx;

	/* DTR/RTS side channel */
	int lines_fd;            /* -1: none */
	bool lines_fifo;
	char lines_path[512];
	char lines_buf[1024];
	size_t lines_len;
	bool dtr, rts;           /* asserted */
	bool boot_pending;
	uint64_t boot_at;
	bool gpio0_low_at_boot;
};

/* sim_io.c */
uint64_t sim_now(void);
int sim_pty_open(struct sim *s);
uint32_t sim_client_baud(const struct sim *s);
void sim_tx(struct sim *s, const uint8_t *p, size_t n, uint32_t baud);
void sim_tx_frame(struct sim *s, const struct esp_proto_resp *r);
void sim_tx_drop_all(struct sim *s);
/* Writes due bytes; returns ns until the next due byte (-1: none). Waits
 * are in nanoseconds so the line rate holds at 921600 baud and above,
 * where a byte takes 11 us and millisecond rounding would dominate. */
int64_t sim_tx_flush(struct sim *s, bool *want_pollout);
/* Reads from the pty into the rx queue (pacing, faults); false on a fatal
 * read error. */
bool sim_rx_read(struct sim *s);
/* Feeds due bytes to the ROM; returns ns until the next due byte (-1). */
int64_t sim_rx_process(struct sim *s);
int sim_lines_open(struct sim *s, const char *path, bool create);
/* Reads new DTR/RTS lines and applies them; returns ns until the next
 * poll is needed (-1: none). */
int64_t sim_lines_poll(struct sim *s);
bool sim_fault_hit(struct sim *s, enum sim_dir d, enum sim_fault_kind k,
		   uint64_t index, uint64_t *rnd);
void sim_queues_free(struct sim *s);

/* sim_flash.c */
int sim_flash_open(struct sim *s, const char *path);
void sim_flash_close(struct sim *s);
void sim_flash_erase(struct sim *s, uint32_t first_sector, uint32_t count);
/* NOR programming: bits can only go from 1 to 0. */
void sim_flash_program(struct sim *s, uint32_t addr, const uint8_t *p, size_t n);
void sim_flash_sync(struct sim *s);
uint64_t sim_flash_erase_ns(const struct sim *s, uint32_t sectors);
uint64_t sim_flash_program_ns(const struct sim *s, size_t bytes);

/* sim_rom.c */
void sim_rom_reset(struct sim *s);
void sim_rom_packet(struct sim *s, const uint8_t *pkt, size_t n);
uint32_t sim_reg_read(struct sim *s, uint32_t addr);
/* A register write as WRITE_REG does it (SPI user commands run). */
void sim_reg_write(struct sim *s, const struct esp_proto_reg_write *w);
/* The chip is busy (flash work) for ns more: no input is taken and no
 * output leaves before then. */
void sim_busy_for(struct sim *s, uint64_t ns);
/* What the strapping pins select at the next boot: download mode? */
bool sim_straps_download(const struct sim *s);

/* sim_boot.c */
/* The chip leaves reset: banner, then the loader or the app in flash. */
void sim_boot(struct sim *s, bool download, unsigned rst_cause);
/* EN pulled low: everything stops. */
void sim_hold_reset(struct sim *s);
/* MEM_END with an entry point: run uploaded RAM code. Returns true when the
 * code was recognised and now runs (it then owns the UART); false: the ROM
 * answers and stays in the loader. Recognised: flashwise's RAM helper
 * (helper_blob.h), exactly as built. */
bool sim_run_ram_code(struct sim *s, uint32_t entry);

/* sim_helper.c */
/* True (and the helper runs, its greeting queued) when the uploaded
 * regions and entry are helper_blob.h's. */
bool sim_helper_start(struct sim *s, uint32_t entry);
/* One received byte for the running helper. */
void sim_helper_input(struct sim *s, uint8_t b);
void sim_helper_free(struct sim *s);

#endif
