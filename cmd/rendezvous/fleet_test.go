package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// TestFleetImportList: `rendezvous fleet import` takes a signed manifest
// into the configured fleet directory and `fleet list` shows its units with
// site and region; a manifest signed by another key is refused.
func TestFleetImportList(t *testing.T) {
	dir := t.TempDir()
	sk, _ := signing.NewKey()
	keyFile := filepath.Join(dir, "signing-key.pem")
	os.WriteFile(keyFile, signing.PublicPEM(sk.Public()), 0o644)
	key, _ := devcert.NewDeviceKey()
	id, _ := devcert.DeviceID(&key.PublicKey)
	m := manifest.Manifest{Format: manifest.Format, Programme: "P", Batch: "B1", CreatedAt: time.Now().UTC(),
		Units: []manifest.Unit{{Unit: "B1-00001", DeviceID: id, Site: "新河小学", Region: "河北"}}}
	write := func(k *signing.Key) string {
		doc, sig, err := manifest.Encode(m, k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "manifest.json")
		os.WriteFile(p, doc, 0o644)
		os.WriteFile(p+".sig", sig, 0o644)
		return p
	}
	cfgFile := filepath.Join(dir, "rendezvous.toml")
	os.WriteFile(cfgFile, []byte("data_dir = \""+filepath.Join(dir, "data")+"\"\ndevice_ca_files = [\"x.pem\"]\n[fleet]\nkey_files = [\""+keyFile+"\"]\n"), 0o644)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fleet", "import", "-config", cfgFile, write(sk)}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 units, 1 new") {
		t.Fatalf("import said %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"fleet", "list", "-config", cfgFile}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "B1-00001") || !strings.Contains(out.String(), "新河小学") || !strings.Contains(out.String(), id) {
		t.Fatalf("list said %q", out.String())
	}
	// The batch's numbers beside its manifest come in too, into a file
	// only the server reads; the command does not print them.
	path := write(sk)
	pdoc, psig, err := manifest.EncodePhones(manifest.Phones{Format: manifest.PhonesFormat, Programme: "P", Batch: "B1",
		Units: []manifest.Phone{{Unit: "B1-00001", DeviceID: id, Phone: "+8613800138000"}}}, sk)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(filepath.Dir(path), manifest.PhonesJSONName), pdoc, 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(path), manifest.PhonesJSONName+".sig"), psig, 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"fleet", "import", "-config", cfgFile, path}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 parents' numbers") || strings.Contains(out.String(), "13800138000") {
		t.Fatalf("import with numbers said %q", out.String())
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "data", "fleet", "*.phones"))
	if len(kept) != 1 {
		t.Fatalf("fleet directory holds numbers %v, want one file", kept)
	}
	if info, err := os.Stat(kept[0]); err != nil {
		t.Fatal(err)
	} else if info.Mode().Perm() != 0o600 {
		t.Fatalf("numbers file mode %v, want 0600", info.Mode())
	}
	other, _ := signing.NewKey()
	if err := run(context.Background(), []string{"fleet", "import", "-config", cfgFile, write(other)}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not the programme's") {
		t.Fatalf("foreign manifest: %v", err)
	}
	// An operator: a token printed once, its hash in the file.
	ops := filepath.Join(dir, "operators")
	out.Reset()
	if err := run(context.Background(), []string{"fleet", "operator", "-operators", ops, "hebei-office"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	token := lines[len(lines)-1]
	saved, _ := os.ReadFile(ops)
	if len(token) < 20 || strings.Contains(string(saved), token) || !strings.HasPrefix(string(saved), "hebei-office ") {
		t.Fatalf("operator: printed %q, file %q", out.String(), saved)
	}
}
