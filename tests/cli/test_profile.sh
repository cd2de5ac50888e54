#!/bin/bash
# profile list/show/check/schema from the command line: exit codes and the
# file:[section] key shape of every error.
. tests/cli/lib.sh

for f in profiles/*.ini; do
	expect_rc 0 "shipped profile $f validates" "$FW" profile check "$f"
done

expect_rc 0 "profile check by id" "$FW" profile check nodemcu-v1
expect_in "nodemcu-v1.ini: ok" "check names the file" "$OUT"

expect_rc 3 "broken profile exits 3 (profile)" "$FW" profile check tests/data/profiles-bad/misaligned-offset.ini
expect_in "tests/data/profiles-bad/misaligned-offset.ini:[partition." "error names file:[section]" "$ERR"

expect_rc 3 "unknown profile id exits 3" "$FW" profile check no-such-board
expect_in "no-such-board" "error names the missing profile" "$ERR"

expect_rc 3 "one bad among good ones still fails" "$FW" profile check nodemcu-v1 tests/data/profiles-bad/bad-enum.ini

expect_rc 0 "profile show" "$FW" profile show nodemcu-v1
expect_in "0x3fc000" "show lists the init data offset" "$(printf '%s' "$OUT" | tr 'A-F' 'a-f')"
expect_in "dio" "show gives the flash mode" "$OUT"

expect_rc 0 "profile list" "$FW" profile list
for f in profiles/*.ini; do
	id=$(basename "$f" .ini)
	expect_in "$id" "list shows $id" "$OUT"
done
expect_not_in "INVALID" "no shipped profile is listed as invalid" "$OUT"

expect_rc 0 "profile schema" "$FW" profile schema
expect_in "[flash] mode" "schema lists [flash] mode" "$OUT"

# --profiles search path: a copy found through the option.
mkdir -p "$TMP/p"
cp profiles/esp01.ini "$TMP/p/my-board.ini"
expect_rc 0 "--profiles finds a profile by id" "$FW" --profiles "$TMP/p" profile check my-board
FLASHWISE_PROFILES="$TMP/p" expect_rc 0 "FLASHWISE_PROFILES finds it too" "$FW" profile check my-board

expect_rc 2 "profile show without an argument is a usage error" "$FW" profile show
finish
