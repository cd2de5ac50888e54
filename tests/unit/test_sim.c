/* flashwise-sim end to end: starts the real simulator binary, opens its pty
 * raw at 115200 and checks the ROM loader protocol byte for byte.
 *
 * The simulator is looked up next to this test binary (BUILD/flashwise-sim,
 * so the sanitizer build tests the sanitizer sim), then $FLASHWISE_SIM,
 * then ./flashwise-sim. Run from the repository root after `make`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "esp_proto.h"
#include "helper_blob.h"
#include "helper_proto.h"
#include "profile.h"
#include "sample.h"
#include "slip.h"
#include "strbuf.h"

#define MB (1024u * 1024u)

static char sim_bin[PATH_MAX];
static char tmpdir[PATH_MAX];

struct simproc {
	pid_t pid;
	int in;      /* write end of its stdin: closing it stops the sim */
	int out;     /* its stdout */
	int fd;      /* our side of the pty */
	char path[128];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void tmp_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void set_baud(int fd, speed_t sp)
{
	struct termios t;

	assert_int_equal(tcgetattr(fd, &t), 0);
	cfmakeraw(&t);
	cfsetispeed(&t, sp);
	cfsetospeed(&t, sp);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	assert_int_equal(tcsetattr(fd, TCSANOW, &t), 0);
}

/* Reads whatever arrives within ms (stops early once want bytes are in). */
static size_t read_for(int fd, uint8_t *buf, size_t cap, size_t want, unsigned ms)
{
	size_t n = 0;
	uint64_t end = now_ms() + ms;

	while (n < cap && (want == 0 || n < want)) {
		uint64_t t = now_ms();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (t >= end)
			break;
		if (poll(&pf, 1, (int)(end - t)) <= 0)
			continue;
		r = read(fd, buf + n, cap - n);
		if (r > 0)
			n += (size_t)r;
	}
	return n;
}

/* Drops the boot banner and anything else pending. */
static void drain(int fd, unsigned ms)
{
	uint8_t junk[4096];

	while (read_for(fd, junk, sizeof junk, 0, ms) > 0)
		;
}

static void sim_start(struct simproc *p, const char *const *args)
{
	const char *argv[32];
	int in[2], out[2];
	size_t n = 0, i = 0;
	char c;

	argv[n++] = sim_bin;
	while (args[i] && n < 28)
		argv[n++] = args[i++];
	argv[n++] = "--exit-on-stdin-eof";
	argv[n] = NULL;
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execv(sim_bin, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	/* First line of stdout: the pty slave path. */
	n = 0;
	while (n + 1 < sizeof p->path && read(p->out, &c, 1) == 1 && c != '\n')
		p->path[n++] = c;
	p->path[n] = '\0';
	assert_true(strncmp(p->path, "/dev/", 5) == 0);
	p->fd = open(p->path, O_RDWR | O_NOCTTY);
	assert_true(p->fd >= 0);
	set_baud(p->fd, B115200);
}

/* Stops the sim by closing its stdin; returns its exit status. */
static int sim_stop(struct simproc *p)
{
	int st = -1;
	uint64_t end = now_ms() + 5000;

	if (p->fd >= 0)
		close(p->fd);
	close(p->in);
	while (waitpid(p->pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			break;
		}
		usleep(2000);
	}
	close(p->out);
	return st;
}

static void send_bytes(int fd, const uint8_t *b, size_t n)
{
	assert_int_equal(write(fd, b, n), (ssize_t)n);
}

static void send_req(int fd, const struct esp_proto_req *r)
{
	struct strbuf w = STRBUF_INIT;

	assert_int_equal(esp_proto_request_frame(r, &w, NULL), FW_OK);
	assert_false(strbuf_failed(&w));
	send_bytes(fd, (const uint8_t *)w.s, w.len);
	strbuf_free(&w);
}

static void expect_bytes(int fd, const uint8_t *want, size_t n)
{
	uint8_t got[2048];
	size_t len;

	assert_true(n <= sizeof got);
	len = read_for(fd, got, sizeof got, n, 2000);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, n);
}

/* Sends r and decodes the first reply frame for its opcode into frame. */
static size_t transact(int fd, const struct esp_proto_req *r, uint8_t *frame, size_t cap)
{
	uint8_t buf[512], store[ESP_PROTO_PACKET_MAX];
	struct slip_decoder d;
	uint64_t end = now_ms() + 2000;

	slip_decoder_init(&d, store, sizeof store);
	send_req(fd, r);
	while (now_ms() < end) {
		size_t n = read_for(fd, buf, sizeof buf, 1, 100);

		for (size_t off = 0; off < n;) {
			struct slip_event ev;

			off += slip_decoder_feed(&d, buf + off, n - off, &ev);
			if (ev.kind == SLIP_EV_FRAME && ev.len >= 8 && ev.frame[1] == r->op) {
				assert_true(ev.len <= cap);
				memcpy(frame, ev.frame, ev.len);
				return ev.len;
			}
		}
	}
	return 0;
}

static const uint8_t sync_req[] = {
	0xC0, 0x00, 0x08, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x07, 0x12, 0x20,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0xC0,
};

static void start_quiet(struct simproc *p, const char *chip, const char *flash_file)
{
	const char *args[12];
	size_t n = 0;

	args[n++] = chip;
	args[n++] = "--baud-pacing";
	args[n++] = "off";
	if (flash_file) {
		args[n++] = "--flash-file";
		args[n++] = flash_file;
	}
	args[n] = NULL;
	sim_start(p, args);
	/* The download banner is always there: wait for it, then drop it. */
	assert_true(read_for(p->fd, (uint8_t[64]){ 0 }, 64, 1, 2000) > 0);
	drain(p->fd, 50);
}

static void do_sync(int fd, size_t status_len)
{
	uint8_t want[8 * 14];
	size_t one = 10 + status_len, k = 0;

	for (int i = 0; i < 8; i++) {
		const uint8_t head[] = { 0xC0, 0x01, 0x08, (uint8_t)status_len, 0x00,
					 0x07, 0x07, 0x12, 0x20 };
		memcpy(want + k, head, sizeof head);
		k += sizeof head;
		memset(want + k, 0, status_len);
		k += status_len;
		want[k++] = 0xC0;
	}
	assert_int_equal(k, 8 * one);
	send_bytes(fd, sync_req, sizeof sync_req);
	expect_bytes(fd, want, k);
}

