package rendezvous

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// countedConn counts the writes a socket makes to the kernel.
type countedConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// socketPair is a server session on a real WebSocket over loopback, its
// writes counted, and the client's end; batched says whether the session
// writes through its socketOut's hold and release (as serveWS makes it).
func socketPair(t *testing.T, batched bool) (*session, *countedConn, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	made := make(chan *session, 1)
	var counted *countedConn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb := &smallBuffers{ResponseWriter: w}
		conn, err := websocket.Accept(sb, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		counted = &countedConn{Conn: sb.out.conn}
		sb.out.conn = counted
		s := newSession(conn, "127.0.0.1", 64, discardLog())
		if batched {
			s.out = sb.out
		}
		made <- s
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	s := <-made
	t.Cleanup(func() { s.cancel(); s.conn.CloseNow() })
	return s, counted, c
}

// TestQueuedFramesGoOutInOneWrite: what a socket has queued when its
// writer runs (a hangup and the call log behind it) reaches the kernel in
// one write, in order, with a call log longer than the socket's buffer
// (two writes before); and what is held goes out before the writer waits
// for a message still being made, not after it. The control writes each
// frame alone.
func TestQueuedFramesGoOutInOneWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hangup := hangupMsg(protocol.NewID(), protocol.ReasonHangup)
	bigLog := protocol.Message{Type: protocol.TypeCallLog, Calls: make([]protocol.CallRecord, 30)}
	for i := range bigLog.Calls {
		bigLog.Calls[i] = protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: time.Now().UTC(), Outcome: protocol.OutcomeMissed}
	}
	for _, tc := range []struct {
		name       string
		batched    bool
		wantWrites int64
	}{
		// Control: one write per frame, two for the long log (its header
		// fills the buffer's start, its body is written past it).
		{"each frame alone", false, 4},
		{"batched", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, counted, c := socketPair(t, tc.batched)
			s.send(hangup)
			s.send(bigLog)
			s.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: new(bool)})
			s.start(5*time.Second, time.Hour, time.Hour, discardLog())
			for _, want := range []string{protocol.TypeHangup, protocol.TypeCallLog, protocol.TypePresence} {
				_, data, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				m, err := protocol.Decode(data)
				if err != nil || m.Type != want {
					t.Fatalf("read %s (%v), want %s", data, err, want)
				}
			}
			if got := counted.writes.Load(); got != tc.wantWrites {
				t.Fatalf("%d writes to the kernel, want %d", got, tc.wantWrites)
			}

			// A frame waits for a message being made: what is ahead of it
			// must not wait with it.
			l := newLaterMsg()
			s.send(hangup)
			s.sendLater(l)
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_, data, err := c.Read(rctx)
			rcancel()
			if err != nil {
				t.Fatalf("the frame ahead of a message being made was held back: %v", err)
			}
			if m, err := protocol.Decode(data); err != nil || m.Type != protocol.TypeHangup {
				t.Fatalf("read %s (%v), want the hangup", data, err)
			}
			l.set(&bigLog)
			if _, data, err = c.Read(ctx); err != nil {
				t.Fatal(err)
			}
			if m, err := protocol.Decode(data); err != nil || len(m.Calls) != len(bigLog.Calls) {
				t.Fatalf("read %.80s (%v), want the call log", data, err)
			}
		})
	}
}
