package rendezvous_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Flood sizes: bounded so the test fits CI under -race on two cores.
const (
	floodAddrs       = 100 // source addresses 127.1.1.1, 127.1.2.1, ...: a network (/24) each
	floodPerAddr     = 40  // WebSocket upgrades attempted from each
	floodConnects    = 30  // the connect burst per address (no refill in this test)
	floodParallel    = 64  // dials in flight at once
	slowLorisConns   = 100 // TCP connections dribbling their upgrade request
	slowLorisMaxWait = 30 * time.Second
)

// floodTally counts how the server answered the flood's upgrade attempts.
type floodTally struct {
	upgraded, tooMany, unavailable, other atomic.Int64
	closedByHello                         atomic.Int64 // upgraded sockets the server closed with 4001
	displaced                             atomic.Int64 // upgraded sockets dropped for a newcomer (no close frame)
	otherErr                              atomic.Value // first unexpected dial error
}

// TestFloodWhileCalling: thousands of sockets that never log in, plus
// slow-loris clients dribbling their HTTP upgrade, hit the server from 100
// loopback addresses in 100 networks while a family sets up a real call
// (pion peers, trickle ICE through the server, DTLS, a data channel
// message). The call must complete; every flood attempt must get a cheap
// answer (101, 429 or 503, never a reset or a hang); every upgraded flood
// socket must be closed by the hello deadline (or dropped to make room for
// another network's newcomer) and every slow-loris connection by the header
// deadline;
// and afterwards the server must take new logins again.
func TestFloodWhileCalling(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.HelloTimeout = 3 * time.Second
		// The header deadline stays the production 5 s: a shorter one also
		// cuts real clients when a loaded CI machine (race detector, two
		// shared cores) schedules the server's reader late.
		// The connect burst does not refill here, so the rate refusals below
		// do not depend on how fast the machine is. Everything else is the
		// production default (1,000 pending in total, 20 per address).
		c.Limits.ConnectsPerIP = rendezvous.Rate{Burst: floodConnects}
	})
	f := newFamily(t, ctx, srv)

	var tally floodTally
	admittedSome := make(chan struct{})
	var admittedOnce sync.Once
	var flood sync.WaitGroup
	sem := make(chan struct{}, floodParallel)
	start := time.Now()
	for a := range floodAddrs {
		src := newSource(fmt.Sprintf("127.1.%d.1", a+1))
		for range floodPerAddr {
			flood.Add(1)
			sem <- struct{}{}
			go func() {
				defer flood.Done()
				conn, status, err := src.dial(ctx, srv.WSURL)
				<-sem
				switch status {
				case http.StatusSwitchingProtocols:
					if tally.upgraded.Add(1) == 500 {
						admittedOnce.Do(func() { close(admittedSome) })
					}
					// Never say hello: the server must close us with 4001
					// (after the challenge and an auth_failed error).
					var rerr error
					for rerr == nil {
						_, _, rerr = conn.Read(ctx)
					}
					switch websocket.CloseStatus(rerr) {
					case rendezvous.CloseAuthFailed:
						tally.closedByHello.Add(1)
					case -1: // a full pool gave our slot to a less busy network's newcomer
						tally.displaced.Add(1)
					}
					conn.CloseNow()
				case http.StatusTooManyRequests:
					tally.tooMany.Add(1)
				case http.StatusServiceUnavailable:
					tally.unavailable.Add(1)
				default:
					tally.other.Add(1)
					tally.otherErr.CompareAndSwap(nil, fmt.Errorf("status %d: %v", status, err))
				}
			}()
		}
	}
	// The slow-loris clients start with the flood.
	var loris sync.WaitGroup
	var lorisCut atomic.Int64
	var lorisErr atomic.Value
	for i := range slowLorisConns {
		loris.Add(1)
		go func() {
			defer loris.Done()
			if err := slowLoris(ctx, fmt.Sprintf("127.0.2.%d", i%250+1), srv.HTTP.Listener.Addr().String()); err != nil {
				lorisErr.CompareAndSwap(nil, err)
				return
			}
			lorisCut.Add(1)
		}()
	}

	// The call, while the flood is under way.
	select {
	case <-admittedSome:
	case <-ctx.Done():
		t.Fatalf("the flood never got 500 sockets in: %+v", srv.AdmissionStats())
	}
	realCall(t, ctx, f)
	t.Logf("call connected %v after the flood started, with %d flood sockets admitted so far", time.Since(start).Round(time.Millisecond), tally.upgraded.Load())

	flood.Wait()
	loris.Wait()
	attempts := int64(floodAddrs * floodPerAddr)
	st := srv.AdmissionStats()
	t.Logf("flood: %d upgrade attempts from %d addresses in %v: %d upgraded (closed by the hello deadline: %d, displaced by newcomers: %d), %d refused 429, %d refused 503",
		attempts, floodAddrs, time.Since(start).Round(time.Millisecond), tally.upgraded.Load(), tally.closedByHello.Load(), tally.displaced.Load(), tally.tooMany.Load(), tally.unavailable.Load())
	t.Logf("server: %+v", st)
	t.Logf("slow-loris: %d of %d connections cut by the header deadline", lorisCut.Load(), slowLorisConns)

	if n := tally.other.Load(); n > 0 {
		t.Fatalf("%d flood attempts got no cheap answer; first: %v", n, tally.otherErr.Load())
	}
	if got := tally.upgraded.Load() + tally.tooMany.Load() + tally.unavailable.Load(); got != attempts {
		t.Fatalf("%d answers for %d attempts", got, attempts)
	}
	if tally.closedByHello.Load()+tally.displaced.Load() != tally.upgraded.Load() || tally.displaced.Load() != st.Evicted {
		t.Fatalf("of %d upgraded flood sockets, %d were closed by the hello deadline and %d displaced (server: %d), want all one or the other",
			tally.upgraded.Load(), tally.closedByHello.Load(), tally.displaced.Load(), st.Evicted)
	}
	// The server's own counts agree with what the clients saw (the family's
	// three logins before the flood are admitted sockets too).
	if st.RefusedRate+st.RefusedPerIP+st.RefusedPerPrefix != tally.tooMany.Load() || st.RefusedTotal != tally.unavailable.Load() {
		t.Fatalf("server refusals %+v disagree with the clients' %d×429, %d×503", st, tally.tooMany.Load(), tally.unavailable.Load())
	}
	// Without refill, each address had only floodConnects upgrades to spend.
	if want := int64(floodAddrs * (floodPerAddr - floodConnects)); st.RefusedRate != want {
		t.Fatalf("refused by connect rate: %d, want %d", st.RefusedRate, want)
	}
	if err := lorisErr.Load(); err != nil {
		t.Fatalf("slow-loris: %v", err)
	}

	// Afterwards the pending slots are free again and new logins work.
	waitFor(t, ctx, func() bool { return srv.AdmissionStats().Pending == 0 }, "every flood socket to leave")
	p, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	p.Close()
}

