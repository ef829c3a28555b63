package e2e

import (
	"context"
	"crypto/ecdsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// mitm is a rendezvous server gone bad, as seen by the terminal: a
// WebSocket relay between the terminal and the real server that can rewrite,
// record and inject signalling messages. It stands for a compromised server
// or anyone who can speak for it (a TLS-intercepting proxy, a rogue
// operator). Login passes through untouched: the attack is on calls.
type mitm struct {
	t      testing.TB
	srv    *httptest.Server
	target string

	mu         sync.Mutex
	toTerminal func(*protocol.Message) // rewrites what the server sends the terminal; a cleared Type drops it
	toServer   func(*protocol.Message) // rewrites what the terminal sends the server; a cleared Type drops it
	seen       []protocol.Message      // everything relayed to the terminal, as sent
	sent       []protocol.Message      // everything the terminal sent, as sent
	term       *websocket.Conn         // the terminal's current socket
	// calls: each call's binding as relayed (nonces, offer hash): what an
	// attacker who re-signs with its own key would sign over.
	calls pairing.Calls
}

func newMITM(t testing.TB, serverWS string) *mitm {
	t.Helper()
	m := &mitm{t: t, target: serverWS}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve)) // 127.0.0.1
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mitm) wsURL() string { return "ws" + strings.TrimPrefix(m.srv.URL, "http") + "/ws" }

func (m *mitm) serve(w http.ResponseWriter, r *http.Request) {
	term, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	defer term.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	up, _, err := websocket.Dial(ctx, m.target, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	defer up.CloseNow()
	m.mu.Lock()
	m.term = term
	m.mu.Unlock()
	go m.pipe(ctx, cancel, up, term, true)
	m.pipe(ctx, cancel, term, up, false)
}

func (m *mitm) pipe(ctx context.Context, cancel func(), from, to *websocket.Conn, toTerminal bool) {
	defer cancel()
	for {
		_, data, err := from.Read(ctx)
		if err != nil {
			return
		}
		msg, err := protocol.Decode(data)
		if err != nil {
			return
		}
		m.mu.Lock()
		rewrite := m.toServer
		if toTerminal {
			rewrite = m.toTerminal
			m.seen = append(m.seen, msg)
		} else {
			m.sent = append(m.sent, msg)
		}
		m.mu.Unlock()
		m.calls.Observe(msg)
		if rewrite != nil {
			rewrite(&msg)
			if msg.Type == "" {
				continue // the rewrite dropped it
			}
		}
		b, err := protocol.Encode(msg)
		if err != nil {
			m.t.Errorf("mitm: re-encode %s: %v", msg.Type, err)
			return
		}
		if err := to.Write(ctx, websocket.MessageText, b); err != nil {
			return
		}
	}
}

// drop closes the terminal's socket, as a flaky link would: the terminal
// logs in again through the relay.
func (m *mitm) drop() {
	m.mu.Lock()
	term := m.term
	m.mu.Unlock()
	if term != nil {
		term.CloseNow()
	}
}

// inject sends m to the terminal as if the server had.
func (m *mitm) inject(msg protocol.Message) {
	m.t.Helper()
	m.mu.Lock()
	term := m.term
	m.mu.Unlock()
	b, err := protocol.Encode(msg)
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := term.Write(ctx, websocket.MessageText, b); err != nil {
		m.t.Fatalf("mitm: inject: %v", err)
	}
}

func (m *mitm) set(toTerminal, toServer func(*protocol.Message)) {
	m.mu.Lock()
	m.toTerminal, m.toServer = toTerminal, toServer
	m.mu.Unlock()
}

// resign signs msg with key over the call's binding as relayed so far: an
// attacker that knows every nonce and hash but not the paired keys.
func (m *mitm) resign(key *ecdsa.PrivateKey, msg *protocol.Message) {
	b := m.calls.Get(msg.CallID)
	if b.RingNonce == "" {
		b.RingNonce = pairing.NewNonce()
	}
	if b.AcceptNonce == "" {
		b.AcceptNonce = msg.Nonce
	}
	b.Restart = msg.Restart
	sig, err := pairing.SignCall(key, msg.Type, b, msg.SDP, time.Now())
	if err != nil {
		m.t.Errorf("mitm: sign %s: %v", msg.Type, err)
		return
	}
	msg.SignedAt, msg.Signature = sig.SignedAt, sig.Signature
}

// lastSeen is the latest message of type typ relayed to the terminal.
func (m *mitm) lastSeen(typ string) (protocol.Message, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return last(m.seen, typ)
}

// lastSent is the latest message of type typ the terminal sent.
func (m *mitm) lastSent(typ string) (protocol.Message, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return last(m.sent, typ)
}

// sentAll is every message of type typ for call the terminal sent.
func (m *mitm) sentAll(typ, call string) []protocol.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []protocol.Message
	for _, s := range m.sent {
		if s.Type == typ && s.CallID == call {
			out = append(out, s)
		}
	}
	return out
}

