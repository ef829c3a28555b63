package pairing

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
)

// The pairing handshake (docs/security.md has the reasoning, docs/protocol.md
// the wire format). Four messages, relayed blindly by the rendezvous server:
//
//	page     → terminal  Request  {device_id, nonce, E_p, proof = HMAC(secret, req)}
//	(the terminal checks the proof, then waits for a press on its button)
//	terminal → page      Accept   {E_t, D, fingerprint, sig_D(th), HMAC(k_t, th)}
//	page     → terminal  Confirm  {P, sig_P(th, P), HMAC(k_p, th, P)}
//	terminal → server    "complete": the server stores the pairing
//
// E_p/E_t are fresh ECDH P-256 keys, D the terminal's long-term key (whose
// hash is the label's device ID), P the parent's long-term key (a
// non-extractable WebCrypto key on the phone). th is SHA-256 over the whole
// transcript; k_t and k_p come from HKDF-SHA256 over the ECDH secret, salted
// with the label's 128-bit secret. It is the shape of TLS 1.3's psk_dhe_ke
// plus SIGMA-style signatures over the transcript: each side proves it
// knows the label secret and completed the same exchange, the terminal
// proves it holds the labelled key, and the parent binds its key to this
// exchange. A server in the middle knows neither the secret nor the ECDH
// private keys, so it can relay or drop messages but not alter any.
//
// A PAKE is not needed: the label secret is 128 random bits, not a
// password, so an observer's offline guessing is hopeless.

// Labels of the signed and MACed strings (domain separation: a value valid
// here is valid nowhere else).
const (
	labelRequest    = "tuanju/v2 pair request"
	labelTranscript = "tuanju/v2 pair"
	labelKeys       = "tuanju/v2 pair keys"
	labelAccept     = "tuanju/v2 pair accept"
	labelConfirm    = "tuanju/v2 pair confirm"
)

// Request is the page's first message.
type Request struct {
	DeviceID     string // the label's
	Nonce        string // 32 random bytes, base64url
	EphemeralKey string // E_p: uncompressed P-256 point (65 bytes), base64url
	Proof        string // HMAC-SHA256(secret, labelRequest\ndevice\nnonce\nE_p)
}

// Accept is the terminal's answer, sent after its button was pressed.
type Accept struct {
	EphemeralKey string // E_t
	PublicKey    string // D: SPKI DER, base64url
	Fingerprint  string // the terminal's persistent DTLS certificate: "sha-256 AB:CD:…"
	Signature    string // sig_D over labelAccept\nth (P1363)
	Proof        string // HMAC(k_t, labelAccept\nth)
}

// Confirm is the page's last message.
type Confirm struct {
	PublicKey string // P: SPKI DER, base64url
	Signature string // sig_P over labelConfirm\nth\nP
	Proof     string // HMAC(k_p, labelConfirm\nth\nP)
}

func mac(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(strings.Join(parts, "\n")))
	return b64.EncodeToString(h.Sum(nil))
}

func macOK(key []byte, got string, parts ...string) bool {
	return hmac.Equal([]byte(mac(key, parts...)), []byte(got))
}

func requestProof(s Secret, deviceID, nonce, ephemeral string) string {
	return mac(s[:], labelRequest, deviceID, nonce, ephemeral)
}

// transcript is th, base64url: SHA-256 over every value both sides agreed on.
func transcript(deviceID, pairID string, r Request, a Accept) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{labelTranscript, deviceID, pairID, r.Nonce,
		r.EphemeralKey, a.EphemeralKey, a.PublicKey, a.Fingerprint}, "\n")))
	return b64.EncodeToString(sum[:])
}

// keys derives k_t and k_p from the ECDH secret z.
func keys(s Secret, z []byte, th string) (kt, kp []byte, err error) {
	k, err := hkdf.Key(sha256.New, z, s[:], labelKeys+"\n"+th, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("pairing: derive keys: %w", err)
	}
	return k[:32], k[32:], nil
}

func parseEphemeral(s string) (*ecdh.PublicKey, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pairing: ephemeral key: %w: not base64url", ErrBadKey)
	}
	pub, err := ecdh.P256().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("pairing: ephemeral key: %w: %v", ErrBadKey, err)
	}
	return pub, nil
}

// ParentHandshake is the page's side (Go clients and tests use it; the page
// does the same with WebCrypto).
type ParentHandshake struct {
	secret   Secret
	deviceID string
	eph      *ecdh.PrivateKey
	req      Request
	kp       []byte
	th       string
}

// StartParent begins pairing with the terminal a label names.
func StartParent(s Secret, deviceID string) (*ParentHandshake, error) {
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pairing: ephemeral key: %w", err)
	}
	var n [32]byte
	rand.Read(n[:])
	h := &ParentHandshake{secret: s, deviceID: deviceID, eph: eph}
	h.req = Request{DeviceID: deviceID, Nonce: b64.EncodeToString(n[:]), EphemeralKey: b64.EncodeToString(eph.PublicKey().Bytes())}
	h.req.Proof = requestProof(s, deviceID, h.req.Nonce, h.req.EphemeralKey)
	return h, nil
}

// Request is the first message to send.
func (h *ParentHandshake) Request() Request { return h.req }

// Device is what the page learns of the terminal and keeps: its long-term
// key (for every later call's signatures) and its DTLS fingerprint (pinned).
type Device struct {
	DeviceID    string
	PublicKey   *ecdsa.PublicKey
	Fingerprint string
}