/* ---- ESP8266 ---- */

static void test_esp8266_sync_and_magic(void **state)
{
	struct simproc p;
	/* The documented trace (reference section 3, esptool#620). */
	const uint8_t rr[] = { 0xC0, 0x00, 0x0A, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
			       0x00, 0x10, 0x00, 0x40, 0xC0 };
	const uint8_t want[] = { 0xC0, 0x01, 0x0A, 0x02, 0x00, 0x01, 0xC1, 0xF0, 0xFF,
				 0x00, 0x00, 0xC0 };

	(void)state;
	start_quiet(&p, "esp8266", NULL);
	do_sync(p.fd, 2);
	send_bytes(p.fd, rr, sizeof rr);
	expect_bytes(p.fd, want, sizeof want);
	assert_int_equal(sim_stop(&p), 0);
}

static void test_esp8266_sync_needs_autobaud_run(void **state)
{
	struct simproc p;
	uint8_t bad[sizeof sync_req], got[64];

	(void)state;
	start_quiet(&p, "esp8266", NULL);
	memcpy(bad, sync_req, sizeof bad);
	bad[20] = 0x54; /* one byte of the 0x55 run wrong */
	send_bytes(p.fd, bad, sizeof bad);
	assert_int_equal(read_for(p.fd, got, sizeof got, 0, 200), 0);
	do_sync(p.fd, 2); /* a good SYNC still works */
	assert_int_equal(sim_stop(&p), 0);
}

static void test_esp8266_otp_clock_and_unsupported(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_esp8266_otp otp;
	struct esp_proto_esp8266_id id;
	struct esp_proto_xtal x;
	uint8_t f[64];
	size_t n;
	const char *args[] = { "esp8266", "--baud-pacing", "off", "--mac",
			       "18:fe:34:a1:b2:c3", NULL };
	/* SPI_ATTACH does not exist in the ESP8266 ROM: "invalid message". */
	const uint8_t want[] = { 0xC0, 0x01, 0x0D, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				 0x01, 0x05, 0xC0 };

	(void)state;
	sim_start(&p, args);
	drain(p.fd, 50);
	for (int i = 0; i < 4; i++) {
		esp_proto_req_read_reg(&r, ESP_PROTO_ESP8266_OTP_MAC0 + 4u * (uint32_t)i);
		n = transact(p.fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
		otp.w[i] = resp.value;
	}
	assert_int_equal(esp_proto_esp8266_decode(&otp, &id, NULL), FW_OK);
	assert_memory_equal(id.mac, ((const uint8_t[]){ 0x18, 0xFE, 0x34, 0xA1, 0xB2, 0xC3 }), 6);

	esp_proto_req_read_reg(&r, ESP_PROTO_ESP8266_UART_CLKDIV);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_int_equal(resp.value & 0xFFFFF, 0x1C4); /* the real trace */
	esp_proto_xtal(ESP_FAMILY_ESP8266, resp.value, 115200, &x);
	assert_int_equal(x.mhz, 26);
	assert_true(x.plausible);

	esp_proto_req_spi_attach(&r, ESP_LOADER_ESP32_ROM, 0);
	send_req(p.fd, &r);
	expect_bytes(p.fd, want, sizeof want);
	assert_int_equal(sim_stop(&p), 0);
}

/* Runs RDID through the SPI user-command registers; returns W0. */
static uint32_t rdid(int fd, enum esp_proto_family fam, size_t status_len)
{
	struct esp_proto_spi_cmd c;
	struct esp_proto_reg_write w[ESP_SPI_WRITES_MAX];
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t f[64];
	size_t n = 0, len;

	esp_proto_spi_rdid(&c);
	assert_int_equal(esp_proto_spi_program(fam, &c, w, &n, NULL), FW_OK);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(esp_proto_req_write_reg(&r, &w[i], 1, NULL), FW_OK);
		len = transact(fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, len, 0, status_len, &resp, NULL),
				 FW_OK);
		assert_true(esp_proto_response_ok(&resp));
	}
	esp_proto_req_read_reg(&r, esp_proto_spi_regs(fam)->cmd);
	len = transact(fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, len, 0, status_len, &resp, NULL), FW_OK);
	assert_int_equal(resp.value & ESP_SPI_CMD_USR, 0); /* command done */
	esp_proto_req_read_reg(&r, esp_proto_spi_regs(fam)->w0);
	len = transact(fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, len, 0, status_len, &resp, NULL), FW_OK);
	return resp.value;
}

