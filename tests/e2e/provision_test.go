package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/labels/labelstest"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// TestProvisionedUnitPairs is a programme's whole path on loopback: init,
// a batch from a families CSV, its manifest imported into a server that
// requires manifests, a unit's bundle checked and imported as terminald
// does, the unit logging in, and a parent pairing with the link read back
// from the printed label's QR code (rendered with pdftoppm). A unit the
// programme's CA certified but no manifest lists is refused and shows
// needs-repair.
func TestProvisionedUnitPairs(t *testing.T) {
	p := startProvisioned(t)
	r, srv, ctx, links, keys := p.r, p.srv, p.r.ctx, p.links, p.keys
	r.openPairing()
	pctx, pcancel := context.WithTimeout(ctx, step)
	defer pcancel()
	cred, err := rendezvoustest.PairLink(pctx, srv.WSURL, links[0], r.confirmPairing)
	if err != nil {
		t.Fatalf("pairing with the label's link: %v", err)
	}
	eventually(t, step, "the unit stores the pairing", func() bool {
		s := r.term.Status()
		return s.Paired && s.Online && s.ParentID == cred.ParentID
	})

	// A unit the programme's CA certified, but no manifest lists.
	stray := filepath.Join(t.TempDir(), "stray.db")
	key, cert := newUnitFrom(t, keys)
	s2, err := terminalstore.Open(stray)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.ImportIdentity(key, cert); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	r2 := startTerminal(t, ctx, srv, terminalOpts{statePath: stray, refused: true})
	r2.waitPattern(device.Fault, "a unit in no manifest is refused and shows needs-repair")
	if _, err := srv.Store().Device(r2.term.DeviceID()); err == nil {
		t.Fatal("the server registered a unit in no manifest")
	}
}

// provisioned is a programme's batch on a server that requires manifests:
// the first unit imported and running, the label's links read back.
type provisioned struct {
	r     *rig
	srv   *rendezvoustest.Server
	keys  *programme.Keys
	links []string
	token string // a fleet operator's
}

