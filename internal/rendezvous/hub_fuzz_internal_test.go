package rendezvous

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// The cast of FuzzHub: two families, an unpaired terminal and a pairing
// page. A message may reach the sender itself or a socket of the sender's
// group, never another group: family A = {terminal A, two tabs of parent
// A}, family B = {terminal B, parent B}, and the unpaired group = {terminal
// C, the pairing page} (a page may reach only unpaired terminals).
var fuzzCast = []struct {
	role, device string // device: placeholder ID, replaced per run
	group        int
}{
	{protocol.RoleTerminal, fuzzIDA, 0},
	{protocol.RoleParent, fuzzIDA, 0},
	{protocol.RoleParent, fuzzIDA, 0},
	{protocol.RoleTerminal, fuzzIDB, 1},
	{protocol.RoleParent, fuzzIDB, 1},
	{protocol.RoleTerminal, fuzzIDC, 2},
	{protocol.RolePairing, "", 2},
}

// Placeholder device IDs in fuzz inputs; each run replaces them with fresh
// ones, so the store's call logs of earlier runs (call IDs are refused once
// logged) do not make one run depend on another.
const (
	fuzzIDA = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	fuzzIDB = "bbbbbbbbbbbbbbbbbbbbbbbbbb"
	fuzzIDC = "cccccccccccccccccccccccccc"
	fuzzIDX = "xxxxxxxxxxxxxxxxxxxxxxxxxx" // a call ID for seeds
)

