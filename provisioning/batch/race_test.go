//go:build race

package batch_test

// raceOn: the race detector slows cryptography and QR encoding ~10x; the
// large tests take fewer rows under it.
const raceOn = true