static void flash_begin(int fd, uint32_t size, uint32_t blocks, uint32_t offset,
			size_t status_len)
{
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_begin b = { .size = size, .blocks = blocks,
				     .block_size = ESP_PROTO_ROM_WRITE_BLOCK, .offset = offset };
	uint8_t f[64];
	size_t n;

	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	n = transact(fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, status_len, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
}

static void test_esp8266_flash_id_needs_attach(void **state)
{
	struct simproc p;
	struct esp_proto_flash_id id;

	(void)state;
	start_quiet(&p, "esp8266", NULL);
	/* Not attached yet: nothing answers, W0 keeps the 0 written to it. */
	assert_int_equal(rdid(p.fd, ESP_FAMILY_ESP8266, 2), 0);
	flash_begin(p.fd, 0, 0, 0, 2); /* FLASH_BEGIN(0) attaches */
	assert_int_equal(rdid(p.fd, ESP_FAMILY_ESP8266, 2), 0x1640EF);
	assert_int_equal(esp_proto_jedec_decode(0x1640EF, &id, NULL), FW_OK);
	assert_int_equal(id.size, 4 * MB);
	assert_int_equal(sim_stop(&p), 0);
}

static void make_flash_file(const char *path, uint32_t size, uint8_t fill)
{
	uint8_t *buf = malloc(size);
	FILE *f = fopen(path, "wb");

	assert_non_null(buf);
	assert_non_null(f);
	memset(buf, fill, size);
	assert_int_equal(fwrite(buf, 1, size, f), size);
	fclose(f);
	free(buf);
}

static uint8_t *load_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void test_esp8266_erase_quirk_in_flash_file(void **state)
{
	struct simproc p;
	char ff[PATH_MAX];
	uint8_t *img;
	size_t len;
	struct esp_proto_sectors er;

	(void)state;
	tmp_path(ff, sizeof ff, "erase.bin");
	make_flash_file(ff, 4 * MB, 0x00); /* "programmed" everywhere */
	start_quiet(&p, "esp8266", ff);
	/* The naive erase size for one sector at 0x3FC000 ... */
	flash_begin(p.fd, 0x1000, 4, 0x3FC000, 2);
	assert_int_equal(sim_stop(&p), 0);
	img = load_file(ff, &len);
	assert_int_equal(len, 4 * MB);
	/* ... erases twice as much (the ROM bug): 0x3FD000 is wiped too. */
	esp_proto_rom_erased(0x3FC000, 0x1000, &er);
	assert_int_equal(er.first * 0x1000, 0x3FC000);
	assert_int_equal(er.count, 2);
	assert_true(all_bytes(img + 0x3FC000, 0x2000, 0xFF));
	assert_true(all_bytes(img + 0x3FB000, 0x1000, 0x00));
	assert_true(all_bytes(img + 0x3FE000, 0x2000, 0x00));
	assert_true(all_bytes(img, 0x3FC000, 0x00));
	free(img);

	/* The compensated size for two sectors erases exactly those two. */
	make_flash_file(ff, 4 * MB, 0x00);
	start_quiet(&p, "esp8266", ff);
	flash_begin(p.fd, esp_proto_erase_size(0x10000, 0x2000), 8, 0x10000, 2);
	assert_int_equal(sim_stop(&p), 0);
	img = load_file(ff, &len);
	assert_true(all_bytes(img + 0x10000, 0x2000, 0xFF));
	assert_true(all_bytes(img + 0x12000, 0x1000, 0x00));
	assert_true(all_bytes(img + 0xF000, 0x1000, 0x00));
	free(img);
	unlink(ff);
}

static void send_data(int fd, uint8_t op, uint32_t seq, const uint8_t *blk, size_t n,
		      bool break_checksum)
{
	struct esp_proto_req r;

	assert_int_equal(esp_proto_req_data(&r, op, seq, blk, n, NULL), FW_OK);
	if (break_checksum)
		r.checksum ^= 0x01;
	send_req(fd, &r);
}

static void test_esp8266_flash_data_checksum_and_persistence(void **state)
{
	struct simproc p;
	char ff[PATH_MAX];
	uint8_t blk[0x400], *img;
	size_t len;
	const uint8_t bad[] = { 0xC0, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				0x01, 0x07, 0xC0 };
	const uint8_t good[] = { 0xC0, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				 0x00, 0x00, 0xC0 };

	(void)state;
	for (size_t i = 0; i < sizeof blk; i++)
		blk[i] = (uint8_t)(i * 7 + 1);
	tmp_path(ff, sizeof ff, "data.bin");
	unlink(ff);
	start_quiet(&p, "esp8266", ff); /* created 0xFF-filled */
	flash_begin(p.fd, esp_proto_erase_size(0x20000, 0x800), 2, 0x20000, 2);
	send_data(p.fd, ESP_OP_FLASH_DATA, 0, blk, sizeof blk, true);
	expect_bytes(p.fd, bad, sizeof bad);
	send_data(p.fd, ESP_OP_FLASH_DATA, 1, blk, sizeof blk, false);
	expect_bytes(p.fd, good, sizeof good);
	assert_int_equal(sim_stop(&p), 0);
	img = load_file(ff, &len);
	assert_int_equal(len, 4 * MB);
	assert_true(all_bytes(img + 0x20000, 0x400, 0xFF)); /* the bad block: not written */
	assert_memory_equal(img + 0x20400, blk, sizeof blk);
	assert_true(all_bytes(img, 0x20000, 0xFF));
	free(img);
	unlink(ff);
}

/* Writes a sample image to offset 0 of a new flash file through the ROM
 * protocol, the way a driver does (compensated erase, 0x400 blocks). */
static void write_image_via_rom(const char *ff, const struct strbuf *im)
{
	struct simproc p;
	uint32_t blocks = esp_proto_blocks((uint32_t)im->len, 0x400);
	uint8_t blk[0x400];
	const uint8_t good[] = { 0xC0, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				 0x00, 0x00, 0xC0 };

	start_quiet(&p, "esp8266", ff);
	flash_begin(p.fd, esp_proto_erase_size(0, blocks * 0x400u), blocks, 0, 2);
	for (uint32_t i = 0; i < blocks; i++) {
		size_t n = im->len - i * 0x400u < 0x400 ? im->len - i * 0x400u : 0x400;

		memset(blk, 0xFF, sizeof blk);
		memcpy(blk, im->s + i * 0x400u, n);
		send_data(p.fd, ESP_OP_FLASH_DATA, i, blk, sizeof blk, false);
		expect_bytes(p.fd, good, sizeof good);
	}
	assert_int_equal(sim_stop(&p), 0);
}

static bool contains(const uint8_t *hay, size_t n, const char *needle)
{
	size_t l = strlen(needle);

	for (size_t i = 0; i + l <= n; i++)
		if (!memcmp(hay + i, needle, l))
			return true;
	return false;
}

static void lines_event(const char *file, const char *dev, int dtr, int rts)
{
	FILE *f = fopen(file, "a");

	assert_non_null(f);
	fprintf(f, "DTR=%d RTS=%d t=%llu dev=%s why=set\n", dtr, rts,
		(unsigned long long)now_ns(), dev);
	fclose(f);
}

static void test_esp8266_boot_shows_sample_banner(void **state)
{
	struct simproc p;
	char ff[PATH_MAX], lf[PATH_MAX];
	struct strbuf im = STRBUF_INIT;
	uint8_t out[4096];
	size_t n;
	const char *args[] = { "esp8266", "--baud-pacing", "off", "--flash-file", ff,
			       "--lines", lf, NULL };

	(void)state;
	tmp_path(ff, sizeof ff, "boot.bin");
	tmp_path(lf, sizeof lf, "lines.txt");
	unlink(ff);
	unlink(lf);
	assert_int_equal(sample_esp_image(PROFILE_FAMILY_ESP8266, PROFILE_MODE_DIO, 4 * MB, 40,
					  "sim says hello", 0, &im, NULL),
			 FW_OK);
	write_image_via_rom(ff, &im);

	/* Second run sees the same flash; a hard reset (RTS pulse, DTR
	 * released) boots it. */
	sim_start(&p, args);
	drain(p.fd, 50);
	lines_event(lf, p.path, 0, 1); /* EN low */
	usleep(20000);
	lines_event(lf, p.path, 0, 0); /* EN high, GPIO0 high */
	n = read_for(p.fd, out, sizeof out, 0, 300);
	assert_true(contains(out, n, "sim says hello"));
	assert_false(contains(out, n, SAMPLE_BANNER_TAG));
	/* The ROM part goes at 74880: garbage at 115200. */
	assert_false(contains(out, n, "ets Jan"));
	/* The app does not answer SYNC. */
	send_bytes(p.fd, sync_req, sizeof sync_req);
	assert_int_equal(read_for(p.fd, out, sizeof out, 0, 150), 0);

	/* Reset into download mode the "tight" way: (1,1) -> (0,1) -> (1,0). */
	lines_event(lf, p.path, 1, 1);
	lines_event(lf, p.path, 0, 1);
	usleep(20000);
	lines_event(lf, p.path, 1, 0);
	usleep(60000);
	lines_event(lf, p.path, 0, 0);
	n = read_for(p.fd, out, sizeof out, 0, 150);
	assert_true(n > 0); /* the garbled download banner */
	assert_false(contains(out, n, "sim says hello"));
	do_sync(p.fd, 2);
	assert_int_equal(sim_stop(&p), 0);

	/* Broken image: the ROM complains instead of running it. */
	{
		const char *a2[] = { "esp8266", "--baud-pacing", "off", "--flash-file", ff,
				     "--boot", "flash", NULL };
		int fd = open(ff, O_RDWR);
		uint8_t b;

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &b, 1, (off_t)(im.len - 1)), 1);
		b ^= 0x5A; /* the checksum byte */
		assert_int_equal(pwrite(fd, &b, 1, (off_t)(im.len - 1)), 1);
		close(fd);
		sim_start(&p, a2);
		n = read_for(p.fd, out, sizeof out, 0, 300);
		assert_true(n > 0);
		assert_false(contains(out, n, "sim says hello"));
		assert_int_equal(sim_stop(&p), 0);
	}
	strbuf_free(&im);
	unlink(ff);
	unlink(lf);
}