// Accept checks the terminal's answer: its key must hash to the label's
// device ID, its signature and its proof (which needs the label secret and
// the ECDH secret) must verify over this exchange's transcript.
func (h *ParentHandshake) Accept(pairID string, a Accept) (Device, error) {
	id, err := DeviceIDOf(a.PublicKey)
	if err != nil {
		return Device{}, err
	}
	if id != h.deviceID {
		return Device{}, fmt.Errorf("pairing: accept: key of %s, label says %s: %w", id, h.deviceID, ErrWrongDevice)
	}
	d, err := ParsePublicKey(a.PublicKey)
	if err != nil {
		return Device{}, err
	}
	if err := CheckFingerprint(a.Fingerprint); err != nil {
		return Device{}, fmt.Errorf("pairing: accept: %w", err)
	}
	et, err := parseEphemeral(a.EphemeralKey)
	if err != nil {
		return Device{}, err
	}
	z, err := h.eph.ECDH(et)
	if err != nil {
		return Device{}, fmt.Errorf("pairing: accept: ecdh: %w", err)
	}
	th := transcript(h.deviceID, pairID, h.req, a)
	kt, kp, err := keys(h.secret, z, th)
	if err != nil {
		return Device{}, err
	}
	if !verify(d, labelAccept+"\n"+th, a.Signature) {
		return Device{}, fmt.Errorf("pairing: accept: device signature: %w", ErrBadProof)
	}
	if !macOK(kt, a.Proof, labelAccept, th) {
		return Device{}, fmt.Errorf("pairing: accept: proof: %w", ErrBadProof)
	}
	h.kp, h.th = kp, th
	return Device{DeviceID: id, PublicKey: d, Fingerprint: a.Fingerprint}, nil
}

// Confirm binds the parent's long-term key to the exchange. Call it only
// after Accept succeeded.
func (h *ParentHandshake) Confirm(parent *ecdsa.PrivateKey) (Confirm, error) {
	if h.kp == nil {
		return Confirm{}, fmt.Errorf("pairing: confirm before a verified accept: %w", ErrBadProof)
	}
	p, err := EncodePublicKey(&parent.PublicKey)
	if err != nil {
		return Confirm{}, err
	}
	sig, err := sign(parent, labelConfirm+"\n"+h.th+"\n"+p)
	if err != nil {
		return Confirm{}, err
	}
	return Confirm{PublicKey: p, Signature: sig, Proof: mac(h.kp, labelConfirm, h.th, p)}, nil
}

// VerifyRequest is the terminal's check of a request before it bothers the
// child with lights and sound: right device, right secret.
func VerifyRequest(s Secret, deviceID string, r Request) error {
	if r.DeviceID != deviceID {
		return fmt.Errorf("pairing: request for %s, this is %s: %w", r.DeviceID, deviceID, ErrBadProof)
	}
	if !macOK(s[:], r.Proof, labelRequest, r.DeviceID, r.Nonce, r.EphemeralKey) {
		return fmt.Errorf("pairing: request proof: %w", ErrBadProof)
	}
	if _, err := parseEphemeral(r.EphemeralKey); err != nil {
		return err
	}
	return nil
}

// TerminalHandshake is the terminal's side, from the press on.
type TerminalHandshake struct {
	pairID string
	th     string
	kp     []byte
}

// AcceptRequest answers a verified request once the button was pressed.
// key is the device key, fingerprint the terminal's DTLS certificate's.
func AcceptRequest(s Secret, key *ecdsa.PrivateKey, fingerprint, pairID string, r Request) (*TerminalHandshake, Accept, error) {
	d, err := EncodePublicKey(&key.PublicKey)
	if err != nil {
		return nil, Accept{}, err
	}
	id, err := DeviceIDOf(d)
	if err != nil {
		return nil, Accept{}, err
	}
	if err := VerifyRequest(s, id, r); err != nil {
		return nil, Accept{}, err
	}
	return accept(s, key, d, id, fingerprint, pairID, r)
}

// accept builds the answer; key's SPKI is d and the label's ID is id.
func accept(s Secret, key *ecdsa.PrivateKey, d, id, fingerprint, pairID string, r Request) (*TerminalHandshake, Accept, error) {
	ep, err := parseEphemeral(r.EphemeralKey)
	if err != nil {
		return nil, Accept{}, err
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, Accept{}, fmt.Errorf("pairing: ephemeral key: %w", err)
	}
	z, err := eph.ECDH(ep)
	if err != nil {
		return nil, Accept{}, fmt.Errorf("pairing: ecdh: %w", err)
	}
	a := Accept{EphemeralKey: b64.EncodeToString(eph.PublicKey().Bytes()), PublicKey: d, Fingerprint: fingerprint}
	th := transcript(id, pairID, r, a)
	kt, kp, err := keys(s, z, th)
	if err != nil {
		return nil, Accept{}, err
	}
	if a.Signature, err = sign(key, labelAccept+"\n"+th); err != nil {
		return nil, Accept{}, err
	}
	a.Proof = mac(kt, labelAccept, th)
	return &TerminalHandshake{pairID: pairID, th: th, kp: kp}, a, nil
}

// PairID is the exchange this handshake belongs to.
func (h *TerminalHandshake) PairID() string { return h.pairID }

// VerifyConfirm checks the page's last message and returns the parent's
// long-term key, which the terminal then trusts for every call.
func (h *TerminalHandshake) VerifyConfirm(c Confirm) (*ecdsa.PublicKey, error) {
	p, err := ParsePublicKey(c.PublicKey)
	if err != nil {
		return nil, err
	}
	if !macOK(h.kp, c.Proof, labelConfirm, h.th, c.PublicKey) {
		return nil, fmt.Errorf("pairing: confirm proof: %w", ErrBadProof)
	}
	if !verify(p, labelConfirm+"\n"+h.th+"\n"+c.PublicKey, c.Signature) {
		return nil, fmt.Errorf("pairing: confirm signature: %w", ErrBadProof)
	}
	return p, nil
}
