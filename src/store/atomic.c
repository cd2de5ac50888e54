#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int io_fail(struct fw_err *e, const char *what, const char *path, int err)
{
	return fw_err_set(e, FW_EIO, "cannot %s %s: %s", what, path, strerror(err));
}

/* Splits path into its folder (a new string) and its last component. */
static int split(const char *path, char **dir, const char **base, struct fw_err *e)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		*dir = strdup(".");
		*base = path;
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		*dir = strndup(path, n);
		*base = slash + 1;
	}
	if (!*dir)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	if (!**base || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0) {
		free(*dir);
		*dir = NULL;
		return fw_err_set(e, FW_EINVAL, "cannot write %s: the path does not name a file",
				  path);
	}
	return FW_OK;
}

static int open_dir(const char *dir, const char *path, struct fw_err *e, int *fd)
{
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd >= 0)
		return FW_OK;
	if (errno == ENOENT)
		return fw_err_set(e, FW_EIO, "cannot write %s: the folder %s does not exist",
				  path, dir);
	if (errno == ENOTDIR)
		return fw_err_set(e, FW_EIO, "cannot write %s: %s is not a folder", path, dir);
	return fw_err_set(e, FW_EIO, "cannot write %s: cannot open the folder %s: %s", path,
			  dir, strerror(errno));
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Creates a temporary file next to the target, never reusing a name:
 * O_EXCL | O_NOFOLLOW so a planted file or link is not opened. */
static int make_temp(int dfd, const char *base, char *name, size_t cap)
{
	for (unsigned i = 0; i < 1000; i++) {
		int fd;

		if ((size_t)snprintf(name, cap, ".%s.%ld.%u.tmp", base, (long)getpid(), i) >= cap) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int atomic_write_file(const char *path, const void *data, size_t len, mode_t mode,
		      struct fw_err *e)
{
	char *dir = NULL, tmp[512];
	const char *base;
	struct stat st;
	int dfd = -1, fd = -1, rc;
	bool have_tmp = false;

	if (!path || !*path)
		return fw_err_set(e, FW_EINVAL, "no file name to write");
	if (len && !data)
		return fw_err_set(e, FW_EINVAL, "no data to write to %s", path);
	rc = split(path, &dir, &base, e);
	if (rc != FW_OK)
		return rc;
	rc = open_dir(dir, path, e, &dfd);
	if (rc != FW_OK)
		goto out;

	/* The rename below would replace a link rather than write through it,
	 * but a link where our file should be means someone else is at work
	 * in our folder: stop and say so. */
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode)) {
			rc = fw_err_set(e, FW_EIO,
					"refusing to write %s: it is a symbolic link (flashwise never "
					"writes through links; remove it if you did not make it)", path);
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = fw_err_set(e, FW_EIO,
					"refusing to write %s: it exists and is not a regular file", path);
			goto out;
		}
	} else if (errno != ENOENT) {
		rc = io_fail(e, "write", path, errno);
		goto out;
	}

	fd = make_temp(dfd, base, tmp, sizeof tmp);
	if (fd < 0) {
		rc = fw_err_set(e, FW_EIO, "cannot write %s: cannot create a temporary file in %s: %s",
				path, dir, strerror(errno));
		goto out;
	}
	have_tmp = true;
	/* fchmod, not the open mode: the umask must not change what we keep. */
	if (fchmod(fd, mode & 0777) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		rc = io_fail(e, "write", path, errno);
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc != 0) {
		rc = io_fail(e, "write", path, errno);
		goto out;
	}
	if (renameat(dfd, tmp, dfd, base) != 0) {
		rc = io_fail(e, "replace", path, errno);
		goto out;
	}
	have_tmp = false;
	/* The rename is only durable once the folder itself is on the disk. */
	if (fsync(dfd) != 0) {
		rc = fw_err_set(e, FW_EIO, "cannot flush the folder %s to the disk: %s", dir,
				strerror(errno));
		goto out;
	}
	rc = FW_OK;
