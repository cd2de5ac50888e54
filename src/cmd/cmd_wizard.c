/* `flashwise` (no command), `run`, `resume`, `restore` and `demo`: the
 * wizard's front ends. They pick the screens (curses on a terminal, line
 * mode otherwise, batch mode with --yes), fill a struct wizard_config and
 * hand over to the engine. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic.h"
#include "cmd.h"
#include "exitcode.h"
#include "integrity.h"
#include "jobstore.h"
#include "report.h"
#include "sample.h"
#include "strbuf.h"
#include "ui_plain.h"
#include "ui_tui.h"
#include "wizard.h"

struct wiz_opts {
	struct wizard_config cfg;
	bool plain, ascii;
};

enum {
	OPT_PROFILE = 256, OPT_PORT, OPT_BAUD, OPT_FIRMWARE, OPT_SHA256, OPT_SHA256_FILE,
	OPT_MANIFEST, OPT_SIG, OPT_STATE_DIR, OPT_YES, OPT_PLAIN, OPT_ASCII,
};

static const struct option long_opts[] = {
	{"profile", required_argument, NULL, OPT_PROFILE},
	{"port", required_argument, NULL, OPT_PORT},
	{"baud", required_argument, NULL, OPT_BAUD},
	{"firmware", required_argument, NULL, OPT_FIRMWARE},
	{"sha256", required_argument, NULL, OPT_SHA256},
	{"sha256-file", required_argument, NULL, OPT_SHA256_FILE},
	{"manifest", required_argument, NULL, OPT_MANIFEST},
	{"sig", required_argument, NULL, OPT_SIG},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"yes", no_argument, NULL, OPT_YES},
	{"plain", no_argument, NULL, OPT_PLAIN},
	{"ascii", no_argument, NULL, OPT_ASCII},
	{0, 0, 0, 0},
};

#define SCREEN_OPTIONS \
	"  --plain            line mode: numbered lines and prompts, no curses\n" \
	"  --ascii            ASCII line drawing in the screens\n" \
	"  --state-dir DIR    job folders live in DIR (default\n" \
	"                     $XDG_STATE_HOME/flashwise/jobs)\n"

/* Which options a command takes, so `resume --firmware` is a usage error
 * and not silently ignored. */
enum { TAKES_JOB = 1, TAKES_FILES = 2, TAKES_YES = 4, TAKES_DEVICE = 8 };

static int parse(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc, char **argv,
		 unsigned takes, struct wiz_opts *o)
{
	uint32_t v;
	int c;

	optind = 1;
	opterr = 0;
	o->cfg.profiles = ctx->profiles;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case OPT_PROFILE: ok = takes & TAKES_FILES; o->cfg.profile = optarg; break;
		case OPT_PORT: ok = takes & TAKES_DEVICE; o->cfg.port = optarg; break;
		case OPT_BAUD:
			ok = takes & TAKES_DEVICE;
			if (!cmd_parse_u32(optarg, &v) || v < 300 || v > 12000000)
				return cmd_fail(ctx, FW_EXIT_USAGE, "--baud: '%s' is not a baud rate",
						optarg);
			o->cfg.baud = v;
			break;
		case OPT_FIRMWARE:
			ok = takes & TAKES_FILES;
			if (o->cfg.nfirmware >= WIZARD_MAX_FILES)
				return cmd_fail(ctx, FW_EXIT_USAGE, "at most %d --firmware files",
						WIZARD_MAX_FILES);
			o->cfg.firmware[o->cfg.nfirmware++] = optarg;
			break;
		case OPT_SHA256: ok = takes & TAKES_FILES; o->cfg.sha256 = optarg; break;
		case OPT_SHA256_FILE: ok = takes & TAKES_FILES; o->cfg.sha256_file = optarg; break;
		case OPT_MANIFEST: ok = takes & TAKES_FILES; o->cfg.manifest = optarg; break;
		case OPT_SIG: ok = takes & TAKES_FILES; o->cfg.sig = optarg; break;
		case OPT_STATE_DIR: o->cfg.state_dir = optarg; break;
		case OPT_YES: ok = takes & TAKES_YES; o->cfg.yes = true; break;
		case OPT_PLAIN: o->plain = true; break;
		case OPT_ASCII: o->ascii = true; break;
		default: ok = false; break;
		}
		if (!ok) {
			fprintf(ctx->err, "flashwise: %s: unknown option or missing value '%s'\n",
				self->name, argv[optind - 1]);
			return cmd_usage(ctx, self);
		}
	}
	if (o->cfg.yes)
		o->cfg.conditions_confirmed = true;
	return FW_EXIT_OK;
}

