package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// httpStore allows what every test that wants to reach its httptest
// server needs: plain http and loopback, which the guard refuses otherwise.
func httpStore(t *testing.T, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{AllowHTTP: true, HTTPAllow: []string{"127.0.0.1/32"}, HTTPTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return newStore(t, cfg)
}

type countingServer struct {
	*httptest.Server
	hits atomic.Int32
}

func serve(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) port() int {
	return cs.Listener.Addr().(*net.TCPAddr).Port
}

func get(s *Store, raw string, maxBytes int64) ([]byte, error) {
	loc, err := ParseLocation(raw)
	if err != nil {
		return nil, err
	}
	return s.Get(context.Background(), loc, maxBytes)
}

func TestHTTPLoopbackRefusedUnlessAllowed(t *testing.T) {
	body := []byte("\xff\xd8 jpeg bytes")
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write(body) })

	refusing := newStore(t, Config{AllowHTTP: true})
	if _, err := get(refusing, srv.URL+"/a.jpg", 1<<20); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Get from loopback by default = %v, want ErrForbidden", err)
	}
	// 127.0.0.1 spelled as an IPv4-translated IPv6 address (::ffff:0:0:0/96).
	translated := newStore(t, Config{AllowHTTP: true, HTTPPorts: []int{srv.port()}})
	if _, err := get(translated, "http://[::ffff:0:7f00:1]:"+strconv.Itoa(srv.port())+"/a.jpg", 1<<20); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Get from [::ffff:0:7f00:1] = %v, want ErrForbidden", err)
	}
	// Named, and on an allowed port, loopback is still refused: by the
	// dialer, after resolution.
	named := newStore(t, Config{AllowHTTP: true, HTTPPorts: []int{srv.port()}})
	_, err := get(named, "http://localhost:"+strconv.Itoa(srv.port())+"/a.jpg", 1<<20)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "resolves to loopback") {
		t.Fatalf("Get from localhost = %v, want ErrForbidden from the resolved address", err)
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the refused requests reached the server %d times", n)
	}

	allowing := httpStore(t, nil)
	got, err := get(allowing, srv.URL+"/a.jpg", 1<<20)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get with 127.0.0.1/32 allowed = %q, %v", got, err)
	}
	// Allow-listing by name exempts whatever the name resolves to.
	byName := newStore(t, Config{AllowHTTP: true, HTTPAllow: []string{"localhost"}})
	if got, err := get(byName, "http://localhost:"+strconv.Itoa(srv.port())+"/a.jpg", 1<<20); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get with localhost allowed = %q, %v", got, err)
	}
	// http:// needs AllowHTTP even for an allowed host.
	httpsOnly := newStore(t, Config{HTTPAllow: []string{"127.0.0.1/32"}})
	if _, err := get(httpsOnly, srv.URL+"/a.jpg", 1<<20); !errors.Is(err, ErrForbidden) {
		t.Fatalf("http:// without AllowHTTP = %v, want ErrForbidden", err)
	}
}

func TestHTTPRedirectTargetsChecked(t *testing.T) {
	var target atomic.Value
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.Write([]byte("ok"))
			return
		}
		http.Redirect(w, r, target.Load().(string), http.StatusFound)
	})
	s := httpStore(t, nil)
	tests := []struct{ to, want string }{
		{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"},
		{"http://[fd00:ec2::254]/latest/meta-data/", "private"},
		{"http://10.0.0.1/", "private"},
		{"http://[::1]:" + strconv.Itoa(srv.port()) + "/ok", "loopback"},
		{"http://localhost:" + strconv.Itoa(srv.port()) + "/ok", "port"},
		{"http://2130706433/", "non-canonical"},
		{"file:///etc/passwd", "scheme"},
		{"gopher://127.0.0.1:70/", "scheme"},
		{"http://user:pw@example.com/", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			target.Store(tt.to)
			_, err := get(s, srv.URL+"/start", 1<<20)
			if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("redirect to %s: %v; want ErrForbidden mentioning %q", tt.to, err, tt.want)
			}
		})
	}
	// The same server's own redirect, to an allowed target, is followed.
	target.Store(srv.URL + "/ok")
	if got, err := get(s, srv.URL+"/start", 1<<20); err != nil || string(got) != "ok" {
		t.Fatalf("allowed redirect: %q, %v", got, err)
	}
}

func TestHTTPRedirectLimit(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n == 0 {
			w.Write([]byte("arrived"))
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusMovedPermanently)
	})
	tests := []struct {
		max, hops int
		ok        bool
	}{
		{0, 3, true}, // 0 = DefaultMaxRedirects (3)
		{0, 4, false},
		{5, 5, true},
		{5, 6, false},
		{-1, 0, true},
		{-1, 1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max%d_hops%d", tt.max, tt.hops), func(t *testing.T) {
			s := httpStore(t, func(c *Config) { c.MaxRedirects = tt.max })
			got, err := get(s, fmt.Sprintf("%s/hop/%d", srv.URL, tt.hops), 1<<20)
			if tt.ok && (err != nil || string(got) != "arrived") {
				t.Fatalf("Get = %q, %v; want the body", got, err)
			}
			if !tt.ok && (!errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "redirects")) {
				t.Fatalf("Get = %q, %v; want ErrForbidden for too many redirects", got, err)
			}
		})
	}
}

