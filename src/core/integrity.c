/* Integrity: hashes, expected-hash sources and detached signatures.
 *
 * Everything here works on buffers the caller read; nothing touches files.
 * Every function that calls into OpenSSL empties its error queue before it
 * returns, so a failure here never shows up later as a stale error in some
 * unrelated OpenSSL call. */
#include "integrity.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define ED25519_SIG_LEN 64
#define RSA_MIN_BITS 2048
/* Longest file name a sidecar line may carry (after unescaping). */
#define SUM_NAME_MAX 1024
/* Room for the "it lists: a, b, c" part of a not-found message. */
#define LISTING_MAX 160

/* ---- hashing ---------------------------------------------------------- */

struct integrity_hash {
	EVP_MD_CTX *ctx;
	enum integrity_algo algo;
	bool done;
};

static const EVP_MD *algo_md(enum integrity_algo algo)
{
	switch (algo) {
	case INTEGRITY_SHA256:
		return EVP_sha256();
	case INTEGRITY_MD5:
		/* MD5 is not a security measure here: it exists only because the
		 * ESP ROM loader's SPI_FLASH_MD5 and READ_FLASH answer with MD5, so
		 * comparing flash contents with what we wrote needs it. Image
		 * checks always use SHA-256 and signatures. */
		return EVP_md5();
	}
	return NULL;
}

static size_t algo_len(enum integrity_algo algo)
{
	return algo == INTEGRITY_MD5 ? MD5_LEN : SHA256_LEN;
}

struct integrity_hash *integrity_hash_new(enum integrity_algo algo)
{
	const EVP_MD *md = algo_md(algo);
	struct integrity_hash *h;

	if (!md)
		return NULL;
	h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->algo = algo;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		free(h);
		ERR_clear_error();
		return NULL;
	}
	return h;
}

int integrity_hash_update(struct integrity_hash *h, const void *data, size_t len)
{
	if (!h || h->done || (!data && len))
		return FW_EINVAL;
	if (len == 0)
		return FW_OK;
	if (EVP_DigestUpdate(h->ctx, data, len) != 1) {
		ERR_clear_error();
		return FW_EINTEGRITY;
	}
	return FW_OK;
}

int integrity_hash_final(struct integrity_hash *h, uint8_t *out)
{
	unsigned int n = 0;

	if (!h || h->done || !out)
		return FW_EINVAL;
	h->done = true;
	if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != algo_len(h->algo)) {
		ERR_clear_error();
		return FW_EINTEGRITY;
	}
	return FW_OK;
}

void integrity_hash_free(struct integrity_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

static int oneshot(enum integrity_algo algo, const void *data, size_t len, uint8_t *out)
{
	unsigned int n = 0;

	if (!out || (!data && len))
		return FW_EINVAL;
	if (EVP_Digest(data ? data : "", len, out, &n, algo_md(algo), NULL) != 1 ||
	    n != algo_len(algo)) {
		ERR_clear_error();
		return FW_EINTEGRITY;
	}
	return FW_OK;
}

int integrity_sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
	return oneshot(INTEGRITY_SHA256, data, len, out);
}

int integrity_md5(const void *data, size_t len, uint8_t out[MD5_LEN])
{
	return oneshot(INTEGRITY_MD5, data, len, out);
}

/* ---- hex and comparison ----------------------------------------------- */

void integrity_hex(const uint8_t *bin, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int integrity_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decodes exactly 2*len hex digits that the caller already counted. */
static void hex_decode(const char *s, uint8_t *bin, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		bin[i] = (uint8_t)(integrity_hex_value((unsigned char)s[2 * i]) << 4 |
				   integrity_hex_value((unsigned char)s[2 * i + 1]));
}

static size_t hex_run(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && integrity_hex_value((unsigned char)s[i]) >= 0)
		i++;
	return i;
}

static void describe_hex(size_t len, char *buf, size_t cap)
{
	if (len == SHA256_LEN)
		snprintf(buf, cap, "a SHA-256 hash (%d hex digits)", SHA256_HEX_LEN);
	else if (len == MD5_LEN)
		snprintf(buf, cap, "an MD5 hash (%d hex digits)", MD5_HEX_LEN);
	else
		snprintf(buf, cap, "%zu hex digits", 2 * len);
}

