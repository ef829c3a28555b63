package rendezvous_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// testUnit is a device key and its certificate from the test's programme
// CA.
type testUnit struct {
	key  *ecdsa.PrivateKey
	cert []byte
	id   string
}

// newProgramme makes a programme's CA and its signing key, each with the
// file the server's configuration names: the CA certificate (device_ca_files)
// and the public signing key (fleet.key_files).
func newProgramme(t *testing.T) (ca *devcert.CA, caFile string, sk *signing.Key, keyFile string) {
	t.Helper()
	ca, err := devcert.NewCA("fleet test programme CA")
	check(t, err)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	check(t, os.WriteFile(caFile, ca.CertPEM(), 0o644))
	sk, err = signing.NewKey()
	check(t, err)
	keyFile = filepath.Join(t.TempDir(), "signing-key.pem")
	check(t, os.WriteFile(keyFile, signing.PublicPEM(sk.Public()), 0o644))
	return ca, caFile, sk, keyFile
}

func newTestUnit(t *testing.T, ca *devcert.CA) testUnit {
	t.Helper()
	key, err := devcert.NewDeviceKey()
	check(t, err)
	der, err := ca.Issue(&key.PublicKey)
	check(t, err)
	id, err := devcert.DeviceID(&key.PublicKey)
	check(t, err)
	return testUnit{key, der, id}
}

// writeManifest signs a manifest of units for batch and writes it (and
// its .sig) to a file of its own.
func writeManifest(t *testing.T, key *signing.Key, batch string, units ...testUnit) string {
	t.Helper()
	m := manifest.Manifest{Format: manifest.Format, Programme: "Test", Batch: batch, CreatedAt: time.Now().UTC()}
	for i, u := range units {
		m.Units = append(m.Units, manifest.Unit{Unit: batch + "-0000" + string(rune('1'+i)), DeviceID: u.id, Site: "新河小学", Region: "河北", Language: "zh-CN", TimeZone: "Asia/Shanghai"})
	}
	doc, sig, err := manifest.Encode(m, key)
	check(t, err)
	path := filepath.Join(t.TempDir(), "manifest.json")
	check(t, os.WriteFile(path, doc, 0o644))
	check(t, os.WriteFile(path+".sig", sig, 0o644))
	return path
}

// TestFleetRequire: with fleet.require on, a unit whose certificate is
// good but that is in no manifest is refused at login; importing the
// manifest of its batch lets it in (the running server picks it up); the
// deny list still refuses a unit a manifest lists.
func TestFleetRequire(t *testing.T) {
	ctx := testCtx(t)
	ca, caFile, sk, keyFile := newProgramme(t)
	fleetDir := filepath.Join(t.TempDir(), "fleet")
	revoked := filepath.Join(t.TempDir(), "revoked.txt")
	check(t, os.WriteFile(revoked, nil, 0o644))
	a, b, c := newTestUnit(t, ca), newTestUnit(t, ca), newTestUnit(t, ca)
	keys := try(rendezvous.LoadFleetKeys([]string{keyFile})).must(t)
	if _, _, err := rendezvous.ImportManifest(fleetDir, writeManifest(t, sk, "B1", a, c), keys); err != nil {
		t.Fatal(err)
	}
	srv := rt.NewServer(t, func(cfg *rendezvous.Config) {
		cfg.DeviceCAFiles = append(cfg.DeviceCAFiles, caFile)
		cfg.Fleet = rendezvous.FleetConfig{Dir: fleetDir, KeyFiles: []string{keyFile}, Require: true}
		cfg.RevokedDevicesFile = revoked
		cfg.RevocationCheckInterval = 20 * time.Millisecond
	})
	login := func(u testUnit) error {
		cl, err := rt.DialTerminalCert(ctx, srv.WSURL, u.key, u.cert)
		if err == nil {
			cl.Close()
		}
		return err
	}
	if err := login(a); err != nil {
		t.Fatalf("unit in the manifest: %v", err)
	}
	err := login(b)
	if !isRefusal(err, protocol.ErrCodeAuthFailed) || !strings.Contains(err.Error(), "no manifest") {
		t.Fatalf("unit in no manifest: %v, want auth_failed naming the manifest", err)
	}
	// Batch B2 lists it: imported beside the running server, it gets in.
	if total, added, err := rendezvous.ImportManifest(fleetDir, writeManifest(t, sk, "B2", b), keys); err != nil || total != 1 || added != 1 {
		t.Fatalf("import B2: %d, %d, %v", total, added, err)
	}
	eventually(t, ctx, "the unit of a newly imported manifest logs in", func() bool { return login(b) == nil })
	// The deny list wins over a manifest.
	check(t, os.WriteFile(revoked+".new", []byte(c.id+" stolen\n"), 0o644))
	later := time.Now().Add(time.Minute)
	check(t, os.Chtimes(revoked+".new", later, later))
	check(t, os.Rename(revoked+".new", revoked))
	eventually(t, ctx, "a revoked unit in a manifest is refused", func() bool { return isRefusal(login(c), protocol.ErrCodeAuthFailed) })
	// A test-CA unit (in no manifest) is refused too.
	key, _ := rt.NewKey()
	if _, err := rt.DialTerminal(ctx, srv.WSURL, key); !isRefusal(err, protocol.ErrCodeAuthFailed) {
		t.Fatalf("unlisted test unit: %v", err)
	}
}

