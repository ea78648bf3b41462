package main

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/regdns/regdns/plugin/registry"
)

// originalConfig is the original server's config.toml, as far as a Corefile can say it.
type originalConfig struct {
	General struct {
		Domain   string `toml:"domain"`
		DBPath   string `toml:"db_path"`
		Host     string `toml:"host"`
		HTTPPort int    `toml:"http_port"`
	} `toml:"general"`
	PDNS struct {
		DNSTTL       *uint32    `toml:"dns_ttl"`
		TunnelTTL    *uint32    `toml:"tunnel_ttl"`
		APITTL       *uint32    `toml:"api_ttl"`
		NSRecords    [][]string `toml:"ns_records"`
		SOARecord    string     `toml:"soa_record"`
		CAARecords   []any      `toml:"caa_records"`
		MXRecords    []any      `toml:"mx_records"`
		TXTRecords   []any      `toml:"txt_records"`
		CNAMERecords []any      `toml:"cname_records"`
		WWWAddresses []string   `toml:"www_addresses"`
		GeoIP        struct {
			Default   string         `toml:"default"`
			Database  string         `toml:"database"`
			Continent map[string]any `toml:"continent"`
		} `toml:"geoip"`
	} `toml:"pdns"`
	Email struct {
		Server            string `toml:"server"`
		User              string `toml:"user"`
		Password          string `toml:"password"`
		Sender            string `toml:"sender"`
		ReclamationTitle  string `toml:"reclamation_title"`
		ReclamationBody   string `toml:"reclamation_body"`
		ConfirmationTitle string `toml:"confirmation_title"`
		ConfirmationBody  string `toml:"confirmation_body"`
		SuccessPage       string `toml:"success_page"`
		ErrorPage         string `toml:"error_page"`
	} `toml:"email"`
}

// smtpPasswordEnv is the environment variable the converted Corefile reads the SMTP password
// from, so that it is not copied into the Corefile.
const smtpPasswordEnv = "REGDNS_SMTP_PASSWORD"

// runCorefile prints a Corefile for the original server's config.toml. What it cannot
// translate is listed in comments marked NOT TRANSLATED, what needs a decision CHECK.
// With -templates DIR the mail texts and pages are converted into template files there.
func runCorefile(g globals, args []string) int {
	fs := g.flags("corefile", "corefile --from config.toml [-templates DIR]")
	from := fs.String("from", "", "the original server's config.toml")
	templates := fs.String("templates", "", "directory to write the converted mail and page templates to")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if *from == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitError
	}
	var oc originalConfig
	md, err := toml.DecodeFile(*from, &oc)
	if err != nil {
		return g.fail("corefile", err)
	}
	if oc.General.Domain == "" {
		return g.fail("corefile", fmt.Errorf("%s: no general.domain", *from))
	}
	c := &converter{zone: strings.ToLower(strings.TrimSuffix(oc.General.Domain, "."))}
	for _, k := range md.Undecoded() {
		c.flag("NOT TRANSLATED: %s (no equivalent)", k)
	}
	c.general(oc)
	c.pdns(oc)
	c.email(oc)
	if err := c.templates(oc, *templates); err != nil {
		return g.fail("corefile", err)
	}
	c.write(g.stdout, *from)
	return exitOK
}

// converter collects the registry block's lines and the comments about them.
type converter struct {
	zone  string
	lines []string
	notes []string
}

func (c *converter) line(format string, args ...any) {
	c.lines = append(c.lines, fmt.Sprintf(format, args...))
}
func (c *converter) flag(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *converter) write(w io.Writer, from string) {
	fmt.Fprintf(w, "# Converted by regdnsctl from %s, the original registration server's configuration.\n", filepath.Base(from))
	fmt.Fprintf(w, "# Review what is marked NOT TRANSLATED or CHECK; every property is in plugin/registry/README.md.\n")
	for _, n := range c.notes {
		fmt.Fprintf(w, "# %s\n", n)
	}
	fmt.Fprintf(w, "%s:53 {\n    errors\n    registry {\n", c.zone)
	for _, l := range c.lines {
		fmt.Fprintf(w, "        %s\n", l)
	}
	fmt.Fprintf(w, "    }\n}\n")
}