/* Copies text into a message, replacing control characters so that a file
 * name with a newline or an escape sequence cannot garble the screen. */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i, o = 0;

	if (cap == 0)
		return;
	for (i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
}

/* integrity_unhex on a counted string, so that the manifest reader can use
 * it on part of a line. */
static int unhex_n(const char *hex, size_t n, uint8_t *bin, size_t len, struct fw_err *e)
{
	char want[64], bad[8];
	size_t run;

	describe_hex(len, want, sizeof want);
	while (n && is_blank(*hex)) {
		hex++;
		n--;
	}
	while (n && is_blank(hex[n - 1]))
		n--;
	if (n == 0)
		return fw_err_set(e, FW_EINVAL, "expected %s, got an empty value", want);
	run = hex_run(hex, n);
	if (run < n) {
		if (run == 2 * len && is_blank(hex[run]))
			return fw_err_set(e, FW_EINVAL,
					  "expected %s alone, but it is followed by other text: "
					  "give only the hash", want);
		if ((unsigned char)hex[run] < 0x20 || hex[run] == 0x7f)
			snprintf(bad, sizeof bad, "\\x%02x", (unsigned char)hex[run]);
		else
			snprintf(bad, sizeof bad, "%c", hex[run]);
		return fw_err_set(e, FW_EINVAL,
				  "expected %s, but character %zu ('%s') is not a hex digit",
				  want, run + 1, bad);
	}
	if (n != 2 * len)
		return fw_err_set(e, FW_EINVAL, "expected %s, got %zu hex digits%s", want, n,
				  n == 2 * MD5_LEN && len == SHA256_LEN ?
				  " (that is the length of an MD5 hash)" : "");
	hex_decode(hex, bin, len);
	return FW_OK;
}

int integrity_unhex(const char *hex, uint8_t *bin, size_t len, struct fw_err *e)
{
	char want[64];

	if (!hex || !bin) {
		describe_hex(len, want, sizeof want);
		return fw_err_set(e, FW_EINVAL, "expected %s, got nothing", want);
	}
	return unhex_n(hex, strlen(hex), bin, len, e);
}

bool integrity_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	/* Constant time so that timing never tells how much of a hash matched. */
	return len == 0 || CRYPTO_memcmp(a, b, len) == 0;
}

int integrity_check_sha256(const char *what, const uint8_t got[SHA256_LEN],
			   const uint8_t want[SHA256_LEN], struct fw_err *e)
{
	char g[SHA256_HEX_LEN + 1], w[SHA256_HEX_LEN + 1], name[161];

	if (!got || !want)
		return fw_err_set(e, FW_EINVAL, "no sha-256 to compare");
	if (integrity_equal(got, want, SHA256_LEN))
		return FW_OK;
	integrity_hex(want, SHA256_LEN, w);
	integrity_hex(got, SHA256_LEN, g);
	if (!what)
		what = "the image";
	/* The name is cut so that both hashes and the advice always fit. */
	printable(name, sizeof name, what, strlen(what));
	return fw_err_set(e, FW_EINTEGRITY,
			  "sha-256 of %s does not match: expected %s, got %s; the file is "
			  "damaged or not the one the checksum was made for: do not flash it, "
			  "download it (and its checksum) again", name, w, g);
}

/* ---- lines ------------------------------------------------------------- */

struct lines {
	const char *p, *end;
	unsigned no;
};

