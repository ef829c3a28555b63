package natsreg_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// rendezvousEnv makes the test binary run one rendezvous node instead of
// the tests (TestMain), so that a test can kill it with SIGKILL.
const rendezvousEnv = "NATSREG_TEST_RENDEZVOUS"

type rendezvousSpec struct {
	NATSURL  string
	Replicas int
	Node     string
	Dir      string
	CAFile   string
}

// runRendezvous serves one rendezvous node until its stdin closes,
// printing its WebSocket URL first.
func runRendezvous(spec string) {
	var s rendezvousSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := rendezvous.DefaultConfig()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", s.Dir
	cfg.TURN.Listen, cfg.TURN.Secret = "", "nodeloss-test-secret-0123456789abcdef"
	cfg.DeviceCAFiles = []string{s.CAFile}
	cfg.Backup.Every = 0
	cfg.PairRequestsPerMinutePerIP = 1000 // every page of the test is on 127.0.0.1
	cfg.NATSURL, cfg.NATSReplicas, cfg.NodeName = s.NATSURL, s.Replicas, s.Node
	// Its log on the test's stderr: warnings and errors, or everything
	// with NATSREG_TEST_LOG.
	level := slog.LevelWarn
	if os.Getenv("NATSREG_TEST_LOG") != "" {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", s.Node)
	srv, err := natsreg.NewRendezvous(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	hs := &http.Server{Handler: srv.Handler()}
	srv.ConfigureHTTP(hs)
	go hs.Serve(l)
	fmt.Printf("ws://%s/ws\n", l.Addr())
	bufio.NewReader(os.Stdin).ReadByte()
	srv.Close()
	os.Exit(0)
}

// startRendezvous runs a rendezvous node as a process; kill SIGKILLs it.
func startRendezvous(t *testing.T, s rendezvousSpec) (wsURL string, kill func()) {
	t.Helper()
	cmd, url := startChild(t, rendezvousEnv, s, "rendezvous node "+s.Node)
	return url, func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
}

// lossFamily is a terminal and its parent for TestNodeLoss.
type lossFamily struct {
	key    *ecdsa.PrivateKey
	dev    string
	cred   rt.Credentials
	term   *rt.Client
	parent *rt.Client
	home   string // the node the parent logs in on (never the terminal's first)
	callID string // the call in progress when the node dies, "" none
}

// TestNodeLoss is issue 16's "nothing lost when a node dies": a three-node
// NATS cluster (R3) and three rendezvous nodes, b a process of its own.
// Every family's terminal is on b, its parent on a or c (routed by b's
// hub), half of them in a call. Then b and one NATS server are killed
// with SIGKILL. Each terminal reconnects to another node, as a unit does
// to the next server in its list, and each parent's page reconnects when
// its socket closes. Every family must be back — terminal and parent
// online to each other, a call through — within 60 s of the kill, with
// the same pairing it had: none lost, none doubled. A family that was in a
// call resumes that call on the nodes left (handover.go: the terminal's
// new node takes it from the log), and it ends as answered.
func TestNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and a rendezvous process")
	}
	const families = 12
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nc := processCluster(t)
	natsURL := strings.Join(nc.urls, ",")
	ca := rt.TestCAFile(t)
	inProcess := func(name string) *rt.Server {
		return rt.NewServer(t, func(c *rendezvous.Config) {
			c.NATSURL, c.NATSReplicas, c.NodeName = natsURL, 3, name
			c.TURN.Listen = ""
			c.PairRequestsPerMinutePerIP = 1000
		})
	}
	a := inProcess("a")
	bURL, killB := startRendezvous(t, rendezvousSpec{NATSURL: natsURL, Replicas: 3, Node: "b", Dir: t.TempDir(), CAFile: ca})
	c := inProcess("c")
	urls := map[string]string{"a": a.WSURL, "c": c.WSURL}

	fams := make([]*lossFamily, families)
	for i := range fams {
		key, dev := rt.NewKey()
		f := &lossFamily{key: key, dev: dev, home: []string{"a", "c"}[i%2]}
		f.term = get[*rt.Client](t)(rt.DialTerminal(ctx, bURL, key))
		f.cred = get[rt.Credentials](t)(rt.Pair(ctx, urls[f.home], f.term, pairing.NewSecret()))
		f.parent = dialParent(t, ctx, urls[f.home], f.cred)
		if w := f.parent.Welcome; !*w.PeerOnline {
			t.Fatalf("family %d: the parent on %s was welcomed with its terminal (on b) offline", i, f.home)
		}
		fams[i] = f
	}
	for i, f := range fams {
		if i%2 == 0 {
			call(t, ctx, f.term, f.parent, true)
			continue
		}
		// In a call when the node dies: rung and answered.
		f.callID = answered(t, ctx, f.term, f.parent)
	}

	killB()
	nc.stop(0, true)
	killed := time.Now()
	t.Logf("killed rendezvous node b and NATS server %s", nc.names[0])

	var wg sync.WaitGroup
	backIn := make([]time.Duration, families)
	errs := make([]error, families)
	for i, f := range fams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			backIn[i], errs[i] = f.comeBack(ctx, urls, killed)
		}()
	}
	wg.Wait()
	var worst time.Duration
	for i, err := range errs {
		if err != nil {
			t.Errorf("family %d: %v", i, err)
		}
		worst = max(worst, backIn[i])
	}
	if t.Failed() {
		return
	}
	t.Logf("all %d families back %v after the kill at worst", families, worst.Round(10*time.Millisecond))
	if worst > 60*time.Second {
		t.Errorf("a family took %v to come back, want ≤ 60 s", worst)
	}
	for i, f := range fams {
		if p, err := a.Registry().ParentOf(f.dev); err != nil || p != f.cred.ParentID {
			t.Errorf("family %d: after the kill the terminal's parent is %q (%v), want %s", i, p, err, f.cred.ParentID)
		}
	}
	// And a call each way for every family, on the nodes left.
	for _, f := range fams {
		call(t, ctx, f.term, f.parent, false)
	}
}

