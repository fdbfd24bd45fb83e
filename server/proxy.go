package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// client is what the proxy middleware learnt about who sent a request.
type client struct {
	ip    string
	https bool // a trusted proxy says the client spoke TLS to it
}

type clientKey struct{}

// ClientIP is the address of the person or program that sent r: the TCP
// peer, or, when the peer is a trusted proxy, the nearest untrusted address
// of X-Forwarded-For. Rate limits, lockouts and audit records key on it.
// Outside Wrap (in handler unit tests, say) it is the peer address.
func ClientIP(r *http.Request) string {
	if c, ok := r.Context().Value(clientKey{}).(client); ok {
		return c.ip
	}
	return peerIP(r.RemoteAddr)
}

// forwardedHTTPS reports whether a trusted proxy terminated TLS for r.
func forwardedHTTPS(r *http.Request) bool {
	c, ok := r.Context().Value(clientKey{}).(client)
	return ok && c.https
}

// trustProxies stores the client address (and whether a trusted proxy saw
// https) in the request context. Forwarding headers are only believed from
// peers in trusted: anyone else could write them to dodge per-address
// lockouts or to pin them on someone else.
func trustProxies(next http.Handler, trusted []netip.Prefix) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := resolveClient(r, trusted)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

// resolveClient walks X-Forwarded-For from the right, where the entries our
// own proxies appended are, and stops at the first address none of them is.
// A malformed entry ends the walk at the hop that reported it: what lies
// further left was written by someone we cannot vouch for.
func resolveClient(r *http.Request, trusted []netip.Prefix) client {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok {
		return client{ip: peerIP(r.RemoteAddr)}
	}
	if !isTrusted(peer, trusted) {
		return client{ip: peer.String()}
	}
	c := client{ip: peer.String(), https: forwardedProto(r.Header) == "https"}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHost(hops[i])
		if !ok {
			break
		}
		c.ip = a.String()
		if !isTrusted(a, trusted) {
			break
		}
	}
	return c
}

// forwardedFor lists the X-Forwarded-For entries of every header line, in order.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, e := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(e))
		}
	}
	return hops
}

// forwardedProto is the scheme the nearest proxy reports, in lower case.
func forwardedProto(h http.Header) string {
	v := h.Get("X-Forwarded-Proto")
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// isTrusted reports whether a lies in one of the trusted prefixes.
func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.WithZone("") // prefixes never match zoned addresses
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHost reads "ip", "ip:port" or "[ipv6]:port"; IPv4-mapped IPv6
// addresses (from dual-stack listeners) become plain IPv4.
func parseHost(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// peerIP strips the port from a RemoteAddr, keeping it whole if it has none.
func peerIP(remoteAddr string) string {
	if a, ok := parseHost(remoteAddr); ok {
		return a.String()
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