static void lines_init(struct lines *it, const char *text, size_t len)
{
	it->p = text;
	it->end = text + len;
	it->no = 0;
	/* Editors on Windows like to start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		it->p += 3;
}

/* Next line without its end of line (LF or CRLF) and surrounding blanks. */
static bool lines_next(struct lines *it, const char **s, size_t *n)
{
	const char *nl, *stop;

	if (it->p >= it->end)
		return false;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	stop = nl ? nl : it->end;
	*s = it->p;
	*n = (size_t)(stop - it->p);
	it->p = nl ? nl + 1 : it->end;
	it->no++;
	while (*n && is_blank((*s)[*n - 1]))
		(*n)--;
	while (*n && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	return true;
}

static int check_text(const char *text, size_t len, const char *what, struct fw_err *e)
{
	if (!text)
		return fw_err_set(e, FW_EINVAL, "no %s text", what);
	if (memchr(text, '\0', len))
		return fw_err_set(e, FW_EINTEGRITY,
				  "this is not a %s (it contains NUL bytes): was the image "
				  "given in its place?", what);
	return FW_OK;
}

static const char *last_component(const char *s, size_t n, size_t *outlen)
{
	size_t i = n;

	while (i > 0 && s[i - 1] != '/')
		i--;
	*outlen = n - i;
	return s + i;
}

static bool same_file(const char *a, size_t an, const char *b)
{
	size_t la, lb;
	const char *ca = last_component(a, an, &la);
	const char *cb = last_component(b, strlen(b), &lb);

	return la > 0 && la == lb && memcmp(ca, cb, la) == 0;
}

/* Adds a name to the "it lists" part of a not-found message. */
static void listing_add(char *list, size_t *count, const char *name, size_t n)
{
	size_t used = strlen(list), lc;
	const char *c = last_component(name, n, &lc);
	char clean[64];

	(*count)++;
	if (*count > 3)
		return;
	printable(clean, sizeof clean, c, lc);
	snprintf(list + used, LISTING_MAX - used, "%s%s", used ? ", " : "", clean);
}

static void listing_end(char *list, size_t count)
{
	size_t used = strlen(list);

	if (count > 3)
		snprintf(list + used, LISTING_MAX - used, " and %zu more", count - 3);
}

/* ---- sha256sum sidecar -------------------------------------------------- */

struct sum_line {
	uint8_t hash[SHA256_LEN];
	char name[SUM_NAME_MAX];
	size_t namelen; /* 0: a bare hash that applies to any file */
};

/* Reverses GNU's escaping (\\ \n \r) of names with awkward characters. */
static int unescape(const char *s, size_t n, struct sum_line *l, unsigned no,
		    struct fw_err *e)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\') {
			if (++i == n)
				return fw_err_set(e, FW_EINTEGRITY,
						  "line %u: the file name ends in a lone '\\'", no);
			c = s[i] == '\\' ? '\\' : s[i] == 'n' ? '\n' : s[i] == 'r' ? '\r' : 0;
			if (!c)
				return fw_err_set(e, FW_EINTEGRITY,
						  "line %u: unknown escape '\\%c' in the file name",
						  no, s[i]);
		}
		l->name[o++] = c;
	}
	l->namelen = o;
	return FW_OK;
}

static int set_name(const char *s, size_t n, bool escaped, struct sum_line *l, unsigned no,
		    struct fw_err *e)
{
	if (n >= SUM_NAME_MAX)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: the file name is longer than %d characters",
				  no, SUM_NAME_MAX - 1);
	if (escaped)
		return unescape(s, n, l, no, e);
	memcpy(l->name, s, n);
	l->namelen = n;
	return FW_OK;
}

static const char *algo_guess(size_t digits)
{
	switch (digits) {
	case 32: return "MD5";
	case 40: return "SHA-1";
	case 56: return "SHA-224";
	case 96: return "SHA-384";
	case 128: return "SHA-512";
	}
	return NULL;
}

static int wrong_length(unsigned no, size_t digits, struct fw_err *e)
{
	const char *guess = algo_guess(digits);

	if (guess)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u holds a %zu-digit hash, which looks like %s: flashwise "
				  "needs SHA-256 sums (%d hex digits, as sha256sum makes them)",
				  no, digits, guess, SHA256_HEX_LEN);
	return fw_err_set(e, FW_EINTEGRITY,
			  "line %u: expected a SHA-256 hash of %d hex digits, this one has %zu",
			  no, SHA256_HEX_LEN, digits);
}

static bool is_word_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-';
}

static bool is_sha256_name(const char *s, size_t n)
{
	return (n == 6 && memcmp(s, "SHA256", 6) == 0) ||
	       (n == 8 && memcmp(s, "SHA2-256", 8) == 0);
}

