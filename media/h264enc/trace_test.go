package h264enc_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/h264enc/h264enctest"
)

// traceChild makes the test binary the child of TestNoOpenH264Trace.
const traceChild = "TUANJU_OPENH264_TRACE_CHILD"

// TestNoOpenH264Trace: openh264 writes "[OpenH264] ..." trace lines
// straight to the process's stderr from C, where they land among terminald's
// logs and the demo's output, unless the encoder and the decoder are told
// WELS_LOG_QUIET (h264enc, h264dec). The child encodes a few pictures and
// decodes them and damaged units (which, at openh264's default level, print
// warnings); the parent reads the child's own stderr, which a Go test cannot
// capture in-process.
func TestNoOpenH264Trace(t *testing.T) {
	if os.Getenv(traceChild) == "1" {
		encodeAndDecode(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoOpenH264Trace$", "-test.count=1")
	cmd.Env = append(os.Environ(), traceChild+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte("PASS")) {
		t.Fatalf("the child did not run the codecs:\n%s", stdout.String())
	}
	for _, out := range [][]byte{stdout.Bytes(), stderr.Bytes()} {
		if bytes.Contains(out, []byte("[OpenH264]")) {
			t.Fatalf("openh264 traced to the process's output:\n%s", out)
		}
	}
}

func encodeAndDecode(t *testing.T) {
	const w, h = 176, 144
	p, _ := h264enc.NewParams()
	enc, err := p.BuildVideoEncoder(h264enctest.Pictures(w, h), prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: 15}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var idr []byte
	for i := range 4 {
		au, release, err := enc.Read()
		if err != nil {
			t.Fatal(err)
		}
		au = bytes.Clone(au)
		release()
		if i == 0 {
			idr = au
		}
		if _, err := dec.Decode(au); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	// Damaged input: a lone P slice on a fresh decoder, and a truncated IDR.
	bad, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	failed := 0
	for _, au := range [][]byte{{0, 0, 0, 1, 0x41, 0x9a, 0x00, 0x10, 0x20}, idr[:len(idr)*2/3]} {
		if _, err := bad.Decode(au); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no damaged unit was refused: the check provoked no warning")
	}
}
