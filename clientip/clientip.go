package clientip

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Proxy header names that Config can read.
const (
	// HeaderXForwardedFor is the de-facto standard X-Forwarded-For header.
	HeaderXForwardedFor = "X-Forwarded-For"
	// HeaderForwarded is the RFC 7239 Forwarded header.
	HeaderForwarded = "Forwarded"
)

// UnknownKey is the rate-limit key [Config.Key] returns when the peer address
// cannot be parsed, for example for a unix-socket listener (RemoteAddr "@" or
// "") or a custom server that leaves RemoteAddr empty. All such requests share
// this one bucket: failing towards limiting rather than towards a fresh bucket
// per request. It cannot collide with an address key.
const UnknownKey = "unknown"

// Bounds on the work spent on one proxy header, whatever it holds (a header may
// be close to 1 MB). No real chain of trusted proxies comes near them.
const (
	// MaxEntries is the most proxy-header entries examined, counted from the
	// right, empty entries included. If that many entries are all trusted
	// proxies or empty, the last address reached (the leftmost trusted proxy
	// examined) is taken as the client.
	MaxEntries = 32
	// MaxBytes is the most bytes of a proxy header examined, counted from the
	// right over all its lines. An entry that starts further left stops the
	// walk like MaxEntries does.
	MaxBytes = 4096
)

// nat64 is the NAT64 well-known prefix of RFC 6052: 64:ff9b::a.b.c.d is the
// IPv4 host a.b.c.d seen through a translator.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// ErrInvalidConfig is wrapped by every error [Config.Validate] returns.
var ErrInvalidConfig = errors.New("invalid config")

// Config finds the client address of a request and its rate-limit key.
//
// By default (no TrustedProxies) the client is the peer, http.Request.RemoteAddr,
// and proxy headers are ignored: any client can write them.
//
// When the peer is inside one of TrustedProxies, the proxy header named by Header
// is read: all its header lines merged, walked from the right (the end the proxies
// append to), skipping addresses inside TrustedProxies. The first address that is
// not a trusted proxy is the client. The leftmost entry, which the client wrote
// itself, is never taken unless every entry to its right is a trusted proxy.
// A malformed entry, an "unknown" or obfuscated RFC 7239 node, or an entry beyond
// [MaxEntries] or [MaxBytes] stops the walk: the client is then the last address
// reached (the trusted proxy that received the request from that hop), never a
// value the client may have forged. The work per request is thus bounded
// whatever the header holds.
//
// Addresses are normalised: IPv4-mapped IPv6 addresses become IPv4 and IPv6 zones
// are dropped. Keys group IPv6 clients by IPv6Prefix and key NAT64 addresses
// (64:ff9b::/96) by the IPv4 address they embed (see [Config.KeyOf]).
//
// The zero value is ready to use and trusts no proxy. A Config must not be
// modified while in use; its methods are safe for concurrent use and do not
// allocate except to build Key's string.
type Config struct {
	// TrustedProxies lists the networks of the reverse proxies in front of the
	// server. Only requests whose peer is inside one of them have their proxy
	// header read. Use IPv4 prefixes for IPv4 proxies (addresses are unmapped
	// before matching). If empty (the default), proxy headers are ignored: right
	// for a server that clients reach directly, and the only safe choice unless
	// every request passes through proxies you run.
	TrustedProxies []netip.Prefix

	// Header is the proxy header the trusted proxies maintain: HeaderXForwardedFor
	// or HeaderForwarded. Exactly one is read, because a header the proxies do not
	// append to is written entirely by the client. If empty, Header is
	// HeaderXForwardedFor; an unknown name reads no header (Validate reports it).
	Header string

	// IPv6Prefix is the length of the prefix that groups IPv6 clients in Key, so
	// that one host cannot rotate addresses inside its allocation to get fresh
	// buckets. If zero or outside 1..128, IPv6Prefix is 64.
	IPv6Prefix int

	// IPv4Prefix is the length of the prefix that groups IPv4 clients (and NAT64
	// clients, by their embedded IPv4 address) in Key. If zero or outside 1..32,
	// IPv4Prefix is 32 (one bucket per address).
	IPv4Prefix int
}

