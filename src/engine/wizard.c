/* The engine: one job through the nine steps. Each step is a function that
 * gathers its evidence; the loop around them turns results into events for
 * the step machine and persists the journal (jobstore_apply) before the
 * next action on the device. Questions and drawing go through struct ui.
 *
 * Stopping: a signal or the technician's stop request cancels the serial
 * transport only while the running step does not write; a step that writes
 * always runs to its end (and its verification) first. */
#define _GNU_SOURCE /* strcasestr */
#include "wizard.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <grp.h>
#include <pwd.h>

#include "atomic.h"
#include "dev_esp.h"
#include "device.h"
#include "devices.h"
#include "exitcode.h"
#include "fwfile.h"
#include "imageset.h"
#include "integrity.h"
#include "jobstore.h"
#include "portlist.h"
#include "profile.h"
#include "report.h"
#include "strbuf.h"
#include "transport.h"

/* ---- signals: the only process-wide state ---- */

static volatile sig_atomic_t sig_hup;
static volatile sig_atomic_t sig_stop; /* SIGINT or SIGTERM: the signal number */

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		sig_hup = 1;
	else
		sig_stop = sig;
}

void wizard_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a prompt blocked in read() returns, so a question
	 * never holds the process after the terminal is gone. */
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int wizard_signal_pending(void)
{
	return sig_hup ? SIGHUP : sig_stop;
}

/* ---- the engine's state for one run ---- */

#define EV_MAX 64
#define WIZ_SKIPPED 1 /* a step function's "skip with consent" result */
#define BOOT_QUIET_MS 400 /* the boot output has ended after this much silence */

struct evset {
	size_t n;
	struct step_kv kv[EV_MAX];
	char *own[EV_MAX * 2];
	size_t nown;
	bool failed;
};

struct wfile {
	char spec[1024];       /* as given: FILE[@ADDR|@PARTITION] */
	char path[1024];       /* FILE, or "@blank" */
	char partition[32];    /* "" when placed by address */
	uint32_t addr;
	bool blank;            /* 0xFF fill of the partition */
	uint32_t blank_len;
	struct fwfile f;
	bool loaded;
};

struct wiz {
	const struct wizard_config *cfg;
	struct ui *ui;
	char root[JOBSTORE_PATH_MAX];
	char dir[JOBSTORE_PATH_MAX];
	struct job job;
	bool have_job;
	struct profile *p;
	struct wfile files[WIZARD_MAX_FILES];
	size_t nfiles;
	struct image all;      /* what the flash step writes, header flags patched */
	bool have_image;
	struct transport *t;
	struct device d;
	bool have_device;
	bool in_loader;
	struct device_identity id;
	struct device_caps caps;
	int current;
	bool detached;
	bool stop;             /* a stop was asked for and accepted */
	bool stop_by_ui;
	int last_rc;           /* the error that ended the run, for the exit code */
	char last_msg[FW_ERR_MSG_MAX];
	/* the frame's strings */
	char v_profile[256], v_port[256], v_device[256];
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* ---- evidence sets ---- */

static void ev_free(struct evset *s)
{
	for (size_t i = 0; i < s->nown; i++)
		free(s->own[i]);
	memset(s, 0, sizeof *s);
}

static void ev_add(struct evset *s, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ev_add(struct evset *s, const char *key, const char *fmt, ...)
{
	char *k, *v = NULL;
	va_list ap;
	int n;

	if (s->n >= EV_MAX) {
		s->failed = true;
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&v, fmt, ap);
	va_end(ap);
	k = strdup(key);
	if (n < 0 || !k) {
		free(k);
		if (n >= 0)
			free(v);
		s->failed = true;
		return;
	}
	s->own[s->nown++] = k;
	s->own[s->nown++] = v;
	s->kv[s->n].key = k;
	s->kv[s->n].value = v;
	s->n++;
}

/* ---- the UI, through small wrappers that respect a detached screen ---- */

static void view(struct wiz *w, struct ui_view *v)
{
	v->job = &w->job;
	v->current = w->current;
	v->profile = w->v_profile;
	v->port = w->v_port;
	v->device = w->v_device;
	v->job_dir = w->dir;
}

static void check_signals(struct wiz *w)
{
	if (sig_hup && !w->detached) {
		w->detached = true;
		if (w->ui->ops->detach)
			w->ui->ops->detach(w->ui->ctx);
	}
}

static void ui_update(struct wiz *w)
{
	struct ui_view v;

	check_signals(w);
	if (w->detached || !w->ui->ops->update)
		return;
	view(w, &v);
	w->ui->ops->update(w->ui->ctx, &v);
}

static void fact(struct wiz *w, enum ui_level lvl, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fact(struct wiz *w, enum ui_level lvl, const char *label, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	check_signals(w);
	if (w->detached || !w->ui->ops->fact)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	w->ui->ops->fact(w->ui->ctx, lvl, label, buf);
}

/* Questions fail closed once the screen is gone. */
static int confirm(struct wiz *w, const char *q, bool safe_default, bool *yes)
{
	check_signals(w);
	*yes = false;
	if (w->detached || !w->ui->ops->confirm)
		return FW_ECANCELLED;
	return w->ui->ops->confirm(w->ui->ctx, q, safe_default, yes);
}

static int type_word(struct wiz *w, const char *prompt, const char *word)
{
	check_signals(w);
	if (w->detached || !w->ui->ops->type_word)
		return FW_ECANCELLED;
	return w->ui->ops->type_word(w->ui->ctx, prompt, word);
}

static int ask_text(struct wiz *w, const char *prompt, const char *hint, char *out, size_t n)
{
	check_signals(w);
	out[0] = '\0';
	if (w->detached || !w->ui->ops->ask_text)
		return FW_ECANCELLED;
	return w->ui->ops->ask_text(w->ui->ctx, prompt, hint, out, n);
}

static int choose(struct wiz *w, const char *title, const struct ui_item *items, size_t n,
		  size_t *choice)
{
	check_signals(w);
	if (w->detached || !w->ui->ops->choose)
		return FW_ECANCELLED;
	return w->ui->ops->choose(w->ui->ctx, title, items, n, choice);
}

static void waiting(struct wiz *w, const char *what, const char *instr, bool on)
{
	check_signals(w);
	if (!w->detached && w->ui->ops->waiting)
		w->ui->ops->waiting(w->ui->ctx, what, instr, on);
}

/* Polled during long work and between steps. */
static bool stop_asked(struct wiz *w)
{
	check_signals(w);
	if (sig_stop)
		return true;
	if (!w->detached && w->ui->ops->stop_requested &&
	    w->ui->ops->stop_requested(w->ui->ctx)) {
		w->stop_by_ui = true;
		return true;
	}
	return false;
}

static bool cancel_cb(void *ctx)
{
	return stop_asked(ctx);
}

static void on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	struct wiz *w = ctx;

	check_signals(w);
	if (!w->detached && w->ui->ops->progress)
		w->ui->ops->progress(w->ui->ctx, phase, done, total);
}

static void on_log(void *ctx, const char *line)
{
	struct wiz *w = ctx;

	check_signals(w);
	if (!w->detached && w->ui->ops->log)
		w->ui->ops->log(w->ui->ctx, line);
}

/* ---- profile and firmware ---- */

static int load_profile(struct wiz *w, const char *arg, struct fw_err *e)
{
	char path[1024];
	struct profile_diags diags;
	int rc;

	memset(&diags, 0, sizeof diags);
	rc = profile_find(arg, w->cfg->profiles, path, sizeof path, e);
	if (rc == FW_OK)
		rc = profile_load(path, w->p, &diags, e);
	if (rc != FW_OK)
		return rc;
	snprintf(w->v_profile, sizeof w->v_profile, "%s (%s)", w->p->id, w->p->name);
	return FW_OK;
}

static int by_group(const void *a, const void *b)
{
	const struct ui_item *x = a, *y = b;
	int c = strcmp(x->group, y->group);

	return c ? c : strcmp(x->label, y->label);
}

/* The technician picks a profile, grouped by family. */
static int choose_profile(struct wiz *w, char *out, size_t outlen, struct fw_err *e)
{
	struct profile_entry *v = NULL;
	struct ui_item *items = NULL;
	char (*detail)[256] = NULL;
	char dir[1024];
	size_t n = 0, k = 0, choice = 0;
	int rc;

	rc = profile_catalog(w->cfg->profiles, dir, sizeof dir, &v, &n, e);
	if (rc != FW_OK)
		return rc;
	items = calloc(n ? n : 1, sizeof *items);
	detail = calloc(n ? n : 1, sizeof *detail);
	if (!items || !detail) {
		rc = fw_err_set(e, FW_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].ok)
			continue;
		snprintf(detail[k], sizeof detail[k], "%s, %u KB flash", v[i].p.name,
			 v[i].p.flash_size / 1024);
		items[k] = (struct ui_item){v[i].p.id, detail[k],
					    profile_family_name(v[i].p.family)};
		k++;
	}
	if (k == 0) {
		rc = fw_err_set(e, FW_EPROFILE, "no usable profile in %s", dir);
		goto out;
	}
	qsort(items, k, sizeof *items, by_group);
	rc = choose(w, "Which device is on the bench? Choose its profile", items, k, &choice);
	if (rc == FW_OK && choice < k)
		snprintf(out, outlen, "%s/%s.ini", dir, items[choice].label);
	else if (rc == FW_OK)
		rc = fw_err_set(e, FW_ECANCELLED, "no profile chosen");
	else
		fw_err_set(e, rc, "no profile chosen: flashwise needs the device's profile (--profile)");
out:
	free(items);
	free(detail);
	free(v);
	return rc;
}

/* FILE, FILE@ADDR or FILE@PARTITION; "@blank@NAME" is the 0xFF fill of a
 * partition (a profile default). */
static int place_spec(struct wiz *w, struct wfile *f, const char *spec, struct fw_err *e)
{
	const char *at = strrchr(spec, '@');
	size_t plen = at ? (size_t)(at - spec) : strlen(spec);
	uint32_t addr = 0;
	char *end;
	unsigned long long v;

	memset(f, 0, sizeof *f);
	if (strlen(spec) >= sizeof f->spec || plen >= sizeof f->path || plen == 0)
		return fw_err_set(e, FW_EINVAL, "'%s' is not FILE, FILE@ADDRESS or FILE@PARTITION",
				  spec);
	snprintf(f->spec, sizeof f->spec, "%s", spec);
	memcpy(f->path, spec, plen);
	f->path[plen] = '\0';
	if (at) {
		errno = 0;
		v = strtoull(at + 1, &end, 0);
		if (at[1] >= '0' && at[1] <= '9' && !errno && !*end && v <= UINT32_MAX) {
			addr = (uint32_t)v;
		} else {
			if (strlen(at + 1) >= sizeof f->partition)
				return fw_err_set(e, FW_EINVAL, "no partition '%s' in profile %s",
						  at + 1, w->p->id);
			if (imageset_addr_for(w->p, at + 1, &addr, e) != FW_OK) {
				fw_err_prefix(e, "%s", spec);
				return FW_EINVAL;
			}
			snprintf(f->partition, sizeof f->partition, "%s", at + 1);
		}
	}
	f->addr = addr;
	if (strcmp(f->path, "@blank") == 0) {
		const struct profile_partition *pp = profile_partition_named(w->p, f->partition);

		if (!pp)
			return fw_err_set(e, FW_EINVAL, "@blank needs a partition: @blank@NAME");
		f->blank = true;
		f->blank_len = pp->size;
	}
	return FW_OK;
}

static int load_file(struct wfile *f, struct fw_err *e)
{
	int rc;

	if (f->blank || f->loaded)
		return FW_OK;
	rc = fwfile_load(&f->f, f->path, f->addr, e);
	if (rc != FW_OK)
		return rc;
	f->loaded = true;
	return FW_OK;
}

static void free_files(struct wiz *w)
{
	for (size_t i = 0; i < w->nfiles; i++)
		if (w->files[i].loaded)
			fwfile_free(&w->files[i].f);
	w->nfiles = 0;
}

/* Whether a file already writes addr (a HEX file brings its own addresses,
 * so its ranges count, not its base). */
static bool range_covered(struct wiz *w, uint32_t addr)
{
	for (size_t i = 0; i < w->nfiles; i++) {
		const struct wfile *f = &w->files[i];

		if (f->blank ? addr >= f->addr && addr - f->addr < f->blank_len :
		    f->loaded && image_find(&f->f.img, addr) != NULL)
			return true;
	}
	return false;
}

static int add_spec(struct wiz *w, const char *spec, struct fw_err *e)
{
	int rc;

	if (w->nfiles >= WIZARD_MAX_FILES)
		return fw_err_set(e, FW_EINVAL, "at most %d files per job", WIZARD_MAX_FILES);
	rc = place_spec(w, &w->files[w->nfiles], spec, e);
	if (rc == FW_OK)
		rc = load_file(&w->files[w->nfiles], e);
	if (rc == FW_OK)
		w->nfiles++;
	return rc;
}

/* The SHA-256 of exactly what gets written: every range's address, length
 * and bytes, in address order. */
static void image_digest(const struct image *img, char hex[SHA256_HEX_LEN + 1])
{
	struct integrity_hash *h = integrity_hash_new(INTEGRITY_SHA256);
	uint8_t d[SHA256_LEN];

	memset(d, 0, sizeof d);
	if (h) {
		for (size_t i = 0; i < image_count(img); i++) {
			const struct image_range *r = image_range_get(img, i);
			uint8_t head[8] = {(uint8_t)(r->addr >> 24), (uint8_t)(r->addr >> 16),
					   (uint8_t)(r->addr >> 8), (uint8_t)r->addr,
					   (uint8_t)(r->len >> 24), (uint8_t)(r->len >> 16),
					   (uint8_t)(r->len >> 8), (uint8_t)r->len};
			integrity_hash_update(h, head, sizeof head);
			integrity_hash_update(h, r->data, r->len);
		}
		integrity_hash_final(h, d);
		integrity_hash_free(h);
	}
	integrity_hex(d, SHA256_LEN, hex);
}

/* Checks the set against the profile and merges it into w->all. */
static int merge_image(struct wiz *w, bool show, struct fw_err *e)
{
	struct imageset_item items[WIZARD_MAX_FILES];
	struct image blanks[WIZARD_MAX_FILES];
	struct imageset_report *r = calloc(1, sizeof *r);
	uint8_t *ff = NULL;
	size_t i, nb = 0;
	int rc = FW_OK;

	if (!r)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	image_free(&w->all);
	image_init(&w->all);
	w->have_image = false;
	for (i = 0; i < w->nfiles && rc == FW_OK; i++) {
		struct wfile *f = &w->files[i];

		if (f->blank) {
			free(ff);
			ff = malloc(f->blank_len);
			if (!ff) {
				rc = fw_err_set(e, FW_ENOMEM, "out of memory");
				break;
			}
			memset(ff, 0xFF, f->blank_len);
			image_init(&blanks[nb]);
			rc = image_from_bin(&blanks[nb], ff, f->blank_len, f->addr, e);
			items[i] = (struct imageset_item){"@blank", f->partition, &blanks[nb]};
			nb++;
		} else {
			items[i] = (struct imageset_item){f->path,
							  f->partition[0] ? f->partition : NULL,
							  &f->f.img};
		}
	}
	if (rc == FW_OK) {
		rc = imageset_check(w->p, items, w->nfiles, r, e);
		for (i = 0; show && i < r->n; i++) {
			enum imageset_level lvl = r->v[i].level;

			fact(w, lvl == IMAGESET_ERROR ? UI_FAIL : lvl == IMAGESET_WARN ? UI_WARN :
			     UI_OK, "layout", "%s", r->v[i].text);
		}
		if (show && r->total > r->n)
			fact(w, UI_INFO, "layout", "%zu more lines not shown", r->total - r->n);
	}
	for (i = 0; i < w->nfiles && rc == FW_OK; i++) {
		struct image *img = (struct image *)items[i].img;

		rc = imageset_patch(w->p, img, NULL, e);
		for (size_t k = 0; rc == FW_OK && k < image_count(img); k++) {
			const struct image_range *rg = image_range_get(img, k);
			rc = image_add(&w->all, rg->addr, rg->data, rg->len, e);
		}
	}
	for (i = 0; i < nb; i++)
		image_free(&blanks[i]);
	free(ff);
	free(r);
	w->have_image = rc == FW_OK;
	return rc;
}

/* ---- the device ---- */

static void identity_text(const struct device_identity *id, char *out, size_t n)
{
	char mac[32] = "", size[24] = "";

	if (id->has_mac)
		snprintf(mac, sizeof mac, " %02x:%02x:%02x:%02x:%02x:%02x", id->mac[0], id->mac[1],
			 id->mac[2], id->mac[3], id->mac[4], id->mac[5]);
	else if (id->has_signature)
		snprintf(mac, sizeof mac, " sig %02X %02X %02X", id->signature[0],
			 id->signature[1], id->signature[2]);
	if (id->flash_size)
		snprintf(size, sizeof size, " %u KB", id->flash_size / 1024);
	snprintf(out, n, "%s%s%s", id->chip[0] ? id->chip : "unknown", mac, size);
}

static void mac_text(const struct device_identity *id, char *out, size_t n)
{
	out[0] = '\0';
	if (id->has_mac)
		snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", id->mac[0], id->mac[1],
			 id->mac[2], id->mac[3], id->mac[4], id->mac[5]);
}

