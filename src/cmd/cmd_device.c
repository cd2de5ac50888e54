/* `flashwise detect|backup|write|verify`: the low-level verbs for experts
 * and scripts. Each goes through the same gates as the wizard: the device is
 * identified as the profile's model before anything else; write also needs a
 * checked image and a stored backup (or explicit consent where the loader
 * cannot read), and reports success only after a verification that could
 * have failed. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "cmd.h"
#include "device.h"
#include "dev_stk500.h"
#include "devices.h"
#include "exitcode.h"
#include "fwfile.h"
#include "imageset.h"
#include "integrity.h"
#include "profile.h"
#include "progress.h"
#include "strbuf.h"
#include "transport.h"

#define MAX_FILES 16

struct dev_opts {
	const char *port;
	const char *profile;
	unsigned baud;
	bool plain;
	const char *output;
	const char *backup_dir;
	bool accept_no_backup;
	bool only_changed;
	const char *sha256, *sha256_file, *manifest, *sig;
	uint32_t offset, size;
	bool has_offset, has_size;
};

enum { OPT_ACCEPT = 256, OPT_BACKUP_DIR, OPT_OFFSET, OPT_SIZE, OPT_ONLY_CHANGED };

static const struct option long_opts[] = {
	{"port", required_argument, NULL, 'P'},
	{"profile", required_argument, NULL, 'p'},
	{"baud", required_argument, NULL, 'b'},
	{"plain", no_argument, NULL, 'n'},
	{"output", required_argument, NULL, 'o'},
	{"backup-dir", required_argument, NULL, OPT_BACKUP_DIR},
	{"accept-no-backup", no_argument, NULL, OPT_ACCEPT},
	{"only-changed", no_argument, NULL, OPT_ONLY_CHANGED},
	{"sha256", required_argument, NULL, 's'},
	{"sha256-file", required_argument, NULL, 'S'},
	{"manifest", required_argument, NULL, 'm'},
	{"sig", required_argument, NULL, 'g'},
	{"offset", required_argument, NULL, OPT_OFFSET},
	{"size", required_argument, NULL, OPT_SIZE},
	{0, 0, 0, 0},
};

#define DEVICE_OPTIONS \
	"  --port PORT        the serial port (/dev/ttyUSB0)\n" \
	"  --profile P        the device profile (id or path)\n" \
	"  --baud N           talk to the loader at N baud (default: the profile's)\n" \
	"  --plain            progress as whole lines, never redrawn in place\n"

static int parse_opts(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		      char **argv, struct dev_opts *o)
{
	uint32_t v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:", long_opts, NULL)) != -1) {
		switch (c) {
		case 'P': o->port = optarg; break;
		case 'p': o->profile = optarg; break;
		case 'n': o->plain = true; break;
		case 'o': o->output = optarg; break;
		case OPT_BACKUP_DIR: o->backup_dir = optarg; break;
		case OPT_ACCEPT: o->accept_no_backup = true; break;
		case OPT_ONLY_CHANGED: o->only_changed = true; break;
		case 's': o->sha256 = optarg; break;
		case 'S': o->sha256_file = optarg; break;
		case 'm': o->manifest = optarg; break;
		case 'g': o->sig = optarg; break;
		case 'b':
			if (!cmd_parse_u32(optarg, &v) || v < 300 || v > TRANSPORT_BAUD_MAX)
				return cmd_fail(ctx, FW_EXIT_USAGE, "--baud: '%s' is not a baud rate",
						optarg);
			o->baud = v;
			break;
		case OPT_OFFSET:
			if (!cmd_parse_u32(optarg, &o->offset))
				return cmd_fail(ctx, FW_EXIT_USAGE, "--offset: '%s' is not an address",
						optarg);
			o->has_offset = true;
			break;
		case OPT_SIZE:
			if (!cmd_parse_u32(optarg, &o->size) || o->size == 0)
				return cmd_fail(ctx, FW_EXIT_USAGE, "--size: '%s' is not a size", optarg);
			o->has_size = true;
			break;
		default:
			fprintf(ctx->err, "flashwise: %s: unknown option or missing value '%s'\n",
				self->name, argv[optind - 1]);
			return cmd_usage(ctx, self);
		}
	}
	if (!o->port || !o->profile)
		return cmd_usage(ctx, self);
	return FW_EXIT_OK;
}

/* Everything a verb needs open: profile, port, driver, progress. */
struct session {
	struct cmd_ctx *ctx;
	struct profile *p;
	struct transport *t;
	struct device d;
	struct device_identity id;
	struct device_caps caps;
	struct progress prog;
	bool connected;
};

