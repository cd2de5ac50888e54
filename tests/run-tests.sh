#!/bin/sh
# Runs test programs (cmocka binaries or shell scripts), shows each one's
# output only when it fails, and ends with one summary line of test cases:
# "<suite>: N passed, N failed". Exit status 1 if anything failed.
suite=$1; shift
passed=0; failed=0; broken=""
log=$(mktemp "${TMPDIR:-/tmp}/fw-test.XXXXXX")
for t in "$@"; do
	case $t in
	*.sh) bash "$t" >"$log" 2>&1 ;;
	*) "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	# cmocka: "[  PASSED  ] 5 test(s)." / "[  FAILED  ] 1 test(s), listed below:"
	# our shell tests: "N passed, N failed"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | tail -n 1)
	p=${p:-0}; f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or exited early
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		broken="$broken $t"
		echo "---- FAIL: $t (exit $rc)"
		cat "$log"
	else
		echo "ok   $t ($p)"
	fi
done
rm -f "$log"
[ -n "$broken" ] && echo "failing:$broken"
echo "$suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