func (c *converter) general(oc originalConfig) {
	if oc.General.HTTPPort != 0 {
		host := oc.General.Host
		if host == "" || host == "0.0.0.0" {
			host = "127.0.0.1"
			c.flag("CHECK: the API listens on 127.0.0.1:%d, behind your reverse proxy, where the original listened on %q", oc.General.HTTPPort, oc.General.Host)
		}
		c.line("api %s", netJoin(host, oc.General.HTTPPort))
	}
	if db := oc.General.DBPath; db != "" {
		source := db
		if !strings.Contains(db, "://") {
			source = "sqlite:" + db
		}
		c.flag("data: import the names with `regdnsctl -conf THIS_COREFILE import %s` (see the README's cutover runbook)", redactURL(source))
	}
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func (c *converter) pdns(oc originalConfig) {
	p := oc.PDNS
	if p.DNSTTL != nil {
		c.line("ttl %d", *p.DNSTTL)
	}
	if p.TunnelTTL != nil {
		c.line("address_ttl %d", *p.TunnelTTL)
	}
	if p.APITTL != nil {
		c.flag("NOT TRANSLATED: pdns.api_ttl = %d: api.%s answers with address_ttl", *p.APITTL, c.zone)
	}
	c.nameServers(p.NSRecords)
	c.soa(p.SOARecord)
	for _, r := range p.CAARecords {
		c.record("caa_records", "CAA", r)
	}
	for _, r := range p.MXRecords {
		c.record("mx_records", "MX", r)
	}
	for _, r := range p.TXTRecords {
		c.record("txt_records", "TXT", r)
	}
	for _, r := range p.CNAMERecords {
		c.record("cname_records", "CNAME", r)
	}
	for _, a := range p.WWWAddresses {
		c.address("www_addresses", "www", a)
	}
	c.geoIP(oc)
}

// nameServers turns [name, address] pairs into ns lines, one per name with all its addresses.
func (c *converter) nameServers(pairs [][]string) {
	var names []string
	addrs := map[string][]string{}
	for _, p := range pairs {
		if len(p) == 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(p[0], "."))
		if _, ok := addrs[name]; !ok {
			names = append(names, name)
		}
		for _, a := range p[1:] {
			if _, err := netip.ParseAddr(a); err != nil {
				c.flag("NOT TRANSLATED: ns_records %q: %q is not an IP address", p[0], a)
				continue
			}
			addrs[name] = append(addrs[name], a)
		}
	}
	for _, n := range names {
		c.line("%s", strings.TrimSpace("ns "+n+" "+strings.Join(addrs[n], " ")))
	}
}

// soa keeps the SOA's names and timers; the serial is this server's own (the etcd revision).
func (c *converter) soa(record string) {
	f := strings.Fields(record)
	switch len(f) {
	case 0:
		return
	case 7:
		c.line("soa %s %s %s", f[0], f[1], strings.Join(f[3:], " "))
		if serial, err := strconv.ParseUint(f[2], 10, 32); err == nil && serial > 1 {
			c.flag("CHECK: the original's SOA serial was %d; this server's is the etcd revision, which starts low: secondaries that transfer the zone must be reset (or their zone removed) at cutover", serial)
		}
	case 2:
		c.line("soa %s %s", f[0], f[1])
	default:
		c.flag("NOT TRANSLATED: soa_record %q: want MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM", record)
	}
}

// record turns one of the original's records, "data" at the apex or [owner, data], into a
// record line.
func (c *converter) record(key, typ string, r any) {
	owner, data := "@", ""
	switch v := r.(type) {
	case string:
		data = v
	case []any:
		if len(v) == 2 {
			owner, _ = v[0].(string)
			data, _ = v[1].(string)
		}
	}
	rel, ok := c.relative(owner)
	if data == "" || !ok {
		c.flag("NOT TRANSLATED: %s %v: want \"data\" or [\"owner in %s\", \"data\"]", key, r, c.zone)
		return
	}
	if typ == "TXT" && !strings.HasPrefix(data, `"`) {
		data = strconv.Quote(data)
	}
	c.line("record %s %s %s", rel, typ, data)
}

// address serves a at owner, as A or AAAA.
func (c *converter) address(key, owner, a string) {
	addr, err := netip.ParseAddr(a)
	if err != nil {
		c.flag("NOT TRANSLATED: %s %q is not an IP address", key, a)
		return
	}
	typ := "A"
	if addr.Is6() && !addr.Is4In6() {
		typ = "AAAA"
	}
	c.line("record %s %s %s", owner, typ, addr.Unmap())
}

