// Package programme is a subsidy programme's directory on the operator's
// offline machine: its settings, its program CAs (one per generation, each
// key encrypted with the programme's passphrase), its bundle and manifest
// signing key (encrypted the same way), and the public files the server and
// the terminals' OS image need. Layout (docs/provisioning.md):
//
//	programme.toml              settings every unit's bundle carries (edit it)
//	keys/ca-N.pem               program CA certificate, generation N
//	keys/ca-N.key.age           its private key, age-encrypted (scrypt)
//	keys/signing.key.age        the signing key (Ed25519), age-encrypted
//	server/ca-N.pem             copy for the server's device_ca_files
//	server/signing-key.pem      public signing key: `rendezvous fleet import` checks manifests with it
//	terminal/programme-key.pem  the same public key, for terminald's programme_key_file
//
// Keys are encrypted with age's passphrase mode (scrypt + ChaCha20-Poly1305),
// so `age -d keys/ca-1.key.age` opens one with standard tools in an
// emergency; they are decrypted only in memory.
package programme

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/BurntSushi/toml"
	"github.com/google/renameio/v2"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// File names inside a programme directory.
const (
	SettingsFile   = "programme.toml"
	keysDir        = "keys"
	serverDir      = "server"
	terminalDir    = "terminal"
	signingKeyFile = "signing.key.age"
	// ServerSigningKey is the public signing key in server/.
	ServerSigningKey = "signing-key.pem"
	// TerminalKey is the public signing key in terminal/.
	TerminalKey = "programme-key.pem"
)

// MinPassphrase is the shortest passphrase Init takes.
const MinPassphrase = 12

// ScryptLogN is the scrypt work factor of the key files: 2^18, about a
// second on a laptop, per key, each time the keys are unlocked. Tests
// lower it.
var ScryptLogN = 18

var (
	// ErrExists: Init on a directory that already holds something.
	ErrExists = errors.New("the directory is not empty")
	// ErrNotProgramme: no programme.toml.
	ErrNotProgramme = errors.New("not a programme directory")
	// ErrPassphrase: the passphrase does not open the keys.
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrBadSettings: programme.toml has a wrong or missing value.
	ErrBadSettings = errors.New("bad programme settings")
)

// Settings is programme.toml: what every unit's bundle carries, and the
// defaults for rows of a batch that leave a column empty.
type Settings struct {
	Name      string `toml:"name"`
	ServerURL string `toml:"server_url"`
	PublicURL string `toml:"public_url"`
	// ServerCAFile (PEM, relative to the programme directory) replaces the
	// system's CAs on the units for the server's TLS certificate.
	ServerCAFile string        `toml:"server_ca_file"`
	TURN         []string      `toml:"turn"`
	TimeZone     string        `toml:"time_zone"`
	Language     string        `toml:"language"`
	DataBudgetMB int           `toml:"data_budget_mb"`
	WiFi         []bundle.WiFi `toml:"wifi"`
	APN          *bundle.APN   `toml:"apn"`
}

// Validate checks the settings and reports every value that is wrong.
func (s Settings) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Name) == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if u, err := url.Parse(s.ServerURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		errs = append(errs, fmt.Errorf("server_url %q must be a ws:// or wss:// URL", s.ServerURL))
	}
	if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("public_url %q must be an http:// or https:// URL (pairing links start with it)", s.PublicURL))
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "" {
		errs = append(errs, fmt.Errorf("time_zone %q is not a time zone (e.g. Asia/Shanghai)", s.TimeZone))
	}
	if s.Language == "" {
		errs = append(errs, errors.New("language is empty (e.g. zh-CN)"))
	}
	if s.DataBudgetMB < 0 {
		errs = append(errs, fmt.Errorf("data_budget_mb %d is negative", s.DataBudgetMB))
	}
	for i, w := range s.WiFi {
		if err := w.Check(); err != nil {
			errs = append(errs, fmt.Errorf("wifi[%d]: %w", i, err))
		}
	}
	if s.APN != nil {
		if err := s.APN.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("programme: %s: %w: %w", SettingsFile, ErrBadSettings, errors.Join(errs...))
	}
	return nil
}

// Dir is an opened programme directory.
type Dir struct {
	Path     string
	Settings Settings
}

