/* Device profiles: the shipped profiles load and decode to the right values,
 * every file of the broken corpus fails with exactly the diagnostics its
 * "; expect:" lines name, number and size parsing, the line scan, the schema
 * renderings, profile_find and the lookups. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glob.h>
#include <regex.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

/* ---- helpers ---- */

static void load_ok(const char *path, struct profile *p)
{
	struct profile_diags d;
	struct fw_err e = {0};
	int rc = profile_load(path, p, &d, &e);
	size_t i;

	for (i = 0; i < d.n; i++)
		print_message("%s\n", d.d[i].text);
	assert_int_equal(rc, FW_OK);
	assert_int_equal(d.total, 0);
}

static bool diag_has(const struct profile_diags *d, const char *needle)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strstr(d->d[i].text, needle))
			return true;
	return false;
}

static bool matches(const char *re, const char *text)
{
	regex_t r;
	int rc;

	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&r, text, 0, NULL, 0);
	regfree(&r);
	return rc == 0;
}

struct tmp {
	char dir[64];
	char files[8][300];
	size_t nfiles;
	char dirs[4][300];
	size_t ndirs;
};

static void tmp_init(struct tmp *t)
{
	memset(t, 0, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "/tmp/fw-profile-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
}

/* dir/name into out (dir lives in the same struct as out). */
static void join(char *out, size_t n, const char *dir, const char *name)
{
	size_t dl = strlen(dir);

	assert_true(dl + 1 + strlen(name) < n);
	memcpy(out, dir, dl);
	out[dl] = '/';
	memcpy(out + dl + 1, name, strlen(name) + 1);
}

static const char *tmp_file(struct tmp *t, const char *name, const char *text)
{
	char *path = t->files[t->nfiles++];
	FILE *f;

	join(path, sizeof t->files[0], t->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *tmp_dir(struct tmp *t, const char *name)
{
	char *path = t->dirs[t->ndirs++];

	join(path, sizeof t->dirs[0], t->dir, name);
	assert_int_equal(mkdir(path, 0700), 0);
	return path;
}

static void tmp_done(struct tmp *t)
{
	size_t i;

	for (i = t->nfiles; i-- > 0;)
		unlink(t->files[i]);
	for (i = t->ndirs; i-- > 0;)
		rmdir(t->dirs[i]);
	assert_int_equal(rmdir(t->dir), 0);
}

/* The smallest valid ESP8266 profile; tests append to it. */
static const char minimal_esp8266[] =
	"[device]\nfamily = esp8266\nprotocol = esp-rom\nchip = esp8266\nname = Minimal\n"
	"[flash]\nsize = 1MB\nmode = dout\nfreq = 26m\n"
	"[serial]\nrom_baud = 115200\nreset = auto\n"
	"[identity]\nchip_magic = 0xFFF0C101\n"
	"[partition.app]\noffset = 0\nsize = 0x80000\nrole = app\n";

/* ---- shipped profiles ---- */

static void test_shipped_profiles_validate(void **state)
{
	glob_t g;
	size_t i;

	(void)state;
	assert_int_equal(glob("profiles/*.ini", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 6);
	for (i = 0; i < g.gl_pathc; i++) {
		struct profile p;

		print_message("checking %s\n", g.gl_pathv[i]);
		load_ok(g.gl_pathv[i], &p);
		assert_true(p.name[0]);
		assert_true(p.npart >= 1);
	}
	globfree(&g);
}

static void test_nodemcu(void **state)
{
	struct profile p;
	const struct profile_partition *pt;

	(void)state;
	load_ok("profiles/nodemcu-v1.ini", &p);
	assert_string_equal(p.id, "nodemcu-v1");
	assert_string_equal(p.path, "profiles/nodemcu-v1.ini");
	assert_int_equal(p.family, PROFILE_FAMILY_ESP8266);
	assert_int_equal(p.protocol, PROFILE_PROTO_ESP_ROM);
	assert_string_equal(p.chip, "esp8266");
	assert_int_equal(p.flash_size, 0x400000);
	assert_int_equal(p.flash_size_flag, 0x400000);
	assert_int_equal(p.sector_size, 4096);
	assert_int_equal(p.page_size, 256);
	assert_int_equal(p.flash_mode, PROFILE_MODE_DIO);
	assert_int_equal(p.flash_freq_mhz, 40);
	assert_int_equal(p.rom_baud, 115200);
	assert_int_equal(p.flash_baud, 460800); /* the helper's rate */
	assert_int_equal(p.reset, PROFILE_RESET_AUTO);
	assert_true(p.has_chip_magic);
	assert_int_equal(p.chip_magic, 0xFFF0C101);
	assert_false(p.has_signature);
	assert_true(p.helper);
	assert_false(p.require_signature);
	assert_int_equal(p.boot_baud, 74880);
	assert_int_equal(p.boot_timeout_ms, 3000);
	assert_int_equal(profile_esp_bootloader_offset(&p), 0x0);

	pt = profile_partition_at(&p, 0x3FC000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_INIT_DATA);
	assert_int_equal(pt->offset, 0x3FC000);
	pt = profile_partition_at(&p, 0x3FE000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_BLANK);
	assert_string_equal(pt->file, "@blank");
	pt = profile_partition_at(&p, 0x3FB000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_RF_CAL);
	pt = profile_partition_at(&p, 0x0);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_APP);
	/* 0x3FD000 (system parameters) belongs to no partition. */
	assert_null(profile_partition_at(&p, 0x3FD000));

	/* The banner is what a healthy flash boot prints, not a download boot. */
	assert_true(matches(p.boot_banner, "ets Jan  8 2013,rst cause:2, boot mode:(3,6)"));
	assert_true(matches(p.boot_banner, "ets Jan  8 2013,rst cause:1, boot mode:(3,7)"));
	assert_false(matches(p.boot_banner, "ets Jan  8 2013,rst cause:2, boot mode:(1,7)"));
	assert_true(matches(p.boot_fail, "csum err"));
	assert_false(matches(p.boot_fail, "csum 0x98"));
}

static void test_esp01(void **state)
{
	struct profile p;
	const struct profile_partition *pt;

	(void)state;
	load_ok("profiles/esp01.ini", &p);
	assert_int_equal(p.flash_size, 512 * 1024);
	assert_int_equal(p.flash_size_flag, 512 * 1024);
	assert_int_equal(p.flash_mode, PROFILE_MODE_QIO);
	assert_int_equal(p.flash_freq_mhz, 40);
	assert_int_equal(p.reset, PROFILE_RESET_MANUAL);
	HAS(p.manual_instructions, "GPIO0");
	HAS(p.manual_instructions, "FLASH");
	/* continuation lines are joined with their spaces */
	HAS(p.manual_instructions, "GND), then pulse RST");
	pt = profile_partition_named(&p, "init_data");
	assert_non_null(pt);
	assert_int_equal(pt->offset, 0x7C000);
	pt = profile_partition_named(&p, "blank");
	assert_non_null(pt);
	assert_int_equal(pt->offset, 0x7E000);
	assert_int_equal(pt->role, PART_ROLE_BLANK);
	assert_null(profile_partition_named(&p, "nonexistent"));
}

static void test_wemos(void **state)
{
	struct profile p;

	(void)state;
	load_ok("profiles/wemos-d1-mini.ini", &p);
	assert_int_equal(p.family, PROFILE_FAMILY_ESP8266);
	assert_int_equal(p.flash_size, 4 * 1024 * 1024);
	assert_int_equal(p.flash_mode, PROFILE_MODE_DIO);
	assert_int_equal(p.reset, PROFILE_RESET_AUTO);
	assert_int_equal(profile_partition_named(&p, "init_data")->offset, 0x3FC000);
}

static void test_esp32_devkitc(void **state)
{
	struct profile p;
	const struct profile_partition *pt;

	(void)state;
	load_ok("profiles/esp32-devkitc.ini", &p);
	assert_int_equal(p.family, PROFILE_FAMILY_ESP32);
	assert_int_equal(p.flash_size, 0x400000);
	assert_int_equal(p.flash_mode, PROFILE_MODE_DIO);
	assert_int_equal(p.flash_freq_mhz, 40);
	assert_int_equal(p.rom_baud, 115200);
	assert_int_equal(p.flash_baud, 460800);
	assert_int_equal(p.chip_magic, 0x00F01D83);
	assert_int_equal(profile_esp_bootloader_offset(&p), 0x1000);
	pt = profile_partition_at(&p, 0x1000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_BOOTLOADER);
	pt = profile_partition_at(&p, 0x8000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_PARTITION_TABLE);
	pt = profile_partition_at(&p, 0x10000);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_APP);
	assert_int_equal(pt->size, 0x100000);
	assert_non_null(profile_partition_named(&p, "nvs"));
	assert_non_null(profile_partition_named(&p, "otadata"));
	assert_null(profile_partition_at(&p, 0x0)); /* nothing below the bootloader */
	/* The ROM's reset line proves nothing; "entry" follows a loaded
	 * second stage, and a missing one is a failure line. */
	assert_true(matches(p.boot_banner, "entry 0x400806ac"));
	assert_false(matches(p.boot_banner,
			     "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"));
	assert_true(matches(p.boot_fail, "invalid header: 0xffffffff"));
	assert_false(matches(p.boot_fail, "entry 0x400806ac"));
}

static void test_uno(void **state)
{
	struct profile p;
	const struct profile_partition *pt;

	(void)state;
	load_ok("profiles/arduino-uno-r3.ini", &p);
	assert_int_equal(p.family, PROFILE_FAMILY_AVR);
	assert_int_equal(p.protocol, PROFILE_PROTO_STK500V1);
	assert_string_equal(p.chip, "atmega328p");
	assert_int_equal(p.flash_size, 32768);
	assert_int_equal(p.page_size, 128);
	assert_int_equal(p.sector_size, 128);
	assert_int_equal(p.flash_mode, PROFILE_MODE_NONE);
	assert_int_equal(p.flash_freq_mhz, 0);
	assert_int_equal(p.rom_baud, 115200);
	assert_int_equal(p.flash_baud, 115200);
	assert_true(p.has_signature);
	assert_false(p.has_chip_magic);
	assert_memory_equal(p.signature, "\x1E\x95\x0F", 3);
	assert_false(p.helper);
	assert_int_equal(p.boot_banner[0], '\0');
	assert_int_equal(profile_esp_bootloader_offset(&p), UINT32_MAX);
	pt = profile_partition_at(&p, 0x7DFF);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_APP);
	assert_int_equal(pt->offset, 0);
	assert_int_equal(pt->size, 0x7E00);
	assert_false(pt->protect);
	pt = profile_partition_at(&p, 0x7E00);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_BOOTLOADER);
	assert_int_equal(pt->size, 0x200);
	assert_true(pt->protect);
	assert_null(profile_partition_at(&p, 0x8000));
}

