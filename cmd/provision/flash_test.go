package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/flash/flashtest"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// runIn runs provision with stdin.
func runIn(in io.Reader, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr)
	root.SetIn(in)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func blank(t *testing.T, file string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{0}) == len(b)
}

// TestFlashCommand: provision flash with a programme directory's key
// writes a loop device, shows the disk, asks (a "no" writes nothing, no
// terminal to ask on is a refusal naming --yes) and refuses what the
// package refuses with the flag to give; the card then holds the image and
// the bundle signed by the programme.
func TestFlashCommand(t *testing.T) {
	flashtest.RequireLoop(t)
	dir := t.TempDir()
	prog, pass := filepath.Join(dir, "prog"), filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("a long test passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK(t, "init", "--dir", prog, "--name", "Test", "--server-url", "ws://127.0.0.1:1/ws", "--public-url", "http://127.0.0.1:1", "--passphrase-file", pass)
	d, err := programme.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := d.Unlock([]byte("a long test passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	b := flashtest.Bundle(t, keys.Signing)
	bundlePath, imgPath := filepath.Join(dir, "B1-00001.tjb"), filepath.Join(dir, "terminal.img")
	if err := os.WriteFile(bundlePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	flashtest.Image(t, imgPath, flashtest.ImageOptions{})
	foreignKey := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(foreignKey, signing.PublicPEM(flashtest.Key(t).Public()), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, file := flashtest.LoopFile(t, 16*flashMiB, false)
	base := []string{"flash", "--image", imgPath, "--bundle", bundlePath, "--device", dev}

	for _, tc := range []struct {
		name string
		in   string
		args []string
		want string
		is   error
	}{
		{"no key", "", []string{"--yes", "--allow-non-removable"}, "--programme-key FILE or --dir PROG", nil},
		{"another programme's key", "", []string{"--programme-key", foreignKey, "--yes", "--allow-non-removable"}, "another programme", bundle.ErrForeign},
		{"not removable", "", []string{"--dir", prog, "--yes"}, "--allow-non-removable", flash.ErrNotRemovable},
		{"a file", "", []string{"--dir", prog, "--yes", "--allow-non-removable", "--device", imgPath}, "not a block device", flash.ErrNotBlockDevice},
		{"answered no", "no\n", []string{"--dir", prog, "--allow-non-removable"}, "not confirmed; nothing written", nil},
		{"no answer", "", []string{"--dir", prog, "--allow-non-removable"}, "not confirmed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runIn(strings.NewReader(tc.in), append(base, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("provision flash: %v, want %q", err, tc.want)
			}
			if !blank(t, file) {
				t.Fatalf("refused, yet the card was written")
			}
		})
	}
	// No terminal to ask on (stdin a file) and no --yes: refused.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if _, _, err := runIn(devNull, append(base, "--dir", prog, "--allow-non-removable")...); err == nil || !strings.Contains(err.Error(), "give --yes") {
		t.Fatalf("no terminal: %v", err)
	}

	out, stderr, err := runIn(strings.NewReader("yes\n"), append(base, "--dir", prog, "--allow-non-removable", "--progress", "always")...)
	if err != nil {
		t.Fatalf("provision flash: %v\n%s", err, stderr)
	}
	t.Logf("provision flash said:\n%s", out)
	want, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	off := 4 * flashMiB // the test image's provisioning partition
	copy(want[off:], b)
	for _, w := range []string{dev + ": loop device of " + file, "unit B1-00001", "written and verified", fmt.Sprintf("sha256 %x", sha256.Sum256(want)), fmt.Sprintf("sha256 %x  at byte %d", sha256.Sum256(b), off)} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(stderr, "Type yes to write") || !strings.Contains(stderr, "verifying") {
		t.Errorf("stderr lacks the question or the progress bar:\n%s", stderr)
	}
	card, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(card[:len(want)], want) {
		t.Errorf("the card is not the image with the bundle")
	}
}

const flashMiB = 1 << 20
