/* flashwise-sim: a simulated ESP8266 or ESP32 on a pseudo-terminal, for
 * tests, demos and benchmarks of flashwise without hardware. Prints the
 * pty slave path as the first line of stdout, then serves until SIGTERM,
 * SIGINT or (with --exit-on-stdin-eof) the end of its stdin. */
/* ppoll(): waits with nanosecond timeouts (the line rate at 921600 baud
 * is 11 us per byte). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fputs("usage: flashwise-sim esp8266|esp32 [--flash-size 4MB] [--flash-file F]\n"
	      "         [--link PATH] [--baud-pacing on|off] [--flash-timing on|off]\n"
	      "         [--boot download|flash] [--lines FILE] [--mac aa:bb:cc:dd:ee:ff]\n"
	      "         [--jedec EF4016] [--seed N] [--fault KIND[:RATE]]...\n"
	      "         [--stats FILE] [--exit-on-stdin-eof] [--verbose]\n"
	      "faults: drop, corrupt, delay (both directions) or drop-rx, drop-tx,\n"
	      "        corrupt-rx, corrupt-tx, delay-rx, delay-tx with RATE = probability\n"
	      "        per byte (default 0.01); hang:N (silent after N commands, until a reset);\n"
	      "        reset-write:N (reset during FLASH_DATA block N+1, default 1)\n"
	      "stats: at exit FILE gets the bytes that crossed the pty, one per line:\n"
	      "        rx_bytes N (host to chip) and tx_bytes N (chip to host)\n",
	      f);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "flashwise-sim: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

static bool parse_onoff(const char *v, bool *out)
{
	if (!strcmp(v, "on")) {
		*out = true;
		return true;
	}
	if (!strcmp(v, "off")) {
		*out = false;
		return true;
	}
	return false;
}

/* "4MB", "512KB", "4M", "0x400000", "4194304" */
static bool parse_size(const char *v, uint32_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || end == v)
		return false;
	if (!strcasecmp(end, "MB") || !strcasecmp(end, "M"))
		n *= 1024u * 1024u;
	else if (!strcasecmp(end, "KB") || !strcasecmp(end, "K"))
		n *= 1024u;
	else if (*end)
		return false;
	if (n < 256u * 1024u || n > 64u * 1024u * 1024u || (n & (n - 1)))
		return false;
	*out = (uint32_t)n;
	return true;
}

static bool parse_mac(const char *v, uint8_t mac[6])
{
	unsigned m[6];
	char tail;

	if (sscanf(v, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5],
		   &tail) != 6)
		return false;
	for (int i = 0; i < 6; i++) {
		if (m[i] > 0xFF)
			return false;
		mac[i] = (uint8_t)m[i];
	}
	return true;
}

static bool parse_fault(const char *v, struct sim_faults *f)
{
	static const struct {
		const char *name;
		int dir; /* -1 both */
		enum sim_fault_kind kind;
	} rates[] = {
		{ "drop", -1, SIM_FAULT_DROP },       { "corrupt", -1, SIM_FAULT_CORRUPT },
		{ "delay", -1, SIM_FAULT_DELAY },     { "drop-rx", SIM_RX, SIM_FAULT_DROP },
		{ "drop-tx", SIM_TX, SIM_FAULT_DROP }, { "corrupt-rx", SIM_RX, SIM_FAULT_CORRUPT },
		{ "corrupt-tx", SIM_TX, SIM_FAULT_CORRUPT },
		{ "delay-rx", SIM_RX, SIM_FAULT_DELAY }, { "delay-tx", SIM_TX, SIM_FAULT_DELAY },
	};
	const char *colon = strchr(v, ':');
	size_t nl = colon ? (size_t)(colon - v) : strlen(v);
	char *end;

	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		double rate = 0.01;

		if (strlen(rates[i].name) != nl || strncmp(v, rates[i].name, nl))
			continue;
		if (colon) {
			errno = 0;
			rate = strtod(colon + 1, &end);
			if (errno || *end || end == colon + 1 || rate < 0 || rate > 1)
				return false;
		}
		for (int d = 0; d < 2; d++)
			if (rates[i].dir < 0 || rates[i].dir == d)
				f->rate[d][rates[i].kind] = rate;
		return true;
	}
	if ((nl == 4 && !strncmp(v, "hang", 4)) || (nl == 11 && !strncmp(v, "reset-write", 11))) {
		long n = nl == 4 ? 0 : 1;

		if (colon) {
			errno = 0;
			n = strtol(colon + 1, &end, 10);
			if (errno || *end || end == colon + 1 || n < 0)
				return false;
		}
		if (nl == 4)
			f->hang_after = n;
		else
			f->reset_after_blocks = n;
		return true;
	}
	return false;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static int64_t min_wait(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int serve(struct sim *s, bool exit_on_eof)
{
	while (!stop_signal) {
		struct pollfd pf[3];
		nfds_t n = 0;
		int master_i, lines_i = -1, stdin_i = -1;
		int64_t wait;
		struct timespec ts;
		bool pollout = false;

		wait = sim_lines_poll(s);
		wait = min_wait(wait, sim_rx_process(s));
		wait = min_wait(wait, sim_tx_flush(s, &pollout));
		if (wait < 0)
			wait = 1000000000;
		if (wait < 10000)
			wait = 10000; /* due at once: a short nap, never a spin */
		ts.tv_sec = (time_t)(wait / 1000000000);
		ts.tv_nsec = (long)(wait % 1000000000);
		master_i = (int)n;
		pf[n].fd = s->master;
		pf[n].events = (short)((s->rx.len < SIM_RXQ_MAX ? POLLIN : 0) |
				       (pollout ? POLLOUT : 0));
		pf[n++].revents = 0;
		if (s->lines_fd >= 0 && s->lines_fifo) {
			lines_i = (int)n;
			pf[n].fd = s->lines_fd;
			pf[n].events = POLLIN;
			pf[n++].revents = 0;
		}
		if (exit_on_eof) {
			stdin_i = (int)n;
			pf[n].fd = STDIN_FILENO;
			pf[n].events = POLLIN;
			pf[n++].revents = 0;
		}
		if (ppoll(pf, n, &ts, NULL) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "flashwise-sim: poll: %s\n", strerror(errno));
			return 1;
		}
		if (pf[master_i].revents & POLLIN)
			if (!sim_rx_read(s)) {
				fprintf(stderr, "flashwise-sim: reading the pty: %s\n",
					strerror(errno));
				return 1;
			}
		(void)lines_i; /* read in sim_lines_poll() on the next turn */
		if (stdin_i >= 0 && pf[stdin_i].revents) {
			char buf[256];
			ssize_t r = read(STDIN_FILENO, buf, sizeof buf);

			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
				return 0;
		}
	}
	return 0;
}