static void test_esp8266_mem_upload_stays_in_loader(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_begin b = { .size = 64, .blocks = 1, .block_size = 64,
				     .offset = 0x40100000 };
	uint8_t code[64], f[64];
	size_t n;

	(void)state;
	memset(code, 0xA5, sizeof code);
	start_quiet(&p, "esp8266", NULL);
	assert_int_equal(esp_proto_req_mem_begin(&r, &b, NULL), FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	send_data(p.fd, ESP_OP_MEM_DATA, 0, code, sizeof code, true);
	{
		const uint8_t bad[] = { 0xC0, 0x01, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
					0x01, 0x07, 0xC0 };
		expect_bytes(p.fd, bad, sizeof bad);
	}
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_MEM_DATA, 0, code, sizeof code, NULL),
			 FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	esp_proto_req_mem_end(&r, 0x40100010);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	do_sync(p.fd, 2); /* still the ROM */
	assert_int_equal(sim_stop(&p), 0);
}

/* ---- flashwise's RAM helper on the simulated ESP8266 ---- */

/* Frames as they come off the pty, one at a time (several may arrive in
 * one read). */
struct frame_reader {
	int fd;
	struct slip_decoder d;
	uint8_t store[ESP_PROTO_PACKET_MAX];
	uint8_t pend[8192];
	size_t pend_len, pend_off;
};

static void reader_init(struct frame_reader *fr, int fd)
{
	memset(fr, 0, sizeof *fr);
	fr->fd = fd;
	slip_decoder_init(&fr->d, fr->store, sizeof fr->store);
}

/* The next frame (copied to out) within ms; 0 on silence. */
static size_t next_frame(struct frame_reader *fr, uint8_t *out, size_t cap, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	for (;;) {
		while (fr->pend_off < fr->pend_len) {
			struct slip_event ev;

			fr->pend_off += slip_decoder_feed(&fr->d, fr->pend + fr->pend_off,
							  fr->pend_len - fr->pend_off, &ev);
			if (ev.kind == SLIP_EV_FRAME) {
				assert_true(ev.len <= cap);
				memcpy(out, ev.frame, ev.len);
				return ev.len;
			}
		}
		if (now_ms() >= end)
			return 0;
		fr->pend_off = 0;
		fr->pend_len = read_for(fr->fd, fr->pend, sizeof fr->pend, 1, 50);
	}
}

/* MEM_BEGIN / MEM_DATA for every segment of helper_blob.h, then MEM_END:
 * what the driver does. Returns the first frame after MEM_END. */
