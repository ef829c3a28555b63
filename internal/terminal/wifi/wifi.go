// Package wifi turns the Wi-Fi networks of a unit's provisioning bundle
// into a wpa_supplicant configuration, which the OS image's network script
// hands to wpa_supplicant on every wlan interface.
//
// Nothing from the bundle reaches the file as text that wpa_supplicant
// would parse: the SSID is written as hex and a passphrase as the 256-bit
// key derived from it (64 hex digits), so a quote, newline or brace in
// either cannot add a line to the configuration. The derived key is also
// what wpa_supplicant would compute at every association: the passphrase
// itself is not kept on the unit's disk.
package wifi

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// CtrlInterface is where wpa_supplicant's control sockets are (wpa_cli
// -i wlan0 reconfigure talks to it).
const CtrlInterface = "/var/run/wpa_supplicant"

// Config is the wpa_supplicant configuration for nets, in the bundle's
// order: the first network gets the highest priority, so a unit in reach of
// several prefers the one its programme listed first. An entry that fails
// bundle.WiFi.Check is an error naming it (its place and SSID), and no
// configuration is made: a half-applied list would hide the mistake.
func Config(nets []bundle.WiFi) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Written by terminald from this unit's provisioning bundle; it is rewritten at every start.\n")
	b.WriteString("ctrl_interface=" + CtrlInterface + "\n")
	for i, w := range nets {
		if err := w.Check(); err != nil {
			return nil, fmt.Errorf("wifi: network %d of %d: %w", i+1, len(nets), err)
		}
		fmt.Fprintf(&b, "\nnetwork={\n\tssid=%s\n", hex.EncodeToString([]byte(w.SSID)))
		switch {
		case w.PSK == "":
			b.WriteString("\tkey_mgmt=NONE\n")
		case bundle.IsHexPSK(w.PSK):
			fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK\n\tpsk=%s\n", strings.ToLower(w.PSK))
		default:
			psk, err := PSK(w.PSK, w.SSID)
			if err != nil {
				return nil, fmt.Errorf("wifi: network %d of %d (ssid %q): %w", i+1, len(nets), w.SSID, err)
			}
			fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK\n\tpsk=%s\n", psk)
		}
		fmt.Fprintf(&b, "\tpriority=%d\n}\n", len(nets)-i)
	}
	return b.Bytes(), nil
}

// PSK is WPA's pre-shared key for a passphrase (IEEE 802.11i, annex H.4):
// PBKDF2-HMAC-SHA1 of the passphrase, the SSID as salt, 4096 iterations,
// 32 bytes, as 64 hex digits (what wpa_passphrase prints as psk=).
func PSK(passphrase, ssid string) (string, error) {
	k, err := pbkdf2.Key(sha1.New, passphrase, []byte(ssid), 4096, 32)
	if err != nil {
		return "", fmt.Errorf("wifi: derive psk: %w", err)
	}
	return hex.EncodeToString(k), nil
}
