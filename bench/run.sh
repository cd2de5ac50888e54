#!/bin/sh
# Runs every benchmark program built from bench/*.c, then every bench/*.sh
# script (with BUILD set). Figures are medians.
# bench_esp starts the simulator itself: FLASHWISE_SIM names the one of this
# build (the sanitizer build has its own).
set -e
BUILD=${BUILD:-build}
FLASHWISE_SIM=${FLASHWISE_SIM:-$BUILD/flashwise-sim}
export FLASHWISE_SIM
for b in "$BUILD"/bench/bench_*; do
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b"
done
for s in bench/*.sh; do
	[ -f "$s" ] || continue
	echo "== $(basename "$s" .sh)"
	BUILD=$BUILD bash "$s"
done
