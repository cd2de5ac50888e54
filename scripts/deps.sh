#!/bin/sh
# Installs the Debian packages that building and testing flashwise need.
# As root it runs apt-get itself (update first); otherwise it prints the one
# command to run. Keep this list the only place that names them.
set -eu

PACKAGES="gcc make pkg-config libncurses-dev libserialport-dev libssl-dev openssl
libiniparser-dev libcmocka-dev zlib1g-dev tmux mandoc
gcc-avr avr-libc binutils-avr libsimavr-dev arduino-core-avr avrdude
gcc-xtensa-lx106 binutils-xtensa-lx106"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing"
	echo "run: sudo apt-get update && sudo apt-get install -y$missing"
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
echo "deps: installed$missing"
