package main

import (
	"database/sql"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/regdns/regdns/api"
	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry"
)

// mapping turns rows of the original database into records for one registry block.
type mapping struct {
	zones []string // "mydomain.org.", lower case, as the original's names end
	api   api.Config
	now   time.Time
	// verifyTTL and reclaimTTL give imported pending verification ids and reclamation tokens
	// their expiry, counted from the import: the original's never expired.
	verifyTTL, reclaimTTL time.Duration
	// owned are the labels the zone itself answers for (the API's host, the web site, its
	// static records and name servers): a row holding one cannot be imported.
	owned map[string]bool
}

// zoneOwns reports whether label is one of the zone's own names (ns<digits> included).
func (m mapping) zoneOwns(label string) bool {
	digits, isNS := strings.CutPrefix(label, "ns")
	return m.owned[label] || (isNS && strings.Trim(digits, "0123456789") == "")
}

func newMapping(cfg registry.Config, zone *registry.Zone, now time.Time) mapping {
	m := mapping{zones: cfg.Zones, api: cfg.APIConfig(zone), now: now.UTC().Truncate(time.Second), owned: map[string]bool{}}
	for _, label := range append([]string{"api", "www", "_psl"}, zone.Owned...) {
		m.owned[label] = true
	}
	m.verifyTTL, m.reclaimTTL = cfg.API.SecretLifetimes()
	return m
}

// mapped is the outcome of one row: a record, with notes on what was adjusted, or the reason
// the row cannot be imported.
type mapped struct {
	record etcdstore.Record
	notes  []string
	skip   string
}

// record maps one row; every column has its place here or its reason to be dropped in
// the README's mapping table.
func (m mapping) record(r row) mapped {
	var out mapped
	note := func(format string, args ...any) { out.notes = append(out.notes, fmt.Sprintf(format, args...)) }
	label, skip := m.label(r.Name.String, note)
	if skip != "" {
		return mapped{skip: skip}
	}
	if r.Token.String == "" {
		return mapped{skip: "no token"}
	}
	mode := etcdstore.ModeTunnel
	switch r.Mode.Int64 {
	case 0:
	case 1:
		mode = etcdstore.ModeDynamic
	default:
		return mapped{skip: fmt.Sprintf("mode %d is neither 0 (tunnel) nor 1 (dynamic DNS)", r.Mode.Int64)}
	}
	d := etcdstore.Record{
		Name:        label,
		Token:       r.Token.String,
		Description: r.Description.String,
		Mode:        mode,
		OptOut:      r.OptOut.Bool,
	}
	if r.Token.String != strings.ToLower(r.Token.String) {
		note("the token has upper-case letters: the API lowercases the tokens it is given, so API calls with it will fail (PageKite will accept it)")
	}
	d.Created, d.LastPing = m.lastSeen(r, note)
	m.setContinent(&d, r.Continent.String, note)
	m.setAddress(&d, r.LastIP, mode, note)
	if c := strings.TrimSpace(r.Challenge.String); c != "" {
		d.AddChallenge(c, m.now, 1)
	}
	m.setContact(&d, r, note)
	out.record = d
	return out
}

// label is the registered label of a row's full name, "label.zone." for one of the block's
// zones (names are registered under all of them), or why it has none.
func (m mapping) label(full string, note func(string, ...any)) (string, string) {
	name := strings.ToLower(strings.TrimSpace(full))
	if name != full {
		note("name %q stored as %q", full, name)
	}
	name = strings.TrimSuffix(name, ".") + "."
	for _, zone := range m.zones {
		if label, ok := strings.CutSuffix(name, "."+zone); ok {
			reason, err := api.CheckName(m.api, label)
			switch {
			case err == nil:
			case reason == "ReservedName" && !m.zoneOwns(label):
				// The original reserved fewer names: a gateway holding one keeps it, since
				// refusing it would break a running gateway; only new registrations are refused.
				note("%q is reserved for new registrations; imported because a gateway holds it (delete it to take it back)", label)
			default:
				return "", fmt.Sprintf("%q is not a name the API would register: %v", full, err)
			}
			return label, ""
		}
	}
	return "", fmt.Sprintf("%q is outside the zone %s", full, strings.Join(m.zones, " "))
}

// lastSeen maps timestamp (set at subscribe and by every ping) to the creation and last
// ping times, so that `expire` counts from the gateway's last ping to the old server.
func (m mapping) lastSeen(r row, note func(string, ...any)) (created, lastPing time.Time) {
	if r.Timestamp.Int64 <= 0 {
		note("no timestamp: last ping and creation set to the import time")
		return m.now, m.now
	}
	t := time.Unix(r.Timestamp.Int64, 0).UTC()
	if t.After(m.now) {
		note("timestamp %d is in the future: last ping and creation set to the import time", r.Timestamp.Int64)
		return m.now, m.now
	}
	return t, t
}

func (m mapping) setContinent(d *etcdstore.Record, code string, note func(string, ...any)) {
	code = strings.ToUpper(strings.TrimSpace(code))
	switch {
	case registry.IsContinent(code):
		d.Continent = code
	case code != "":
		note("continent %q is not a continent code: none kept", code)
	}
}

// setAddress keeps last_ip, IPv4 or IPv6, as the gateway's address of its family.
func (m mapping) setAddress(d *etcdstore.Record, lastIP sql.NullString, mode etcdstore.Mode, note func(string, ...any)) {
	s := strings.TrimSpace(lastIP.String)
	switch {
	case s == "" && mode == etcdstore.ModeDynamic:
		note("no last_ip: no address kept; this dynamic DNS name resolves once the gateway pings")
		return
	case s == "":
		note("no last_ip: no address kept")
		return
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		note("last_ip %q is not an IP address: none kept", s)
		return
	}
	d.SetAddr(addr)
}

// setContact maps the account's email, the row's verification state and its reclamation
// token. An address is the name's contact whether verified or not, as in the original; a
// pending verification id is kept only while the address is unverified.
func (m mapping) setContact(d *etcdstore.Record, r row, note func(string, ...any)) {
	if !r.Email.Valid {
		note("account %d does not exist: no contact email", r.AccountID.Int64)
	}
	if rt := strings.TrimSpace(r.ReclamationToken.String); rt != "" {
		d.AddReclamationToken(rt, m.now.Add(m.reclaimTTL))
	}
	email := strings.TrimSpace(r.Email.String)
	if email == "" {
		return
	}
	d.SetEmail(email, r.Verified.Bool)
	if vid := strings.TrimSpace(r.VerifID.String); vid != "" && !r.Verified.Bool {
		d.SetVerification(vid, m.now.Add(m.verifyTTL))
	}
}

// sameImport reports whether a stored record is the one this import would write, apart from
// the times an import takes from its own clock (a challenge's set time, the expiry of a
// pending verification id or reclamation token): a rerun finds its earlier import unchanged.
func sameImport(stored, record *etcdstore.Record) bool {
	return reflect.DeepEqual(withoutImportTimes(*stored), withoutImportTimes(*record))
}

func withoutImportTimes(d etcdstore.Record) etcdstore.Record {
	d.Challenges = slices.Clone(d.Challenges)
	for i := range d.Challenges {
		d.Challenges[i].Set = time.Time{}
	}
	if d.Pending != nil {
		p := *d.Pending
		p.VerifyExpires = time.Time{}
		p.Reclamations = slices.Clone(p.Reclamations)
		for i := range p.Reclamations {
			p.Reclamations[i].Expires = time.Time{}
		}
		d.Pending = &p
	}
	return d
}
