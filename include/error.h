/* One error type for the whole program: 0 ok, negative codes, and a message
 * buffer that the deepest layer fills and upper layers may prefix. Nothing
 * below the front ends prints; they return an rc and fill a struct fw_err. */
#ifndef FLASHWISE_ERROR_H
#define FLASHWISE_ERROR_H

#include <stddef.h>

enum fw_rc {
	FW_OK = 0,
	FW_ENOMEM = -1,       /* out of memory */
	FW_EIO = -2,          /* a file or system call failed */
	FW_EINVAL = -3,       /* bad argument or usage */
	FW_EPROFILE = -4,     /* a device profile is malformed or missing */
	FW_EIMAGE = -5,       /* a firmware image is malformed or does not fit */
	FW_EINTEGRITY = -6,   /* a checksum did not match */
	FW_ESIGNATURE = -7,   /* a signature did not verify */
	FW_EGUARD = -8,       /* a safety guard refused the action */
	FW_ESTATE = -9,       /* an illegal step transition */
	FW_EJOURNAL = -10,    /* a job journal is truncated or corrupt */
	FW_EPORT = -11,       /* the serial port cannot be used */
	FW_EBUSY = -12,       /* the serial port is held by another program */
	FW_ETIMEOUT = -13,    /* the device did not answer in time */
	FW_EPROTO = -14,      /* the device answered something unexpected */
	FW_EMISMATCH = -15,   /* the device is not the profile's model */
	FW_EUNSUPPORTED = -16,/* the loader cannot do this */
	FW_EVERIFY = -17,     /* the device's contents differ from what was written */
	FW_ECANCELLED = -18,  /* the technician declined or interrupted */
	FW_EUNSAFE = -19,     /* the device may be left in an unsafe state */
};

#define FW_ERR_MSG_MAX 512

struct fw_err {
	int code;
	char msg[FW_ERR_MSG_MAX];
};

/* Sets code and message; returns code so callers can `return fw_err_set(...)`.
 * e may be NULL (the code is still returned). */
int fw_err_set(struct fw_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Puts "<context>: " in front of the current message. Returns nothing on
 * purpose: with e == NULL there is no code to return, and `return
 * fw_err_prefix(...)` would turn an error into success. */
void fw_err_prefix(struct fw_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fw_err_clear(struct fw_err *e);
/* *dst = *src, where dst may be NULL (nothing to fill) or src itself. */
void fw_err_copy(struct fw_err *dst, const struct fw_err *src);
/* Short lowercase name of a code, e.g. "integrity". */
const char *fw_rc_name(int code);

#endif
