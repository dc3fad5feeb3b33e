package ratelimit

import (
	"errors"

	"github.com/seed68425060/ratelimit/internal/respguard"
)

// Sentinel errors. Wrap-checked with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrInvalidCost is returned, before any Redis call, for a cost n < 0 or n > Burst.
	ErrInvalidCost = errors.New("invalid cost")
	// ErrUnexpectedReply means Redis answered a script with a reply of the
	// wrong shape, or, on a client built with ClientOptions (or its siblings),
	// with a reply header beyond their bounds.
	ErrUnexpectedReply = respguard.ErrUnexpectedReply
	// ErrWouldExceedDeadline is returned by Wait and WaitN when the context deadline
	// comes before the time the call would need to be admitted.
	ErrWouldExceedDeadline = errors.New("wait would exceed context deadline")
)
