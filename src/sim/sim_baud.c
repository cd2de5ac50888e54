/* The client's baud rate as set on the pty slave. Kept apart from the
 * other files because <asm/termbits.h> (termios2, for non-standard rates
 * such as the ESP8266's 74880) clashes with <termios.h>. On Linux a pty
 * master answers TCGETS2 with the slave's settings, and the kernel keeps
 * c_ospeed filled for standard rates too. */
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <stdint.h>

#include "sim_baud.h"

extern int ioctl(int fd, unsigned long request, ...);

uint32_t sim_baud_get(int fd)
{
	struct termios2 t2;

	if (ioctl(fd, TCGETS2, &t2) != 0)
		return 0;
	return (uint32_t)t2.c_ospeed;
}
