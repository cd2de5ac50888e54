#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int fw_err_set(struct fw_err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		e->code = code;
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

void fw_err_prefix(struct fw_err *e, const char *fmt, ...)
{
	char head[FW_ERR_MSG_MAX], old[FW_ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%s: %s", head, old);
}

void fw_err_clear(struct fw_err *e)
{
	if (e) {
		e->code = FW_OK;
		e->msg[0] = '\0';
	}
}

void fw_err_copy(struct fw_err *dst, const struct fw_err *src)
{
	if (dst && src && dst != src)
		*dst = *src;
}

static const char *const rc_names[] = {
	"ok", "out of memory", "i/o", "usage", "profile", "image", "integrity",
	"signature", "guard", "state", "journal", "port", "port busy", "timeout",
	"protocol", "mismatch", "unsupported", "verify", "cancelled", "unsafe",
};

const char *fw_rc_name(int code)
{
	size_t i = (size_t)(code < 0 ? -code : code);
	if (i >= sizeof rc_names / sizeof rc_names[0])
		return "unknown";
	return rc_names[i];
}
