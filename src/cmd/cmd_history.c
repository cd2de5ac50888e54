/* `flashwise history`: the jobs kept in the state folder, newest first,
 * one line each (or JSON for tools), made from their journals alone. A
 * journal that cannot be read is listed with the reason, never left out:
 * a missing record is something the technician must see. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "jobstore.h"
#include "report.h"
#include "strbuf.h"

enum { OPT_STATE_DIR = 256, OPT_DEVICE, OPT_PROFILE, OPT_JSON };

static const struct option long_opts[] = {
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"device", required_argument, NULL, OPT_DEVICE},
	{"profile", required_argument, NULL, OPT_PROFILE},
	{"json", no_argument, NULL, OPT_JSON},
	{0, 0, 0, 0},
};

struct history_opts {
	const char *state_dir;
	const char *device;
	const char *profile;
	bool json;
};

static int parse_opts(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc, char **argv,
		      struct history_opts *o)
{
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case OPT_DEVICE: o->device = optarg; break;
		case OPT_PROFILE: o->profile = optarg; break;
		case OPT_JSON: o->json = true; break;
		default:
			fprintf(ctx->err, "flashwise: %s: unknown option or missing value '%s'\n",
				self->name, argv[optind - 1]);
			return cmd_usage(ctx, self);
		}
	}
	if (optind != argc) {
		fprintf(ctx->err, "flashwise: %s: unexpected argument '%s'\n", self->name,
			argv[optind]);
		return cmd_usage(ctx, self);
	}
	if ((o->state_dir && !*o->state_dir) || (o->device && !*o->device) ||
	    (o->profile && !*o->profile))
		return cmd_fail(ctx, FW_EXIT_USAGE, "%s: an option was given an empty value",
				self->name);
	return FW_EXIT_OK;
}

static int history_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			char **argv)
{
	struct history_opts o = {0};
	char root[JOBSTORE_PATH_MAX];
	struct jobstore_entry *v = NULL;
	struct strbuf out = STRBUF_INIT;
	struct fw_err e = {0};
	size_t n = 0, shown = 0, broken = 0;
	int rc;

	rc = parse_opts(self, ctx, argc, argv, &o);
	if (rc != FW_EXIT_OK)
		return rc;
	if (o.state_dir)
		snprintf(root, sizeof root, "%s", o.state_dir);
	else if (jobstore_default_root(root, sizeof root, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_USAGE, "%s", e.msg);
	rc = jobstore_list(root, &v, &n, &e);
	if (rc == FW_ENOMEM)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "%s", e.msg);
	if (rc != FW_OK)
		return cmd_fail(ctx, FW_EXIT_JOURNAL, "%s", e.msg);

	if (o.json)
		strbuf_adds(&out, "[");
	for (size_t i = 0; i < n; i++) {
		/* An unreadable job cannot be filtered out: it may be the one
		 * the technician is looking for. */
		if (v[i].ok && !report_history_match(&v[i].job, o.device, o.profile))
			continue;
		if (o.json) {
			strbuf_adds(&out, shown ? ",\n" : "\n");
			if (v[i].ok)
				report_history_json(&v[i].job, v[i].dir, &out);
			else
				report_history_json_error(v[i].id, v[i].dir, v[i].error, &out);
		} else {
			if (shown == 0)
				report_history_header(&out);
			if (v[i].ok)
				report_history_line(&v[i].job, &out);
			else
				report_history_error_line(v[i].id, v[i].error, &out);
		}
		shown++;
		broken += !v[i].ok;
	}
	if (o.json)
		strbuf_adds(&out, shown ? "\n]\n" : "]\n");
	else if (shown == 0 && n == 0)
		strbuf_addf(&out, "no jobs in %s\n", root);
	else if (shown == 0)
		strbuf_addf(&out, "no jobs in %s match%s%s%s%s\n", root,
			    o.device ? " --device " : "", o.device ? o.device : "",
			    o.profile ? " --profile " : "", o.profile ? o.profile : "");
	jobstore_list_free(v, n);
	if (strbuf_failed(&out)) {
		strbuf_free(&out);
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	}
	fputs(strbuf_str(&out), ctx->out);
	strbuf_free(&out);
	if (broken)
		fprintf(ctx->err, "flashwise: %zu job record%s in %s could not be read (listed with "
			"the reason; the rest of the history is complete)\n", broken,
			broken == 1 ? "" : "s", root);
	return FW_EXIT_OK;
}

const struct cmd_entry cmd_history = {
	.name = "history",
	.usage = "[--state-dir DIR] [--device TEXT] [--profile P] [--json]",
	.summary = "list past jobs, newest first: device, outcome, device state, verdict",
	.options = "  --state-dir DIR  the job records (default $XDG_STATE_HOME/flashwise/jobs)\n"
		   "  --device TEXT    only jobs whose chip, MAC, signature or port contains TEXT\n"
		   "  --profile P      only jobs of profile id P\n"
		   "  --json           a JSON array of job summaries\n",
	.exec = history_exec,
};
