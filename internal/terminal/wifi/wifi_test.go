package wifi_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/internal/terminal/wifi"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

// TestConfig: the file for a list, line by line: SSIDs as hex, a
// passphrase as its derived key (IEEE 802.11i's test vector: "password" on
// "IEEE"), a 64-hex key passed through in lower case, an open network as
// key_mgmt=NONE, priorities falling in the bundle's order.
func TestConfig(t *testing.T) {
	hexKey := strings.Repeat("0123456789ABCDEF", 4)
	got, err := wifi.Config([]bundle.WiFi{
		{SSID: "IEEE", PSK: "password"},
		{SSID: "lab", PSK: hexKey},
		{SSID: "guest"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# Written by terminald from this unit's provisioning bundle; it is rewritten at every start.
ctrl_interface=/var/run/wpa_supplicant

network={
	ssid=49454545
	key_mgmt=WPA-PSK
	psk=f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e
	priority=3
}

network={
	ssid=6c6162
	key_mgmt=WPA-PSK
	psk=` + strings.ToLower(hexKey) + `
	priority=2
}

network={
	ssid=6775657374
	key_mgmt=NONE
	priority=1
}
`
	if string(got) != want {
		t.Fatalf("config:\n%s\nwant:\n%s", got, want)
	}
	if _, err := wifi.Config(nil); err != nil {
		t.Fatalf("no networks: %v", err)
	}
}

// lineShape is every line the generator may write: nothing from the bundle
// is there but as hex digits.
var lineShape = regexp.MustCompile(`^(#[^\n]*|ctrl_interface=/var/run/wpa_supplicant|network=\{|\}|\tssid=[0-9a-f]{2,64}|\tkey_mgmt=(NONE|WPA-PSK)|\tpsk=[0-9a-f]{64}|\tpriority=[0-9]+|)$`)

// injections are SSIDs and passphrases that would add lines, or close the
// block, if they were written as quoted text.
var injections = []bundle.WiFi{
	{SSID: "a\"\n}\nnetwork={\nssid=\"evil", PSK: "p\"}x{ass # \"\\"},
	{SSID: "}", PSK: "\"}\"}\"}\"}"},
	{SSID: "\"quoted\"", PSK: "psk=0000 # x"},
	{SSID: "new\nline", PSK: "key_mgmt=NONE}"},
	{SSID: "学校 Wi-Fi\x00\x01", PSK: "        "},
	{SSID: "ctrl_interface=/tmp/x"},
}

// TestConfigInjection: SSIDs and passphrases with quotes, newlines, braces
// and NUL bytes make one block each and no line but the generator's own.
func TestConfigInjection(t *testing.T) {
	got, err := wifi.Config(injections)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(got), "\n") {
		if !lineShape.MatchString(line) {
			t.Errorf("line %d %q is not one the generator writes", i+1, line)
		}
	}
	if n := strings.Count(string(got), "network={"); n != len(injections) {
		t.Fatalf("%d network blocks, want %d:\n%s", n, len(injections), got)
	}
	if n := strings.Count(string(got), "key_mgmt=NONE"); n != 1 {
		t.Fatalf("%d open networks, want 1 (the last entry's):\n%s", n, got)
	}
}

// TestConfigRefuses: an entry no unit could join is an error naming its
// place and SSID, and no file is made.
func TestConfigRefuses(t *testing.T) {
	good := bundle.WiFi{SSID: "school", PSK: "password1"}
	for _, tc := range []struct {
		name string
		bad  bundle.WiFi
		says string
	}{
		{"empty ssid", bundle.WiFi{PSK: "password1"}, `ssid ""`},
		{"33-byte ssid", bundle.WiFi{SSID: strings.Repeat("s", 33)}, "must be 1..32"},
		{"7-character passphrase", bundle.WiFi{SSID: "lab", PSK: "1234567"}, `ssid "lab": psk is 7 characters`},
		{"64 characters, not hex", bundle.WiFi{SSID: "lab", PSK: strings.Repeat("g", 64)}, `ssid "lab": psk is 64 characters`},
		{"newline in passphrase", bundle.WiFi{SSID: "lab", PSK: "pass\nword"}, `ssid "lab": psk has a character that is not printable ASCII`},
		{"non-ASCII passphrase", bundle.WiFi{SSID: "lab", PSK: "密码密码密码"}, "not printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wifi.Config([]bundle.WiFi{good, tc.bad})
			if err == nil || got != nil || !errors.Is(err, bundle.ErrBadWiFi) ||
				!strings.Contains(err.Error(), "network 2 of 2") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Config = %q, %v; want an error naming network 2 of 2 and %q", got, err, tc.says)
			}
		})
	}
}

// requireTool finds a Debian wpasupplicant tool; the test skips without it
// unless TUANJU_REQUIRE_WPA is set (CI installs the package).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("TUANJU_REQUIRE_WPA") != "" {
			t.Fatalf("%s not found: install Debian's wpasupplicant (TUANJU_REQUIRE_WPA is set)", name)
		}
		t.Skipf("%s not found (Debian's wpasupplicant): skipping the cross-check", name)
	}
	return path
}

