#!/bin/bash
# ESP8266 (NodeMCU, 4 MB) end to end against flashwise-sim.
#
# With the profile as shipped ([loader] helper = yes) the driver uploads
# flashwise's RAM helper (the simulator runs the helper's own protocol
# code): writes are backed up first, erase exactly what they need and are
# verified by MD5 on the chip (exit 0); a byte changed on the chip after
# writing is caught; a full 4 MB backup equals the flash.
#
# A copy of the profile with helper = no keeps the ROM loader alone: it
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

# === with flashwise's RAM helper (the shipped profile) ===========================

# --- detect -----------------------------------------------------------------
expect_rc 0 "detect identifies the ESP8266" fw detect --port "$SIM_PORT" --profile $P
expect_in "chip: esp8266" "detect names the chip" "$OUT"
expect_in "mac: $MAC" "detect prints the sim's MAC" "$OUT"
expect_in "flash: 4096 KB" "detect prints the flash size" "$OUT"
expect_in "identity: matches profile $P" "detect says it matches the profile" "$OUT"
expect_in "flashwise helper running" "the helper was uploaded and greeted" "$ERR"
expect_in "read yes, hash yes, exact erase yes" "with the helper the chip can be read and hashed" "$OUT"
as_expected "detect changed no byte of the flash"

# --- write: backup, exact erase, verify -------------------------------------------
"$FW" image sample "$TMP/app.bin" --profile $P >/dev/null || bad "image sample"
mkdir -p "$TMP/bk"
expect_rc 0 "write through the helper exits 0 (backed up and verified)" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/app.bin@0x0" --backup-dir "$TMP/bk"
expect_in "verify:" "the write was verified" "$OUT"
expect_in "flashwise helper" "the verify names the helper's MD5" "$OUT"
expect_not_in "NOT verified" "nothing says not verified" "$ERR"
expect_not_in "also erases" "no ROM overshoot with the helper" "$ERR"
BK=$TMP/bk/backup-$P-0x000000.bin
if [ -f "$BK" ] && [ -f "$BK.sha256" ]; then ok "the backup and its sidecar exist"; else bad "the backup and its sidecar exist" "$(ls -l "$TMP/bk")"; fi
if [ "$(stat -c %s "$BK" 2>/dev/null)" = 4096 ] && [ -z "$(od -An -v -tx1 "$BK" | tr -s ' \n' '\n\n' | grep -v -x -e 5a -e '')" ]; then
	ok "the backup holds the sector as it was (0x5A)"
else
	bad "the backup holds the sector as it was (0x5A)"
fi
(cd "$TMP/bk" && sha256sum -c --quiet "$(basename "$BK").sha256") >/dev/null 2>&1 &&
	ok "the backup's sidecar checks" || bad "the backup's sidecar checks"
same_bytes "flash at 0x0 holds the image" "$TMP/app.bin" 0
exp_erase 0 0x1000
exp_put "$TMP/app.bin" 0
as_expected "sector 0 = image + erased rest, sector 1 untouched (exact erase)"

# --- init data at 0x3FC000: no overshoot into 0x3FD000 ----------------------------
raw_image "$TMP/init.bin" 4096 init-data
expect_rc 0 "init data written at init_data, verified" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/init.bin@init_data" --backup-dir "$TMP/bk"
expect_not_in "also erases" "no overshoot is announced" "$ERR"
same_bytes "0x3FC000 holds the init data" "$TMP/init.bin" 0x3FC000
all_byte "0x3FD000 keeps its contents (the helper erases exactly)" 0x3FD000 4096 5a
exp_put "$TMP/init.bin" 0x3FC000
as_expected "only the init data sector changed"

# --- three sectors inside one 64 KB block ------------------------------------------
raw_image "$TMP/three.bin" 12288 three-sectors
expect_rc 0 "a 3-sector write at 0x30000, verified" \
	fw write --port "$SIM_PORT" --profile $P "$TMP/three.bin@0x30000" --backup-dir "$TMP/bk"
exp_put "$TMP/three.bin" 0x30000
as_expected "3 sectors written, the 4th untouched, nothing else changed"
expect_rc 0 "verify of the written image passes" \
	fw verify --port "$SIM_PORT" --profile $P "$TMP/three.bin@0x30000"
expect_in "verify: 12288 bytes match" "verify says how much it checked" "$OUT"

# --- a byte changed on the chip after writing ---------------------------------------
sim_stop
printf '\x00' | dd of="$SIM_FLASH" bs=1 seek=$((0x31234)) conv=notrunc status=none
sim_start e8 esp8266 --boot flash --mac "$MAC"
expect_rc 1 "verify catches the corrupted byte (exit 1)" \
	fw verify --port "$SIM_PORT" --profile $P "$TMP/three.bin@0x30000"
expect_in "differs: 0x031000..0x031FFF" "the differing sector is named" "$ERR"
expect_in "verify failed" "the message says the verify failed" "$ERR"
expect_not_in "differs: 0x030000" "the intact sectors are not named" "$ERR"
# put the model in line with the chip again
printf '\x00' | dd of="$EXP" bs=1 seek=$((0x31234)) conv=notrunc status=none