/* Tagged forms: "SHA256 (name) = hash" from `sha256sum --tag` and
 * "SHA2-256(name)= hash" from `openssl dgst -sha256`. Returns 1 when the
 * line is in neither, so that the caller tries the plain form. Every
 * algorithm name has a letter beyond 'f', which keeps a plain hash from
 * looking like a tag. */
static int parse_tag_line(const char *s, size_t n, bool escaped, unsigned no,
			  struct sum_line *l, struct fw_err *e)
{
	size_t w = 0, i, open, digits;
	bool nonhex = false;
	const char *close = NULL, *h = NULL;

	while (w < n && is_word_char(s[w])) {
		nonhex |= integrity_hex_value((unsigned char)s[w]) < 0;
		w++;
	}
	open = w < n && s[w] == ' ' ? w + 1 : w;
	if (w == 0 || !nonhex || open >= n || s[open] != '(')
		return 1;
	/* The last ")= " or ") = ": names may hold parentheses themselves. */
	for (i = open + 1; i + 3 <= n; i++) {
		if (memcmp(s + i, ")= ", 3) == 0) {
			close = s + i;
			h = s + i + 3;
		} else if (i + 4 <= n && memcmp(s + i, ") = ", 4) == 0) {
			close = s + i;
			h = s + i + 4;
		}
	}
	if (!close)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: expected 'SHA256 (name) = <hash>'", no);
	if (!is_sha256_name(s, w))
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u is a %.*s sum: flashwise needs SHA-256 sums "
				  "(as sha256sum makes them)", no, (int)(w > 16 ? 16 : w), s);
	digits = hex_run(h, (size_t)(s + n - h));
	if (h + digits != s + n)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: the hash after '=' has a character that is not a hex "
				  "digit", no);
	if (digits != SHA256_HEX_LEN)
		return wrong_length(no, digits, e);
	hex_decode(h, l->hash, SHA256_LEN);
	return set_name(s + open + 1, (size_t)(close - (s + open + 1)), escaped, l, no, e);
}

static int parse_sum_line(const char *s, size_t n, unsigned no, struct sum_line *l,
			  struct fw_err *e)
{
	bool escaped = false;
	size_t digits, i;
	int rc;

	/* GNU marks a line whose name needed escaping with a leading '\'. */
	if (n && s[0] == '\\') {
		escaped = true;
		s++;
		n--;
	}
	rc = parse_tag_line(s, n, escaped, no, l, e);
	if (rc <= 0)
		return rc;
	digits = hex_run(s, n);
	if (digits == 0 || (digits < n && s[digits] != ' ' && s[digits] != '\t'))
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u is not a sha256sum line (expected '<%d hex digits>  "
				  "<file name>')", no, SHA256_HEX_LEN);
	if (digits != SHA256_HEX_LEN)
		return wrong_length(no, digits, e);
	hex_decode(s, l->hash, SHA256_LEN);
	i = digits;
	if (i < n) {
		/* One separator, then ' ' (text) or '*' (binary): the mode marker.
		 * Both mean the same bytes to us. */
		i++;
		if (i < n && (s[i] == ' ' || s[i] == '*'))
			i++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
	}
	return set_name(s + i, n - i, escaped, l, no, e);
}

