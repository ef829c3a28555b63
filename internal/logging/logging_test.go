package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewFormatsAndLevels(t *testing.T) {
	tests := []struct {
		format, level string
		wantDebug     bool
		json          bool
	}{
		{"json", "info", false, true},
		{"json", "debug", true, true},
		{"text", "warn", false, false},
		{"text", "", false, false},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		log := New(&b, tt.format, tt.level)
		log.Debug("dbg")
		log.Warn("wrn", "k", "v")
		out := b.String()
		if got := strings.Contains(out, "dbg"); got != tt.wantDebug {
			t.Errorf("%s/%s: debug line present = %v, want %v", tt.format, tt.level, got, tt.wantDebug)
		}
		first := strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]
		if tt.json != json.Valid([]byte(first)) {
			t.Errorf("%s/%s: line %q JSON = %v", tt.format, tt.level, first, !tt.json)
		}
	}
}

func TestPionBridge(t *testing.T) {
	var b bytes.Buffer
	l := Pion(New(&b, "json", "info")).NewLogger("ice")
	l.Infof("chatty %d", 1) // pion's info is our debug: hidden at info
	l.Warnf("lost %s", "pair")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("want exactly one JSON line, got %q: %v", b.String(), err)
	}
	if rec["msg"] != "lost pair" || rec["pion"] != "ice" || rec["level"] != "WARN" {
		t.Errorf("bridged record = %v", rec)
	}
}
