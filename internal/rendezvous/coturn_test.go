package rendezvous_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"
	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// coturnRealm is docs/coturn.conf's realm.
const coturnRealm = "tuanju"

// coturnLocal are the docs/coturn.conf keys a test on loopback sets itself
// (the file's lines for them are dropped): where it listens, no TLS (no
// certificate here), the test's secrets, and its files in a temporary
// directory.
var coturnLocal = map[string]bool{
	"listening-ip": true, "relay-ip": true, "external-ip": true, "listening-port": true,
	"tls-listening-port": true, "cert": true, "pkey": true, "static-auth-secret": true,
	"log-file": true, "pidfile": true, "userdb": true,
}

// startCoturn runs Debian's turnserver (package coturn) on 127.0.0.1 with
// docs/coturn.conf, its per-node settings replaced by loopback ones and
// one static-auth-secret line per secret, until the test ends. Its peer
// policy is the file's, but for 127.0.0.1 (allow-loopback-peers, then
// allowed-peer-ip=127.0.0.1 over the file's denied 127.0.0.0/8), where the
// tests' peers and coturn's own relays are; 127.0.0.2 stays denied. It
// returns the host:port it listens on (UDP and TCP).
//
// Without turnserver the test is skipped, unless TUANJU_REQUIRE_COTURN=1
// (CI, .ci/run), which makes it a failure. It never uses a turnserver the
// system may be running.
func startCoturn(t *testing.T, secrets ...string) string {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("TUANJU_REQUIRE_COTURN") == "1" {
			t.Fatal("coturn's turnserver is not installed (apt-get install coturn), and TUANJU_REQUIRE_COTURN=1")
		}
		t.Skip("coturn's turnserver is not installed (apt-get install coturn; TUANJU_REQUIRE_COTURN=1 makes this a failure)")
	}
	doc, err := os.ReadFile("../../docs/coturn.conf")
	check(t, err)
	port := freePort(t)
	dir := t.TempDir()
	var conf strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, _, _ := strings.Cut(line, "=")
		if !coturnLocal[key] {
			conf.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&conf, "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port=%d\nno-tls\n", port)
	for _, s := range secrets {
		fmt.Fprintf(&conf, "static-auth-secret=%s\n", s)
	}
	fmt.Fprintf(&conf, "allow-loopback-peers\nallowed-peer-ip=127.0.0.1\nlog-file=stdout\npidfile=%s\nuserdb=%s\n",
		filepath.Join(dir, "turnserver.pid"), filepath.Join(dir, "turndb"))
	confFile := filepath.Join(dir, "turnserver.conf")
	check(t, os.WriteFile(confFile, []byte(conf.String()), 0o600))

	var out logbuf.Buffer
	cmd := exec.Command(bin, "-c", confFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	check(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("turnserver's output:\n%s", out.String())
		}
	})

	// Ready when it answers a STUN binding request over UDP and accepts a
	// TCP connection.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	check(t, err)
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, Conn: conn, RTO: 100 * time.Millisecond})
	check(t, err)
	defer c.Close()
	check(t, c.Listen())
	deadline := time.Now().Add(rt.Timeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("turnserver exited before it listened: %v\n%s", err, out.String())
		default:
		}
		_, err := c.SendBindingRequest()
		if err == nil {
			tc, err := net.Dial("tcp", addr)
			if err == nil {
				tc.Close()
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver does not answer on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort is a port free on 127.0.0.1 for UDP and TCP both, as far as
// one can tell before handing it to another process.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		check(t, err)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

func coturnSecret() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TestCoturnRelaysWithHandedOutCredentials: a rendezvous server whose
// turn.urls point at Debian's coturn (docs/coturn.conf) hands each side of
// a call those URLs with TURN REST credentials that coturn accepts: over
// UDP and over TCP a relay is allocated and a datagram goes out to a peer
// and back through it; two WebRTC peers that may only relay
// (ice_transport_policy relay) connect through coturn, relay candidate to
// relay candidate, and carry a data channel message. Credentials made with
// another secret, expired ones, and a wrong credential are refused.
func TestCoturnRelaysWithHandedOutCredentials(t *testing.T) {
	secret := coturnSecret()
	addr := startCoturn(t, secret)
	ctx := testCtx(t)
	urls := []string{"turn:" + addr + "?transport=udp", "turn:" + addr + "?transport=tcp"}
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.TURN.Listen, c.TURN.AllowPeers = "", nil
		c.TURN.URLs, c.TURN.Secret = urls, secret
		c.ICETransportPolicy = "relay"
	})
	if srv.TURNAddr() != nil {
		t.Fatal("the embedded relay started beside turn.urls")
	}
	f := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	caller := try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	callee := try(f.parent.Expect(ctx, protocol.TypeRing)).must(t)
	for _, m := range []protocol.Message{caller, callee} {
		if len(m.ICEServers) != len(urls) || m.ICETransportPolicy != "relay" {
			t.Fatalf("%s: ice_servers %+v, policy %q; want one per turn.urls entry, relay", m.Type, m.ICEServers, m.ICETransportPolicy)
		}
		for i, s := range m.ICEServers {
			if len(s.URLs) != 1 || s.URLs[0] != urls[i] {
				t.Fatalf("%s: ice server %d = %+v, want %s", m.Type, i, s, urls[i])
			}
		}
	}

	for i, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ice := caller.ICEServers[i]
			var conn net.PacketConn
			if network == "udp" {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				check(t, err)
				conn = pc
			} else {
				// pion's client-side TCP framing; over UDP it would wait
				// for ChannelData padding that coturn (rightly) leaves out.
				c, err := net.Dial(network, addr)
				check(t, err)
				conn = turn.NewSTUNConn(c)
			}
			relay, err := turnAllocateOn(t, conn, addr, ice.Username, ice.Credential, coturnRealm)
			if err != nil {
				t.Fatalf("coturn refused the handed-out %s credential: %v", network, err)
			}
			defer relay.Close()
			relayRoundTrip(t, relay)
		})
	}

	t.Run("call", func(t *testing.T) {
		relayOnlyCall(t, ctx, caller.ICEServers, callee.ICEServers)
	})

	for _, tc := range []struct {
		name  string
		creds func() (user, cred string)
	}{
		{"other secret", func() (string, string) {
			return rendezvous.TURNCredentials(coturnSecret(), id+"/ringing/udp", time.Now().Add(time.Minute))
		}},
		{"expired", func() (string, string) {
			return rendezvous.TURNCredentials(secret, id+"/ringing/udp", time.Now().Add(-time.Minute))
		}},
		{"wrong credential", func() (string, string) {
			return caller.ICEServers[0].Username, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, cred := tc.creds()
			relay, err := turnAllocate(t, addr, user, cred, coturnRealm)
			if err == nil {
				relay.Close()
				t.Fatal("coturn allocated a relay")
			}
			if !strings.Contains(err.Error(), "error response") {
				t.Fatalf("allocation failed for another reason than coturn's refusal: %v", err)
			}
		})
	}
}

