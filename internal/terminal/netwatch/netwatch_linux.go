package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// groups are the rtnetlink multicast groups whose news is a change that
// may let the unit reach its server.
const groups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// Watch returns a channel that receives after each burst of the kernel's
// news of a new link state, address or route in the calling thread's
// network namespace; it holds one pending signal at most (a burst is one).
// Removals are not news: a lost address makes nothing reachable. It stops,
// and closes the channel, when ctx ends.
func Watch(ctx context.Context, log *slog.Logger) (<-chan struct{}, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netwatch: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netwatch: join rtnetlink groups: %w", err)
	}
	// A non-blocking descriptor in an *os.File reads through the runtime's
	// poller, so Close wakes a pending Read.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	ch := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					// ENOBUFS: the kernel dropped news it had no room
					// for — something changed; say so and go on.
					if pe, ok := err.(*os.PathError); ok && pe.Err == unix.ENOBUFS {
						notify(ch)
						continue
					}
					log.Warn("netwatch: reading the kernel's network news failed: reconnects wait their backoff", "err", err)
				}
				return
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if news(m.Header.Type) {
					notify(ch)
					break
				}
			}
		}
	}()
	return ch, nil
}

// news reports whether a message type says something appeared.
func news(t uint16) bool {
	switch t {
	case unix.RTM_NEWLINK, unix.RTM_NEWADDR, unix.RTM_NEWROUTE:
		return true
	}
	return false
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
