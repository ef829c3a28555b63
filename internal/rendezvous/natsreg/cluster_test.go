package natsreg_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// nodeEnv makes the test binary run one NATS node instead of the tests
// (TestMain), so that a test can kill it with SIGKILL: a hard stop that
// skips the server's clean shutdown.
const nodeEnv = "NATSREG_TEST_NODE"

type nodeSpec struct {
	Dir   string
	Embed natsreg.Embed
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		runNode(spec)
		return
	}
	if spec := os.Getenv(rendezvousEnv); spec != "" {
		runRendezvous(spec)
		return
	}
	os.Exit(m.Run())
}

// runNode runs a NATS node until SIGTERM (clean Shutdown) or until its
// stdin closes (the test is gone), printing its client URL first.
func runNode(spec string) {
	var s nodeSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s.Embed.Log = testLog() // a logger does not survive JSON
	srv, err := natsreg.StartEmbedded(s.Dir, s.Embed)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(srv.URL())
	done := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadByte()
		close(done)
	}()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	select {
	case <-term:
	case <-done:
	}
	srv.Shutdown()
	os.Exit(0)
}

// cluster is three NATS nodes on 127.0.0.1 with routes between them.
type cluster struct {
	names []string
	urls  []string
	// stop stops node i: cleanly, or with SIGKILL when hard (process
	// nodes only).
	stop func(i int, hard bool)
}

// clusterSpecs picks three route ports and names every node's routes.
func clusterSpecs(t *testing.T) []nodeSpec {
	t.Helper()
	var routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, l.Addr().String())
		l.Close()
	}
	specs := make([]nodeSpec, 3)
	for i := range specs {
		_, port, _ := net.SplitHostPort(routes[i])
		p, _ := strconv.Atoi(port)
		specs[i] = nodeSpec{Dir: filepath.Join(t.TempDir(), "n"+strconv.Itoa(i)), Embed: natsreg.Embed{
			Name:    "n" + strconv.Itoa(i),
			Log:     testLog(),
			Cluster: &natsreg.EmbedCluster{Name: "tuanju", Port: p, Routes: routes},
		}}
	}
	return specs
}

// testLog is the nodes' own log: quiet unless NATSREG_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("NATSREG_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// inProcessCluster runs the three nodes in this process.
func inProcessCluster(t *testing.T) *cluster {
	c := &cluster{}
	var srvs []*natsreg.Server
	for _, s := range clusterSpecs(t) {
		srv, err := natsreg.StartEmbedded(s.Dir, s.Embed)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		srvs = append(srvs, srv)
		c.names, c.urls = append(c.names, s.Embed.Name), append(c.urls, srv.URL())
	}
	c.stop = func(i int, hard bool) {
		if hard {
			t.Fatal("an in-process node cannot be killed hard")
		}
		srvs[i].Shutdown()
	}
	return c
}

// processCluster runs each node as a process of its own (runNode).
func processCluster(t *testing.T) *cluster {
	c := &cluster{}
	var cmds []*exec.Cmd
	for _, s := range clusterSpecs(t) {
		cmd, url := startChild(t, nodeEnv, s, "NATS node "+s.Embed.Name)
		cmds = append(cmds, cmd)
		c.names, c.urls = append(c.names, s.Embed.Name), append(c.urls, url)
	}
	c.stop = func(i int, hard bool) {
		sig := syscall.SIGTERM
		if hard {
			sig = syscall.SIGKILL
		}
		if err := cmds[i].Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// startChild runs this test binary as a child that does what spec says
// (env names what: TestMain) and prints one line, its address, which
// startChild returns. Closing its stdin at the test's end stops it.
func startChild(t *testing.T, env string, spec any, what string) (*exec.Cmd, string) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child shuts down and exits
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s did not start: %v", what, err)
	}
	return cmd, strings.TrimSpace(line)
}

