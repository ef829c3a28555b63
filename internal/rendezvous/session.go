package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// WebSocket close codes the server uses beyond RFC 6455's.
const (
	CloseAuthFailed websocket.StatusCode = 4001 // hello rejected or missing
	CloseReplaced   websocket.StatusCode = 4002 // the same terminal logged in again
	CloseUnpaired   websocket.StatusCode = 4003 // the terminal was factory-reset: the parent's credential is dead
	// CloseMoved: the family's terminal is now on another node, or the
	// node this socket was relayed to is gone (cluster.go); the client
	// reconnects at once and is routed afresh.
	CloseMoved websocket.StatusCode = 4004
)

// maxBadMessages rejected messages on one socket close it (1008).
const maxBadMessages = 10

// session is one WebSocket. The socket's reader is the HTTP handler's
// goroutine, the only goroutine an idle socket has: a writer runs only while
// there is something queued to write (flush), and pings run on a timer
// (ping). Every idle terminal of a national programme sits here, so what a
// socket holds at rest is what a node's memory is made of (issue 16: ≤ 20 KB
// each, BenchmarkIdleTerminals). Nothing ever blocks on a client: a full
// queue drops the client.
type session struct {
	conn *websocket.Conn // nil for a socket on another node (outlet)
	// out batches the frames the writer has in hand into one write
	// (socketbuf.go); nil: each frame is written alone. Set before start.
	out *socketOut
	log *slog.Logger
	ip  string

	closing atomic.Bool // a close frame is queued; send nothing more
	// abused: the server closed the socket for breaking the limits (1008);
	// its call ends at once rather than waiting for it to resume.
	abused atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // the close frame is written, or writing failed
	ended  sync.Once     // closes done
	// barrier holds each message back until the call-log records put
	// before it was queued are on disk (callLog); nil: nothing waits.
	barrier sendBarrier
	// counted is told each error the socket is answered with (its code)
	// and a drop for a full queue (tuanju_errors_total); nil: not counted.
	counted func(kind string)

	// qmu guards the send queue. It is a leaf lock: the hub sends while it
	// holds its own.
	qmu     sync.Mutex
	queue   []outFrame // waiting to be written, oldest first; at most depth
	depth   int
	writing bool // a flush goroutine is running
	// writer is set by start; until then frames wait in queue (tests look
	// at them there: takeQueued).
	writer *writer

	// Set once at login, before the session is in the hub; read-only after.
	role     string
	deviceID string // terminal: its own ID; parent: its terminal's ID
	parentID string // parent: its own ID

	// outlet writes for a socket on another node, relayed here
	// (cluster.go): set at its making, read-only after; nil otherwise.
	outlet func(outFrame) bool
	// relay: this node's socket is routed by another node's hub
	// (cluster.go); its messages go there, not to this hub. Set on the
	// socket's reader goroutine, and read there and, once registered,
	// under Server.clusterMu.
	relay *relayRoute
	// homeRev: a terminal's record in the cluster (Cluster.SetHome), 0
	// when none; its leave clears that one and no later one.
	homeRev atomic.Uint64

	// Set by the socket's goroutine (openSocket) before it reads.
	loggedIn bool
	lifetime *time.Timer // a pairing page's time limit; nil otherwise

	// Guarded by hub.mu.
	pairedParent string // terminal: its parent's ID, "" while unpaired
	left         bool   // removed from the hub; ignore further events
	// health and faults: a terminal's last status ("" before its first;
	// hub_status.go).
	health string
	faults []string
	// budget: the terminal's last reported data budget (nil: none), passed
	// to its parent as it came; the server keeps nothing of it past the
	// socket.
	budget *protocol.Budget
	// awaiting: a parent's resume of a call its node's cluster holds open
	// elsewhere, held until its terminal takes the call into this hub
	// (handover.go); "" none.
	awaiting string
}

// writer is how a started session writes and pings.
type writer struct {
	writeTimeout time.Duration
	pingInterval time.Duration
	pongTimeout  time.Duration
	log          *slog.Logger // the logger at start: login replaces s.log on the reader goroutine
	pinger       *time.Timer
}

// sendBarrier is what a message waits for before it is written: see
// callLog.mark and settledAt.
type sendBarrier interface {
	mark() uint64
	settledAt(seq uint64) <-chan struct{}
}

type outFrame struct {
	after uint64 // the barrier's mark when it was queued
	data  []byte
	// msg, if set, is encoded into data by the writer: what the hub sends
	// is queued under its lock, and a call log is 50 records of JSON.
	msg *protocol.Message
	// later, if set, is a message whose place in the queue is kept while
	// it is read (sendLater); the writer waits for it there.
	later  *laterMsg
	close  bool
	code   websocket.StatusCode
	reason string
}

