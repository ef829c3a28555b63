# Tuanju. `make demo` runs the whole system locally; `make test` runs every test.
GO       ?= go
BIN      := bin
# Static binaries: cgo is needed for the bundled openh264/opus libraries and
# the V4L2 camera driver; netgo/osusergo keep glibc's NSS out.
STATIC   := -trimpath -tags netgo,osusergo -ldflags '-s -w -linkmode external -extldflags -static'
TESTFLAGS ?= -race -count=1 -timeout 25m
export CGO_ENABLED = 1

.PHONY: all build demo test vet lint bench fuzz vmtest clean

all: build

build:
	mkdir -p $(BIN)
	$(GO) build $(STATIC) -o $(BIN)/ ./cmd/...

# Starts the rendezvous server and one simulated terminal on 127.0.0.1, pairs
# them, and prints the device panel's and the parent's page's URLs.
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
	GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test $(TESTFLAGS) ./...
	$(MAKE) vmtest

# Benchmarks: figures go to bench/results.txt (shown in README.md).
bench:
	bench/run

# Kernel-in-the-loop: Debian's kernel in qemu (TCG) with gpio-sim, softdog,
# vivid and snd-aloop, running the real GPIO, watchdog, V4L2 and ALSA code
# paths against the kernel's drivers; see tests/vm/README.md.
# Part of `make test`; the first run downloads and caches ~250 MB.
vmtest:
	tests/vm/fetch
	mkdir -p $(BIN)
	$(GO) test -c -tags netgo,osusergo,vmtest -ldflags '-linkmode external -extldflags -static' -o $(BIN)/vmcheck.test ./tests/vm
	tests/vm/run -g -m 'softdog soft_noboot=1' -m 'vivid n_devs=2 node_types=0x1,0x1 num_inputs=1,1 input_types=0x0,0x2' -m 'snd-aloop index=0 id=Loopback pcm_substreams=8' $(BIN)/vmcheck.test

# Each fuzz target for FUZZTIME (their seeds also run in every `make test`).
FUZZTIME ?= 60s
fuzz:
	@for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); do \
	    echo "== $$t $$f"; GOFLAGS=-mod=readonly GOPROXY=off .ci/netns $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN) .demo
