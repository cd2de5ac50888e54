/* Device profiles: the schema table, value parsing, validation and the two
 * renderings of the table (`profile show` text and the man page key list).
 *
 * Pure: the input is an iniparser dictionary (or raw text for the line scan),
 * the output a struct profile plus diagnostics. Reading files lives in
 * src/store/profile_load.c. */
#include "profile.h"

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <iniparser.h>

#define FAM(f) PROFILE_FAMILY_BIT(PROFILE_FAMILY_##f)
#define F_ESP PROFILE_FAMILIES_ESP
#define F_AVR FAM(AVR)
#define F_ESP8266 FAM(ESP8266)

#define KB 1024u
#define MB (1024u * 1024u)

#define P_FIELD(f) .offset = offsetof(struct profile, f), \
	.size = sizeof(((struct profile *)0)->f)
#define PART_FIELD(f) .offset = offsetof(struct profile_partition, f), \
	.size = sizeof(((struct profile_partition *)0)->f)

#define BAUD_MIN 300
#define BAUD_MAX 5000000

/* Choice lists shared by the schema and the name functions below. */
#define FAMILY_CHOICES "esp8266|esp32|avr"
#define PROTO_CHOICES "esp-rom|stk500v1"
#define MODE_CHOICES "qio|qout|dio|dout"
#define ROLE_CHOICES "app|bootloader|partition_table|data|rf_cal|init_data|blank"
#define FREQ_CHOICES "80m|60m|48m|40m|30m|26m|24m|20m|16m|15m|12m"
#define CHIP_CHOICES "esp8266|esp8285|esp32|esp32-s2|esp32-s3|esp32-c2|esp32-c3|" \
	"esp32-c5|esp32-c6|esp32-c61|esp32-h2|esp32-p4|" \
	"atmega328p|atmega328|atmega168p|atmega168|atmega8"

static const char *const family_names[] = {"esp8266", "esp32", "avr"};
static const char *const proto_names[] = {"esp-rom", "stk500v1"};
static const char *const mode_names[] = {"qio", "qout", "dio", "dout"};
static const char *const role_names[] = {
	"app", "bootloader", "partition_table", "data", "rf_cal", "init_data", "blank",
};

/* ---- chip facts (esp-rom-protocol.md sections 7 and 10, stk500v1-optiboot.md 3) ---- */

struct chip_info {
	const char *name;
	enum profile_family family;
	/* ESP */
	uint32_t magic[4];
	size_t nmagic;
	uint32_t boot_offset;   /* where the ROM expects the image with the header */
	uint32_t freq_mhz[5];   /* flash frequencies its header can name, 0-terminated */
	uint32_t flag_min, flag_max; /* header size flag range (powers of two) */
	/* AVR */
	uint8_t sig[3];
	uint32_t flash, page;
};

static const struct chip_info chips[] = {
	{"esp8266", PROFILE_FAMILY_ESP8266, {0xFFF0C101}, 1, 0x0, {80, 40, 26, 20},
	 256 * KB, 16 * MB, {0}, 0, 0},
	{"esp8285", PROFILE_FAMILY_ESP8266, {0xFFF0C101}, 1, 0x0, {80, 40, 26, 20},
	 256 * KB, 16 * MB, {0}, 0, 0},
	{"esp32", PROFILE_FAMILY_ESP32, {0x00F01D83}, 1, 0x1000, {80, 40, 26, 20},
	 1 * MB, 16 * MB, {0}, 0, 0},
	{"esp32-s2", PROFILE_FAMILY_ESP32, {0x000007C6}, 1, 0x1000, {80, 40, 26, 20},
	 1 * MB, 16 * MB, {0}, 0, 0},
	{"esp32-s3", PROFILE_FAMILY_ESP32, {0x9}, 1, 0x0, {80, 40, 26, 20},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-c2", PROFILE_FAMILY_ESP32, {0x6F51306F, 0x7C41A06F, 0x0C21E06F}, 3, 0x0,
	 {60, 30, 20, 15}, 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-c3", PROFILE_FAMILY_ESP32, {0x6921506F, 0x1B31506F, 0x4881606F, 0x4361606F},
	 4, 0x0, {80, 40, 26, 20}, 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-c5", PROFILE_FAMILY_ESP32, {0x1101406F}, 1, 0x2000, {80, 40, 20},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-c6", PROFILE_FAMILY_ESP32, {0x2CE0806F}, 1, 0x0, {80, 40, 20},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-c61", PROFILE_FAMILY_ESP32, {0x33F0206F, 0x2421606F}, 2, 0x0, {80, 40, 20},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-h2", PROFILE_FAMILY_ESP32, {0xD7B73E80}, 1, 0x0, {48, 24, 16, 12},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"esp32-p4", PROFILE_FAMILY_ESP32, {0x0, 0x0ADDBAD0}, 2, 0x2000, {80, 40, 20},
	 1 * MB, 128 * MB, {0}, 0, 0},
	{"atmega328p", PROFILE_FAMILY_AVR, {0}, 0, 0, {0}, 0, 0, {0x1E, 0x95, 0x0F}, 32 * KB, 128},
	{"atmega328", PROFILE_FAMILY_AVR, {0}, 0, 0, {0}, 0, 0, {0x1E, 0x95, 0x14}, 32 * KB, 128},
	{"atmega168p", PROFILE_FAMILY_AVR, {0}, 0, 0, {0}, 0, 0, {0x1E, 0x94, 0x0B}, 16 * KB, 128},
	{"atmega168", PROFILE_FAMILY_AVR, {0}, 0, 0, {0}, 0, 0, {0x1E, 0x94, 0x06}, 16 * KB, 128},
	{"atmega8", PROFILE_FAMILY_AVR, {0}, 0, 0, {0}, 0, 0, {0x1E, 0x93, 0x07}, 8 * KB, 64},
};

#define NCHIPS (sizeof chips / sizeof chips[0])

static const struct chip_info *chip_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < NCHIPS; i++)
		if (strcmp(chips[i].name, name) == 0)
			return &chips[i];
	return NULL;
}

/* ---- the schema ---- */

struct section_info {
	const char *name;
	bool required;
	const char *help;
};

static const struct section_info sections[] = {
	{"device", true, "What the device is. family, protocol and chip must agree: "
	 "esp8266 and esp32 chips use esp-rom, avr chips use stk500v1."},
	{"flash", true, "The flash memory and, for ESP chips, the flash parameters that "
	 "belong in the image header."},
	{"serial", true, "How to talk to the bootloader over the serial port."},
	{"identity", true, "What the connected chip must report before anything is "
	 "written: the ROM's magic word on ESP chips, the signature bytes on AVR."},
	{"boot", false, "What a healthy boot prints, checked after flashing. Leave the "
	 "section out when the device prints nothing useful."},
	{"trust", false, "Signature checks on firmware images."},
	{"loader", false, "Helpers flashwise may load into the chip's RAM."},
	{"partition.*", false, "One section [partition.NAME] per flash region (NAME: a-z, "
	 "0-9, _ and -, up to 31 characters; at most 16 partitions). Regions may not "
	 "overlap, must lie inside the flash and start and end on sector boundaries; "
	 "at least one must have role = app."},
};

#define NSECTIONS (sizeof sections / sizeof sections[0])
#define SEC_PARTITION (NSECTIONS - 1)

