/* ESP write throughput against flashwise-sim with the line paced at the
 * simulated baud rate (10 bits per byte). Drives dev_esp_ops directly so
 * that each case chooses its options (compression, skip_unchanged).
 *
 * Backup cases (ESP8266 with flashwise's RAM helper): the flash file starts
 * with random bytes, the driver uploads the helper at 115200 and switches
 * to the case's rate (before the clock starts), then ops->read of the
 * image size at 0x0 is timed and compared with the flash file.
 *
 * For every case: one simulator per run, a 1 MB image written at 0x0, the
 * write phase timed (ops->write only: connect, identify and the ESP32 baud
 * change are done before the clock starts), the bytes the driver moved in
 * each direction counted by a transport wrapper, and the flash file the
 * simulator leaves compared with the image (a fast write of wrong bytes is
 * no result). Figures are medians of the runs.
 *
 * Environment: FLASHWISE_SIM (the simulator, default build/flashwise-sim),
 * FW_BENCH_ESP_KB (image size in KB, default 1024, for quick trials). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "dev_esp.h"
#include "device.h"
#include "image.h"
#include "profile.h"
#include "sample.h"
#include "strbuf.h"
#include "transport.h"

#define MAX_RUNS 3
#define FLASH_BYTES (4u * 1024 * 1024)

enum content { CONTENT_SAMPLE, CONTENT_RANDOM };

struct bench_case {
	const char *label;
	const char *chip;        /* simulator chip */
	const char *profile;     /* profile file */
	unsigned baud;           /* the simulated line */
	bool flash_timing;       /* erase/program time modelled */
	enum content content;
	bool compress;           /* ESP32 ROM deflate */
	bool reflash;            /* then write the same image again, skip_unchanged */
	int runs;
	bool backup;             /* ESP8266 helper: time a read instead */
};

/* Runtimes at 115200 are line-bound (1 MB is 91 s of line time): those run
 * once; everything faster three times. Total about 8.5 minutes. The
 * ESP8266 ROM write cases keep the helper off (o.helper = false); the
 * backup cases go up to the helper's fastest rate (HELPER_PROTO_BAUD_MAX,
 * 4 Mbaud), which the pty and the simulator also carry. */
static const struct bench_case cases[] = {
	{ "esp8266 rom  plain  sample", "esp8266", "profiles/nodemcu-v1.ini", 115200, false,
	  CONTENT_SAMPLE, false, false, 1, false },
	{ "esp8266 rom  plain  sample", "esp8266", "profiles/nodemcu-v1.ini", 921600, false,
	  CONTENT_SAMPLE, false, false, 3, false },
	{ "esp8266 rom  plain  sample +flash", "esp8266", "profiles/nodemcu-v1.ini", 921600, true,
	  CONTENT_SAMPLE, false, false, 1, false },
	{ "esp32   rom  defl   sample", "esp32", "profiles/esp32-devkitc.ini", 115200, false,
	  CONTENT_SAMPLE, true, true, 1, false },
	{ "esp32   rom  defl   sample", "esp32", "profiles/esp32-devkitc.ini", 921600, false,
	  CONTENT_SAMPLE, true, true, 3, false },
	{ "esp32   rom  defl   random", "esp32", "profiles/esp32-devkitc.ini", 115200, false,
	  CONTENT_RANDOM, true, true, 1, false },
	{ "esp32   rom  defl   random", "esp32", "profiles/esp32-devkitc.ini", 921600, false,
	  CONTENT_RANDOM, true, true, 3, false },
	{ "esp32   rom  defl   sample +flash", "esp32", "profiles/esp32-devkitc.ini", 921600, true,
	  CONTENT_SAMPLE, true, true, 1, false },
	{ "esp8266 helper backup random", "esp8266", "profiles/nodemcu-v1.ini", 115200, false,
	  CONTENT_RANDOM, false, false, 1, true },
	{ "esp8266 helper backup random", "esp8266", "profiles/nodemcu-v1.ini", 921600, false,
	  CONTENT_RANDOM, false, false, 3, true },
	{ "esp8266 helper backup random", "esp8266", "profiles/nodemcu-v1.ini", 2000000, false,
	  CONTENT_RANDOM, false, false, 3, true },
	{ "esp8266 helper backup random", "esp8266", "profiles/nodemcu-v1.ini", 4000000, false,
	  CONTENT_RANDOM, false, false, 3, true },
	{ "esp8266 helper backup random +flash", "esp8266", "profiles/nodemcu-v1.ini", 4000000,
	  true, CONTENT_RANDOM, false, false, 1, true },
};

