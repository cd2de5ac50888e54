#!/bin/bash
# Fault matrix: flashwise write against flashwise-sim with line faults
# (dropped, corrupted and delayed bytes), a reset in the middle of the write
# and a chip that stops answering. Three kinds of run: esp32 (ESP32 ROM),
# esp8266 (the shipped profile: flashwise's RAM helper, backed up and
# verified like the ESP32) and esp8266rom (a profile copy with helper = no:
# the ROM loader alone). Whatever happens, the exit code must tell the truth
# about the flash:
#   exit 0    the target range holds the image byte for byte, and nothing
#             outside the sectors it covers changed (never on the ESP8266 ROM,
#             which cannot verify);
#   exit 10   a write started and was not verified (anything in the target
#             sectors, nothing outside them);
#   any other nothing at all changed on the flash;
# and no run takes longer than the bound. Prints the matrix and the counts.
. tests/integration/lib.sh

BOUND=${FAULT_BOUND:-120}
JOBS=${FAULT_JOBS:-4}
PATTERN=$TMP/pattern.flash
make_flash "$PATTERN" 5a
raw_image "$TMP/img32.bin" 8192 esp32-fault-image
raw_image "$TMP/img8266.bin" 8192 esp8266-fault-image
NOHELPER=$TMP/nodemcu-nohelper.ini
sed -e 's/^helper = yes$/helper = no/' -e '/^flash_baud = /d' profiles/nodemcu-v1.ini >"$NOHELPER"

# one_run ID KIND SIMCHIP PROFILE SPEC OFF IMAGE FAULT SEED [WRITE OPTIONS...]
# Runs one write and prints one result line:
#   ID|kind|fault|seed|rc|seconds|verdict|detail
one_run() {
	local id=$1 chip=$2 simchip=$3 prof=$4 spec=$5 off=$6 img=$7 fault=$8 seed=$9
	local len start end rc secs verdict detail="" target outside whole bkname
	shift 9
	len=$(stat -c %s "$img")
	cp "$PATTERN" "$TMP/$id.flash"
	if ! sim_start "$id" "$simchip" --boot flash --seed "$seed" --fault "$fault" --verbose; then
		echo "$id|$chip|$fault|$seed|-|0|VIOLATION|the sim did not start"
		return
	fi
	mkdir -p "$TMP/$id.bk"
	start=$(date +%s%N)
	timeout "$BOUND" env LD_PRELOAD="$SHIM" FLASHWISE_SHIM_LINES="$SIM_LINES" \
		FLASHWISE_TRANSPORT=sp "$FW" write --port "$SIM_PORT" --profile "$prof" \
		"$img@$spec" --backup-dir "$TMP/$id.bk" "$@" \
		>"$TMP/$id.fwout" 2>"$TMP/$id.fwerr"
	rc=$?
	end=$(date +%s%N)
	sim_stop
	secs=$(( (end - start) / 1000000 ))
	secs=$(printf '%d.%d' $((secs / 1000)) $((secs % 1000 / 100)))

	# What the flash holds now, against the pattern it started with.
	flash_bytes "$off" "$len" | cmp -s - "$img" && target=same || target=differs
	cmp -s "$SIM_FLASH" "$PATTERN" && whole=unchanged || whole=changed
	cp "$SIM_FLASH" "$TMP/$id.masked"
	dd if="$PATTERN" of="$TMP/$id.masked" bs=4096 skip=$((off / 4096)) seek=$((off / 4096)) \
		count=$(( (len + 4095) / 4096 )) conv=notrunc status=none
	cmp -s "$TMP/$id.masked" "$PATTERN" && outside=unchanged || outside=changed
	rm -f "$TMP/$id.masked"

	# On the ESP32 and the ESP8266 with the helper a write starts only
	# after a backup of the sectors it covers, which must hold what was
	# there (the pattern).
	backup=n/a
	if [ "$chip" != esp8266rom ]; then
		bkname=$(basename "$prof" .ini)
		backup=$(printf '%s/backup-%s-0x%06X.bin' "$TMP/$id.bk" "$bkname" "$off")
		if [ ! -f "$backup" ]; then
			backup=missing
		elif dd if="$PATTERN" bs=4096 count=$(( (len + 4095) / 4096 )) status=none |
			cmp -s - "$backup" &&
			(cd "$TMP/$id.bk" && sha256sum -c --quiet "$(basename "$backup").sha256") \
				>/dev/null 2>&1; then
			backup=good
		else
			backup=wrong
		fi
	fi

	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		verdict=VIOLATION detail="still running after ${BOUND}s"
	elif [ "$chip" != esp8266rom ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 10 ]; } &&
		[ "$backup" != good ]; then
		verdict=VIOLATION detail="exit $rc after writing, but the backup is $backup"
	elif [ "$backup" = wrong ]; then
		verdict=VIOLATION detail="a stored backup does not hold the old contents"
	elif [ "$rc" -eq 0 ]; then
		if [ "$chip" = esp8266rom ]; then
			verdict=VIOLATION detail="exit 0 without a verification"
		elif [ "$target" != same ]; then
			verdict=VIOLATION detail="exit 0 but the target differs from the image"
		elif [ "$outside" != unchanged ]; then
			verdict=VIOLATION detail="exit 0 but bytes outside the target sectors changed"
		elif grep -q 'resynchronising\|reset attempts\|try [0-9]' "$TMP/$id.fwerr"; then
			verdict=recovered
		else
			verdict=ok
		fi
	elif [ "$rc" -eq 10 ]; then
		if [ "$outside" != unchanged ]; then
			verdict=VIOLATION detail="bytes outside the target sectors changed"
		elif [ "$target" = same ]; then
			verdict=unsafe-written
		else
			verdict=unsafe-failed
		fi
	else
		if [ "$whole" != unchanged ]; then
			verdict=VIOLATION detail="exit $rc (nothing written) but the flash changed"
		else
			verdict=refused
		fi
	fi
	[ -n "$detail" ] || detail=$(grep '^flashwise:' "$TMP/$id.fwerr" | tail -n 1 | cut -c12-170)
	# Where a hang struck: the commands answered since the last loader entry
	# (compared with the calibration run to see that hang:N hit its aim).
	ops_since_boot "$SIM_ERR" >"$TMP/$id.ops"
	echo "$id|$chip|$fault|$seed|$rc|$secs|$verdict|$detail"
	rm -f "$SIM_FLASH"
}