static const struct profile_key schema[] = {
	/* [device] */
	{.section = "device", .name = "family", .type = PROFILE_T_ENUM,
	 .choices = FAMILY_CHOICES, .required = true, P_FIELD(family),
	 .help = "Chip family: esp8266 (also the ESP8285), esp32 (the whole ESP32 "
		 "family) or avr (Arduino boards)."},
	{.section = "device", .name = "protocol", .type = PROFILE_T_ENUM,
	 .choices = PROTO_CHOICES, .required = true, P_FIELD(protocol),
	 .help = "Bootloader protocol: esp-rom (the Espressif ROM serial loader) or "
		 "stk500v1 (Optiboot and ATmegaBOOT)."},
	{.section = "device", .name = "chip", .type = PROFILE_T_ENUM,
	 .choices = CHIP_CHOICES, .required = true, .flags = PROFILE_KEY_TEXT, P_FIELD(chip),
	 .help = "The exact chip; it decides the expected magic word or signature, the "
		 "bootloader offset and the valid flash settings."},
	{.section = "device", .name = "name", .type = PROFILE_T_STRING, .min = 1, .max = 127,
	 .required = true, P_FIELD(name),
	 .help = "What the technician sees, e.g. \"NodeMCU DevKit 1.0 (ESP-12E)\"."},
	{.section = "device", .name = "model", .type = PROFILE_T_STRING, .max = 63,
	 P_FIELD(model), .help = "Model name or number as printed on the board."},
	{.section = "device", .name = "revision", .type = PROFILE_T_STRING, .max = 63,
	 P_FIELD(revision), .help = "Board revision this profile was written for."},
	{.section = "device", .name = "region", .type = PROFILE_T_STRING, .max = 31,
	 P_FIELD(region), .help = "Market or radio region, when variants differ."},

	/* [flash] */
	{.section = "flash", .name = "size", .type = PROFILE_T_SIZE, .min = 1 * KB,
	 .max = 128 * MB, .required = true, .flags = PROFILE_KEY_HEX, P_FIELD(flash_size),
	 .help = "Size of the flash that is really on the board. AVR: must match the "
		 "chip."},
	{.section = "flash", .name = "sector_size", .type = PROFILE_T_SIZE, .min = 64,
	 .max = 64 * KB, .required = true, .def = "4096", .def_families = F_ESP,
	 P_FIELD(sector_size),
	 .help = "Erase unit, a power of two; partitions start and end on it. ESP SPI "
		 "flash erases 4 KB sectors; on AVR the erase unit is the page, so give "
		 "the page size."},
	{.section = "flash", .name = "page_size", .type = PROFILE_T_SIZE, .min = 16,
	 .max = 4 * KB, .required = true, .def = "256", .def_families = F_ESP,
	 P_FIELD(page_size),
	 .help = "Program unit, a power of two no larger than sector_size (SPI flash "
		 "programs 256-byte pages; the ATmega328P has 128-byte pages)."},
	{.section = "flash", .name = "mode", .type = PROFILE_T_ENUM, .choices = MODE_CHOICES,
	 .required = true, .families = F_ESP, P_FIELD(flash_mode),
	 .help = "SPI flash mode written into the image header. The ESP8285 needs dout."},
	{.section = "flash", .name = "freq", .type = PROFILE_T_ENUM, .choices = FREQ_CHOICES,
	 .required = true, .families = F_ESP, .flags = PROFILE_KEY_NUMBER,
	 P_FIELD(flash_freq_mhz),
	 .help = "SPI flash clock written into the image header. esp8266, esp32, -s2, "
		 "-s3, -c3: 80m, 40m, 26m, 20m; -c6, -c5, -c61, -p4: 80m, 40m, 20m; -c2: "
		 "60m, 30m, 20m, 15m; -h2: 48m, 24m, 16m, 12m."},
	{.section = "flash", .name = "size_flag", .type = PROFILE_T_SIZE, .min = 256 * KB,
	 .max = 128 * MB, .def = "=size", .families = F_ESP,
	 .flags = PROFILE_KEY_HEX | PROFILE_KEY_MEGABITS, P_FIELD(flash_size_flag),
	 .help = "The flash size written into the image header; must equal size (the "
		 "ESP8266 SDK finds its parameter sectors from it). Also takes esptool's "
		 "old megabit spelling: 4m = 512KB, 32m = 4MB."},

	/* [serial] */
	{.section = "serial", .name = "rom_baud", .type = PROFILE_T_UINT, .min = BAUD_MIN,
	 .max = BAUD_MAX, .required = true, P_FIELD(rom_baud),
	 .help = "Baud rate for talking to the bootloader (ESP ROM: 115200; Optiboot "
		 "on the Uno: 115200; ATmegaBOOT: 57600)."},
	{.section = "serial", .name = "flash_baud", .type = PROFILE_T_UINT, .min = BAUD_MIN,
	 .max = BAUD_MAX, .def = "=rom_baud", P_FIELD(flash_baud),
	 .help = "Baud rate after a baud change, at least rom_baud. Only ESP32 ROMs (and "
		 "the ESP8266 helper) can change it; stk500v1 cannot."},
	{.section = "serial", .name = "reset", .type = PROFILE_T_ENUM, .choices = "auto|manual",
	 .required = true, P_FIELD(reset),
	 .help = "auto: DTR/RTS enter the bootloader and reset the board; manual: the "
		 "technician presses buttons, following manual_instructions."},
	{.section = "serial", .name = "manual_instructions", .type = PROFILE_T_STRING,
	 .max = 511, P_FIELD(manual_instructions),
	 .help = "Steps shown to the technician to enter the bootloader by hand; required "
		 "with reset = manual, shown as a fallback otherwise."},

	/* [identity] */
	{.section = "identity", .name = "chip_magic", .type = PROFILE_T_UINT,
	 .max = UINT32_MAX, .required = true, .families = F_ESP, .flags = PROFILE_KEY_HEX,
	 P_FIELD(chip_magic),
	 .help = "The word the ROM reads at 0x40001000, e.g. 0xFFF0C101 for the ESP8266; "
		 "must be one the chip is known to report."},
	{.section = "identity", .name = "signature", .type = PROFILE_T_BYTES, .min = 3,
	 .max = 3, .required = true, .families = F_AVR, P_FIELD(signature),
	 .help = "The three AVR signature bytes in hex, e.g. 1E 95 0F for the "
		 "ATmega328P; must match the chip."},

	/* [boot] */
	{.section = "boot", .name = "banner", .type = PROFILE_T_REGEX, .min = 1, .max = 255,
	 .required = true, P_FIELD(boot_banner),
	 .help = "POSIX extended regular expression that a healthy boot prints. Quote "
		 "it when it contains ; or #."},
	{.section = "boot", .name = "fail", .type = PROFILE_T_REGEX, .max = 255,
	 P_FIELD(boot_fail),
	 .help = "POSIX extended regular expression for a line that means the boot failed "
		 "(a checksum error, an invalid header, a crash): such a line fails the boot "
		 "check even when the banner was seen."},
	{.section = "boot", .name = "baud", .type = PROFILE_T_UINT, .min = BAUD_MIN,
	 .max = BAUD_MAX, .required = true, P_FIELD(boot_baud),
	 .help = "Baud rate of the boot output (the ESP8266 ROM prints at 74880 with a "
		 "26 MHz crystal; ESP32 ROMs at 115200)."},
	{.section = "boot", .name = "timeout_ms", .type = PROFILE_T_UINT, .min = 100,
	 .max = 60000, .def = "3000", P_FIELD(boot_timeout_ms),
	 .help = "How long to wait for the banner after the reset."},

	/* [trust] */
	{.section = "trust", .name = "public_key", .type = PROFILE_T_STRING, .max = 511,
	 P_FIELD(public_key),
	 .help = "PEM public key that image signatures are checked against, as a path "
		 "relative to the profile's folder."},
	{.section = "trust", .name = "require_signature", .type = PROFILE_T_BOOL,
	 .def = "no", P_FIELD(require_signature),
	 .help = "yes: refuse images without a valid signature (needs public_key)."},

	/* [loader] */
	{.section = "loader", .name = "helper", .type = PROFILE_T_BOOL, .def = "yes",
	 .families = F_ESP8266, P_FIELD(helper),
	 .help = "yes: flashwise may load its own RAM helper for faster reads and "
		 "verification; no: use the ROM loader only."},

	/* [partition.NAME] */
	{.section = "partition.*", .name = "offset", .type = PROFILE_T_UINT, .max = UINT32_MAX,
	 .required = true, .flags = PROFILE_KEY_HEX, PART_FIELD(offset),
	 .help = "Start address in flash (ESP8266 fixed areas: rf_cal at size - 0x5000, "
		 "init_data at size - 0x4000, blank at size - 0x2000; ESP bootloader at the "
		 "chip's bootloader offset; AVR bootloader at the top of flash)."},
	{.section = "partition.*", .name = "size", .type = PROFILE_T_SIZE, .min = 1,
	 .max = UINT32_MAX, .required = true, .flags = PROFILE_KEY_HEX, PART_FIELD(size),
	 .help = "Length in bytes, a whole number of sectors."},
	{.section = "partition.*", .name = "role", .type = PROFILE_T_ENUM,
	 .choices = ROLE_CHOICES, .required = true, PART_FIELD(role),
	 .help = "What the region holds. rf_cal, init_data and blank are ESP8266 SDK "
		 "areas; partition_table is ESP32 only."},
	{.section = "partition.*", .name = "protect", .type = PROFILE_T_BOOL, .def = "no",
	 PART_FIELD(protect),
	 .help = "yes: flashwise never writes this region (required for an AVR boot "
		 "section)."},
	{.section = "partition.*", .name = "file", .type = PROFILE_T_STRING, .max = 255,
	 PART_FIELD(file),
	 .help = "Default content: a path relative to the profile's folder, or @blank "
		 "for 0xFF fill."},
};

#define NKEYS (sizeof schema / sizeof schema[0])

const struct profile_key *profile_schema(size_t *n)
{
	if (n)
		*n = NKEYS;
	return schema;
}

/* ---- names ---- */

const char *profile_family_name(enum profile_family f)
{
	if ((unsigned)f >= sizeof family_names / sizeof family_names[0])
		return "unknown";
	return family_names[f];
}

const char *profile_protocol_name(enum profile_protocol pr)
{
	if ((unsigned)pr >= sizeof proto_names / sizeof proto_names[0])
		return "unknown";
	return proto_names[pr];
}

const char *profile_mode_name(int mode)
{
	if (mode == PROFILE_MODE_NONE)
		return "none";
	if (mode < 0 || (size_t)mode >= sizeof mode_names / sizeof mode_names[0])
		return "unknown";
	return mode_names[mode];
}

const char *partition_role_name(enum partition_role r)
{
	if ((unsigned)r >= sizeof role_names / sizeof role_names[0])
		return "unknown";
	return role_names[r];
}

/* ---- diagnostics ---- */

