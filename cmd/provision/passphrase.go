package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// passphraseEnv names the environment variable a passphrase may come from
// (for scripted runs; a file is better: the environment of a process can
// be read by its user).
const passphraseEnv = "TUANJU_PASSPHRASE"

// passphraseFlag adds --passphrase-file to cmd.
func passphraseFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "passphrase-file", "", "read the programme's passphrase from this `file` (first line); else $"+passphraseEnv+", else asked on the terminal")
}

// readPassphrase finds the programme's passphrase: the file, the
// environment, or the terminal (asked twice when confirm). Never a flag's
// value: every user on the machine sees flags in ps.
func readPassphrase(file string, confirm bool, stderr io.Writer) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return nil, fmt.Errorf("passphrase: %s: the first line is empty", file)
		}
		return line, nil
	}
	if v, ok := os.LookupEnv(passphraseEnv); ok && v != "" {
		return []byte(v), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("passphrase: none given: use --passphrase-file FILE or $" + passphraseEnv + " (no terminal to ask on)")
	}
	fmt.Fprint(stderr, "programme passphrase: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	if confirm {
		fmt.Fprint(stderr, "again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		if !bytes.Equal(p, p2) {
			return nil, errors.New("passphrase: the two do not match")
		}
	}
	return p, nil
}