// relayOnlyCall connects two pion peers, each with the ICE servers handed
// to its side and allowed to use relay candidates only, exchanging whole
// descriptions, and checks that a data channel message arrives and that
// both ends' selected candidate pair is relay to relay.
func relayOnlyCall(t *testing.T, ctx context.Context, termICE, phoneICE []protocol.ICEServer) {
	t.Helper()
	api := webrtc.NewAPI(webrtc.WithSettingEngine(*mediatest.LoopbackSettingEngine()))
	peer := func(ice []protocol.ICEServer) *webrtc.PeerConnection {
		var servers []webrtc.ICEServer
		for _, s := range ice {
			servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
		check(t, err)
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	term, phone := peer(termICE), peer(phoneICE)
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
	dc.OnOpen(func() { dc.SendText("hello through coturn") })

	// describe sets pc's description and returns it with every candidate
	// gathered: the relay ones coturn allocated.
	describe := func(pc *webrtc.PeerConnection, d webrtc.SessionDescription) webrtc.SessionDescription {
		t.Helper()
		gathered := webrtc.GatheringCompletePromise(pc)
		check(t, pc.SetLocalDescription(d))
		select {
		case <-gathered:
		case <-ctx.Done():
			t.Fatal("candidate gathering did not complete")
		}
		return *pc.LocalDescription()
	}
	offer, err := term.CreateOffer(nil)
	check(t, err)
	check(t, phone.SetRemoteDescription(describe(term, offer)))
	answer, err := phone.CreateAnswer(nil)
	check(t, err)
	check(t, term.SetRemoteDescription(describe(phone, answer)))

	select {
	case msg := <-got:
		if msg != "hello through coturn" {
			t.Fatalf("data channel carried %q", msg)
		}
	case <-ctx.Done():
		t.Fatalf("the relay-only call did not connect: terminal %s, phone %s", term.ConnectionState(), phone.ConnectionState())
	}
	for name, pc := range map[string]*webrtc.PeerConnection{"terminal": term, "phone": phone} {
		pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s: selected pair %s -> %s, want relay to relay", name, pair.Local, pair.Remote)
		}
	}
}

// TestCoturnPeerPolicyAndQuota: docs/coturn.conf's policy, as Debian's
// coturn applies it. Permissions for peers in its denied-peer-ip ranges
// (loopback other than the test's allowed 127.0.0.1, private, CGNAT,
// link-local and the cloud metadata address, benchmarking, documentation,
// multicast, broadcast) are refused by coturn itself (an error response;
// no packet goes to a peer), while 127.0.0.1 and a public address are
// granted as the controls.
// One credential holds at most user-quota=2 relays, as the embedded
// relay's max_allocations; a third is refused. (The IPv6 ranges are not
// exercised: coturn relays here over IPv4 only.)
func TestCoturnPeerPolicyAndQuota(t *testing.T) {
	secret := coturnSecret()
	addr := startCoturn(t, secret)
	user, cred := rendezvous.TURNCredentials(secret, protocol.NewID()+"/ring/udp", time.Now().Add(time.Minute))
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	check(t, err)
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: user, Password: cred,
		Realm: coturnRealm, Conn: conn, RTO: 100 * time.Millisecond,
	})
	check(t, err)
	t.Cleanup(func() { c.Close(); conn.Close() })
	check(t, c.Listen())
	relay, err := c.Allocate()
	check(t, err)
	defer relay.Close()

	for _, p := range []string{
		"127.0.0.2", "127.1.2.3", // loopback
		"10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", // private
		"169.254.169.254", "100.64.0.1", "100.127.255.254", // link-local (metadata), CGNAT
		"0.0.0.1", "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1", // reserved, documentation, benchmarking
		"224.0.0.1", "239.1.2.3", "240.0.0.1", "255.255.255.255", // multicast, reserved, broadcast
	} {
		err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(p), Port: 9})
		if err == nil {
			t.Errorf("coturn granted a permission for %s", p)
		} else if !strings.Contains(err.Error(), "error response") {
			t.Errorf("permission for %s failed for another reason than coturn's refusal: %v", p, err)
		}
	}
	// The controls: the test's allowed loopback peer, and a public address
	// (a permission only: no packet is sent to it). An IPv6 range written
	// as ::-::ffff:ffff made coturn 4.6.1 refuse every IPv4 peer, this one
	// included.
	for _, p := range []string{"127.0.0.1", "8.8.8.8"} {
		if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(p), Port: 9}); err != nil {
			t.Errorf("control: coturn refused %s too (%v): the refusals above prove nothing", p, err)
		}
	}

	// The client above holds one relay with this credential; a second is
	// allowed, a third is not.
	second, err := turnAllocate(t, addr, user, cred, coturnRealm)
	if err != nil {
		t.Fatalf("second relay with one credential refused: %v", err)
	}
	defer second.Close()
	if third, err := turnAllocate(t, addr, user, cred, coturnRealm); err == nil {
		third.Close()
		t.Fatal("a third relay with one credential was allocated: user-quota=2 is not in force")
	} else if !strings.Contains(err.Error(), "486") {
		t.Fatalf("third relay refused for another reason than the quota (486): %v", err)
	}
}

