# Tuanju. `make demo` runs the whole system locally; `make test` runs every test.
GO       ?= go
BIN      := bin
# Static binaries: cgo is needed for openh264 and libopus (Debian's
# libopenh264-dev and libopus-dev, found through pkg-config; -static links
# their .a files, see media/h264dec) and the V4L2 camera driver;
# netgo/osusergo keep glibc's NSS out.
STATIC   := -trimpath -tags netgo,osusergo -ldflags '-s -w -linkmode external -extldflags -static'
TESTFLAGS ?= -race -count=1 -timeout 25m
export CGO_ENABLED = 1

# Cross builds for the boards: `make build-arm64` puts static binaries in
# bin/arm64/. cgo needs the target's C compiler, and its libstdc++ (inside,
# libopenh264 is C++), and the target's codec libraries, which pkg-config
# finds through the arm64 .pc files only: packages gcc-aarch64-linux-gnu
# g++-aarch64-linux-gnu libc6-dev-arm64-cross and, after `dpkg
# --add-architecture arm64`, libopenh264-dev:arm64 libopus-dev:arm64
# (tests/vm/fetch installs them when missing).
CROSS_amd64 := GOARCH=amd64
CROSS_arm64 := GOARCH=arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
	PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig

.PHONY: all build build-arm64 image image-sim demo test test-impair vet lint bench fuzz fuzz-smoke vmtest vmtest-amd64 vmtest-arm64 vmtest-call vmtest-call-amd64 vmtest-call-arm64 vmtest-powercut vmtest-powercut-amd64 vmtest-powercut-arm64 vmtest-powercut-smoke vmtest-image image-sim-boot soak test-loaded test-nats clean

all: build

build:
	mkdir -p $(BIN)
	$(GO) build $(STATIC) -o $(BIN)/ ./cmd/...

build-arm64:
	mkdir -p $(BIN)/arm64
	$(CROSS_arm64) $(GO) build $(STATIC) -o $(BIN)/arm64/ ./cmd/...

# The terminal's OS image with Buildroot 2026.02.3 (buildroot/README.md):
# needs network access (Buildroot downloads its sources) and a Buildroot
# checkout, e.g. `make image BOARD=rpi_zero_2w BR=~/buildroot-2026.02.3
# PROGRAMME_KEY=programme/signing.pub`. BOARD is a buildroot/configs/
# tuanju_<BOARD>_defconfig: rpi_zero_2w, orangepi_zero2w, qemu_aarch64_virt.
# The disk image is $(BR_OUT)/images/disk.img.
BOARD ?= qemu_aarch64_virt
BR ?=
BR_OUT ?= $(abspath out/buildroot-$(BOARD))
PROGRAMME_KEY ?=
image: build-arm64
	@test -n "$(BR)" || { echo "make image: BR=<a Buildroot $(BR_VERSION) checkout> (see buildroot/README.md)" >&2; exit 2; }
	$(MAKE) -C $(BR) BR2_EXTERNAL=$(abspath buildroot) O=$(BR_OUT) tuanju_$(BOARD)_defconfig
	$(if $(PROGRAMME_KEY),$(BR)/utils/config --file $(BR_OUT)/.config --set-str BR2_PACKAGE_TERMINALD_PROGRAMME_KEY $(abspath $(PROGRAMME_KEY)) && $(MAKE) -C $(BR) O=$(BR_OUT) olddefconfig)
	$(MAKE) -C $(BR) O=$(BR_OUT)
BR_VERSION := 2026.02.3

# The same disk (layout, overlay, init) without Buildroot's downloads, from
# Debian's arm64 kernel and busybox-static (tests/vm/fetch), e2fsprogs:arm64
# and the static terminald: buildroot/sim/mkimage. Output in $(SIM_OUT):
# disk.img, Image and initrd.gz (qemu's -kernel/-initrd), sizes.txt.
# PROGRAMME_KEY is the programme's public key the image verifies bundles with.
ARCH ?= arm64
SIM_OUT ?= out/image-sim-$(ARCH)
image-sim: build-arm64
	@test "$(ARCH)" = arm64 || { echo "make image-sim: ARCH=arm64 only (the boards' architecture)" >&2; exit 2; }
	TUANJU_PROGRAMME_KEY=$(if $(PROGRAMME_KEY),$(abspath $(PROGRAMME_KEY))) buildroot/sim/mkimage $(SIM_OUT)

