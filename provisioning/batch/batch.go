// Package batch turns a checked list of families (ReadCSV) into units: for
// each row a device key and certificate from the programme's CA, a pairing
// secret, a signed bundle (provisioning/bundle), a label, and for the batch
// a label sheet and a signed manifest (provisioning/manifest).
//
// A batch is resumable and idempotent: its journal (store.go) assigns each
// row (by Row.Key) a unit number once and records each unit's identity once;
// a run killed at any point and run again, or run again with more rows,
// issues only what is missing, never changes or repeats a unit, and remakes
// every output file from the journal, written beside its place and renamed
// in, so none is ever seen half-written.
package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/programme"
)

// Files in a batch directory.
const (
	JournalFile  = "batch.db"
	BundlesDir   = "bundles"
	LabelsFile   = "labels.pdf"
	ManifestJSON = "manifest.json"
	ManifestCSV  = "manifest.csv"
	// PhonesJSON holds the parents' numbers of the rows that gave one
	// (manifest.Phones), for the server's notifier only; absent when no
	// row did.
	PhonesJSON = manifest.PhonesJSONName
	// BundleExt ends every bundle's file name: bundles/B1-00042.tjb.
	BundleExt = ".tjb"
)

// chunk is how many units are issued per journal commit: one fsync per
// chunk, not per unit.
const chunk = 250

var nameRE = regexp.MustCompile(`^[A-Z0-9]{1,10}$`)

// ErrChanged: a row the batch already made a unit for now says something
// else.
var ErrChanged = errors.New("a row the batch already issued has changed")

// Options are one run's inputs.
type Options struct {
	Dir  string // the batch directory (made if absent)
	Name string // the batch's name, [A-Z0-9]{1,10}: unit IDs are NAME-00001…; "" keeps the batch's
	Rows []Row  // checked by ReadCSV
	// Programme and Keys: the programme and its unlocked keys. Keys' CA
	// generation must be the batch's (Generation tells it for a batch that
	// exists).
	Programme *programme.Dir
	Keys      *programme.Keys
	Fonts     labels.Fonts
	// Progress is told how far issuing and writing got (done of total);
	// nil for none.
	Progress func(stage string, done, total int)
	// Fault, when set, is called before each write that could be cut short
	// by a kill (each journal commit, each file's rename): a test returns
	// an error to stop the run there, as a kill would.
	Fault func(point string) error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ChunkSize is how many units one journal commit issues (0: 250).
	// Tests make it small to have several commits in a small batch.
	ChunkSize int
}

// Result says what a run did.
type Result struct {
	Name    string
	Units   int // in the batch
	Issued  int // issued by this run
	Planned int // rows new to the batch in this run
}

// Generation is the CA generation of the batch in dir, 0 for a batch not
// yet started (issue it from the newest).
func Generation(dir string) (int, error) {
	path := filepath.Join(dir, JournalFile)
	if _, err := os.Stat(path); err != nil {
		return 0, nil
	}
	db, err := openDB(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var m Meta
	err = db.View(func(tx *bolt.Tx) error { _, err := getJSON(tx.Bucket(bucketMeta), keyMeta, &m); return err })
	return m.CAGeneration, err
}

// Run plans, issues and writes the batch.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Fault == nil {
		o.Fault = func(string) error { return nil }
	}
	if o.Progress == nil {
		o.Progress = func(string, int, int) {}
	}
	if o.Name != "" && !nameRE.MatchString(o.Name) {
		return res, fmt.Errorf("batch: name %q: use 1 to 10 capital letters and digits (unit IDs are NAME-00001…)", o.Name)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, BundlesDir), 0o700); err != nil {
		return res, fmt.Errorf("batch: %w", err)
	}
	db, err := openDB(filepath.Join(o.Dir, JournalFile))
	if err != nil {
		return res, err
	}
	defer db.Close()
	removeTemps(o.Dir)
	removeTemps(filepath.Join(o.Dir, BundlesDir))

	meta, planned, err := plan(db, o)
	if err != nil {
		return res, err
	}
	res.Name, res.Planned = meta.Name, planned
	issued, err := issue(ctx, db, meta, o)
	res.Issued = issued
	if err != nil {
		return res, err
	}
	n, err := writeOutputs(ctx, db, meta, o)
	res.Units = n
	return res, err
}

