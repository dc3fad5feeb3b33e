// Package respguard bounds what a Redis server (or anything between it and
// the client) can make go-redis allocate. go-redis trusts the lengths in RESP
// headers: "$1000000000" makes it allocate a gigabyte before reading a byte of
// it, "*4503599627370496" makes it panic, and a simple string without a line
// end grows a buffer until the read deadline. A Conn reads the RESP stream as
// it passes, element by element, and ends the connection with an error at the
// first header beyond Limits, before go-redis sees it.
//
// It tracks only element boundaries: a header line, then for a bulk type its
// payload, skipped by length. Aggregates need no nesting state, since their
// elements follow as elements. Syntax it does not know (a streamed string,
// an unknown type byte) turns the inspection off for that connection and
// leaves the error to go-redis.
package respguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Limits are the largest lengths a Conn lets through.
type Limits struct {
	Bulk  int64 // bytes of one bulk string, blob error or verbatim string
	Elems int64 // elements of one array, set, push, map or attribute (pairs for maps)
	Line  int64 // bytes after the type byte of one header or simple line, CRLF included
}

// DefaultLimits are far above any reply a limiter, its admin commands or
// cluster topology queries receive (a decision's reply is under 100 bytes; a
// large cluster's CLUSTER NODES is well under a megabyte), and small enough
// that go-redis allocates them within milliseconds.
var DefaultLimits = Limits{Bulk: 16 << 20, Elems: 1 << 20, Line: 1 << 20}

// ErrUnexpectedReply is ratelimit.ErrUnexpectedReply, defined here so that a
// Conn's error wraps it: a reply beyond the limits is a reply of the wrong
// shape for a limiter, handled by its failure policy.
var ErrUnexpectedReply = errors.New("unexpected reply from redis")

// ErrReplyTooLarge is wrapped (with ErrUnexpectedReply) by the error a Conn
// returns once a header exceeds its Limits; the connection is unusable after it.
var ErrReplyTooLarge = fmt.Errorf("%w: reply beyond the bounds of a limiter client", ErrUnexpectedReply)

// DialFunc is go-redis's Options.Dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a DialFunc whose connections are guarded with DefaultLimits.
// It dials with inner, or when inner is nil as go-redis's default dialer does
// (dialTimeout, 5 minute keep-alive, TLS when tlsConfig is not nil). A
// connection inner already guarded is returned as it is.
func Dialer(inner DialFunc, dialTimeout time.Duration, tlsConfig *tls.Config) DialFunc {
	if inner == nil {
		if dialTimeout == 0 {
			dialTimeout = 5 * time.Second // go-redis's default
		}
		inner = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 5 * time.Minute}
			if tlsConfig == nil {
				return d.DialContext(ctx, network, addr)
			}
			return tls.DialWithDialer(d, network, addr, tlsConfig)
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, ok := c.(*Conn); ok {
			return c, nil
		}
		return New(c, DefaultLimits), nil
	}
}

// Conn is a net.Conn whose reads are checked against Limits.
type Conn struct {
	net.Conn
	s   scanner
	err error
}

// New guards c with lim.
func New(c net.Conn, lim Limits) *Conn {
	return &Conn{Conn: c, s: scanner{lim: lim}}
}

// Read reads from the connection. The bytes before an oversized header are
// returned first; every later Read returns the error.
func (c *Conn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if cut, bad := c.s.scan(p[:n]); bad != nil {
			c.err = fmt.Errorf("%w: %v (from %s)", ErrReplyTooLarge, bad, c.Conn.RemoteAddr())
			if cut == 0 {
				return 0, c.err
			}
			return cut, nil
		}
	}
	return n, err
}

const (
	stType    = iota // at the start of an element: its type byte
	stLine           // in a header or simple line
	stPayload        // skipping a bulk payload and its CRLF
	stOff            // unknown syntax: no more inspection
)

// scanner follows element boundaries across reads.
type scanner struct {
	lim   Limits
	state uint8
	kind  byte  // type byte of the current line
	line  int64 // bytes of the current line so far
	n     int64 // the length being parsed
	neg   bool
	bad   bool  // the length is not a plain integer
	skip  int64 // payload bytes left, CRLF included
}

// scan consumes p. On a header beyond the limits it returns where the bytes
// that can still be delivered end (the start of that header if it began in
// p, else 0) and what was wrong.
func (s *scanner) scan(p []byte) (cut int, bad error) {
	// Where the current element began in p: 0 when it began in an earlier
	// read, whose bytes are delivered already, so nothing more is.
	start := 0
	for i := 0; i < len(p); {
		switch s.state {
		case stOff:
			return len(p), nil
		case stPayload:
			k := int64(len(p) - i)
			if k > s.skip {
				k = s.skip
			}
			s.skip -= k
			i += int(k)
			if s.skip == 0 {
				s.state = stType
			}
		case stType:
			start = i
			s.kind, s.line, s.n, s.neg, s.bad = p[i], 0, 0, false, false
			switch s.kind {
			case '$', '!', '=', '*', '%', '~', '>', '|', '+', '-', ':', ',', '_', '#', '(':
				s.state = stLine
			default:
				s.state = stOff
			}
			i++
		case stLine:
			b := p[i]
			i++
			s.line++
			if s.line > s.lim.Line {
				return start, fmt.Errorf("a %q line of over %d bytes", s.kind, s.lim.Line)
			}
			if b != '\n' {
				switch {
				case !lengthKind(s.kind) || b == '\r':
				case b == '-' && s.line == 1:
					s.neg = true
				case '0' <= b && b <= '9' && s.n > (1<<62)/10:
					s.n = 1 << 62 // saturated: above any limit
				case '0' <= b && b <= '9':
					s.n = s.n*10 + int64(b-'0')
				default:
					s.bad = true // "?" of a streamed string, or junk
				}
				continue
			}
			s.state = stType
			if !lengthKind(s.kind) {
				continue
			}
			if s.bad {
				s.state = stOff
				continue
			}
			if s.neg { // a null ($-1, *-1): no payload, no elements
				continue
			}
			switch s.kind {
			case '$', '!', '=':
				if s.n > s.lim.Bulk {
					return start, fmt.Errorf("a %q of %d bytes (at most %d)", s.kind, s.n, s.lim.Bulk)
				}
				s.skip, s.state = s.n+2, stPayload
			default:
				if s.n > s.lim.Elems {
					return start, fmt.Errorf("a %q of %d elements (at most %d)", s.kind, s.n, s.lim.Elems)
				}
			}
		}
	}
	return len(p), nil
}

// lengthKind reports whether a line of type k holds a length or a count.
func lengthKind(k byte) bool {
	switch k {
	case '$', '!', '=', '*', '%', '~', '>', '|':
		return true
	}
	return false
}
