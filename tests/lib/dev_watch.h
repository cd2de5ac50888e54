/* What a driver told its caller during a driver test: its log lines, and
 * whether its progress ever went backwards or past its total. Shared by
 * the ESP and STK500v1 driver tests. */
#ifndef FLASHWISE_TEST_DEV_WATCH_H
#define FLASHWISE_TEST_DEV_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "strbuf.h"

struct dev_watch {
	struct strbuf log;        /* one line per device_logf() */
	unsigned progress_calls;
	uint64_t last_done, last_total;
	char last_phase[16];
	bool progress_backwards;  /* done fell within a phase, or passed total */
};

/* Points d's log and progress callbacks at w (w starts empty). */
void dev_watch_attach(struct dev_watch *w, struct device *d);
void dev_watch_free(struct dev_watch *w);

#endif