static void test_nano_oldboot(void **state)
{
	struct profile p;
	const struct profile_partition *pt;

	(void)state;
	load_ok("profiles/arduino-nano-oldboot.ini", &p);
	assert_int_equal(p.rom_baud, 57600);
	pt = profile_partition_at(&p, 0x7800);
	assert_non_null(pt);
	assert_int_equal(pt->role, PART_ROLE_BOOTLOADER);
	assert_int_equal(pt->offset, 0x7800);
	assert_int_equal(pt->size, 0x800);
	assert_true(pt->protect);
	assert_int_equal(profile_partition_at(&p, 0x77FF)->role, PART_ROLE_APP);
}

/* ---- the broken corpus ---- */

static void check_bad(const char *path)
{
	char expect[8][128], needle[700], line[256];
	size_t nexp = 0, i;
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};
	FILE *f = fopen(path, "r");
	int rc;

	assert_non_null(f);
	while (nexp < 8 && fgets(line, sizeof line, f) &&
	       strncmp(line, "; expect: ", 10) == 0) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(expect[nexp++], sizeof expect[0], "%s", line + 10);
	}
	fclose(f);
	if (nexp == 0)
		fail_msg("%s: the first line must be \"; expect: ...\"", path);

	rc = profile_load(path, &p, &d, &e);
	for (i = 0; i < d.n; i++)
		print_message("  %s\n", d.d[i].text);
	assert_int_equal(rc, FW_EPROFILE);
	assert_int_equal(e.code, FW_EPROFILE);
	assert_string_equal(e.msg, d.d[0].text);
	for (i = 0; i < nexp; i++) {
		unsigned n;

		/* "line N" -> "FILE:N: "; "[section] key" -> "FILE:[section] key: ";
		 * "[section]" -> "FILE:[section]: " */
		if (sscanf(expect[i], "line %u", &n) == 1)
			snprintf(needle, sizeof needle, "%s:%u: ", path, n);
		else
			snprintf(needle, sizeof needle, "%s:%s: ", path, expect[i]);
		if (!diag_has(&d, needle))
			fail_msg("%s: no diagnostic contains \"%s\"", path, needle);
	}
	/* Exactly the expected problems: no follow-on noise. */
	if (d.total != nexp)
		fail_msg("%s: %zu diagnostics, expected %zu", path, d.total, nexp);
}