struct run_result {
	double t_write, t_reflash;      /* seconds */
	uint64_t w_tx, w_rx;            /* write phase, host's view: tx = to the chip */
	uint64_t r_tx, r_rx;            /* re-flash phase */
	uint64_t host_tx, host_rx;      /* whole session */
	uint64_t sim_rx, sim_tx;        /* whole session, the simulator's --stats */
};

static char tmpdir[PATH_MAX];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];

	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp);
	return s[n / 2];
}

/* ---- a transport that counts what the driver moves ---- */

struct counter {
	struct transport *in;
	uint64_t tx, rx;
};

static int c_read(struct transport *t, void *buf, size_t n, size_t *got, uint64_t dl,
		  struct fw_err *e)
{
	struct counter *c = t->priv;
	int rc = c->in->ops->read(c->in, buf, n, got, dl, e);

	if (rc == FW_OK)
		c->rx += *got;
	return rc;
}

static int c_write(struct transport *t, const void *buf, size_t n, size_t *done,
		   uint64_t dl, struct fw_err *e)
{
	struct counter *c = t->priv;
	int rc = c->in->ops->write(c->in, buf, n, done, dl, e);

	c->tx += *done;
	return rc;
}

static int c_set_baud(struct transport *t, unsigned baud, unsigned *actual, struct fw_err *e)
{
	struct counter *c = t->priv;
	int rc = transport_set_baud(c->in, baud, e);

	*actual = c->in->baud;
	return rc;
}

static int c_flush(struct transport *t, unsigned which, struct fw_err *e)
{
	return transport_flush(((struct counter *)t->priv)->in, which, e);
}

static int c_drain(struct transport *t, uint64_t dl, struct fw_err *e)
{
	return transport_drain(((struct counter *)t->priv)->in, dl, e);
}

static int c_set_lines(struct transport *t, int dtr, int rts, struct fw_err *e)
{
	return transport_set_lines(((struct counter *)t->priv)->in, dtr, rts, e);
}

static unsigned c_caps(const struct transport *t)
{
	return transport_caps(((const struct counter *)t->priv)->in);
}

static void c_close(struct transport *t)
{
	struct counter *c = t->priv;

	transport_close(c->in);
	c->in = NULL;
}

static const struct transport_ops counting_ops = {
	.name = "counting",
	.close = c_close,
	.set_baud = c_set_baud,
	.read = c_read,
	.write = c_write,
	.flush = c_flush,
	.drain = c_drain,
	.set_lines = c_set_lines,
	.caps = c_caps,
};

/* ---- the simulator ---- */

struct simproc {
	pid_t pid;
	int in, out;
	char path[128];
};

static const char *sim_binary(void)
{
	const char *s = getenv("FLASHWISE_SIM");

	return s && *s ? s : "build/flashwise-sim";
}

static int sim_stop(struct simproc *p);

static int sim_start(struct simproc *p, const struct bench_case *c, const char *flash,
		     const char *stats)
{
	const char *argv[] = { sim_binary(), c->chip, "--baud-pacing", "on", "--flash-timing",
			       c->flash_timing ? "on" : "off", "--boot", "download",
			       "--flash-file", flash, "--stats", stats,
			       "--exit-on-stdin-eof", NULL };
	int in[2], out[2];
	size_t n = 0;
	char ch;

	if (pipe(in) != 0)
		return -1;
	if (pipe(out) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	p->pid = fork();
	if (p->pid < 0) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return -1;
	}
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "bench: cannot run %s: %s (set FLASHWISE_SIM)\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	while (n + 1 < sizeof p->path && read(p->out, &ch, 1) == 1 && ch != '\n')
		p->path[n++] = ch;
	p->path[n] = '\0';
	if (strncmp(p->path, "/dev/", 5) != 0) {
		(void)sim_stop(p);
		return -1;
	}
	return 0;
}

/* Closing its stdin stops the simulator; it writes --stats on the way out. */
static int sim_stop(struct simproc *p)
{
	int st = -1;

	close(p->in);
	for (int i = 0; i < 5000 && waitpid(p->pid, &st, WNOHANG) == 0; i++)
		usleep(1000);
	if (st == -1) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
	}
	close(p->out);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int read_stats(const char *path, struct run_result *r)
{
	unsigned long long rx = 0, tx = 0;
	FILE *f = fopen(path, "r");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "rx_bytes %llu tx_bytes %llu", &rx, &tx) == 2;
	fclose(f);
	r->sim_rx = rx;
	r->sim_tx = tx;
	return ok ? 0 : -1;
}

