package respguard

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var small = Limits{Bulk: 10, Elems: 3, Line: 16}

// TestScan feeds each stream whole and split at every byte, in one and two
// reads: what passes and where it stops must not depend on the chunking.
func TestScan(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		keep   int // bytes delivered before the error (all when bad is false)
		bad    bool
	}{
		{"integer", ":42\r\n", 0, false},
		{"simple and error", "+OK\r\n-ERR nope\r\n", 0, false},
		{"bulk at limit", "$10\r\n0123456789\r\n", 0, false},
		{"bulk payload looks like headers", "$10\r\n$999999999\r\n:1\r\n", 0, false},
		{"null bulk and array", "$-1\r\n*-1\r\n_\r\n", 0, false},
		{"array at limit", "*3\r\n:1\r\n$2\r\nab\r\n+x\r\n", 0, false},
		{"nested RESP3", "%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n", 0, false},
		{"bulk over limit", "$11\r\n", 0, true},
		{"after good replies", ":1\r\n:2\r\n$1000000000\r\n", 8, true},
		{"array over limit", "*4\r\n:1\r\n", 0, true},
		{"huge count", "*4503599627370496\r\n", 0, true},
		{"saturating count", "*99999999999999999999999999\r\n", 0, true},
		{"map over limit", "+OK\r\n%4\r\n", 5, true},
		{"verbatim over limit", "=11\r\ntxt:", 0, true},
		{"blob error over limit", "!11\r\n", 0, true},
		{"inside an array", "*2\r\n$3\r\nabc\r\n$11\r\n", 13, true},
		{"endless simple string", "+" + strings.Repeat("a", 40), 0, true},
		{"line at limit", "+" + strings.Repeat("a", 14) + "\r\n", 0, false},
		{"line over limit", "+" + strings.Repeat("a", 15) + "\r\n", 0, true},
		{"streamed string: left to go-redis", "$?\r\n;1000000000\r\n", 0, false},
		{"unknown type: left to go-redis", "@1000000000\r\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for split := 0; split <= len(tt.stream); split++ {
				chunks := []string{tt.stream}
				if split > 0 && split < len(tt.stream) {
					chunks = []string{tt.stream[:split], tt.stream[split:]}
				}
				s := scanner{lim: small}
				kept, bad := 0, error(nil)
				for _, c := range chunks {
					cut, err := s.scan([]byte(c))
					kept += cut
					if err != nil {
						bad = err
						break
					}
				}
				if (bad != nil) != tt.bad {
					t.Fatalf("split %d: error %v, want error %v", split, bad, tt.bad)
				}
				// An offending header split across two reads is delivered
				// in part: the first read could not tell yet.
				want := tt.keep
				if !tt.bad {
					want = len(tt.stream)
				}
				if tt.bad && tt.keep < split && split < detected(tt.stream, tt.keep) {
					want = split
				}
				if kept != want {
					t.Fatalf("split %d: delivered %d bytes, want %d", split, kept, want)
				}
			}
		})
	}
}

// detected is the byte count at which the scanner can tell that the element
// starting at start is beyond the limits: the end of its header line, or the
// byte past the Line limit for a line that does not end.
func detected(stream string, start int) int {
	if i := strings.IndexByte(stream[start:], '\n'); i >= 0 && int64(i) <= small.Line {
		return start + i + 1
	}
	return start + 1 + int(small.Line) + 1 // type byte, Line bytes, one more
}

// TestConn: through a real loopback connection, go-redis's reader (a bufio
// over the Conn) gets every good reply, then an error that wraps
// ErrReplyTooLarge, and the same error on every later read.
func TestConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(":1\r\n$3\r\nabc\r\n"))
				time.Sleep(20 * time.Millisecond)
				c.Write([]byte("$1000000000\r\n"))
				time.Sleep(100 * time.Millisecond)
			}()
		}
	}()
	// Guarding twice (options passed through the helpers twice) wraps once.
	dial := Dialer(Dialer(nil, time.Second, nil), 0, nil)
	c, err := dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g, ok := c.(*Conn); !ok {
		t.Fatalf("dialled %T, want *Conn", c)
	} else if _, twice := g.Conn.(*Conn); twice {
		t.Fatal("connection guarded twice")
	}
	rd := bufio.NewReader(c)
	var got []string
	for i := 0; i < 3; i++ {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		got = append(got, line)
	}
	if strings.Join(got, "") != ":1\r\n$3\r\nabc\r\n" {
		t.Fatalf("got %q", got)
	}
	for i := 0; i < 2; i++ {
		_, err := rd.ReadString('\n')
		if !errors.Is(err, ErrReplyTooLarge) {
			t.Fatalf("read %d after the huge header: %v, want ErrReplyTooLarge", i, err)
		}
	}
}

// BenchmarkScan: the guard's cost on a read of 64 pipelined decision replies
// (integers and short window strings), per reply.
func BenchmarkScan(b *testing.B) {
	var stream []byte
	for i := 0; i < 32; i++ {
		stream = append(stream, ":123456789\r\n$12\r\n12345 678901\r\n"...)
	}
	s := scanner{lim: DefaultLimits}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, err := s.scan(stream); err != nil {
			b.Fatal(err)
		}
	}
}
