/* A growable string for pure formatting code (reports, journals, `show`
 * output): the core formats into a strbuf, the edges decide where it goes.
 * Out of memory is sticky: later appends do nothing and strbuf_failed()
 * tells, so callers check once at the end. */
#ifndef FLASHWISE_STRBUF_H
#define FLASHWISE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *s;      /* always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
	bool oom;
};

#define STRBUF_INIT {0}

void strbuf_addf(struct strbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_add(struct strbuf *b, const void *data, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
bool strbuf_failed(const struct strbuf *b);
/* The text so far ("" when empty); valid until the next append. */
const char *strbuf_str(const struct strbuf *b);
/* Empties b but keeps its memory, for a buffer reused per packet. */
void strbuf_reset(struct strbuf *b);
void strbuf_free(struct strbuf *b);

/* The length of the valid UTF-8 sequence at p (at most n bytes; 1 for
 * ASCII), 0 when the bytes there are not one (overlong forms and UTF-16
 * surrogates included). */
size_t strbuf_utf8_len(const void *p, size_t n);

/* Appends s[0..n) as text that stays on one line and reads back exactly:
 * a backslash before '\\' and before every byte of `also`; \n, \r, \t;
 * other control bytes and bytes that are not UTF-8 as \xHH; UTF-8 text
 * as it is. Journals and reports use it. */
void strbuf_add_escaped(struct strbuf *b, const char *s, size_t n, const char *also);

#endif
