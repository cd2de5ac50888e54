#!/bin/bash
# The wizard end to end without curses: batch mode (run --yes) and line mode
# (answers on stdin) against flashwise-sim, then the safety that outlives
# the process: kill -9 in the middle of the flash step and `resume`, SIGHUP
# and SIGTERM during a write, SIGTERM during the backup, a failed reboot
# check and `restore`, and `history` over the jobs made here.
#
# Every job's folder is checked afterwards (journal, backup and its
# sidecar, boot log, reports, modes), and the flash file is compared with
# what it must hold, so "exit 0" is never taken on trust.
. tests/integration/lib.sh

P=nodemcu-v1
JOBS=$TMP/jobs
export FLASHWISE_PROFILES=$TMP/profiles

mkdir -p "$TMP/profiles"
# A copy whose healthy-boot line never appears: the reboot check fails.
sed 's/^banner = .*/banner = this line never appears/' profiles/$P.ini >"$TMP/profiles/nm-nobanner.ini"

"$FW" image sample "$TMP/small.bin" --profile $P >/dev/null || bad "image sample"
# 400 KB behind a valid header: a write long enough to interrupt.
(cat "$TMP/small.bin"; head -c 400000 /dev/urandom) >"$TMP/big.bin"
(cd "$TMP" && sha256sum big.bin >big.bin.sha256)
SMALL_SHA=$(cut -d' ' -f1 <"$TMP/small.bin.sha256")