static void test_bad_corpus(void **state)
{
	glob_t g;
	size_t i;

	(void)state;
	assert_int_equal(glob("tests/data/profiles-bad/*.ini", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 30);
	for (i = 0; i < g.gl_pathc; i++) {
		print_message("%s\n", g.gl_pathv[i]);
		check_bad(g.gl_pathv[i]);
	}
	globfree(&g);
}

static void test_missing_file(void **state)
{
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};

	(void)state;
	assert_int_equal(profile_load("tests/data/no-such-profile.ini", &p, &d, &e),
			 FW_EPROFILE);
	HAS(e.msg, "tests/data/no-such-profile.ini");
	HAS(e.msg, "cannot open");
	assert_int_equal(d.total, 1);
	/* NULL diags and NULL e are allowed. */
	assert_int_equal(profile_load("tests/data/no-such-profile.ini", &p, NULL, NULL),
			 FW_EPROFILE);
	assert_int_equal(profile_load("tests/data/profiles-bad/overlap.ini", &p, NULL, NULL),
			 FW_EPROFILE);
}

static void test_not_a_profile(void **state)
{
	struct tmp t;
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};
	const char *path;
	char *big;

	(void)state;
	tmp_init(&t);
	path = tmp_file(&t, "bom.ini", "\xEF\xBB\xBF[device]\nfamily = esp8266\n");
	assert_int_equal(profile_load(path, &p, &d, &e), FW_EPROFILE);
	HAS(e.msg, ":1: ");
	HAS(e.msg, "byte order mark");

	big = malloc(300 * 1024 + 1);
	assert_non_null(big);
	memset(big, ';', 300 * 1024);
	big[300 * 1024] = '\0';
	path = tmp_file(&t, "big.ini", big);
	free(big);
	assert_int_equal(profile_load(path, &p, &d, &e), FW_EPROFILE);
	HAS(e.msg, "larger than");

	path = tmp_dir(&t, "folder.ini");
	assert_int_equal(profile_load(path, &p, &d, &e), FW_EPROFILE);
	HAS(e.msg, "folder.ini");
	tmp_done(&t);
}

