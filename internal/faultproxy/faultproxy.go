// Package faultproxy is a TCP proxy on loopback for fault tests: it forwards
// bytes between clients and one server and can hold back the server's replies
// or cut the connections, as a slow or broken network would, after the server
// has done the work.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from Addr to a server.
type Proxy struct {
	Addr string

	ln       net.Listener
	upstream string
	delay    atomic.Int64 // server→client delay in ns, every connection
	conns    atomic.Int64 // connections accepted
	mu       sync.Mutex
	open     []*link
	wg       sync.WaitGroup
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	delay          atomic.Int64  // server→client delay in ns, this connection only
	cut            chan struct{} // closed when the link is cut: ends a pending delay
	once           sync.Once
}

// close cuts the link on both sides.
func (l *link) close() {
	l.once.Do(func() {
		close(l.cut)
		l.client.Close()
		l.server.Close()
	})
}

// Start listens on a free 127.0.0.1 port and forwards to upstream.
func Start(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// DelayReplies holds every later chunk of server→client bytes back for d
// (0: forward at once). The server has already executed the command.
func (p *Proxy) DelayReplies(d time.Duration) { p.delay.Store(int64(d)) }

// DelayOpenReplies holds server→client bytes back for d on the connections
// open now only: a reply lost on one connection while new connections work,
// as when a client times out and retries on a fresh connection.
func (p *Proxy) DelayOpenReplies(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.open {
		l.delay.Store(int64(d))
	}
}

// Cut closes every connection open now, on both sides, as a network failure
// would: a client waiting for a reply reads EOF. The proxy keeps accepting.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.open {
		l.close()
	}
	p.open = nil
}

// Conns returns how many client connections the proxy accepted.
func (p *Proxy) Conns() int64 { return p.conns.Load() }

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		p.conns.Add(1)
		l := &link{client: client, server: server, cut: make(chan struct{})}
		p.mu.Lock()
		p.open = append(p.open, l)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client → server, at once
			defer p.wg.Done()
			io.Copy(server, client)
			server.Close()
		}()
		go func() { // server → client, delayed as configured
			defer p.wg.Done()
			defer client.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 {
					if d := time.Duration(max(p.delay.Load(), l.delay.Load())); d > 0 {
						select {
						case <-time.After(d):
						case <-l.cut:
							return
						}
					}
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