void profile_diags_add(struct profile_diags *d, const char *fmt, ...)
{
	va_list ap;

	d->total++;
	if (d->n >= PROFILE_MAX_DIAGS)
		return;
	va_start(ap, fmt);
	vsnprintf(d->d[d->n].text, sizeof d->d[d->n].text, fmt, ap);
	va_end(ap);
	d->n++;
}

/* ---- small text helpers ---- */

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* "4MB", "512KB" or plain bytes: how sizes read in messages. */
static const char *size_text(uint64_t v, char *buf, size_t n)
{
	if (v >= MB && v % MB == 0)
		snprintf(buf, n, "%lluMB", (unsigned long long)(v / MB));
	else if (v >= KB && v % KB == 0)
		snprintf(buf, n, "%lluKB", (unsigned long long)(v / KB));
	else
		snprintf(buf, n, "%llu", (unsigned long long)v);
	return buf;
}

/* The n-th entry of a "a|b|c" list into buf. */
static const char *choice_at(const char *choices, size_t idx, char *buf, size_t n)
{
	const char *s = choices, *bar;
	size_t len;

	while (idx-- > 0) {
		s = strchr(s, '|');
		if (!s)
			return "";
		s++;
	}
	bar = strchr(s, '|');
	len = bar ? (size_t)(bar - s) : strlen(s);
	if (len >= n)
		len = n - 1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

/* Index of `text` in a "a|b|c" list, case-insensitive; -1 if absent. */
static int choice_index(const char *choices, const char *text)
{
	const char *s = choices;
	size_t tl = strlen(text);
	int i = 0;

	for (;;) {
		const char *bar = strchr(s, '|');
		size_t len = bar ? (size_t)(bar - s) : strlen(s);

		if (len == tl && strncasecmp(s, text, len) == 0)
			return i;
		if (!bar)
			return -1;
		s = bar + 1;
		i++;
	}
}

/* "a, b or c" from "a|b|c". */
static void choices_list(const char *choices, char *buf, size_t n)
{
	size_t i, len = 0, count = 1;
	const char *s;

	for (s = choices; *s; s++)
		if (*s == '|')
			count++;
	buf[0] = '\0';
	for (i = 0; i < count && len < n; i++) {
		char one[32];

		len += (size_t)snprintf(buf + len, n - len, "%s%s",
					i == 0 ? "" : i + 1 == count ? " or " : ", ",
					choice_at(choices, i, one, sizeof one));
	}
}

/* Edit distance, for "did you mean". Names longer than 31 are never close. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[32];

	if (la > 31 || lb > 31)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best;

			best = diag + (tolower((unsigned char)a[i - 1]) !=
				       tolower((unsigned char)b[j - 1]));
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* ---- number parsing ---- */

int profile_parse_number(const char *text, enum profile_type type, unsigned flags,
			 uint64_t *out, const char **why)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{"K", KB}, {"k", KB}, {"KB", KB}, {"kB", KB}, {"KiB", KB},
		{"MB", MB}, {"MiB", MB},
	};
	const char *s = text, *unit;
	unsigned base = 10;
	uint64_t v = 0, mult = 1;
	size_t i;
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (!s || !*s) {
		*why = "is empty";
		return FW_EPROFILE;
	}
	if (*s == '-') {
		*why = "is negative";
		return FW_EPROFILE;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!isxdigit((unsigned char)*s)) {
			*why = "has no hex digits after 0x";
			return FW_EPROFILE;
		}
	} else if (!isdigit((unsigned char)*s)) {
		*why = "is not a number";
		return FW_EPROFILE;
	} else if (s[0] == '0' && isdigit((unsigned char)s[1])) {
		/* C would read it as octal, a person as decimal: refuse to guess. */
		*why = "has a leading zero (octal?); write it in decimal or as 0x hex";
		return FW_EPROFILE;
	}
	for (; base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s); s++) {
		unsigned dig = isdigit((unsigned char)*s) ? (unsigned)(*s - '0')
			: (unsigned)(tolower((unsigned char)*s) - 'a' + 10);

		if (v > (UINT64_MAX - dig) / base) {
			*why = "is too large";
			return FW_EPROFILE;
		}
		v = v * base + dig;
	}
	if (*s == '\0') {
		*out = v;
		return FW_OK;
	}
	if (type != PROFILE_T_SIZE) {
		*why = "has text after the number";
		return FW_EPROFILE;
	}
	unit = *s == ' ' ? s + 1 : s;
	if (strcmp(unit, "m") == 0) {
		if (!(flags & PROFILE_KEY_MEGABITS)) {
			*why = "uses esptool's megabit spelling (m), which only size_flag "
			       "accepts; write MB for megabytes";
			return FW_EPROFILE;
		}
		mult = MB / 8;
	} else if (strcmp(unit, "M") == 0) {
		*why = "is ambiguous: write MB for megabytes";
		return FW_EPROFILE;
	} else if (strcmp(unit, "Kb") == 0 || strcmp(unit, "kb") == 0 ||
		   strcmp(unit, "Mb") == 0 || strcmp(unit, "mb") == 0) {
		/* Datasheets say "32Mb" for a 4 MB chip: a lowercase b is bits. */
		*why = "uses a lowercase b, which means bits; write KB or MB for bytes";
		return FW_EPROFILE;
	} else {
		for (i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strcmp(unit, units[i].unit) == 0)
				break;
		if (i == sizeof units / sizeof units[0]) {
			*why = "has an unknown unit; use KB or MB";
			return FW_EPROFILE;
		}
		mult = units[i].mult;
	}
	if (v > UINT64_MAX / mult) {
		*why = "is too large";
		return FW_EPROFILE;
	}
	*out = v * mult;
	return FW_OK;
}

/* ---- validation context ---- */

struct slot {
	const char *text;  /* the value as written (or the default) */
	bool given;        /* written in the file */
	bool ok;           /* decoded into the profile */
	bool pending;      /* "=key" default, resolved after every key is decoded */
};

struct ctx {
	const char *path;
	struct profile *p;
	struct profile_diags *d;
	bool present[NSECTIONS];
	struct slot fixed[NKEYS];                        /* rows of fixed sections */
	struct slot part[PROFILE_MAX_PARTITIONS][NKEYS]; /* partition.* rows */
	int family;                                      /* -1: unknown */
	const struct chip_info *chip;                    /* NULL unless consistent */
};

