package cellular_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/internal/terminal/cellular"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

const chatPath = "/data/terminald/ppp-chat"

// TestMake: the three files for an APN with credentials, line by line, and
// no secrets (and no user line) for one without.
func TestMake(t *testing.T) {
	f, err := cellular.Make(bundle.APN{Name: "ctnet", User: "ctnet@mycdma.cn", Password: "vnet mobi#1"}, chatPath)
	if err != nil {
		t.Fatal(err)
	}
	const header = "# Written by terminald from this unit's provisioning bundle; it is rewritten at every start.\n"
	wantPeer := header + `# The modem's port and speed are on pppd's command line: the network script
# picks the port that answers AT.
# No authentication of the network; its route and DNS servers are the unit's.
noauth
defaultroute
usepeerdns
noipdefault
# Redial for ever, 10 s apart; a link that answers no LCP echo for 4 x 15 s
# is dead (a modem out of coverage keeps the serial line up).
persist
maxfail 0
holdoff 10
lcp-echo-interval 15
lcp-echo-failure 4
connect "/usr/sbin/chat -v -f /data/terminald/ppp-chat"
user "ctnet@mycdma.cn"
`
	wantChat := header + `ABORT BUSY
ABORT 'NO CARRIER'
ABORT ERROR
ABORT 'NO DIALTONE'
ABORT 'NO ANSWER'
TIMEOUT 10
'' AT
OK 'AT+CGDCONT=1,"IP","ctnet"'
OK ATD*99#
TIMEOUT 30
CONNECT ''
`
	wantSecrets := header + `"ctnet@mycdma.cn" * "vnet mobi#1" *` + "\n"
	for _, c := range []struct{ name, got, want string }{{"peer", string(f.Peer), wantPeer}, {"chat", string(f.Chat), wantChat}, {"secrets", string(f.Secrets), wantSecrets}} {
		if c.got != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, c.got, c.want)
		}
	}

	f, err = cellular.Make(bundle.APN{Name: "cmnet"}, chatPath)
	if err != nil {
		t.Fatal(err)
	}
	if f.Secrets != nil || bytes.Contains(f.Peer, []byte("\nuser ")) || !bytes.Contains(f.Chat, []byte(`'AT+CGDCONT=1,"IP","cmnet"'`)) {
		t.Errorf("an APN without a user: secrets %q, peer:\n%s\nchat:\n%s", f.Secrets, f.Peer, f.Chat)
	}
}

// TestMakeRefuses: values that would add a pppd option or a chat command
// if they were written as they are (a newline and an option, quotes, chat's
// escapes) make no files and an error naming the field; so does a chat
// path sh would split.
func TestMakeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    bundle.APN
		chat string
		says string
	}{
		{"name: newline and option", bundle.APN{Name: "x\nplugin evil.so"}, chatPath, "apn name"},
		{"name: quote ends the AT line", bundle.APN{Name: `x"'` + "\nOK AT+CFUN=0"}, chatPath, "apn name"},
		{"name: space", bundle.APN{Name: "cm net"}, chatPath, "apn name"},
		{"name: chat escape", bundle.APN{Name: `cmnet\c`}, chatPath, "apn name"},
		{"name: empty", bundle.APN{}, chatPath, "apn name"},
		{"user: newline and option", bundle.APN{Name: "a", User: "x\nplugin evil.so"}, chatPath, "user has a character"},
		{"user: quote and option", bundle.APN{Name: "a", User: `x" plugin "evil.so`}, chatPath, "user has a character"},
		{"password: newline and secret", bundle.APN{Name: "a", User: "u", Password: "p\n\"root\" * \"x\" *"}, chatPath, "password has a character"},
		{"password: backslash", bundle.APN{Name: "a", User: "u", Password: `p\`}, chatPath, "password has a character"},
		{"password without user", bundle.APN{Name: "a", Password: "p"}, chatPath, "password without a user"},
		{"chat path: relative", bundle.APN{Name: "a"}, "ppp-chat", "chat script path"},
		{"chat path: space", bundle.APN{Name: "a"}, "/data/a b/ppp-chat", "chat script path"},
		{"chat path: quote", bundle.APN{Name: "a"}, `/data/"x`, "chat script path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := cellular.Make(tc.a, tc.chat)
			if err == nil || f.Peer != nil || f.Chat != nil || f.Secrets != nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Make = %+v, %v; want no files and an error saying %q", f, err, tc.says)
			}
			if tc.chat == chatPath && !errors.Is(err, bundle.ErrBadAPN) {
				t.Fatalf("Make: %v, want ErrBadAPN", err)
			}
		})
	}
}