int integrity_sidecar_lookup(const char *text, size_t len, const char *filename,
			     uint8_t out[SHA256_LEN], struct fw_err *e)
{
	struct lines it;
	const char *s;
	size_t n, named = 0, bare = 0, others = 0, fnlen, fclen;
	unsigned bare_line = 0, found_line = 0;
	uint8_t bare_hash[SHA256_LEN], found_hash[SHA256_LEN];
	char list[LISTING_MAX] = "", fname[96];
	struct sum_line *l;
	int rc;

	if (!filename || !out)
		return fw_err_set(e, FW_EINVAL, "no file name to look up in the checksum file");
	rc = check_text(text, len, "checksum file", e);
	if (rc)
		return rc;
	fnlen = strlen(filename);
	s = last_component(filename, fnlen, &fclen);
	printable(fname, sizeof fname, s, fclen);
	/* The line buffer is large (long names), so it lives on the heap. */
	l = malloc(sizeof *l);
	if (!l)
		return fw_err_set(e, FW_ENOMEM, "out of memory reading the checksum file");

	lines_init(&it, text, len);
	while (lines_next(&it, &s, &n)) {
		if (n == 0 || s[0] == '#')
			continue;
		rc = parse_sum_line(s, n, it.no, l, e);
		if (rc)
			goto out;
		if (l->namelen == 0) {
			if (bare++ == 0) {
				memcpy(bare_hash, l->hash, SHA256_LEN);
				bare_line = it.no;
			}
			continue;
		}
		named++;
		if (!same_file(l->name, l->namelen, filename)) {
			listing_add(list, &others, l->name, l->namelen);
			continue;
		}
		if (found_line && !integrity_equal(found_hash, l->hash, SHA256_LEN)) {
			rc = fw_err_set(e, FW_EINTEGRITY,
					"lines %u and %u give %s different hashes: cannot tell which "
					"one is right; get the checksum file again",
					found_line, it.no, fname);
			goto out;
		}
		if (!found_line) {
			memcpy(found_hash, l->hash, SHA256_LEN);
			found_line = it.no;
		}
	}

	if (bare && named) {
		rc = fw_err_set(e, FW_EINTEGRITY,
				"line %u has a hash without a file name, but other lines name "
				"files: cannot tell which file it is for", bare_line);
	} else if (bare > 1) {
		rc = fw_err_set(e, FW_EINTEGRITY,
				"it holds %zu hashes without file names: cannot tell which one "
				"is for %s", bare, fname);
	} else if (bare == 1) {
		memcpy(out, bare_hash, SHA256_LEN);
	} else if (found_line) {
		memcpy(out, found_hash, SHA256_LEN);
	} else if (named == 0) {
		rc = fw_err_set(e, FW_EINTEGRITY,
				"the checksum file holds no hash (only blank or comment lines)");
	} else {
		listing_end(list, others);
		rc = fw_err_set(e, FW_EINTEGRITY,
				"the checksum file has no line for %s (it lists %s): check that "
				"it belongs to this image", fname, list);
	}
out:
	free(l);
	return rc;
}

/* ---- manifest ---------------------------------------------------------- */

static int manifest_add(struct integrity_manifest *m, size_t *cap)
{
	struct integrity_manifest_entry *p;
	size_t ncap;

	if (m->n == *cap) {
		ncap = *cap ? *cap * 2 : 8;
		p = realloc(m->entry, ncap * sizeof *p);
		if (!p)
			return FW_ENOMEM;
		m->entry = p;
		*cap = ncap;
	}
	memset(&m->entry[m->n], 0, sizeof m->entry[m->n]);
	m->n++;
	return FW_OK;
}

static bool key_is(const char *k, size_t kn, const char *want)
{
	size_t i;

	if (kn != strlen(want))
		return false;
	for (i = 0; i < kn; i++) {
		char c = k[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != want[i])
			return false;
	}
	return true;
}

/* The section of a manifest entry that is complete: it must have a hash. */
static int manifest_close(const struct integrity_manifest *m, bool has_sha, struct fw_err *e)
{
	const struct integrity_manifest_entry *c;
	char name[96];

	if (m->n == 0 || has_sha)
		return FW_OK;
	c = &m->entry[m->n - 1];
	printable(name, sizeof name, c->name, strlen(c->name));
	return fw_err_set(e, FW_EINTEGRITY, "line %u [%s]: sha256 is missing (every file "
			  "needs 'sha256 = <%d hex digits>')", c->line, name, SHA256_HEX_LEN);
}

static int manifest_section(struct integrity_manifest *m, size_t *cap, const char *s,
			    size_t n, unsigned no, struct fw_err *e)
{
	struct integrity_manifest_entry *c;
	char shown[96];
	size_t i;

	if (n < 2 || s[n - 1] != ']')
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: a section header must end with ']'", no);
	s++;
	n -= 2;
	while (n && is_blank(*s)) {
		s++;
		n--;
	}
	while (n && is_blank(s[n - 1]))
		n--;
	printable(shown, sizeof shown, s, n);
	if (n == 0 || s[n - 1] == '/')
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: a section must be named by a file, like [app.bin]", no);
	if (n >= INTEGRITY_NAME_MAX)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u [%s]: the file name is longer than %d characters",
				  no, shown, INTEGRITY_NAME_MAX - 1);
	for (i = 0; i < m->n; i++)
		if (same_file(s, n, m->entry[i].name))
			return fw_err_set(e, FW_EINTEGRITY,
					  "line %u [%s]: this file is already listed at line %u"
					  "; each file may appear once", no, shown,
					  m->entry[i].line);
	if (manifest_add(m, cap))
		return fw_err_set(e, FW_ENOMEM, "out of memory reading the manifest");
	c = &m->entry[m->n - 1];
	memcpy(c->name, s, n);
	c->name[n] = '\0';
	c->line = no;
	return FW_OK;
}

