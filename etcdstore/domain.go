package etcdstore

import (
	"net/netip"
	"time"
)

// Mode says how a name resolves.
type Mode int

const (
	// ModeTunnel names resolve to the PageKite tunnel address (api.md's mode=0, the default).
	ModeTunnel Mode = 0
	// ModeDynamic names resolve to the address the gateway last reported (mode=1, dynamic DNS).
	ModeDynamic Mode = 1
)

// Challenge is one ACME DNS-01 value served at _acme-challenge.<name>.
type Challenge struct {
	Value string    `json:"value"`
	Set   time.Time `json:"set"`
}

// Domain is the stored record of one registered name. Secrets other than the API token are
// kept only as hashes; the token itself is kept because PageKite signatures are keyed by it.
type Domain struct {
	Name        string      `json:"name"`
	Token       string      `json:"token"`
	Description string      `json:"description"`
	Mode        Mode        `json:"mode"`
	Continent   string      `json:"continent,omitempty"`
	IPv4        netip.Addr  `json:"ipv4,omitzero"`
	IPv6        netip.Addr  `json:"ipv6,omitzero"`
	Challenges  []Challenge `json:"challenges,omitempty"`
	Created     time.Time   `json:"created"`
	LastPing    time.Time   `json:"last_ping,omitzero"`

	// Email is the verified address; mail for this name goes only there.
	Email string `json:"email,omitempty"`
	// OptOut records the gateway owner's choice to receive no mail but security mail.
	OptOut bool `json:"optout,omitempty"`

	PendingEmail   string    `json:"pending_email,omitempty"`
	VerifyHash     string    `json:"verify_hash,omitempty"`
	VerifyExpires  time.Time `json:"verify_expires,omitzero"`
	ReclaimHash    string    `json:"reclaim_hash,omitempty"`
	ReclaimExpires time.Time `json:"reclaim_expires,omitzero"`

	// rev is the etcd mod revision of a record of the View; 0 elsewhere.
	rev int64
}

// SetAddr records addr as the gateway's address of its family.
func (d *Domain) SetAddr(addr netip.Addr) {
	addr = addr.Unmap()
	if addr.Is4() {
		d.IPv4 = addr
	} else if addr.Is6() {
		d.IPv6 = addr
	}
}

// AddChallenge puts value first among the challenges, keeping at most keep of the newest
// (always at least value itself). Setting a value that is already present refreshes it
// instead of adding a duplicate.
func (d *Domain) AddChallenge(value string, now time.Time, keep int) {
	out := make([]Challenge, 0, max(keep, 1))
	out = append(out, Challenge{Value: value, Set: now})
	for _, c := range d.Challenges {
		if len(out) >= keep {
			break
		}
		if c.Value != value {
			out = append(out, c)
		}
	}
	d.Challenges = out
}

// Live reports whether the value is still served at now: set less than maxAge ago, or
// maxAge is 0 (values never expire).
func (c Challenge) Live(now time.Time, maxAge time.Duration) bool {
	return maxAge <= 0 || now.Sub(c.Set) < maxAge
}

// LiveChallenges returns the values set after now-maxAge, newest first.
func (d *Domain) LiveChallenges(now time.Time, maxAge time.Duration) []string {
	var out []string
	for _, c := range d.Challenges {
		if c.Live(now, maxAge) {
			out = append(out, c.Value)
		}
	}
	return out
}

// SetReclamationToken makes rt, until expires, the one reclamation token of the record.
func (d *Domain) SetReclamationToken(rt string, expires time.Time) {
	d.ReclaimHash, d.ReclaimExpires = hashSecret(rt), expires
}

// ClearReclamationToken removes any pending reclamation token.
func (d *Domain) ClearReclamationToken() { d.ReclaimHash, d.ReclaimExpires = "", time.Time{} }

// ReclamationTokenValid reports whether rt is the record's pending, unexpired reclamation token.
func (d *Domain) ReclamationTokenValid(rt string, now time.Time) bool {
	return ByReclamationToken(rt).matches(d) && now.Before(d.ReclaimExpires)
}

// SetVerification starts an email verification of email with id, valid until expires.
func (d *Domain) SetVerification(email, id string, expires time.Time) {
	d.PendingEmail, d.VerifyHash, d.VerifyExpires = email, hashSecret(id), expires
}

// ClearVerification cancels any pending email verification.
func (d *Domain) ClearVerification() {
	d.PendingEmail, d.VerifyHash, d.VerifyExpires = "", "", time.Time{}
}
