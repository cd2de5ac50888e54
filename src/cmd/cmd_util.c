/* What several commands share: loading a profile with every diagnostic
 * shown, numbers from the command line, FILE@ADDR|@PARTITION placement. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"
#include "imageset.h"

int cmd_load_profile(struct cmd_ctx *ctx, const char *arg, struct profile *p)
{
	char path[1024];
	struct profile_diags diags;
	struct fw_err e = {0};
	size_t i;

	if (profile_find(arg, ctx->profiles, path, sizeof path, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_PROFILE, "%s", e.msg);
	if (profile_load(path, p, &diags, &e) != FW_OK) {
		for (i = 0; i < diags.n; i++)
			fprintf(ctx->err, "%s\n", diags.d[i].text);
		if (diags.total > diags.n)
			fprintf(ctx->err, "... and %zu more problems\n", diags.total - diags.n);
		if (diags.n == 0)
			fprintf(ctx->err, "%s\n", e.msg);
		return cmd_fail(ctx, FW_EXIT_PROFILE, "profile %s is not valid", path);
	}
	return FW_EXIT_OK;
}

bool cmd_parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

int cmd_place(struct cmd_ctx *ctx, const struct profile *p, char *spec, const char **partition,
	      uint32_t *base)
{
	char *at = strrchr(spec, '@');
	struct fw_err e = {0};

	*partition = NULL;
	*base = 0;
	if (!at)
		return FW_EXIT_OK;
	*at = '\0';
	if (cmd_parse_u32(at + 1, base))
		return FW_EXIT_OK;
	*partition = at + 1;
	if (imageset_addr_for(p, at + 1, base, &e) != FW_OK)
		return cmd_fail(ctx, FW_EXIT_USAGE, "%s@%s: %s", spec, at + 1, e.msg);
	return FW_EXIT_OK;
}
