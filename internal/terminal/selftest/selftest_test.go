package selftest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/devicetest"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
	"github.com/tuanju/tuanju/media"
)

func run1(t *testing.T, c selftest.Check) (selftest.Result, string) {
	t.Helper()
	var out bytes.Buffer
	rep := selftest.Run(context.Background(), []selftest.Check{c}, &out)
	if len(rep.Results) != 1 {
		t.Fatalf("%d results", len(rep.Results))
	}
	return rep.Results[0], out.String()
}

func expect(t *testing.T, r selftest.Result, status selftest.Status, detail string) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Detail, detail) {
		t.Errorf("%s = %s %q, want %s with %q", r.Check, r.Status, r.Detail, status, detail)
	}
}

func TestButtonCheck(t *testing.T) {
	tests := []struct {
		name        string
		interactive bool
		startDown   bool
		press       bool
		openErr     error
		want        selftest.Status
		detail      string
	}{
		{"non-interactive reads idle", false, false, false, nil, selftest.Skipped, "reads released"},
		{"stuck", false, true, false, nil, selftest.Fail, "reads pressed with nobody pressing"},
		{"pressed in time", true, false, true, nil, selftest.Pass, "press seen"},
		{"never pressed", true, false, false, nil, selftest.Fail, "no press within"},
		{"absent", false, false, false, fmt.Errorf("no line: %w", device.ErrAbsent), selftest.Absent, "no line"},
		{"broken", false, false, false, errors.New("EBUSY"), selftest.Fail, "EBUSY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a bubble the technician's press comes at its moment
			// however loaded the machine is.
			synctest.Test(t, func(t *testing.T) {
				line := devicetest.NewButtonLine("CALL_BUTTON", true)
				if tt.startDown {
					line.Press()
				}
				c := selftest.ButtonCheck(selftest.ButtonOptions{
					Where: "CALL_BUTTON", Interactive: tt.interactive, Wait: 700 * time.Millisecond,
					Open: func() (selftest.Button, func() error, error) {
						if tt.openErr != nil {
							return nil, nil, tt.openErr
						}
						b, err := device.NewButton(line.Pin, device.ButtonOpts{ActiveLow: true})
						if err != nil {
							return nil, nil, err
						}
						if tt.press {
							go func() { // the technician, once asked
								time.Sleep(150 * time.Millisecond)
								line.Press()
								time.Sleep(150 * time.Millisecond)
								line.Release()
							}()
						}
						return b, b.Close, nil
					},
				})
				r, out := run1(t, c)
				expect(t, r, tt.want, tt.detail)
				if tt.interactive && !strings.Contains(out, "press and release the call button") {
					t.Errorf("technician not asked to press:\n%s", out)
				}
			})
		})
	}
}

func TestLEDCheck(t *testing.T) {
	stuckLow := &gpiotest.Pin{N: "LED"}
	tests := []struct {
		name   string
		line   func(p *devicetest.RecordingPin) selftest.LEDLine
		want   selftest.Status
		detail string
		writes []gpio.Level
	}{
		{"read back", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Pin: p, Where: "LED_GREEN", ReadBack: func() (gpio.Level, error) { return p.Level(), nil }}
		}, selftest.Pass, "on/off read back High/Low", []gpio.Level{gpio.High, gpio.Low}},
		{"active low", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Pin: p, Where: "LED_GREEN", ActiveLow: true, ReadBack: func() (gpio.Level, error) { return p.Level(), nil }}
		}, selftest.Pass, "read back Low/High", []gpio.Level{gpio.Low, gpio.High}},
		{"no read-back", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Pin: p, Where: "gpiochip0:227"}
		}, selftest.Pass, "look: was it lit?", []gpio.Level{gpio.High, gpio.Low}},
		{"read-back unavailable", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Pin: p, Where: "x", ReadBack: func() (gpio.Level, error) { return false, os.ErrPermission }}
		}, selftest.Pass, "no read-back: permission denied", []gpio.Level{gpio.High, gpio.Low}},
		{"line does not follow", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Pin: p, Where: "LED_RED", ReadBack: func() (gpio.Level, error) { return stuckLow.Read(), nil }}
		}, selftest.Fail, "drove High, the line reads Low", []gpio.Level{gpio.High, gpio.Low}},
		{"write fails", func(p *devicetest.RecordingPin) selftest.LEDLine {
			p.FailWith(errors.New("EIO"))
			return selftest.LEDLine{Pin: p, Where: "LED_RED"}
		}, selftest.Fail, "EIO", nil},
		{"absent", func(p *devicetest.RecordingPin) selftest.LEDLine {
			return selftest.LEDLine{Err: fmt.Errorf("no chip: %w", device.ErrAbsent)}
		}, selftest.Absent, "no chip", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := devicetest.NewRecordingPin("LED")
			r, _ := run1(t, selftest.LEDCheck(device.Green, tt.line(p), 10*time.Millisecond))
			expect(t, r, tt.want, tt.detail)
			if tt.writes != nil && fmt.Sprint(p.Writes()) != fmt.Sprint(tt.writes) {
				t.Errorf("writes %v, want %v", p.Writes(), tt.writes)
			}
		})
	}
}