// TestCoturnSecretRotation backs docs/coturn.md's rotation: coturn given
// two static-auth-secret lines accepts credentials made with either (the
// rendezvous servers can move from the old secret to the new one while the
// cluster takes both), and none made with a third.
func TestCoturnSecretRotation(t *testing.T) {
	old, next := coturnSecret(), coturnSecret()
	addr := startCoturn(t, old, next)
	for _, tc := range []struct {
		name   string
		secret string
		ok     bool
	}{{"old", old, true}, {"new", next, true}, {"other", coturnSecret(), false}} {
		t.Run(tc.name, func(t *testing.T) {
			user, cred := rendezvous.TURNCredentials(tc.secret, protocol.NewID()+"/ring/udp", time.Now().Add(time.Minute))
			relay, err := turnAllocate(t, addr, user, cred, coturnRealm)
			if err == nil {
				relay.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("allocation with the %s secret: %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

// TestCoturnRefreshAfterCredentialExpiry: what coturn does with a call's
// relay once the credential it was made with has expired. A relayed call
// asks again for its peer's permission every few minutes (permissions
// last 5) and refreshes the allocation (10); each of those requests is
// authenticated with the call's credential. Here the credential expires 2
// s after the allocation; then the client asks for the same permission
// again and refreshes the allocation, as a long call does, and both are
// granted (coturn checks a REST credential's expiry when it makes the
// allocation, then authenticates the allocation's requests with the key it
// keeps), and the relay still carries datagrams. The embedded relay does
// the same for the address that holds the allocation
// (TestTURNRelayOutlivesCredential). docs/coturn.md relies on this.
func TestCoturnRefreshAfterCredentialExpiry(t *testing.T) {
	secret := coturnSecret()
	addr := startCoturn(t, secret)
	expiry := time.Now().Add(2 * time.Second)
	user, cred := rendezvous.TURNCredentials(secret, protocol.NewID()+"/terminal/udp", expiry)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	check(t, err)
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: user, Password: cred, Realm: coturnRealm,
		Conn: conn, RTO: 100 * time.Millisecond,
	})
	check(t, err)
	t.Cleanup(func() { c.Close(); conn.Close() })
	check(t, c.Listen())
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()
	relayRoundTrip(t, relay)
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	if err := c.CreatePermission(peer); err != nil {
		t.Fatalf("a permission while the credential is valid: %v", err)
	}
	time.Sleep(time.Until(expiry) + 1500*time.Millisecond)
	if err := c.CreatePermission(peer); err != nil {
		t.Fatalf("coturn refused the permission asked again after the credential expired: %v", err)
	}
	// The allocation's refresh, as pion's client sends it before the
	// lifetime runs out: unauthenticated first (coturn answers 401 with a
	// nonce), then with the expired credential.
	turnAddr, err := net.ResolveUDPAddr("udp4", addr)
	check(t, err)
	lifetime := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0x02, 0x58}} // 600 s
	refresh := stun.NewType(stun.MethodRefresh, stun.ClassRequest)
	res, err := c.PerformTransaction(stun.MustBuild(stun.TransactionID, refresh, lifetime, stun.Fingerprint), turnAddr, false)
	check(t, err)
	var nonce stun.Nonce
	if err := nonce.GetFrom(res.Msg); err != nil {
		t.Fatalf("coturn's answer to an unauthenticated refresh has no nonce (%v): %v", res.Msg, err)
	}
	res, err = c.PerformTransaction(stun.MustBuild(stun.TransactionID, refresh, lifetime,
		stun.NewUsername(user), stun.NewRealm(coturnRealm), nonce, stun.NewLongTermIntegrity(user, coturnRealm, cred), stun.Fingerprint), turnAddr, false)
	check(t, err)
	if res.Msg.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		code.GetFrom(res.Msg)
		t.Fatalf("coturn refused the allocation's refresh with the expired credential: %v", code)
	}
	// Still relaying, to a new port of the permitted peer.
	relayRoundTrip(t, relay)
}
