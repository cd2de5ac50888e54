#!/bin/bash
# ESP32 end to end: flashwise detect/write/verify/backup against
# flashwise-sim over a pty, checked against the simulator's flash file.
. tests/integration/lib.sh

P=esp32-devkitc
MAC=24:0a:c4:12:34:56
sim_start e32 esp32 --boot flash --mac "$MAC"

# --- detect ---------------------------------------------------------------
expect_rc 0 "detect resets the board into its loader and identifies it" \
	fw detect --port "$SIM_PORT" --profile $P
expect_in "chip: esp32" "detect names the chip" "$OUT"
expect_in "mac: $MAC" "detect prints the sim's MAC" "$OUT"
expect_in "flash: 4096 KB" "detect prints the flash size" "$OUT"
expect_in "identity: matches profile $P" "detect says it matches the profile" "$OUT"
expect_in "read yes, hash yes" "the ESP32 ROM can read and hash" "$OUT"
grep -q 'why=tight\|why=set' "$SIM_LINES" && ok "detect moved DTR/RTS (shim side channel)" ||
	bad "detect moved DTR/RTS" "$(cat "$SIM_LINES")"

# --- write a sample app at factory ------------------------------------------
"$FW" image sample "$TMP/app.bin" --profile $P >/dev/null || bad "image sample"
size=$(stat -c %s "$TMP/app.bin")
flash_bytes 0x10000 4096 >"$TMP/before-0x10000.bin"
mkdir "$TMP/bk"
expect_rc 0 "write app.bin@factory exits 0" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@factory" --backup-dir "$TMP/bk"
expect_in "verify: $size bytes match" "write verified what it wrote" "$OUT"
bk=$TMP/bk/backup-$P-0x010000.bin
[ -f "$bk" ] && [ -f "$bk.sha256" ] && ok "backup and its sidecar exist" ||
	bad "backup and its sidecar exist" "$(ls -l "$TMP/bk")"
(cd "$TMP/bk" && sha256sum -c --quiet "$(basename "$bk").sha256") >/dev/null 2>&1 &&
	ok "sha256sum -c accepts the backup's sidecar" || bad "sha256sum -c accepts the backup's sidecar"
cmp -s "$bk" "$TMP/before-0x10000.bin" && ok "the backup holds the sector as it was before" ||
	bad "the backup holds the sector as it was before"
same_bytes "flash at 0x10000 equals the image byte for byte" "$TMP/app.bin" 0x10000
all_byte "the rest of the sector stays erased" $((0x10000 + size)) $((4096 - size)) ff

expect_rc 0 "verify the written image exits 0" \
	fw verify --port "$SIM_PORT" --profile $P "$TMP/app.bin@factory"
expect_in "bytes match" "verify says the bytes match" "$OUT"

# --- backup of a region -----------------------------------------------------
expect_rc 0 "backup --offset 0x10000 --size 0x1000" \
	fw backup --port "$SIM_PORT" --profile $P -o "$TMP/region.bin" --offset 0x10000 --size 0x1000
same_bytes "the region backup equals the flash file's bytes" "$TMP/region.bin" 0x10000 4096
(cd "$TMP" && sha256sum -c --quiet region.bin.sha256) >/dev/null 2>&1 &&
	ok "region backup sidecar checks" || bad "region backup sidecar checks"
expect_rc 1 "backup never overwrites an existing file" \
	fw backup --port "$SIM_PORT" --profile $P -o "$TMP/region.bin" --offset 0x10000 --size 0x1000
expect_in "region.bin" "the refusal names the file" "$ERR"
same_bytes "the refused backup left the old file alone" "$TMP/region.bin" 0x10000 4096

# --- a corrupted byte on the chip is found by verify ------------------------
sim_stop
printf '\x00' | dd of="$SIM_FLASH" bs=1 seek=$((0x10000 + 0x40)) conv=notrunc status=none
sim_start e32 esp32 --boot flash --mac "$MAC"
expect_rc 1 "verify after a byte changed on the chip fails (exit 1: nothing written)" \
	fw verify --port "$SIM_PORT" --profile $P "$TMP/app.bin@factory"
expect_in "differs: 0x010000..0x01008F" "verify names the differing range" "$ERR"
expect_in "verify failed" "verify says it failed" "$ERR"

# A write repairs it (the sector is backed up, erased and written again).
mkdir "$TMP/bk2"
expect_rc 0 "writing again repairs the corrupted byte" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@factory" --backup-dir "$TMP/bk2"
same_bytes "flash at 0x10000 equals the image again" "$TMP/app.bin" 0x10000

# --- wrong profile: nothing written -----------------------------------------
"$FW" image sample "$TMP/nodemcu.bin" --profile nodemcu-v1 >/dev/null
before=$(flash_sha)
expect_rc 7 "a nodemcu-v1 write against an esp32 is refused (exit 7)" \
	fw write --port "$SIM_PORT" --profile nodemcu-v1 "$TMP/nodemcu.bin@0x0" --backup-dir "$TMP"
expect_in "wrong chip" "the message says wrong chip" "$ERR"
expect_in "esp8266" "the message names the profile's chip" "$ERR"
[ "$(flash_sha)" = "$before" ] && ok "the flash is unchanged after the refusal" ||
	bad "the flash is unchanged after the refusal"
[ ! -e "$TMP/backup-nodemcu-v1-0x000000.bin" ] && ok "no backup was taken for the refused write" ||
	bad "no backup was taken for the refused write"

