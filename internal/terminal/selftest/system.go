package selftest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// NetworkOptions configures NetworkCheck. The zero Lookup and Dial use the
// system's resolver and a plain TCP dialer.
type NetworkOptions struct {
	ServerURL string
	Lookup    func(ctx context.Context, host string) ([]string, error)
	Dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	Timeout   time.Duration
}

// NetworkCheck resolves the rendezvous server's host and opens a TCP
// connection to it: the two things a terminal in a village most often
// lacks. It does not speak the protocol (the terminal itself reports a
// server that refuses it). Without a server URL it is skipped, so the
// hardware of a unit not yet configured can be checked.
func NetworkCheck(o NetworkOptions) Check {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Lookup == nil {
		o.Lookup = net.DefaultResolver.LookupHost
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	return Check{Name: "network", Timeout: 2*o.Timeout + time.Second, Run: func(ctx context.Context, _ *T) (Status, string) {
		if o.ServerURL == "" {
			return Skipped, "skipped: no server_url configured (set it in the config, or -server, to test DNS and the connection)"
		}
		u, err := url.Parse(o.ServerURL)
		if err != nil || u.Hostname() == "" {
			return Fail, fmt.Sprintf("server URL %q has no host", o.ServerURL)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"ws": "80", "http": "80", "wss": "443", "https": "443"}[u.Scheme]
		}
		addrs := []string{host}
		dns := "no DNS (an address)"
		if net.ParseIP(host) == nil {
			lctx, cancel := context.WithTimeout(ctx, o.Timeout)
			start := time.Now()
			addrs, err = o.Lookup(lctx, host)
			cancel()
			if err != nil || len(addrs) == 0 {
				return Fail, fmt.Sprintf("DNS %s: %v", host, err)
			}
			dns = fmt.Sprintf("DNS %s → %s in %s", host, addrs[0], time.Since(start).Round(time.Millisecond))
		}
		dctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		addr := net.JoinHostPort(addrs[0], port)
		start := time.Now()
		c, err := o.Dial(dctx, "tcp", addr)
		if err != nil {
			return Fail, fmt.Sprintf("%s; TCP %s: %v", dns, addr, err)
		}
		c.Close()
		return Pass, fmt.Sprintf("%s; TCP %s connected in %s", dns, addr, time.Since(start).Round(time.Millisecond))
	}}
}

// MinFreeBytes is the free space below which storage fails: the state file
// is small, but an update and the logs need room.
const MinFreeBytes = 32 << 20

// StorageCheck writes, syncs and removes a file beside the state file, and
// reports free space.
func StorageCheck(stateFile string, minFree uint64) Check {
	return Check{Name: "storage", Run: func(ctx context.Context, _ *T) (Status, string) {
		dir := filepath.Dir(stateFile)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return Fail, fmt.Sprintf("state dir %s: %v", dir, err)
		}
		f, err := os.CreateTemp(dir, ".selftest-*")
		if err != nil {
			return Fail, fmt.Sprintf("state dir %s not writable: %v", dir, err)
		}
		_, werr := f.Write(make([]byte, 4096))
		serr := f.Sync()
		cerr := f.Close()
		rerr := os.Remove(f.Name())
		if err := errors.Join(werr, serr, cerr, rerr); err != nil {
			return Fail, fmt.Sprintf("state dir %s: write test file: %v", dir, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return Fail, fmt.Sprintf("statfs %s: %v", dir, err)
		}
		free := st.Bavail * uint64(st.Bsize)
		total := st.Blocks * uint64(st.Bsize)
		d := fmt.Sprintf("%s writable; %s free of %s", dir, bytesHuman(free), bytesHuman(total))
		if free < minFree {
			return Fail, d + fmt.Sprintf(": below %s", bytesHuman(minFree))
		}
		return Pass, d
	}}
}

func bytesHuman(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}

// ClockOptions configures ClockCheck; the zero value reads the real clock.
type ClockOptions struct {
	Now func() time.Time
	// Synced reports whether the kernel considers the clock NTP-synced.
	Synced func() (bool, error)
}

// earliestSane is before any unit was built: a clock before it never got
// the time (no RTC battery, no NTP yet).
var earliestSane = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// ClockCheck fails a clock that never got the time (TLS certificates then
// look not yet valid and the terminal cannot reach its server) and says
// whether NTP has synchronised it.
func ClockCheck(o ClockOptions) Check {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Synced == nil {
		o.Synced = KernelSynced
	}
	return Check{Name: "clock", Run: func(context.Context, *T) (Status, string) {
		now := o.Now().UTC()
		sync := "NTP synced"
		if ok, err := o.Synced(); err != nil {
			sync = "NTP state unknown: " + err.Error()
		} else if !ok {
			sync = "not NTP synced"
		}
		d := now.Format("2006-01-02 15:04:05 UTC") + "; " + sync
		if now.Before(earliestSane) || now.Year() > 2100 {
			return Fail, d + ": the clock is wrong (TLS to the server will fail)"
		}
		return Pass, d
	}}
}

// KernelSynced asks the kernel (adjtimex) whether the clock is synchronised:
// STA_UNSYNC is clear once an NTP client (systemd-timesyncd, chrony) has
// set it.
func KernelSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("adjtimex: %w", err)
	}
	return tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR, nil
}