// Validate reports every problem with c at once, joined with errors.Join, each
// naming the field and its value and wrapping [ErrInvalidConfig]. It returns nil
// for a valid Config; the zero Config is valid. Out-of-range prefix lengths,
// which the methods treat as their defaults, are problems here: they are
// typos, not choices.
func (c Config) Validate() error {
	var errs []error
	for i, p := range c.TrustedProxies {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			errs = append(errs, fmt.Errorf("clientip: Config.TrustedProxies[%d] = %v, must be a valid prefix without zone (IPv4 as IPv4, not ::ffff:): %w", i, p, ErrInvalidConfig))
		}
	}
	switch c.Header {
	case "", HeaderXForwardedFor, HeaderForwarded:
	default:
		errs = append(errs, fmt.Errorf("clientip: Config.Header = %q, must be %q or %q: %w", c.Header, HeaderXForwardedFor, HeaderForwarded, ErrInvalidConfig))
	}
	if c.IPv6Prefix < 0 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("clientip: Config.IPv6Prefix = %d, must be between 1 and 128 (0 means 64): %w", c.IPv6Prefix, ErrInvalidConfig))
	}
	if c.IPv4Prefix < 0 || c.IPv4Prefix > 32 {
		errs = append(errs, fmt.Errorf("clientip: Config.IPv4Prefix = %d, must be between 1 and 32 (0 means 32): %w", c.IPv4Prefix, ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// Addr returns the client address of r, as described on Config. It returns the
// zero netip.Addr only when the peer address (RemoteAddr) cannot be parsed.
func (c *Config) Addr(r *http.Request) netip.Addr {
	peer := ParseRemoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !c.trusted(peer) {
		return peer
	}
	return c.AddrFrom(peer, r.Header.Values(c.headerName()))
}

// AddrFrom returns the client address of a request whose peer is peer and whose
// proxy header (the one named by Header) has the lines values, in the order
// received: the same trusted-proxy walk as Addr, for headers that come from
// elsewhere, such as gRPC metadata "x-forwarded-for" (lower case there; pass
// md.Get(strings.ToLower(c.Header)) or the like). peer is normalised first. It
// returns the zero netip.Addr only for the zero peer, and peer itself when peer
// is not a trusted proxy (values are then not read).
func (c *Config) AddrFrom(peer netip.Addr, values []string) netip.Addr {
	if !peer.IsValid() {
		return netip.Addr{}
	}
	peer = normalize(peer)
	if !c.trusted(peer) {
		return peer
	}
	switch c.Header {
	case "", HeaderXForwardedFor:
		return c.walk(peer, values, parseXFFEntry)
	case HeaderForwarded:
		return c.walk(peer, values, parseForwardedElement)
	}
	return peer
}

// headerName is the canonical name of the header Addr reads.
func (c *Config) headerName() string {
	if c.Header == HeaderForwarded {
		return HeaderForwarded
	}
	return HeaderXForwardedFor
}

// Key returns the rate-limit key of r's client: KeyOf(Addr(r)).
func (c *Config) Key(r *http.Request) string {
	return c.KeyOf(c.Addr(r))
}

// KeyOf returns the rate-limit key of the client address a: a masked to
// IPv6Prefix or IPv4Prefix, as an address ("203.0.113.7") when the prefix is the
// full length and as a prefix ("2001:db8:1:2::/64", "198.51.100.0/24")
// otherwise. A NAT64 address (64:ff9b::/96, RFC 6052) is keyed as the IPv4
// address it embeds: 64:ff9b::203.0.113.7 has the key of 203.0.113.7, since
// every IPv4 client of a translator shares the translator's /64. IPv4-mapped
// addresses are keyed as IPv4 too. KeyOf returns [UnknownKey] for the zero
// netip.Addr.
func (c *Config) KeyOf(a netip.Addr) string {
	if !a.IsValid() {
		return UnknownKey
	}
	a = normalize(a)
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:16]))
	}
	bits := c.IPv4Prefix
	if bits < 1 || bits > 32 {
		bits = 32
	}
	if a.Is6() {
		bits = c.IPv6Prefix
		if bits < 1 || bits > 128 {
			bits = 64
		}
	}
	if bits == a.BitLen() {
		return a.String()
	}
	p, err := a.Prefix(bits)
	if err != nil { // unreachable: bits is within range for a's family
		return UnknownKey
	}
	return p.String()
}