/* Curses on a terminal; line mode when asked, when either end is not a
 * terminal, or when curses cannot use it; batch mode with --yes. */
static void open_ui(struct cmd_ctx *ctx, const struct wiz_opts *o, struct ui *u, bool *tui)
{
	struct plain_options po = {.in = stdin, .out = ctx->out, .batch = o->cfg.yes};
	struct tui_options to = {.color = ctx->color, .ascii = o->ascii,
				 .signal_pending = wizard_signal_pending};
	struct fw_err e = {0};

	*tui = false;
	/* tui_open judges TERM itself and says why it cannot use it. */
	if (!o->cfg.yes && !o->plain && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		if (tui_open(&to, u, &e) == FW_OK) {
			*tui = true;
			return;
		}
		fprintf(ctx->err, "flashwise: %s; using line mode\n", e.msg);
	}
	if (plain_open(&po, u, &e) != FW_OK)
		u->ops = NULL;
}

static int run_wizard(struct cmd_ctx *ctx, struct wiz_opts *o)
{
	struct wizard_result res;
	struct fw_err e = {0};
	struct ui u = {0};
	bool tui;
	int rc;

	wizard_signals_install();
	open_ui(ctx, o, &u, &tui);
	if (!u.ops)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = wizard_run(&o->cfg, &u, &res, &e);
	if (tui)
		tui_close(&u);
	else
		plain_close(&u);
	/* After the screens are gone: what ended the run, on stderr. */
	if (rc != FW_OK || (res.exit_code != FW_EXIT_OK && e.msg[0]))
		fprintf(ctx->err, "flashwise: %s\n", e.msg[0] ? e.msg : fw_rc_name(rc));
	/* The screens leave nothing in the scrollback: the verdict stays. */
	if (tui && res.verdict[0])
		fprintf(ctx->err, "flashwise: %s\n", res.verdict);
	if (res.job_dir[0] && (tui || res.exit_code != FW_EXIT_OK))
		fprintf(ctx->err, "flashwise: job %s, records in %s\n", res.job_id, res.job_dir);
	if (rc != FW_OK && !res.job_dir[0])
		return exitcode_from_rc(rc);
	return res.exit_code;
}

