/* The table of device drivers: which struct device_ops speaks a profile's
 * protocol. */
#ifndef FLASHWISE_DEVICES_H
#define FLASHWISE_DEVICES_H

#include "device.h"
#include "profile.h"

/* The driver for p->protocol, or NULL when none is built in yet. */
const struct device_ops *device_ops_for(const struct profile *p);

/* For drivers: one formatted line to d->log (nothing when there is none). */
void device_logf(struct device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For drivers: progress to d->progress, at most every 100 ms, but always the
 * start (done 0) and the end (done == total) of a phase. */
void device_progress(struct device *d, const char *phase, uint64_t done, uint64_t total);

/* After a write: compares what the backup bk holds outside img with the
 * flash. A change there is a page put where the image never goes (a
 * damaged STK500v1 address). FW_EVERIFY with r listing the changed whole
 * erase units; FW_OK when nothing changed or nothing lies outside img;
 * r->bytes_checked says how much was compared. */
int device_verify_outside(struct device *d, const struct image *bk, const struct image *img,
			  struct device_verify_result *r, struct fw_err *e);

#endif