# ops_since_boot LOG: the commands a verbose sim answered since it last
# entered its loader, one name a line.
ops_since_boot() {
	sed -n '/boot (download mode)/h; /boot (download mode)/!H; ${x;p}' "$1" |
		sed -n 's/^flashwise-sim: \([A-Z_0-9]*\) ([0-9]* bytes)$/\1/p'
}

# calibrate KIND SIMCHIP PROFILE SPEC IMAGE [WRITE OPTIONS...]: a fault-free
# run with a verbose sim; $TMP/ops.KIND gets the commands the chip's ROM
# answered since it entered its loader, one per line, so "hang:N" can be
# aimed at the (N+1)th of them whatever the driver sends before.
calibrate() {
	local chip=$1 simchip=$2 prof=$3 spec=$4 img=$5
	shift 5
	cp "$PATTERN" "$TMP/cal-$chip.flash"
	sim_start "cal-$chip" "$simchip" --boot flash --verbose || return 1
	fw write --port "$SIM_PORT" --profile "$prof" "$img@$spec" --backup-dir "$TMP" "$@" \
		>/dev/null 2>&1
	sim_stop
	ops_since_boot "$SIM_ERR" >"$TMP/ops.$chip"
	rm -f "$SIM_FLASH"
}
# hang_at CHIP OP first|last: the N of hang:N that silences that command.
hang_at() {
	local n
	if [ "$3" = first ]; then
		n=$(grep -n -x "$2" "$TMP/ops.$1" | head -n 1 | cut -d: -f1)
	else
		n=$(grep -n -x "$2" "$TMP/ops.$1" | tail -n 1 | cut -d: -f1)
	fi
	echo $(( ${n:-1} - 1 ))
}
calibrate esp32 esp32 esp32-devkitc nvs "$TMP/img32.bin"
calibrate esp8266 esp8266 nodemcu-v1 0x20000 "$TMP/img8266.bin"
calibrate esp8266rom esp8266 "$NOHELPER" 0x20000 "$TMP/img8266.bin" --accept-no-backup
grep -q -x SPI_FLASH_MD5 "$TMP/ops.esp32" && grep -q -x FLASH_DATA "$TMP/ops.esp8266rom" &&
	grep -q -x MEM_END "$TMP/ops.esp8266" &&
	ok "calibration runs saw the write, verify and helper upload commands" ||
	bad "calibration runs saw the write, verify and helper upload commands" \
		"$(cat "$TMP/ops.esp32" "$TMP/ops.esp8266")"

