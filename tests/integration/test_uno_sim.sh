#!/bin/bash
# The simulated Arduino Uno (tests/avr/uno_sim.c) against a real client:
# avrdude 7.1 (-c arduino) talks STK500v1 to the real Optiboot and
# ATmegaBOOT images running in simavr, over the harness's pty. This checks
# the harness itself before the flashwise STK500v1 driver relies on it:
# signature, a 30 KB write and verify (timed), persistence of the flash
# file, a written application starting, the 57600-baud ATmegaBOOT with its
# EEPROM, a client at the wrong baud, the 2-byte receive buffer, resets on
# DTR edges and on opens, and the injected faults.
#
# Needs: $UNO_SIM (default build/tests/uno-sim), the images in $AVR_DIR
# (default build/avr: tests/avr/build-bootloaders.sh), the modem-line shim
# $SHIM, avrdude and avr-objcopy. Run from the repository root.
. tests/integration/uno_lib.sh

APP=$AVR_DIR/uno_app.hex
DEBIAN_OPTIBOOT=/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot_atmega328.hex
uno_require "$UNO_SIM" "$OPTIBOOT" "$ATMEGABOOT" "$APP" "$SHIM" avrdude avr-objcopy

# avr BAUD ARGS...: avrdude -c arduino on the current port, under the
# modem-line shim (its DTR edges go to $UNO_LINES). Time in $SECS.
avr() {
	local baud=$1 start end
	shift
	start=$(date +%s%N)
	run timeout 60 env LD_PRELOAD="$SHIM" FLASHWISE_SHIM_LINES="$UNO_LINES" \
		avrdude -c arduino -p m328p -P "$UNO_PORT" -b "$baud" "$@"
	end=$(date +%s%N)
	SECS=$(((end - start) / 1000000))
	SECS=$(printf '%d.%02d' $((SECS / 1000)) $((SECS % 1000 / 10)))
}

# avr_plain BAUD ARGS...: avrdude without the shim (termios only: no modem
# lines, so the harness must reset on the open itself).
avr_plain() {
	local baud=$1
	shift
	run timeout 60 avrdude -c arduino -p m328p -P "$UNO_PORT" -b "$baud" "$@"
}

# image BIN HEX SIZE SEED: a deterministic image that is also a harmless
# program (it starts with "rjmp .-2", a loop), as .bin and Intel HEX.
image() {
	{
		printf '\377\317'
		openssl enc -aes-128-ctr -nosalt -pass "pass:$4" -pbkdf2 </dev/zero 2>/dev/null |
			head -c $(($3 - 2))
	} >"$1"
	avr-objcopy -I binary -O ihex "$1" "$2"
}

flash_part() {
	head -c "$2" "${3:-$UNO_FLASH}" | tail -c +$(($1 + 1))
}

# read_port SECONDS FILE: what the board sends in that time, from an open
# that the harness sees (a plain reader; the pty is raw by default).
read_port() {
	timeout "$1" cat "$UNO_PORT" >"$2" 2>/dev/null
}

count_in() {
	grep -c -- "$1" "$2"
}

# ---- images the harness must refuse ----

run "$UNO_SIM" --bootloader "$DEBIAN_OPTIBOOT" --flash-file "$TMP/refuse.flash"
if [ "$RC" -ne 0 ] && [ -f "$DEBIAN_OPTIBOOT" ]; then
	expect_in "past the end of the 32 KB flash" \
		"the Debian prebuilt Optiboot (runs to 0x8013) is refused" "$ERR"
else
	bad "the Debian prebuilt Optiboot is refused (exit $RC)" "$OUT$ERR"
fi
expect_rc 1 "an application reaching into the boot section is refused" \
	"$UNO_SIM" --bootloader "$OPTIBOOT" --app "$ATMEGABOOT" --flash-file "$TMP/refuse.flash"
expect_in "into the boot section at 0x7c00" "... and the message names the boot section" "$ERR"
head -c 1000 /dev/zero >"$TMP/short.flash"
expect_rc 1 "a flash file of the wrong size is refused" \
	"$UNO_SIM" --bootloader "$OPTIBOOT" --flash-file "$TMP/short.flash"
expect_in "short.flash is 1000 bytes" "... naming the file and its size" "$ERR"
expect_rc 2 "an unknown fault is a usage error" \
	"$UNO_SIM" --bootloader "$OPTIBOOT" --flash-file "$TMP/x.flash" --fault melt:0.1
expect_in "unknown fault 'melt:0.1'" "... naming the fault" "$ERR"

# ---- Optiboot through the shim: the DTR edges reset the board ----

image "$TMP/img30k.bin" "$TMP/img30k.hex" 30720 uno-sim-30k
uno_start opti "$OPTIBOOT" --lines || exit 1

