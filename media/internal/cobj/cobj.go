// Package cobj guards a C object that several goroutines reach: a track's
// goroutine reads an encoder while the call's bitrate control and Close come
// from others. Every call into C holds the lock, and none reaches the object
// once Close has freed it.
package cobj

import "sync"

// Guard holds one pointer to a C object and the function that frees it. P is
// the pointer type: cgo's types for opaque C structs cannot be type arguments.
type Guard[P comparable] struct {
	mu   sync.Mutex
	p    P // the zero value once closed
	free func(P)
}

// New guards p, which free releases.
func New[P comparable](p P, free func(P)) *Guard[P] {
	return &Guard[P]{p: p, free: free}
}

// Do calls f with the object under the lock and returns its error, or
// returns closed without calling f once the object has been freed.
func (g *Guard[P]) Do(closed error, f func(P) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var zero P
	if g.p == zero {
		return closed
	}
	return f(g.p)
}

// Close frees the object; later calls do nothing. It waits for a Do in
// progress. It always returns nil, so it can be an io.Closer's body.
func (g *Guard[P]) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var zero P
	if g.p != zero {
		g.free(g.p)
		g.p = zero
	}
	return nil
}
