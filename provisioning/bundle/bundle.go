// Package bundle is the per-unit provisioning bundle: everything one
// terminal needs from its programme, written to it at flash time and checked
// by `terminald identity import` before anything touches its disk.
//
// The format (docs/provisioning-bundle.md) is versioned, length-checked and
// signed with the programme's signing key (provisioning/signing):
//
//	offset  size  field
//	0       8     magic "TJBUNDLE"
//	8       2     version, big-endian (1)
//	10      4     body length N, big-endian (at most MaxBody)
//	14      N     body: JSON (Unit), decoded strictly
//	14+N    8     key ID of the signing key (signing.KeyID)
//	22+N    64    Ed25519 signature over bytes 0 .. 22+N
//
// A file is exactly 86+N bytes: shorter is truncated, longer is refused too
// (nothing may ride along unsigned). The key ID tells a foreign bundle (made
// by another programme's key) from a tampered one.
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tuanju/tuanju/internal/dnsname"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// Magic starts every bundle.
const Magic = "TJBUNDLE"

// Version is the format version this package writes and reads.
const Version = 1

// MaxBody bounds the body: a unit's key, certificate, the server's CA and
// its settings fit in a few KiB.
const MaxBody = 64 << 10

const (
	headerSize  = len(Magic) + 2 + 4
	trailerSize = signing.KeyIDSize + ed25519.SignatureSize
)

var (
	// ErrTruncated: fewer bytes than the header says.
	ErrTruncated = errors.New("bundle truncated")
	// ErrMalformed: not a bundle, bytes after its end, or a body that does
	// not decode.
	ErrMalformed = errors.New("malformed bundle")
	// ErrVersion: a format version this terminal does not know.
	ErrVersion = errors.New("unknown bundle version")
	// ErrForeign: signed by a key that is not this programme's.
	ErrForeign = errors.New("bundle signed by another programme's key")
	// ErrTampered: the signature does not verify: the bundle was changed.
	ErrTampered = errors.New("bundle signature does not verify (tampered)")
)

// Unit is a bundle's body.
type Unit struct {
	// Unit is the short human-readable ID printed on the label.
	Unit     string    `json:"unit"`
	DeviceID string    `json:"device_id"`
	Batch    string    `json:"batch"`
	Site     string    `json:"site"`
	Region   string    `json:"region"`
	IssuedAt time.Time `json:"issued_at"`
	// Identity is the unit's key and device certificate, PEM
	// (devcert.EncodeBundle).
	Identity string `json:"identity"`
	// PairingSecret is the secret the label's QR code carries
	// (pairing.Secret.String).
	PairingSecret string   `json:"pairing_secret"`
	Settings      Settings `json:"settings"`
}

// Settings are what the terminal applies (terminald, where it has the
// setting) or leaves to the OS (Wi-Fi, APN).
type Settings struct {
	ServerURL string `json:"server_url"`
	PublicURL string `json:"public_url"`
	// ServerCA (PEM) replaces the system's CAs for the server's TLS
	// certificate; empty keeps them.
	ServerCA string   `json:"server_ca,omitempty"`
	TURN     []string `json:"turn,omitempty"`
	TimeZone string   `json:"time_zone"`
	Language string   `json:"language"`
	// ReunionWindows are terminald's auto_answer windows ("Sat 19:00-20:00").
	ReunionWindows []string `json:"reunion_windows,omitempty"`
	WiFi           []WiFi   `json:"wifi,omitempty"`
	APN            *APN     `json:"apn,omitempty"`
	// DataBudgetMB is the unit's monthly mobile data budget; 0 is none.
	DataBudgetMB int `json:"data_budget_mb,omitempty"`
}

// WiFi is one network the unit may join (the unit's wpa_supplicant
// configuration is made from the list, internal/terminal/wifi).
type WiFi struct {
	SSID string `json:"ssid" toml:"ssid"`
	// PSK is a WPA passphrase (8..63 printable ASCII characters), a raw
	// 256-bit key as 64 hex digits, or empty for an open network.
	PSK string `json:"psk,omitempty" toml:"psk"`
}

// ErrBadWiFi: a Wi-Fi entry no unit could join with (Check).
var ErrBadWiFi = errors.New("bad wifi network")