# --- full 4 MB backup ---------------------------------------------------------------
expect_rc 0 "a full backup through the helper" \
	fw backup --port "$SIM_PORT" --profile $P -o "$TMP/full.bin"
expect_in "4194304 bytes" "the backup covers the whole 4 MB" "$OUT"
if cmp -s "$TMP/full.bin" "$EXP"; then ok "the 4 MB backup equals the model of the flash"; else bad "the 4 MB backup equals the model of the flash"; fi
if cmp -s "$TMP/full.bin" "$SIM_FLASH"; then ok "the 4 MB backup equals the flash file"; else bad "the 4 MB backup equals the flash file"; fi

# === helper = no: the ROM loader alone ========================================
NOP=$TMP/nohelper/nodemcu-nohelper.ini
mkdir -p "$TMP/nohelper"
# The ROM alone cannot change the baud rate: the copy drops flash_baud too.
sed -e 's/^helper = yes$/helper = no/' -e '/^flash_baud = /d' profiles/$P.ini >"$NOP"
grep -q '^helper = no$' "$NOP" && ok "a profile copy with helper = no" || bad "a profile copy with helper = no"

expect_rc 0 "detect with helper = no" fw detect --port "$SIM_PORT" --profile "$NOP"
expect_in "read no, hash no" "the ROM loader can neither read nor hash" "$OUT"
expect_in "helper = no" "detect says the profile disabled the helper" "$OUT"
expect_not_in "flashwise helper running" "no helper was uploaded" "$ERR"
as_expected "detect changed no byte of the flash"

# --- write without a backup -----------------------------------------------------
expect_rc 8 "write without --accept-no-backup is declined (exit 8)" \
	fw write --port "$SIM_PORT" --profile "$NOP" "$TMP/app.bin@0x0" --backup-dir "$TMP"
expect_in "--accept-no-backup" "the refusal says how to go on" "$ERR"
expect_in "cannot be backed up or verified" "the refusal says plainly what is missing" "$ERR"
expect_in "helper = no" "the refusal names the profile's choice" "$ERR"
expect_not_in "write:" "nothing was written" "$OUT"
as_expected "the flash is unchanged after the refusal"

expect_rc 10 "write with --accept-no-backup exits 10 (unsafe: not verified)" \
	fw write --port "$SIM_PORT" --profile "$NOP" "$TMP/app.bin@0x0" --accept-no-backup
expect_in "NOT verified" "the result says NOT verified" "$ERR"
expect_in "writing without a backup, as accepted" "the missing backup is stated" "$ERR"
expect_in "also erases 0x1000-0x1FFF" "the overshoot into sector 1 is warned about" "$ERR"
same_bytes "flash at 0x0 holds the image" "$TMP/app.bin" 0
exp_erase 0 0x2000
exp_put "$TMP/app.bin" 0
as_expected "sector 0 = image + erased rest, sector 1 erased, everything else untouched"

# --- the erase quirk: init data at 0x3FC000 --------------------------------------
expect_rc 10 "init data written at init_data (exit 10: not verified)" \
	fw write --port "$SIM_PORT" --profile "$NOP" "$TMP/init.bin@init_data" --accept-no-backup
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
	fw write --port "$SIM_PORT" --profile "$NOP" "$TMP/two.bin@0x1F000" --accept-no-backup
expect_not_in "also erases" "no overshoot is announced where there is none" "$ERR"
same_bytes "0x1F000..0x20FFF holds the image" "$TMP/two.bin" 0x1F000
all_byte "0x1E000 keeps its contents" 0x1E000 4096 5a
all_byte "0x21000 keeps its contents" 0x21000 4096 5a
exp_put "$TMP/two.bin" 0x1F000
as_expected "nothing else changed"

# Three sectors inside one block: the ROM erases a fourth, and says so.
raw_image "$TMP/three2.bin" 12288 three-sectors-again
expect_rc 10 "a 3-sector write at 0x50000" \
	fw write --port "$SIM_PORT" --profile "$NOP" "$TMP/three2.bin@0x50000" --accept-no-backup
expect_in "also erases 0x53000-0x53FFF" "the overshoot of an odd count is warned about" "$ERR"
exp_erase 0x53000 0x1000
exp_put "$TMP/three2.bin" 0x50000
as_expected "3 sectors written, the 4th erased, nothing else changed"

# --- without the helper an ESP8266 cannot be verified or backed up -----------------
expect_rc 7 "verify on the ESP8266 ROM is refused (exit 7)" \
	fw verify --port "$SIM_PORT" --profile "$NOP" "$TMP/app.bin@0x0"
expect_in "cannot be verified" "verify says why" "$ERR"
expect_rc 7 "backup on the ESP8266 ROM is refused (exit 7)" \
	fw backup --port "$SIM_PORT" --profile "$NOP" -o "$TMP/bk.bin" --offset 0 --size 0x1000
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
