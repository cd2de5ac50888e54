/* The Espressif ROM serial loader driver (ESP8266 ROM, ESP32-family ROMs)
 * behind struct device_ops. Framing and packets are esp_proto/slip (pure);
 * this file adds the conversation: reset into the loader, sync, matching
 * replies to requests, retries, and the ROM quirks (ESP8266 erase-size bug,
 * sector-aligned writes, baud change and compression on the ESP32 ROM).
 *
 * d->priv is created by connect() (or dev_esp_set_options()) and freed by
 * close(). identify() must run after connect() and before read, write or
 * verify: the chip it finds decides the loader's dialect. */
#ifndef FLASHWISE_DEV_ESP_H
#define FLASHWISE_DEV_ESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "error.h"
#include "image.h"
#include "profile.h"

extern const struct device_ops dev_esp_ops;

/* What the ROM loader cannot do on the ESP8266 (the caps' why_not). */
#define DEV_ESP_ESP8266_WHY_NOT \
	"the ESP8266 ROM loader cannot read or hash flash (flashwise's RAM " \
	"helper adds this in a later version)"

struct dev_esp_options {
	unsigned connect_attempts; /* reset + sync rounds (default 7) */
	unsigned manual_wait_ms;   /* manual entry: how long to keep sending
	                            * SYNC while the technician presses the
	                            * buttons (default 60000) */
	unsigned timeout_ms;       /* the shortest wait for any reply
	                            * (default 3000); longer work scales up */
	unsigned block_attempts;   /* tries per command after a damaged or
	                            * missing reply (default 3; two silences
	                            * in a row end it early). A write region
	                            * the loader lost is started again up to
	                            * 2 times, re-entering the loader over
	                            * DTR/RTS when it stays silent */
	bool change_baud;          /* ESP32 ROM: switch to the profile's
	                            * flash_baud (default true) */
	bool compress;             /* ESP32 ROM: zlib-compressed writes
	                            * (default true; falls back when refused) */
	bool skip_unchanged;       /* ESP32 ROM: before writing, compare each
	                            * 4 KB sector's MD5 on the chip and leave
	                            * the ones that already match (default
	                            * false: fast re-flash is opt-in) */
};

void dev_esp_options_default(struct dev_esp_options *o);
/* Sets the driver's options on d (creating d->priv if needed). d->ops must
 * be &dev_esp_ops. */
int dev_esp_set_options(struct device *d, const struct dev_esp_options *o,
			struct fw_err *e);

/* What a write of img erases beyond the image's own bytes, for the wizard
 * to show before it asks for consent (write() logs the same lines):
 * the start of a 4 KB sector before an unaligned range, bytes between two
 * ranges that share a sector, and on the ESP8266 ROM the sector its erase
 * routine wipes after the data (esp_proto_erase_plan). */
#define DEV_ESP_MAX_WARNINGS 16
struct dev_esp_warning {
	uint32_t addr, len;     /* what gets erased */
	char text[256];
};
struct dev_esp_warnings {
	struct dev_esp_warning w[DEV_ESP_MAX_WARNINGS];
	size_t n;               /* stored */
	size_t total;           /* found (may exceed DEV_ESP_MAX_WARNINGS) */
};
/* flash_size 0 = the profile's. FW_EINVAL when a range runs past the end of
 * flash; FW_EGUARD when the ESP8266 ROM's over-erase would run past it
 * (warnings are filled in either case). */
int dev_esp_erase_warnings(const struct profile *p, uint32_t flash_size,
			   const struct image *img, struct dev_esp_warnings *w,
			   struct fw_err *e);

#endif
