package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tuanju/tuanju/internal/terminal"
)

type options struct {
	bin, data string
	listen    string // rendezvous HTTP
	turn      string // rendezvous TURN (UDP)
	panel     string // simulated board's device panel
	profile   string
}

// demoFlags binds the demo's flags to o.
func demoFlags(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tuanju-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { program().Usage(fs.Output()) }
	fs.StringVar(&o.bin, "bin", "bin", "`directory` holding the rendezvous and terminald binaries")
	fs.StringVar(&o.data, "data", ".demo", "`directory` for the demo's state (kept between runs: it holds the pairing)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "rendezvous server `address`")
	fs.StringVar(&o.turn, "turn", "127.0.0.1:3478", "TURN relay `address` (UDP)")
	fs.StringVar(&o.panel, "panel", "127.0.0.1:8081", "device panel `address`")
	fs.StringVar(&o.profile, "profile", "low", "media `profile`: normal, low, very-low or audio-only")
	return fs
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := demoFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// demo starts both processes, prints the URLs (the pairing link while the
// terminal has no parent) and waits for Ctrl-C. The terminal's state, and so
// its pairing, is kept in the data directory between runs.
func demo(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
	}
	unlock, err := lockData(o.data)
	if err != nil {
		return err
	}
	defer unlock()
	base := "http://" + o.listen
	ws := "ws://" + o.listen + "/ws"
	logs, err := os.Create(filepath.Join(o.data, "demo.log"))
	if err != nil {
		return err
	}
	defer logs.Close()

	ca, caFile, err := demoCA(o.data)
	if err != nil {
		return err
	}
	if err := provisionTerminal(ctx, o, ca, logs); err != nil {
		return err
	}
	rv, err := start(ctx, filepath.Join(o.bin, "rendezvous"), logs, "-device-ca", caFile,
		"-listen", o.listen, "-data", filepath.Join(o.data, "rendezvous"), "-public-url", base,
		"-turn-listen", o.turn, "-turn-public-ip", strings.Split(o.turn, ":")[0], "-turn-allow-peers", "127.0.0.0/8")
	if err != nil {
		return err
	}
	defer stopProc(rv, stderr)
	if err := waitHTTP(ctx, base+"/healthz"); err != nil {
		return fmt.Errorf("rendezvous server did not come up (see %s): %w", logs.Name(), err)
	}

	td, err := start(ctx, filepath.Join(o.bin, "terminald"), logs,
		"-server", ws, "-public-url", base, "-state", filepath.Join(o.data, "terminal.db"),
		"-board", "sim", "-panel", o.panel, "-camera", "synthetic", "-mic", "synthetic",
		"-profile", o.profile, "-loopback-only", "-log-format", "text")
	if err != nil {
		return err
	}
	defer stopProc(td, stderr)
	panel := "http://" + o.panel
	st, err := waitTerminal(ctx, panel, func(s terminal.Status) bool { return s.Online })
	if err != nil {
		return fmt.Errorf("terminal did not come up (see %s): %w", logs.Name(), err)
	}

	how := fmt.Sprintf(`  The parent's phone (open in Chrome):  %s/
      this browser is paired already; ring the terminal from there, answer its calls.`, base)
	if !st.Paired {
		// Pairing is the parent's to do, in the browser: the page's key is
		// made there and can never leave it, so the demo cannot pair for it.
		// The link comes from the simulated board's panel, which shows it
		// as the unit's printed label (a QR code): terminald itself never
		// logs or prints it (docs/security.md), so the log file above does
		// not hold it; a real unit's technician uses `terminald label`.
		how = fmt.Sprintf(`  The parent's phone: open this pairing link in Chrome (it is what the QR label carries)
      %s
      then, when the panel's lights blink "pairing", press the big button once.
      Afterwards the page is at %s/ in that browser.`, st.PairingURL, base)
	}
	fmt.Fprintf(stdout, `
Tuanju is running on this machine (logs: %s).

  The child's terminal (device panel): %s/
      press the big button to call; hold it 2 s to hang up.

%s

Press Ctrl-C to stop.
`, logs.Name(), panel, how)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping…")
	return nil
}

func start(ctx context.Context, path string, logs io.Writer, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run `make build` first): %w", path, err)
	}
	return cmd, nil
}

// stopProc asks a child to stop and kills it if it does not within 5 s.
func stopProc(cmd *exec.Cmd, stderr io.Writer) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(stderr, "%s did not stop; killing it\n", filepath.Base(cmd.Path))
		cmd.Process.Kill()
		<-done
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func waitHTTP(ctx context.Context, u string) error {
	return poll(ctx, func(ctx context.Context) error {
		var v any
		err := getJSON(ctx, u, &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil // up, just not JSON
		}
		return err
	})
}

// waitTerminal waits until the terminal's status satisfies ok.
func waitTerminal(ctx context.Context, panel string, ok func(terminal.Status) bool) (terminal.Status, error) {
	var st terminal.Status
	err := poll(ctx, func(ctx context.Context) error {
		if err := getJSON(ctx, panel+"/api/terminal", &st); err != nil {
			return err
		}
		if !ok(st) {
			return fmt.Errorf("terminal not ready yet (state %s, online %v, paired %v)", st.State, st.Online, st.Paired)
		}
		return nil
	})
	return st, err
}

func poll(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
