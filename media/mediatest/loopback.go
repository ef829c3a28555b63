// Package mediatest holds helpers for tests that run calls inside one process.
package mediatest

import (
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// LoopbackSettingEngine returns a SettingEngine whose ICE agent gathers and
// uses only UDP4 on 127.0.0.1 with mDNS off, so a test call never sends a
// packet to any other address (the test suite's rule, and what keeps it
// working inside an empty network namespace).
func LoopbackSettingEngine() *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}