// Keys are a programme's unlocked private keys, in memory only.
type Keys struct {
	CA         *devcert.CA
	Generation int
	Signing    *signing.Key
}

// Init makes a programme directory at path (absent or empty): a program CA
// (generation 1), a signing key, both encrypted with passphrase, the public
// files and programme.toml with s. It is built beside path and renamed into
// place, so a crash leaves no half a programme.
func Init(path string, s Settings, passphrase []byte) (*Dir, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("programme: init: the passphrase is %d characters; at least %d", len(passphrase), MinPassphrase)
	}
	path = filepath.Clean(path)
	if entries, err := os.ReadDir(path); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("programme: init %s: %w", path, ErrExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".init-")
	if err != nil {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{keysDir, serverDir, terminalDir} {
		mode := os.FileMode(0o755)
		if d == keysDir {
			mode = 0o700
		}
		if err := os.Mkdir(filepath.Join(tmp, d), mode); err != nil {
			return nil, fmt.Errorf("programme: init: %w", err)
		}
	}
	sk, err := signing.NewKey()
	if err != nil {
		return nil, err
	}
	skPEM, err := sk.PEM()
	if err != nil {
		return nil, err
	}
	if err := writeEncrypted(filepath.Join(tmp, keysDir, signingKeyFile), skPEM, passphrase); err != nil {
		return nil, err
	}
	pub := signing.PublicPEM(sk.Public())
	if err := writeFile(filepath.Join(tmp, serverDir, ServerSigningKey), pub, 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(tmp, terminalDir, TerminalKey), pub, 0o644); err != nil {
		return nil, err
	}
	d := &Dir{Path: tmp, Settings: s}
	if _, err := d.newCA(1, passphrase); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(settingsHeader)
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	if err := writeFile(filepath.Join(tmp, SettingsFile), buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("programme: init: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	d.Path = path
	return d, nil
}

const settingsHeader = `# A Tuanju programme's settings: every unit's bundle carries them
# (docs/provisioning.md). Edit, then run provision batch; a batch keeps the
# settings it started with.
`

// Open reads a programme directory's settings.
func Open(path string) (*Dir, error) {
	b, err := os.ReadFile(filepath.Join(path, SettingsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("programme: %s: %w (make one with provision init)", path, ErrNotProgramme)
	}
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	var s Settings
	md, err := toml.Decode(string(b), &s)
	if err != nil {
		return nil, fmt.Errorf("programme: %s: %w: %v", SettingsFile, ErrBadSettings, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, fmt.Errorf("programme: %s: unknown keys %v: %w", SettingsFile, un, ErrBadSettings)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Dir{Path: path, Settings: s}, nil
}

// Generations lists the CA generations present, oldest first.
func (d *Dir) Generations() ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(d.Path, keysDir))
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	var gens []int
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "ca-") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "ca-"), ".pem"))
		if err == nil && n > 0 {
			gens = append(gens, n)
		}
	}
	if len(gens) == 0 {
		return nil, fmt.Errorf("programme: %s: no program CA in %s: %w", d.Path, keysDir, ErrNotProgramme)
	}
	// ReadDir sorts by name: ca-10 before ca-2.
	for i := 1; i < len(gens); i++ {
		for j := i; j > 0 && gens[j] < gens[j-1]; j-- {
			gens[j], gens[j-1] = gens[j-1], gens[j]
		}
	}
	return gens, nil
}

// ServerCAFiles are the CA certificates for the server's device_ca_files,
// oldest first.
func (d *Dir) ServerCAFiles() ([]string, error) {
	gens, err := d.Generations()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range gens {
		out = append(out, filepath.Join(d.Path, serverDir, fmt.Sprintf("ca-%d.pem", g)))
	}
	return out, nil
}

// PublicKeyFile is the public signing key for terminals and the server.
func (d *Dir) PublicKeyFile() string { return filepath.Join(d.Path, terminalDir, TerminalKey) }

// ServerCA is the PEM of settings' server_ca_file, or nil.
func (d *Dir) ServerCA() ([]byte, error) {
	if d.Settings.ServerCAFile == "" {
		return nil, nil
	}
	p := d.Settings.ServerCAFile
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.Path, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("programme: server_ca_file: %w", err)
	}
	return b, nil
}

