package loadgen

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBoundDialsTakeNoPortAtBind: the fleet's dialer marks each socket
// IP_BIND_ADDRESS_NO_PORT before binding it to its source address, and
// the connection still comes from that address.
func TestBoundDialsTakeNoPortAtBind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	f := NewFleet("ws://" + ln.Addr().String())
	src := Source(3 * PerSource)
	c, err := f.dialer(src).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != src.String() {
		t.Errorf("dialled from %s, want %s", got, src)
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if v != 1 {
		t.Errorf("IP_BIND_ADDRESS_NO_PORT is %d on the fleet's socket, want 1", v)
	}
}
