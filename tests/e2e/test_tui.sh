#!/bin/bash
# The wizard's curses screens at 80x24 in tmux, driven by keystrokes:
#
# 1. `flashwise demo`: all nine steps against the simulated ESP32, a golden
#    capture at every screen that asks something, the job folder checked after.
# 2. A file without a published hash: the SHA-256 is pasted at the prompt,
#    a wrong one fails the image check, the failure screen offers its
#    choices, and nothing reaches the device.
# 3. SIGKILL in the middle of the flash step, then `flashwise resume`: the
#    failure screen says the step was interrupted, Retry finishes the job.
# 4. The terminal goes away (the tmux server is killed: SIGHUP) in the
#    middle of the write: the job completes without a screen and is recorded.
# 5. A terminal smaller than 80x24 gets the guard, and the screen comes back
#    when it grows again.
#
# Volatile parts (paths, ports, job ids, times, rates) are masked before the
# comparison; FW_E2E_UPDATE=1 rewrites the golden files.
. tests/e2e/lib.sh

JOBS=$TMP/jobs
P=nodemcu-v1
export TMPDIR=$TMP
SHIMENV="LD_PRELOAD=$SHIM"

job_dir() { ls -1dt "$JOBS"/*/ 2>/dev/null | head -n 1 | sed 's#/$##'; }
jget() {
	awk -v s="[$2]" -v k="$3" '$0 == s {in_s = 1; next} /^\[/ {in_s = 0}
		in_s && index($0, k " = ") == 1 {print substr($0, length(k) + 4); exit}' "$1/journal.ini"
}
# shim_fw WINDOW ARGS...: flashwise in a window, on the libserialport path
# with the modem-line shim (the sim is reset through DTR/RTS).
shim_fw() {
	local name=$1
	shift
	tm_start "$name" env "$SHIMENV" FLASHWISE_SHIM_LINES="$SIM_LINES" FLASHWISE_TRANSPORT=sp \
		"$FW" "$@"
}
step() { # step WINDOW REGEX DESC [SECS]
	if tm_wait "$1" "$2" "${4:-60}"; then ok "$3"; else bad "$3" "$(tm_screen "$1")"; fi
}

# === 1. the demo, all nine steps ==================================================
tm_start demo "$FW" demo --state-dir "$JOBS"
step demo 'Is the device on the bench this model' "demo: step 1 asks to confirm the model"
expect_in "step 1/9" "the top line shows the step" "$(tm_screen demo | head -n 1)"
tm_golden demo demo-1-identify
tm_keys demo y
step demo 'Confirm|check the bench' "demo: step 3 shows the bench checklist"
tm_golden demo demo-3-prepare
tm_keys demo c
step demo 'not confirmed|tick every' "demo: continuing with unticked items is refused"
tm_keys demo 1 2 3 c
step demo 'Type WRITE' "demo: step 6 asks for the typed confirmation" 120
tm_golden demo demo-6-flash
tm_keys demo -l WRIT
tm_keys demo Enter
step demo 'did not match' "demo: a wrong word is not taken"
tm_keys demo C-u
tm_keys demo -l WRITE
tm_keys demo Enter
step demo 'complete: firmware written and verified' "demo: the finish screen gives the verdict" 120
tm_golden demo demo-9-finish
SCREEN=$(tm_screen demo)
for s in identify verify-image prepare bootloader backup flash reboot verify document; do
	expect_in "[OK]   $s" "demo: the checklist marks $s done" "$SCREEN"
done
tm_keys demo Enter
[ "$(tm_rc demo)" = 0 ] && ok "demo: exit 0" || bad "demo: exit 0" "$(cat "$TMP/demo.rc" 2>/dev/null)"
expect_in "flashwise: complete: firmware written and verified" \
	"demo: the verdict stays on the terminal after the screens are gone" "$(tm_screen demo)"
D=$(job_dir)
[ "$(jget "$D" job outcome)" = complete ] && ok "demo: the journal says complete" ||
	bad "demo: the journal says complete" "$(cat "$D/journal.ini")"
for f in backup.hex backup.hex.sha256 boot.log report.md report.json; do
	[ -f "$D/$f" ] && ok "demo: $f in the job folder" || bad "demo: $f in the job folder"
done
expect_in "flashwise demo firmware" "demo: the boot log shows the sample firmware's banner" \
	"$(cat "$D/boot.log")"
[ -z "$(ls "$TMP" | grep flashwise-demo)" ] && ok "demo: its temporary files are gone" ||
	bad "demo: its temporary files are gone" "$(ls "$TMP")"

# === 2. a pasted hash that does not match ==========================================
make_flash "$TMP/e8.flash" 5a
cp "$TMP/e8.flash" "$TMP/e8.orig"
sim_start e8 esp8266 --boot flash --mac 18:fe:34:00:00:01
"$FW" image sample "$TMP/nohash.bin" --profile $P >/dev/null
rm -f "$TMP/nohash.bin.sha256"
shim_fw hash run --profile $P --port "$SIM_PORT" --firmware "$TMP/nohash.bin@app" \
	--state-dir "$JOBS"
step hash 'Also write the profile' "hash: the profile's default file is offered"
tm_keys hash n
step hash 'this model' "hash: the model question"
tm_keys hash y
step hash 'Published SHA-256' "hash: with no sidecar the published SHA-256 is asked for"
tm_golden hash hash-1-ask
tm_keys hash -l "$(printf '1%.0s' $(seq 64))"
tm_keys hash Enter
step hash 'What now|Abort' "hash: a wrong hash ends on the failure screen"
tm_golden hash hash-2-failure
tm_keys hash j
tm_keys hash Enter
step hash 'aborted' "hash: abort ends the job"
tm_keys hash Enter
RC=$(tm_rc hash)
[ "$RC" = 5 ] && ok "hash: exit 5 (integrity)" || bad "hash: exit 5 (exit $RC)"
cmp -s "$SIM_FLASH" "$TMP/e8.orig" && ok "hash: the device was not touched" || bad "hash: the device was not touched"
sim_stop

# === 3. SIGKILL mid-flash, then resume ============================================
(cat "$TMP/nohash.bin"; head -c 300000 /dev/urandom) >"$TMP/big.bin"
(cd "$TMP" && sha256sum big.bin >big.bin.sha256)
make_flash "$TMP/k9.flash" 5a
sim_start k9 esp8266 --boot flash --baud-pacing on --mac 18:fe:34:00:00:02
# A second apart from the last job, so its id has no "-2" (the screens show it).
sleep 1.1
shim_fw k9 run --profile $P --port "$SIM_PORT" --firmware "$TMP/big.bin@app" --state-dir "$JOBS"
step k9 'Also write the profile' "k9: started"
tm_keys k9 n
step k9 'this model' "k9: model question"
tm_keys k9 y
step k9 'check the bench|Confirm' "k9: checklist"
tm_keys k9 1 2 3 c
step k9 'Type WRITE' "k9: the typed confirmation" 120
tm_keys k9 -l WRITE
tm_keys k9 Enter
step k9 'write +[0-9]+/' "k9: the write is under way" 60
PID=$(tm_pid k9)
[ -n "$PID" ] && kill -KILL "$PID" && ok "k9: flashwise killed with SIGKILL while writing" ||
	bad "k9: flashwise killed" "$(tm_screen k9)"
sleep 0.5
D=$(job_dir)
ID=$(basename "$D")
[ "$(jget "$D" step.flash state)" = running ] && ok "k9: the journal shows the flash step running" ||
	bad "k9: the journal shows the flash step running" "$(cat "$D/journal.ini")"
shim_fw resume resume "$ID" --state-dir "$JOBS"
step resume 'interrupted' "resume: the failure screen says the step was interrupted" 60
tm_golden resume resume-1-interrupted
SCREEN=$(tm_screen resume)
expect_in "Restore the backup" "resume: restoring is offered" "$SCREEN"
expect_in "Retry" "resume: retrying is offered" "$SCREEN"
# The safe choice (restore) comes first; move to Retry.
tm_keys resume j
tm_keys resume Enter
step resume 'complete: firmware written and verified' "resume: the job completes" 180
tm_keys resume Enter
[ "$(tm_rc resume)" = 0 ] && ok "resume: exit 0" || bad "resume: exit 0 ($(cat "$TMP/resume.rc"))"
same_bytes "resume: the whole firmware is on the device" "$TMP/big.bin" 0
[ "$(jget "$D" job outcome)" = complete ] && ok "resume: the journal says complete" ||
	bad "resume: the journal says complete"

# === 4. the terminal goes away mid-write ============================================
make_flash "$SIM_FLASH" 5a
shim_fw hup run --profile $P --port "$SIM_PORT" --firmware "$TMP/big.bin@app" --state-dir "$JOBS"
step hup 'Also write the profile' "hup: started"
tm_keys hup n
step hup 'this model' "hup: model question"
tm_keys hup y
step hup 'check the bench|Confirm' "hup: checklist"
tm_keys hup 1 2 3 c
step hup 'Type WRITE' "hup: the typed confirmation" 120
tm_keys hup -l WRITE
tm_keys hup Enter
step hup 'write +[0-9]+/' "hup: the write is under way" 60
PID=$(tm_pid hup)
tm kill-server
for i in $(seq 600); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$PID" 2>/dev/null && bad "hup: flashwise ended after the hangup" || ok "hup: flashwise ended after the hangup"
D=$(job_dir)
[ "$(jget "$D" job outcome)" = complete ] && ok "hup: the job completed without its terminal" ||
	bad "hup: the job completed without its terminal" "$(cat "$D/journal.ini")"
[ -f "$D/report.md" ] && ok "hup: the report was written" || bad "hup: the report was written"
same_bytes "hup: the firmware is on the device" "$TMP/big.bin" 0
sim_stop

# === 5. too small ====================================================================
make_flash "$TMP/sm.flash" 5a
sim_start sm esp8266 --boot flash
shim_fw small run --profile $P --port "$SIM_PORT" --firmware "$TMP/big.bin@app" --state-dir "$JOBS"
step small 'Also write the profile' "small: started"
tm resize-window -t fw:small -x 60 -y 20
step small 'terminal too small' "small: below 80x24 the guard shows"
tm_keys small y
tm resize-window -t fw:small -x 80 -y 24
step small 'Also write the profile' "small: at 80x24 the question is back, unanswered"
tm_keys small q
step small 'this model' "small: backing out of the offer leaves the default out, the model is next" 30
expect_in "backed out" "small: the screen says the offer was backed out of" "$(tm_screen small)"
tm kill-server
sim_stop

finish