static void kdiag(struct ctx *c, const char *section, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void kdiag(struct ctx *c, const char *section, const char *key, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (key)
		profile_diags_add(c->d, "%s:[%s] %s: %s", c->path, section, key, msg);
	else
		profile_diags_add(c->d, "%s:[%s]: %s", c->path, section, msg);
}

static int section_index(const char *name)
{
	size_t i;

	for (i = 0; i < NSECTIONS; i++)
		if (strcmp(sections[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int row_index(const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool is_part_row(const struct profile_key *k)
{
	return strcmp(k->section, "partition.*") == 0;
}

/* Slot of a fixed-section key by name (the names are the schema's own). */
static struct slot *fslot(struct ctx *c, const char *section, const char *name)
{
	return &c->fixed[row_index(section, name)];
}

static struct slot *pslot(struct ctx *c, size_t part, const char *name)
{
	return &c->part[part][row_index("partition.*", name)];
}

static const char *families_text(unsigned mask)
{
	if (mask == F_ESP)
		return "ESP";
	if (mask == F_AVR)
		return "avr";
	if (mask == F_ESP8266)
		return "esp8266";
	return "some";
}

/* What a key takes, for "expected ..." in messages. */
static void expectation(const struct profile_key *k, char *buf, size_t n)
{
	char list[256], a[32], b[32];

	switch (k->type) {
	case PROFILE_T_ENUM:
		choices_list(k->choices, list, sizeof list);
		snprintf(buf, n, "%s", list);
		break;
	case PROFILE_T_UINT:
		if (k->flags & PROFILE_KEY_HEX)
			snprintf(buf, n, "a number from 0x%llX to 0x%llX (decimal or 0x hex)",
				 (unsigned long long)k->min, (unsigned long long)k->max);
		else
			snprintf(buf, n, "a number from %llu to %llu",
				 (unsigned long long)k->min, (unsigned long long)k->max);
		break;
	case PROFILE_T_SIZE:
		snprintf(buf, n, "a size from %s to %s (bytes, 0x hex, or with KB or MB%s)",
			 size_text(k->min, a, sizeof a), size_text(k->max, b, sizeof b),
			 (k->flags & PROFILE_KEY_MEGABITS) ? "; esptool's 4m = 512KB" : "");
		break;
	case PROFILE_T_BOOL:
		snprintf(buf, n, "yes or no");
		break;
	case PROFILE_T_BYTES:
		snprintf(buf, n, "%llu hex bytes separated by spaces, like 1E 95 0F",
			 (unsigned long long)k->max);
		break;
	case PROFILE_T_REGEX:
		snprintf(buf, n, "a POSIX extended regular expression of up to %llu characters",
			 (unsigned long long)k->max);
		break;
	case PROFILE_T_STRING:
	default:
		if (k->min)
			snprintf(buf, n, "text of %llu to %llu characters",
				 (unsigned long long)k->min, (unsigned long long)k->max);
		else
			snprintf(buf, n, "text of up to %llu characters",
				 (unsigned long long)k->max);
		break;
	}
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "1"};
	static const char *const no[] = {"no", "false", "0"};
	size_t i;

	for (i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* "1E 95 0F" (also 0x1E 0x95 0x0F); returns the count or -1 for a bad token. */
static int parse_bytes(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	for (;;) {
		const char *t;
		unsigned v = 0;
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return (int)n;
		if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
			s += 2;
		for (t = s; isxdigit((unsigned char)*t); t++)
			v = v * 16 + (unsigned)(isdigit((unsigned char)*t) ? *t - '0'
					: tolower((unsigned char)*t) - 'a' + 10);
		len = (size_t)(t - s);
		if (len != 2 || (*t && *t != ' ' && *t != '\t'))
			return -1;
		if (n < max)
			out[n] = (uint8_t)v;
		n++;
		if (n > 64)
			return (int)n;
		s = t;
	}
}

/* Decodes `text` for key k into base + k->offset. On failure says why. */
static bool decode(struct ctx *c, const struct profile_key *k, const char *sec,
		   const char *text, void *base)
{
	char *dst = (char *)base + k->offset;
	char exp[300];
	size_t len = strlen(text);

	expectation(k, exp, sizeof exp);
	switch (k->type) {
	case PROFILE_T_STRING:
	case PROFILE_T_REGEX:
		if (len < k->min) {
			kdiag(c, sec, k->name, "is empty; expected %s", exp);
			return false;
		}
		if (len > k->max || len >= k->size) {
			kdiag(c, sec, k->name, "is %zu characters long; at most %llu fit",
			      len, (unsigned long long)k->max);
			return false;
		}
		if (k->type == PROFILE_T_REGEX) {
			regex_t re;
			char err[128];
			int rc = regcomp(&re, text, REG_EXTENDED | REG_NOSUB);

			if (rc != 0) {
				regerror(rc, &re, err, sizeof err);
				kdiag(c, sec, k->name, "\"%s\" is not a valid extended regular "
				      "expression (%s); escape literal ( ) [ ] . * + ? with \\",
				      text, err);
				return false;
			}
			regfree(&re);
		}
		memcpy(dst, text, len + 1);
		return true;
	case PROFILE_T_ENUM: {
		int idx = choice_index(k->choices, text);
		char one[64];

		if (idx < 0) {
			kdiag(c, sec, k->name, "\"%s\" is not one of %s", text, exp);
			return false;
		}
		choice_at(k->choices, (size_t)idx, one, sizeof one);
		if (k->flags & PROFILE_KEY_TEXT) {
			snprintf(dst, k->size, "%s", one);
		} else if (k->flags & PROFILE_KEY_NUMBER) {
			uint32_t v = (uint32_t)strtoul(one, NULL, 10);

			memcpy(dst, &v, sizeof v);
		} else {
			memcpy(dst, &idx, sizeof idx);
		}
		return true;
	}
	case PROFILE_T_UINT:
	case PROFILE_T_SIZE: {
		uint64_t v;
		uint32_t v32;
		const char *why;

		if (profile_parse_number(text, k->type, k->flags, &v, &why) != FW_OK) {
			kdiag(c, sec, k->name, "\"%s\" %s; expected %s", text, why, exp);
			return false;
		}
		if (v < k->min || v > k->max) {
			kdiag(c, sec, k->name, "%s is out of range; expected %s", text, exp);
			return false;
		}
		v32 = (uint32_t)v;
		memcpy(dst, &v32, sizeof v32);
		return true;
	}
	case PROFILE_T_BOOL: {
		bool b;

		if (!parse_bool(text, &b)) {
			kdiag(c, sec, k->name, "\"%s\" is not yes or no", text);
			return false;
		}
		memcpy(dst, &b, sizeof b);
		return true;
	}
	case PROFILE_T_BYTES: {
		uint8_t bytes[64];
		int n = parse_bytes(text, bytes, sizeof bytes);

		if (n < 0) {
			kdiag(c, sec, k->name, "\"%s\" is not hex bytes; expected %s", text, exp);
			return false;
		}
		if ((uint64_t)n < k->min || (uint64_t)n > k->max || (size_t)n > k->size) {
			kdiag(c, sec, k->name, "\"%s\" has %d bytes; expected %s", text, n, exp);
			return false;
		}
		memcpy(dst, bytes, (size_t)n);
		return true;
	}
	}
	return false;
}

static bool def_applies(const struct ctx *c, const struct profile_key *k)
{
	return k->def && (!k->def_families ||
			  (c->family >= 0 && (k->def_families & PROFILE_FAMILY_BIT(c->family))));
}

static bool belongs(const struct ctx *c, const struct profile_key *k)
{
	return !k->families || c->family < 0 ||
	       (k->families & PROFILE_FAMILY_BIT(c->family));
}

/* Given value, default, or "missing" for one key of one section instance. */
static void settle(struct ctx *c, const struct profile_key *k, const char *sec,
		   struct slot *s, bool section_there, void *base)
{
	if (s->given) {
		if (!belongs(c, k)) {
			kdiag(c, sec, k->name, "is only for %s profiles and this one is %s; "
			      "remove it", families_text(k->families),
			      profile_family_name((enum profile_family)c->family));
			return;
		}
		s->ok = decode(c, k, sec, s->text, base);
		return;
	}
	if (k->families && (c->family < 0 || !(k->families & PROFILE_FAMILY_BIT(c->family))))
		return;
	/* Defaults apply even when an optional section is left out ([loader]
	 * helper = yes); only "required" depends on the section being there. */
	if (def_applies(c, k)) {
		s->text = k->def;
		if (k->def[0] == '=')
			s->pending = true;
		else
			s->ok = decode(c, k, sec, k->def, base);
		return;
	}
	if (!section_there)
		return;
	if (k->required && (c->family >= 0 || (!k->families && !k->def_families))) {
		char exp[300];

		expectation(k, exp, sizeof exp);
		if (k->def_families || k->families)
			kdiag(c, sec, k->name, "missing; %s profiles need it: %s",
			      profile_family_name((enum profile_family)c->family), exp);
		else
			kdiag(c, sec, k->name, "missing; expected %s", exp);
	}
}

/* "=name" defaults: copy the decoded value of the named key. */
static void resolve_pending(struct slot *slots, const struct profile_key *k, void *base)
{
	struct slot *s = &slots[k - schema];
	int ref;

	if (!s->pending)
		return;
	s->pending = false;
	ref = row_index(k->section, k->def + 1);
	if (ref < 0 || !slots[ref].ok || schema[ref].size != k->size)
		return;
	memcpy((char *)base + k->offset, (char *)base + schema[ref].offset, k->size);
	s->ok = true;
}

/* One message for a required section that is not there, naming what it needs. */
static void missing_section(struct ctx *c, size_t si)
{
	char list[256];
	size_t r, len = 0;

	list[0] = '\0';
	for (r = 0; r < NKEYS; r++) {
		const struct profile_key *k = &schema[r];

		if (strcmp(k->section, sections[si].name) != 0 || !k->required ||
		    def_applies(c, k))
			continue;
		if (k->families && (c->family < 0 ||
				    !(k->families & PROFILE_FAMILY_BIT(c->family))))
			continue;
		if (len < sizeof list)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
						len ? ", " : "", k->name);
	}
	if (len)
		kdiag(c, sections[si].name, NULL, "section missing; add [%s] with %s",
		      sections[si].name, list);
	else
		kdiag(c, sections[si].name, NULL, "section missing");
}

/* ---- reading the dictionary ---- */

static bool part_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > 31)
		return false;
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) &&
		    name[i] != '_' && name[i] != '-')
			return false;
	return true;
}

static int part_find(const struct profile *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->npart; i++)
		if (strcmp(p->part[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void note_section(struct ctx *c, const char *name)
{
	int si = section_index(name);

	if (si >= 0 && (size_t)si != SEC_PARTITION) {
		c->present[si] = true;
		return;
	}
	if (strncmp(name, "partition.", 10) == 0) {
		const char *pn = name + 10;

		if (!part_name_ok(pn)) {
			kdiag(c, name, NULL, "a partition name uses a-z, 0-9, _ and - "
			      "(1 to 31 characters), e.g. [partition.app]");
			return;
		}
		if (c->p->npart >= PROFILE_MAX_PARTITIONS) {
			kdiag(c, name, NULL, "more than %d partitions; merge some of them",
			      PROFILE_MAX_PARTITIONS);
			return;
		}
		snprintf(c->p->part[c->p->npart].name, sizeof c->p->part[0].name, "%s", pn);
		c->p->npart++;
		c->present[SEC_PARTITION] = true;
		return;
	}
	{
		const char *best = NULL;
		size_t i, bd = 3;

		for (i = 0; i < NSECTIONS; i++) {
			size_t dd = distance(name, sections[i].name);

			if (dd < bd) {
				bd = dd;
				best = sections[i].name;
			}
		}
		if (strcmp(name, "partition") == 0 || (best && strcmp(best, "partition.*") == 0))
			best = "partition.NAME";
		if (best)
			kdiag(c, name, NULL, "unknown section; did you mean [%s]?", best);
		else
			kdiag(c, name, NULL, "unknown section; expected [device], [flash], "
			      "[serial], [identity], [boot], [trust], [loader] or "
			      "[partition.NAME]");
	}
}

static void unknown_key(struct ctx *c, const char *sec, const char *tmpl, const char *key)
{
	char list[256];
	const char *best = NULL;
	size_t i, len = 0, bd = 3;

	list[0] = '\0';
	for (i = 0; i < NKEYS; i++) {
		size_t dd;

		if (strcmp(schema[i].section, tmpl) != 0)
			continue;
		len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0,
					"%s%s", len ? ", " : "", schema[i].name);
		if (len >= sizeof list)
			len = sizeof list - 1;
		dd = distance(key, schema[i].name);
		if (dd < bd) {
			bd = dd;
			best = schema[i].name;
		}
	}
	if (best)
		kdiag(c, sec, key, "unknown key; did you mean %s?", best);
	else
		kdiag(c, sec, key, "unknown key; [%s] takes %s", sec, list);
}

static void note_key(struct ctx *c, const char *entry, const char *val)
{
	const char *colon = strchr(entry, ':');
	char sec[128];
	const char *key = colon + 1;
	size_t sl = (size_t)(colon - entry);
	int si, row;

	if (sl == 0) {
		profile_diags_add(c->d, "%s: %s comes before the first [section]; move it "
				  "into its section", c->path, key);
		return;
	}
	if (sl >= sizeof sec)
		return; /* no such section exists; the section entry says so */
	memcpy(sec, entry, sl);
	sec[sl] = '\0';
	if (strncmp(sec, "partition.", 10) == 0) {
		int pi = part_find(c->p, sec + 10);

		if (pi < 0)
			return; /* a rejected partition section, already reported */
		row = row_index("partition.*", key);
		if (row < 0) {
			unknown_key(c, sec, "partition.*", key);
			return;
		}
		c->part[pi][row].text = val;
		c->part[pi][row].given = true;
		return;
	}
	si = section_index(sec);
	if (si < 0)
		return; /* unknown section, already reported */
	row = row_index(sec, key);
	if (row < 0) {
		unknown_key(c, sec, sec, key);
		return;
	}
	c->fixed[row].text = val;
	c->fixed[row].given = true;
}

/* ---- cross-checks ---- */

static bool fok(struct ctx *c, const char *section, const char *name)
{
	return fslot(c, section, name)->ok;
}

static void check_device(struct ctx *c)
{
	struct profile *p = c->p;
	const struct chip_info *ci;

	if (c->family < 0)
		return;
	if (fok(c, "device", "protocol")) {
		enum profile_protocol want = p->family == PROFILE_FAMILY_AVR
			? PROFILE_PROTO_STK500V1 : PROFILE_PROTO_ESP_ROM;

		if (p->protocol != want)
			kdiag(c, "device", "protocol", "%s does not talk to %s chips; %s "
			      "profiles use protocol = %s", profile_protocol_name(p->protocol),
			      profile_family_name(p->family), profile_family_name(p->family),
			      profile_protocol_name(want));
	}
	if (!fok(c, "device", "chip"))
		return;
	ci = chip_lookup(p->chip);
	if (!ci)
		return;
	if (ci->family != p->family) {
		char list[256];
		size_t i, len = 0;

		list[0] = '\0';
		for (i = 0; i < NCHIPS; i++)
			if (chips[i].family == p->family && len < sizeof list)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
							len ? ", " : "", chips[i].name);
		kdiag(c, "device", "chip", "%s is an %s chip, not %s; for family = %s use %s",
		      p->chip, profile_family_name(ci->family), profile_family_name(p->family),
		      profile_family_name(p->family), list);
		return;
	}
	c->chip = ci;
}

static void check_flash(struct ctx *c)
{
	struct profile *p = c->p;
	const struct chip_info *ci = c->chip;
	bool size_ok = fok(c, "flash", "size");
	bool sector_ok = fok(c, "flash", "sector_size");
	bool page_ok = fok(c, "flash", "page_size");
	char a[32], b[32];

	if (sector_ok && !is_pow2(p->sector_size)) {
		kdiag(c, "flash", "sector_size", "%u is not a power of two; ESP flash uses "
		      "4096, AVR the page size", p->sector_size);
		sector_ok = false;
		fslot(c, "flash", "sector_size")->ok = false;
	}
	if (page_ok && !is_pow2(p->page_size)) {
		kdiag(c, "flash", "page_size", "%u is not a power of two", p->page_size);
		page_ok = false;
	} else if (page_ok && sector_ok && p->page_size > p->sector_size) {
		kdiag(c, "flash", "page_size", "%u is larger than sector_size (%u); a page "
		      "must fit in a sector", p->page_size, p->sector_size);
	}
	if (size_ok && sector_ok && p->flash_size % p->sector_size) {
		kdiag(c, "flash", "size", "%s is not a whole number of sectors of %u bytes",
		      size_text(p->flash_size, a, sizeof a), p->sector_size);
	}
	if (!ci)
		return;
	if (ci->family == PROFILE_FAMILY_AVR) {
		if (size_ok && p->flash_size != ci->flash)
			kdiag(c, "flash", "size", "the %s has %s of flash, not %s", ci->name,
			      size_text(ci->flash, a, sizeof a),
			      size_text(p->flash_size, b, sizeof b));
		if (page_ok && p->page_size != ci->page)
			kdiag(c, "flash", "page_size", "the %s programs %u-byte pages, not %u",
			      ci->name, ci->page, p->page_size);
		/* PROG_PAGE erases the page it writes: the page is the erase unit. */
		else if (sector_ok && page_ok && p->sector_size != p->page_size)
			kdiag(c, "flash", "sector_size", "%u differs from page_size; on avr "
			      "the erase unit is the page, expected %u", p->sector_size,
			      p->page_size);
		return;
	}
	if (fok(c, "flash", "mode") && strcmp(ci->name, "esp8285") == 0 &&
	    p->flash_mode != PROFILE_MODE_DOUT)
		kdiag(c, "flash", "mode", "%s does not work with the esp8285's built-in flash; "
		      "expected dout", profile_mode_name(p->flash_mode));
	if (fok(c, "flash", "freq")) {
		size_t i;
		char list[64];
		size_t len = 0;

		for (i = 0; ci->freq_mhz[i]; i++)
			if (ci->freq_mhz[i] == p->flash_freq_mhz)
				break;
		if (!ci->freq_mhz[i]) {
			list[0] = '\0';
			for (i = 0; ci->freq_mhz[i] && len < sizeof list; i++)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%um",
							i ? ", " : "", ci->freq_mhz[i]);
			kdiag(c, "flash", "freq", "%um cannot be set in an %s image header; "
			      "expected %s", p->flash_freq_mhz, ci->name, list);
		}
	}
	if (fok(c, "flash", "size_flag")) {
		struct slot *fs = fslot(c, "flash", "size_flag");
		const char *blame = fs->given ? "size_flag" : "size";

		if (!is_pow2(p->flash_size_flag) || p->flash_size_flag < ci->flag_min ||
		    p->flash_size_flag > ci->flag_max) {
			char lo[32], hi[32];

			kdiag(c, "flash", blame, "%s cannot be named in an %s image header; "
			      "expected a power of two from %s to %s",
			      size_text(p->flash_size_flag, a, sizeof a), ci->name,
			      size_text(ci->flag_min, lo, sizeof lo),
			      size_text(ci->flag_max, hi, sizeof hi));
		} else if (size_ok && fs->given && p->flash_size_flag != p->flash_size) {
			kdiag(c, "flash", "size_flag", "%s does not match size = %s; the header "
			      "must describe the flash that is really there",
			      size_text(p->flash_size_flag, a, sizeof a),
			      size_text(p->flash_size, b, sizeof b));
		}
	}
}

static void check_identity(struct ctx *c)
{
	struct profile *p = c->p;
	const struct chip_info *ci = c->chip;
	size_t i;

	if (!ci)
		return;
	if (ci->family != PROFILE_FAMILY_AVR && fok(c, "identity", "chip_magic")) {
		char list[128];
		size_t len = 0;

		for (i = 0; i < ci->nmagic; i++)
			if (ci->magic[i] == p->chip_magic)
				return;
		list[0] = '\0';
		for (i = 0; i < ci->nmagic && len < sizeof list; i++)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s0x%08X",
						i ? " or " : "", ci->magic[i]);
		kdiag(c, "identity", "chip_magic", "0x%08X is not a magic word the %s reports; "
		      "expected %s", p->chip_magic, ci->name, list);
	}
	if (ci->family == PROFILE_FAMILY_AVR && fok(c, "identity", "signature") &&
	    memcmp(p->signature, ci->sig, 3) != 0)
		kdiag(c, "identity", "signature", "%02X %02X %02X is not the %s's signature; "
		      "expected %02X %02X %02X", p->signature[0], p->signature[1],
		      p->signature[2], ci->name, ci->sig[0], ci->sig[1], ci->sig[2]);
}

static void check_serial(struct ctx *c)
{
	struct profile *p = c->p;
	const struct slot *mi;

	if (fok(c, "serial", "rom_baud") && fok(c, "serial", "flash_baud")) {
		if (p->flash_baud < p->rom_baud)
			kdiag(c, "serial", "flash_baud", "%u is below rom_baud (%u); expected "
			      "%u or more", p->flash_baud, p->rom_baud, p->rom_baud);
		else if (p->flash_baud != p->rom_baud && c->family == PROFILE_FAMILY_AVR)
			kdiag(c, "serial", "flash_baud", "stk500v1 cannot change the baud "
			      "rate; expected %u (rom_baud) or leave it out", p->rom_baud);
		else if (p->flash_baud != p->rom_baud && c->family == PROFILE_FAMILY_ESP8266 &&
			 fok(c, "loader", "helper") && !p->helper)
			kdiag(c, "serial", "flash_baud", "the ESP8266 ROM cannot change the "
			      "baud rate and [loader] helper = no; expected %u (rom_baud)",
			      p->rom_baud);
	}
	mi = fslot(c, "serial", "manual_instructions");
	if (fok(c, "serial", "reset") && p->reset == PROFILE_RESET_MANUAL &&
	    (!mi->given || mi->ok) && !p->manual_instructions[0])
		kdiag(c, "serial", "manual_instructions", "missing; reset = manual needs the "
		      "steps the technician follows to enter the bootloader");
}

static void check_trust(struct ctx *c)
{
	struct profile *p = c->p;

	if (p->public_key[0] == '/')
		kdiag(c, "trust", "public_key", "%s is an absolute path; give it relative "
		      "to the profile's folder", p->public_key);
	if (fok(c, "trust", "require_signature") && p->require_signature &&
	    !fslot(c, "trust", "public_key")->given)
		kdiag(c, "trust", "require_signature", "yes needs a public_key to check "
		      "signatures with; add public_key or set require_signature = no");
}

static bool pok(struct ctx *c, size_t i, const char *name)
{
	return pslot(c, i, name)->ok;
}

static void check_partition(struct ctx *c, size_t i)
{
	struct profile *p = c->p;
	struct profile_partition *pt = &p->part[i];
	const struct chip_info *ci = c->chip;
	char sec[48];
	bool off_ok = pok(c, i, "offset"), size_ok = pok(c, i, "size");
	bool role_ok = pok(c, i, "role");
	bool flash_ok = fok(c, "flash", "size"), sector_ok = fok(c, "flash", "sector_size");
	uint64_t end = (uint64_t)pt->offset + pt->size;
	size_t j;

	snprintf(sec, sizeof sec, "partition.%s", pt->name);
	if (role_ok && c->family >= 0) {
		bool sdk = pt->role == PART_ROLE_RF_CAL || pt->role == PART_ROLE_INIT_DATA ||
			   pt->role == PART_ROLE_BLANK;

		if (sdk && c->family != PROFILE_FAMILY_ESP8266) {
			kdiag(c, sec, "role", "%s is an ESP8266 SDK area, and this profile is %s; "
			      "use data", partition_role_name(pt->role),
			      profile_family_name(p->family));
			role_ok = false;
		} else if (pt->role == PART_ROLE_PARTITION_TABLE &&
			   c->family != PROFILE_FAMILY_ESP32) {
			kdiag(c, sec, "role", "partition_table exists only on the esp32 family; "
			      "use data");
			role_ok = false;
		}
	}
	if (sector_ok && off_ok && pt->offset % p->sector_size)
		kdiag(c, sec, "offset", "0x%X is not on a sector boundary; expected a "
		      "multiple of sector_size (0x%X)", pt->offset, p->sector_size);
	if (sector_ok && size_ok && pt->size % p->sector_size)
		kdiag(c, sec, "size", "0x%X is not a whole number of sectors; expected a "
		      "multiple of sector_size (0x%X)", pt->size, p->sector_size);
	if (flash_ok && off_ok && pt->offset >= p->flash_size)
		kdiag(c, sec, "offset", "0x%X is past the end of flash (size 0x%X)",
		      pt->offset, p->flash_size);
	else if (flash_ok && off_ok && size_ok && end > p->flash_size)
		kdiag(c, sec, "size", "0x%X + 0x%X ends at 0x%llX, past the end of flash "
		      "(0x%X)", pt->offset, pt->size, (unsigned long long)end, p->flash_size);
	if (pok(c, i, "file") && pt->file[0]) {
		if (pt->file[0] == '/')
			kdiag(c, sec, "file", "%s is an absolute path; give it relative to "
			      "the profile's folder", pt->file);
		else if (pt->file[0] == '@' && strcmp(pt->file, "@blank") != 0)
			kdiag(c, sec, "file", "%s is not a special file; the only one is "
			      "@blank (0xFF fill)", pt->file);
		else if (pok(c, i, "protect") && pt->protect)
			kdiag(c, sec, "file", "a protected partition is never written; "
			      "remove file or set protect = no");
	}
	if (role_ok && off_ok && flash_ok && c->family == PROFILE_FAMILY_ESP8266) {
		/* The SDK finds these sectors from the end of the flash the header names
		 * (esp-rom-protocol.md section 11); anywhere else they are ignored. */
		static const struct {
			enum partition_role role;
			uint32_t from_end;
		} fixed[] = {
			{PART_ROLE_RF_CAL, 0x5000},
			{PART_ROLE_INIT_DATA, 0x4000},
			{PART_ROLE_BLANK, 0x2000},
		};

		for (j = 0; j < sizeof fixed / sizeof fixed[0]; j++)
			if (pt->role == fixed[j].role && p->flash_size >= fixed[j].from_end &&
			    pt->offset != p->flash_size - fixed[j].from_end)
				kdiag(c, sec, "offset", "%s belongs at flash size - 0x%X = 0x%X on "
				      "the esp8266, not 0x%X", partition_role_name(pt->role),
				      fixed[j].from_end, p->flash_size - fixed[j].from_end,
				      pt->offset);
	}
	if (role_ok && off_ok && ci && ci->family != PROFILE_FAMILY_AVR &&
	    pt->role == PART_ROLE_BOOTLOADER && pt->offset != ci->boot_offset)
		kdiag(c, sec, "offset", "the %s ROM starts the bootloader at 0x%X, not 0x%X",
		      ci->name, ci->boot_offset, pt->offset);
	if (role_ok && c->family == PROFILE_FAMILY_AVR && pt->role == PART_ROLE_BOOTLOADER) {
		if (off_ok && size_ok && flash_ok && end != p->flash_size)
			kdiag(c, sec, "offset", "an avr boot section ends at the top of flash "
			      "(0x%X); 0x%X + 0x%X ends at 0x%llX", p->flash_size, pt->offset,
			      pt->size, (unsigned long long)end);
		/* The serial bootloader cannot rewrite itself: a write there would at
		 * best fail and at worst leave a half-erased bootloader. */
		if (pok(c, i, "protect") && !pt->protect)
			kdiag(c, sec, "protect", "an avr boot section cannot be rewritten over "
			      "the serial bootloader; set protect = yes");
	}
	if (!off_ok || !size_ok)
		return;
	for (j = 0; j < i; j++) {
		const struct profile_partition *q = &p->part[j];
		uint64_t qend = (uint64_t)q->offset + q->size;

		if (!pok(c, j, "offset") || !pok(c, j, "size"))
			continue;
		if (pt->offset < qend && q->offset < end)
			kdiag(c, sec, "offset", "0x%X-0x%llX overlaps [partition.%s] "
			      "(0x%X-0x%llX)", pt->offset, (unsigned long long)end - 1, q->name,
			      q->offset, (unsigned long long)qend - 1);
	}
}

static void check_partitions(struct ctx *c)
{
	struct profile *p = c->p;
	size_t i;
	bool roles_ok = true, have_app = false;

	for (i = 0; i < p->npart; i++) {
		check_partition(c, i);
		if (!pok(c, i, "role"))
			roles_ok = false;
		else if (p->part[i].role == PART_ROLE_APP)
			have_app = true;
	}
	if (p->npart == 0)
		kdiag(c, "partition.*", NULL, "no partitions; describe at least where the "
		      "firmware goes, e.g. [partition.app] with offset, size and role = app");
	else if (roles_ok && !have_app)
		kdiag(c, "partition.*", NULL, "no partition has role = app; flashwise needs "
		      "to know where the firmware goes");
}

/* ---- the whole validation ---- */

static void id_from_path(const char *path, char *id, size_t n)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 4 && strcmp(base + len - 4, ".ini") == 0)
		len -= 4;
	if (len >= n)
		len = n - 1;
	memcpy(id, base, len);
	id[len] = '\0';
}