static size_t upload_helper(struct frame_reader *rd, uint8_t *out, size_t cap)
{
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t f[64];
	size_t n;

	for (size_t i = 0; i < HELPER_BLOB_SEGMENTS; i++) {
		const struct helper_blob_segment *g = &helper_blob_segments[i];
		struct esp_proto_begin b = { .size = g->len,
					     .blocks = esp_proto_blocks(g->len, ESP_PROTO_MEM_BLOCK),
					     .block_size = ESP_PROTO_MEM_BLOCK, .offset = g->addr };

		assert_int_equal(esp_proto_req_mem_begin(&r, &b, NULL), FW_OK);
		n = transact(rd->fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
		assert_true(esp_proto_response_ok(&resp));
		for (uint32_t seq = 0; seq < b.blocks; seq++) {
			uint32_t off = seq * ESP_PROTO_MEM_BLOCK;
			uint32_t len = g->len - off < ESP_PROTO_MEM_BLOCK ? g->len - off
									   : ESP_PROTO_MEM_BLOCK;

			assert_int_equal(esp_proto_req_data(&r, ESP_OP_MEM_DATA, seq, g->data + off,
							    len, NULL),
					 FW_OK);
			n = transact(rd->fd, &r, f, sizeof f);
			assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
			assert_true(esp_proto_response_ok(&resp));
		}
	}
	esp_proto_req_mem_end(&r, HELPER_BLOB_ENTRY);
	send_req(rd->fd, &r);
	return next_frame(rd, out, cap, 2000);
}

static void test_esp8266_helper_runs_uploaded_blob(void **state)
{
	struct simproc p;
	struct frame_reader rd;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_read_stream st;
	char ff[PATH_MAX];
	static uint8_t img[256 * 1024], frame[ESP_PROTO_PACKET_MAX], got[64 * 1024];
	uint8_t md5[16], want[16], ackf[4];
	const uint32_t off = 0x20000, len = 64 * 1024;
	size_t n;
	FILE *f;

	(void)state;
	/* A flash with something to read back. */
	for (size_t i = 0; i < sizeof img; i++)
		img[i] = (uint8_t)(i * 131u + (i >> 9));
	tmp_path(ff, sizeof ff, "helper.bin");
	f = fopen(ff, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, sizeof img, f), sizeof img);
	fclose(f);
	{
		const char *args[] = { "esp8266", "--baud-pacing", "off", "--flash-size", "256KB",
				       "--flash-file", ff, NULL };

		sim_start(&p, args);
	}
	drain(p.fd, 50);
	reader_init(&rd, p.fd);

	/* No MEM_END answer: the helper owns the UART and greets. */
	n = upload_helper(&rd, frame, sizeof frame);
	assert_int_equal(n, HELPER_PROTO_GREETING_LEN);
	assert_memory_equal(frame, HELPER_PROTO_GREETING, HELPER_PROTO_GREETING_LEN);

	/* SYNC: one answer, value 0 (a stub, not the ROM). */
	esp_proto_req_sync(&r);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_sync_reply_from_stub(&resp));
	assert_int_equal(next_frame(&rd, frame, sizeof frame, 100), 0);

	/* READ_FLASH of 64 KB: the flash bytes and their MD5. */
	assert_int_equal(esp_proto_read_stream_init(&st, len, 4096, 64, NULL), FW_OK);
	assert_int_equal(esp_proto_req_read_flash(&r, off, len, 4096, 64, NULL), FW_OK);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_match(frame, n, ESP_OP_READ_FLASH), ESP_MATCH_YES);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	while (!esp_proto_read_stream_done(&st)) {
		uint32_t at = st.received;

		n = next_frame(&rd, frame, sizeof frame, 2000);
		assert_int_equal(esp_proto_read_stream_take(&st, n, ackf, NULL), FW_OK);
		memcpy(got + at, frame, n);
		{
			struct strbuf w = STRBUF_INIT;

			slip_append_frame(&w, ackf, sizeof ackf);
			send_bytes(p.fd, (const uint8_t *)w.s, w.len);
			strbuf_free(&w);
		}
	}
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_read_stream_digest(&st, frame, n, md5, NULL), FW_OK);
	assert_memory_equal(got, img + off, len);
	{
		unsigned mdlen = 0;

		assert_int_equal(EVP_Digest(img + off, len, want, &mdlen, EVP_md5(), NULL), 1);
	}
	assert_memory_equal(md5, want, 16);

	/* Exact erase through the helper, seen in the flash file. */
	assert_int_equal(esp_proto_req_erase_region(&r, 0x1000, 0x2000, NULL), FW_OK);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));

	/* CHANGE_BAUDRATE: answered at the old rate, then the new one. */
	esp_proto_req_change_baud(&r, ESP_LOADER_STUB, 230400, 115200);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	set_baud(p.fd, B230400);
	esp_proto_req_sync(&r);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_int_equal(resp.op, ESP_OP_SYNC);

	/* FLASH_END(0) reboots: the ROM loader is back (8 SYNC answers). */
	{
		struct esp_proto_begin b = { .size = 0, .blocks = 0, .block_size = 0x400,
					     .offset = 0, .encrypted_word = true };

		assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	}
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	esp_proto_req_flash_end(&r, ESP_PROTO_END_REBOOT);
	send_req(p.fd, &r);
	n = next_frame(&rd, frame, sizeof frame, 2000);
	assert_int_equal(esp_proto_response_parse(frame, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	usleep(50000);
	drain(p.fd, 50);
	do_sync(p.fd, 2);
	assert_int_equal(sim_stop(&p), 0);

	f = fopen(ff, "rb");
	assert_non_null(f);
	assert_int_equal(fread(img, 1, sizeof img, f), sizeof img);
	fclose(f);
	for (size_t i = 0; i < sizeof img; i++) {
		uint8_t orig = (uint8_t)(i * 131u + (i >> 9));

		assert_int_equal(img[i], i >= 0x1000 && i < 0x3000 ? 0xFF : orig);
	}
	unlink(ff);
}

static void test_esp8266_altered_helper_stays_in_loader(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	static uint8_t code[8192];
	const struct helper_blob_segment *g = &helper_blob_segments[0];
	struct esp_proto_begin b = { .size = g->len, .blocks = 1, .block_size = ESP_PROTO_MEM_BLOCK,
				     .offset = g->addr };
	uint8_t f[64];
	size_t n;

	(void)state;
	/* One byte different in the code: not the helper, the ROM answers
	 * MEM_END and stays in the loader. */
	assert_true(g->len <= sizeof code && g->len <= ESP_PROTO_MEM_BLOCK);
	memcpy(code, g->data, g->len);
	code[g->len / 2] ^= 0x01;
	start_quiet(&p, "esp8266", NULL);
	assert_int_equal(esp_proto_req_mem_begin(&r, &b, NULL), FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_MEM_DATA, 0, code, g->len, NULL), FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	for (size_t i = 1; i < HELPER_BLOB_SEGMENTS; i++) {
		const struct helper_blob_segment *h = &helper_blob_segments[i];
		struct esp_proto_begin hb = { .size = h->len, .blocks = 1,
					      .block_size = ESP_PROTO_MEM_BLOCK, .offset = h->addr };

		assert_true(h->len <= ESP_PROTO_MEM_BLOCK);
		assert_int_equal(esp_proto_req_mem_begin(&r, &hb, NULL), FW_OK);
		n = transact(p.fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
		assert_int_equal(esp_proto_req_data(&r, ESP_OP_MEM_DATA, 0, h->data, h->len, NULL),
				 FW_OK);
		n = transact(p.fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	}
	esp_proto_req_mem_end(&r, HELPER_BLOB_ENTRY);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 2, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	do_sync(p.fd, 2); /* still the ROM */
	assert_int_equal(sim_stop(&p), 0);
}

/* ---- ESP32 ---- */

static void esp32_attach(int fd)
{
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t f[64];
	size_t n;

	esp_proto_req_spi_attach(&r, ESP_LOADER_ESP32_ROM, 0);
	n = transact(fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	esp_proto_req_spi_set_params(&r, 4 * MB);
	n = transact(fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
}

static void test_esp32_status_layout_and_magic(void **state)
{
	struct simproc p;
	const uint8_t rr[] = { 0xC0, 0x00, 0x0A, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
			       0x00, 0x10, 0x00, 0x40, 0xC0 };
	const uint8_t want[] = { 0xC0, 0x01, 0x0A, 0x04, 0x00, 0x83, 0x1D, 0xF0, 0x00,
				 0x00, 0x00, 0x00, 0x00, 0xC0 };
	/* FLASH_BEGIN before SPI_ATTACH: the ROM has no flash to talk to. */
	const uint8_t unattached[] = { 0xC0, 0x01, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
				       0x01, 0x06, 0x00, 0x00, 0xC0 };
	struct esp_proto_req r;
	struct esp_proto_begin b = { .size = 0x1000, .blocks = 4, .block_size = 0x400,
				     .offset = 0 };
	const char *args[] = { "esp32", "--baud-pacing", "off", NULL };
	uint8_t boot[1024];
	size_t n;

	(void)state;
	sim_start(&p, args);
	/* ESP32 boot messages are at 115200: readable. */
	n = read_for(p.fd, boot, sizeof boot, 0, 150);
	assert_true(contains(boot, n, "boot:0x3 (DOWNLOAD_BOOT"));
	assert_true(contains(boot, n, "waiting for download"));
	do_sync(p.fd, 4);
	send_bytes(p.fd, rr, sizeof rr);
	expect_bytes(p.fd, want, sizeof want);
	assert_int_equal(esp_proto_req_flash_begin(&r, &b, NULL), FW_OK);
	send_req(p.fd, &r);
	expect_bytes(p.fd, unattached, sizeof unattached);
	assert_int_equal(sim_stop(&p), 0);
}

static void md5_hex(const uint8_t *p, size_t n, char out[33])
{
	uint8_t md[16];
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_md5(), NULL), 1);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_esp32_write_read_slow_md5(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t blk[0x400], f[256];
	char want[33];
	size_t n;
	struct esp_proto_sectors dummy;

	(void)state;
	(void)dummy;
	for (size_t i = 0; i < sizeof blk; i++)
		blk[i] = (uint8_t)(i ^ 0x3C);
	start_quiet(&p, "esp32", NULL);
	esp32_attach(p.fd);
	flash_begin(p.fd, 0x400, 1, 0x9000, 4);
	assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DATA, 0, blk, sizeof blk, NULL),
			 FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));

	assert_int_equal(esp_proto_req_read_flash_slow(&r, 0x9000 + 64, 64, NULL), FW_OK);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 64, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	assert_int_equal(resp.result_len, 64);
	assert_memory_equal(resp.result, blk + 64, 64);
	assert_int_equal(n, 8 + 64 + 4);

	esp_proto_req_flash_md5(&r, 0x9000, 0x400);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 32, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	md5_hex(blk, sizeof blk, want);
	assert_memory_equal(resp.result, want, 32);
	/* An erased neighbour sector hashes as 0xFF bytes. */
	esp_proto_req_flash_md5(&r, 0xA000, 0x1000);
	n = transact(p.fd, &r, f, sizeof f);
	assert_int_equal(esp_proto_response_parse(f, n, 32, 4, &resp, NULL), FW_OK);
	{
		uint8_t ff[0x1000];

		memset(ff, 0xFF, sizeof ff);
		md5_hex(ff, sizeof ff, want);
	}
	assert_memory_equal(resp.result, want, 32);
	assert_int_equal(sim_stop(&p), 0);
}

static void test_esp32_deflate_and_adler(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	struct esp_proto_begin b = { .size = 0x2000, .blocks = 0, .block_size = 0x400,
				     .offset = 0x10000 };
	uint8_t raw[0x2000], z[0x3000], f[256];
	uLongf zl = sizeof z;
	char want[33];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof raw; i++)
		raw[i] = (uint8_t)((i / 16) * 3 + (i % 5));
	assert_int_equal(compress2(z, &zl, raw, sizeof raw, 9), Z_OK);
	b.blocks = esp_proto_blocks((uint32_t)zl, 0x400);
	start_quiet(&p, "esp32", NULL);
	esp32_attach(p.fd);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			z[zl - 1] ^= 0xFF; /* break the Adler-32 trailer */
		assert_int_equal(esp_proto_req_flash_defl_begin(&r, &b, NULL), FW_OK);
		n = transact(p.fd, &r, f, sizeof f);
		assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
		assert_true(esp_proto_response_ok(&resp));
		for (uint32_t i = 0; i < b.blocks; i++) {
			size_t len = zl - i * 0x400u < 0x400 ? zl - i * 0x400u : 0x400;

			assert_int_equal(esp_proto_req_data(&r, ESP_OP_FLASH_DEFL_DATA, i,
							    z + i * 0x400u, len, NULL),
					 FW_OK);
			n = transact(p.fd, &r, f, sizeof f);
			assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
			if (pass == 1 && i + 1 == b.blocks) {
				assert_int_equal(esp_proto_status_code(&resp), 0x010C);
			} else {
				assert_true(esp_proto_response_ok(&resp));
			}
		}
		if (pass == 0) {
			esp_proto_req_flash_md5(&r, 0x10000, sizeof raw);
			n = transact(p.fd, &r, f, sizeof f);
			assert_int_equal(esp_proto_response_parse(f, n, 32, 4, &resp, NULL), FW_OK);
			md5_hex(raw, sizeof raw, want);
			assert_memory_equal(resp.result, want, 32);
		}
	}
	assert_int_equal(sim_stop(&p), 0);
}