// plan fixes the batch's meta at its first run and gives each new row the
// next unit number, in one commit. A row already planned must say the same
// as before (ErrChanged names the row and the field).
func plan(db *bolt.DB, o Options) (Meta, int, error) {
	var meta Meta
	added := 0
	if err := o.Fault("plan"); err != nil {
		return meta, 0, err
	}
	err := db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		ok, err := getJSON(mb, keyMeta, &meta)
		if err != nil {
			return err
		}
		if !ok {
			if o.Name == "" {
				return errors.New("batch: a new batch needs a name (--name, e.g. B1)")
			}
			s := o.Programme.Settings
			ca, err := o.Programme.ServerCA()
			if err != nil {
				return err
			}
			meta = Meta{Name: o.Name, Programme: s.Name, CAGeneration: o.Keys.Generation, SigningKey: o.Keys.Signing.ID().String(),
				Settings: bundle.Settings{ServerURL: s.ServerURL, PublicURL: s.PublicURL, ServerCA: string(ca), TURN: s.TURN,
					TimeZone: s.TimeZone, Language: s.Language, WiFi: s.WiFi, APN: s.APN, DataBudgetMB: s.DataBudgetMB},
				CreatedAt: o.Now().UTC().Truncate(time.Second), Next: 1}
		}
		switch {
		case o.Name != "" && o.Name != meta.Name:
			return fmt.Errorf("batch: %s is batch %s, not %s", o.Dir, meta.Name, o.Name)
		case o.Keys.Generation != meta.CAGeneration:
			return fmt.Errorf("batch: %s issues from CA generation %d; unlocked %d", o.Dir, meta.CAGeneration, o.Keys.Generation)
		case o.Keys.Signing.ID().String() != meta.SigningKey:
			return fmt.Errorf("batch: %s was signed with key %s, not this programme's %s", o.Dir, meta.SigningKey, o.Keys.Signing.ID())
		}
		rb := tx.Bucket(bucketRows)
		var errs problems
		for _, r := range o.Rows {
			var p planned
			ok, err := getJSON(rb, []byte(r.Key()), &p)
			if err != nil {
				return err
			}
			if ok {
				if f := differs(p.Row, r); f != "" {
					errs.add(fmt.Errorf("row %d, %s: unit %s was made for this site and child with another %s; a batch never changes a unit it made (start a new batch for a changed family): %w",
						r.Line, f, unitName(meta.Name, p.N), f, ErrChanged))
				}
				continue
			}
			if err := putJSON(rb, []byte(r.Key()), planned{N: meta.Next, Row: r}); err != nil {
				return err
			}
			meta.Next++
			added++
		}
		if err := errs.err(); err != nil {
			return err
		}
		return putJSON(mb, keyMeta, meta)
	})
	if err != nil {
		return Meta{}, 0, err
	}
	return meta, added, nil
}

func unitName(batch string, n int) string { return fmt.Sprintf("%s-%05d", batch, n) }

// differs names the first field in which b says something else than a.
func differs(a, b Row) string {
	switch {
	case a.Site != b.Site:
		return "site"
	case a.Child != b.Child:
		return "child"
	case a.Region != b.Region:
		return "region"
	case a.Language != b.Language:
		return "language"
	case a.TimeZone != b.TimeZone:
		return "time_zone"
	case !slices.Equal(a.ReunionWindows, b.ReunionWindows):
		return "reunion_windows"
	case a.ParentPhone != b.ParentPhone:
		return "parent_phone"
	}
	return ""
}

