package rendezvous_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/certreload/certtest"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// turnAllocate allocates a relay on the server's TURN port with the given
// credentials, using pion's client over loopback.
func turnAllocate(t *testing.T, server, user, cred, realm string) (net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return turnAllocateOn(t, conn, server, user, cred, realm)
}

// turnAllocateOn is turnAllocate over conn, the client's side of any of the
// relay's transports.
func turnAllocateOn(t *testing.T, conn net.PacketConn, server, user, cred, realm string) (net.PacketConn, error) {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server, Username: user, Password: cred, Realm: realm,
		Conn: conn, RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	return c.Allocate()
}

// turnServerAddr extracts host:port from turn:host:port?transport=udp (or
// turns:).
func turnServerAddr(t *testing.T, u string) string {
	t.Helper()
	u = strings.TrimPrefix(strings.TrimPrefix(u, "turn:"), "turns:")
	addr, _, _ := strings.Cut(u, "?")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("TURN URL %q: %v", u, err)
	}
	return addr
}

func TestTURNWithHandedOutCredentials(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	ice := try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t).ICEServers[0]
	addr := turnServerAddr(t, ice.URLs[0])

	relay, err := turnAllocate(t, addr, ice.Username, ice.Credential, srv.Config.TURN.Realm)
	if err != nil {
		t.Fatalf("allocate with handed-out credentials: %v", err)
	}
	defer relay.Close()
	// The allocation and the permission both work.
	relayRoundTrip(t, relay)

	for _, tc := range []struct{ name, user, cred string }{
		{"wrong credential", ice.Username, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"expired", "", ""},
		{"other secret", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, cred := tc.user, tc.cred
			switch tc.name {
			case "expired":
				user, cred = rendezvous.TURNCredentials(srv.Config.TURN.Secret, id, time.Now().Add(-time.Minute))
			case "other secret":
				user, cred = rendezvous.TURNCredentials("another-secret-0123456789", id, time.Now().Add(time.Minute))
			}
			if c, err := turnAllocate(t, addr, user, cred, srv.Config.TURN.Realm); err == nil {
				c.Close()
				t.Fatal("allocation succeeded")
			}
		})
	}
}

// Under the production policy the relay refuses a loopback peer: the
// permission request goes to our loopback TURN port only.
func TestTURNProductionPolicyRefusesLoopback(t *testing.T) {
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.TURN.AllowPeers = nil })
	user, cred := rendezvous.TURNCredentials(srv.Config.TURN.Secret, protocol.NewID(), time.Now().Add(time.Minute))
	relay, err := turnAllocate(t, srv.TURNAddr().String(), user, cred, srv.Config.TURN.Realm)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	check(t, err)
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err == nil {
		t.Fatal("relay to 127.0.0.1 was permitted under the production policy")
	}
}

func TestTURNSecretGeneratedAndKept(t *testing.T) {
	dir := t.TempDir()
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" })
	check(t, srv.Close())
	path := filepath.Join(dir, "turn-secret")
	st, err := os.Stat(path)
	check(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("turn-secret mode %v, want 0600", st.Mode().Perm())
	}
	first := try(os.ReadFile(path)).must(t)
	if len(strings.TrimSpace(string(first))) < 32 {
		t.Fatalf("generated secret is only %d characters", len(first))
	}
	srv2 := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" })
	check(t, srv2.Close())
	if second := try(os.ReadFile(path)).must(t); string(second) != string(first) {
		t.Fatal("the TURN secret changed across restarts")
	}
}