static void test_esp32_change_baudrate(void **state)
{
	struct simproc p;
	struct esp_proto_req r;
	struct esp_proto_resp resp;
	uint8_t f[64], got[256];
	size_t n;

	(void)state;
	start_quiet(&p, "esp32", NULL);
	esp_proto_req_change_baud(&r, ESP_LOADER_ESP32_ROM, 230400, 0);
	n = transact(p.fd, &r, f, sizeof f); /* answered at the old rate */
	assert_int_equal(esp_proto_response_parse(f, n, 0, 4, &resp, NULL), FW_OK);
	assert_true(esp_proto_response_ok(&resp));
	/* Still at 115200 here: the chip hears garbage and stays silent. */
	send_bytes(p.fd, sync_req, sizeof sync_req);
	assert_int_equal(read_for(p.fd, got, sizeof got, 0, 150), 0);
	set_baud(p.fd, B230400);
	do_sync(p.fd, 4);
	assert_int_equal(sim_stop(&p), 0);
}


static void test_esp8266_flash_end_run_boots_app(void **state)
{
	struct simproc p;
	char ff[PATH_MAX];
	struct strbuf im = STRBUF_INIT;
	struct esp_proto_req r;
	uint8_t out[4096];
	size_t n;
	const uint8_t end_ok[] = { 0xC0, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				   0x00, 0x00, 0xC0 };

	(void)state;
	tmp_path(ff, sizeof ff, "run.bin");
	unlink(ff);
	assert_int_equal(sample_esp_image(PROFILE_FAMILY_ESP8266, PROFILE_MODE_DIO, 4 * MB, 40,
					  "run flag works", 0, &im, NULL),
			 FW_OK);
	write_image_via_rom(ff, &im);
	start_quiet(&p, "esp8266", ff);
	/* esptool's soft reset in ROM mode: FLASH_BEGIN(0) + FLASH_END(1). */
	flash_begin(p.fd, 0, 0, 0, 2);
	esp_proto_req_flash_end(&r, ESP_PROTO_END_RUN_USER);
	send_req(p.fd, &r);
	n = read_for(p.fd, out, sizeof out, 0, 300);
	assert_true(n > sizeof end_ok);
	assert_memory_equal(out, end_ok, sizeof end_ok); /* the reply comes first */
	assert_true(contains(out + sizeof end_ok, n - sizeof end_ok, "run flag works"));
	assert_int_equal(sim_stop(&p), 0);
	strbuf_free(&im);
	unlink(ff);
}

