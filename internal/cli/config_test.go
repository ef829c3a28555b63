package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewFlagSet(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlagSet("prog cmd", "usage: prog cmd [-n count]\n\n", &out)
	fs.Int("n", 1, "how many")
	if err := fs.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	if got := out.String(); !strings.HasPrefix(got, "usage: prog cmd [-n count]\n\n  -n int") {
		t.Errorf("-h printed %q, want the usage then the flags", got)
	}
	out.Reset()
	if err := fs.Parse([]string{"-x"}); err == nil || !strings.Contains(out.String(), "usage: prog cmd") {
		t.Errorf("unknown flag: err %v, output %q; want an error and the usage", err, out.String())
	}
}

func TestDecodeFile(t *testing.T) {
	type config struct {
		Listen string `toml:"listen"`
		Limits struct {
			Max int `toml:"max"`
		} `toml:"limits"`
	}
	tests := []struct {
		name, file string
		want       config // when wantErr is ""
		wantErr    string
	}{
		{name: "overlays the file", file: "listen = \":80\"\n",
			want: config{Listen: ":80", Limits: struct {
				Max int `toml:"max"`
			}{Max: 5}}},
		{name: "unknown keys", file: "listne = \":80\"\n[limits]\nmxa = 1\n", wantErr: "unknown keys: listne, limits.mxa"},
		{name: "bad syntax", file: "listen = \n", wantErr: "config "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			var c config
			c.Limits.Max = 5 // a default the file leaves alone
			err := DecodeFile(path, &c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err %v, want one naming %s and containing %q", err, path, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("got %+v, want %+v", c, tc.want)
			}
		})
	}
}