# Starts the rendezvous server and one simulated terminal on 127.0.0.1 (with a
# development program CA in .demo/), and prints the device panel's URL and the
# pairing link to open in Chrome.
demo: build
	$(BIN)/tuanju-demo -bin $(BIN) -data .demo

vet:
	$(GO) vet ./...

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: vet
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

# Tests run inside a fresh network namespace that has only a loopback
# interface (.ci/netns), so no test can send a packet off this machine.
# Everything is compiled first, outside, where the module proxy is reachable.
# Then the hardware paths against the real kernel in a VM (make vmtest).
test: lint
	$(GO) test $(TESTFLAGS) -run '^$$' ./... > /dev/null
	GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test $(TESTFLAGS) -skip '^(TestImpairedCall|TestBrowserImpairedCall)$$' ./...
	$(MAKE) test-impair
	$(MAKE) test-nats
	$(MAKE) fuzz-smoke
	$(MAKE) vmtest

# The impaired-call cells (media/impair_test.go) are real-time calls, two
# encoders, two decoders and a relay in one process: run alone, after the
# rest, and without the race detector (the same code runs under -race in
# the other media and e2e tests), so that they measure the network and not
# a machine busy with other packages' tests. TUANJU_IMPAIR=full runs every
# cell; BenchmarkImpairment reports their figures. Their Chromium rows
# (tests/e2e/browser_impair_test.go: the real terminal and the parent's
# page in headless Chromium, ~65 s) likewise.
test-impair:
	GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test -count=1 -timeout 10m -run '^TestImpairedCall$$' ./media
	GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test -count=1 -timeout 5m -run '^TestBrowserImpairedCall$$' ./tests/e2e

# Benchmarks: figures go to bench/results.txt (shown in README.md).
bench:
	bench/run

# Kernel-in-the-loop: Debian's kernel in qemu (TCG) with gpio-sim and the
# kernel's other simulators, running the terminal's real hardware code
# against the kernel's drivers, once per architecture: amd64, and arm64 (the
# boards' architecture, on qemu's virt machine with a Cortex-A53) with a
# cross-built test binary. See tests/vm/README.md. Part of `make test`; the
# first run downloads and caches ~300 MB. `make vmtest-arm64` runs one.
#
# Modules for the VMs, as tests/vm/run -m options: VM_MODULES on every
# architecture, VM_MODULES_<arch> only on that one (e.g. vfb exists only in
# the amd64 kernel); a test whose module is absent skips and says why.
VM_ARCHES ?= amd64 arm64
VM_MODULES := -m 'softdog soft_noboot=1' \
	-m 'vivid n_devs=2 node_types=0x1,0x1 num_inputs=1,1 input_types=0x0,0x2' \
	-m 'snd-aloop index=0 id=Loopback pcm_substreams=8' \
	-m veth -m sch_netem
VM_MODULES_amd64 := -m 'vfb vfb_enable=1 videomemorysize=4194304'
VM_MODULES_arm64 :=
# v4l2loopback (built out of tree per architecture, cached) is the H.264
# camera of tests/vm/vmh264_test.go at /dev/video10; 8 buffers so the writer
# never rewrites the one the reader is copying.
V4L2LOOPBACK_PARAMS := video_nr=10 max_buffers=8

vmtest: $(addprefix vmtest-,$(VM_ARCHES)) $(addprefix vmtest-call-,$(VM_ARCHES)) vmtest-powercut-smoke vmtest-image

vmtest-amd64 vmtest-arm64: vmtest-%:
	TUANJU_VM_ARCH=$* tests/vm/fetch
	mkdir -p $(BIN)/$*
	$(CROSS_$*) $(GO) test -c -tags netgo,osusergo,vmtest -ldflags '-linkmode external -extldflags -static' -o $(BIN)/$*/vmcheck.test ./tests/vm
	TUANJU_VM_ARCH=$* tests/vm/run -g -t 420 $(VM_MODULES) $(VM_MODULES_$*) \
	  -m "$$(TUANJU_VM_ARCH=$* tests/vm/v4l2loopback/build) $(V4L2LOOPBACK_PARAMS)" $(BIN)/$*/vmcheck.test

