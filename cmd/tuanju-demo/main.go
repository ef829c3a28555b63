// Command tuanju-demo runs the whole system on this machine: the rendezvous
// server and one terminal on the simulated board, as real processes on
// 127.0.0.1, paired with each other. It prints the device panel's URL (the
// child's side) and the parent's page URL (open it in Chrome). Ctrl-C stops
// everything.
package main

import (
	"context"
	"flag"
	"io"

	"github.com/tuanju/tuanju/internal/cli"
)

func main() { cli.Main("tuanju-demo", run) }

func program() cli.Program {
	return cli.Program{
		Name: "tuanju-demo",
		Summary: `tuanju-demo (make demo) runs the whole system on this machine: the
rendezvous server and one terminal on the simulated board, on 127.0.0.1,
with a development program CA. It prints the device panel's URL and the
parent's page (or the pairing link). Ctrl-C stops everything; the data
directory keeps the pairing for the next run. One demo per data directory.`,
		Default: cli.Command{Summary: "run the demo (the flags below)", Run: demoCmd},
		Flags: func() *flag.FlagSet {
			var o options
			return demoFlags(&o, io.Discard)
		},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return demo(ctx, opts, stdout, stderr)
}
