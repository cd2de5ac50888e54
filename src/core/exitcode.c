#include "exitcode.h"

#include "error.h"

static const struct exitcode_info table[] = {
	{FW_EXIT_OK, "ok", "every step finished and the result was verified"},
	{FW_EXIT_FAILED, "failed", "the job stopped before anything was written; the device is unchanged"},
	{FW_EXIT_USAGE, "usage", "the command line is wrong"},
	{FW_EXIT_PROFILE, "profile", "the device profile is missing or malformed"},
	{FW_EXIT_IMAGE, "image", "a firmware image is unreadable, malformed or does not fit the profile"},
	{FW_EXIT_INTEGRITY, "integrity", "a checksum or signature did not match"},
	{FW_EXIT_PORT, "port", "the serial port cannot be opened (missing, permission, held by another program)"},
	{FW_EXIT_DEVICE, "device", "the device did not answer, or is not the profile's model"},
	{FW_EXIT_DECLINED, "declined", "the technician declined, or batch mode met a question and failed closed"},
	{FW_EXIT_JOURNAL, "journal", "a job folder or journal is unreadable or corrupt"},
	{FW_EXIT_UNSAFE, "unsafe", "a write started and was not verified: the device may be in an unsafe state (see the journal; flashwise restore)"},
	{FW_EXIT_INTERNAL, "internal", "an internal error (a bug: please report it)"},
	{FW_EXIT_INTERRUPTED, "interrupted", "stopped by a signal or a lost terminal at a safe point (a device write always finishes first); flashwise resume carries on"},
};

const struct exitcode_info *exitcode_table(size_t *n)
{
	*n = sizeof table / sizeof table[0];
	return table;
}

int exitcode_from_rc(int rc)
{
	switch (rc) {
	case FW_OK: return FW_EXIT_OK;
	case FW_EINVAL: return FW_EXIT_USAGE;
	case FW_EPROFILE: return FW_EXIT_PROFILE;
	case FW_EIMAGE: return FW_EXIT_IMAGE;
	case FW_EINTEGRITY:
	case FW_ESIGNATURE: return FW_EXIT_INTEGRITY;
	case FW_EPORT:
	case FW_EBUSY: return FW_EXIT_PORT;
	case FW_ETIMEOUT:
	case FW_EPROTO:
	case FW_EMISMATCH:
	case FW_EUNSUPPORTED: return FW_EXIT_DEVICE;
	case FW_ECANCELLED: return FW_EXIT_DECLINED;
	case FW_EJOURNAL: return FW_EXIT_JOURNAL;
	case FW_EVERIFY:
	case FW_EUNSAFE: return FW_EXIT_UNSAFE;
	case FW_ESTATE: return FW_EXIT_INTERNAL;
	default: return FW_EXIT_FAILED;
	}
}