static void log_line(void *cbctx, const char *line)
{
	struct session *s = cbctx;

	progress_end(&s->prog);
	fprintf(s->ctx->err, "%s\n", line);
}

static void on_progress(void *cbctx, const char *phase, uint64_t done, uint64_t total)
{
	struct session *s = cbctx;

	progress_update(&s->prog, phase, done, total);
}

static void print_identity(struct session *s)
{
	const struct device_identity *id = &s->id;
	FILE *f = s->ctx->out;

	fprintf(f, "chip: %s (%s)\n", id->chip[0] ? id->chip : "unknown", id->loader);
	if (id->has_chip_magic)
		fprintf(f, "chip magic: 0x%08X\n", id->chip_magic);
	if (id->has_mac)
		fprintf(f, "mac: %02x:%02x:%02x:%02x:%02x:%02x\n", id->mac[0], id->mac[1],
			id->mac[2], id->mac[3], id->mac[4], id->mac[5]);
	if (id->has_chip_id)
		fprintf(f, "chip id: 0x%08X\n", id->chip_id);
	if (id->has_signature)
		fprintf(f, "signature: %02X %02X %02X\n", id->signature[0], id->signature[1],
			id->signature[2]);
	if (id->flash_id)
		fprintf(f, "flash: %u KB (JEDEC id 0x%06X)\n", id->flash_size / 1024, id->flash_id);
	else if (id->flash_size)
		fprintf(f, "flash: %u KB\n", id->flash_size / 1024);
	if (id->crystal_mhz)
		fprintf(f, "crystal: %u MHz\n", id->crystal_mhz);
}

/* Opens the port, enters the loader, identifies and checks the chip
 * against the profile: the gate every verb goes through. */
