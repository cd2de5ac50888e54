#!/bin/bash
# ESP8266 (NodeMCU, 4 MB) end to end against flashwise-sim: the ROM loader
# cannot read or hash, so writing needs --accept-no-backup and ends "NOT
# verified" (exit 10); the ROM's erase overshoot is warned about and erases
# exactly what the real ROM erases, nothing more.
#
# The flash starts filled with 0x5A, and $EXP models what it must hold after
# each step; the whole flash file is compared with it, so any byte changed
# outside the expected ranges fails the test.
. tests/integration/lib.sh

P=nodemcu-v1
MAC=18:fe:34:ab:cd:ef
EXP=$TMP/expected.flash
make_flash "$TMP/e8.flash" 5a
cp "$TMP/e8.flash" "$EXP"
sim_start e8 esp8266 --boot flash --mac "$MAC"

# exp_put FILE OFF / exp_erase OFF LEN: update the model.
exp_put() { dd if="$1" of="$EXP" bs=4096 seek=$(($2)) oflag=seek_bytes conv=notrunc status=none; }
exp_erase() {
	head -c $(($2)) /dev/zero | tr '\0' '\377' |
		dd of="$EXP" bs=4096 seek=$(($1)) oflag=seek_bytes conv=notrunc status=none
}
# as_expected DESC: the whole flash file equals the model.
as_expected() {
	if cmp -s "$SIM_FLASH" "$EXP"; then
		ok "$1"
	else
		bad "$1" "$(cmp -l "$SIM_FLASH" "$EXP" 2>&1 | awk 'NR<=3 {printf "offset 0x%X: flash %s, expected %s\n", $1-1, $2, $3}')"
	fi
}

# --- detect -----------------------------------------------------------------
expect_rc 0 "detect identifies the ESP8266" fw detect --port "$SIM_PORT" --profile $P
expect_in "chip: esp8266" "detect names the chip" "$OUT"
expect_in "mac: $MAC" "detect prints the sim's MAC" "$OUT"
expect_in "flash: 4096 KB" "detect prints the flash size" "$OUT"
expect_in "identity: matches profile $P" "detect says it matches the profile" "$OUT"
expect_in "read no, hash no" "the ROM loader can neither read nor hash" "$OUT"
as_expected "detect changed no byte of the flash"

# --- write without a backup -----------------------------------------------------
"$FW" image sample "$TMP/app.bin" --profile $P >/dev/null || bad "image sample"
expect_rc 8 "write without --accept-no-backup is declined (exit 8)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@0x0" --backup-dir "$TMP"
expect_in "--accept-no-backup" "the refusal says how to go on" "$ERR"
expect_in "cannot be backed up" "the refusal says why" "$ERR"
expect_not_in "write:" "nothing was written" "$OUT"
as_expected "the flash is unchanged after the refusal"

expect_rc 10 "write with --accept-no-backup exits 10 (unsafe: not verified)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@0x0" --accept-no-backup
expect_in "NOT verified" "the result says NOT verified" "$ERR"
expect_in "writing without a backup, as accepted" "the missing backup is stated" "$ERR"
expect_in "also erases 0x1000-0x1FFF" "the overshoot into sector 1 is warned about" "$ERR"
same_bytes "flash at 0x0 holds the image" "$TMP/app.bin" 0
exp_erase 0 0x2000
exp_put "$TMP/app.bin" 0
as_expected "sector 0 = image + erased rest, sector 1 erased, everything else untouched"

# --- the erase quirk: init data at 0x3FC000 --------------------------------------
raw_image "$TMP/init.bin" 4096 init-data
expect_rc 10 "init data written at init_data (exit 10: not verified)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/init.bin@init_data" --accept-no-backup
expect_in "also erases 0x3FD000-0x3FDFFF" "the driver warns that 0x3FD000 is erased too" "$ERR"
same_bytes "0x3FC000 holds the init data" "$TMP/init.bin" 0x3FC000
all_byte "0x3FD000 was erased (the ROM's overshoot)" 0x3FD000 4096 ff
all_byte "0x3FB000 (rf_cal) keeps its contents" 0x3FB000 4096 5a
all_byte "0x3FE000 (blank) keeps its contents" 0x3FE000 4096 5a
exp_erase 0x3FD000 0x1000
exp_put "$TMP/init.bin" 0x3FC000
as_expected "nothing beyond what the real ROM erases changed"

# --- two sectors crossing a 64 KB block boundary -----------------------------------
raw_image "$TMP/two.bin" 8192 two-sectors
expect_rc 10 "a 2-sector write at 0x1F000 (crosses into the next 64 KB block)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/two.bin@0x1F000" --accept-no-backup
expect_not_in "also erases" "no overshoot is announced where there is none" "$ERR"
same_bytes "0x1F000..0x20FFF holds the image" "$TMP/two.bin" 0x1F000
all_byte "0x1E000 keeps its contents" 0x1E000 4096 5a
all_byte "0x21000 keeps its contents" 0x21000 4096 5a
exp_put "$TMP/two.bin" 0x1F000
as_expected "nothing else changed"

# Three sectors inside one block: the ROM erases a fourth, and says so.
raw_image "$TMP/three.bin" 12288 three-sectors
expect_rc 10 "a 3-sector write at 0x30000" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/three.bin@0x30000" --accept-no-backup
expect_in "also erases 0x33000-0x33FFF" "the overshoot of an odd count is warned about" "$ERR"
exp_erase 0x33000 0x1000
exp_put "$TMP/three.bin" 0x30000
as_expected "3 sectors written, the 4th erased, nothing else changed"

# --- an ESP8266 cannot be verified or backed up ----------------------------------
expect_rc 7 "verify on the ESP8266 ROM is refused (exit 7)" \
	fw verify --port "$SIM_PORT" --profile $P "$TMP/app.bin@0x0"
expect_in "cannot be verified" "verify says why" "$ERR"
expect_rc 7 "backup on the ESP8266 ROM is refused (exit 7)" \
	fw backup --port "$SIM_PORT" --profile $P -o "$TMP/bk.bin" --offset 0 --size 0x1000
[ ! -e "$TMP/bk.bin" ] && ok "no backup file was left behind" || bad "no backup file was left behind"

# --- wrong profile against the ESP8266 ------------------------------------------
"$FW" image sample "$TMP/e32.bin" --profile esp32-devkitc >/dev/null
expect_rc 7 "an esp32 profile against the ESP8266 is refused (exit 7)" \
	fw write --port "$SIM_PORT" --profile esp32-devkitc "$TMP/e32.bin@factory" --backup-dir "$TMP"
expect_in "wrong chip" "the message says wrong chip" "$ERR"
as_expected "the flash is unchanged after the refusal"
sim_stop
as_expected "the flash file is complete after the sim exits"
finish
