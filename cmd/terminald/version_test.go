package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatalf("version: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`(?m)^terminald/\S+ go\S+ \w+/\w+$`,
		`(?m)^openh264 \d+\.\d+\.\d+$`,
		`(?m)^libopus \d+\.\d+`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("version output lacks %s:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), []string{"version", "extra"}, io.Discard, io.Discard); err == nil {
		t.Error("version with an argument succeeded")
	}
}