avr 115200 -U signature:r:"$TMP/sig.hex":h
if [ "$RC" -eq 0 ] && grep -qi "0x1e,0x95,0xf" "$TMP/sig.hex"; then
	ok "avrdude reads the signature 1E 95 0F through Optiboot (${SECS} s)"
else
	bad "avrdude reads the signature (exit $RC)" "$OUT$ERR$(cat "$TMP/sig.hex" 2>/dev/null)"
fi
expect_not_in "TIOCMGET" "under the shim avrdude has modem lines" "$ERR"
# open (DTR up), avrdude's clear and set 250 ms later: two rising edges
expect_in "external reset (DTR rising)" "a DTR rising edge resets the board" "$(cat "$UNO_ERR")"
n=$(count_in "external reset (DTR rising)" "$UNO_ERR")
[ "$n" -eq 2 ] && ok "one avrdude session gives two DTR rising edges, two resets" ||
	bad "two resets per session (got $n)" "$(cat "$UNO_ERR")"

avr 115200 -U flash:w:"$TMP/img30k.hex":i
WRITE_SECS=$SECS
if [ "$RC" -eq 0 ]; then
	expect_in "30720 bytes of flash verified" "avrdude writes and verifies 30 KB (${SECS} s)" "$ERR"
else
	bad "avrdude writes and verifies 30 KB (exit $RC)" "$OUT$ERR"
fi
if flash_part 0 30720 | cmp -s - "$TMP/img30k.bin"; then
	ok "the flash file holds the 30 KB image at once"
else
	bad "the flash file holds the 30 KB image"
fi
n=$(count_in "written (" "$UNO_ERR")
[ "$n" -eq 240 ] && ok "240 page writes" || bad "240 page writes (got $n)"
secs=${WRITE_SECS%.*}
if [ "$secs" -ge 7 ] && [ "$secs" -lt 15 ]; then
	ok "the write and verify takes real time: ${WRITE_SECS} s (a real Uno: about 8.4 s)"
else
	bad "the 30 KB write and verify takes about 8.4 s (took ${WRITE_SECS} s)"
fi
grep -q "overrun" "$UNO_ERR" && bad "no overrun with avrdude" "$(grep overrun "$UNO_ERR" | head -3)" ||
	ok "avrdude never overruns the 2-byte buffer"
uno_stop
# persisted: a new board on the same flash file reads it back
cp "$UNO_FLASH" "$TMP/opti2.flash"
uno_start opti2 "$OPTIBOOT" --lines || exit 1
avr 115200 -U flash:r:"$TMP/back.bin":r
if [ "$RC" -eq 0 ] && head -c 30720 "$TMP/back.bin" | cmp -s - "$TMP/img30k.bin"; then
	ok "after a restart avrdude reads the image back (${SECS} s)"
else
	bad "after a restart avrdude reads the image back (exit $RC)" "$OUT$ERR"
fi
# Optiboot can read itself: the full read ends with the boot section
if [ "$RC" -eq 0 ] && tail -c 1024 "$TMP/back.bin" | cmp -s - <(tail -c 1024 "$UNO_FLASH"); then
	ok "a full read includes the bootloader bytes"
else
	bad "a full read includes the bootloader bytes"
fi
uno_stop

# ---- a client at the wrong baud never syncs ----

uno_start wrong "$OPTIBOOT" --lines || exit 1
avr 57600 -x attempts=1 -U signature:r:"$TMP/sig2.hex":h
[ "$RC" -ne 0 ] && ok "avrdude at 57600 gets no sync from Optiboot at 115200" ||
	bad "avrdude at 57600 gets no sync (exit $RC)" "$OUT$ERR"
expect_in "not in sync" "... avrdude says it is not in sync" "$ERR"
uno_stop

# ---- the application starts when the bootloader leaves ----

uno_start app "$OPTIBOOT" --boot-on-open || exit 1
avr_plain 115200 -U flash:w:"$APP":i
[ "$RC" -eq 0 ] && ok "without the shim, --boot-on-open lets avrdude write the app" ||
	bad "avrdude writes the app with --boot-on-open (exit $RC)" "$OUT$ERR"
expect_in "TIOCMGET" "... (avrdude reports the pty's missing modem lines)" "$ERR"
read_port 2.5 "$TMP/banner.txt"
expect_in "flashwise uno app" \
	"an open resets into Optiboot; 1 s later its watchdog starts the written app" \
	"$(cat "$TMP/banner.txt")"
