package terminal

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestConnCloseConcurrent closes one connection from many goroutines at once,
// as the loop, the writer and the reconnect loop can when a link fails: a
// check-then-close would panic with "close of closed channel".
func TestConnCloseConcurrent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, _, _ = ws.Read(r.Context()) // until the client closes
		ws.CloseNow()
	}))
	defer srv.Close()

	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c := &wsConn{ws: ws, done: make(chan struct{}), log: slog.New(slog.DiscardHandler)}
		var start, wg sync.WaitGroup
		start.Add(1)
		for range 8 {
			wg.Go(func() { start.Wait(); c.Close() })
		}
		start.Done()
		wg.Wait()
		select {
		case <-c.done:
		default:
			t.Fatal("done is still open after close")
		}
	}
}

// TestConnCloseDoesNotWaitForPeer: the event loop closes a connection when
// its send queue is full, typically on a dead link, and must not wait for a
// close handshake that the peer never answers (coder/websocket waits up to
// 5 s for it, then more for the write).
func TestConnCloseDoesNotWaitForPeer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		<-release // a peer that does not answer
		ws.CloseNow()
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsConn{ws: ws, done: make(chan struct{}), log: slog.New(slog.DiscardHandler)}
	returned := make(chan struct{})
	go func() { c.Close(); close(returned) }()
	select {
	case <-returned:
	case <-time.After(3 * time.Second):
		t.Fatal("close waited for the peer's close handshake")
	}
}
