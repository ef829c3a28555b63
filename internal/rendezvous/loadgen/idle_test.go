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
	fleet := loadgen.NewFleet(os.Getenv("TUANJU_LOADGEN_URL"))
	start := time.Now()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	for range 64 { // logins in flight: a storm of units coming back, bounded
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := fleet.Login(ctx, i, ids[i]); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("up %d %d %.3f\n", fleet.Up(), fleet.Failed(), secs)
	if p := firstErr.Load(); p != nil {
		fmt.Fprintln(os.Stderr, "first failure:", *p)
	}
	io.Copy(io.Discard, os.Stdin)
	lost := fleet.Lost()
	fleet.Close()
	if lost > 0 {
		return fmt.Errorf("the server dropped %d idle terminals", lost)
	}
	return nil
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
}

// runIdle starts a server, logs n terminals in from a second process and
// measures the server with them idling.
func runIdle(tb testing.TB, n int) idleFigures {
	tb.Helper()
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
	srv := rt.NewQuietServer(tb, func(c *rendezvous.Config) {
		c.DeviceCAFiles = []string{caFile}
		c.TURN.Listen = "" // not what this measures
		l := &c.Limits
		l.PendingMax, l.PendingPerIP, l.PendingPerPrefix = 1<<20, 1<<20, 1<<20
		l.ConnectsPerIP = rendezvous.Rate{Burst: 1 << 30, PerMinute: 1 << 30}
	})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "TUANJU_LOADGEN_N="+strconv.Itoa(n),
		"TUANJU_LOADGEN_CA="+caFile, "TUANJU_LOADGEN_CA_KEY="+keyFile, "TUANJU_LOADGEN_URL="+srv.WSURL)
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
	stdin.Close()
	err = cmd.Wait()
	waited = true
	if err != nil {
		tb.Fatalf("load generator: %v", err)
	}
	return f
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
	f := runIdle(t, n)
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
		f = runIdle(b, n)
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
