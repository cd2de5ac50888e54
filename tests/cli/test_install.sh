#!/bin/bash
# make install with PREFIX and DESTDIR: the installed program finds the
# installed profiles from any folder, and the man pages are in place.
. tests/cli/lib.sh

prefix=$TMP/prefix
run make -s install BUILD="$TMP/build" PREFIX="$prefix" WERROR=1
if [ "$RC" -eq 0 ]; then ok "make install PREFIX=$prefix"; else bad "make install" "$OUT$ERR"; fi
for f in bin/flashwise share/man/man1/flashwise.1 share/man/man5/flashwise-profile.5 \
	share/flashwise/profiles/nodemcu-v1.ini; do
	[ -f "$prefix/$f" ] && ok "installed $f" || bad "installed $f"
done
# From another folder, with no ./profiles, the installed profiles are found.
(cd "$TMP" && "$prefix/bin/flashwise" profile check nodemcu-v1) >"$TMP/o" 2>&1 &&
	ok "installed flashwise finds its installed profiles" ||
	bad "installed flashwise finds its installed profiles" "$(cat "$TMP/o")"

run make -s install BUILD="$TMP/build" PREFIX=/usr DESTDIR="$TMP/dest"
if [ "$RC" -eq 0 ] && [ -x "$TMP/dest/usr/bin/flashwise" ] &&
   [ -f "$TMP/dest/usr/share/flashwise/profiles/esp01.ini" ]; then
	ok "make install DESTDIR=... PREFIX=/usr stages under DESTDIR"
else
	bad "make install DESTDIR" "$OUT$ERR"
fi
run "$TMP/dest/usr/bin/flashwise" --help
expect_in "/usr/share/flashwise/profiles" "the staged binary looks in PREFIX's data folder" "$OUT"
finish
