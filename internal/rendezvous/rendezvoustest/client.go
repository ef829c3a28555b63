// Package rendezvoustest has the Go client of the rendezvous protocol (a
// terminal, a parent or a pairing page; the parent's pairing and call
// signatures as the web app makes and checks them) and a test server, for
// the server's own tests, the end-to-end tests and the demo's.
package rendezvoustest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Client is one WebSocket to the server: the Go client of the protocol
// that the server tests, the end-to-end tests' phone and the demo's tests
// share. A background goroutine reads and strictly decodes every message
// (so a server message that breaks the protocol fails the test that reads
// it), and the Recv family takes them in order.
//
// Send signs the call messages it sends with Key over their call's binding
// (package pairing). A client that knows its terminal (DialPaired) is the
// web app's twin: it signs only in the protocol's order and FromTerminal
// checks what the terminal signed. One that does not (the server tests'
// clients, which may play either end) records what it receives unchecked
// and signs over what it has, making up what it lacks: the server relays
// by call ID alone.
type Client struct {
	Conn      *websocket.Conn
	Challenge protocol.Message // the server's first message
	Welcome   protocol.Message // set by the Dial* helpers that log in
	// Key signs the call messages Send sends (ring, accept, offer, answer):
	// the terminal's device key, or a parent's key. Dial gives every client
	// a throwaway key; the server never checks the signatures, the other
	// party does.
	Key *ecdsa.PrivateKey

	device *pairing.Device // the paired terminal (DialPaired); nil: check nothing
	calls  pairing.Calls
	rang   sync.Map // call ID → true: the calls this client rang (Sign)

	in     chan received
	closed chan struct{} // the reader saw the socket end
	err    error         // why; valid after closed
}

type received struct {
	m   protocol.Message
	err error
}

var (
	// ErrUnexpected: the server sent something other than what the test
	// expected.
	ErrUnexpected = errors.New("rendezvoustest: unexpected message")
	// ErrNotFromTerminal: a ring, accept or offer not signed by the paired
	// terminal (or a replay): the rendezvous server, or someone through it,
	// is not the terminal.
	ErrNotFromTerminal = errors.New("message not signed by the paired terminal")
)

// RefusedError is the server's error message where another was expected.
type RefusedError struct {
	Code, Text string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("rendezvoustest: refused: %s: %s", e.Code, e.Text)
}

func (e *RefusedError) Unwrap() error { return ErrUnexpected }

// Dial connects to wsURL (ws://host/ws) with the protocol.Subprotocol subprotocol and
// reads the challenge. It does not log in.
func Dial(ctx context.Context, wsURL string) (*Client, error) {
	return DialVia(ctx, wsURL, httpClientFor(wsURL))
}

// DialVia is Dial over hc: one bound to a source address, say, to play a
// client at another loopback address.
func DialVia(ctx context.Context, wsURL string, hc *http.Client) (*Client, error) {
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("rendezvoustest: dial %s: %w", wsURL, err)
	}
	conn.SetReadLimit(protocol.MaxMessageBytes)
	key, _ := NewKey()
	c := &Client{Conn: conn, Key: key, in: make(chan received, 1024), closed: make(chan struct{})}
	go c.readLoop()
	c.Challenge, err = c.Expect(ctx, protocol.TypeChallenge)
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) readLoop() {
	defer close(c.closed)
	for {
		typ, data, err := c.Conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		if typ != websocket.MessageText {
			c.in <- received{err: fmt.Errorf("rendezvoustest: server sent a binary message: %w", ErrUnexpected)}
			continue
		}
		m, err := protocol.Decode(data)
		if err != nil {
			err = fmt.Errorf("rendezvoustest: server sent an invalid message %s: %w", data, err)
		} else if c.device == nil {
			c.calls.Observe(m)
		}
		c.in <- received{m: m, err: err}
	}
}

// Close closes the socket normally.
func (c *Client) Close() error {
	return c.Conn.Close(websocket.StatusNormalClosure, "bye")
}

// Send encodes (and so validates) m and sends it. A ring, accept, offer or
// answer without a signature is signed with c.Key first (Sign).
func (c *Client) Send(ctx context.Context, m protocol.Message) error {
	if err := c.Sign(&m); err != nil {
		return err
	}
	data, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, data)
}

