#!/bin/bash
# flashwise history: jobs from their journals (fixtures in tests/data/jobs:
# a complete ESP8266 job, an aborted Arduino job, an ESP32 job that failed
# while writing), newest first, filters, JSON, and damaged records listed
# with their error instead of dropped.
. tests/cli/lib.sh

expect_rc 0 "no state folder is an empty history" "$FW" history --state-dir "$TMP/none"
expect_in "no jobs in $TMP/none" "says there are no jobs, and where" "$OUT"
mkdir -p "$TMP/empty"
expect_rc 0 "empty state folder" "$FW" history --state-dir "$TMP/empty"
expect_in "no jobs in $TMP/empty" "says there are no jobs" "$OUT"
expect_rc 0 "empty --json" "$FW" history --state-dir "$TMP/empty" --json
[ "$OUT" = "[]" ] && ok "empty --json is []" || bad "empty --json is []" "$OUT"

S="$TMP/state"
mkdir -p "$S"
cp -r tests/data/jobs/. "$S/"
expect_rc 0 "history of three jobs" "$FW" history --state-dir "$S"
expect_in "2024-05-03T10:00:00Z  20240503-100000-esp32" "created (UTC) and id" "$OUT"
expect_in "ESP8266EX 5c:cf:7f:aa:bb:cc" "ESP device: chip and MAC" "$OUT"
expect_in "ATmega328P 1e950f" "AVR device: chip and signature" "$OUT"
expect_in "aborted at step backup: device untouched" "aborted job's verdict" "$OUT"
expect_in "failed at step flash: device may be unsafe, resume with: flashwise resume 20240503-100000-esp32" \
	"unsafe job says how to carry on" "$OUT"
expect_in "complete: firmware written and verified" "complete job's verdict" "$OUT"
order=$(printf '%s\n' "$OUT" | awk 'NR > 1 { printf "%s ", $2 }')
[ "$order" = "20240503-100000-esp32 20240502-100000-uno 20240501-100000-nodemcu " ] &&
	ok "newest first" || bad "newest first" "$order"
[ -z "$ERR" ] && ok "nothing on stderr when every journal reads" || bad "quiet stderr" "$ERR"

expect_rc 0 "--device by MAC, any case" "$FW" history --state-dir "$S" --device 5C:CF:7F
expect_in "20240501-100000-nodemcu" "the matching job" "$OUT"
expect_not_in "20240502-100000-uno" "no other job" "$OUT"
expect_not_in "20240503-100000-esp32" "no other job (2)" "$OUT"
expect_rc 0 "--device by AVR signature" "$FW" history --state-dir "$S" --device 1e950F
expect_in "20240502-100000-uno" "signature matches" "$OUT"
expect_not_in "nodemcu" "only the Arduino" "$OUT"
expect_rc 0 "--device by port" "$FW" history --state-dir "$S" --device ttyUSB
expect_in "20240501-100000-nodemcu" "port matches (1)" "$OUT"
expect_in "20240503-100000-esp32" "port matches (2)" "$OUT"
expect_not_in "20240502-100000-uno" "ttyACM0 does not" "$OUT"
expect_rc 0 "--device without a match" "$FW" history --state-dir "$S" --device nothing-like-it
expect_in "no jobs in $S match --device nothing-like-it" "says nothing matched" "$OUT"

expect_rc 0 "--profile exact id" "$FW" history --state-dir "$S" --profile esp32-devkitc
expect_in "20240503-100000-esp32" "profile matches" "$OUT"
expect_not_in "nodemcu" "other profiles left out" "$OUT"
expect_rc 0 "--profile is not a prefix match" "$FW" history --state-dir "$S" --profile esp32
expect_not_in "20240503" "a prefix does not match" "$OUT"

expect_rc 0 "--json" "$FW" history --state-dir "$S" --json
if command -v python3 >/dev/null; then
	printf '%s' "$OUT" >"$TMP/h.json"
	run python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(len(a), a[0]["id"], a[0]["unsafe"], a[2]["device"]["mac"])' "$TMP/h.json"
	[ "$OUT" = "3 20240503-100000-esp32 True 5c:cf:7f:aa:bb:cc" ] && ok "--json parses: newest first, unsafe flag, device" ||
		bad "--json parses" "$OUT$ERR"
fi
expect_rc 0 "--json with a filter" "$FW" history --state-dir "$S" --json --profile arduino-uno-r3
expect_in '"device_state":"untouched"' "summary has the device state" "$OUT"
expect_not_in "nodemcu" "filtered JSON" "$OUT"

# A damaged journal is listed with its error, and the rest still shows.
cp -r "$S/20240501-100000-nodemcu" "$S/20240504-100000-broken"
sed -i 's/^id = 20240501-100000-nodemcu/id = 20240504-100000-broken/' "$S/20240504-100000-broken/journal.ini"
expect_rc 0 "a damaged journal does not fail the history" "$FW" history --state-dir "$S"
expect_in "20240504-100000-broken" "the damaged job is listed" "$OUT"
expect_in "unreadable: " "with the word unreadable" "$OUT"
expect_in "journal.ini" "naming the journal" "$OUT"
expect_in "SHA-256 does not match" "and what is wrong with it" "$OUT"
expect_in "20240501-100000-nodemcu" "the other jobs still show" "$OUT"
expect_in "could not be read" "a note on stderr" "$ERR"
expect_rc 0 "damaged journal in --json" "$FW" history --state-dir "$S" --json
expect_in '"id":"20240504-100000-broken"' "listed in JSON" "$OUT"
expect_in '"error":"' "with its error" "$OUT"
expect_rc 0 "a damaged journal is not filtered away" "$FW" history --state-dir "$S" --device 5c:cf
expect_in "20240504-100000-broken" "listed even under a filter" "$OUT"

# A link where a job folder should be: listed, not followed.
ln -s "$S/20240502-100000-uno" "$S/20240505-100000-link"
expect_rc 0 "a symlinked job folder" "$FW" history --state-dir "$S"
expect_in "symbolic link" "is named as a link" "$OUT"

expect_rc 2 "unknown option" "$FW" history --state-dir "$S" --frobnicate
expect_rc 2 "a stray argument" "$FW" history --state-dir "$S" extra
expect_rc 9 "a state folder that is a file" "$FW" history --state-dir tests/data/jobs/20240501-100000-nodemcu/journal.ini
expect_in "not a folder" "says why" "$ERR"
XDG_STATE_HOME="$TMP/xdg" expect_rc 0 "default state folder from XDG_STATE_HOME" "$FW" history
expect_in "no jobs in $TMP/xdg/flashwise/jobs" "names the default folder" "$OUT"
finish
