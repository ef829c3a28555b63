package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tuanju/tuanju/provisioning/programme"
)

func newInit() *cobra.Command {
	var (
		dir, passFile string
		s             programme.Settings
	)
	cmd := &cobra.Command{
		Use:   "init --dir PROG --name NAME --server-url URL --public-url URL",
		Short: "make a programme directory: program CA, signing key, settings, the server's files",
		Long: `init makes a programme directory (it must be absent or empty):

  PROG/programme.toml            the settings every unit's bundle carries:
                                 server, time zone, language, Wi-Fi, APN,
                                 data budget (edit it before a batch)
  PROG/keys/ca-1.pem, .key.age   the program CA; its key encrypted with the
                                 passphrase (age, scrypt). Keep PROG offline
                                 and backed up: whoever has the key and the
                                 passphrase can make units the server trusts.
  PROG/keys/signing.key.age      the key that signs bundles and manifests
  PROG/server/                   for the server: ca-1.pem (device_ca_files)
                                 and signing-key.pem (fleet import)
  PROG/terminal/programme-key.pem  for the terminals' OS image
                                 (terminald programme_key_file)

The passphrase (at least 12 characters) is asked twice on the terminal, or
read from --passphrase-file or $TUANJU_PASSPHRASE.`,
		Example: `  provision init --dir /srv/hebei --name "Hebei pilot" \
      --server-url wss://tuanju.example.org/ws --public-url https://tuanju.example.org`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("init: --dir is required")
			}
			pass, err := readPassphrase(passFile, true, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			d, err := programme.Init(dir, s, pass)
			if err != nil {
				return err
			}
			files, err := d.ServerCAFiles()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "programme %q made in %s\n", s.Name, d.Path)
			fmt.Fprintf(out, "for the server:   device_ca_files = [%q]\n", strings.Join(files, `", "`))
			fmt.Fprintf(out, "                  rendezvous fleet import --key %s MANIFEST.json\n", filepath.Join(d.Path, "server", programme.ServerSigningKey))
			fmt.Fprintf(out, "for the OS image: programme_key_file = %s (terminald)\n", d.PublicKeyFile())
			fmt.Fprintf(out, "next: check %s, then provision batch --dir %s --csv FAMILIES.csv --out BATCHDIR\n", filepath.Join(d.Path, programme.SettingsFile), d.Path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "the programme `directory` to make")
	f.StringVar(&s.Name, "name", "", "the programme's name (in its CA's name)")
	f.StringVar(&s.ServerURL, "server-url", "", "the rendezvous server's signalling `URL` (wss://…/ws)")
	f.StringVar(&s.PublicURL, "public-url", "", "the server's address as phones see it (https://…); pairing links start with it")
	f.StringVar(&s.TimeZone, "time-zone", "Asia/Shanghai", "default time `zone` for rows that leave theirs empty")
	f.StringVar(&s.Language, "language", "zh-CN", "default `language` for rows that leave theirs empty")
	passphraseFlag(cmd, &passFile)
	return cmd
}
