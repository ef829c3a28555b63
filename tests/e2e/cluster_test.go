package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// A deployment of several nodes as it runs in the field (issue 16): three
// nats-server processes (the NATS project's own server, built from the
// module this repository pins) in one JetStream cluster, and three
// rendezvous processes (cmd/rendezvous, as built for a server) on it, each
// on an address of its own in 127.0.0.0/8. kill sends SIGKILL.

// clusterProc is one process of the deployment.
type clusterProc struct {
	name string
	addr string // host:port it serves on
	cmd  *exec.Cmd
	log  *lineCounter
}

func (p *clusterProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// lineCounter passes a process's log on to the test's output and counts
// the lines holding some phrases.
type lineCounter struct {
	mu     sync.Mutex
	out    io.Writer
	prefix string
	lines  []string
}

func (l *lineCounter) run(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		fmt.Fprintln(l.out, l.prefix+sc.Text())
		l.mu.Unlock()
	}
}

// count is how many lines hold every one of phrases.
func (l *lineCounter) count(phrases ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
lines:
	for _, s := range l.lines {
		for _, p := range phrases {
			if !strings.Contains(s, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// buildClusterBinaries builds nats-server and rendezvous into a temporary
// directory.
func buildClusterBinaries(t *testing.T) (natsServer, rendezvous string) {
	t.Helper()
	dir := t.TempDir()
	natsServer, rendezvous = filepath.Join(dir, "nats-server"), filepath.Join(dir, "rendezvous")
	for pkg, out := range map[string]string{"github.com/nats-io/nats-server/v2": natsServer, "./cmd/rendezvous": rendezvous} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = filepath.Join("..", "..")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return natsServer, rendezvous
}

// freePort is a TCP port free on host now.
func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProc starts a process of the deployment; SIGTERM at the test's end
// (SIGKILL if it does not go).
func startProc(t *testing.T, name string, stdout io.Writer, bin string, args ...string) *clusterProc {
	t.Helper()
	p := &clusterProc{name: name, cmd: exec.Command(bin, args...), log: &lineCounter{out: testOutput(t), prefix: name + ": "}}
	errOut, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		p.log.run(errOut)
		p.cmd.Wait()
		if c, ok := stdout.(io.Closer); ok {
			c.Close() // a reader of its output sees the end
		}
		close(done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// startNATSCluster runs three nats-server processes in one cluster, with
// JetStream syncing every write (as docs/architecture.md asks of a
// deployment), on 127.0.1.1-3.
func startNATSCluster(t *testing.T, bin string) []*clusterProc {
	t.Helper()
	var hosts, routes []string
	for i := range 3 {
		h := "127.0.1." + strconv.Itoa(i+1)
		hosts = append(hosts, h)
		routes = append(routes, fmt.Sprintf("nats-route://%s:%d", h, freePort(t, h)))
	}
	var procs []*clusterProc
	for i, h := range hosts {
		dir := t.TempDir()
		addr := net.JoinHostPort(h, strconv.Itoa(freePort(t, h)))
		_, routePort, _ := strings.Cut(strings.TrimPrefix(routes[i], "nats-route://"), ":")
		conf := fmt.Sprintf(`server_name: n%d
listen: %q
jetstream { store_dir: %q, sync_interval: always }
cluster { name: tuanju, listen: "%s:%s", routes: [%s] }
`, i, addr, dir, h, routePort, `"`+strings.Join(routes, `", "`)+`"`)
		file := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "nats n"+strconv.Itoa(i), io.Discard, bin, "-c", file)
		p.addr = addr
		procs = append(procs, p)
	}
	// A rendezvous node whose NATS does not answer at its start exits
	// (a service manager starts it again): wait until each listens.
	for _, p := range procs {
		eventually(t, step, p.name+" listens", func() bool {
			c, err := net.Dial("tcp", p.addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return procs
}

// startRendezvousNode runs a rendezvous node named name on host, on the
// NATS cluster, and returns once it listens.
func startRendezvousNode(t *testing.T, bin, name, host string, nats []*clusterProc) *clusterProc {
	t.Helper()
	var urls []string
	for _, n := range nats {
		urls = append(urls, "nats://"+n.addr)
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`listen = "%s:0"
data_dir = %q
device_ca_files = [%q]
nats_url = %q
nats_replicas = 3
node_name = %q
pair_requests_per_minute_per_ip = 1000

[backup]
every = "0s"

[turn]
listen = ""
`, host, dir, rendezvoustest.TestCAFile(t), strings.Join(urls, ","), name)
	file := filepath.Join(dir, "rendezvous.toml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, w := io.Pipe()
	p := startProc(t, "node "+name, w, bin, "-config", file)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("node %s did not start: %v\n%s", name, err, strings.Join(p.log.lines, "\n"))
	}
	go io.Copy(io.Discard, out)
	// "rendezvous listening on http://ADDR/"
	_, u, _ := strings.Cut(strings.TrimSpace(line), " on ")
	p.addr = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
	return p
}

// startDeployment builds and runs the deployment: the NATS cluster and
// rendezvous nodes a, b and c on 127.0.2.1–3. Short tests skip it.
func startDeployment(t *testing.T) (nats []*clusterProc, a, b, c *clusterProc) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs a NATS cluster and three rendezvous nodes")
	}
	natsBin, rendezvousBin := buildClusterBinaries(t)
	nats = startNATSCluster(t, natsBin)
	a = startRendezvousNode(t, rendezvousBin, "a", "127.0.2.1", nats)
	b = startRendezvousNode(t, rendezvousBin, "b", "127.0.2.2", nats)
	c = startRendezvousNode(t, rendezvousBin, "c", "127.0.2.3", nats)
	return nats, a, b, c
}

// TestBrowserCallAcrossNodeLoss is issue 16's three-node test with Chromium
// as the phone. The terminal reaches the deployment through one name with
// two addresses (node a, then b: a proxy that tries each, as a client does
// a name's addresses); the parent's page is on node c. They pair through
// c, the child calls and the parent calls, with video both ways. Then, in
// a call, node a (the terminal's) and NATS server n0 are killed with
// SIGKILL. The terminal logs in on b and resumes the call there, b taking
// it from the log; the page's socket, relayed by c to a, is moved and
// resumes it too. The call goes on — both ends decode new frames, neither
// ever leaves it — within 60 s, and the family calls again on the nodes
// left with its pairing unchanged.
func TestBrowserCallAcrossNodeLoss(t *testing.T) {
	nats, a, b, c := startDeployment(t)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	name := newProxy(t, "http://"+a.addr, "http://"+b.addr)
	srv := &rendezvoustest.Server{URL: "http://" + c.addr, WSURL: "ws://" + c.addr + "/ws"}
	r := startTerminal(t, ctx, srv, terminalOpts{wsURL: name.wsURL(), resumeGrace: 75 * time.Second})
	page := pairBrowserAt(t, r, c.addr)
	if a.log.count("logged in (relayed)") == 0 {
		t.Fatal("the page on c was not relayed to a, the terminal's node")
	}

	// The child calls; the parent hangs up. The parent calls; the child
	// answers and hangs up with a long press.
	answerChildsCall(t, r, page, "across nodes")
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the parent hung up")
	waitPageIdle(t, page)
	parentCallsChild(t, r, page, "across nodes")
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the child hung up")
	waitPageIdle(t, page)

	// In a call, the terminal's node and a NATS server die.
	answerChildsCall(t, r, page, "before the kill")
	decoded := func() (int64, uint64) {
		st, err := browsertest.Stats(page)
		if err != nil {
			t.Fatal(err)
		}
		return st.Video.FramesDecoded, uint64(r.term.Status().Received.VideoFramesDecoded)
	}
	callID := r.term.Status().CallID
	a.kill(t)
	nats[0].kill(t)
	killed := time.Now()
	eventually(t, 60*time.Second, "node b takes the call the terminal resumes", func() bool {
		return b.log.count("cluster: took the call from its node") == 1
	})
	p, tm := decoded()
	eventually(t, 60*time.Second, "both ends decode new frames, the page back on its socket", func() bool {
		on, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.tuanju.online === true`))
		p2, tm2 := decoded()
		return err == nil && on && r.term.Status().Online && p2 > p+15 && tm2 > tm+15
	})
	back := time.Since(killed)
	s, err := chromedp.Run(page, chromedp.Evaluate[string](`document.body.dataset.state`))
	if err != nil || s != "call" || r.term.Status().State != "in_call" || r.term.Status().CallID != callID {
		t.Fatalf("after the kill: page %q (%v), terminal %s in %s; want both still in call %s", s, err, r.term.Status().State, r.term.Status().CallID, callID)
	}
	t.Logf("node a and NATS n0 killed mid-call: the call resumed on node b, both ends decoding, %v after the kill", back.Round(100*time.Millisecond))
	if back > 60*time.Second {
		t.Fatalf("the call took %v to come back, want ≤ 60 s", back)
	}
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after hanging up")
	waitPageIdle(t, page)

	// The family calls again on the nodes left, paired as before.
	parentCallsChild(t, r, page, "on the nodes left")
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the last call")
	if st := r.term.Status(); !st.Paired || st.ParentID == "" {
		t.Fatalf("the terminal after the kill: %+v, want paired as before", st)
	}
}

// waitPageIdle waits for the page to leave a call and closes its "call
// ended" screen, as a parent does.
func waitPageIdle(t *testing.T, page context.Context) {
	t.Helper()
	eventually(t, step, "page back home after the call", func() bool {
		s, err := chromedp.Run(page, chromedp.Evaluate[string](`document.body.dataset.state`))
		if err == nil && s == "ended" {
			chromedp.Run(page, chromedp.Click(chromedp.CSS("#ended-ok")))
		}
		return err == nil && s == "home"
	})
}

// TestPairingThroughNodeDeath is issue 16's "kill a node during pairing":
// three nodes on one NATS server; the terminal behind one name (node a,
// then b), the pairing page and then the phone on c, relayed to a. At each
// of the server's pairing steps on a, a dies there (its hook stops it, as
// a crash would, and it closes). The terminal logs in on b and the phone
// on c learns how the pairing ended: paired on all three sides or on none
// (none lost, none doubled), and when on none, the family pairs again.
func TestPairingThroughNodeDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes per step")
	}
	splits, paired := 0, 0
	for _, p := range rendezvous.FaultPoints {
		var o pairOutcome
		t.Run(string(p), func(t *testing.T) { o = pairAcrossNodeDeath(t, p) })
		if o.split() {
			splits++
		}
		if o.terminal != "" {
			paired++
		}
	}
	t.Logf("node a killed at each of %d pairing steps: %d splits (%d ended paired, %d unpaired and paired again)",
		len(rendezvous.FaultPoints), splits, paired, len(rendezvous.FaultPoints)-paired)
	if splits != 0 {
		t.Errorf("%d of %d steps split the pairing", splits, len(rendezvous.FaultPoints))
	}
}

func pairAcrossNodeDeath(t *testing.T, f rendezvous.FaultPoint) pairOutcome {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	node := func(name string) *rendezvoustest.Server {
		return rendezvoustest.NewServer(t, func(c *rendezvous.Config) { c.NATSURL, c.NodeName = ns.URL(), name })
	}
	a, b, c := node("a"), node("b"), node("c")
	name := newProxy(t, a.URL, b.URL)

	fault := newOneFault()
	a.SetPairFault(func(s rendezvous.FaultPoint) bool { return s == f && fault.hit() })
	r := startTerminal(t, ctx, c, terminalOpts{wsURL: name.wsURL(), statePath: filepath.Join(t.TempDir(), "terminal.db")})

	sctx, scancel := context.WithTimeout(ctx, step)
	defer scancel()
	deviceID, pagec := pairUntilFault(t, sctx, r, c.WSURL, fault, nil, string(f))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Only the terminal logs in on b: until it has, its status may still
	// say it is online (on a).
	if err := b.WaitLogged(sctx, "logged in", 1); err != nil {
		t.Fatal(err)
	}
	return settlePairing(t, ctx, sctx, r, b.Registry(), c.WSURL, deviceID, pagec, "node a's death at "+string(f))
}
