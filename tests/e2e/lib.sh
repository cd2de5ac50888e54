# Helpers for the screen tests: the wizard runs in a private tmux server
# (its own socket, no user configuration, no status line) in an 80x24 window;
# the test types keys and reads the screen like a technician would.
#
#   tm_start NAME CMD...   runs CMD in window NAME (the command's exit code
#                          lands in $TMP/NAME.rc)
#   tm_keys NAME KEYS...   tmux send-keys (literal with -l as first key)
#   tm_screen NAME         the window's text, 24 lines
#   tm_wait NAME REGEX [S] until the screen matches (S seconds, default 60)
#   tm_golden NAME GOLDEN  the masked screen equals tests/e2e/golden/GOLDEN.txt
#                          (FW_E2E_UPDATE=1 rewrites the golden file instead)
#   tm_pid NAME            pid of flashwise in the window
. tests/integration/lib.sh

if ! command -v tmux >/dev/null 2>&1; then
	echo "tmux is missing: sh scripts/deps.sh installs it"
	echo "0 passed, 1 failed"
	exit 1
fi

TM_SOCK=fw-e2e-$$
GOLDEN_DIR=tests/e2e/golden
printf 'set -g status off\nset -g default-terminal screen\nset -g history-limit 0\n' >"$TMP/tmux.conf"
tm() { tmux -L "$TM_SOCK" -f "$TMP/tmux.conf" "$@"; }

tm_cleanup() {
	tm kill-server 2>/dev/null
	sim_cleanup
}
trap tm_cleanup EXIT

# The screens in plain ASCII, no colour: what the goldens hold.
export LANG=C LC_ALL=C NO_COLOR=1

tm_start() {
	local name=$1
	shift
	rm -f "$TMP/$name.rc"
	{
		printf '%q ' "$@"
		printf '\necho $? >%q\nexec sleep 600\n' "$TMP/$name.rc"
	} >"$TMP/$name.cmd"
	if tm has-session -t fw 2>/dev/null; then
		tm new-window -d -t fw -n "$name" "sh $TMP/$name.cmd"
	else
		tm new-session -d -s fw -x 80 -y 24 -n "$name" "sh $TMP/$name.cmd"
	fi
}

tm_keys() {
	local name=$1
	shift
	tm send-keys -t "fw:$name" "$@"
}

tm_screen() {
	tm capture-pane -p -t "fw:$1"
}

tm_wait() {
	local name=$1 re=$2 secs=${3:-60} i
	for i in $(seq $((secs * 10))); do
		tm_screen "$name" | grep -qE -- "$re" && return 0
		sleep 0.1
	done
	return 1
}

# tm_rc NAME [S]: waits for the command in window NAME to end; its exit code.
tm_rc() {
	local i
	for i in $(seq $((${2:-60} * 10))); do
		[ -s "$TMP/$1.rc" ] && { cat "$TMP/$1.rc"; return 0; }
		sleep 0.1
	done
	echo "timeout"
}

tm_pid() {
	pgrep -P "$(tm display-message -p -t "fw:$1" '#{pane_pid}')" -x flashwise | head -n 1
}

# What changes from run to run: paths, ports, job ids, times, rates, ETAs.
# Each is replaced by a placeholder of the same length, so the layout of
# the line around it is compared too.
tm_mask() {
	TMPPATH=$TMP perl -pe '
		sub fill { my ($s, $c) = @_; return $c x length($s); }
		my $t = quotemeta($ENV{TMPPATH});
		s{($t)}{fill($1, "T")}ge;
		s{(/tmp/flashwise-demo-[A-Za-z0-9]+)}{fill($1, "D")}ge;
		s{(demo-)([A-Za-z0-9]{6})(?=/)}{$1 . fill($2, "D")}ge;
		s{(/dev/pts/\d+)}{fill($1, "P")}ge;
		s{(\d{8}-\d{6})-}{fill($1, "J") . "-"}ge;
		s{(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)}{fill($1, "W")}ge;
		s{(\d+(\.\d+)? [KMG]?B/s)}{fill($1, "R")}ge;
		s{(ETA [0-9:-]+)}{fill($1, "E")}ge;
		s{ +$}{};
	'
}

tm_golden() {
	local name=$1 golden=$GOLDEN_DIR/$2.txt got
	got=$(tm_screen "$name" | tm_mask)
	if [ "${FW_E2E_UPDATE:-0}" = 1 ]; then
		mkdir -p "$GOLDEN_DIR"
		printf '%s\n' "$got" >"$golden"
		ok "golden $2 written"
	elif [ -f "$golden" ] && [ "$got" = "$(cat "$golden")" ]; then
		ok "screen $2 matches its golden capture"
	else
		bad "screen $2 matches its golden capture" \
			"$(printf '%s\n' "$got" | diff -u "$golden" - 2>&1 | head -40)"
	fi
}