static int open_port(struct wiz *w, struct fw_err *e)
{
	unsigned baud;
	int rc;

	if (w->t)
		return FW_OK;
	if (!w->job.port[0])
		return fw_err_set(e, FW_EPORT, "no serial port chosen");
	baud = w->cfg->baud ? w->cfg->baud : w->p->rom_baud;
	rc = transport_open(w->job.port, baud, &w->t, e);
	if (rc != FW_OK)
		return rc;
	memset(&w->d, 0, sizeof w->d);
	w->d.ops = device_ops_for(w->p);
	if (!w->d.ops) {
		transport_close(w->t);
		w->t = NULL;
		return fw_err_set(e, FW_EPROFILE, "no driver for protocol %s (profile %s)",
				  profile_protocol_name(w->p->protocol), w->p->id);
	}
	w->d.t = w->t;
	w->d.p = w->p;
	w->d.progress = on_progress;
	w->d.log = on_log;
	w->d.cb_ctx = w;
	w->d.manual_entry = w->p->reset == PROFILE_RESET_MANUAL ||
			    !(transport_caps(w->t) & TRANSPORT_CAP_MODEM_LINES);
	w->have_device = true;
	snprintf(w->v_port, sizeof w->v_port, "%s", w->job.port);
	return FW_OK;
}

static void close_device(struct wiz *w)
{
	if (w->have_device && w->d.ops && w->d.ops->close)
		w->d.ops->close(&w->d);
	w->have_device = false;
	w->in_loader = false;
	transport_close(w->t);
	w->t = NULL;
}

/* Enters the loader and checks the chip is the profile's model (and, once
 * a job recorded a MAC, the same board). */
static int enter_loader(struct wiz *w, struct fw_err *e)
{
	const char *mac_rec = job_evidence_get(&w->job, STEP_BOOTLOADER, WIZ_KEY_DEVICE_MAC);
	char mac[32];
	int rc;

	if (w->in_loader)
		return FW_OK;
	rc = open_port(w, e);
	if (rc != FW_OK)
		return rc;
	if (w->t->baud != (w->cfg->baud ? w->cfg->baud : w->p->rom_baud) &&
	    (rc = transport_set_baud(w->t, w->cfg->baud ? w->cfg->baud : w->p->rom_baud, e)) != FW_OK)
		return rc;
	if (w->d.manual_entry)
		waiting(w, "the bootloader", w->p->manual_instructions[0] ?
			w->p->manual_instructions : "put the device into its bootloader", true);
	rc = w->d.ops->connect(&w->d, e);
	if (w->d.manual_entry)
		waiting(w, "the bootloader", "", false);
	if (rc != FW_OK)
		return rc;
	memset(&w->id, 0, sizeof w->id);
	rc = w->d.ops->identify(&w->d, &w->id, e);
	if (rc != FW_OK)
		return rc;
	identity_text(&w->id, w->v_device, sizeof w->v_device);
	ui_update(w);
	rc = device_match(w->p, &w->id, e);
	if (rc != FW_OK)
		return rc;
	mac_text(&w->id, mac, sizeof mac);
	if (mac_rec && *mac_rec && strcmp(mac, mac_rec) != 0)
		return fw_err_set(e, FW_EMISMATCH, "this is not the job's board: its MAC is %s, the "
				  "job was started on %s", mac[0] ? mac : "unknown", mac_rec);
	w->d.ops->caps(&w->d, &w->caps);
	w->in_loader = true;
	/* Outside the bootloader step this is a re-check: say so. */
	if (w->current != STEP_BOOTLOADER)
		fact(w, UI_OK, "identity", "matches profile %s%s%s (checked again)", w->p->id,
		     mac[0] ? ", MAC " : "", mac);
	return FW_OK;
}

/* ---- the nine steps ---- */

