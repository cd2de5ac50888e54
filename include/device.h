/* The device seam: what the wizard and the low-level verbs ask of a chip
 * family's bootloader, whatever protocol it speaks. A new family is one new
 * file in src/dev/ that fills a struct device_ops; the engine never sees a
 * protocol. Every operation returns FW_OK or a negative enum fw_rc with a
 * message a technician can act on in e.
 *
 * Safety contract for every driver:
 * - identify() reports what the chip says about itself; device_match()
 *   compares it with the profile, and nothing is erased before it matched;
 * - write() never reports FW_OK for data it did not hand to the loader
 *   intact; verify() reports FW_OK only after a comparison that could have
 *   failed (a read-back or an on-chip hash of exactly the written bytes);
 * - what a driver cannot do is a capability, said before it is needed,
 *   never a silent skip. */
#ifndef FLASHWISE_DEVICE_H
#define FLASHWISE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "profile.h"
#include "transport.h"

struct device_identity {
	char chip[32];          /* detected, in the profile's spelling: "esp8266" */
	bool has_chip_magic;
	uint32_t chip_magic;    /* ESP: word at 0x40001000 */
	bool has_mac;
	uint8_t mac[6];
	bool has_chip_id;
	uint32_t chip_id;
	uint32_t flash_id;      /* JEDEC: manufacturer << 16 | type << 8 | capacity; 0 unknown */
	uint32_t flash_size;    /* bytes, from the JEDEC id (or the part's fixed size); 0 unknown */
	uint32_t crystal_mhz;   /* 0 unknown */
	bool has_signature;
	uint8_t signature[3];   /* AVR */
	char loader[64];        /* "ESP8266 ROM", "Optiboot 4.4", ... */
};

struct device_caps {
	bool can_reset;         /* DTR/RTS drive reset and boot mode (else manual entry) */
	bool can_read;          /* flash can be read back: backups */
	bool can_hash;          /* an on-chip digest of a region (ESP SPI_FLASH_MD5) */
	bool exact_erase;       /* erases exactly what it is asked to */
	bool can_change_baud;
	bool compressed_write;
	char why_not[256];      /* why a capability is missing, for the wizard to say */
	/* EEPROM the loader can read (backups); 0 when it cannot, with the
	 * reason in eeprom_why_not, or when the family has none (both empty). */
	uint32_t eeprom_size;
	char eeprom_why_not[256];
};

/* Progress of long work: phase ("erase", "write", "read", "verify"), bytes
 * done of total. Called at most a few times per second by drivers. */
typedef void (*device_progress_fn)(void *ctx, const char *phase, uint64_t done,
				   uint64_t total);
/* Log lines for the technician ("resynchronised after a checksum error").
 * Drivers never print. */
typedef void (*device_log_fn)(void *ctx, const char *line);

struct device;

/* Which written ranges differ (verify); the driver fills it. */
#define DEVICE_MAX_MISMATCH 32
struct device_verify_result {
	size_t nmismatch;
	struct {
		uint32_t addr;
		uint32_t len;
	} mismatch[DEVICE_MAX_MISMATCH];
	uint64_t bytes_checked;
	char method[64];        /* "md5 on chip", "read-back" */
};

struct device_ops {
	const char *name;       /* "esp-rom", "stk500v1" */
	/* Enters the bootloader (reset sequence or the technician's manual
	 * entry, then sync). FW_ETIMEOUT when the loader does not answer. */
	int (*connect)(struct device *d, struct fw_err *e);
	int (*identify)(struct device *d, struct device_identity *id, struct fw_err *e);
	void (*caps)(struct device *d, struct device_caps *c);
	/* Reads [addr, addr+len) into out (backups). */
	int (*read)(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
		    struct fw_err *e);
	/* Erases and writes every range of img. */
	int (*write)(struct device *d, const struct image *img, struct fw_err *e);
	/* Compares every range of img with the flash. FW_EVERIFY when any
	 * differs (r lists where). */
	int (*verify)(struct device *d, const struct image *img,
		      struct device_verify_result *r, struct fw_err *e);
	/* Leaves the loader: run = start the application (hard reset). */
	int (*leave)(struct device *d, bool run, struct fw_err *e);
	/* Reads EEPROM [addr, addr+len) into out; NULL for families without
	 * one. Only after caps() gave an eeprom_size. */
	int (*read_eeprom)(struct device *d, uint32_t addr, uint32_t len, uint8_t *out,
			   struct fw_err *e);
	/* Frees d->priv (the transport is the caller's). */
	void (*close)(struct device *d);
};

struct device {
	const struct device_ops *ops;
	struct transport *t;        /* owned by the caller */
	const struct profile *p;
	void *priv;                 /* the driver's state */
	device_progress_fn progress;
	device_log_fn log;
	void *cb_ctx;               /* passed to progress and log */
	bool manual_entry;          /* no reset lines: the technician enters the loader */
	uint64_t last_progress_ns;  /* device_progress() throttling; drivers leave it alone */
};

/* Compares an identity with the profile (chip magic or AVR signature, flash
 * size). FW_EMISMATCH naming both values. Pure. */
int device_match(const struct profile *p, const struct device_identity *id,
		 struct fw_err *e);

/* Widens every range of r to whole units (pages, sectors) and merges the
 * ones that then touch: what changed, in the units a write works in (a
 * misplaced page may match its old bytes here and there). Pure. */
void device_verify_widen(struct device_verify_result *r, uint32_t unit);

#endif
