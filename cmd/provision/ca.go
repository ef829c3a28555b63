package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tuanju/tuanju/provisioning/programme"
)

func newCA() *cobra.Command {
	ca := &cobra.Command{
		Use:   "ca",
		Short: "manage the program CA (rotate)",
		Long:  "ca manages the program CA's generations (docs/provisioning-keys.md, \"Rollover\").",
	}
	var dir, passFile string
	rotate := &cobra.Command{
		Use:   "rotate --dir PROG",
		Short: "make the next program CA generation; new batches are issued from it",
		Long: `rotate makes the next program CA generation (PROG/keys/ca-N.pem and its
encrypted key), with the same passphrase. Batches started afterwards issue
from it; batches already started keep theirs.

Before shipping a unit from the new generation, add PROG/server/ca-N.pem to
the server's device_ca_files (keep the old ones: their units still log in).
Units already in the field keep their certificates; dropping an old CA
from the server locks out every unit it signed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("ca rotate: --dir is required")
			}
			d, err := programme.Open(dir)
			if err != nil {
				return err
			}
			pass, err := readPassphrase(passFile, false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			gen, err := d.RotateCA(pass)
			if err != nil {
				return err
			}
			files, err := d.ServerCAFiles()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "program CA generation %d made; new batches issue from it\nthe server's device_ca_files must list all of:\n", gen)
			for _, f := range files {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", f)
			}
			return nil
		},
	}
	rotate.Flags().StringVar(&dir, "dir", "", "the programme `directory`")
	passphraseFlag(rotate, &passFile)
	ca.AddCommand(rotate)
	return ca
}
