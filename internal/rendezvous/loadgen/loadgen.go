// Package loadgen puts many terminals on a rendezvous server at once, for
// the server's scale benchmarks (issue 16): each logs in over its own
// WebSocket, from one of many loopback source addresses, and then idles as a
// unit at a child's home does, answering the server's pings.
//
// One address can hold only as many connections to one server port as it
// has ephemeral ports (about 28,000 here); a national programme's node sees
// each unit from its own address. The terminals are spread over 127.0.0.0/8
// (Source), which Linux routes to loopback without any set-up.
package loadgen

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// PerSource is how many connections share one source address: well under
// the ephemeral port range, so no dial waits for a port.
const PerSource = 10_000

// Source is the loopback address the i-th connection comes from:
// 127.10.0.1 for the first PerSource, then 127.10.0.2, and so on.
func Source(i int) netip.Addr {
	n := i / PerSource
	return netip.AddrFrom4([4]byte{127, 10, byte(n / 250), byte(n%250 + 1)})
}

// Identity is one unit's key and device certificate.
type Identity struct {
	Key  *ecdsa.PrivateKey
	Cert []byte
}

// NewIdentities makes n unit identities under ca, as flashing would.
func NewIdentities(ca *devcert.CA, n int) ([]Identity, error) {
	ids := make([]Identity, n)
	for i := range ids {
		key, err := devcert.NewDeviceKey()
		if err != nil {
			return nil, err
		}
		cert, err := ca.Issue(&key.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("loadgen: issue certificate %d: %w", i, err)
		}
		ids[i] = Identity{Key: key, Cert: cert}
	}
	return ids, nil
}

// RaiseFileLimit lifts the open-file limit to its hard maximum (or to max,
// as root): 100,000 sockets need as many descriptors.
func RaiseFileLimit(want uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("loadgen: file limit: %w", err)
	}
	if l.Cur >= want {
		return nil
	}
	l.Cur = want
	if l.Max < want {
		l.Max = want // only root may; others get the error
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("loadgen: raise the open-file limit to %d: %w", want, err)
	}
	return nil
}

// FileLimit is the open-file limit's hard maximum.
func FileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Max
}

// Fleet is a set of terminals logged in to one server.
type Fleet struct {
	wsURL   string
	clients map[netip.Addr]*http.Client

	mu    sync.Mutex
	conns []*websocket.Conn

	up     atomic.Int64 // logged in and idling
	failed atomic.Int64 // logins that failed
	lost   atomic.Int64 // idle sockets the server closed
	closed atomic.Bool  // Close has begun: its closes are not losses
	wg     sync.WaitGroup

	// OnLost, if set before the first Login, is told the index of each
	// terminal the server disconnects.
	OnLost func(i int)
}

// NewFleet prepares terminals for the server at wsURL.
func NewFleet(wsURL string) *Fleet {
	return &Fleet{wsURL: wsURL, clients: map[netip.Addr]*http.Client{}}
}

func (f *Fleet) client(src netip.Addr) *http.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.clients[src]; c != nil {
		return c
	}
	c := &http.Client{Transport: &http.Transport{DialContext: f.dialer(src).DialContext, DisableKeepAlives: true}}
	f.clients[src] = c
	return c
}

// dialer dials from src.
func (f *Fleet) dialer(src netip.Addr) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 30 * time.Second, Control: bindNoPort}
}

// Up is how many terminals are logged in and idling.
func (f *Fleet) Up() int { return int(f.up.Load()) }

// Failed is how many logins failed.
func (f *Fleet) Failed() int { return int(f.failed.Load()) }

// Lost is how many idle terminals the server disconnected.
func (f *Fleet) Lost() int { return int(f.lost.Load()) }

// Login logs the i-th terminal in (from Source(i)) and leaves it idling: a
// goroutine reads its socket, which is what answers the server's pings.
func (f *Fleet) Login(ctx context.Context, i int, id Identity) error {
	conn, _, err := websocket.Dial(ctx, f.wsURL, &websocket.DialOptions{
		HTTPClient:   f.client(Source(i)),
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		f.failed.Add(1)
		return fmt.Errorf("loadgen: dial terminal %d: %w", i, err)
	}
	if err := login(ctx, conn, id); err != nil {
		f.failed.Add(1)
		conn.CloseNow()
		return fmt.Errorf("loadgen: terminal %d: %w", i, err)
	}
	f.mu.Lock()
	f.conns = append(f.conns, conn)
	f.mu.Unlock()
	f.up.Add(1)
	f.wg.Add(1)
	go f.idle(i, conn)
	return nil
}

// login answers the challenge with a signed hello and waits for the welcome.
func login(ctx context.Context, conn *websocket.Conn, id Identity) error {
	challenge, err := read(ctx, conn)
	if err != nil {
		return err
	}
	if challenge.Type != protocol.TypeChallenge {
		return fmt.Errorf("got %s, want a challenge", challenge.Type)
	}
	hello, err := protocol.SignLogin(id.Key, id.Cert, challenge.Nonce, "loadgen/1")
	if err != nil {
		return err
	}
	data, err := protocol.Encode(hello)
	if err != nil {
		return err
	}
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	for {
		m, err := read(ctx, conn)
		if err != nil {
			return err
		}
		switch m.Type {
		case protocol.TypeWelcome:
			return nil
		case protocol.TypeError:
			return fmt.Errorf("login refused: %s: %s", m.Code, m.Text)
		}
	}
}

func read(ctx context.Context, conn *websocket.Conn) (protocol.Message, error) {
	_, data, err := conn.Read(ctx)
	if err != nil {
		return protocol.Message{}, fmt.Errorf("read: %w", err)
	}
	return protocol.Decode(data)
}

// idle reads (and drops) what the server sends until the socket closes.
func (f *Fleet) idle(i int, conn *websocket.Conn) {
	defer f.wg.Done()
	for {
		if _, _, err := conn.Read(context.Background()); err != nil {
			var ce websocket.CloseError
			if !f.closed.Load() && (!errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure) {
				f.lost.Add(1)
				if f.OnLost != nil {
					f.OnLost(i)
				}
			}
			f.up.Add(-1)
			return
		}
	}
}

// Close disconnects every terminal and waits for their readers.
func (f *Fleet) Close() {
	f.closed.Store(true)
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
	f.wg.Wait()
}
