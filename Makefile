# flashwise build. `make` builds the tools, `make check` runs every test
# (unit, command-line, integration) and then the unit suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Variables: BUILD (object folder), SAN=1 (sanitizer build), WERROR=0 (warnings
# not fatal while hacking), PREFIX, DESTDIR.

.DEFAULT_GOAL := all

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
DATADIR  ?= $(PREFIX)/share/flashwise
MANDIR   ?= $(PREFIX)/share/man
CC       ?= cc
PKG_CONFIG ?= pkg-config
WERROR   ?= 1
SAN      ?= 0

ifeq ($(SAN),1)
BUILD    ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1
else
BUILD    ?= build
SANFLAGS :=
OPT      := -O2
endif

PKGS     := ncursesw libserialport libcrypto zlib
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
INI_CFLAGS := -I/usr/include/iniparser
INI_LIBS   := -liniparser

# Messages are cut to their buffers on purpose, so truncation is not a warning.
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla \
	-Wno-format-truncation
ifeq ($(WERROR),1)
WARN     += -Werror
endif

CPPFLAGS += -Iinclude -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
	-DFW_DATADIR='"$(DATADIR)"'
CFLAGS   ?= -g $(OPT)
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) $(INI_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) $(INI_LIBS)

# Every .c below src/ except the two programs' mains and the simulator goes
# into one static library that the programs and the tests link against.
LIB_SRC  := $(sort $(wildcard src/core/*.c src/store/*.c src/transport/*.c src/engine/*.c \
	src/dev/*.c src/ui/*.c src/cmd/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libflashwise.a
APP_OBJ  := $(BUILD)/src/main.o
SIM_SRC  := $(sort $(wildcard src/sim/*.c))
SIM_OBJ  := $(SIM_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))

# The test-only LD_PRELOAD shim that lets libserialport open a pty with
# (simulated) modem lines, and the program that runs the libserialport
# backend under it (it preloads the shim itself). The shim is built without
# sanitizers: it is loaded ahead of the ASan runtime.
SHIM_SO   := $(BUILD)/tests/pty_modem_shim.so
SHIM_TEST := $(BUILD)/tests/test_transport_shim
UNIT_BIN  += $(SHIM_TEST)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)

PROGS    := flashwise $(if $(SIM_SRC),flashwise-sim)

# main.o has DATADIR compiled in: rebuild it whenever PREFIX/DATADIR changes,
# or `make && make install PREFIX=/usr` would install a binary that looks
# for its profiles under the old prefix.
DATADIR_STAMP := $(BUILD)/datadir.txt
$(shell mkdir -p $(BUILD) && (echo '$(DATADIR)' | cmp -s - $(DATADIR_STAMP) || \
	echo '$(DATADIR)' > $(DATADIR_STAMP)))
$(APP_OBJ): $(DATADIR_STAMP)


# Keep test and bench objects: they are intermediates, and deleting them
# would put make's "rm" lines after the test summary.
.SECONDARY:

.PHONY: demo all check check-unit check-cli check-integration check-e2e check-asan unit-bins bench install \
	uninstall clean deps man-check

all: $(PROGS)

ifeq ($(SAN),1)
# The sanitizer build keeps its programs inside its own folder.
flashwise: $(BUILD)/flashwise
flashwise-sim: $(BUILD)/flashwise-sim
else
# Copy then rename: a running copy (a simulator left open) is replaced, not
# written into ("text file busy").
flashwise: $(BUILD)/flashwise
	cp $< $@.tmp && mv -f $@.tmp $@
flashwise-sim: $(BUILD)/flashwise-sim
	cp $< $@.tmp && mv -f $@.tmp $@
endif

$(BUILD)/flashwise: $(APP_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/flashwise-sim: $(SIM_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/lib -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TESTLIB_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(SHIM_SO): tests/shim/pty_modem_shim.c
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

$(SHIM_TEST): $(BUILD)/tests/shim/test_transport_shim.o $(TESTLIB_OBJ) $(LIB) | $(SHIM_SO)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(CMOCKA_LIBS) $(LDLIBS)

# The simulated Arduino Uno for the STK500v1 tests (tests/avr/): simavr
# running the real Arduino bootloaders, which are built from the Debian
# arduino-core-avr sources at build time (third-party firmware is never
# committed). Test-only: it links libsimavr, never libflashwise.
SIMAVR_CFLAGS := $(patsubst -I%,-isystem %,$(shell $(PKG_CONFIG) --cflags simavr 2>/dev/null))
SIMAVR_LIBS   := $(shell $(PKG_CONFIG) --libs simavr 2>/dev/null)
UNO_SIM    := $(BUILD)/tests/uno-sim
AVR_STAMP  := $(BUILD)/avr/images.stamp

$(UNO_SIM): tests/avr/uno_sim.c
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) $(SIMAVR_CFLAGS) -o $@ $< $(LDFLAGS) $(SIMAVR_LIBS) -lm

# optiboot_atmega328.hex, ATmegaBOOT_168_atmega328.hex and uno_app.hex
$(AVR_STAMP): tests/avr/build-bootloaders.sh tests/avr/uno_app.c
	sh tests/avr/build-bootloaders.sh $(BUILD)/avr
	@touch $@

unit-bins: $(UNIT_BIN)

# The test command of the README. Sanitizer pass last, on the unit suite.
check: all check-unit check-cli check-integration check-e2e helper-check check-asan

check-unit: all unit-bins
	@sh tests/run-tests.sh unit $(UNIT_BIN)

check-cli: all
	@sh tests/run-tests.sh cli $(sort $(wildcard tests/cli/test_*.sh))

# flashwise against flashwise-sim over ptys; the shim gives them DTR/RTS.
check-integration: all $(SHIM_SO) $(UNO_SIM) $(AVR_STAMP)
	@SHIM=$(SHIM_SO) UNO_SIM=$(UNO_SIM) AVR_DIR=$(BUILD)/avr sh tests/run-tests.sh integration \
		$(sort $(wildcard tests/integration/test_*.sh))

# The wizard's screens in tmux at 80x24, compared with golden captures.
check-e2e: all $(SHIM_SO)
	@SHIM=$(SHIM_SO) sh tests/run-tests.sh e2e $(sort $(wildcard tests/e2e/test_*.sh))

# The unit suite, then the wizard end to end (engine, line and batch mode,
# resume, restore, signals), under AddressSanitizer + UBSan. The modem-line
# shim is preloaded ahead of the ASan runtime, hence verify_asan_link_order=0.
check-asan: $(SHIM_SO)
	@$(MAKE) --no-print-directory SAN=1 BUILD=build-asan unit-bins all
	@FW=build-asan/flashwise FWSIM=build-asan/flashwise-sim SHIM=$(SHIM_SO) \
		ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 \
		sh tests/run-tests.sh wizard-asan tests/integration/test_wizard.sh
	@FW_SAN=1 sh tests/run-tests.sh unit-asan $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%) \
		build-asan/tests/test_transport_shim

bench: all $(BENCH_BIN) $(SHIM_SO) $(UNO_SIM) $(AVR_STAMP)
	@BUILD=$(BUILD) sh bench/run.sh

# The README's first command: the wizard on flashwise-sim with a sample
# firmware, all nine steps without hardware. Job records go to the usual
# state folder.
demo: all
	./flashwise demo

deps:
	@sh scripts/deps.sh

install: $(PROGS:%=$(BUILD)/%)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/profiles \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(PROGS:%=$(BUILD)/%) $(DESTDIR)$(BINDIR)/
	install -m 0644 profiles/*.ini $(DESTDIR)$(DATADIR)/profiles/
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGS))
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(DESTDIR)$(MANDIR)/man1/flashwise*.1 $(DESTDIR)$(MANDIR)/man5/flashwise*.5

clean:
	rm -rf build build-* flashwise flashwise-sim

# ---- flashwise's ESP8266 RAM helper (src/helper/) ----
# The portable protocol logic also runs on the host: flashwise-sim serves
# the helper protocol with it once the driver has uploaded the helper, and
# test_helper_proto tests it.
HELPER_HOST_OBJ := $(BUILD)/src/helper/helper_proto.o
$(BUILD)/flashwise-sim: $(HELPER_HOST_OBJ)
$(BUILD)/tests/test_helper_proto: $(HELPER_HOST_OBJ)

# The lx106 build that the driver uploads is embedded as include/helper_blob.h
# (committed: building flashwise needs no cross compiler). `make helper`
# rebuilds it; `make helper-check` (part of `make check` where the cross
# compiler is installed) rebuilds it into BUILD/helper and compares byte for
# byte.
XTENSA_PREFIX ?= xtensa-lx106-elf-
HELPER_CC  := $(XTENSA_PREFIX)gcc
HELPER_OUT := $(BUILD)/helper
HELPER_LX_SRC := src/helper/lx106/start.S src/helper/lx106/main.c src/helper/helper_proto.c
HELPER_CFLAGS := -std=c11 $(WARN) -Os -mlongcalls -ffreestanding -fno-common \
	-ffunction-sections -fdata-sections -Iinclude

$(HELPER_OUT)/helper.ld: src/helper/lx106/helper.ld.S include/helper_proto.h
	@mkdir -p $(@D)
	$(HELPER_CC) -E -P -x c -Iinclude -o $@ $<

$(HELPER_OUT)/helper.elf: $(HELPER_LX_SRC) include/helper_proto.h $(HELPER_OUT)/helper.ld
	$(HELPER_CC) $(HELPER_CFLAGS) -nostdlib -Wl,--gc-sections -T $(HELPER_OUT)/helper.ld \
		-o $@ $(HELPER_LX_SRC)

$(HELPER_OUT)/mkblob: src/helper/mkblob.c include/helper_proto.h
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -O2 -Iinclude $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS)

$(HELPER_OUT)/helper_blob.h: $(HELPER_OUT)/helper.elf $(HELPER_OUT)/mkblob
	$(HELPER_OUT)/mkblob $< $@

.PHONY: helper helper-check
helper: $(HELPER_OUT)/helper_blob.h
	cp $< include/helper_blob.h

helper-check:
	@if command -v $(HELPER_CC) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(HELPER_OUT)/helper_blob.h >/dev/null && \
		if cmp -s $(HELPER_OUT)/helper_blob.h include/helper_blob.h; then \
			echo "helper: include/helper_blob.h matches a fresh lx106 build"; \
		else \
			echo "helper: include/helper_blob.h differs from a fresh lx106 build: run make helper and commit it" >&2; \
			exit 1; \
		fi; \
	else \
		echo "helper: $(HELPER_CC) not installed: using the committed include/helper_blob.h unchecked"; \
	fi


-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
