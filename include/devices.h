/* The table of device drivers: which struct device_ops speaks a profile's
 * protocol. */
#ifndef FLASHWISE_DEVICES_H
#define FLASHWISE_DEVICES_H

#include "device.h"
#include "profile.h"

/* The driver for p->protocol, or NULL when none is built in yet. */
const struct device_ops *device_ops_for(const struct profile *p);

#endif
