/* Maps a profile's protocol to the driver that speaks it, and the small
 * services every driver needs from the seam (log lines, throttled progress). */
#include "devices.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dev_esp.h"
#include "dev_stk500.h"

const struct device_ops *device_ops_for(const struct profile *p)
{
	if (!p)
		return NULL;
	switch (p->protocol) {
	case PROFILE_PROTO_ESP_ROM:
		return &dev_esp_ops;
	case PROFILE_PROTO_STK500V1:
		return &dev_stk500_ops;
	}
	return NULL;
}

void device_logf(struct device *d, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!d->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	d->log(d->cb_ctx, line);
}

/* 100 ms: often enough for a live rate and ETA, rare enough not to slow a
 * transfer down with redraws. */
#define PROGRESS_EVERY_NS 100000000ull

void device_progress(struct device *d, const char *phase, uint64_t done, uint64_t total)
{
	uint64_t now;

	if (!d->progress)
		return;
	now = transport_now_ns();
	if (done < total && done != 0 && now - d->last_progress_ns < PROGRESS_EVERY_NS)
		return;
	d->last_progress_ns = now;
	d->progress(d->cb_ctx, phase, done, total);
}

int device_verify_outside(struct device *d, const struct image *bk, const struct image *img,
			  struct device_verify_result *r, struct fw_err *e)
{
	struct image out;
	int rc;

	memset(r, 0, sizeof *r);
	rc = image_subtract(bk, img, &out, e);
	if (rc == FW_OK && image_count(&out) > 0) {
		rc = d->ops->verify(d, &out, r, e);
		if (rc == FW_EVERIFY)
			device_verify_widen(r, d->p->sector_size);
	}
	image_free(&out);
	return rc;
}
