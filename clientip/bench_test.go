package clientip

import (
	"net/http"
	"strings"
	"testing"
)

// BenchmarkAddr compares a normal X-Forwarded-For with hostile ones of about
// 1 MB: all must cost about the same, since the walk is bounded.
func BenchmarkAddr(b *testing.B) {
	c := &Config{TrustedProxies: proxyNets}
	cases := append([]struct {
		name  string
		lines []string
	}{{name: "normal", lines: []string{"198.51.100.1, 203.0.113.7, 10.0.0.2"}}}, hugeHeaders...)
	for _, tc := range cases {
		b.Run(strings.ReplaceAll(tc.name, " ", "_"), func(b *testing.B) {
			r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{HeaderXForwardedFor: tc.lines}}
			b.ReportAllocs()
			for b.Loop() {
				c.Addr(r)
			}
		})
	}
}