// ParseRemoteAddr parses an http.Request.RemoteAddr in any of the forms servers
// use: "203.0.113.7:1234", "[2001:db8::1]:1234", "203.0.113.7", "2001:db8::1"
// and "[2001:db8::1]". It returns the address normalised as Config does
// (unmapped, no zone), or the zero netip.Addr for anything else, such as the "@"
// or "" of a unix socket.
func ParseRemoteAddr(s string) netip.Addr {
	a := parseHostPort(s)
	if !a.IsValid() {
		return netip.Addr{}
	}
	return normalize(a)
}

func (c *Config) trusted(a netip.Addr) bool {
	for _, p := range c.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// entryResult is what an entry parser reports about one list element.
type entryResult uint8

const (
	entryEmpty entryResult = iota // an empty list element: skipped (RFC 9110 §5.6.1)
	entryAddr                     // an address
	entryStop                     // malformed, unknown or obfuscated: stop the walk
)

// walk walks the merged lines of a proxy header from the right, as described on
// Config. peer is the (trusted) peer. It examines at most MaxEntries entries and
// MaxBytes bytes, scanning each line only from its end, element by element.
func (c *Config) walk(peer netip.Addr, lines []string, parse func(string) (netip.Addr, entryResult)) netip.Addr {
	client := peer
	entries := 0
	budget := MaxBytes
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		cut := len(line) > budget
		if cut {
			line = line[len(line)-budget:]
		}
		budget -= len(line)
		for {
			j := strings.LastIndexByte(line, ',')
			if j < 0 && cut {
				return client // this entry starts beyond MaxBytes
			}
			entries++
			if entries > MaxEntries {
				return client
			}
			a, res := parse(line[j+1:])
			switch res {
			case entryStop:
				return client
			case entryAddr:
				client = a
				if !c.trusted(a) {
					return client
				}
			}
			if j < 0 {
				break
			}
			line = line[:j]
		}
	}
	return client
}

// parseXFFEntry parses one X-Forwarded-For element: an address, optionally with
// a port ("203.0.113.7:80", "[2001:db8::1]:80") as some proxies append.
func parseXFFEntry(s string) (netip.Addr, entryResult) {
	s = trimOWS(s)
	if s == "" {
		return netip.Addr{}, entryEmpty
	}
	a := parseHostPort(s)
	if !a.IsValid() {
		return netip.Addr{}, entryStop
	}
	return normalize(a), entryAddr
}

// parseForwardedElement parses one RFC 7239 forwarded-element, such as
// `for=192.0.2.60;proto=http;by=203.0.113.43` or `for="[2001:db8:cafe::17]:4711"`,
// and returns its "for" node. Elements are split on ',' and pairs on ';' without
// regard to quoting: a quoted value containing those characters makes the pieces
// malformed, which stops the walk (safe, and valid node values never contain them).
// An element without a "for" parameter, with two, or whose node is "unknown" or
// obfuscated ("_hidden") stops the walk too.
func parseForwardedElement(s string) (netip.Addr, entryResult) {
	s = trimOWS(s)
	if s == "" {
		return netip.Addr{}, entryEmpty
	}
	var node string
	found := false
	for s != "" {
		pair := s
		if k := strings.IndexByte(s, ';'); k >= 0 {
			pair, s = s[:k], s[k+1:]
		} else {
			s = ""
		}
		pair = trimOWS(pair)
		name, value, ok := strings.Cut(pair, "=")
		if !ok || !isToken(name) {
			return netip.Addr{}, entryStop
		}
		if !strings.EqualFold(name, "for") {
			if !validValue(value) {
				return netip.Addr{}, entryStop
			}
			continue
		}
		if found {
			return netip.Addr{}, entryStop
		}
		// The RFC requires quotes around nodes with ':' or '[', but proxies
		// often omit them; parseNode checks the unquoted value strictly.
		v, ok := value, true
		if strings.HasPrefix(value, `"`) {
			v, ok = unquote(value)
		}
		if !ok {
			return netip.Addr{}, entryStop
		}
		node, found = v, true
	}
	if !found {
		return netip.Addr{}, entryStop
	}
	a := parseNode(node)
	if !a.IsValid() {
		return netip.Addr{}, entryStop
	}
	return normalize(a), entryAddr
}

