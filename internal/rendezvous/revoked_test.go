package rendezvous_test

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
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

	// A paired unit, online, is put on the list, by `rendezvous revoke`'s
	// edit this time.
	f := newFamily(t, ctx, srv)
	famID := f.terminal.Welcome.DeviceID
	if added, _, err := rendezvous.EditRevoked(list, []string{famID, stolenID}, "lost in transit", nil, time.Now()); err != nil || added != 1 {
		t.Fatalf("EditRevoked = %d added, %v; want the one new unit", added, err)
	}
	e := try(f.terminal.ExpectError(ctx, protocol.ErrCodeAuthFailed)).must(t)
	t.Logf("online unit told: %s", e.Text)
	if code := try(f.terminal.WaitClosed(ctx)).must(t); code != rendezvous.CloseAuthFailed {
		t.Fatalf("revoked unit closed with %v, want %v", code, rendezvous.CloseAuthFailed)
	}
	pres := try(f.parent.WaitFor(ctx, protocol.TypePresence)).must(t)
	if *pres.PeerOnline || pres.Reason != protocol.ReasonRevoked {
		t.Fatalf("parent got presence %+v, want offline because revoked", pres)
	}
	refusedLogins(f.key, famID, 2)
	// A parent tab that opens now is told the same at login.
	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	if w := tab.Welcome; *w.PeerOnline || w.Reason != protocol.ReasonRevoked {
		t.Fatalf("parent welcome %+v, want offline because revoked", w)
	}
	tab.Close()

	// A malformed edit keeps the list in use, check after check.
	const kept = "revoked devices: keeping the list in use"
	before := srv.Logged(kept)
	write(stolenID + "\nnot-a-device-id\n")
	check(t, srv.WaitLogged(ctx, kept, before+2))
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
		_, err := natsreg.NewRendezvous(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestEditRevoked: the edits `rendezvous revoke` makes keep what an operator
// wrote by hand, never list a unit twice, and change nothing when refused.
func TestEditRevoked(t *testing.T) {
	_, a := rt.NewKey()
	_, b := rt.NewKey()
	_, c := rt.NewKey()
	at := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	hand := "# reported stolen at Xinhe primary school\n" + a + "  stolen  # see ticket 12\n\n"
	tests := []struct {
		name           string
		start          string // "" : no file yet
		add, remove    []string
		reason         string
		added, removed int
		want           string // the file after; "" : unchanged
		wantErr        bool
	}{
		{name: "new file", add: []string{b}, reason: "lost", added: 1,
			want: "# added 2026-11-29T06:00:00Z by rendezvous revoke\n" + b + "  lost\n"},
		{name: "keeps hand edits, skips listed", start: hand, add: []string{a, b, b}, added: 1,
			want: hand + "# added 2026-11-29T06:00:00Z by rendezvous revoke\n" + b + "\n"},
		{name: "remove keeps comments", start: hand + c + " retired\n", remove: []string{a}, removed: 1,
			want: "# reported stolen at Xinhe primary school\n\n" + c + " retired\n"},
		{name: "nothing to do", start: hand, add: []string{a}, remove: []string{b}},
		{name: "bad id", start: hand, add: []string{"not-a-device-id"}, wantErr: true},
		{name: "reason with a comment", start: hand, add: []string{b}, reason: "x # y", wantErr: true},
		{name: "malformed file", start: hand + "nonsense\n", add: []string{b}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "revoked.txt")
			if tc.start != "" {
				check(t, os.WriteFile(path, []byte(tc.start), 0o640))
			}
			added, removed, err := rendezvous.EditRevoked(path, tc.add, tc.reason, tc.remove, at)
			if (err != nil) != tc.wantErr || added != tc.added || removed != tc.removed {
				t.Fatalf("EditRevoked = %d added, %d removed, %v; want %d, %d, error %v", added, removed, err, tc.added, tc.removed, tc.wantErr)
			}
			got, _ := os.ReadFile(path)
			want := tc.want
			if want == "" {
				want = tc.start
			}
			if string(got) != want {
				t.Fatalf("file now:\n%s\nwant:\n%s", got, want)
			}
			if tc.want == "" {
				return
			}
			if _, err := rendezvous.ReadRevoked(path); err != nil {
				t.Fatalf("the edited file does not parse: %v", err)
			}
			if fi, _ := os.Stat(path); tc.start != "" && fi.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v, want the old file's 0640", fi.Mode().Perm())
			}
		})
	}
}
