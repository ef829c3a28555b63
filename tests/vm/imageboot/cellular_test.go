package imageboot_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// simAPN is the APN the simulated mobile network takes (buildroot/sim
// S03simmodem, tuanju.simmodem=APN on the kernel command line).
const simAPN = "cmnet"

// Console lines of the simulated network's pppd (S03simmodem's simnet).
const (
	logNetUp      = "SIMMODEM network up"
	logPPPAddress = "SIMMODEM remote IP address 10.0.2.16"
)

// withModem gives the VM the simulated modem's line: two virtio console
// ports (the unit's /dev/hvc0, linked as /dev/ttyUSB0, and the network's
// hvc1) joined through a unix socket in a directory of the test's, and
// the network's APN on the kernel command line.
func (h *harness) withModem(t *testing.T, apn string) {
	sock := filepath.Join(t.TempDir(), "modem.sock")
	h.cmdline = "tuanju.simmodem=" + apn
	h.qemuArgs = []string{
		"-chardev", "socket,id=mdmunit,path=" + sock + ",server=on,wait=off",
		"-chardev", "socket,id=mdmnet,path=" + sock,
		"-device", "virtio-serial-pci",
		"-device", "virtconsole,chardev=mdmunit,name=modem.unit",
		"-device", "virtconsole,chardev=mdmnet,name=modem.net",
	}
}

// TestImageDialsMobileData: a unit whose only network is a USB modem's
// mobile data — the image's own pppd and chat on the modem's AT port, the
// mobile network a chat playing the modem and a pppd in a network
// namespace of the VM's own, routing to qemu's network (S03simmodem) —
// dials the APN its signed bundle names on its first boot (the bundle
// imported, pppd's files written, `network cellular`: the port found by
// AT, pppd and its chat script), gets its address over PPP, logs in to the
// server and pairs. The control: a unit whose bundle names another APN is
// never answered the PDP context, never reaches the server, and shows the
// child the no-network light.
func TestImageDialsMobileData(t *testing.T) {
	t.Run("dials", func(t *testing.T) {
		h := newHarness(t)
		h.withModem(t, simAPN)
		u := h.newUnit(t, "ppp", func(s *bundle.Settings) { s.APN = &bundle.APN{Name: simAPN} })
		v := h.boot(t, u)
		v.await(t, bootWait, logNetUp)
		link := v.await(t, bootWait, logPPPAddress)
		conn := v.await(t, stepWait, logConnected)
		if got := jsonField(conn.text, "device_id"); got != u.deviceID {
			t.Fatalf("the unit logged in as %q, want %s", got, u.deviceID)
		}
		if _, err := h.srv.Registry().Device(u.deviceID); err != nil {
			t.Fatalf("the server has no record of %s, which logged in over PPP: %v", u.deviceID, err)
		}
		t.Logf("host: the PPP link up, logged in %v later", conn.at.Sub(link.at).Round(time.Millisecond))
		h.pair(t, v, u, -1, false)
		h.awaitReady(t, v, u)
	})

	t.Run("wrong APN", func(t *testing.T) {
		h := newHarness(t)
		h.withModem(t, simAPN)
		u := h.newUnit(t, "ppp-wrong", func(s *bundle.Settings) { s.APN = &bundle.APN{Name: "3gnet"} })
		v := h.boot(t, u)
		v.await(t, bootWait, logNetUp)
		v.await(t, bootWait, logStarting)
		v.blinking(t, stepWait, "010") // no network: red, breathing
		// Two of the unit's dials at least (each gives up after its chat's
		// 10 s, pppd redials 10 s later).
		time.Sleep(45 * time.Second)
		if v.saw(logPPPAddress) || v.saw(logConnected) {
			t.Fatal("a unit whose bundle names another APN got onto the network")
		}
		if _, err := h.srv.Registry().Device(u.deviceID); err == nil {
			t.Fatalf("the server has a record of %s, which has no way to it", u.deviceID)
		}
	})
}
