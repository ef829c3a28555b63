// Package webapp embeds the parent's web app (an installable PWA) so the
// rendezvous server is one binary with no CDN and no build step at run time.
package webapp

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// FS is the app's files, rooted at the app's top directory.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory exists
	}
	return sub
}

// Handler serves the app. "/" and "/pair" both serve index.html: the pairing
// link's device ID and secret are in the URL fragment, which only the page
// reads.
func Handler() http.Handler {
	files := http.FileServerFS(FS())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		page := r.URL.Path == "/" || r.URL.Path == "/pair" || strings.HasPrefix(r.URL.Path, "/pair/")
		name := strings.TrimPrefix(r.URL.Path, "/")
		if page {
			name = "index.html"
		}
		// Embedded files have no modification time, so without an ETag every
		// revalidation by the service worker would cost the parent the whole
		// file again on a metered plan.
		if tag, ok := etags()[name]; ok {
			w.Header().Set("ETag", tag)
			w.Header().Set("Cache-Control", "no-cache")
		}
		if strings.HasSuffix(name, ".webmanifest") {
			// Not in Go's built-in MIME table; minimal server images lack /etc/mime.types.
			w.Header().Set("Content-Type", "application/manifest+json")
		}
		if page {
			http.ServeFileFS(w, r, FS(), "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}

// etags maps each file of the app to a strong ETag of its content.
var etags = sync.OnceValue(func() map[string]string {
	tags := map[string]string{}
	fs.WalkDir(FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS(), path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return tags
})
