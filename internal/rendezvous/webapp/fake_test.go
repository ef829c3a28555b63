package webapp_test

import (
	"context"
	"crypto/ecdsa"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/rendezvous/webapp"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// fakeRendezvous is a scripted stand-in for the rendezvous server's /ws: it
// sends the challenge, then hands each authenticated-looking socket to the
// test, which plays the server's part message by message. Everything the page
// sends goes through protocol.Decode, the real server's strict validator, and
// a message it rejects fails the test.
type fakeRendezvous struct {
	t     *testing.T
	term  *fakeTerminal // once paired: signs the "terminal's" messages, checks the page's
	URL   string
	conns chan *pageConn

	mu    sync.Mutex
	live  []*websocket.Conn
	wg    sync.WaitGroup
	ended bool
}

// pageConn is one WebSocket the page opened.
type pageConn struct {
	t     *testing.T
	term  *fakeTerminal
	ws    *websocket.Conn
	hello protocol.Message
	msgs  chan protocol.Message

	// calls is each call's binding (package pairing) as the terminal would
	// hold it: nonces of the rings and accepts either side sent, the hash of
	// the offer sent. The fake signs and checks over it.
	calls pairing.Calls

	// The page's pings are answered with pong, as the server does, and
	// counted; they never reach msgs. deaf: answer none (a dead link).
	pings atomic.Int64
	deaf  atomic.Bool
	// prepares counts the page's prepares (checked, never in msgs);
	// lastPrepare is the newest.
	prepares    atomic.Int64
	lastPrepare atomic.Pointer[protocol.Message]
}

func newFakeRendezvous(t *testing.T) *fakeRendezvous {
	t.Helper()
	f := &fakeRendezvous{t: t, conns: make(chan *pageConn, 16)}
	mux := http.NewServeMux()
	mux.Handle("/ws", f)
	mux.Handle("/", webapp.Handler())
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	f.URL = srv.URL
	t.Cleanup(func() {
		f.mu.Lock()
		f.ended = true
		for _, c := range f.live {
			c.CloseNow()
		}
		f.mu.Unlock()
		f.wg.Wait()
		srv.Close()
	})
	return f
}

func (f *fakeRendezvous) errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ended {
		f.t.Errorf(format, args...)
	}
}

func (f *fakeRendezvous) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		f.errorf("fake rendezvous: accept: %v", err)
		return
	}
	f.mu.Lock()
	if f.ended {
		f.mu.Unlock()
		ws.CloseNow()
		return
	}
	f.live = append(f.live, ws)
	f.wg.Add(1)
	f.mu.Unlock()
	defer f.wg.Done()
	defer ws.CloseNow()

	if ws.Subprotocol() != protocol.Subprotocol {
		f.errorf("fake rendezvous: page did not offer subprotocol %q", protocol.Subprotocol)
		return
	}
	ctx := context.Background()
	f.mu.Lock()
	term := f.term
	f.mu.Unlock()
	pc := &pageConn{t: f.t, ws: ws, term: term, msgs: make(chan protocol.Message, 256)}
	pc.send(protocol.Message{Type: protocol.TypeChallenge, Nonce: protocol.NewNonce(), ServerTime: time.Now().UTC()})
	hello, ok := f.read(ctx, ws)
	if !ok {
		return
	}
	if hello.Type != protocol.TypeHello {
		f.errorf("fake rendezvous: first message is %q, want hello", hello.Type)
		return
	}
	pc.hello = hello
	f.conns <- pc
	for {
		m, ok := f.read(ctx, ws)
		if !ok {
			close(pc.msgs)
			return
		}
		if m.Type == protocol.TypePing {
			pc.pings.Add(1)
			if !pc.deaf.Load() {
				pc.send(protocol.Message{Type: protocol.TypePong})
			}
			continue
		}
		pc.calls.Observe(m)
		if m.Type == protocol.TypePrepare {
			// Optional: the page asks for the terminal's offer while a
			// call rings. Kept out of the tests' way, checked and counted;
			// the binding has its nonce (Observe), or none for the page's
			// own call.
			pc.checkSigned(m)
			pc.lastPrepare.Store(&m)
			pc.prepares.Add(1)
			continue
		}
		pc.msgs <- m
	}
}

// read returns the next message, decoded strictly. A message the real
// validator rejects is a test failure.
func (f *fakeRendezvous) read(ctx context.Context, ws *websocket.Conn) (protocol.Message, bool) {
	typ, data, err := ws.Read(ctx)
	if err != nil {
		return protocol.Message{}, false
	}
	if typ != websocket.MessageText {
		f.errorf("fake rendezvous: page sent a binary message")
		return protocol.Message{}, false
	}
	m, err := protocol.Decode(data)
	if err != nil {
		f.errorf("fake rendezvous: page sent a message the server would reject: %s: %v", data, err)
		return protocol.Message{}, false
	}
	return m, true
}

// accept waits for the page's next socket.
func (f *fakeRendezvous) accept(t *testing.T) *pageConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("fake rendezvous: the page did not connect and say hello")
		return nil
	}
}

