package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The SSRF guard. A source URL comes from whoever sends a task, so the
// worker must not be usable to reach what only it can reach: the EC2
// metadata service, the broker, private services. It is applied at three
// points:
//   - Check, with no I/O: scheme, port, literal addresses;
//   - every redirect target, the same way, before it is followed;
//   - every connection: the dialer resolves the host itself, checks every
//     address and connects to a checked address, so a name that resolves
//     differently the second time (DNS rebinding) gains nothing, and a
//     host name hiding a private address is caught.
//
// Ports: 80 and 443 only (plus Config.HTTPPorts); hosts and addresses in
// Config.HTTPAllow are exempt from both the address and the port rules.
// Environment proxies are ignored: through a proxy the guard would vet the
// proxy, not the target.

// blockedPrefixes are special-purpose ranges not covered by netip's
// predicates: shared or reserved space, and IPv6 ranges that embed or
// translate to IPv4 addresses (a way to spell 127.0.0.1 or 10.0.0.1).
var blockedPrefixes = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	// ::ffff:0:a.b.c.d (RFC 2765's SIIT): not mapped, so Unmap keeps it,
	// and some stacks still translate it to a.b.c.d.
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// blockedAddr says why ip may not be contacted, or "" if it may.
func blockedAddr(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid address"
	case ip.IsUnspecified():
		return "unspecified address"
	case ip.IsLoopback():
		return "loopback address"
	case ip.IsLinkLocalUnicast():
		return "link-local address (cloud metadata services live here)"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast address"
	case ip.IsPrivate():
		return "private address"
	}
	for _, b := range blockedPrefixes {
		if b.p.Contains(ip) {
			return b.why + " address"
		}
	}
	return ""
}

func (s *Store) portAllowed(port int) bool {
	if port == 80 || port == 443 {
		return true
	}
	for _, p := range s.cfg.HTTPPorts {
		if p == port {
			return true
		}
	}
	return false
}

// checkHTTP is the I/O-free part of the guard, for sources and redirect
// targets alike. Errors carry raw as their location.
func (s *Store) checkHTTP(raw string, u *url.URL) error {
	if msg := checkURL(u); msg != "" {
		return errorf(CodeInvalidLocation, raw, "%s", msg)
	}
	if u.Scheme == SchemeHTTP && !s.cfg.AllowHTTP {
		return errorf(CodeForbidden, raw, "plain http:// sources are not allowed")
	}
	host := u.Hostname()
	ip, err := netip.ParseAddr(host)
	isIP := err == nil
	if s.allow.host(host) || (isIP && s.allow.addr(ip)) {
		return nil
	}
	if isIP {
		if why := blockedAddr(ip); why != "" {
			s.log.Warn("storage: refused URL", "url", truncate(raw, 256), "reason", why)
			return errorf(CodeForbidden, raw, "refused: %s %s", why, ip)
		}
	} else if looksNumeric(host) {
		// "127.1", "2130706433", "0x7f.0.0.1": C resolvers read these as
		// IPv4 addresses, Go's as names; refuse rather than depend on which.
		return errorf(CodeForbidden, raw, "refused: host %q is a non-canonical IP address", truncate(host, 64))
	}
	port := 443
	if u.Scheme == SchemeHTTP {
		port = 80
	}
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p) // checkURL validated it
	}
	if !s.portAllowed(port) {
		return errorf(CodeForbidden, raw, "refused: port %d (only 80 and 443 unless allow-listed)", port)
	}
	return nil
}

// looksNumeric: a real top-level domain is never all digits, nor starts
// with 0x, so such a last label means an IP address in disguise.
func looksNumeric(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if strings.HasPrefix(strings.ToLower(last), "0x") {
		return true
	}
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func (s *Store) newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            s.guardedDialer(dialer),
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           32,
		IdleConnTimeout:        60 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Images do not compress; transparent gzip would only let a small
		// response inflate (the cap applies to decoded bytes either way).
		DisableCompression: true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       s.cfg.HTTPTimeout,
		CheckRedirect: s.checkRedirect,
	}
}