// TestPSKMatchesWPAPassphrase: the derived key is the one Debian's
// wpa_passphrase computes, for plain and awkward SSIDs and passphrases.
func TestPSKMatchesWPAPassphrase(t *testing.T) {
	tool := requireTool(t, "wpa_passphrase")
	for _, w := range append([]bundle.WiFi{
		{SSID: "IEEE", PSK: "password"},
		{SSID: "ThisIsASSID", PSK: "ThisIsAPassword"},
		{SSID: strings.Repeat("Z", 32), PSK: strings.Repeat("a", 63)},
		{SSID: "新河小学", PSK: "12345678"},
	}, injections[:3]...) {
		got, err := wifi.PSK(w.PSK, w.SSID)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, w.SSID, w.PSK).Output()
		if err != nil {
			t.Fatalf("wpa_passphrase %q: %v", w.SSID, err)
		}
		m := regexp.MustCompile(`(?m)^\tpsk=([0-9a-f]{64})$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("wpa_passphrase %q printed no psk:\n%s", w.SSID, out)
		}
		if got != string(m[1]) {
			t.Errorf("ssid %q: psk %s, wpa_passphrase says %s", w.SSID, got, m[1])
		}
	}
}

// TestWPASupplicantReadsConfig: Debian's wpa_supplicant parses the
// generated file: with the "none" driver it reads the configuration before
// it looks for the interface (which does not exist, so it then stops), and
// at -dd it prints each network it read. Every block is read, with its
// SSID's length, key management and priority; a file it cannot parse (a
// control case) is reported as such, so the check can fail.
func TestWPASupplicantReadsConfig(t *testing.T) {
	tool := requireTool(t, "wpa_supplicant")
	read := func(t *testing.T, conf []byte) string {
		path := filepath.Join(t.TempDir(), "wpa_supplicant.conf")
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(tool, "-D", "none", "-i", "tjnoiface0", "-c", path, "-dd").CombinedOutput()
		return string(out)
	}
	if out := read(t, []byte("network={\n\tssid=zz\"\n}\n")); !strings.Contains(out, "Failed to read or parse configuration") {
		t.Fatalf("a bad file was not reported as such:\n%s", out)
	}
	nets := append([]bundle.WiFi{{SSID: "school", PSK: "password1"}, {SSID: "lab", PSK: strings.Repeat("ab", 32)}}, injections...)
	conf, err := wifi.Config(nets)
	if err != nil {
		t.Fatal(err)
	}
	out := read(t, conf)
	if strings.Contains(out, "Failed to read or parse configuration") || strings.Contains(out, "failed to parse") {
		t.Fatalf("wpa_supplicant does not parse the file:\n%s\n%s", out, conf)
	}
	if !strings.Contains(out, "ctrl_interface='/var/run/wpa_supplicant'") {
		t.Errorf("wpa_supplicant did not read ctrl_interface:\n%s", out)
	}
	ssids := regexp.MustCompile(`ssid - hexdump_ascii\(len=(\d+)\)`).FindAllStringSubmatch(out, -1)
	prios := regexp.MustCompile(`(?m)^priority=(\d+) `).FindAllStringSubmatch(out, -1)
	keyMgmt := regexp.MustCompile(`(?m)^key_mgmt: (0x[0-9a-f]+)$`).FindAllStringSubmatch(out, -1)
	psks := strings.Count(out, "PSK - hexdump(len=32)")
	if len(ssids) != len(nets) || len(prios) != len(nets) || len(keyMgmt) != len(nets) {
		t.Fatalf("wpa_supplicant read %d ssids, %d priorities, %d key_mgmt; want %d of each:\n%s", len(ssids), len(prios), len(keyMgmt), len(nets), out)
	}
	open := 0
	for i, w := range nets {
		if want := len(w.SSID); ssids[i][1] != itoa(want) {
			t.Errorf("network %d: ssid length %s, want %d", i+1, ssids[i][1], want)
		}
		if want := len(nets) - i; prios[i][1] != itoa(want) {
			t.Errorf("network %d: priority %s, want %d", i+1, prios[i][1], want)
		}
		want := "0x2" // WPA_KEY_MGMT_PSK
		if w.PSK == "" {
			want, open = "0x4", open+1 // WPA_KEY_MGMT_NONE
		}
		if keyMgmt[i][1] != want {
			t.Errorf("network %d: key_mgmt %s, want %s", i+1, keyMgmt[i][1], want)
		}
	}
	if psks != len(nets)-open {
		t.Errorf("wpa_supplicant read %d keys, want %d", psks, len(nets)-open)
	}
	if bytes.Contains(conf, []byte("password1")) {
		t.Error("the passphrase is in the file; only its derived key should be")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
