package board

import "errors"

var (
	// ErrUnknownProfile means no built-in profile has the name asked for.
	ErrUnknownProfile = errors.New("board: unknown board profile")
	// ErrInvalidProfile wraps every Profile.Validate failure.
	ErrInvalidProfile = errors.New("board: invalid profile")
)