static int st_identify(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	const struct profile *p = w->p;
	char buf[1024], host[256] = "";
	const char *user = getenv("USER");
	struct passwd *pw;
	bool yes;
	int rc;

	fact(w, UI_INFO, "profile", "%s: %s", p->id, p->name);
	fact(w, UI_INFO, "model", "%s, revision %s, region %s", p->model[0] ? p->model : "-",
	     p->revision[0] ? p->revision : "-", p->region[0] ? p->region : "-");
	fact(w, UI_INFO, "chip", "%s, %u KB flash", p->chip, p->flash_size / 1024);
	free_files(w);
	for (size_t i = 0; i < w->cfg->nfirmware; i++)
		if ((rc = add_spec(w, w->cfg->firmware[i], e)) != FW_OK)
			return rc;
	while (w->cfg->nfirmware == 0) {
		rc = ask_text(w, w->nfiles ? "Another firmware file (empty when done)" :
			      "Firmware file to write", "FILE, FILE@ADDRESS or FILE@PARTITION",
			      buf, sizeof buf);
		if (rc != FW_OK)
			return fw_err_set(e, rc, "no firmware file named (--firmware FILE)");
		if (!buf[0] && w->nfiles)
			break;
		if (!buf[0])
			continue;
		if ((rc = add_spec(w, buf, e)) != FW_OK)
			fact(w, UI_FAIL, buf, "%s", e->msg);
	}
	/* Defaults from the profile (the 0xFF fill of the ESP8266 system
	 * parameters, init data) are offered, never slipped in. */
	for (size_t i = 0; i < p->npart; i++) {
		const struct profile_partition *pp = &p->part[i];
		char spec[320];

		if (!pp->file[0] || pp->protect || range_covered(w, pp->offset))
			continue;
		snprintf(buf, sizeof buf, "Also write the profile's default for partition %s at "
			 "0x%06X (%s)?", pp->name, pp->offset,
			 strcmp(pp->file, "@blank") == 0 ? "0xFF fill" : pp->file);
		rc = confirm(w, buf, false, &yes);
		if (rc != FW_OK || !yes)
			continue;
		if (strcmp(pp->file, "@blank") == 0)
			snprintf(spec, sizeof spec, "@blank@%s", pp->name);
		else
			snprintf(spec, sizeof spec, "%s@%s", pp->file, pp->name);
		if ((rc = add_spec(w, spec, e)) != FW_OK)
			return rc;
	}
	for (size_t i = 0; i < w->nfiles; i++) {
		const struct wfile *f = &w->files[i];
		uint64_t len = f->blank ? f->blank_len : image_total(&f->f.img);
		uint32_t lo = f->addr, hi = 0;

		if (!f->blank)
			image_bounds(&f->f.img, &lo, &hi);
		fact(w, UI_INFO, "write", "0x%06X  %-10s %s (%llu bytes)", lo,
		     f->partition[0] ? f->partition : "-", f->blank ? "0xFF fill" : f->path,
		     (unsigned long long)len);
	}
	snprintf(buf, sizeof buf, "Is the device on the bench this model: %s (model %s, "
		 "revision %s)?",
		 p->name, p->model[0] ? p->model : "-", p->revision[0] ? p->revision : "-");
	rc = confirm(w, buf, true, &yes);
	if (rc != FW_OK)
		return fw_err_set(e, rc, "the model was not confirmed");
	if (!yes)
		return fw_err_set(e, FW_ECANCELLED, "the device on the bench is not a %s: choose "
				  "its own profile", p->name);
	if (!user || !*user)
		user = (pw = getpwuid(getuid())) != NULL ? pw->pw_name : "unknown";
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown");
	ev_add(ev, WIZ_KEY_OPERATOR_USER, "%s", user);
	ev_add(ev, WIZ_KEY_OPERATOR_HOST, "%s", host);
	ev_add(ev, WIZ_KEY_PROFILE_NAME, "%s", p->name);
	ev_add(ev, WIZ_KEY_PROFILE_PATH, "%s", p->path);
	ev_add(ev, WIZ_KEY_FIRMWARE_COUNT, "%zu", w->nfiles);
	for (size_t i = 0; i < w->nfiles; i++) {
		const struct wfile *f = &w->files[i];
		char key[64], hex[SHA256_HEX_LEN + 1];

		snprintf(key, sizeof key, "firmware.%zu.path", i + 1);
		ev_add(ev, key, "%s", f->blank ? "@blank" : f->path);
		snprintf(key, sizeof key, "firmware.%zu.addr", i + 1);
		ev_add(ev, key, "0x%06X", f->addr);
		snprintf(key, sizeof key, "firmware.%zu.size", i + 1);
		ev_add(ev, key, "%llu", (unsigned long long)(f->blank ? f->blank_len : f->f.rawlen));
		if (f->partition[0]) {
			snprintf(key, sizeof key, "firmware.%zu.partition", i + 1);
			ev_add(ev, key, "%s", f->partition);
		}
		if (!f->blank) {
			integrity_hex(f->f.sha256, SHA256_LEN, hex);
			snprintf(key, sizeof key, "firmware.%zu.sha256", i + 1);
			ev_add(ev, key, "%s", hex);
		}
	}
	return FW_OK;
}

static const char *source_name(enum fwfile_hash_source s)
{
	switch (s) {
	case FWFILE_HASH_ARGUMENT: return "published SHA-256 given";
	case FWFILE_HASH_SIDECAR: return "sidecar";
	case FWFILE_HASH_MANIFEST: return "manifest";
	default: return "none";
	}
}

static int st_verify_image(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	struct strbuf sources = STRBUF_INIT;
	size_t nreal = 0, nsigned = 0;
	char hex[SHA256_HEX_LEN + 1], want[SHA256_HEX_LEN + 1], typed[256];
	int rc = FW_OK;

	for (size_t i = 0; i < w->nfiles; i++)
		nreal += !w->files[i].blank;
	if (w->cfg->sha256 && nreal > 1)
		return fw_err_set(e, FW_EINVAL, "--sha256 names one file's hash and there are %zu "
				  "files: give a sha256sum file (--sha256-file) or a manifest", nreal);
	for (size_t i = 0; i < w->nfiles && rc == FW_OK; i++) {
		struct wfile *f = &w->files[i];
		const char *arg = w->cfg->sha256;

		if (f->blank)
			continue;
		integrity_hex(f->f.sha256, SHA256_LEN, hex);
		fact(w, UI_INFO, f->path, "sha256 %s", hex);
		rc = fwfile_check_hash(&f->f, arg, w->cfg->sha256_file, w->cfg->manifest, e);
		if (rc == FW_OK && f->f.hash_source == FWFILE_HASH_NONE && !w->cfg->yes) {
			char prompt[1200];

			snprintf(prompt, sizeof prompt, "Published SHA-256 of %s (paste it; empty if "
				 "there is none)", f->path);
			if (ask_text(w, prompt, "64 hex digits", typed, sizeof typed) == FW_OK &&
			    typed[0])
				rc = fwfile_check_hash(&f->f, typed, NULL, NULL, e);
		}
		if (rc != FW_OK) {
			fact(w, UI_FAIL, "published", "%s", e->msg);
			break;
		}
		if (f->f.hash_source != FWFILE_HASH_NONE) {
			integrity_hex(f->f.expected, SHA256_LEN, want);
			fact(w, f->f.hash_ok ? UI_OK : UI_FAIL, "published", "sha256 %s (%s%s%s)",
			     want, source_name(f->f.hash_source), f->f.hash_from[0] ? " " : "",
			     f->f.hash_from);
		}
		rc = fwfile_check_signature(&f->f, w->p, w->cfg->sig, w->cfg->manifest, e);
		if (rc != FW_OK) {
			fact(w, UI_FAIL, "signature", "%s", e->msg);
			break;
		}
		if (f->f.sig_ok) {
			nsigned++;
			fact(w, UI_OK, "signature", "%s verified with the profile's key",
			     f->f.sig_path);
		}
		if (!f->f.hash_ok && !f->f.sig_ok) {
			rc = fw_err_set(e, FW_EINTEGRITY, "%s: no published SHA-256 or signature to "
					"check it against (--sha256, a %s.sha256 sidecar, a manifest): "
					"flashing an unchecked file is refused", f->path, f->path);
			fact(w, UI_FAIL, "published", "none");
			break;
		}
		strbuf_addf(&sources, "%s%s", sources.len ? ", " : "",
			    f->f.hash_ok ? source_name(f->f.hash_source) : "signature");
	}
	if (rc == FW_OK)
		rc = merge_image(w, true, e);
	if (rc == FW_OK && w->p->family == PROFILE_FAMILY_ESP8266) {
		struct dev_esp_warnings warn;
		struct fw_err le = {0};

		memset(&warn, 0, sizeof warn);
		dev_esp_erase_warnings(w->p, 0, &w->all, &warn, &le);
		for (size_t i = 0; i < warn.n; i++)
			fact(w, UI_WARN, "erase", "%s", warn.w[i].text);
	}
	if (rc == FW_OK) {
		image_digest(&w->all, hex);
		fact(w, UI_OK, "image", "%zu bytes in %zu ranges, sha256 %s", image_total(&w->all),
		     image_count(&w->all), hex);
		ev_add(ev, STEP_KEY_IMAGE_SHA256, "%s", hex);
		ev_add(ev, WIZ_KEY_IMAGE_SOURCE, "%s", sources.len ? sources.s : "none");
		ev_add(ev, WIZ_KEY_IMAGE_SIGNATURE, "%s", nsigned ? "verified" : "none");
		ev_add(ev, WIZ_KEY_IMAGE_BYTES, "%zu", image_total(&w->all));
	}
	strbuf_free(&sources);
	return rc;
}

/* Serial ports belong to group dialout on Debian; a user outside it gets
 * "permission denied" and should be told the one command that fixes it. */
static bool in_dialout(void)
{
	struct group *g = getgrnam("dialout");
	gid_t groups[256];
	int n = getgroups(256, groups);

	if (!g || getegid() == g->gr_gid)
		return true;
	for (int i = 0; i < n; i++)
		if (groups[i] == g->gr_gid)
			return true;
	return false;
}

static int choose_port(struct wiz *w, char *out, size_t n, struct fw_err *e)
{
	struct portlist l = PORTLIST_INIT;
	struct ui_item items[65];
	char detail[64][200];
	size_t k = 0, choice = 0;
	int rc;

	rc = portlist_scan(&l, e);
	if (rc != FW_OK)
		return rc;
	for (size_t i = 0; i < l.n && k < 64; i++) {
		struct strbuf b = STRBUF_INIT;

		portlist_format_entry(&l.v[i], &b);
		snprintf(detail[k], sizeof detail[k], "%s", strbuf_failed(&b) ? "" : b.s);
		strbuf_free(&b);
		items[k] = (struct ui_item){l.v[i].path, detail[k],
					    l.v[i].kind == PORTLIST_USB ? "USB" : "other"};
		k++;
	}
	items[k++] = (struct ui_item){"type a path", "a port not listed (/dev/pts/N, ...)", ""};
	rc = choose(w, "Which serial port is the device on?", items, k, &choice);
	if (rc == FW_OK && choice + 1 < k)
		snprintf(out, n, "%s", items[choice].label);
	else if (rc == FW_OK)
		rc = ask_text(w, "Serial port", "/dev/ttyUSB0", out, n);
	portlist_free(&l);
	if (rc == FW_OK && !out[0])
		rc = FW_ECANCELLED;
	if (rc != FW_OK)
		return fw_err_set(e, rc, "no serial port chosen (--port)");
	return FW_OK;
}

