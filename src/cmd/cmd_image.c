/* `flashwise image info|check`: what a firmware file is, whether it is the
 * file its publisher hashed or signed, and whether it fits a device. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "cmd.h"
#include "esp_image.h"
#include "exitcode.h"
#include "fwfile.h"
#include "imageset.h"
#include "profile.h"
#include "sample.h"
#include "strbuf.h"

struct image_opts {
	const char *profile;
	const char *sha256;
	const char *sha256_file;
	const char *manifest;
	const char *sig;
	const char *address;
	const char *partition;
};

static const struct option long_opts[] = {
	{"profile", required_argument, NULL, 'p'},
	{"sha256", required_argument, NULL, 's'},
	{"sha256-file", required_argument, NULL, 'S'},
	{"manifest", required_argument, NULL, 'm'},
	{"sig", required_argument, NULL, 'g'},
	{"address", required_argument, NULL, 'a'},
	{"partition", required_argument, NULL, 'P'},
	{0, 0, 0, 0},
};

#define IMAGE_OPTIONS \
	"  --profile P        check against device profile P (id or path)\n" \
	"  --sha256 HEX       the SHA-256 the publisher gave for the file\n" \
	"  --sha256-file F    a sha256sum-format file listing it (default: FILE.sha256)\n" \
	"  --manifest M       a manifest with the file's SHA-256 and signature\n" \
	"  --sig F            detached signature, checked with the profile's public key\n" \
	"                     (default: FILE.sig when it exists)\n"

static int parse_opts(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		      char **argv, struct image_opts *o)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 'p': o->profile = optarg; break;
		case 's': o->sha256 = optarg; break;
		case 'S': o->sha256_file = optarg; break;
		case 'm': o->manifest = optarg; break;
		case 'g': o->sig = optarg; break;
		case 'a': o->address = optarg; break;
		case 'P': o->partition = optarg; break;
		default:
			fprintf(ctx->err, "flashwise: %s: unknown option or missing value '%s'\n",
				self->name, argv[optind - 1]);
			return cmd_usage(ctx, self);
		}
	}
	return FW_EXIT_OK;
}

/* The integrity part shared by info and check: expected hash, signature. */
static int check_integrity(struct cmd_ctx *ctx, struct fwfile *f, const struct profile *p,
			   const struct image_opts *o)
{
	char hex[SHA256_HEX_LEN + 1];
	struct fw_err e = {0};
	int rc;

	rc = fwfile_check_hash(f, o->sha256, o->sha256_file, o->manifest, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	if (f->hash_source == FWFILE_HASH_NONE) {
		fprintf(ctx->out, "expected: none given (--sha256, --sha256-file, --manifest): "
				  "the file's origin is not checked\n");
	} else {
		integrity_hex(f->expected, SHA256_LEN, hex);
		fprintf(ctx->out, "expected: %s (%s%s%s): matches\n", hex,
			f->hash_source == FWFILE_HASH_ARGUMENT ? "--sha256" :
			f->hash_source == FWFILE_HASH_SIDECAR ? "sidecar " : "manifest ",
			f->hash_from, "");
	}
	rc = fwfile_check_signature(f, p, o->sig, o->manifest, &e);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	if (f->sig_ok)
		fprintf(ctx->out, "signature: %s verified with %s\n", f->sig_path, p->public_key);
	else
		fprintf(ctx->out, "signature: none\n");
	return FW_EXIT_OK;
}

static int report_set(struct cmd_ctx *ctx, const struct profile *p,
		      const struct imageset_item *items, size_t n)
{
	struct imageset_report *r = calloc(1, sizeof *r);
	struct strbuf out = STRBUF_INIT;
	struct fw_err e = {0};
	int rc;

	if (!r)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = imageset_check(p, items, n, r, &e);
	fprintf(ctx->out, "against profile %s (%s):\n", p->id, p->name);
	imageset_format(r, &out);
	fputs(strbuf_str(&out), ctx->out);
	strbuf_free(&out);
	free(r);
	if (rc != FW_OK)
		return cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
	return FW_EXIT_OK;
}

static int image_info_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			   char **argv)
{
	struct image_opts o = {0};
	struct profile *p = NULL;
	struct fwfile f;
	struct fw_err e = {0};
	struct strbuf out = STRBUF_INIT;
	char hex[SHA256_HEX_LEN + 1];
	enum profile_family fam;
	uint32_t base = 0;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (optind != argc - 1)
		return cmd_usage(ctx, self);
	if (o.address && o.partition)
		return cmd_fail(ctx, FW_EXIT_USAGE, "give --address or --partition, not both");
	if (o.address && !cmd_parse_u32(o.address, &base))
		return cmd_fail(ctx, FW_EXIT_USAGE, "--address: '%s' is not an address "
				"(decimal or 0x hex)", o.address);
	if (o.profile || o.partition) {
		if (!o.profile)
			return cmd_fail(ctx, FW_EXIT_USAGE, "--partition needs --profile");
		p = malloc(sizeof *p);
		if (!p)
			return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
		rc = cmd_load_profile(ctx, o.profile, p);
		if (rc != FW_EXIT_OK)
			goto out_profile;
		if (o.partition && imageset_addr_for(p, o.partition, &base, &e) != FW_OK) {
			rc = cmd_fail(ctx, FW_EXIT_USAGE, "%s", e.msg);
			goto out_profile;
		}
	}

	rc = fwfile_load(&f, argv[optind], base, &e);
	if (rc != FW_OK) {
		rc = cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
		goto out;
	}
	integrity_hex(f.sha256, SHA256_LEN, hex);
	fprintf(ctx->out, "file: %s\n", f.path);
	fprintf(ctx->out, "sha256: %s\n", hex);
	image_describe(&f.img, &out);
	if (f.img.format == IMAGE_FORMAT_BIN && f.rawlen && f.raw[0] == ESP_IMAGE_MAGIC) {
		bool known = p && p->family != PROFILE_FAMILY_AVR;
		if (known)
			fam = p->family;
		if (known || esp_image_guess_family(f.raw, f.rawlen, &fam) == FW_OK) {
			strbuf_addf(&out, "ESP application image (%s layout%s):\n",
				    profile_family_name(fam), known ? ", from the profile" : ", guessed");
			esp_image_describe(f.raw, f.rawlen, fam, &out);
		} else {
			strbuf_adds(&out, "starts with 0xE9 but parses as neither an ESP8266 "
					  "nor an ESP32 image\n");
		}
	}
	fputs(strbuf_str(&out), ctx->out);
	strbuf_free(&out);

	rc = check_integrity(ctx, &f, p, &o);
	if (rc == FW_EXIT_OK && p) {
		struct imageset_item item = {.file = f.path, .partition = o.partition, .img = &f.img};
		rc = report_set(ctx, p, &item, 1);
	}
	fprintf(ctx->out, "verdict: %s\n", rc == FW_EXIT_OK ? "ok" : "REJECTED");
out:
	fwfile_free(&f);
out_profile:
	free(p);
	return rc;
}