# a second open while a client holds the port raises no DTR: no reset
exec {HOLD}<>"$UNO_PORT"
sleep 0.3
n1=$(count_in "port opened" "$UNO_ERR")
stty -F "$UNO_PORT" >/dev/null 2>&1
sleep 0.3
n2=$(count_in "port opened" "$UNO_ERR")
exec {HOLD}>&-
[ "$n1" -eq "$n2" ] && ok "an open while another client holds the port does not reset" ||
	bad "no reset on a second open ($n1 -> $n2)"
uno_stop

# ---- bytes that arrive during reset and the LED flash (reference §5) ----

# 40 GET_SYNC at once: 10 ms after the open the board is still in reset
# (all lost); 200 ms after, Optiboot is flashing its LED with the UART on
# but unread, so the 2-byte buffer keeps exactly one "30 20".
uno_start flashing "$OPTIBOOT" --boot-on-open || exit 1
for d in 0.01 0.2; do
	exec {PORT}<>"$UNO_PORT"
	sleep "$d"
	printf '0 %.0s' $(seq 40) >&$PORT
	timeout 0.8 cat <&$PORT >"$TMP/sync.bin"
	exec {PORT}>&-
	n=$(od -An -v -tx1 "$TMP/sync.bin" | tr -s ' \n' '  ' | grep -o '14 10' | wc -l)
	want=0
	[ "$d" = 0.2 ] && want=1
	[ "$n" -eq "$want" ] && ok "40 syncs sent $d s after the open get $want answer(s)" ||
		bad "40 syncs sent $d s after the open get $want answer(s) (got $n)"
	sleep 1.5
done
uno_stop

# ---- the UART: the 2-byte receive buffer and the baud check, via the app ----

uno_start echo "$OPTIBOOT" --app "$APP" || exit 1
sleep 0.3
exec {PORT}<>"$UNO_PORT"
sleep 0.1
printf '0123456789' >&$PORT
sleep 0.3
timeout 0.3 cat <&$PORT >"$TMP/echo.txt"
exec {PORT}>&-
got=$(grep -o 'echo: .' "$TMP/echo.txt" | cut -c7 | tr -d '\n')
if [ "${got:0:3}" = 012 ] && [ "${#got}" -lt 10 ]; then
	ok "bytes sent while the app is busy are lost beyond 2 (echoed: $got)"
else
	bad "the 2-byte receive buffer (echoed: '$got')" "$(od -c "$TMP/echo.txt" | head)"
fi
grep -q "overrun" "$UNO_ERR" && ok "... and the harness logs the overrun" || bad "overrun logged"
exec {PORT}<>"$UNO_PORT"
stty -F "$UNO_PORT" 57600 raw -echo
printf 'abc' >&$PORT
sleep 0.2
timeout 0.3 cat <&$PORT >"$TMP/echo57.txt"
exec {PORT}>&-
if grep -q "echo: [abc]" "$TMP/echo57.txt"; then
	bad "a client at 57600 gets garbage from a board at 115200" "$(od -c "$TMP/echo57.txt" | head)"
else
	ok "a client at 57600 gets garbage from a board at 115200"
fi
stty -F "$UNO_PORT" 115200
uno_stop

# ---- ATmegaBOOT: 2 KB boot section, 57600 baud, EEPROM ----

image "$TMP/img4k.bin" "$TMP/img4k.hex" 4096 uno-sim-4k
printf 'flashwise' >"$TMP/ee.bin"
avr-objcopy -I binary -O ihex "$TMP/ee.bin" "$TMP/ee.hex"
uno_start old "$ATMEGABOOT" --lines || exit 1
expect_in "boot section 0x7800-0x7fff (high fuse 0xda)" \
	"ATmegaBOOT gets a 2 KB boot section" "$(cat "$UNO_ERR")"
avr 57600 -U flash:w:"$TMP/img4k.hex":i -U eeprom:w:"$TMP/ee.hex":i
if [ "$RC" -eq 0 ]; then
	expect_in "4096 bytes of flash verified" "ATmegaBOOT at 57600: flash written and verified (${SECS} s)" "$ERR"
	expect_in "9 bytes of eeprom verified" "ATmegaBOOT: EEPROM written and verified" "$ERR"
else
	bad "ATmegaBOOT at 57600 (exit $RC)" "$OUT$ERR"
fi
flash_part 0 4096 | cmp -s - "$TMP/img4k.bin" && ok "... and the flash file holds the image" ||
	bad "the flash file holds the ATmegaBOOT-written image"
avr 115200 -x attempts=1 -U signature:r:"$TMP/sig3.hex":h
[ "$RC" -ne 0 ] && ok "avrdude at 115200 gets no sync from ATmegaBOOT at 57600" ||
	bad "no sync at the wrong baud with ATmegaBOOT (exit $RC)" "$OUT$ERR"
uno_stop

