// Package manifest is a batch's signed list of the units it made: what the
// programme hands the rendezvous server (`rendezvous fleet import`) so it
// knows each unit's site and region and can refuse a certificate for a unit
// the programme never shipped. The JSON names no child and no phone
// number; the operator's CSV beside it does (provisioning/batch).
//
// Files: manifest.json and its detached signature manifest.json.sig
// (provisioning/signing), made with the programme's signing key.
package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// Format names this version of the manifest.
const Format = "tuanju-manifest-v1"

// MaxBytes bounds a manifest: 100,000 units at ~300 bytes.
const MaxBytes = 64 << 20

// ErrBadManifest: a manifest that does not verify or does not decode.
var ErrBadManifest = errors.New("bad manifest")

// Manifest is manifest.json.
type Manifest struct {
	Format    string    `json:"format"`
	Programme string    `json:"programme"`
	Batch     string    `json:"batch"`
	CreatedAt time.Time `json:"created_at"`
	// CAGeneration and CA name the program CA that signed the units'
	// certificates (its subject).
	CAGeneration int    `json:"ca_generation"`
	CA           string `json:"ca"`
	Units        []Unit `json:"units"`
}

// Unit is one unit in a manifest.
type Unit struct {
	Unit       string    `json:"unit"`
	DeviceID   string    `json:"device_id"`
	Site       string    `json:"site"`
	Region     string    `json:"region"`
	Language   string    `json:"language"`
	TimeZone   string    `json:"time_zone"`
	CertSerial string    `json:"cert_serial"`
	IssuedAt   time.Time `json:"issued_at"`
}

// Encode returns the manifest's JSON (indented, one unit a line's worth) and
// its detached signature.
func Encode(m Manifest, key *signing.Key) (doc, sig []byte, err error) {
	doc, err = json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: encode: %w", err)
	}
	doc = append(doc, '\n')
	return doc, key.Detached(doc), nil
}

// Decode checks a manifest's signature against keys, then decodes it
// strictly and checks every unit: a device ID, a unit name, no unit or
// device twice.
func Decode(doc, sig []byte, keys []ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	if len(doc) > MaxBytes {
		return m, fmt.Errorf("manifest: %d bytes, over %d: %w", len(doc), MaxBytes, ErrBadManifest)
	}
	if _, err := signing.VerifyDetached(doc, sig, keys); err != nil {
		return m, fmt.Errorf("manifest: %w: %w", ErrBadManifest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w: %v", ErrBadManifest, err)
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("manifest: format %q, want %q: %w", m.Format, Format, ErrBadManifest)
	}
	units, devices := map[string]bool{}, map[string]bool{}
	for i, u := range m.Units {
		switch {
		case !protocol.ValidID(u.DeviceID):
			return Manifest{}, fmt.Errorf("manifest: unit %d: device ID %q: %w", i, u.DeviceID, ErrBadManifest)
		case u.Unit == "":
			return Manifest{}, fmt.Errorf("manifest: unit %d: no unit name: %w", i, ErrBadManifest)
		case units[u.Unit] || devices[u.DeviceID]:
			return Manifest{}, fmt.Errorf("manifest: unit %s (%s) is listed twice: %w", u.Unit, u.DeviceID, ErrBadManifest)
		}
		units[u.Unit], devices[u.DeviceID] = true, true
	}
	return m, nil
}
