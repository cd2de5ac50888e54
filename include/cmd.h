/* Front-end commands. Each command lives in src/cmd/cmd_<name>.c and
 * exports one const struct cmd_entry; main.c lists them in a table. Commands
 * print (they are the edge) and return a process exit code (exitcode.h). */
#ifndef FLASHWISE_CMD_H
#define FLASHWISE_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"

struct cmd_ctx {
	FILE *out;              /* results */
	FILE *err;              /* diagnostics */
	const char *profiles;   /* ':'-separated profile search path */
	bool color;
};

struct cmd_entry {
	const char *name;       /* "image info" */
	const char *usage;      /* arguments after the name */
	const char *summary;    /* one line for --help */
	const char *options;    /* option lines for `flashwise help CMD`, may be NULL */
	int (*exec)(const struct cmd_entry *self, struct cmd_ctx *ctx, int argc, char **argv);
};

extern const struct cmd_entry cmd_profile_list, cmd_profile_check, cmd_profile_show,
	cmd_profile_schema, cmd_image_info, cmd_image_check, cmd_image_sample, cmd_exit_codes,
	cmd_detect, cmd_backup, cmd_write, cmd_verify, cmd_history, cmd_run, cmd_resume,
	cmd_restore, cmd_demo;

/* `flashwise` with no command: the wizard, asking for everything. */
int cmd_wizard_default(struct cmd_ctx *ctx);

/* Prints "flashwise: <message>" to ctx->err and returns exit_code. */
int cmd_fail(struct cmd_ctx *ctx, int exit_code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prints the usage line of a command to ctx->err; returns FW_EXIT_USAGE. */
int cmd_usage(struct cmd_ctx *ctx, const struct cmd_entry *self);

/* Finds and loads a profile by id or path; prints every diagnostic of an
 * invalid one. Returns an exit code. */
int cmd_load_profile(struct cmd_ctx *ctx, const char *arg, struct profile *p);
/* A whole decimal or 0x number that fits 32 bits; nothing else. */
bool cmd_parse_u32(const char *s, uint32_t *out);
/* Splits FILE@ADDR or FILE@PARTITION in place (spec keeps FILE); a bare
 * FILE goes to 0 (a HEX file brings its own addresses). Returns an exit code. */
int cmd_place(struct cmd_ctx *ctx, const struct profile *p, char *spec, const char **partition,
	      uint32_t *base);

#endif