/* Written once, at exit, so a reader that waited for the sim sees final
 * figures (benchmarks compare them with what the host counted). */
static int write_stats(const struct sim *s, const char *path)
{
	FILE *f = fopen(path, "w");
	int bad_write;

	if (!f) {
		fprintf(stderr, "flashwise-sim: cannot write the stats file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fprintf(f, "rx_bytes %" PRIu64 "\ntx_bytes %" PRIu64 "\n", s->wire_rx, s->wire_tx);
	bad_write = ferror(f);
	if (fclose(f) != 0 || bad_write) {
		fprintf(stderr, "flashwise-sim: writing the stats file %s failed\n", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sim *s;
	const char *flash_file = NULL, *link_path = NULL, *lines = NULL, *stats = NULL;
	bool exit_on_eof = false, mac_given = false, jedec_given = false;
	int rc = 1;
	struct sigaction sa;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		fprintf(stderr, "flashwise-sim: out of memory\n");
		return 1;
	}
	s->master = s->slave = s->lines_fd = s->flash_fd = -1;
	s->cfg.flash_size = 4u * 1024u * 1024u;
	s->cfg.pacing = true;
	s->cfg.boot_download = true;
	s->faults.hang_after = -1;
	s->faults.reset_after_blocks = -1;
	if (!strcmp(argv[1], "esp8266"))
		s->cfg.chip = esp_proto_chip_info(ESP_CHIP_ESP8266);
	else if (!strcmp(argv[1], "esp32"))
		s->cfg.chip = esp_proto_chip_info(ESP_CHIP_ESP32);
	if (!s->cfg.chip) {
		rc = bad("unknown chip '%s': use esp8266 or esp32", argv[1]);
		goto out;
	}
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (!strcmp(o, "--exit-on-stdin-eof")) {
			exit_on_eof = true;
			takes = false;
		} else if (!strcmp(o, "--verbose")) {
			s->cfg.verbose = true;
			takes = false;
		} else if (!v) {
			rc = bad("option %s needs a value", o);
			goto out;
		} else if (!strcmp(o, "--flash-size")) {
			if (!parse_size(v, &s->cfg.flash_size)) {
				rc = bad("--flash-size '%s': give a power of two from 256KB to 64MB", v);
				goto out;
			}
		} else if (!strcmp(o, "--flash-file")) {
			flash_file = v;
		} else if (!strcmp(o, "--stats")) {
			stats = v;
		} else if (!strcmp(o, "--link")) {
			link_path = v;
		} else if (!strcmp(o, "--lines")) {
			lines = v;
		} else if (!strcmp(o, "--baud-pacing")) {
			if (!parse_onoff(v, &s->cfg.pacing)) {
				rc = bad("--baud-pacing '%s': use on or off", v);
				goto out;
			}
		} else if (!strcmp(o, "--flash-timing")) {
			if (!parse_onoff(v, &s->cfg.flash_timing)) {
				rc = bad("--flash-timing '%s': use on or off", v);
				goto out;
			}
		} else if (!strcmp(o, "--boot")) {
			if (strcmp(v, "download") && strcmp(v, "flash")) {
				rc = bad("--boot '%s': use download or flash", v);
				goto out;
			}
			s->cfg.boot_download = !strcmp(v, "download");
		} else if (!strcmp(o, "--mac")) {
			if (!parse_mac(v, s->cfg.mac)) {
				rc = bad("--mac '%s': use six hex bytes like 18:fe:34:12:34:56", v);
				goto out;
			}
			mac_given = true;
		} else if (!strcmp(o, "--jedec")) {
			char *end;
			unsigned long j = strtoul(v, &end, 16);

			if (*end || end == v || j > 0xFFFFFF) {
				rc = bad("--jedec '%s': use 6 hex digits as esptool prints them (EF4016)", v);
				goto out;
			}
			/* "EF4016": manufacturer, type, capacity, in wire order. */
			s->cfg.jedec = (uint32_t)((j >> 16) & 0xFF) | (uint32_t)(j & 0xFF00) |
				       (uint32_t)(j & 0xFF) << 16;
			jedec_given = true;
		} else if (!strcmp(o, "--seed")) {
			char *end;

			errno = 0;
			s->faults.seed = strtoull(v, &end, 0);
			if (errno || *end || end == v) {
				rc = bad("--seed '%s': give a number", v);
				goto out;
			}
		} else if (!strcmp(o, "--fault")) {
			if (!parse_fault(v, &s->faults)) {
				rc = bad("--fault '%s': see the fault kinds below", v);
				goto out;
			}
		} else {
			rc = bad("unknown option %s", o);
			goto out;
		}
		if (takes)
			i++;
	}
	s->fam = s->cfg.chip->family;
	s->rom = s->cfg.chip->rom;
	if (!jedec_given) {
		/* Winbond W25Q-series: capacity code = log2(size). */
		unsigned cap = 0;

		while ((1u << cap) < s->cfg.flash_size)
			cap++;
		s->cfg.jedec = 0xEFu | 0x40u << 8 | (uint32_t)cap << 16;
	}
	if (!mac_given) {
		uint64_t r = mix(s->faults.seed ^ 0x4D4143ull);
		static const uint8_t oui8266[3] = { 0x18, 0xFE, 0x34 };
		static const uint8_t oui32[3] = { 0x24, 0x0A, 0xC4 };

		memcpy(s->cfg.mac, s->fam == ESP_FAMILY_ESP8266 ? oui8266 : oui32, 3);
		s->cfg.mac[3] = (uint8_t)r;
		s->cfg.mac[4] = (uint8_t)(r >> 8);
		s->cfg.mac[5] = (uint8_t)(r >> 16);
	}
	esp_proto_esp8266_otp_set_mac(&s->otp, s->cfg.mac);
	slip_decoder_init(&s->dec, s->dec_buf, sizeof s->dec_buf);
	s->ram = calloc(1, SIM_RAM_MAX);
	if (!s->ram) {
		fprintf(stderr, "flashwise-sim: out of memory\n");
		goto out;
	}
	if (sim_flash_open(s, flash_file) != 0)
		goto out;
	if (!lines)
		lines = getenv("FLASHWISE_SHIM_LINES");
	else
		setenv("FLASHWISE_SHIM_LINES", lines, 1);
	if (lines && *lines && sim_lines_open(s, lines, true) != 0)
		goto out;
	if (sim_pty_open(s) != 0)
		goto out;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (link_path) {
		unlink(link_path);
		if (symlink(s->slave_path, link_path) != 0) {
			fprintf(stderr, "flashwise-sim: cannot create the link %s: %s\n", link_path,
				strerror(errno));
			link_path = NULL;
			goto out;
		}
	}
	if (s->cfg.verbose)
		fprintf(stderr, "flashwise-sim: %s, %u KB flash (JEDEC %02x%02x%02x), %s\n",
			s->cfg.chip->name, s->cfg.flash_size / 1024, s->cfg.jedec & 0xFF,
			(s->cfg.jedec >> 8) & 0xFF, (s->cfg.jedec >> 16) & 0xFF,
			flash_file ? flash_file : "flash in memory");
	/* Power-on: as if the technician held FLASH (or not) and pressed RST.
	 * Without pacing the boot text is in the pty before the path is
	 * announced, so a client that drains after opening never sees it
	 * arrive late. */
	sim_boot(s, s->cfg.boot_download, 2);
	{
		bool pollout;

		sim_tx_flush(s, &pollout);
	}
	printf("%s\n", s->slave_path);
	fflush(stdout);
	rc = serve(s, exit_on_eof);
	if (stats && write_stats(s, stats) != 0 && rc == 0)
		rc = 1;
out:
	if (link_path)
		unlink(link_path);
	if (s->zs_init)
		inflateEnd(&s->zs);
	sim_helper_free(s);
	sim_flash_close(s);
	sim_queues_free(s);
	if (s->lines_fd >= 0)
		close(s->lines_fd);
	if (s->slave >= 0)
		close(s->slave);
	if (s->master >= 0)
		close(s->master);
	free(s->ram);
	free(s);
	return rc;
}
