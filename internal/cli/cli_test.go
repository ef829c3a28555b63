package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func testProgram(ran *[]string) Program {
	cmd := func(name string) RunFunc {
		return func(_ context.Context, args []string, _, stderr io.Writer) error {
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			fs.SetOutput(stderr)
			fs.Usage = func() { io.WriteString(fs.Output(), "usage: prog "+name+"\n") }
			if err := fs.Parse(args); err != nil {
				return err
			}
			*ran = append(*ran, strings.Join(append([]string{name}, args...), " "))
			return nil
		}
	}
	return Program{
		Name:    "prog",
		Default: Command{Summary: "serve", Run: cmd("default")},
		Commands: []Command{
			{Name: "selftest", Summary: "check the unit", Run: cmd("selftest")},
			{Name: "version", Summary: "print the version", Run: cmd("version")},
		},
	}
}

func TestProgramRun(t *testing.T) {
	tests := []struct {
		args         []string
		ran          string // "" : nothing ran
		stdout, errs string
	}{
		{nil, "default", "", ""},
		{[]string{"-x", "1"}, "", "", "flag provided but not defined"},
		{[]string{"-h"}, "", "check the unit", ""},
		{[]string{"help"}, "", "check the unit", ""},
		{[]string{"help", "version"}, "", "usage: prog version", ""},
		{[]string{"version", "--help"}, "", "usage: prog version", ""},
		{[]string{"version"}, "version", "", ""},
		{[]string{"selftest", "--", "-h"}, "selftest -- -h", "", ""}, // after "--", -h is an argument
		{[]string{"selftset"}, "", "", `unknown command "selftset" (did you mean "selftest"?)`},
		{[]string{"vresion"}, "", "", `(did you mean "version"?)`},
		{[]string{"ver"}, "", "", `(did you mean "version"?)`},
		{[]string{"xyzzy"}, "", "", `unknown command "xyzzy"`},
		{[]string{"help", "xyzzy"}, "", "", `unknown command "xyzzy"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var ran []string
			var stdout, stderr bytes.Buffer
			err := testProgram(&ran).Run(context.Background(), tt.args, &stdout, &stderr)
			switch {
			case tt.errs == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.errs != "" && (err == nil || !strings.Contains(err.Error(), tt.errs)):
				t.Fatalf("err = %v, want %q", err, tt.errs)
			}
			if tt.ran != "" && !slices.Contains(ran, tt.ran) || tt.ran == "" && len(ran) > 0 {
				t.Errorf("ran %q, want %q", ran, tt.ran)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if strings.Contains(tt.errs, "xyzzy") && strings.Contains(err.Error(), "did you mean") {
				t.Errorf("err = %v suggests a command nothing like it", err)
			}
			if errors.Is(err, ErrUnknownCommand) && !strings.Contains(stderr.String(), "selftest") {
				t.Errorf("unknown command without the command list on stderr:\n%s", stderr.String())
			}
		})
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"rendezvous: config: bad", "rendezvous: config: bad"},
		{"rendezvous revoke: no IDs", "rendezvous revoke: no IDs"},
		{"listen address is empty", "rendezvous: listen address is empty"},
		{"rendezvousd: other", "rendezvous: rendezvousd: other"},
	} {
		if got := Message("rendezvous", errors.New(tc.err)); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
	var b bytes.Buffer
	if Exit(&b, "p", nil) != 0 || Exit(&b, "p", flag.ErrHelp) != 0 || b.Len() != 0 {
		t.Errorf("success or help printed %q or exited non-zero", b.String())
	}
	if Exit(&b, "p", errors.New("x")) != 1 || b.String() != "p: x\n" {
		t.Errorf("an error printed %q", b.String())
	}
}

func TestOverrides(t *testing.T) {
	type conf struct {
		S string
		B bool
		L []string
	}
	file := conf{S: "file", B: true, L: []string{"a", "b"}}
	tests := []struct {
		args []string
		want conf
	}{
		{nil, file},
		{[]string{"-s", "flag"}, conf{S: "flag", B: true, L: []string{"a", "b"}}},
		{[]string{"-s", ""}, conf{S: "", B: true, L: []string{"a", "b"}}},
		{[]string{"-b=false"}, conf{S: "file", B: false, L: []string{"a", "b"}}},
		{[]string{"-l", " c, ,d "}, conf{S: "file", B: true, L: []string{"c", "d"}}},
		{[]string{"-l", ""}, conf{S: "file", B: true, L: nil}},
	}
	for _, tt := range tests {
		c := conf{S: "default", L: []string{"x"}}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		o := NewOverrides(fs)
		o.String("s", &c.S, "")
		o.Bool("b", &c.B, "")
		o.List("l", &c.L, "")
		if fs.Lookup("s").DefValue != "default" || fs.Lookup("l").DefValue != "x" {
			t.Errorf("help shows defaults %q, %q; want the fields' own", fs.Lookup("s").DefValue, fs.Lookup("l").DefValue)
		}
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		c = file // the file, decoded after the flags were parsed
		c.L = slices.Clone(file.L)
		o.Apply()
		if c.S != tt.want.S || c.B != tt.want.B || !slices.Equal(c.L, tt.want.L) {
			t.Errorf("%q over the file: %+v, want %+v", tt.args, c, tt.want)
		}
	}
}
