package etcdstore

import (
	"net/netip"
	"slices"
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

// Record is the stored record of one registered name. Secrets other than the API token are
// kept only as hashes; the token itself is kept because PageKite signatures are keyed by it.
//
// The view holds one per registered name, so its size is the view's: what few records
// carry (a pending email verification, reclamation tokens, an operator's disabling) is behind
// a pointer, nil for most, and the small fields sit together.
type Record struct {
	Name        string `json:"name"`
	Token       string `json:"token"`
	Description string `json:"description"`
	Mode        Mode   `json:"mode"`
	// OptOut records the gateway owner's choice to receive no mail but security mail.
	OptOut bool `json:"optout,omitempty"`
	// EmailUnverified says the contact address was set but not yet proved, by a verification
	// link or a mailed reclamation token. It is stored negated so that records written when
	// email held only verified addresses read as verified. Set it through SetEmail.
	EmailUnverified bool        `json:"email_unverified,omitempty"`
	Continent       string      `json:"continent,omitempty"`
	IPv4            netip.Addr  `json:"ipv4,omitzero"`
	IPv6            netip.Addr  `json:"ipv6,omitzero"`
	Challenges      []Challenge `json:"challenges,omitempty"`
	Created         time.Time   `json:"created"`
	LastPing        time.Time   `json:"last_ping,omitzero"`

	// Email is the name's contact address, verified or not: reclamation mail goes there.
	Email string `json:"email,omitempty"`

	// Pending is what waits for a confirmation, and an operator's disabling, stored in the
	// same JSON object as the rest. Read it through Verification, ReclamationTokens and
	// Disabled (nil means none of them); it is changed only by methods that copy it, since
	// records of the view share it.
	*Pending

	// rev is the etcd mod revision of a record of the View; 0 elsewhere.
	rev int64
}

// MaxReclamationTokens is how many reclamation tokens a record keeps: a new one pushes out
// the oldest, so a few mails sent close together all stay usable.
const MaxReclamationTokens = 3

// Pending is the verification of the contact address waiting for its link to be followed,
// the reclamation tokens mailed to the contact address, and why and since when an operator
// disabled the name: what few records carry.
type Pending struct {
	VerifyHash    string        `json:"verify_hash,omitempty"`
	VerifyExpires time.Time     `json:"verify_expires,omitzero"`
	Reclamations  []Reclamation `json:"reclamations,omitempty"`
	// DisabledReason, never empty on a disabled name, says it is one (Disable).
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledSince  time.Time `json:"disabled_since,omitzero"`

	// Fields of records written before contact addresses and lists of reclamation tokens:
	// read, moved to their place by upgrade, never written again.
	LegacyPendingEmail   string    `json:"pending_email,omitempty"`
	LegacyReclaimHash    string    `json:"reclaim_hash,omitempty"`
	LegacyReclaimExpires time.Time `json:"reclaim_expires,omitzero"`
}

// Reclamation is one mailed reclamation token: usable, as often as needed, until Expires.
type Reclamation struct {
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires"`
}

// empty reports whether nothing is pending.
func (p *Pending) empty() bool {
	return p.VerifyHash == "" && p.VerifyExpires.IsZero() && len(p.Reclamations) == 0 &&
		p.DisabledReason == "" && p.DisabledSince.IsZero() &&
		p.LegacyPendingEmail == "" && p.LegacyReclaimHash == "" && p.LegacyReclaimExpires.IsZero()
}

// pendingCopy returns a copy of what is pending, the zero Pending when nothing is.
func (d *Record) pendingCopy() Pending {
	if d.Pending == nil {
		return Pending{}
	}
	return *d.Pending
}

// replacePending stores p as a new Pending (never writing the one d may share with the view's
// record), or none when p is empty.
func (d *Record) replacePending(p Pending) {
	if p.empty() {
		d.Pending = nil
		return
	}
	d.Pending = &p
}

// upgrade moves what records of earlier versions stored in other fields to where this one
// keeps it: a pending address becomes the unverified contact address (as the address set by
// /setemail always is now), and the one reclamation token a list of one.
func (d *Record) upgrade() {
	p := d.pendingCopy()
	if p.LegacyPendingEmail == "" && p.LegacyReclaimHash == "" && p.LegacyReclaimExpires.IsZero() {
		return
	}
	if p.LegacyPendingEmail != "" {
		d.Email, d.EmailUnverified = p.LegacyPendingEmail, true
	}
	if p.LegacyReclaimHash != "" && !slices.ContainsFunc(p.Reclamations, func(r Reclamation) bool { return r.Hash == p.LegacyReclaimHash }) {
		p.Reclamations = append([]Reclamation{{p.LegacyReclaimHash, p.LegacyReclaimExpires}}, p.Reclamations...)
	}
	p.LegacyPendingEmail, p.LegacyReclaimHash, p.LegacyReclaimExpires = "", "", time.Time{}
	d.replacePending(p)
}

// SetEmail makes addr the contact address, verified or not ("" removes it). It leaves the
// pending verification and the reclamation tokens alone.
func (d *Record) SetEmail(addr string, verified bool) {
	d.Email, d.EmailUnverified = addr, addr != "" && !verified
}

// EmailVerified reports whether the contact address was proved to reach its owner.
func (d *Record) EmailVerified() bool { return d.Email != "" && !d.EmailUnverified }

// Verification is the hash of the pending verification id of the contact address and when
// it expires, or "" and the zero time when none is pending.
func (d *Record) Verification() (hash string, expires time.Time) {
	p := d.pendingCopy()
	return p.VerifyHash, p.VerifyExpires
}

// SetVerification starts a verification of the contact address with id, valid until expires,
// replacing any pending one.
func (d *Record) SetVerification(id string, expires time.Time) {
	p := d.pendingCopy()
	p.VerifyHash, p.VerifyExpires = hashSecret(id), expires
	d.replacePending(p)
}

// ClearVerification cancels any pending verification.
func (d *Record) ClearVerification() {
	p := d.pendingCopy()
	p.VerifyHash, p.VerifyExpires = "", time.Time{}
	d.replacePending(p)
}

// ReclamationTokens lists the record's reclamation tokens, newest first, expired or not.
// The slice is shared: do not modify it.
func (d *Record) ReclamationTokens() []Reclamation { return d.pendingCopy().Reclamations }

// AddReclamationToken makes rt, until expires, the newest reclamation token, keeping at most
// MaxReclamationTokens (the oldest goes). Adding a token already there renews it.
func (d *Record) AddReclamationToken(rt string, expires time.Time) {
	h := hashSecret(rt)
	p := d.pendingCopy()
	out := make([]Reclamation, 0, MaxReclamationTokens)
	out = append(out, Reclamation{Hash: h, Expires: expires})
	for _, r := range p.Reclamations {
		if len(out) == MaxReclamationTokens {
			break
		}
		if r.Hash != h {
			out = append(out, r)
		}
	}
	p.Reclamations = out
	d.replacePending(p)
}

// DropExpiredReclamationTokens removes the reclamation tokens that have expired at now.
func (d *Record) DropExpiredReclamationTokens(now time.Time) {
	p := d.pendingCopy()
	var live []Reclamation
	for _, r := range p.Reclamations {
		if now.Before(r.Expires) {
			live = append(live, r)
		}
	}
	if len(live) == len(p.Reclamations) {
		return
	}
	p.Reclamations = live
	d.replacePending(p)
}

// ClearReclamationTokens removes every reclamation token.
func (d *Record) ClearReclamationTokens() {
	p := d.pendingCopy()
	p.Reclamations = nil
	d.replacePending(p)
}

// ReclamationTokenValid reports whether rt is one of the record's reclamation tokens and
// has not expired at now.
func (d *Record) ReclamationTokenValid(rt string, now time.Time) bool {
	if rt == "" {
		return false
	}
	want, valid := hashSecret(rt), false
	for _, r := range d.ReclamationTokens() {
		valid = equalSecret(r.Hash, want) && now.Before(r.Expires) || valid
	}
	return valid
}

// Disable makes the name stop resolving and its secrets stop working, while it stays taken,
// for reason (which must not be empty) since at.
func (d *Record) Disable(reason string, at time.Time) {
	p := d.pendingCopy()
	p.DisabledReason, p.DisabledSince = reason, at
	d.replacePending(p)
}

// Enable undoes Disable at now, which counts as a ping: a name disabled for longer than the
// Corefile's `expire` and its grace would otherwise be deleted by the sweeper at once.
func (d *Record) Enable(now time.Time) {
	d.LastPing = now
	p := d.pendingCopy()
	p.DisabledReason, p.DisabledSince = "", time.Time{}
	d.replacePending(p)
}

// Disabled reports whether an operator disabled the name, why and since when.
func (d *Record) Disabled() (reason string, since time.Time, disabled bool) {
	if d.Pending == nil {
		return "", time.Time{}, false
	}
	return d.DisabledReason, d.DisabledSince, d.DisabledReason != ""
}

// IsDisabled reports whether an operator disabled the name.
func (d *Record) IsDisabled() bool { return d.Pending != nil && d.DisabledReason != "" }

// SetAddr records addr as the gateway's address of its family.
func (d *Record) SetAddr(addr netip.Addr) {
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
func (d *Record) AddChallenge(value string, now time.Time, keep int) {
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
func (d *Record) LiveChallenges(now time.Time, maxAge time.Duration) []string {
	var out []string
	for _, c := range d.Challenges {
		if c.Live(now, maxAge) {
			out = append(out, c.Value)
		}
	}
	return out
}