// FuzzHub drives the hub, the routing core of the server, with arbitrary
// message sequences from every kind of socket (and sockets leaving) and
// checks after every step that nothing reached a socket outside the
// sender's group, and that everything the server queued is a valid
// message. An input is lines "<sender byte><message JSON>"; a sender byte
// of 'L' followed by a digit closes that socket instead.
func FuzzHub(f *testing.F) {
	cfg := DefaultConfig()
	cfg.DataDir = f.TempDir()
	cfg.TURN.Listen = ""
	ca, err := devcert.NewCA("fuzz CA")
	if err != nil {
		f.Fatal(err)
	}
	caFile := filepath.Join(cfg.DataDir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg.DeviceCAFiles = []string{caFile}
	srv, err := New(cfg, discardLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	// Durability is not what this tests; without an fsync per write a run
	// takes microseconds instead of milliseconds.
	srv.bolt.db.NoSync = true

	line := func(sender byte, m protocol.Message) string {
		b, err := protocol.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		return string(sender) + string(b) + "\n"
	}
	// The server relays call signatures without checking them (only the
	// paired peer can), but for a parent's accept, which it checks against
	// the key the parent paired with; these pairings were made without one,
	// so any well-formed signatures do here.
	const at, sig, nonce = "2026-11-28T18:00:00Z", "c2ln", "bm9uY2Utbm9uY2Utbm9uY2Utbm9uY2Utbm9uY2Utbm9"
	ring := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypeRing, CallID: fuzzIDX, Nonce: nonce, SignedAt: at, Signature: sig})
	}
	accept := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypeAccept, CallID: fuzzIDX, Nonce: nonce, SignedAt: at, Signature: sig})
	}
	prepare := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypePrepare, CallID: fuzzIDX, Nonce: nonce, SignedAt: at, Signature: sig})
	}
	offer := line('0', protocol.Message{Type: protocol.TypeOffer, CallID: fuzzIDX, SDP: "v=0\r\n", SignedAt: at, Signature: sig})
	// The parent's prepare of the call it rang, and the offer with the
	// terminal's accept nonce that answers it.
	prepareOwn := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypePrepare, CallID: fuzzIDX, SignedAt: at, Signature: sig})
	}
	nonceOffer := line('0', protocol.Message{Type: protocol.TypeOffer, CallID: fuzzIDX, SDP: "v=0\r\n", Nonce: nonce, SignedAt: at, Signature: sig})
	answer := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypeAnswer, CallID: fuzzIDX, SDP: "v=0\r\n", SignedAt: at, Signature: sig})
	}
	cand := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypeCandidate, CallID: fuzzIDX, Candidate: &protocol.Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})
	}
	hangup := func(s byte) string {
		return line(s, protocol.Message{Type: protocol.TypeHangup, CallID: fuzzIDX, Reason: protocol.ReasonHangup})
	}
	pairReq := line('6', protocol.Message{Type: protocol.TypePairRequest, DeviceID: fuzzIDC, Nonce: "bm9uY2U", EphemeralKey: "RXA", Proof: "cHJvb2Y"})
	for _, seed := range []string{
		ring('0') + accept('1') + offer + answer('1') + cand('0') + cand('1') + hangup('0'),
		ring('1') + accept('0') + offer + answer('1') + "L1\n" + ring('3'),
		ring('0') + accept('4') + cand('4') + answer('2') + hangup('3') + "L0\n" + ring('1'),
		ring('3') + ring('0') + accept('4') + accept('1') + offer + line('3', protocol.Message{Type: protocol.TypeOffer, CallID: fuzzIDX, SDP: "v=0", SignedAt: at, Signature: sig}),
		pairReq + "L5\n" + pairReq,
		pairReq + line('6', protocol.Message{Type: protocol.TypePairRequest, DeviceID: fuzzIDA, Nonce: "bm9uY2U", EphemeralKey: "RXA", Proof: "cHJvb2Y"}),
		line('1', protocol.Message{Type: protocol.TypeCallLog}) + ring('5') + "L2\n",
		// Prepared calls: offer, answer and candidates while it rings,
		// between the terminal and the one tab that prepared.
		ring('0') + prepare('1') + prepare('2') + offer + answer('1') + cand('2') + cand('0') + accept('2') + cand('0'),
		ring('0') + prepare('4') + prepare('1') + "L1\n" + prepare('2') + offer + answer('2') + accept('2') + hangup('0'),
		ring('1') + prepareOwn('2') + prepareOwn('1') + nonceOffer + answer('1') + cand('0') + prepareOwn('1') + accept('0') + cand('1'),
		ring('1') + prepareOwn('1') + nonceOffer + "L1\n" + prepareOwn('1') + ring('2') + prepareOwn('2') + nonceOffer + hangup('2'),
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		ids := map[string]string{fuzzIDA: protocol.NewID(), fuzzIDB: protocol.NewID(), fuzzIDC: protocol.NewID()}
		for _, placeholder := range []string{fuzzIDA, fuzzIDB, fuzzIDC} {
			data = bytes.ReplaceAll(data, []byte(placeholder), []byte(ids[placeholder]))
		}
		now := time.Now().UTC()
		for _, p := range []string{fuzzIDA, fuzzIDB, fuzzIDC} {
			if _, err := srv.store.RegisterDevice(ids[p], []byte("key of "+ids[p]), "", now); err != nil {
				t.Fatal(err)
			}
		}
		parents := map[string]string{fuzzIDA: protocol.NewID(), fuzzIDB: protocol.NewID()}
		for dev, parent := range parents {
			if err := srv.store.CreatePairing(ids[dev], parent, []byte("hash"), "", now); err != nil {
				t.Fatal(err)
			}
		}

		h := newHub(srv)
		defer h.closeAll()
		socks := make([]*session, len(fuzzCast))
		for i, c := range fuzzCast {
			s := newSession(nil, "192.0.2.1", 4096, discardLog())
			defer s.cancel()
			s.role = c.role
			if c.device != "" {
				s.deviceID = ids[c.device]
			}
			if c.role == protocol.RoleParent {
				s.parentID = parents[c.device]
			}
			if !h.add(s) || !h.join(s) {
				t.Fatalf("socket %d could not join", i)
			}
			socks[i] = s
		}
		drain := func(step int, sender int) {
			for i, s := range socks {
				for _, fr := range s.takeQueued() {
					if sender >= 0 && i != sender && fuzzCast[i].group != fuzzCast[sender].group {
						t.Fatalf("step %d: socket %d (group %d) sent something that reached socket %d (group %d): %s",
							step, sender, fuzzCast[sender].group, i, fuzzCast[i].group, fr.data)
					}
					if fr.close {
						continue
					}
					if _, err := protocol.Decode(fr.data); err != nil {
						t.Fatalf("step %d: the server queued an invalid message for socket %d: %v", step, i, err)
					}
				}
			}
		}
		drain(-1, -1) // the welcomes, presence and call logs of joining

		for step, ln := range bytes.Split(data, []byte("\n")) {
			if len(ln) < 2 {
				continue
			}
			if ln[0] == 'L' {
				i := int(ln[1]-'0') % len(socks)
				h.leave(socks[i])
				drain(step, i)
				continue
			}
			i := int(ln[0]-'0') % len(socks)
			m, err := protocol.Decode(ln[1:])
			if err == nil {
				err = checkClientMessage(m)
			}
			if err != nil {
				continue // readLoop answers bad_message to the sender only
			}
			h.handle(socks[i], m)
			drain(step, i)
		}
	})
}
