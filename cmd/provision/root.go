package main

import (
	"io"

	"github.com/spf13/cobra"
)

const rootLong = `provision turns a subsidy programme's spreadsheet of families into
ready-to-ship Tuanju terminals, on the programme's offline machine.

Once per programme:
  provision init --dir PROG --name NAME --server-url wss://… --public-url https://…
      makes the programme directory: the program CA and the signing key
      (both encrypted with a passphrase you choose), programme.toml (the
      settings every unit gets: edit it), and the files the server and the
      terminals' OS image need (PROG/server/, PROG/terminal/).

For each delivery:
  provision batch --dir PROG --csv families.csv --out BATCHDIR
      checks every row first, then makes per unit a device key and
      certificate, a pairing secret and a signed bundle; then a label-sheet
      PDF and a signed manifest (CSV and JSON). Killed or interrupted, run
      the same command again: it resumes and never changes a unit already
      made. Run it with more rows to add units to the batch.

Then: each bundle goes onto its unit's SD card with the OS image
(provision flash, below, or terminald identity import on a running unit),
the manifest onto the server (rendezvous fleet import), the labels onto the
boxes.

For each unit, at the technician's bench:
  provision flash --image terminal.img --bundle BATCHDIR/bundles/B1-00001.tjb \
      --device /dev/sdb --dir PROG
      writes the image and the unit's bundle to the card in a USB reader,
      reads both back and checks their hashes; asks first.

Key rollover:
  provision ca rotate --dir PROG
      makes the next program CA; new batches use it. List every
      PROG/server/ca-N.pem in the server's device_ca_files.

The passphrase is read from --passphrase-file, else $TUANJU_PASSPHRASE, else
asked on the terminal; never from a flag (other users can see flags in ps).
See docs/provisioning.md.`

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "provision",
		Short:         "provision a subsidy programme's terminals",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newInit(), newCA(), newBatch(), newFlash())
	return root
}
