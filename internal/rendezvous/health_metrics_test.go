package rendezvous_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// scrape GETs path and parses it with the Prometheus text parser.
func scrape(t *testing.T, ctx context.Context, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req := try(http.NewRequestWithContext(ctx, http.MethodGet, url, nil)).must(t)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res := try(http.DefaultClient.Do(req)).must(t)
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", url, res.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("GET %s: the Prometheus text parser: %v", url, err)
	}
	return fams
}

// sample is the value of name's series whose labels include labels, or
// -1 when the scrape has none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		default:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// TestHealthMetrics: after real activity on loopback — a family logging in
// and pairing, a parent refused for a wrong token, a call answered with
// both sides taking a TURN relay, a ring declined, a ring refused as busy,
// a ring the child cancelled — the scrape (parsed by the Prometheus text
// parser) counts exactly that, on /metrics and on /fleet/metrics alike.
func TestHealthMetrics(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	wrong := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	if _, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, wrong); err == nil {
		t.Fatal("a wrong token logged in")
	}

	ring := func(caller, callee *rt.Client) (id string, ringing, rang protocol.Message) {
		t.Helper()
		id = protocol.NewID()
		m := protocol.Message{Type: protocol.TypeRing, CallID: id}
		check(t, caller.Sign(&m))
		check(t, caller.Send(ctx, m))
		return id, try(caller.WaitFor(ctx, protocol.TypeRinging)).must(t), try(callee.WaitFor(ctx, protocol.TypeRing)).must(t)
	}
	// 1: the child calls, the parent answers; each side takes a relay.
	id, ringing, rang := ring(f.terminal, f.parent)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
	var relays []interface{ Close() error }
	for _, m := range []protocol.Message{ringing, rang} {
		ice := m.ICEServers[0]
		relay, err := turnAllocate(t, turnServerAddr(t, ice.URLs[0]), ice.Username, ice.Credential, srv.Config.TURN.Realm)
		check(t, err)
		relays = append(relays, relay)
	}
	live := scrape(t, ctx, srv.URL+"/metrics", "")
	for name, want := range map[string]float64{"tuanju_turn_allocations": 2, "tuanju_turn_allocations_created_total": 2} {
		if v := sample(live, name, nil); v != want {
			t.Errorf("during the call %s = %v, want %v", name, v, want)
		}
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
	try(f.parent.Expect(ctx, protocol.TypeHangup)).must(t)
	for _, r := range relays {
		r.Close()
	}
	// 2: the parent calls, the child declines.
	id, _, _ = ring(f.parent, f.terminal)
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonDecline}))
	try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
	// 3: the child calls; the parent rings meanwhile (busy); the child
	// gives up.
	id, _, _ = ring(f.terminal, f.parent)
	busy := protocol.Message{Type: protocol.TypeRing, CallID: protocol.NewID()}
	check(t, f.parent.Sign(&busy))
	check(t, f.parent.Send(ctx, busy))
	if e := try(f.parent.WaitFor(ctx, protocol.TypeError)).must(t); e.Code != protocol.ErrCodeBusy {
		t.Fatalf("a ring during a call: %+v, want busy", e)
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
	try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)

	want := []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"tuanju_logins_total", map[string]string{"role": "terminal"}, 1},
		{"tuanju_logins_total", map[string]string{"role": "parent"}, 1},
		{"tuanju_logins_total", map[string]string{"role": "pairing"}, 1},
		{"tuanju_logins_refused_total", map[string]string{"reason": "wrong_token"}, 1},
		{"tuanju_logins_refused_total", map[string]string{"reason": "bad_signature"}, 0},
		{"tuanju_call_setups_started_total", map[string]string{"direction": protocol.DirFromTerminal}, 2},
		{"tuanju_call_setups_started_total", map[string]string{"direction": protocol.DirFromParent}, 2},
		{"tuanju_call_setups_answered_total", nil, 1},
		{"tuanju_call_setups_failed_total", map[string]string{"reason": "decline"}, 1},
		{"tuanju_call_setups_failed_total", map[string]string{"reason": "busy"}, 1},
		{"tuanju_call_setups_failed_total", map[string]string{"reason": "cancel"}, 1},
		{"tuanju_call_setups_failed_total", map[string]string{"reason": "no_answer"}, 0},
		{"tuanju_calls_ended_total", map[string]string{"outcome": "answered"}, 1},
		{"tuanju_calls_ended_total", map[string]string{"outcome": "declined"}, 1},
		{"tuanju_calls_ended_total", map[string]string{"outcome": "missed"}, 1},
		{"tuanju_errors_total", map[string]string{"kind": "busy"}, 1},
		{"tuanju_errors_total", map[string]string{"kind": "auth_failed"}, 1},
		{"tuanju_connections", map[string]string{"kind": "terminal"}, 1},
		{"tuanju_connections", map[string]string{"kind": "parent"}, 1},
		{"tuanju_turn_allocations_created_total", nil, 2},
		{"tuanju_turn_allocations", nil, 0},
		{"tuanju_notify_queued", nil, 0},
		{"tuanju_push_sent_total", nil, 0},
	}
	// The relays' deletion reaches the server after the client closes.
	for {
		var b strings.Builder
		for _, path := range []string{"/metrics", "/fleet/metrics"} {
			fams := scrape(t, ctx, srv.URL+path, "")
			for _, w := range want {
				if v := sample(fams, w.name, w.labels); v != w.v {
					fmt.Fprintf(&b, "%s: %s%v = %v, want %v\n", path, w.name, w.labels, v, w.v)
				}
			}
			if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
				fmt.Fprintf(&b, "%s: no Go runtime or process metrics\n", path)
			}
		}
		if b.Len() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the scrapes do not count what the test did:\n%s", b.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