int profile_from_ini(const char *path, const struct _dictionary_ *ini, struct profile *p,
		     struct profile_diags *diags, struct fw_err *e)
{
	struct profile_diags local;
	struct ctx *c, cbuf;
	ssize_t i;
	size_t r, k;

	if (!diags) {
		memset(&local, 0, sizeof local);
		diags = &local;
	}
	c = &cbuf;
	memset(c, 0, sizeof *c);
	memset(p, 0, sizeof *p);
	c->path = path;
	c->p = p;
	c->d = diags;
	c->family = -1;
	snprintf(p->path, sizeof p->path, "%s", path);
	id_from_path(path, p->id, sizeof p->id);

	/* Sections first, so keys know which partitions exist. */
	for (i = 0; i < ini->size; i++)
		if (ini->key[i] && !ini->val[i] && !strchr(ini->key[i], ':'))
			note_section(c, ini->key[i]);
	for (i = 0; i < ini->size; i++)
		if (ini->key[i] && ini->val[i] && strchr(ini->key[i], ':'))
			note_key(c, ini->key[i], ini->val[i]);

	/* The family decides which keys belong and which defaults apply. */
	r = (size_t)row_index("device", "family");
	settle(c, &schema[r], "device", &c->fixed[r], c->present[0], p);
	if (c->fixed[r].ok)
		c->family = (int)p->family;
	for (r = 0; r < NSECTIONS; r++)
		if (sections[r].required && !c->present[r])
			missing_section(c, r);
	if (c->family == PROFILE_FAMILY_AVR)
		p->flash_mode = PROFILE_MODE_NONE;
	for (r = 0; r < NKEYS; r++) {
		const struct profile_key *key = &schema[r];
		int si = section_index(key->section);

		if (is_part_row(key) || strcmp(key->name, "family") == 0)
			continue;
		settle(c, key, key->section, &c->fixed[r], c->present[si], p);
	}
	for (k = 0; k < p->npart; k++) {
		char sec[48];

		snprintf(sec, sizeof sec, "partition.%s", p->part[k].name);
		for (r = 0; r < NKEYS; r++)
			if (is_part_row(&schema[r]))
				settle(c, &schema[r], sec, &c->part[k][r], true, &p->part[k]);
	}
	for (r = 0; r < NKEYS; r++) {
		if (!is_part_row(&schema[r])) {
			resolve_pending(c->fixed, &schema[r], p);
			continue;
		}
		for (k = 0; k < p->npart; k++)
			resolve_pending(c->part[k], &schema[r], &p->part[k]);
	}
	p->has_chip_magic = fok(c, "identity", "chip_magic");
	p->has_signature = fok(c, "identity", "signature");