func TestHTTPByteCap(t *testing.T) {
	const total = 64 << 20
	written := make(chan int64, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/declared" {
			// Announces its size, then stalls: the cap must apply from the
			// header, without waiting for the body.
			w.Header().Set("Content-Length", strconv.Itoa(total))
			w.Write(make([]byte, 1024))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		// Chunked, no size announced: refused mid-stream.
		var n int64
		chunk := make([]byte, 32<<10)
		for n < total {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	})
	s := httpStore(t, nil)
	const maxBytes = 256 << 10

	start := time.Now()
	if _, err := get(s, srv.URL+"/declared", maxBytes); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "declared") {
		t.Fatalf("declared too large: %v, want ErrTooLarge", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing a declared size took %v", d)
	}

	if _, err := get(s, srv.URL+"/stream", maxBytes); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("streamed too large: %v, want ErrTooLarge", err)
	}
	select {
	case n := <-written:
		// Socket buffers hold a few MiB at most; reading it all would be 64.
		if n >= total/2 {
			t.Errorf("the server wrote %d bytes: the body was read on past the cap", n)
		}
		t.Logf("server wrote %d bytes before the client hung up (cap %d)", n, maxBytes)
	case <-time.After(10 * time.Second):
		t.Fatal("the server handler never finished: the connection was not closed")
	}

}

func TestHTTPExactCap(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1000)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("chunked") {
			w.(http.Flusher).Flush()
		}
		w.Write(body)
	})
	s := httpStore(t, nil)
	for _, q := range []string{"", "?chunked=1"} {
		if got, err := get(s, srv.URL+"/"+q, 1000); err != nil || len(got) != 1000 {
			t.Errorf("%s: Get at exactly the cap = %d bytes, %v", q, len(got), err)
		}
		if _, err := get(s, srv.URL+"/"+q, 999); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Get one byte over = %v, want ErrTooLarge", q, err)
		}
	}
}

func TestHTTPTimeout(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trickle" {
			w.Header().Set("Content-Length", "100")
			for i := 0; i < 100; i++ {
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			return
		}
		select { // no headers at all
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	s := httpStore(t, func(c *Config) { c.HTTPTimeout = 300 * time.Millisecond })
	for _, path := range []string{"/silent", "/trickle"} {
		start := time.Now()
		_, err := get(s, srv.URL+path, 1<<20)
		if !errors.Is(err, ErrUnavailable) || IsPermanent(err) {
			t.Errorf("%s: %v, want transient ErrUnavailable", path, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v with a 300ms timeout", path, d)
		}
	}
}

func TestHTTPCancel(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	s := httpStore(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := s.Get(ctx, MustParseLocation(srv.URL+"/x"), 1<<20)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	})
	s := httpStore(t, nil)
	tests := []struct {
		code int
		want error
	}{
		{200, nil},
		{404, ErrNotFound},
		{410, ErrNotFound},
		{400, ErrNotFound},
		{401, ErrForbidden},
		{403, ErrForbidden},
		{429, ErrUnavailable},
		{500, ErrUnavailable},
		{502, ErrUnavailable},
		{503, ErrUnavailable},
	}
	for _, tt := range tests {
		_, err := get(s, fmt.Sprintf("%s/%d", srv.URL, tt.code), 1<<20)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("HTTP %d: %v, want %v", tt.code, err, tt.want)
		}
		if tt.want != nil && !strings.Contains(err.Error(), strconv.Itoa(tt.code)) {
			t.Errorf("HTTP %d: the message does not say the status: %v", tt.code, err)
		}
	}
}

// checkRedirect refuses a downgrade from https to http unless plain http
// is allowed (no TLS server needed to see it).
func TestHTTPRedirectDowngrade(t *testing.T) {
	req := &http.Request{URL: &url.URL{Scheme: "http", Host: "img.example.com", Path: "/a.jpg"}}
	via := []*http.Request{{URL: &url.URL{Scheme: "https", Host: "img.example.com", Path: "/a.jpg"}}}
	if err := newStore(t, Config{}).checkRedirect(req, via); !errors.Is(err, ErrForbidden) {
		t.Errorf("https -> http = %v, want ErrForbidden", err)
	}
	if err := newStore(t, Config{AllowHTTP: true}).checkRedirect(req, via); err != nil {
		t.Errorf("https -> http with AllowHTTP = %v", err)
	}
}

func TestBlockedAddr(t *testing.T) {
	tests := []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"fd00:ec2::254", true},
		{"10.0.0.1", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.168.1.1", true},
		{"fc00::1", true}, {"0.0.0.0", true}, {"::", true}, {"0.1.2.3", true},
		{"224.0.0.1", true}, {"ff02::1", true}, {"239.255.255.250", true},
		{"100.64.0.1", true}, {"100.127.255.254", true}, {"255.255.255.255", true}, {"240.0.0.1", true},
		{"192.0.0.8", true}, {"198.18.0.1", true}, {"64:ff9b::a00:1", true}, {"2002:a00:1::", true},
		{"2001:0:4136:e378::1", true}, {"::127.0.0.1", true},
		{"::ffff:0:7f00:1", true}, {"::ffff:0:a00:1", true}, {"::ffff:0:808:808", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"172.32.0.1", false}, {"100.128.0.1", false},
		{"2606:4700:4700::1111", false}, {"2a00:1450:4001:81c::200e", false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := blockedAddr(ip) != ""; got != tt.blocked {
			t.Errorf("blockedAddr(%s) = %q, want blocked=%v", tt.ip, blockedAddr(ip), tt.blocked)
		}
	}
}

// The dialer is the last line: whatever got past Check (a name, a
// rebinding DNS answer) is refused on the address actually dialled.
func TestGuardedDialer(t *testing.T) {
	s := newStore(t, Config{HTTPPorts: []int{8080}})
	dial := s.guardedDialer(&net.Dialer{Timeout: time.Second})
	for _, addr := range []string{"localhost:80", "127.0.0.1:443", "[::1]:80", "169.254.169.254:80", "10.1.1.1:8080"} {
		c, err := dial(context.Background(), "tcp", addr)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("dial %s = %v, want ErrForbidden", addr, err)
		}
	}
}
