#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slip.h"

/* Deterministic generator so a failure can be replayed. */
static uint32_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Random bytes with plenty of 0xC0 / 0xDB so every escape path runs. */
static void fill_random(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t r = rng();
		switch (r % 8) {
		case 0: p[i] = SLIP_END; break;
		case 1: p[i] = SLIP_ESC; break;
		case 2: p[i] = SLIP_ESC_END; break;
		case 3: p[i] = SLIP_ESC_ESC; break;
		default: p[i] = (uint8_t)(r >> 8); break;
		}
	}
}

/* Collected decoder output for one feed pattern. */
struct events {
	int kinds[64];
	uint8_t frames[64][700];
	size_t lens[64];
	size_t junk[64];
	size_t n;
};

/* Feeds in[0..n) in pieces of `step` bytes (0 = all at once). */
static void run(struct slip_decoder *d, const uint8_t *in, size_t n, size_t step,
		struct events *out)
{
	size_t pos = 0;

	memset(out, 0, sizeof *out);
	while (pos < n) {
		size_t piece = step ? step : n, off = 0;

		if (piece > n - pos)
			piece = n - pos;
		while (off < piece) {
			struct slip_event ev;
			size_t used = slip_decoder_feed(d, in + pos + off, piece - off, &ev);

			assert_true(used >= 1);
			assert_true(used <= piece - off);
			off += used;
			if (ev.kind == SLIP_EV_NONE) {
				assert_int_equal(off, piece);
				continue;
			}
			assert_true(out->n < 64);
			out->kinds[out->n] = ev.kind;
			out->lens[out->n] = ev.len;
			out->junk[out->n] = ev.junk;
			if (ev.kind == SLIP_EV_FRAME) {
				assert_non_null(ev.frame);
				assert_true(ev.len <= sizeof out->frames[0]);
				memcpy(out->frames[out->n], ev.frame, ev.len);
			} else {
				assert_null(ev.frame);
			}
			out->n++;
		}
		pos += piece;
	}
}

static void test_encode_known_bytes(void **state)
{
	const uint8_t in[] = { 0x01, 0xC0, 0x02, 0xDB, 0x03 };
	const uint8_t want[] = { 0xC0, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xC0 };
	uint8_t out[32];
	size_t len = 0;

	(void)state;
	assert_int_equal(slip_encoded_len(in, sizeof in), sizeof want);
	assert_int_equal(slip_encode(in, sizeof in, out, sizeof out, &len, NULL), FW_OK);
	assert_int_equal(len, sizeof want);
	assert_memory_equal(out, want, sizeof want);
}

static void test_encode_empty_and_only_specials(void **state)
{
	const uint8_t specials[] = { 0xC0, 0xC0, 0xDB };
	const uint8_t want[] = { 0xC0, 0xDB, 0xDC, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0 };
	uint8_t out[16];
	size_t len = 0;

	(void)state;
	assert_int_equal(slip_encode(NULL, 0, out, sizeof out, &len, NULL), FW_OK);
	assert_int_equal(len, 2);
	assert_int_equal(out[0], 0xC0);
	assert_int_equal(out[1], 0xC0);
	assert_int_equal(slip_encode(specials, sizeof specials, out, sizeof out, &len, NULL),
			 FW_OK);
	assert_int_equal(len, sizeof want);
	assert_memory_equal(out, want, sizeof want);
}

static void test_encode_buffer_too_small(void **state)
{
	const uint8_t in[] = { 0xC0, 0x01 };
	uint8_t out[4];
	size_t len = 99;
	struct fw_err e = { 0 };

	(void)state;
	/* needs 5: C0 DB DC 01 C0 */
	assert_int_equal(slip_encode(in, sizeof in, out, sizeof out, &len, &e), FW_EINVAL);
	assert_int_equal(e.code, FW_EINVAL);
	assert_non_null(strstr(e.msg, "needs 5 bytes"));
	assert_int_equal(len, 99);
	assert_int_equal(slip_encode(in, sizeof in, out, sizeof out, &len, NULL), FW_EINVAL);
}

