package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main is every command's main: run under a context that ends on SIGINT or
// SIGTERM, then exit as Exit says.
func Main(program string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Exit(os.Stderr, program, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// Exit is what main does with run's error: nothing and 0 for success or
// help, else the error on stderr, named once, and 1.
func Exit(stderr io.Writer, program string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, Message(program, err))
	return 1
}

// Message is err as the user reads it: prefixed with the program's name,
// unless the error already starts with it ("rendezvous: config: ...",
// "terminald selftest: ..."), as errors of the command's own packages do
// (STYLE.md): the name is said once.
func Message(program string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, program+":") || strings.HasPrefix(msg, program+" ") {
		return msg
	}
	return program + ": " + msg
}
