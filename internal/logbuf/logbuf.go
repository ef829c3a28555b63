// Package logbuf is a log's output kept for a test to read while the code
// under test goes on writing it (a slog handler's writer, a daemon's
// output): a bytes.Buffer behind a mutex.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is safe for concurrent writers and readers. Its zero value is
// empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Has reports whether one written line contains every part.
func (l *Buffer) Has(parts ...string) bool {
	for line := range strings.Lines(l.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
