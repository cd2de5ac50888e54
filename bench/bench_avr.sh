#!/bin/bash
# flashwise against avrdude 7.1 on the simulated Uno (tests/avr/uno_sim.c:
# the real Optiboot in simavr, real time, 115200 baud), writing and
# verifying the same 30 KB Intel HEX image. Every run gets a fresh board;
# figures are medians of FW_BENCH_AVR_RUNS runs (default 3), wall time of
# the whole command (reset and sync included), each result checked against
# the flash file the board leaves.
#
#   avrdude write+verify       avrdude -c arduino -U flash:w:img.hex:i, erased board
#   flashwise write            flashwise write img.hex: backup of the 240 pages
#                              it will write, write, verify (erased board)
#   flashwise backup 30 KB     the backup part alone (flashwise backup --size 30720)
#   avrdude, 3 pages changed   the board holds the image; an image with 3 pages
#                              changed, written by avrdude (it writes all 240)
#   flashwise --only-changed   the same with flashwise write --only-changed:
#                              backup, 3 page writes, verify of all 240 pages
#
# Needs $BUILD/flashwise, $BUILD/tests/uno-sim, $BUILD/tests/pty_modem_shim.so
# and $BUILD/avr (make check-integration builds them), avrdude, avr-objcopy.
BUILD=${BUILD:-build}
RUNS=${FW_BENCH_AVR_RUNS:-3}
FW=$BUILD/flashwise
UNO_SIM=$BUILD/tests/uno-sim
SHIM=$PWD/$BUILD/tests/pty_modem_shim.so
OPTIBOOT=$BUILD/avr/optiboot_atmega328.hex

missing=""
for f in "$FW" "$UNO_SIM" "$SHIM" "$OPTIBOOT"; do
	[ -f "$f" ] || missing="$missing $f"
done
for t in avrdude avr-objcopy openssl; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	echo "bench_avr: skipped, missing:$missing (make BUILD=$BUILD check-integration builds them)"
	exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fw-bench-avr.XXXXXX")
