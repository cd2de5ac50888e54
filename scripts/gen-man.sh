#!/bin/sh
# Regenerates the blocks of the man pages that come from the program's own
# tables (exit codes, profile keys), so the pages cannot drift from the code.
# usage: scripts/gen-man.sh [FLASHWISE] [MANDIR]   (default ./flashwise man)
set -eu
FW=${1:-./flashwise}
DIR=${2:-man}

# replace FILE NAME: swaps the lines between the BEGIN/END NAME markers for stdin.
replace() {
	new=$(mktemp)
	cat >"$new.block"
	awk -v name="$2" -v block="$new.block" '
		$0 == ".\\\" BEGIN " name { print; while ((getline l < block) > 0) print l; skip = 1; next }
		$0 == ".\\\" END " name { skip = 0 }
		!skip { print }' "$1" >"$new"
	mv "$new" "$1"
	rm -f "$new.block"
}

"$FW" exit-codes | awk -F '\t' '{ printf ".TP\n.B %s\n(%s) %s\n", $1, $2, $3 }' |
	replace "$DIR/flashwise.1" EXIT-CODES
"$FW" profile schema --man | replace "$DIR/flashwise-profile.5" KEYS