static int manifest_key(struct integrity_manifest *m, const char *s, size_t n, unsigned no,
			bool *has_sha, struct fw_err *e)
{
	struct integrity_manifest_entry *c;
	const char *eq = memchr(s, '=', n), *v;
	size_t kn, vn;
	char sec[96], key[32];
	struct fw_err he;

	if (m->n == 0) {
		printable(key, sizeof key, s, eq ? (size_t)(eq - s) : n);
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u: '%s' comes before any [file] section", no, key);
	}
	c = &m->entry[m->n - 1];
	printable(sec, sizeof sec, c->name, strlen(c->name));
	if (!eq)
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u [%s]: expected 'key = value'", no, sec);
	kn = (size_t)(eq - s);
	while (kn && is_blank(s[kn - 1]))
		kn--;
	v = eq + 1;
	vn = n - (size_t)(v - s);
	while (vn && is_blank(*v)) {
		v++;
		vn--;
	}
	printable(key, sizeof key, s, kn);
	if (key_is(s, kn, "sha256")) {
		if (*has_sha)
			return fw_err_set(e, FW_EINTEGRITY,
					  "line %u [%s]: sha256 is given twice", no, sec);
		if (unhex_n(v, vn, c->sha256, SHA256_LEN, &he))
			return fw_err_set(e, FW_EINTEGRITY, "line %u [%s] sha256: %s",
					  no, sec, he.msg);
		*has_sha = true;
	} else if (key_is(s, kn, "signature")) {
		if (c->signature[0])
			return fw_err_set(e, FW_EINTEGRITY,
					  "line %u [%s]: signature is given twice", no, sec);
		if (vn == 0)
			return fw_err_set(e, FW_EINTEGRITY,
					  "line %u [%s]: signature is empty (name the .sig file "
					  "or leave the key out)", no, sec);
		if (vn >= sizeof c->signature)
			return fw_err_set(e, FW_EINTEGRITY,
					  "line %u [%s]: the signature file name is longer than "
					  "%d characters", no, sec, INTEGRITY_NAME_MAX - 1);
		memcpy(c->signature, v, vn);
		c->signature[vn] = '\0';
	} else {
		/* A misspelt key would otherwise silently drop a check. */
		return fw_err_set(e, FW_EINTEGRITY,
				  "line %u [%s]: unknown key '%s' (expected sha256 or signature)",
				  no, sec, key);
	}
	return FW_OK;
}

int integrity_manifest_parse(const char *text, size_t len, struct integrity_manifest *m,
			     struct fw_err *e)
{
	struct lines it;
	const char *s;
	size_t n, cap = 0;
	bool has_sha = false;
	int rc;

	if (!m)
		return fw_err_set(e, FW_EINVAL, "no manifest to fill");
	m->entry = NULL;
	m->n = 0;
	rc = check_text(text, len, "manifest", e);
	if (rc)
		return rc;
	/* Our own reader rather than iniparser: section names are file names
	 * and must keep their case. */
	lines_init(&it, text, len);
	while (lines_next(&it, &s, &n)) {
		if (n == 0 || s[0] == '#' || s[0] == ';')
			continue;
		if (s[0] == '[') {
			rc = manifest_close(m, has_sha, e);
			if (!rc)
				rc = manifest_section(m, &cap, s, n, it.no, e);
			has_sha = false;
		} else {
			rc = manifest_key(m, s, n, it.no, &has_sha, e);
		}
		if (rc)
			goto fail;
	}
	rc = manifest_close(m, has_sha, e);
	if (rc)
		goto fail;
	if (m->n == 0) {
		rc = fw_err_set(e, FW_EINTEGRITY,
				"the manifest lists no file (expected sections like [app.bin] "
				"with 'sha256 = <hash>')");
		goto fail;
	}
	return FW_OK;
fail:
	integrity_manifest_free(m);
	return rc;
}