static const char *const conditions[] = {
	"The device has stable power (a good USB port or supply, not a weak hub)",
	"The cable carries data (not a charge-only cable) and is firmly seated",
	"No other program uses the port (serial monitors, the Arduino IDE)",
};

static int st_prepare(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	char port[JOB_PORT_MAX];
	int rc;

	close_device(w);
	if (w->cfg->port)
		snprintf(port, sizeof port, "%s", w->cfg->port);
	else if (w->job.port[0])
		snprintf(port, sizeof port, "%s", w->job.port);
	else if ((rc = choose_port(w, port, sizeof port, e)) != FW_OK)
		return rc;
	snprintf(w->job.port, sizeof w->job.port, "%s", port);
	snprintf(w->v_port, sizeof w->v_port, "%s", port);
	ui_update(w);
	fact(w, UI_INFO, "port", "%s", port);
	if (access(port, R_OK | W_OK) != 0 && errno == EACCES && !in_dialout())
		fact(w, UI_WARN, "permission", "you are not in the dialout group: run "
		     "'sudo usermod -aG dialout $USER', then log in again");
	if (w->cfg->conditions_confirmed || w->cfg->yes) {
		for (size_t i = 0; i < sizeof conditions / sizeof conditions[0]; i++)
			fact(w, UI_OK, "confirmed", "%s", conditions[i]);
	} else {
		check_signals(w);
		rc = w->detached || !w->ui->ops->checklist ? FW_ECANCELLED :
			w->ui->ops->checklist(w->ui->ctx, "Before going on, check the bench:",
					      conditions, sizeof conditions / sizeof conditions[0]);
		if (rc != FW_OK)
			return fw_err_set(e, FW_ECANCELLED, "the bench conditions were not confirmed");
	}
	rc = open_port(w, e);
	if (rc != FW_OK)
		return rc;
	fact(w, UI_OK, "port", "%s opened (%s, %u baud)", port, transport_backend_name(w->t),
	     w->t->baud);
	ev_add(ev, WIZ_KEY_PORT_DESC, "%s via %s", port, transport_backend_name(w->t));
	ev_add(ev, WIZ_KEY_CONDITIONS, "%s", w->cfg->yes ? "yes (--yes)" : "yes");
	return FW_OK;
}

static int st_bootloader(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	const struct device_identity *id = &w->id;
	char mac[32];
	int rc;

	w->in_loader = false;
	rc = enter_loader(w, e);
	if (rc != FW_OK && rc != FW_EMISMATCH)
		return rc;
	fact(w, UI_INFO, "loader", "%s", id->loader);
	fact(w, strcmp(id->chip, w->p->chip) == 0 ? UI_OK : UI_FAIL, "chip", "%s (profile: %s)",
	     id->chip[0] ? id->chip : "unknown", w->p->chip);
	if (id->has_chip_magic)
		fact(w, UI_INFO, "chip magic", "0x%08X (profile: 0x%08X)", id->chip_magic,
		     w->p->chip_magic);
	if (id->has_signature)
		fact(w, UI_INFO, "signature", "%02X %02X %02X (profile: %02X %02X %02X)",
		     id->signature[0], id->signature[1], id->signature[2], w->p->signature[0],
		     w->p->signature[1], w->p->signature[2]);
	mac_text(id, mac, sizeof mac);
	if (mac[0])
		fact(w, UI_INFO, "mac", "%s", mac);
	if (id->flash_size)
		fact(w, id->flash_size == w->p->flash_size ? UI_OK : UI_FAIL, "flash",
		     "%u KB (profile: %u KB)", id->flash_size / 1024, w->p->flash_size / 1024);
	if (rc != FW_OK) {
		fact(w, UI_FAIL, "identity", "%s", e->msg);
		return rc;
	}
	fact(w, UI_OK, "identity", "matches profile %s", w->p->id);
	if (!w->caps.can_read)
		fact(w, UI_WARN, "backup", "this loader cannot read the flash: %s", w->caps.why_not);
	ev_add(ev, STEP_KEY_IDENTITY_MATCH, "yes");
	ev_add(ev, WIZ_KEY_DEVICE_CHIP, "%s", id->chip);
	if (mac[0])
		ev_add(ev, WIZ_KEY_DEVICE_MAC, "%s", mac);
	if (id->has_signature)
		ev_add(ev, WIZ_KEY_DEVICE_SIG, "%02X %02X %02X", id->signature[0], id->signature[1],
		       id->signature[2]);
	if (id->flash_size)
		ev_add(ev, WIZ_KEY_DEVICE_FLASH, "%u KB", id->flash_size / 1024);
	ev_add(ev, WIZ_KEY_DEVICE_LOADER, "%s", id->loader);
	return FW_OK;
}

/* A file name in the job folder that does not exist yet: name, name-2, ... */
static int fresh_name(struct wiz *w, const char *base, const char *ext, char *out, size_t n,
		      struct fw_err *e)
{
	for (int i = 1; i < 100; i++) {
		struct stat st;

		if (i == 1)
			snprintf(out, n, "%s/%s%s", w->dir, base, ext);
		else
			snprintf(out, n, "%s/%s-%d%s", w->dir, base, i, ext);
		if (lstat(out, &st) != 0 && errno == ENOENT)
			return FW_OK;
	}
	return fw_err_set(e, FW_EIO, "too many %s files in %s", base, w->dir);
}

/* Stores text, reads it back and compares the hash: a backup that is not
 * on disk as hashed is no backup. */
static int store_checked(const char *path, const void *data, size_t len,
			 char hex[SHA256_HEX_LEN + 1], struct fw_err *e)
{
	uint8_t d1[SHA256_LEN], d2[SHA256_LEN];
	char *back = NULL;
	size_t blen = 0;
	int rc;

	integrity_sha256(data, len, d1);
	integrity_hex(d1, SHA256_LEN, hex);
	rc = atomic_write_file(path, data, len, 0600, e);
	if (rc == FW_OK)
		rc = atomic_read_file(path, len + 1, &back, &blen, e);
	if (rc == FW_OK) {
		integrity_sha256(back, blen, d2);
		if (blen != len || !integrity_equal(d1, d2, SHA256_LEN))
			rc = fw_err_set(e, FW_EIO, "%s does not read back as written: check the disk",
					path);
	}
	free(back);
	return rc;
}

/* A backup file under a fresh name in the job folder, read back and
 * hashed, with a sha256sum sidecar (`flashwise write backup.hex` checks it). */
static int store_backup(struct wiz *w, const char *base, const char *ext, const void *data,
			size_t len, char *path, size_t plen, char digest[SHA256_HEX_LEN + 1],
			struct fw_err *e)
{
	struct strbuf side = STRBUF_INIT;
	char sidepath[JOBSTORE_PATH_MAX + 80];
	int rc = fresh_name(w, base, ext, path, plen, e);

	if (rc == FW_OK)
		rc = store_checked(path, data, len, digest, e);
	if (rc == FW_OK) {
		strbuf_addf(&side, "%s  %s\n", digest, strrchr(path, '/') + 1);
		snprintf(sidepath, sizeof sidepath, "%s.sha256", path);
		rc = strbuf_failed(&side) ? fw_err_set(e, FW_ENOMEM, "out of memory") :
			atomic_write_file(sidepath, side.s, side.len, 0600, e);
	}
	strbuf_free(&side);
	return rc;
}

/* The whole EEPROM where the loader can read it: the application's
 * settings live there. Kept for the record; the write never touches it. */
static int backup_eeprom(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	uint32_t n = w->caps.eeprom_size;
	char path[JOBSTORE_PATH_MAX + 64], digest[SHA256_HEX_LEN + 1];
	uint8_t *data;
	int rc;

	if (!w->d.ops->read_eeprom)
		return FW_OK;
	if (n == 0) {
		fact(w, UI_INFO, "eeprom", "not backed up: %s", w->caps.eeprom_why_not);
		ev_add(ev, WIZ_KEY_EEPROM_NOTE, "not backed up: %s", w->caps.eeprom_why_not);
		return FW_OK;
	}
	if (!(data = malloc(n)))
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	rc = w->d.ops->read_eeprom(&w->d, 0, n, data, e);
	if (rc != FW_OK)
		fw_err_prefix(e, "reading the EEPROM");
	else
		rc = store_backup(w, "eeprom", ".bin", data, n, path, sizeof path, digest, e);
	free(data);
	if (rc != FW_OK)
		return rc;
	fact(w, UI_OK, "eeprom", "%s (%u bytes)", path, n);
	fact(w, UI_OK, "sha256", "%s", digest);
	ev_add(ev, WIZ_KEY_EEPROM_PATH, "%s", path);
	ev_add(ev, WIZ_KEY_EEPROM_SHA256, "%s", digest);
	ev_add(ev, WIZ_KEY_EEPROM_BYTES, "%u", n);
	return FW_OK;
}

/* Reads [lo, hi) into the backup image and names it in ranges. */
static int backup_span(struct wiz *w, struct image *bk, struct strbuf *ranges, uint32_t lo,
		       uint32_t hi, struct fw_err *e)
{
	uint32_t len = hi - lo;
	uint8_t *data = malloc(len);
	int rc;

	if (!data)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	rc = w->d.ops->read(&w->d, lo, len, data, e);
	if (rc == FW_OK)
		rc = image_add(bk, lo, data, len, e);
	else
		fw_err_prefix(e, "reading 0x%06X..0x%06X", lo, hi - 1);
	free(data);
	strbuf_addf(ranges, "%s0x%06X+0x%X", ranges->len ? " " : "", lo, len);
	return rc;
}