/* The flash file holds exactly the image at 0x0. */
static int flash_matches(const char *path, const uint8_t *img, size_t len)
{
	uint8_t *buf = malloc(len);
	FILE *f = fopen(path, "rb");
	int ok = buf && f && fread(buf, 1, len, f) == len && memcmp(buf, img, len) == 0;

	if (f)
		fclose(f);
	free(buf);
	return ok ? 0 : -1;
}

/* The flash file a backup case starts with: img at 0x0, erased after. */
static int flash_prefill(const char *path, const struct strbuf *img)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(img->s, 1, img->len, f) == img->len;

	for (size_t i = img->len; ok && i < FLASH_BYTES; i++)
		ok = fputc(0xFF, f) != EOF;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* ---- images ---- */

static int make_image(const struct bench_case *c, const struct profile *p, size_t bytes,
		      struct strbuf *out)
{
	struct fw_err e = { 0 };

	if (c->content == CONTENT_RANDOM) {
		uint64_t x = 0x9E3779B97F4A7C15ull;

		for (size_t i = 0; i < bytes; i++) {
			uint8_t b;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b = (uint8_t)(x >> 24);
			strbuf_add(out, &b, 1);
		}
		return strbuf_failed(out) ? -1 : 0;
	}
	/* The sample's headers, checksum and hash add under 100 bytes. */
	if (sample_esp_image(p->family, p->flash_mode, p->flash_size, p->flash_freq_mhz,
			     "flashwise bench", bytes - 128, out, &e) != FW_OK) {
		fprintf(stderr, "bench: sample image: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static double deflate_ratio(const struct strbuf *img)
{
	uLongf clen = compressBound((uLong)img->len);
	uint8_t *cbuf = malloc(clen);
	double r = 0;

	if (cbuf && compress2(cbuf, &clen, (const uint8_t *)img->s, (uLong)img->len, 9) == Z_OK)
		r = (double)clen / (double)img->len;
	free(cbuf);
	return r;
}

/* ---- one run ---- */

static int fail(const char *what, const struct fw_err *e)
{
	fprintf(stderr, "bench: %s: %s\n", what, e->msg);
	return -1;
}

static int session(const struct bench_case *c, struct profile *p, const struct strbuf *img,
		   struct run_result *r)
{
	char flash[PATH_MAX], stats[PATH_MAX];
	struct simproc sp;
	struct counter cnt = { 0 };
	struct transport *t = NULL;
	struct device d;
	struct device_identity id;
	struct dev_esp_options o;
	struct image im;
	struct fw_err e = { 0 };
	uint64_t tx0, rx0;
	uint8_t probe[64];
	double t0;
	int rc = -1, simrc;

	memset(r, 0, sizeof *r);
	memset(&d, 0, sizeof d);
	image_init(&im);
	snprintf(flash, sizeof flash, "%s/flash.bin", tmpdir);
	snprintf(stats, sizeof stats, "%s/stats.txt", tmpdir);
	unlink(flash);
	unlink(stats);
	/* A backup reads what is there: the image, then erased flash. */
	if (c->backup && flash_prefill(flash, img) != 0) {
		fprintf(stderr, "bench: cannot write %s\n", flash);
		return -1;
	}
	if (sim_start(&sp, c, flash, stats) != 0) {
		fprintf(stderr, "bench: the simulator %s did not start\n", sim_binary());
		return -1;
	}
	if (image_add(&im, 0, img->s, img->len, &e) != FW_OK) {
		fail("image", &e);
		goto out;
	}
	/* ESP8266: the host simply talks at the bench rate (the ROM follows
	 * the SYNC). ESP32: the ROM rate, then CHANGE_BAUDRATE to flash_baud.
	 * ESP8266 backup: the ROM rate for the upload, then the helper's
	 * CHANGE_BAUDRATE to the bench rate. */
	if (c->backup) {
		p->rom_baud = p->flash_baud = 115200;
	} else if (c->compress) {
		p->rom_baud = 115200;
		p->flash_baud = c->baud;
	} else {
		p->rom_baud = p->flash_baud = c->baud;
	}
	if (transport_open(sp.path, p->rom_baud, &cnt.in, &e) != FW_OK) {
		fail("open", &e);
		goto out;
	}
	if (transport_wrap(&counting_ops, &cnt, sp.path, cnt.in->baud, &t, &e) != FW_OK) {
		transport_close(cnt.in);
		fail("wrap", &e);
		goto out;
	}
	d.ops = &dev_esp_ops;
	d.t = t;
	d.p = p;
	d.manual_entry = true; /* a pty has no reset lines; the sim boots in download */
	dev_esp_options_default(&o);
	o.manual_wait_ms = 5000;
	o.compress = c->compress;
	o.change_baud = true;
	o.skip_unchanged = false;
	o.helper = c->backup;
	o.helper_baud = c->backup ? c->baud : 0;
	if (dev_esp_set_options(&d, &o, &e) != FW_OK || d.ops->connect(&d, &e) != FW_OK ||
	    d.ops->identify(&d, &id, &e) != FW_OK || device_match(p, &id, &e) != FW_OK) {
		fail("connect", &e);
		goto out;
	}
	/* ESP32: attach, flash size and the baud change happen on the first
	 * flash operation; a small read does them before the clock starts.
	 * The same for the helper's baud change. */
	if ((c->compress || c->backup) && d.ops->read(&d, 0, sizeof probe, probe, &e) != FW_OK) {
		fail("prepare", &e);
		goto out;
	}
	if (c->backup) {
		uint8_t *buf = malloc(img->len);

		if (!buf || !dev_esp_helper_running(&d)) {
			fprintf(stderr, "bench: %s\n", buf ? "the helper is not running" :
				"out of memory");
			free(buf);
			goto out;
		}
		tx0 = cnt.tx;
		rx0 = cnt.rx;
		t0 = now();
		if (d.ops->read(&d, 0, (uint32_t)img->len, buf, &e) != FW_OK) {
			free(buf);
			fail("backup", &e);
			goto out;
		}
		r->t_write = now() - t0;
		r->w_tx = cnt.tx - tx0;
		r->w_rx = cnt.rx - rx0;
		rc = memcmp(buf, img->s, img->len) == 0 ? 0 : -1;
		free(buf);
		if (rc != 0)
			fprintf(stderr, "bench: the backup differs from the flash\n");
		goto out;
	}
	tx0 = cnt.tx;
	rx0 = cnt.rx;
	t0 = now();
	if (d.ops->write(&d, &im, &e) != FW_OK) {
		fail("write", &e);
		goto out;
	}
	r->t_write = now() - t0;
	r->w_tx = cnt.tx - tx0;
	r->w_rx = cnt.rx - rx0;
	if (c->reflash) {
		o.skip_unchanged = true;
		if (dev_esp_set_options(&d, &o, &e) != FW_OK) {
			fail("options", &e);
			goto out;
		}
		tx0 = cnt.tx;
		rx0 = cnt.rx;
		t0 = now();
		if (d.ops->write(&d, &im, &e) != FW_OK) {
			fail("re-flash", &e);
			goto out;
		}
		r->t_reflash = now() - t0;
		r->r_tx = cnt.tx - tx0;
		r->r_rx = cnt.rx - rx0;
	}
	rc = 0;
out:
	if (d.ops)
		d.ops->close(&d);
	r->host_tx = cnt.tx;
	r->host_rx = cnt.rx;
	if (t)
		transport_close(t);
	image_free(&im);
	simrc = sim_stop(&sp);
	if (rc == 0 && (simrc != 0 || read_stats(stats, r) != 0)) {
		fprintf(stderr, "bench: the simulator did not exit cleanly or wrote no stats\n");
		rc = -1;
	}
	if (rc == 0 && flash_matches(flash, (const uint8_t *)img->s, img->len) != 0) {
		fprintf(stderr, "bench: the simulated flash does not hold the image\n");
		rc = -1;
	}
	/* Every byte the driver sent reached the simulator, and it sent at
	 * least what the driver read: otherwise the counts mean nothing. */
	if (rc == 0 && (r->host_tx != r->sim_rx || r->host_rx > r->sim_tx)) {
		fprintf(stderr, "bench: byte counts disagree: host sent %llu, sim got %llu; "
			"host read %llu, sim sent %llu\n", (unsigned long long)r->host_tx,
			(unsigned long long)r->sim_rx, (unsigned long long)r->host_rx,
			(unsigned long long)r->sim_tx);
		rc = -1;
	}
	unlink(flash);
	unlink(stats);
	return rc;
}

static int run_case(const struct bench_case *c, size_t bytes)
{
	struct profile *p = calloc(1, sizeof *p);
	struct profile_diags *diags = calloc(1, sizeof *diags);
	struct strbuf img = STRBUF_INIT;
	struct run_result r[MAX_RUNS];
	double tw[MAX_RUNS], tr[MAX_RUNS], line_s, w, ratio;
	struct fw_err e = { 0 };
	int i, rc = -1;

	if (!p || !diags)
		goto out;
	if (profile_load(c->profile, p, diags, &e) != FW_OK) {
		fail(c->profile, &e);
		goto out;
	}
	if (make_image(c, p, bytes, &img) != 0)
		goto out;
	for (i = 0; i < c->runs; i++) {
		if (session(c, p, &img, &r[i]) != 0)
			goto out;
		tw[i] = r[i].t_write;
		tr[i] = r[i].t_reflash;
	}
	w = median(tw, c->runs);
	line_s = (double)img.len * 10.0 / c->baud;
	ratio = deflate_ratio(&img);
	printf("%-36s %7u  %zu B  %s %7.2f s  (%d run%s)\n", c->label, c->baud, img.len,
	       c->backup ? "backup" : "write", w, c->runs, c->runs == 1 ? "" : "s, median");
	printf("    wire during %s: %llu B to chip, %llu B from chip; session: host sent %llu = "
	       "sim got %llu, host read %llu of sim's %llu\n", c->backup ? "backup" : "write",
	       (unsigned long long)r[0].w_tx, (unsigned long long)r[0].w_rx,
	       (unsigned long long)r[0].host_tx, (unsigned long long)r[0].sim_rx,
	       (unsigned long long)r[0].host_rx, (unsigned long long)r[0].sim_tx);
	if (c->backup) {
		/* Line time of the payload alone over the wall time. */
		printf("    efficiency %.1f %% of line rate (payload line time %.2f s; all wire "
		       "bytes at line rate %.2f s; target >= 90 %%)%s\n", 100.0 * line_s / w,
		       line_s, (double)(r[0].w_tx + r[0].w_rx) * 10.0 / c->baud,
		       c->flash_timing ? "; flash read time modelled" : "");
	} else if (!c->compress) {
		/* Line time of the payload alone over the wall time. */
		printf("    efficiency %.1f %% (payload line time %.2f s; all wire bytes at "
		       "line rate %.2f s)%s\n", 100.0 * line_s / w, line_s,
		       (double)(r[0].w_tx + r[0].w_rx) * 10.0 / c->baud,
		       c->flash_timing ? "; erase/program time modelled" : "");
	} else {
		printf("    effective %.0f B/s vs line %.0f B/s: %.2fx the line rate (deflate "
		       "to %.1f %%)%s\n", (double)img.len / w, c->baud / 10.0, line_s / w,
		       100.0 * ratio, c->flash_timing ? "; erase/program time modelled" : "");
	}
	if (c->reflash) {
		double rf = median(tr, c->runs);

		printf("    re-flash unchanged (skip_unchanged): %.2f s = %.1f %% of the full "
		       "write; wire %llu B to chip, %llu B from chip\n", rf, 100.0 * rf / w,
		       (unsigned long long)r[0].r_tx, (unsigned long long)r[0].r_rx);
	}
	fflush(stdout);
	rc = 0;
out:
	strbuf_free(&img);
	free(diags);
	free(p);
	return rc;
}

int main(int argc, char **argv)
{
	const char *kb = getenv("FW_BENCH_ESP_KB");
	size_t bytes = 1024u * 1024u;
	size_t i;
	int rc = 0;

	if (kb && *kb) {
		char *end;
		unsigned long v = strtoul(kb, &end, 10);

		if (*end || v < 8 || v * 1024u > FLASH_BYTES / 2) {
			fprintf(stderr, "bench: FW_BENCH_ESP_KB '%s': give 8..2048\n", kb);
			return 2;
		}
		bytes = v * 1024u;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fw-bench-esp-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("bench: mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	printf("simulated line, 10 bits/byte; write (or backup) phase only; %s\n", sim_binary());
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* An optional argument picks cases whose label contains it. */
		if (argc > 1 && !strstr(cases[i].label, argv[1]))
			continue;
		if (run_case(&cases[i], bytes) != 0)
			rc = 1;
	}
	rmdir(tmpdir);
	return rc;
}
