package webapp_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous/webapp"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(webapp.Handler())
	defer srv.Close()
	get := func(t *testing.T, path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	tests := []struct {
		path, contentType string
	}{
		{"/", "text/html"},
		{"/pair", "text/html"},
		{"/app.js", "text/javascript"},
		{"/sw.js", "text/javascript"},
		{"/style.css", "text/css"},
		{"/manifest.webmanifest", "application/manifest+json"},
		{"/icon-192.png", "image/png"},
		{"/icon-512.png", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := get(t, tt.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.contentType)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("CSP = %q", csp)
			}
			tag := res.Header.Get("ETag")
			if tag == "" {
				t.Fatal("no ETag: every revalidation would cost the whole file")
			}
			if again := get(t, tt.path, map[string]string{"If-None-Match": tag}); again.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with the ETag gave %d, want 304", again.StatusCode)
			}
		})
	}
}

// TestNoInlineCode: the CSP forbids inline scripts and styles, so the page
// must not rely on them (the browser would silently ignore them).
func TestNoInlineCode(t *testing.T) {
	b, err := fsReadFile("index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, bad := range []string{"<style", " style=", "onclick=", "onload=", "javascript:"} {
		if strings.Contains(html, bad) {
			t.Errorf("index.html contains %q, which the CSP blocks", bad)
		}
	}
	for _, s := range strings.Split(html, "<script")[1:] {
		if !strings.Contains(strings.SplitN(s, ">", 2)[0], "src=") {
			t.Errorf("index.html has an inline <script>")
		}
	}
}

func fsReadFile(name string) ([]byte, error) { return fs.ReadFile(webapp.FS(), name) }