static void test_diag_limit(void **state)
{
	struct tmp t;
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};
	char text[4096];
	size_t len, i;

	(void)state;
	tmp_init(&t);
	len = (size_t)snprintf(text, sizeof text, "%s[device]\n", minimal_esp8266);
	/* a second [device] is one problem; 40 unknown keys are 40 more */
	for (i = 0; i < 40; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "bogus%zu = 1\n", i);
	assert_int_equal(profile_load(tmp_file(&t, "many.ini", text), &p, &d, &e), FW_EPROFILE);
	assert_int_equal(d.n, PROFILE_MAX_DIAGS);
	assert_int_equal(d.total, 41);
	tmp_done(&t);
}

/* ---- defaults, trust, load details ---- */

static void test_defaults(void **state)
{
	struct tmp t;
	struct profile p;

	(void)state;
	tmp_init(&t);
	load_ok(tmp_file(&t, "minimal.ini", minimal_esp8266), &p);
	assert_string_equal(p.id, "minimal");
	assert_int_equal(p.sector_size, 4096);       /* ESP default */
	assert_int_equal(p.page_size, 256);          /* ESP default */
	assert_int_equal(p.flash_size_flag, 0x100000); /* = size */
	assert_int_equal(p.flash_baud, 115200);      /* = rom_baud */
	assert_int_equal(p.flash_mode, PROFILE_MODE_DOUT);
	assert_int_equal(p.flash_freq_mhz, 26);
	assert_true(p.helper);                       /* default with no [loader] */
	assert_false(p.require_signature);
	assert_int_equal(p.boot_banner[0], '\0');    /* no [boot]: no boot check */
	assert_int_equal(p.part[0].protect, false);
	assert_int_equal(p.part[0].file[0], '\0');
	tmp_done(&t);
}

static void test_avr_needs_sector_size(void **state)
{
	struct tmp t;
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};
	const char *path;

	(void)state;
	tmp_init(&t);
	/* The ESP default of 4096 is no honest default for an AVR. */
	path = tmp_file(&t, "avr.ini",
			"[device]\nfamily = avr\nprotocol = stk500v1\nchip = atmega328p\n"
			"name = x\n[flash]\nsize = 32KB\n[serial]\nrom_baud = 115200\n"
			"reset = auto\n[identity]\nsignature = 0x1E 0x95 0x0F\n"
			"[partition.app]\noffset = 0\nsize = 0x7E00\nrole = app\n");
	assert_int_equal(profile_load(path, &p, &d, &e), FW_EPROFILE);
	assert_true(diag_has(&d, "avr.ini:[flash] sector_size: missing"));
	assert_true(diag_has(&d, "avr.ini:[flash] page_size: missing"));
	assert_int_equal(d.total, 2);
	tmp_done(&t);
}

static void test_public_key(void **state)
{
	struct tmp t;
	struct profile p;
	struct profile_diags d;
	struct fw_err e = {0};
	char text[2048];
	const char *path;

	(void)state;
	tmp_init(&t);
	snprintf(text, sizeof text, "%s[trust]\npublic_key = site.pem\nrequire_signature = yes\n",
		 minimal_esp8266);
	path = tmp_file(&t, "signed.ini", text);
	assert_int_equal(profile_load(path, &p, &d, &e), FW_EPROFILE);
	HAS(e.msg, "signed.ini:[trust] public_key: cannot read");
	HAS(e.msg, "site.pem");
	tmp_file(&t, "site.pem", "-----BEGIN PUBLIC KEY-----\n");
	load_ok(path, &p);
	assert_string_equal(p.public_key, "site.pem");
	assert_true(p.require_signature);
	tmp_done(&t);
}

