package imageboot_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// cardFile is a fresh, empty SD card as a regular file: flash.Flash's
// Device, so the unit's disk is written by the flasher's own code path
// (the image, the bundle laid over its provisioning partition as the
// bytes stream past, the sync, the read-back through a fresh open and the
// hash checks) rather than by a test's dd at an offset. Only the block
// device's open (O_EXCL, O_DIRECT) and the refusals of disks in use are
// not exercised: provisioning/flash's loop-device tests have those.
//
// All-zero chunks are not written: the file starts as a hole, which reads
// as zero, so its content is exactly what was written, and each unit's
// 580 MiB disk takes the image's ~60 MiB of real data on the host.
type cardFile struct {
	f    *os.File
	size int64
}

func newCard(path string, size int64) (*cardFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return &cardFile{f: f, size: size}, nil
}

func (c *cardFile) Size() int64    { return c.size }
func (c *cardFile) BlockSize() int { return flash.SectorSize }
func (c *cardFile) WriteAt(p []byte, off int64) (int, error) {
	if allZero(p) {
		return len(p), nil
	}
	return c.f.WriteAt(p, off)
}
func (c *cardFile) Sync() error { return c.f.Sync() }
func (c *cardFile) ReadBack() (flash.ReaderAtCloser, error) {
	return os.Open(c.f.Name())
}
func (c *cardFile) Close() error { return c.f.Close() }

var zeros = make([]byte, 1<<20)

func allZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeros))
		if !bytes.Equal(p[:n], zeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// unitCard is one unit as the programme issues it: a device key and
// certificate from the server's program CA, a pairing secret (the label's
// QR code), the settings that lead it to this test's server (through the
// VM's one guestfwd), signed with the programme key the image was built
// with.
type unitCard struct {
	disk, deviceID string
	secret         pairing.Secret
	link           string // the label's pairing link
}

// flashUnit issues a unit and flashes the image with its bundle onto a new
// card file, as `provision flash` does onto an SD card. edit changes the
// bundle's settings (its Wi-Fi networks).
func (h *harness) flashUnit(t testing.TB, name string, edit ...func(*bundle.Settings)) *unitCard {
	t.Helper()
	key, cert := rendezvoustest.NewIdentity(t)
	pemBundle, err := devcert.EncodeBundle(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	dev := rendezvoustest.DeviceID(key)
	secret := pairing.NewSecret()
	settings := bundle.Settings{
		ServerURL: "ws://10.0.2.100/ws", PublicURL: h.srv.URL, TimeZone: "UTC", Language: "zh-CN",
	}
	for _, e := range edit {
		e(&settings)
	}
	b, err := bundle.Encode(bundle.Unit{
		Unit: name, DeviceID: dev, Batch: "BOOT", Site: "qemu", Region: "test",
		IssuedAt: time.Now().UTC().Truncate(time.Second), Identity: string(pemBundle),
		PairingSecret: secret.String(), Settings: settings,
	}, h.programme)
	if err != nil {
		t.Fatal(err)
	}
	img, err := flash.OpenImage(filepath.Join(h.image, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	disk := filepath.Join(t.TempDir(), name+".img")
	card, err := newCard(disk, img.End())
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := flash.Flash(ctx, card, flash.Job{Image: img, Bundle: b, Keys: []ed25519.PublicKey{h.programme.Public()}})
	if err != nil {
		t.Fatalf("flash %s: %v", name, err)
	}
	if res.Unit.DeviceID != dev {
		t.Fatalf("flashed bundle is for %s, want %s", res.Unit.DeviceID, dev)
	}
	t.Logf("host: flashed %s (device %s): %d bytes written %v, verified %v, bundle at byte %d",
		name, dev, res.Region, res.WriteTime.Round(time.Millisecond), res.VerifyTime.Round(time.Millisecond), img.Provisioning.Offset)
	return &unitCard{disk: disk, deviceID: dev, secret: secret, link: pairing.URL(h.srv.URL, dev, secret)}
}

// loadProgramme reads the programme's private key the image was built with
// (the Makefile makes a throwaway one beside the image).
func loadProgramme(path string) (*signing.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme key: %w", err)
	}
	return signing.ParseKey(b)
}
