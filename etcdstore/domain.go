package etcdstore

import (
	"net/netip"
	"time"
)

// Mode says how a name resolves.
type Mode uint8

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
//
// The view holds one per registered name, so its size is the view's: what few records
// carry (a pending email verification or reclamation) is behind a pointer, nil for most, and
// the small fields sit together.
type Domain struct {
	Name        string `json:"name"`
	Token       string `json:"token"`
	Description string `json:"description"`
	Mode        Mode   `json:"mode"`
	// OptOut records the gateway owner's choice to receive no mail but security mail.
	OptOut     bool        `json:"optout,omitempty"`
	Continent  string      `json:"continent,omitempty"`
	IPv4       netip.Addr  `json:"ipv4,omitzero"`
	IPv6       netip.Addr  `json:"ipv6,omitzero"`
	Challenges []Challenge `json:"challenges,omitempty"`
	Created    time.Time   `json:"created"`
	LastPing   time.Time   `json:"last_ping,omitzero"`

	// Email is the verified address; mail for this name goes only there.
	Email string `json:"email,omitempty"`

	// Pending is what waits for a confirmation, stored in the same JSON object as the rest.
	// Its fields are read through the methods of the same names (nil means none pending) and
	// changed only by the Set and Clear methods, which copy it: records of the view share it.
	*Pending

	// rev is the etcd mod revision of a record of the View; 0 elsewhere.
	rev int64
}

// Pending is an email verification and a reclamation token waiting to be used.
type Pending struct {
	PendingEmail   string    `json:"pending_email,omitempty"`
	VerifyHash     string    `json:"verify_hash,omitempty"`
	VerifyExpires  time.Time `json:"verify_expires,omitzero"`
	ReclaimHash    string    `json:"reclaim_hash,omitempty"`
	ReclaimExpires time.Time `json:"reclaim_expires,omitzero"`
}

// pending returns what is pending, the zero Pending when nothing is.
func (d *Domain) pending() Pending {
	if d.Pending == nil {
		return Pending{}
	}
	return *d.Pending
}

// setPending stores p as a new Pending (never writing the one d may share with the view's
// record), or none when p is empty.
func (d *Domain) setPending(p Pending) {
	if p == (Pending{}) {
		d.Pending = nil
		return
	}
	d.Pending = &p
}

// PendingEmail is the address waiting for verification, or "".
func (d *Domain) PendingEmail() string { return d.pending().PendingEmail }

// VerifyHash is the hash of the pending verification id, or "".
func (d *Domain) VerifyHash() string { return d.pending().VerifyHash }

// VerifyExpires is when the pending verification expires (zero when there is none).
func (d *Domain) VerifyExpires() time.Time { return d.pending().VerifyExpires }

// ReclaimHash is the hash of the pending reclamation token, or "".
func (d *Domain) ReclaimHash() string { return d.pending().ReclaimHash }

// ReclaimExpires is when the pending reclamation token expires (zero when there is none).
func (d *Domain) ReclaimExpires() time.Time { return d.pending().ReclaimExpires }

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
	p := d.pending()
	p.ReclaimHash, p.ReclaimExpires = hashSecret(rt), expires
	d.setPending(p)
}

// ClearReclamationToken removes any pending reclamation token.
func (d *Domain) ClearReclamationToken() {
	p := d.pending()
	p.ReclaimHash, p.ReclaimExpires = "", time.Time{}
	d.setPending(p)
}

// ReclamationTokenValid reports whether rt is the record's pending, unexpired reclamation token.
func (d *Domain) ReclamationTokenValid(rt string, now time.Time) bool {
	return ByReclamationToken(rt).matches(d) && now.Before(d.ReclaimExpires())
}

// SetVerification starts an email verification of email with id, valid until expires.
func (d *Domain) SetVerification(email, id string, expires time.Time) {
	p := d.pending()
	p.PendingEmail, p.VerifyHash, p.VerifyExpires = email, hashSecret(id), expires
	d.setPending(p)
}

// ClearVerification cancels any pending email verification.
func (d *Domain) ClearVerification() {
	p := d.pending()
	p.PendingEmail, p.VerifyHash, p.VerifyExpires = "", "", time.Time{}
	d.setPending(p)
}
