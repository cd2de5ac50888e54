/* The file side of profiles: reading a profile from disk (line scan, then
 * iniparser, then the pure validation in src/core/profile.c), checking that
 * files it names exist, and finding a profile by id in the search folders. */
#include "profile.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iniparser.h>

/* Real profiles are a few KB; anything this big is the wrong file. */
#define PROFILE_FILE_MAX (256 * 1024)

/* iniparser reports syntax errors on stderr; our line scan says the same
 * thing with a line number, so its own messages are dropped. */
static int quiet(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}

static int fail(struct profile_diags *d, struct fw_err *e)
{
	fw_err_set(e, FW_EPROFILE, "%s", d->n ? d->d[0].text : "profile is not valid");
	return FW_EPROFILE;
}

static int read_text(const char *path, char **text, size_t *len, struct profile_diags *d)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f) {
		profile_diags_add(d, "%s: cannot open the profile: %s", path, strerror(errno));
		return FW_EPROFILE;
	}
	buf = malloc(PROFILE_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		profile_diags_add(d, "%s: out of memory reading the profile", path);
		return FW_ENOMEM;
	}
	n = fread(buf, 1, PROFILE_FILE_MAX + 1, f);
	if (ferror(f)) {
		profile_diags_add(d, "%s: cannot read the profile: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return FW_EPROFILE;
	}
	fclose(f);
	if (n > PROFILE_FILE_MAX) {
		profile_diags_add(d, "%s: larger than %d KB; this is not a device profile",
				  path, PROFILE_FILE_MAX / 1024);
		free(buf);
		return FW_EPROFILE;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return FW_OK;
}

/* The folder part of path ("." when there is none). */
static void dir_of(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, n, ".");
	else if (slash == path)
		snprintf(out, n, "/");
	else
		snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* The key is named relative to the profile; a missing key would only show up
 * when the first signed image is checked, so say it now. */
static void check_key_file(const char *path, const struct profile *p, struct profile_diags *d)
{
	char dir[512], full[1100];
	FILE *f;

	if (!p->public_key[0] || p->public_key[0] == '/')
		return;
	dir_of(path, dir, sizeof dir);
	snprintf(full, sizeof full, "%s/%s", dir, p->public_key);
	f = fopen(full, "rb");
	if (!f) {
		profile_diags_add(d, "%s:[trust] public_key: cannot read %s: %s; put the PEM "
				  "file there or fix the path", path, full, strerror(errno));
		return;
	}
	fclose(f);
}

int profile_load(const char *path, struct profile *p, struct profile_diags *diags,
		 struct fw_err *e)
{
	struct profile_diags local;
	dictionary *ini;
	char *text = NULL;
	size_t len = 0, bad;
	int rc;

	if (!diags)
		diags = &local;
	memset(diags, 0, sizeof *diags);
	memset(p, 0, sizeof *p);
	rc = read_text(path, &text, &len, diags);
	if (rc != FW_OK) {
		fw_err_set(e, rc, "%s", diags->d[0].text);
		return rc;
	}
	bad = profile_scan_text(path, text, len, diags);
	free(text);
	if (bad)
		return fail(diags, e);

	iniparser_set_error_callback(quiet);
	ini = iniparser_load(path);
	if (!ini) {
		profile_diags_add(diags, "%s: the INI reader could not read it (the file "
				  "changed, or memory ran out); try again", path);
		return fail(diags, e);
	}
	rc = profile_from_ini(path, ini, p, diags, e);
	iniparser_freedict(ini);
	check_key_file(path, p, diags);
	if (diags->total)
		return fail(diags, e);
	return rc;
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int put(char *out, size_t outlen, const char *path, struct fw_err *e)
{
	if (strlen(path) >= outlen)
		return fw_err_set(e, FW_EINVAL, "profile path too long: %s", path);
	memcpy(out, path, strlen(path) + 1);
	return FW_OK;
}

int profile_find(const char *id_or_path, const char *search, char *out, size_t outlen,
		 struct fw_err *e)
{
	char id[128], cand[1024];
	const char *s, *dir;
	size_t len, i;

	if (!id_or_path || !*id_or_path)
		return fw_err_set(e, FW_EINVAL, "no profile given; name one, e.g. nodemcu-v1");
	len = strlen(id_or_path);
	if (strchr(id_or_path, '/')) {
		if (!is_file(id_or_path))
			return fw_err_set(e, FW_EPROFILE, "cannot open profile %s: %s",
					  id_or_path, errno ? strerror(errno) : "not a file");
		return put(out, outlen, id_or_path, e);
	}
	/* "esp01.ini" is a file in the current folder when there is one, else an id. */
	if (len > 4 && strcmp(id_or_path + len - 4, ".ini") == 0) {
		if (is_file(id_or_path))
			return put(out, outlen, id_or_path, e);
		len -= 4;
	}
	if (len >= sizeof id)
		return fw_err_set(e, FW_EINVAL, "profile name too long: %s", id_or_path);
	memcpy(id, id_or_path, len);
	id[len] = '\0';
	for (i = 0; i < len; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.') ||
		    id[0] == '.')
			return fw_err_set(e, FW_EINVAL, "\"%s\" is not a profile name; names "
					  "use letters, digits, - _ and . (or give a path)",
					  id_or_path);
	}
	if (!search || !*search)
		return fw_err_set(e, FW_EPROFILE, "no profile folders to look for \"%s\" in; "
				  "give a path to the .ini file", id);
	for (s = search; ; s++) {
		const char *end = strchr(s, ':');
		size_t dl = end ? (size_t)(end - s) : strlen(s);

		dir = s;
		if (dl > 0 && dl < sizeof cand - len - 8) {
			snprintf(cand, sizeof cand, "%.*s/%s.ini", (int)dl, dir, id);
			if (is_file(cand))
				return put(out, outlen, cand, e);
		}
		if (!end)
			break;
		s = end;
	}
	return fw_err_set(e, FW_EPROFILE, "no profile \"%s\" in %s; `flashwise profile list` "
			  "shows the profiles there, or give a path to an .ini file", id, search);
}

static int by_file(const void *a, const void *b)
{
	return strcmp(((const struct profile_entry *)a)->file,
		      ((const struct profile_entry *)b)->file);
}

int profile_catalog(const char *search, char *dir, size_t dirlen, struct profile_entry **out,
		    size_t *n, struct fw_err *e)
{
	char *copy = strdup(search ? search : ""), *d, *save = NULL;
	struct profile_entry *v = NULL;
	size_t cap = 0, k = 0;
	DIR *dh = NULL;
	struct dirent *de;

	*out = NULL;
	*n = 0;
	if (!copy)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	for (d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
		if ((dh = opendir(d)) != NULL)
			break;
	if (!dh) {
		free(copy);
		return fw_err_set(e, FW_EPROFILE, "no profile folder found (searched %s)", search);
	}
	snprintf(dir, dirlen, "%s", d);
	while ((de = readdir(dh)) != NULL) {
		size_t l = strlen(de->d_name);
		char path[1024];
		struct fw_err le = {0};

		if (l <= 4 || l >= sizeof v->file || strcmp(de->d_name + l - 4, ".ini") != 0)
			continue;
		if (k == cap) {
			struct profile_entry *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof *v);
			if (!nv) {
				closedir(dh);
				free(copy);
				free(v);
				return fw_err_set(e, FW_ENOMEM, "out of memory");
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		memset(&v[k], 0, sizeof v[k]);
		memcpy(v[k].file, de->d_name, l + 1);
		snprintf(path, sizeof path, "%s/%s", d, de->d_name);
		v[k].ok = profile_load(path, &v[k].p, NULL, &le) == FW_OK;
		if (!v[k].ok)
			snprintf(v[k].error, sizeof v[k].error, "%s", le.msg);
		k++;
	}
	closedir(dh);
	free(copy);
	if (k)
		qsort(v, k, sizeof *v, by_file);
	*out = v;
	*n = k;
	return FW_OK;
}
