/* Atomic files: content and mode, replacement, no leftovers, symbolic links
 * refused (write, read, folders), clear errors for missing folders and
 * oversized files. Everything happens under a mkdtemp() folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"

#define HAS(hay, needle) assert_non_null(strstr((hay), (needle)))

struct tmp {
	char dir[64];
};

static int setup(void **state)
{
	struct tmp *t = calloc(1, sizeof *t);

	if (!t)
		return -1;
	strcpy(t->dir, "/tmp/fw-atomic-XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static void rm_tree(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char sub[512];

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		chmod(path, 0700);
		d = opendir(path);
		while (d && (de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
			rm_tree(sub);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static int teardown(void **state)
{
	struct tmp *t = *state;

	rm_tree(t->dir);
	free(t);
	return 0;
}

static char *in(const struct tmp *t, const char *name)
{
	static char buf[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", t->dir, name);
	return buf[k];
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void expect_file(const char *path, const char *content, mode_t mode)
{
	struct stat st;
	char buf[256] = {0};
	FILE *f;
	size_t n;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	assert_int_equal(n, strlen(content));
	assert_memory_equal(buf, content, n);
}

static void test_write_content_and_mode(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	mode_t old = umask(0);

	/* A umask of 0 must not widen it, and 077 must not be needed. */
	assert_int_equal(atomic_write_file(in(t, "journal.ini"), "hello\n", 6, 0600, &e), FW_OK);
	umask(old);
	expect_file(in(t, "journal.ini"), "hello\n", 0600);
	assert_int_equal(entries(t->dir), 1); /* no temporary file left */

	/* Empty files are files too. */
	assert_int_equal(atomic_write_file(in(t, "empty"), NULL, 0, 0600, &e), FW_OK);
	expect_file(in(t, "empty"), "", 0600);

	/* A relative path (folder ".") works. */
	{
		char cwd[512];
		assert_non_null(getcwd(cwd, sizeof cwd));
		assert_int_equal(chdir(t->dir), 0);
		assert_int_equal(atomic_write_file("rel.txt", "r", 1, 0600, &e), FW_OK);
		assert_int_equal(chdir(cwd), 0);
		expect_file(in(t, "rel.txt"), "r", 0600);
	}
}

static void test_write_replaces(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	const char *p = in(t, "report.txt");
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs("the old and much longer content\n", f);
	fclose(f);
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(atomic_write_file(p, "new\n", 4, 0600, &e), FW_OK);
	expect_file(p, "new\n", 0600);
	assert_int_equal(atomic_write_file(p, "newer\n", 6, 0600, &e), FW_OK);
	expect_file(p, "newer\n", 0600);
	assert_int_equal(entries(t->dir), 1);
}