static int st_backup(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	struct image bk;
	struct strbuf hex = STRBUF_INIT, ranges = STRBUF_INIT;
	char path[JOBSTORE_PATH_MAX + 64], digest[SHA256_HEX_LEN + 1];
	struct imageset_span *spans = NULL;
	size_t nspans = 0;
	int rc;

	rc = enter_loader(w, e);
	if (rc != FW_OK)
		return rc;
	if (!w->caps.can_read) {
		char prompt[512];

		if (w->cfg->yes)
			return fw_err_set(e, FW_ECANCELLED, "this loader cannot read a backup (%s) and "
					  "batch mode never writes without one", w->caps.why_not);
		snprintf(prompt, sizeof prompt, "This loader cannot read the flash (%s): what is on "
			 "the device now will be lost for good. Type NO BACKUP to write without a "
			 "backup", w->caps.why_not);
		if (type_word(w, prompt, "NO BACKUP") != FW_OK)
			return fw_err_set(e, FW_ECANCELLED, "no backup and no consent to go without one");
		ev_add(ev, STEP_KEY_BACKUP_CONSENT, "NO BACKUP");
		fw_err_set(e, FW_OK, "the loader cannot read the flash; the technician typed NO "
			   "BACKUP");
		return WIZ_SKIPPED;
	}
	image_init(&bk);
	rc = imageset_backup_spans(w->p, &w->all, &spans, &nspans, e);
	for (size_t i = 0; i < nspans && rc == FW_OK; i++)
		rc = backup_span(w, &bk, &ranges, spans[i].addr, spans[i].addr + spans[i].len, e);
	free(spans);
	if (rc == FW_OK) {
		image_format_hex(&bk, &hex);
		rc = strbuf_failed(&hex) || strbuf_failed(&ranges) ?
			fw_err_set(e, FW_ENOMEM, "out of memory") :
			store_backup(w, "backup", ".hex", hex.s, hex.len, path, sizeof path, digest,
				     e);
	}
	if (rc == FW_OK) {
		fact(w, UI_OK, "backup", "%s", path);
		fact(w, UI_INFO, "ranges", "%s (%zu bytes)", ranges.s, image_total(&bk));
		fact(w, UI_OK, "sha256", "%s (read back from disk and compared)", digest);
		ev_add(ev, STEP_KEY_BACKUP_PATH, "%s", path);
		ev_add(ev, STEP_KEY_BACKUP_SHA256, "%s", digest);
		ev_add(ev, WIZ_KEY_BACKUP_RANGES, "%s", ranges.s);
		ev_add(ev, WIZ_KEY_BACKUP_BYTES, "%zu", image_total(&bk));
	}
	image_free(&bk);
	strbuf_free(&hex);
	strbuf_free(&ranges);
	return rc == FW_OK ? backup_eeprom(w, ev, e) : rc;
}

/* Writes img and proves it: the write itself, then a comparison that can
 * fail. Shared by the flash step and the restore. */
static int write_verified(struct wiz *w, const struct image *img, char *method, size_t mlen,
			  struct fw_err *e)
{
	struct device_verify_result r;
	int rc;

	rc = w->d.ops->write(&w->d, img, e);
	if (rc != FW_OK) {
		fw_err_prefix(e, "the write failed");
		return rc == FW_ECANCELLED ? FW_EUNSAFE : rc;
	}
	fact(w, UI_OK, "written", "%zu bytes", image_total(img));
	if (!w->caps.can_hash && !w->caps.can_read)
		return fw_err_set(e, FW_EUNSAFE, "written but not verified: %s", w->caps.why_not);
	memset(&r, 0, sizeof r);
	rc = w->d.ops->verify(&w->d, img, &r, e);
	for (size_t i = 0; i < r.nmismatch; i++)
		fact(w, UI_FAIL, "differs", "0x%06X..0x%06X", r.mismatch[i].addr,
		     r.mismatch[i].addr + r.mismatch[i].len - 1);
	if (rc != FW_OK) {
		fw_err_prefix(e, "written but the verification failed");
		return rc == FW_EVERIFY ? FW_EVERIFY : FW_EUNSAFE;
	}
	snprintf(method, mlen, "%s", r.method);
	fact(w, UI_OK, "verified", "%llu bytes match (%s)", (unsigned long long)r.bytes_checked,
	     r.method);
	return FW_OK;
}

/* Before the flash step starts: what will be written where, the erase
 * quirks, and the typed confirmation. Asked while the step is still
 * pending, so a "no" leaves a job whose device is provably untouched. */
static int flash_consent(struct wiz *w, struct fw_err *e)
{
	char prompt[512];
	int rc;

	rc = steps_can_flash(&w->job, e);
	if (rc != FW_OK)
		return rc;
	/* The session's own view of the erase (exact with the ESP8266 helper)
	 * when the loader is up; the ROM's worst case was shown at verify-image. */
	if (w->in_loader && w->d.ops == &dev_esp_ops) {
		struct dev_esp_warnings warn;
		struct fw_err le = {0};

		memset(&warn, 0, sizeof warn);
		dev_esp_device_erase_warnings(&w->d, &w->all, &warn, &le);
		for (size_t i = 0; i < warn.n; i++)
			fact(w, UI_WARN, "erase", "%s", warn.w[i].text);
	}
	for (size_t i = 0; i < image_count(&w->all); i++) {
		const struct image_range *rg = image_range_get(&w->all, i);
		fact(w, UI_INFO, "write", "0x%06X..0x%06X (%zu bytes)", rg->addr,
		     rg->addr + (uint32_t)rg->len - 1, rg->len);
	}
	snprintf(prompt, sizeof prompt, "Type WRITE to write %zu bytes to the %s on %s",
		 image_total(&w->all), w->p->chip, w->job.port);
	if (type_word(w, prompt, "WRITE") != FW_OK)
		return fw_err_set(e, FW_ECANCELLED, "the write was not confirmed: nothing was written");
	return FW_OK;
}

static int load_backup(struct wiz *w, struct image *bk, struct fw_err *e);

/* STK500v1 has no checksum: a damaged LOAD_ADDRESS puts a page somewhere
 * else, and the verify of the image then finds the page that was missed
 * but not the one that was hit. Where the backup holds the whole
 * application flash, every byte the image does not cover must still hold
 * what the backup read. Run after a comparison failed, and on every
 * attempt after the first (the page hit may be from the one before).
 * FW_EVERIFY when something changed; another error when the comparison
 * could not be made. */
static int check_outside(struct wiz *w, struct fw_err *e)
{
	struct device_verify_result r;
	struct image bk;
	int rc;

	if (!imageset_backup_is_whole(w->p) ||
	    !job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH))
		return FW_OK;
	rc = load_backup(w, &bk, e);
	if (rc != FW_OK)
		return rc;
	rc = device_verify_outside(&w->d, &bk, &w->all, &r, e);
	image_free(&bk);
	if (rc == FW_OK) {
		if (r.bytes_checked)
			fact(w, UI_OK, "outside the image", "%llu bytes still hold the backup's "
			     "contents", (unsigned long long)r.bytes_checked);
		return FW_OK;
	}
	if (rc == FW_EVERIFY && r.nmismatch) {
		for (size_t i = 0; i < r.nmismatch; i++)
			fact(w, UI_FAIL, "changed", "0x%06X..0x%06X, outside the image",
			     r.mismatch[i].addr, r.mismatch[i].addr + r.mismatch[i].len - 1);
		return fw_err_set(e, FW_EVERIFY, "flash outside the image changed during the "
				  "write (0x%06X..0x%06X%s): a damaged address on the line put a "
				  "page there; restore the backup, which holds what it held",
				  r.mismatch[0].addr, r.mismatch[0].addr + r.mismatch[0].len - 1,
				  r.nmismatch > 1 ? " and more" : "");
	}
	fw_err_prefix(e, "comparing the flash outside the image with the backup");
	/* differs, but the driver did not say where: not provably a change */
	return rc == FW_EVERIFY ? FW_EUNSAFE : rc;
}

static int st_flash(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	char method[64];
	int rc;

	rc = enter_loader(w, e);
	if (rc != FW_OK)
		return rc;
	rc = write_verified(w, &w->all, method, sizeof method, e);
	if (rc == FW_EVERIFY ||
	    (rc == FW_OK && job_step_cget(&w->job, STEP_FLASH)->attempts > 1)) {
		struct fw_err oe = {0};
		int orc = check_outside(w, &oe);

		/* What changed outside the image is the worse news; a check
		 * that could not be made leaves a good write unproven. */
		if (orc == FW_EVERIFY || (orc != FW_OK && rc == FW_OK)) {
			fw_err_copy(e, &oe);
			return FW_EUNSAFE;
		}
	}
	if (rc != FW_OK)
		return rc;
	ev_add(ev, WIZ_KEY_FLASH_BYTES, "%zu", image_total(&w->all));
	ev_add(ev, WIZ_KEY_FLASH_VERIFY, "%s: match", method);
	return FW_OK;
}

/* Printable text of one boot line (the boot log keeps the raw bytes). */
static void clean_line(const char *in, size_t n, char *out, size_t outlen)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];
		out[k++] = c >= 0x20 && c < 0x7F ? (char)c : c == '\t' ? ' ' : '.';
	}
	out[k] = '\0';
}

/* The boot output, line by line, against the profile's healthy-boot line
 * and its failure lines. */
struct boot_watch {
	bool have_re, have_fail, seen, failed;
	regex_t re, fail;
	char matched[512], bad[512];
};

static void boot_check(struct wiz *w, struct boot_watch *bw, const char *raw, size_t n)
{
	char line[512];

	clean_line(raw, n, line, sizeof line);
	if (!w->detached && w->ui->ops->boot_line)
		w->ui->ops->boot_line(w->ui->ctx, line);
	if (bw->have_fail && !bw->failed && regexec(&bw->fail, line, 0, NULL, 0) == 0) {
		bw->failed = true;
		snprintf(bw->bad, sizeof bw->bad, "%s", line);
	}
	if (bw->have_re && !bw->seen && regexec(&bw->re, line, 0, NULL, 0) == 0) {
		bw->seen = true;
		snprintf(bw->matched, sizeof bw->matched, "%s", line);
	}
}