# The whole call with the kernel in the loop: the real static terminald in the
# VM (gpio-sim button and LEDs, vivid camera), the rendezvous server and
# headless Chromium on the host, the VM reaching only two forwards (see
# tests/vm/call). The host side runs in .ci/netns like the other tests.
# ~40 s per architecture; part of `make vmtest`. Without Chromium the host
# test skips (TUANJU_REQUIRE_BROWSER=1 makes that a failure, as in CI).
vmtest-call: vmtest-call-amd64

vmtest-call-amd64 vmtest-call-arm64: vmtest-call-%:
	TUANJU_VM_ARCH=$* tests/vm/fetch
	mkdir -p $(BIN)/$*
	$(CROSS_$*) $(GO) build $(STATIC) -o $(BIN)/$*/terminald ./cmd/terminald
	$(CROSS_$*) $(GO) test -c -tags netgo,osusergo,vmtest -ldflags '-linkmode external -extldflags -static' -o $(BIN)/$*/vmcheck.test ./tests/vm
	$(GO) test -c -o $(BIN)/vmcall.test ./tests/vm/call
	TUANJU_VM_ARCH=$* TUANJU_VMCALL_BIN=$(abspath $(BIN)/$*) \
	  .ci/netns $(BIN)/vmcall.test -test.v -test.count=1 -test.timeout 5m

# Real power cuts: the static terminald in the VM with its state on a virtio
# disk (ext4), qemu SIGKILLed during identity imports, pairing and call-log
# writes; every next boot must find the identity, the state file and the
# pairing whole and the unit ready (tests/vm/powercut, tests/vm/README.md
# "Power cuts"). PC_LIVES units of 4 cuts each (import, pairing, two
# call-log writes) after one uncut unit, PC_PARALLEL VMs at once: `make
# vmtest-powercut` is 100 cuts (not in `make test`: ~25 min with two VMs at
# once on 2 cores); `make vmtest` runs one unit (4 cuts, ~2.5 min) as
# vmtest-powercut-smoke.
PC_LIVES ?= 25
PC_PARALLEL ?= 2
PC_TIMEOUT ?= 120m
vmtest-powercut: vmtest-powercut-amd64

vmtest-powercut-smoke:
	$(MAKE) vmtest-powercut-amd64 PC_LIVES=1 PC_PARALLEL=1 PC_TIMEOUT=15m

vmtest-powercut-amd64 vmtest-powercut-arm64: vmtest-powercut-%:
	TUANJU_VM_ARCH=$* tests/vm/fetch
	mkdir -p $(BIN)/$*
	$(CROSS_$*) $(GO) build $(STATIC) -o $(BIN)/$*/terminald ./cmd/terminald
	$(CROSS_$*) $(GO) test -c -tags netgo,osusergo,vmtest -ldflags '-linkmode external -extldflags -static' -o $(BIN)/$*/vmcheck.test ./tests/vm
	$(GO) test -c -o $(BIN)/powercut.test ./tests/vm/powercut
	TUANJU_VM_ARCH=$* TUANJU_PC_BIN=$(abspath $(BIN)/$*) TUANJU_PC_LIVES=$(PC_LIVES) \
	  .ci/netns $(BIN)/powercut.test -test.v -test.count=1 -test.timeout $(PC_TIMEOUT) -test.parallel $(PC_PARALLEL)

# The terminal's OS image booted as a unit: make image-sim (cached: nothing
# is rebuilt when its inputs are unchanged) with a throwaway programme key
# made once beside it, each unit's signed bundle written by the flasher's
# code (provisioning/flash onto a card file), the image booted in
# qemu-system-aarch64 virt to ready (idle light on gpio-sim, registered at
# the rendezvous server on the host, paired by a press on the console), and
# its power cut during the identity import, pairing and call-log writes
# (tests/vm/imageboot, tests/vm/README.md "The image"). BOOT_LIVES units of
# 2 + BOOT_CALL_CUTS cuts; `make vmtest` runs one unit of 3 cuts (~1 min),
# `make soak` 25 units of 4 (100 cuts). Then a call from headless Chromium
# on the host to a booted unit (~30 s; skips without Chromium unless
# TUANJU_REQUIRE_BROWSER=1, as in CI), and units that reach the network only
# through their bundle's Wi-Fi (a simulated access point, ~50 s) and mobile
# data (a simulated USB modem, ~100 s), each with a wrong setting as the
# control.
BOOT_OUT ?= out/image-sim-boot
BOOT_LIVES ?= 1
BOOT_CALL_CUTS ?= 1
BOOT_PARALLEL ?= 1
BOOT_TIMEOUT ?= 20m
image-sim-boot:
	mkdir -p $(BOOT_OUT)
	test -s $(BOOT_OUT)/programme.key || openssl genpkey -algorithm ed25519 -out $(BOOT_OUT)/programme.key
	openssl pkey -in $(BOOT_OUT)/programme.key -pubout -out $(BOOT_OUT)/programme.pub
	$(MAKE) image-sim SIM_OUT=$(BOOT_OUT) PROGRAMME_KEY=$(BOOT_OUT)/programme.pub