int integrity_manifest_find(const struct integrity_manifest *m, const char *filename,
			    const struct integrity_manifest_entry **out, struct fw_err *e)
{
	char list[LISTING_MAX] = "", fname[96];
	const char *c;
	size_t i, count = 0, clen;

	if (!m || !filename || !out)
		return fw_err_set(e, FW_EINVAL, "no file name to look up in the manifest");
	for (i = 0; i < m->n; i++) {
		if (same_file(m->entry[i].name, strlen(m->entry[i].name), filename)) {
			*out = &m->entry[i];
			return FW_OK;
		}
		listing_add(list, &count, m->entry[i].name, strlen(m->entry[i].name));
	}
	listing_end(list, count);
	c = last_component(filename, strlen(filename), &clen);
	printable(fname, sizeof fname, c, clen);
	return fw_err_set(e, FW_EINTEGRITY,
			  "the manifest has no entry for %s (it lists %s): check that it "
			  "belongs to this image", fname, count ? list : "nothing");
}

void integrity_manifest_free(struct integrity_manifest *m)
{
	if (!m)
		return;
	free(m->entry);
	m->entry = NULL;
	m->n = 0;
}

/* ---- signatures -------------------------------------------------------- */

enum key_kind { KEY_ED25519, KEY_P256, KEY_RSA };

static const char *const kind_names[] = { "Ed25519", "ECDSA P-256", "RSA" };

static bool mem_has(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (memcmp(s + i, needle, k) == 0)
			return true;
	return false;
}

#define KEY_FIX "fix the profile's [trust] public_key"

static int load_pubkey(const char *pem, size_t pem_len, EVP_PKEY **out, struct fw_err *e)
{
	BIO *bio;
	EVP_PKEY *pkey, *extra;

	if (pem_len == 0)
		return fw_err_set(e, FW_EPROFILE, "the public key file is empty: " KEY_FIX);
	if (pem_len > INT_MAX)
		return fw_err_set(e, FW_EPROFILE,
				  "the public key file is far too large to be a key: " KEY_FIX);
	if (mem_has(pem, pem_len, "PRIVATE KEY-----"))
		/* Never use it, and say so: a private key must not ship with
		 * profiles, since anyone holding it can sign firmware. */
		return fw_err_set(e, FW_EPROFILE,
				  "the public key file holds a PRIVATE key: pin only the public "
				  "half (openssl pkey -in key.pem -pubout) and keep the private "
				  "key off this bench");
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (!bio)
		return fw_err_set(e, FW_ENOMEM, "out of memory reading the public key");
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey) {
		BIO_free(bio);
		if (mem_has(pem, pem_len, "-----BEGIN CERTIFICATE-----"))
			return fw_err_set(e, FW_EPROFILE,
					  "the public key file holds a certificate, not a public key: "
					  "extract the key (openssl x509 -pubkey -noout -in cert.pem) "
					  "and " KEY_FIX);
		if (mem_has(pem, pem_len, "-----BEGIN RSA PUBLIC KEY-----"))
			return fw_err_set(e, FW_EPROFILE,
					  "the public key is in the old PKCS#1 RSA form: convert it "
					  "(openssl pkey -pubin -in key.pem -out pub.pem) and "
					  KEY_FIX);
		return fw_err_set(e, FW_EPROFILE,
				  "the public key file is not a readable PEM public key (expected "
				  "a '-----BEGIN PUBLIC KEY-----' block): " KEY_FIX);
	}
	/* A second key would be silently ignored; which one was meant is a
	 * question for whoever wrote the profile. */
	extra = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (extra) {
		EVP_PKEY_free(extra);
		EVP_PKEY_free(pkey);
		return fw_err_set(e, FW_EPROFILE,
				  "the public key file holds more than one key: pin exactly one "
				  "in the profile's [trust] public_key");
	}
	*out = pkey;
	return FW_OK;
}