// lineShape is every line Make may write for the accepted APNs below:
// nothing of the bundle's starts a line or stands outside quotes.
var lineShape = regexp.MustCompile(`^(#[^\n]*|noauth|defaultroute|usepeerdns|noipdefault|persist|maxfail 0|holdoff 10|lcp-echo-interval 15|lcp-echo-failure 4|` +
	`connect "/usr/sbin/chat -v -f /data/terminald/ppp-chat"|user "[^"\\]*"|"[^"\\]*" \* "[^"\\]*" \*|` +
	`ABORT (BUSY|'NO CARRIER'|ERROR|'NO DIALTONE'|'NO ANSWER')|TIMEOUT (10|30)|'' AT|OK 'AT\+CGDCONT=1,"IP","[A-Za-z0-9.-]+"'|OK ATD\*99#|CONNECT ''|)$`)

// TestMakeLines: APNs with awkward but valid credentials (spaces, #, *, $,
// option words) give no line but the generator's own.
func TestMakeLines(t *testing.T) {
	for _, a := range []bundle.APN{
		{Name: "cmnet"},
		{Name: "m2m.t-mobile.com", User: "plugin evil.so", Password: "noauth connect /bin/sh"},
		{Name: "a-b.c", User: "# * $x ^M", Password: " * * "},
	} {
		f, err := cellular.Make(a, chatPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range [][]byte{f.Peer, f.Chat, f.Secrets} {
			for i, line := range strings.Split(string(file), "\n") {
				if !lineShape.MatchString(line) {
					t.Errorf("%+v: line %d %q is not one the generator writes", a, i+1, line)
				}
			}
		}
	}
}

// requirePPP finds a tool of Debian's ppp package; the test skips without
// it unless TUANJU_REQUIRE_PPP is set (CI installs the package).
func requirePPP(t *testing.T, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("TUANJU_REQUIRE_PPP") != "" {
		t.Fatalf("%s not found: install Debian's ppp (TUANJU_REQUIRE_PPP is set)", name)
	}
	t.Skipf("%s not found (Debian's ppp): skipping", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// openPTY opens a pseudo-terminal pair: the master (the fake modem's end)
// and the slave, set raw, as a serial port pppd has configured: no echo, no
// line editing, no CR/NL translation. The slave stays open until the test
// ends: while no slave is open, a read on the master fails (EIO), and a
// modem that read before chat opened its port would die (it did, under
// load, in CI).
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave := fmt.Sprintf("/dev/pts/%d", n)
	s, err := os.OpenFile(slave, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// cfmakeraw(3)
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return master, s
}

// modem is a fake modem on a pty's master: it reads commands ended by CR
// and answers as a modem whose network knows one APN: OK to AT, OK to
// AT+CGDCONT=1,"IP","<apn>" for exactly that APN (ERROR otherwise, as a
// modem the network refuses), CONNECT to ATD*99#, ERROR to anything else;
// an empty line it ignores.
type modem struct {
	mu   sync.Mutex
	seen []string
}

func (m *modem) run(master *os.File, apn string) {
	var line []byte
	buf := make([]byte, 256)
	for {
		n, err := master.Read(buf)
		if err != nil {
			return
		}
		for _, c := range buf[:n] {
			if c == '\n' {
				continue
			}
			if c != '\r' {
				line = append(line, c)
				continue
			}
			cmd := string(line)
			line = line[:0]
			if cmd == "" {
				continue // a bare CR (chat's CONNECT '' sends one), ignored as a modem does
			}
			m.mu.Lock()
			m.seen = append(m.seen, cmd)
			m.mu.Unlock()
			reply := "ERROR"
			switch cmd {
			case "AT", `AT+CGDCONT=1,"IP","` + apn + `"`:
				reply = "OK"
			case "ATD*99#":
				reply = "CONNECT 150000000"
			}
			if _, err := master.Write([]byte("\r\n" + reply + "\r\n")); err != nil {
				return
			}
		}
	}
}

func (m *modem) commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.seen)
}

// dial runs Debian's chat with the generated script on a fake modem whose
// network knows netAPN, as pppd's connect line does (the port on stdin and
// stdout), and returns the commands the modem saw, chat's log and error.
func dial(t *testing.T, chat string, a bundle.APN, netAPN string) ([]string, string, error) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "ppp-chat")
	f, err := cellular.Make(a, script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, f.Chat, 0o600); err != nil {
		t.Fatal(err)
	}
	master, port := openPTY(t)
	m := &modem{}
	go m.run(master, netAPN)
	// A bound on a hung chat only (its own TIMEOUTs are 10 and 30 s).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, chat, "-v", "-s", "-f", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = port, port, &log
	err = cmd.Run()
	return m.commands(), log.String(), err
}