	check_device(c);
	check_flash(c);
	check_identity(c);
	check_serial(c);
	check_trust(c);
	check_partitions(c);

	if (diags->total) {
		fw_err_set(e, FW_EPROFILE, "%s", diags->d[0].text);
		return FW_EPROFILE;
	}
	return FW_OK;
}

/* ---- the line scan ---- */

#define SCAN_LINE_MAX 1000
#define SCAN_SEEN_MAX 256

struct seen {
	char sec[48];
	char key[32];   /* "" for the section itself */
	unsigned line;
};

static void lower_copy(char *dst, size_t n, const char *s, size_t len)
{
	size_t i;

	if (len >= n)
		len = n - 1;
	for (i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)s[i]);
	dst[len] = '\0';
}

static const char *strip(char *s)
{
	size_t n;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Remembers a section or key; reports the earlier line if it was seen. */
static unsigned remember(struct seen *seen, size_t *nseen, const char *sec, const char *key,
			 unsigned line)
{
	size_t i;

	if (strlen(sec) >= sizeof seen[0].sec || strlen(key) >= sizeof seen[0].key)
		return 0; /* not a valid name anyway; validation reports it */
	for (i = 0; i < *nseen; i++)
		if (strcmp(seen[i].sec, sec) == 0 && strcmp(seen[i].key, key) == 0)
			return seen[i].line;
	if (*nseen < SCAN_SEEN_MAX) {
		snprintf(seen[*nseen].sec, sizeof seen[0].sec, "%s", sec);
		snprintf(seen[*nseen].key, sizeof seen[0].key, "%s", key);
		seen[*nseen].line = line;
		(*nseen)++;
	}
	return 0;
}

/* One logical line (continuations joined). Returns true when iniparser
 * would reject it. */
static bool scan_line(const char *path, char *raw, unsigned line, char *section, size_t seclen,
		      bool *have_section, struct seen *seen, size_t *nseen,
		      struct profile_diags *d)
{
	const char *s = strip(raw);
	size_t n = strlen(s);
	unsigned first;

	if (n == 0 || s[0] == '#' || s[0] == ';')
		return false;
	if (s[0] == '[') {
		char name[256];
		const char *inner;

		if (s[n - 1] != ']') {
			profile_diags_add(d, "%s:%u: a section line must end with ]; put "
					  "comments on their own line", path, line);
			return true;
		}
		snprintf(name, sizeof name, "%.*s", (int)(n - 2), s + 1);
		inner = strip(name);
		if (!*inner) {
			profile_diags_add(d, "%s:%u: empty section name []", path, line);
			return true;
		}
		if (strchr(inner, ':')) {
			profile_diags_add(d, "%s:%u: a section name cannot contain ':'", path,
					  line);
			return true;
		}
		lower_copy(section, seclen, inner, strlen(inner));
		*have_section = true;
		first = remember(seen, nseen, section, "", line);
		if (first)
			profile_diags_add(d, "%s:[%s]: appears twice (lines %u and %u); merge "
					  "them into one section", path, section, first, line);
		return false;
	}
	{
		const char *eq = strchr(s, '=');
		const char *v;
		char key[256], tmp[256];

		if (!eq || eq == s) {
			profile_diags_add(d, "%s:%u: expected key = value, [section] or a "
					  "comment starting with ; or #", path, line);
			return true;
		}
		snprintf(tmp, sizeof tmp, "%.*s", (int)(eq - s), s);
		lower_copy(key, sizeof key, strip(tmp), strlen(strip(tmp)));
		if (!*have_section) {
			profile_diags_add(d, "%s:%u: %s comes before the first [section]; move "
					  "it into its section", path, line, key);
			return true;
		}
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (*v == '"' || *v == '\'') {
			const char *close = strchr(v + 1, *v);

			if (!close) {
				profile_diags_add(d, "%s:%u: the closing %c of the value is missing",
						  path, line, *v);
				return true;
			}
			for (close++; *close == ' ' || *close == '\t'; close++)
				;
			if (*close && *close != ';' && *close != '#') {
				profile_diags_add(d, "%s:%u: text after the closing quote; only a "
						  "comment may follow it", path, line);
				return true;
			}
		}
		first = remember(seen, nseen, section, key, line);
		if (first)
			profile_diags_add(d, "%s:[%s] %s: given twice (lines %u and %u); keep one",
					  path, section, key, first, line);
	}
	return false;
}

size_t profile_scan_text(const char *path, const char *text, size_t len,
			 struct profile_diags *diags)
{
	struct seen seen[SCAN_SEEN_MAX];
	size_t nseen = 0, fatal = 0, pos = 0;
	char logical[SCAN_LINE_MAX + 2];
	size_t llen = 0;
	unsigned line = 0, start = 0;
	char section[128] = "";
	bool have_section = false;

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		profile_diags_add(diags, "%s:1: starts with a UTF-8 byte order mark; save it "
				  "as plain text without one", path);
		return 1;
	}
	if (memchr(text, '\0', len)) {
		size_t at = (size_t)((const char *)memchr(text, '\0', len) - text), l = 1, i;

		for (i = 0; i < at; i++)
			l += text[i] == '\n';
		profile_diags_add(diags, "%s:%zu: contains a NUL byte; this is not a text file",
				  path, l);
		return 1;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		bool cont;

		line++;
		if (llen == 0)
			start = line;
		/* iniparser drops trailing blanks, then a final \ joins the next line. */
		while (n && isspace((unsigned char)text[pos + n - 1]))
			n--;
		cont = n && text[pos + n - 1] == '\\';
		if (cont)
			n--;
		if (llen + n > SCAN_LINE_MAX) {
			profile_diags_add(diags, "%s:%u: line is longer than %d characters", path,
					  start, SCAN_LINE_MAX);
			fatal++;
			llen = 0;
		} else {
			memcpy(logical + llen, text + pos, n);
			llen += n;
			if (!cont || !nl) {
				logical[llen] = '\0';
				fatal += scan_line(path, logical, start, section, sizeof section,
						   &have_section, seen, &nseen, diags);
				llen = 0;
			}
		}
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
	}
	return fatal;
}

