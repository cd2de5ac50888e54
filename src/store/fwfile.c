#include "fwfile.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"

int fwfile_load(struct fwfile *f, const char *path, uint32_t base, struct fw_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	memset(f, 0, sizeof *f);
	image_init(&f->img);
	snprintf(f->path, sizeof f->path, "%s", path);
	rc = atomic_read_file(path, FWFILE_MAX_BYTES, &buf, &len, e);
	if (rc != FW_OK)
		return rc;
	f->raw = (uint8_t *)buf;
	f->rawlen = len;
	rc = integrity_sha256(f->raw, f->rawlen, f->sha256);
	if (rc != FW_OK)
		return fw_err_set(e, rc, "%s: cannot compute its SHA-256", path);
	rc = image_load(&f->img, f->raw, f->rawlen, base, e);
	if (rc != FW_OK) {
		fw_err_prefix(e, "%s", path);
		return rc;
	}
	return FW_OK;
}

void fwfile_free(struct fwfile *f)
{
	free(f->raw);
	f->raw = NULL;
	image_free(&f->img);
}

/* "<dir of base>/<rel>" unless rel is absolute. */
static void relative_to(char *out, size_t outlen, const char *base, const char *rel)
{
	char tmp[1024];

	if (rel[0] == '/') {
		snprintf(out, outlen, "%s", rel);
		return;
	}
	snprintf(tmp, sizeof tmp, "%s", base);
	snprintf(out, outlen, "%s/%s", dirname(tmp), rel);
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int read_text(const char *path, char **buf, size_t *len, struct fw_err *e)
{
	/* Hash lists, manifests, keys and signatures are small. */
	return atomic_read_file(path, 1024 * 1024, buf, len, e);
}

static int hash_from_manifest(struct fwfile *f, const char *manifest, struct fw_err *e)
{
	struct integrity_manifest m = INTEGRITY_MANIFEST_INIT;
	const struct integrity_manifest_entry *ent;
	char *text;
	size_t len;
	int rc;

	rc = read_text(manifest, &text, &len, e);
	if (rc != FW_OK)
		return rc;
	rc = integrity_manifest_parse(text, len, &m, e);
	free(text);
	if (rc != FW_OK) {
		fw_err_prefix(e, "%s", manifest);
		return rc;
	}
	rc = integrity_manifest_find(&m, f->path, &ent, e);
	if (rc == FW_OK) {
		memcpy(f->expected, ent->sha256, SHA256_LEN);
		f->hash_source = FWFILE_HASH_MANIFEST;
		snprintf(f->hash_from, sizeof f->hash_from, "%s", manifest);
	} else {
		fw_err_prefix(e, "%s", manifest);
	}
	integrity_manifest_free(&m);
	return rc;
}

int fwfile_check_hash(struct fwfile *f, const char *hex, const char *sidecar,
		      const char *manifest, struct fw_err *e)
{
	char auto_sidecar[1100];
	char *text;
	size_t len;
	int rc;

	f->hash_ok = false;
	f->hash_source = FWFILE_HASH_NONE;
	snprintf(auto_sidecar, sizeof auto_sidecar, "%s.sha256", f->path);
	if (!hex && !sidecar && !manifest && exists(auto_sidecar))
		sidecar = auto_sidecar;

	if (hex) {
		rc = integrity_unhex(hex, f->expected, SHA256_LEN, e);
		if (rc != FW_OK) {
			fw_err_prefix(e, "--sha256");
			return rc;
		}
		f->hash_source = FWFILE_HASH_ARGUMENT;
	} else if (sidecar) {
		rc = read_text(sidecar, &text, &len, e);
		if (rc != FW_OK)
			return rc;
		rc = integrity_sidecar_lookup(text, len, f->path, f->expected, e);
		free(text);
		if (rc != FW_OK) {
			fw_err_prefix(e, "%s", sidecar);
			return rc;
		}
		f->hash_source = FWFILE_HASH_SIDECAR;
		snprintf(f->hash_from, sizeof f->hash_from, "%s", sidecar);
	} else if (manifest) {
		rc = hash_from_manifest(f, manifest, e);
		if (rc != FW_OK)
			return rc;
	} else {
		return FW_OK;
	}
	rc = integrity_check_sha256(f->path, f->sha256, f->expected, e);
	if (rc != FW_OK)
		return rc;
	f->hash_ok = true;
	return FW_OK;
}

static int signature_from_manifest(const char *manifest, const char *file, char *out,
				   size_t outlen, struct fw_err *e)
{
	struct integrity_manifest m = INTEGRITY_MANIFEST_INIT;
	const struct integrity_manifest_entry *ent;
	char *text;
	size_t len;
	int rc;

	out[0] = '\0';
	rc = read_text(manifest, &text, &len, e);
	if (rc != FW_OK)
		return rc;
	rc = integrity_manifest_parse(text, len, &m, e);
	free(text);
	if (rc == FW_OK && integrity_manifest_find(&m, file, &ent, NULL) == FW_OK &&
	    ent->signature[0])
		relative_to(out, outlen, manifest, ent->signature);
	integrity_manifest_free(&m);
	if (rc != FW_OK)
		fw_err_prefix(e, "%s", manifest);
	return rc;
}

int fwfile_check_signature(struct fwfile *f, const struct profile *p, const char *sig,
			   const char *manifest, struct fw_err *e)
{
	char auto_sig[1100], key_path[1100];
	char *key = NULL, *sigbuf = NULL;
	size_t keylen, siglen;
	int rc;

	f->sig_ok = false;
	f->sig_path[0] = '\0';
	if (sig) {
		snprintf(f->sig_path, sizeof f->sig_path, "%s", sig);
	} else if (manifest) {
		rc = signature_from_manifest(manifest, f->path, f->sig_path, sizeof f->sig_path, e);
		if (rc != FW_OK)
			return rc;
	}
	snprintf(auto_sig, sizeof auto_sig, "%s.sig", f->path);
	if (!f->sig_path[0] && exists(auto_sig))
		snprintf(f->sig_path, sizeof f->sig_path, "%s", auto_sig);

	if (!f->sig_path[0]) {
		if (p && p->require_signature)
			return fw_err_set(e, FW_ESIGNATURE,
					  "%s: profile %s requires a signature and none was given "
					  "(--sig FILE, or %s)", f->path, p->id, auto_sig);
		return FW_OK;
	}
	if (!p || !p->public_key[0])
		return fw_err_set(e, FW_ESIGNATURE,
				  "%s: signature %s cannot be checked: %s has no [trust] public_key",
				  f->path, f->sig_path, p ? p->path : "no profile was given and it");
	relative_to(key_path, sizeof key_path, p->path, p->public_key);
	rc = read_text(key_path, &key, &keylen, e);
	if (rc != FW_OK) {
		fw_err_prefix(e, "%s:[trust] public_key", p->path);
		if (e)
			e->code = FW_EPROFILE;
		return FW_EPROFILE;
	}
	rc = read_text(f->sig_path, &sigbuf, &siglen, e);
	if (rc == FW_OK) {
		rc = integrity_verify_signature(key, keylen, f->raw, f->rawlen,
						(const uint8_t *)sigbuf, siglen, e);
		if (rc != FW_OK)
			fw_err_prefix(e, "%s (signature %s, key %s)", f->path, f->sig_path,
				      key_path);
	}
	free(key);
	free(sigbuf);
	if (rc == FW_OK)
		f->sig_ok = true;
	return rc;
}
