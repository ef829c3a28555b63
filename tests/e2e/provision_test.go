package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media/synth"
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
	if _, err := srv.Registry().Device(r2.term.DeviceID()); err == nil {
		t.Fatal("the server registered a unit in no manifest")
	}
}

// provisioned is a programme's batch on a server that requires manifests:
// the first unit imported and running, the label's links read back.
type provisioned struct {
	r      *rig
	srv    *rendezvoustest.Server
	keys   *programme.Keys
	links  []string
	token  string        // a fleet operator's
	camera *synth.Socket // the first unit's camera plugs in here
	batch  string        // the batch directory
}

// provisionOpts change startProvisioned's programme.
type provisionOpts struct {
	csv       string                   // the families; default: two children at 新河小学
	configure func(*rendezvous.Config) // the server's configuration, after the fleet's
}

// startProvisioned does what TestProvisionedUnitPairs describes up to the
// unit logging in.
func startProvisioned(t *testing.T) provisioned { return startProvisionedWith(t, provisionOpts{}) }

func startProvisionedWith(t *testing.T, o provisionOpts) provisioned {
	t.Helper()
	if o.csv == "" {
		o.csv = "学校,孩子,地区\n新河小学,小明,河北\n新河小学,小红,河北\n"
	}
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
	rows, err := batch.ReadCSV(strings.NewReader(o.csv), batch.Defaults{Language: "zh-CN", TimeZone: "Asia/Shanghai"}, nil)
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
	if _, err := rendezvous.ImportPhones(fleetDir, filepath.Join(out, batch.ManifestJSON), fleetKeys); err != nil {
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
		if o.configure != nil {
			o.configure(c)
		}
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
	camera := &synth.Socket{}
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: state, cameraSocket: camera})
	if r.term.DeviceID() != recs[0].DeviceID {
		t.Fatalf("terminal is %s, the batch made %s", r.term.DeviceID(), recs[0].DeviceID)
	}
	// The label's link is the unit's own (its base is the programme's
	// public URL; the terminal's is this test server's).
	if want := strings.TrimPrefix(r.term.PairingURL(), srv.URL); !strings.HasSuffix(links[0], want) {
		t.Fatalf("label reads %q; the terminal's link ends %q", links[0], want)
	}
	return provisioned{r: r, srv: srv, keys: keys, links: links, token: token, camera: camera, batch: out}
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
// shows nothing. The paired unit's camera is pulled out: the page, loaded
// again, says it needs repair (the camera), and its site counts one unit
// needing repair, its camera.
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

	// The camera is pulled out: the unit says so, and the page says it.
	p.camera.Unplug()
	r.waitPattern(device.Fault, "needs-repair with the camera out")
	type unitRow struct{ Status, Faults, Text string }
	var row unitRow
	eventually(t, step, "the page shows B1-00001 needing its camera repaired", func() bool {
		if _, err := chromedp.Run(page, chromedp.Navigate(p.srv.URL+"/fleet")); err != nil { // the token stays for the tab
			return false
		}
		if err := browsertest.WaitStateFor(page, "report", step); err != nil {
			return false
		}
		row, err = chromedp.Run(page, chromedp.Evaluate[unitRow](`(() => { const tr = document.querySelector('#units tbody tr[data-unit="B1-00001"]');
			return {status: tr.dataset.status, faults: tr.dataset.faults, text: tr.textContent}; })()`))
		return err == nil && row.Status == rendezvous.StatusNeedsRepair
	})
	if row.Faults != "camera" || !strings.Contains(row.Text, "需要维修") || !strings.Contains(row.Text, "摄像头 camera") {
		t.Fatalf("B1-00001's row: %+v, want needs repair (camera)", row)
	}
	cells, err := chromedp.Run(page, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#sites tbody tr td")].map(td => td.textContent)`))
	// region, site, units, never paired, paired, offline, needs repair, revoked, parts, …
	if err != nil || len(cells) < 9 || cells[6] != "1" || cells[4] != "0" || cells[3] != "1" || !strings.Contains(cells[8], "摄像头 camera ×1") {
		t.Fatalf("site row after the camera went: %q (%v)", cells, err)
	}
}

// TestProvisionedPhoneFallback: a batch whose CSV gives a parent's number
// (家长电话), its manifest and numbers imported as `rendezvous fleet
// import` does; the parent pairs with the label's link and gives no number
// on the page; the child presses and nobody answers: the notifier's
// gateway (a local webhook, signature checked) is sent that number. The
// number is in none of what operators see or pass around: manifest.json,
// the label sheet's text, the fleet report, the metrics.
func TestProvisionedPhoneFallback(t *testing.T) {
	const digits, e164 = "13800138000", "+8613800138000"
	const secret = "e2e notifier secret, 32 characters or more"
	got := make(chan rendezvous.NotifyEvent, 16)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := rendezvous.VerifyNotifySignature(secret, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var e rendezvous.NotifyEvent
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- e
	}))
	t.Cleanup(gw.Close)
	p := startProvisionedWith(t, provisionOpts{
		csv: "学校,孩子,地区,家长电话\n新河小学,小明,河北," + digits + "\n新河小学,小红,河北,\n",
		configure: func(c *rendezvous.Config) {
			c.Notifier.URL, c.Notifier.Secret, c.Notifier.SMSAfter = gw.URL, secret, time.Second
		},
	})
	r := p.r
	r.openPairing()
	pctx, pcancel := context.WithTimeout(r.ctx, step)
	defer pcancel()
	cred, err := rendezvoustest.PairLink(pctx, p.srv.WSURL, p.links[0], r.confirmPairing)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the unit paired", func() bool { return r.term.Status().Paired })
	if ph, err := p.srv.RequireStore(t).Phone(cred.ParentID); err == nil {
		t.Fatalf("the parent has a number of their own (%s): the test tests nothing", ph.Number)
	}

	// The parent's page is closed; the child presses.
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Calling, "the child's ring rings on for a parent with a number")
	select {
	case e := <-got:
		if e.Event != rendezvous.EventRingUnanswered || e.Channel != rendezvous.ChannelSMS || e.Phone != e164 {
			t.Fatalf("the gateway got %+v, want ring_unanswered by SMS to %s", e, e164)
		}
	case <-time.After(step):
		t.Fatal("the gateway got no event for the unanswered ring")
	}

	// Nowhere an operator looks.
	for _, f := range []string{batch.ManifestJSON, batch.LabelsFile} {
		if b := mustRead(t, filepath.Join(p.batch, f)); strings.Contains(string(b), digits) {
			t.Errorf("%s carries the parent's number", f)
		}
	}
	if text, err := exec.Command("pdftotext", filepath.Join(p.batch, batch.LabelsFile), "-").Output(); err != nil {
		t.Fatalf("pdftotext: %v", err)
	} else if !strings.Contains(string(text), "B1-00001") || strings.Contains(string(text), digits) {
		t.Fatalf("the label sheet's text (%d bytes) lacks the unit or carries the number", len(text))
	}
	for _, path := range []string{"/fleet/api/report", "/fleet/metrics"} {
		req, _ := http.NewRequestWithContext(r.ctx, "GET", p.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+p.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "B1-00001") && path != "/fleet/metrics" || strings.Contains(string(body), digits) {
			t.Fatalf("%s: %s, %d bytes; want it without the number", path, res.Status, len(body))
		}
	}
}