# job_dir: the newest job folder.
job_dir() { ls -1dt "$JOBS"/*/ 2>/dev/null | head -n 1 | sed 's#/$##'; }
# jget DIR SECTION KEY: a value from a journal.
jget() {
	awk -v s="[$2]" -v k="$3" '$0 == s {in_s = 1; next} /^\[/ {in_s = 0}
		in_s && index($0, k " = ") == 1 {print substr($0, length(k) + 4); exit}' "$1/journal.ini"
}
# wait_for FILE REGEX [TRIES]: until a line of FILE matches (tenths of a second).
wait_for() {
	local i
	for i in $(seq "${3:-600}"); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
mode_of() { stat -c %a "$1"; }
# fw_bg ARGS...: like fw, as its own process ($! is flashwise itself, so a
# signal reaches it and not a subshell). Run it with '&'.
fw_bg() {
	LD_PRELOAD=$SHIM FLASHWISE_SHIM_LINES=$SIM_LINES FLASHWISE_TRANSPORT=sp exec "$FW" "$@"
}
WRITING='^write +[0-9]+/'
READING='^read +[0-9]+/'
# signal_during NAME SIGNAL REGEX: a batch job writing big.bin to a flash of
# 0x5A, the signal sent once its output matches REGEX (a second later for a
# write, so it is well under way); $RC is its exit code, $OUTFILE its output.
signal_during() {
	local name=$1 sig=$2 re=$3 pid
	make_flash "$SIM_FLASH" 5a
	OUTFILE=$TMP/$name.out
	fw_bg run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/big.bin@app" \
		--state-dir "$JOBS" >"$OUTFILE" 2>&1 &
	pid=$!
	wait_for "$OUTFILE" "$re" 900 || bad "$name: the job got under way" "$(cat "$OUTFILE")"
	[ "$re" = "$WRITING" ] && sleep 1
	kill -"$sig" $pid
	wait $pid
	RC=$?
}

# === batch mode: all nine steps ====================================================
make_flash "$TMP/e8.flash" 5a
cp "$TMP/e8.flash" "$TMP/orig.flash"
sim_start e8 esp8266 --boot flash
expect_rc 0 "run --yes: all nine steps, exit 0" \
	fw run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--state-dir "$JOBS"
for n in 1 2 3 4 5 6 7 8 9; do
	expect_in "[$n/9]" "batch output shows step $n of 9" "$OUT"
done
expect_in "RESULT: OK, complete: firmware written and verified" "batch reports the verdict" "$OUT"
expect_not_in $'\r' "line mode never redraws with a carriage return" "$OUT"
D=$(job_dir)
[ -n "$D" ] && ok "a job folder was made" || bad "a job folder was made" "$(ls -la "$JOBS")"
same_bytes "the firmware is on the device" "$TMP/small.bin" 0
[ "$(jget "$D" job outcome)" = complete ] && ok "journal: outcome complete" ||
	bad "journal: outcome complete" "$(cat "$D/journal.ini")"
[ "$(jget "$D" job device)" = ok ] && ok "journal: device ok" || bad "journal: device ok"
for s in identify verify-image prepare bootloader backup flash reboot verify document; do
	[ "$(jget "$D" step.$s state)" = done ] && ok "journal: step $s done" ||
		bad "journal: step $s done" "$(cat "$D/journal.ini")"
done
[ "$(jget "$D" step.identify firmware.1.sha256)" = "$SMALL_SHA" ] &&
	ok "journal records the firmware's SHA-256" || bad "journal records the firmware's SHA-256"
expect_in "of the code after the reboot" "verify compared the code again after the reboot" \
	"$(jget "$D" step.verify verify.method)"
BK=$(jget "$D" step.backup backup.path)
[ "$BK" = "$D/backup.hex" ] && ok "the backup is in the job folder" || bad "backup path" "$BK"
[ "$(sha256sum <"$BK" | cut -d' ' -f1)" = "$(jget "$D" step.backup backup.sha256)" ] &&
	ok "the backup's SHA-256 matches the journal" || bad "the backup's SHA-256 matches the journal"
(cd "$D" && sha256sum -c --status backup.hex.sha256) && ok "the backup's sidecar checks" ||
	bad "the backup's sidecar checks"
# The backup holds what the sectors held before: 0x5A.
expect_in ":200000005A5A5A5A" "the backup holds the old contents" "$(head -3 "$BK")"
for f in journal.ini backup.hex boot.log report.md report.json; do
	[ -f "$D/$f" ] && [ "$(mode_of "$D/$f")" = 600 ] && ok "$f is there, mode 600" ||
		bad "$f is there, mode 600" "$(ls -la "$D")"
done
[ "$(mode_of "$D")" = 700 ] && ok "the job folder is mode 700" || bad "the job folder is mode 700"
expect_in "ets Jan  8 2013" "the boot log holds the device's boot output" "$(cat "$D/boot.log")"
expect_in "complete: firmware written and verified" "report.md has the verdict" "$(cat "$D/report.md")"
expect_in '"outcome":"complete"' "report.json has the outcome" "$(cat "$D/report.json")"

# === batch mode fails closed ========================================================
expect_rc 2 "run --yes without --firmware is a usage error" \
	fw run --yes --profile $P --port "$SIM_PORT" --state-dir "$JOBS"
cp "$SIM_FLASH" "$TMP/before.flash"
expect_rc 5 "a wrong published SHA-256 stops the job (exit 5)" \
	fw run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--sha256 "$(printf '0%.0s' $(seq 64))" --state-dir "$JOBS"
D=$(job_dir)
[ "$(jget "$D" step.verify-image state)" = failed ] && ok "journal: verify-image failed" ||
	bad "journal: verify-image failed" "$(cat "$D/journal.ini")"
[ "$(jget "$D" step.prepare state)" = pending ] && ok "journal: nothing after it ran" ||
	bad "journal: nothing after it ran"
cmp -s "$SIM_FLASH" "$TMP/before.flash" && ok "the device was not touched" || bad "the device was not touched"
cp "$TMP/small.bin" "$TMP/two.bin"
(cd "$TMP" && sha256sum two.bin >two.bin.sha256)
expect_rc 2 "--sha256 with two files is refused, not ignored (exit 2)" \
	fw run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--firmware "$TMP/two.bin@0x80000" --sha256 "$SMALL_SHA" --state-dir "$JOBS"
expect_in "sha256-file" "... and names what to give instead" "$ERR$OUT"
cp "$TMP/small.bin" "$TMP/nosum.bin"
expect_rc 5 "a file without a published hash is refused in batch mode" \
	fw run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/nosum.bin@app" --state-dir "$JOBS"
expect_in "unchecked" "the refusal says the file is unchecked" "$ERR$OUT"
sim_stop

# A different chip on the port: stopped at the bootloader step.
sim_start e32 esp32 --boot flash
expect_rc 7 "an ESP32 on an ESP8266 profile stops the job (exit 7)" \
	fw run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" --state-dir "$JOBS"
D=$(job_dir)
[ "$(jget "$D" step.bootloader state)" = failed ] && ok "journal: bootloader failed" ||
	bad "journal: bootloader failed" "$(cat "$D/journal.ini")"
[ "$(jget "$D" job device)" = untouched ] && ok "journal: device untouched" || bad "journal: device untouched"
sim_stop

# === line mode: answers on stdin ==============================================
make_flash "$TMP/lm.flash" 5a
sim_start lm esp8266 --boot flash
# Answers: the profile's default blank partition? model? three conditions, the word.
printf 'n\ny\ny\ny\ny\nno\n' >"$TMP/answers"
expect_rc 8 "line mode: a wrong word at the WRITE prompt writes nothing (exit 8)" \
	fw run --plain --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--state-dir "$JOBS" <"$TMP/answers"
expect_in "Type WRITE to write" "line mode asks for the typed confirmation" "$OUT"
expect_in "[y/N]" "the write-related question defaults to No" "$OUT"
D=$(job_dir)
[ "$(jget "$D" job outcome)" = aborted ] && [ "$(jget "$D" job device)" = untouched ] &&
	ok "journal: aborted with the device untouched" || bad "journal: aborted, untouched" "$(cat "$D/journal.ini")"
all_byte "the declined write left the flash alone" 0 4096 5a
printf '\ny\ny\ny\ny\nWRITE\n' >"$TMP/answers"
expect_rc 0 "line mode: the same job with WRITE typed completes" \
	fw run --plain --profile $P --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--state-dir "$JOBS" <"$TMP/answers"
expect_in "Also write the profile's default for partition blank" "the profile's default file is offered" "$OUT"
same_bytes "line mode wrote the firmware" "$TMP/small.bin" 0
all_byte "the default blank partition was declined and not written" 0x3FE000 4096 5a
sim_stop

# === kill -9 in the middle of the flash step, then resume =========================
make_flash "$TMP/k9.flash" 5a
sim_start k9 esp8266 --boot flash --baud-pacing on
fw_bg run --yes --profile $P --port "$SIM_PORT" --firmware "$TMP/big.bin@app" \
	--state-dir "$JOBS" >"$TMP/k9.out" 2>&1 &
FWPID=$!
if wait_for "$TMP/k9.out" "$WRITING" 900; then
	sleep 1
	kill -KILL $FWPID
	wait $FWPID 2>/dev/null
	ok "flashwise was killed while writing"
else
	bad "the write started" "$(cat "$TMP/k9.out")"
	kill -KILL $FWPID 2>/dev/null
fi
D=$(job_dir)
[ "$(jget "$D" step.flash state)" = running ] && ok "journal: the flash step was running" ||
	bad "journal: the flash step was running" "$(cat "$D/journal.ini")"
[ "$(jget "$D" job unsafe)" = yes ] && ok "journal: the device is marked unsafe" || bad "journal: unsafe"
ID=$(basename "$D")
expect_rc 0 "resume --yes finishes the interrupted job" fw resume --yes "$ID" --state-dir "$JOBS"
expect_in "interrupted" "resume says the step was interrupted" "$OUT"
expect_in "identity: matches profile" "resume identified the device again first" "$OUT"
same_bytes "after resume the whole firmware is on the device" "$TMP/big.bin" 0
[ "$(jget "$D" job outcome)" = complete ] && ok "journal: the resumed job is complete" ||
	bad "journal: the resumed job is complete" "$(cat "$D/journal.ini")"
[ "$(jget "$D" step.flash attempts)" = 2 ] && ok "journal: the flash step ran twice" ||
	bad "journal: the flash step ran twice" "$(cat "$D/journal.ini")"
expect_rc 2 "resume of a finished job: nothing to do" fw resume --yes "$ID" --state-dir "$JOBS"
# A job folder is never reached through a symbolic link.
mkdir -p "$TMP/jobs2"
ln -s "$D" "$TMP/jobs2/$ID"
expect_rc 9 "resume refuses a job folder that is a symbolic link (exit 9)" \
	fw resume --yes "$ID" --state-dir "$TMP/jobs2"
expect_in "symbolic link" "... and says so" "$ERR"
expect_rc 9 "resume of a job that does not exist: exit 9" \
	fw resume --yes no-such-job --state-dir "$JOBS"
expect_rc 2 "resume of an id that cannot be a folder name: exit 2" \
	fw resume --yes ../etc --state-dir "$JOBS"

# === SIGHUP during the write: the job completes and is recorded ================
signal_during hup HUP "$WRITING"
[ $RC -eq 0 ] && ok "after SIGHUP mid-write the job still ends with exit 0" ||
	bad "after SIGHUP mid-write the job still ends with exit 0 (exit $RC)" "$(tail -5 "$OUTFILE")"
D=$(job_dir)
[ "$(jget "$D" job outcome)" = complete ] && ok "journal: complete after SIGHUP" ||
	bad "journal: complete after SIGHUP" "$(cat "$D/journal.ini")"
[ -f "$D/report.md" ] && ok "the report was written after SIGHUP" || bad "the report was written after SIGHUP"
expect_not_in "RESULT" "nothing was printed after the hangup" "$(cat "$OUTFILE")"
same_bytes "the firmware is on the device after SIGHUP" "$TMP/big.bin" 0

# === SIGTERM during the write: the write finishes, then the run stops ==========
signal_during term TERM "$WRITING"
[ $RC -eq 12 ] && ok "SIGTERM mid-write: exit 12 (interrupted)" ||
	bad "SIGTERM mid-write: exit 12 (exit $RC)" "$(tail -5 "$OUTFILE")"
D=$(job_dir)
[ "$(jget "$D" step.flash state)" = done ] && ok "journal: the write finished first" ||
	bad "journal: the write finished first" "$(cat "$D/journal.ini")"
[ "$(jget "$D" job current)" = reboot ] && ok "journal: the job waits at the reboot step" ||
	bad "journal: the job waits at the reboot step"
same_bytes "the firmware was written completely before stopping" "$TMP/big.bin" 0
expect_rc 0 "resume after SIGTERM completes the job" fw resume --yes "$(basename "$D")" --state-dir "$JOBS"

# === SIGTERM during the backup: stopped at once, nothing written ===============
signal_during bterm TERM "$READING"
[ $RC -eq 12 ] && ok "SIGTERM during the backup: exit 12" || bad "SIGTERM during the backup: exit 12 (exit $RC)" "$(tail -5 "$OUTFILE")"
D=$(job_dir)
[ "$(jget "$D" step.backup state)" = failed ] && ok "journal: the backup was stopped" ||
	bad "journal: the backup was stopped" "$(cat "$D/journal.ini")"
expect_in "stopped on request" "journal says why" "$(jget "$D" step.backup reason)"
all_byte "nothing was written" 0 400096 5a
sim_stop

# === a failed reboot check, then restore ========================================
make_flash "$TMP/rs.flash" 5a
sim_start rs esp8266 --boot flash
expect_rc 10 "a reboot without the healthy-boot line: exit 10 (unsafe)" \
	fw run --yes --profile nm-nobanner --port "$SIM_PORT" --firmware "$TMP/small.bin@app" \
	--state-dir "$JOBS"
D=$(job_dir)
[ "$(jget "$D" step.reboot state)" = failed ] && ok "journal: reboot failed" ||
	bad "journal: reboot failed" "$(cat "$D/journal.ini")"
same_bytes "the new firmware is on the device" "$TMP/small.bin" 0
expect_rc 1 "restore writes the backup back (exit 1: the job did not succeed)" \
	fw restore --yes "$(basename "$D")" --state-dir "$JOBS"
expect_in "restored" "restore says the backup was written back" "$OUT"
all_byte "after restore the device holds what it held before" 0 4096 5a
[ "$(jget "$D" job outcome)" = restored ] && ok "journal: outcome restored" ||
	bad "journal: outcome restored" "$(cat "$D/journal.ini")"
[ "$(jget "$D" restore restore.result)" = match ] && ok "journal: the restore was verified" ||
	bad "journal: the restore was verified"
expect_rc 2 "restore of an ended job refuses" fw restore --yes "$(basename "$D")" --state-dir "$JOBS"
sim_stop

# === a firmware that does not boot ================================================
# An ESP32 application without the second-stage bootloader it needs: written
# and verified, but the ROM prints "invalid header" at the restart.
make_flash "$TMP/nb.flash" ff
sim_start nb esp32 --boot flash
"$FW" image sample "$TMP/e32app.bin" --profile esp32-devkitc >/dev/null
expect_rc 10 "a firmware that does not boot fails the reboot check (exit 10)" \
	fw run --yes --profile esp32-devkitc --port "$SIM_PORT" --firmware "$TMP/e32app.bin@factory" \
	--state-dir "$JOBS"
expect_in "invalid header" "the failure names the line the device printed" "$ERR$OUT"
D=$(job_dir)
[ "$(jget "$D" step.flash state)" = done ] && [ "$(jget "$D" step.reboot state)" = failed ] &&
	ok "journal: written, but the reboot check failed" ||
	bad "journal: written, but the reboot check failed" "$(cat "$D/journal.ini")"
expect_in "invalid header" "the boot log keeps the output" "$(cat "$D/boot.log")"
sim_stop

# === history ======================================================================
expect_rc 0 "history lists the jobs" "$FW" history --state-dir "$JOBS"
expect_in "complete" "history shows a complete job" "$OUT"
expect_in "restored" "history shows the restored job" "$OUT"
expect_rc 0 "history --profile filters" "$FW" history --state-dir "$JOBS" --profile nm-nobanner
[ "$(printf '%s\n' "$OUT" | grep -c nm-nobanner)" -ge 1 ] && ok "the filter keeps the job" || bad "the filter keeps the job" "$OUT"
expect_not_in "$P " "the filter drops the others" "$OUT"

finish
