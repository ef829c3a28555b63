package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tuanju/tuanju/internal/progress"
	"golang.org/x/term"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
)

const flashLong = `flash writes the terminal's OS image and one unit's bundle to an SD card
(in a USB reader), then reads both back from the card and checks their
SHA-256 hashes.

The bundle goes to the first byte of the image's partition named
"provisioning", where the unit finds it at its first boot. It is checked
against the programme's key first (--programme-key, or --dir PROG's
terminal/programme-key.pem): a bundle of another programme, or changed
since provision batch signed it, is refused before anything is written.

The card's model and size are shown, and you are asked before anything is
written (--yes for scripts). Refused, always: a disk that is mounted or in
use (unmount it first), the disk this computer runs from, a partition
(give the whole disk, /dev/sdb, not /dev/sdb1), a disk smaller than the
image. Refused unless you say so: a disk that is not removable
(--allow-non-removable) or larger than 256 GiB (--allow-large).

Find the card with lsblk before and after putting it in. A card that reads
back differently is failing or fake: the message says where the first bad
byte is. Use another card.`

func newFlash() *cobra.Command {
	var (
		image, bundlePath, device, keyFile, dir, progressMode string
		yes, allowNonRemovable, allowLarge                    bool
	)
	cmd := &cobra.Command{
		Use:   "flash --image terminal.img --bundle UNIT.tjb --device /dev/sdX (--programme-key KEY.pem | --dir PROG)",
		Short: "write the OS image and a unit's bundle to an SD card, and check them read back",
		Long:  flashLong,
		Example: `  provision flash --image terminal.img --bundle B1/bundles/B1-00001.tjb --device /dev/sdb --dir /srv/hebei
  provision flash --image terminal.img --bundle B1-00001.tjb --device /dev/sdb --programme-key programme-key.pem --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image == "" || bundlePath == "" || device == "" {
				return errors.New("flash: --image, --bundle and --device are required")
			}
			keys, err := programmeKeys(keyFile, dir)
			if err != nil {
				return err
			}
			b, err := readBundle(bundlePath)
			if err != nil {
				return err
			}
			img, err := flash.OpenImage(image)
			if err != nil {
				return err
			}
			defer img.Close()
			job := flash.Job{Image: img, Bundle: b, Keys: keys}
			disk, err := flash.DefaultHost.Inspect(device)
			if err != nil {
				return err
			}
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			fmt.Fprintln(out, disk)
			allow := flash.Allow{NonRemovable: allowNonRemovable, Large: allowLarge}
			if err := disk.Check(allow); err != nil {
				return err
			}
			u, err := job.Check(disk.Size)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "unit %s (%s, %s): image %s (%d bytes), bundle %s (%d bytes) at byte %d of partition %d %q\n",
				u.Unit, u.Site, u.Batch, image, img.Size, bundlePath, len(b), img.Provisioning.Offset, img.Provisioning.Index, flash.PartitionName)
			if !yes {
				if err := confirm(cmd.InOrStdin(), errw, disk); err != nil {
					return err
				}
			}
			dev, _, err := flash.Open(flash.DefaultHost, device, allow)
			if err != nil {
				return err
			}
			defer dev.Close()
			bar := progress.New(errw, progressMode, progress.Bytes)
			job.Progress = func(stage flash.Stage, done, total int64) { bar.Update(flashStages[stage], done, total) }
			res, err := flash.Flash(cmd.Context(), dev, job)
			bar.Finish()
			if err != nil {
				return err
			}
			mbps := func(d float64) float64 { return float64(res.Region) / 1e6 / max(d, 1e-9) }
			fmt.Fprintf(out, "written and verified: unit %s on %s\n", res.Unit.Unit, device)
			fmt.Fprintf(out, "  first %d bytes  sha256 %x  (write %.1f s, %.0f MB/s; read back %.1f s, %.0f MB/s)\n",
				res.Region, res.RegionSHA256, res.WriteTime.Seconds(), mbps(res.WriteTime.Seconds()), res.VerifyTime.Seconds(), mbps(res.VerifyTime.Seconds()))
			fmt.Fprintf(out, "  bundle          sha256 %x  at byte %d\n", res.BundleSHA256, img.Provisioning.Offset)
			if res.Warning != nil {
				fmt.Fprintf(errw, "note: %v (the card is good; remove and re-insert it to see its partitions)\n", res.Warning)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&image, "image", "", "the terminal's OS image `file` (make image)")
	fl.StringVar(&bundlePath, "bundle", "", "the unit's bundle `file` (BATCHDIR/bundles/NAME-00001.tjb)")
	fl.StringVar(&device, "device", "", "the card's whole disk, e.g. /dev/sdb (`path`)")
	fl.StringVar(&keyFile, "programme-key", "", "the programme's public key `file` (PROG/terminal/programme-key.pem)")
	fl.StringVar(&dir, "dir", "", "the programme `directory`: its terminal/programme-key.pem checks the bundle")
	fl.BoolVar(&yes, "yes", false, "do not ask before writing (for scripts)")
	fl.BoolVar(&allowNonRemovable, "allow-non-removable", false, "flash a disk the kernel does not call removable")
	fl.BoolVar(&allowLarge, "allow-large", false, "flash a disk larger than 256 GiB")
	fl.StringVar(&progressMode, "progress", "auto", "progress bar: auto (on a terminal), always or never")
	return cmd
}

// programmeKeys reads the programme's public signing keys.
func programmeKeys(keyFile, dir string) ([]ed25519.PublicKey, error) {
	switch {
	case keyFile != "" && dir != "":
		return nil, errors.New("flash: give --programme-key or --dir, not both")
	case keyFile == "" && dir == "":
		return nil, errors.New("flash: the bundle is checked against the programme's key: give --programme-key FILE or --dir PROG")
	case dir != "":
		d, err := programme.Open(dir)
		if err != nil {
			return nil, err
		}
		keyFile = d.PublicKeyFile()
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("flash: programme key: %w", err)
	}
	keys, err := signing.ParsePublic(b)
	if err != nil {
		return nil, fmt.Errorf("flash: programme key %s: %w", keyFile, err)
	}
	return keys, nil
}

// readBundle reads a bundle file, refusing one far larger than any bundle.
func readBundle(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: bundle: %w", err)
	}
	defer f.Close()
	limit := int64(bundle.MaxBody + 1024)
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("flash: bundle %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("flash: bundle %s: over %d bytes: %w", filepath.Base(path), limit, bundle.ErrMalformed)
	}
	return b, nil
}

// confirm asks the technician to type yes.
func confirm(in io.Reader, w io.Writer, d *flash.Disk) error {
	if f, ok := in.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return errors.New("flash: not asked (no terminal to ask on): give --yes to flash without asking")
	}
	fmt.Fprintf(w, "Everything on %s (%s, %s) will be erased. Type yes to write: ", d.Path, d.Model, flash.HumanSize(d.Size))
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("flash: not confirmed: %w", err)
	}
	if strings.TrimSpace(strings.ToLower(line)) != "yes" {
		return errors.New("flash: not confirmed; nothing written")
	}
	return nil
}

// flashStages are the flash's stages as its progress bars say them.
var flashStages = map[flash.Stage]string{flash.StageWrite: "writing  ", flash.StageVerify: "verifying"}
