//go:build race

package loadgen_test

// raceFactor: under the race detector every goroutine's stack frames are
// larger; the budget scales with them.
const raceFactor = 2
