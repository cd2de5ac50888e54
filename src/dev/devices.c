/* Maps a profile's protocol to the driver that speaks it. */
#include "devices.h"

#include <stddef.h>

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
