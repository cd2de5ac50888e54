#include "portlist.h"

#include <libserialport.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	uint16_t vid, pid;
	const char *name;
} known_chips[] = {
	{ 0x10c4, 0xea60, "CP210x" },
	{ 0x1a86, 0x7523, "CH340" },
	{ 0x1a86, 0x55d3, "CH343" },
	{ 0x1a86, 0x55d4, "CH9102" },
	{ 0x0403, 0x6001, "FT232R" },
	{ 0x0403, 0x6010, "FT2232" },
	{ 0x0403, 0x6014, "FT232H" },
	{ 0x0403, 0x6015, "FT-X" },
	{ 0x067b, 0x2303, "PL2303" },
	{ 0x303a, 0x1001, "Espressif USB-JTAG-Serial" },
	{ 0x2341, 0x0001, "Arduino Uno (8U2)" },
	{ 0x2341, 0x0043, "Arduino Uno" },
	{ 0x2a03, 0x0043, "Arduino Uno" },
	{ 0x2341, 0x0010, "Arduino Mega 2560" },
	{ 0x2341, 0x0042, "Arduino Mega 2560" },
};

const char *portlist_chip_name(unsigned vid, unsigned pid)
{
	for (size_t i = 0; i < sizeof known_chips / sizeof known_chips[0]; i++)
		if (known_chips[i].vid == vid && known_chips[i].pid == pid)
			return known_chips[i].name;
	return NULL;
}

static void entry_free(struct portlist_entry *p)
{
	free(p->path);
	free(p->description);
	free(p->manufacturer);
	free(p->product);
	free(p->serial);
	memset(p, 0, sizeof *p);
}

void portlist_free(struct portlist *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		entry_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* strdup that keeps NULL as NULL; *failed is set when memory ran out. */
static char *dup_or_null(const char *s, int *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

int portlist_add(struct portlist *l, const struct portlist_entry *src,
	struct fw_err *e)
{
	struct portlist_entry *v, *p;
	int failed = 0;

	if (!l || !src || !src->path)
		return fw_err_set(e, FW_EINVAL, "portlist_add: no port given");
	v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v)
		return fw_err_set(e, FW_ENOMEM, "out of memory listing ports");
	l->v = v;
	p = &v[l->n];
	memset(p, 0, sizeof *p);
	p->kind = src->kind;
	p->has_usb_ids = src->has_usb_ids;
	p->vid = src->vid;
	p->pid = src->pid;
	p->path = dup_or_null(src->path, &failed);
	p->description = dup_or_null(src->description, &failed);
	p->manufacturer = dup_or_null(src->manufacturer, &failed);
	p->product = dup_or_null(src->product, &failed);
	p->serial = dup_or_null(src->serial, &failed);
	if (failed) {
		entry_free(p);
		return fw_err_set(e, FW_ENOMEM, "out of memory listing ports");
	}
	l->n++;
	return FW_OK;
}

/* Orders ttyUSB2 before ttyUSB10, as a person would. */
static int natural_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			char *end;
			unsigned long x = strtoul(a, &end, 10);
			unsigned long y;

			a = end;
			y = strtoul(b, &end, 10);
			b = end;
			if (x != y)
				return x < y ? -1 : 1;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

static int entry_cmp(const void *x, const void *y)
{
	const struct portlist_entry *a = x, *b = y;
	return natural_cmp(a->path, b->path);
}

int portlist_scan(struct portlist *l, struct fw_err *e)
{
	struct sp_port **ports = NULL;
	enum sp_return r;
	int rc = FW_OK;

	if (!l || l->n)
		return fw_err_set(e, FW_EINVAL, "portlist_scan: list not empty");
	r = sp_list_ports(&ports);
	if (r != SP_OK) {
		char *msg = r == SP_ERR_FAIL ? sp_last_error_message() : NULL;
		rc = fw_err_set(e, r == SP_ERR_MEM ? FW_ENOMEM : FW_EIO,
			"cannot list serial ports: %s",
			msg ? msg : "libserialport failed");
		if (msg)
			sp_free_error_message(msg);
		return rc;
	}
	for (size_t i = 0; ports[i] && rc == FW_OK; i++) {
		struct sp_port *sp = ports[i];
		struct portlist_entry p = {0};
		int vid, pid;

		p.path = sp_get_port_name(sp);
		p.description = sp_get_port_description(sp);
		switch (sp_get_port_transport(sp)) {
		case SP_TRANSPORT_USB:
			p.kind = PORTLIST_USB;
			break;
		case SP_TRANSPORT_BLUETOOTH:
			p.kind = PORTLIST_BLUETOOTH;
			break;
		default:
			p.kind = PORTLIST_NATIVE;
			break;
		}
		if (p.kind == PORTLIST_USB) {
			if (sp_get_port_usb_vid_pid(sp, &vid, &pid) == SP_OK &&
			    vid >= 0 && pid >= 0) {
				p.has_usb_ids = true;
				p.vid = (unsigned)vid;
				p.pid = (unsigned)pid;
			}
			p.manufacturer = sp_get_port_usb_manufacturer(sp);
			p.product = sp_get_port_usb_product(sp);
			p.serial = sp_get_port_usb_serial(sp);
		}
		if (p.path)
			rc = portlist_add(l, &p, e);
	}
	sp_free_port_list(ports);
	if (rc != FW_OK) {
		portlist_free(l);
		return rc;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof l->v[0], entry_cmp);
	return FW_OK;
}

/* USB strings come from the device itself: show them, never let them
 * move the cursor or change colours. */
static void add_clean(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char ch = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		strbuf_add(b, &ch, 1);
	}
}