static void test_write_refuses_symlink(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	char target[512], link_path[512], back[512];
	struct stat st;
	ssize_t n;

	snprintf(target, sizeof target, "%s", in(t, "precious"));
	snprintf(link_path, sizeof link_path, "%s", in(t, "journal.ini"));
	assert_int_equal(atomic_write_file(target, "keep me\n", 8, 0600, &e), FW_OK);
	assert_int_equal(symlink(target, link_path), 0);

	assert_int_equal(atomic_write_file(link_path, "evil", 4, 0600, &e), FW_EIO);
	HAS(e.msg, "journal.ini");
	HAS(e.msg, "symbolic link");
	/* Neither the link nor what it points to changed. */
	expect_file(target, "keep me\n", 0600);
	assert_int_equal(lstat(link_path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(link_path, back, sizeof back - 1);
	assert_true(n > 0);
	back[n] = '\0';
	assert_string_equal(back, target);
	assert_int_equal(entries(t->dir), 2);

	/* A dangling link (the usual trick: make us create a file elsewhere). */
	assert_int_equal(symlink(in(t, "elsewhere"), in(t, "dangling")), 0);
	assert_int_equal(atomic_write_file(in(t, "dangling"), "x", 1, 0600, &e), FW_EIO);
	assert_int_equal(lstat(in(t, "elsewhere"), &st), -1);
}

static void test_missing_folder(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	char *p = in(t, "no/such/folder/journal.ini");

	assert_int_equal(atomic_write_file(p, "x", 1, 0600, &e), FW_EIO);
	HAS(e.msg, "journal.ini");
	HAS(e.msg, "no/such/folder");
	HAS(e.msg, "does not exist");

	/* A file where the folder should be. */
	assert_int_equal(atomic_write_file(in(t, "plain"), "x", 1, 0600, &e), FW_OK);
	assert_int_equal(atomic_write_file(in(t, "plain/journal.ini"), "x", 1, 0600, &e), FW_EIO);
	HAS(e.msg, "not a folder");

	/* A folder where the file should be. */
	assert_int_equal(mkdir(in(t, "adir"), 0700), 0);
	assert_int_equal(atomic_write_file(in(t, "adir"), "x", 1, 0600, &e), FW_EIO);
	HAS(e.msg, "not a regular file");

	assert_int_equal(atomic_write_file(in(t, "adir/"), "x", 1, 0600, &e), FW_EINVAL);
	assert_int_equal(atomic_write_file("", "x", 1, 0600, &e), FW_EINVAL);
}

static void test_unwritable_folder(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};

	if (geteuid() == 0)
		skip(); /* root writes anywhere */
	assert_int_equal(mkdir(in(t, "ro"), 0500), 0);
	assert_int_equal(atomic_write_file(in(t, "ro/x"), "x", 1, 0600, &e), FW_EIO);
	HAS(e.msg, "ro/x");
	HAS(e.msg, "temporary");
	assert_int_equal(entries(in(t, "ro")), 0);
}

/* The temporary name is longer than the target's: a name near the limit
 * fails there, and nothing may be left behind. Works as root too. */
static void test_temp_file_fails_cleanly(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	char name[251];

	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_int_equal(atomic_write_file(in(t, name), "x", 1, 0600, &e), FW_EIO);
	HAS(e.msg, "temporary file");
	assert_int_equal(entries(t->dir), 0);
}

static void test_read(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	char *buf = NULL;
	size_t len = 99;
	const char data[] = "line\n\0binary\xff";

	assert_int_equal(atomic_write_file(in(t, "f"), data, sizeof data, 0600, &e), FW_OK);
	assert_int_equal(atomic_read_file(in(t, "f"), 1024, &buf, &len, &e), FW_OK);
	assert_int_equal(len, sizeof data);
	assert_memory_equal(buf, data, sizeof data);
	assert_int_equal(buf[len], '\0');
	free(buf);

	/* Exactly maxlen is fine, one byte less is not. */
	assert_int_equal(atomic_read_file(in(t, "f"), sizeof data, &buf, &len, &e), FW_OK);
	free(buf);
	assert_int_equal(atomic_read_file(in(t, "f"), sizeof data - 1, &buf, &len, &e), FW_EIO);
	HAS(e.msg, "more than");
	assert_null(buf);

	assert_int_equal(atomic_write_file(in(t, "empty"), "", 0, 0600, &e), FW_OK);
	assert_int_equal(atomic_read_file(in(t, "empty"), 10, &buf, &len, &e), FW_OK);
	assert_int_equal(len, 0);
	assert_non_null(buf);
	assert_string_equal(buf, "");
	free(buf);

	assert_int_equal(atomic_read_file(in(t, "missing"), 10, &buf, &len, &e), FW_EIO);
	HAS(e.msg, "missing");
	HAS(e.msg, "no such file");

	assert_int_equal(symlink(in(t, "f"), in(t, "link")), 0);
	assert_int_equal(atomic_read_file(in(t, "link"), 1024, &buf, &len, &e), FW_EIO);
	HAS(e.msg, "symbolic link");
	assert_null(buf);

	assert_int_equal(mkfifo(in(t, "fifo"), 0600), 0);
	assert_int_equal(atomic_read_file(in(t, "fifo"), 1024, &buf, &len, &e), FW_EIO);
	HAS(e.msg, "not a regular file");
	assert_int_equal(atomic_read_file(t->dir, 1024, &buf, &len, &e), FW_EIO);
}

static void test_make_dirs(void **state)
{
	struct tmp *t = *state;
	struct fw_err e = {0};
	struct stat st;

	assert_int_equal(atomic_make_dirs(in(t, "state/flashwise/jobs/j1"), &e), FW_OK);
	assert_int_equal(lstat(in(t, "state/flashwise/jobs/j1"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(lstat(in(t, "state"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Again: existing folders are fine; trailing and double slashes too. */
	assert_int_equal(atomic_make_dirs(in(t, "state//flashwise/jobs/j1/"), &e), FW_OK);

	/* The folder itself may not be a link... */
	assert_int_equal(symlink(in(t, "state/flashwise/jobs/j1"), in(t, "j2")), 0);
	assert_int_equal(atomic_make_dirs(in(t, "j2"), &e), FW_EIO);
	HAS(e.msg, "j2");
	HAS(e.msg, "symbolic link");
	/* ...but a parent made a link by the user is followed. */
	assert_int_equal(symlink(in(t, "state"), in(t, "home")), 0);
	assert_int_equal(atomic_make_dirs(in(t, "home/flashwise/jobs/j3"), &e), FW_OK);
	assert_int_equal(lstat(in(t, "state/flashwise/jobs/j3"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* A file in the way. */
	assert_int_equal(atomic_write_file(in(t, "file"), "x", 1, 0600, &e), FW_OK);
	assert_int_equal(atomic_make_dirs(in(t, "file/sub"), &e), FW_EIO);
	HAS(e.msg, "not a folder");
	assert_int_equal(atomic_make_dirs(in(t, "file"), &e), FW_EIO);
	assert_int_equal(atomic_make_dirs("", &e), FW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_content_and_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refuses_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_temp_file_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_make_dirs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
