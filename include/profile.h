/* Device profiles: one INI file per device model/revision/region.
 *
 * One const table (profile_schema()) describes every key; the same table
 * drives validation, `flashwise profile show` and the key list in
 * man/flashwise-profile.5. Validation is strict: an unknown section or key,
 * a wrong type, an out-of-range value or an inconsistent layout is an error
 * that names "file:[section] key" and says what is expected. */
#ifndef FLASHWISE_PROFILE_H
#define FLASHWISE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

#define PROFILE_MAX_PARTITIONS 16
#define PROFILE_MAX_DIAGS 32

enum profile_family {
	PROFILE_FAMILY_ESP8266,
	PROFILE_FAMILY_ESP32, /* the ESP32 family: esp32, esp32-s2, -s3, -c3 ... */
	PROFILE_FAMILY_AVR,
};

enum profile_protocol {
	PROFILE_PROTO_ESP_ROM,  /* "esp-rom": the Espressif ROM serial loader */
	PROFILE_PROTO_STK500V1, /* "stk500v1": Arduino Optiboot / ATmegaBOOT */
};

enum profile_reset {
	PROFILE_RESET_AUTO,   /* DTR/RTS drive boot mode and reset */
	PROFILE_RESET_MANUAL, /* the technician presses buttons: manual_instructions */
};

/* ESP header flag values, as stored in image byte 2 (mode). */
enum profile_flash_mode {
	PROFILE_MODE_NONE = -1, /* not an ESP device: no header flags */
	PROFILE_MODE_QIO = 0,
	PROFILE_MODE_QOUT = 1,
	PROFILE_MODE_DIO = 2,
	PROFILE_MODE_DOUT = 3,
};

enum partition_role {
	PART_ROLE_APP,             /* application / firmware */
	PART_ROLE_BOOTLOADER,      /* second-stage bootloader (ESP32 at 0x1000, AVR boot section) */
	PART_ROLE_PARTITION_TABLE, /* ESP32 partition table */
	PART_ROLE_DATA,            /* file systems, NVS, otadata and other data */
	PART_ROLE_RF_CAL,          /* ESP8266 SDK RF calibration sector */
	PART_ROLE_INIT_DATA,       /* ESP8266 esp_init_data_default (flash size - 0x4000) */
	PART_ROLE_BLANK,           /* ESP8266 system params, written blank (flash size - 0x2000) */
};

struct profile_partition {
	char name[32];       /* from the section name [partition.NAME] */
	uint32_t offset;
	uint32_t size;
	enum partition_role role;
	bool protect;        /* never written by flashwise (e.g. the AVR boot section) */
	char file[256];      /* default file ("" = none); "@blank" = 0xFF fill;
	                        a relative path is relative to the profile's folder */
};

struct profile {
	char path[512];      /* the file it was loaded from */
	char id[64];         /* file name without .ini: the name used on the command line */

	/* [device] */
	char name[128];      /* "NodeMCU DevKit 1.0 (ESP-12E)" */
	char model[64];
	char revision[64];
	char region[32];
	enum profile_family family;
	enum profile_protocol protocol;
	char chip[32];       /* "esp8266", "esp32", "atmega328p", ... */

	/* [flash] */
	uint32_t flash_size;     /* bytes */
	uint32_t sector_size;    /* erase unit: partitions align to it */
	uint32_t page_size;      /* program unit */
	int flash_mode;          /* enum profile_flash_mode */
	uint32_t flash_freq_mhz; /* 0 when not an ESP device */
	uint32_t flash_size_flag;/* the header's size flag in bytes; must equal flash_size */

	/* [serial] */
	uint32_t rom_baud;       /* talking to the loader */
	uint32_t flash_baud;     /* after a baud change (ESP32); = rom_baud when none */
	enum profile_reset reset;
	char manual_instructions[512];

	/* [identity] */
	bool has_chip_magic;
	uint32_t chip_magic;     /* ESP: word at 0x40001000 */
	bool has_signature;
	uint8_t signature[3];    /* AVR signature bytes */

	/* [boot] */
	char boot_banner[256];   /* POSIX extended regex a healthy boot prints */
	char boot_fail[256];     /* regex of a line that means the boot failed; "" = none */
	uint32_t boot_baud;
	uint32_t boot_timeout_ms;

	/* [trust] */
	char public_key[512];    /* PEM file, relative to the profile's folder; "" = none */
	bool require_signature;

	/* [loader] */
	bool helper;             /* ESP8266: may upload flashwise's RAM helper */

	struct profile_partition part[PROFILE_MAX_PARTITIONS];
	size_t npart;
};

/* The schema: one row per key. section "partition.*" is a template for
 * every [partition.NAME] section. */
enum profile_type {
	PROFILE_T_STRING,
	PROFILE_T_ENUM,   /* one of `choices` ("a|b|c") */
	PROFILE_T_UINT,   /* decimal or 0x hex, within [min, max] */
	PROFILE_T_SIZE,   /* like UINT, also 512KB / 4MB / 32m (megabits) */
	PROFILE_T_BOOL,   /* yes/no/true/false/1/0 */
	PROFILE_T_BYTES,  /* hex bytes "1E 95 0F" */
	PROFILE_T_REGEX,  /* POSIX extended regular expression */
};

