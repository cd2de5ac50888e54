#!/bin/sh
# Runs every benchmark program built from bench/*.c. Figures are medians.
set -e
BUILD=${BUILD:-build}
for b in "$BUILD"/bench/bench_*; do
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b"
done