static int key_kind(EVP_PKEY *pkey, enum key_kind *kind, struct fw_err *e)
{
	char group[80];
	size_t glen = 0;
	int nid, bits;
	const char *type;

	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		*kind = KEY_ED25519;
		return FW_OK;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1)
			return fw_err_set(e, FW_EPROFILE,
					  "the public key is an EC key with explicit curve "
					  "parameters; only ECDSA P-256 (prime256v1) is accepted: "
					  KEY_FIX);
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid != NID_X9_62_prime256v1)
			return fw_err_set(e, FW_EPROFILE,
					  "the public key is an EC key on curve %s; only ECDSA "
					  "P-256 (prime256v1) is accepted: " KEY_FIX, group);
		*kind = KEY_P256;
		return FW_OK;
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < RSA_MIN_BITS)
			return fw_err_set(e, FW_EPROFILE,
					  "the public key is RSA with %d bits, too weak to trust; "
					  "at least %d are needed: " KEY_FIX, bits, RSA_MIN_BITS);
		*kind = KEY_RSA;
		return FW_OK;
	}
	type = EVP_PKEY_get0_type_name(pkey);
	return fw_err_set(e, FW_EPROFILE,
			  "the public key is of type %s; flashwise accepts Ed25519, ECDSA "
			  "P-256 or RSA (%d bits or more): " KEY_FIX,
			  type ? type : "unknown", RSA_MIN_BITS);
}

static int verify_with(EVP_PKEY *pkey, enum key_kind kind, const void *data, size_t len,
		       const uint8_t *sig, size_t siglen, struct fw_err *e)
{
	EVP_MD_CTX *ctx;
	EVP_PKEY_CTX *pctx = NULL;
	int rc = FW_OK, r;

	if (kind == KEY_ED25519 && siglen != ED25519_SIG_LEN)
		return fw_err_set(e, FW_ESIGNATURE,
				  "an Ed25519 signature is %d bytes, this one is %zu: is it the "
				  "right .sig file? Do not flash the image until its signature "
				  "verifies", ED25519_SIG_LEN, siglen);
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return fw_err_set(e, FW_ENOMEM, "out of memory checking the signature");
	/* Ed25519 hashes internally and signs the raw data (NULL digest);
	 * ECDSA and RSA sign SHA-256 of the data, which is what both
	 * `openssl dgst -sha256 -sign` and `pkeyutl -sign` over a SHA-256
	 * digest produce. */
	if (EVP_DigestVerifyInit(ctx, &pctx, kind == KEY_ED25519 ? NULL : EVP_sha256(),
				 NULL, pkey) != 1 ||
	    (kind == KEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)) {
		rc = fw_err_set(e, FW_ESIGNATURE,
				"OpenSSL could not set up a %s signature check; the image "
				"cannot be trusted until it does", kind_names[kind]);
		goto out;
	}
	/* 1 is the only success: 0 is a bad signature, negative a malformed one. */
	r = EVP_DigestVerify(ctx, sig, siglen, data ? data : (const void *)"", len);
	if (r != 1)
		rc = fw_err_set(e, FW_ESIGNATURE,
				"the %s signature does not verify with the profile's public key: "
				"the image was changed or signed with another key; do not flash "
				"it, get the image and its signature from the vendor again",
				kind_names[kind]);
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int integrity_verify_signature(const char *pubkey_pem, size_t pem_len, const void *data,
			       size_t len, const uint8_t *sig, size_t siglen,
			       struct fw_err *e)
{
	EVP_PKEY *pkey = NULL;
	enum key_kind kind;
	int rc;

	if (!pubkey_pem || (!data && len))
		return fw_err_set(e, FW_EINVAL, "no public key or no data to check");
	if (!sig || siglen == 0)
		return fw_err_set(e, FW_ESIGNATURE,
				  "the signature is empty: get the image's signature file again; "
				  "do not flash the image until it verifies");
	rc = load_pubkey(pubkey_pem, pem_len, &pkey, e);
	if (!rc)
		rc = key_kind(pkey, &kind, e);
	if (!rc)
		rc = verify_with(pkey, kind, data, len, sig, siglen, e);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rc;
}
