// Command terminald runs the child's terminal: one button, a few lights, a
// camera, and calls to the one paired parent.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "selftest" {
		return runSelftest(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "version" {
		return runVersion(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "identity" {
		return runIdentity(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "label" {
		return runLabel(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "reset" {
		return runReset(ctx, args[1:], stdout, stderr)
	}
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}