// TestChatDials: Debian's chat, running the generated script against a
// fake modem on a pseudo-terminal, sends exactly AT, the PDP context with
// the bundle's APN and ATD*99#, and exits 0 on CONNECT. The control: a
// modem whose network refuses that APN (ERROR to AT+CGDCONT) makes chat
// fail on its ABORT ERROR (exit 6: 4 + its place among the ABORTs) before
// it dials.
func TestChatDials(t *testing.T) {
	chat := requirePPP(t, "chat")
	for _, a := range []bundle.APN{{Name: "cmnet"}, {Name: "m2m.T-Mobile.com", User: "u", Password: "p"}} {
		seen, log, err := dial(t, chat, a, a.Name)
		if err != nil {
			t.Fatalf("apn %q: chat: %v\n%s", a.Name, err, log)
		}
		if want := []string{"AT", `AT+CGDCONT=1,"IP","` + a.Name + `"`, "ATD*99#"}; !slices.Equal(seen, want) {
			t.Fatalf("apn %q: the modem saw %q, want %q", a.Name, seen, want)
		}
	}

	seen, log, err := dial(t, chat, bundle.APN{Name: "cmnet"}, "3gnet")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 6 {
		t.Fatalf("a refused APN: chat %v, want exit 6 (chat exits 4+i for the i-th ABORT string: ERROR is the third)\n%s", err, log)
	}
	if want := []string{"AT", `AT+CGDCONT=1,"IP","cmnet"`}; !slices.Equal(seen, want) {
		t.Fatalf("a refused APN: the modem saw %q, want %q (no dialling)", seen, want)
	}
}

// TestPPPDReadsPeer: Debian's pppd parses and checks the generated peer
// file (`pppd <port> 115200 file <peer> dryrun`, the port a pty): it gets
// past every option to the kernel's /dev/ppp, where it stops here (exit 4,
// no kernel PPP in the test's machine) or, where there is one, prints the
// options and exits 0 (dryrun). A user with spaces and # is one quoted
// word. The control: a file with an option pppd does not know is refused
// as such (exit 2), so the check can fail.
func TestPPPDReadsPeer(t *testing.T) {
	pppd := requirePPP(t, "pppd")
	if os.Geteuid() != 0 && os.Getenv("TUANJU_REQUIRE_PPP") == "" {
		t.Skip("pppd takes connect and the device from a file only for root: skipping")
	}
	_, port := openPTY(t)
	slave := port.Name()
	run := func(peer []byte) (int, string) {
		path := filepath.Join(t.TempDir(), "ppp-peer")
		if err := os.WriteFile(path, peer, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(pppd, slave, "115200", "file", path, "dryrun").CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("pppd: %v", err)
		}
		if err == nil {
			return 0, string(out)
		}
		return exit.ExitCode(), string(out)
	}
	f, err := cellular.Make(bundle.APN{Name: "cmnet", User: "user name #1", Password: "p"}, chatPath)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := run(append(slices.Clone(f.Peer), "bogus-option\n"...)); code != 2 || !strings.Contains(out, "bogus-option") {
		t.Fatalf("a peer file with an unknown option: pppd exit %d, want 2 (an option error)\n%s", code, out)
	}
	code, out := run(f.Peer)
	switch {
	case code == 4 && strings.Contains(out, "/dev/ppp"):
	case code == 0 && strings.Contains(out, "user name #1"):
	default:
		t.Fatalf("pppd exit %d on the generated peer file, want 4 (stopped at /dev/ppp) or 0 (dryrun)\n%s\n%s", code, out, f.Peer)
	}
}