// parseNode parses an RFC 7239 node: nodename [ ":" node-port ], where nodename
// is an IPv4 address, a bracketed IPv6 address, "unknown" or an obfuscated
// identifier, and node-port is a number or an obfuscated port ("_abc"). Only
// addresses are returned. A bare IPv6 address without brackets is accepted too.
func parseNode(s string) netip.Addr {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || !validPort(s[end+1:]) {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() {
			return netip.Addr{}
		}
		return a
	}
	if strings.Count(s, ":") != 1 { // IPv4 or bare IPv6 without port
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Addr{}
		}
		return a
	}
	host, port, _ := strings.Cut(s, ":")
	if !validPort(":" + port) {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}
	}
	return a
}

// validPort reports whether s is empty or ":" followed by a decimal port of 1 to
// 5 digits or an obfuscated port ("_" followed by ALPHA / DIGIT / "." / "_" / "-").
func validPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 {
		return false
	}
	p := s[1:]
	if p[0] == '_' {
		for i := 1; i < len(p); i++ {
			ch := p[i]
			if !isAlnum(ch) && ch != '.' && ch != '_' && ch != '-' {
				return false
			}
		}
		return len(p) > 1
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// parseHostPort parses "addr", "addr:port", "[v6]" or "[v6]:port" (numeric port)
// without normalising. It returns the zero Addr for anything else.
func parseHostPort(s string) netip.Addr {
	// Pick the one parser that fits, so that valid input never builds an error.
	switch {
	case strings.HasPrefix(s, "["):
		if strings.HasSuffix(s, "]") {
			if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
				return a
			}
			return netip.Addr{}
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr()
		}
	case strings.Count(s, ":") == 1: // IPv4 with port
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr()
		}
	default: // IPv4 or IPv6 without port
		if a, err := netip.ParseAddr(s); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

// normalize unmaps IPv4-mapped IPv6 addresses and drops IPv6 zones.
func normalize(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// unquote returns v without its quotes and escapes if it is a quoted-string, or v
// itself if it is a token. It reports false for anything else.
func unquote(v string) (string, bool) {
	if !strings.HasPrefix(v, `"`) {
		return v, isToken(v)
	}
	if len(v) < 2 || v[len(v)-1] != '"' {
		return "", false
	}
	v = v[1 : len(v)-1]
	if strings.IndexByte(v, '\\') < 0 {
		return v, !strings.Contains(v, `"`)
	}
	// Node values are short; a long escaped value is not an address anyway.
	if len(v) > 128 {
		return "", false
	}
	var buf [128]byte
	b := buf[:0]
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; ch {
		case '\\':
			i++
			if i == len(v) {
				return "", false
			}
			b = append(b, v[i])
		case '"':
			return "", false
		default:
			b = append(b, ch)
		}
	}
	return string(b), true
}

// validValue reports whether v is a token or a well-formed quoted-string.
func validValue(v string) bool {
	_, ok := unquote(v)
	return ok
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if isAlnum(ch) {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(ch)) {
			return false
		}
	}
	return true
}

func isAlnum(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9'
}

// trimOWS trims optional whitespace (spaces and tabs).
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}
