package terminal

import (
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/tuanju/tuanju/internal/terminal/call"
)

func TestICEConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    ICEConfig
		ok   bool
	}{
		{"zero value", ICEConfig{}, true},
		{"port forward, UDP", ICEConfig{Port: 5000, AdvertiseIPs: []string{"203.0.113.7"}, Networks: []string{"udp4"}}, true},
		{"TCP on a fixed port", ICEConfig{Port: 5000, Networks: []string{"tcp4", "udp4"}}, true},
		{"IPv6 advertised", ICEConfig{AdvertiseIPs: []string{"2001:db8::7"}}, true},
		{"TCP without a port", ICEConfig{Networks: []string{"tcp4"}}, false},
		{"port too big", ICEConfig{Port: 65536}, false},
		{"negative port", ICEConfig{Port: -1}, false},
		{"host name advertised", ICEConfig{AdvertiseIPs: []string{"router.lan"}}, false},
		{"unknown network", ICEConfig{Networks: []string{"udp"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

// TestFixedICEPortIsHeldAndReleased: a fixed port is bound (UDP and TCP) by
// settingEngine, so a second terminal cannot take it, and Close gives it back.
func TestFixedICEPortIsHeldAndReleased(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var (
		ic   ICEConfig
		n    *iceNet
		err  error
		port int
	)
	// A port that was free a moment ago may be taken by a test running in
	// parallel before we bind it: try a few.
	for range 5 {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ic = ICEConfig{Port: port, Networks: []string{"udp4", "tcp4"}}
		if _, n, err = settingEngine(false, ic, call.ResumeGrace, log); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("settingEngine: %v", err)
	}
	if _, _, err := settingEngine(false, ic, call.ResumeGrace, log); err == nil {
		t.Fatal("a second settingEngine got the same fixed port")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, n2, err := settingEngine(false, ic, call.ResumeGrace, log)
	if err != nil {
		t.Fatalf("port %d not released by Close: %v", port, err)
	}
	n2.Close()
}
