// Command provision turns a subsidy programme's spreadsheet of families into
// ready-to-ship terminals: `provision init` makes the programme's directory
// (program CA, signing key, the server's files), `provision batch` makes a
// batch's bundles, label sheet and signed manifest from a CSV, resumably,
// and `provision ca rotate` starts a new CA generation. `provision --help`
// and `provision help COMMAND` teach the rest (docs/provisioning.md).
package main

import (
	"context"
	"io"
	_ "time/tzdata" // time zones in rows are checked the same on any machine

	"github.com/tuanju/tuanju/internal/cli"
)

func main() { cli.Main("provision", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
