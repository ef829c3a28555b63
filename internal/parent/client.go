// Package parent is the parent's side of Tuanju in Go: pairing with a
// terminal and taking part in calls, speaking exactly the protocol the web app
// speaks. The demo uses it to pair automatically, and the end-to-end tests and
// benchmarks use it as a "phone" that really decodes the terminal's media.
package parent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Credentials are what pairing gives the parent's phone: the server's
// login, the parent's own long-term key (it signs every ring, accept and
// answer) and the terminal's key and DTLS fingerprint (every offer must be
// signed with the one and carry the other).
type Credentials struct {
	DeviceID string
	ParentID string
	Token    string
	Key      *ecdsa.PrivateKey
	Device   pairing.Device
}

var (
	// ErrRefused: the server answered with an error message.
	ErrRefused = errors.New("refused")
	// ErrNotFromTerminal: a ring, accept or offer not signed by the paired
	// terminal (or a replay): the rendezvous server, or someone through it,
	// is not the terminal.
	ErrNotFromTerminal = errors.New("message not signed by the paired terminal")
)

// RefusedError carries the server's error code.
type RefusedError struct {
	Code, Text string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("parent: refused: %s: %s", e.Code, e.Text) }
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Conn is an authenticated signalling connection.
type Conn struct {
	ws      *websocket.Conn
	Welcome protocol.Message
	in      chan protocol.Message
	readErr error
	done    chan struct{}
	wmu     sync.Mutex
	cred    Credentials // signs what Send sends; empty on a pairing socket

	// calls holds each call's binding (package pairing): the nonces of its
	// ring and accept, the hash of its offer. Every signature from the
	// accept on covers this phone's own nonce.
	bmu   sync.Mutex
	calls map[string]*pairing.Binding
}

func dial(ctx context.Context, wsURL string, hello protocol.Message) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, fmt.Errorf("parent: dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(protocol.MaxMessageBytes)
	c := &Conn{ws: ws, in: make(chan protocol.Message, 256), done: make(chan struct{}), calls: map[string]*pairing.Binding{}}
	go c.reader()
	ch, err := c.Next(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("parent: challenge: %w", err)
	}
	if ch.Type != protocol.TypeChallenge {
		c.Close()
		return nil, fmt.Errorf("parent: expected challenge, got %s", ch.Type)
	}
	if err := c.Send(ctx, hello); err != nil {
		c.Close()
		return nil, err
	}
	w, err := c.Next(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("parent: welcome: %w", err)
	}
	if w.Type == protocol.TypeError {
		c.Close()
		return nil, &RefusedError{w.Code, w.Text}
	}
	if w.Type != protocol.TypeWelcome {
		c.Close()
		return nil, fmt.Errorf("parent: expected welcome, got %s", w.Type)
	}
	c.Welcome = w
	return c, nil
}

// Dial logs in as the paired parent.
func Dial(ctx context.Context, wsURL string, cred Credentials) (*Conn, error) {
	c, err := dial(ctx, wsURL, protocol.Message{Type: protocol.TypeHello, Role: protocol.RoleParent, ParentID: cred.ParentID, Token: cred.Token})
	if err != nil {
		return nil, err
	}
	c.cred = cred
	return c, nil
}

func (c *Conn) reader() {
	defer close(c.in)
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.readErr = err
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		m, err := protocol.Decode(data)
		if err != nil {
			c.readErr = fmt.Errorf("parent: server sent a bad message: %w", err)
			return
		}
		c.in <- m
	}
}

// Next returns the next message from the server.
func (c *Conn) Next(ctx context.Context) (protocol.Message, error) {
	select {
	case m, ok := <-c.in:
		if !ok {
			return protocol.Message{}, fmt.Errorf("parent: connection closed: %w", c.readErr)
		}
		return m, nil
	case <-ctx.Done():
		return protocol.Message{}, ctx.Err()
	}
}

// Await returns the next message of type typ, skipping others (presence,
// call logs) that the caller did not ask about.
func (c *Conn) Await(ctx context.Context, typ string) (protocol.Message, error) {
	for {
		m, err := c.Next(ctx)
		if err != nil {
			return m, fmt.Errorf("parent: waiting for %s: %w", typ, err)
		}
		if m.Type == typ {
			return m, nil
		}
		if m.Type == protocol.TypeError {
			return m, &RefusedError{m.Code, m.Text}
		}
	}
}

