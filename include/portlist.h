/* The serial ports this machine has, with what USB says about them, so the
 * technician can pick the right one (and so "port not found" can say which
 * ports do exist). Scanning uses libserialport; formatting is pure. */
#ifndef FLASHWISE_PORTLIST_H
#define FLASHWISE_PORTLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "strbuf.h"

enum portlist_kind {
	PORTLIST_NATIVE = 0,  /* on-board UART, or unknown */
	PORTLIST_USB,
	PORTLIST_BLUETOOTH,
};

struct portlist_entry {
	char *path;           /* "/dev/ttyUSB0", never NULL */
	char *description;    /* libserialport's description, or NULL */
	enum portlist_kind kind;
	bool has_usb_ids;
	unsigned vid, pid;    /* valid when has_usb_ids */
	char *manufacturer;   /* USB strings, each may be NULL */
	char *product;
	char *serial;
};

struct portlist {
	struct portlist_entry *v;
	size_t n;
};

#define PORTLIST_INIT {0}

/* Fills l (which must be empty) with the ports, sorted by path. A machine
 * without ports gives FW_OK and n == 0. */
int portlist_scan(struct portlist *l, struct fw_err *e);
void portlist_free(struct portlist *l);

/* Adds a copy of one entry (tests and fakes build lists by hand). */
int portlist_add(struct portlist *l, const struct portlist_entry *src,
	struct fw_err *e);

/* The common USB-serial bridge (or board) behind a VID:PID, e.g.
 * "CP210x" for 10c4:ea60; NULL when unknown. */
const char *portlist_chip_name(unsigned vid, unsigned pid);

/* One line per port, e.g.
 * "/dev/ttyUSB0  10c4:ea60  Silicon Labs CP2102 USB to UART (CP210x)  serial 0001"
 * and "no serial ports found" for an empty list. Pure. */
void portlist_format(const struct portlist *l, struct strbuf *b);
/* One port, compactly: "/dev/ttyUSB0 (10c4:ea60 CP210x, serial 0001)". */
void portlist_format_entry(const struct portlist_entry *p, struct strbuf *b);

#endif
