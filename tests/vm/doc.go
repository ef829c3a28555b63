// Package vm is the kernel-in-the-loop test harness: tests/vm/fetch caches
// Debian's kernel and busybox, tests/vm/gpio-sim/build builds the gpio-sim
// driver for it, and tests/vm/run boots static Go test binaries in qemu
// against it. The tests in this directory (build tag vmtest) run inside that
// VM and skip anywhere else. See README.md.
package vm
