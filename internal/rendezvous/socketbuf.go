package rendezvous

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Socket buffer sizes. net/http hands a hijacked connection over with a
// 4 KiB reader and a 4 KiB writer, which coder/websocket keeps for the
// socket's life: 8 KiB of an idle terminal's cost, most of it (issue 16,
// BenchmarkIdleTerminals). Signalling messages are small: a ring, an accept
// or a presence fits the writer in one write, and a longer one (an SDP
// offer, a call log) goes out as its frame header and then its payload,
// straight from the message. Reads larger than the reader's buffer go
// straight into the message too.
const (
	socketReadBuffer  = 512
	socketWriteBuffer = 1024
)

// smallBuffers is the ResponseWriter websocket.Accept is given: its Hijack
// hands the connection over with smaller buffers, writing through out.
type smallBuffers struct {
	http.ResponseWriter
	out *socketOut // set by Hijack
}

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		// What the client sent after its request, before our answer.
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	w.out = &socketOut{conn: conn}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, socketReadBuffer), bufio.NewWriterSize(w.out, socketWriteBuffer)), nil
}

// socketOut is what a socket's writer writes to. coder/websocket flushes
// each frame as it is written: a write to the kernel per message, and two
// for one larger than the buffer (a call log). While the session's writer
// holds it (hold), what is written is kept, and release puts it on the
// wire in one write: the frames queued together (a hangup and the call
// log behind it) go out together (issue 16: the sockets' writes were 17%
// of a node's CPU in a call setup, BenchmarkCallSetups). A ping written
// meanwhile waits in line with them, in order.
type socketOut struct {
	conn net.Conn
	mu   sync.Mutex // serialises writes to conn, and guards held and buf
	held bool
	buf  *[]byte // from outBufs while something is held
}

// outBufs are held frames' buffers: only a socket with frames in hand has
// one, not an idle one.
var outBufs = sync.Pool{New: func() any { return new([]byte) }}

func (o *socketOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.held {
		return o.conn.Write(p)
	}
	if o.buf == nil {
		o.buf = outBufs.Get().(*[]byte)
	}
	*o.buf = append(*o.buf, p...)
	return len(p), nil
}

// hold keeps what is written until release. A nil socketOut (a relayed
// socket, a test's) holds nothing.
func (o *socketOut) hold() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.held = true
	o.mu.Unlock()
}

// release writes what was held in one write, given timeout to go out, and
// lets later writes go straight through.
func (o *socketOut) release(timeout time.Duration) error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.held = false
	b := o.buf
	if b == nil {
		return nil
	}
	o.buf = nil
	defer func() {
		if cap(*b) <= 64<<10 { // one giant log does not stay pinned in the pool
			*b = (*b)[:0]
			outBufs.Put(b)
		}
	}()
	// coder/websocket bounds its own writes with its context, never with
	// a deadline: this one is ours alone.
	o.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := o.conn.Write(*b)
	o.conn.SetWriteDeadline(time.Time{})
	return err
}