# The matrix: chip, fault, seeds. A run added with `xfail CHIP FAULT SEED WHY`
# is a known driver bug: it must still show the violation (when it stops, the
# bug is fixed and the marker must go).
RUNS=()
add() { local chip=$1 fault=$2 s; shift 2; for s in "$@"; do RUNS+=("$chip $fault $s -"); done; }
xfail() { RUNS+=("$1 $2 $3 $4"); }
add esp32 none 1
add esp32 drop:0.0003 1 2 3
add esp32 corrupt:0.0003 1 2 3
add esp32 delay:0.0005 1 2
add esp32 drop-tx:0.001 1 2
add esp32 drop-rx:0.0003 1 2 3
add esp32 corrupt-rx:0.0003 1 2 3 4
add esp32 reset-write:1 1
add esp32 reset-write:4 1
add esp32 reset-write:8 1
add esp32 hang:30 1
add esp32 "hang:$(hang_at esp32 FLASH_DEFL_BEGIN first)" 1
add esp32 "hang:$(hang_at esp32 FLASH_DEFL_DATA last)" 1
add esp32 "hang:$(hang_at esp32 SPI_FLASH_MD5 last)" 1
# With the helper: its commands are served by the helper's own code in the
# sim, so reset-write and hang (ROM command counters) only reach the upload.
add esp8266 none 1
add esp8266 drop:0.0003 1 2 3
add esp8266 corrupt:0.0003 1 2 3
add esp8266 corrupt-rx:0.0005 1 2
add esp8266 drop-tx:0.001 1 2
add esp8266 delay:0.0005 1
add esp8266 "hang:$(hang_at esp8266 MEM_DATA first)" 1
add esp8266 "hang:$(hang_at esp8266 MEM_END first)" 1
add esp8266rom none 1
add esp8266rom drop:0.0003 1 2 3
add esp8266rom corrupt:0.0003 1 2 3
add esp8266rom corrupt-rx:0.0005 1 2
add esp8266rom delay:0.0005 1
add esp8266rom reset-write:3 1
add esp8266rom reset-write:7 1
add esp8266rom "hang:$(hang_at esp8266rom FLASH_BEGIN last)" 1
add esp8266rom "hang:$(hang_at esp8266rom FLASH_DATA last)" 1

i=0
for r in "${RUNS[@]}"; do
	set -- $r
	i=$((i + 1))
	echo "$4" >"$TMP/r$i.xfail"
	id=r$i
	if [ "$1" = esp32 ]; then
		args=(esp32 esp32 esp32-devkitc nvs 0x9000 "$TMP/img32.bin")
		extra=()
	elif [ "$1" = esp8266 ]; then
		args=(esp8266 esp8266 nodemcu-v1 0x20000 0x20000 "$TMP/img8266.bin")
		extra=()
	else
		args=(esp8266rom esp8266 "$NOHELPER" 0x20000 0x20000 "$TMP/img8266.bin")
		extra=(--accept-no-backup)
	fi
	fault=$2
	[ "$fault" = none ] && fault=drop:0
	( one_run "$id" "${args[@]}" "$fault" "$3" "${extra[@]}" >"$TMP/$id.row" ) &
	# At most $JOBS at a time.
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
		wait -n
	done
done
wait

