package mediatest

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// Impairment is what a Link does to one direction's packets, in this
// order: a black hole (Down), random loss, a bottleneck of Rate with a
// drop-tail buffer of Queue, then Delay with Jitter.
type Impairment struct {
	// Down drops everything (a cable pulled, a cell lost).
	Down bool
	// Loss is the chance (0..1) each packet is dropped, independently.
	Loss float64
	// Rate caps the direction at this many bits a second on the wire:
	// UDP payload plus 28 bytes of IPv4 and UDP header. 0: no cap.
	Rate int
	// Queue is the bottleneck's buffer, as the time it takes to drain at
	// Rate: a packet that would wait longer is dropped. 0 means 200 ms,
	// about what a home router or a 4G modem holds.
	Queue time.Duration
	// Delay is added to every packet; Jitter varies each packet's delay
	// uniformly within ±Jitter (never below zero), so packets reorder as
	// they do on a busy radio link.
	Delay, Jitter time.Duration
}

// udpIPv4Overhead is the IPv4 and UDP header each datagram carries on the
// wire.
const udpIPv4Overhead = 28

// Direction is one way through a Link.
type Direction int

const (
	// AtoB carries what the offerer sends (the terminal's media).
	AtoB Direction = iota
	// BtoA carries what the answerer sends (the phone's).
	BtoA
)

// LinkStats counts one direction's packets; bytes are on the wire (UDP
// payload plus IPv4 and UDP headers).
type LinkStats struct {
	// Offered is what the sender sent into the link; Delivered what came
	// out the other end.
	OfferedPackets, OfferedBytes     int64
	DeliveredPackets, DeliveredBytes int64
	// Lost (random loss or Down) and Queued (the bottleneck's buffer was
	// full) are the drops.
	Lost, Queued int64
}

// Link is a UDP relay on 127.0.0.1 between two pion peers that impairs
// each direction as told: real sockets, real kernel UDP, the peers' ICE
// and DTLS running through it. Negotiate points each peer's ICE at the
// relay instead of at the other peer; the relay learns each peer's
// address from the packets it sends, so it follows an ICE restart.
type Link struct {
	legs [2]*leg
	wg   sync.WaitGroup
}

// leg carries one direction: it reads from in (what the sender sends to
// the relay) and writes, from out, to the receiver's last known address.
type leg struct {
	in, out *net.UDPConn
	// peer is the receiving side's address, learned from what it sends
	// into the other leg.
	peer func() *net.UDPAddr

	mu    sync.Mutex
	imp   Impairment
	rng   *rand.Rand
	busy  time.Time // when the bottleneck finishes what it holds
	queue pending
	wake  chan struct{}
	stats LinkStats
	from  *net.UDPAddr // the sender's address, learned
	done  chan struct{}
}

// NewLink opens the relay's two sockets; it closes with the test. Seed
// makes the loss and jitter the same on every run.
func NewLink(t testing.TB, seed uint64) *Link {
	t.Helper()
	l := &Link{}
	var conns [2]*net.UDPConn
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("mediatest: link: %v", err)
		}
		conns[i] = c
	}
	// Leg AtoB reads what A sends to conns[0] and writes it from conns[1]
	// to B; leg BtoA the reverse. A sees the relay at conns[0], B at
	// conns[1].
	for d := range l.legs {
		l.legs[d] = &leg{in: conns[d], out: conns[1-d], rng: rand.New(rand.NewPCG(seed, uint64(d))),
			wake: make(chan struct{}, 1), done: make(chan struct{})}
	}
	l.legs[AtoB].peer = l.legs[BtoA].sender
	l.legs[BtoA].peer = l.legs[AtoB].sender
	for _, lg := range l.legs {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); lg.read() }()
		go func() { defer l.wg.Done(); lg.deliver() }()
	}
	t.Cleanup(l.Close)
	return l
}

// Set changes what direction d does from the next packet on.
func (l *Link) Set(d Direction, imp Impairment) {
	lg := l.legs[d]
	lg.mu.Lock()
	lg.imp = imp
	lg.mu.Unlock()
}

// SetBoth sets both directions alike.
func (l *Link) SetBoth(imp Impairment) {
	l.Set(AtoB, imp)
	l.Set(BtoA, imp)
}

// Addr is the relay socket the sender in direction d sends into: where
// the other side's candidates must point for that sender (AtoB: the
// answerer's candidates, as the offerer sees them; BtoA: the offerer's,
// as the answerer sees them). A peer the test cannot rewrite in Go (a
// browser) is pointed at it by address.
func (l *Link) Addr(d Direction) *net.UDPAddr {
	return l.legs[d].in.LocalAddr().(*net.UDPAddr)
}

// Stats returns direction d's counters.
func (l *Link) Stats(d Direction) LinkStats {
	lg := l.legs[d]
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return lg.stats
}

// Close stops the relay.
func (l *Link) Close() {
	for _, lg := range l.legs {
		select {
		case <-lg.done:
		default:
			close(lg.done)
			lg.in.Close()
		}
	}
	l.wg.Wait()
}

// Negotiate does a non-trickle offer/answer, as mediatest.Negotiate, with
// each side's candidates replaced by the relay's socket facing the other
// side: A reaches B only through leg AtoB and B reaches A only through
// BtoA. onOffer, if set, runs once the answerer has the offer, before it
// answers: where a phone adds its tracks to the offer's transceivers.
func (l *Link) Negotiate(t testing.TB, offerer, answerer *webrtc.PeerConnection, onOffer func()) {
	t.Helper()
	// B must send to the socket leg BtoA reads, A to AtoB's.
	exchange(t, offerer, answerer,
		func(sdp string) string { return l.Rewrite(sdp, BtoA) },
		func(sdp string) string { return l.Rewrite(sdp, AtoB) },
		onOffer)
}

