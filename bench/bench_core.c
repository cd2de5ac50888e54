/* Core throughput: SHA-256 and Intel HEX parsing of a 4 MB image. Reports
 * the median of several runs (shared, noisy machines: medians, not means). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "integrity.h"
#include "strbuf.h"

#define RUNS 7
#define IMAGE_BYTES (4u * 1024 * 1024)

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

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return v[n / 2];
}

/* An Intel HEX text of `len` pseudo-random bytes, 16 per record. */
static void make_hex(const uint8_t *data, size_t len, struct strbuf *out)
{
	size_t i, j;
	for (i = 0; i < len; i += 16) {
		uint32_t a = (uint32_t)i;
		uint8_t sum;
		if ((a & 0xFFFF) == 0) {
			sum = (uint8_t)(0x02 + 0x04 + (a >> 24) + ((a >> 16) & 0xFF));
			strbuf_addf(out, ":02000004%04X%02X\n", a >> 16, (uint8_t)(0x100 - sum) & 0xFF);
		}
		sum = (uint8_t)(16 + ((a >> 8) & 0xFF) + (a & 0xFF));
		strbuf_addf(out, ":10%04X00", a & 0xFFFF);
		for (j = 0; j < 16; j++) {
			strbuf_addf(out, "%02X", data[i + j]);
			sum = (uint8_t)(sum + data[i + j]);
		}
		strbuf_addf(out, "%02X\n", (uint8_t)(0x100 - sum) & 0xFF);
	}
	strbuf_adds(out, ":00000001FF\n");
}

int main(void)
{
	uint8_t *data = malloc(IMAGE_BYTES), digest[SHA256_LEN];
	struct strbuf hex = STRBUF_INIT;
	double t_sha[RUNS], t_hex[RUNS];
	uint32_t x = 12345;
	size_t i;
	int r;

	if (!data)
		return 1;
	for (i = 0; i < IMAGE_BYTES; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	make_hex(data, IMAGE_BYTES, &hex);
	for (r = 0; r < RUNS; r++) {
		struct image img;
		struct fw_err e;
		double t0 = now();
		integrity_sha256(data, IMAGE_BYTES, digest);
		t_sha[r] = now() - t0;
		image_init(&img);
		t0 = now();
		if (image_parse_hex(&img, hex.s, hex.len, &e) != FW_OK) {
			fprintf(stderr, "bench: %s\n", e.msg);
			return 1;
		}
		t_hex[r] = now() - t0;
		if (image_total(&img) != IMAGE_BYTES)
			return 1;
		image_free(&img);
	}
	printf("sha256 of 4 MB:        median %.1f ms (%.0f MB/s), %d runs\n",
	       median(t_sha, RUNS) * 1e3, 4.0 / median(t_sha, RUNS), RUNS);
	printf("Intel HEX parse 4 MB:  median %.1f ms (%.0f MB/s of data, %.1f MB of text)\n",
	       median(t_hex, RUNS) * 1e3, 4.0 / median(t_hex, RUNS), (double)hex.len / 1048576.0);
	strbuf_free(&hex);
	free(data);
	return 0;
}