// TestTURNAllocationQuota: one credential (one side of one call) holds at
// most DefaultMaxAllocations relays at once; a freed one can be taken again;
// each side of a call has its own credential.
func TestTURNAllocationQuota(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	caller := try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t).ICEServers[0]
	callee := try(f.parent.Expect(ctx, protocol.TypeRing)).must(t).ICEServers[0]
	if caller.Username == callee.Username {
		t.Fatalf("both sides got TURN username %q: the quota would be shared", caller.Username)
	}
	addr := turnServerAddr(t, caller.URLs[0])
	realm := srv.Config.TURN.Realm

	var relays []net.PacketConn
	for i := range rendezvous.DefaultMaxAllocations {
		r, err := turnAllocate(t, addr, caller.Username, caller.Credential, realm)
		if err != nil {
			t.Fatalf("allocation %d of %d refused: %v", i+1, rendezvous.DefaultMaxAllocations, err)
		}
		relays = append(relays, r)
	}
	if r, err := turnAllocate(t, addr, caller.Username, caller.Credential, realm); err == nil {
		r.Close()
		t.Fatalf("allocation %d with one credential succeeded", rendezvous.DefaultMaxAllocations+1)
	} else {
		t.Logf("over quota: %v", err)
	}
	// The other side's credential is not affected.
	r, err := turnAllocate(t, addr, callee.Username, callee.Credential, realm)
	if err != nil {
		t.Fatalf("callee's allocation refused: %v", err)
	}
	r.Close()
	// Freeing one (the client deletes its allocation) makes room again.
	check(t, relays[0].Close())
	deadline := time.Now().Add(rt.Timeout)
	for {
		r, err := turnAllocate(t, addr, caller.Username, caller.Credential, realm)
		if err == nil {
			r.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no allocation after one was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTURNRefusesPermissionsForInternalPeers asks the running relay, over
// the wire, for permissions to peers it must never relay to, and checks the
// refusal itself (a CreatePermission error response). A permission request
// goes only to our loopback TURN port: no packet is sent to any peer. A
// public address, asked the same way, is granted: the refusals are the
// policy, not a broken client.
func TestTURNRefusesPermissionsForInternalPeers(t *testing.T) {
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.TURN.AllowPeers = nil })
	user, cred := rendezvous.TURNCredentials(srv.Config.TURN.Secret, protocol.NewID(), time.Now().Add(time.Minute))
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	check(t, err)
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: srv.TURNAddr().String(), TURNServerAddr: srv.TURNAddr().String(), Username: user, Password: cred,
		Realm: srv.Config.TURN.Realm, Conn: conn, RTO: 100 * time.Millisecond,
	})
	check(t, err)
	t.Cleanup(func() { c.Close(); conn.Close() })
	check(t, c.Listen())
	relay, err := c.Allocate()
	check(t, err)
	defer relay.Close()

	refused := 0
	peers := []string{
		"127.0.0.1", "127.1.2.3", // loopback
		"10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", // private
		"169.254.169.254", "169.254.0.1", // link-local, cloud metadata
		"100.64.0.1", "100.127.255.254", // CGNAT
		"0.0.0.0", "224.0.0.1", "255.255.255.255", // unspecified, multicast, broadcast
	}
	for _, p := range peers {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(p), Port: 9})
		if err == nil {
			t.Errorf("relay granted a permission for %s", p)
			continue
		}
		// The server's error response (403) is the refusal; a timeout or a
		// local error would be something else.
		if !strings.Contains(err.Error(), "error response") {
			t.Errorf("permission for %s failed for another reason than the server's refusal: %v", p, err)
			continue
		}
		refused++
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP("8.8.8.8"), Port: 9}); err != nil {
		t.Errorf("control: a public peer's permission was refused too (%v): the refusals above prove nothing", err)
	}
	t.Logf("permissions refused: %d of %d internal peers", refused, len(peers))
}