// Check reports why w cannot be a network a unit joins: an SSID that is not
// 1..32 bytes (IEEE 802.11's limit), or a PSK that is neither a passphrase
// of 8..63 printable ASCII characters (what WPA's key derivation takes) nor
// 64 hex digits. Provisioning checks it (programme.Settings.Validate,
// Encode), so a bad row never ships; the unit checks it again.
func (w WiFi) Check() error {
	if w.SSID == "" || len(w.SSID) > 32 {
		return fmt.Errorf("ssid %q is %d bytes, must be 1..32: %w", w.SSID, len(w.SSID), ErrBadWiFi)
	}
	if w.PSK == "" || IsHexPSK(w.PSK) {
		return nil
	}
	if n := len(w.PSK); n < 8 || n > 63 {
		return fmt.Errorf("ssid %q: psk is %d characters, must be a passphrase of 8..63 or 64 hex digits: %w", w.SSID, n, ErrBadWiFi)
	}
	for i := 0; i < len(w.PSK); i++ {
		if c := w.PSK[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("ssid %q: psk has a character that is not printable ASCII at byte %d: %w", w.SSID, i, ErrBadWiFi)
		}
	}
	return nil
}

// IsHexPSK reports whether psk is a raw WPA key: exactly 64 hex digits.
func IsHexPSK(psk string) bool {
	if len(psk) != 64 {
		return false
	}
	for i := 0; i < len(psk); i++ {
		c := psk[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// APN is the mobile data access point (the unit's pppd peer, chat script
// and secrets are made from it, internal/terminal/cellular).
type APN struct {
	Name     string `json:"name" toml:"name"`
	User     string `json:"user,omitempty" toml:"user"`
	Password string `json:"password,omitempty" toml:"password"`
}

// ErrBadAPN: an APN no unit could dial, or one whose text could be read by
// pppd or chat as more than a value (Check).
var ErrBadAPN = errors.New("bad apn")

// The APN's limits. MaxAPNName is 3GPP TS 23.003 §9.1's 100 octets;
// MaxAPNCredential bounds the user and password well inside pppd's own
// limits (MAXNAMELEN, MAXSECRETLEN: 256), and no operator's is near it.
const (
	MaxAPNName       = 100
	MaxAPNCredential = 64
)

// Check reports why a cannot be a unit's APN, naming the field: a name
// that is not 3GPP TS 23.003 §9.1's (labels of letters, digits and hyphens,
// 1..63 characters each, separated by dots, at most 100 characters in
// all), or a user or password that is longer than 64 characters or has a
// character that is not printable ASCII or is a quote or backslash. So the
// name, written into the chat script's AT+CGDCONT line, and the user and
// password, written quoted into pppd's files, can never end their quotes,
// start a line or be read as an option or a chat command. A password
// needs a user (pppd finds the secret by the user's name). Provisioning
// checks it (programme.Settings.Validate, Encode), so a bad row never
// ships; the unit checks it again.
func (a APN) Check() error {
	if n := len(a.Name); n == 0 || n > MaxAPNName {
		return fmt.Errorf("apn name %q is %d characters, must be 1..%d: %w", a.Name, n, MaxAPNName, ErrBadAPN)
	}
	if err := dnsname.CheckLabels(a.Name); err != nil {
		return fmt.Errorf("apn name %q %v: %w", a.Name, err, ErrBadAPN)
	}
	for _, f := range []struct{ field, v string }{{"user", a.User}, {"password", a.Password}} {
		if len(f.v) > MaxAPNCredential {
			return fmt.Errorf("apn %q: %s is %d characters, at most %d: %w", a.Name, f.field, len(f.v), MaxAPNCredential, ErrBadAPN)
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\'' || c == '\\' {
				return fmt.Errorf("apn %q: %s has a character that is not printable ASCII or is a quote or backslash at byte %d: %w", a.Name, f.field, i, ErrBadAPN)
			}
		}
	}
	if a.Password != "" && a.User == "" {
		return fmt.Errorf("apn %q: password without a user: %w", a.Name, ErrBadAPN)
	}
	return nil
}

// Encode signs u with key and returns the bundle's bytes. The same unit and
// key always give the same bytes. A Wi-Fi network that fails WiFi.Check is
// refused (ErrBadWiFi), and an APN that fails APN.Check (ErrBadAPN): no
// unit is shipped a network it cannot join.
func Encode(u Unit, key *signing.Key) ([]byte, error) {
	for i, w := range u.Settings.WiFi {
		if err := w.Check(); err != nil {
			return nil, fmt.Errorf("bundle: encode %s: wifi[%d]: %w", u.Unit, i, err)
		}
	}
	if a := u.Settings.APN; a != nil {
		if err := a.Check(); err != nil {
			return nil, fmt.Errorf("bundle: encode %s: %w", u.Unit, err)
		}
	}
	body, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode %s: %w", u.Unit, err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("bundle: encode %s: body is %d bytes, over %d: %w", u.Unit, len(body), MaxBody, ErrMalformed)
	}
	out := make([]byte, 0, headerSize+len(body)+trailerSize)
	out = append(out, Magic...)
	out = binary.BigEndian.AppendUint16(out, Version)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	id := key.ID()
	out = append(out, id[:]...)
	return append(out, key.Sign(out)...), nil
}

// Decode checks a bundle against the programme's keys and returns its body.
// The checks, in order: magic, version, length (ErrTruncated, ErrMalformed
// for trailing bytes), key ID among keys (ErrForeign), signature
// (ErrTampered), then the body's strict decoding. Nothing in the body is
// looked at before the signature verifies.
func Decode(b []byte, keys []ed25519.PublicKey) (Unit, error) {
	return decode(b, keys, true)
}

// DecodeStored reads a bundle the unit verified with Decode when it was
// imported and has kept since on its own disk (terminalstore): every check
// but the signature's, for which the unit would need the programme's key at
// every start.
func DecodeStored(b []byte) (Unit, error) { return decode(b, nil, false) }

func decode(b []byte, keys []ed25519.PublicKey, verify bool) (Unit, error) {
	var u Unit
	if len(b) < headerSize {
		if bytes.HasPrefix([]byte(Magic), b) || bytes.HasPrefix(b, []byte(Magic)) {
			return u, fmt.Errorf("bundle: %d bytes, shorter than its header: %w", len(b), ErrTruncated)
		}
		return u, fmt.Errorf("bundle: not a bundle (no %q): %w", Magic, ErrMalformed)
	}
	if !IsBundle(b) {
		return u, fmt.Errorf("bundle: not a bundle (no %q): %w", Magic, ErrMalformed)
	}
	n, err := bodyLength(b)
	if err != nil {
		return u, err
	}
	want := headerSize + n + trailerSize
	switch {
	case len(b) < want:
		return u, fmt.Errorf("bundle: %d bytes, the header says %d: %w", len(b), want, ErrTruncated)
	case len(b) > want:
		return u, fmt.Errorf("bundle: %d bytes after its end: %w", len(b)-want, ErrMalformed)
	}
	if verify {
		signed := b[:headerSize+n+signing.KeyIDSize]
		var id signing.KeyID
		copy(id[:], b[headerSize+n:])
		pub, ok := signing.Find(keys, id)
		if !ok {
			return u, fmt.Errorf("bundle: signing key %s: %w", id, ErrForeign)
		}
		if !ed25519.Verify(pub, signed, b[len(signed):]) {
			return u, fmt.Errorf("bundle: signing key %s: %w", id, ErrTampered)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b[headerSize : headerSize+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return Unit{}, fmt.Errorf("bundle: body: %w: %v", ErrMalformed, err)
	}
	if u.Unit == "" || u.DeviceID == "" || u.Identity == "" || u.PairingSecret == "" || u.Settings.ServerURL == "" {
		return Unit{}, fmt.Errorf("bundle: body lacks unit, device_id, identity, pairing_secret or server_url: %w", ErrMalformed)
	}
	return u, nil
}

// IsBundle reports whether b starts as a bundle does (a technician's
// identity import tells a signed bundle from a bare PEM identity by it).
func IsBundle(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// bodyLength checks the version and body length of a header that starts
// with Magic and returns the length.
func bodyLength(head []byte) (int, error) {
	if v := binary.BigEndian.Uint16(head[len(Magic):]); v != Version {
		return 0, fmt.Errorf("bundle: version %d, this terminal reads %d: %w", v, Version, ErrVersion)
	}
	n := int(binary.BigEndian.Uint32(head[len(Magic)+2:]))
	if n > MaxBody {
		return 0, fmt.Errorf("bundle: body length %d over %d: %w", n, MaxBody, ErrMalformed)
	}
	return n, nil
}

// ErrEmpty: the place a bundle should start holds none (an erased or
// never-written provisioning partition: all zero or all 0xFF bytes).
var ErrEmpty = errors.New("no bundle written")

// ReadFrom reads the one bundle at the start of r and returns its bytes,
// for Decode: the image's provisioning partition is raw, the bundle written
// at its start by the flasher and the rest of the partition left as it was.
// The header's length says where the bundle ends; nothing after it is read.
func ReadFrom(r io.Reader) ([]byte, error) {
	head := make([]byte, headerSize)
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("bundle: read header: %w", ErrTruncated)
		}
		return nil, fmt.Errorf("bundle: read header: %w", err)
	}
	if !IsBundle(head) {
		if bytes.Count(head, head[:1]) == len(head) && (head[0] == 0 || head[0] == 0xFF) {
			return nil, fmt.Errorf("bundle: %w", ErrEmpty)
		}
		return nil, fmt.Errorf("bundle: not a bundle (no %q): %w", Magic, ErrMalformed)
	}
	n, err := bodyLength(head)
	if err != nil {
		return nil, err
	}
	b := make([]byte, headerSize+n+trailerSize)
	copy(b, head)
	if _, err := io.ReadFull(r, b[headerSize:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("bundle: read %d bytes: %w", len(b), ErrTruncated)
		}
		return nil, fmt.Errorf("bundle: read %d bytes: %w", len(b), err)
	}
	return b, nil
}
