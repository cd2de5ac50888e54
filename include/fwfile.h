/* A firmware file on disk, read and checked: its bytes, its SHA-256, the
 * parsed image at its flash address, and the result of the integrity checks
 * (expected hash from the command line, a sidecar or a manifest; detached
 * signature against the profile's pinned key). The file-reading edge over the
 * pure image and integrity modules; the `image` commands and the wizard's
 * verify-image step both use it. */
#ifndef FLASHWISE_FWFILE_H
#define FLASHWISE_FWFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "integrity.h"
#include "profile.h"

/* The largest firmware file flashwise reads: bigger than any supported flash. */
#define FWFILE_MAX_BYTES (64u * 1024 * 1024)

enum fwfile_hash_source {
	FWFILE_HASH_NONE,     /* nothing to compare with */
	FWFILE_HASH_ARGUMENT, /* --sha256 HEX */
	FWFILE_HASH_SIDECAR,  /* a sha256sum-format file */
	FWFILE_HASH_MANIFEST, /* a manifest's [file] section */
};

struct fwfile {
	char path[1024];
	uint8_t *raw;           /* the file's bytes */
	size_t rawlen;
	uint8_t sha256[SHA256_LEN];
	struct image img;       /* parsed and placed at its address */

	enum fwfile_hash_source hash_source;
	char hash_from[1024];   /* the sidecar or manifest path */
	uint8_t expected[SHA256_LEN];
	bool hash_ok;           /* compared and equal */

	char sig_path[1024];    /* "" when not signed */
	bool sig_ok;            /* verified against the pinned key */
};

/* Reads path, hashes it, parses it (HEX, or BIN placed at base). */
int fwfile_load(struct fwfile *f, const char *path, uint32_t base, struct fw_err *e);
void fwfile_free(struct fwfile *f);

/* Where the expected SHA-256 comes from, in order: hex (the command line),
 * sidecar (a sha256sum file), manifest; with none of them, "<file>.sha256"
 * when it exists. Compares; a mismatch is FW_EINTEGRITY, a hard stop.
 * Returns FW_OK with hash_source NONE when there is nothing to compare. */
int fwfile_check_hash(struct fwfile *f, const char *hex, const char *sidecar,
		      const char *manifest, struct fw_err *e);

/* Verifies a detached signature (sig, or the manifest's, or
 * "<file>.sig" when it exists) with the profile's [trust] public_key. No
 * signature and no key is FW_OK (sig_ok false) unless the profile requires
 * one: then FW_ESIGNATURE. A signature with no key to check it is an error
 * too: an unverifiable signature must not look like a verified one. */
int fwfile_check_signature(struct fwfile *f, const struct profile *p, const char *sig,
			   const char *manifest, struct fw_err *e);

#endif
