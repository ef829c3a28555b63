package rendezvous_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

// TestSecurityTxt: the configured vulnerability contact is published per
// RFC 9116, with an expiry under a year away; without one, nothing is.
func TestSecurityTxt(t *testing.T) {
	get := func(srv *rt.Server) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/.well-known/security.txt")
		check(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		check(t, err)
		return resp.StatusCode, string(b)
	}
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.SecurityContact = []string{"mailto:security@programme.example", "https://programme.example/report"}
		c.PublicURL = "https://tuanju.programme.example"
	})
	code, body := get(srv)
	if code != http.StatusOK {
		t.Fatalf("security.txt: %d", code)
	}
	for _, want := range []string{"Contact: mailto:security@programme.example\n", "Contact: https://programme.example/report\n",
		"Canonical: https://tuanju.programme.example/.well-known/security.txt\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("security.txt lacks %q:\n%s", want, body)
		}
	}
	_, exp, ok := strings.Cut(body, "Expires: ")
	if !ok {
		t.Fatalf("no Expires:\n%s", body)
	}
	at, err := time.Parse(time.RFC3339, strings.SplitN(exp, "\n", 2)[0])
	if err != nil || at.Before(time.Now()) || at.After(time.Now().AddDate(1, 0, 1)) {
		t.Errorf("Expires %v (%v): want in the coming year", at, err)
	}

	if code, _ := get(rt.NewServer(t, nil)); code != http.StatusNotFound {
		t.Errorf("without a contact: %d, want 404", code)
	}
	for _, bad := range []string{"security@programme.example", "http://programme.example", "mailto:a@b\r\nContact: x", "javascript:alert(1)"} {
		c := rt.TestConfig(t)
		c.SecurityContact = []string{bad}
		if err := c.Validate(); err == nil {
			t.Errorf("security_contact %q accepted", bad)
		}
	}
}