// startProvisioned does what TestProvisionedUnitPairs describes up to the
// unit logging in.
func startProvisioned(t *testing.T) provisioned {
	t.Helper()
	programme.ScryptLogN = 10
	dir := t.TempDir()
	pass := []byte("e2e programme passphrase")
	prog, err := programme.Init(filepath.Join(dir, "prog"), programme.Settings{Name: "E2E", ServerURL: "ws://127.0.0.1:9/ws",
		PublicURL: "https://tuanju.example.org", TimeZone: "Asia/Shanghai", Language: "zh-CN"}, pass)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := prog.Unlock(pass)
	if err != nil {
		t.Fatal(err)
	}
	fonts, err := labels.LoadFonts("", "")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := batch.ReadCSV(strings.NewReader("学校,孩子,地区\n新河小学,小明,河北\n新河小学,小红,河北\n"), batch.Defaults{Language: "zh-CN", TimeZone: "Asia/Shanghai"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b1")
	if _, err := batch.Run(context.Background(), batch.Options{Dir: out, Name: "B1", Rows: rows, Programme: prog, Keys: keys, Fonts: fonts}); err != nil {
		t.Fatal(err)
	}
	recs, err := batch.Units(out)
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := os.ReadFile(filepath.Join(out, batch.LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	links := labelstest.DecodeAll(t, labelstest.Render(t, pdf), len(recs))

	// The server: the programme's CA, its manifests required.
	caFiles, err := prog.ServerCAFiles()
	if err != nil {
		t.Fatal(err)
	}
	signingKey := filepath.Join(prog.Path, "server", programme.ServerSigningKey)
	fleetDir := filepath.Join(dir, "fleet")
	fleetKeys, err := rendezvous.LoadFleetKeys([]string{signingKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rendezvous.ImportManifest(fleetDir, filepath.Join(out, batch.ManifestJSON), fleetKeys); err != nil {
		t.Fatal(err)
	}
	operators := filepath.Join(dir, "operators")
	token, err := rendezvous.AddOperator(operators, "e2e-operator")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		c.DeviceCAFiles = append(c.DeviceCAFiles, caFiles...)
		c.Fleet = rendezvous.FleetConfig{Dir: fleetDir, KeyFiles: []string{signingKey}, Require: true, OperatorsFile: operators}
	})

	// The unit: its bundle checked against the key on the OS image, then
	// stored, as `terminald identity import` does.
	raw, err := os.ReadFile(filepath.Join(out, batch.BundlesDir, recs[0].Unit+batch.BundleExt))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.ParsePublic(mustRead(t, prog.PublicKeyFile()))
	if err != nil {
		t.Fatal(err)
	}
	u, err := bundle.Decode(raw, []ed25519.PublicKey(pub))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "terminal.db")
	store, err := terminalstore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ImportBundle(raw, u); err != nil {
		t.Fatal(err)
	}
	store.Close()
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: state})
	if r.term.DeviceID() != recs[0].DeviceID {
		t.Fatalf("terminal is %s, the batch made %s", r.term.DeviceID(), recs[0].DeviceID)
	}
	// The label's link is the unit's own (its base is the programme's
	// public URL; the terminal's is this test server's).
	if want := strings.TrimPrefix(r.term.PairingURL(), srv.URL); !strings.HasSuffix(links[0], want) {
		t.Fatalf("label reads %q; the terminal's link ends %q", links[0], want)
	}
	return provisioned{r: r, srv: srv, keys: keys, links: links, token: token}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newUnitFrom certifies a fresh device key with the programme's CA.
func newUnitFrom(t *testing.T, keys *programme.Keys) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := devcert.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := keys.CA.Issue(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// TestBrowserPairsProvisionedUnit: Chromium opens the link read back from
// the unit's printed label (at this server's address, as the programme's
// domain would serve it) and pairs with the provisioned unit.
func TestBrowserPairsProvisionedUnit(t *testing.T) {
	p := startProvisioned(t)
	r := p.r
	page, cancel := browsertest.Launch(r.ctx, t)
	t.Cleanup(cancel)
	link, err := url.Parse(p.links[0])
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(p.srv.URL)
	link.Scheme, link.Host = base.Scheme, base.Host
	r.openPairing()
	if _, err := chromedp.Run(page, chromedp.Navigate(link.String())); err != nil {
		t.Fatal(err)
	}
	if err := r.confirmPairing(page); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "home", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the provisioned unit paired and online", func() bool {
		s := r.term.Status()
		return s.Paired && s.Online && s.State == "idle"
	})
	eventually(t, step, "page shows the unit online", func() bool {
		on, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.tuanju.online === true`))
		return err == nil && on
	})
}

// TestBrowserFleetPage: the programme's operator opens /fleet in Chromium,
// gives their token, and sees the batch's site and each unit's status: the
// paired unit paired and online, the other never paired. A wrong token
// shows nothing.
func TestBrowserFleetPage(t *testing.T) {
	p := startProvisioned(t)
	r := p.r
	r.openPairing()
	pctx, pcancel := context.WithTimeout(r.ctx, step)
	defer pcancel()
	if _, err := rendezvoustest.PairLink(pctx, p.srv.WSURL, p.links[0], r.confirmPairing); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the unit paired", func() bool { return r.term.Status().Paired })
	page, cancel := browsertest.Launch(r.ctx, t)
	t.Cleanup(cancel)
	login := func(token string) {
		t.Helper()
		for _, a := range []chromedp.Action[chromedp.Void]{chromedp.Navigate(p.srv.URL + "/fleet"), chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#login button"))} {
			if _, err := chromedp.Run(page, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	login("wrong-token")
	eventually(t, step, "a wrong token is told so", func() bool {
		msg, err := chromedp.Run(page, chromedp.Evaluate[string](`document.getElementById("login-error").textContent`))
		return err == nil && msg != ""
	})
	if hidden, _ := chromedp.Run(page, chromedp.Evaluate[bool](`document.getElementById("report").hidden`)); !hidden {
		t.Fatal("the report shows after a wrong token")
	}
	login(p.token)
	if err := browsertest.WaitStateFor(page, "report", step); err != nil {
		t.Fatal(err)
	}
	statuses, err := chromedp.Run(page, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll("#units tbody tr")].map(tr => [tr.dataset.unit, tr.dataset.status]))`))
	if err != nil {
		t.Fatal(err)
	}
	if statuses["B1-00001"] != rendezvous.StatusPaired || statuses["B1-00002"] != rendezvous.StatusNeverPaired || len(statuses) != 2 {
		t.Fatalf("the page shows units %v", statuses)
	}
	if dir := os.Getenv("TUANJU_SCREENSHOTS"); dir != "" { // to look at by eye; never committed
		if png, err := chromedp.Run(page, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(filepath.Join(dir, "fleet.png"), png, 0o644)
		}
	}
	site, err := chromedp.Run(page, chromedp.Evaluate[string](`document.querySelector("#sites tbody tr").textContent`))
	if err != nil || !strings.Contains(site, "新河小学") || !strings.Contains(site, "河北") {
		t.Fatalf("site row %q (%v)", site, err)
	}
}