// RewriteCandidate points one candidate ("candidate:…", with or without
// "a=") at the relay socket that carries direction d, for the peer that
// sends in direction d; false for a candidate that is not UDP.
//
// The candidate's own address is where leg d delivers until its owner
// has sent anything itself: a peer whose candidates the other side has
// not taken yet (trickled before the answer) is still reachable.
func (l *Link) RewriteCandidate(line string, d Direction) (string, bool) {
	addr := l.Addr(d)
	f := strings.Fields(line)
	if len(f) < 8 || !strings.EqualFold(f[2], "udp") {
		return "", false
	}
	if port, err := strconv.Atoi(f[5]); err == nil {
		if ip := net.ParseIP(f[4]); ip != nil && ip.IsLoopback() {
			owner := l.legs[1-d] // the leg the candidate's owner sends into
			owner.mu.Lock()
			if owner.from == nil {
				owner.from = &net.UDPAddr{IP: ip, Port: port}
			}
			owner.mu.Unlock()
		}
	}
	f[4], f[5], f[7] = addr.IP.String(), strconv.Itoa(addr.Port), "host"
	return strings.Join(f[:8], " "), true
}

// Rewrite points every candidate of sdp at the relay socket that carries
// direction d, for the peer that sends in direction d: the offerer's SDP
// goes to the answerer rewritten for BtoA, and the answerer's to the
// offerer for AtoB. Only UDP candidates are kept.
func (l *Link) Rewrite(sdp string, d Direction) string {
	var out []string
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "a=candidate:") {
			var ok bool
			if line, ok = l.RewriteCandidate(line, d); !ok {
				continue
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

// sender is the address this leg's sender was last seen at.
func (lg *leg) sender() *net.UDPAddr {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return lg.from
}

func (lg *leg) read() {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := lg.in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		now := time.Now()
		wire := int64(n + udpIPv4Overhead)
		lg.mu.Lock()
		lg.from = from
		lg.stats.OfferedPackets++
		lg.stats.OfferedBytes += wire
		imp := lg.imp
		if imp.Down || imp.Loss > 0 && lg.rng.Float64() < imp.Loss {
			lg.stats.Lost++
			lg.mu.Unlock()
			continue
		}
		at := now
		if imp.Rate > 0 {
			queue := imp.Queue
			if queue <= 0 {
				queue = 200 * time.Millisecond
			}
			start := now
			if lg.busy.After(now) {
				start = lg.busy
			}
			if start.Sub(now) > queue {
				lg.stats.Queued++
				lg.mu.Unlock()
				continue
			}
			lg.busy = start.Add(time.Duration(wire * 8 * int64(time.Second) / int64(imp.Rate)))
			at = lg.busy
		}
		d := imp.Delay
		if imp.Jitter > 0 {
			d += time.Duration((lg.rng.Float64()*2 - 1) * float64(imp.Jitter))
		}
		heap.Push(&lg.queue, packet{at: at.Add(max(d, 0)), data: append([]byte(nil), buf[:n]...)})
		lg.mu.Unlock()
		select {
		case lg.wake <- struct{}{}:
		default:
		}
	}
}

// deliver sends each packet when its time comes.
func (lg *leg) deliver() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		lg.mu.Lock()
		var wait time.Duration = time.Hour
		var due []packet
		now := time.Now()
		for lg.queue.Len() > 0 {
			if w := lg.queue[0].at.Sub(now); w > 0 {
				wait = w
				break
			}
			due = append(due, heap.Pop(&lg.queue).(packet))
		}
		lg.mu.Unlock()
		if len(due) > 0 {
			to := lg.peer()
			for _, p := range due {
				if to == nil {
					continue // the receiver has not shown itself yet; ICE will retry
				}
				if _, err := lg.out.WriteToUDP(p.data, to); err != nil {
					continue
				}
				lg.mu.Lock()
				lg.stats.DeliveredPackets++
				lg.stats.DeliveredBytes += int64(len(p.data) + udpIPv4Overhead)
				lg.mu.Unlock()
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-lg.done:
			return
		case <-lg.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// packet waits in a leg until at.
type packet struct {
	at   time.Time
	data []byte
}

// pending is a min-heap of packets by delivery time.
type pending []packet

func (q pending) Len() int           { return len(q) }
func (q pending) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q pending) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pending) Push(x any)        { *q = append(*q, x.(packet)) }
func (q *pending) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

// String describes an impairment for test names and tables.
func (imp Impairment) String() string {
	var parts []string
	if imp.Down {
		parts = append(parts, "down")
	}
	if imp.Loss > 0 {
		parts = append(parts, fmt.Sprintf("loss %.0f%%", imp.Loss*100))
	}
	if imp.Rate > 0 {
		parts = append(parts, fmt.Sprintf("cap %d kbit/s", imp.Rate/1000))
	}
	if imp.Delay > 0 || imp.Jitter > 0 {
		parts = append(parts, fmt.Sprintf("delay %v ± %v", imp.Delay, imp.Jitter))
	}
	if len(parts) == 0 {
		return "clean"
	}
	return strings.Join(parts, ", ")
}
