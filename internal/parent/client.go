// Package parent is the parent's side of Tuanju in Go: pairing with a
// terminal and taking part in calls, speaking exactly the protocol the web app
// speaks. The demo uses it to pair automatically, and the end-to-end tests and
// benchmarks use it as a "phone" that really decodes the terminal's media.
package parent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/coder/websocket"

	"github.com/tuanju/tuanju/internal/protocol"
	"github.com/tuanju/tuanju/pairing"
)

// Credentials are what pairing gives the parent's phone.
type Credentials struct {
	DeviceID string `json:"device_id"`
	ParentID string `json:"parent_id"`
	Token    string `json:"token"`
}

var (
	// ErrRefused: the server answered with an error message.
	ErrRefused = errors.New("refused")
	// ErrBadProof: the terminal's pairing proof did not verify.
	ErrBadProof = errors.New("terminal's pairing proof is wrong")
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
}

func dial(ctx context.Context, wsURL string, hello protocol.Message) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, fmt.Errorf("parent: dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(protocol.MaxMessageBytes)
	c := &Conn{ws: ws, in: make(chan protocol.Message, 256), done: make(chan struct{})}
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
	return dial(ctx, wsURL, protocol.Message{Type: protocol.TypeHello, Role: protocol.RoleParent, ParentID: cred.ParentID, Token: cred.Token})
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

// Send validates and sends one message.
func (c *Conn) Send(ctx context.Context, m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
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

// Pair runs the pairing page's side of pairing: it asks the terminal in
// pairingURL to pair, waits for someone to press the terminal's button
// (confirm is called once the request is sent: a demo or test waits there for
// the terminal's "pairing" lights and presses its button), checks the
// terminal's proof and returns the credentials.
func Pair(ctx context.Context, wsURL, pairingURL string, confirm func(context.Context) error) (Credentials, error) {
	deviceID, secret, err := pairing.ParseURL(pairingURL)
	if err != nil {
		return Credentials{}, err
	}
	c, err := dial(ctx, wsURL, protocol.Message{Type: protocol.TypeHello, Role: protocol.RolePairing})
	if err != nil {
		return Credentials{}, err
	}
	defer c.Close()
	nonce := protocol.NewNonce()
	err = c.Send(ctx, protocol.Message{Type: protocol.TypePairRequest, DeviceID: deviceID, Nonce: nonce,
		Proof: pairing.RequestProof(secret, deviceID, nonce)})
	if err != nil {
		return Credentials{}, err
	}
	if confirm != nil {
		if err := confirm(ctx); err != nil {
			return Credentials{}, fmt.Errorf("parent: confirm on terminal: %w", err)
		}
	}
	m, err := c.Await(ctx, protocol.TypePaired)
	if err != nil {
		return Credentials{}, err
	}
	if !pairing.Verify(pairing.AcceptProof(secret, deviceID, nonce, m.PairID), m.Proof) {
		return Credentials{}, fmt.Errorf("parent: pair %s: %w", deviceID, ErrBadProof)
	}
	return Credentials{DeviceID: m.DeviceID, ParentID: m.ParentID, Token: m.Token}, nil
}