static void test_strbuf_matches_buffer_encoder(void **state)
{
	uint8_t data[300], flat[700];
	size_t flat_len, i;
	struct strbuf one = STRBUF_INIT, parts = STRBUF_INIT;

	(void)state;
	rng_state = 0x1234567u;
	fill_random(data, sizeof data);
	assert_int_equal(slip_encode(data, sizeof data, flat, sizeof flat, &flat_len, NULL),
			 FW_OK);
	slip_append_frame(&one, data, sizeof data);
	/* the same frame from uneven parts */
	slip_append_delim(&parts);
	for (i = 0; i < sizeof data; i += 7)
		slip_append_escaped(&parts, data + i, sizeof data - i < 7 ? sizeof data - i : 7);
	slip_append_delim(&parts);
	assert_false(strbuf_failed(&one));
	assert_false(strbuf_failed(&parts));
	assert_int_equal(one.len, flat_len);
	assert_memory_equal(one.s, flat, flat_len);
	assert_int_equal(parts.len, flat_len);
	assert_memory_equal(parts.s, flat, flat_len);
	strbuf_free(&one);
	strbuf_free(&parts);
}

static void test_random_round_trip_seeded(void **state)
{
	static uint8_t data[600], wire[1300], storage[700];
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);
	size_t steps[] = { 0, 1, 2, 3, 13 }, wire_len;
	int iter;

	(void)state;
	assert_non_null(ev);
	rng_state = 20240601u;
	for (iter = 0; iter < 300; iter++) {
		size_t n = 1 + rng() % sizeof data, s;

		fill_random(data, n);
		assert_int_equal(slip_encode(data, n, wire, sizeof wire, &wire_len, NULL), FW_OK);
		assert_int_equal(wire_len, slip_encoded_len(data, n));
		/* no raw 0xC0 may survive inside the frame */
		assert_null(memchr(wire + 1, SLIP_END, wire_len - 2));
		for (s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			slip_decoder_init(&d, storage, sizeof storage);
			run(&d, wire, wire_len, steps[s], ev);
			assert_int_equal(ev->n, 1);
			assert_int_equal(ev->kinds[0], SLIP_EV_FRAME);
			assert_int_equal(ev->lens[0], n);
			assert_memory_equal(ev->frames[0], data, n);
			assert_int_equal(ev->junk[0], 0);
			assert_true(slip_decoder_idle(&d));
		}
	}
	free(ev);
}

static void test_stream_of_frames_split_one_byte(void **state)
{
	static uint8_t wire[4000], storage[700];
	uint8_t data[5][120];
	size_t lens[5], pos = 0, k, len;
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	rng_state = 77u;
	for (k = 0; k < 5; k++) {
		lens[k] = 1 + rng() % 120;
		fill_random(data[k], lens[k]);
		assert_int_equal(slip_encode(data[k], lens[k], wire + pos, sizeof wire - pos,
					     &len, NULL), FW_OK);
		pos += len;
	}
	slip_decoder_init(&d, storage, sizeof storage);
	run(&d, wire, pos, 1, ev);
	assert_int_equal(ev->n, 5);
	for (k = 0; k < 5; k++) {
		assert_int_equal(ev->kinds[k], SLIP_EV_FRAME);
		assert_int_equal(ev->lens[k], lens[k]);
		assert_memory_equal(ev->frames[k], data[k], lens[k]);
	}
	assert_int_equal(d.frames, 5);
	free(ev);
}

/* The ESP8266 prints its boot banner at 74880 baud; read at 115200 it is
 * noise in front of the first reply. */
