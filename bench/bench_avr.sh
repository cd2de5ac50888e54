#!/bin/bash
# flashwise against avrdude 7.1 on the simulated Uno (tests/avr/uno_sim.c:
# the real Optiboot in simavr, real time, 115200 baud), writing and
# verifying the same 30 KB Intel HEX image. Every run gets a fresh board;
# figures are medians of FW_BENCH_AVR_RUNS runs (default 3), each result
# checked against the flash file the board leaves.
#
#   avrdude write+verify       avrdude -c arduino -U flash:w:img.hex:i on an
#                              erased board: wall time of the whole command
#                              (its reset and sync, write, read-back verify)
#   flashwise write            flashwise write img.hex on an erased board;
#                              its "time:" line gives the phases: connect
#                              (reset, sync, identify), backup (on AVR the
#                              whole application flash, 252 pages), write,
#                              verify
#   avrdude, 3 pages changed   the board holds the image; an image with 3 pages
#                              changed, written by avrdude (it writes all 240)
#   flashwise --only-changed   the same with flashwise write --only-changed:
#                              backup, 3 page writes, verify of all 240 pages
#
# Ratios: the flash step (connect + write + verify: what avrdude does) against
# avrdude; the backup, which flashwise always takes first and avrdude never
# does (the wizard runs it as its own "back up" step), is reported apart;
# then the whole flashwise command, backup included, against avrdude.
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

# phases: the "time:" line of the last flashwise write, as
# "connect backup write verify total" in seconds.
phases() {
	local line
	line=$(grep '^time: ' "$TMP/log" | tail -n 1)
	[ -n "$line" ] || {
		echo "bench_avr: flashwise printed no time: line" >&2
		cat "$TMP/log" >&2
		exit 1
	}
	awk -v l="$line" 'BEGIN {
		n = split(substr(l, 7), part, ", ")
		for (i = 1; i <= n; i++) { split(part[i], w, " "); t[w[1]] = w[2] }
		printf "%s %s %s %s %s\n", t["connect"], t["backup"], t["write"], t["verify"], t["total"]
	}'
}

T_AVR="" T_AVRC=""
PH_FW="" PH_FWC=""   # one "connect backup write verify total" per run, ';'-separated
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
	PH_FW="$PH_FW;$(phases)"

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
	PH_FWC="$PH_FWC;$(phases)"
done

# col RUNS EXPR: the median over the runs of an awk expression of the
# phases $1 connect, $2 backup, $3 write, $4 verify, $5 total.
col() {
	echo "$1" | tr ';' '\n' | sed '/^$/d' | awk "{ printf \"%.2f \", $2 }" | median
}
runs() {
	echo "$1" | tr ';' '\n' | sed '/^$/d' | awk "{ printf \" %.2f\", $2 }"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

avr=$(echo "$T_AVR" | median)
avrc=$(echo "$T_AVRC" | median)
FLASH='$1 + $3 + $4'
WHOLE='$5'

echo "30 KB image (240 pages), Optiboot 4.4 at 115200 on the simulated Uno, median of $RUNS"
printf '  %-46s %6s s  (runs:%s)\n' "avrdude write+verify (reset, sync included)" "$avr" "$T_AVR"
printf '  %-46s %6s s  (runs:%s)\n' "avrdude, 3 pages changed (writes all 240)" "$avrc" "$T_AVRC"

report() { # TITLE PHASES AVRDUDE-SECS
	local c b w v t fl wh
	c=$(col "$2" '$1') b=$(col "$2" '$2') w=$(col "$2" '$3') v=$(col "$2" '$4')
	t=$(col "$2" '$5') fl=$(col "$2" "$FLASH") wh=$(col "$2" "$WHOLE")
	echo "  $1"
	printf '    phases: connect %s s, backup %s s, write %s s, verify %s s, total %s s\n' \
		"$c" "$b" "$w" "$v" "$t"
	printf '    %-44s %6s s  (runs:%s)  %s avrdude\n' "flash step: connect+write+verify" "$fl" \
		"$(runs "$2" "$FLASH")" "$(ratio "$fl" "$3")"
	printf '    %-44s %6s s  (not done by avrdude)\n' "backup before the write" "$b"
	printf '    %-44s %6s s  (runs:%s)  %s avrdude\n' "whole command, backup included" "$wh" \
		"$(runs "$2" "$WHOLE")" "$(ratio "$wh" "$3")"
}
report "flashwise write, fresh image (target: flash step <= 0.9x)" "$PH_FW" "$avr"
report "flashwise write --only-changed, 3 pages changed (target: flash step <= 0.5x)" \
	"$PH_FWC" "$avrc"
