package batch_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/labels/labelstest"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
)

func init() { programme.ScryptLogN = 10 }

type env struct {
	prog  *programme.Dir
	keys  *programme.Keys
	fonts labels.Fonts
}

func newEnv(t testing.TB) env {
	t.Helper()
	d, err := programme.Init(filepath.Join(t.TempDir(), "prog"), programme.Settings{Name: "Test", ServerURL: "wss://t.example.org/ws",
		PublicURL: "https://t.example.org", TimeZone: "Asia/Shanghai", Language: "zh-CN", DataBudgetMB: 300,
		WiFi: []bundle.WiFi{{SSID: "school", PSK: "password1"}}}, []byte("test passphrase 1"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.Unlock([]byte("test passphrase 1"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := labels.LoadFonts("", "")
	if err != nil {
		t.Fatal(err)
	}
	return env{d, k, f}
}

func rows(t testing.TB, from, to int) []batch.Row {
	t.Helper()
	var b strings.Builder
	b.WriteString("site,child,region,reunion_windows\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "第%d小学,孩子%d,河北,Sat 19:00-20:00\n", i%37, i)
	}
	rs, err := batch.ReadCSV(strings.NewReader(b.String()), def, window)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e env) opts(dir string, rs []batch.Row) batch.Options {
	return batch.Options{Dir: dir, Name: "B1", Rows: rs, Programme: e.prog, Keys: e.keys, Fonts: e.fonts, ChunkSize: 50}
}

// files reads every output file of a batch (not the journal).
func files(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(p) == batch.JournalFile {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return nil
	})
	return out
}

// check asserts what must hold of a finished batch of n units: numbered
// 1..n without gap, every device ID and secret once, a bundle per unit that
// verifies with the programme's key and carries its record's identity and
// a certificate from the programme's CA, and a manifest that verifies and
// lists exactly the units.
func check(t *testing.T, e env, dir string, n int) []batch.Record {
	t.Helper()
	recs, err := batch.Units(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d units, want %d", len(recs), n)
	}
	ids, secrets := map[string]bool{}, map[string]bool{}
	pub := []ed25519.PublicKey{e.keys.Signing.Public()}
	for i, r := range recs {
		if r.N != i+1 || r.Unit != fmt.Sprintf("B1-%05d", i+1) {
			t.Fatalf("unit %d is %d %s: a gap or a repeat", i+1, r.N, r.Unit)
		}
		if ids[r.DeviceID] || secrets[r.PairingSecret] {
			t.Fatalf("unit %s repeats a device ID or secret", r.Unit)
		}
		ids[r.DeviceID], secrets[r.PairingSecret] = true, true
		b, err := os.ReadFile(filepath.Join(dir, batch.BundlesDir, r.Unit+batch.BundleExt))
		if err != nil {
			t.Fatal(err)
		}
		u, err := bundle.Decode(b, pub)
		if err != nil {
			t.Fatalf("bundle %s: %v", r.Unit, err)
		}
		if u.Identity != r.Identity || u.PairingSecret != r.PairingSecret || u.DeviceID != r.DeviceID {
			t.Fatalf("bundle %s does not carry its unit's identity", r.Unit)
		}
		if i < 3 { // the certificate chain, for a few (it is the same code for all)
			_, cert, err := devcert.ParseBundle([]byte(u.Identity))
			if err != nil {
				t.Fatal(err)
			}
			if id, _, err := devcert.Verify(cert, []*x509.Certificate{e.keys.CA.Cert}, time.Now()); err != nil || id != r.DeviceID {
				t.Fatalf("certificate of %s: %s, %v", r.Unit, id, err)
			}
			if u.Settings.DataBudgetMB != 300 || u.Settings.WiFi[0].SSID != "school" || u.Settings.ReunionWindows[0] != "Sat 19:00-20:00" {
				t.Fatalf("bundle %s settings %+v", r.Unit, u.Settings)
			}
		}
	}
	doc, err := os.ReadFile(filepath.Join(dir, batch.ManifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, batch.ManifestJSON+".sig"))
	m, err := manifest.Decode(doc, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Units) != n {
		t.Fatalf("manifest lists %d units, want %d", len(m.Units), n)
	}
	for i, u := range m.Units {
		if u.DeviceID != recs[i].DeviceID || u.Unit != recs[i].Unit || u.Region != "河北" {
			t.Fatalf("manifest unit %d is %+v, want %s", i, u, recs[i].Unit)
		}
	}
	if strings.Contains(string(doc), "孩子") {
		t.Fatal("the server's manifest names a child")
	}
	csvDoc, _ := os.ReadFile(filepath.Join(dir, batch.ManifestCSV))
	csvSig, _ := os.ReadFile(filepath.Join(dir, batch.ManifestCSV+".sig"))
	if _, err := signing.VerifyDetached(csvDoc, csvSig, pub); err != nil {
		t.Fatalf("manifest.csv: %v", err)
	}
	if got := strings.Count(string(csvDoc), "\n"); got != n+1 {
		t.Fatalf("manifest.csv has %d lines, want %d", got, n+1)
	}
	for name := range files(t, dir) {
		if strings.Contains(name, ".tmp-") {
			t.Fatalf("temporary file %s left", name)
		}
	}
	return recs
}

// TestRunAgainChangesNothing: a finished batch run again issues nothing and
// rewrites nothing (every file byte-identical); run with more rows it adds
// units after the last, leaving the first ones as they were.
func TestRunAgainChangesNothing(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "b1")
	res, err := batch.Run(context.Background(), e.opts(dir, rows(t, 0, 30)))
	if err != nil || res.Issued != 30 || res.Units != 30 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	first := check(t, e, dir, 30)
	before := files(t, dir)
	res, err = batch.Run(context.Background(), e.opts(dir, rows(t, 0, 30)))
	if err != nil || res.Issued != 0 || res.Planned != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	after := files(t, dir)
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed on a run that issued nothing", name)
		}
	}
	// More rows, the old ones in another order: new units come after.
	more := append(rows(t, 30, 35), rows(t, 0, 30)...)
	slices.Reverse(more[5:])
	res, err = batch.Run(context.Background(), e.opts(dir, more))
	if err != nil || res.Issued != 5 || res.Planned != 5 {
		t.Fatalf("run with 5 more: %+v, %v", res, err)
	}
	all := check(t, e, dir, 35)
	if !slices.Equal(all[:30], first) {
		t.Fatal("adding rows changed units already issued")
	}
	for _, name := range []string{"bundles/B1-00001.tjb", "bundles/B1-00030.tjb"} {
		if !bytes.Equal(files(t, dir)[name], before[name]) {
			t.Errorf("%s changed when rows were added", name)
		}
	}
}