// guardedDialer resolves, checks every address, then connects to a checked
// address: the name is never resolved again by anything else.
func (s *Store) guardedDialer(d *net.Dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, newError(CodeInvalidLocation, "", "bad address "+strconv.Quote(addr), err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return nil, errorf(CodeInvalidLocation, "", "bad port in %q", addr)
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, newError(CodeNotFound, "", "no such host "+strconv.Quote(host), err)
			}
			return nil, newError(CodeUnavailable, "", "resolving "+strconv.Quote(host), err)
		}
		if len(ips) == 0 {
			return nil, errorf(CodeNotFound, "", "no address for host %q", host)
		}
		hostExempt := s.allow.host(host)
		// All addresses must pass, not just the one dialled: otherwise a
		// name with one public and one private address would get through
		// whenever the public one fails to answer.
		for _, ip := range ips {
			if hostExempt || s.allow.addr(ip) {
				continue
			}
			if why := blockedAddr(ip); why != "" {
				s.log.Warn("storage: refused connection", "host", host, "ip", ip.String(), "reason", why)
				return nil, errorf(CodeForbidden, "", "refused: %q resolves to %s %s", host, why, ip)
			}
			if !s.portAllowed(port) {
				return nil, errorf(CodeForbidden, "", "refused: port %d (only 80 and 443 unless allow-listed)", port)
			}
		}
		var firstErr error
		for _, ip := range ips {
			c, err := d.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
			if err == nil {
				return c, nil
			}
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return nil, firstErr
	}
}

func (s *Store) checkRedirect(req *http.Request, via []*http.Request) error {
	if s.cfg.MaxRedirects < 0 || len(via) > s.cfg.MaxRedirects {
		return errorf(CodeForbidden, "", "refused: more than %d redirects", max(s.cfg.MaxRedirects, 0))
	}
	target := req.URL.String()
	if err := s.checkHTTP(target, req.URL); err != nil {
		// Whatever the reason, following is refused: a redirect to
		// file:// or gopher:// is an attack, not a typo in our request.
		var se *Error
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Msg
		}
		return errorf(CodeForbidden, "", "redirect to %q: %s", truncate(target, 256), msg)
	}
	return nil
}

func (s *Store) getHTTP(ctx context.Context, loc Location, maxBytes int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.URL.String(), nil)
	if err != nil {
		return nil, newError(CodeInvalidLocation, loc.Raw, "bad URL", err)
	}
	req.Header.Set("User-Agent", "renderfarm-storage/1")
	req.Header.Set("Accept", "image/*, */*;q=0.5")
	resp, err := s.http.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, s.httpError(ctx, loc, err)
	}
	defer resp.Body.Close()
	if err := statusError(loc, resp); err != nil {
		return nil, err
	}
	if resp.ContentLength > maxBytes {
		return nil, errorf(CodeTooLarge, loc.Raw, "%d bytes declared, over the cap of %d", resp.ContentLength, maxBytes)
	}
	data, err := readCapped(resp.Body, resp.ContentLength, maxBytes)
	switch {
	case errors.Is(err, errOverCap):
		return nil, errorf(CodeTooLarge, loc.Raw, "over the cap of %d bytes", maxBytes)
	case err != nil:
		return nil, s.httpError(ctx, loc, err)
	}
	return data, nil
}

func statusError(loc Location, resp *http.Response) error {
	st := resp.StatusCode
	if st >= 200 && st < 300 {
		return nil
	}
	msg := "HTTP " + resp.Status
	switch {
	case st == http.StatusNotFound || st == http.StatusGone:
		return errorf(CodeNotFound, loc.Raw, "%s", msg)
	case st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusProxyAuthRequired:
		return errorf(CodeForbidden, loc.Raw, "%s", msg)
	case st >= 500 || st == http.StatusTooManyRequests || st == http.StatusRequestTimeout:
		return errorf(CodeUnavailable, loc.Raw, "%s", msg)
	}
	// Any other 4xx, or a 3xx we could not follow: the source is not there
	// for us, and asking again will not change that.
	return errorf(CodeNotFound, loc.Raw, "%s", msg)
}

// httpError classifies a failed request: the guard's own errors come back
// wrapped by net/http and are returned with the location filled in.
func (s *Store) httpError(ctx context.Context, loc Location, err error) error {
	var se *Error
	if errors.As(err, &se) {
		c := *se
		c.Location = loc.Raw
		return &c
	}
	if ctx.Err() != nil {
		return newError(CodeUnavailable, loc.Raw, "cancelled", ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return newError(CodeUnavailable, loc.Raw, fmt.Sprintf("timed out (limit %v)", s.cfg.HTTPTimeout), err)
	}
	var (
		verifyErr *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return newError(CodeForbidden, loc.Raw, "TLS certificate not trusted", err)
	}
	return newError(CodeUnavailable, loc.Raw, "request failed", err)
}
