//go:build !linux

package natsreg

import "errors"

// freeBytes cannot say here; watchStore then restarts JetStream without
// waiting for room.
func freeBytes(string) (int64, error) {
	return 0, errors.New("natsreg: free space unknown on this system")
}
