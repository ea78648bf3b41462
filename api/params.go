package api

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/regdns/regdns/etcdstore"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// The readers below are the one place where query parameters are checked; handlers only see
// the clean values they return, or a clientError naming what is wrong.

func missing(param string) error {
	return badRequest("MissingParameter", "The parameter %q is required.", param)
}

// name reads the requested label: trimmed and lowercased, since people type it. Every
// refusal is an unavailableName.
func (s *Server) name(q url.Values) (string, error) {
	name := strings.ToLower(strings.TrimSpace(q.Get("name")))
	switch {
	case name == "":
		return "", unavailableName("MissingParameter", "The parameter \"name\" is required.")
	case s.isReserved(name):
		return "", unavailableName("ReservedName", "The name %q is reserved.", name)
	case !isLabel(name):
		return "", unavailableName("InvalidName", "The name must be 1 to 63 letters, digits or inner hyphens.")
	case len(name)+1+len(s.zone) > 253:
		return "", unavailableName("InvalidName", "The name is too long to fit under %s.", s.zone)
	}
	if why := punycodeRefusal(name); why != "" {
		return "", unavailableName("InvalidName", "The name %q is %s.", name, why)
	}
	return name, nil
}

// builtinReserved are the labels no gateway gets, besides ns and ns<digits>: the API's own and the
// zone's web site, and labels that clients and mail systems look up by themselves in the
// domains they are in (proxy and IPv6 tunnel autodiscovery, mail client setup, MTA-STS, the
// host itself) or that read as the zone operator's roles (the RFC 2142 mailboxes), so that a
// gateway holding one could capture what is meant for the zone or its users.
var builtinReserved = []string{
	"api", "www", "_psl",
	"wpad", "isatap", "autodiscover", "autoconfig", "localhost", "mta-sts",
	"info", "marketing", "sales", "support", "abuse", "noc", "security",
	"postmaster", "hostmaster", "usenet", "news", "webmaster", "uucp", "ftp",
}

func (s *Server) isReserved(name string) bool {
	if s.reserved[name] {
		return true
	}
	// ns, ns1, ns2, ... are kept for the zone's own name servers.
	digits, ok := strings.CutPrefix(name, "ns")
	return ok && strings.Trim(digits, "0123456789") == ""
}

// punycodeRefusal says why an xn-- label cannot be registered, or is "" if it can (or is no
// xn-- label): browsers show such a label as the Unicode it encodes, so one that is no valid
// IDNA, or that mixes scripts (a Cyrillic "а" in "аpple"), would show as something else.
func punycodeRefusal(label string) string {
	if !strings.HasPrefix(label, "xn--") {
		return ""
	}
	u, err := idna.Registration.ToUnicode(label)
	if err != nil {
		return "not valid IDNA"
	}
	if back, err := idna.Registration.ToASCII(u); err != nil || back != label {
		return "not valid IDNA"
	}
	if mixesScripts(u) {
		return "a mix of scripts"
	}
	return ""
}

// scriptSets are the mixes of scripts a label may use, as in Unicode's "highly restrictive"
// profile (UTS #39): one script, or Latin with the scripts written together with Han.
var scriptSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// mixesScripts reports whether s uses letters of scripts that no one writes together.
// Characters common to all scripts (digits, the hyphen) and combining marks count for none.
func mixesScripts(s string) bool {
	used := map[string]bool{}
	for _, r := range s {
		for name, table := range unicode.Scripts {
			if name != "Common" && name != "Inherited" && unicode.Is(table, r) {
				used[name] = true
				break
			}
		}
	}
	if len(used) <= 1 {
		return false
	}
	for _, set := range scriptSets {
		all := true
		for name := range used {
			all = all && slices.Contains(set, name)
		}
		if all {
			return false
		}
	}
	return true
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

// email reads a bare address to send mail to, in one form per address so that comparisons
// work: lower case and NFC, the domain in Unicode (U-labels). Internationalised addresses
// (RFC 6531) are taken; the mailer sends the domain in its IDNA form and needs SMTPUTF8 only
// for a non-ASCII local part. Only a host name is taken as the domain, checked in its IDNA
// form: a domain literal ([127.0.0.1]) would have mail sent wherever the caller says.
func email(q url.Values) (string, error) {
	raw := strings.TrimSpace(q.Get("email"))
	if raw == "" {
		return "", missing("email")
	}
	return ContactAddress(raw)
}

// ContactAddress is raw (trimmed, not empty) as email reads it, for operator tools that set
// a contact address as /setemail would; the error is an InvalidEmail client error.
func ContactAddress(raw string) (string, error) {
	invalid := badRequest("InvalidEmail", "The email must be a plain address such as name@example.org.")
	addr := norm.NFC.String(strings.ToLower(raw))
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr || !utf8.ValidString(raw) || strings.ContainsFunc(addr, unprintable) {
		return "", invalid
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !isMailDomain(ascii) {
		return "", invalid
	}
	if domain, err = idna.Lookup.ToUnicode(ascii); err != nil {
		return "", invalid
	}
	// The limit of an SMTP path, in the form sent and in the form stored.
	if len(local)+1+max(len(ascii), len(domain)) > 254 {
		return "", invalid
	}
	return local + "@" + domain, nil
}

// unprintable reports whether r has no place in an address: spaces, controls, and invisible
// or unassigned characters.
func unprintable(r rune) bool {
	if r < utf8.RuneSelf {
		return r < '!' || r > '~'
	}
	return !unicode.IsGraphic(r) || unicode.IsSpace(r)
}

// isMailDomain reports whether domain (lower case) is a host name with at least two labels
// whose last is not all digits (which would make it an IPv4 address).
func isMailDomain(domain string) bool {
	labels := strings.Split(domain, ".")
	if len(domain) > 253 || len(labels) < 2 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false
	}
	for _, l := range labels {
		if !isLabel(l) {
			return false
		}
	}
	return true
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

// Prefixes of IPv6 addresses that carry an IPv4 address, which decides where they lead.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the IPv4 address is the last 32 bits
	ipv4Compatible = netip.MustParsePrefix("::/96")        // RFC 4291, deprecated: the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: bits 16 to 48
	teredo         = netip.MustParsePrefix("2001::/32")    // RFC 4380: the client's, inverted, in the last 32 bits
)

// embeddedIPv4 is the IPv4 address that a (an IPv6 address) carries and leads to, if it is
// of a form that carries one. The local-use NAT64 prefix (64:ff9b:1::/48), whose layout is
// the operator's choice, is refused as a whole in specialRanges.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	var v4 [4]byte
	switch {
	case nat64WellKnown.Contains(a), ipv4Compatible.Contains(a) && !a.IsLoopback() && !a.IsUnspecified():
		copy(v4[:], b[12:])
	case sixToFour.Contains(a):
		copy(v4[:], b[2:6])
	case teredo.Contains(a):
		for i := range v4 {
			v4[i] = b[12+i] ^ 0xff
		}
	default:
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(v4), true
}

// refusal says why a cannot be a gateway's reported address, or is "" if it can.
func (s *Server) refusal(a netip.Addr) string {
	if v4, ok := embeddedIPv4(a); ok {
		if why := s.refusal(v4); why != "" {
			return fmt.Sprintf("an IPv6 form of %s, which is %s", v4, why)
		}
	}
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
