/* The simulated SPI flash: a file mapped shared, so every write is in the
 * page cache at once (a test reads the file after the sim exits, a second
 * sim run sees the same contents). NOR semantics: erase sets 0xFF, program
 * can only clear bits, so writing over unerased data shows up as damage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

int sim_flash_open(struct sim *s, const char *path)
{
	size_t size = s->cfg.flash_size;
	struct stat st;

	s->flash_fd = -1;
	if (!path) {
		s->flash = mmap(NULL, size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (s->flash == MAP_FAILED) {
			s->flash = NULL;
			fprintf(stderr, "flashwise-sim: cannot allocate %zu bytes of flash: %s\n",
				size, strerror(errno));
			return -1;
		}
		memset(s->flash, 0xFF, size);
		return 0;
	}
	s->flash_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->flash_fd < 0) {
		fprintf(stderr, "flashwise-sim: cannot open flash file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (fstat(s->flash_fd, &st) != 0)
		goto fail_errno;
	if (st.st_size == 0) {
		/* A new chip comes erased. */
		uint8_t blank[4096];
		memset(blank, 0xFF, sizeof blank);
		for (size_t off = 0; off < size; off += sizeof blank)
			if (write(s->flash_fd, blank, sizeof blank) != (ssize_t)sizeof blank)
				goto fail_errno;
	} else if ((size_t)st.st_size != size) {
		fprintf(stderr,
			"flashwise-sim: flash file %s is %lld bytes but --flash-size is %zu: "
			"use the matching --flash-size or a new file\n",
			path, (long long)st.st_size, size);
		goto fail;
	}
	s->flash = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->flash_fd, 0);
	if (s->flash == MAP_FAILED) {
		s->flash = NULL;
		goto fail_errno;
	}
	return 0;
fail_errno:
	fprintf(stderr, "flashwise-sim: flash file %s: %s\n", path, strerror(errno));
fail:
	close(s->flash_fd);
	s->flash_fd = -1;
	return -1;
}

void sim_flash_sync(struct sim *s)
{
	if (s->flash && s->flash_fd >= 0)
		msync(s->flash, s->cfg.flash_size, MS_ASYNC);
}

void sim_flash_close(struct sim *s)
{
	if (s->flash) {
		if (s->flash_fd >= 0)
			msync(s->flash, s->cfg.flash_size, MS_SYNC);
		munmap(s->flash, s->cfg.flash_size);
		s->flash = NULL;
	}
	if (s->flash_fd >= 0)
		close(s->flash_fd);
	s->flash_fd = -1;
}

void sim_flash_erase(struct sim *s, uint32_t first_sector, uint32_t count)
{
	uint32_t nsec = s->cfg.flash_size / ESP_PROTO_SECTOR;

	/* Addresses past the end wrap around on a real chip (the address
	 * lines above the size are ignored): that is how an over-erase at the
	 * top can wipe sector 0. */
	for (uint32_t i = 0; i < count; i++) {
		uint32_t sec = (first_sector + i) % nsec;
		memset(s->flash + (size_t)sec * ESP_PROTO_SECTOR, 0xFF, ESP_PROTO_SECTOR);
	}
	sim_flash_sync(s);
}

void sim_flash_program(struct sim *s, uint32_t addr, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s->flash[((size_t)addr + i) % s->cfg.flash_size] &= p[i];
	sim_flash_sync(s);
}

/* Typical datasheet figures: sector erase ~45 ms per 4 KB, page program
 * ~0.7 ms per 256 bytes. Off unless --flash-timing on. */
uint64_t sim_flash_erase_ns(const struct sim *s, uint32_t sectors)
{
	return s->cfg.flash_timing ? (uint64_t)sectors * 45000000u : 0;
}

uint64_t sim_flash_program_ns(const struct sim *s, size_t bytes)
{
	return s->cfg.flash_timing ? (uint64_t)((bytes + 255) / 256) * 700000u : 0;
}