static int st_reboot(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	struct strbuf log = STRBUF_INIT;
	char path[JOBSTORE_PATH_MAX + 64], digest[SHA256_HEX_LEN + 1];
	unsigned timeout = w->p->boot_timeout_ms ? w->p->boot_timeout_ms : 3000;
	struct boot_watch bw;
	bool manual = false;
	size_t start = 0;
	uint64_t deadline;
	int rc;

	memset(&bw, 0, sizeof bw);
	rc = enter_loader(w, e);
	if (rc != FW_OK)
		return rc;
	if (w->p->boot_banner[0]) {
		if (regcomp(&bw.re, w->p->boot_banner, REG_EXTENDED | REG_NOSUB) != 0)
			return fw_err_set(e, FW_EPROFILE, "%s:[boot] banner is not a valid regular "
					  "expression", w->p->path);
		bw.have_re = true;
	}
	if (w->p->boot_fail[0]) {
		if (regcomp(&bw.fail, w->p->boot_fail, REG_EXTENDED | REG_NOSUB) != 0) {
			if (bw.have_re)
				regfree(&bw.re);
			return fw_err_set(e, FW_EPROFILE, "%s:[boot] fail is not a valid regular "
					  "expression", w->p->path);
		}
		bw.have_fail = true;
	}
	rc = w->d.ops->leave(&w->d, true, e);
	w->in_loader = false;
	if (rc == FW_EUNSUPPORTED) {
		/* No reset line: the technician restarts the board. */
		manual = true;
		waiting(w, "the device to restart", "press RST (or power-cycle the board)", true);
		timeout += 30000;
		rc = FW_OK;
	}
	if (rc == FW_OK && w->p->boot_baud && w->t->baud != w->p->boot_baud)
		rc = transport_set_baud(w->t, w->p->boot_baud, e);
	deadline = transport_deadline_ms(timeout);
	while (rc == FW_OK && !bw.failed && transport_now_ns() < deadline) {
		char buf[256];
		size_t got = 0;
		struct fw_err le = {0};

		/* After the healthy-boot line, the rest of what the firmware
		 * prints belongs in the boot log (and may still show a failure):
		 * read on until it is quiet. */
		if (transport_read_some(w->t, buf, sizeof buf, &got,
					bw.seen ? transport_deadline_ms(BOOT_QUIET_MS) : deadline,
					&le) != FW_OK)
			break;
		strbuf_add(&log, buf, got);
		for (size_t i = start; i < log.len && !strbuf_failed(&log); i++) {
			if (log.s[i] != '\n' && log.s[i] != '\r')
				continue;
			if (i > start)
				boot_check(w, &bw, log.s + start, i - start);
			start = i + 1;
		}
		if (manual && log.len)
			waiting(w, "the device to restart", "", false), manual = false;
	}
	if (manual)
		waiting(w, "the device to restart", "", false);
	if (start < log.len && !strbuf_failed(&log))
		boot_check(w, &bw, log.s + start, log.len - start);
	if (bw.have_re)
		regfree(&bw.re);
	if (bw.have_fail)
		regfree(&bw.fail);
	/* Back to the loader's rate for a later restore. */
	if (w->t->baud != (w->cfg->baud ? w->cfg->baud : w->p->rom_baud)) {
		struct fw_err le = {0};
		transport_set_baud(w->t, w->cfg->baud ? w->cfg->baud : w->p->rom_baud, &le);
	}
	if (rc == FW_OK && !strbuf_failed(&log) &&
	    (rc = fresh_name(w, "boot", ".log", path, sizeof path, e)) == FW_OK)
		rc = store_checked(path, log.len ? log.s : "", log.len, digest, e);
	if (rc == FW_OK) {
		ev_add(ev, WIZ_KEY_BOOT_LOG, "%s", path);
		if (bw.failed) {
			fact(w, UI_FAIL, "boot", "%s", bw.bad);
			rc = fw_err_set(e, FW_EVERIFY, "the device printed \"%s\" while starting: the "
					"firmware does not boot (output kept in %s)", bw.bad, path);
		} else if (!bw.have_re) {
			fact(w, UI_WARN, "boot", "the profile names no healthy-boot line to check");
			ev_add(ev, WIZ_KEY_BOOT_BANNER, "not configured");
		} else if (bw.seen) {
			fact(w, UI_OK, "boot", "healthy boot seen: %s", bw.matched);
			ev_add(ev, WIZ_KEY_BOOT_BANNER, "seen");
			ev_add(ev, WIZ_KEY_BOOT_LINE, "%s", bw.matched);
		} else {
			rc = fw_err_set(e, FW_ETIMEOUT, "the device did not print its healthy-boot line "
					"(/%s/) within %u s after the restart (%zu bytes of output, "
					"kept in %s)", w->p->boot_banner, (timeout + 999) / 1000,
					log.len, path);
		}
	}
	strbuf_free(&log);
	return rc;
}

/* The ranges the running firmware leaves alone: code, not the data areas
 * an application may rewrite at its first start (ESP8266 RF calibration
 * and system parameters, NVS, file systems). */
static bool code_range(const struct profile *p, uint32_t addr)
{
	const struct profile_partition *pp = profile_partition_at(p, addr);

	return !pp || pp->role == PART_ROLE_APP || pp->role == PART_ROLE_BOOTLOADER ||
	       pp->role == PART_ROLE_PARTITION_TABLE;
}

static int st_verify(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	const char *fv = job_evidence_get(&w->job, STEP_FLASH, WIZ_KEY_FLASH_VERIFY);
	const char *banner = job_evidence_get(&w->job, STEP_REBOOT, WIZ_KEY_BOOT_BANNER);
	struct image code;
	char method[64];
	size_t fvlen = fv ? strlen(fv) : 0;
	int rc = FW_OK;

	if (!fv || fvlen < 7 || strcmp(fv + fvlen - 7, ": match") != 0)
		return fw_err_set(e, FW_EVERIFY, "the flash step recorded no matching comparison");
	fact(w, UI_OK, "after the write", "%s", fv);
	if (!banner || (strcmp(banner, "seen") != 0 && strcmp(banner, "not configured") != 0))
		return fw_err_set(e, FW_EVERIFY, "the reboot step recorded no healthy boot");
	fact(w, strcmp(banner, "seen") == 0 ? UI_OK : UI_WARN, "boot banner", "%s", banner);
	/* Where the loader can be re-entered without hands, compare the code
	 * again now that the firmware has run once. */
	w->d.ops->caps(&w->d, &w->caps);
	if (!w->have_device || !w->caps.can_reset || w->d.manual_entry) {
		fact(w, UI_INFO, "after the reboot", "not compared again: entering the loader needs "
		     "the technician's hands");
		ev_add(ev, STEP_KEY_VERIFY_METHOD, "%.*s right after the write; boot banner %s",
		       (int)(fvlen - 7), fv, banner);
		ev_add(ev, STEP_KEY_VERIFY_RESULT, "match");
		return FW_OK;
	}
	image_init(&code);
	for (size_t i = 0; i < image_count(&w->all) && rc == FW_OK; i++) {
		const struct image_range *rg = image_range_get(&w->all, i);
		if (code_range(w->p, rg->addr))
			rc = image_add(&code, rg->addr, rg->data, rg->len, e);
	}
	if (rc == FW_OK && image_count(&code) > 0) {
		struct device_verify_result r;

		rc = enter_loader(w, e);
		memset(&r, 0, sizeof r);
		if (rc == FW_OK)
			rc = w->d.ops->verify(&w->d, &code, &r, e);
		for (size_t i = 0; i < r.nmismatch; i++)
			fact(w, UI_FAIL, "differs", "0x%06X..0x%06X", r.mismatch[i].addr,
			     r.mismatch[i].addr + r.mismatch[i].len - 1);
		if (rc == FW_OK) {
			snprintf(method, sizeof method, "%s", r.method);
			fact(w, UI_OK, "after the reboot", "%llu bytes of code match (%s)",
			     (unsigned long long)r.bytes_checked, r.method);
			/* Start the application again. */
			if (w->d.ops->leave(&w->d, true, e) == FW_OK)
				w->in_loader = false;
			else
				fact(w, UI_WARN, "restart", "%s", e->msg);
			fw_err_clear(e);
			ev_add(ev, STEP_KEY_VERIFY_METHOD, "%s right after the write; %s of the code "
			       "after the reboot; boot banner %s", fv, method, banner);
			ev_add(ev, STEP_KEY_VERIFY_RESULT, "match");
		}
	} else if (rc == FW_OK) {
		ev_add(ev, STEP_KEY_VERIFY_METHOD, "%.*s right after the write; boot banner %s",
		       (int)(fvlen - 7), fv, banner);
		ev_add(ev, STEP_KEY_VERIFY_RESULT, "match");
	}
	image_free(&code);
	return rc;
}

static int st_document(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	int rc = jobstore_write_reports(w->dir, &w->job, e);

	if (rc != FW_OK)
		return rc;
	fact(w, UI_OK, "report", "%s/%s", w->dir, JOBSTORE_REPORT_MD);
	fact(w, UI_OK, "report", "%s/%s", w->dir, JOBSTORE_REPORT_JSON);
	fact(w, UI_INFO, "journal", "%s/%s", w->dir, JOBSTORE_JOURNAL);
	ev_add(ev, WIZ_KEY_REPORT_MD, "%s/%s", w->dir, JOBSTORE_REPORT_MD);
	ev_add(ev, WIZ_KEY_REPORT_JSON, "%s/%s", w->dir, JOBSTORE_REPORT_JSON);
	return FW_OK;
}

/* The job's backup, after its SHA-256 was compared with the journal's
 * (bk is initialised first; left empty on failure). */
static int load_backup(struct wiz *w, struct image *bk, struct fw_err *e)
{
	const char *path = job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH);
	const char *want = job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_SHA256);
	char *text = NULL, hex[SHA256_HEX_LEN + 1];
	uint8_t d[SHA256_LEN];
	size_t len = 0;
	int rc;

	image_init(bk);
	if (!path || !want)
		return fw_err_set(e, FW_EGUARD, "the job recorded no backup");
	rc = atomic_read_file(path, FWFILE_MAX_BYTES * 3u, &text, &len, e);
	if (rc != FW_OK)
		return rc;
	integrity_sha256(text, len, d);
	integrity_hex(d, SHA256_LEN, hex);
	if (strcasecmp(hex, want) != 0) {
		free(text);
		return fw_err_set(e, FW_EINTEGRITY, "the backup %s changed since it was stored "
				  "(sha256 %s, recorded %s): refusing to use it", path, hex, want);
	}
	fact(w, UI_OK, "backup", "%s (sha256 matches the journal)", path);
	rc = image_parse_hex(bk, text, len, e);
	free(text);
	if (rc != FW_OK)
		image_free(bk);
	return rc;
}

/* Writes the job's backup back and compares it. */
static int st_restore(struct wiz *w, struct evset *ev, struct fw_err *e)
{
	char method[64];
	struct image bk;
	int rc;

	if (!job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH))
		return fw_err_set(e, FW_EGUARD, "the job has no backup to restore");
	rc = load_backup(w, &bk, e);
	if (rc == FW_OK)
		rc = enter_loader(w, e);
	if (rc == FW_OK)
		rc = write_verified(w, &bk, method, sizeof method, e);
	image_free(&bk);
	if (rc != FW_OK)
		return rc;
	ev_add(ev, STEP_KEY_RESTORE_METHOD, "%s", method);
	ev_add(ev, STEP_KEY_RESTORE_RESULT, "match");
	if (w->d.ops->leave(&w->d, true, e) == FW_OK)
		w->in_loader = false;
	fw_err_clear(e);
	return FW_OK;
}

typedef int (*step_fn)(struct wiz *w, struct evset *ev, struct fw_err *e);