out:
	if (fd >= 0)
		close(fd);
	if (have_tmp)
		unlinkat(dfd, tmp, 0);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

int atomic_read_file(const char *path, size_t maxlen, char **buf, size_t *len,
		     struct fw_err *e)
{
	struct stat st;
	char *b = NULL, *grown;
	size_t cap, n = 0;
	int fd, rc = FW_OK;

	*buf = NULL;
	*len = 0;
	if (!path || !*path)
		return fw_err_set(e, FW_EINVAL, "no file name to read");
	/* O_NONBLOCK: a FIFO planted at the path must not hang us before the
	 * regular-file check below. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			return fw_err_set(e, FW_EIO,
					  "refusing to read %s: it is a symbolic link", path);
		if (errno == ENOENT)
			return fw_err_set(e, FW_EIO, "cannot read %s: no such file", path);
		return io_fail(e, "read", path, errno);
	}
	if (fstat(fd, &st) != 0) {
		rc = io_fail(e, "read", path, errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fw_err_set(e, FW_EIO, "cannot read %s: it is not a regular file", path);
		goto out;
	}
	if ((uintmax_t)st.st_size > maxlen) {
		rc = fw_err_set(e, FW_EIO, "cannot read %s: it is %jd bytes, more than the %zu "
				"expected", path, (intmax_t)st.st_size, maxlen);
		goto out;
	}
	cap = (size_t)st.st_size + 1;
	b = malloc(cap);
	if (!b) {
		rc = fw_err_set(e, FW_ENOMEM, "out of memory reading %s", path);
		goto out;
	}
	for (;;) {
		ssize_t r;
		char more;

		if (n + 1 == cap) {
			/* Full: the file may have grown since fstat. */
			r = read(fd, &more, 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = io_fail(e, "read", path, errno);
				goto out;
			}
			if (r == 0)
				break;
			if (n + 1 > maxlen) {
				rc = fw_err_set(e, FW_EIO, "cannot read %s: it is more than %zu bytes",
						path, maxlen);
				goto out;
			}
			cap = cap <= maxlen / 2 ? cap * 2 : maxlen + 1;
			grown = realloc(b, cap);
			if (!grown) {
				rc = fw_err_set(e, FW_ENOMEM, "out of memory reading %s", path);
				goto out;
			}
			b = grown;
			b[n++] = more;
			continue;
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = io_fail(e, "read", path, errno);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	b = NULL;
out:
	free(b);
	close(fd);
	return rc;
}

/* One folder of the path: created 0700, or checked to be a folder. */
static int make_one(const char *dir, bool last, struct fw_err *e)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return FW_OK;
	if (errno != EEXIST)
		return fw_err_set(e, FW_EIO, "cannot create the folder %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) != 0)
		return io_fail(e, "check the folder", dir, errno);
	if (S_ISLNK(st.st_mode)) {
		/* Parents may be links the user made (a home folder elsewhere);
		 * the folder flashwise keeps its files in may not. */
		if (last)
			return fw_err_set(e, FW_EIO,
					  "refusing to use the folder %s: it is a symbolic link", dir);
		if (stat(dir, &st) != 0)
			return io_fail(e, "follow the link", dir, errno);
	}
	if (!S_ISDIR(st.st_mode))
		return fw_err_set(e, FW_EIO, "cannot create the folder %s: it exists and is not a "
				  "folder", dir);
	return FW_OK;
}

int atomic_make_dirs(const char *path, struct fw_err *e)
{
	char *p;
	size_t n;
	int rc = FW_OK;

	if (!path || !*path)
		return fw_err_set(e, FW_EINVAL, "no folder name");
	p = strdup(path);
	if (!p)
		return fw_err_set(e, FW_ENOMEM, "out of memory");
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (size_t i = 1; i < n && rc == FW_OK; i++) {
		if (p[i] != '/' || p[i - 1] == '/')
			continue;
		p[i] = '\0';
		rc = make_one(p, false, e);
		p[i] = '/';
	}
	if (rc == FW_OK)
		rc = make_one(p, true, e);
	free(p);
	return rc;
}