// Unlock decrypts the newest CA generation's key and the signing key.
func (d *Dir) Unlock(passphrase []byte) (*Keys, error) { return d.UnlockGeneration(passphrase, 0) }

// UnlockGeneration is Unlock for CA generation gen (0: the newest): a
// batch keeps issuing from the generation it started with.
func (d *Dir) UnlockGeneration(passphrase []byte, gen int) (*Keys, error) {
	gens, err := d.Generations()
	if err != nil {
		return nil, err
	}
	if gen == 0 {
		gen = gens[len(gens)-1]
	} else if !slices.Contains(gens, gen) {
		return nil, fmt.Errorf("programme: no CA generation %d in %s (have %v)", gen, d.Path, gens)
	}
	sk, err := readEncrypted(filepath.Join(d.Path, keysDir, signingKeyFile), passphrase)
	if err != nil {
		return nil, err
	}
	signer, err := signing.ParseKey(sk)
	if err != nil {
		return nil, fmt.Errorf("programme: %s: %w", signingKeyFile, err)
	}
	ca, err := d.loadCA(gen, passphrase)
	if err != nil {
		return nil, err
	}
	return &Keys{CA: ca, Generation: gen, Signing: signer}, nil
}

func (d *Dir) loadCA(gen int, passphrase []byte) (*devcert.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(d.Path, keysDir, fmt.Sprintf("ca-%d.pem", gen)))
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	keyPEM, err := readEncrypted(filepath.Join(d.Path, keysDir, fmt.Sprintf("ca-%d.key.age", gen)), passphrase)
	if err != nil {
		return nil, err
	}
	return devcert.ParseCA(certPEM, keyPEM)
}

// RotateCA makes the next CA generation: new batches are issued from it.
// The passphrase must open the current one (the same passphrase protects
// the new key). Its certificate goes to server/ beside the old ones: list
// them all in the server's device_ca_files before shipping units from it
// (docs/provisioning-keys.md, "Rollover").
func (d *Dir) RotateCA(passphrase []byte) (int, error) {
	gens, err := d.Generations()
	if err != nil {
		return 0, err
	}
	cur := gens[len(gens)-1]
	if _, err := d.loadCA(cur, passphrase); err != nil {
		return 0, err
	}
	return d.newCA(cur+1, passphrase)
}

// newCA writes generation gen: the key first, then the server's copy, and
// the certificate in keys/ last, which is what makes the generation exist.
func (d *Dir) newCA(gen int, passphrase []byte) (int, error) {
	ca, err := devcert.NewCA(fmt.Sprintf("%s program CA %d", d.Settings.Name, gen))
	if err != nil {
		return 0, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return 0, err
	}
	if err := writeEncrypted(filepath.Join(d.Path, keysDir, fmt.Sprintf("ca-%d.key.age", gen)), keyPEM, passphrase); err != nil {
		return 0, err
	}
	if err := writeFile(filepath.Join(d.Path, serverDir, fmt.Sprintf("ca-%d.pem", gen)), ca.CertPEM(), 0o644); err != nil {
		return 0, err
	}
	if err := writeFile(filepath.Join(d.Path, keysDir, fmt.Sprintf("ca-%d.pem", gen)), ca.CertPEM(), 0o644); err != nil {
		return 0, err
	}
	return gen, nil
}

func writeEncrypted(path string, plain, passphrase []byte) error {
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return fmt.Errorf("programme: encrypt: %w", err)
	}
	r.SetWorkFactor(ScryptLogN)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return fmt.Errorf("programme: encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("programme: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("programme: encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("programme: encrypt: %w", err)
	}
	return writeFile(path, buf.Bytes(), 0o600)
}

func readEncrypted(path string, passphrase []byte) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("programme: %s: %w", filepath.Base(path), err)
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(b)), id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("programme: %s: %w", filepath.Base(path), ErrPassphrase)
		}
		return nil, fmt.Errorf("programme: %s: %w", filepath.Base(path), err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("programme: %s: %w", filepath.Base(path), err)
	}
	return plain, nil
}

// writeFile writes atomically (temporary file, fsync, rename).
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := renameio.WriteFile(path, data, mode, renameio.WithStaticPermissions(mode)); err != nil {
		return fmt.Errorf("programme: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("programme: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("programme: sync %s: %w", dir, err)
	}
	return nil
}