static const step_fn step_fns[STEP_COUNT + 1] = {
	[STEP_IDENTIFY] = st_identify,
	[STEP_VERIFY_IMAGE] = st_verify_image,
	[STEP_PREPARE] = st_prepare,
	[STEP_BOOTLOADER] = st_bootloader,
	[STEP_BACKUP] = st_backup,
	[STEP_FLASH] = st_flash,
	[STEP_REBOOT] = st_reboot,
	[STEP_VERIFY] = st_verify,
	[STEP_DOCUMENT] = st_document,
	[STEP_COUNT] = st_restore,
};

/* ---- the loop ---- */

static int apply(struct wiz *w, enum step_event ev, int step, const char *reason,
		 const struct evset *evs, struct fw_err *e)
{
	struct step_input in = {
		.event = ev, .step = step, .reason = reason,
		.evidence = evs ? evs->kv : NULL, .nevidence = evs ? evs->n : 0,
		.now = now_s(),
	};
	int rc = jobstore_apply(w->dir, &w->job, &in, e);

	ui_update(w);
	return rc;
}

static void write_reports(struct wiz *w)
{
	struct fw_err le = {0};

	if (jobstore_write_reports(w->dir, &w->job, &le) != FW_OK)
		fact(w, UI_WARN, "report", "%s", le.msg);
}

/* Runs the current step (already running: started or retried). */
static int run_step(struct wiz *w, int step, bool began, struct fw_err *e)
{
	const struct step_info *si = steps_info(step);
	struct evset ev;
	struct ui_view v;
	struct fw_err se = {0}, ae = {0};
	int rc, arc;

	memset(&ev, 0, sizeof ev);
	w->current = step;
	view(w, &v);
	check_signals(w);
	if (!began && !w->detached && w->ui->ops->step_begin)
		w->ui->ops->step_begin(w->ui->ctx, &v, step);
	/* Only a step that does not write may be cut short. */
	if (w->t)
		transport_set_cancel(w->t, si->writes ? NULL : cancel_cb, w);
	rc = step_fns[step](w, &ev, &se);
	if (w->t)
		transport_set_cancel(w->t, NULL, NULL);
	if (ev.failed && rc == FW_OK)
		rc = fw_err_set(&se, FW_ENOMEM, "out of memory recording the evidence");
	if (rc == FW_OK)
		arc = apply(w, STEP_EV_DONE, step, NULL, &ev, &ae);
	else if (rc == WIZ_SKIPPED)
		arc = apply(w, STEP_EV_SKIP, step, se.msg, &ev, &ae);
	else {
		if (rc == FW_ECANCELLED && stop_asked(w) && !strstr(se.msg, "stopped on request")) {
			char why[FW_ERR_MSG_MAX];

			snprintf(why, sizeof why, "%s", se.msg);
			fw_err_set(&se, FW_ECANCELLED, "stopped on request: %s", why);
		}
		arc = apply(w, STEP_EV_FAIL, step, se.msg[0] ? se.msg : fw_rc_name(rc), &ev, &ae);
	}
	ev_free(&ev);
	view(w, &v);
	if (arc != FW_OK) {
		/* The machine refused (a guard) or the journal cannot be written:
		 * stop before the device is touched again. */
		fw_err_copy(e, &ae);
		return arc;
	}
	check_signals(w);
	if (!w->detached && w->ui->ops->step_end)
		w->ui->ops->step_end(w->ui->ctx, &v, step, job_step_cget(&w->job, step)->state,
				     rc == FW_OK ? "done" : se.msg);
	if (rc != FW_OK && rc != WIZ_SKIPPED) {
		w->last_rc = rc;
		snprintf(w->last_msg, sizeof w->last_msg, "%s", se.msg);
	} else {
		/* A retry that worked: the earlier error no longer ends the run. */
		w->last_rc = 0;
		w->last_msg[0] = '\0';
	}
	return FW_OK;
}

static const char *meaning(struct wiz *w)
{
	switch (steps_device(&w->job)) {
	case STEP_DEVICE_UNTOUCHED: return "nothing was written: the device is as it was";
	case STEP_DEVICE_OK: return "the firmware was written and verified";
	case STEP_DEVICE_RESTORED: return "the backup was written back and verified";
	default: break;
	}
	return "a write started and was not proven: the device may not start until it is "
	       "written again or its backup is restored";
}

static const char *choice_label(const struct step_choice *c, char *buf, size_t n)
{
	const struct step_info *si = steps_info(c->step);

	switch (c->event) {
	case STEP_EV_RETRY: snprintf(buf, n, "Retry: %s", si->title); break;
	case STEP_EV_RESTORE: snprintf(buf, n, "Restore the backup to the device"); break;
	case STEP_EV_ABORT: snprintf(buf, n, "Abort the job%s", c->unsafe ?
				     " (leaves the device unsafe)" : ""); break;
	case STEP_EV_SKIP: snprintf(buf, n, "Skip: %s", si->title); break;
	default: snprintf(buf, n, "%s: %s", steps_event_name(c->event), si->title); break;
	}
	return buf;
}

/* A failed step: the technician chooses, safe first. FW_ECANCELLED when
 * there is nobody to ask (batch, detached): the run stops there. */
static int handle_failure(struct wiz *w, int step, bool auto_retry, struct fw_err *e)
{
	struct step_choice ch[STEP_CHOICES_MAX];
	char labels[STEP_CHOICES_MAX][128];
	const char *lp[STEP_CHOICES_MAX];
	const struct job_step *js = job_step_cget(&w->job, step);
	struct ui_failure f;
	struct ui_view v;
	size_t n = steps_choices(&w->job, ch), pick = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		lp[i] = choice_label(&ch[i], labels[i], sizeof labels[i]);
	if (auto_retry) {
		fact(w, UI_WARN, "resume", "step %s stopped before: %s; running it again",
		     steps_info(step)->name, js->reason ? js->reason : "failed");
		for (pick = 0; pick < n && ch[pick].event != STEP_EV_RETRY; pick++)
			;
		rc = pick < n ? FW_OK : FW_ECANCELLED;
	} else {
		f = (struct ui_failure){step, js->reason ? js->reason : "failed", meaning(w), lp, n};
		if (w->current != step) {
			/* A failure found in the journal (resume): show its step. */
			w->current = step;
			view(w, &v);
			check_signals(w);
			if (!w->detached && w->ui->ops->step_begin)
				w->ui->ops->step_begin(w->ui->ctx, &v, step);
		}
		view(w, &v);
		check_signals(w);
		rc = w->detached || !w->ui->ops->failure || w->cfg->yes ? FW_ECANCELLED :
			w->ui->ops->failure(w->ui->ctx, &v, &f, &pick);
	}
	if (rc != FW_OK || pick >= n)
		return fw_err_set(e, FW_ECANCELLED, "step %s failed: %s", steps_info(step)->name,
				  js->reason ? js->reason : "");
	switch (ch[pick].event) {
	case STEP_EV_RETRY:
		rc = apply(w, STEP_EV_RETRY, step, NULL, NULL, e);
		return rc == FW_OK ? run_step(w, step, false, e) : rc;
	case STEP_EV_RESTORE:
		rc = apply(w, STEP_EV_RESTORE, step, NULL, NULL, e);
		return rc == FW_OK ? run_step(w, STEP_RESTORE, false, e) : rc;
	case STEP_EV_ABORT:
		return apply(w, STEP_EV_ABORT, step, "aborted by the technician", NULL, e);
	default:
		return fw_err_set(e, FW_ESTATE, "unexpected choice %s",
				  steps_event_name(ch[pick].event));
	}
}

/* After a step: should the run stop here? Device writes always finish
 * first; a Ctrl-C at the screen is asked about, default carry on. */
static bool should_stop(struct wiz *w)
{
	bool yes = false;

	if (!stop_asked(w))
		return false;
	if (sig_stop == SIGTERM || w->detached || w->cfg->yes)
		return true;
	sig_stop = 0;
	if (confirm(w, "You asked to stop. The job can be resumed later (flashwise resume). "
		    "Stop here?", false, &yes) == FW_OK && yes)
		return true;
	w->stop_by_ui = false;
	return false;
}

static int loop(struct wiz *w, bool resuming, struct fw_err *e)
{
	bool first = true;
	int rc;

	for (;;) {
		int step = job_resume_step(&w->job);
		const struct job_step *js;

		if (step == STEP_NONE)
			return FW_OK;
		js = job_step_cget(&w->job, step);
		if (should_stop(w)) {
			w->stop = true;
			return FW_OK;
		}
		if (js->state == STEP_RUNNING) {
			/* Found running in the journal: the last run ended inside it. */
			rc = apply(w, STEP_EV_FAIL, step, "interrupted: the previous run of flashwise "
				   "ended during this step", NULL, e);
			if (rc != FW_OK)
				return rc;
			continue;
		}
		if (js->state == STEP_FAILED) {
			/* Resuming means carrying on: the step that was stopped is run
			 * again without a question (the device is re-identified first). */
			rc = handle_failure(w, step, resuming && first && w->cfg->yes, e);
			first = false;
			if (rc == FW_ECANCELLED)
				return rc;
			if (rc != FW_OK)
				return rc;
			continue;
		}
		first = false;
		if (step == STEP_FLASH) {
			struct ui_view v;
			struct fw_err ce = {0};

			w->current = step;
			view(w, &v);
			check_signals(w);
			if (!w->detached && w->ui->ops->step_begin)
				w->ui->ops->step_begin(w->ui->ctx, &v, step);
			rc = flash_consent(w, &ce);
			if (rc != FW_OK && rc != FW_ECANCELLED) {
				fw_err_copy(e, &ce);
				return rc;
			}
			if (rc != FW_OK) {
				/* Nothing was written: the job ends here, the device
				 * untouched, and the journal says why. */
				w->last_rc = rc;
				snprintf(w->last_msg, sizeof w->last_msg, "%s", ce.msg);
				fact(w, UI_FAIL, "flash", "%s", ce.msg);
				return apply(w, STEP_EV_ABORT, step, ce.msg, NULL, e);
			}
		}
		rc = apply(w, STEP_EV_START, step, NULL, NULL, e);
		if (rc != FW_OK)
			return rc;
		rc = run_step(w, step, step == STEP_FLASH, e);
		if (rc != FW_OK)
			return rc;
	}
}