// TestFleetOffByDefault: without fleet.require, a unit in no manifest logs
// in as before.
func TestFleetOffByDefault(t *testing.T) {
	ctx := testCtx(t)
	sk, err := signing.NewKey()
	check(t, err)
	keyFile := filepath.Join(t.TempDir(), "signing-key.pem")
	check(t, os.WriteFile(keyFile, signing.PublicPEM(sk.Public()), 0o644))
	srv := rt.NewServer(t, func(cfg *rendezvous.Config) {
		cfg.Fleet = rendezvous.FleetConfig{Dir: filepath.Join(t.TempDir(), "fleet"), KeyFiles: []string{keyFile}}
	})
	key, _ := rt.NewKey()
	cl, err := rt.DialTerminal(ctx, srv.WSURL, key)
	if err != nil {
		t.Fatalf("fleet.require off: %v", err)
	}
	cl.Close()
}

// TestImportManifestRefuses: a manifest that does not verify, one from
// another programme's key, one listing a device another batch has, and a
// batch's new manifest that drops a unit are refused, the fleet directory
// unchanged.
func TestImportManifestRefuses(t *testing.T) {
	ca, err := devcert.NewCA("fleet test program CA")
	check(t, err)
	sk, _ := signing.NewKey()
	other, _ := signing.NewKey()
	keys := []ed25519.PublicKey{sk.Public()}
	dir := filepath.Join(t.TempDir(), "fleet")
	a, b := newTestUnit(t, ca), newTestUnit(t, ca)
	if _, _, err := rendezvous.ImportManifest(dir, writeManifest(t, sk, "B1", a, b), keys); err != nil {
		t.Fatal(err)
	}
	tampered := writeManifest(t, sk, "B3", newTestUnit(t, ca))
	raw, _ := os.ReadFile(tampered)
	check(t, os.WriteFile(tampered, []byte(strings.Replace(string(raw), "河北", "山西", 1)), 0o644))
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"tampered", tampered, manifest.ErrBadManifest},
		{"foreign key", writeManifest(t, other, "B4", newTestUnit(t, ca)), signing.ErrUnknownKey},
		{"device of another batch", writeManifest(t, sk, "B5", a), rendezvous.ErrManifestConflict},
		{"batch drops a unit", writeManifest(t, sk, "B1", a), rendezvous.ErrManifestConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			if _, _, err := rendezvous.ImportManifest(dir, tc.path, keys); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Fatal("a refused manifest changed the fleet directory")
			}
		})
	}
	// The same batch with one more unit is taken.
	if total, added, err := rendezvous.ImportManifest(dir, writeManifest(t, sk, "B1", a, b, newTestUnit(t, ca)), keys); err != nil || total != 3 || added != 1 {
		t.Fatalf("B1 grown: %d, %d, %v", total, added, err)
	}
	units, err := rendezvous.ReadFleet(dir, keys)
	if err != nil || len(units) != 3 || units[a.id].Site != "新河小学" || units[a.id].Batch != "B1" {
		t.Fatalf("fleet %v, %v", units, err)
	}
}