func last(ms []protocol.Message, typ string) (protocol.Message, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Type == typ {
			return ms[i], true
		}
	}
	return protocol.Message{}, false
}

// swapFingerprint puts another DTLS certificate's fingerprint into an SDP:
// what a relay must do to terminate DTLS itself and see the media.
func swapFingerprint(sdp, fp string) string {
	return rewriteFingerprints(sdp, "a=fingerprint:"+fp+"\r\n")
}

// rewriteFingerprints replaces each a=fingerprint line of sdp with lines.
func rewriteFingerprints(sdp, lines string) string {
	var out strings.Builder
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=fingerprint:") {
			line = lines
		}
		out.WriteString(line)
	}
	return out.String()
}

// TestMITMServerCannotJoinOrStartCalls: with the server in the middle
// rewriting, replaying and injecting signalling, no call ever gets media to
// anyone, and the child never hears a ring the parent did not send. Each
// attack is counted; the count of successes must be zero.
func TestMITMServerCannotJoinOrStartCalls(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		// A call per attack, one after the other: more rings than a child
		// makes. The default limit (5 at once, 10 a minute) refused the
		// control call's ring once on a quiet machine, where the refused
		// calls end within half a second each.
		c.Limits.Rings = rendezvous.Rate{Burst: 50, PerMinute: 600}
	})
	mm := newMITM(t, srv.WSURL)
	r := startTerminal(t, ctx, srv, terminalOpts{wsURL: mm.wsURL()})
	cred := r.pair()
	ph := r.phone(cred, media.LowData)

	// The attacker's own DTLS certificate and signing key.
	evilKey, _ := pairing.NewKey()
	evilCert, err := webrtc.GenerateCertificate(evilKey)
	if err != nil {
		t.Fatal(err)
	}
	fps, _ := evilCert.GetFingerprints()
	evilFP, err := pairing.Fingerprint(fps[0].Algorithm, fps[0].Value)
	if err != nil {
		t.Fatal(err)
	}

	// childCall: the child presses, the parent answers; returns the call ID
	// and whether media came up at either end within a while.
	childCall := func(t *testing.T) (string, bool) {
		t.Helper()
		ring := childCalls(t, r, ph)
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			// Media up for this call: the terminal's peer connection
			// connected (its state says in_call), or the phone decodes.
			if c := ph.Current(); c != nil && c.ID == ring.CallID && c.Stats().VideoFramesDecoded > 0 {
				return ring.CallID, true
			}
			if st := r.term.Status(); st.State == "in_call" {
				return ring.CallID, true
			}
			if s := r.term.Status().State; s == "idle" || s == "ready" {
				break // the terminal gave up on the call
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ring.CallID, false
	}
	idle := func(what string) {
		t.Helper()
		if r.board.State().Pattern != device.Ready {
			r.board.LongPress(r.ctx) // ends a call that lingers
		}
		r.waitPattern(device.Ready, what)
		// A press within the debounce time of a release is the same hold
		// to the button (no finger is that quick); let the release settle.
		eventually(t, step, "the button reads released", func() bool { return !r.board.Button().Pressed() })
	}

	successes := 0
	attacks := []struct {
		name              string
		toTerminal, toSrv func(*protocol.Message)
	}{
		{"the parent's answer carries the attacker's DTLS fingerprint", func(m *protocol.Message) {
			if m.Type == protocol.TypeAnswer {
				m.SDP = swapFingerprint(m.SDP, evilFP)
			}
		}, nil},
		{"the terminal's offer carries the attacker's DTLS fingerprint", nil, func(m *protocol.Message) {
			if m.Type == protocol.TypeOffer {
				m.SDP = swapFingerprint(m.SDP, evilFP)
			}
		}},
		{"both fingerprints swapped and re-signed with the attacker's key", func(m *protocol.Message) {
			if m.Type == protocol.TypeAnswer {
				m.SDP = swapFingerprint(m.SDP, evilFP)
				mm.resign(evilKey, m)
			}
		}, func(m *protocol.Message) {
			if m.Type == protocol.TypeOffer {
				m.SDP = swapFingerprint(m.SDP, evilFP)
				mm.resign(evilKey, m)
			}
		}},
		{"the parent's accept forged by the server", func(m *protocol.Message) {
			if m.Type == protocol.TypeAccept {
				mm.resign(evilKey, m)
			}
		}, nil},
		{"one byte of the parent's signed answer changed", func(m *protocol.Message) {
			if m.Type == protocol.TypeAnswer {
				m.SDP = strings.Replace(m.SDP, "s=-", "s=x", 1)
			}
		}, nil},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			mm.set(a.toTerminal, a.toSrv)
			defer mm.set(nil, nil)
			id, up := childCall(t)
			if up {
				successes++
				t.Errorf("media flowed in call %s", id)
			}
			idle("terminal ready after the refused call")
		})
	}

	// The same call without an attacker works: the refusals above were the
	// signatures, not a broken set-up.
	t.Run("control: an honest server", func(t *testing.T) {
		if _, up := childCall(t); !up {
			t.Fatal("an honest call got no media: the attack results above prove nothing")
		}
		idle("terminal ready after the honest call")
	})

	// The honest call's offer, replayed into the next call: right key,
	// right certificate, but signed for another call.
	t.Run("an earlier call's offer replayed into a new call", func(t *testing.T) {
		old, ok := mm.lastSent(protocol.TypeOffer)
		if !ok {
			t.Fatal("mitm recorded no offer")
		}
		mm.set(nil, func(m *protocol.Message) {
			if m.Type == protocol.TypeOffer {
				m.SDP, m.SignedAt, m.Signature = old.SDP, old.SignedAt, old.Signature
			}
		})
		defer mm.set(nil, nil)
		if id, up := childCall(t); up {
			successes++
			t.Errorf("media flowed in call %s on a replayed offer", id)
		}
		idle("terminal ready after the refused call")
	})

	// A ring the parent never sent: injected, replayed, or signed by a
	// stranger. The child must hear and see nothing.
	t.Run("rings the parent did not send", func(t *testing.T) {
		id, err := ph.Ring(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ringing, "terminal rings for the parent's real ring")
		genuine, ok := mm.lastSeen(protocol.TypeRing)
		if !ok || genuine.CallID != id {
			t.Fatalf("mitm saw no ring for %s", id)
		}
		if err := ph.Hangup(r.ctx, id, protocol.ReasonCancel); err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ready, "terminal ready after the parent cancelled")

		stranger := protocol.Message{Type: protocol.TypeRing, CallID: protocol.NewID(), Nonce: pairing.NewNonce()}
		mm.resign(evilKey, &stranger)
		unsignedTime := genuine
		unsignedTime.CallID = protocol.NewID() // the parent's signature on another call
		for name, ring := range map[string]protocol.Message{
			"replayed":             genuine,
			"signed by a stranger": stranger,
			"signature moved over": unsignedTime,
		} {
			declined := len(mm.sentAll(protocol.TypeHangup, ring.CallID))
			mm.inject(ring)
			// The barrier: the terminal has dealt with the ring once it
			// answered it (a refused ring gets a decline at once).
			eventually(t, step, name+" ring answered by the terminal", func() bool {
				return len(mm.sentAll(protocol.TypeHangup, ring.CallID)) > declined
			})
			if p := r.board.State().Pattern; p != device.Ready {
				successes++
				t.Errorf("%s ring: the terminal shows %q", name, p)
				idle("terminal ready again")
			}
		}
	})
	if successes != 0 {
		t.Errorf("%d attacks succeeded", successes)
	}
	t.Logf("man in the middle: %d call attacks and 3 ring attacks, %d succeeded", len(attacks)+1, successes)
}