static void test_junk_before_frame_is_skipped_and_kept(void **state)
{
	const char banner[] = "\r\n ets Jan  8 2013,rst cause:2, boot mode:(1,6)\r\n\r\n";
	const uint8_t frame[] = { 0xC0, 0x01, 0x08, 0x02, 0x00, 0xC0 };
	uint8_t wire[128], storage[64];
	const uint8_t *kept = NULL;
	size_t blen = strlen(banner), step;
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	memcpy(wire, banner, blen);
	memcpy(wire + blen, frame, sizeof frame);
	for (step = 0; step <= 1; step++) {
		slip_decoder_init(&d, storage, sizeof storage);
		run(&d, wire, blen + sizeof frame, step, ev);
		assert_int_equal(ev->n, 1);
		assert_int_equal(ev->kinds[0], SLIP_EV_FRAME);
		assert_int_equal(ev->lens[0], 4);
		assert_int_equal(ev->junk[0], blen);
		assert_int_equal(d.junk_total, blen);
		assert_int_equal(slip_decoder_junk(&d, &kept), blen);
		assert_memory_equal(kept, banner, blen);
	}
	slip_decoder_junk_clear(&d);
	assert_int_equal(slip_decoder_junk(&d, NULL), 0);
	assert_int_equal(d.junk_total, 0);
	free(ev);
}

static void test_junk_between_frames_and_keep_limit(void **state)
{
	uint8_t wire[600], storage[16];
	size_t pos = 0, i;
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	wire[pos++] = 0xC0; wire[pos++] = 0x11; wire[pos++] = 0xC0;
	for (i = 0; i < 300; i++)
		wire[pos++] = (uint8_t)('a' + i % 26);
	wire[pos++] = 0xC0; wire[pos++] = 0x22; wire[pos++] = 0xC0;
	slip_decoder_init(&d, storage, sizeof storage);
	run(&d, wire, pos, 0, ev);
	assert_int_equal(ev->n, 2);
	assert_int_equal(ev->junk[0], 0);
	assert_int_equal(ev->frames[0][0], 0x11);
	assert_int_equal(ev->junk[1], 300);
	assert_int_equal(ev->frames[1][0], 0x22);
	/* memory for junk is bounded, the count is not */
	assert_int_equal(slip_decoder_junk(&d, NULL), SLIP_JUNK_KEEP);
	assert_int_equal(d.junk_total, 300);
	free(ev);
}

static void test_back_to_back_delimiters(void **state)
{
	const uint8_t wire[] = { 0xC0, 0xC0, 0xC0, 0x01, 0x02, 0xC0, 0xC0, 0x03, 0xC0, 0xC0 };
	uint8_t storage[16];
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	slip_decoder_init(&d, storage, sizeof storage);
	run(&d, wire, sizeof wire, 1, ev);
	assert_int_equal(ev->n, 2);
	assert_int_equal(ev->lens[0], 2);
	assert_int_equal(ev->frames[0][1], 0x02);
	assert_int_equal(ev->lens[1], 1);
	assert_int_equal(ev->frames[1][0], 0x03);
	assert_int_equal(d.junk_total, 0);
	/* the trailing 0xC0 opened an (empty) frame: still idle */
	assert_true(slip_decoder_idle(&d));
	free(ev);
}

static void test_bad_escape_drops_frame_and_resyncs(void **state)
{
	/* frame 1: DB 05 is corrupt; frame 2 is fine */
	const uint8_t wire[] = { 0xC0, 0x01, 0xDB, 0x05, 0x02, 0x03, 0xC0,
				 0xC0, 0xAA, 0xDB, 0xDC, 0xC0 };
	uint8_t storage[16];
	size_t step;
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	for (step = 0; step <= 1; step++) {
		slip_decoder_init(&d, storage, sizeof storage);
		run(&d, wire, sizeof wire, step, ev);
		assert_int_equal(ev->n, 2);
		assert_int_equal(ev->kinds[0], SLIP_EV_BAD_ESCAPE);
		assert_int_equal(ev->lens[0], 1); /* one good byte before the error */
		assert_int_equal(ev->kinds[1], SLIP_EV_FRAME);
		assert_int_equal(ev->lens[1], 2);
		assert_int_equal(ev->frames[1][0], 0xAA);
		assert_int_equal(ev->frames[1][1], 0xC0);
		assert_int_equal(d.bad_escapes, 1);
		assert_int_equal(d.frames, 1);
		/* dropped frame bytes are not junk */
		assert_int_equal(d.junk_total, 0);
		assert_int_equal(d.discarded, 5);
	}
	free(ev);
}