/* Family masks for struct profile_key.families / def_families. */
#define PROFILE_FAMILY_BIT(f) (1u << (f))
#define PROFILE_FAMILIES_ESP \
	(PROFILE_FAMILY_BIT(PROFILE_FAMILY_ESP8266) | PROFILE_FAMILY_BIT(PROFILE_FAMILY_ESP32))

/* struct profile_key.flags */
#define PROFILE_KEY_HEX      0x1u /* shown in hex */
#define PROFILE_KEY_MEGABITS 0x2u /* PROFILE_T_SIZE: also esptool's megabits, 4m = 512KB */
#define PROFILE_KEY_NUMBER   0x4u /* PROFILE_T_ENUM: stored as the number the choice
				     starts with ("80m" -> 80, uint32_t) */
#define PROFILE_KEY_TEXT     0x8u /* PROFILE_T_ENUM: stored as text (char array);
				     otherwise as the choice's index (int) */

struct profile_key {
	const char *section;
	const char *name;
	enum profile_type type;
	const char *choices;   /* PROFILE_T_ENUM: "qio|qout|dio|dout" */
	uint64_t min, max;     /* PROFILE_T_UINT / SIZE / BYTES (count) / STRING (length) */
	bool required;
	const char *def;       /* default as text; NULL = no default;
				  "=name" = the value of key `name` of the same section */
	const char *help;
	/* Added fields: */
	unsigned families;     /* PROFILE_FAMILY_BIT()s the key belongs to; 0 = every family */
	unsigned def_families; /* where `def` applies (0 = wherever the key belongs);
				  elsewhere a required key must be given */
	unsigned flags;        /* PROFILE_KEY_* */
	size_t offset, size;   /* where the decoded value lives: in struct profile, or in
				  struct profile_partition for "partition.*" */
};

const struct profile_key *profile_schema(size_t *n);

/* One problem found in a profile: "file:[section] key: what is expected". */
struct profile_diag {
	char text[384];
};

struct profile_diags {
	struct profile_diag d[PROFILE_MAX_DIAGS];
	size_t n;          /* how many were stored */
	size_t total;      /* how many were found (may exceed PROFILE_MAX_DIAGS) */
};

/* Adds one diagnostic (counted in total even when the array is full). */
void profile_diags_add(struct profile_diags *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Checks the raw text the way iniparser will read it: lines it cannot parse
 * ("FILE:LINE: ..."), keys before the first section, duplicate keys and
 * sections. Adds every problem to diags and returns how many lines iniparser
 * would reject (when > 0 the text must not be handed to iniparser). */
size_t profile_scan_text(const char *path, const char *text, size_t len,
			 struct profile_diags *diags);

/* Validates an iniparser dictionary against the schema and fills p. Appends to
 * diags (may be NULL); returns FW_OK, or FW_EPROFILE when diags holds any
 * problem (the first one also in e). Pure: no file is touched. */
struct _dictionary_;
int profile_from_ini(const char *path, const struct _dictionary_ *ini, struct profile *p,
		     struct profile_diags *diags, struct fw_err *e);

/* Parses a PROFILE_T_UINT or PROFILE_T_SIZE value: decimal or 0x hex, and for
 * SIZE a unit K/KB/KiB/MB/MiB (PROFILE_KEY_MEGABITS: also "4m" = 4 megabits).
 * Returns FW_OK, or FW_EPROFILE with a short reason in *why. No range check. */
int profile_parse_number(const char *text, enum profile_type type, unsigned flags,
			 uint64_t *out, const char **why);

/* Loads and validates a profile file. Returns FW_OK, or FW_EPROFILE with
 * every problem in diags (may be NULL) and the first one in e. */
int profile_load(const char *path, struct profile *p, struct profile_diags *diags,
		 struct fw_err *e);

/* Finds a profile by id or path: a path is used as it is; an id is looked up
 * as <dir>/<id>.ini in each ':'-separated folder of `search`. */
int profile_find(const char *id_or_path, const char *search, char *out, size_t outlen,
		 struct fw_err *e);

/* The profiles of the first folder on the search path that exists (later
 * folders would only repeat the installed copies), sorted by file name. An
 * invalid profile is listed with ok false and its first problem in error. */
struct profile_entry {
	char file[256];      /* "nodemcu-v1.ini" */
	bool ok;
	struct profile p;    /* when ok */
	char error[384];
};
int profile_catalog(const char *search, char *dir, size_t dirlen, struct profile_entry **out,
		    size_t *n, struct fw_err *e);

/* Human-readable description of a loaded profile (for `profile show`). */
void profile_format(const struct profile *p, struct strbuf *out);
/* The schema as man(7) text: one .TP entry per key, grouped by section. */
void profile_schema_man(struct strbuf *out);

const char *profile_family_name(enum profile_family f);
const char *profile_protocol_name(enum profile_protocol pr);
const char *profile_mode_name(int mode);
const char *partition_role_name(enum partition_role r);
/* The partition holding addr, or NULL. */
const struct profile_partition *profile_partition_at(const struct profile *p, uint32_t addr);
const struct profile_partition *profile_partition_named(const struct profile *p,
							const char *name);
/* The ESP chip's bootloader offset (0x0 ESP8266, 0x1000 ESP32/-S2, ...);
 * UINT32_MAX for families with no ESP image header. */
uint32_t profile_esp_bootloader_offset(const struct profile *p);

#endif
