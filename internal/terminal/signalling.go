package terminal

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// sendQueue bounds what may wait for a slow link. Signalling is small; a
// full queue means the link is dead and the connection is dropped.
const sendQueue = 64

// wsConn is one authenticated signalling connection to the rendezvous
// server over a websocket: the real ServerConn.
type wsConn struct {
	ws      *websocket.Conn
	welcome protocol.Message
	out     chan protocol.Message
	done    chan struct{}
	once    sync.Once // Close runs from the loop, the writer and the reader
	log     *slog.Logger
	// probe asks the pinger for a ping now (a ring is going out); the
	// pinger also pings every link.PingInterval on its own.
	probe chan struct{}
	link  linkCheck
}

// linkCheck is how the terminal proves its own link alive. TCP alone does
// not: through a link that silently stops carrying packets (a router
// rebooting, a pulled upstream cable, a mobile cell gone) a socket stays
// "open" for many minutes, and the unit would show "ready" all along.
type linkCheck struct {
	// PingInterval is how often the terminal pings the server; PongTimeout
	// how long it waits for the pong before it declares the link dead and
	// drops the connection (then it shows "no network" and reconnects). A
	// dead link is noticed within PingInterval+PongTimeout, and within
	// PongTimeout of a press (each ring is sent with a ping).
	PingInterval, PongTimeout time.Duration
}

// Defaults of linkCheck: a dead link shows within 10 s. A ping and its pong
// are about 130 bytes with TCP/IP headers, every 5 s: some 2 MB a month on
// the unit's (unmetered) broadband, nothing on the parent's phone.
const (
	DefaultPingInterval = 5 * time.Second
	DefaultPongTimeout  = 5 * time.Second
)

var _ ServerConn = (*wsConn)(nil)

// serverClient is the HTTP client for signalling dials: with roots, a wss://
// server must chain to them only; nil means the default client.
func serverClient(roots *x509.CertPool) *http.Client {
	if roots == nil {
		return nil
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
}

// dial connects and logs in: challenge → signed hello → welcome. client nil
// is the default HTTP client.
func dial(ctx context.Context, url string, client *http.Client, key *ecdsa.PrivateKey, cert []byte, version string, link linkCheck, log *slog.Logger) (*wsConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}, HTTPClient: client})
	if err != nil {
		return nil, fmt.Errorf("terminal: dial %s: %w", url, err)
	}
	ws.SetReadLimit(protocol.MaxMessageBytes)
	fail := func(err error) (*wsConn, error) {
		ws.Close(websocket.StatusPolicyViolation, "login failed")
		return nil, err
	}
	ch, err := readMsg(dctx, ws)
	if err != nil {
		return fail(fmt.Errorf("terminal: read challenge: %w", err))
	}
	if ch.Type != protocol.TypeChallenge {
		return fail(fmt.Errorf("terminal: expected challenge, got %s: %w", ch.Type, ErrProtocol))
	}
	hello, err := protocol.SignLogin(key, cert, ch.Nonce, version)
	if err != nil {
		return fail(err)
	}
	if err := writeMsg(dctx, ws, hello); err != nil {
		return fail(fmt.Errorf("terminal: send hello: %w", err))
	}
	w, err := readMsg(dctx, ws)
	if err != nil {
		return fail(fmt.Errorf("terminal: read welcome: %w", err))
	}
	if w.Type == protocol.TypeError && w.Code == protocol.ErrCodeAuthFailed {
		return fail(fmt.Errorf("terminal: login refused: %s %s: %w: %w", w.Code, w.Text, ErrLoginRefused, ErrAuthFailed))
	}
	if w.Type == protocol.TypeError {
		return fail(fmt.Errorf("terminal: login refused: %s %s: %w", w.Code, w.Text, ErrLoginRefused))
	}
	if w.Type != protocol.TypeWelcome {
		return fail(fmt.Errorf("terminal: expected welcome, got %s: %w", w.Type, ErrProtocol))
	}
	c := &wsConn{ws: ws, welcome: w, out: make(chan protocol.Message, sendQueue), done: make(chan struct{}), log: log,
		probe: make(chan struct{}, 1), link: link}
	go c.writer()
	go c.pinger()
	return c, nil
}

func readMsg(ctx context.Context, ws *websocket.Conn) (protocol.Message, error) {
	typ, data, err := ws.Read(ctx)
	if err != nil {
		return protocol.Message{}, err
	}
	if typ != websocket.MessageText {
		return protocol.Message{}, fmt.Errorf("binary message: %w", ErrProtocol)
	}
	return protocol.Decode(data)
}

func writeMsg(ctx context.Context, ws *websocket.Conn, m protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, b)
}

// Welcome is the server's welcome at login.
func (c *wsConn) Welcome() protocol.Message { return c.welcome }

// Send queues a message. It never blocks the caller (the event loop): a full
// queue closes the connection, and the reconnect logic takes over.
func (c *wsConn) Send(m protocol.Message) {
	if m.Type == protocol.TypeRing {
		// A press on a link that died since the last ping must not
		// show "calling" for the whole ring: check the link now.
		select {
		case c.probe <- struct{}{}:
		default:
		}
	}
	select {
	case c.out <- m:
	case <-c.done:
	default:
		c.log.Warn("signalling send queue full; dropping connection")
		c.Close()
	}
}

func (c *wsConn) writer() {
	for {
		select {
		case <-c.done:
			return
		case m := <-c.out:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := writeMsg(ctx, c.ws, m)
			cancel()
			if err != nil {
				c.log.Warn("signalling write failed", "type", m.Type, "err", err)
				c.Close()
				return
			}
		}
	}
}

// pinger pings the server every PingInterval, and at once when asked
// (probe); a pong that does not come within PongTimeout drops the
// connection at once (no close handshake: nothing would answer it), and
// the reconnect loop takes over. The pong is read by Receive, which the
// reconnect loop keeps calling.
func (c *wsConn) pinger() {
	t := time.NewTicker(c.link.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.probe:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.link.PongTimeout)
		start := time.Now()
		err := c.ws.Ping(ctx)
		cancel()
		select {
		case <-c.done:
			return
		default:
		}
		if err != nil {
			c.log.Warn("signalling link dead: no pong from the server; dropping the connection", "waited", time.Since(start).Round(time.Millisecond), "err", err)
			c.kill()
			return
		}
		t.Reset(c.link.PingInterval)
	}
}

// Receive returns the server's next message. A message the server sends
// that we cannot decode is logged and skipped: one bad message must not
// drop a call.
func (c *wsConn) Receive(ctx context.Context) (protocol.Message, error) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return protocol.Message{}, err
		}
		if typ != websocket.MessageText {
			c.log.Warn("ignoring binary signalling message")
			continue
		}
		m, err := protocol.Decode(data)
		if err != nil {
			c.log.Warn("ignoring bad signalling message", "err", err)
			continue
		}
		return m, nil
	}
}

// Close is safe from any goroutine, any number of times: the loop, the
// writer and the reconnect loop all close a connection that fails under
// them.
//
// The close handshake runs in the background: it can take seconds on a dead
// link, and the caller may be the event loop (Send on a full queue), which
// must keep answering the button. The reader sees the close and the
// reconnect loop takes over.
func (c *wsConn) Close() {
	c.once.Do(func() {
		close(c.done)
		go c.ws.Close(websocket.StatusNormalClosure, "")
	})
}

// kill drops a connection whose link is dead, without the handshake, so
// the reader returns at once.
func (c *wsConn) kill() {
	c.once.Do(func() { close(c.done) })
	c.ws.CloseNow()
}