static void test_escape_then_delimiter(void **state)
{
	/* DB directly followed by C0: the frame is bad and the C0 ends it */
	const uint8_t wire[] = { 0xC0, 0x01, 0xDB, 0xC0, 0xC0, 0x05, 0xC0 };
	uint8_t storage[16];
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	slip_decoder_init(&d, storage, sizeof storage);
	run(&d, wire, sizeof wire, 1, ev);
	assert_int_equal(ev->n, 2);
	assert_int_equal(ev->kinds[0], SLIP_EV_BAD_ESCAPE);
	assert_int_equal(ev->kinds[1], SLIP_EV_FRAME);
	assert_int_equal(ev->lens[1], 1);
	assert_int_equal(ev->frames[1][0], 0x05);
	free(ev);
}

static void test_oversize_frame_rejected_bounded(void **state)
{
	uint8_t storage[8];
	uint8_t big[10000];
	const uint8_t ok[] = { 0xC0, 1, 2, 3, 4, 5, 6, 7, 0xDB, 0xDD, 0xC0 };
	const uint8_t over_by_escape[] = { 0xC0, 1, 2, 3, 4, 5, 6, 7, 8, 0xDB, 0xDC, 0xC0 };
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	/* a 10000-byte frame into 8 bytes of storage: one event, no overflow
	 * (ASan would catch a write past storage) */
	memset(big, 0x41, sizeof big);
	big[0] = 0xC0;
	big[sizeof big - 1] = 0xC0;
	slip_decoder_init(&d, storage, sizeof storage);
	run(&d, big, sizeof big, 0, ev);
	assert_int_equal(ev->n, 1);
	assert_int_equal(ev->kinds[0], SLIP_EV_OVERSIZE);
	assert_int_equal(ev->lens[0], 8);
	assert_int_equal(d.oversize, 1);
	assert_true(slip_decoder_idle(&d));
	/* exactly 8 bytes (the last one escaped) still fits afterwards */
	run(&d, ok, sizeof ok, 1, ev);
	assert_int_equal(ev->n, 1);
	assert_int_equal(ev->kinds[0], SLIP_EV_FRAME);
	assert_int_equal(ev->lens[0], 8);
	assert_int_equal(ev->frames[0][7], 0xDB);
	/* 9th byte arriving as an escape is also caught */
	run(&d, over_by_escape, sizeof over_by_escape, 0, ev);
	assert_int_equal(ev->n, 1);
	assert_int_equal(ev->kinds[0], SLIP_EV_OVERSIZE);
	/* an endless frame never produces more than one event */
	memset(big, 0x41, sizeof big);
	big[0] = 0xC0;
	run(&d, big, sizeof big, 0, ev);
	assert_int_equal(ev->n, 1);
	assert_false(slip_decoder_idle(&d));
	free(ev);
}

/* Noise that happens to contain a 0xC0 makes the decoder deliver a bogus
 * frame and then take the real frame's opening 0xC0 as its end. reopen()
 * lets the caller recover the real packet. */