static void add_names(struct strbuf *b, const struct portlist_entry *p)
{
	const char *chip = p->has_usb_ids ?
		portlist_chip_name(p->vid, p->pid) : NULL;
	int any = 0;

	if (p->manufacturer && *p->manufacturer) {
		add_clean(b, p->manufacturer);
		any = 1;
	}
	if (p->product && *p->product) {
		if (any)
			strbuf_adds(b, " ");
		add_clean(b, p->product);
		any = 1;
	}
	if (!any && p->description && *p->description &&
	    !strstr(p->path, p->description)) {
		add_clean(b, p->description);
		any = 1;
	}
	if (chip) {
		strbuf_addf(b, any ? " (%s)" : "%s", chip);
		any = 1;
	}
	if (!any)
		strbuf_adds(b, p->kind == PORTLIST_BLUETOOTH ? "bluetooth" :
			p->kind == PORTLIST_USB ? "usb serial" : "on-board serial");
}

void portlist_format(const struct portlist *l, struct strbuf *b)
{
	if (!l || l->n == 0) {
		strbuf_adds(b, "no serial ports found\n");
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct portlist_entry *p = &l->v[i];

		add_clean(b, p->path);
		if (p->has_usb_ids)
			strbuf_addf(b, "  %04x:%04x  ", p->vid, p->pid);
		else
			strbuf_adds(b, "  -          ");
		add_names(b, p);
		if (p->serial && *p->serial) {
			strbuf_adds(b, "  serial ");
			add_clean(b, p->serial);
		}
		strbuf_adds(b, "\n");
	}
}

void portlist_format_entry(const struct portlist_entry *p, struct strbuf *b)
{
	const char *chip;

	if (!p || !p->path)
		return;
	add_clean(b, p->path);
	if (!p->has_usb_ids)
		return;
	chip = portlist_chip_name(p->vid, p->pid);
	strbuf_addf(b, " (%04x:%04x", p->vid, p->pid);
	if (chip)
		strbuf_addf(b, " %s", chip);
	else if (p->product && *p->product) {
		strbuf_adds(b, " ");
		add_clean(b, p->product);
	}
	if (p->serial && *p->serial) {
		strbuf_adds(b, ", serial ");
		add_clean(b, p->serial);
	}
	strbuf_adds(b, ")");
}