// TestChangedRowRefused: a row already issued that now says something else
// stops the run before anything is issued, naming the row and the field.
func TestChangedRowRefused(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "b1")
	if _, err := batch.Run(context.Background(), e.opts(dir, rows(t, 0, 5))); err != nil {
		t.Fatal(err)
	}
	rs := rows(t, 0, 6)
	rs[2].Region = "山西"
	_, err := batch.Run(context.Background(), e.opts(dir, rs))
	if !errors.Is(err, batch.ErrChanged) || !strings.Contains(err.Error(), "row 4, region") || !strings.Contains(err.Error(), "B1-00003") {
		t.Fatalf("err %v", err)
	}
	check(t, e, dir, 5) // the new sixth row was not issued either
	if _, err := batch.Run(context.Background(), batch.Options{Dir: dir, Name: "B2", Rows: rows(t, 0, 5), Programme: e.prog, Keys: e.keys, Fonts: e.fonts}); err == nil {
		t.Fatal("a run under another batch name was taken")
	}
}

var errKilled = errors.New("killed (test)")

// TestKilledAnywhere stops a run at write points chosen at random (each
// journal commit, each file's rename: where a kill or power cut lands), then
// runs it again: the batch ends complete, with the same identities for
// every unit issued before the stop, no gap, no repeat, no temporary file.
func TestKilledAnywhere(t *testing.T) {
	e := newEnv(t)
	const n = 120 // three journal commits of 50
	rs := rows(t, 0, n)
	// The write points of a whole run: most are bundles; the others
	// (journal commits, the label sheet, the manifests) are drawn as often.
	var bundlePts, otherPts []int
	o := e.opts(filepath.Join(t.TempDir(), "count"), rs)
	o.Fault = func(p string) error {
		if strings.HasSuffix(p, batch.BundleExt) {
			bundlePts = append(bundlePts, len(bundlePts)+len(otherPts))
		} else {
			otherPts = append(otherPts, len(bundlePts)+len(otherPts))
		}
		return nil
	}
	if _, err := batch.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for trial := range 6 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("b", trial))
		// Up to three stops in a row, then a clean run.
		var stops []string
		for range 1 + rng.IntN(3) {
			pts := otherPts
			if rng.IntN(3) == 0 {
				pts = bundlePts
			}
			at, k := pts[rng.IntN(len(pts))], 0
			o := e.opts(dir, rs)
			o.Fault = func(p string) error {
				k++
				if k > at {
					stops = append(stops, p)
					return errKilled
				}
				return nil
			}
			if _, err := batch.Run(context.Background(), o); err != nil && !errors.Is(err, errKilled) {
				t.Fatalf("trial %d: %v", trial, err)
			}
		}
		var issued []batch.Record
		if _, err := os.Stat(filepath.Join(dir, batch.JournalFile)); err == nil {
			issued, _ = batch.Units(dir)
		}
		if _, err := batch.Run(context.Background(), e.opts(dir, rs)); err != nil {
			t.Fatalf("trial %d (stopped at %q): the run after: %v", trial, stops, err)
		}
		recs := check(t, e, dir, n)
		if !slices.Equal(recs[:len(issued)], issued) {
			t.Fatalf("trial %d (stopped at %q): identities issued before the stop changed", trial, stops)
		}
		t.Logf("trial %d: stopped at %q with %d units issued", trial, stops, len(issued))
	}
}

