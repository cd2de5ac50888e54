/* Tests for the integrity module: hash vectors, hex, sidecars, manifests,
 * the mismatch message, and detached signatures made by the openssl command
 * line with keys generated for this run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "integrity.h"

#define HEX_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HEX_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HEX_MILLION "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

#define assert_has(msg, needle)                                                  \
	do {                                                                     \
		if (!strstr((msg), (needle))) {                                  \
			print_error("message \"%s\" lacks \"%s\"\n", (msg), (needle)); \
			fail();                                                  \
		}                                                                \
	} while (0)

static void hex_of(const uint8_t *bin, size_t len, char *out)
{
	integrity_hex(bin, len, out);
}

/* ---- hashes ------------------------------------------------------------ */

static void test_sha256_vectors(void **state)
{
	uint8_t d[SHA256_LEN];
	char h[SHA256_HEX_LEN + 1];
	(void)state;

	assert_int_equal(integrity_sha256("", 0, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, HEX_EMPTY);
	assert_int_equal(integrity_sha256(NULL, 0, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, HEX_EMPTY);
	assert_int_equal(integrity_sha256("abc", 3, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, HEX_ABC);
	assert_int_equal(integrity_sha256(
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_int_equal(integrity_sha256(NULL, 1, d), FW_EINVAL);
}

static void test_md5_vectors(void **state)
{
	uint8_t d[MD5_LEN];
	char h[MD5_HEX_LEN + 1];
	(void)state;

	assert_int_equal(integrity_md5("", 0, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, "d41d8cd98f00b204e9800998ecf8427e");
	assert_int_equal(integrity_md5("abc", 3, d), FW_OK);
	hex_of(d, sizeof d, h);
	assert_string_equal(h, "900150983cd24fb0d6963f7d28e17f72");
}

/* A million 'a', fed in uneven chunks so that block boundaries fall
 * everywhere; the one-shot helper must agree. */
static void million_a(enum integrity_algo algo, const char *want, size_t dlen)
{
	static char chunk[997];
	struct integrity_hash *h = integrity_hash_new(algo);
	uint8_t d[SHA256_LEN], one[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1];
	size_t left = 1000000, n;
	char *all;

	assert_non_null(h);
	memset(chunk, 'a', sizeof chunk);
	while (left) {
		n = left < sizeof chunk ? left : sizeof chunk;
		if (left % 7 == 0)
			n = n > 13 ? 13 : n;
		assert_int_equal(integrity_hash_update(h, chunk, n), FW_OK);
		left -= n;
	}
	assert_int_equal(integrity_hash_update(h, NULL, 0), FW_OK);
	assert_int_equal(integrity_hash_final(h, d), FW_OK);
	hex_of(d, dlen, hex);
	assert_string_equal(hex, want);
	integrity_hash_free(h);

	all = malloc(1000000);
	assert_non_null(all);
	memset(all, 'a', 1000000);
	if (algo == INTEGRITY_SHA256)
		assert_int_equal(integrity_sha256(all, 1000000, one), FW_OK);
	else
		assert_int_equal(integrity_md5(all, 1000000, one), FW_OK);
	free(all);
	assert_memory_equal(one, d, dlen);
}

static void test_million_a_streamed(void **state)
{
	(void)state;
	million_a(INTEGRITY_SHA256, HEX_MILLION, SHA256_LEN);
	million_a(INTEGRITY_MD5, "7707d6ae4e027c70eea2a935c2296f21", MD5_LEN);
}

static void test_hash_misuse(void **state)
{
	struct integrity_hash *h;
	uint8_t d[SHA256_LEN];
	(void)state;

	assert_null(integrity_hash_new((enum integrity_algo)99));
	integrity_hash_free(NULL);
	h = integrity_hash_new(INTEGRITY_SHA256);
	assert_non_null(h);
	assert_int_equal(integrity_hash_update(h, NULL, 3), FW_EINVAL);
	assert_int_equal(integrity_hash_update(h, "abc", 3), FW_OK);
	assert_int_equal(integrity_hash_final(h, NULL), FW_EINVAL);
	assert_int_equal(integrity_hash_final(h, d), FW_OK);
	/* Finished: no more data, no second digest. */
	assert_int_equal(integrity_hash_update(h, "x", 1), FW_EINVAL);
	assert_int_equal(integrity_hash_final(h, d), FW_EINVAL);
	integrity_hash_free(h);
	assert_int_equal(integrity_hash_update(NULL, "x", 1), FW_EINVAL);
	assert_int_equal(ERR_peek_error(), 0);
}

/* ---- hex and equality -------------------------------------------------- */

static void test_hex_roundtrip(void **state)
{
	uint8_t b[SHA256_LEN], d[SHA256_LEN];
	char h[SHA256_HEX_LEN + 1];
	struct fw_err e = {0};
	(void)state;

	assert_int_equal(integrity_unhex(HEX_ABC, b, SHA256_LEN, &e), FW_OK);
	integrity_sha256("abc", 3, d);
	assert_memory_equal(b, d, SHA256_LEN);
	hex_of(b, SHA256_LEN, h);
	assert_string_equal(h, HEX_ABC);
	/* Either case, surrounding blanks (a pasted value with its newline). */
	assert_int_equal(integrity_unhex(" \tBA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\r\n",
					 b, SHA256_LEN, &e), FW_OK);
	assert_memory_equal(b, d, SHA256_LEN);
	hex_of(b, 0, h);
	assert_string_equal(h, "");
}

static void test_unhex_errors(void **state)
{
	uint8_t b[SHA256_LEN], keep[SHA256_LEN];
	struct fw_err e = {0};
	(void)state;

	memset(b, 0x5a, sizeof b);
	memcpy(keep, b, sizeof b);
	/* 63 digits */
	assert_int_equal(integrity_unhex(HEX_ABC + 1, b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "64 hex digits");
	assert_has(e.msg, "got 63");
	assert_memory_equal(b, keep, sizeof b);
	/* 65 digits */
	assert_int_equal(integrity_unhex(HEX_ABC "0", b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "got 65");
	/* An MD5 given where a SHA-256 is expected. */
	assert_int_equal(integrity_unhex("900150983cd24fb0d6963f7d28e17f72", b, SHA256_LEN, &e),
			 FW_EINVAL);
	assert_has(e.msg, "SHA-256");
	assert_has(e.msg, "MD5");
	/* A non-hex character, named with its position. */
	assert_int_equal(integrity_unhex("ba7816bg8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
					 b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "character 8 ('g')");
	assert_has(e.msg, "not a hex digit");
	assert_int_equal(integrity_unhex("0x" HEX_ABC, b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "'x'");
	/* A whole sha256sum line pasted on the command line. */
	assert_int_equal(integrity_unhex(HEX_ABC "  app.bin", b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "followed by other text");
	assert_int_equal(integrity_unhex("   ", b, SHA256_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "empty");
	assert_int_equal(integrity_unhex(NULL, b, SHA256_LEN, &e), FW_EINVAL);
	/* MD5 length is described as such. */
	assert_int_equal(integrity_unhex("abcd", b, MD5_LEN, &e), FW_EINVAL);
	assert_has(e.msg, "MD5 hash (32 hex digits)");
	assert_int_equal(integrity_unhex("\x01" "bcd", b, 2, &e), FW_EINVAL);
	assert_has(e.msg, "\\x01");
	assert_memory_equal(b, keep, sizeof b);
	assert_int_equal(integrity_unhex("abcd", b, 2, NULL), FW_OK);
	assert_int_equal(b[0], 0xab);
	assert_int_equal(b[1], 0xcd);
}

static void test_equal(void **state)
{
	uint8_t a[SHA256_LEN], b[SHA256_LEN];
	(void)state;

	integrity_sha256("abc", 3, a);
	memcpy(b, a, sizeof a);
	assert_true(integrity_equal(a, b, SHA256_LEN));
	b[0] ^= 1;
	assert_false(integrity_equal(a, b, SHA256_LEN));
	b[0] ^= 1;
	b[SHA256_LEN - 1] ^= 0x80;
	assert_false(integrity_equal(a, b, SHA256_LEN));
	assert_true(integrity_equal(a, b, SHA256_LEN - 1));
	assert_true(integrity_equal(a, b, 0));
}

/* ---- mismatch ---------------------------------------------------------- */

static void test_check_sha256(void **state)
{
	uint8_t got[SHA256_LEN], want[SHA256_LEN];
	struct fw_err e = {0};
	char *pw, *pg;
	(void)state;

	integrity_sha256("abc", 3, got);
	memcpy(want, got, sizeof got);
	assert_int_equal(integrity_check_sha256("app.bin", got, want, &e), FW_OK);
	integrity_sha256("", 0, want);
	assert_int_equal(integrity_check_sha256("fw/app.bin", got, want, &e), FW_EINTEGRITY);
	assert_int_equal(e.code, FW_EINTEGRITY);
	assert_has(e.msg, "fw/app.bin");
	pw = strstr(e.msg, HEX_EMPTY);
	pg = strstr(e.msg, HEX_ABC);
	assert_non_null(pw);
	assert_non_null(pg);
	assert_true(pw < pg); /* expected first */
	assert_has(e.msg, "expected " HEX_EMPTY);
	assert_has(e.msg, "got " HEX_ABC);
	assert_has(e.msg, "do not flash");
	assert_has(e.msg, "download it");
	/* A very long name is cut, never the hashes or the advice. */
	{
		char name[700];
		memset(name, 'n', sizeof name - 1);
		name[sizeof name - 1] = '\0';
		assert_int_equal(integrity_check_sha256(name, got, want, &e), FW_EINTEGRITY);
		assert_has(e.msg, HEX_EMPTY);
		assert_has(e.msg, HEX_ABC);
		assert_has(e.msg, "download it");
	}
	assert_int_equal(integrity_check_sha256(NULL, got, want, NULL), FW_EINTEGRITY);
}

/* ---- sidecar ----------------------------------------------------------- */

static int lookup(const char *text, const char *file, uint8_t *out, struct fw_err *e)
{
	return integrity_sidecar_lookup(text, strlen(text), file, out, e);
}

static void expect_lookup(const char *text, const char *file, const char *want_hex)
{
	uint8_t d[SHA256_LEN];
	char h[SHA256_HEX_LEN + 1];
	struct fw_err e = {0};
	int rc = lookup(text, file, d, &e);

	if (rc != FW_OK) {
		print_error("lookup of %s failed: %s\n", file, e.msg);
		fail();
	}
	hex_of(d, SHA256_LEN, h);
	assert_string_equal(h, want_hex);
}

static void test_sidecar_text_and_binary(void **state)
{
	(void)state;
	expect_lookup(HEX_ABC "  app.bin\n", "app.bin", HEX_ABC);
	expect_lookup(HEX_ABC " *app.bin\n", "app.bin", HEX_ABC);
	expect_lookup(HEX_EMPTY "  boot.bin\n" HEX_ABC " *app.bin\n", "app.bin", HEX_ABC);
	expect_lookup(HEX_EMPTY "  boot.bin\n" HEX_ABC " *app.bin\n", "boot.bin", HEX_EMPTY);
	/* Uppercase hex, no final newline, a tab separator. */
	expect_lookup("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD  app.bin",
		      "app.bin", HEX_ABC);
	expect_lookup(HEX_ABC "\tapp.bin\n", "app.bin", HEX_ABC);
	/* Names with spaces survive. */
	expect_lookup(HEX_ABC "  my app v2.bin\n", "my app v2.bin", HEX_ABC);
}

static void test_sidecar_bare_hash(void **state)
{
	uint8_t d[SHA256_LEN];
	struct fw_err e = {0};
	(void)state;

	expect_lookup(HEX_ABC "\n", "anything.bin", HEX_ABC);
	expect_lookup("# made by the vendor\n\n" HEX_ABC "\r\n", "x/y.hex", HEX_ABC);
	assert_int_equal(lookup(HEX_ABC "\n" HEX_EMPTY "\n", "a.bin", d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "2 hashes without file names");
	assert_int_equal(lookup(HEX_ABC "\n" HEX_EMPTY "  a.bin\n", "a.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "line 1");
	assert_has(e.msg, "without a file name");
}

static void test_sidecar_comments_crlf_bom(void **state)
{
	(void)state;
	expect_lookup("# sums\r\n\r\n   \r\n" HEX_EMPTY "  boot.bin\r\n" HEX_ABC "  app.bin\r\n",
		      "app.bin", HEX_ABC);
	expect_lookup("\xef\xbb\xbf" HEX_ABC "  app.bin\r\n", "app.bin", HEX_ABC);
	/* Trailing blanks after the name (hand edits) do not stop a match. */
	expect_lookup(HEX_ABC "  app.bin \t\r\n", "app.bin", HEX_ABC);
}

static void test_sidecar_paths(void **state)
{
	uint8_t d[SHA256_LEN];
	struct fw_err e = {0};
	(void)state;

	expect_lookup(HEX_ABC "  build/out/app.bin\n", "app.bin", HEX_ABC);
	expect_lookup(HEX_ABC " *./app.bin\n", "/home/tech/Downloads/app.bin", HEX_ABC);
	expect_lookup(HEX_EMPTY "  a/boot.bin\n" HEX_ABC "  b/app.bin\n", "c/app.bin", HEX_ABC);
	/* The same name twice with the same hash is fine, with two is not. */
	expect_lookup(HEX_ABC "  a/app.bin\n" HEX_ABC "  b/app.bin\n", "app.bin", HEX_ABC);
	assert_int_equal(lookup(HEX_ABC "  a/app.bin\n" HEX_EMPTY "  b/app.bin\n", "app.bin",
				d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "lines 1 and 2");
	assert_has(e.msg, "app.bin");
	/* Only the last component counts, and it has to be whole. */
	assert_int_equal(lookup(HEX_ABC "  xapp.bin\n", "app.bin", d, &e), FW_EINTEGRITY);
	assert_int_equal(lookup(HEX_ABC "  app.bin/\n", "app.bin", d, &e), FW_EINTEGRITY);
	assert_int_equal(lookup(HEX_ABC "  App.bin\n", "app.bin", d, &e), FW_EINTEGRITY);
}

static void test_sidecar_gnu_forms(void **state)
{
	uint8_t d[SHA256_LEN];
	struct fw_err e = {0};
	(void)state;

	/* sha256sum --tag */
	expect_lookup("SHA256 (app.bin) = " HEX_ABC "\n", "app.bin", HEX_ABC);
	expect_lookup("SHA256 (dir/a (1).bin) = " HEX_ABC "\n", "a (1).bin", HEX_ABC);
	/* openssl dgst -sha256 (3.0 and 1.1 spellings). */
	expect_lookup("SHA2-256(out/app.bin)= " HEX_ABC "\n", "app.bin", HEX_ABC);
	expect_lookup("SHA256(app.bin)= " HEX_ABC "\n", "app.bin", HEX_ABC);
	/* Another algorithm with a 64-digit hash must not pass for SHA-256. */
	assert_int_equal(lookup("SHA3-256 (app.bin) = " HEX_ABC "\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "line 1 is a SHA3-256 sum");
	assert_int_equal(lookup("BLAKE2s-256(app.bin)= " HEX_ABC "\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "BLAKE2s-256");
	/* Escaped names (a backslash or newline in the name). */
	expect_lookup("\\" HEX_ABC "  we\\\\ird\\nname.bin\n", "we\\ird\nname.bin", HEX_ABC);
	expect_lookup("\\SHA256 (a\\nb) = " HEX_ABC "\n", "a\nb", HEX_ABC);
	assert_int_equal(lookup("\\" HEX_ABC "  bad\\qname\n", "x", d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "line 1");
	assert_has(e.msg, "escape");
	assert_int_equal(lookup("MD5 (app.bin) = 900150983cd24fb0d6963f7d28e17f72\n", "app.bin",
				d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "MD5");
	assert_has(e.msg, "SHA-256");
	assert_int_equal(lookup("SHA256 (app.bin) = " HEX_ABC "zz\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "not a hex digit");
	assert_int_equal(lookup("SHA256 (app.bin) " HEX_ABC "\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "SHA256 (name) = <hash>");
}

static void test_sidecar_errors(void **state)
{
	uint8_t d[SHA256_LEN], keep[SHA256_LEN];
	struct fw_err e = {0};
	(void)state;

	memset(d, 0x33, sizeof d);
	memcpy(keep, d, sizeof d);
	/* Not found: names the file and what the sidecar holds. */
	assert_int_equal(lookup(HEX_ABC "  a.bin\n" HEX_ABC "  b.bin\n" HEX_ABC "  c.bin\n"
				HEX_ABC "  d.bin\n" HEX_ABC "  e.bin\n", "dir/app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_int_equal(e.code, FW_EINTEGRITY);
	assert_has(e.msg, "no line for app.bin");
	assert_has(e.msg, "a.bin, b.bin, c.bin and 2 more");
	/* An md5sum file is recognised as such. */
	assert_int_equal(lookup("# x\n900150983cd24fb0d6963f7d28e17f72  app.bin\n", "app.bin", d,
				&e), FW_EINTEGRITY);
	assert_has(e.msg, "line 2");
	assert_has(e.msg, "MD5");
	assert_int_equal(lookup("a9993e364706816aba3e25717850c26c9cd0d89d  app.bin\n", "app.bin",
				d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "SHA-1");
	/* A truncated hash. */
	assert_int_equal(lookup(HEX_EMPTY "  b.bin\n" HEX_ABC "0  app.bin\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "line 2");
	assert_has(e.msg, "65");
	/* Not a sum line at all: an error even when the file is listed. */
	assert_int_equal(lookup(HEX_ABC "  app.bin\nhello world\n", "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "line 2 is not a sha256sum line");
	assert_int_equal(lookup(HEX_ABC "xyz  app.bin\n", "app.bin", d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "line 1");
	/* Empty, comments only, binary. */
	assert_int_equal(lookup("", "app.bin", d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "no hash");
	assert_int_equal(lookup("# nothing\n\n", "app.bin", d, &e), FW_EINTEGRITY);
	assert_has(e.msg, "no hash");
	assert_int_equal(integrity_sidecar_lookup("\x7f" "ELF\0\0\x01", 7, "app.bin", d, &e),
			 FW_EINTEGRITY);
	assert_has(e.msg, "NUL");
	assert_int_equal(lookup(HEX_ABC "  app.bin\n", NULL, d, &e), FW_EINVAL);
	assert_int_equal(integrity_sidecar_lookup(NULL, 0, "app.bin", d, &e), FW_EINVAL);
	/* Control characters in names do not reach the message. */
	assert_int_equal(lookup(HEX_ABC "  a\x1b[2Jb\n", "app.bin", d, &e), FW_EINTEGRITY);
	assert_null(strchr(e.msg, '\x1b'));
	assert_memory_equal(d, keep, sizeof d);
}

/* ---- manifest ---------------------------------------------------------- */

static int mparse(const char *text, struct integrity_manifest *m, struct fw_err *e)
{
	return integrity_manifest_parse(text, strlen(text), m, e);
}

static void test_manifest_ok(void **state)
{
	struct integrity_manifest m = INTEGRITY_MANIFEST_INIT;
	const struct integrity_manifest_entry *en = NULL;
	struct fw_err e = {0};
	char h[SHA256_HEX_LEN + 1];
	const char *text =
		"\xef\xbb\xbf# flashwise manifest\r\n"
		"; release 1.2\r\n"
		"\r\n"
		"[Boot/Boot.BIN]\r\n"
		"SHA256 = " HEX_EMPTY "\r\n"
		"[app.bin]\r\n"
		"  sha256=" HEX_ABC "  \r\n"
		"signature = sigs/app.bin.sig\r\n";
	(void)state;

	if (mparse(text, &m, &e) != FW_OK) {
		print_error("%s\n", e.msg);
		fail();
	}
	assert_int_equal(m.n, 2);
	assert_string_equal(m.entry[0].name, "Boot/Boot.BIN");
	assert_string_equal(m.entry[0].signature, "");
	assert_int_equal(m.entry[0].line, 4);
	hex_of(m.entry[0].sha256, SHA256_LEN, h);
	assert_string_equal(h, HEX_EMPTY);
	assert_string_equal(m.entry[1].name, "app.bin");
	assert_string_equal(m.entry[1].signature, "sigs/app.bin.sig");

	assert_int_equal(integrity_manifest_find(&m, "/tmp/x/app.bin", &en, &e), FW_OK);
	assert_ptr_equal(en, &m.entry[1]);
	hex_of(en->sha256, SHA256_LEN, h);
	assert_string_equal(h, HEX_ABC);
	assert_int_equal(integrity_manifest_find(&m, "Boot.BIN", &en, &e), FW_OK);
	assert_ptr_equal(en, &m.entry[0]);
	assert_int_equal(integrity_manifest_find(&m, "boot.bin", &en, &e), FW_EINTEGRITY);
	assert_has(e.msg, "no entry for boot.bin");
	assert_has(e.msg, "Boot.BIN, app.bin");
	integrity_manifest_free(&m);
	assert_null(m.entry);
	assert_int_equal(m.n, 0);
	integrity_manifest_free(&m);
}

static void manifest_fails(const char *text, const char *need1, const char *need2)
{
	struct integrity_manifest m = INTEGRITY_MANIFEST_INIT;
	struct fw_err e = {0};

	assert_int_equal(mparse(text, &m, &e), FW_EINTEGRITY);
	assert_int_equal(e.code, FW_EINTEGRITY);
	assert_has(e.msg, need1);
	if (need2)
		assert_has(e.msg, need2);
	assert_null(m.entry);
	assert_int_equal(m.n, 0);
}

static void test_manifest_errors(void **state)
{
	(void)state;
	manifest_fails("", "lists no file", NULL);
	manifest_fails("# only a comment\n", "lists no file", NULL);
	manifest_fails("sha256 = " HEX_ABC "\n", "line 1", "before any [file] section");
	manifest_fails("[a.bin]\nsignature = a.sig\n[b.bin]\nsha256 = " HEX_ABC "\n",
		       "line 1 [a.bin]", "sha256 is missing");
	manifest_fails("[a.bin]\nsha256 = " HEX_ABC "\n[b.bin]\n", "line 3 [b.bin]",
		       "sha256 is missing");
	manifest_fails("[a.bin]\nsha256 = " HEX_ABC "0\n", "line 2 [a.bin] sha256", "got 65");
	manifest_fails("[a.bin]\nsha256 = 900150983cd24fb0d6963f7d28e17f72\n", "line 2 [a.bin]",
		       "64 hex digits");
	manifest_fails("[a.bin]\nsha256 =\n", "line 2 [a.bin]", "empty");
	manifest_fails("[a.bin]\nsha256 = " HEX_ABC "\nsha256 = " HEX_ABC "\n", "line 3 [a.bin]",
		       "given twice");
	manifest_fails("[a.bin]\nsha256 = " HEX_ABC "\nsignature = a\nsignature = b\n",
		       "line 4 [a.bin]", "signature is given twice");
	manifest_fails("[a.bin]\nsha256 = " HEX_ABC "\nsignature =  \n", "line 3 [a.bin]",
		       "signature is empty");
	manifest_fails("[a.bin]\nsha265 = " HEX_ABC "\n", "line 2 [a.bin]",
		       "unknown key 'sha265'");
	manifest_fails("[a.bin]\nsha256 " HEX_ABC "\n", "line 2 [a.bin]", "key = value");
	manifest_fails("[a.bin\nsha256 = " HEX_ABC "\n", "line 1", "']'");
	manifest_fails("[ ]\nsha256 = " HEX_ABC "\n", "line 1", "named by a file");
	manifest_fails("[x/a.bin]\nsha256 = " HEX_ABC "\n[y/a.bin]\nsha256 = " HEX_ABC "\n",
		       "line 3 [y/a.bin]", "already listed at line 1");
	{
		char big[400];
		snprintf(big, sizeof big, "[%0300d]\nsha256 = " HEX_ABC "\n", 7);
		manifest_fails(big, "line 1", "longer than 255");
	}
}

static void test_manifest_args(void **state)
{
	struct integrity_manifest m = INTEGRITY_MANIFEST_INIT;
	const struct integrity_manifest_entry *en;
	struct fw_err e = {0};
	(void)state;

	assert_int_equal(integrity_manifest_parse("[a]", 3, NULL, &e), FW_EINVAL);
	assert_int_equal(integrity_manifest_parse(NULL, 0, &m, &e), FW_EINVAL);
	assert_int_equal(integrity_manifest_find(&m, "a", &en, &e), FW_EINTEGRITY);
	assert_has(e.msg, "lists nothing");
	assert_int_equal(integrity_manifest_find(&m, NULL, &en, &e), FW_EINVAL);
	/* The NUL test above used a length that covers the NUL. */
	assert_int_equal(integrity_manifest_parse("[a]\0", 4, &m, &e), FW_EINTEGRITY);
	assert_has(e.msg, "NUL");
}

/* ---- signatures -------------------------------------------------------- */

struct sigfix {
	char dir[64];
	uint8_t *data;
	size_t len;
};

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	if (d) {
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

static bool run(const struct sigfix *f, const char *cmd)
{
	char line[1024];
	int st;

	snprintf(line, sizeof line, "cd '%s' && %s 2>>openssl.log", f->dir, cmd);
	st = system(line);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		print_error("command failed: %s (see %s/openssl.log)\n", cmd, f->dir);
		return false;
	}
	return true;
}

static uint8_t *slurp(const struct sigfix *f, const char *name, size_t *len)
{
	char path[512];
	FILE *fp;
	long n;
	uint8_t *buf;

	snprintf(path, sizeof path, "%s/%s", f->dir, name);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	buf[n] = 0;
	*len = (size_t)n;
	return buf;
}

static const char *const setup_cmds[] = {
	"openssl genpkey -algorithm ed25519 -out ed.key",
	"openssl pkey -in ed.key -pubout -out ed.pub",
	"openssl genpkey -algorithm ed25519 -out ed2.key",
	"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key",
	"openssl pkey -in ec.key -pubout -out ec.pub",
	"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec2.key",
	"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key",
	"openssl pkey -in p384.key -pubout -out p384.pub",
	"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key",
	"openssl pkey -in rsa.key -pubout -out rsa.pub",
	"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1k.key",
	"openssl pkey -in rsa1k.key -pubout -out rsa1k.pub",
	"openssl genpkey -algorithm ed448 -out ed448.key",
	"openssl pkey -in ed448.key -pubout -out ed448.pub",
	"openssl req -new -x509 -key ec.key -subj /CN=flashwise-test -days 1 -out cert.pem",
	"cat ed.pub ec.pub > two.pub",
	/* The three ways the issue names. */
	"openssl pkeyutl -sign -rawin -inkey ed.key -in data.bin -out ed.sig",
	"openssl pkeyutl -sign -rawin -inkey ed2.key -in data.bin -out ed2.sig",
	"openssl dgst -sha256 -sign ec.key -out ec.sig data.bin",
	"openssl dgst -sha256 -sign ec2.key -out ec2.sig data.bin",
	"openssl dgst -sha256 -binary -out data.dgst data.bin && "
	"openssl pkeyutl -sign -inkey ec.key -in data.dgst -out ecpk.sig",
	"openssl dgst -sha256 -sign rsa.key -out rsa.sig data.bin",
	"openssl dgst -sha256 -sign rsa1k.key -out rsa1k.sig data.bin",
	"openssl dgst -sha256 -sign ec.key -out empty-ec.sig empty.bin",
};

static int sig_setup(void **state)
{
	struct sigfix *f = calloc(1, sizeof *f);
	char path[512];
	FILE *fp;
	size_t i;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s", "/tmp/fw-integrity-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	/* Something image-like: a header and a non-repeating body. */
	f->len = 70000;
	f->data = malloc(f->len);
	if (!f->data)
		goto fail;
	for (i = 0; i < f->len; i++)
		f->data[i] = (uint8_t)((i * 2654435761u) >> 13);
	f->data[0] = 0xe9;
	snprintf(path, sizeof path, "%s/data.bin", f->dir);
	fp = fopen(path, "wb");
	if (!fp || fwrite(f->data, 1, f->len, fp) != f->len) {
		if (fp)
			fclose(fp);
		goto fail;
	}
	fclose(fp);
	snprintf(path, sizeof path, "%s/empty.bin", f->dir);
	fp = fopen(path, "wb");
	if (!fp)
		goto fail;
	fclose(fp);
	for (i = 0; i < sizeof setup_cmds / sizeof setup_cmds[0]; i++)
		if (!run(f, setup_cmds[i]))
			goto fail;
	*state = f;
	return 0;
fail:
	rm_tree(f->dir);
	free(f->data);
	free(f);
	return -1;
}

static int sig_teardown(void **state)
{
	struct sigfix *f = *state;

	if (!f)
		return 0; /* the setup failed and cleaned up already */
	rm_tree(f->dir);
	free(f->data);
	free(f);
	return 0;
}

/* Verifies data (len bytes) with the signature file and key file named. */
static int verify(const struct sigfix *f, const char *pub, const uint8_t *data, size_t len,
		  const char *sigfile, struct fw_err *e)
{
	size_t plen, slen;
	uint8_t *p = slurp(f, pub, &plen), *s = slurp(f, sigfile, &slen);
	int rc;

	fw_err_clear(e);
	rc = integrity_verify_signature((const char *)p, plen, data, len, s, slen, e);
	free(p);
	free(s);
	/* Nothing may be left in OpenSSL's error queue. */
	assert_int_equal(ERR_peek_error(), 0);
	return rc;
}

struct sigcase {
	const char *pub, *sig, *other_sig, *kind;
};

static const struct sigcase sigcases[] = {
	{ "ed.pub", "ed.sig", "ed2.sig", "Ed25519" },
	{ "ec.pub", "ec.sig", "ec2.sig", "ECDSA P-256" },
	{ "ec.pub", "ecpk.sig", "ec2.sig", "ECDSA P-256" },
	{ "rsa.pub", "rsa.sig", "rsa1k.sig", "RSA" },
};

#define NCASES (sizeof sigcases / sizeof sigcases[0])

static void test_sig_verifies(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};
	size_t i;

	for (i = 0; i < NCASES; i++) {
		int rc = verify(f, sigcases[i].pub, f->data, f->len, sigcases[i].sig, &e);
		if (rc != FW_OK) {
			print_error("%s with %s: %s\n", sigcases[i].sig, sigcases[i].pub, e.msg);
			fail();
		}
	}
	/* A signature over an empty file (OpenSSL 3.0's pkeyutl cannot make an
	 * Ed25519 one; RFC 8032 test 1 below covers that). */
	assert_int_equal(verify(f, "ec.pub", (const uint8_t *)"", 0, "empty-ec.sig", &e), FW_OK);
	assert_int_equal(verify(f, "ec.pub", NULL, 0, "empty-ec.sig", &e), FW_OK);
	assert_int_equal(verify(f, "ec.pub", f->data, f->len, "empty-ec.sig", &e), FW_ESIGNATURE);
}

/* RFC 8032 section 7.1, test 1: the empty message, a fixed key and signature. */
static void test_sig_rfc8032(void **state)
{
	static const char pem[] =
		"-----BEGIN PUBLIC KEY-----\n"
		"MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
		"-----END PUBLIC KEY-----\n";
	uint8_t sig[64];
	struct fw_err e = {0};
	(void)state;

	assert_int_equal(integrity_unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
					 "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe"
					 "24655141438e7a100b", sig, sizeof sig, &e), FW_OK);
	assert_int_equal(integrity_verify_signature(pem, strlen(pem), NULL, 0, sig, sizeof sig, &e),
			 FW_OK);
	assert_int_equal(integrity_verify_signature(pem, strlen(pem), "x", 1, sig, sizeof sig, &e),
			 FW_ESIGNATURE);
	sig[63] ^= 0x01;
	assert_int_equal(integrity_verify_signature(pem, strlen(pem), NULL, 0, sig, sizeof sig, &e),
			 FW_ESIGNATURE);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_sig_flipped_data(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};
	uint8_t *copy = malloc(f->len);
	size_t i, at;
	static const size_t where[] = { 0, 12345, 69999 };

	assert_non_null(copy);
	for (i = 0; i < NCASES; i++) {
		for (at = 0; at < 3; at++) {
			memcpy(copy, f->data, f->len);
			copy[where[at]] ^= 0x01;
			assert_int_equal(verify(f, sigcases[i].pub, copy, f->len, sigcases[i].sig,
						&e), FW_ESIGNATURE);
			assert_int_equal(e.code, FW_ESIGNATURE);
			assert_has(e.msg, sigcases[i].kind);
			assert_has(e.msg, "does not verify");
			assert_has(e.msg, "do not flash");
		}
		/* One byte short. */
		assert_int_equal(verify(f, sigcases[i].pub, f->data, f->len - 1, sigcases[i].sig,
					&e), FW_ESIGNATURE);
	}
	free(copy);
}

static void test_sig_flipped_signature(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};
	size_t i, plen, slen, at;
	uint8_t *p, *s;
	int rc;

	for (i = 0; i < NCASES; i++) {
		p = slurp(f, sigcases[i].pub, &plen);
		s = slurp(f, sigcases[i].sig, &slen);
		/* In the first part (DER header or R), the middle, the last byte. */
		for (at = 0; at < 3; at++) {
			size_t pos = at == 0 ? 1 : at == 1 ? slen / 2 : slen - 1;
			s[pos] ^= 0x10;
			rc = integrity_verify_signature((char *)p, plen, f->data, f->len, s, slen,
							&e);
			assert_int_equal(rc, FW_ESIGNATURE);
			assert_int_equal(ERR_peek_error(), 0);
			s[pos] ^= 0x10;
		}
		/* Restored: verifies again (the flips were what failed). */
		assert_int_equal(integrity_verify_signature((char *)p, plen, f->data, f->len, s,
							    slen, &e), FW_OK);
		/* Truncated. */
		assert_int_equal(integrity_verify_signature((char *)p, plen, f->data, f->len, s,
							    slen - 1, &e), FW_ESIGNATURE);
		free(p);
		free(s);
	}
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_sig_other_key(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};
	size_t i;

	for (i = 0; i < NCASES; i++) {
		if (strcmp(sigcases[i].pub, "rsa.pub") == 0)
			continue; /* rsa1k.sig is checked in the key-type test */
		assert_int_equal(verify(f, sigcases[i].pub, f->data, f->len, sigcases[i].other_sig,
					&e), FW_ESIGNATURE);
		assert_has(e.msg, "does not verify");
	}
	/* A signature of one kind against a key of another. */
	assert_int_equal(verify(f, "ec.pub", f->data, f->len, "ed.sig", &e), FW_ESIGNATURE);
	assert_int_equal(verify(f, "rsa.pub", f->data, f->len, "ec.sig", &e), FW_ESIGNATURE);
	assert_int_equal(verify(f, "ed.pub", f->data, f->len, "ec.sig", &e), FW_ESIGNATURE);
	assert_has(e.msg, "64 bytes");
	assert_int_equal(verify(f, "ed.pub", f->data, f->len, "rsa.sig", &e), FW_ESIGNATURE);
}

static void test_sig_key_types(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};

	assert_int_equal(verify(f, "p384.pub", f->data, f->len, "ec.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "secp384r1");
	assert_has(e.msg, "P-256");
	assert_has(e.msg, "[trust] public_key");
	assert_int_equal(verify(f, "ed448.pub", f->data, f->len, "ed.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "ED448");
	assert_has(e.msg, "Ed25519");
	assert_int_equal(verify(f, "rsa1k.pub", f->data, f->len, "rsa1k.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "1024 bits");
	assert_has(e.msg, "2048");
	/* A private key is refused, even though it would verify. */
	assert_int_equal(verify(f, "ed.key", f->data, f->len, "ed.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "PRIVATE");
	assert_has(e.msg, "-pubout");
	assert_int_equal(verify(f, "cert.pem", f->data, f->len, "ec.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "certificate");
	assert_int_equal(verify(f, "two.pub", f->data, f->len, "ed.sig", &e), FW_EPROFILE);
	assert_has(e.msg, "more than one key");
}

static void test_sig_bad_pem(void **state)
{
	struct sigfix *f = *state;
	struct fw_err e = {0};
	size_t plen, slen;
	uint8_t *p = slurp(f, "ec.pub", &plen), *s = slurp(f, "ec.sig", &slen);
	static const char garbage[] = "this is not a key\n";
	char *cut;
	int rc;

	rc = integrity_verify_signature(garbage, strlen(garbage), f->data, f->len, s, slen, &e);
	assert_int_equal(rc, FW_EPROFILE);
	assert_has(e.msg, "not a readable PEM public key");
	assert_has(e.msg, "BEGIN PUBLIC KEY");
	assert_int_equal(ERR_peek_error(), 0);
	/* Cut in the middle of the base64. */
	cut = malloc(plen);
	assert_non_null(cut);
	memcpy(cut, p, plen);
	assert_int_equal(integrity_verify_signature(cut, plen / 2, f->data, f->len, s, slen, &e),
			 FW_EPROFILE);
	assert_has(e.msg, "PEM");
	/* A damaged base64 body. */
	cut[40] = cut[40] == 'A' ? 'B' : 'A';
	cut[41] = '*';
	assert_int_equal(integrity_verify_signature(cut, plen, f->data, f->len, s, slen, &e),
			 FW_EPROFILE);
	assert_int_equal(ERR_peek_error(), 0);
	free(cut);
	assert_int_equal(integrity_verify_signature("", 0, f->data, f->len, s, slen, &e),
			 FW_EPROFILE);
	assert_has(e.msg, "empty");
	/* Bad arguments and an empty signature. */
	assert_int_equal(integrity_verify_signature(NULL, 0, f->data, f->len, s, slen, &e),
			 FW_EINVAL);
	assert_int_equal(integrity_verify_signature((char *)p, plen, NULL, 5, s, slen, &e),
			 FW_EINVAL);
	assert_int_equal(integrity_verify_signature((char *)p, plen, f->data, f->len, s, 0, &e),
			 FW_ESIGNATURE);
	assert_has(e.msg, "signature is empty");
	assert_int_equal(integrity_verify_signature((char *)p, plen, f->data, f->len, NULL, 0,
						    NULL), FW_ESIGNATURE);
	assert_int_equal(ERR_peek_error(), 0);
	free(p);
	free(s);
}

int main(void)
{
	/* One group, so that the runner's "[  PASSED  ]" line counts every test;
	 * its setup makes the keys and signatures the signature tests use. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_md5_vectors),
		cmocka_unit_test(test_million_a_streamed),
		cmocka_unit_test(test_hash_misuse),
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_unhex_errors),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_check_sha256),
		cmocka_unit_test(test_sidecar_text_and_binary),
		cmocka_unit_test(test_sidecar_bare_hash),
		cmocka_unit_test(test_sidecar_comments_crlf_bom),
		cmocka_unit_test(test_sidecar_paths),
		cmocka_unit_test(test_sidecar_gnu_forms),
		cmocka_unit_test(test_sidecar_errors),
		cmocka_unit_test(test_manifest_ok),
		cmocka_unit_test(test_manifest_errors),
		cmocka_unit_test(test_manifest_args),
		cmocka_unit_test(test_sig_verifies),
		cmocka_unit_test(test_sig_rfc8032),
		cmocka_unit_test(test_sig_flipped_data),
		cmocka_unit_test(test_sig_flipped_signature),
		cmocka_unit_test(test_sig_other_key),
		cmocka_unit_test(test_sig_key_types),
		cmocka_unit_test(test_sig_bad_pem),
	};

	return cmocka_run_group_tests_name("integrity", tests, sig_setup, sig_teardown);
}