static int make_job(struct wiz *w, struct fw_err *e)
{
	char id[JOB_ID_MAX], stamp[32], pid[48];
	time_t t = time(NULL);
	struct tm tm;
	size_t k = 0;
	int rc = FW_EIO;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
	for (const char *s = w->p->id; *s && k + 1 < 32; s++)
		pid[k++] = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
			   (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' ? *s : '_';
	pid[k] = '\0';
	for (int i = 1; i < 100 && rc == FW_EIO; i++) {
		if (i == 1)
			snprintf(id, sizeof id, "%s-%s", stamp, pid);
		else
			snprintf(id, sizeof id, "%s-%s-%d", stamp, pid, i);
		job_free(&w->job);
		rc = job_start(&w->job, id, w->cfg->profile ? w->cfg->profile : w->p->path,
			       w->cfg->port ? w->cfg->port : "", (int64_t)t, e);
		if (rc != FW_OK)
			return rc;
		rc = jobstore_create(w->root, &w->job, w->dir, sizeof w->dir, e);
	}
	if (rc == FW_OK)
		w->have_job = true;
	return rc;
}

/* A job from its journal: profile, firmware and image as recorded, each
 * checked against what the journal says it was. */
static int load_job(struct wiz *w, struct fw_err *e)
{
	const char *cnt, *want;
	char hex[SHA256_HEX_LEN + 1];
	unsigned long n;
	int rc;

	rc = jobstore_find(w->root, w->cfg->job_id, w->dir, sizeof w->dir, e);
	/* No such job folder (or a link where one should be): a journal
	 * problem for the exit code, not a failed device step. */
	if (rc == FW_EIO) {
		e->code = FW_EJOURNAL;
		return FW_EJOURNAL;
	}
	if (rc == FW_OK)
		rc = jobstore_load(w->dir, &w->job, e);
	if (rc != FW_OK)
		return rc;
	w->have_job = true;
	rc = load_profile(w, w->job.profile, e);
	if (rc != FW_OK)
		return rc;
	if (w->job.port[0])
		snprintf(w->v_port, sizeof w->v_port, "%s", w->job.port);
	if (w->cfg->port)
		snprintf(w->job.port, sizeof w->job.port, "%s", w->cfg->port);
	if (w->job.step[STEP_IDENTIFY].state != STEP_DONE)
		return FW_OK;
	cnt = job_evidence_get(&w->job, STEP_IDENTIFY, WIZ_KEY_FIRMWARE_COUNT);
	n = cnt ? strtoul(cnt, NULL, 10) : 0;
	for (unsigned long i = 1; i <= n && i <= WIZARD_MAX_FILES; i++) {
		char key[64], spec[1100];
		const char *path, *addr, *part, *sha;

		snprintf(key, sizeof key, "firmware.%lu.path", i);
		path = job_evidence_get(&w->job, STEP_IDENTIFY, key);
		snprintf(key, sizeof key, "firmware.%lu.addr", i);
		addr = job_evidence_get(&w->job, STEP_IDENTIFY, key);
		snprintf(key, sizeof key, "firmware.%lu.partition", i);
		part = job_evidence_get(&w->job, STEP_IDENTIFY, key);
		snprintf(key, sizeof key, "firmware.%lu.sha256", i);
		sha = job_evidence_get(&w->job, STEP_IDENTIFY, key);
		if (!path || !addr)
			return fw_err_set(e, FW_EJOURNAL, "%s: firmware %lu is not recorded", w->dir, i);
		snprintf(spec, sizeof spec, "%s@%s", path, part ? part : addr);
		rc = add_spec(w, spec, e);
		if (rc != FW_OK)
			return rc;
		if (sha) {
			integrity_hex(w->files[w->nfiles - 1].f.sha256, SHA256_LEN, hex);
			if (strcasecmp(hex, sha) != 0)
				return fw_err_set(e, FW_EINTEGRITY, "%s changed since the job started "
						  "(sha256 %s, recorded %s): start a new job", path,
						  hex, sha);
		}
	}
	want = job_evidence_get(&w->job, STEP_VERIFY_IMAGE, STEP_KEY_IMAGE_SHA256);
	if (w->job.step[STEP_VERIFY_IMAGE].state != STEP_DONE || !want)
		return FW_OK;
	rc = merge_image(w, false, e);
	if (rc != FW_OK)
		return rc;
	image_digest(&w->all, hex);
	if (strcasecmp(hex, want) != 0)
		return fw_err_set(e, FW_EINTEGRITY, "the image to write is not the one checked when "
				  "the job started (sha256 %s, recorded %s)", hex, want);
	return FW_OK;
}

static int result_code(struct wiz *w, int rc)
{
	enum step_device dev = steps_device(&w->job);

	/* Refused before anything ran (a job that has ended, ...). */
	if (rc == FW_EINVAL)
		return FW_EXIT_USAGE;

	if (w->job.outcome == JOB_COMPLETE)
		return FW_EXIT_OK;
	if (w->job.outcome == JOB_RESTORED)
		return FW_EXIT_FAILED;
	/* Stopped on request at a safe point: resumable, whatever the device
	 * holds (the verdict and the journal say that). */
	if (w->stop || (rc == FW_ECANCELLED && (sig_hup || sig_stop)))
		return FW_EXIT_INTERRUPTED;
	if (steps_device_unsafe(dev))
		return FW_EXIT_UNSAFE;
	if (w->job.outcome == JOB_ABORTED && w->last_rc == 0)
		return FW_EXIT_DECLINED;
	if (w->last_rc)
		return exitcode_from_rc(w->last_rc);
	return rc == FW_OK ? FW_EXIT_FAILED : exitcode_from_rc(rc);
}

static void finish(struct wiz *w, struct wizard_result *res, int rc, const struct fw_err *e)
{
	char verdict[512], l0[1200], l1[1200], l2[1200], l3[700], l4[1200];
	const char *lines[5];
	const char *bp = job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH);
	const char *ep = job_evidence_get(&w->job, STEP_BACKUP, WIZ_KEY_EEPROM_PATH);
	size_t n = 0;
	struct ui_view v;

	report_verdict(&w->job, verdict, sizeof verdict);
	snprintf(l0, sizeof l0, "report:  %s/%s", w->dir, JOBSTORE_REPORT_MD);
	snprintf(l1, sizeof l1, "journal: %s/%s", w->dir, JOBSTORE_JOURNAL);
	lines[n++] = l0;
	lines[n++] = l1;
	if (bp) {
		snprintf(l2, sizeof l2, "backup:  %s", bp);
		lines[n++] = l2;
	}
	if (ep) {
		snprintf(l4, sizeof l4, "eeprom:  %s", ep);
		lines[n++] = l4;
	}
	if (w->last_msg[0] && w->job.outcome != JOB_COMPLETE) {
		snprintf(l3, sizeof l3, "last error: %s", w->last_msg);
		lines[n++] = l3;
	} else if (rc != FW_OK && e->msg[0]) {
		snprintf(l3, sizeof l3, "stopped: %s", e->msg);
		lines[n++] = l3;
	}
	res->success = w->job.outcome == JOB_COMPLETE;
	snprintf(res->verdict, sizeof res->verdict, "%s", verdict);
	w->current = STEP_NONE;
	view(w, &v);
	check_signals(w);
	if (!w->detached && w->ui->ops->finish)
		w->ui->ops->finish(w->ui->ctx, &v, res->success, verdict, lines, n);
}

int wizard_run(const struct wizard_config *cfg, struct ui *ui, struct wizard_result *res,
	       struct fw_err *e)
{
	struct wiz *w = calloc(1, sizeof *w);
	char chosen[1100];
	int rc;

	memset(res, 0, sizeof *res);
	res->exit_code = FW_EXIT_INTERNAL;
	if (!w || !(w->p = calloc(1, sizeof *w->p))) {
		free(w);
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	}
	w->cfg = cfg;
	w->ui = ui;
	w->current = STEP_IDENTIFY;
	job_init(&w->job);
	image_init(&w->all);
	if (cfg->state_dir)
		snprintf(w->root, sizeof w->root, "%s", cfg->state_dir);
	rc = cfg->state_dir ? FW_OK : jobstore_default_root(w->root, sizeof w->root, e);
	if (rc == FW_OK && cfg->mode == WIZARD_NEW) {
		ui_update(w);
		if (!cfg->profile) {
			rc = choose_profile(w, chosen, sizeof chosen, e);
			if (rc == FW_OK)
				rc = load_profile(w, chosen, e);
		} else {
			rc = load_profile(w, cfg->profile, e);
		}
		if (rc == FW_OK)
			rc = make_job(w, e);
		if (rc == FW_OK && cfg->port)
			snprintf(w->v_port, sizeof w->v_port, "%s", cfg->port);
	} else if (rc == FW_OK) {
		rc = load_job(w, e);
	}
	if (rc == FW_OK && cfg->mode == WIZARD_RESUME && job_resume_step(&w->job) == STEP_NONE)
		rc = fw_err_set(e, FW_EINVAL, "job %s has ended (%s): there is nothing to resume",
				w->job.id, job_outcome_name(w->job.outcome));
	if (rc == FW_OK && cfg->mode == WIZARD_RESTORE) {
		int step = job_resume_step(&w->job);
		const struct job_step *js = step == STEP_NONE ? NULL : job_step_cget(&w->job, step);

		if (!js)
			rc = fw_err_set(e, FW_EINVAL, "job %s has ended (%s): there is nothing to "
					"restore within it; its backup is %s", w->job.id,
					job_outcome_name(w->job.outcome),
					job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH) ?
					job_evidence_get(&w->job, STEP_BACKUP, STEP_KEY_BACKUP_PATH) :
					"missing");
		else if (js->state == STEP_RUNNING)
			rc = apply(w, STEP_EV_FAIL, step, "interrupted: the previous run of flashwise "
				   "ended during this step", NULL, e);
		if (rc == FW_OK && step != STEP_RESTORE && js->state != STEP_FAILED &&
		    js->state != STEP_RUNNING)
			rc = fw_err_set(e, FW_EINVAL, "job %s is at step %s, which has not failed: "
					"resume it, or abort it first", w->job.id,
					steps_info(step)->name);
		if (rc == FW_OK && step != STEP_RESTORE) {
			rc = apply(w, STEP_EV_RESTORE, step, NULL, NULL, e);
			if (rc == FW_OK)
				rc = run_step(w, STEP_RESTORE, false, e);
		}
	}
	if (rc == FW_OK)
		rc = loop(w, cfg->mode == WIZARD_RESUME, e);
	if (w->have_job) {
		write_reports(w);
		finish(w, res, rc, e);
		snprintf(res->job_dir, sizeof res->job_dir, "%s", w->dir);
		snprintf(res->job_id, sizeof res->job_id, "%s", w->job.id);
	}
	res->exit_code = w->have_job ? result_code(w, rc) : exitcode_from_rc(rc);
	if (rc == FW_OK && !res->success && w->last_msg[0] && e && !e->msg[0])
		fw_err_set(e, w->last_rc, "%s", w->last_msg);
	close_device(w);
	free_files(w);
	image_free(&w->all);
	job_free(&w->job);
	free(w->p);
	free(w);
	return rc == FW_ECANCELLED && res->exit_code != FW_EXIT_INTERNAL ? FW_OK : rc;
}