// issue makes an identity for every planned unit without one, chunk by
// chunk, keys and certificates made in parallel, each chunk one commit.
func issue(ctx context.Context, db *bolt.DB, meta Meta, o Options) (int, error) {
	var pending []int
	err := db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUnits)
		for n := 1; n < meta.Next; n++ {
			if ub.Get(unitKey(n)) == nil {
				pending = append(pending, n)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("batch: journal: %w", err)
	}
	total, done := len(pending), 0
	size := o.ChunkSize
	if size <= 0 {
		size = chunk
	}
	o.Progress("issue", 0, total)
	workers := runtime.GOMAXPROCS(0)
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		part := pending[:min(size, len(pending))]
		pending = pending[len(part):]
		recs := make([]Record, len(part))
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					recs[i], errs[i] = newUnit(meta.Name, part[i], o)
				}
			})
		}
		for i := range part {
			next <- i
		}
		close(next)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return done, err
		}
		if err := o.Fault(fmt.Sprintf("issue %s", recs[0].Unit)); err != nil {
			return done, err
		}
		err := db.Update(func(tx *bolt.Tx) error {
			ub := tx.Bucket(bucketUnits)
			for _, r := range recs {
				if ub.Get(unitKey(r.N)) != nil {
					return fmt.Errorf("batch: unit %s issued twice", r.Unit) // cannot happen: the file lock keeps runs apart
				}
				if err := putJSON(ub, unitKey(r.N), r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("batch: journal: %w", err)
		}
		done += len(recs)
		o.Progress("issue", done, total)
	}
	return done, nil
}

// newUnit makes unit n's identity: key, certificate, pairing secret.
func newUnit(batch string, n int, o Options) (Record, error) {
	key, err := devcert.NewDeviceKey()
	if err != nil {
		return Record{}, err
	}
	der, err := o.Keys.CA.Issue(&key.PublicKey)
	if err != nil {
		return Record{}, err
	}
	id, err := devcert.DeviceID(&key.PublicKey)
	if err != nil {
		return Record{}, err
	}
	pemBundle, err := devcert.EncodeBundle(key, der)
	if err != nil {
		return Record{}, err
	}
	info, err := devcert.Describe(der)
	if err != nil {
		return Record{}, err
	}
	return Record{N: n, Unit: unitName(batch, n), DeviceID: id, Identity: string(pemBundle), CertSerial: info.Serial,
		PairingSecret: pairing.NewSecret().String(), IssuedAt: o.Now().UTC().Truncate(time.Second)}, nil
}

// unitBundle is the bundle body of an issued unit and its row.
func unitBundle(meta Meta, rec Record, row Row) bundle.Unit {
	s := meta.Settings
	s.TimeZone, s.Language = row.TimeZone, row.Language
	s.ReunionWindows = row.ReunionWindows
	return bundle.Unit{Unit: rec.Unit, DeviceID: rec.DeviceID, Batch: meta.Name, Site: row.Site, Region: row.Region,
		IssuedAt: rec.IssuedAt, Identity: rec.Identity, PairingSecret: rec.PairingSecret, Settings: s}
}

// PairingURL is the link on a unit's label.
func PairingURL(publicURL string, rec Record) (string, error) {
	sec, err := pairing.ParseSecret(rec.PairingSecret)
	if err != nil {
		return "", err
	}
	return pairing.URL(publicURL, rec.DeviceID, sec), nil
}

// Units reads the issued units of the batch in dir, in order: what a test
// or an operator checks a batch against.
func Units(dir string) ([]Record, error) {
	db, err := bolt.Open(filepath.Join(dir, JournalFile), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("batch: open journal: %w", err)
	}
	defer db.Close()
	units, err := load(db)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(units))
	for i, u := range units {
		out[i] = u.rec
	}
	return out, nil
}

// removeTemps removes what a killed run left of a write (writeAtomic's
// temporary files).
func removeTemps(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