func TestFittedAbsentFails(t *testing.T) {
	r, _ := run1(t, selftest.CameraCheck(true, func(context.Context) (selftest.Frame, error) {
		return selftest.Frame{}, fmt.Errorf("v4l2: %w", media.ErrNoCamera)
	}))
	expect(t, r, selftest.Fail, "the board profile says it is fitted")
	r, _ = run1(t, selftest.CameraCheck(false, func(context.Context) (selftest.Frame, error) {
		return selftest.Frame{}, fmt.Errorf("v4l2: %w", media.ErrNoCamera)
	}))
	expect(t, r, selftest.Absent, "no camera")
	r, _ = run1(t, selftest.MicrophoneCheck(false, nil))
	expect(t, r, selftest.Absent, selftest.NoAudioDriver)
	r, _ = run1(t, selftest.SpeakerCheck(true, nil))
	expect(t, r, selftest.Fail, selftest.NoAudioDriver)
}

type fakeMic struct{ rms, peak float64 }

func (m fakeMic) Level(context.Context, time.Duration) (float64, float64, error) {
	return m.rms, m.peak, nil
}

type fakeSpeaker struct{ err error }

func (s fakeSpeaker) Tone(context.Context, float64, time.Duration) error { return s.err }

func TestAudioChecks(t *testing.T) {
	r, _ := run1(t, selftest.MicrophoneCheck(true, fakeMic{-45, -20}))
	expect(t, r, selftest.Pass, "RMS -45.0 dBFS")
	r, _ = run1(t, selftest.MicrophoneCheck(true, fakeMic{-200, -200}))
	expect(t, r, selftest.Fail, "digital silence")
	r, _ = run1(t, selftest.SpeakerCheck(true, fakeSpeaker{}))
	expect(t, r, selftest.Pass, "440 Hz")
	r, _ = run1(t, selftest.SpeakerCheck(true, fakeSpeaker{errors.New("xrun")}))
	expect(t, r, selftest.Fail, "xrun")
}

func TestCameraCheck(t *testing.T) {
	r, _ := run1(t, selftest.CameraCheck(true, func(context.Context) (selftest.Frame, error) {
		return selftest.Frame{Width: 320, Height: 240, MeanLuma: 90, EncodedBytes: 4000, Announced: "in-call light on"}, nil
	}))
	expect(t, r, selftest.Pass, "one 320x240 frame, mean luma 90, first H.264 frame 4000 bytes; in-call light on")
	r, _ = run1(t, selftest.CameraCheck(true, func(context.Context) (selftest.Frame, error) {
		return selftest.Frame{}, errors.New("VIDIOC_STREAMON: EIO")
	}))
	expect(t, r, selftest.Fail, "EIO")
	r, _ = run1(t, selftest.CameraCheck(false, nil))
	expect(t, r, selftest.Absent, "camera = none")
}

func TestScreenCheck(t *testing.T) {
	disp, err := fbtest.New(320, 240, fb.VideoRange)
	if err != nil {
		t.Fatal(err)
	}
	open := func(d fb.Display) func() (fb.Display, func() error, error) {
		return func() (fb.Display, func() error, error) { return d, func() error { return nil }, nil }
	}
	r, _ := run1(t, selftest.ScreenCheck(false, "fbtest", open(disp)))
	expect(t, r, selftest.Pass, "320x240: four bars drawn and read back")
	if disp.Frames() != 1 {
		t.Errorf("%d frames drawn, want 1", disp.Frames())
	}

	blank, _ := fbtest.New(320, 240, fb.VideoRange)
	r, _ = run1(t, selftest.ScreenCheck(false, "fbtest", open(noDraw{blank})))
	expect(t, r, selftest.Fail, "bar 1 reads")

	r, _ = run1(t, selftest.ScreenCheck(true, "/dev/fb1", func() (fb.Display, func() error, error) {
		return nil, nil, fmt.Errorf("open /dev/fb1: %w", os.ErrNotExist)
	}))
	expect(t, r, selftest.Fail, "fitted")
	r, _ = run1(t, selftest.ScreenCheck(false, "", nil))
	expect(t, r, selftest.Absent, "no screen")
}

// noDraw is a display whose Draw does nothing.
type noDraw struct{ *fbtest.Display }

func (noDraw) Draw(image.Image) error { return nil }

func TestNetworkCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	lookup := func(_ context.Context, host string) ([]string, error) {
		if host == "rv.test" {
			return []string{"127.0.0.1"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	tests := []struct {
		url    string
		want   selftest.Status
		detail string
	}{
		{"ws://127.0.0.1:" + port + "/ws", selftest.Pass, "no DNS (an address); TCP 127.0.0.1:" + port + " connected"},
		{"wss://rv.test:" + port + "/ws", selftest.Pass, "DNS rv.test → 127.0.0.1"},
		{"wss://nowhere.test/ws", selftest.Fail, "DNS nowhere.test"},
		{"ws://" + closedAddr + "/ws", selftest.Fail, "connection refused"},
		{"::bad", selftest.Fail, "no host"},
	}
	for _, tt := range tests {
		r, _ := run1(t, selftest.NetworkCheck(selftest.NetworkOptions{ServerURL: tt.url, Lookup: lookup, Timeout: 2 * time.Second}))
		expect(t, r, tt.want, tt.detail)
	}
}

func TestStorageCheck(t *testing.T) {
	dir := t.TempDir()
	r, _ := run1(t, selftest.StorageCheck(filepath.Join(dir, "sub", "terminal.db"), 1))
	expect(t, r, selftest.Pass, "writable")
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".selftest-*")); len(left) != 0 {
		t.Errorf("test file left behind: %v", left)
	}
	r, _ = run1(t, selftest.StorageCheck(filepath.Join(dir, "terminal.db"), 1<<62))
	expect(t, r, selftest.Fail, "below")
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o500)
	if os.Getuid() != 0 { // root writes anyway
		r, _ = run1(t, selftest.StorageCheck(filepath.Join(ro, "terminal.db"), 1))
		expect(t, r, selftest.Fail, "not writable")
	}
}

func TestClockCheck(t *testing.T) {
	at := func(y int) func() time.Time {
		return func() time.Time { return time.Date(y, 6, 1, 12, 0, 0, 0, time.UTC) }
	}
	synced := func(ok bool, err error) func() (bool, error) { return func() (bool, error) { return ok, err } }
	tests := []struct {
		now    func() time.Time
		synced func() (bool, error)
		want   selftest.Status
		detail string
	}{
		{at(2026), synced(true, nil), selftest.Pass, "2026-06-01 12:00:00 UTC; NTP synced"},
		{at(2026), synced(false, nil), selftest.Pass, "not NTP synced"},
		{at(1970), synced(false, nil), selftest.Fail, "the clock is wrong"},
		{at(2026), synced(false, errors.New("EPERM")), selftest.Pass, "NTP state unknown: EPERM"},
	}
	for _, tt := range tests {
		r, _ := run1(t, selftest.ClockCheck(selftest.ClockOptions{Now: tt.now, Synced: tt.synced}))
		expect(t, r, tt.want, tt.detail)
	}
	if _, err := selftest.KernelSynced(); err != nil {
		t.Errorf("adjtimex on this kernel: %v", err)
	}
}

func TestReportOutput(t *testing.T) {
	checks := []selftest.Check{
		{Name: "a", Run: func(context.Context, *selftest.T) (selftest.Status, string) { return selftest.Pass, "fine" }},
		{Name: "longer-name", Run: func(context.Context, *selftest.T) (selftest.Status, string) { return selftest.Absent, "not fitted" }},
		{Name: "panics", Run: func(context.Context, *selftest.T) (selftest.Status, string) { panic("driver bug") }},
	}
	var progress bytes.Buffer
	rep := selftest.Run(context.Background(), checks, &progress)
	if !rep.Failed() {
		t.Error("a panicking check must fail the report")
	}
	for _, want := range []string{"[ 1/3] a", "[ 3/3] panics", "fail: check panicked: driver bug"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[4], "FAIL") {
		t.Fatalf("table:\n%s", table.String())
	}
	col := strings.Index(lines[0], "STATUS")
	for _, l := range lines[1:4] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("STATUS column not aligned at %d in %q", col, l)
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []selftest.Result `json:"results"`
		Failed  bool              `json:"failed"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !back.Failed || len(back.Results) != 3 || back.Results[1].Status != selftest.Absent {
		t.Errorf("JSON round trip: %+v", back)
	}
}

func TestCancelledRunSkipsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	checks := []selftest.Check{
		{Name: "first", Run: func(context.Context, *selftest.T) (selftest.Status, string) { cancel(); return selftest.Pass, "" }},
		{Name: "second", Run: func(context.Context, *selftest.T) (selftest.Status, string) { return selftest.Pass, "" }},
	}
	rep := selftest.Run(ctx, checks, nil)
	if rep.Results[1].Status != selftest.Skipped {
		t.Errorf("after ^C the remaining checks should be skipped: %+v", rep.Results[1])
	}
}
