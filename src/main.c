/* flashwise: the command table and dispatch. Everything a command does lives
 * in src/cmd/; this file only finds the command and hands over argv. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exitcode.h"

#ifndef FW_VERSION
#define FW_VERSION "0.1.0"
#endif

static const struct cmd_entry *const commands[] = {
	&cmd_run,
	&cmd_resume,
	&cmd_restore,
	&cmd_history,
	&cmd_demo,
	&cmd_detect,
	&cmd_backup,
	&cmd_write,
	&cmd_verify,
	&cmd_image_info,
	&cmd_image_check,
	&cmd_image_sample,
	&cmd_profile_list,
	&cmd_profile_show,
	&cmd_profile_check,
	&cmd_profile_schema,
	&cmd_exit_codes,
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

int cmd_fail(struct cmd_ctx *ctx, int exit_code, const char *fmt, ...)
{
	va_list ap;

	fputs("flashwise: ", ctx->err);
	va_start(ap, fmt);
	vfprintf(ctx->err, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->err);
	return exit_code;
}

int cmd_usage(struct cmd_ctx *ctx, const struct cmd_entry *self)
{
	fprintf(ctx->err, "usage: flashwise %s %s\n", self->name, self->usage);
	if (self->options)
		fputs(self->options, ctx->err);
	return FW_EXIT_USAGE;
}

static void print_help(FILE *f)
{
	size_t i, n;
	const struct exitcode_info *codes = exitcode_table(&n);

	fputs("usage: flashwise [--profiles DIRS] [--no-color] [COMMAND [ARGS]]\n"
	      "       flashwise --help | --version\n"
	      "\n"
	      "Walks a technician through flashing firmware safely: it checks the image,\n"
	      "identifies the device against its profile, keeps a backup, verifies the\n"
	      "result and records what it did.\n"
	      "\n"
	      "Commands:\n", f);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-16s %s\n", commands[i]->name, commands[i]->summary);
	fputs("  help COMMAND     the options of one command\n"
	      "\n"
	      "Options:\n"
	      "  --profiles DIRS  ':'-separated folders searched for profiles (also\n"
	      "                   FLASHWISE_PROFILES); then ./profiles, then "
	      FW_DATADIR "/profiles\n"
	      "  --no-color       no colour (also NO_COLOR)\n"
	      "  --help           this text\n"
	      "  --version        the version\n"
	      "\n"
	      "Exit codes:\n", f);
	for (i = 0; i < n; i++)
		fprintf(f, "  %2d %-10s %s\n", codes[i].code, codes[i].name, codes[i].meaning);
	fputs("\nSee flashwise(1) and flashwise-profile(5).\n", f);
}

/* The longest command name that matches argv (commands have one or two words). */
static const struct cmd_entry *find_command(int argc, char **argv, int *words)
{
	size_t i;
	char two[128];

	if (argc >= 2) {
		snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
		for (i = 0; i < NCOMMANDS; i++)
			if (strcmp(commands[i]->name, two) == 0) {
				*words = 2;
				return commands[i];
			}
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i]->name, argv[0]) == 0) {
			*words = 1;
			return commands[i];
		}
	return NULL;
}

static void default_profile_path(char *buf, size_t len, const char *opt)
{
	const char *env = getenv("FLASHWISE_PROFILES");

	/* Explicit choices first; the source tree's folder before the installed
	 * one so a checkout runs with its own profiles. */
	snprintf(buf, len, "%s%s%s%sprofiles:" FW_DATADIR "/profiles", opt ? opt : "",
		 opt ? ":" : "", env && *env ? env : "", env && *env ? ":" : "");
}

int main(int argc, char **argv)
{
	struct cmd_ctx ctx = {.out = stdout, .err = stderr, .color = true};
	const char *profiles_opt = NULL;
	char profiles[4096];
	const struct cmd_entry *cmd;
	int i = 1, words = 0;

	if (getenv("NO_COLOR") && *getenv("NO_COLOR"))
		ctx.color = false;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_help(stdout);
			return FW_EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("flashwise %s\n", FW_VERSION);
			return FW_EXIT_OK;
		} else if (strcmp(argv[i], "--no-color") == 0) {
			ctx.color = false;
		} else if (strcmp(argv[i], "--profiles") == 0 && i + 1 < argc) {
			profiles_opt = argv[++i];
		} else {
			fprintf(stderr, "flashwise: unknown option '%s' (see flashwise --help)\n",
				argv[i]);
			return FW_EXIT_USAGE;
		}
	}
	default_profile_path(profiles, sizeof profiles, profiles_opt);
	ctx.profiles = profiles;

	if (i >= argc)
		return cmd_wizard_default(&ctx);
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 >= argc) {
			print_help(stdout);
			return FW_EXIT_OK;
		}
		cmd = find_command(argc - i - 1, argv + i + 1, &words);
		if (!cmd)
			return cmd_fail(&ctx, FW_EXIT_USAGE, "no command '%s' (see flashwise --help)",
					argv[i + 1]);
		printf("usage: flashwise %s %s\n%s\n", cmd->name, cmd->usage, cmd->summary);
		if (cmd->options)
			fputs(cmd->options, stdout);
		return FW_EXIT_OK;
	}
	cmd = find_command(argc - i, argv + i, &words);
	if (!cmd)
		return cmd_fail(&ctx, FW_EXIT_USAGE, "no command '%s' (see flashwise --help)",
				argv[i]);
	/* Commands see argv[0] = their last word, as getopt expects. */
	i += words - 1;
	return cmd->exec(cmd, &ctx, argc - i, argv + i);
}
