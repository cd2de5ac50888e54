#include "slip.h"

#include <string.h>

size_t slip_encoded_len(const uint8_t *data, size_t n)
{
	size_t len = 2, i;

	for (i = 0; i < n; i++)
		len += (data[i] == SLIP_END || data[i] == SLIP_ESC) ? 2 : 1;
	return len;
}

int slip_encode(const uint8_t *data, size_t n, uint8_t *out, size_t cap,
		size_t *out_len, struct fw_err *e)
{
	size_t need = slip_encoded_len(data, n), o = 0, i;

	if (need > cap)
		return fw_err_set(e, FW_EINVAL,
				  "slip: a %zu-byte packet needs %zu bytes once framed, the buffer has %zu",
				  n, need, cap);
	out[o++] = SLIP_END;
	for (i = 0; i < n; i++) {
		if (data[i] == SLIP_END) {
			out[o++] = SLIP_ESC;
			out[o++] = SLIP_ESC_END;
		} else if (data[i] == SLIP_ESC) {
			out[o++] = SLIP_ESC;
			out[o++] = SLIP_ESC_ESC;
		} else {
			out[o++] = data[i];
		}
	}
	out[o++] = SLIP_END;
	if (out_len)
		*out_len = o;
	return FW_OK;
}

void slip_append_delim(struct strbuf *out)
{
	const uint8_t end = SLIP_END;

	strbuf_add(out, &end, 1);
}

void slip_append_escaped(struct strbuf *out, const uint8_t *data, size_t n)
{
	static const uint8_t esc_end[2] = { SLIP_ESC, SLIP_ESC_END };
	static const uint8_t esc_esc[2] = { SLIP_ESC, SLIP_ESC_ESC };
	size_t run = 0, i;

	/* Copy plain runs in one go; only the two special bytes are split. */
	for (i = 0; i < n; i++) {
		if (data[i] != SLIP_END && data[i] != SLIP_ESC)
			continue;
		strbuf_add(out, data + run, i - run);
		strbuf_add(out, data[i] == SLIP_END ? esc_end : esc_esc, 2);
		run = i + 1;
	}
	strbuf_add(out, data + run, n - run);
}

void slip_append_frame(struct strbuf *out, const uint8_t *data, size_t n)
{
	slip_append_delim(out);
	slip_append_escaped(out, data, n);
	slip_append_delim(out);
}

void slip_decoder_init(struct slip_decoder *d, uint8_t *storage, size_t cap)
{
	memset(d, 0, sizeof *d);
	d->buf = storage;
	d->cap = storage ? cap : 0;
	d->state = SLIP_HUNT;
}

void slip_decoder_reset(struct slip_decoder *d)
{
	d->len = 0;
	d->state = SLIP_HUNT;
	d->after_end = false;
}

static void note_junk(struct slip_decoder *d, uint8_t c)
{
	if (d->junk_kept < SLIP_JUNK_KEEP)
		d->junk[d->junk_kept++] = c;
	d->junk_pending++;
	d->junk_total++;
}

static void emit(struct slip_decoder *d, struct slip_event *ev,
		 enum slip_event_kind kind)
{
	ev->kind = kind;
	ev->frame = kind == SLIP_EV_FRAME ? d->buf : NULL;
	ev->len = d->len;
	ev->junk = d->junk_pending;
	d->junk_pending = 0;
	if (kind == SLIP_EV_FRAME)
		d->frames++;
	else if (kind == SLIP_EV_BAD_ESCAPE)
		d->bad_escapes++;
	else if (kind == SLIP_EV_OVERSIZE)
		d->oversize++;
}

/* Appends one decoded byte; false when the frame outgrew the storage. */
static bool put(struct slip_decoder *d, uint8_t c)
{
	if (d->len >= d->cap)
		return false;
	d->buf[d->len++] = c;
	return true;
}

size_t slip_decoder_feed(struct slip_decoder *d, const uint8_t *in, size_t n,
			 struct slip_event *ev)
{
	size_t i;

	ev->kind = SLIP_EV_NONE;
	ev->frame = NULL;
	ev->len = 0;
	ev->junk = 0;
	for (i = 0; i < n; i++) {
		uint8_t c = in[i];

		d->after_end = false;
		switch (d->state) {
		case SLIP_HUNT:
			if (c == SLIP_END) {
				d->state = SLIP_IN_FRAME;
				d->len = 0;
			} else {
				note_junk(d, c);
			}
			break;
		case SLIP_IN_FRAME:
			if (c == SLIP_END) {
				/* An empty frame is two delimiters back to back:
				 * the second one opens the next frame. */
				if (d->len == 0)
					break;
				d->state = SLIP_HUNT;
				d->after_end = true;
				emit(d, ev, SLIP_EV_FRAME);
				return i + 1;
			}
			if (c == SLIP_ESC) {
				d->state = SLIP_IN_ESCAPE;
			} else if (!put(d, c)) {
				d->state = SLIP_DISCARD;
				d->discarded += d->len + 1;
				emit(d, ev, SLIP_EV_OVERSIZE);
				return i + 1;
			}
			break;
		case SLIP_IN_ESCAPE:
			if (c == SLIP_ESC_END || c == SLIP_ESC_ESC) {
				if (put(d, c == SLIP_ESC_END ? SLIP_END : SLIP_ESC)) {
					d->state = SLIP_IN_FRAME;
					break;
				}
				d->state = SLIP_DISCARD;
				d->discarded += d->len + 2;
				emit(d, ev, SLIP_EV_OVERSIZE);
				return i + 1;
			}
			/* A corrupted escape means we cannot trust any byte of
			 * this frame: drop it whole and resync on the next 0xC0.
			 * If the bad byte is itself 0xC0 it already ends it. */
			d->discarded += d->len + 2;
			if (c == SLIP_END) {
				d->state = SLIP_HUNT;
				d->after_end = true;
			} else {
				d->state = SLIP_DISCARD;
			}
			emit(d, ev, SLIP_EV_BAD_ESCAPE);
			return i + 1;
		case SLIP_DISCARD:
			if (c == SLIP_END) {
				d->state = SLIP_HUNT;
				d->after_end = true;
				d->len = 0;
			} else {
				d->discarded++;
			}
			break;
		}
	}
	return n;
}

bool slip_decoder_reopen(struct slip_decoder *d)
{
	if (!d->after_end || d->state != SLIP_HUNT)
		return false;
	d->state = SLIP_IN_FRAME;
	d->len = 0;
	d->after_end = false;
	return true;
}

bool slip_decoder_idle(const struct slip_decoder *d)
{
	if (d->state == SLIP_HUNT)
		return true;
	return d->state == SLIP_IN_FRAME && d->len == 0;
}

size_t slip_decoder_junk(const struct slip_decoder *d, const uint8_t **bytes)
{
	if (bytes)
		*bytes = d->junk;
	return d->junk_kept;
}

void slip_decoder_junk_clear(struct slip_decoder *d)
{
	d->junk_kept = 0;
	d->junk_total = 0;
	d->junk_pending = 0;
}
