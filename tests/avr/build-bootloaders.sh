#!/bin/sh
# Builds the Arduino bootloaders that tests/avr/uno-sim runs, from the
# sources in the Debian package arduino-core-avr, into OUT (default
# build/avr). Third-party firmware: built here at build time, never
# committed. Needs gcc-avr, avr-libc, binutils-avr and make.
#
#   OUT/optiboot_atmega328.hex        Optiboot 4.4 for the Uno (115200 baud),
#                                     linked at 0x7C00 (1 KB boot section).
#                                     The package's prebuilt image is a
#                                     Debian rebuild of 532 bytes that runs
#                                     past the end of flash (0x7E00-0x8013),
#                                     and Debian's gcc-avr cannot fit the
#                                     source into 512 bytes either.
#   OUT/ATmegaBOOT_168_atmega328.hex  ATmegaBOOT (Duemilanove, 57600 baud,
#                                     EEPROM support) at 0x7800 (2 KB): the
#                                     package's prebuilt image, used as it
#                                     is when it lies inside 0x7800-0x7FFF;
#                                     otherwise rebuilt from the source.
#   OUT/uno_app.hex                   tests/avr/uno_app.c: a small application
#                                     that prints a banner at 115200.
set -eu

OUT=${1:-build/avr}
SRC=${ARDUINO_BOOTLOADERS:-/usr/share/arduino/hardware/arduino/avr/bootloaders}
HERE=$(cd "$(dirname "$0")" && pwd)

for tool in avr-gcc avr-objcopy make; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "build-bootloaders: $tool is missing (install gcc-avr, binutils-avr, avr-libc)" >&2
		exit 1
	fi
done
if [ ! -f "$SRC/optiboot/optiboot.c" ] || [ ! -f "$SRC/atmega/ATmegaBOOT_168.c" ]; then
	echo "build-bootloaders: no bootloader sources under $SRC (install arduino-core-avr)" >&2
	exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK="$OUT/src"
rm -rf "$WORK"
mkdir -p "$WORK"
# Never build inside /usr/share: work on a copy, without the prebuilt
# images (make would take them as up to date).
cp -R "$SRC/optiboot" "$SRC/atmega" "$WORK/"
rm -f "$WORK"/optiboot/*.hex "$WORK"/optiboot/*.lst "$WORK"/atmega/*.hex

# in_range FILE LOW HIGH: every data byte of an Intel HEX file with 16-bit
# addresses (what these images use) lies within LOW..HIGH (hex); prints the
# range it found.
in_range() {
	lo=65536 hi=-1
	while IFS= read -r rec; do
		rec=${rec%"$(printf '\r')"}
		case $rec in
		:????????*) ;;
		*) continue ;;
		esac
		[ "$(echo "$rec" | cut -c8-9)" = 00 ] || continue
		n=$((0x$(echo "$rec" | cut -c2-3)))
		a=$((0x$(echo "$rec" | cut -c4-7)))
		[ "$n" -gt 0 ] || continue
		[ "$a" -lt "$lo" ] && lo=$a
		[ $((a + n - 1)) -gt "$hi" ] && hi=$((a + n - 1))
	done <"$1"
	printf '0x%04X-0x%04X\n' "$lo" "$hi"
	[ "$hi" -ge 0 ] && [ "$lo" -ge $((0x$2)) ] && [ "$hi" -le $((0x$3)) ]
}

# Optiboot, as `make atmega328` but linked for a 1 KB boot section.
(cd "$WORK/optiboot" && make -s atmega328 \
	LDSECTIONS="-Wl,--section-start=.text=0x7c00 -Wl,--section-start=.version=0x7ffe") \
	>"$WORK/optiboot.log" 2>&1 || {
	cat "$WORK/optiboot.log" >&2
	echo "build-bootloaders: building Optiboot failed" >&2
	exit 1
}
if ! range=$(in_range "$WORK/optiboot/optiboot_atmega328.hex" 7C00 7FFF); then
	echo "build-bootloaders: Optiboot does not fit 0x7C00-0x7FFF: $range" >&2
	exit 1
fi
cp "$WORK/optiboot/optiboot_atmega328.hex" "$OUT/optiboot_atmega328.hex"

# ATmegaBOOT: the prebuilt image if it fits its 2 KB section, else rebuilt.
if in_range "$SRC/atmega/ATmegaBOOT_168_atmega328.hex" 7800 7FFF >/dev/null; then
	cp "$SRC/atmega/ATmegaBOOT_168_atmega328.hex" "$OUT/ATmegaBOOT_168_atmega328.hex"
else
	(cd "$WORK/atmega" && make -s atmega328) >"$WORK/atmega.log" 2>&1 || {
		cat "$WORK/atmega.log" >&2
		echo "build-bootloaders: building ATmegaBOOT failed" >&2
		exit 1
	}
	if ! range=$(in_range "$WORK/atmega/ATmegaBOOT_168_atmega328.hex" 7800 7FFF); then
		echo "build-bootloaders: ATmegaBOOT does not fit 0x7800-0x7FFF: $range" >&2
		exit 1
	fi
	cp "$WORK/atmega/ATmegaBOOT_168_atmega328.hex" "$OUT/ATmegaBOOT_168_atmega328.hex"
fi

# The test application.
avr-gcc -mmcu=atmega328p -DF_CPU=16000000UL -Os -Wall -o "$WORK/uno_app.elf" "$HERE/uno_app.c"
avr-objcopy -O ihex -R .eeprom "$WORK/uno_app.elf" "$OUT/uno_app.hex"

rm -rf "$WORK"
echo "build-bootloaders: $OUT/optiboot_atmega328.hex $OUT/ATmegaBOOT_168_atmega328.hex $OUT/uno_app.hex"
