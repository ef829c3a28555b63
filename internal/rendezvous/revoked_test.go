package rendezvous_test

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/protocol"
	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

// TestRevokedDevices: a unit on the programme's deny list cannot log in with
// its real key and certificate; one added while online is dropped and its
// parent sees it go offline; one taken off the list logs in again; and a
// malformed edit of the list changes nothing.
func TestRevokedDevices(t *testing.T) {
	ctx := testCtx(t)
	list := filepath.Join(t.TempDir(), "revoked.txt")
	stolen, stolenID := rt.NewKey()
	write := func(content string) {
		t.Helper()
		// As docs/provisioning-keys.md says to: a new file renamed over the
		// old, so the server never reads half an edit.
		tmp := list + ".new"
		check(t, os.WriteFile(tmp, []byte(content), 0o644))
		// A rewrite within the filesystem's time granularity must still
		// count as a change: move the time on.
		later := time.Now().Add(time.Duration(len(content)) * time.Second)
		check(t, os.Chtimes(tmp, later, later))
		check(t, os.Rename(tmp, list))
	}
	write("# units reported stolen\n" + stolenID + "  stolen from the school office\n")
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.RevokedDevicesFile = list
		c.RevocationCheckInterval = 20 * time.Millisecond
	})
	refusedLogins := func(key *ecdsa.PrivateKey, id string, attempts int) {
		t.Helper()
		for range attempts {
			c, err := rt.DialTerminal(ctx, srv.WSURL, key)
			if err == nil {
				c.Close()
				t.Fatalf("revoked unit %s logged in", id)
			}
			if !isRefusal(err, protocol.ErrCodeAuthFailed) {
				t.Fatalf("revoked unit %s: %v, want auth_failed", id, err)
			}
		}
	}
	refusedLogins(stolen, stolenID, 3)

	// A paired unit, online, is put on the list.
	f := newFamily(t, ctx, srv)
	famID := f.terminal.Welcome.DeviceID
	write("# units reported stolen\n" + stolenID + " stolen\n" + famID + " lost in transit\n")
	e := try(f.terminal.ExpectError(ctx, protocol.ErrCodeAuthFailed)).must(t)
	t.Logf("online unit told: %s", e.Text)
	if code := try(f.terminal.WaitClosed(ctx)).must(t); code != rendezvous.CloseAuthFailed {
		t.Fatalf("revoked unit closed with %v, want %v", code, rendezvous.CloseAuthFailed)
	}
	pres := try(f.parent.WaitFor(ctx, protocol.TypePresence)).must(t)
	if *pres.PeerOnline {
		t.Fatal("parent still sees the revoked unit online")
	}
	refusedLogins(f.key, famID, 2)

	// A malformed edit keeps the list in use.
	write(stolenID + "\nnot-a-device-id\n")
	time.Sleep(100 * time.Millisecond) // several checks; nothing may change
	refusedLogins(f.key, famID, 1)

	// Taken off the list (found again): the unit logs in as before.
	write("# units reported stolen\n" + stolenID + " stolen\n")
	var back *rt.Client
	deadline := time.Now().Add(rt.Timeout)
	for back == nil {
		c, err := rt.DialTerminal(ctx, srv.WSURL, f.key)
		switch {
		case err == nil:
			back = c
		case !isRefusal(err, protocol.ErrCodeAuthFailed) || time.Now().After(deadline):
			t.Fatalf("unit taken off the list still cannot log in: %v", err)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer back.Close()
	if back.Welcome.Paired == nil || !*back.Welcome.Paired {
		t.Fatal("the unit's pairing did not survive its revocation and reinstatement")
	}
	refusedLogins(stolen, stolenID, 1)
}

func TestRevokedDevicesFileRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	check(t, os.WriteFile(bad, []byte("# ok\nabcdefghijklmnopqrstuvwxyz\nABCDEFGHIJKLMNOPQRSTUVWXYZ typo\n"), 0o644))
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "none.txt"), "none.txt"},
		{"bad line", bad, "line 3"},
	} {
		cfg := rt.TestConfig(t)
		cfg.RevokedDevicesFile = tc.path
		_, err := rendezvous.New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}