static int run_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc, char **argv)
{
	struct wiz_opts o;
	int rc;

	memset(&o, 0, sizeof o);
	rc = parse(self, ctx, argc, argv, TAKES_FILES | TAKES_YES | TAKES_DEVICE, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (optind != argc)
		return cmd_usage(ctx, self);
	/* Batch mode asks nothing, so everything must be given. */
	if (o.cfg.yes && (!o.cfg.profile || !o.cfg.port || o.cfg.nfirmware == 0))
		return cmd_fail(ctx, FW_EXIT_USAGE, "run --yes needs --profile, --port and at "
				"least one --firmware: batch mode never asks");
	o.cfg.mode = WIZARD_NEW;
	return run_wizard(ctx, &o);
}

int cmd_wizard_default(struct cmd_ctx *ctx)
{
	struct wiz_opts o;

	memset(&o, 0, sizeof o);
	o.cfg.profiles = ctx->profiles;
	o.cfg.mode = WIZARD_NEW;
	return run_wizard(ctx, &o);
}

/* The unfinished jobs, for `resume` without a job id. */
static int pick_job(struct cmd_ctx *ctx, struct wiz_opts *o, char *id, size_t idlen)
{
	struct jobstore_entry *v = NULL;
	char root[JOBSTORE_PATH_MAX];
	struct fw_err e = {0};
	size_t n = 0, k = 0, i;
	char buf[64];
	int rc;

	if (o->cfg.state_dir)
		snprintf(root, sizeof root, "%s", o->cfg.state_dir);
	else if (jobstore_default_root(root, sizeof root, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_JOURNAL, "%s", e.msg);
	if (jobstore_list(root, &v, &n, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_JOURNAL, "%s", e.msg);
	for (i = 0; i < n; i++)
		if (v[i].ok && v[i].job.outcome == JOB_ACTIVE) {
			char verdict[REPORT_VERDICT_MAX];

			report_verdict(&v[i].job, verdict, sizeof verdict);
			if (k == 0)
				fprintf(ctx->out, "unfinished jobs in %s:\n", root);
			k++;
			fprintf(ctx->out, "  %zu. %s  %s\n", k, v[i].id, verdict);
		}
	if (k == 0) {
		jobstore_list_free(v, n);
		fprintf(ctx->out, "no unfinished jobs in %s\n", root);
		return FW_EXIT_FAILED;
	}
	rc = FW_EXIT_OK;
	if (o->cfg.yes || !isatty(STDIN_FILENO)) {
		if (k > 1 || o->cfg.yes) {
			rc = cmd_fail(ctx, FW_EXIT_USAGE, "name the job to resume: flashwise resume JOB");
		} else {
			for (i = 0; i < n && !(v[i].ok && v[i].job.outcome == JOB_ACTIVE); i++)
				;
			snprintf(id, idlen, "%s", v[i].id);
		}
	} else {
		unsigned long want = 1;

		fprintf(ctx->out, "resume which? [1] ");
		fflush(ctx->out);
		if (!fgets(buf, sizeof buf, stdin))
			rc = FW_EXIT_DECLINED;
		else if (buf[0] != '\n')
			want = strtoul(buf, NULL, 10);
		if (rc == FW_EXIT_OK && (want < 1 || want > k))
			rc = cmd_fail(ctx, FW_EXIT_USAGE, "no job %lu in the list", want);
		for (i = 0, k = 0; rc == FW_EXIT_OK && i < n; i++)
			if (v[i].ok && v[i].job.outcome == JOB_ACTIVE && ++k == want)
				snprintf(id, idlen, "%s", v[i].id);
	}
	jobstore_list_free(v, n);
	return rc;
}

static int resume_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
		       char **argv)
{
	struct wiz_opts o;
	char id[JOB_ID_MAX] = "";
	int rc;

	memset(&o, 0, sizeof o);
	rc = parse(self, ctx, argc, argv, TAKES_JOB | TAKES_YES | TAKES_DEVICE, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (argc - optind > 1)
		return cmd_usage(ctx, self);
	if (optind < argc)
		snprintf(id, sizeof id, "%s", argv[optind]);
	else if ((rc = pick_job(ctx, &o, id, sizeof id)) != FW_EXIT_OK)
		return rc;
	o.cfg.mode = WIZARD_RESUME;
	o.cfg.job_id = id;
	return run_wizard(ctx, &o);
}

static int restore_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			char **argv)
{
	struct wiz_opts o;
	int rc;

	memset(&o, 0, sizeof o);
	rc = parse(self, ctx, argc, argv, TAKES_JOB | TAKES_YES | TAKES_DEVICE, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (argc - optind != 1)
		return cmd_usage(ctx, self);
	o.cfg.mode = WIZARD_RESTORE;
	o.cfg.job_id = argv[optind];
	return run_wizard(ctx, &o);
}

/* ---- demo ---- */

/* flashwise-sim beside this program (a build tree or an installed bin/),
 * else on PATH. */
static void sim_path(char *out, size_t n)
{
	char self[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;

	snprintf(out, n, "flashwise-sim");
	if (l <= 0)
		return;
	self[l] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(out, n, "%s/flashwise-sim", self);
	if (access(out, X_OK) != 0)
		snprintf(out, n, "flashwise-sim");
}

struct demo_sim {
	pid_t pid;
	int in_fd;     /* its stdin: closing it ends the simulator */
	char port[256];
};

static int start_sim(struct cmd_ctx *ctx, const char *dir, struct demo_sim *s)
{
	int in[2], out[2];
	char sim[PATH_MAX + 32], logpath[PATH_MAX];
	size_t k = 0;

	sim_path(sim, sizeof sim);
	snprintf(logpath, sizeof logpath, "%s/sim.log", dir);
	if (pipe(in) != 0)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	if (pipe(out) != 0) {
		close(in[0]);
		close(in[1]);
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "pipe: %s", strerror(errno));
	}
	s->pid = fork();
	if (s->pid < 0) {
		int err = errno;

		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "fork: %s", strerror(err));
	}
	if (s->pid == 0) {
		int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		if (logfd >= 0)
			dup2(logfd, STDERR_FILENO);
		close(in[1]);
		close(out[0]);
		/* The simulator must not take the technician's Ctrl-C or a hangup
		 * before flashwise has finished with it. */
		setsid();
		execlp(sim, sim, "esp32", "--boot", "download", "--exit-on-stdin-eof", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->in_fd = in[1];
	/* Its first line is the pty it serves. */
	while (k + 1 < sizeof s->port) {
		char c;
		ssize_t r = read(out[0], &c, 1);

		if (r <= 0 || c == '\n')
			break;
		s->port[k++] = c;
	}
	s->port[k] = '\0';
	close(out[0]);
	if (strncmp(s->port, "/dev/", 5) != 0) {
		close(s->in_fd);
		waitpid(s->pid, NULL, 0);
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "the simulator (%s) did not start: see %s",
				sim, logpath);
	}
	return FW_EXIT_OK;
}

static void stop_sim(struct demo_sim *s)
{
	close(s->in_fd);
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
}

/* One sample image and its sha256sum sidecar in dir. */
static int write_one(struct cmd_ctx *ctx, const struct profile *p, const char *dir,
		     const char *name, const char *banner, size_t pad, char *path, size_t plen)
{
	struct strbuf img = STRBUF_INIT, side = STRBUF_INIT;
	char hex[SHA256_HEX_LEN + 1], side_path[PATH_MAX + 16];
	uint8_t d[SHA256_LEN];
	struct fw_err e = {0};
	int rc = FW_EXIT_OK;

	if (sample_esp_image(p->family, p->flash_mode, p->flash_size_flag, p->flash_freq_mhz,
			     banner, pad, &img, &e) != FW_OK)
		rc = cmd_fail(ctx, FW_EXIT_INTERNAL, "%s", e.msg);
	if (rc == FW_EXIT_OK) {
		snprintf(path, plen, "%s/%s", dir, name);
		integrity_sha256(img.s, img.len, d);
		integrity_hex(d, SHA256_LEN, hex);
		strbuf_addf(&side, "%s  %s\n", hex, name);
		snprintf(side_path, sizeof side_path, "%s.sha256", path);
		if (strbuf_failed(&img) || strbuf_failed(&side) ||
		    atomic_write_file(path, img.s, img.len, 0600, &e) != FW_OK ||
		    atomic_write_file(side_path, side.s, side.len, 0600, &e) != FW_OK)
			rc = cmd_fail(ctx, FW_EXIT_INTERNAL, "cannot write the demo firmware: %s",
				      e.msg);
	}
	strbuf_free(&img);
	strbuf_free(&side);
	return rc;
}

/* A second-stage bootloader for 0x1000 (the ESP32 ROM boots only through
 * one) and an application for the factory partition. */
static int write_sample(struct cmd_ctx *ctx, const char *dir, char *boot, char *app,
			size_t len)
{
	struct profile *p = malloc(sizeof *p);
	int rc;

	if (!p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = cmd_load_profile(ctx, "esp32-devkitc", p);
	if (rc == FW_EXIT_OK)
		rc = write_one(ctx, p, dir, "demo-bootloader.bin", "flashwise demo bootloader", 0,
			       boot, len);
	if (rc == FW_EXIT_OK)
		rc = write_one(ctx, p, dir, "demo-app.bin", "flashwise demo firmware 1.0 started",
			       96 * 1024, app, len);
	free(p);
	return rc;
}

static int demo_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc, char **argv)
{
	struct wiz_opts o;
	struct demo_sim sim = {0};
	char dir[PATH_MAX], boot[PATH_MAX] = "", app[PATH_MAX] = "", path[PATH_MAX + 32];
	char spec[2][PATH_MAX + 16];
	const char *tmp = getenv("TMPDIR");
	int rc;

	memset(&o, 0, sizeof o);
	rc = parse(self, ctx, argc, argv, 0, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (optind != argc)
		return cmd_usage(ctx, self);
	snprintf(dir, sizeof dir, "%s/flashwise-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "cannot make a folder for the demo: %s",
				strerror(errno));
	rc = write_sample(ctx, dir, boot, app, PATH_MAX);
	if (rc == FW_EXIT_OK)
		rc = start_sim(ctx, dir, &sim);
	if (rc == FW_EXIT_OK) {
		fprintf(ctx->out, "flashwise demo: a simulated ESP32-DevKitC on %s, sample "
			"firmware in %s\n", sim.port, dir);
		fflush(ctx->out);
		snprintf(spec[0], sizeof spec[0], "%s@bootloader", boot);
		snprintf(spec[1], sizeof spec[1], "%s@factory", app);
		o.cfg.mode = WIZARD_NEW;
		o.cfg.profile = "esp32-devkitc";
		o.cfg.port = sim.port;
		o.cfg.firmware[0] = spec[0];
		o.cfg.firmware[1] = spec[1];
		o.cfg.nfirmware = 2;
		rc = run_wizard(ctx, &o);
		stop_sim(&sim);
	}
	/* The samples and the simulator's log go; the job folder stays. */
	for (int i = 0; i < 2; i++) {
		const char *f = i ? app : boot;

		if (!*f)
			continue;
		snprintf(path, sizeof path, "%s.sha256", f);
		unlink(path);
		unlink(f);
	}
	snprintf(path, sizeof path, "%s/sim.log", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}

/* What resume and restore share: the job and where its device is now. */
#define JOB_OPTIONS \
	"  JOB                a job id (see flashwise history)\n" \
	"  --port PORT        the port the device is on now (default: the job's)\n" \
	"  --baud N           talk to the loader at N baud (default: the profile's)\n"

const struct cmd_entry cmd_run = {
	.name = "run",
	.usage = "[--profile P] [--port PORT] [--firmware FILE[@ADDR|@PARTITION]]... "
		 "[--sha256 HEX | --sha256-file F | --manifest M] [--sig F] [--yes]",
	.summary = "the wizard: all nine steps (what flashwise alone starts)",
	.options = "  --profile P        the device profile (id or path); asked when missing\n"
		   "  --port PORT        the serial port; chosen from a list when missing\n"
		   "  --baud N           talk to the loader at N baud (default: the profile's)\n"
		   "  --firmware F       a file to write, FILE[@ADDR|@PARTITION]; repeatable\n"
		   "  --sha256 HEX       the published SHA-256 of the (one) file\n"
		   "  --sha256-file F    a sha256sum file listing the files (default FILE.sha256)\n"
		   "  --manifest M       a manifest listing the files\n"
		   "  --sig F            detached signature, checked with the profile's key\n"
		   "  --yes              batch mode: no questions; every confirmation is yes,\n"
		   "                     anything else fails closed (needs --profile, --port,\n"
		   "                     --firmware)\n"
		   SCREEN_OPTIONS,
	.exec = run_exec,
};

const struct cmd_entry cmd_resume = {
	.name = "resume",
	.usage = "[JOB] [--port PORT] [--yes]",
	.summary = "carry on with an unfinished job where it stopped",
	.options = JOB_OPTIONS
		   "  --yes              no questions: re-run the interrupted step, fail closed\n"
		   SCREEN_OPTIONS,
	.exec = resume_exec,
};

const struct cmd_entry cmd_restore = {
	.name = "restore",
	.usage = "JOB [--port PORT] [--yes]",
	.summary = "write a job's backup back to the device and verify it",
	.options = JOB_OPTIONS
		   "  --yes              no questions\n"
		   SCREEN_OPTIONS,
	.exec = restore_exec,
};

const struct cmd_entry cmd_demo = {
	.name = "demo",
	.usage = "[--plain] [--ascii] [--state-dir DIR]",
	.summary = "the wizard on a simulated ESP32 with sample firmware: no hardware needed",
	.options = SCREEN_OPTIONS,
	.exec = demo_exec,
};
