/* Integrity: SHA-256 and MD5 through OpenSSL EVP, the expected-hash sources
 * (command line, sha256sum sidecar, manifest), and detached signatures
 * checked against a profile's pinned public key. Pure computation: the
 * callers read files and hand over buffers. */
#ifndef FLASHWISE_INTEGRITY_H
#define FLASHWISE_INTEGRITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SHA256_LEN 32
#define MD5_LEN 16
#define SHA256_HEX_LEN 64
#define MD5_HEX_LEN 32

enum integrity_algo {
	INTEGRITY_SHA256,
	INTEGRITY_MD5, /* only where a device protocol needs it (ESP SPI_FLASH_MD5) */
};

/* Streaming hash. _new returns NULL when out of memory. */
struct integrity_hash;
struct integrity_hash *integrity_hash_new(enum integrity_algo algo);
int integrity_hash_update(struct integrity_hash *h, const void *data, size_t len);
/* Writes 32 (SHA-256) or 16 (MD5) bytes; the context may not be updated after. */
int integrity_hash_final(struct integrity_hash *h, uint8_t *out);
void integrity_hash_free(struct integrity_hash *h);

/* One-shot helpers. */
int integrity_sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
int integrity_md5(const void *data, size_t len, uint8_t out[MD5_LEN]);

/* Lowercase hex; out must hold 2*len+1. */
void integrity_hex(const uint8_t *bin, size_t len, char *out);
/* Parses exactly 2*len hex digits (either case, surrounding blanks allowed). */
int integrity_unhex(const char *hex, uint8_t *bin, size_t len, struct fw_err *e);
/* The value of one hex digit (either case), or -1 for anything else. */
int integrity_hex_value(int c);
/* Constant-time comparison. */
bool integrity_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Looks up `filename` (compared by its last path component) in the text of a
 * sha256sum-format file ("<64 hex>  name" or "<64 hex> *name" lines; a
 * one-line file with no name applies to any file). FW_EINTEGRITY with a
 * clear message if absent or malformed. */
int integrity_sidecar_lookup(const char *text, size_t len, const char *filename,
			     uint8_t out[SHA256_LEN], struct fw_err *e);
/* (Added detail) Also read: '#' comments, blank lines, CRLF, a UTF-8 BOM,
 * GNU's escaped lines ("\<hash>  na\nme"), the `sha256sum --tag` form
 * "SHA256 (name) = <hash>" and the `openssl dgst -sha256` form
 * "SHA2-256(name)= <hash>". Every other line is an error rather than being
 * skipped: an MD5/SHA-1/SHA-512 sum file, a line listing the file twice with
 * different hashes, or several bare hashes. Messages start "line N" where
 * a line is at fault; callers prefix the sidecar's path. */

/* Compares a computed digest with the expected one; a mismatch is
 * FW_EINTEGRITY with both values in the message. `what` names the file. */
int integrity_check_sha256(const char *what, const uint8_t got[SHA256_LEN],
			   const uint8_t want[SHA256_LEN], struct fw_err *e);

/* Verifies a detached signature over data with a PEM public key (Ed25519:
 * signature over the raw data, as `openssl pkeyutl -sign -rawin` makes it;
 * ECDSA P-256 and RSA: over SHA-256(data), DER, as `openssl dgst -sha256
 * -sign` makes it). FW_ESIGNATURE when it does not verify. */
int integrity_verify_signature(const char *pubkey_pem, size_t pem_len, const void *data,
			       size_t len, const uint8_t *sig, size_t siglen,
			       struct fw_err *e);
/* (Added) The key itself is checked first: a PEM that holds no public key,
 * a private key, more than one key, or a key of another type (EC not on
 * P-256, RSA under 2048 bits, Ed448, DSA, ...) is FW_EPROFILE, because the
 * profile's [trust] public_key has to be fixed, not the image. */

/* Manifest (added): one file that lists, per image file, its SHA-256 and
 * optionally a detached signature. Line format, UTF-8, LF or CRLF:
 *
 *     # comment (a line starting with '#' or ';'); blank lines are ignored
 *     [app.bin]                  one section per file, named as the file
 *     sha256 = <64 hex digits>   required
 *     signature = app.bin.sig    optional; a path relative to the manifest
 *
 * Section names are file names, kept as written (case matters) and looked
 * up by their last path component, like sidecar lines; two sections with
 * the same last component are an error. Keys are case-insensitive. There
 * are no inline comments, since '#' and ';' may be part of a file name.
 * An unknown or repeated key, a key outside a section, a section without
 * sha256, a malformed hash and a manifest with no section are all
 * FW_EINTEGRITY with a message starting "line N" (callers put the
 * manifest's path in front with fw_err_prefix). */
#define INTEGRITY_NAME_MAX 256

struct integrity_manifest_entry {
	char name[INTEGRITY_NAME_MAX];      /* the section name as written */
	uint8_t sha256[SHA256_LEN];
	char signature[INTEGRITY_NAME_MAX]; /* "" when the file is not signed */
	unsigned line;                      /* line of the [section] header */
};

struct integrity_manifest {
	struct integrity_manifest_entry *entry;
	size_t n;
};

#define INTEGRITY_MANIFEST_INIT {0}

/* Fills m (which must be empty, e.g. INTEGRITY_MANIFEST_INIT); on error m
 * stays empty. Free with integrity_manifest_free. */
int integrity_manifest_parse(const char *text, size_t len, struct integrity_manifest *m,
			     struct fw_err *e);
/* Finds `filename` by its last path component; FW_EINTEGRITY naming the
 * file (and what the manifest lists) when absent. */
int integrity_manifest_find(const struct integrity_manifest *m, const char *filename,
			    const struct integrity_manifest_entry **out, struct fw_err *e);
void integrity_manifest_free(struct integrity_manifest *m);

#endif
