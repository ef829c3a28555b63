package imageboot_test

import (
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// The simulated room's access point (buildroot/sim S02simap, on the kernel
// command line as tuanju.simap=SSID,PASSPHRASE).
const (
	apSSID = "qiaotou-school"
	apPass = "reunion-2026-wifi"
)

// Console lines of the access point's hostapd (S02simap).
const (
	logSTAConnected = "SIMAP simap0: AP-STA-CONNECTED"
	logPSKMismatch  = "AP-STA-POSSIBLE-PSK-MISMATCH"
)

// TestImageJoinsWiFi: a unit whose only network is Wi-Fi — the image's
// kernel with mac80211_hwsim's two radios, the room's access point
// (hostapd, WPA2-PSK) on one bridged to qemu's network, the unit's wired
// port taken away (S02simap) — joins the network its signed bundle names
// (terminald writes wpa_supplicant.conf on the first boot's import and
// runs the network script's `network wifi`: wpa_supplicant, then udhcpc
// on wlan0), logs in to the server and pairs. The bundle lists a network
// that is not in the room before the one that is. The control: a unit
// whose bundle has the wrong passphrase is refused by the access point's
// handshake, never reaches the server, and shows the child the no-network
// light (red, breathing).
func TestImageJoinsWiFi(t *testing.T) {
	h := newHarness(t)
	h.cmdline = "tuanju.simap=" + apSSID + "," + apPass

	t.Run("joins", func(t *testing.T) {
		u := h.newUnit(t, "wifi", func(s *bundle.Settings) {
			s.WiFi = []bundle.WiFi{{SSID: "village-committee", PSK: "not-in-this-room"}, {SSID: apSSID, PSK: apPass}}
		})
		v := h.boot(t, u)
		sta := v.await(t, bootWait, logSTAConnected)
		conn := v.await(t, stepWait, logConnected)
		if got := jsonField(conn.text, "device_id"); got != u.deviceID {
			t.Fatalf("the unit logged in as %q, want %s", got, u.deviceID)
		}
		if _, err := h.srv.Registry().Device(u.deviceID); err != nil {
			t.Fatalf("the server has no record of %s, which logged in over Wi-Fi: %v", u.deviceID, err)
		}
		t.Logf("host: joined the access point (%s), logged in %v later", sta.text, conn.at.Sub(sta.at).Round(time.Millisecond))
		h.pair(t, v, u, -1, false)
		h.awaitReady(t, v, u)
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		u := h.newUnit(t, "wifi-wrong", func(s *bundle.Settings) {
			s.WiFi = []bundle.WiFi{{SSID: apSSID, PSK: "not-" + apPass}}
		})
		v := h.boot(t, u)
		v.await(t, bootWait, logStarting)
		v.await(t, bootWait, logPSKMismatch)
		v.blinking(t, stepWait, "010") // no network: red, breathing
		// The handshake has failed again by now (wpa_supplicant retries);
		// the unit never got through.
		v.await(t, stepWait, logPSKMismatch)
		if v.saw(logConnected) || v.saw(logSTAConnected) {
			t.Fatal("a unit with the wrong passphrase got onto the network")
		}
		if _, err := h.srv.Registry().Device(u.deviceID); err == nil {
			t.Fatalf("the server has a record of %s, which has no way to it", u.deviceID)
		}
	})
}