// SendRaw sends bytes as one text message, unchecked: for bad-input tests.
func (c *Client) SendRaw(ctx context.Context, data []byte) error {
	if err := c.Conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("rendezvoustest: send: %w", err)
	}
	return nil
}

// Recv returns the next message.
func (c *Client) Recv(ctx context.Context) (protocol.Message, error) {
	select {
	case r := <-c.in:
		return r.m, r.err
	default:
	}
	select {
	case r := <-c.in:
		return r.m, r.err
	case <-c.closed:
		// Drain what arrived before the close.
		select {
		case r := <-c.in:
			return r.m, r.err
		default:
		}
		return protocol.Message{}, fmt.Errorf("rendezvoustest: socket closed: %w", c.err)
	case <-ctx.Done():
		return protocol.Message{}, fmt.Errorf("rendezvoustest: waiting for a message: %w", ctx.Err())
	}
}

// Expect returns the next message, which must be of type typ; an error
// message in its place is a *RefusedError.
func (c *Client) Expect(ctx context.Context, typ string) (protocol.Message, error) {
	m, err := c.Recv(ctx)
	if err != nil {
		return m, fmt.Errorf("rendezvoustest: expecting %s: %w", typ, err)
	}
	if m.Type == protocol.TypeError && typ != protocol.TypeError {
		return m, fmt.Errorf("rendezvoustest: expecting %s: %w", typ, &RefusedError{m.Code, m.Text})
	}
	if m.Type != typ {
		return m, fmt.Errorf("rendezvoustest: expected %s, got %s (%s): %w", typ, m.Type, describe(m), ErrUnexpected)
	}
	return m, nil
}

// ExpectError returns the next message, which must be an error with code.
func (c *Client) ExpectError(ctx context.Context, code string) (protocol.Message, error) {
	m, err := c.Expect(ctx, protocol.TypeError)
	if err != nil {
		return m, err
	}
	if m.Code != code {
		return m, fmt.Errorf("rendezvoustest: expected error %s, got %s (%q): %w", code, m.Code, m.Text, ErrUnexpected)
	}
	return m, nil
}

// WaitFor skips messages until one of type typ arrives.
func (c *Client) WaitFor(ctx context.Context, typ string) (protocol.Message, error) {
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			return m, fmt.Errorf("rendezvoustest: waiting for %s: %w", typ, err)
		}
		if m.Type == typ {
			return m, nil
		}
	}
}

// WaitClosed skips messages until the server closes the socket and returns
// the close status (-1 if the socket ended without one).
func (c *Client) WaitClosed(ctx context.Context) (websocket.StatusCode, error) {
	select {
	case <-c.closed:
		return websocket.CloseStatus(c.err), nil
	case <-ctx.Done():
		return -1, fmt.Errorf("rendezvoustest: waiting for the server to close: %w", ctx.Err())
	}
}

// Barrier proves that nothing is queued for this client: it sends a hangup
// for a call that cannot exist and expects unknown_call as the very next
// message. Anything the server queued for this client earlier arrives before
// that answer, so a test that calls Barrier after a stranger's attempt
// proves the attempt reached nobody. Not for pairing sockets.
func (c *Client) Barrier(ctx context.Context) error {
	id := protocol.NewID()
	if err := c.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}); err != nil {
		return err
	}
	m, err := c.ExpectError(ctx, protocol.ErrCodeUnknownCall)
	if err != nil {
		return fmt.Errorf("rendezvoustest: barrier: %w", err)
	}
	if m.CallID != id {
		return fmt.Errorf("rendezvoustest: barrier answered for call %s: %w", m.CallID, ErrUnexpected)
	}
	return nil
}

func describe(m protocol.Message) string {
	switch m.Type {
	case protocol.TypeError:
		return m.Code + ": " + m.Text
	case protocol.TypeHangup:
		return "reason " + m.Reason
	}
	return "call " + m.CallID
}

// NewKey returns a fresh terminal key and its device ID.
func NewKey() (*ecdsa.PrivateKey, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return key, DeviceID(key)
}

// DeviceID is the device ID of a terminal key.
func DeviceID(key *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(err)
	}
	return protocol.DeviceID(der)
}