// Send validates and sends one message. A ring, accept or answer is
// signed with the parent's key first, as the web app does, over the call's
// binding: a ring gets a fresh nonce, an accept the terminal's ring nonce
// and a fresh one of its own, an answer both and the offer's hash (the offer
// must have passed FromTerminal).
func (c *Conn) Send(ctx context.Context, m protocol.Message) error {
	switch m.Type {
	case protocol.TypeRing, protocol.TypeAccept, protocol.TypeAnswer:
		if m.Signature == "" && c.cred.Key != nil {
			b, err := c.bind(&m)
			if err != nil {
				return err
			}
			sig, err := pairing.SignCall(c.cred.Key, m.Type, b, m.SDP, time.Now())
			if err != nil {
				return fmt.Errorf("parent: sign %s: %w", m.Type, err)
			}
			m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
		}
	}
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// bind updates the binding of m's call for a message this phone is about
// to sign and returns what the signature covers.
func (c *Conn) bind(m *protocol.Message) (pairing.Binding, error) {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	b := c.calls[m.CallID]
	switch m.Type {
	case protocol.TypeRing:
		if m.Nonce == "" {
			m.Nonce = pairing.NewNonce()
		}
		b = &pairing.Binding{CallID: m.CallID, RingNonce: m.Nonce}
		c.calls[m.CallID] = b
	case protocol.TypeAccept:
		if b == nil {
			return pairing.Binding{}, fmt.Errorf("parent: accept %s: no ring from the terminal: %w", m.CallID, ErrNotFromTerminal)
		}
		if m.Nonce == "" {
			m.Nonce = pairing.NewNonce()
		}
		b.AcceptNonce = m.Nonce
	case protocol.TypeAnswer:
		if b == nil || b.OfferHash == "" {
			return pairing.Binding{}, fmt.Errorf("parent: answer %s: no verified offer: %w", m.CallID, ErrNotFromTerminal)
		}
	}
	return *b, nil
}

// FromTerminal checks that a ring, accept or offer was signed by the
// paired terminal over this call's binding (the accept and offer over this
// phone's own nonce), recently, and that an offer carries the DTLS
// fingerprint pinned at pairing. What passes is recorded in the binding.
func (c *Conn) FromTerminal(m protocol.Message, now time.Time) error {
	cred := c.cred
	fail := func(err error) error {
		return fmt.Errorf("parent: %s %s: %w: %w", m.Type, m.CallID, ErrNotFromTerminal, err)
	}
	if cred.Device.PublicKey == nil {
		return fmt.Errorf("parent: no terminal key: %w", ErrNotFromTerminal)
	}
	c.bmu.Lock()
	defer c.bmu.Unlock()
	var b pairing.Binding
	switch m.Type {
	case protocol.TypeRing:
		if c.calls[m.CallID] != nil {
			return fail(fmt.Errorf("ring %s seen before: %w", m.CallID, pairing.ErrStale))
		}
		b = pairing.Binding{CallID: m.CallID, RingNonce: m.Nonce}
	case protocol.TypeAccept:
		old := c.calls[m.CallID]
		if old == nil || old.AcceptNonce != "" {
			return fail(errors.New("not a ring of ours waiting for an answer"))
		}
		b = *old
		b.AcceptNonce = m.Nonce
	case protocol.TypeOffer:
		old := c.calls[m.CallID]
		if old == nil || old.AcceptNonce == "" || old.OfferHash != "" {
			return fail(errors.New("no accepted call waiting for an offer"))
		}
		b = *old
		fp, err := pairing.SDPFingerprint(m.SDP)
		if err != nil {
			return fail(err)
		}
		if fp != cred.Device.Fingerprint { // the pinned one: nothing else is acceptable
			return fail(pairing.ErrFingerprint)
		}
	default:
		return fail(fmt.Errorf("%s is not signed", m.Type))
	}
	if err := pairing.VerifyCall(cred.Device.PublicKey, m.Type, b, m.SDP, pairing.CallSig{SignedAt: m.SignedAt, Signature: m.Signature}, now); err != nil {
		return fail(err)
	}
	if m.Type == protocol.TypeOffer {
		b.OfferHash, _ = pairing.SDPHash(m.SDP)
	}
	c.calls[m.CallID] = &b
	if len(c.calls) > 64 {
		for id := range c.calls {
			if id != m.CallID {
				delete(c.calls, id)
				break
			}
		}
	}
	return nil
}

// SendRaw sends bytes as they are: for tests of malformed input.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("parent: send: %w", err)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// Pair runs the pairing page's side of pairing (package pairing's
// handshake): it asks the terminal in pairingURL to pair, waits for someone
// to press the terminal's button (confirm is called once the request is
// sent: a demo or test waits there for the terminal's "pairing" lights and
// presses its button), verifies the terminal, confirms with a new parent
// key and returns the credentials.
func Pair(ctx context.Context, wsURL, pairingURL string, confirm func(context.Context) error) (Credentials, error) {
	deviceID, secret, err := pairing.ParseURL(pairingURL)
	if err != nil {
		return Credentials{}, err
	}
	h, err := pairing.StartParent(secret, deviceID)
	if err != nil {
		return Credentials{}, err
	}
	key, err := pairing.NewKey()
	if err != nil {
		return Credentials{}, err
	}
	c, err := dial(ctx, wsURL, protocol.Message{Type: protocol.TypeHello, Role: protocol.RolePairing})
	if err != nil {
		return Credentials{}, err
	}
	defer c.Close()
	r := h.Request()
	err = c.Send(ctx, protocol.Message{Type: protocol.TypePairRequest, DeviceID: deviceID, Nonce: r.Nonce,
		EphemeralKey: r.EphemeralKey, Proof: r.Proof})
	if err != nil {
		return Credentials{}, err
	}
	if confirm != nil {
		if err := confirm(ctx); err != nil {
			return Credentials{}, fmt.Errorf("parent: confirm on terminal: %w", err)
		}
	}
	acc, err := c.Await(ctx, protocol.TypePairAccept)
	if err != nil {
		return Credentials{}, err
	}
	dev, err := h.Accept(acc.PairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
		Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		return Credentials{}, fmt.Errorf("parent: pair %s: %w", deviceID, err)
	}
	conf, err := h.Confirm(key)
	if err != nil {
		return Credentials{}, err
	}
	err = c.Send(ctx, protocol.Message{Type: protocol.TypePairConfirm, PairID: acc.PairID, PublicKey: conf.PublicKey,
		Signature: conf.Signature, Proof: conf.Proof})
	if err != nil {
		return Credentials{}, err
	}
	m, err := c.Await(ctx, protocol.TypePaired)
	if err != nil {
		return Credentials{}, err
	}
	if m.DeviceID != deviceID || m.PairID != acc.PairID {
		return Credentials{}, fmt.Errorf("parent: paired message for %s/%s, expected %s/%s", m.DeviceID, m.PairID, deviceID, acc.PairID)
	}
	return Credentials{DeviceID: m.DeviceID, ParentID: m.ParentID, Token: m.Token, Key: key, Device: dev}, nil
}