static void test_values_case_and_spacing(void **state)
{
	struct tmp t;
	struct profile p;
	char text[2048];

	(void)state;
	tmp_init(&t);
	/* Section and key names are case-insensitive (iniparser lowercases them),
	 * enum and bool values too; a size may have a space before its unit. */
	snprintf(text, sizeof text,
		 "[DEVICE]\nFamily = ESP8266\nprotocol = ESP-ROM\nchip = esp8266\n"
		 "name = \"Quoted ; name\"\n"
		 "[flash]\nsize = 1 MB\nmode = DOUT\nfreq = 26M\nsize_flag = 8m\n"
		 "[serial]\nrom_baud = 115200\nreset = Manual\n"
		 "manual_instructions = press FLASH ; then RST is cut off by the comment\n"
		 "[identity]\nchip_magic = 4293968129\n"
		 "[loader]\nhelper = False\n"
		 "[partition.App]\noffset = 0x0\nsize = 512KiB\nrole = APP\nprotect = No\n");
	load_ok(tmp_file(&t, "case.ini", text), &p);
	assert_string_equal(p.name, "Quoted ; name");
	assert_int_equal(p.flash_size, 0x100000);
	assert_int_equal(p.flash_size_flag, 0x100000); /* 8 megabits */
	assert_int_equal(p.flash_freq_mhz, 26);
	assert_int_equal(p.chip_magic, 0xFFF0C101);
	assert_string_equal(p.manual_instructions, "press FLASH");
	assert_false(p.helper);
	assert_string_equal(p.part[0].name, "app");
	assert_int_equal(p.part[0].size, 0x80000);
	assert_int_equal(p.reset, PROFILE_RESET_MANUAL);
	tmp_done(&t);
}

/* ---- number parsing ---- */

static void num_ok(const char *text, enum profile_type type, unsigned flags, uint64_t want)
{
	uint64_t v = 0;
	const char *why = "unset";

	if (profile_parse_number(text, type, flags, &v, &why) != FW_OK)
		fail_msg("\"%s\" rejected: %s", text, why);
	assert_int_equal(v, want);
	assert_null(why);
}

static void num_bad(const char *text, enum profile_type type, unsigned flags,
		    const char *reason)
{
	uint64_t v = 12345;
	const char *why = NULL;

	if (profile_parse_number(text, type, flags, &v, &why) != FW_EPROFILE)
		fail_msg("\"%s\" accepted as %llu", text, (unsigned long long)v);
	assert_non_null(why);
	HAS(why, reason);
	assert_int_equal(v, 12345); /* untouched on failure */
}

static void test_parse_number(void **state)
{
	const enum profile_type U = PROFILE_T_UINT;

	(void)state;
	num_ok("0", U, 0, 0);
	num_ok("4096", U, 0, 4096);
	num_ok("0x1000", U, 0, 0x1000);
	num_ok("0X1f", U, 0, 0x1F);
	num_ok("0x0", U, 0, 0);
	num_ok("0xFFFFFFFF", U, 0, 0xFFFFFFFFu);
	num_ok("18446744073709551615", U, 0, UINT64_MAX);
	num_ok("0xFFFFFFFFFFFFFFFF", U, 0, UINT64_MAX);
	num_bad("18446744073709551616", U, 0, "too large");
	num_bad("0x10000000000000000", U, 0, "too large");
	num_bad("0x", U, 0, "no hex digits");
	num_bad("0xg", U, 0, "no hex digits");
	num_bad("", U, 0, "empty");
	num_bad("-1", U, 0, "negative");
	num_bad("-0x10", U, 0, "negative");
	num_bad("+5", U, 0, "not a number");
	num_bad(" 5", U, 0, "not a number");
	num_bad("abc", U, 0, "not a number");
	num_bad("12abc", U, 0, "after the number");
	num_bad("0x10 ", U, 0, "after the number");
	num_bad("1.5", U, 0, "after the number");
	num_bad("010", U, 0, "leading zero");
	num_bad("4KB", U, 0, "after the number"); /* units only for sizes */
	num_bad(NULL, U, 0, "empty");
}

static void test_parse_size(void **state)
{
	const enum profile_type S = PROFILE_T_SIZE;
	const unsigned MBIT = PROFILE_KEY_MEGABITS;

	(void)state;
	num_ok("4096", S, 0, 4096);
	num_ok("4K", S, 0, 4096);
	num_ok("4k", S, 0, 4096);
	num_ok("4KB", S, 0, 4096);
	num_ok("4kB", S, 0, 4096);
	num_ok("4KiB", S, 0, 4096);
	num_ok("512KB", S, 0, 512 * 1024);
	num_ok("4 MB", S, 0, 4 * 1024 * 1024);
	num_ok("1MiB", S, 0, 1024 * 1024);
	num_ok("0x10KB", S, 0, 16 * 1024);
	num_ok("4m", S, MBIT, 512 * 1024);      /* esptool: 4m = 512KB */
	num_ok("32m", S, MBIT, 4 * 1024 * 1024); /* 32m = 4MB */
	num_ok("8MB", S, MBIT, 8 * 1024 * 1024); /* megabit keys take bytes too */
	num_bad("4m", S, 0, "megabit");
	num_bad("4M", S, MBIT, "ambiguous");
	num_bad("32Mb", S, MBIT, "bits");
	num_bad("4kb", S, 0, "bits");
	num_bad("1GB", S, 0, "unknown unit");
	num_bad("4  MB", S, 0, "unknown unit");
	num_bad("4MBs", S, 0, "unknown unit");
	num_bad("17592186044416MB", S, 0, "too large"); /* 2^44 * 2^20 */
	num_ok("17592186044415MB", S, 0, 17592186044415ull << 20);
	num_bad("-4KB", S, 0, "negative");
}

/* ---- the line scan ---- */

