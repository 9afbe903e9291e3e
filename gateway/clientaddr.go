package gateway

import (
	"net"
	"net/netip"

	"github.com/labstack/echo/v4"
)

// The client's address names it in logs and keys its per-client limits
// (streams per client, the publish rate without a token). It is the
// socket's peer, unless that peer is a trusted proxy: then it is the
// rightmost address of X-Forwarded-For that is not itself a trusted proxy,
// the one the outermost trusted proxy saw. Headers from anyone else are
// ignored, as is X-Real-IP: a client can write any header it likes.

// ipExtractor is echo's extraction of the client address for these rules.
// echo's XFF extractor trusts loopback, link-local and private peers by
// default; here only the configured networks are trusted.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// maxClientLen bounds the client address as logged. The extractor returns
// a parsed address or the socket's own, so this is only a backstop.
const maxClientLen = 64

// clientAddr is the request's client address, for logs.
func clientAddr(c echo.Context) string {
	a := c.RealIP()
	if len(a) > maxClientLen {
		a = a[:maxClientLen]
	}
	return a
}

// clientKey names a client for per-client limits: the token's subject
// when there is one, else its address (addrKey).
func clientKey(subject, addr string) string {
	if subject != "" {
		return "sub:" + subject
	}
	return addrKey(addr)
}

// addrKey is the key of per-client limits for a client without a token
// subject: its address, or for IPv6 its /64, which one host usually has
// whole and can draw new addresses from at will.
func addrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "addr:" + addr
	}
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return "addr:" + p.String()
		}
	}
	return "addr:" + a.String()
}
