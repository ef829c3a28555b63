package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// TestMain lowers the key files' work factor, and runs the command itself
// when the test binary is started as `provision` (TestKilledProcess).
func TestMain(m *testing.M) {
	programme.ScryptLogN = 10
	if at, ok := os.LookupEnv("PROVISION_TEST_KILL_AT"); ok {
		// Die by SIGKILL at the at-th write: no deferred cleanup runs.
		var k, n int
		fmt.Sscan(at, &k)
		testFault = func(string) error {
			if n++; n == k {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			return nil
		}
	}
	if args, ok := os.LookupEnv("PROVISION_TEST_ARGS"); ok {
		os.Exit(cli.Exit(os.Stderr, "provision", run(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr)))
	}
	os.Exit(m.Run())
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("provision %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestHelp: --help teaches: the root lists the commands and the order of
// work, each command explains its files.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"provision init", "provision batch", "provision flash", "ca rotate", "passphrase", "fleet import"}},
		{[]string{"help", "flash"}, []string{"provisioning", "--yes", "--allow-non-removable", "--allow-large", "--programme-key", "lsblk"}},
		{[]string{"help", "batch"}, []string{"reunion_windows", "GBK", "Resumable", "labels.pdf", "--csv"}},
		{[]string{"init", "-h"}, []string{"programme.toml", "device_ca_files", "--passphrase-file"}},
		{[]string{"ca", "rotate", "--help"}, []string{"device_ca_files"}},
	} {
		out := runOK(t, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("provision %s lacks %q", strings.Join(tc.args, " "), w)
			}
		}
	}
	// No flag takes the passphrase itself: ps would show it.
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"init", "--dir", t.TempDir(), "--passphrase", "x"}, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Fatalf("--passphrase: %v", err)
	}
}