# ---- the lines file: only this pty's DTR edges count ----

uno_start lines "$OPTIBOOT" --lines || exit 1
now=1 # long past: the harness takes the edge as happening now
echo "DTR=1 RTS=1 t=$now dev=/dev/pts/99999 why=open" >>"$UNO_LINES"
sleep 0.2
n=$(count_in "DTR rising" "$UNO_ERR")
[ "$n" -eq 0 ] && ok "a DTR edge of another pty is ignored" || bad "another pty's DTR ignored ($n)"
echo "DTR=1 RTS=1 t=$now dev=$UNO_PORT why=open" >>"$UNO_LINES"
echo "DTR=1 RTS=0 t=$now dev=$UNO_PORT why=set" >>"$UNO_LINES"
sleep 0.2
n=$(count_in "DTR rising" "$UNO_ERR")
[ "$n" -eq 1 ] && ok "DTR held high resets once (an edge, not a level)" || bad "one reset per edge ($n)"
uno_stop

# ---- faults ----

# reset-write:3: the third page write is cut by a reset; that page is left
# erased, the earlier ones hold the image, the later ones their old bytes.
image "$TMP/img1k.bin" "$TMP/img1k.hex" 1024 uno-sim-1k
head -c 32768 /dev/zero | tr '\0' '\132' >"$TMP/fault.flash"
uno_start fault "$OPTIBOOT" --lines --fault reset-write:3 || exit 1
run timeout 8 env LD_PRELOAD="$SHIM" FLASHWISE_SHIM_LINES="$UNO_LINES" \
	avrdude -c arduino -p m328p -P "$UNO_PORT" -b 115200 -U flash:w:"$TMP/img1k.hex":i
[ "$RC" -ne 0 ] && ok "a reset during a page write makes avrdude fail (exit $RC)" ||
	bad "avrdude fails after a reset during a write" "$OUT$ERR"
uno_stop
expect_in "fault: reset during the write of page 0x0100" "the harness reports the cut write" \
	"$(cat "$UNO_ERR")"
flash_part 0 256 | cmp -s - <(head -c 256 "$TMP/img1k.bin") && ok "pages 1-2 hold the image" ||
	bad "pages 1-2 hold the image"
[ "$(flash_part 256 128 | tr -d '\377' | wc -c)" -eq 0 ] && ok "page 3 is left erased" ||
	bad "page 3 is left erased" "$(flash_part 256 128 | od -An -tx1 | head -2)"
[ "$(flash_part 384 640 | tr -d 'Z' | wc -c)" -eq 0 ] && ok "pages 4-8 keep their old bytes" ||
	bad "pages 4-8 keep their old bytes"

# corrupt-rx: a bit flipped on the way in is written as sent; the verify
# catches it. Seed 3 at 1/2000 hits one byte, in a page's data (byte 709).
uno_start corrupt "$OPTIBOOT" --lines --seed 3 --fault corrupt-rx:0.0005 || exit 1
avr 115200 -U flash:w:"$TMP/img1k.hex":i
uno_stop
if [ "$RC" -ne 0 ] && grep -q "fault: corrupted byte" "$UNO_ERR"; then
	expect_in "verification mismatch" "a corrupted byte is caught by avrdude's verify" "$ERR"
else
	bad "a corrupted byte is caught by the verify (exit $RC)" "$OUT$ERR$(grep fault "$UNO_ERR")"
fi
ndiff=$(cmp -l <(flash_part 0 1024) "$TMP/img1k.bin" | wc -l)
[ "$ndiff" -eq 1 ] && ok "exactly one flash byte differs from the image" ||
	bad "one byte differs (got $ndiff)"

# drop, both ways, on the app's echo: same seed, same losses
uno_start drop "$OPTIBOOT" --app "$APP" --seed 3 --fault drop:0.3 || exit 1
sleep 0.3
exec {PORT}<>"$UNO_PORT"
for c in a b c d e f g h i j; do
	printf '%s' "$c" >&$PORT
	sleep 0.02
done
sleep 0.2
timeout 0.3 cat <&$PORT >"$TMP/drop.txt"
exec {PORT}>&-
uno_stop
n=$(grep -c "fault: dropped byte" "$UNO_ERR")
lines=$(grep -c "echo: " "$TMP/drop.txt")
if [ "$n" -gt 0 ] && [ "$lines" -lt 10 ]; then
	ok "drop:0.3 loses bytes ($n dropped, $lines of 10 echoes seen)"
else
	bad "drop:0.3 loses bytes ($n dropped, $lines echoes)" "$(cat "$TMP/drop.txt")"
fi

echo "info: 30 KB avrdude write+verify on the harness: ${WRITE_SECS} s"
finish
