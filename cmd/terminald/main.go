// Command terminald runs the child's terminal: one button, a few lights, a
// camera, and calls to the one paired parent. Its subcommands are the
// technician's tools (program below; `terminald help` lists them).
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"runtime/debug"

	"github.com/tuanju/tuanju/internal/cli"
)

func main() { cli.Main("terminald", run) }

// program is terminald's one table of commands: the daemon by default, and
// the technician's tools.
func program() cli.Program {
	return cli.Program{
		Name: "terminald",
		Summary: `terminald runs the child's terminal: one button, a few lights, a camera,
and calls to the one paired parent. Configuration: built-in defaults, then
-config FILE (TOML, unknown keys are an error; see terminald.example.toml),
then the flags given.`,
		Default: cli.Command{Summary: "run the terminal (the flags below)", Run: runServe},
		Flags: func() *flag.FlagSet {
			cfg := defaults()
			return newConfigFlags(configUse{name: "terminald"}, &cfg, io.Discard).FlagSet
		},
		Commands: []cli.Command{
			{Name: "selftest", Summary: "check every part of this unit: button, LEDs, camera, microphone, speaker, screen, network, storage, clock", Run: runSelftest},
			{Name: "identity", Summary: "import this unit's device key and certificate (identity import FILE), or show them (identity show)", Run: runIdentity},
			{Name: "label", Summary: "print this unit's pairing link and QR code, as its printed label carries them", Run: runLabel},
			{Name: "reset", Summary: "factory-reset this unit: erase its pairing and call log (needs --yes)", Run: runReset},
			{Name: "version", Summary: "print the version and the openh264 and libopus this binary links", Run: runVersion},
		},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

// gcPercent is the daemon's garbage-collection target (Go's GOGC, 100 by
// default): a board has a few hundred megabytes, and in a call the heap is
// mostly pictures that live one frame. At 50 a call's resident memory is
// ~2.4 MB lower for no CPU BenchmarkTerminalCallCPU can tell apart (anon
// RSS 22.1 → 19.7 MB; 25 gave 1.5 MB more at a tenth more CPU). Since the
// camera track keeps 2 pictures instead of 32 (media.smallRing), the live
// heap is ~2 MB and 50 still saves ~1 MB against 100 (anon 14.1 against
// 15.3 MB). GOGC in the environment still wins.
const gcPercent = 50

// runServe is the daemon: terminald [flags].
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfigFor(configUse{name: "terminald", provision: true}, args, stderr)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	return serve(ctx, cfg, stdout, stderr)
}
