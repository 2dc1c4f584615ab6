# Gatehouse build. A plain Makefile: one file, the tree is globbed so a new
# source file needs no edit here, and every target a developer uses is listed
# below. See README.md "For developers".
#
#   make            release build            -> build/release/gatehouse
#   make debug      ASan+UBSan debug build   -> build/debug/gatehouse
#   make run        install deps, build, run on the built-in default config
#   make test       install deps, build, run unit + integration tests
#   make fuzz       build and run every libFuzzer target for FUZZ_SECONDS
#   make bench      benchmarks against the peers (not part of test or CI)
#   make install    binary, systemd unit, logrotate file, a first config

CC       ?= cc
PKGS     := yaml-0.1 libcares openssl libnghttp2 zlib libbrotlienc \
            libbrotlidec libzstd libseccomp hiredis
BUILD    ?= release
O        := build/$(BUILD)

WARN     := -Wall -Wextra -Wshadow -Wundef -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Werror
BASEFLAGS := -std=c17 -D_GNU_SOURCE -Isrc -pthread $(WARN) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcrypt -pthread -lm

ifeq ($(BUILD),debug)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
         -fno-sanitize-recover=undefined -DGH_DEBUG=1
  LDOPT := -fsanitize=address,undefined
else
  OPT := -O2 -g
  LDOPT :=
endif
# POOL_EMULATE=1: every arena allocation is its own malloc, so ASan sees
# overflows between allocations (STYLE.md, Varnish cache_ws_emu.c).
ifeq ($(POOL_EMULATE),1)
  OPT += -DPOOL_EMULATE=1
endif
CFLAGS   += $(BASEFLAGS) $(OPT)
LDFLAGS  += $(LDOPT)

SRCS     := $(shell find src -name '*.c' | sort)
LIBSRCS  := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:%.c=$(O)/%.o)
LIBOBJS  := $(LIBSRCS:%.c=$(O)/%.o)
UNITSRCS := $(shell find tests/unit -name '*_test.c' 2>/dev/null | sort)
UNITBINS := $(UNITSRCS:%.c=$(O)/%)

.PHONY: all debug release run test unit integration fuzz fuzz-build bench \
        deps clean check-src format clang-check unit-build install

all: $(O)/gatehouse

debug:
	$(MAKE) BUILD=debug all
release:
	$(MAKE) BUILD=release all

$(O)/gatehouse: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(O)/libgatehouse.a: $(LIBOBJS)
	rm -f $@ && ar rcs $@ $^

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/tests/unit/%: tests/unit/%.c $(O)/libgatehouse.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(O)/libgatehouse.a \
	    $(LIBS) -lcmocka

unit-build: $(UNITBINS)

-include $(OBJS:.o=.d)

deps:
	@scripts/deps.sh test

run:
	@scripts/deps.sh build
	$(MAKE) BUILD=release all
	build/release/gatehouse

# The test suite: debug (ASan+UBSan) binary for everything, plus the release
# binary for the memory-ceiling test (ASan's shadow memory would swamp RSS).
# FUZZ_SECONDS=N (set by .ci/run) also runs each fuzzer N seconds as a test.
test:
	@scripts/deps.sh test
	$(MAKE) BUILD=debug all unit-build
	$(MAKE) BUILD=release all
	$(MAKE) clang-check
	scripts/checksrc.sh
	if [ -n "$$FUZZ_SECONDS" ]; then $(MAKE) fuzz-build; fi
	scripts/test.sh

# The same warnings must hold with clang: build everything with it too.
clang-check:
	$(MAKE) BUILD=release CC=clang O=build/clang all

unit:
	$(MAKE) BUILD=debug all unit-build
	scripts/test.sh unit

integration:
	$(MAKE) BUILD=debug all
	$(MAKE) BUILD=release all
	scripts/test.sh integration

# ---- fuzzing (clang + libFuzzer) ----
FUZZ_SECONDS ?= 60
FUZZSRCS := $(wildcard fuzz/fuzz_*.c)
FZ       := build/fuzz
FZFLAGS  := $(BASEFLAGS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -DGH_DEBUG=1
FZLIBOBJS := $(LIBSRCS:%.c=$(FZ)/%.o)

$(FZ)/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FZFLAGS) -MMD -MP -c -o $@ $<

$(FZ)/fuzz_%: fuzz/fuzz_%.c $(FZLIBOBJS)
	clang $(BASEFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz-build: $(FUZZSRCS:fuzz/%.c=$(FZ)/%)

fuzz: deps
	$(MAKE) fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS)

-include $(FZLIBOBJS:.o=.d)

# The dashboard page is assembled into dashboard.o (.incbin).
$(O)/src/admin/dashboard.o $(FZ)/src/admin/dashboard.o: src/admin/dashboard.html

bench:
	@scripts/deps.sh bench
	$(MAKE) BUILD=release all
	bench/run.sh

# ---- install (DESTDIR for packaging; the paths are written into the unit) ----
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
DOCDIR     ?= $(PREFIX)/share/doc/gatehouse
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system

install: $(O)/gatehouse
	install -D -m 0755 $(O)/gatehouse $(DESTDIR)$(SBINDIR)/gatehouse
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@DOCDIR@|$(DOCDIR)|g' examples/systemd/gatehouse.service \
	    > $(DESTDIR)$(UNITDIR)/gatehouse.service
	install -m 0644 examples/systemd/logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/gatehouse
	test -e $(DESTDIR)$(SYSCONFDIR)/gatehouse/gatehouse.yaml || \
	    install -D -m 0644 examples/systemd/gatehouse.yaml \
	        $(DESTDIR)$(SYSCONFDIR)/gatehouse/gatehouse.yaml
	install -d -m 0755 $(DESTDIR)$(DOCDIR)
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

check-src:
	@scripts/checksrc.sh

clean:
	rm -rf build
