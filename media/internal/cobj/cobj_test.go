package cobj_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/tuanju/tuanju/media/internal/cobj"
)

var errClosed = errors.New("closed")

func TestGuard(t *testing.T) {
	obj, frees := 7, 0
	g := cobj.New(&obj, func(p *int) { frees++; *p = 0 })

	var seen int
	if err := g.Do(errClosed, func(p *int) error { seen = *p; return nil }); err != nil || seen != 7 {
		t.Fatalf("Do before Close: err %v, saw %d; want nil, 7", err, seen)
	}
	errF := errors.New("from f")
	if err := g.Do(errClosed, func(*int) error { return errF }); err != errF {
		t.Fatalf("Do: err %v, want f's error", err)
	}
	for range 2 {
		if err := g.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if frees != 1 {
		t.Fatalf("freed %d times, want once", frees)
	}
	called := false
	if err := g.Do(errClosed, func(*int) error { called = true; return nil }); err != errClosed || called {
		t.Fatalf("Do after Close: err %v, f called %v; want errClosed, not called", err, called)
	}
}

// Close from another goroutine never frees the object under a running Do
// (the race detector and the check inside f both watch).
func TestGuardConcurrentClose(t *testing.T) {
	obj := 1
	g := cobj.New(&obj, func(p *int) { *p = 0 })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			err := g.Do(errClosed, func(p *int) error {
				if *p != 1 {
					t.Error("Do saw a freed object")
				}
				return nil
			})
			if err == errClosed {
				return
			}
		}
	}()
	g.Close()
	wg.Wait()
}