static void test_scan_text(void **state)
{
	struct profile_diags d;
	static const char ok[] =
		"; comment\n# comment\n\n[device]\r\nname = a \\\n  b\nk =\nq = \"x;y\" ; c\n"
		"[flash]\nsize = 1\n";
	static const char dup[] =
		"[a]\nx = 1\nX = 2\n[b]\nx = 1\n[A]\ny = 1\n";
	static const char bad[] =
		"[a]\n= 1\nnothing here\n[]\n[x:y]\nlong = 1 \\\n\\\n2\n";

	(void)state;
	memset(&d, 0, sizeof d);
	assert_int_equal(profile_scan_text("ok.ini", ok, sizeof ok - 1, &d), 0);
	assert_int_equal(d.total, 0);

	memset(&d, 0, sizeof d);
	assert_int_equal(profile_scan_text("dup.ini", dup, sizeof dup - 1, &d), 0);
	assert_int_equal(d.total, 2);
	assert_true(diag_has(&d, "dup.ini:[a] x: given twice (lines 2 and 3)"));
	assert_true(diag_has(&d, "dup.ini:[a]: appears twice (lines 1 and 6)"));

	memset(&d, 0, sizeof d);
	assert_int_equal(profile_scan_text("bad.ini", bad, sizeof bad - 1, &d), 4);
	assert_true(diag_has(&d, "bad.ini:2: "));
	assert_true(diag_has(&d, "bad.ini:3: "));
	assert_true(diag_has(&d, "bad.ini:4: empty section"));
	assert_true(diag_has(&d, "bad.ini:5: "));
	assert_false(diag_has(&d, "bad.ini:6: ")); /* a continued line is fine */

	memset(&d, 0, sizeof d);
	assert_int_equal(profile_scan_text("nul.ini", "[a]\nx = 1\n\0\n", 11, &d), 1);
	assert_true(diag_has(&d, "nul.ini:3: contains a NUL byte"));
}

static void test_scan_long_line(void **state)
{
	struct profile_diags d;
	char text[1200];

	(void)state;
	memset(text, 'x', sizeof text);
	memcpy(text, "[a]\nk = ", 8);
	text[sizeof text - 1] = '\n';
	memset(&d, 0, sizeof d);
	assert_int_equal(profile_scan_text("long.ini", text, sizeof text, &d), 1);
	assert_true(diag_has(&d, "long.ini:2: line is longer than"));
}

/* ---- renderings ---- */

static void test_format(void **state)
{
	struct profile p;
	struct strbuf b = STRBUF_INIT;
	const char *s;

	(void)state;
	load_ok("profiles/nodemcu-v1.ini", &p);
	profile_format(&p, &b);
	assert_false(strbuf_failed(&b));
	s = strbuf_str(&b);
	HAS(s, "nodemcu-v1");
	HAS(s, "NodeMCU DevKit 1.0 (ESP-12E)");
	HAS(s, "0x400000");
	HAS(s, "dio");
	HAS(s, "40m");
	HAS(s, "0xFFF0C101");
	HAS(s, "[partition.init_data]");
	HAS(s, "0x3FC000");
	HAS(s, "init_data");
	HAS(s, "74880");
	HAS(s, "helper");
	assert_null(strstr(s, "\n  signature ")); /* an AVR-only key is not shown */
	strbuf_free(&b);

	load_ok("profiles/arduino-uno-r3.ini", &p);
	profile_format(&p, &b);
	s = strbuf_str(&b);
	HAS(s, "1E 95 0F");
	HAS(s, "atmega328p");
	HAS(s, "stk500v1");
	HAS(s, "(no boot check)");
	HAS(s, "protected");
	assert_null(strstr(s, "chip_magic"));
	assert_null(strstr(s, "freq"));
	assert_null(strstr(s, "helper"));
	strbuf_free(&b);
}

static void test_schema_man(void **state)
{
	struct strbuf b = STRBUF_INIT;
	const struct profile_key *k;
	const char *s, *q;
	size_t n, i, tp = 0;

	(void)state;
	k = profile_schema(&n);
	profile_schema_man(&b);
	assert_false(strbuf_failed(&b));
	s = strbuf_str(&b);
	for (q = s; (q = strstr(q, ".TP\n")) != NULL; q++)
		tp++;
	assert_int_equal(tp, n);
	for (i = 0; i < n; i++) {
		char want[64], name[64], *o;
		const char *c;

		/* the name as man(7) text: hyphens escaped */
		for (o = name, c = k[i].name; *c; c++) {
			if (*c == '-')
				*o++ = '\\';
			*o++ = *c;
		}
		*o = '\0';
		snprintf(want, sizeof want, ".TP\n.B %s\n", name);
		HAS(s, want);
	}
	HAS(s, ".SS \"[device]\"");
	HAS(s, ".SS \"[flash]\"");
	HAS(s, ".SS \"[partition.NAME]\"");
	HAS(s, "\\fBesp\\-rom\\fR");
	HAS(s, ".B size_flag\n\\fIsize\\fR: 256KB to 128MB");
	HAS(s, ".B helper\n\\fIyes or no\\fR: esp8266 profiles only. Default: yes.\n.br\n");
	HAS(s, "Default: same as \\fBrom_baud\\fR.");
	HAS(s, "Default: 4096 on ESP, required otherwise.");
	/* no line may start with a space or with an unescaped text dot */
	for (q = s; *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : q + strlen(q)) {
		assert_true(*q != ' ');
		if (*q == '.')
			assert_true(strncmp(q, ".TP\n", 4) == 0 || strncmp(q, ".B ", 3) == 0 ||
				    strncmp(q, ".br\n", 4) == 0 || strncmp(q, ".SS ", 4) == 0);
	}
	strbuf_free(&b);
}