// TestLabelsDecode: every label of a batch reads back, from the rendered
// PDF, as its unit's pairing link, with the unit's device ID and secret.
func TestLabelsDecode(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "b1")
	if _, err := batch.Run(context.Background(), e.opts(dir, rows(t, 0, 23))); err != nil {
		t.Fatal(err)
	}
	recs := check(t, e, dir, 23)
	pdf, err := os.ReadFile(filepath.Join(dir, batch.LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	got := labelstest.DecodeAll(t, labelstest.Render(t, pdf), len(recs))
	for i, r := range recs {
		id, sec, err := pairing.ParseURL(got[i])
		if err != nil || id != r.DeviceID || sec.String() != r.PairingSecret || !strings.HasPrefix(got[i], "https://t.example.org/pair#") {
			t.Fatalf("label %d reads %q (%v); unit %s is %s", i, got[i], err, r.Unit, r.DeviceID)
		}
	}
}

// TestLargeBatch: 2,000 rows (400 under -race; 10,000 with
// TUANJU_BATCH_10K=1) make as many
// units, checked as every batch is (bundles verify, the manifest lists
// them, no repeats); run again, nothing is issued. BenchmarkBatch10000
// measures the time of 10,000 (make bench).
func TestLargeBatch(t *testing.T) {
	n := 2000
	if raceOn {
		n = 400
	}
	if os.Getenv("TUANJU_BATCH_10K") == "1" {
		n = 10_000
	}
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "b1")
	rs := rows(t, 0, n)
	if res, err := batch.Run(context.Background(), e.opts(dir, rs)); err != nil || res.Issued != n {
		t.Fatalf("%+v, %v", res, err)
	}
	check(t, e, dir, n)
	if res, err := batch.Run(context.Background(), e.opts(dir, rs)); err != nil || res.Issued != 0 || res.Units != n {
		t.Fatalf("run again: %+v, %v", res, err)
	}
}