// relative is owner relative to the zone ("@" for the apex), or false outside it.
func (c *converter) relative(owner string) (string, bool) {
	o := strings.ToLower(strings.TrimSuffix(owner, "."))
	switch {
	case o == "@" || o == c.zone:
		return "@", true
	case strings.HasSuffix(o, "."+c.zone):
		return strings.TrimSuffix(o, "."+c.zone), true
	case !strings.Contains(o, "."):
		return o, true
	}
	return "", false
}

// geoIP: the default tunnel address and one per continent.
func (c *converter) geoIP(oc originalConfig) {
	g := oc.PDNS.GeoIP
	if g.Default != "" {
		c.line("tunnel %s", g.Default)
	}
	for _, code := range slices.Sorted(maps.Keys(g.Continent)) {
		var addrs []string
		switch v := g.Continent[code].(type) {
		case string:
			addrs = []string{v}
		case []any:
			for _, a := range v {
				s, _ := a.(string)
				addrs = append(addrs, s)
			}
		}
		if !registry.IsContinent(strings.ToUpper(code)) || slices.Contains(addrs, "") {
			c.flag("NOT TRANSLATED: pdns.geoip.continent.%s = %v", code, g.Continent[code])
			continue
		}
		c.line("tunnel %s %s", strings.ToUpper(code), strings.Join(addrs, " "))
	}
	if g.Database != "" {
		c.line("geoip %s", g.Database)
	}
	c.flag("CHECK: api.%s has no address here: add `api_address ADDRESS` (this server's API) or `record api A ADDRESS`", c.zone)
}

func (c *converter) email(oc originalConfig) {
	e := oc.Email
	if e.Server == "" {
		return
	}
	server := e.Server
	if !strings.Contains(server, ":") {
		server += ":465"
		c.flag("CHECK: smtp %s tls assumes implicit TLS on port 465 (the original's mail library default); use `smtp %s:587 starttls` if your server wants STARTTLS", server, e.Server)
		c.line("smtp %s tls", server)
	} else {
		c.line("smtp %s", server)
	}
	if e.User != "" {
		c.line("smtp_auth %s {$%s}", e.User, smtpPasswordEnv)
		c.flag("CHECK: the SMTP password is not copied: export %s before starting the server", smtpPasswordEnv)
	}
	if e.Sender != "" {
		c.line("mail_from %s", e.Sender)
	}
	c.line("verify_url https://api.%s/verifyemail", c.zone)
	c.flag("CHECK: verify_url keeps the original's link (/verifyemail?s=ID on api.%s); mails already sent used http://", c.zone)
}

// placeholders maps the original's template placeholders to ours.
var placeholders = strings.NewReplacer("{{", `{{"{{"}}`, "{token}", "{{.Token}}", "{link}", "{{.Link}}", "{domain}", "{{.Domain}}")

// htmlTags, with <br> and </p> turned into line breaks first, make a plain-text mail of the
// original's HTML mail bodies: ours are sent as text/plain.
var (
	htmlBreaks = regexp.MustCompile(`(?i)<br\s*/?>|</p>`)
	htmlTags   = regexp.MustCompile(`<[^>]*>`)
)

// templates writes the original's mail texts and pages as template files in dir, or, without
// dir, says which were left out.
func (c *converter) templates(oc originalConfig, dir string) error {
	e := oc.Email
	files := []struct {
		kind, text string
		html       bool
	}{
		{"reclaim_subject", e.ReclamationTitle, false}, {"reclaim_body", e.ReclamationBody, true},
		{"verify_subject", e.ConfirmationTitle, false}, {"verify_body", e.ConfirmationBody, true},
		{"success_page", e.SuccessPage, false}, {"error_page", e.ErrorPage, false},
	}
	for _, f := range files {
		if f.text == "" {
			continue
		}
		if dir == "" {
			c.flag("NOT TRANSLATED: the %s text (rerun with -templates DIR to convert it)", f.kind)
			continue
		}
		text := f.text
		if f.html {
			text = htmlTags.ReplaceAllString(htmlBreaks.ReplaceAllString(text, "\n"), "")
			c.flag("CHECK: %s was HTML; converted to plain text (mail is sent as text/plain)", f.kind)
		}
		path, err := filepath.Abs(filepath.Join(dir, f.kind+".tmpl"))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(placeholders.Replace(text)), 0o644); err != nil {
			return err
		}
		c.line("template %s %s", f.kind, path)
	}
	return nil
}
