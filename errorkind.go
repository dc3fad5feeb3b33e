package ratelimit

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Error kinds returned by ErrorKind: a small fixed set, fit for metric labels.
const (
	KindTimeout     = "timeout"     // a deadline passed (Config.Timeout, the caller's, a socket's)
	KindCanceled    = "canceled"    // the caller's context was canceled
	KindConnection  = "connection"  // refused, reset, closed or unreachable
	KindOOM         = "oom"         // maxmemory reached under noeviction
	KindBusy        = "busy"        // another client's script runs too long (BUSY)
	KindLoading     = "loading"     // Redis is loading its dataset (LOADING)
	KindUnavailable = "unavailable" // no writable primary: READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN
	KindNoPerm      = "noperm"      // ACLs forbid a command or key (NOPERM, script ACL errors); not a denial by the limit
	KindReply       = "reply"       // a reply of the wrong shape (ErrUnexpectedReply)
	KindOther       = "other"
)

// ErrorKind classifies an error from a Limiter, for metrics and logs. It
// returns "" for nil and otherwise one of the Kind constants. Only connection
// and timeout errors can mean that a script ran without its reply arriving;
// none of them is retried by the Limiter.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch first, _, _ := strings.Cut(msg, " "); first {
		case "OOM":
			return KindOOM
		case "BUSY":
			return KindBusy
		case "LOADING":
			return KindLoading
		case "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS":
			return KindUnavailable
		case "NOPERM":
			return KindNoPerm
		}
		if strings.Contains(msg, "user executing the script can't") {
			return KindNoPerm
		}
		if strings.Contains(msg, "OOM command not allowed") {
			return KindOOM
		}
		return KindOther
	}
	switch {
	case errors.Is(err, ErrUnexpectedReply):
		return KindReply
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return KindTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return KindConnection
	}
	var operr *net.OpError
	if errors.As(err, &operr) {
		return KindConnection
	}
	if msg := err.Error(); strings.Contains(msg, "connection pool timeout") || strings.Contains(msg, "use of closed network connection") {
		return KindConnection
	}
	return KindOther
}
