// Package fleetpage is the programme operators' fleet page (GET /fleet):
// a static page that asks for the operator's token and shows the fleet
// report (internal/rendezvous, fleet_report.go) it fetches with it.
package fleetpage

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the page at /fleet and its script at /fleet/fleet.js.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'self'; script-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/fleet"), "/")
		switch name {
		case "", "index.html":
			name = "/"
		case "fleet.js", "fleet.css":
			name = "/" + name
		default:
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = name
		files.ServeHTTP(w, r2)
	})
}
