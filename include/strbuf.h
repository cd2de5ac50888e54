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

#endif