static int image_check_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			    char **argv)
{
	struct image_opts o = {0};
	struct profile *p;
	struct fwfile *files;
	struct imageset_item *items;
	struct fw_err e = {0};
	char hex[SHA256_HEX_LEN + 1];
	size_t n, i, loaded = 0;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (!o.profile || optind >= argc)
		return cmd_usage(ctx, self);
	if (o.sha256 && argc - optind != 1)
		return cmd_fail(ctx, FW_EXIT_USAGE, "--sha256 names one file's hash: use "
				"--sha256-file or --manifest for several files");
	n = (size_t)(argc - optind);
	p = malloc(sizeof *p);
	files = calloc(n, sizeof *files);
	items = calloc(n, sizeof *items);
	if (!p || !files || !items) {
		rc = cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
		goto out;
	}
	rc = cmd_load_profile(ctx, o.profile, p);
	if (rc != FW_EXIT_OK)
		goto out;
	for (i = 0; i < n; i++) {
		const char *file = argv[optind + (int)i], *part;
		uint32_t base;

		rc = cmd_place(ctx, p, argv[optind + (int)i], &part, &base);
		if (rc != FW_EXIT_OK)
			goto out;
		rc = fwfile_load(&files[i], file, base, &e);
		loaded++;
		if (rc != FW_OK) {
			rc = cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
			goto out;
		}
		integrity_hex(files[i].sha256, SHA256_LEN, hex);
		fprintf(ctx->out, "file: %s (%zu bytes, sha256 %s)\n", file,
			files[i].rawlen, hex);
		rc = check_integrity(ctx, &files[i], p, &o);
		if (rc != FW_EXIT_OK)
			goto out;
		items[i] = (struct imageset_item){.file = file, .partition = part,
						  .img = &files[i].img};
	}
	rc = report_set(ctx, p, items, n);
	fprintf(ctx->out, "verdict: %s\n", rc == FW_EXIT_OK ? "ok" : "REJECTED");
out:
	for (i = 0; i < loaded; i++)
		fwfile_free(&files[i]);
	free(files);
	free(items);
	free(p);
	return rc;
}

