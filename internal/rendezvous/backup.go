package rendezvous

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tuanju/tuanju/internal/boltfile"
)

// BackupConfig makes the running server back up its registry by itself: a
// damaged registry is recovered from a backup (`rendezvous restore`), and
// one that nobody remembered to make is no recovery at all.
type BackupConfig struct {
	// Every is how often; 0 turns automatic backups off. The first is made
	// at start.
	Every time.Duration `toml:"every"`
	// Keep is how many are kept; older ones are deleted.
	Keep int `toml:"keep"`
	// Dir is where they go; default DataDir/backups.
	Dir string `toml:"dir"`
}

// Default automatic backups: every 6 hours, a week of them.
const (
	DefaultBackupEvery = 6 * time.Hour
	DefaultBackupKeep  = 28
)

const backupPrefix, backupSuffix = "rendezvous-", ".db"

func (b BackupConfig) validate(bad func(string, ...any) error) error {
	if b.Every < 0 || (b.Every > 0 && b.Keep < 1) {
		return bad("backup: every %v must not be negative, and keep %d at least 1", b.Every, b.Keep)
	}
	return nil
}

// backupLoop backs the registry up at start and then every cfg.Every,
// until stop is closed.
func (s *Server) backupLoop(cfg BackupConfig, stop <-chan struct{}) {
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		if path, err := s.backupNow(cfg); err != nil {
			s.metrics.backupFailures.Add(1)
			s.log.Error("registry backup failed; the last good one is kept", "err", err)
		} else {
			s.metrics.backupsWritten.Add(1)
			s.metrics.lastBackup.Store(time.Now().Unix())
			s.log.Debug("registry backed up", "file", path)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// backupNow writes one backup (a consistent copy in one read transaction,
// written beside its name and renamed into place), checks it as `rendezvous
// check` would, and deletes the oldest beyond cfg.Keep. A backup that fails
// its check is deleted and is an error: it must never push a good one out.
func (s *Server) backupNow(cfg BackupConfig) (string, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return "", fmt.Errorf("rendezvous: backup: %w", err)
	}
	path := filepath.Join(cfg.Dir, backupPrefix+time.Now().UTC().Format("20060102T150405.000000000Z")+backupSuffix)
	if err := boltfile.Backup(s.bolt.db, path); err != nil {
		return "", fmt.Errorf("rendezvous: %w", err)
	}
	rep, err := CheckRegistry(path)
	if err == nil && !rep.OK() {
		err = fmt.Errorf("problems: %q", rep.Problems)
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("rendezvous: backup %s does not check: %w", path, err)
	}
	return path, pruneBackups(cfg.Dir, cfg.Keep)
}

// pruneBackups deletes all but the newest keep backups in dir (their names
// sort by time).
func pruneBackups(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("rendezvous: backups: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names[:max(0, len(names)-keep)] {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("rendezvous: backups: %w", err)
		}
	}
	return nil
}