// slowLoris opens a TCP connection from src, starts an upgrade request and
// then dribbles header bytes, one every 100 ms. It returns nil once the
// server has cut the connection before the headers were complete, an error
// if the server waited longer than slowLorisMaxWait.
func slowLoris(ctx context.Context, src, addr string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("slow-loris dial from %s: %w", src, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\n")); err != nil {
		return fmt.Errorf("slow-loris first write: %w", err)
	}
	// The server's answer to a header timeout is to close (net/http may
	// first write a 408); a read that ends means we were cut off.
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		buf := make([]byte, 512)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(slowLorisMaxWait)
	for {
		select {
		case <-cut:
			return nil
		case <-deadline:
			return fmt.Errorf("slow-loris from %s still connected after %v", src, slowLorisMaxWait)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			conn.Write([]byte("X")) // a header name that never ends
		}
	}
}

// realCall sets up a call between the family's terminal and parent the way
// the real clients do: ring, accept, the terminal's offer, the parent's
// answer, trickled candidates both ways through the server, then ICE and
// DTLS between two pion peers on loopback, proven by a data channel message.
func realCall(t *testing.T, ctx context.Context, f *family) {
	t.Helper()
	id := startCall(t, ctx, f)
	se := mediatest.LoopbackSettingEngine()
	api := webrtc.NewAPI(webrtc.WithSettingEngine(*se))
	term, phone := mediatest.NewPeer(t, api), mediatest.NewPeer(t, api)

	sigCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 8)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	// Like the real clients, each side sends its candidates only after its
	// description: the peer cannot add a candidate before it.
	trickle := func(pc *webrtc.PeerConnection, c *rt.Client) (described func(sdp protocol.Message)) {
		var mu sync.Mutex
		var pending []protocol.Message
		sent := false
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			init := cand.ToJSON()
			m := protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: &protocol.Candidate{
				Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
			}}
			mu.Lock()
			defer mu.Unlock()
			if !sent {
				pending = append(pending, m)
				return
			}
			if err := c.Send(sigCtx, m); err != nil {
				fail(fmt.Errorf("send candidate: %w", err))
			}
		})
		return func(desc protocol.Message) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range append([]protocol.Message{desc}, pending...) {
				if err := c.Send(sigCtx, m); err != nil {
					fail(fmt.Errorf("send %s: %w", m.Type, err))
				}
			}
			sent, pending = true, nil
		}
	}
	termDescribed := trickle(term, f.terminal)
	phoneDescribed := trickle(phone, f.parent)

	got := make(chan string, 1)
	phone.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			select {
			case got <- string(msg.Data):
			default:
			}
		})
	})
	dc, err := term.CreateDataChannel("call", nil)
	check(t, err)
	dc.OnOpen(func() {
		if err := dc.SendText("hello from the terminal"); err != nil {
			fail(fmt.Errorf("data channel send: %w", err))
		}
	})

	offer, err := term.CreateOffer(nil)
	check(t, err)
	check(t, term.SetLocalDescription(offer))
	termDescribed(protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: offer.SDP})

	// Each side applies what the server relays to it until the call is up.
	apply := func(pc *webrtc.PeerConnection, c *rt.Client, onOffer func(sdp string) error) func() error {
		return func() error {
			for {
				m, err := c.Recv(sigCtx)
				if err != nil {
					return err
				}
				switch m.Type {
				case protocol.TypeOffer:
					if err := onOffer(m.SDP); err != nil {
						return err
					}
				case protocol.TypeAnswer:
					if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
						return fmt.Errorf("apply answer: %w", err)
					}
				case protocol.TypeCandidate:
					cand := m.Candidate
					if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid,
						SDPMLineIndex: cand.SDPMLineIndex, UsernameFragment: cand.UsernameFragment}); err != nil {
						return fmt.Errorf("add candidate: %w", err)
					}
				case protocol.TypeError, protocol.TypeHangup:
					return fmt.Errorf("signalling failed: %+v", m)
				}
			}
		}
	}
	answer := func(sdp string) error {
		if err := phone.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			return fmt.Errorf("apply offer: %w", err)
		}
		a, err := phone.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := phone.SetLocalDescription(a); err != nil {
			return err
		}
		phoneDescribed(protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: a.SDP})
		return nil
	}
	for _, run := range []func() error{apply(term, f.terminal, nil), apply(phone, f.parent, answer)} {
		go func() {
			if err := run(); err != nil && sigCtx.Err() == nil {
				fail(err)
			}
		}()
	}
	select {
	case msg := <-got:
		if msg != "hello from the terminal" {
			t.Fatalf("data channel carried %q", msg)
		}
	case err := <-errs:
		t.Fatalf("call signalling: %v", err)
	case <-ctx.Done():
		t.Fatalf("the call did not connect: terminal %s, phone %s", term.ConnectionState(), phone.ConnectionState())
	}
	if term.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatalf("terminal peer %s after the data channel message", term.ConnectionState())
	}
}