printf '%-4s %-10s %-18s %-4s %-4s %-6s %-15s %s\n' run kind fault seed exit secs verdict detail
declare -A count
max=0
for j in $(seq "$i"); do
	IFS='|' read -r id chip fault seed rc secs verdict detail <"$TMP/r$j.row" ||
		{ bad "run r$j produced no result"; continue; }
	printf '%-4s %-10s %-18s %-4s %-4s %-6s %-15s %s\n' "$id" "$chip" "$fault" "$seed" \
		"$rc" "$secs" "$verdict" "$detail"
	count[$verdict]=$(( ${count[$verdict]:-0} + 1 ))
	xf=$(cat "$TMP/r$j.xfail")
	if [ "$xf" != - ] && [ "${fault%%:*}" = hang ] &&
		! head -n "${fault#hang:}" "$TMP/ops.$chip" | cmp -s - "$TMP/$id.ops"; then
		# Timing made the chip answer other commands than in the
		# calibration run: the hang missed the command it was aimed at.
		echo "skip  $id: $chip $fault missed its aim; known bug $xf not checked"
		continue
	fi
	if [ "$xf" != - ]; then
		if [ "$verdict" = VIOLATION ]; then
			echo "xfail $id: $chip $fault: known bug $xf still there ($detail)"
		else
			bad "$id: $chip $fault: known bug $xf no longer shows: remove its xfail marker"
		fi
		continue
	fi
	case $verdict in
	VIOLATION) bad "$id: $chip $fault seed $seed: $detail" ;;
	*) ok "$id: $chip $fault seed $seed: exit $rc tells the truth ($verdict)" ;;
	esac
	s=${secs%.*}
	[ "$s" -gt "$max" ] && max=$s
done
echo
echo "counts: ok ${count[ok]:-0}, recovered ${count[recovered]:-0}," \
	"refused (nothing written) ${count[refused]:-0}," \
	"unsafe but written ${count[unsafe-written]:-0}," \
	"unsafe and wrong ${count[unsafe-failed]:-0}, violations ${count[VIOLATION]:-0}" \
	"(known bugs included);" \
	"longest run ${max}s (bound ${BOUND}s)"
r1=$(cut -d'|' -f7 "$TMP/r1.row")
[ "$r1" = ok ] && ok "the fault-free ESP32 run succeeds and verifies" ||
	bad "the fault-free ESP32 run succeeds and verifies ($r1)"
r8266=$(grep -l '^[^|]*|esp8266|drop:0|' "$TMP"/r*.row | head -n 1)
[ "$(cut -d'|' -f7 "$r8266")" = ok ] &&
	ok "the fault-free ESP8266 run (helper) succeeds and verifies" ||
	bad "the fault-free ESP8266 run (helper) succeeds and verifies ($(cut -d'|' -f7 "$r8266"))"
r8266=$(grep -l '^[^|]*|esp8266rom|drop:0|' "$TMP"/r*.row | head -n 1)
[ "$(cut -d'|' -f7 "$r8266")" = unsafe-written ] &&
	ok "the fault-free ESP8266 ROM run writes the image and says it is not verified" ||
	bad "the fault-free ESP8266 ROM run writes the image ($(cut -d'|' -f7 "$r8266"))"
# Faults the driver recovers from (resend after a damaged reply, a region
# started again after a reset): the image must be in place, verified on the
# ESP32, "not verified" (exit 10) on the ESP8266 ROM.
# expect_verdict CHIP FAULT SEED VERDICT...
expect_verdict() {
	local chip=$1 fault=$2 seed=$3 row v
	shift 3
	row=$(grep -l "^[^|]*|$chip|$fault|$seed|" "$TMP"/r*.row | head -n 1)
	v=$([ -n "$row" ] && cut -d'|' -f7 "$row")
	case " $* " in
	*" $v "*) ok "$chip $fault seed $seed recovers ($v)" ;;
	*) bad "$chip $fault seed $seed recovers (got '${v:-no run}', want $*)" \
		"$([ -n "$row" ] && cut -d'|' -f8 "$row")" ;;
	esac
}
expect_verdict esp32 drop:0.0003 1 ok recovered
expect_verdict esp32 reset-write:1 1 recovered
expect_verdict esp32 reset-write:4 1 recovered
expect_verdict esp32 reset-write:8 1 recovered
expect_verdict esp32 "hang:$(hang_at esp32 FLASH_DEFL_DATA last)" 1 recovered
expect_verdict esp8266 drop:0.0003 2 ok recovered
expect_verdict esp8266rom drop:0.0003 2 unsafe-written
expect_verdict esp8266rom reset-write:3 1 unsafe-written
expect_verdict esp8266rom reset-write:7 1 unsafe-written
expect_verdict esp8266rom "hang:$(hang_at esp8266rom FLASH_DATA last)" 1 unsafe-written
finish
