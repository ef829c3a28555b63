package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/tuanju/tuanju/internal/progress"

	"github.com/tuanju/tuanju/internal/terminal/autoanswer"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/programme"
)

const batchLong = `batch makes the units of a batch from a families CSV.

The CSV has a header row naming its columns, in any order:

  site             school or village committee             (required)
  child            the child's display name or a pseudonym  (required)
  region           county, district: for the fleet page     (required)
  language         e.g. zh-CN          (empty: programme.toml's)
  time_zone        e.g. Asia/Shanghai  (empty: programme.toml's)
  reunion_windows  e.g. "Sat 19:00-20:00; Sun 10:00-11:00": a ring from the
                   parent then is answered by itself
  parent_phone     for the missed-call text message (+86…, or 11 digits)

Chinese headers work too (学校, 孩子, 地区, 语言, 时区, 团聚时间, 家长电话).
Save it from the spreadsheet as CSV, UTF-8 or GBK: both are read.

Every row is checked before anything is made; each problem names its row
and column, and with any problem nothing is issued. Then, per row: a device
key and certificate from the programme's CA, a pairing secret, and a signed
bundle (BATCHDIR/bundles/NAME-00001.tjb) carrying them with the settings of
programme.toml and of the row. Then BATCHDIR/labels.pdf (A4, 3 × 7 labels of
63.5 × 38.1 mm: QR code, unit ID, site, child, how to pair) and the manifest:
manifest.json (for the server: rendezvous fleet import; no names, no phone
numbers) and manifest.csv (for you: it has the numbers), each with a .sig.
When rows give parent_phone: phones.json (+ .sig), the numbers alone, for
the server's notifier; fleet import takes it from beside manifest.json.

Resumable: killed or interrupted, run the same command again; it carries on
and never changes or repeats a unit already made. Run it again with more
rows to add units (numbered after the last); a row already made that now
says something else is refused. The batch keeps the name, CA generation and
settings it started with.`

func newBatch() *cobra.Command {
	var (
		dir, csvPath, out, name, passFile, fontCJK, fontLatin, progressMode string
		checkOnly                                                           bool
	)
	cmd := &cobra.Command{
		Use:   "batch --dir PROG --csv FAMILIES.csv --out BATCHDIR --name B1",
		Short: "make a batch's units, bundles, label sheet and manifest from a families CSV (resumable)",
		Long:  batchLong,
		Example: `  provision batch --dir /srv/hebei --csv xinhe.csv --out /srv/hebei/batches/B1 --name B1
  provision batch --dir /srv/hebei --csv xinhe.csv --check      # only check the CSV`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || csvPath == "" {
				return fmt.Errorf("batch: --dir and --csv are required")
			}
			d, err := programme.Open(dir)
			if err != nil {
				return err
			}
			f, err := os.Open(csvPath)
			if err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			rows, err := batch.ReadCSV(f, batch.Defaults{Language: d.Settings.Language, TimeZone: d.Settings.TimeZone}, checkWindow)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", csvPath, err)
			}
			stdout := cmd.OutOrStdout()
			if checkOnly {
				fmt.Fprintf(stdout, "%s: %d rows, all good\n", csvPath, len(rows))
				return nil
			}
			if out == "" {
				return fmt.Errorf("batch: --out is required")
			}
			fonts, err := labels.LoadFonts(fontCJK, fontLatin)
			if err != nil {
				return err
			}
			gen, err := batch.Generation(out)
			if err != nil {
				return err
			}
			pass, err := readPassphrase(passFile, false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			keys, err := d.UnlockGeneration(pass, gen)
			if err != nil {
				return err
			}
			bar := progress.New(cmd.ErrOrStderr(), progressMode, progress.Count)
			update := func(stage string, done, total int) { bar.Update(stageNames[stage], int64(done), int64(total)) }
			res, err := batch.Run(cmd.Context(), batch.Options{Dir: out, Name: name, Rows: rows, Programme: d, Keys: keys, Fonts: fonts, Progress: update, Fault: testFault})
			bar.Finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "batch %s in %s: %d units (%d new rows, %d issued now)\n", res.Name, out, res.Units, res.Planned, res.Issued)
			fmt.Fprintf(stdout, "  bundles:  %s/ (terminald identity import FILE on each unit)\n", filepath.Join(out, batch.BundlesDir))
			fmt.Fprintf(stdout, "  labels:   %s\n", filepath.Join(out, batch.LabelsFile))
			fmt.Fprintf(stdout, "  manifest: %s (rendezvous fleet import), %s\n", filepath.Join(out, batch.ManifestJSON), filepath.Join(out, batch.ManifestCSV))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "the programme `directory` (provision init)")
	fl.StringVar(&csvPath, "csv", "", "the families CSV `file`")
	fl.StringVar(&out, "out", "", "the batch `directory` (made if absent; the same one to resume)")
	fl.StringVar(&name, "name", "", "the batch's `name`: 1-10 capital letters or digits; unit IDs are NAME-00001… (needed to start a batch)")
	fl.BoolVar(&checkOnly, "check", false, "only check the CSV; make nothing")
	fl.StringVar(&fontCJK, "font-cjk", "", "a TrueType CJK font `file` for the labels (default: Droid Sans Fallback from fonts-droid-fallback)")
	fl.StringVar(&fontLatin, "font-latin", "", "a TrueType Latin font `file` for the labels (default: DejaVu Sans)")
	fl.StringVar(&progressMode, "progress", "auto", "progress bar: auto (on a terminal), always or never")
	passphraseFlag(cmd, &passFile)
	return cmd
}

// testFault is batch.Options.Fault for tests that kill the process at a
// chosen write (TestKilledProcess); nil otherwise.
var testFault func(string) error

// checkWindow checks a reunion window as terminald will read it.
func checkWindow(s string) error {
	_, err := autoanswer.ParseWindow(s)
	return err
}

// stageNames are the batch's stages as its progress bars say them.
var stageNames = map[string]string{"issue": "issuing units", "bundles": "writing bundles", "labels": "label sheet"}
