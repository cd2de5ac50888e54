#!/bin/bash
# image sample/info/check from the command line: integrity is a hard stop,
# bad images are rejected with their own exit code, sets are checked.
. tests/cli/lib.sh

expect_rc 0 "image sample for nodemcu" "$FW" image sample "$TMP/app.bin" --profile nodemcu-v1
[ -f "$TMP/app.bin.sha256" ] && ok "sidecar written" || bad "sidecar written"
want=$(sha256sum "$TMP/app.bin" | cut -d' ' -f1)
expect_in "$want  app.bin" "sidecar is sha256sum format and agrees with sha256sum(1)" "$(cat "$TMP/app.bin.sha256")"
(cd "$TMP" && sha256sum -c --quiet app.bin.sha256) && ok "sha256sum -c accepts our sidecar" || bad "sha256sum -c accepts our sidecar"

expect_rc 0 "image info with the sidecar and profile" "$FW" image info "$TMP/app.bin" --profile nodemcu-v1
expect_in "sha256: $want" "info prints the file's SHA-256" "$OUT"
expect_in "matches" "info compares with the sidecar" "$OUT"
expect_in "dio, 4MB, 40m" "info decodes the ESP header flags" "$OUT"
expect_in "verdict: ok" "verdict ok" "$OUT"

expect_rc 0 "explicit --sha256 that matches" "$FW" image info "$TMP/app.bin" --sha256 "$want"
bad_hash=$(printf '%s' "$want" | sed 's/^./0/; s/^00/11/')
expect_rc 5 "a wrong --sha256 is a hard stop (exit 5)" "$FW" image info "$TMP/app.bin" --sha256 "$bad_hash"
expect_in "does not match" "mismatch says so" "$ERR"
expect_in "$bad_hash" "mismatch shows the expected value" "$ERR"
run "$FW" image info "$TMP/app.bin" --sha256 abc
[ "$RC" -ne 0 ] && ok "a malformed --sha256 is refused (exit $RC)" || bad "malformed --sha256 accepted"

# A damaged file no longer matches its sidecar.
cp "$TMP/app.bin" "$TMP/damaged.bin"
sed "s/app.bin/damaged.bin/" "$TMP/app.bin.sha256" >"$TMP/damaged.bin.sha256"
printf '\001' | dd of="$TMP/damaged.bin" bs=1 seek=40 conv=notrunc 2>/dev/null
expect_rc 5 "one flipped byte against the sidecar exits 5" "$FW" image info "$TMP/damaged.bin"

# Manifest.
cat >"$TMP/manifest" <<EOF2
[app.bin]
sha256 = $want
EOF2
expect_rc 0 "manifest with the right hash" "$FW" image info "$TMP/app.bin" --manifest "$TMP/manifest"
expect_rc 5 "manifest that does not list the file" "$FW" image info "$TMP/damaged.bin" --manifest "$TMP/manifest"

# Signatures with the profile's pinned key.
openssl genpkey -algorithm ed25519 -out "$TMP/key.pem" 2>/dev/null
openssl pkey -in "$TMP/key.pem" -pubout -out "$TMP/pub.pem" 2>/dev/null
cp profiles/nodemcu-v1.ini "$TMP/signed.ini"
printf '\n[trust]\npublic_key = pub.pem\nrequire_signature = yes\n' >>"$TMP/signed.ini"
expect_rc 0 "profile with a pinned key validates" "$FW" profile check "$TMP/signed.ini"
expect_rc 5 "required signature missing exits 5" "$FW" image info "$TMP/app.bin" --profile "$TMP/signed.ini"
openssl pkeyutl -sign -rawin -inkey "$TMP/key.pem" -in "$TMP/app.bin" -out "$TMP/app.bin.sig" 2>/dev/null
expect_rc 0 "ed25519 signature made by openssl verifies" "$FW" image info "$TMP/app.bin" --profile "$TMP/signed.ini"
expect_in "verified" "info says the signature was verified" "$OUT"
cp "$TMP/app.bin.sig" "$TMP/damaged.bin.sig"
expect_rc 5 "the same signature on a changed file fails" "$FW" image info "$TMP/damaged.bin" --profile "$TMP/signed.ini" --sha256 "$(sha256sum "$TMP/damaged.bin" | cut -d' ' -f1)"
expect_rc 5 "a signature with no key to check it is not a pass" "$FW" image info "$TMP/app.bin" --profile nodemcu-v1

# Corrupt and misfitting images.
cp "$TMP/app.bin" "$TMP/badmagic.bin"; printf '\xe8' | dd of="$TMP/badmagic.bin" bs=1 conv=notrunc 2>/dev/null
expect_rc 4 "an image with a wrong magic at the bootloader offset exits 4" "$FW" image check --profile nodemcu-v1 "$TMP/badmagic.bin@0x0"
head -c 60 "$TMP/app.bin" >"$TMP/trunc.bin"
expect_rc 4 "a truncated ESP image exits 4" "$FW" image check --profile nodemcu-v1 "$TMP/trunc.bin@0x0"
expect_in "truncated" "the message says truncated" "$OUT$ERR"

head -c 8192 /dev/zero | tr '\0' '\377' >"$TMP/8k.bin"
expect_rc 4 "an image larger than its partition exits 4" "$FW" image check --profile nodemcu-v1 "$TMP/8k.bin@init_data"
expect_in "init_data" "the message names the partition" "$OUT$ERR"
head -c 4096 /dev/zero | tr '\0' '\377' >"$TMP/4k.bin"
expect_rc 0 "init data of the right size fits" "$FW" image check --profile nodemcu-v1 "$TMP/4k.bin@init_data"
expect_rc 4 "a write into the AVR bootloader is refused" "$FW" image check --profile arduino-uno-r3 "$TMP/4k.bin@0x7000"
expect_rc 2 "an unknown partition is a usage error naming the partitions" "$FW" image check --profile nodemcu-v1 "$TMP/4k.bin@nosuch"
expect_in "app" "the message lists the profile's partitions" "$ERR"

# Intel HEX: a bad record checksum names the line.
printf ':0400000001020304F2\n:0400040005060708DE\n:00000001FF\n' >"$TMP/ok.hex"
expect_rc 0 "a valid HEX file" "$FW" image info "$TMP/ok.hex"
expect_in "hex" "detected as Intel HEX" "$(printf '%s' "$OUT" | tr 'A-Z' 'a-z')"
printf ':0400000001020304F2\n:0400040005060708DF\n:00000001FF\n' >"$TMP/bad.hex"
expect_rc 4 "a HEX record with a bad checksum exits 4" "$FW" image info "$TMP/bad.hex"
expect_in "line 2" "the message names the line" "$ERR"

: >"$TMP/empty.bin"
expect_rc 4 "an empty file is rejected" "$FW" image info "$TMP/empty.bin"
expect_rc 2 "image info without a file is a usage error" "$FW" image info
expect_rc 2 "image check without --profile is a usage error" "$FW" image check "$TMP/app.bin"
run "$FW" image info "$TMP/nonexistent.bin"
[ "$RC" -ne 0 ] && ok "a missing file is refused (exit $RC)" || bad "missing file accepted"
expect_in "nonexistent.bin" "the message names the missing file" "$ERR"

# ESP32: sample with appended SHA-256 validates in its app partition.
expect_rc 0 "image sample for esp32" "$FW" image sample "$TMP/e32.bin" --profile esp32-devkitc
expect_rc 0 "esp32 sample checks in the factory partition" "$FW" image check --profile esp32-devkitc "$TMP/e32.bin@factory"
finish
