/* `flashwise exit-codes`: the exit-code table, for scripts and the man page test. */
#include "cmd.h"
#include "exitcode.h"

static int exit_codes_exec(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc,
			   char **argv)
{
	const struct exitcode_info *t;
	size_t i, n;

	(void)argv;
	if (argc != 1)
		return cmd_usage(ctx, self);
	t = exitcode_table(&n);
	for (i = 0; i < n; i++)
		fprintf(ctx->out, "%d\t%s\t%s\n", t[i].code, t[i].name, t[i].meaning);
	return FW_EXIT_OK;
}

const struct cmd_entry cmd_exit_codes = {
	.name = "exit-codes",
	.usage = "",
	.summary = "print the table of exit codes (code, name, meaning)",
	.exec = exit_codes_exec,
};