/* ---- lookups ---- */

const struct profile_partition *profile_partition_at(const struct profile *p, uint32_t addr)
{
	size_t i;

	for (i = 0; i < p->npart; i++)
		if (addr >= p->part[i].offset &&
		    (uint64_t)addr < (uint64_t)p->part[i].offset + p->part[i].size)
			return &p->part[i];
	return NULL;
}

const struct profile_partition *profile_partition_named(const struct profile *p,
							const char *name)
{
	size_t i;

	for (i = 0; i < p->npart; i++)
		if (strcmp(p->part[i].name, name) == 0)
			return &p->part[i];
	return NULL;
}

uint32_t profile_esp_bootloader_offset(const struct profile *p)
{
	const struct chip_info *ci;

	if (p->family == PROFILE_FAMILY_AVR)
		return UINT32_MAX;
	ci = chip_lookup(p->chip);
	/* An unknown chip gets no header patching rather than a guessed offset. */
	if (!ci || ci->family != p->family)
		return UINT32_MAX;
	return ci->boot_offset;
}

/* ---- rendering ---- */

/* The value of key k stored in base, as text. */
static void value_text(const struct profile_key *k, const void *base, char *buf, size_t n)
{
	const char *src = (const char *)base + k->offset;
	char a[32];

	switch (k->type) {
	case PROFILE_T_STRING:
	case PROFILE_T_REGEX:
		snprintf(buf, n, "%s", *src ? src : "(none)");
		return;
	case PROFILE_T_ENUM:
		if (k->flags & PROFILE_KEY_TEXT) {
			snprintf(buf, n, "%s", src);
		} else if (k->flags & PROFILE_KEY_NUMBER) {
			uint32_t v;

			memcpy(&v, src, sizeof v);
			snprintf(buf, n, "%um", v);
		} else {
			int idx;

			memcpy(&idx, src, sizeof idx);
			if (idx < 0)
				snprintf(buf, n, "none");
			else
				choice_at(k->choices, (size_t)idx, buf, n);
		}
		return;
	case PROFILE_T_UINT:
	case PROFILE_T_SIZE: {
		uint32_t v;

		memcpy(&v, src, sizeof v);
		if (k->type == PROFILE_T_SIZE && (k->flags & PROFILE_KEY_HEX))
			snprintf(buf, n, "0x%X (%s)", v, size_text(v, a, sizeof a));
		else if (k->flags & PROFILE_KEY_HEX)
			snprintf(buf, n, "0x%X", v);
		else
			snprintf(buf, n, "%u", v);
		return;
	}
	case PROFILE_T_BOOL: {
		bool b;

		memcpy(&b, src, sizeof b);
		snprintf(buf, n, "%s", b ? "yes" : "no");
		return;
	}
	case PROFILE_T_BYTES: {
		size_t i, len = 0;

		buf[0] = '\0';
		for (i = 0; i < k->max && len < n; i++)
			len += (size_t)snprintf(buf + len, n - len, "%s%02X", i ? " " : "",
						(unsigned char)src[i]);
		return;
	}
	}
	buf[0] = '\0';
}