// comeBack plays both ends of a family after its terminal's node died: the
// terminal logs in on the other node than its parent's (the next in its
// list), the parent's page reconnects whenever its socket closes until it
// sees its terminal online, and then the terminal rings. It returns the
// time from the kill to the parent's accept reaching the terminal. A
// family in a call resumes it instead (resumed): the time is to both
// sides' resumed.
func (f *lossFamily) comeBack(ctx context.Context, urls map[string]string, killed time.Time) (time.Duration, error) {
	other := map[string]string{"a": "c", "c": "a"}[f.home]
	if _, err := f.term.WaitClosed(ctx); err != nil {
		return 0, fmt.Errorf("the terminal's socket to the killed node: %w", err)
	}
	if f.callID != "" {
		return f.resumed(ctx, urls[other], urls[f.home], killed)
	}
	for {
		t, err := rt.DialTerminal(ctx, urls[other], f.key)
		if err == nil {
			f.term = t
			break
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("the terminal's login on %s: %w", other, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := f.parent.WaitClosed(ctx); err != nil {
		return 0, fmt.Errorf("the parent's socket routed by the killed node: %w", err)
	}
	for f.parent = nil; f.parent == nil; {
		p, _, err := rt.DialParent(ctx, urls[f.home], f.cred.ParentID, f.cred.Token)
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("the parent's login on %s: %w", f.home, err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		p.Key = f.cred.Key
		online := *p.Welcome.PeerOnline
		for !online {
			m, err := p.Recv(ctx)
			if err != nil {
				break // closed (moved): log in again
			}
			online = m.Type == protocol.TypePresence && *m.PeerOnline
		}
		if online {
			f.parent = p
		}
	}
	id := protocol.NewID()
	if err := f.term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}); err != nil {
		return 0, err
	}
	if m, err := f.parent.WaitFor(ctx, protocol.TypeRing); err != nil || m.CallID != id {
		return 0, fmt.Errorf("the parent's phone did not ring (%v)", err)
	}
	if err := f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}); err != nil {
		return 0, err
	}
	if _, err := f.term.WaitFor(ctx, protocol.TypeAccept); err != nil {
		return 0, fmt.Errorf("the parent's accept did not reach the terminal: %w", err)
	}
	back := time.Since(killed)
	if err := f.term.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}); err != nil {
		return 0, err
	}
	if _, err := f.parent.WaitFor(ctx, protocol.TypeCallLog); err != nil {
		return 0, fmt.Errorf("the call's end: %w", err)
	}
	return back, nil
}

// resumed brings back a family whose call was in progress: the terminal
// resumes it on termURL, the parent's page on parentURL once its socket
// closes, both at once, as each end does on its own. It returns the time
// from the kill to both being bound again, then ends the call.
func (f *lossFamily) resumed(ctx context.Context, termURL, parentURL string, killed time.Time) (time.Duration, error) {
	errs := make(chan error, 1)
	go func() {
		if _, err := f.parent.WaitClosed(ctx); err != nil {
			errs <- fmt.Errorf("the parent's socket routed by the killed node: %w", err)
			return
		}
		p, err := resumeParent(ctx, parentURL, f.cred, f.callID)
		f.parent = p
		errs <- err
	}()
	term, _, err := resumeTerminal(ctx, termURL, f.key, f.callID)
	if err != nil {
		return 0, err
	}
	f.term = term
	if err := <-errs; err != nil {
		return 0, err
	}
	back := time.Since(killed)
	return back, endResumed(ctx, f.term, f.parent, f.callID)
}