// streamLeader names the node that leads a bucket's stream.
func streamLeader(t *testing.T, url, bucket string) string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, "KV_"+bucket)
		if err == nil && st.CachedInfo().Cluster != nil && st.CachedInfo().Cluster.Leader != "" {
			return st.CachedInfo().Cluster.Leader
		}
		if ctx.Err() != nil {
			t.Fatalf("no leader for %s: %v", bucket, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterPairingsVisibleEverywhere: on a three-node cluster with R3
// buckets, a pairing acknowledged through one node is read at once
// through each of the others: its record, its parent by ID, and that it
// is no longer pending. JetStream acknowledges a write once the stream's
// Raft group has committed it on a majority, and reads go to the stream's
// leader (bindBucket), which has applied every write it acknowledged.
func TestClusterPairingsVisibleEverywhere(t *testing.T) {
	c := inProcessCluster(t)
	var regs []*natsreg.Registry
	for _, u := range c.urls {
		regs = append(regs, connect(t, u, 3))
	}
	// Reads go to the leader: no bucket answers from its followers.
	nc, err := nats.Connect(c.urls[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, b := range []string{"tuanju_devices", "tuanju_pairings", "tuanju_parents"} {
		st, err := js.Stream(context.Background(), "KV_"+b)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := st.CachedInfo().Config; cfg.AllowDirect || cfg.Replicas != 3 {
			t.Fatalf("bucket %s: AllowDirect %v, replicas %d; want false, 3", b, cfg.AllowDirect, cfg.Replicas)
		}
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	for i := range 30 {
		w := regs[i%3]
		dev, pair := protocol.NewID(), protocol.NewID()
		must(t)(w.RegisterDevice(dev, []byte("key"), "", now))
		check(t, w.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: pair, CreatedAt: now}))
		for j, r := range regs {
			if d, p, err := r.PendingParent(pair); err != nil || d != dev || p.PairID != pair {
				t.Fatalf("pending %d written through %s, read through %s: %s, %v", i, c.names[i%3], c.names[j], d, err)
			}
		}
		if _, committed, err := w.CompletePairing(dev, pair, now); err != nil || !committed {
			t.Fatalf("complete %d: %v, %v", i, committed, err)
		}
		for j, r := range regs {
			if got, err := r.ParentOf(dev); err != nil || got != pair {
				t.Fatalf("pairing %d written through %s, read through %s: %s, %v", i, c.names[i%3], c.names[j], got, err)
			}
			if p, err := r.Parent(pair); err != nil || p.DeviceID != dev {
				t.Fatalf("parent %d written through %s, read through %s: %+v, %v", i, c.names[i%3], c.names[j], p, err)
			}
			if _, err := r.PendingOf(dev); !errors.Is(err, rendezvous.ErrNotFound) {
				t.Fatalf("pairing %d still pending through %s: %v", i, c.names[j], err)
			}
		}
	}
}

// TestClusterPairingsSurviveNodeLoss: two rendezvous nodes, each on its
// own NATS server, pair the same terminals at once, each with its own
// parents, while the third NATS server, the leader of the pairings
// bucket's stream, stops mid-run: cleanly (SIGTERM, Shutdown) or with
// SIGKILL. Every terminal ends with exactly one parent, the one whose
// CompletePairing returned success (none lost, none duplicated, the other
// node refused), read through both survivors; and the writes stall only
// while a new leader is elected (logged; bounded by OpTimeout).
func TestClusterPairingsSurviveNodeLoss(t *testing.T) {
	for _, hard := range []bool{false, true} {
		name := "shutdown"
		if hard {
			name = "kill-9"
		}
		t.Run(name, func(t *testing.T) { survive(t, hard) })
	}
}

func survive(t *testing.T, hard bool) {
	c := processCluster(t)
	setup := connect(t, c.urls[0], 3)
	victim := -1
	leader := streamLeader(t, c.urls[0], "tuanju_pairings")
	for i, n := range c.names {
		if n == leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("leader %q is none of %v", leader, c.names)
	}
	setup.Close()
	var writers []*natsreg.Registry
	var survivors []string
	for i, u := range c.urls {
		if i != victim {
			writers = append(writers, connect(t, u, 3))
			survivors = append(survivors, c.names[i])
		}
	}

	const terminals = 60
	now := time.Unix(1_800_000_000, 0).UTC()
	devs := make([]string, terminals)
	for i := range devs {
		devs[i] = protocol.NewID()
	}
	type op struct {
		start, end time.Time
		paired     bool
	}
	var (
		mu     sync.Mutex
		ops    []op
		acked  = make([][]string, terminals) // parent IDs whose complete returned success
		failed []error
	)
	progress := make(chan int, 2*terminals)
	var wg sync.WaitGroup
	for w, reg := range writers {
		wg.Go(func() {
			for i, dev := range devs {
				pair := protocol.NewID()
				start := time.Now()
				_, err := reg.RegisterDevice(dev, []byte("key"), "", now)
				if err == nil {
					err = reg.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: pair, CreatedAt: now})
				}
				if err == nil {
					_, _, err = reg.CompletePairing(dev, pair, now)
				}
				mu.Lock()
				ops = append(ops, op{start, time.Now(), err == nil})
				switch {
				case err == nil:
					acked[i] = append(acked[i], pair)
				case errors.Is(err, rendezvous.ErrAlreadyPaired), errors.Is(err, natsreg.ErrPendingExists), errors.Is(err, rendezvous.ErrNotFound):
				default:
					failed = append(failed, fmt.Errorf("writer %d, terminal %d: %w", w, i, err))
				}
				mu.Unlock()
				progress <- i
			}
		})
	}
	var killed time.Time
	for n := 0; ; n++ {
		<-progress
		if n == terminals/2 { // about a quarter of the way: both writers count
			killed = time.Now()
			c.stop(victim, hard)
			break
		}
	}
	go func() {
		for range progress {
		}
	}()
	wg.Wait()
	close(progress)
	elapsed := time.Since(killed)

	for _, err := range failed {
		t.Error(err)
	}
	// How long writes stalled: the longest pairing in progress when the
	// server stopped, and the wait from the stop to the first pairing
	// begun after it that paired (a refusal may need no write).
	var stall, resume time.Duration
	for _, o := range ops {
		if o.start.Before(killed) && o.end.After(killed) {
			stall = max(stall, o.end.Sub(o.start))
		}
		if o.paired && !o.start.Before(killed) && (resume == 0 || o.end.Sub(killed) < resume) {
			resume = o.end.Sub(killed)
		}
	}
	t.Logf("stopped %s (leader of the pairings stream, hard=%v); longest pairing across the stop %v, first pairing begun after it paired %v after; %d pairing attempts, the rest of the run took %v",
		leader, hard, stall.Round(time.Millisecond), resume.Round(time.Millisecond), len(ops), elapsed.Round(time.Millisecond))
	// nats-server's followers call an election 4–9 s after the leader's
	// last heartbeat; OpTimeout (20 s) is what a caller would wait.
	if resume == 0 || resume > 20*time.Second {
		t.Errorf("writes resumed %v after the stop, want within OpTimeout, 20s", resume)
	}

	// Read everything back through fresh connections to each survivor.
	for i, u := range c.urls {
		if i == victim {
			continue
		}
		r := connect(t, u, 3)
		for j, dev := range devs {
			if len(acked[j]) != 1 {
				t.Fatalf("terminal %d: %d parents acknowledged (%v), want exactly 1", j, len(acked[j]), acked[j])
			}
			if got, err := r.ParentOf(dev); err != nil || got != acked[j][0] {
				t.Fatalf("terminal %d through %s: paired with %s, %v; acknowledged %s", j, c.names[i], got, err, acked[j][0])
			}
			if p, err := r.Parent(acked[j][0]); err != nil || p.DeviceID != dev {
				t.Fatalf("terminal %d's parent through %s: %+v, %v", j, c.names[i], p, err)
			}
		}
	}
	t.Logf("%d terminals, each with the one parent acknowledged, read through %v", terminals, survivors)
}
