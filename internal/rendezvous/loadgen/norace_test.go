//go:build !race

package loadgen_test

const raceFactor = 1