func newSession(conn *websocket.Conn, ip string, depth int, log *slog.Logger) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		conn:   conn,
		log:    log,
		ip:     ip,
		depth:  depth,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// start begins writing what is queued, and pinging the client every
// pingInterval: one that does not answer within pongTimeout is dropped.
func (s *session) start(writeTimeout, pingInterval, pongTimeout time.Duration, log *slog.Logger) {
	w := &writer{writeTimeout: writeTimeout, pingInterval: pingInterval, pongTimeout: pongTimeout, log: log}
	s.qmu.Lock()
	s.writer = w
	// Made stopped, then started: the callback reads w.pinger.
	w.pinger = time.AfterFunc(time.Hour, s.ping)
	w.pinger.Reset(pingInterval)
	s.kickLocked()
	s.qmu.Unlock()
}

// startRelayed begins writing what is queued for a socket on another node:
// that node pings it, and says when it closes.
func (s *session) startRelayed(writeTimeout time.Duration, log *slog.Logger) {
	s.qmu.Lock()
	s.writer = &writer{writeTimeout: writeTimeout, log: log}
	s.kickLocked()
	s.qmu.Unlock()
}

// stop ends the pings; a flush in progress ends with the context.
func (s *session) stop() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.writer != nil && s.writer.pinger != nil {
		s.writer.pinger.Stop()
	}
}

// send queues a message. It never blocks: a client too slow to drain its
// queue is dropped rather than allowed to stall the hub.
func (s *session) send(m protocol.Message) {
	if s.closing.Load() {
		return
	}
	s.enqueueMsg(outFrame{msg: &m})
}

// sendLater queues a message that is not made yet: it goes out in the
// place it was queued in, once l is made (laterMsg.set), behind what was
// queued before it and ahead of what is queued after.
func (s *session) sendLater(l *laterMsg) {
	if s.closing.Load() {
		return
	}
	s.enqueueMsg(outFrame{later: l})
}

func (s *session) enqueueMsg(f outFrame) {
	if !s.enqueue(f) {
		s.log.Warn("send queue full, dropping client")
		s.count(errSendQueueFull)
		s.drop()
	}
}

// enqueue adds a frame unless the queue is full, and starts a writer if
// none is running.
func (s *session) enqueue(f outFrame) bool {
	if s.barrier != nil {
		f.after = s.barrier.mark()
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) >= s.depth {
		return false
	}
	s.queue = append(s.queue, f)
	s.kickLocked()
	return true
}

// kickLocked starts a flush goroutine if there is something to write and
// none runs. s.qmu is held.
func (s *session) kickLocked() {
	if s.writer == nil || s.writing || len(s.queue) == 0 {
		return
	}
	s.writing = true
	go s.flush()
}

// flush writes the queue, then ends: an idle socket keeps no writer. The
// frames it finds ready go out in one write (socketOut): it holds them
// until the queue is empty or the next must wait.
func (s *session) flush() {
	for {
		s.qmu.Lock()
		w := s.writer
		if len(s.queue) == 0 {
			s.qmu.Unlock()
			if !s.release(w) {
				s.qmu.Lock()
				s.queue, s.writing = nil, false
				s.qmu.Unlock()
				return
			}
			s.qmu.Lock()
			if len(s.queue) == 0 { // nothing came while that was written
				s.queue = nil // an idle socket keeps no buffer either
				s.writing = false
				s.qmu.Unlock()
				return
			}
		}
		f := s.queue[0]
		s.queue[0] = outFrame{}
		s.queue = s.queue[1:]
		s.qmu.Unlock()
		s.out.hold()
		if !s.write(w, f) {
			s.qmu.Lock()
			s.queue, s.writing = nil, false
			s.qmu.Unlock()
			return
		}
	}
}

// release puts the frames held so far on the wire. false: the socket is
// broken, and finished.
func (s *session) release(w *writer) bool {
	err := s.out.release(w.writeTimeout)
	if err == nil {
		return true
	}
	if s.ctx.Err() == nil {
		w.log.Debug("write failed, dropping client", "err", err)
	}
	s.conn.CloseNow()
	s.cancel()
	s.finish()
	return false
}

