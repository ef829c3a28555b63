package rendezvous

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target the server runs with, unless
// GOGC is set. A node's memory is mostly its idle sockets, live for days;
// at Go's default of 100 the heap's headroom alone would take 100,000 idle
// terminals past 2 GiB (BenchmarkIdleTerminals on 15,904, projected to
// 100,000: 2,299 MiB at 100, 1,840 MiB at 50, for 14% fewer logins/s).
const GCPercent = 50

// TuneRuntime sets the garbage collector's target to GCPercent unless the
// environment sets GOGC.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
