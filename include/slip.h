/* SLIP framing as the Espressif ROM loader uses it: every packet is wrapped
 * in 0xC0 delimiters, and inside a frame 0xC0 is sent as 0xDB 0xDC and 0xDB
 * as 0xDB 0xDD. Pure code: the encoder writes into a caller buffer or a
 * strbuf, the decoder takes bytes as they come off the wire and hands back
 * whole frames. Used by the ESP driver (host side) and by flashwise-sim
 * (device side) alike. */
#ifndef FLASHWISE_SLIP_H
#define FLASHWISE_SLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

#define SLIP_END     0xC0u
#define SLIP_ESC     0xDBu
#define SLIP_ESC_END 0xDCu /* 0xDB 0xDC stands for a data byte 0xC0 */
#define SLIP_ESC_ESC 0xDDu /* 0xDB 0xDD stands for a data byte 0xDB */

/* How many skipped bytes the decoder keeps so a driver can show them (the
 * ESP8266 boot banner is about 60 bytes). Counting goes on beyond this. */
#define SLIP_JUNK_KEEP 128

/* ---- encoder ---- */

/* Exact size of the encoded frame for data[0..n), both delimiters included. */
size_t slip_encoded_len(const uint8_t *data, size_t n);

/* Encodes one frame into out[0..cap). FW_EINVAL (nothing useful written) if
 * cap is too small; *out_len is set on success. */
int slip_encode(const uint8_t *data, size_t n, uint8_t *out, size_t cap,
		size_t *out_len, struct fw_err *e);

/* strbuf variants (binary safe; out of memory is sticky in the strbuf, check
 * strbuf_failed() once at the end). A frame may be built from several parts:
 * slip_append_delim(); slip_append_escaped() per part; slip_append_delim(). */
void slip_append_frame(struct strbuf *out, const uint8_t *data, size_t n);
void slip_append_delim(struct strbuf *out);
void slip_append_escaped(struct strbuf *out, const uint8_t *data, size_t n);

/* ---- incremental decoder ---- */

enum slip_state {
	SLIP_HUNT,      /* between frames: skipping junk until a 0xC0 */
	SLIP_IN_FRAME,  /* collecting frame bytes */
	SLIP_IN_ESCAPE, /* saw 0xDB, the next byte decides */
	SLIP_DISCARD,   /* frame was bad: dropping bytes until the next 0xC0 */
};

enum slip_event_kind {
	SLIP_EV_NONE,       /* input used up, no frame completed yet */
	SLIP_EV_FRAME,      /* a complete, non-empty frame is in ev->frame */
	SLIP_EV_BAD_ESCAPE, /* 0xDB followed by something else: frame dropped */
	SLIP_EV_OVERSIZE,   /* frame longer than the decoder's storage: dropped */
};

struct slip_event {
	enum slip_event_kind kind;
	const uint8_t *frame; /* SLIP_EV_FRAME: decoded bytes, valid until the
	                       * next feed/reset; NULL otherwise */
	size_t len;           /* frame length; for errors: bytes decoded before
	                       * the frame was dropped */
	size_t junk;          /* junk bytes skipped since the previous event */
};

struct slip_decoder {
	uint8_t *buf;         /* caller's storage: bounds the frame length */
	size_t cap;
	size_t len;
	enum slip_state state;
	bool after_end;       /* the last byte consumed was a closing 0xC0 */
	size_t junk_pending;  /* junk since the last event */
	uint64_t junk_total;  /* junk since init or slip_decoder_junk_clear() */
	uint8_t junk[SLIP_JUNK_KEEP]; /* the first junk bytes, for display */
	size_t junk_kept;
	unsigned long frames, bad_escapes, oversize;
	uint64_t discarded;   /* bytes thrown away inside dropped frames */
};

/* storage[0..cap) holds one decoded frame; frames longer than cap are
 * rejected (SLIP_EV_OVERSIZE) without using more memory. */
void slip_decoder_init(struct slip_decoder *d, uint8_t *storage, size_t cap);

/* Forgets any partial frame and goes back to hunting for a 0xC0 (after a
 * timeout or a port flush). Counters and kept junk stay. */
void slip_decoder_reset(struct slip_decoder *d);

/* Consumes bytes from in[0..n) until one event happens or the input is used
 * up; returns how many bytes were consumed (at least 1 when n > 0). Call it
 * in a loop:
 *     for (off = 0; off < n; ) {
 *         off += slip_decoder_feed(d, in + off, n - off, &ev);
 *         if (ev.kind == SLIP_EV_FRAME) ...
 *     }
 * Junk outside frames is skipped and counted; back-to-back 0xC0 0xC0 and
 * empty frames are ignored. */
size_t slip_decoder_feed(struct slip_decoder *d, const uint8_t *in, size_t n,
			 struct slip_event *ev);

/* Call right after a SLIP_EV_FRAME that turned out not to be a packet (e.g.
 * the "frame" was noise that happened to contain a 0xC0): its closing 0xC0
 * then counts as the opening of the next frame, so a real packet that
 * followed the noise is not lost. Returns false (and does nothing) if bytes
 * were consumed since that 0xC0. */
bool slip_decoder_reopen(struct slip_decoder *d);

/* True when no frame is partly received (useful to tell "silence" from "a
 * frame started but never ended" after a timeout). */
bool slip_decoder_idle(const struct slip_decoder *d);

/* The first junk bytes skipped since init/clear (at most SLIP_JUNK_KEEP);
 * returns their count. d->junk_total has the full count. */
size_t slip_decoder_junk(const struct slip_decoder *d, const uint8_t **bytes);
void slip_decoder_junk_clear(struct slip_decoder *d);

#endif