static void test_schema_table(void **state)
{
	const struct profile_key *k;
	size_t n, i, j;

	(void)state;
	k = profile_schema(&n);
	assert_true(n >= 30);
	for (i = 0; i < n; i++) {
		print_message("[%s] %s\n", k[i].section, k[i].name);
		assert_non_null(k[i].section);
		assert_non_null(k[i].name);
		assert_non_null(k[i].help);
		assert_true(strlen(k[i].help) > 10);
		for (j = 0; j < i; j++)
			assert_false(strcmp(k[i].section, k[j].section) == 0 &&
				     strcmp(k[i].name, k[j].name) == 0);
		switch (k[i].type) {
		case PROFILE_T_STRING:
		case PROFILE_T_REGEX:
			assert_true(k[i].max < k[i].size);
			break;
		case PROFILE_T_UINT:
		case PROFILE_T_SIZE:
			assert_int_equal(k[i].size, sizeof(uint32_t));
			assert_true(k[i].min <= k[i].max && k[i].max <= UINT32_MAX);
			break;
		case PROFILE_T_ENUM:
			assert_non_null(k[i].choices);
			if (!(k[i].flags & (PROFILE_KEY_TEXT | PROFILE_KEY_NUMBER)))
				assert_int_equal(k[i].size, sizeof(int));
			break;
		case PROFILE_T_BOOL:
			assert_int_equal(k[i].size, sizeof(bool));
			break;
		case PROFILE_T_BYTES:
			assert_true(k[i].max <= k[i].size);
			break;
		}
		/* a required key with a default is only allowed when the default
		 * covers some families and not others */
		if (k[i].required && k[i].def)
			assert_true(k[i].def_families != 0);
		/* numeric defaults parse and lie in range */
		if (k[i].def && k[i].def[0] != '=' &&
		    (k[i].type == PROFILE_T_UINT || k[i].type == PROFILE_T_SIZE)) {
			uint64_t v;

			assert_int_equal(profile_parse_number(k[i].def, k[i].type, k[i].flags,
							      &v, NULL), FW_OK);
			assert_true(v >= k[i].min && v <= k[i].max);
		}
	}
}

/* ---- names and lookups ---- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(profile_family_name(PROFILE_FAMILY_ESP8266), "esp8266");
	assert_string_equal(profile_family_name(PROFILE_FAMILY_ESP32), "esp32");
	assert_string_equal(profile_family_name(PROFILE_FAMILY_AVR), "avr");
	assert_string_equal(profile_family_name((enum profile_family)7), "unknown");
	assert_string_equal(profile_protocol_name(PROFILE_PROTO_ESP_ROM), "esp-rom");
	assert_string_equal(profile_protocol_name(PROFILE_PROTO_STK500V1), "stk500v1");
	assert_string_equal(profile_protocol_name((enum profile_protocol)9), "unknown");
	assert_string_equal(profile_mode_name(PROFILE_MODE_QIO), "qio");
	assert_string_equal(profile_mode_name(PROFILE_MODE_QOUT), "qout");
	assert_string_equal(profile_mode_name(PROFILE_MODE_DIO), "dio");
	assert_string_equal(profile_mode_name(PROFILE_MODE_DOUT), "dout");
	assert_string_equal(profile_mode_name(PROFILE_MODE_NONE), "none");
	assert_string_equal(profile_mode_name(4), "unknown");
	assert_string_equal(profile_mode_name(-2), "unknown");
	assert_string_equal(partition_role_name(PART_ROLE_APP), "app");
	assert_string_equal(partition_role_name(PART_ROLE_PARTITION_TABLE), "partition_table");
	assert_string_equal(partition_role_name(PART_ROLE_BLANK), "blank");
	assert_string_equal(partition_role_name((enum partition_role)42), "unknown");
}

static void test_bootloader_offsets(void **state)
{
	static const struct {
		enum profile_family f;
		const char *chip;
		uint32_t want;
	} cases[] = {
		{PROFILE_FAMILY_ESP8266, "esp8266", 0x0},
		{PROFILE_FAMILY_ESP8266, "esp8285", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32", 0x1000},
		{PROFILE_FAMILY_ESP32, "esp32-s2", 0x1000},
		{PROFILE_FAMILY_ESP32, "esp32-s3", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32-c3", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32-c2", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32-c6", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32-h2", 0x0},
		{PROFILE_FAMILY_ESP32, "esp32-c5", 0x2000},
		{PROFILE_FAMILY_ESP32, "esp32-p4", 0x2000},
		{PROFILE_FAMILY_AVR, "atmega328p", UINT32_MAX},
		{PROFILE_FAMILY_ESP32, "esp8266", UINT32_MAX}, /* inconsistent: no guess */
		{PROFILE_FAMILY_ESP32, "esp99", UINT32_MAX},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct profile p;

		memset(&p, 0, sizeof p);
		p.family = cases[i].f;
		snprintf(p.chip, sizeof p.chip, "%s", cases[i].chip);
		assert_int_equal(profile_esp_bootloader_offset(&p), cases[i].want);
	}
}