static int session_open(struct session *s, struct cmd_ctx *ctx, const struct dev_opts *o)
{
	struct fw_err e = {0};
	const struct device_ops *ops;
	unsigned baud;
	int rc;

	memset(s, 0, sizeof *s);
	s->ctx = ctx;
	progress_init(&s->prog, ctx->err, !o->plain && isatty(fileno(ctx->err)));
	s->p = malloc(sizeof *s->p);
	if (!s->p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = cmd_load_profile(ctx, o->profile, s->p);
	if (rc != FW_EXIT_OK)
		return rc;
	ops = device_ops_for(s->p);
	if (!ops)
		return cmd_fail(ctx, FW_EXIT_PROFILE, "no driver for protocol %s yet (profile %s)",
				profile_protocol_name(s->p->protocol), s->p->id);
	baud = o->baud ? o->baud : s->p->rom_baud;
	rc = transport_open(o->port, baud, &s->t, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	s->d.ops = ops;
	s->d.t = s->t;
	s->d.p = s->p;
	s->d.progress = on_progress;
	s->d.log = log_line;
	s->d.cb_ctx = s;
	s->d.manual_entry = s->p->reset == PROFILE_RESET_MANUAL ||
			    !(transport_caps(s->t) & TRANSPORT_CAP_MODEM_LINES);
	rc = ops->connect(&s->d, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	s->connected = true;
	rc = ops->identify(&s->d, &s->id, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	print_identity(s);
	ops->caps(&s->d, &s->caps);
	rc = device_match(s->p, &s->id, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, FW_EXIT_DEVICE, "%s", e.msg);
	fprintf(ctx->out, "identity: matches profile %s (%s)\n", s->p->id, s->p->name);
	return FW_EXIT_OK;
}

static void session_close(struct session *s, bool run)
{
	struct fw_err e = {0};

	progress_end(&s->prog);
	if (s->connected && s->d.ops->leave(&s->d, run, &e) != FW_OK)
		fprintf(s->ctx->err, "flashwise: leaving the loader: %s\n", e.msg);
	if (s->d.ops && s->d.ops->close)
		s->d.ops->close(&s->d);
	transport_close(s->t);
	free(s->p);
}

static int detect_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		       char **argv)
{
	struct dev_opts o = {0};
	struct session s;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (optind != argc)
		return cmd_usage(ctx, self);
	rc = session_open(&s, ctx, &o);
	if (rc == FW_EXIT_OK)
		fprintf(ctx->out, "loader can: read %s, hash %s, exact erase %s%s%s\n",
			s.caps.can_read ? "yes" : "no", s.caps.can_hash ? "yes" : "no",
			s.caps.exact_erase ? "yes" : "no", s.caps.why_not[0] ? "; " : "",
			s.caps.why_not);
	if (rc == FW_EXIT_OK && s.d.ops->read_eeprom) {
		if (s.caps.eeprom_size)
			fprintf(ctx->out, "eeprom: %u bytes, readable for backups\n",
				s.caps.eeprom_size);
		else
			fprintf(ctx->out, "eeprom: not readable: %s\n", s.caps.eeprom_why_not);
	}
	session_close(&s, true);
	return rc;
}

/* Writes data and its sha256sum sidecar; refuses to replace a file. */
static int store_backup(struct cmd_ctx *ctx, const char *path, const uint8_t *data,
			size_t len, char hex[SHA256_HEX_LEN + 1])
{
	uint8_t digest[SHA256_LEN];
	struct strbuf side = STRBUF_INIT;
	struct fw_err e = {0};
	char sidepath[1100];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int rc;

	if (access(path, F_OK) == 0)
		return cmd_fail(ctx, FW_EXIT_FAILED, "%s exists: backups are never overwritten",
				path);
	integrity_sha256(data, len, digest);
	integrity_hex(digest, SHA256_LEN, hex);
	rc = atomic_write_file(path, data, len, 0600, &e);
	if (rc == FW_OK) {
		strbuf_addf(&side, "%s  %s\n", hex, base);
		snprintf(sidepath, sizeof sidepath, "%s.sha256", path);
		rc = strbuf_failed(&side) ? FW_ENOMEM :
			atomic_write_file(sidepath, side.s, side.len, 0600, &e);
	}
	strbuf_free(&side);
	if (rc != FW_OK)
		return cmd_fail(ctx, FW_EXIT_FAILED, "cannot store the backup: %s", e.msg);
	/* Read it back: a backup that is not on disk as hashed is no backup. */
	{
		char *back = NULL;
		size_t blen = 0;
		uint8_t d2[SHA256_LEN];

		rc = atomic_read_file(path, len + 1, &back, &blen, &e);
		if (rc == FW_OK)
			integrity_sha256(back, blen, d2);
		free(back);
		if (rc != FW_OK || blen != len || !integrity_equal(digest, d2, SHA256_LEN))
			return cmd_fail(ctx, FW_EXIT_FAILED, "the backup %s does not read back as "
					"written: check the disk", path);
	}
	return FW_EXIT_OK;
}

static int read_region(struct session *s, uint32_t addr, uint32_t len, uint8_t **out)
{
	struct fw_err e = {0};
	int rc;

	*out = malloc(len ? len : 1);
	if (!*out)
		return cmd_fail(s->ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = s->d.ops->read(&s->d, addr, len, *out, &e);
	if (rc != FW_OK) {
		free(*out);
		*out = NULL;
		return cmd_fail(s->ctx, exitcode_from_rc(rc), "reading 0x%X..0x%X: %s", addr,
				addr + len - 1, e.msg);
	}
	return FW_EXIT_OK;
}

/* Where the loader can read it, the EEPROM goes beside the flash backup as
 * PATH.eeprom: the settings and calibration an application keeps there
 * are part of what the device holds. */
static int backup_eeprom(struct session *s, const char *path)
{
	char epath[1100], hex[SHA256_HEX_LEN + 1];
	uint32_t n = s->caps.eeprom_size;
	struct fw_err e = {0};
	uint8_t *data;
	int rc;

	if (!s->d.ops->read_eeprom)
		return FW_EXIT_OK;
	if (n == 0) {
		fprintf(s->ctx->out, "eeprom: not backed up: %s\n", s->caps.eeprom_why_not);
		return FW_EXIT_OK;
	}
	if (!(data = malloc(n)))
		return cmd_fail(s->ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = s->d.ops->read_eeprom(&s->d, 0, n, data, &e);
	if (rc != FW_OK) {
		free(data);
		return cmd_fail(s->ctx, exitcode_from_rc(rc), "reading the EEPROM: %s", e.msg);
	}
	snprintf(epath, sizeof epath, "%s.eeprom", path);
	rc = store_backup(s->ctx, epath, data, n, hex);
	free(data);
	if (rc == FW_EXIT_OK)
		fprintf(s->ctx->out, "backup: %s (EEPROM 0x0..0x%X, %u bytes, sha256 %s)\n", epath,
			n - 1, n, hex);
	return rc;
}

static int backup_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		       char **argv)
{
	struct dev_opts o = {0};
	struct session s;
	uint8_t *data = NULL;
	char hex[SHA256_HEX_LEN + 1], epath[1100];
	uint32_t off, len;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (optind != argc || !o.output)
		return cmd_usage(ctx, self);
	/* Refused before the device is touched, not after a long read. */
	snprintf(epath, sizeof epath, "%s.eeprom", o.output);
	if (access(o.output, F_OK) == 0 || access(epath, F_OK) == 0)
		return cmd_fail(ctx, FW_EXIT_FAILED, "%s exists: backups are never overwritten",
				access(o.output, F_OK) == 0 ? o.output : epath);
	rc = session_open(&s, ctx, &o);
	if (rc != FW_EXIT_OK)
		goto out;
	if (!s.caps.can_read) {
		rc = cmd_fail(ctx, FW_EXIT_DEVICE, "this device cannot be backed up: %s",
			      s.caps.why_not);
		goto out;
	}
	off = o.has_offset ? o.offset : 0;
	len = o.has_size ? o.size : s.p->flash_size - off;
	if (off >= s.p->flash_size || len > s.p->flash_size - off) {
		rc = cmd_fail(ctx, FW_EXIT_USAGE, "0x%X + 0x%X runs past the %u KB flash", off, len,
			      s.p->flash_size / 1024);
		goto out;
	}
	rc = read_region(&s, off, len, &data);
	if (rc == FW_EXIT_OK)
		rc = store_backup(ctx, o.output, data, len, hex);
	if (rc == FW_EXIT_OK)
		fprintf(ctx->out, "backup: %s (0x%X..0x%X, %u bytes, sha256 %s)\n", o.output, off,
			off + len - 1, len, hex);
	if (rc == FW_EXIT_OK)
		rc = backup_eeprom(&s, o.output);
out:
	free(data);
	session_close(&s, true);
	return rc;
}

/* Loads, checks and places the files named on the command line. */
static int load_images(struct cmd_ctx *ctx, const struct profile *p, const struct dev_opts *o,
		       int argc, char **argv, struct fwfile *files, size_t *nfiles,
		       struct image *all, bool need_origin)
{
	struct imageset_item items[MAX_FILES];
	struct imageset_report *r;
	struct fw_err e = {0};
	struct strbuf out = STRBUF_INIT;
	size_t n = (size_t)(argc - optind), i, k;
	int rc = FW_EXIT_OK;

	if (n == 0 || n > MAX_FILES)
		return cmd_fail(ctx, FW_EXIT_USAGE, "name 1 to %d files (FILE[@ADDR|@PARTITION])",
				MAX_FILES);
	for (i = 0; i < n; i++) {
		char *spec = argv[optind + (int)i];
		const char *part;
		uint32_t base;

		rc = cmd_place(ctx, p, spec, &part, &base);
		if (rc != FW_EXIT_OK)
			return rc;
		rc = fwfile_load(&files[i], spec, base, &e);
		*nfiles = i + 1;
		if (rc != FW_OK)
			return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
		rc = fwfile_check_hash(&files[i], o->sha256, o->sha256_file, o->manifest, &e);
		if (rc == FW_OK)
			rc = fwfile_check_signature(&files[i], p, o->sig, o->manifest, &e);
		if (rc != FW_OK)
			return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
		if (need_origin && !files[i].hash_ok && !files[i].sig_ok)
			return cmd_fail(ctx, FW_EXIT_INTEGRITY,
					"%s: no published SHA-256 or signature to check it against "
					"(--sha256, --sha256-file, --manifest, or %s.sha256): "
					"flashing an unchecked file is refused", spec, spec);
		items[i] = (struct imageset_item){.file = files[i].path, .partition = part,
						  .img = &files[i].img};
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = imageset_check(p, items, n, r, &e);
	imageset_format(r, &out);
	fputs(strbuf_str(&out), ctx->out);
	strbuf_free(&out);
	free(r);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	/* One image of everything to write, header flags patched. */
	for (i = 0; i < n; i++) {
		rc = imageset_patch(p, &files[i].img, NULL, &e);
		if (rc != FW_OK)
			return cmd_fail(ctx, exitcode_from_rc(rc), "%s: %s", files[i].path, e.msg);
		for (k = 0; k < image_count(&files[i].img); k++) {
			const struct image_range *rg = image_range_get(&files[i].img, k);
			if (image_add(all, rg->addr, rg->data, rg->len, &e) != FW_OK)
				return cmd_fail(ctx, FW_EXIT_IMAGE, "%s", e.msg);
		}
	}
	return FW_EXIT_OK;
}

/* The profile, then the files checked against it (before any device work). */
static int prepare_images(struct cmd_ctx *ctx, const struct dev_opts *o, int argc, char **argv,
			  struct fwfile *files, size_t *nfiles, struct image *all,
			  bool need_origin)
{
	struct profile *p = malloc(sizeof *p);
	int rc;

	if (!p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = cmd_load_profile(ctx, o->profile, p);
	/* Refused before the files are read or the port is opened. */
	if (rc == FW_EXIT_OK && o->only_changed && p->protocol != PROFILE_PROTO_STK500V1)
		rc = cmd_fail(ctx, FW_EXIT_USAGE, "--only-changed works with STK500v1 (Arduino) "
			      "profiles only, not with %s (protocol %s)", p->id,
			      profile_protocol_name(p->protocol));
	if (rc == FW_EXIT_OK)
		rc = load_images(ctx, p, o, argc, argv, files, nfiles, all, need_origin);
	free(p);
	return rc;
}

/* Reads what the write may change (imageset_backup_spans: the sectors the
 * image touches; on AVR the whole application flash) and stores it, so the
 * write can be undone: <dir>/backup-<chip>-<addr>.bin with a sha256
 * sidecar. bk gets the same bytes, for the check after the write. */
static int backup_before_write(struct session *s, const struct image *all, const char *dir,
			       struct image *bk)
{
	char path[1024], hex[SHA256_HEX_LEN + 1];
	struct imageset_span *spans = NULL;
	struct fw_err e = {0};
	size_t i, n = 0;
	int rc;

	if (imageset_backup_spans(s->p, all, &spans, &n, &e) != FW_OK)
		return cmd_fail(s->ctx, FW_EXIT_INTERNAL, "%s", e.msg);
	rc = FW_EXIT_OK;
	for (i = 0; i < n && rc == FW_EXIT_OK; i++) {
		uint8_t *data = NULL;

		rc = read_region(s, spans[i].addr, spans[i].len, &data);
		if (rc != FW_EXIT_OK)
			break;
		snprintf(path, sizeof path, "%s/backup-%s-0x%06X.bin", dir, s->p->id, spans[i].addr);
		rc = store_backup(s->ctx, path, data, spans[i].len, hex);
		if (rc == FW_EXIT_OK && image_add(bk, spans[i].addr, data, spans[i].len, &e) != FW_OK)
			rc = cmd_fail(s->ctx, FW_EXIT_INTERNAL, "%s", e.msg);
		free(data);
		if (rc == FW_EXIT_OK)
			fprintf(s->ctx->out, "backup: %s (sha256 %s)\n", path, hex);
	}
	free(spans);
	return rc;
}

/* After a failed comparison where the backup holds the whole application
 * flash (AVR): a damaged STK500v1 address puts a page elsewhere, so
 * everything the image does not cover must still hold what the backup
 * read. Says what changed; true when something did. */
static bool changed_outside(struct session *s, const struct image *all, const struct image *bk)
{
	struct device_verify_result r;
	struct fw_err e = {0};
	int rc;

	if (!bk || image_count(bk) == 0 || !imageset_backup_is_whole(s->p))
		return false;
	rc = device_verify_outside(&s->d, bk, all, &r, &e);
	progress_end(&s->prog);
	if (rc != FW_EVERIFY)
		return false;
	for (size_t i = 0; i < r.nmismatch; i++)
		fprintf(s->ctx->err, "  changed outside the image: 0x%06X..0x%06X\n",
			r.mismatch[i].addr, r.mismatch[i].addr + r.mismatch[i].len - 1);
	return r.nmismatch > 0;
}

/* after_write: the flash was just written, so a verification that fails
 * or cannot finish (timeout, lost device) leaves it unproven: exit 10; bk
 * is the backup read before it (or NULL). */
static int verify_against(struct session *s, const struct image *all, bool after_write,
			  const struct image *bk)
{
	struct device_verify_result r;
	struct fw_err e = {0};
	size_t i;
	int rc;

	memset(&r, 0, sizeof r);
	rc = s->d.ops->verify(&s->d, all, &r, &e);
	progress_end(&s->prog);
	if (rc == FW_OK) {
		fprintf(s->ctx->out, "verify: %llu bytes match (%s)\n",
			(unsigned long long)r.bytes_checked, r.method);
		return FW_EXIT_OK;
	}
	for (i = 0; i < r.nmismatch; i++)
		fprintf(s->ctx->err, "  differs: 0x%06X..0x%06X\n", r.mismatch[i].addr,
			r.mismatch[i].addr + r.mismatch[i].len - 1);
	if (after_write && rc == FW_EVERIFY && changed_outside(s, all, bk))
		return cmd_fail(s->ctx, FW_EXIT_UNSAFE, "written but the verification failed, and "
				"flash outside the image changed too (a damaged address on the line "
				"put a page there): write the backup back, which holds what it held");
	if (after_write)
		return cmd_fail(s->ctx, FW_EXIT_UNSAFE, "written but the verification failed: %s; "
				"the device may be in an unsafe state: write again, or write the "
				"backup back", e.msg);
	return cmd_fail(s->ctx, rc == FW_EVERIFY ? FW_EXIT_FAILED : exitcode_from_rc(rc),
			"verify failed: %s", e.msg);
}

/* --only-changed: the backup read just before the write tells the driver
 * what every page holds, so pages that already hold the new bytes are not
 * written. Every page is still read back by the verify. Only the STK500v1
 * driver keeps that page knowledge. */
static int only_changed_setup(struct session *s)
{
	struct dev_stk500_options so;
	struct fw_err e = {0};

	if (s->d.ops != &dev_stk500_ops)
		return cmd_fail(s->ctx, FW_EXIT_USAGE, "--only-changed works with STK500v1 "
				"(Arduino) profiles only, not with %s (protocol %s)", s->p->id,
				profile_protocol_name(s->p->protocol));
	dev_stk500_options_default(&so);
	so.skip_unchanged = true;
	if (dev_stk500_set_options(&s->d, &so, &e) != FW_OK)
		return cmd_fail(s->ctx, FW_EXIT_INTERNAL, "%s", e.msg);
	return FW_EXIT_OK;
}

static void only_changed_report(struct session *s)
{
	struct dev_stk500_stats st;

	if (dev_stk500_last_stats(&s->d, &st) == FW_OK)
		fprintf(s->ctx->out, "pages: %zu written, %zu unchanged and not written\n",
			st.pages_written, st.pages_skipped);
}

/* Where a write's time went, for the technician and the bench: each phase
 * that ran, on the monotonic clock (connect includes identify; backup
 * includes storing the files). The total runs from the command's start to
 * its verdict, so it also holds the image checks: the phases add up to at
 * most the total. */
enum { PH_CONNECT, PH_BACKUP, PH_WRITE, PH_VERIFY, PH_N };

struct phase_clock {
	uint64_t start, mark;
	uint64_t ns[PH_N];
	bool ran[PH_N];
};

static void phase_begin(struct phase_clock *c)
{
	c->mark = transport_now_ns();
}

static void phase_end(struct phase_clock *c, int ph)
{
	c->ns[ph] += transport_now_ns() - c->mark;
	c->ran[ph] = true;
}

static void phase_report(const struct phase_clock *c, FILE *out)
{
	static const char *const name[PH_N] = { "connect", "backup", "write", "verify" };
	struct strbuf b = STRBUF_INIT;
	int i;

	strbuf_adds(&b, "time:");
	for (i = 0; i < PH_N; i++)
		if (c->ran[i])
			strbuf_addf(&b, " %s %.2f s,", name[i], (double)c->ns[i] / 1e9);
	strbuf_addf(&b, " total %.2f s\n", (double)(transport_now_ns() - c->start) / 1e9);
	if (!strbuf_failed(&b))
		fputs(strbuf_str(&b), out);
	strbuf_free(&b);
}

static int write_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		      char **argv)
{
	struct phase_clock clk = {0};
	struct dev_opts o = {0};
	struct session s;
	struct fwfile files[MAX_FILES];
	struct image all, bk;
	struct fw_err e = {0};
	size_t nfiles = 0, i;
	bool opened = false;
	int rc;

	clk.start = transport_now_ns();
	image_init(&all);
	image_init(&bk);
	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	/* The image is checked before anything touches the device. */
	rc = prepare_images(ctx, &o, argc, argv, files, &nfiles, &all, true);
	if (rc != FW_EXIT_OK)
		goto out;
	phase_begin(&clk);
	rc = session_open(&s, ctx, &o);
	phase_end(&clk, PH_CONNECT);
	opened = true;
	if (rc != FW_EXIT_OK)
		goto out;
	if (o.only_changed) {
		rc = only_changed_setup(&s);
		if (rc != FW_EXIT_OK)
			goto out;
	}
	if (s.caps.can_read) {
		phase_begin(&clk);
		rc = backup_before_write(&s, &all, o.backup_dir ? o.backup_dir : ".", &bk);
		phase_end(&clk, PH_BACKUP);
		if (rc != FW_EXIT_OK)
			goto out;
	} else if (!o.accept_no_backup) {
		rc = cmd_fail(ctx, FW_EXIT_DECLINED,
			      "this device cannot be backed up%s (%s); writing would lose what is "
			      "on it for good. Give --accept-no-backup to write anyway.",
			      s.caps.can_hash ? "" : " or verified", s.caps.why_not);
		goto out;
	} else {
		fprintf(ctx->err, "warning: writing without a backup, as accepted (%s)\n",
			s.caps.why_not);
	}
	phase_begin(&clk);
	rc = s.d.ops->write(&s.d, &all, &e);
	phase_end(&clk, PH_WRITE);
	progress_end(&s.prog);
	if (rc != FW_OK) {
		rc = cmd_fail(ctx, FW_EXIT_UNSAFE, "write failed: %s; the device may be in an "
			      "unsafe state: write again, or write the backup back", e.msg);
		goto out;
	}
	fprintf(ctx->out, "write: %zu bytes written\n", image_total(&all));
	if (o.only_changed)
		only_changed_report(&s);
	if (s.caps.can_hash || s.caps.can_read) {
		phase_begin(&clk);
		rc = verify_against(&s, &all, true, &bk);
		phase_end(&clk, PH_VERIFY);
	} else {
		rc = cmd_fail(ctx, FW_EXIT_UNSAFE, "written but NOT verified: %s", s.caps.why_not);
	}
out:
	/* After the verdict, whatever it was: a slow or failed run is where
	 * the technician most wants to know where the time went. */
	if (opened) {
		progress_end(&s.prog);
		phase_report(&clk, ctx->out);
		session_close(&s, rc == FW_EXIT_OK);
	}
	for (i = 0; i < nfiles; i++)
		fwfile_free(&files[i]);
	image_free(&all);
	image_free(&bk);
	return rc;
}

static int verify_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		       char **argv)
{
	struct dev_opts o = {0};
	struct session s;
	struct fwfile files[MAX_FILES];
	struct image all;
	size_t nfiles = 0, i;
	bool opened = false;
	int rc;

	image_init(&all);
	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	rc = prepare_images(ctx, &o, argc, argv, files, &nfiles, &all, false);
	if (rc != FW_EXIT_OK)
		goto out;
	rc = session_open(&s, ctx, &o);
	opened = true;
	if (rc != FW_EXIT_OK)
		goto out;
	if (!s.caps.can_hash && !s.caps.can_read) {
		rc = cmd_fail(ctx, FW_EXIT_DEVICE, "this device cannot be verified: %s",
			      s.caps.why_not);
		goto out;
	}
	rc = verify_against(&s, &all, false, NULL);
out:
	if (opened)
		session_close(&s, true);
	for (i = 0; i < nfiles; i++)
		fwfile_free(&files[i]);
	image_free(&all);
	return rc;
}

const struct cmd_entry cmd_detect = {
	.name = "detect",
	.usage = "--port PORT --profile P [--baud N]",
	.summary = "enter the bootloader, identify the chip, compare with the profile",
	.options = DEVICE_OPTIONS,
	.exec = detect_exec,
};

const struct cmd_entry cmd_backup = {
	.name = "backup",
	.usage = "--port PORT --profile P -o FILE [--offset A] [--size N]",
	.summary = "read the flash (all of it, or a region) into FILE with FILE.sha256",
	.options = DEVICE_OPTIONS
		"  -o, --output FILE  where the backup goes (never overwritten); the EEPROM\n"
		"                     goes to FILE.eeprom where the bootloader can read it\n"
		"  --offset A         start of the region (default 0)\n"
		"  --size N           bytes to read (default: to the end of the flash)\n",
	.exec = backup_exec,
};

const struct cmd_entry cmd_write = {
	.name = "write",
	.usage = "--port PORT --profile P FILE[@ADDR|@PARTITION]... [--sha256 HEX | "
		 "--sha256-file F | --manifest M] [--sig F] [--backup-dir DIR] "
		 "[--accept-no-backup] [--only-changed]",
	.summary = "check, back up, write and verify firmware files",
	.options = DEVICE_OPTIONS
		"  --sha256 HEX       the published SHA-256 of the (one) file\n"
		"  --sha256-file F    a sha256sum file listing the files (default FILE.sha256)\n"
		"  --manifest M       a manifest listing the files\n"
		"  --sig F            detached signature, checked with the profile's key\n"
		"  --backup-dir DIR   where the backup of the sectors written goes (default .)\n"
		"  --accept-no-backup write even though this loader cannot read a backup\n"
		"  --only-changed     (Arduino) write only the pages whose contents differ from\n"
		"                     the backup just read; every page is still verified\n",
	.exec = write_exec,
};

const struct cmd_entry cmd_verify = {
	.name = "verify",
	.usage = "--port PORT --profile P FILE[@ADDR|@PARTITION]...",
	.summary = "compare the device's flash with firmware files",
	.options = DEVICE_OPTIONS,
	.exec = verify_exec,
};