// login sends hello and expects welcome.
func (c *Client) login(ctx context.Context, hello protocol.Message) error {
	if err := c.Send(ctx, hello); err != nil {
		return err
	}
	w, err := c.Expect(ctx, protocol.TypeWelcome)
	if err != nil {
		return fmt.Errorf("rendezvoustest: login as %s: %w", hello.Role, err)
	}
	c.Welcome = w
	return nil
}

// DialTerminal connects and logs in as the terminal with key, carrying a
// fresh device certificate from TestCA (which every test server trusts).
func DialTerminal(ctx context.Context, wsURL string, key *ecdsa.PrivateKey) (*Client, error) {
	cert, err := TestCA().Issue(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return DialTerminalCert(ctx, wsURL, key, cert)
}

// DialTerminalCert connects and logs in as the terminal with key, presenting
// certDER (nil: none) as its device certificate.
func DialTerminalCert(ctx context.Context, wsURL string, key *ecdsa.PrivateKey, certDER []byte) (*Client, error) {
	return DialTerminalVia(ctx, wsURL, httpClientFor(wsURL), key, certDER)
}

// DialTerminalVia is DialTerminalCert over hc: a terminal at another
// loopback address (one behind a carrier-grade NAT, say).
func DialTerminalVia(ctx context.Context, wsURL string, hc *http.Client, key *ecdsa.PrivateKey, certDER []byte) (*Client, error) {
	c, err := DialVia(ctx, wsURL, hc)
	if err != nil {
		return nil, err
	}
	c.Key = key
	hello, err := protocol.SignLogin(key, certDER, c.Challenge.Nonce, "rendezvoustest/1")
	if err == nil {
		err = c.login(ctx, hello)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TerminalHello is the hello DialTerminal sends for key in answer to a
// challenge's nonce: the one place that builds a terminal's login, for
// tests that must send it by hand (to watch what follows a refusal).
func TerminalHello(key *ecdsa.PrivateKey, nonce string) (protocol.Message, error) {
	cert, err := TestCA().Issue(&key.PublicKey)
	if err != nil {
		return protocol.Message{}, err
	}
	return protocol.SignLogin(key, cert, nonce, "rendezvoustest/1")
}

// DialParent connects and logs in as a parent. The welcome is followed by
// the call log, which DialParent returns.
func DialParent(ctx context.Context, wsURL, parentID, token string) (*Client, []protocol.CallRecord, error) {
	c, err := Dial(ctx, wsURL)
	if err != nil {
		return nil, nil, err
	}
	calls, err := c.LoginParent(ctx, parentID, token)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, calls, nil
}

// LoginParent logs a dialled client in as a parent and returns the call
// log that follows the welcome.
func (c *Client) LoginParent(ctx context.Context, parentID, token string) ([]protocol.CallRecord, error) {
	err := c.login(ctx, protocol.Message{Type: protocol.TypeHello, Role: protocol.RoleParent, ParentID: parentID, Token: token})
	if err != nil {
		return nil, err
	}
	log, err := c.Expect(ctx, protocol.TypeCallLog)
	return log.Calls, err
}

// LoginPairing logs a dialled client in as a pairing page.
func (c *Client) LoginPairing(ctx context.Context) error {
	return c.login(ctx, protocol.Message{Type: protocol.TypeHello, Role: protocol.RolePairing})
}

// DialPairing connects as a pairing page.
func DialPairing(ctx context.Context, wsURL string) (*Client, error) {
	return DialPairingVia(ctx, wsURL, httpClientFor(wsURL))
}

// DialPairingVia is DialPairing over hc (DialVia).
func DialPairingVia(ctx context.Context, wsURL string, hc *http.Client) (*Client, error) {
	c, err := DialVia(ctx, wsURL, hc)
	if err != nil {
		return nil, err
	}
	if err := c.LoginPairing(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// DialPaired logs in as the parent of a pairing, as the web app does: Send
// signs with cred.Key, in the protocol's order, and FromTerminal checks
// the terminal's messages with what pairing learned of it. The call log
// that follows the welcome is left to read.
func DialPaired(ctx context.Context, wsURL string, cred Credentials) (*Client, error) {
	c, err := Dial(ctx, wsURL)
	if err != nil {
		return nil, err
	}
	c.Key, c.device = cred.Key, &cred.Device
	err = c.login(ctx, protocol.Message{Type: protocol.TypeHello, Role: protocol.RoleParent, ParentID: cred.ParentID, Token: cred.Token})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Sign fills in the signature of a call message that needs one and has
// none, with c.Key, the time now and over the call's binding; a ring,
// prepare or accept gets a fresh nonce (an accept after a prepare, the
// prepare's). A client that knows its terminal signs only
// what follows in the protocol's order (an accept of the terminal's ring,
// an answer to its checked offer). One that does not records m and makes
// up what the binding lacks; an offer or answer of its without a
// fingerprint gets TestFingerprint (the server tests relay placeholder
// SDPs).
func (c *Client) Sign(m *protocol.Message) error {
	switch m.Type {
	case protocol.TypeRing, protocol.TypeAccept, protocol.TypePrepare, protocol.TypeOffer, protocol.TypeAnswer:
	default:
		return nil
	}
	if m.Signature != "" || c.Key == nil {
		return nil
	}
	if b := c.calls.Get(m.CallID); m.Type == protocol.TypeAccept && m.Nonce == "" && b.Prepared {
		m.Nonce = b.AcceptNonce // the accept of a prepared call brings the prepare's nonce
	}
	// A prepare of a call this client rang carries no nonce: the callee's
	// offer brings the one its accept will ("Preparing a call").
	_, own := c.rang.Load(m.CallID)
	own = own && m.Type == protocol.TypePrepare
	if m.Type == protocol.TypeRing {
		c.rang.Store(m.CallID, true)
	}
	if (m.Type == protocol.TypeRing || m.Type == protocol.TypeAccept || m.Type == protocol.TypePrepare) && m.Nonce == "" && !own {
		m.Nonce = pairing.NewNonce()
	}
	var bind pairing.Binding
	if c.device != nil {
		var err error
		if bind, err = c.calls.Add(*m, nil); err != nil {
			return fmt.Errorf("rendezvoustest: sign %s %s: %w: %w", m.Type, m.CallID, ErrNotFromTerminal, err)
		}
	} else {
		if m.SDP != "" && !strings.Contains(m.SDP, "a=fingerprint:") {
			if !strings.HasSuffix(m.SDP, "\n") {
				m.SDP += "\r\n"
			}
			m.SDP += "a=fingerprint:" + TestFingerprint + "\r\n"
		}
		c.calls.Observe(*m)
		bind = c.calls.Get(m.CallID)
		if bind.RingNonce == "" {
			bind.RingNonce = pairing.NewNonce()
		}
		if bind.AcceptNonce == "" && m.Type != protocol.TypeRing && !own {
			bind.AcceptNonce = pairing.NewNonce()
		}
		if bind.OfferHash == "" && m.Type == protocol.TypeAnswer {
			bind.OfferHash, _ = pairing.SDPHash(m.SDP)
		}
		bind.Restart = m.Restart
	}
	sig, err := pairing.SignCall(c.Key, m.Type, bind, m.SDP, time.Now())
	if err != nil {
		return fmt.Errorf("rendezvoustest: sign %s: %w", m.Type, err)
	}
	m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
	return nil
}

// TakeCall carries call callID's binding over from old, the connection
// this client replaces (a parent resuming its call on a new socket).
func (c *Client) TakeCall(old *Client, callID string) {
	c.calls.Set(old.calls.Get(callID))
}

// FromTerminal checks that a ring, accept or offer was signed by the
// paired terminal over its call's binding (an accept and offer over this
// client's own nonce), recently, in the protocol's order, and that an
// offer carries the DTLS fingerprint pinned at pairing. What passes is
// added to the binding. Only for a client from DialPaired.
func (c *Client) FromTerminal(m protocol.Message, now time.Time) error {
	if c.device == nil || c.device.PublicKey == nil {
		return fmt.Errorf("rendezvoustest: no terminal key: %w", ErrNotFromTerminal)
	}
	switch m.Type {
	case protocol.TypeRing, protocol.TypeAccept, protocol.TypeOffer:
	default:
		return fmt.Errorf("rendezvoustest: %s %s is not signed by a terminal: %w", m.Type, m.CallID, ErrNotFromTerminal)
	}
	_, err := c.calls.Add(m, func(b pairing.Binding) error {
		if m.Type == protocol.TypeOffer {
			fp, err := pairing.SDPFingerprint(m.SDP)
			if err != nil {
				return err
			}
			if fp != c.device.Fingerprint { // the pinned one: nothing else is acceptable
				return pairing.ErrFingerprint
			}
		}
		return pairing.VerifyCall(c.device.PublicKey, m.Type, b, m.SDP, pairing.CallSig{SignedAt: m.SignedAt, Signature: m.Signature}, now)
	})
	if err != nil {
		return fmt.Errorf("rendezvoustest: %s %s: %w: %w", m.Type, m.CallID, ErrNotFromTerminal, err)
	}
	return nil
}

// TestFingerprint is the DTLS fingerprint test terminals without a real
// certificate claim.
const TestFingerprint = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

// Credentials are what pairing gives the parent: the server's login, its
// own long-term key (it signs every ring, accept and answer) and what it
// learned of the terminal (every offer must be signed with its key and
// carry its DTLS fingerprint).
type Credentials struct {
	DeviceID string
	ParentID string
	Token    string
	Key      *ecdsa.PrivateKey
	Device   pairing.Device
}

// AnswerPair plays the terminal's side of pairing: it waits for a
// pair_request and checks it with secret (answering pair_reject
// "bad_secret" if wrong), answers pair_accept (the button press), checks
// the page's pair_confirm and completes. It returns the server's paired
// message and the parent key the terminal learned.
func (c *Client) AnswerPair(ctx context.Context, secret pairing.Secret) (protocol.Message, *ecdsa.PublicKey, error) {
	req, err := c.WaitFor(ctx, protocol.TypePairRequest)
	if err != nil {
		return req, nil, err
	}
	dev := c.Welcome.DeviceID
	r := pairing.Request{DeviceID: req.DeviceID, Nonce: req.Nonce, EphemeralKey: req.EphemeralKey, Proof: req.Proof}
	h, acc, err := pairing.AcceptRequest(secret, c.Key, TestFingerprint, req.PairID, r)
	if err != nil {
		if err := c.Send(ctx, protocol.Message{Type: protocol.TypePairReject, PairID: req.PairID, Reason: "bad_secret"}); err != nil {
			return req, nil, err
		}
		return req, nil, fmt.Errorf("rendezvoustest: pair request %s refused (rejected): %w: %w", req.PairID, err, ErrUnexpected)
	}
	err = c.Send(ctx, protocol.Message{Type: protocol.TypePairAccept, PairID: req.PairID, EphemeralKey: acc.EphemeralKey,
		PublicKey: acc.PublicKey, Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		return req, nil, err
	}
	conf, err := c.WaitFor(ctx, protocol.TypePairConfirm)
	if err != nil {
		return conf, nil, err
	}
	parent, err := h.VerifyConfirm(pairing.Confirm{PublicKey: conf.PublicKey, Signature: conf.Signature, Proof: conf.Proof})
	if err != nil {
		c.Send(ctx, protocol.Message{Type: protocol.TypePairReject, PairID: req.PairID, Reason: "bad_secret"})
		return conf, nil, fmt.Errorf("rendezvoustest: pair confirm refused: %w", err)
	}
	if err := c.Send(ctx, protocol.Message{Type: protocol.TypePairComplete, PairID: req.PairID}); err != nil {
		return req, nil, err
	}
	paired, err := c.WaitFor(ctx, protocol.TypePaired)
	if err != nil {
		return paired, nil, err
	}
	if paired.PairID != req.PairID || paired.DeviceID != dev || paired.Token != "" {
		return paired, nil, fmt.Errorf("rendezvoustest: terminal's paired message is wrong: %+v: %w", paired, ErrUnexpected)
	}
	return paired, parent, nil
}

// PairPage is a pairing page's socket part way through the handshake.
type PairPage struct {
	*Client
	H *pairing.ParentHandshake
	// Pending is the credential Finish made before it sent the confirm
	// (nil before then): what a page that lost its socket or the server
	// logs in with to learn how the pairing ended.
	Pending *Credentials
}

// StartPair opens a pairing socket and sends a pair_request for device.
func StartPair(ctx context.Context, wsURL, device string, secret pairing.Secret) (*PairPage, error) {
	return StartPairVia(ctx, wsURL, httpClientFor(wsURL), device, secret)
}

// StartPairVia is StartPair over hc (DialVia).
func StartPairVia(ctx context.Context, wsURL string, hc *http.Client, device string, secret pairing.Secret) (*PairPage, error) {
	page, err := DialPairingVia(ctx, wsURL, hc)
	if err != nil {
		return nil, err
	}
	p, err := page.RequestPair(ctx, device, secret)
	if err != nil {
		page.Close()
		return nil, err
	}
	return p, nil
}

// RequestPair sends a pair_request for device with secret on a client
// logged in as a pairing page (a page may send several, one after another).
func (c *Client) RequestPair(ctx context.Context, device string, secret pairing.Secret) (*PairPage, error) {
	h, err := pairing.StartParent(secret, device)
	if err != nil {
		return nil, err
	}
	r := h.Request()
	err = c.Send(ctx, protocol.Message{Type: protocol.TypePairRequest, DeviceID: device, Nonce: r.Nonce, EphemeralKey: r.EphemeralKey, Proof: r.Proof})
	if err != nil {
		return nil, err
	}
	return &PairPage{Client: c, H: h}, nil
}

// Finish takes the terminal's pair_accept, verifies it, confirms with a
// new parent key and returns the credentials from the server's paired. A
// refusal (another parent paired already, say) is a *RefusedError.
func (p *PairPage) Finish(ctx context.Context) (Credentials, error) {
	acc, err := p.Expect(ctx, protocol.TypePairAccept)
	if err != nil {
		return Credentials{}, err
	}
	dev, err := p.H.Accept(acc.PairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
		Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		return Credentials{}, fmt.Errorf("rendezvoustest: the terminal's accept does not verify: %w", err)
	}
	key, err := pairing.NewKey()
	if err != nil {
		return Credentials{}, err
	}
	conf, err := p.H.Confirm(key)
	if err != nil {
		return Credentials{}, err
	}
	// As the web page does: the credential (parent ID = pair ID, a token
	// of its own) exists before the confirm leaves.
	cred := Credentials{DeviceID: dev.DeviceID, ParentID: acc.PairID, Token: NewToken(), Key: key, Device: dev}
	p.Pending = &cred
	err = p.Send(ctx, protocol.Message{Type: protocol.TypePairConfirm, PairID: acc.PairID, PublicKey: conf.PublicKey,
		Signature: conf.Signature, Proof: conf.Proof, Token: cred.Token})
	if err != nil {
		return Credentials{}, err
	}
	paired, err := p.Expect(ctx, protocol.TypePaired)
	if err != nil {
		return Credentials{}, err
	}
	if paired.DeviceID != dev.DeviceID || paired.Token != "" || paired.ParentID != acc.PairID || paired.PairID != acc.PairID {
		return Credentials{}, fmt.Errorf("rendezvoustest: page's paired message is wrong: %+v: %w", paired, ErrUnexpected)
	}
	return cred, nil
}

// NewToken is a parent's bearer token as its page makes it: 32 random
// bytes, base64url.
func NewToken() string {
	var b [protocol.TokenBytes]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// PairLink is the pairing page opened from the label's link: it asks the
// terminal to pair, calls confirm once the request is sent (a test waits
// there for the terminal's "pairing" lights and presses its button; nil:
// nobody presses) and finishes.
func PairLink(ctx context.Context, wsURL, link string, confirm func(context.Context) error) (Credentials, error) {
	deviceID, secret, err := pairing.ParseURL(link)
	if err != nil {
		return Credentials{}, err
	}
	page, err := StartPair(ctx, wsURL, deviceID, secret)
	if err != nil {
		return Credentials{}, err
	}
	defer page.Close()
	if confirm != nil {
		if err := confirm(ctx); err != nil {
			return Credentials{}, fmt.Errorf("rendezvoustest: confirm on the terminal: %w", err)
		}
	}
	return page.Finish(ctx)
}

// Pair pairs the logged-in terminal with a new parent the way the web page
// does, with terminal answering through AnswerPair.
func Pair(ctx context.Context, wsURL string, terminal *Client, secret pairing.Secret) (Credentials, error) {
	page, err := StartPair(ctx, wsURL, terminal.Welcome.DeviceID, secret)
	if err != nil {
		return Credentials{}, err
	}
	defer page.Close()
	errc := make(chan error, 1)
	go func() {
		_, _, err := terminal.AnswerPair(ctx, secret)
		errc <- err
	}()
	cred, err := page.Finish(ctx)
	if terr := <-errc; terr != nil {
		return Credentials{}, terr
	}
	return cred, err
}
