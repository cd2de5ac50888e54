#ifndef FLASHWISE_SIM_BAUD_H
#define FLASHWISE_SIM_BAUD_H

#include <stdint.h>

/* The output baud rate of the tty behind fd; 0 if it cannot be read. */
uint32_t sim_baud_get(int fd);

#endif