// send encodes with protocol.Encode, so the fake never sends what the real
// server could not. A ring, accept or offer without a signature is signed
// with the paired fake terminal's key, as the real terminal signs them.
func (c *pageConn) send(m protocol.Message) {
	c.t.Helper()
	if c.term != nil && m.Signature == "" && (m.Type == protocol.TypeRing || m.Type == protocol.TypeAccept || m.Type == protocol.TypeOffer) {
		var err error
		if m, err = c.signAs(c.term, m); err != nil {
			c.t.Errorf("fake terminal: sign %s: %v", m.Type, err)
			return
		}
	}
	b, err := protocol.Encode(m)
	if err != nil {
		c.t.Errorf("fake rendezvous: encode %s: %v", m.Type, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Errorf("fake rendezvous: send %s: %v", m.Type, err)
	}
}

// signAs signs a ring, accept or offer as term would, over the call's
// binding, and records it there: a ring or accept gets a fresh nonce (unless
// it has one), an offer its hash.
func (c *pageConn) signAs(term *fakeTerminal, m protocol.Message) (protocol.Message, error) {
	if (m.Type == protocol.TypeRing || m.Type == protocol.TypeAccept) && m.Nonce == "" {
		m.Nonce = pairing.NewNonce()
	}
	c.calls.Observe(m)
	bind := c.calls.Get(m.CallID)
	sig, err := pairing.SignCall(term.key, m.Type, bind, m.SDP, time.Now())
	if err != nil {
		return m, err
	}
	m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
	return m, nil
}

// expect returns the page's next message, candidates aside, and fails
// unless it has type typ.
func (c *pageConn) expect(typ string) protocol.Message {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("fake rendezvous: socket closed while waiting for %s", typ)
		}
		if m.Type == protocol.TypeCandidate && typ != protocol.TypeCandidate {
			// Chromium goes on gathering after its connection is up
			// (negotiate returns then): a candidate it trickles late may
			// come before what the test waits for.
			return c.expect(typ)
		}
		if m.Type != typ {
			c.t.Fatalf("fake rendezvous: page sent %s (%+v), want %s", m.Type, m, typ)
		}
		c.checkSigned(m)
		return m
	case <-time.After(15 * time.Second):
		c.t.Fatalf("fake rendezvous: no %s from the page", typ)
	}
	return protocol.Message{}
}

// nextPrepare waits until the page has sent more than was prepares and
// returns the newest.
func (c *pageConn) nextPrepare(t *testing.T, was int64) protocol.Message {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.prepares.Load() == was; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page sent no prepare")
		}
	}
	return *c.lastPrepare.Load()
}

// quiet fails if the page sends anything within d.
func (c *pageConn) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if ok {
			c.t.Fatalf("fake rendezvous: unexpected %s from the page: %+v", m.Type, m)
		}
	case <-time.After(d):
	}
}

func ptr[T any](v T) *T { return &v }

// checkSigned fails the test unless a ring, accept or answer from the page
// verifies with the parent key the fake terminal learned at pairing: the
// page's WebCrypto signatures checked by the Go code the terminal runs.
func (c *pageConn) checkSigned(m protocol.Message) {
	c.t.Helper()
	if c.term == nil || c.term.parent == nil {
		return
	}
	switch m.Type {
	case protocol.TypeRing, protocol.TypeAccept, protocol.TypePrepare, protocol.TypeAnswer:
	default:
		return
	}
	b := c.calls.Get(m.CallID)
	if m.Type == protocol.TypeRing {
		b = pairing.Binding{CallID: m.CallID, RingNonce: m.Nonce}
	}
	sig := pairing.CallSig{SignedAt: m.SignedAt, Signature: m.Signature}
	if err := pairing.VerifyCall(c.term.parent, m.Type, b, m.SDP, sig, time.Now()); err != nil {
		c.t.Errorf("page's %s does not verify with its paired key over the call's binding: %v", m.Type, err)
	}
}

// fakeTerminal is the terminal's half of the keys: its device key (whose
// hash is its ID), its DTLS certificate, and the parent key it learned.
type fakeTerminal struct {
	key    *ecdsa.PrivateKey
	id     string
	cert   webrtc.Certificate
	fp     string
	parent *ecdsa.PublicKey
}

func newFakeTerminal(t *testing.T) *fakeTerminal {
	t.Helper()
	key, err := pairing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := pairing.EncodePublicKey(&key.PublicKey)
	id, _ := pairing.DeviceIDOf(spki)
	dk, _ := pairing.NewKey()
	cert, err := webrtc.GenerateCertificate(dk)
	if err != nil {
		t.Fatal(err)
	}
	fps, err := cert.GetFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	fp, err := pairing.Fingerprint(fps[0].Algorithm, fps[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTerminal{key: key, id: id, cert: *cert, fp: fp}
}

// expect2 is expect for a message of either type.
func (c *pageConn) expect2(a, b string) protocol.Message {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("fake rendezvous: socket closed while waiting for %s", a)
		}
		if m.Type != a && m.Type != b {
			c.t.Fatalf("fake rendezvous: page sent %s (%+v), want %s or %s", m.Type, m, a, b)
		}
		return m
	case <-time.After(15 * time.Second):
		c.t.Fatalf("fake rendezvous: no %s from the page", a)
	}
	return protocol.Message{}
}
