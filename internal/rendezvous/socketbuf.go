package rendezvous

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
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
// hands the connection over with smaller buffers.
type smallBuffers struct {
	http.ResponseWriter
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, socketReadBuffer), bufio.NewWriterSize(conn, socketWriteBuffer)), nil
}
