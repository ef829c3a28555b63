package loadgen_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/loadgen"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// The idle terminals run in a second process (this test binary again, with
// childEnv set), so that what the server's process holds is the server's
// alone.
const childEnv = "TUANJU_LOADGEN_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child makes the identities (args from the environment), says "ready",
// logs them all in when told "go", says "up <n> <failed> <seconds>", and
// holds them until its stdin closes.
func child() error {
	n, err := strconv.Atoi(os.Getenv("TUANJU_LOADGEN_N"))
	if err != nil {
		return err
	}
	ca, err := devcert.LoadCA(os.Getenv("TUANJU_LOADGEN_CA"), os.Getenv("TUANJU_LOADGEN_CA_KEY"))
	if err != nil {
		return err
	}
	if err := loadgen.RaiseFileLimit(uint64(n) + 1024); err != nil {
		return err
	}
	ids := make([]loadgen.Identity, n)
	var wg sync.WaitGroup
	var idErr atomic.Pointer[error]
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			lo, hi := w*n/workers, (w+1)*n/workers
			part, err := loadgen.NewIdentities(ca, hi-lo)
			if err != nil {
				idErr.Store(&err)
				return
			}
			copy(ids[lo:hi], part)
		})
	}
	wg.Wait()
	if p := idErr.Load(); p != nil {
		return *p
	}
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if !in.Scan() {
		return io.ErrUnexpectedEOF
	}
	lostIDs := make(chan int, n)
	fleets := newFleets(os.Getenv("TUANJU_LOADGEN_URL"), func(i int) { lostIDs <- i })
	start := time.Now()
	if err := logins(n, fleets, ids, func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}); err != nil {
		fmt.Fprintln(os.Stderr, "first failure:", err)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("up %d %d %.3f\n", up(fleets), failed(fleets), secs)
	if in.Scan() && in.Text() == "back" {
		// The node they are on dies now: each terminal logs in again,
		// on the nodes left, as soon as it sees its socket go.
		back := newFleets(os.Getenv("TUANJU_LOADGEN_BACK_URL"), nil)
		start := time.Now()
		err := logins(n, back, ids, func(yield func(int) bool) {
			for range n {
				if !yield(<-lostIDs) {
					return
				}
			}
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "first failure:", err)
		}
		fmt.Printf("back %d %d %.3f\n", up(back), failed(back), time.Since(start).Seconds())
		for _, f := range fleets {
			f.Close()
		}
		fleets = back
	}
	io.Copy(io.Discard, os.Stdin)
	lost := 0
	for _, f := range fleets {
		lost += f.Lost()
		f.Close()
	}
	if lost > 0 {
		return fmt.Errorf("the server dropped %d idle terminals", lost)
	}
	return nil
}

// newFleets is a fleet for each of a comma-separated list of URLs: the
// i-th terminal goes to the i-th modulo their number. onLost, if set, is
// told each terminal the server disconnects.
func newFleets(urls string, onLost func(int)) []*loadgen.Fleet {
	var out []*loadgen.Fleet
	for u := range strings.SplitSeq(urls, ",") {
		f := loadgen.NewFleet(u)
		f.OnLost = onLost
		out = append(out, f)
	}
	return out
}

