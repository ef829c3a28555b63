//go:build !linux

package loadgen

import "syscall"

// bindNoPort is Linux's; elsewhere a bound socket takes its port at bind.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
