package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/internal/terminal"
)

// errResetUnconfirmed: `terminald reset` without --yes erases nothing.
var errResetUnconfirmed = errors.New("terminald reset: nothing erased: add --yes to confirm")

// runReset is `terminald reset --yes [-config F] [-state F]`: the
// technician's factory reset, the same as the power-up gesture
// (internal/terminal.FactoryReset). It needs the state file, which a
// running terminald holds, so it never runs beside a call; and it refuses
// within a minute of the end of the last call.
func runReset(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var yes bool
	// A reset touches only the state file: no server needed (a unit out of
	// service may have none configured).
	cfg, err := loadConfigFor(configUse{name: "terminald reset", serverOptional: true, usage: `usage: terminald reset --yes [-config F] [-state F]

Factory-resets this unit: erases its pairing and call log (its identity and
the label's pairing secret stay), and tells the server, and so the old
parent, on the next login. Stop terminald first. Refused within a minute of
a call.

`}, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&yes, "yes", false, "confirm: erase the pairing and the call log")
	})
	if err != nil {
		return err
	}
	if !yes {
		return errResetUnconfirmed
	}
	store, err := openState("terminald reset", cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	log := logging.New(stderr, "text", "info").With("service", "terminald-reset")
	if err := terminal.FactoryReset(store, time.Now(), log); err != nil {
		return fmt.Errorf("terminald reset: %w", err)
	}
	fmt.Fprintln(stdout, "factory reset: pairing and call log erased; the server and the old parent are told when the unit next connects, and it is open for pairing when it starts")
	return nil
}
