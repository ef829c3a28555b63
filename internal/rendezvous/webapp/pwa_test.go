package webapp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestInstallable: Chromium parses the manifest without errors, finds no
// reason the app cannot be installed, and the service worker caches the app
// shell (and never the signalling socket).
func TestInstallable(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx := phone(t)
	do(t, ctx, chromedp.Navigate(f.URL+"/"))
	waitState(t, ctx, "pairing")

	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ready, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(r => !!r.active)`, chromedp.EvalAwaitPromise))
	if err != nil || !ready {
		t.Fatalf("service worker not active: %v", err)
	}
	waitFor(t, ctx, `caches.keys().then(k => k.length > 0)`)
	cached, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`caches.keys().then(ks => caches.open(ks[0])).then(c => c.keys()).then(rs => rs.map(r => new URL(r.url).pathname))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cached, " ")
	for _, want := range []string{"/", "/app.js", "/style.css", "/manifest.webmanifest", "/icon-512.png"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("service worker cache %v lacks %s", cached, want)
		}
	}
	if strings.Contains(got, "/ws") {
		t.Errorf("service worker cached the socket endpoint: %v", cached)
	}

	var manifest page.GetAppManifestResult
	var installErrs page.GetInstallabilityErrorsResult
	do(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		var err error
		if manifest, err = chromedp.Call(ctx, page.GetAppManifest, page.GetAppManifestParams{}); err != nil {
			return err
		}
		installErrs, err = chromedp.Call(ctx, page.GetInstallabilityErrors, struct{}{})
		return err
	}))
	for _, e := range manifest.Errors {
		t.Errorf("manifest error: %+v", *e)
	}
	if !strings.Contains(manifest.Data, "Tuanju 团聚") {
		t.Errorf("manifest %s: no name", manifest.URL)
	}
	for _, e := range installErrs.InstallabilityErrors {
		t.Errorf("not installable: %s", fmt.Sprint(e.ErrorID))
	}
}
