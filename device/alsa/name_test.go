package alsa

import (
	"errors"
	"testing"
)

func TestResolve(t *testing.T) {
	// Card 0 is a playback-only HDMI output, card 1 snd-aloop, card 2 a USB
	// microphone: "default" must pick per direction.
	devs := []Device{
		{Card: 0, CardID: "HDMI", Device: 3, PlaybackSubdevices: 1},
		{Card: 1, CardID: "Loopback", Device: 0, PlaybackSubdevices: 8, CaptureSubdevices: 8},
		{Card: 1, CardID: "Loopback", Device: 1, PlaybackSubdevices: 8, CaptureSubdevices: 8},
		{Card: 2, CardID: "Mic", Device: 0, CaptureSubdevices: 1},
	}
	tests := []struct {
		name    string
		stream  Stream
		want    string
		wantErr error
	}{
		{"default", Playback, "hw:HDMI,3", nil},
		{"", Capture, "hw:Loopback,0", nil},
		{"hw:Loopback,1,2", Capture, "hw:Loopback,1,2", nil},
		{"hw:loopback,1", Playback, "hw:Loopback,1", nil},
		{"hw:1,1,7", Playback, "hw:Loopback,1,7", nil},
		{"hw:CARD=Loopback,DEV=1,SUBDEV=3", Capture, "hw:Loopback,1,3", nil},
		{"hw:Loopback", Capture, "hw:Loopback,0", nil},
		{"hw:2", Capture, "hw:Mic,0", nil},
		{"hw:2", Playback, "", ErrNoDevice},           // no playback on the mic
		{"hw:Loopback,1,8", Capture, "", ErrNoDevice}, // 8 subdevices: 0..7
		{"hw:Loopback,2", Capture, "", ErrNoDevice},
		{"hw:Nope,0", Capture, "", ErrNoDevice},
		{"hw:5", Capture, "", ErrNoDevice},
		{"plughw:0,0", Capture, "", ErrBadName},
		{"hw:", Capture, "", ErrBadName},
		{"hw:0,x", Capture, "", ErrBadName},
		{"hw:0,-1", Capture, "", ErrBadName},
		{"hw:0,0,0,0", Capture, "", ErrBadName},
	}
	for _, tt := range tests {
		a, err := resolve(tt.name, tt.stream, devs)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("resolve(%q, %s) = %v, %v; want %v", tt.name, tt.stream, a, err, tt.wantErr)
			}
			continue
		}
		if err != nil || a.String() != tt.want {
			t.Errorf("resolve(%q, %s) = %q, %v; want %q", tt.name, tt.stream, a, err, tt.want)
		}
	}
	if _, err := resolve("default", Capture, nil); !errors.Is(err, ErrNoDevice) {
		t.Errorf("default with no cards = %v, want ErrNoDevice", err)
	}
}

func TestAddrPath(t *testing.T) {
	a := Addr{Card: 1, CardID: "Loopback", Device: 0, Subdevice: -1}
	if got := a.path("/dev/snd", Capture); got != "/dev/snd/pcmC1D0c" {
		t.Errorf("capture path = %s", got)
	}
	if got := a.path("/dev/snd", Playback); got != "/dev/snd/pcmC1D0p" {
		t.Errorf("playback path = %s", got)
	}
	if got := (Addr{Card: 3, Device: 2, Subdevice: 1}).String(); got != "hw:3,2,1" {
		t.Errorf("Addr without id = %s, want hw:3,2,1", got)
	}
}
