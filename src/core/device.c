/* The identity check every driver's result goes through before anything is
 * erased: the chip is the profile's model, with the profile's flash. */
#include "device.h"

#include <string.h>

int device_match(const struct profile *p, const struct device_identity *id,
		 struct fw_err *e)
{
	if (p->has_chip_magic) {
		if (!id->has_chip_magic)
			return fw_err_set(e, FW_EMISMATCH, "the device did not report a chip "
					  "magic; profile %s expects 0x%08X (%s)", p->id,
					  p->chip_magic, p->chip);
		if (id->chip_magic != p->chip_magic)
			return fw_err_set(e, FW_EMISMATCH,
					  "wrong chip: the device is %s (magic 0x%08X), profile %s "
					  "is for %s (0x%08X); choose the right profile or board",
					  id->chip[0] ? id->chip : "an unknown chip", id->chip_magic,
					  p->id, p->chip, p->chip_magic);
	}
	if (p->has_signature) {
		if (!id->has_signature)
			return fw_err_set(e, FW_EMISMATCH, "the device did not report its "
					  "signature; profile %s expects %02X %02X %02X", p->id,
					  p->signature[0], p->signature[1], p->signature[2]);
		if (memcmp(id->signature, p->signature, 3) != 0)
			return fw_err_set(e, FW_EMISMATCH,
					  "wrong chip: signature %02X %02X %02X, profile %s expects "
					  "%02X %02X %02X (%s)", id->signature[0], id->signature[1],
					  id->signature[2], p->id, p->signature[0], p->signature[1],
					  p->signature[2], p->chip);
	}
	/* A flash of unknown size is not a match: writing the profile's layout
	 * onto a smaller chip wraps around and destroys the start of flash. */
	if (p->family != PROFILE_FAMILY_AVR) {
		if (id->flash_size == 0)
			return fw_err_set(e, FW_EMISMATCH, "the flash chip did not report its "
					  "size (JEDEC id 0x%06X); profile %s expects %u KB: check "
					  "the power supply and the flash wiring", id->flash_id,
					  p->id, p->flash_size / 1024);
		if (id->flash_size != p->flash_size)
			return fw_err_set(e, FW_EMISMATCH,
					  "wrong flash size: the device has %u KB (JEDEC id 0x%06X), "
					  "profile %s is for %u KB; choose the profile for this module",
					  id->flash_size / 1024, id->flash_id, p->id,
					  p->flash_size / 1024);
	}
	return FW_OK;
}

void device_verify_widen(struct device_verify_result *r, uint32_t unit)
{
	size_t n = 0;

	if (unit == 0)
		unit = 1;
	for (size_t i = 0; i < r->nmismatch; i++) {
		uint32_t a = r->mismatch[i].addr - r->mismatch[i].addr % unit;
		uint64_t b = ((uint64_t)r->mismatch[i].addr + r->mismatch[i].len + unit - 1) / unit *
			     unit;

		if (b > 0x100000000ull)
			b = 0x100000000ull;
		if (n > 0 && a <= (uint64_t)r->mismatch[n - 1].addr + r->mismatch[n - 1].len) {
			uint64_t end = (uint64_t)r->mismatch[n - 1].addr + r->mismatch[n - 1].len;

			if (b > end)
				r->mismatch[n - 1].len = (uint32_t)(b - r->mismatch[n - 1].addr);
			continue;
		}
		r->mismatch[n].addr = a;
		r->mismatch[n].len = (uint32_t)(b - a);
		n++;
	}
	r->nmismatch = n;
}
