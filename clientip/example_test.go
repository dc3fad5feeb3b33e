package clientip_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"

	"github.com/seed68425060/ratelimit/clientip"
)

// Behind a reverse proxy, list the proxy's network: only requests from it have
// X-Forwarded-For read, from the right, so a forged leftmost entry is ignored.
func ExampleConfig() {
	c := &clientip.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}

	// The client forged "1.2.3.4"; the proxy 10.0.0.5 appended the real address.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:41000"
	r.Header.Set("X-Forwarded-For", "1.2.3.4, 203.0.113.7")
	fmt.Println(c.Addr(r), c.Key(r))

	// The same header straight from the internet is not believed.
	r.RemoteAddr = "198.51.100.9:41000"
	fmt.Println(c.Addr(r), c.Key(r))

	// IPv6 clients are grouped by /64.
	r.RemoteAddr = "10.0.0.5:41000"
	r.Header.Set("X-Forwarded-For", "2001:db8:1:2:aaaa:bbbb:cccc:dddd")
	fmt.Println(c.Addr(r), c.Key(r))
	// Output:
	// 203.0.113.7 203.0.113.7
	// 198.51.100.9 198.51.100.9
	// 2001:db8:1:2:aaaa:bbbb:cccc:dddd 2001:db8:1:2::/64
}
