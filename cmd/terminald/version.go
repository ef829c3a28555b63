package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/media"
)

// runVersion is `terminald version`: the program's version and the codec
// libraries linked into this very binary, as they report themselves. The
// codecs decode the parent's stream (untrusted input), so a technician or a
// release check can see which openh264 and libopus a unit runs; it exits
// non-zero when one is older than its floor (media.CodecVersions.CheckFloors).
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("terminald version", `usage: terminald version

Prints the program's version and the openh264 and libopus linked into this
binary; exits non-zero when one is older than its floor.
`, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("usage: terminald version")
	}
	codecs := media.LinkedCodecs()
	fmt.Fprintf(stdout, "%s %s %s/%s\nopenh264 %s\n%s\n",
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, codecs.OpenH264, codecs.Opus)
	if err := codecs.CheckFloors(); err != nil {
		return fmt.Errorf("terminald: version: %w", err)
	}
	return nil
}
