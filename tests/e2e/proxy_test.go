package e2e

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

func asRefused(err error, target **rendezvoustest.RefusedError) bool { return errors.As(err, target) }

// proxy is a TCP relay on 127.0.0.1 between the terminal and the server
// that a test can cut, like a yanked network cable (every connection
// dropped, new ones refused), or black-hole, like a router upstream that
// dies (bytes stop both ways, nothing is closed; new connections are
// accepted and hear nothing), and then restore. After a black hole the
// bytes held carry on in order, as TCP's retransmissions would.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	// more are tried in turn when target refuses a connection: a name
	// with several addresses, as a client tries each. Set before serve.
	more []string

	// delay holds each chunk this long in each direction, a far link's
	// latency (half its round trip).
	delay time.Duration

	mu    sync.Mutex
	down  bool          // cut: refuse new connections
	up    chan struct{} // closed while the link carries bytes
	conns []net.Conn
}

// newProxy is a proxy to serverURL, and to the servers of moreURLs in turn
// when that one refuses.
func newProxy(t testing.TB, serverURL string, moreURLs ...string) *proxy {
	t.Helper()
	return newSlowProxy(t, serverURL, 0, moreURLs...)
}

// newSlowProxy is a proxy that holds every chunk delay in each direction.
func newSlowProxy(t testing.TB, serverURL string, delay time.Duration, moreURLs ...string) *proxy {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	var more []string
	for _, m := range moreURLs {
		mu, err := url.Parse(m)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, mu.Host)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: u.Host, more: more, up: make(chan struct{}), delay: delay}
	close(p.up)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.restore(); p.cut() })
	return p
}

func (p *proxy) wsURL() string { return "ws://" + p.ln.Addr().String() + "/ws" }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			p.waitUp() // a new connection in the hole: its upgrade hangs
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				return
			}
			up, err := net.Dial("tcp", p.target)
			for _, m := range p.more {
				if err == nil {
					break
				}
				up, err = net.Dial("tcp", m)
			}
			if err != nil {
				p.mu.Unlock()
				c.Close()
				return
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pump(up, c)
			go p.pump(c, up)
		}()
	}
}

// pump copies src to dst while the link is up; in the hole it holds what it
// read and reads nothing more.
func (p *proxy) pump(dst, src net.Conn) {
	send, done := p.sender(dst)
	defer done()
	buf := make([]byte, 32<<10)
	for {
		p.waitUp()
		n, err := src.Read(buf)
		if n > 0 {
			p.waitUp()
			if !send(buf[:n]) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sender writes chunks to dst, each p.delay after it was read, in order;
// done closes dst once what was sent has been written.
func (p *proxy) sender(dst net.Conn) (send func([]byte) bool, done func()) {
	if p.delay == 0 {
		return func(b []byte) bool { _, err := dst.Write(b); return err == nil }, func() { dst.Close() }
	}
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 1024)
	failed := make(chan struct{})
	go func() {
		defer dst.Close()
		for c := range ch {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				close(failed)
				for range ch { // until done
				}
				return
			}
		}
	}()
	return func(b []byte) bool {
		select {
		case <-failed:
			return false
		case ch <- chunk{time.Now().Add(p.delay), bytes.Clone(b)}:
			return true
		}
	}, func() { close(ch) }
}

func (p *proxy) waitUp() {
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	<-up
}

// cut drops every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// blackhole stops all traffic, closing nothing, until restore.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.up:
		p.up = make(chan struct{})
	default:
	}
}

// restore ends a cut or a black hole.
func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	select {
	case <-p.up:
	default:
		close(p.up)
	}
}
