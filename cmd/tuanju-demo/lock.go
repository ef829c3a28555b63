package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockName is the demo's lock file in its data directory. The kernel drops
// the lock when the process ends, however it ends, so a crashed demo never
// leaves a stale one behind.
const lockName = "demo.lock"

// errRunning is returned, wrapped, when another demo holds the data
// directory.
var errRunning = errors.New("another demo is running")

// lockData takes the data directory for this demo, before anything in it
// is opened for writing: a second `make demo` beside a running one must not
// truncate the first one's log, or lead anyone to delete the directory that
// holds the pairing. The lock file holds the owner's pid, for the message.
// The returned function releases it.
func lockData(dir string) (func(), error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // close-on-exec: the children do not inherit it
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := "pid unknown"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					owner = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w from %s (%s); stop it first (Ctrl-C in its terminal), or give this one another -data directory and ports", errRunning, dir, owner)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil // closing drops the lock
}