static void test_esp32_boot_from_flash(void **state)
{
	struct simproc p;
	char ff[PATH_MAX];
	struct strbuf im = STRBUF_INIT;
	uint8_t out[4096];
	size_t n;
	int fd;
	const char *args[] = { "esp32", "--baud-pacing", "off", "--flash-file", ff, "--boot",
			       "flash", NULL };

	(void)state;
	tmp_path(ff, sizeof ff, "esp32.bin");
	make_flash_file(ff, 4 * MB, 0xFF);
	assert_int_equal(sample_esp_image(PROFILE_FAMILY_ESP32, PROFILE_MODE_DIO, 4 * MB, 40,
					  "esp32 app up", 0, &im, NULL),
			 FW_OK);
	fd = open(ff, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, im.s, im.len, 0x1000), (ssize_t)im.len);
	close(fd);
	sim_start(&p, args);
	n = read_for(p.fd, out, sizeof out, 0, 300);
	assert_true(contains(out, n, "boot:0x13 (SPI_FAST_FLASH_BOOT)"));
	assert_true(contains(out, n, "entry 0x"));
	assert_true(contains(out, n, "esp32 app up"));
	assert_false(contains(out, n, "invalid header"));
	assert_int_equal(sim_stop(&p), 0);
	strbuf_free(&im);
	unlink(ff);
}

static void test_flash_timing_slows_erase(void **state)
{
	struct simproc p;
	const char *args[] = { "esp8266", "--baud-pacing", "off", "--flash-timing", "on", NULL };
	uint64_t t0;

	(void)state;
	sim_start(&p, args);
	drain(p.fd, 50);
	t0 = now_ms();
	/* 4 sectors sent inside one 64 KB block: the ROM erases 8 (~45 ms each). */
	flash_begin(p.fd, 0x4000, 16, 0x20000, 2);
	assert_true(now_ms() - t0 >= 8 * 45 - 5);
	assert_int_equal(sim_stop(&p), 0);
}

/* SYNC replies under a corrupting, dropping line: the same seed gives the
 * same bytes, another seed other bytes, and something was damaged. */
static size_t faulty_sync(const char *seed, uint8_t *out, size_t cap)
{
	struct simproc p;
	const char *args[] = { "esp8266", "--baud-pacing", "off", "--seed", seed, "--fault",
			       "corrupt-tx:0.05", "--fault", "drop-tx:0.02", NULL };
	size_t n;

	sim_start(&p, args);
	drain(p.fd, 50);
	send_bytes(p.fd, sync_req, sizeof sync_req);
	n = read_for(p.fd, out, cap, 0, 200);
	assert_int_equal(sim_stop(&p), 0);
	return n;
}

static void test_faults_deterministic(void **state)
{
	uint8_t a[256], b[256], c[256];
	size_t na, nb, nc;

	(void)state;
	na = faulty_sync("42", a, sizeof a);
	nb = faulty_sync("42", b, sizeof b);
	nc = faulty_sync("43", c, sizeof c);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	assert_true(na != nc || memcmp(a, c, na) != 0);
	assert_true(na < 96 || memcmp(a, a + 12, 12) != 0 || memcmp(a + 12, a + 24, 12) != 0);
}

/* ---- faults, pacing, lifecycle ---- */

static void test_fault_hang_and_reset_write(void **state)
{
	struct simproc p;
	uint8_t blk[0x400], got[256];
	const uint8_t good[] = { 0xC0, 0x01, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
				 0x00, 0x00, 0xC0 };
	const char *hang[] = { "esp8266", "--baud-pacing", "off", "--seed", "7", "--fault",
			       "hang:1", NULL };
	const char *rw[] = { "esp8266", "--baud-pacing", "off", "--fault", "reset-write:1",
			     NULL };

	(void)state;
	sim_start(&p, hang);
	drain(p.fd, 50);
	do_sync(p.fd, 2);
	send_bytes(p.fd, sync_req, sizeof sync_req);
	assert_int_equal(read_for(p.fd, got, sizeof got, 0, 150), 0);
	assert_int_equal(sim_stop(&p), 0);

	memset(blk, 0x11, sizeof blk);
	sim_start(&p, rw);
	drain(p.fd, 50);
	flash_begin(p.fd, 0x1000, 4, 0x1000, 2);
	send_data(p.fd, ESP_OP_FLASH_DATA, 0, blk, sizeof blk, false);
	expect_bytes(p.fd, good, sizeof good);
	send_data(p.fd, ESP_OP_FLASH_DATA, 1, blk, sizeof blk, false);
	/* No reply, only the (garbled) banner of the reboot. */
	{
		size_t n = read_for(p.fd, got, sizeof got, 0, 150);

		assert_true(n > 0);
		for (size_t i = 0; i < n; i++)
			assert_int_not_equal(got[i], 0xC0);
	}
	do_sync(p.fd, 2);
	assert_int_equal(sim_stop(&p), 0);
}

