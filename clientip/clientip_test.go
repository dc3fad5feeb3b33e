package clientip

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

var (
	proxyNets = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}
)

// ipCase is one client-IP table row; the fuzz test is seeded from all of them.
type ipCase struct {
	name    string
	remote  string
	header  string   // Config.Header; "" is X-Forwarded-For
	values  []string // header lines of the proxy header in use
	trusted bool     // use proxyNets
	want    string   // Addr().String(), "invalid" for the zero Addr
}

var remoteAddrCases = []ipCase{
	{name: "v4 with port", remote: "203.0.113.7:5678", want: "203.0.113.7"},
	{name: "v4 bare", remote: "203.0.113.7", want: "203.0.113.7"},
	{name: "v6 bracketed with port", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
	{name: "v6 bare", remote: "2001:db8::1", want: "2001:db8::1"},
	{name: "v6 bracketed no port", remote: "[2001:db8::1]", want: "2001:db8::1"},
	{name: "v6 zone dropped", remote: "[fe80::1%eth0]:80", want: "fe80::1"},
	{name: "4in6 unmapped", remote: "[::ffff:203.0.113.7]:80", want: "203.0.113.7"},
	{name: "unix socket @", remote: "@", want: "invalid"},
	{name: "empty", remote: "", want: "invalid"},
	{name: "unix path", remote: "/run/app.sock", want: "invalid"},
	{name: "hostname", remote: "localhost:80", want: "invalid"},
	{name: "bad port", remote: "203.0.113.7:http", want: "invalid"},
}

var xffCases = []ipCase{
	{name: "untrusted peer ignores header", remote: "198.51.100.1:1", values: []string{"203.0.113.7"}, want: "198.51.100.1"},
	{name: "no trusted proxies ignores header", remote: "10.0.0.1:1", values: []string{"203.0.113.7"}, want: "10.0.0.1"},
	{name: "one proxy", remote: "10.0.0.1:1", values: []string{"203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "rightmost untrusted wins over forged left", remote: "10.0.0.1:1", values: []string{"1.1.1.1, 2.2.2.2, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "skips trusted hops", remote: "10.0.0.1:1", values: []string{"1.1.1.1, 203.0.113.7, 10.0.0.9, 10.1.2.3"}, trusted: true, want: "203.0.113.7"},
	{name: "lines merged, last line last", remote: "10.0.0.1:1", values: []string{"1.1.1.1", "203.0.113.7, 10.0.0.2"}, trusted: true, want: "203.0.113.7"},
	{name: "forged second line is not used", remote: "10.0.0.1:1", values: []string{"5.5.5.5", "203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "empty elements ignored (ALB)", remote: "10.0.0.1:1", values: []string{"oh, hi,,127.0.0.1,,,,, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "garbage left of client ignored", remote: "10.0.0.1:1", values: []string{"oh, hi, 203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "malformed rightmost falls back to peer", remote: "10.0.0.1:1", values: []string{"203.0.113.7, garbage"}, trusted: true, want: "10.0.0.1"},
	{name: "malformed after trusted hop stops at hop", remote: "10.0.0.1:1", values: []string{"203.0.113.7, bad, 10.9.9.9"}, trusted: true, want: "10.9.9.9"},
	{name: "all trusted gives leftmost trusted", remote: "10.0.0.1:1", values: []string{"10.0.0.3, 10.0.0.2"}, trusted: true, want: "10.0.0.3"},
	{name: "absent header gives peer", remote: "10.0.0.1:1", trusted: true, want: "10.0.0.1"},
	{name: "with port v4", remote: "10.0.0.1:1", values: []string{"203.0.113.7:4711"}, trusted: true, want: "203.0.113.7"},
	{name: "with port v6", remote: "10.0.0.1:1", values: []string{"[2001:db8::7]:4711"}, trusted: true, want: "2001:db8::7"},
	{name: "v6 client", remote: "10.0.0.1:1", values: []string{"2001:db8:1:2::99"}, trusted: true, want: "2001:db8:1:2::99"},
	{name: "v6 trusted proxy", remote: "[2001:db8:ffff::1]:1", values: []string{"203.0.113.7, 2001:db8:ffff:1::1"}, trusted: true, want: "203.0.113.7"},
	{name: "4in6 in header unmapped and checked as v4", remote: "10.0.0.1:1", values: []string{"203.0.113.7, ::ffff:10.0.0.5"}, trusted: true, want: "203.0.113.7"},
	{name: "zone dropped", remote: "10.0.0.1:1", values: []string{"fe80::1%eth0"}, trusted: true, want: "fe80::1"},
	{name: "tabs and spaces", remote: "10.0.0.1:1", values: []string{" \t203.0.113.7\t "}, trusted: true, want: "203.0.113.7"},
	{name: "leading zeros rejected", remote: "10.0.0.1:1", values: []string{"203.0.113.007"}, trusted: true, want: "10.0.0.1"},
	{name: "unparsable peer ignores header", remote: "@", values: []string{"203.0.113.7"}, trusted: true, want: "invalid"},
}

var forwardedCases = []ipCase{
	{name: "simple", remote: "10.0.0.1:1", values: []string{"for=203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "case-insensitive name", remote: "10.0.0.1:1", values: []string{"For=203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "quoted", remote: "10.0.0.1:1", values: []string{`for="203.0.113.7"`}, trusted: true, want: "203.0.113.7"},
	{name: "quoted with escape", remote: "10.0.0.1:1", values: []string{`for="203.0.113.\7"`}, trusted: true, want: "203.0.113.7"},
	{name: "v4 with port", remote: "10.0.0.1:1", values: []string{`for="203.0.113.7:4711"`}, trusted: true, want: "203.0.113.7"},
	{name: "bracketed v6 with port", remote: "10.0.0.1:1", values: []string{`for="[2001:db8:cafe::17]:4711"`}, trusted: true, want: "2001:db8:cafe::17"},
	{name: "bracketed v6", remote: "10.0.0.1:1", values: []string{`for="[2001:db8:cafe::17]"`}, trusted: true, want: "2001:db8:cafe::17"},
	{name: "obfuscated port", remote: "10.0.0.1:1", values: []string{`for="[2001:db8:cafe::17]:_p1"`}, trusted: true, want: "2001:db8:cafe::17"},
	{name: "with other params", remote: "10.0.0.1:1", values: []string{"for=203.0.113.7;proto=https;by=10.0.0.1"}, trusted: true, want: "203.0.113.7"},
	{name: "params with spaces", remote: "10.0.0.1:1", values: []string{"proto=http; for=203.0.113.7 ; host=example.com"}, trusted: true, want: "203.0.113.7"},
	{name: "rightmost untrusted", remote: "10.0.0.1:1", values: []string{"for=1.1.1.1, for=203.0.113.7, for=10.0.0.5"}, trusted: true, want: "203.0.113.7"},
	{name: "lines merged", remote: "10.0.0.1:1", values: []string{"for=1.1.1.1", "for=203.0.113.7, for=10.0.0.5"}, trusted: true, want: "203.0.113.7"},
	{name: "unknown node stops at hop", remote: "10.0.0.1:1", values: []string{"for=1.1.1.1, for=unknown, for=10.0.0.5"}, trusted: true, want: "10.0.0.5"},
	{name: "obfuscated node stops at peer", remote: "10.0.0.1:1", values: []string{"for=1.1.1.1, for=_hidden"}, trusted: true, want: "10.0.0.1"},
	{name: "sabotage by unclosed quote on the left", remote: "10.0.0.1:1", values: []string{`for="1.1.1.1, for=203.0.113.7`}, trusted: true, want: "203.0.113.7"},
	{name: "syntax error on the left ignored", remote: "10.0.0.1:1", values: []string{"f*r=1.1.1.1, for=203.0.113.7"}, trusted: true, want: "203.0.113.7"},
	{name: "syntax error rightmost falls back", remote: "10.0.0.1:1", values: []string{"for=203.0.113.7, f*r=1.1.1.1"}, trusted: true, want: "10.0.0.1"},
	{name: "unterminated quote rightmost", remote: "10.0.0.1:1", values: []string{`for="203.0.113.7`}, trusted: true, want: "10.0.0.1"},
	{name: "quote inside value", remote: "10.0.0.1:1", values: []string{`for="203.0"113.7"`}, trusted: true, want: "10.0.0.1"},
	{name: "no for param", remote: "10.0.0.1:1", values: []string{"proto=https;by=10.0.0.1"}, trusted: true, want: "10.0.0.1"},
	{name: "duplicate for", remote: "10.0.0.1:1", values: []string{"for=1.1.1.1;for=203.0.113.7"}, trusted: true, want: "10.0.0.1"},
	{name: "bad other param", remote: "10.0.0.1:1", values: []string{`for=203.0.113.7;proto="x`}, trusted: true, want: "10.0.0.1"},
	{name: "missing bracket", remote: "10.0.0.1:1", values: []string{`for="[2001:db8::1"`}, trusted: true, want: "10.0.0.1"},
	{name: "v4 in brackets", remote: "10.0.0.1:1", values: []string{`for="[203.0.113.7]"`}, trusted: true, want: "10.0.0.1"},
	{name: "bad port", remote: "10.0.0.1:1", values: []string{`for="203.0.113.7:99999x"`}, trusted: true, want: "10.0.0.1"},
	{name: "empty elements ignored", remote: "10.0.0.1:1", values: []string{"for=203.0.113.7, , "}, trusted: true, want: "203.0.113.7"},
	{name: "untrusted peer ignores header", remote: "198.51.100.1:1", values: []string{"for=203.0.113.7"}, want: "198.51.100.1"},
	{name: "xff ignored when Forwarded is configured", remote: "10.0.0.1:1", values: nil, trusted: true, want: "10.0.0.1"},
}

func init() {
	for i := range forwardedCases {
		forwardedCases[i].header = HeaderForwarded
	}
}

func allIPCases() []ipCase {
	var all []ipCase
	all = append(all, remoteAddrCases...)
	all = append(all, xffCases...)
	return append(all, forwardedCases...)
}

func (tc ipCase) request() *http.Request {
	r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
	name := HeaderXForwardedFor
	if tc.header == HeaderForwarded {
		name = HeaderForwarded
		// A forged X-Forwarded-For must not matter when Forwarded is configured.
		r.Header.Add(HeaderXForwardedFor, "9.9.9.9")
	} else {
		r.Header.Add(HeaderForwarded, "for=9.9.9.9")
	}
	for _, v := range tc.values {
		r.Header.Add(name, v)
	}
	return r
}

func (tc ipCase) config() *Config {
	c := &Config{Header: tc.header}
	if tc.trusted {
		c.TrustedProxies = proxyNets
	}
	return c
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	return a.String()
}

func TestAddr(t *testing.T) {
	for _, tc := range allIPCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.config().Addr(tc.request())
			if addrString(got) != tc.want {
				t.Errorf("Addr(RemoteAddr %q, %s %q) = %s, want %s", tc.remote, tc.header, tc.values, addrString(got), tc.want)
			}
		})
	}
}

func TestEntryCap(t *testing.T) {
	// 1000 trusted hops, then the client far to the left: the walk stops after
	// MaxEntries entries and answers the last trusted hop it reached.
	hops := make([]string, 1000)
	for i := range hops {
		hops[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()
	}
	r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{}}
	r.Header.Set(HeaderXForwardedFor, "203.0.113.7, "+strings.Join(hops, ", "))
	c := &Config{TrustedProxies: proxyNets}
	got := c.Addr(r)
	want := hops[len(hops)-MaxEntries]
	if got.String() != want {
		t.Errorf("Addr with 1000 trusted hops = %v, want %v (the %dth from the right)", got, want, MaxEntries)
	}

	// Many lines: also capped.
	r = &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{HeaderXForwardedFor: hops}}
	if got := c.Addr(r); got.String() != want {
		t.Errorf("Addr with 1000 trusted lines = %v, want %v", got, want)
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		remote string
		want   string
	}{
		{name: "v4 default /32", remote: "203.0.113.7:1", want: "203.0.113.7"},
		{name: "v4 /24", c: Config{IPv4Prefix: 24}, remote: "203.0.113.7:1", want: "203.0.113.0/24"},
		{name: "v6 default /64", remote: "[2001:db8:1:2:3:4:5:6]:1", want: "2001:db8:1:2::/64"},
		{name: "v6 same /64 same key", remote: "[2001:db8:1:2:ffff::1]:1", want: "2001:db8:1:2::/64"},
		{name: "v6 /56", c: Config{IPv6Prefix: 56}, remote: "[2001:db8:1:2ff::1]:1", want: "2001:db8:1:200::/56"},
		{name: "v6 /128", c: Config{IPv6Prefix: 128}, remote: "[2001:db8::1]:1", want: "2001:db8::1"},
		{name: "v6 out of range means 64", c: Config{IPv6Prefix: 200}, remote: "[2001:db8::1]:1", want: "2001:db8::/64"},
		{name: "v4 out of range means 32", c: Config{IPv4Prefix: -3}, remote: "203.0.113.7:1", want: "203.0.113.7"},
		{name: "4in6 uses v4 prefix", remote: "[::ffff:203.0.113.7]:1", want: "203.0.113.7"},
		{name: "unix socket", remote: "@", want: UnknownKey},
		{name: "empty", remote: "", want: UnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.c.Key(&http.Request{RemoteAddr: tt.remote})
			if got != tt.want {
				t.Errorf("Key(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}

func TestAddrAllocs(t *testing.T) {
	r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{}}
	r.Header.Set(HeaderXForwardedFor, "1.1.1.1, 203.0.113.7, 10.0.0.2")
	c := &Config{TrustedProxies: proxyNets}
	if n := testing.AllocsPerRun(100, func() { c.Addr(r) }); n != 0 {
		t.Errorf("Addr allocates %v times per call, want 0", n)
	}
}

// addrsIn returns every address that can be read from s by splitting it at
// delimiters and stripping ports: an independent, permissive oracle for the
// fuzz test.
func addrsIn(s string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	fields := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(",;= \t\n\"\\[]", r) })
	// Escapes may split an address ("203.0.113.\7"): also try with backslashes removed.
	fields = append(fields, strings.FieldsFunc(strings.ReplaceAll(s, `\`, ""), func(r rune) bool { return strings.ContainsRune(",;= \t\n\"[]", r) })...)
	// Zones may hold spaces ("::%a b"): also try whole elements, trimmed.
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(",;=\n\"[]", r) }) {
		fields = append(fields, strings.Trim(f, " \t"))
	}
	for _, f := range fields {
		cands := []string{f}
		if i := strings.LastIndexByte(f, ':'); i >= 0 {
			cands = append(cands, f[:i])
		}
		for _, c := range cands {
			if a, err := netip.ParseAddr(c); err == nil {
				out[normalize(a)] = true
			}
		}
	}
	return out
}

func FuzzAddr(f *testing.F) {
	for _, tc := range allIPCases() {
		f.Add(tc.remote, strings.Join(tc.values, "\n"), tc.header == HeaderForwarded, tc.trusted)
	}
	f.Add("10.0.0.1:1", strings.Repeat("10.0.0.2,", 100)+"1.2.3.4", false, true)
	f.Fuzz(func(t *testing.T, remote, lines string, forwarded, trusted bool) {
		tc := ipCase{remote: remote, values: strings.Split(lines, "\n"), trusted: trusted}
		if forwarded {
			tc.header = HeaderForwarded
		}
		c := tc.config()
		r := tc.request()
		got := c.Addr(r)
		peer := ParseRemoteAddr(remote)
		if !peer.IsValid() {
			if got.IsValid() {
				t.Fatalf("Addr(%q) = %v for an unparsable peer, want the zero Addr", remote, got)
			}
			if k := c.Key(r); k != UnknownKey {
				t.Fatalf("Key(%q) = %q, want %q", remote, k, UnknownKey)
			}
			return
		}
		if !c.trusted(peer) && got != peer {
			t.Fatalf("Addr(%q) = %v, want the untrusted peer %v", remote, got, peer)
		}
		if got != peer && !addrsIn(lines)[got] {
			t.Fatalf("Addr(%q, %q) = %v: neither the peer nor in the header", remote, lines, got)
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Addr = %v, not normalised", got)
		}
		// The forged other header never decides: it names 9.9.9.9.
		if got == netip.MustParseAddr("9.9.9.9") && !strings.Contains(lines, "9.9.9.9") && remote != "9.9.9.9" {
			t.Fatalf("Addr = %v, taken from the header that is not configured", got)
		}
		// The client is never a trusted proxy unless the walk stopped there.
		k := c.Key(r)
		if p, err := netip.ParsePrefix(k); err == nil {
			if !p.Contains(got) {
				t.Fatalf("Key = %q does not contain Addr %v", k, got)
			}
		} else if k != got.String() {
			t.Fatalf("Key = %q, want %v or a prefix of it", k, got)
		}
	})
}

// TestAddrFrom checks that AddrFrom, given the peer and the configured header's
// lines from elsewhere (gRPC metadata, say), answers exactly what Addr answers
// for the same request.
func TestAddrFrom(t *testing.T) {
	for _, tc := range allIPCases() {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.config()
			r := tc.request()
			got := c.AddrFrom(ParseRemoteAddr(tc.remote), r.Header.Values(c.headerName()))
			if addrString(got) != tc.want {
				t.Errorf("AddrFrom(%q, %q) = %s, want %s", tc.remote, tc.values, addrString(got), tc.want)
			}
		})
	}
	// The peer is normalised, as ParseRemoteAddr does for Addr.
	c := &Config{TrustedProxies: proxyNets}
	peer := netip.MustParseAddr("::ffff:10.0.0.1")
	if got := c.AddrFrom(peer, []string{"203.0.113.7"}); got.String() != "203.0.113.7" {
		t.Errorf("AddrFrom(%v, 203.0.113.7) = %v, want 203.0.113.7 (peer unmapped, then trusted)", peer, got)
	}
	if got := c.AddrFrom(netip.Addr{}, []string{"203.0.113.7"}); got.IsValid() {
		t.Errorf("AddrFrom(zero Addr) = %v, want the zero Addr", got)
	}
}

// TestValidate checks that every problem is reported, naming its field.
func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v, want nil", err)
	}
	c := Config{
		TrustedProxies: []netip.Prefix{{}, netip.MustParsePrefix("::ffff:10.0.0.0/104")},
		Header:         "X-Real-IP",
		IPv6Prefix:     129,
		IPv4Prefix:     -1,
	}
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidConfig", err)
	}
	for _, want := range []string{"Config.TrustedProxies[0] = invalid Prefix", "Config.TrustedProxies[1] = ::ffff:10.0.0.0/104", `Config.Header = "X-Real-IP"`, "Config.IPv6Prefix = 129", "Config.IPv4Prefix = -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, does not contain %q", err, want)
		}
	}
}

// TestKeyNAT64 checks that NAT64 clients (64:ff9b::/96) are keyed by the IPv4
// address they embed, not all together by the translator's /64.
func TestKeyNAT64(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		addr string
		want string
	}{
		{name: "embedded v4", addr: "64:ff9b::203.0.113.7", want: "203.0.113.7"},
		{name: "another client, another key", addr: "64:ff9b::198.51.100.1", want: "198.51.100.1"},
		{name: "v4 prefix applies", c: Config{IPv4Prefix: 24}, addr: "64:ff9b::203.0.113.7", want: "203.0.113.0/24"},
		{name: "outside the /96 stays v6", addr: "64:ff9b:0:0:1::cb00:7107", want: "64:ff9b::/64"},
		{name: "local-use prefix stays v6", addr: "64:ff9b:1::cb00:7107", want: "64:ff9b:1::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.KeyOf(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("KeyOf(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
	// Through a trusted proxy too.
	c := &Config{TrustedProxies: proxyNets}
	r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{HeaderXForwardedFor: {"64:ff9b::203.0.113.7"}}}
	if got := c.Key(r); got != "203.0.113.7" {
		t.Errorf("Key(X-Forwarded-For 64:ff9b::203.0.113.7) = %q, want 203.0.113.7", got)
	}
}

// hugeHeaders are proxy headers of about 1 MB that a client can send; each
// hides a forged address at its far left that the walk must not reach.
var hugeHeaders = []struct {
	name  string
	lines []string
}{
	{name: "1 MB of empty entries", lines: []string{"198.51.100.66" + strings.Repeat(",", 1<<20)}},
	{name: "1 MB of spaces in one entry", lines: []string{"198.51.100.66" + strings.Repeat(" ", 1<<20)}},
	{name: "many empty lines", lines: append([]string{"198.51.100.66"}, make([]string, 100_000)...)},
	{name: "empty entries then trusted hops", lines: []string{"198.51.100.66" + strings.Repeat(", ", 40) + ", 10.0.0.9"}},
}

// TestHugeHeaderBounded checks that the walk examines at most MaxEntries
// entries and MaxBytes bytes from the right, empty ones included: it stops at
// the last address reached (the peer, or the last trusted hop) and never
// reaches the address far to the left.
func TestHugeHeaderBounded(t *testing.T) {
	c := &Config{TrustedProxies: proxyNets}
	for _, tc := range hugeHeaders {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{HeaderXForwardedFor: tc.lines}}
			got := c.Addr(r)
			if got.String() == "198.51.100.66" {
				t.Errorf("Addr = %v: the walk went past MaxEntries/MaxBytes to the far left", got)
			}
			if !c.trusted(got) {
				t.Errorf("Addr = %v, want the peer or a trusted hop (the walk stopped)", got)
			}
		})
	}
	// A chain within the bounds is still walked in full: 31 trusted hops.
	hops := make([]string, MaxEntries-1)
	for i := range hops {
		hops[i] = "10.0.0.9"
	}
	r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{HeaderXForwardedFor: {"203.0.113.7, " + strings.Join(hops, ", ")}}}
	if got := c.Addr(r); got.String() != "203.0.113.7" {
		t.Errorf("Addr(client + %d trusted hops) = %v, want 203.0.113.7", len(hops), got)
	}
}
