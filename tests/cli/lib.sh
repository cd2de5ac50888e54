# Shared helpers for the command-line tests: each check counts, and the
# script ends with "N passed, N failed" (read by tests/run-tests.sh).
FW=${FW:-./flashwise}
PASS=0
FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fw-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; }

# run CMD... : runs it, keeping stdout in $OUT, stderr in $ERR, status in $RC
run() {
	"$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	OUT=$(cat "$TMP/out")
	ERR=$(cat "$TMP/err")
}

# expect_rc CODE DESC CMD...
expect_rc() {
	_want=$1 _desc=$2
	shift 2
	run "$@"
	if [ "$RC" -eq "$_want" ]; then ok "$_desc"; else bad "$_desc (exit $RC, want $_want)" "$OUT$ERR"; fi
}

# expect_in TEXT DESC HAYSTACK : fixed-string containment
expect_in() {
	case $3 in
	*"$1"*) ok "$2" ;;
	*) bad "$2 (missing: $1)" "$3" ;;
	esac
}

expect_not_in() {
	case $3 in
	*"$1"*) bad "$2 (unexpected: $1)" "$3" ;;
	*) ok "$2" ;;
	esac
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