// TestTURNOverTCPAndTLS: with tcp_listen and tls_listen set, each side of a
// call gets one ICE server per transport, each with its own credential, and
// a phone that can reach the relay only over TCP, or only over TLS with the
// server's certificate, gets a working relay: a datagram goes out to a peer
// and comes back through it.
func TestTURNOverTCPAndTLS(t *testing.T) {
	ctx := testCtx(t)
	ca := certtest.NewCA(t)
	leaf := ca.Issue(t, t.TempDir(), "server", 1, "localhost", "127.0.0.1")
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.TLSCertFile, c.TLSKeyFile = leaf.CertFile, leaf.KeyFile
		c.PublicURL = "https://localhost"
		c.TURN.TCPListen, c.TURN.TLSListen = "127.0.0.1:0", "127.0.0.1:0"
	})
	f := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	ice := try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t).ICEServers
	want := []struct{ scheme, transport string }{{"turn:127.0.0.1:", "udp"}, {"turn:127.0.0.1:", "tcp"}, {"turns:localhost:", "tls"}}
	if len(ice) != len(want) {
		t.Fatalf("ice_servers = %+v, want %d entries", ice, len(want))
	}
	for i, w := range want {
		u := ice[i].URLs[0]
		if len(ice[i].URLs) != 1 || !strings.HasPrefix(u, w.scheme) || !strings.HasSuffix(ice[i].Username, "/ringing/"+w.transport) {
			t.Fatalf("ice server %d = %+v, want one %s...?transport URL and a %s credential", i, ice[i], w.scheme, w.transport)
		}
	}

	for _, tc := range []struct {
		name string
		ice  protocol.ICEServer
		dial func(addr string) (net.Conn, error)
	}{
		{"udp", ice[0], func(addr string) (net.Conn, error) { return net.Dial("udp", addr) }},
		{"tcp", ice[1], func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }},
		{"tls", ice[2], func(addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tc.dial(turnServerAddr(t, tc.ice.URLs[0]))
			if err != nil {
				t.Fatalf("reach the relay over %s: %v", tc.name, err)
			}
			relay, err := turnAllocateOn(t, turn.NewSTUNConn(conn), turnServerAddr(t, tc.ice.URLs[0]), tc.ice.Username, tc.ice.Credential, srv.Config.TURN.Realm)
			if err != nil {
				t.Fatalf("allocate over %s: %v", tc.name, err)
			}
			defer relay.Close()
			relayRoundTrip(t, relay)
		})
	}
}

// relayRoundTrip sends a datagram through relay to a loopback peer (the
// test allow list permits 127.0.0.0/8) and the peer's answer back.
func relayRoundTrip(t *testing.T, relay net.PacketConn) {
	t.Helper()
	relayRoundTripTo(t, relay, "127.0.0.1")
}

// relayRoundTripTo is relayRoundTrip with the peer at ip (a loopback
// address): a peer IP the allocation has no permission for yet makes the
// client ask for one.
func relayRoundTripTo(t *testing.T, relay net.PacketConn, ip string) {
	t.Helper()
	peer, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
	check(t, err)
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatalf("send through relay: %v", err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(rt.Timeout))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	if from.(*net.UDPAddr).IP.String() != "127.0.0.1" {
		t.Fatalf("relayed from %v, want the relay's public IP 127.0.0.1", from)
	}
	// At least 5 bytes: pion's client-side TCP framing (STUNConn) waits for
	// more than a 4-byte payload's 8-byte ChannelData frame.
	if _, err := peer.WriteTo([]byte("hello back"), from); err != nil {
		t.Fatal(err)
	}
	relay.SetReadDeadline(time.Now().Add(rt.Timeout))
	if n, _, err = relay.ReadFrom(buf); err != nil || string(buf[:n]) != "hello back" {
		t.Fatalf("relay got %q, %v; want the peer's answer", buf[:n], err)
	}
}

// TestTURNRelayOutlivesCredential: every permission and refresh of an
// allocation is authenticated again, with the credential it was made
// with. A call relayed past its credential's expiry keeps its relay: the
// client that holds the allocation still gets a new permission (a new
// peer reached through it) after the expiry, while the same credential
// makes no new allocation from another address. Before, the first
// permission after the expiry was refused and a relayed call died some
// minutes past the credential's 10.
func TestTURNRelayOutlivesCredential(t *testing.T) {
	srv := rt.NewServer(t, nil)
	addr := srv.TURNAddr().String()
	expiry := time.Now().Add(2 * time.Second)
	user, cred := rendezvous.TURNCredentials(srv.Config.TURN.Secret, protocol.NewID()+"/terminal", expiry)
	relay, err := turnAllocate(t, addr, user, cred, srv.Config.TURN.Realm)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()
	relayRoundTrip(t, relay)
	time.Sleep(time.Until(expiry) + 1500*time.Millisecond) // the credential is past its expiry
	relayRoundTripTo(t, relay, "127.0.0.2")                // a new peer IP: a new permission, authenticated again
	if c, err := turnAllocate(t, addr, user, cred, srv.Config.TURN.Realm); err == nil {
		c.Close()
		t.Fatal("an expired credential made a new allocation from another address")
	}
}
