/* Sample firmware for the demo and for training: a valid ESP application
 * image (header, one RAM segment, checksum, and for the ESP32 family the
 * extended header and appended SHA-256) whose data carries a banner line.
 * flashwise-sim prints that line when it "boots" the image, so the post-flash
 * boot check has something real to read. Pure. */
#ifndef FLASHWISE_SAMPLE_H
#define FLASHWISE_SAMPLE_H

#include "error.h"
#include "profile.h"
#include "strbuf.h"

/* What marks the banner inside the image's data: the simulator looks for
 * it, the sample writer puts it there. */
#define SAMPLE_BANNER_TAG "FWBANNER:"

/* Appends the image bytes to out. mode/size/freq as in the profile
 * (e.g. PROFILE_MODE_DIO, 4 MB, 40 MHz); pad_to > 0 pads the data segment so
 * the image is about that many bytes (a realistic size for benchmarks). */
int sample_esp_image(enum profile_family fam, int mode, uint32_t size_bytes,
		     uint32_t freq_mhz, const char *banner, size_t pad_to, struct strbuf *out,
		     struct fw_err *e);

#endif