static void test_pacing_limits_rate(void **state)
{
	struct simproc p;
	const char *args[] = { "esp8266", NULL }; /* pacing on by default */
	uint8_t got[256];
	uint64_t t0, dt;
	size_t n;

	(void)state;
	sim_start(&p, args);
	drain(p.fd, 100);
	t0 = now_ms();
	send_bytes(p.fd, sync_req, sizeof sync_req);
	n = read_for(p.fd, got, sizeof got, 96, 2000);
	dt = now_ms() - t0;
	assert_int_equal(n, 96);
	/* 46 bytes in + 96 out at 10 bits per byte and 115200 baud: >= 12 ms. */
	assert_true(dt >= 12);
	assert_int_equal(sim_stop(&p), 0);
}

/* --stats counts what crossed the pty: exactly the SYNC in, and out the
 * banner plus the eight 12-byte replies (the banner length is the boot
 * code's business, so only its lower bound is pinned). */
static void test_stats_count_wire_bytes(void **state)
{
	struct simproc p;
	char st[PATH_MAX];
	const char *args[] = { "esp8266", "--baud-pacing", "off", "--stats", st, NULL };
	unsigned long long rx = 0, tx = 0;
	size_t banner;
	uint8_t buf[512];
	FILE *f;

	(void)state;
	tmp_path(st, sizeof st, "stats.txt");
	unlink(st);
	sim_start(&p, args);
	banner = read_for(p.fd, buf, sizeof buf, 1, 2000);
	banner += read_for(p.fd, buf, sizeof buf, 0, 50);
	assert_true(banner > 0);
	do_sync(p.fd, 2);
	assert_int_equal(sim_stop(&p), 0);
	f = fopen(st, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "rx_bytes %llu tx_bytes %llu", &rx, &tx), 2);
	fclose(f);
	assert_int_equal(rx, sizeof sync_req);
	assert_int_equal(tx, banner + 8 * 12);
}

static void test_sigterm_and_link(void **state)
{
	struct simproc p;
	char ln[PATH_MAX], target[256];
	const char *args[] = { "esp8266", "--link", ln, NULL };
	ssize_t k;
	int st = 0;
	uint64_t end;

	(void)state;
	tmp_path(ln, sizeof ln, "ttyESP");
	sim_start(&p, args);
	k = readlink(ln, target, sizeof target - 1);
	assert_true(k > 0);
	target[k] = '\0';
	assert_string_equal(target, p.path);
	kill(p.pid, SIGTERM);
	end = now_ms() + 3000;
	while (waitpid(p.pid, &st, WNOHANG) == 0 && now_ms() < end)
		usleep(2000);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(access(ln, F_OK), -1); /* link removed */
	close(p.fd);
	close(p.in);
	close(p.out);
}

static void test_bad_options(void **state)
{
	const char *cases[][4] = {
		{ "esp8266", "--flash-size", "3MB", NULL },
		{ "esp9000", NULL, NULL, NULL },
		{ "esp8266", "--fault", "explode", NULL },
		{ "esp8266", "--baud-pacing", "maybe", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pid_t pid = fork();
		int st = 0;

		assert_true(pid >= 0);
		if (pid == 0) {
			const char *argv[6] = { sim_bin };
			int dn = open("/dev/null", O_WRONLY);

			for (int k = 0; k < 4 && cases[i][k]; k++)
				argv[k + 1] = cases[i][k];
			dup2(dn, 1);
			dup2(dn, 2);
			execv(sim_bin, (char *const *)argv);
			_exit(127);
		}
		waitpid(pid, &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 2);
	}
}

static int setup_all(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fw-test-sim-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown_all(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void find_sim(const char *argv0)
{
	const char *env = getenv("FLASHWISE_SIM");
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof dir, "%s", argv0);
	/* BUILD/tests/test_sim -> BUILD/flashwise-sim */
	for (int up = 0; up < 2; up++) {
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	if (env && *env)
		snprintf(sim_bin, sizeof sim_bin, "%s", env);
	else if (snprintf(sim_bin, sizeof sim_bin, "%s/flashwise-sim", dir) > 0 &&
		 strchr(argv0, '/') && access(sim_bin, X_OK) == 0)
		;
	else
		snprintf(sim_bin, sizeof sim_bin, "./flashwise-sim");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esp8266_sync_and_magic),
		cmocka_unit_test(test_esp8266_sync_needs_autobaud_run),
		cmocka_unit_test(test_esp8266_otp_clock_and_unsupported),
		cmocka_unit_test(test_esp8266_flash_id_needs_attach),
		cmocka_unit_test(test_esp8266_erase_quirk_in_flash_file),
		cmocka_unit_test(test_esp8266_flash_data_checksum_and_persistence),
		cmocka_unit_test(test_esp8266_boot_shows_sample_banner),
		cmocka_unit_test(test_esp8266_mem_upload_stays_in_loader),
		cmocka_unit_test(test_esp8266_helper_runs_uploaded_blob),
		cmocka_unit_test(test_esp8266_altered_helper_stays_in_loader),
		cmocka_unit_test(test_esp32_status_layout_and_magic),
		cmocka_unit_test(test_esp32_write_read_slow_md5),
		cmocka_unit_test(test_esp32_deflate_and_adler),
		cmocka_unit_test(test_esp32_change_baudrate),
		cmocka_unit_test(test_esp8266_flash_end_run_boots_app),
		cmocka_unit_test(test_esp32_boot_from_flash),
		cmocka_unit_test(test_flash_timing_slows_erase),
		cmocka_unit_test(test_faults_deterministic),
		cmocka_unit_test(test_fault_hang_and_reset_write),
		cmocka_unit_test(test_pacing_limits_rate),
		cmocka_unit_test(test_stats_count_wire_bytes),
		cmocka_unit_test(test_sigterm_and_link),
		cmocka_unit_test(test_bad_options),
	};

	(void)argc;
	/* The sim would follow a shim side channel inherited from the
	 * caller; these tests drive the lines themselves. */
	unsetenv("FLASHWISE_SHIM_LINES");
	find_sim(argv[0]);
	if (access(sim_bin, X_OK) != 0) {
		fprintf(stderr, "test_sim: simulator %s not found: run `make` first\n", sim_bin);
		return 1;
	}
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
