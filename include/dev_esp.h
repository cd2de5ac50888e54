/* The Espressif ROM serial loader driver (ESP8266 ROM, ESP32-family ROMs)
 * behind struct device_ops. Framing and packets are esp_proto/slip (pure);
 * this file adds the conversation: reset into the loader, sync, matching
 * replies to requests, retries, and the ROM quirks (ESP8266 erase-size bug,
 * sector-aligned writes, baud change and compression on the ESP32 ROM).
 *
 * On the ESP8266, identify() uploads flashwise's own RAM helper (when the
 * profile allows it, [loader] helper = yes) and from then on speaks the
 * flasher-stub dialect to it: backups (READ_FLASH), MD5 verification, exact
 * erases and a faster baud rate. Without it the ROM loader can write but
 * neither read nor hash, and caps() says so.
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

/* What the ROM loader cannot do on the ESP8266 (the caps' why_not says
 * this and why the helper is not running). */
#define DEV_ESP_ESP8266_WHY_NOT \
	"the ESP8266 ROM loader cannot read or hash flash"

/* flashwise's ESP8266 RAM helper as uploaded: RAM segments, the entry
 * point, and the SHA-256 recorded when the blob was built. The driver
 * refuses to upload a blob whose segments do not hash to it. */
struct dev_esp_helper_segment {
	uint32_t addr;            /* RAM address */
	const uint8_t *data;
	uint32_t len;
};
#define DEV_ESP_HELPER_MAX_SEGMENTS 8
struct dev_esp_helper {
	struct dev_esp_helper_segment seg[DEV_ESP_HELPER_MAX_SEGMENTS];
	size_t nseg;
	uint32_t entry;
	uint8_t sha256[32];       /* recorded when the blob was built */
	uint32_t write_block;     /* FLASH_DATA block it takes (0 = 0x1000) */
	uint32_t read_packet;     /* READ_FLASH packet size (0 = 0x1000) */
	uint32_t read_inflight;   /* READ_FLASH packets in flight (0 = 4) */
	uint32_t max_baud;        /* fastest rate it supports (0 = unknown) */
};
/* The helper built into this flashwise. FW_EUNSUPPORTED when none is. */
int dev_esp_helper_builtin(struct dev_esp_helper *h, struct fw_err *e);
/* The SHA-256 of the helper as helper_blob.h records it: for each segment
 * in order, its address and length (4 bytes little-endian each), then its
 * bytes. */
int dev_esp_helper_sha256(const struct dev_esp_helper *h, uint8_t out[32],
			  struct fw_err *e);

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
	bool helper;               /* ESP8266: upload the RAM helper when the
	                            * profile allows it (default true) */
	unsigned helper_baud;      /* ESP8266 helper: the rate to switch to
	                            * (default 0 = the profile's flash_baud) */
	unsigned helper_wait_ms;   /* how long to wait for the helper's
	                            * greeting after MEM_END (default 1000) */
	const struct dev_esp_helper *helper_image; /* NULL = the built-in one
	                            * (tests give their own; the caller keeps
	                            * it alive) */
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
 * (warnings are filled in either case). This is the ROM loader's view (the
 * worst case, before anything is known about the session); on a connected
 * device use dev_esp_device_erase_warnings(). */
int dev_esp_erase_warnings(const struct profile *p, uint32_t flash_size,
			   const struct image *img, struct dev_esp_warnings *w,
			   struct fw_err *e);
/* The same for the session on d after identify(): with the ESP8266 helper
 * running, erases are exact and there is no over-erase to warn about. */
int dev_esp_device_erase_warnings(struct device *d, const struct image *img,
				  struct dev_esp_warnings *w, struct fw_err *e);
/* Whether flashwise's RAM helper runs on the chip now (ESP8266). */
bool dev_esp_helper_running(const struct device *d);

#endif