# --- an image without a published hash: refused before the device ----------
cp "$TMP/app.bin" "$TMP/nohash.bin"
nlines=$(wc -l <"$SIM_LINES")
before=$(flash_sha)
expect_rc 5 "an image without a published hash is refused (exit 5)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/nohash.bin@factory" --backup-dir "$TMP"
expect_in "no published SHA-256" "the message says there is no published hash" "$ERR"
expect_in "nohash.bin" "the message names the file" "$ERR"
expect_not_in "chip:" "the device was not identified" "$OUT"
[ "$(wc -l <"$SIM_LINES")" -eq "$nlines" ] && ok "the port was never opened (no line change)" ||
	bad "the port was never opened" "$(tail -3 "$SIM_LINES")"
[ "$(flash_sha)" = "$before" ] && ok "the flash is unchanged" || bad "the flash is unchanged"
printf '%064d' 0 >"$TMP/zero.hex"
expect_rc 5 "a wrong --sha256 is refused (exit 5)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@factory" --sha256 "$(cat "$TMP/zero.hex")"
[ "$(flash_sha)" = "$before" ] && ok "the flash is unchanged" || bad "the flash is unchanged"

# --- unaligned start: the ROM erases the whole sector ------------------------
cp "$TMP/app.bin" "$TMP/app2.bin"
(cd "$TMP" && sha256sum app2.bin >app2.bin.sha256)
mkdir "$TMP/bk3"
expect_rc 0 "an image at 0x10100 is written" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app2.bin@0x10100" --backup-dir "$TMP/bk3"
expect_in "0x10000-0x100FF will be erased" "the driver warns which bytes the sector erase takes" "$ERR"
same_bytes "0x10100 holds the image" "$TMP/app2.bin" 0x10100
all_byte "0x10000..0x100FF was erased, as warned" 0x10000 256 ff
cmp -s -n "$size" "$TMP/bk3/backup-$P-0x010000.bin" "$TMP/app.bin" &&
	ok "the backup kept the app that the erase took" ||
	bad "the backup kept the app that the erase took"

# --- the port in use ---------------------------------------------------------
# Another flashwise: one waiting on the termios path (no reset lines, so it
# waits for the buttons) holds the port's lock.
# (a plain command, not the fw_termios function: $! must be flashwise itself)
FLASHWISE_TRANSPORT=termios "$FW" detect --port "$SIM_PORT" --profile $P \
	>"$TMP/holder.out" 2>"$TMP/holder.err" &
holder=$!
for i in $(seq 100); do
	grep -q "waiting for the bootloader" "$TMP/holder.err" && break
	sleep 0.05
done
expect_in "waiting for the bootloader" "termios path: the manual entry message is shown" "$(cat "$TMP/holder.err")"
expect_rc 6 "a port held by another flashwise is refused (exit 6)" \
	fw detect --port "$SIM_PORT" --profile $P
expect_in "in use by another program" "the message says the port is in use" "$ERR"
expect_in "held by" "the message names a holder" "$ERR"
expect_in "flashwise (pid $holder)" "the message names the other flashwise, not only the simulator" "$ERR"
kill -TERM "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

# Another program that locks the port the way picocom does (flock).
# The lock belongs to the descriptor sleep inherits, so killing sleep frees it.
( exec 9<"$SIM_PORT" && flock -n 9 && exec sleep 30 ) &
holder=$!
for i in $(seq 100); do
	[ -n "$(ls -l /proc/$holder/fd 2>/dev/null | grep "$SIM_PORT")" ] && break
	sleep 0.05
done
expect_rc 6 "a port locked by another program is refused (exit 6)" \
	fw detect --port "$SIM_PORT" --profile $P
expect_in "in use by another program" "the message says the port is in use" "$ERR"
kill -TERM "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

expect_rc 0 "the port works again once released" fw detect --port "$SIM_PORT" --profile $P
same_bytes "the flash still holds the last image" "$TMP/app2.bin" 0x10100
sim_stop

# --- termios path: no reset lines ---------------------------------------------
# The sim starts in its loader (as if the buttons were held at power-on); one
# session works, after which the chip runs its app until it is reset again.
sim_start e32t esp32 --boot download
"$FW" image sample "$TMP/t.bin" --profile $P >/dev/null
mkdir "$TMP/bkt"
expect_rc 0 "termios: write to a board already in its loader" \
	fw_termios write --port "$SIM_PORT" --profile $P "$TMP/t.bin@factory" --backup-dir "$TMP/bkt"
expect_in "waiting for the bootloader" "termios: the manual entry message is shown" "$ERR"
expect_in "Hold BOOT" "termios: it says which buttons to use" "$ERR"
same_bytes "termios: the flash holds the image" "$TMP/t.bin" 0x10000
[ "$(wc -l <"$SIM_LINES")" -eq 0 ] && ok "termios: no modem line moved" ||
	bad "termios: no modem line moved" "$(cat "$SIM_LINES")"
# The chip now runs its app: a second session waits for the buttons (60 s);
# cut it short and check it did not pretend to reach the loader.
run timeout 4 env FLASHWISE_TRANSPORT=termios "$FW" detect --port "$SIM_PORT" --profile $P
[ "$RC" -ne 0 ] && ok "termios: a second session does not reach the loader (exit $RC)" ||
	bad "termios: a second session does not reach the loader" "$OUT$ERR"
expect_in "waiting for the bootloader" "termios: the second session asks for the buttons" "$ERR"
expect_not_in "identity: matches" "termios: the second session identified nothing" "$OUT"
sim_stop
sim_start e32t esp32 --boot download
expect_rc 0 "termios: after a restart in download mode, verify works" \
	fw_termios verify --port "$SIM_PORT" --profile $P "$TMP/t.bin@factory"
sim_stop
finish
