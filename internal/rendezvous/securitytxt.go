package rendezvous

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// security.txt (RFC 9116) is where a researcher who finds a flaw in a
// deployment looks for whom to tell: the vulnerability-disclosure contact
// that ETSI EN 303 645 (provision 5.2) and the UK PSTI regulations require a
// connected product to publish. Each programme runs its own server, so the
// contact is configuration (security_contact), not a constant.

// checkSecurityContact accepts mailto: and https: URIs, as RFC 9116 asks.
func checkSecurityContact(contacts []string) error {
	for _, c := range contacts {
		u, err := url.Parse(c)
		if err != nil || (u.Scheme != "mailto" && u.Scheme != "https") || (u.Opaque == "" && u.Host == "") ||
			strings.ContainsAny(c, "\r\n") {
			return fmt.Errorf("security_contact %q is not a mailto: or https: URI", c)
		}
	}
	return nil
}

// serveSecurityTxt answers /.well-known/security.txt; with no contact
// configured there is nothing to publish (404).
func (s *Server) serveSecurityTxt(w http.ResponseWriter, _ *http.Request) {
	if len(s.cfg.SecurityContact) == 0 {
		http.NotFound(w, nil)
		return
	}
	var b strings.Builder
	for _, c := range s.cfg.SecurityContact {
		fmt.Fprintf(&b, "Contact: %s\n", c)
	}
	// RFC 9116 wants an expiry under a year ahead; the server renews it by
	// being up to date, so it is always a year from now.
	fmt.Fprintf(&b, "Expires: %s\n", s.now().UTC().AddDate(1, 0, 0).Truncate(time.Second).Format(time.RFC3339))
	b.WriteString("Preferred-Languages: zh, en\n")
	if s.cfg.PublicURL != "" {
		fmt.Fprintf(&b, "Canonical: %s/.well-known/security.txt\n", strings.TrimRight(s.cfg.PublicURL, "/"))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(b.String()))
}
