package terminal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/logging"
)

// ICEConfig fits the terminal's WebRTC network to a unit that sits behind a
// static port forward (a router rule "UDP 5000 → the terminal", or a VM's
// host forward): the phone can only reach the one forwarded port on the
// forwarder's address, so the terminal must listen on exactly that port and
// put that address, not its own, in its host candidates. The zero value is
// the normal case: any port, the unit's own addresses, pion's usual networks.
type ICEConfig struct {
	// Port, when non-zero, is the single local port every call's ICE uses
	// (UDP, and TCP when Networks has tcp4 or tcp6): one socket shared by
	// all sessions, demultiplexed by ICE username.
	Port int
	// AdvertiseIPs, when set, replace the unit's own addresses in its host
	// candidates (a 1:1 NAT or port forward: the address the phone can reach).
	AdvertiseIPs []string
	// Networks are the candidate networks to gather: "udp4", "udp6",
	// "tcp4", "tcp6". Empty: pion's default (UDP). TCP (passive candidates:
	// the phone connects) needs Port, and helps where only TCP is forwarded.
	Networks []string
}

// Validate checks the values without opening anything.
func (c ICEConfig) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("ice port %d out of range", c.Port))
	}
	for _, ip := range c.AdvertiseIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, fmt.Errorf("ice advertise IP %q is not an IP address", ip))
		}
	}
	for _, n := range c.Networks {
		nt, err := webrtc.NewNetworkType(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("ice network %q must be udp4, udp6, tcp4 or tcp6", n))
			continue
		}
		if (nt == webrtc.NetworkTypeTCP4 || nt == webrtc.NetworkTypeTCP6) && c.Port == 0 {
			errs = append(errs, fmt.Errorf("ice network %s needs a fixed port (the phone connects to it)", n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("terminal: %w: %w", ErrConfig, err)
	}
	return nil
}

// hasTCP and hasUDP say which muxes a fixed port needs; no networks listed
// means UDP only, as pion gathers without a TCP mux.
func (c ICEConfig) has(proto string) bool {
	if len(c.Networks) == 0 {
		return proto == "udp"
	}
	for _, n := range c.Networks {
		if strings.HasPrefix(n, proto) {
			return true
		}
	}
	return false
}

// iceNet is what settingEngine opened for a fixed port; Close releases it.
type iceNet struct {
	closers []io.Closer
}

func (n *iceNet) Close() error {
	var errs []error
	for _, c := range n.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ICE's own timeouts: pion's defaults, except failure. pion declares a
// path failed 25 s after it went quiet (5 s), and the terminal ends a call
// whose media failed (call.MediaFailed). That came before the call's own
// grace: a call whose link was cut for 30–75 s ended at ~30 s although the
// terminal, the server and the phone all wait 75 s for it to resume
// (TestCallSurvivesLongLinkLoss). The call's timers (call.TimerResume,
// call.TimerRestart: the grace) decide now; pion's failure comes only
// iceFailAfterGrace after them, as a backstop.
const (
	iceDisconnectedAfter = 5 * time.Second
	iceKeepalive         = 2 * time.Second
	iceFailAfterGrace    = 10 * time.Second
)

// settingEngine returns pion's network settings. Loopback-only mode gathers
// candidates on 127.0.0.1 only. A fixed ICE port opens its sockets here; the
// returned iceNet owns them. grace is how long a call waits for its media
// to come back (Config.ResumeGrace).
func settingEngine(loopback bool, ic ICEConfig, grace time.Duration, log *slog.Logger) (*webrtc.SettingEngine, *iceNet, error) {
	if err := ic.Validate(); err != nil {
		return nil, nil, err
	}
	pionLog := logging.Pion(log.With("component", "webrtc"))
	se := &webrtc.SettingEngine{LoggerFactory: pionLog}
	se.SetICETimeouts(iceDisconnectedAfter, grace+iceFailAfterGrace, iceKeepalive)
	// No mDNS: a terminal has nothing to hide its address from, and mDNS
	// queries would be multicast traffic on the child's home network.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if len(ic.Networks) > 0 {
		types := make([]webrtc.NetworkType, 0, len(ic.Networks))
		for _, n := range ic.Networks {
			nt, _ := webrtc.NewNetworkType(n) // validated
			types = append(types, nt)
		}
		se.SetNetworkTypes(types)
	}
	if len(ic.AdvertiseIPs) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: ic.AdvertiseIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("terminal: ice advertise IPs: %w", err)
		}
	}
	n := &iceNet{}
	if ic.Port != 0 {
		if ic.has("udp") {
			conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: ic.Port})
			if err != nil {
				return nil, nil, fmt.Errorf("terminal: ice udp port %d: %w", ic.Port, err)
			}
			mux := webrtc.NewICEUDPMux(pionLog.NewLogger("ice-udp"), conn)
			se.SetICEUDPMux(mux)
			n.closers = append(n.closers, mux)
		}
		if ic.has("tcp") {
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{Port: ic.Port})
			if err != nil {
				n.Close()
				return nil, nil, fmt.Errorf("terminal: ice tcp port %d: %w", ic.Port, err)
			}
			mux := webrtc.NewICETCPMux(pionLog.NewLogger("ice-tcp"), ln, 64)
			se.SetICETCPMux(mux)
			n.closers = append(n.closers, mux)
		}
		log.Info("ICE on a fixed port", "port", ic.Port, "networks", ic.Networks, "advertise", ic.AdvertiseIPs)
	}
	return se, n, nil
}
