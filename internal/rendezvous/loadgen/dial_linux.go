package loadgen

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort has a socket bound to a source address take its port at
// connect, not at bind (IP_BIND_ADDRESS_NO_PORT). A bind to port 0 makes the
// kernel search the address's ports for a free one: with 10,000 sockets
// open from one address, that search was half the machine's CPU while
// terminals logged in again after their node died (BenchmarkCluster/return,
// 80% system time, perf: inet_bind2_bucket_find), and bounded the logins
// the benchmark measured at ~330/s. connect picks a port unique for the
// whole address pair instead.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
