package rendezvous

import (
	"context"
	"errors"
	"log/slog"
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
)

// maxBadMessages rejected messages on one socket close it (1008).
const maxBadMessages = 10

// session is one WebSocket. The socket's reader is the HTTP handler's
// goroutine; its only writer is writeLoop, fed through the bounded out queue.
// Nothing ever blocks on a client: a full queue drops the client.
type session struct {
	conn *websocket.Conn
	log  *slog.Logger
	ip   string

	out     chan outFrame
	closing atomic.Bool // a close frame is queued; send nothing more
	// abused: the server closed the socket for breaking the limits (1008);
	// its call ends at once rather than waiting for it to resume.
	abused atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // writeLoop has exited
	// counted is told each error the socket is answered with (its code)
	// and a drop for a full queue (tuanju_errors_total); nil: not counted.
	counted func(kind string)

	// Set once at login, before the session is in the hub; read-only after.
	role     string
	deviceID string // terminal: its own ID; parent: its terminal's ID
	parentID string // parent: its own ID

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
}

type outFrame struct {
	data   []byte
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
		out:    make(chan outFrame, depth),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// send queues a message. It never blocks: a client too slow to drain its
// queue is dropped rather than allowed to stall the hub.
func (s *session) send(m protocol.Message) {
	if s.closing.Load() {
		return
	}
	data, err := protocol.Encode(m)
	if err != nil {
		// A bug on our side; never put it on the wire.
		s.log.Error("encode outgoing message", "type", m.Type, "err", err)
		return
	}
	select {
	case s.out <- outFrame{data: data}:
	default:
		s.log.Warn("send queue full, dropping client")
		s.count(errSendQueueFull)
		s.drop()
	}
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
	select {
	case s.out <- outFrame{close: true, code: code, reason: reason}:
	default:
		s.drop()
	}
}

// drop closes the socket without a handshake.
func (s *session) drop() {
	s.closing.Store(true)
	s.cancel()
}

// writeLoop and pingLoop take their logger as an argument: login replaces
// s.log on the reader goroutine while they run.
func (s *session) writeLoop(writeTimeout time.Duration, log *slog.Logger) {
	defer close(s.done)
	defer s.cancel()
	for {
		select {
		case <-s.ctx.Done():
			s.conn.CloseNow()
			return
		case f := <-s.out:
			if f.close {
				s.conn.Close(f.code, f.reason)
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					log.Debug("write failed, dropping client", "err", err)
				}
				s.conn.CloseNow()
				return
			}
		}
	}
}

// pingLoop pings the client; one that does not answer in time is dropped.
// Pings are control frames and coder/websocket serialises them with data
// frames, so this does not compete with writeLoop's ordering.
func (s *session) pingLoop(interval, timeout time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, timeout)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				if s.ctx.Err() == nil {
					log.Info("ping unanswered, dropping client", "err", err)
				}
				s.drop()
				return
			}
		}
	}
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
