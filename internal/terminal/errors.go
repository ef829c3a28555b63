package terminal

import "errors"

var (
	// ErrConfig: the terminal's configuration is incomplete.
	ErrConfig = errors.New("bad configuration")
	// ErrProtocol: the server broke the protocol.
	ErrProtocol = errors.New("protocol violation")
	// ErrLoginRefused: the server refused our login.
	ErrLoginRefused = errors.New("login refused")
	// ErrAuthFailed: the refusal was auth_failed: the server does not accept
	// this unit's credentials (most likely its device certificate). Also
	// wraps ErrLoginRefused.
	ErrAuthFailed = errors.New("credentials refused")
)

// ErrNotPairable: a pairing request arrived outside the pairing window.
var ErrNotPairable = errors.New("not pairable: the pairing window is closed")
