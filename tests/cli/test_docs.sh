#!/bin/bash
# --help, the man pages and the code agree: every command, every option,
# every exit code; the generated man blocks are up to date.
. tests/cli/lib.sh

expect_rc 0 "--help" "$FW" --help
HELP=$OUT
MAN1=$(cat man/flashwise.1)
MAN5=$(cat man/flashwise-profile.5)

# Every command in --help has a man entry.
while read -r name; do
	[ -n "$name" ] || continue
	expect_in "$(printf '%s' "$name" | sed 's/-/\\-/g')" "man documents command '$name'" "$MAN1"
done <<EOF2
$(printf '%s\n' "$HELP" | sed -n '/^Commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z -]*[a-z]\)  .*/\1/p' | sed 's/ *$//' | grep -v '^help')
EOF2

# Every long option of --help and of each command's help is in the man page.
commands=$(printf '%s\n' "$HELP" | sed -n '/^Commands:/,/^$/p' |
	sed -n 's/^  \([a-z][a-z -]*[a-z]\)  .*/\1/p' | sed 's/ *$//' | grep -v '^help')
[ "$(printf '%s\n' "$commands" | wc -l)" -ge 10 ] && ok "--help lists the commands" ||
	bad "--help lists the commands" "$commands"
opts=$( (printf '%s\n' "$HELP"; printf '%s\n' "$commands" | while read -r c; do "$FW" help $c; done) |
	grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
for o in $opts; do
	expect_in "$(printf '%s' "$o" | sed 's/-/\\-/g')" "man documents $o" "$MAN1"
done

# Exit codes: the table, --help and the man page agree.
expect_rc 0 "exit-codes" "$FW" exit-codes
while IFS="$(printf '\t')" read -r code name meaning; do
	expect_in "  $(printf '%2d' "$code") $name" "--help lists exit code $code" "$HELP"
	expect_in ".B $code
($name) $meaning" "man page documents exit code $code ($name)" "$MAN1"
done <<EOF2
$OUT
EOF2
expect_in "unsafe" "a distinct exit code for an unsafe device" "$OUT"

# The generated blocks are current.
cp man/flashwise.1 man/flashwise-profile.5 "$TMP/"
sh scripts/gen-man.sh "$FW" "$TMP" >/dev/null 2>&1
if cmp -s man/flashwise.1 "$TMP/flashwise.1" && cmp -s man/flashwise-profile.5 "$TMP/flashwise-profile.5"; then
	ok "generated man blocks are up to date"
else
	bad "generated man blocks are stale: run scripts/gen-man.sh" "$(diff man/flashwise-profile.5 "$TMP/flashwise-profile.5" | head -20)"
fi
expect_in ".TP" "the profile key list is not empty" "$(sed -n '/BEGIN KEYS/,/END KEYS/p' man/flashwise-profile.5)"

# The pages are well-formed man(7).
if command -v mandoc >/dev/null; then
	for m in man/*.[15]; do
		run mandoc -T lint -W warning "$m"
		if [ -z "$OUT$ERR" ]; then ok "mandoc lint $m"; else bad "mandoc lint $m" "$OUT$ERR"; fi
	done
fi

expect_rc 2 "unknown command exits 2" "$FW" frobnicate
expect_rc 2 "unknown option exits 2" "$FW" --frobnicate
finish