// logins logs in the terminals order yields, 64 at a time (a storm of
// units coming back, bounded), each on its fleet, trying a failed one
// again for up to a minute. It returns the first failure.
func logins(n int, fleets []*loadgen.Fleet, ids []loadgen.Identity, order func(func(int) bool)) error {
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range order {
			next <- i
		}
	}()
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for range 64 {
		wg.Go(func() {
			for i := range next {
				deadline := time.Now().Add(time.Minute)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					err := fleets[i%len(fleets)].Login(ctx, i, ids[i])
					cancel()
					if err == nil {
						break
					}
					firstErr.CompareAndSwap(nil, &err)
					if time.Now().After(deadline) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func up(fleets []*loadgen.Fleet) (n int) {
	for _, f := range fleets {
		n += f.Up()
	}
	return n
}

func failed(fleets []*loadgen.Fleet) (n int) {
	for _, f := range fleets {
		n += f.Failed()
	}
	return n
}

// idleFigures is what one run of n idle terminals measured.
type idleFigures struct {
	n, up, failed int
	loginSecs     float64
	// perTerminal is the server's Go heap and stacks, after a collection,
	// with the terminals idling less before they came, over n.
	perTerminal float64
	// rss is the server process's resident memory with them idling;
	// rssBefore before they came.
	rss, rssBefore int64
	// back, backFailed and backSecs: after their node died, how many
	// logged in again on the nodes left, the attempts that failed, and
	// how long it took from the node's death.
	back, backFailed int
	backSecs         float64
}

// idleRun is what runIdle runs: n terminals on one node (its bbolt
// registry), or on three nodes over NATS (an embedded NATS server, the
// three nodes and the NATS server all in this process, so the memory
// figure is theirs together). With back, the terminals all log in on
// the first of the three, which then closes; each logs in again on one
// of the two left.
type idleRun struct {
	n     int
	nodes int
	back  bool
}

// runIdle starts the nodes, logs the terminals in from a second process
// and measures the process with them idling.
func runIdle(tb testing.TB, r idleRun) idleFigures {
	tb.Helper()
	n := r.n
	if os.Getenv("TUANJU_LOADGEN_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	if err := loadgen.RaiseFileLimit(uint64(n) + 4096); err != nil {
		tb.Skipf("%d sockets: %v", n, err)
	}
	rendezvous.TuneRuntime() // as cmd/rendezvous runs
	dir := tb.TempDir()
	ca, err := devcert.NewCA("loadgen programme CA")
	if err != nil {
		tb.Fatal(err)
	}
	caFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	srvs := idleNodes(tb, r.nodes, caFile)
	var urls []string
	for _, s := range srvs {
		urls = append(urls, s.WSURL)
	}
	loginURLs, backURLs := urls, []string{}
	if r.back {
		loginURLs, backURLs = urls[:1], urls[1:]
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "TUANJU_LOADGEN_N="+strconv.Itoa(n),
		"TUANJU_LOADGEN_CA="+caFile, "TUANJU_LOADGEN_CA_KEY="+keyFile,
		"TUANJU_LOADGEN_URL="+strings.Join(loginURLs, ","), "TUANJU_LOADGEN_BACK_URL="+strings.Join(backURLs, ","))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			stdin.Close()
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	out := bufio.NewScanner(stdout)
	line := func() string {
		if !out.Scan() {
			tb.Fatalf("load generator ended early: %v", out.Err())
		}
		return out.Text()
	}
	if l := line(); l != "ready" {
		tb.Fatalf("load generator said %q, want ready", l)
	}
	before, rssBefore := serverMemory(), rss()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		tb.Fatal(err)
	}
	f := idleFigures{n: n}
	if _, err := fmt.Sscanf(line(), "up %d %d %f", &f.up, &f.failed, &f.loginSecs); err != nil {
		tb.Fatalf("load generator: %v", err)
	}
	// The welcomes are written; let the writers that sent them end.
	settle(n)
	after := serverMemory()
	f.perTerminal = float64(after-before) / float64(n)
	f.rss, f.rssBefore = rss(), rssBefore
	if r.back {
		if _, err := io.WriteString(stdin, "back\n"); err != nil {
			tb.Fatal(err)
		}
		srvs[0].Close()
		if _, err := fmt.Sscanf(line(), "back %d %d %f", &f.back, &f.backFailed, &f.backSecs); err != nil {
			tb.Fatalf("load generator: %v", err)
		}
	}
	stdin.Close()
	err = cmd.Wait()
	waited = true
	if err != nil {
		tb.Fatalf("load generator: %v", err)
	}
	return f
}

// idleNodes starts the nodes an idleRun measures, quiet, with limits that
// let one process log thousands of units in at once.
func idleNodes(tb testing.TB, nodes int, caFile string) []*rt.Server {
	tb.Helper()
	natsURL := ""
	if nodes > 1 {
		ns, err := natsreg.StartEmbedded(tb.TempDir(), natsreg.Embed{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(ns.Shutdown)
		natsURL = ns.URL()
	}
	var srvs []*rt.Server
	for i := range nodes {
		srvs = append(srvs, rt.NewQuietServer(tb, func(c *rendezvous.Config) {
			c.DeviceCAFiles = []string{caFile}
			c.TURN.Listen = "" // not what this measures
			c.NATSURL, c.NodeName = natsURL, fmt.Sprintf("n%d", i)
			l := &c.Limits
			l.PendingMax, l.PendingPerIP, l.PendingPerPrefix = 1<<20, 1<<20, 1<<20
			l.ConnectsPerIP = rendezvous.Rate{Burst: 1 << 30, PerMinute: 1 << 30}
		}))
	}
	return srvs
}

// serverMemory is this process's Go heap in use and goroutine stacks after
// a collection.
func serverMemory() int64 {
	if p := os.Getenv("TUANJU_LOADGEN_HEAPPROFILE"); p != "" {
		defer func() {
			f, _ := os.Create(p)
			pprof.WriteHeapProfile(f)
			f.Close()
		}()
	}
	for range 4 { // each collection may halve a goroutine's idle stack
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if os.Getenv("TUANJU_LOADGEN_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "heap %d stack %d goroutines %d\n", m.HeapInuse, m.StackInuse, runtime.NumGoroutine())
	}
	return int64(m.HeapInuse + m.StackInuse)
}

// settle waits (at most 30 s) until the goroutine count stops falling.
func settle(n int) {
	last := runtime.NumGoroutine()
	for range 60 {
		time.Sleep(500 * time.Millisecond)
		now := runtime.NumGoroutine()
		if now >= last && now <= n+200 {
			return
		}
		last = now
	}
}

// rss is this process's resident set in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for ln := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(ln, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// idleBudget is issue 16's figure: what one idle terminal may cost its node.
const idleBudget = 20 << 10

// TestIdleTerminalMemory: 2,000 terminals log in from 200 loopback
// addresses and idle; the server's heap and stacks grow by at most
// idleBudget each (BenchmarkIdleTerminals: 100,000).
func TestIdleTerminalMemory(t *testing.T) {
	const n = 2000
	f := runIdle(t, idleRun{n: n, nodes: 1})
	t.Logf("%d terminals: %.0f B each (heap and stacks), logins %.0f/s, server RSS %d MiB", f.up, f.perTerminal, float64(f.up)/f.loginSecs, f.rss>>20)
	if f.up != n || f.failed != 0 {
		t.Fatalf("%d of %d terminals logged in, %d failed", f.up, n, f.failed)
	}
	if budget := idleBudget * raceFactor; f.perTerminal > float64(budget) {
		t.Fatalf("an idle terminal costs the server %.0f B, over %d", f.perTerminal, budget)
	}
}

// BenchmarkIdleTerminals: TUANJU_IDLE_TERMINALS (100,000) terminals
// idling on one node: bytes each (Go heap and stacks), the node's RSS, and
// logins per second. A machine whose open-file limit cannot be raised that
// far (a container's hard limit) runs as many as it allows, and
// MiB-RSS-100k projects the node's RSS to 100,000 from the RSS each
// terminal added.
func BenchmarkIdleTerminals(b *testing.B) {
	n := 100_000
	if v := os.Getenv("TUANJU_IDLE_TERMINALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	if err := loadgen.RaiseFileLimit(uint64(n) + 4096); err != nil {
		limit := loadgen.FileLimit()
		if limit < 8192 {
			b.Skipf("%d terminals: %v", n, err)
		}
		b.Logf("%v: running %d terminals, what the hard limit of %d open files allows", err, limit-4096, limit)
		n = int(limit) - 4096
	}
	var f idleFigures
	for b.Loop() {
		f = runIdle(b, idleRun{n: n, nodes: 1})
	}
	if f.up != n {
		b.Fatalf("%d of %d terminals logged in, %d failed", f.up, n, f.failed)
	}
	b.ReportMetric(f.perTerminal, "B/terminal")
	b.ReportMetric(float64(f.rss)/(1<<20), "MiB-RSS")
	perRSS := float64(f.rss-f.rssBefore) / float64(n)
	b.ReportMetric((float64(f.rssBefore)+100_000*perRSS)/(1<<20), "MiB-RSS-100k")
	b.ReportMetric(float64(n)/f.loginSecs, "logins/s")
	b.ReportMetric(float64(n), "terminals")
}

// BenchmarkCluster is issue 16's figures for several nodes, each beside
// one node's in the same run: TUANJU_CLUSTER_TERMINALS (10,000) idle
// terminals on one node (bbolt) and on three nodes over NATS (spread over
// the three): bytes each (what the whole process's Go heap and stacks
// grew by: for three, the three nodes and the NATS server together) and
// logins per second. Then return: the terminals all on one node of three, which
// closes; seconds until every one has logged in again on the two left,
// and those logins per second.
func BenchmarkCluster(b *testing.B) {
	n := 10_000
	if v := os.Getenv("TUANJU_CLUSTER_TERMINALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range []struct {
		name string
		run  idleRun
	}{
		{"idle/one-node", idleRun{n: n, nodes: 1}},
		{"idle/three-nodes-nats", idleRun{n: n, nodes: 3}},
		{"return/three-nodes-nats", idleRun{n: n, nodes: 3, back: true}},
	} {
		b.Run(r.name, func(b *testing.B) {
			var f idleFigures
			for b.Loop() {
				f = runIdle(b, r.run)
			}
			if f.up != n {
				b.Fatalf("%d of %d terminals logged in, %d failed", f.up, n, f.failed)
			}
			if !r.run.back {
				b.ReportMetric(f.perTerminal, "B/terminal")
				b.ReportMetric(float64(n)/f.loginSecs, "logins/s")
				return
			}
			if f.back != n {
				b.Fatalf("%d of %d terminals back after their node closed, %d attempts failed", f.back, n, f.backFailed)
			}
			b.ReportMetric(f.backSecs, "s-all-back")
			b.ReportMetric(float64(n)/f.backSecs, "logins/s")
		})
	}
}
