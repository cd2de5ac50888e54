/* The STK500v1 driver (Arduino Optiboot, the old ATmegaBOOT) behind struct
 * device_ops. Bytes and page plans come from stk500_proto (pure); this file
 * adds the conversation: the auto-reset pulse before every sync, finding
 * the bootloader's short listening window, page-wise writes and read-back
 * verification, and getting the session back after a lost byte: a
 * GET_SYNC resync while the bootloader still listens (a byte lost on its
 * way to the host), else a fresh reset (a byte lost on its way to the
 * board breaks the frame, and Optiboot leaves through its watchdog).
 *
 * The bootloader leaves for the application after about 1 s without a
 * byte. The driver notices a pause that long before any operation and
 * resets the board into the bootloader again (over DTR/RTS; with manual
 * entry it asks the technician to press RESET), then checks that the same
 * chip answers. The engine may therefore pause between steps.
 *
 * d->priv is created by connect() (or dev_stk500_set_options()) and freed
 * by close(). identify() must run after connect() and before read, write
 * or verify. */
#ifndef FLASHWISE_DEV_STK500_H
#define FLASHWISE_DEV_STK500_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "error.h"

extern const struct device_ops dev_stk500_ops;

#define DEV_STK500_WHY_NOT \
	"STK500v1 bootloaders have no checksum command (verify reads every page " \
	"back) and no baud rate change"

struct dev_stk500_options {
	unsigned connect_attempts; /* reset pulse + sync rounds (default 5) */
	unsigned manual_wait_ms;   /* no reset lines: how long to keep sending
	                            * GET_SYNC while the technician presses
	                            * RESET (default 30000) */
	unsigned timeout_ms;       /* the shortest wait for a reply (default
	                            * 500, plus the reply's time on the line) */
	unsigned recoveries;       /* recoveries one read, write or verify may
	                            * use in a row after lost replies, without
	                            * a chunk read or a page written between
	                            * them, and 4 times that in all: a GET_SYNC
	                            * resync while the bootloader still listens,
	                            * else a reset + resync (default 3) */
	unsigned read_chunk;       /* bytes per READ_PAGE; 0 = the largest the
	                            * bootloader answers (256 on Optiboot,
	                            * 1024 on ATmegaBOOT) */
	bool fill_erased;          /* pages the image covers only in part:
	                            * 0xFF for the rest instead of the bytes
	                            * the chip holds (default false: the
	                            * chip's bytes are read and kept) */
	bool skip_unchanged;       /* do not write pages whose current contents
	                            * are known (a read() in this session, or
	                            * dev_stk500_set_previous()) and equal the
	                            * new ones (default false). Pages a verify
	                            * found intact are never written again. */
};

void dev_stk500_options_default(struct dev_stk500_options *o);
/* Sets the options on d (creating d->priv if needed). d->ops must be
 * &dev_stk500_ops. */
int dev_stk500_set_options(struct device *d, const struct dev_stk500_options *o,
			   struct fw_err *e);

/* Tells the driver what flash [addr, addr+len) holds now (for example the
 * backup just read), so that a write with skip_unchanged leaves the equal
 * pages alone and fills partial pages without reading them. Only whole
 * pages inside the range count. Call after connect(): a connect forgets
 * it. Every page is still verified. */
int dev_stk500_set_previous(struct device *d, uint32_t addr, const uint8_t *data,
			    uint32_t len, struct fw_err *e);

/* What the last write() did: pages written, skipped as unchanged, read
 * back to fill partial pages, rewritten after a recovery, recoveries
 * (since that write began, the verify's too), and of those the resyncs
 * that needed no reset. */
struct dev_stk500_stats {
	size_t pages_written;
	size_t pages_skipped;
	size_t pages_filled;
	size_t pages_rewritten;
	unsigned recoveries;
	unsigned resyncs;
};
int dev_stk500_last_stats(const struct device *d, struct dev_stk500_stats *out);

/* EEPROM over the bootloader. FW_EUNSUPPORTED on Optiboot and unknown
 * loaders: Optiboot 4.4 ignores the memory type, so an EEPROM write would
 * erase and reprogram flash page 0 (the application's vector table).
 * ATmegaBOOT honours it. addr and len must be even (word addresses);
 * len up to 256 per write call. */
int dev_stk500_eeprom_read(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
			   struct fw_err *e);
int dev_stk500_eeprom_write(struct device *d, uint32_t addr, const uint8_t *data,
			    uint32_t len, struct fw_err *e);

#endif