vmtest-image: image-sim-boot
	$(GO) test -c -o $(BIN)/imageboot.test ./tests/vm/imageboot
	TUANJU_IMAGE_SIM=$(abspath $(BOOT_OUT)) TUANJU_BOOT_LIVES=$(BOOT_LIVES) TUANJU_BOOT_CALL_CUTS=$(BOOT_CALL_CUTS) \
	  .ci/netns $(BIN)/imageboot.test -test.run '^(TestImageBoot|TestImageCallFromChromium|TestImageJoinsWiFi|TestImageDialsMobileData)$$' -test.v -test.count=1 \
	  -test.timeout $(BOOT_TIMEOUT) -test.parallel $(BOOT_PARALLEL)

# The server's tests that go through its registry, on the NATS registry
# (nats_url embedded) instead of the bbolt file: pairing, calls and their
# log, restarts, resume, unpair, Web Push and the fleet (issue 16). The
# registry's contract itself runs on both in every go test
# (TestStoreRegistry, TestRegistryContract).
NATS_TESTS = TestTerminalLogin|TestPairing|TestPairingSecondParent|TestPendingPairing|TestPresence|TestCalls|TestCallOutcomes|TestMissedCallWhileParentOffline|TestStateSurvivesRestart|TestUnpairWithParentOnline|TestServerSecretsArePrivate|TestResumeAcrossRestart|TestResumeAfterSocketLoss|TestNotifySettings|TestPushWakesParent|TestFleetReport|TestFleetNeedsRepairOutlivesRestart|TestCallOnFullDisk
test-nats:
	TUANJU_REGISTRY=nats GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test -count=1 -timeout 10m -run '^($(NATS_TESTS))$$' ./internal/rendezvous

# The README's test command (.ci/run) on a fresh clone of HEAD beside LOAD
# CPU-bound processes, RUNS times in a row (tests/loaded's defaults: 2 and
# 3; make passes RUNS= and LOAD= given on its command line): CI machines are
# loaded, and the suite must pass on one (issue 11). ~35 min a run here.
test-loaded:
	tests/loaded

# Long runs that are not in make test: 100 power cuts of the booted image
# (25 units of 4 cuts, two VMs at once; with the 3 of make test's, over
# 100) and the 100 cuts of tests/vm/powercut (make vmtest-powercut).
# ~40 min on this 2-core machine.
soak:
	$(MAKE) vmtest-image BOOT_LIVES=25 BOOT_CALL_CUTS=2 BOOT_PARALLEL=2 BOOT_TIMEOUT=180m
	$(MAKE) vmtest-powercut

# Each fuzz target (every decoder of untrusted input: docs/protocol.md,
# "Limits") for FUZZTIME; `make test` runs each for FUZZSMOKE (fuzz-smoke).
# A target's seeds and testdata/fuzz corpus also run in every plain `go test`.
# Minimizing a new input is capped at FUZZMINIMIZE: the stateful targets
# (FuzzHub) would otherwise spend the whole run minimizing. .ci/fuzz says why
# a bare fuzztime deadline is run again rather than failed.
FUZZTIME ?= 60s
FUZZSMOKE ?= 3s
FUZZMINIMIZE ?= 5s
fuzz:
	.ci/fuzz $(FUZZTIME) $(FUZZMINIMIZE)

fuzz-smoke:
	.ci/fuzz $(FUZZSMOKE) 1s

clean:
	rm -rf $(BIN) .demo