// write puts one frame on the wire, or in the writer's hands (flush).
// Whatever is held goes out before it waits. false: the socket is finished
// (closed by this frame, or broken).
func (s *session) write(w *writer, f outFrame) bool {
	for s.barrier != nil {
		wait := s.barrier.settledAt(f.after)
		if wait == nil {
			break
		}
		if !s.release(w) {
			return false
		}
		t := time.NewTimer(barrierPatience) // a hung commit stops holding frames back (settledAt)
		select {
		case <-wait:
		case <-s.ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if s.ctx.Err() != nil {
			break
		}
	}
	if s.ctx.Err() != nil {
		s.finish()
		return false
	}
	if f.later != nil {
		select {
		case <-f.later.ready:
		default:
			if !s.release(w) {
				return false
			}
			select {
			case <-f.later.ready:
			case <-s.ctx.Done():
				s.finish()
				return false
			}
		}
		if f.later.msg == nil {
			return true // it could not be made: nothing to send
		}
	}
	if err := f.encode(); err != nil {
		// A bug on our side; never put it on the wire.
		s.log.Error("encode outgoing message", "err", err)
		return true
	}
	if s.outlet != nil {
		if !s.outlet(f) || f.close {
			s.cancel()
			s.finish()
			return false
		}
		return true
	}
	if f.close {
		if !s.release(w) {
			return false
		}
		s.conn.Close(f.code, f.reason)
		s.finish()
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, w.writeTimeout)
	err := s.conn.Write(ctx, websocket.MessageText, f.data)
	cancel()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			w.log.Debug("write failed, dropping client", "err", err)
		}
		s.conn.CloseNow()
		s.cancel()
		s.finish()
		return false
	}
	return true
}

// finish says the writer is done with the socket.
func (s *session) finish() { s.ended.Do(func() { close(s.done) }) }

// ping pings the client from the timer's goroutine; one that does not
// answer in time is dropped. Pings are control frames and coder/websocket
// serialises them with data frames, so this does not compete with flush's
// ordering.
func (s *session) ping() {
	w := s.writer // set before the timer that calls this
	if s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, w.pongTimeout)
	err := s.conn.Ping(ctx)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			w.log.Info("ping unanswered, dropping client", "err", err)
		}
		s.drop()
		return
	}
	w.pinger.Reset(w.pingInterval)
}

// takeQueued removes and returns what is queued, encoded as the writer
// would encode it (tests of a session that was never started). A message
// that does not encode is left with no data.
func (s *session) takeQueued() []outFrame {
	s.qmu.Lock()
	q := s.queue
	s.queue = nil
	s.qmu.Unlock()
	for i := range q {
		if q[i].later != nil {
			<-q[i].later.ready
		}
		q[i].encode() // one that fails keeps no data
	}
	return q
}

// encode puts the frame's message, queued as made or made later, into
// data. It is called once the message is made.
func (f *outFrame) encode() error {
	m := f.msg
	if f.later != nil {
		m = f.later.msg
	}
	if m == nil {
		return nil
	}
	data, err := protocol.Encode(*m)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Type, err)
	}
	f.data = data
	return nil
}

// laterMsg is a message queued before it is made (session.sendLater).
type laterMsg struct {
	ready chan struct{}
	msg   *protocol.Message // nil: nothing to send
}

func newLaterMsg() *laterMsg { return &laterMsg{ready: make(chan struct{})} }

// set makes the message (nil: none) and lets the writers send it.
func (l *laterMsg) set(m *protocol.Message) {
	l.msg = m
	close(l.ready)
}

// sendError queues an error message.
func (s *session) sendError(code, text string, ref protocol.Message) {
	s.count(code)
	m := protocol.Message{Type: protocol.TypeError, Code: code, Text: text}
	if ref.Type != "" && wordOK(ref.Type) {
		m.RefType = ref.Type
	}
	if ref.CallID != "" {
		m.CallID = ref.CallID
	}
	if ref.PairID != "" {
		m.PairID = ref.PairID
	}
	s.send(m)
}

func (s *session) count(kind string) {
	if s.counted != nil {
		s.counted(kind)
	}
}

// closeWith queues a close frame behind the messages already queued, so an
// error reaches the client before the close.
func (s *session) closeWith(code websocket.StatusCode, reason string) {
	if code == websocket.StatusPolicyViolation {
		s.abused.Store(true)
	}
	if s.closing.Swap(true) {
		return
	}
	if !s.enqueue(outFrame{close: true, code: code, reason: reason}) {
		s.drop()
	}
}

// drop closes the socket without a handshake: the reader's Read and any
// write in progress end with the context, and coder/websocket closes the
// connection when they do.
func (s *session) drop() {
	if !s.closing.Swap(true) && s.outlet != nil {
		// A relayed socket's own node closes it, told so here.
		go s.outlet(outFrame{close: true, code: websocket.StatusGoingAway, reason: "dropped"})
	}
	s.cancel()
}

// read returns the next text message's bytes. A binary message is reported
// as ok=false so the caller can count it as bad.
func (s *session) read() (data []byte, text bool, err error) {
	typ, data, err := s.conn.Read(s.ctx)
	if err != nil {
		return nil, false, err
	}
	return data, typ == websocket.MessageText, nil
}

func wordOK(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '_' {
			return false
		}
	}
	return true
}
