# Helpers for the integration tests: the real flashwise against the real
# flashwise-sim over pseudo-terminals. Builds on the command-line helpers
# (ok/bad/run/expect_rc/expect_in/finish, $TMP) and adds:
#
#   sim_start NAME CHIP [SIM OPTIONS...]  starts a simulator on $TMP/NAME.flash
#       (created erased unless the test made it first), waits for its pty and
#       makes it the current sim: $SIM_PORT, $SIM_FLASH, $SIM_LINES, $SIM_PID.
#   sim_stop      stops the current sim (the flash file stays).
#   fw ARGS...    flashwise on the libserialport path under the modem-line
#                 shim, so it can reset the sim into its loader.
#   fw_termios ARGS...  flashwise on the termios path: no reset lines.
#   flash_bytes OFF LEN [FILE]  the flash file's bytes, to stdout.
#   flash_sha [FILE]            sha256 of the whole flash file.
#
# Every sim is started with its stdin on a FIFO whose only writer is this
# shell, with --exit-on-stdin-eof: if the test dies without running its
# trap, the sims still go away. The EXIT trap stops them explicitly.
. tests/cli/lib.sh

FWSIM=${FWSIM:-./flashwise-sim}
SHIM=${SHIM:-build/tests/pty_modem_shim.so}
case $SHIM in /*) ;; *) SHIM=$PWD/$SHIM ;; esac
export NO_COLOR=1
SIM_PIDS=""

if [ ! -f "$SHIM" ]; then
	echo "missing $SHIM: build it with 'make unit-bins' (or give SHIM=...)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
if [ ! -x "$FWSIM" ] || [ ! -x "$FW" ]; then
	echo "missing $FW or $FWSIM: run make first" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

sim_cleanup() {
	local p
	for p in $SIM_PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $SIM_PIDS; do
		wait "$p" 2>/dev/null
	done
	SIM_PIDS=""
	rm -rf "$TMP"
}
trap sim_cleanup EXIT
trap 'exit 130' INT TERM

# sim_start NAME CHIP [OPTIONS...]
sim_start() {
	local name=$1 chip=$2 i fifo
	shift 2
	SIM_NAME=$name
	SIM_FLASH=$TMP/$name.flash
	SIM_LINES=$TMP/$name.lines
	SIM_OUT=$TMP/$name.out
	SIM_ERR=$TMP/$name.err
	fifo=$TMP/$name.stdin
	: >"$SIM_LINES"
	: >"$SIM_OUT"
	rm -f "$fifo"
	mkfifo "$fifo"
	# Read-write open of our end never blocks; the sim reads EOF once this
	# shell (the only writer) is gone.
	exec {SIM_FD}<>"$fifo"
	"$FWSIM" "$chip" --flash-file "$SIM_FLASH" --baud-pacing off \
		--lines "$SIM_LINES" --exit-on-stdin-eof "$@" \
		<"$fifo" >"$SIM_OUT" 2>"$SIM_ERR" {SIM_FD}>&- &
	SIM_PID=$!
	SIM_PIDS="$SIM_PIDS $SIM_PID"
	eval "SIM_FD_$SIM_PID=$SIM_FD"
	SIM_PORT=""
	for i in $(seq 100); do
		SIM_PORT=$(head -n 1 "$SIM_OUT" 2>/dev/null)
		[ -n "$SIM_PORT" ] && return 0
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "flashwise-sim $chip did not start:" >&2
	cat "$SIM_ERR" >&2
	return 1
}

# sim_stop [PID]: stops a sim (default the current one) and waits for it,
# so its flash file is complete on disk.
sim_stop() {
	local pid=${1:-$SIM_PID} fd rest p
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	eval "fd=\${SIM_FD_$pid:-}"
	[ -n "$fd" ] && exec {fd}>&-
	rest=""
	for p in $SIM_PIDS; do
		[ "$p" = "$pid" ] || rest="$rest $p"
	done
	SIM_PIDS=$rest
	[ "$pid" = "$SIM_PID" ] && SIM_PID=""
	return 0
}

fw() {
	LD_PRELOAD=$SHIM FLASHWISE_SHIM_LINES=$SIM_LINES FLASHWISE_TRANSPORT=sp "$FW" "$@"
}

fw_termios() {
	FLASHWISE_TRANSPORT=termios "$FW" "$@"
}

# flash_bytes OFF LEN [FILE]
flash_bytes() {
	dd if="${3:-$SIM_FLASH}" bs=4096 skip=$(($1)) count=$(($2)) \
		iflag=skip_bytes,count_bytes status=none
}

flash_sha() {
	sha256sum <"${1:-$SIM_FLASH}" | cut -d' ' -f1
}

# make_flash FILE BYTE [SIZE]: a flash file filled with one byte value
# (hex, e.g. 5a), so a test can see what was erased or written.
make_flash() {
	head -c "${3:-4194304}" /dev/zero | tr '\0' "\\$(printf '%03o' "0x$2")" >"$1"
}

# same_bytes DESC FILE OFF [LEN]: the flash range equals FILE byte for byte.
same_bytes() {
	local desc=$1 file=$2 off=$3 len=${4:-$(stat -c %s "$2")}
	if flash_bytes "$off" "$len" | cmp -s - "$file"; then
		ok "$desc"
	else
		bad "$desc" "$(flash_bytes "$off" "$len" | cmp - "$file" 2>&1 | head -3)"
	fi
}

# all_byte DESC OFF LEN BYTE: every byte of the flash range is BYTE (hex).
all_byte() {
	local desc=$1 off=$2 len=$3 byte=$4 other
	other=$(flash_bytes "$off" "$len" | od -An -v -tx1 | tr -s ' \n' '\n\n' |
		grep -v -x -e "$byte" -e '' | sort | uniq -c | head -3)
	if [ -z "$other" ]; then ok "$desc"; else bad "$desc" "other bytes: $other"; fi
}

# raw_image FILE SIZE SEED: deterministic bytes with a sha256sum sidecar.
raw_image() {
	openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -pbkdf2 </dev/zero 2>/dev/null |
		head -c "$2" >"$1"
	(cd "$(dirname "$1")" && sha256sum "$(basename "$1")" >"$(basename "$1").sha256")
}