static void format_section(const struct profile *p, const char *tmpl, const char *title,
			   const void *base, struct strbuf *out)
{
	size_t r;
	char val[600];

	strbuf_addf(out, "[%s]\n", title);
	for (r = 0; r < NKEYS; r++) {
		const struct profile_key *k = &schema[r];

		if (strcmp(k->section, tmpl) != 0)
			continue;
		if (k->families && !(k->families & PROFILE_FAMILY_BIT(p->family)))
			continue;
		value_text(k, base, val, sizeof val);
		strbuf_addf(out, "  %-20s %s\n", k->name, val);
	}
}

void profile_format(const struct profile *p, struct strbuf *out)
{
	size_t i, j, order[PROFILE_MAX_PARTITIONS];
	uint32_t boot = profile_esp_bootloader_offset(p);
	uint64_t at = 0;
	char a[32];

	strbuf_addf(out, "profile %s: %s\n", p->id, p->name);
	strbuf_addf(out, "file: %s\n", p->path);
	if (boot != UINT32_MAX)
		strbuf_addf(out, "image header at: 0x%X\n", boot);
	for (i = 0; i < NSECTIONS; i++) {
		const struct section_info *s = &sections[i];

		if (i == SEC_PARTITION)
			break;
		if (strcmp(s->name, "loader") == 0 && p->family != PROFILE_FAMILY_ESP8266)
			continue;
		strbuf_adds(out, "\n");
		if (strcmp(s->name, "boot") == 0 && !p->boot_banner[0]) {
			strbuf_adds(out, "[boot]\n  (no boot check)\n");
			continue;
		}
		format_section(p, s->name, s->name, p, out);
	}
	for (i = 0; i < p->npart; i++) {
		char title[48];

		snprintf(title, sizeof title, "partition.%s", p->part[i].name);
		strbuf_adds(out, "\n");
		format_section(p, "partition.*", title, &p->part[i], out);
	}

	/* The flash map, by address, with the gaps flashwise will not touch. */
	for (i = 0; i < p->npart; i++)
		order[i] = i;
	for (i = 1; i < p->npart; i++)
		for (j = i; j > 0 && p->part[order[j]].offset < p->part[order[j - 1]].offset; j--) {
			size_t t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	strbuf_addf(out, "\nflash map (%s):\n", size_text(p->flash_size, a, sizeof a));
	for (i = 0; i < p->npart; i++) {
		const struct profile_partition *pt = &p->part[order[i]];
		uint64_t end = (uint64_t)pt->offset + pt->size;

		if (pt->offset > at)
			strbuf_addf(out, "  0x%06llX-0x%06X  (unused)\n", (unsigned long long)at,
				    pt->offset - 1);
		strbuf_addf(out, "  0x%06X-0x%06llX  %-16s %-15s %s%s\n", pt->offset,
			    (unsigned long long)end - 1, pt->name, partition_role_name(pt->role),
			    size_text(pt->size, a, sizeof a), pt->protect ? "  protected" : "");
		if (end > at)
			at = end;
	}
	if (at < p->flash_size)
		strbuf_addf(out, "  0x%06llX-0x%06X  (unused)\n", (unsigned long long)at,
			    p->flash_size - 1);
}

/* man(7) text: backslashes and hyphens escaped. */
static void man_text(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			strbuf_adds(out, "\\e");
		else if (*s == '-')
			strbuf_adds(out, "\\-");
		else
			strbuf_add(out, s, 1);
	}
}

/* "type: range or choices, families, default." as one line. Every piece
 * begins with a space; the first one is dropped after the colon. */
static void key_man_details(struct strbuf *out, const struct profile_key *k, bool in_required,
			    const char *type)
{
	struct strbuf d = STRBUF_INIT;
	char a[32], b[32];
	size_t c, nc = 1;
	const char *q;

	switch (k->type) {
	case PROFILE_T_ENUM:
		for (q = k->choices; *q; q++)
			nc += *q == '|';
		for (c = 0; c < nc; c++) {
			char one[32];

			strbuf_adds(&d, c ? ", \\fB" : " \\fB");
			man_text(&d, choice_at(k->choices, c, one, sizeof one));
			strbuf_adds(&d, "\\fR");
		}
		strbuf_adds(&d, ".");
		break;
	case PROFILE_T_UINT:
		if (k->flags & PROFILE_KEY_HEX)
			strbuf_addf(&d, " 0x%llX to 0x%llX.", (unsigned long long)k->min,
				    (unsigned long long)k->max);
		else
			strbuf_addf(&d, " %llu to %llu.", (unsigned long long)k->min,
				    (unsigned long long)k->max);
		break;
	case PROFILE_T_SIZE:
		strbuf_addf(&d, " %s to %s (bytes, 0x hex, KB or MB).",
			    size_text(k->min, a, sizeof a), size_text(k->max, b, sizeof b));
		break;
	case PROFILE_T_BYTES:
		strbuf_addf(&d, " %llu bytes.", (unsigned long long)k->max);
		break;
	case PROFILE_T_STRING:
	case PROFILE_T_REGEX:
		strbuf_addf(&d, " Up to %llu characters.", (unsigned long long)k->max);
		break;
	case PROFILE_T_BOOL:
		break;
	}
	if (k->families) {
		strbuf_adds(&d, " ");
		man_text(&d, families_text(k->families));
		strbuf_adds(&d, " profiles only.");
	}
	if (k->def && k->def[0] == '=') {
		strbuf_adds(&d, " Default: same as \\fB");
		man_text(&d, k->def + 1);
		strbuf_adds(&d, "\\fR.");
	} else if (k->def) {
		strbuf_adds(&d, " Default: ");
		man_text(&d, k->def);
		if (k->def_families) {
			strbuf_adds(&d, " on ");
			man_text(&d, families_text(k->def_families));
			strbuf_adds(&d, ", required otherwise");
		}
		strbuf_adds(&d, ".");
	} else if (k->required) {
		strbuf_adds(&d, in_required ? " Required." : " Required in this section.");
	}
	strbuf_adds(out, "\\fI");
	man_text(out, type);
	strbuf_adds(out, "\\fR");
	if (d.len > 1) {
		strbuf_adds(out, ": ");
		strbuf_adds(out, strbuf_str(&d) + 1);
	}
	strbuf_adds(out, "\n.br\n");
	if (strbuf_failed(&d))
		out->oom = true; /* out of memory stays visible to the caller */
	strbuf_free(&d);
}

void profile_schema_man(struct strbuf *out)
{
	static const char *const tnames[] = {
		"text", "choice", "number", "size", "yes or no", "hex bytes",
		"extended regular expression",
	};
	size_t i, r;

	for (i = 0; i < NSECTIONS; i++) {
		const struct section_info *s = &sections[i];

		strbuf_adds(out, ".SS \"[");
		man_text(out, i == SEC_PARTITION ? "partition.NAME" : s->name);
		strbuf_adds(out, "]\"\n");
		man_text(out, s->help);
		strbuf_adds(out, i == SEC_PARTITION ? "\n" : s->required ? " Required section.\n"
			    : " Optional section.\n");
		for (r = 0; r < NKEYS; r++) {
			const struct profile_key *k = &schema[r];

			if (strcmp(k->section, s->name) != 0)
				continue;
			strbuf_adds(out, ".TP\n.B ");
			man_text(out, k->name);
			strbuf_adds(out, "\n");
			key_man_details(out, k, s->required, tnames[k->type]);
			man_text(out, k->help);
			strbuf_adds(out, "\n");
		}
	}
}
