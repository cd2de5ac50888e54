# The simulated Uno for the shell suites (test_uno_sim.sh checks the harness,
# test_arduino.sh runs flashwise on it). Builds on the command-line helpers
# (ok/bad/run/finish, $TMP) and adds:
#
#   uno_require FILE-OR-TOOL...   ends the script ("0 passed, 1 failed") when a
#                                 file or a command is missing
#   uno_start NAME BOOTLOADER [OPTIONS...]  the harness on $TMP/NAME.flash
#       (used as it is if the test made it first) with --verbose; sets
#       UNO_PORT, UNO_PID, UNO_FLASH, UNO_LINES and UNO_ERR (its log). The
#       option --lines (without a value) makes it follow UNO_LINES, the file
#       the modem-line shim writes DTR edges to. Its stdin is a FIFO held by
#       this shell, with --exit-on-stdin-eof, so it goes away even if the
#       script dies.
#   uno_stop      stops the current harness and waits: the flash file is final.
. tests/cli/lib.sh

UNO_SIM=${UNO_SIM:-build/tests/uno-sim}
AVR_DIR=${AVR_DIR:-build/avr}
SHIM=${SHIM:-build/tests/pty_modem_shim.so}
case $SHIM in /*) ;; *) SHIM=$PWD/$SHIM ;; esac
OPTIBOOT=$AVR_DIR/optiboot_atmega328.hex
ATMEGABOOT=$AVR_DIR/ATmegaBOOT_168_atmega328.hex
UNO_PIDS=""

uno_require() {
	local missing="" x
	for x in "$@"; do
		case $x in
		*/*) [ -f "$x" ] || missing="$missing $x" ;;
		*) command -v "$x" >/dev/null 2>&1 || missing="$missing $x" ;;
		esac
	done
	if [ -n "$missing" ]; then
		echo "missing:$missing (make builds the harness and the images; scripts/deps.sh lists the packages)" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
}

uno_cleanup() {
	local p
	for p in $UNO_PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $UNO_PIDS; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap uno_cleanup EXIT
trap 'exit 130' INT TERM

uno_start() {
	local name=$1 boot=$2 i fifo a
	local -a opts=()
	shift 2
	UNO_FLASH=$TMP/$name.flash
	UNO_LINES=$TMP/$name.lines
	UNO_ERR=$TMP/$name.err
	for a in "$@"; do
		opts+=("$a")
		[ "$a" = --lines ] && opts+=("$UNO_LINES")
	done
	fifo=$TMP/$name.stdin
	: >"$UNO_LINES"
	rm -f "$fifo"
	mkfifo "$fifo"
	exec {UNO_FD}<>"$fifo"
	"$UNO_SIM" --bootloader "$boot" --flash-file "$UNO_FLASH" --exit-on-stdin-eof \
		--verbose "${opts[@]}" <"$fifo" >"$TMP/$name.out" 2>"$UNO_ERR" {UNO_FD}>&- &
	UNO_PID=$!
	UNO_PIDS="$UNO_PIDS $UNO_PID"
	eval "UNO_FD_$UNO_PID=$UNO_FD"
	UNO_PORT=""
	for i in $(seq 100); do
		UNO_PORT=$(head -n 1 "$TMP/$name.out" 2>/dev/null)
		[ -n "$UNO_PORT" ] && return 0
		kill -0 "$UNO_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "uno-sim did not start:" >&2
	cat "$UNO_ERR" >&2
	return 1
}

uno_stop() {
	local fd rest p
	[ -n "$UNO_PID" ] || return 0
	kill -TERM "$UNO_PID" 2>/dev/null
	wait "$UNO_PID" 2>/dev/null
	eval "fd=\${UNO_FD_$UNO_PID:-}"
	[ -n "$fd" ] && exec {fd}>&-
	rest=""
	for p in $UNO_PIDS; do
		[ "$p" = "$UNO_PID" ] || rest="$rest $p"
	done
	UNO_PIDS=$rest
	UNO_PID=""
}
