package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// The parents' numbers a batch's CSV gave (its optional parent_phone
// column) travel to the server in a file of their own, phones.json with its
// detached signature phones.json.sig, never in manifest.json: the manifest
// is what operators pass around (to the server's administrator, into
// tickets), and a number must not ride along. The server uses a unit's
// number only as the notifier's fallback for its parent
// (docs/notifications.md) and shows it nowhere.

// PhonesJSONName is the file's name in a batch directory.
const PhonesJSONName = "phones.json"

// PhonesFormat names this version of phones.json.
const PhonesFormat = "tuanju-phones-v1"

// Phones is phones.json: the numbers of one batch's units.
type Phones struct {
	Format    string  `json:"format"`
	Programme string  `json:"programme"`
	Batch     string  `json:"batch"`
	Units     []Phone `json:"units"`
}

// Phone is one unit's parent number, E.164.
type Phone struct {
	Unit     string `json:"unit"`
	DeviceID string `json:"device_id"`
	Phone    string `json:"phone"`
}

// EncodePhones returns phones.json and its detached signature.
func EncodePhones(p Phones, key *signing.Key) (doc, sig []byte, err error) {
	doc, err = json.MarshalIndent(p, "", " ")
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: encode phones: %w", err)
	}
	doc = append(doc, '\n')
	return doc, key.Detached(doc), nil
}

// DecodePhones checks phones.json's signature against keys, decodes it
// strictly and checks each entry: a device ID, an E.164 number, no device
// twice. An error never quotes a number.
func DecodePhones(doc, sig []byte, keys []ed25519.PublicKey) (Phones, error) {
	var p Phones
	if len(doc) > MaxBytes {
		return p, fmt.Errorf("manifest: phones: %d bytes, over %d: %w", len(doc), MaxBytes, ErrBadManifest)
	}
	if _, err := signing.VerifyDetached(doc, sig, keys); err != nil {
		return p, fmt.Errorf("manifest: phones: %w: %w", ErrBadManifest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Phones{}, fmt.Errorf("manifest: phones: %w: does not decode", ErrBadManifest)
	}
	if p.Format != PhonesFormat {
		return Phones{}, fmt.Errorf("manifest: phones: format %q, want %q: %w", p.Format, PhonesFormat, ErrBadManifest)
	}
	seen := map[string]bool{}
	for i, u := range p.Units {
		switch {
		case !protocol.ValidID(u.DeviceID):
			return Phones{}, fmt.Errorf("manifest: phones: entry %d: device ID %q: %w", i, u.DeviceID, ErrBadManifest)
		case !protocol.ValidPhone(u.Phone):
			return Phones{}, fmt.Errorf("manifest: phones: unit %s: the number is not E.164: %w", u.Unit, ErrBadManifest)
		case seen[u.DeviceID]:
			return Phones{}, fmt.Errorf("manifest: phones: unit %s (%s) is listed twice: %w", u.Unit, u.DeviceID, ErrBadManifest)
		}
		seen[u.DeviceID] = true
	}
	return p, nil
}
