package batch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// BenchmarkBatch10000 provisions 10,000 units (keys, certificates,
// bundles, the label sheet, the manifests, the journal) per iteration, and
// beside it, in the same run, the raw work: a P-256 key, its certificate
// and a signed bundle, 10,000 times on all cores. It reports units/s for
// both and the ratio; the goal is 10,000 units in under 60 s on 2 cores.
func BenchmarkBatch10000(b *testing.B) {
	n := benchUnits()
	e := newEnv(b)
	rs := rows(b, 0, n)
	var batchTime, rawTime time.Duration
	for i := range b.N {
		dir := filepath.Join(b.TempDir(), fmt.Sprint("b", i))
		start := time.Now()
		o := e.opts(dir, rs)
		o.ChunkSize = 0 // the real one
		res, err := batch.Run(context.Background(), o)
		if err != nil || res.Units != n {
			b.Fatalf("%+v, %v", res, err)
		}
		batchTime += time.Since(start)

		start = time.Now()
		rawUnits(b, e, n)
		rawTime += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/batchTime.Seconds(), "units/s")
	b.ReportMetric(float64(n*b.N)/rawTime.Seconds(), "raw-units/s")
	b.ReportMetric(batchTime.Seconds()/float64(b.N), "s/10k-units")
	b.ReportMetric(batchTime.Seconds()/rawTime.Seconds(), "batch/raw")
}

// rawUnits is the cryptography alone: key, certificate, signed bundle.
func rawUnits(b *testing.B, e env, n int) {
	workers := 4
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				key, err := devcert.NewDeviceKey()
				if err != nil {
					done <- err
					return
				}
				der, err := e.keys.CA.Issue(&key.PublicKey)
				if err != nil {
					done <- err
					return
				}
				pemb, _ := devcert.EncodeBundle(key, der)
				if _, err := bundle.Encode(bundle.Unit{Unit: "x", DeviceID: "x", Identity: string(pemb), PairingSecret: pairing.NewSecret().String(),
					Settings: bundle.Settings{ServerURL: "wss://x/ws"}}, e.keys.Signing); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// benchUnits is 10,000 unless BATCH_BENCH_UNITS says otherwise (profiling).
func benchUnits() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("BATCH_BENCH_UNITS"), &n); err == nil && n > 0 {
		return n
	}
	return 10_000
}
