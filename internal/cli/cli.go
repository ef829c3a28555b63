// Package cli is what the project's commands (terminald, rendezvous,
// tuanju-demo) share so that they teach a newcomer the same way: one table
// of subcommands, each with a one-line summary; -h, --help and `help` print
// it and succeed; a mistyped command is named, with the closest match,
// instead of falling through to the default action; flags override the
// configuration file only when given (flags.go); errors are printed once,
// with the program's name once (exit.go).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// RunFunc is a command's body: the project's run(ctx, args, stdout, stderr).
// On -h it prints its usage to stderr and returns flag.ErrHelp (what a
// flag.FlagSet with ContinueOnError does).
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string // one line, for the command list
	Run     RunFunc
}

// Program is a binary: a default action (run when the first argument is a
// flag, or when there is none) and its subcommands.
type Program struct {
	Name string
	// Summary says what the program is for, above the usage.
	Summary string
	// Default runs with the program's own flags: terminald's daemon,
	// rendezvous's server, the demo. Its Summary is the usage line's.
	Default Command
	// Flags returns the default action's flags, unparsed, for the usage;
	// nil prints none.
	Flags func() *flag.FlagSet
	// Commands are the subcommands, in the order the usage lists them.
	Commands []Command
}

// ErrUnknownCommand is returned, wrapped, for a first argument that is
// neither a flag nor a command.
var ErrUnknownCommand = errors.New("unknown command")

// IsHelp reports whether arg asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// Run dispatches args. Help (-h, --help, help, help COMMAND) goes to stdout
// and returns nil; an unknown command prints the usage to stderr and returns
// an error wrapping ErrUnknownCommand; a command's own flag.ErrHelp becomes
// nil, its usage having been printed.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if wantsHelp(args) {
			p.Usage(stdout)
			return nil
		}
		return helpIsNotAnError(p.Default.Run(ctx, args, stdout, stderr))
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		if len(rest) == 0 || IsHelp(rest[0]) {
			p.Usage(stdout)
			return nil
		}
		c, err := p.lookup(rest[0], stderr)
		if err != nil {
			return err
		}
		// The command's usage, asked for: on stdout, like the program's.
		return helpIsNotAnError(c.Run(ctx, []string{"-h"}, stdout, stdout))
	}
	c, err := p.lookup(name, stderr)
	if err != nil {
		return err
	}
	if wantsHelp(rest) {
		return helpIsNotAnError(c.Run(ctx, []string{"-h"}, stdout, stdout))
	}
	return helpIsNotAnError(c.Run(ctx, rest, stdout, stderr))
}

// wantsHelp reports whether args, before any "--", hold -h, -help or
// --help. Looking for it before the flags are parsed means help works
// wherever it is typed, even after a flag that the command would refuse.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

func helpIsNotAnError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func (p Program) lookup(name string, stderr io.Writer) (Command, error) {
	for _, c := range p.Commands {
		if c.Name == name {
			return c, nil
		}
	}
	p.usage(stderr, false)
	err := fmt.Errorf("%w %q", ErrUnknownCommand, name)
	if s := p.suggest(name); s != "" {
		err = fmt.Errorf("%w (did you mean %q?)", err, s)
	}
	return Command{}, err
}

// Usage prints what the program is, how to call it, every command with its
// summary, and the default action's flags.
func (p Program) Usage(w io.Writer) { p.usage(w, true) }

// usage prints the usage; a mistyped command gets it without the summary
// and the flags, short enough to see the error under it.
func (p Program) usage(w io.Writer, full bool) {
	if p.Summary != "" && full {
		fmt.Fprintf(w, "%s\n\n", p.Summary)
	}
	fmt.Fprintln(w, "usage:")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintf(tw, "  %s [flags]\t%s\n", p.Name, p.Default.Summary)
	if len(p.Commands) > 0 {
		fmt.Fprintf(tw, "  %s COMMAND [flags] [args]\n", p.Name)
	}
	tw.Flush()
	if len(p.Commands) > 0 {
		fmt.Fprintln(w, "\ncommands:")
		tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		for _, c := range p.Commands {
			fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
		}
		fmt.Fprintf(tw, "  help\tthis text; `%s help COMMAND` (or `%s COMMAND -h`) gives a command's flags\n", p.Name, p.Name)
		tw.Flush()
	}
	if p.Flags != nil && full {
		fs := p.Flags()
		fmt.Fprintf(w, "\nflags of %s itself:\n", p.Name)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// suggest returns the command closest to name (at most two edits, or name
// is its prefix), or "".
func (p Program) suggest(name string) string {
	best, bestD := "", 3
	for _, c := range p.Commands {
		d := distance(name, c.Name)
		if len(name) >= 2 && strings.HasPrefix(c.Name, name) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c.Name, d
		}
	}
	return best
}

// distance is the Damerau–Levenshtein (optimal string alignment) distance:
// a swapped pair of letters, the commonest typo, counts one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