static void test_partition_at_edges(void **state)
{
	struct profile p;

	(void)state;
	memset(&p, 0, sizeof p);
	p.npart = 1;
	p.part[0].offset = 0xFFFFF000u;
	p.part[0].size = 0x1000; /* ends exactly at 2^32: no wrap-around */
	assert_non_null(profile_partition_at(&p, 0xFFFFFFFFu));
	assert_null(profile_partition_at(&p, 0xFFFFEFFFu));
	assert_null(profile_partition_at(&p, 0));
}

/* ---- profile_find ---- */

static void test_find(void **state)
{
	struct tmp t;
	struct fw_err e = {0};
	char out[512], search[700], want[400];
	const char *a, *b;

	(void)state;
	tmp_init(&t);
	a = tmp_dir(&t, "a");
	b = tmp_dir(&t, "b");
	snprintf(want, sizeof want, "%s/board.ini", b);
	tmp_file(&t, "b/board.ini", "[device]\n");
	tmp_file(&t, "a/other.ini", "[device]\n");

	snprintf(search, sizeof search, "%s::%s", a, b);
	assert_int_equal(profile_find("board", search, out, sizeof out, &e), FW_OK);
	assert_string_equal(out, want);
	/* "board.ini" is not a file in the current folder: looked up as an id */
	assert_int_equal(profile_find("board.ini", search, out, sizeof out, &e), FW_OK);
	assert_string_equal(out, want);
	/* the first folder wins */
	tmp_file(&t, "a/board.ini", "[device]\n");
	assert_int_equal(profile_find("board", search, out, sizeof out, &e), FW_OK);
	snprintf(want, sizeof want, "%s/board.ini", a);
	assert_string_equal(out, want);

	/* a path is used as it is */
	assert_int_equal(profile_find("profiles/esp01.ini", "/nonexistent", out, sizeof out,
				      &e), FW_OK);
	assert_string_equal(out, "profiles/esp01.ini");
	assert_int_equal(profile_find("profiles/nope.ini", search, out, sizeof out, &e),
			 FW_EPROFILE);
	HAS(e.msg, "profiles/nope.ini");

	assert_int_equal(profile_find("missing", search, out, sizeof out, &e), FW_EPROFILE);
	HAS(e.msg, "\"missing\"");
	HAS(e.msg, a);
	assert_int_equal(profile_find("board", NULL, out, sizeof out, &e), FW_EPROFILE);
	assert_int_equal(profile_find("board", "", out, sizeof out, &e), FW_EPROFILE);
	assert_int_equal(profile_find("", search, out, sizeof out, &e), FW_EINVAL);
	assert_int_equal(profile_find(NULL, search, out, sizeof out, &e), FW_EINVAL);
	assert_int_equal(profile_find("bad name", search, out, sizeof out, &e), FW_EINVAL);
	assert_int_equal(profile_find(".hidden", search, out, sizeof out, &e), FW_EINVAL);
	assert_int_equal(profile_find("board", search, out, 8, &e), FW_EINVAL);
	/* the shipped folder through the search path */
	assert_int_equal(profile_find("nodemcu-v1", "profiles", out, sizeof out, &e), FW_OK);
	assert_string_equal(out, "profiles/nodemcu-v1.ini");

	tmp_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_profiles_validate),
		cmocka_unit_test(test_nodemcu),
		cmocka_unit_test(test_esp01),
		cmocka_unit_test(test_wemos),
		cmocka_unit_test(test_esp32_devkitc),
		cmocka_unit_test(test_uno),
		cmocka_unit_test(test_nano_oldboot),
		cmocka_unit_test(test_bad_corpus),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_not_a_profile),
		cmocka_unit_test(test_diag_limit),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_avr_needs_sector_size),
		cmocka_unit_test(test_public_key),
		cmocka_unit_test(test_values_case_and_spacing),
		cmocka_unit_test(test_parse_number),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_scan_text),
		cmocka_unit_test(test_scan_long_line),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_schema_man),
		cmocka_unit_test(test_schema_table),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bootloader_offsets),
		cmocka_unit_test(test_partition_at_edges),
		cmocka_unit_test(test_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