/* Writes a sample application image for the profile's chip and flags, and
 * its sha256sum sidecar: the demo's firmware, and a safe file for training. */
static int image_sample_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			     char **argv)
{
	struct image_opts o = {0};
	struct profile *p;
	struct strbuf img = STRBUF_INIT, side = STRBUF_INIT;
	struct fw_err e = {0};
	uint8_t digest[SHA256_LEN];
	char hex[SHA256_HEX_LEN + 1], path[1100], banner[200];
	const char *file, *base;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (!o.profile || optind != argc - 1)
		return cmd_usage(ctx, self);
	file = argv[optind];
	p = malloc(sizeof *p);
	if (!p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = cmd_load_profile(ctx, o.profile, p);
	if (rc != FW_EXIT_OK)
		goto out;
	if (p->family == PROFILE_FAMILY_AVR) {
		rc = cmd_fail(ctx, FW_EXIT_USAGE, "sample images exist for ESP profiles only");
		goto out;
	}
	snprintf(banner, sizeof banner, "flashwise sample firmware 1.0 for %s", p->name);
	rc = sample_esp_image(p->family, p->flash_mode, p->flash_size_flag, p->flash_freq_mhz,
			      banner, 0, &img, &e);
	if (rc == FW_OK)
		rc = integrity_sha256(img.s, img.len, digest);
	if (rc == FW_OK)
		rc = atomic_write_file(file, img.s, img.len, 0644, &e);
	if (rc == FW_OK) {
		integrity_hex(digest, SHA256_LEN, hex);
		base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
		strbuf_addf(&side, "%s  %s\n", hex, base);
		snprintf(path, sizeof path, "%s.sha256", file);
		rc = strbuf_failed(&side) ? FW_ENOMEM :
			atomic_write_file(path, side.s, side.len, 0644, &e);
	}
	if (rc != FW_OK) {
		rc = cmd_fail(ctx, exitcode_from_rc(rc), "%s", e.msg);
		goto out;
	}
	fprintf(ctx->out, "wrote %s (%zu bytes, sha256 %s) and %s\n", file, img.len, hex, path);
out:
	strbuf_free(&img);
	strbuf_free(&side);
	free(p);
	return rc;
}

const struct cmd_entry cmd_image_sample = {
	.name = "image sample",
	.usage = "FILE --profile P",
	.summary = "write a sample firmware for an ESP profile, with FILE.sha256",
	.exec = image_sample_exec,
};

const struct cmd_entry cmd_image_info = {
	.name = "image info",
	.usage = "FILE [--profile P [--partition NAME]] [--address ADDR] [--sha256 HEX | "
		 "--sha256-file F | --manifest M] [--sig F]",
	.summary = "describe a firmware file: format, ranges, SHA-256, ESP header, verdict",
	.options = IMAGE_OPTIONS
		"  --address ADDR     where a raw .bin goes (default 0)\n"
		"  --partition NAME   place a raw .bin at the profile's partition NAME\n",
	.exec = image_info_exec,
};

const struct cmd_entry cmd_image_check = {
	.name = "image check",
	.usage = "--profile P FILE[@ADDR|@PARTITION]... [--sha256-file F | --manifest M]",
	.summary = "check a set of firmware files against a profile before flashing",
	.options = IMAGE_OPTIONS,
	.exec = image_check_exec,
};
