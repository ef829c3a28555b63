// Command tuanju-demo runs the whole system on this machine: the rendezvous
// server and one terminal on the simulated board, as real processes on
// 127.0.0.1, paired with each other. It prints the device panel's URL (the
// child's side) and the parent's page URL (open it in Chrome). Ctrl-C stops
// everything.
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
		fmt.Fprintln(os.Stderr, "tuanju-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return demo(ctx, opts, stdout, stderr)
}