static void test_reopen_recovers_frame_after_noise(void **state)
{
	const uint8_t wire[] = { 0x55, 0xC0, 0x99, 0x98, /* noise with a C0 */
				 0xC0, 0x01, 0x0A, 0xC0 }; /* real frame */
	uint8_t storage[16];
	struct slip_decoder d;
	struct slip_event ev;
	size_t off = 0;

	(void)state;
	slip_decoder_init(&d, storage, sizeof storage);
	off += slip_decoder_feed(&d, wire, sizeof wire, &ev);
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	assert_int_equal(ev.len, 2);
	assert_int_equal(ev.frame[0], 0x99);
	assert_int_equal(ev.junk, 1);
	assert_true(slip_decoder_reopen(&d));
	assert_false(slip_decoder_reopen(&d)); /* only once */
	off += slip_decoder_feed(&d, wire + off, sizeof wire - off, &ev);
	assert_int_equal(off, sizeof wire);
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	assert_int_equal(ev.len, 2);
	assert_int_equal(ev.frame[0], 0x01);
	assert_int_equal(ev.frame[1], 0x0A);

	/* without reopen the real frame is lost (its bytes count as junk) */
	slip_decoder_init(&d, storage, sizeof storage);
	off = slip_decoder_feed(&d, wire, sizeof wire, &ev);
	assert_int_equal(ev.kind, SLIP_EV_FRAME);
	off += slip_decoder_feed(&d, wire + off, sizeof wire - off, &ev);
	assert_int_equal(ev.kind, SLIP_EV_NONE);
	assert_int_equal(d.junk_total, 3);

	/* reopen is refused once more bytes were consumed */
	slip_decoder_init(&d, storage, sizeof storage);
	off = slip_decoder_feed(&d, wire, sizeof wire, &ev);
	off += slip_decoder_feed(&d, wire + off, 1, &ev);
	assert_false(slip_decoder_reopen(&d));
}

static void test_reset_and_idle(void **state)
{
	const uint8_t partial[] = { 0xC0, 0x01, 0x02 };
	const uint8_t rest[] = { 0x03, 0xC0, 0xC0, 0x04, 0xC0 };
	uint8_t storage[16];
	struct slip_decoder d;
	struct events *ev = malloc(sizeof *ev);

	(void)state;
	assert_non_null(ev);
	slip_decoder_init(&d, storage, sizeof storage);
	assert_true(slip_decoder_idle(&d));
	run(&d, partial, sizeof partial, 0, ev);
	assert_int_equal(ev->n, 0);
	assert_false(slip_decoder_idle(&d));
	slip_decoder_reset(&d);
	assert_true(slip_decoder_idle(&d));
	/* after the reset 03 is junk, then 04 is a frame */
	run(&d, rest, sizeof rest, 0, ev);
	assert_int_equal(ev->n, 1);
	assert_int_equal(ev->frames[0][0], 0x04);
	assert_int_equal(ev->junk[0], 1);
	free(ev);
}

static void test_zero_storage_rejects_everything(void **state)
{
	const uint8_t wire[] = { 0xC0, 0x01, 0xC0 };
	struct slip_decoder d;
	struct slip_event ev;

	(void)state;
	slip_decoder_init(&d, NULL, 100);
	assert_int_equal(d.cap, 0);
	slip_decoder_feed(&d, wire, sizeof wire, &ev);
	assert_int_equal(ev.kind, SLIP_EV_OVERSIZE);
	assert_int_equal(slip_decoder_feed(&d, NULL, 0, &ev), 0);
	assert_int_equal(ev.kind, SLIP_EV_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_known_bytes),
		cmocka_unit_test(test_encode_empty_and_only_specials),
		cmocka_unit_test(test_encode_buffer_too_small),
		cmocka_unit_test(test_strbuf_matches_buffer_encoder),
		cmocka_unit_test(test_random_round_trip_seeded),
		cmocka_unit_test(test_stream_of_frames_split_one_byte),
		cmocka_unit_test(test_junk_before_frame_is_skipped_and_kept),
		cmocka_unit_test(test_junk_between_frames_and_keep_limit),
		cmocka_unit_test(test_back_to_back_delimiters),
		cmocka_unit_test(test_bad_escape_drops_frame_and_resyncs),
		cmocka_unit_test(test_escape_then_delimiter),
		cmocka_unit_test(test_oversize_frame_rejected_bounded),
		cmocka_unit_test(test_reopen_recovers_frame_after_noise),
		cmocka_unit_test(test_reset_and_idle),
		cmocka_unit_test(test_zero_storage_rejects_everything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
