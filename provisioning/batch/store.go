package batch

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// The batch's journal is a bbolt file (batch.db) in the batch directory. It
// is the only thing that says which units exist: a unit is issued when its
// record commits, and every output file (bundles, labels, manifest) is made
// again from the records, byte for byte the same, on every run. bbolt
// commits are atomic and fsync'd, so a kill at any point leaves each unit
// issued or not, never half; its file lock keeps two runs apart.

var (
	bucketMeta  = []byte("meta")
	bucketRows  = []byte("rows")  // row key → planned (unit number + row)
	bucketUnits = []byte("units") // unit number, big-endian → Record
	keyMeta     = []byte("meta")
)

// Meta is what a batch fixes at its first run.
type Meta struct {
	Name         string          `json:"name"`
	Programme    string          `json:"programme"`
	CAGeneration int             `json:"ca_generation"`
	SigningKey   string          `json:"signing_key"`
	Settings     bundle.Settings `json:"settings"` // the programme's, before each row's own
	CreatedAt    time.Time       `json:"created_at"`
	Next         int             `json:"next"` // the next unit number to plan
}

// planned is a row given a unit number.
type planned struct {
	N   int `json:"n"`
	Row Row `json:"row"`
}

// Record is an issued unit: its identity, never changed once committed.
type Record struct {
	N             int       `json:"n"`
	Unit          string    `json:"unit"`
	DeviceID      string    `json:"device_id"`
	Identity      string    `json:"identity"` // PEM key + certificate
	CertSerial    string    `json:"cert_serial"`
	PairingSecret string    `json:"pairing_secret"`
	IssuedAt      time.Time `json:"issued_at"`
}

// ErrBusy: another run holds the batch.
var ErrBusy = errors.New("another provision batch run holds this batch directory")

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("batch: %s: %w", path, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("batch: open journal %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketRows, bucketUnits} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("batch: journal %s: %w", path, err)
	}
	return db, nil
}

func unitKey(n int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("batch: journal entry %x: %w", k, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}
