package api

import (
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/regdns/regdns/etcdstore"
)

// The readers below are the one place where query parameters are checked; handlers only see
// the clean values they return, or a clientError naming what is wrong.

func missing(param string) error {
	return badRequest("MissingParameter", "The parameter %q is required.", param)
}

// name reads the requested label: trimmed and lowercased, since people type it.
func (s *Server) name(q url.Values) (string, error) {
	name := strings.ToLower(strings.TrimSpace(q.Get("name")))
	switch {
	case name == "":
		return "", missing("name")
	case s.isReserved(name):
		return "", badRequest("ReservedName", "The name %q is reserved.", name)
	case !isLabel(name):
		return "", badRequest("InvalidName", "The name must be 1 to 63 letters, digits or inner hyphens.")
	case len(name)+1+len(s.zone) > 253:
		return "", badRequest("InvalidName", "The name is too long to fit under %s.", s.zone)
	}
	return name, nil
}

func (s *Server) isReserved(name string) bool {
	if s.reserved[name] {
		return true
	}
	// ns1, ns2, ... are kept for the zone's own name servers.
	digits, ok := strings.CutPrefix(name, "ns")
	return ok && digits != "" && strings.Trim(digits, "0123456789") == ""
}

func isLabel(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// secret reads a token, reclamation token or verification id. The gateway lowercases what
// users type, so the API does the same; "" means absent and is never looked up.
func secret(q url.Values, param string) string {
	return strings.ToLower(strings.TrimSpace(q.Get(param)))
}

func requiredSecret(q url.Values, param string) (string, error) {
	v := secret(q, param)
	if v == "" {
		return "", missing(param)
	}
	return v, nil
}

// description reads desc; "" means none was given.
func description(q url.Values) (string, error) {
	desc := strings.TrimSpace(q.Get("desc"))
	if !utf8.ValidString(desc) || utf8.RuneCountInString(desc) > 256 || strings.ContainsFunc(desc, unicode.IsControl) {
		return "", badRequest("InvalidDescription", "The description must be at most 256 characters without control characters.")
	}
	return desc, nil
}

func mode(q url.Values) (etcdstore.Mode, error) {
	switch strings.TrimSpace(q.Get("mode")) {
	case "", "0":
		return etcdstore.ModeTunnel, nil
	case "1":
		return etcdstore.ModeDynamic, nil
	}
	return 0, badRequest("InvalidMode", "The mode must be 0 (tunnel) or 1 (dynamic DNS).")
}

// challenge reads an ACME DNS-01 value. Spaces, quotes and backslashes are refused because
// they would change the meaning of the TXT record the value is served in.
func challenge(q url.Values) (string, error) {
	c := strings.TrimSpace(q.Get("challenge"))
	if c == "" {
		return "", missing("challenge")
	}
	bad := len(c) > 255 || strings.ContainsFunc(c, func(r rune) bool {
		return r < '!' || r > '~' || r == '"' || r == '\'' || r == '\\'
	})
	if bad {
		return "", badRequest("InvalidChallenge", "The challenge must be 1 to 255 printable ASCII characters without spaces or quotes.")
	}
	return c, nil
}

// email reads a bare address, lowercased so that comparisons ignore case. Only ASCII is
// accepted because mail is sent without the SMTPUTF8 extension.
func email(q url.Values) (string, error) {
	addr := strings.TrimSpace(q.Get("email"))
	if addr == "" {
		return "", missing("email")
	}
	a, err := mail.ParseAddress(addr)
	at := strings.LastIndexByte(addr, '@')
	if err != nil || a.Name != "" || a.Address != addr || len(addr) > 254 ||
		!strings.Contains(addr[at+1:], ".") || strings.ContainsFunc(addr, func(r rune) bool { return r < '!' || r > '~' }) {
		return "", badRequest("InvalidEmail", "The email must be a plain address such as name@example.org.")
	}
	return strings.ToLower(addr), nil
}

// optOut reads optout; set reports whether it was given at all.
func optOut(q url.Values) (value, set bool, err error) {
	switch strings.ToLower(strings.TrimSpace(q.Get("optout"))) {
	case "":
		return false, false, nil
	case "1", "true":
		return true, true, nil
	case "0", "false":
		return false, true, nil
	}
	return false, false, badRequest("InvalidOptOut", "The optout parameter must be 1, true, 0 or false.")
}

// address reads the ip (IPv4) or ipv6 parameter, an address a gateway reports for itself;
// the zero Addr means none was given. IPv4-mapped IPv6 addresses count as IPv4.
func (s *Server) address(q url.Values, param string) (netip.Addr, error) {
	code, family, want6 := "InvalidIP", "IPv4", false
	if param == "ipv6" {
		code, family, want6 = "InvalidIPv6", "IPv6", true
	}
	v := strings.TrimSpace(q.Get(param))
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	a = a.Unmap()
	switch {
	case err != nil:
		return netip.Addr{}, badRequest(code, "The %s parameter is not an %s address.", param, family)
	case a.Is6() != want6:
		return netip.Addr{}, badRequest(code, "The %s parameter must be an %s address, not %s.", param, family, a)
	case a.Zone() != "":
		return netip.Addr{}, badRequest(code, "The %s address must not have a zone.", family)
	}
	if why := s.refusal(a); why != "" {
		return netip.Addr{}, badRequest(code, "The %s address %s is %s; give the gateway's public address.", family, a, why)
	}
	return a, nil
}

// specialRanges are the special-purpose ranges that netip's predicates do not cover, with the
// reason an address in them cannot be a gateway's (IANA's special-purpose address registries).
var specialRanges = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `in "this network" (0.0.0.0/8)`},
	{netip.MustParsePrefix("100.64.0.0/10"), "in the carrier-grade NAT space (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved for IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "reserved for documentation (192.0.2.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved for benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "reserved for documentation (198.51.100.0/24)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "reserved for documentation (203.0.113.0/24)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address (deprecated, ::/96)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "in the local-use NAT64 prefix (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("100::/64"), "in the discard-only prefix (100::/64)"},
	{netip.MustParsePrefix("2001:2::/48"), "reserved for benchmarking (2001:2::/48)"},
	{netip.MustParsePrefix("2001:db8::/32"), "reserved for documentation (2001:db8::/32)"},
	{netip.MustParsePrefix("3fff::/20"), "reserved for documentation (3fff::/20)"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address (deprecated, fec0::/10)"},
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// refusal says why a cannot be a gateway's reported address, or is "" if it can.
func (s *Server) refusal(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast():
		return "a multicast address"
	case a == broadcast:
		return "the broadcast address"
	case s.allowPrivate:
		return ""
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	}
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	return ""
}
