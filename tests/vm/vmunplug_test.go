//go:build vmtest

package vm_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
)

// platformDevice returns the platform device a /dev/videoN belongs to
// ("vivid.0": one device carries all of vivid's instances).
func platformDevice(t *testing.T, node string) string {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join("/sys/class/video4linux", filepath.Base(node), "device"))
	if err != nil {
		t.Fatalf("%s: %v: start the VM with %s", node, err, vividModules)
	}
	return filepath.Base(target)
}

// TestCameraUnpluggedThroughKernel pulls a camera out mid-call the way the
// kernel sees a USB camera go: the driver is unbound from the device while
// it streams (vivid's platform device, through sysfs: both of its video
// nodes go, as a USB camera's do). The capture reports
// the loss, the call can still be torn down (an ended mediadevices track
// used to make pc.Close hang), CameraPresent says it is gone, and after the
// device is bound again it is back.
func TestCameraUnpluggedThroughKernel(t *testing.T) {
	vmOnly(t)
	device := scalerDevice
	dev := platformDevice(t, device)
	cfg := media.CaptureConfig{Profile: media.LowData, Camera: media.SourceV4L2, CameraDevice: device,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	ctx, cancel := context.WithTimeout(t.Context(), cameraTimeout)
	defer cancel()
	capture, err := openCapture(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()

	api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	terminal, phone := mediatest.NewCall(t, api, capture.Tracks())
	recv := media.NewReceiver(media.ReceiverConfig{WriteRTCP: phone.WriteRTCP})
	var handlers sync.WaitGroup
	phone.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
		handlers.Add(1)
		defer handlers.Done()
		recv.Handle(tr, rr)
	})
	mediatest.Negotiate(t, terminal, phone)
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %v (stats %+v)", what, d, recv.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("pictures from the camera", 30*time.Second, func() bool { return recv.Stats().VideoFramesDecoded >= 10 })

	unbind := "/sys/bus/platform/drivers/vivid/unbind"
	if err := os.WriteFile(unbind, []byte(dev), 0); err != nil {
		t.Fatalf("unplug: %v", err)
	}
	t.Cleanup(func() { os.WriteFile("/sys/bus/platform/drivers/vivid/bind", []byte(dev), 0) })
	select {
	case err := <-capture.Lost():
		if !errors.Is(err, media.ErrSourceLost) {
			t.Errorf("Lost() = %v, want ErrSourceLost", err)
		}
		t.Logf("lost: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("capture did not report the camera's loss")
	}
	if err := media.CameraPresent(cfg); !errors.Is(err, media.ErrNoCamera) {
		t.Errorf("CameraPresent after unplug = %v, want ErrNoCamera", err)
	}
	// The call winds down as the terminal's does, and does not hang.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		capture.Detach(terminal)
		terminal.Close()
		capture.Close()
		phone.Close()
		handlers.Wait()
	}()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("closing the call hung after the camera was lost")
	}

	if err := os.WriteFile("/sys/bus/platform/drivers/vivid/bind", []byte(dev), 0); err != nil {
		t.Fatalf("plug back: %v", err)
	}
	waitFor("camera back", 10*time.Second, func() bool { return media.CameraPresent(cfg) == nil })
	if got := platformDevice(t, device); got != dev {
		t.Errorf("%s came back on %q, want %q", device, got, dev)
	}
}
