package filestamp

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if _, err := Of(path); err == nil {
		t.Fatal("stamped a file that does not exist")
	}
	os.WriteFile(path, []byte("one"), 0o600)
	a, err := Of(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Of(path); b != a {
		t.Fatal("an unchanged file stamped differently")
	}
	os.WriteFile(path, []byte("three"), 0o600) // size changes
	if b, _ := Of(path); b == a {
		t.Fatal("a longer file stamped the same")
	}
	os.WriteFile(path, []byte("one"), 0o600)
	later := time.Now().Add(time.Hour) // same size, new time
	os.Chtimes(path, later, later)
	if b, _ := Of(path); b == a {
		t.Fatal("a rewritten file stamped the same")
	}
}

// TestOfReplacedByRename: a file replaced by rename with the same size and
// the same modification time is a change (its inode differs).
func TestOfReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	path, next := filepath.Join(dir, "f"), filepath.Join(dir, "f.new")
	when := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range []string{path, next} {
		if err := os.WriteFile(p, []byte("same"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	a, err := Of(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	if b, _ := Of(path); b == a {
		t.Fatal("a file replaced by rename, same size and time, stamped the same")
	}
}
