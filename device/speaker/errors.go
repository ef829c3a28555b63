package speaker

import "errors"

var (
	// ErrUnknownCue means a cue name is not one of Cues().
	ErrUnknownCue = errors.New("speaker: unknown cue")
	// ErrInterrupted means a cue was cut short by another cue or StopCue.
	ErrInterrupted = errors.New("speaker: cue interrupted")
	// ErrClosed means the speaker was closed.
	ErrClosed = errors.New("speaker: closed")
)