UNO_PID=""
cleanup() {
	[ -n "$UNO_PID" ] && kill -TERM "$UNO_PID" 2>/dev/null && wait "$UNO_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export NO_COLOR=1

# board NAME [FLASH-FILE-TO-START-FROM]: a fresh simulated Uno.
board() {
	local i
	rm -f "$TMP/b.flash"
	[ -n "${2:-}" ] && cp "$2" "$TMP/b.flash"
	: >"$TMP/b.lines"
	"$UNO_SIM" --bootloader "$OPTIBOOT" --flash-file "$TMP/b.flash" --lines "$TMP/b.lines" \
		--verbose </dev/null >"$TMP/b.out" 2>"$TMP/b.err" &
	UNO_PID=$!
	PORT=""
	for i in $(seq 100); do
		PORT=$(head -n 1 "$TMP/b.out" 2>/dev/null)
		[ -n "$PORT" ] && return 0
		sleep 0.05
	done
	echo "bench_avr: uno-sim did not start" >&2
	cat "$TMP/b.err" >&2
	exit 1
}

board_stop() {
	kill -TERM "$UNO_PID" 2>/dev/null
	wait "$UNO_PID" 2>/dev/null
	UNO_PID=""
}

# timed CMD...: runs it under the shim; $SECS, $RC; output in $TMP/log.
timed() {
	local s
	s=$(date +%s%N)
	timeout 120 env LD_PRELOAD="$SHIM" FLASHWISE_SHIM_LINES="$TMP/b.lines" \
		FLASHWISE_TRANSPORT=sp "$@" >"$TMP/log" 2>&1
	RC=$?
	SECS=$(awk -v ns=$(($(date +%s%N) - s)) 'BEGIN { printf "%.2f", ns / 1e9 }')
}

# expect_flash BIN: the board's flash holds BIN at 0 (else the run is void).
expect_flash() {
	if [ "$RC" -ne 0 ] || ! head -c "$(stat -c %s "$1")" "$TMP/b.flash" | cmp -s - "$1"; then
		echo "bench_avr: a run failed (exit $RC) or left the wrong bytes:" >&2
		tail -5 "$TMP/log" >&2
		exit 1
	fi
}

median() {
	tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# the 30 KB image (starts with "rjmp .-2"), and a copy with 3 pages changed
{
	printf '\377\317'
	openssl enc -aes-128-ctr -nosalt -pass pass:bench-avr -pbkdf2 </dev/zero 2>/dev/null |
		head -c 30718
} >"$TMP/img.bin"
cp "$TMP/img.bin" "$TMP/chg.bin"
for a in 0x0100 0x3C80 0x7780; do
	printf 'changed %s' "$a" | dd of="$TMP/chg.bin" bs=1 seek=$((a + 16)) conv=notrunc status=none
done
for n in img chg; do
	avr-objcopy -I binary -O ihex "$TMP/$n.bin" "$TMP/$n.hex"
	(cd "$TMP" && sha256sum "$n.hex" >"$n.hex.sha256")
done

# a board that holds the image (for the changed-pages cases)
board prep
timed avrdude -c arduino -p m328p -P "$PORT" -b 115200 -U flash:w:"$TMP/img.hex":i
expect_flash "$TMP/img.bin"
board_stop
cp "$TMP/b.flash" "$TMP/holding.flash"

T_AVR="" T_FW="" T_BK="" T_AVRC="" T_FWC=""
for r in $(seq "$RUNS"); do
	board "avr$r"
	timed avrdude -c arduino -p m328p -P "$PORT" -b 115200 -U flash:w:"$TMP/img.hex":i
	board_stop
	expect_flash "$TMP/img.bin"
	T_AVR="$T_AVR $SECS"

	board "fw$r"
	rm -rf "$TMP/bk" && mkdir "$TMP/bk"
	timed "$FW" write --plain --port "$PORT" --profile arduino-uno-r3 --backup-dir "$TMP/bk" \
		"$TMP/img.hex"
	board_stop
	expect_flash "$TMP/img.bin"
	T_FW="$T_FW $SECS"

	board "bk$r" "$TMP/holding.flash"
	rm -f "$TMP/bk.bin" "$TMP/bk.bin.sha256"
	timed "$FW" backup --plain --port "$PORT" --profile arduino-uno-r3 -o "$TMP/bk.bin" \
		--size 30720
	board_stop
	expect_flash "$TMP/bk.bin"
	T_BK="$T_BK $SECS"

	board "avrc$r" "$TMP/holding.flash"
	timed avrdude -c arduino -p m328p -P "$PORT" -b 115200 -U flash:w:"$TMP/chg.hex":i
	board_stop
	expect_flash "$TMP/chg.bin"
	T_AVRC="$T_AVRC $SECS"

	board "fwc$r" "$TMP/holding.flash"
	rm -rf "$TMP/bk" && mkdir "$TMP/bk"
	timed "$FW" write --plain --port "$PORT" --profile arduino-uno-r3 --backup-dir "$TMP/bk" \
		--only-changed "$TMP/chg.hex"
	board_stop
	expect_flash "$TMP/chg.bin"
	grep -q "pages: 3 written, 237 unchanged" "$TMP/log" || {
		echo "bench_avr: --only-changed did not write exactly 3 pages:" >&2
		cat "$TMP/log" >&2
		exit 1
	}
	T_FWC="$T_FWC $SECS"
done

avr=$(echo "$T_AVR" | median)
fw=$(echo "$T_FW" | median)
bk=$(echo "$T_BK" | median)
avrc=$(echo "$T_AVRC" | median)
fwc=$(echo "$T_FWC" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo "30 KB image (240 pages), Optiboot 4.4 at 115200 on the simulated Uno, median of $RUNS"
printf '  %-44s %6s s  (runs:%s)\n' "avrdude write+verify" "$avr" "$T_AVR"
printf '  %-44s %6s s  (runs:%s)  %s avrdude\n' "flashwise write (backup+write+verify)" "$fw" \
	"$T_FW" "$(ratio "$fw" "$avr")"
printf '  %-44s %6s s  (runs:%s)\n' "flashwise backup of the same 30 KB" "$bk" "$T_BK"
fwnb=$(awk -v a="$fw" -v b="$bk" 'BEGIN { printf "%.2f", a - b + 0.55 }')
printf '  %-44s %6s s  %s avrdude (estimate: write - backup + one 0.55 s connect)\n' \
	"flashwise write+verify without the backup" "$fwnb" "$(ratio "$fwnb" "$avr")"
printf '  %-44s %6s s  (runs:%s)\n' "avrdude, 3 pages changed (writes all 240)" "$avrc" "$T_AVRC"
printf '  %-44s %6s s  (runs:%s)  %s avrdude\n' "flashwise --only-changed, 3 pages changed" \
	"$fwc" "$T_FWC" "$(ratio "$fwc" "$avr")"