// setup makes a programme with a passphrase file and a families CSV of n
// rows.
func setup(t *testing.T, n int) (prog, passFile, csvPath string) {
	t.Helper()
	dir := t.TempDir()
	prog, passFile, csvPath = filepath.Join(dir, "prog"), filepath.Join(dir, "pass"), filepath.Join(dir, "families.csv")
	if err := os.WriteFile(passFile, []byte("a long test passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runOK(t, "init", "--dir", prog, "--name", "Test", "--server-url", "ws://127.0.0.1:1/ws", "--public-url", "http://127.0.0.1:1", "--passphrase-file", passFile)
	if !strings.Contains(out, "ca-1.pem") || !strings.Contains(out, "programme-key.pem") {
		t.Fatalf("init says:\n%s", out)
	}
	writeCSV(t, csvPath, 0, n)
	return prog, passFile, csvPath
}

func writeCSV(t *testing.T, path string, from, to int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("学校,孩子,地区,团聚时间,家长电话\n")
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "第%d小学,孩子%d,河北,Sat 19:00-20:00,138%08d\n", i%11, i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInitBatchRotate: init, a batch, a bad CSV refused with nothing made,
// a CA rotation that the running batch does not follow and a new batch
// does.
func TestInitBatchRotate(t *testing.T) {
	prog, pass, csvPath := setup(t, 5)
	out := filepath.Join(t.TempDir(), "b1")
	if got := runOK(t, "batch", "--dir", prog, "--csv", csvPath, "--check"); !strings.Contains(got, "5 rows, all good") {
		t.Fatalf("--check says %q", got)
	}
	got := runOK(t, "batch", "--dir", prog, "--csv", csvPath, "--out", out, "--name", "B1", "--passphrase-file", pass)
	if !strings.Contains(got, "5 units (5 new rows, 5 issued now)") {
		t.Fatalf("batch says:\n%s", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("学校,孩子,地区\n新河小学,小明,河北\n新河小学,,河北\n"), 0o644)
	out2 := filepath.Join(t.TempDir(), "b2")
	err := run(context.Background(), []string{"batch", "--dir", prog, "--csv", bad, "--out", out2, "--name", "B2", "--passphrase-file", pass}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "row 3, child: empty") {
		t.Fatalf("bad CSV: %v", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("a refused CSV made the batch directory (%v)", err)
	}
	if got := runOK(t, "ca", "rotate", "--dir", prog, "--passphrase-file", pass); !strings.Contains(got, "generation 2") || !strings.Contains(got, "ca-1.pem") {
		t.Fatalf("rotate says:\n%s", got)
	}
	writeCSV(t, csvPath, 0, 7)
	runOK(t, "batch", "--dir", prog, "--csv", csvPath, "--out", out, "--passphrase-file", pass)
	recs, err := batch.Units(out)
	if err != nil || len(recs) != 7 {
		t.Fatalf("%d units, %v", len(recs), err)
	}
	for _, r := range recs {
		if !strings.Contains(r.Identity, "CERTIFICATE") {
			t.Fatal("no certificate")
		}
	}
	if g, _ := batch.Generation(out); g != 1 {
		t.Fatalf("the batch moved to CA generation %d after the rotation", g)
	}
	runOK(t, "batch", "--dir", prog, "--csv", csvPath, "--out", filepath.Join(t.TempDir(), "b3"), "--name", "B3", "--passphrase-file", pass)
}

// TestKilledProcess: `provision batch` is SIGKILLed at random moments, then
// run to the end: every unit issued before a kill keeps its identity, the
// units are numbered without gap or repeat, every bundle verifies, and no
// temporary file is left.
func TestKilledProcess(t *testing.T) {
	const n = 600
	prog, pass, csvPath := setup(t, n)
	out := filepath.Join(t.TempDir(), "b1")
	args := []string{"batch", "--dir", prog, "--csv", csvPath, "--out", out, "--name", "B1", "--passphrase-file", pass}
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(append(os.Environ(), "PROVISION_TEST_ARGS="+strings.Join(args, "\x1f")), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// A run writes a journal commit per 250 units (6), a bundle per unit,
	// the label sheet, its journal entry and four manifest files.
	const points = n/250 + n + 6
	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	var before []batch.Record
	kills := 0
	for i := range 5 {
		// Killed at a write: at a journal commit for the first two, then
		// anywhere; the last one killed by a signal from outside at a
		// random moment within a second.
		var cmd *exec.Cmd
		switch {
		case i < 2:
			cmd = start(fmt.Sprint("PROVISION_TEST_KILL_AT=", 2+rng.IntN(3))) // "plan" is the first write; a process counts its own
		case i < 4:
			cmd = start(fmt.Sprint("PROVISION_TEST_KILL_AT=", 1+rng.IntN(points)))
		default:
			cmd = start()
			time.Sleep(time.Duration(rng.Int64N(int64(time.Second))))
			cmd.Process.Signal(syscall.SIGKILL)
		}
		if err := cmd.Wait(); err != nil {
			kills++
		}
		if _, err := os.Stat(filepath.Join(out, batch.JournalFile)); err == nil {
			recs, err := batch.Units(out)
			if err != nil {
				t.Fatalf("journal after a kill: %v", err)
			}
			if !slices.Equal(recs[:len(before)], before) {
				t.Fatal("a kill changed units issued before it")
			}
			before = recs
		}
		t.Logf("run %d: %d units issued", i, len(before))
	}
	cmd := start()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the run after the kills: %v", err)
	}
	recs, err := batch.Units(out)
	if err != nil || len(recs) != n {
		t.Fatalf("%d units, %v", len(recs), err)
	}
	if !slices.Equal(recs[:len(before)], before) {
		t.Fatal("the last run changed units issued before it")
	}
	keys, err := signing.ParsePublic(must(os.ReadFile(filepath.Join(prog, "terminal", programme.TerminalKey))))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, r := range recs {
		if r.N != i+1 || seen[r.DeviceID] {
			t.Fatalf("unit %d: %s %s: a gap or a repeat", i+1, r.Unit, r.DeviceID)
		}
		seen[r.DeviceID] = true
		u, err := bundle.Decode(must(os.ReadFile(filepath.Join(out, batch.BundlesDir, r.Unit+batch.BundleExt))), []ed25519.PublicKey(keys))
		if err != nil || u.DeviceID != r.DeviceID {
			t.Fatalf("bundle %s: %v", r.Unit, err)
		}
	}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(filepath.Base(p), ".tmp-") {
			t.Errorf("temporary file %s left", p)
		}
		return nil
	})
	t.Logf("%d of 5 runs killed", kills)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
