// Package fulldisk runs a test on a real full disk: a small tmpfs mounted
// in a user and mount namespace of the test's own, so no root is needed and
// nothing outside the test sees it. The test runs twice: outside, Dir
// re-executes the test binary for that one test inside the namespace and
// reports its result; inside, Dir returns the tmpfs.
package fulldisk

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// env names the tmpfs to the re-executed test.
const env = "TUANJU_TEST_FULL_DISK_DIR"

// Dir returns the tmpfs of size (mount's size=, e.g. "1m") that the test
// runs on. Outside the namespace it runs the test again inside one, fails
// t if that run fails, passes on the lines the run logged from files named
// in logFrom, and returns "": the caller then returns at once. Where the
// kernel allows no user namespace (or there is no unshare(1)) it skips.
// The child stays in this process's network namespace (loopback only under
// .ci/netns).
func Dir(t *testing.T, size string, logFrom ...string) string {
	t.Helper()
	if dir := os.Getenv(env); dir != "" {
		return dir
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1): cannot mount a small tmpfs without root")
	}
	dir := t.TempDir()
	probe := exec.Command(unshare, "--user", "--map-root-user", "--mount", "mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a user namespace here: %v: %s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
		`mount -t tmpfs -o size="$1" tmpfs "$2" && exec "$3" -test.run="^$4\$" -test.count=1 -test.v`,
		"sh", size, dir, os.Args[0], t.Name())
	cmd.Env = append(os.Environ(), env+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("on a full tmpfs: %v\n%s", err, out)
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		for _, f := range logFrom {
			if bytes.Contains(line, []byte(f+":")) {
				t.Log(string(bytes.TrimSpace(line)))
			}
		}
	}
	return ""
}

// Fill writes to path until the file system is full.
func Fill(t testing.TB, path string) {
	t.Helper()
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	block := bytes.Repeat([]byte{0xAA}, 4096)
	for {
		if _, err := file.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v, want ENOSPC", err)
			}
			return
		}
	}
}
