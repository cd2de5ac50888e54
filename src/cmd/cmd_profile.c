/* `flashwise profile list|show|check|schema`: device profiles from the
 * command line. */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "profile.h"
#include "strbuf.h"

static int profile_check_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			      char **argv)
{
	struct profile *p;
	int i, rc, worst = FW_EXIT_OK;

	if (argc < 2)
		return cmd_usage(ctx, self);
	p = malloc(sizeof *p);
	if (!p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	for (i = 1; i < argc; i++) {
		rc = cmd_load_profile(ctx, argv[i], p);
		if (rc == FW_EXIT_OK)
			fprintf(ctx->out, "%s: ok (%s)\n", p->path, p->name);
		else
			worst = rc;
	}
	free(p);
	return worst;
}

static int profile_show_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			     char **argv)
{
	struct profile *p;
	struct strbuf out = STRBUF_INIT;
	int rc;

	if (argc != 2)
		return cmd_usage(ctx, self);
	p = malloc(sizeof *p);
	if (!p)
		return cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	rc = cmd_load_profile(ctx, argv[1], p);
	if (rc == FW_EXIT_OK) {
		profile_format(p, &out);
		fputs(strbuf_str(&out), ctx->out);
		if (strbuf_failed(&out))
			rc = cmd_fail(ctx, FW_EXIT_INTERNAL, "out of memory");
	}
	strbuf_free(&out);
	free(p);
	return rc;
}

/* Lists the profiles of the first folder on the search path that exists. */
static int profile_list_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			     char **argv)
{
	struct profile_entry *v;
	char dir[1024];
	struct fw_err e = {0};
	size_t n, i;

	(void)argv;
	if (argc != 1)
		return cmd_usage(ctx, self);
	if (profile_catalog(ctx->profiles, dir, sizeof dir, &v, &n, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_PROFILE, "%s", e.msg);
	fprintf(ctx->out, "profiles in %s:\n", dir);
	for (i = 0; i < n; i++) {
		const struct profile *p = &v[i].p;

		if (v[i].ok)
			fprintf(ctx->out, "  %-24s %-8s %-12s %s\n", p->id,
				profile_family_name(p->family), p->chip, p->name);
		else
			fprintf(ctx->out, "  %-24s INVALID: %s\n", v[i].file, v[i].error);
	}
	free(v);
	return FW_EXIT_OK;
}

static int profile_schema_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			       char **argv)
{
	struct strbuf out = STRBUF_INIT;
	const struct profile_key *k;
	size_t i, n;

	if (argc == 2 && strcmp(argv[1], "--man") == 0) {
		profile_schema_man(&out);
		fputs(strbuf_str(&out), ctx->out);
		strbuf_free(&out);
		return FW_EXIT_OK;
	}
	if (argc != 1)
		return cmd_usage(ctx, self);
	k = profile_schema(&n);
	for (i = 0; i < n; i++)
		fprintf(ctx->out, "[%s] %s%s: %s\n", k[i].section, k[i].name,
			k[i].required ? " (required)" : "", k[i].help);
	return FW_EXIT_OK;
}

const struct cmd_entry cmd_profile_check = {
	.name = "profile check",
	.usage = "PROFILE...",
	.summary = "validate profiles (by id or path); every problem as file:[section] key",
	.exec = profile_check_exec,
};

const struct cmd_entry cmd_profile_show = {
	.name = "profile show",
	.usage = "PROFILE",
	.summary = "describe a profile: device, flash, serial, partitions, trust",
	.exec = profile_show_exec,
};

const struct cmd_entry cmd_profile_list = {
	.name = "profile list",
	.usage = "",
	.summary = "list the profiles found on the search path",
	.exec = profile_list_exec,
};

const struct cmd_entry cmd_profile_schema = {
	.name = "profile schema",
	.usage = "[--man]",
	.summary = "every profile key with its meaning (--man: as man(7) text)",
	.options = "  --man            print the key list as man(7) text\n",
	.exec = profile_schema_exec,
};
