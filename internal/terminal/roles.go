package terminal

import (
	"context"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The parts the terminal works with, each named for its role and no wider
// than what the terminal calls. The board's drivers (device, device/speaker,
// device/simboard) satisfy them; tests pass fakes.

// LEDs is the part of device.LEDs the terminal uses.
type LEDs interface{ Show(device.Pattern) error }

// CuePlayer plays the short sound cues that, with the lights, are all a
// child who cannot read has to go by.
type CuePlayer interface {
	// PlayCue starts a cue and returns at once.
	PlayCue(cue string)
	// PlayCueWait plays a cue and returns when it has played to its end (or
	// ctx ended): the connect sound must have been heard before the camera
	// opens (see gate.go).
	PlayCueWait(ctx context.Context, cue string) error
}

// Speaker is the terminal's speaker: the cues, and the parent's voice in a
// call (device/speaker.Player is one).
type Speaker interface {
	CuePlayer
	// StopCue silences a repeating cue (the ring) that no new cue replaces.
	StopCue()
	// WritePCM plays the parent's decoded voice. It is called on the media
	// receiver's goroutine and must not block.
	WritePCM(pcm []int16)
}

// Watchdog is the hardware watchdog (a *device.Watchdog): the loop pets it
// from its health tick and from nowhere else, so a loop that stops turning
// reboots the board.
type Watchdog interface{ Pet() error }

// ServerConn is one logged-in signalling connection to the rendezvous
// server, as the loop uses it. The websocket client (signalling.go) is the
// real one; internal/terminal/terminaltest has a fake.
type ServerConn interface {
	// Welcome is the server's answer to the login: whether it holds a
	// pairing, whether the parent is online, the server's time.
	Welcome() protocol.Message
	// Send queues m for the server and returns at once: it is called from
	// the loop. A connection that cannot keep up closes itself.
	Send(m protocol.Message)
	// Receive waits for the server's next message. An error means the
	// connection has ended (or ctx has).
	Receive(ctx context.Context) (protocol.Message, error)
	// Close ends the connection without waiting for the server. Safe from
	// any goroutine, any number of times.
	Close()
}

// DialFunc opens and logs in one ServerConn. An error wrapping
// ErrAuthFailed means the server refused this unit's credentials.
type DialFunc func(ctx context.Context) (ServerConn, error)
