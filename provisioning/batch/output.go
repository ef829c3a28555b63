package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/manifest"
)

const tempPrefix = ".tmp-"

// unitRow is an issued unit with its row.
type unitRow struct {
	rec Record
	row Row
}

// load reads every issued unit with its row, in unit order.
func load(db *bolt.DB) ([]unitRow, error) {
	var out []unitRow
	err := db.View(func(tx *bolt.Tx) error {
		rows := map[int]Row{}
		if err := tx.Bucket(bucketRows).ForEach(func(k, v []byte) error {
			var p planned
			if _, err := getJSON(tx.Bucket(bucketRows), k, &p); err != nil {
				return err
			}
			rows[p.N] = p.Row
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketUnits).ForEach(func(k, v []byte) error {
			var r Record
			if _, err := getJSON(tx.Bucket(bucketUnits), k, &r); err != nil {
				return err
			}
			row, ok := rows[r.N]
			if !ok {
				return fmt.Errorf("batch: journal: unit %s has no row", r.Unit)
			}
			out = append(out, unitRow{rec: r, row: row})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("batch: journal: %w", err)
	}
	return out, nil
}

// writeOutputs (re)makes every file from the journal: bundles (only those
// that differ from what is on disk), then, once they are on the disk, the
// label sheet and the manifests, the manifest's signature last.
func writeOutputs(ctx context.Context, db *bolt.DB, meta Meta, o Options) (int, error) {
	units, err := load(db)
	if err != nil {
		return 0, err
	}
	o.Progress("bundles", 0, len(units))
	for i, u := range units {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		b, err := bundle.Encode(unitBundle(meta, u.rec, u.row), o.Keys.Signing)
		if err != nil {
			return 0, err
		}
		path := filepath.Join(o.Dir, BundlesDir, u.rec.Unit+BundleExt)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
			o.Progress("bundles", i+1, len(units))
			continue
		}
		if err := writeAtomic(path, b, 0o600, o.Fault); err != nil {
			return 0, err
		}
		o.Progress("bundles", i+1, len(units))
	}
	// The bundles reach the disk before the manifest that lists them does.
	if err := syncFS(o.Dir); err != nil {
		return 0, err
	}

	var ls []labels.Label
	for _, u := range units {
		link, err := PairingURL(meta.Settings.PublicURL, u.rec)
		if err != nil {
			return 0, fmt.Errorf("batch: unit %s: %w", u.rec.Unit, err)
		}
		ls = append(ls, labels.Label{Unit: u.rec.Unit, Site: u.row.Site, Child: u.row.Child, URL: link})
	}
	o.Progress("labels", 0, 1)
	if err := writeLabels(db, o, ls, meta); err != nil {
		return 0, err
	}
	o.Progress("labels", 1, 1)

	m := manifest.Manifest{Format: manifest.Format, Programme: meta.Programme, Batch: meta.Name, CreatedAt: meta.CreatedAt,
		CAGeneration: meta.CAGeneration, CA: o.Keys.CA.Cert.Subject.CommonName}
	phones := manifest.Phones{Format: manifest.PhonesFormat, Programme: meta.Programme, Batch: meta.Name}
	var csvBuf bytes.Buffer
	cw := csv.NewWriter(&csvBuf)
	cw.Write([]string{"unit", "device_id", "site", "child", "region", "language", "time_zone", "reunion_windows", "parent_phone", "cert_serial", "issued_at", "bundle_sha256"})
	for _, u := range units {
		m.Units = append(m.Units, manifest.Unit{Unit: u.rec.Unit, DeviceID: u.rec.DeviceID, Site: u.row.Site, Region: u.row.Region,
			Language: u.row.Language, TimeZone: u.row.TimeZone, CertSerial: u.rec.CertSerial, IssuedAt: u.rec.IssuedAt})
		if u.row.ParentPhone != "" {
			phones.Units = append(phones.Units, manifest.Phone{Unit: u.rec.Unit, DeviceID: u.rec.DeviceID, Phone: u.row.ParentPhone})
		}
		b, err := os.ReadFile(filepath.Join(o.Dir, BundlesDir, u.rec.Unit+BundleExt))
		if err != nil {
			return 0, fmt.Errorf("batch: %w", err)
		}
		sum := sha256.Sum256(b)
		cw.Write([]string{u.rec.Unit, u.rec.DeviceID, csvSafe(u.row.Site), csvSafe(u.row.Child), csvSafe(u.row.Region), u.row.Language, u.row.TimeZone,
			strings.Join(u.row.ReunionWindows, "; "), u.row.ParentPhone, u.rec.CertSerial, u.rec.IssuedAt.Format("2006-01-02T15:04:05Z"), hex.EncodeToString(sum[:])})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return 0, fmt.Errorf("batch: manifest CSV: %w", err)
	}
	// A UTF-8 BOM, so spreadsheet programs open the Chinese right.
	csvDoc := append([]byte("\uFEFF"), csvBuf.Bytes()...)
	doc, sig, err := manifest.Encode(m, o.Keys.Signing)
	if err != nil {
		return 0, err
	}
	type outFile struct {
		name string
		data []byte
	}
	files := []outFile{
		{ManifestCSV, csvDoc}, {ManifestCSV + ".sig", o.Keys.Signing.Detached(csvDoc)},
	}
	if len(phones.Units) > 0 {
		// Apart from manifest.json, which operators pass around: the
		// numbers go to the server's notifier and nowhere else.
		pdoc, psig, err := manifest.EncodePhones(phones, o.Keys.Signing)
		if err != nil {
			return 0, err
		}
		files = append(files, outFile{PhonesJSON, pdoc}, outFile{PhonesJSON + ".sig", psig})
	}
	files = append(files, outFile{ManifestJSON, doc}, outFile{ManifestJSON + ".sig", sig})
	for _, f := range files {
		if err := writeAtomic(filepath.Join(o.Dir, f.name), f.data, 0o600, o.Fault); err != nil {
			return 0, err
		}
	}
	if err := syncFS(o.Dir); err != nil {
		return 0, err
	}
	return len(units), nil
}

// csvSafe keeps a cell a spreadsheet would run as a formula from running.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeAtomic writes data beside path and renames it in; fault is called
// between (where a kill leaves a temporary file, which the next run removes).
// Files are not fsync'd one by one: syncFS flushes them together.
func writeAtomic(path string, data []byte, mode os.FileMode, fault func(string) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("batch: write %s: %w", filepath.Base(path), err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("batch: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("batch: write %s: %w", filepath.Base(path), err)
	}
	if err := fault("write " + filepath.Base(path)); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return nil
}

// syncFS flushes the file system holding dir: every bundle written since
// reaches the disk with one call instead of ten thousand fsyncs.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("batch: sync: %w", err)
	}
	return nil
}

// labelsDone is what the journal keeps of the last label sheet written:
// the hash of what it shows and of the file. The PDF library does not
// write the same bytes twice (its font subsets), so a sheet that shows
// what it should is kept rather than rewritten.
type labelsDone struct {
	Input string `json:"input"`
	File  string `json:"file"`
}

var keyLabels = []byte("labels")

func writeLabels(db *bolt.DB, o Options, ls []labels.Label, meta Meta) error {
	in, err := json.Marshal(ls)
	if err != nil {
		return err
	}
	inSum := sha256.Sum256(in)
	path := filepath.Join(o.Dir, LabelsFile)
	var done labelsDone
	if err := db.View(func(tx *bolt.Tx) error { _, err := getJSON(tx.Bucket(bucketMeta), keyLabels, &done); return err }); err != nil {
		return err
	}
	if cur, err := os.ReadFile(path); err == nil && done.Input == hex.EncodeToString(inSum[:]) {
		if sum := sha256.Sum256(cur); done.File == hex.EncodeToString(sum[:]) {
			return nil
		}
	}
	var pdf bytes.Buffer
	if err := labels.Write(&pdf, ls, o.Fonts, meta.CreatedAt); err != nil {
		return err
	}
	if err := writeAtomic(path, pdf.Bytes(), 0o600, o.Fault); err != nil {
		return err
	}
	fileSum := sha256.Sum256(pdf.Bytes())
	if err := o.Fault("journal labels"); err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketMeta), keyLabels, labelsDone{Input: hex.EncodeToString(inSum[:]), File: hex.EncodeToString(fileSum[:])})
	})
	if err != nil {
		return fmt.Errorf("batch: journal: %w", err)
	}
	return nil
}
