package rendezvous_test

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

// unrecordable fails every RegisterDevice while full is set, as a registry
// on a full disk does.
type unrecordable struct {
	rendezvous.Registry
	full atomic.Bool
}

func (r *unrecordable) RegisterDevice(id string, publicKey []byte, version string, now time.Time) (bool, error) {
	if r.full.Load() {
		return false, fmt.Errorf("register device %s: %w", id, syscall.ENOSPC)
	}
	return r.Registry.RegisterDevice(id, publicKey, version, now)
}

// TestLoginWhenItCannotBeRecorded: a registered unit whose login the
// registry cannot record (a full disk: last_seen and version wait) is let
// in on its registered key, so the child can still call; a unit the
// registry has never seen is not.
func TestLoginWhenItCannotBeRecorded(t *testing.T) {
	rt.RequireBolt(t)
	ctx := testCtx(t)
	cfg := rt.TestConfig(t)
	reg := &unrecordable{Registry: openStore(t, cfg)}
	url := serveOn(t, cfg, reg)

	key, id := rt.NewKey()
	first := try(rt.DialTerminal(ctx, url, key)).must(t)
	first.Close()

	reg.full.Store(true)
	again, err := rt.DialTerminal(ctx, url, key)
	if err != nil {
		t.Fatalf("a registered unit was refused while its login could not be recorded: %v", err)
	}
	defer again.Close()
	if again.Welcome.DeviceID != id {
		t.Errorf("welcomed as %q, want %q", again.Welcome.DeviceID, id)
	}

	stranger, _ := rt.NewKey()
	if c, err := rt.DialTerminal(ctx, url, stranger); err == nil {
		c.Close()
		t.Fatal("a unit the registry has never seen logged in while no login could be recorded")
	}
}
