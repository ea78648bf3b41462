package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/regdns/regdns/etcdstore"
)

// subscribe registers a new name, or hands a taken one to whoever holds its reclamation token.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name, err := s.name(q)
	if err != nil {
		return err
	}
	audited(r.Context()).name = name
	desc, err := description(q)
	if err != nil {
		return err
	}
	m, err := mode(q)
	if err != nil {
		return err
	}
	// Only compared with the contact address, never refused: the gateway's form takes any
	// non-space@non-space, and the original server did not check it either.
	addr := strings.TrimSpace(q.Get("email"))
	rt := secret(q, "reclamationToken")
	addrs, err := s.addresses(r, q)
	if err != nil {
		return err
	}
	now := time.Now()
	var continent string
	if len(addrs) > 0 {
		continent = s.continent(addrs[0])
	}

	d := etcdstore.Record{
		Name:        name,
		Token:       uuid.NewString(),
		Description: orDefault(desc, name+"'s server"),
		Mode:        m,
		Continent:   continent,
		Created:     now,
		LastPing:    now,
	}
	setAddrs(&d, addrs)
	err = s.store.Create(r.Context(), d)
	switch {
	case err == nil:
	case !errors.Is(err, etcdstore.ErrNameTaken):
		return err
	case rt != "":
		token := uuid.NewString()
		d, err = s.store.Update(r.Context(), etcdstore.ByName(name), func(d *etcdstore.Record) error {
			if d.IsDisabled() {
				// Refused as a name: the gateway then says "already used" instead of retrying.
				return unavailableName("NameDisabled", "The name %q is disabled by the registry's operator.", name)
			}
			if !d.ReclamationTokenValid(rt, now) {
				return badRequest("ReclamationTokenMismatch", "The reclamation token is wrong or has expired.")
			}
			d.Token, d.Mode, d.Continent = token, m, continent
			if desc != "" {
				d.Description = desc
			}
			// The token came by mail to the contact address: that proves the address. The
			// token stays usable until it expires, for a retry after a failed certificate.
			d.SetEmail(d.Email, true)
			setAddrs(d, addrs)
			return nil
		})
		if errors.Is(err, etcdstore.ErrNotFound) {
			return badRequest("NoSuchName", "The name %q is not registered.", name)
		}
		if err != nil {
			return err
		}
	default:
		return s.nameTaken(r.Context(), name, addr)
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": d.Name, "token": d.Token})
	return nil
}

// nameTaken tells the gateway whether the owner of the taken name could reclaim it: when the
// address it sent reaches the mailbox of the name's contact address, verified or not (the
// reclamation mail itself proves the mailbox).
func (s *Server) nameTaken(ctx context.Context, name, addr string) error {
	if addr != "" {
		d, err := s.store.Get(ctx, etcdstore.ByName(name))
		if err != nil && !errors.Is(err, etcdstore.ErrNotFound) {
			return err
		}
		if sameMailbox(d.Email, addr) {
			return &clientError{Code: "UnavailableNameReclamationPossible", Reason: "NameTaken",
				Message: fmt.Sprintf("The name %q is taken; its owner can reclaim it through /reclaim.", name)}
		}
	}
	return unavailableName("NameTaken", "The name %q is taken.", name)
}

// unsubscribe deletes a name, given its token or an unexpired reclamation token.
func (s *Server) unsubscribe(_ http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	token, rt := secret(q, "token"), secret(q, "reclamationToken")
	audit := audited(r.Context())
	var err error
	switch {
	case token != "":
		_, err = s.store.Delete(r.Context(), etcdstore.ByToken(token), func(d *etcdstore.Record) error {
			audit.name = d.Name
			return refuseDisabled(d)
		})
	case rt != "":
		now := time.Now()
		_, err = s.store.Delete(r.Context(), etcdstore.ByReclamationToken(rt), func(d *etcdstore.Record) error {
			audit.name = d.Name
			if err := refuseDisabled(d); err != nil {
				return err
			}
			if !d.ReclamationTokenValid(rt, now) {
				return badRequest("InvalidToken", "The reclamation token has expired.")
			}
			return nil
		})
	default:
		return missing("token")
	}
	if errors.Is(err, etcdstore.ErrNotFound) {
		return invalidToken()
	}
	return err
}

// reclaim mails a new reclamation token to the contact address of a name, verified or not.
// Anyone can ask, so it never takes a usable token away: a name holds at most
// MaxReclamationTokens unexpired ones, and asking for more is refused until one expires.
func (s *Server) reclaim(_ http.ResponseWriter, r *http.Request) error {
	name, err := s.name(r.URL.Query())
	if err != nil {
		return err
	}
	audited(r.Context()).name = name
	now := time.Now()
	rt, expires := uuid.NewString(), now.Add(s.reclaimTTL)
	var counted string
	d, err := s.store.Update(r.Context(), etcdstore.ByName(name), func(d *etcdstore.Record) error {
		if err := refuseDisabled(d); err != nil {
			return err
		}
		if d.Email == "" {
			return badRequest("NoEmail", "The name %q has no contact email address to send a reclamation token to.", name)
		}
		d.DropExpiredReclamationTokens(now)
		if live := d.ReclamationTokens(); len(live) >= etcdstore.MaxReclamationTokens {
			return rateLimited(firstExpiry(live).Sub(now), "for this name; the reclamation tokens already mailed still work")
		}
		if err := s.allowMail(&counted, reclaimMail, d.Name, d.Email); err != nil {
			return err
		}
		d.AddReclamationToken(rt, expires)
		return nil
	})
	if errors.Is(err, etcdstore.ErrNotFound) {
		return badRequest("NoSuchName", "The name %q is not registered.", name)
	}
	if err != nil {
		return err
	}
	data := s.data(d)
	data.Email, data.Token, data.Expires = d.Email, rt, expires
	return s.mail(r.Context(), reclaimMail, d.Email, s.reclaimSubject, s.reclaimBody, data)
}

// firstExpiry is when the first of tokens expires.
func firstExpiry(tokens []etcdstore.Reclamation) time.Time {
	first := tokens[0].Expires
	for _, t := range tokens[1:] {
		if t.Expires.Before(first) {
			first = t.Expires
		}
	}
	return first
}

// ping records that the gateway is alive and where it is.
func (s *Server) ping(_ http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	addrs, err := s.addresses(r, q)
	if err != nil {
		return err
	}
	now := time.Now()
	// A gateway pinging again from the same addresses within s.pingGranularity changes nothing
	// worth a write: answer from the local view, so that ping storms cost etcd nothing.
	recorded := func(d *etcdstore.Record) bool {
		return now.Sub(d.LastPing) < s.pingGranularity && hasAddrs(d, addrs)
	}
	if token, err := requiredSecret(q, "token"); err == nil {
		if d, ok := s.store.LookupToken(token); ok && !d.IsDisabled() && recorded(&d) {
			audited(r.Context()).quiet = true
			return nil
		}
	}
	// Checked again on the record the write would replace: pings queued behind another of
	// the same gateway find it recorded.
	_, err = s.update(r, func(d *etcdstore.Record) error {
		if recorded(d) {
			return errPingRecorded
		}
		d.LastPing = now
		setAddrs(d, addrs)
		return nil
	})
	if errors.Is(err, errPingRecorded) {
		audited(r.Context()).quiet = true
		return nil
	}
	return err
}

// errPingRecorded stops the write of a ping that the record already shows.
var errPingRecorded = errors.New("ping already recorded")

// hasAddrs reports whether d already records each of addrs as the address of its family.
func hasAddrs(d *etcdstore.Record, addrs []netip.Addr) bool {
	for _, a := range addrs {
		a = a.Unmap()
		if (a.Is4() && d.IPv4 != a) || (a.Is6() && d.IPv6 != a) {
			return false
		}
	}
	return true
}

// addresses are the gateway's addresses a request reports: the ip and ipv6 parameters, then
// the caller's own address if no parameter gave one of its family. The caller's address is
// taken as it is, private or not, since it is where the request really came from; parameters
// come first because a gateway that states its address knows it better than its connection.
func (s *Server) addresses(r *http.Request, q url.Values) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, param := range []string{"ip", "ipv6"} {
		a, err := s.address(q, param)
		if err != nil {
			return nil, err
		}
		if a.IsValid() {
			addrs = append(addrs, a)
		}
	}
	caller := s.caller(r)
	if caller.IsValid() && !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Is4() == caller.Is4() }) {
		addrs = append(addrs, caller)
	}
	return addrs, nil
}

// setAddrs records each address as the one of its family.
func setAddrs(d *etcdstore.Record, addrs []netip.Addr) {
	for _, a := range addrs {
		d.SetAddr(a)
	}
}

// dnsconfig sets the ACME DNS-01 challenge served for the name.
func (s *Server) dnsconfig(_ http.ResponseWriter, r *http.Request) error {
	c, err := challenge(r.URL.Query())
	if err != nil {
		return err
	}
	now := time.Now()
	_, err = s.update(r, func(d *etcdstore.Record) error {
		d.AddChallenge(c, now, s.challengeKeep)
		return nil
	})
	return err
}

// recordInfo is what /info shows of a record; hashes of secrets stay out.
type recordInfo struct {
	Name          string   `json:"name"`
	Token         string   `json:"token"`
	Description   string   `json:"description"`
	Mode          int      `json:"mode"`
	Continent     string   `json:"continent"`
	IP            string   `json:"ip"`
	IPv6          string   `json:"ipv6"`
	DNSChallenge  string   `json:"dns_challenge"`
	DNSChallenges []string `json:"dns_challenges"`
	Email         string   `json:"email"` // the contact address, verified or not
	Verified      bool     `json:"verified"`
	OptOut        bool     `json:"optout"`
	Timestamp     int64    `json:"timestamp"`
	LastPing      int64    `json:"last_ping"`
}

// info shows the record of a token.
func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	d, err := s.tokenRecord(r)
	if err != nil {
		return err
	}
	out := recordInfo{
		Name:          d.Name,
		Token:         d.Token,
		Description:   d.Description,
		Mode:          int(d.Mode),
		Continent:     d.Continent,
		DNSChallenges: []string{},
		Email:         d.Email,
		Verified:      d.EmailVerified(),
		OptOut:        d.OptOut,
		Timestamp:     d.Created.Unix(),
	}
	if d.IPv4.IsValid() {
		out.IP = d.IPv4.String()
	}
	if d.IPv6.IsValid() {
		out.IPv6 = d.IPv6.String()
	}
	for _, c := range d.Challenges {
		out.DNSChallenges = append(out.DNSChallenges, c.Value)
	}
	if len(out.DNSChallenges) > 0 {
		out.DNSChallenge = out.DNSChallenges[0]
	}
	if !d.LastPing.IsZero() {
		out.LastPing = d.LastPing.Unix()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// setEmail makes addr the contact address at once, as the original server did, and mails it
// a link to verify it. Setting the same address again keeps it verified if it was.
func (s *Server) setEmail(_ http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	addr, err := email(q)
	if err != nil {
		return err
	}
	opt, optSet, err := optOut(q)
	if err != nil {
		return err
	}
	if err := s.reachable(r, addr); err != nil {
		return err
	}
	id, expires := uuid.NewString(), time.Now().Add(s.verifyTTL)
	var counted string
	d, err := s.update(r, func(d *etcdstore.Record) error {
		if err := s.allowMail(&counted, ownerMail, d.Name, addr); err != nil {
			return err
		}
		if !sameMailbox(d.Email, addr) {
			// They were mailed to the previous address: they proved that mailbox, not this one.
			d.ClearReclamationTokens()
		}
		d.SetEmail(addr, strings.EqualFold(d.Email, addr) && d.EmailVerified())
		d.SetVerification(id, expires)
		if optSet {
			d.OptOut = opt
		}
		return nil
	})
	if err != nil {
		return err
	}
	data := s.data(d)
	data.Email, data.Link, data.Expires = addr, s.verifyURL+"?s="+id, expires
	return s.mail(r.Context(), ownerMail, addr, s.verifySubject, s.verifyBody, data)
}

// reachable refuses, before anything is stored, an address the mailer cannot reach at all (a
// non-ASCII local part without SMTPUTF8): it must not become a contact that no mail reaches.
// The token is checked first, so that a bad one is a 400 and only its holder has the mailer
// ask the SMTP server.
func (s *Server) reachable(r *http.Request, addr string) error {
	if _, err := s.tokenRecord(r); err != nil {
		return err
	}
	if err := s.mailer.Reaches(r.Context(), addr); err != nil {
		return fmt.Errorf("contact address not reachable: %w", err)
	}
	return nil
}

// verifyEmail marks the contact address of the link's record verified. The link works once,
// since the verification is cleared with it.
func (s *Server) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	id := secret(r.URL.Query(), "s")
	if id == "" {
		return badRequest("InvalidVerification", "The link is incomplete; open the full link from the mail.")
	}
	now, audit := time.Now(), audited(r.Context())
	d, err := s.store.Update(r.Context(), etcdstore.ByVerificationID(id), func(d *etcdstore.Record) error {
		audit.name = d.Name
		if err := refuseDisabled(d); err != nil {
			return err
		}
		if _, expires := d.Verification(); now.After(expires) {
			return badRequest("InvalidVerification", "The link has expired; ask for a new one from your gateway.")
		}
		d.SetEmail(d.Email, true)
		d.ClearVerification()
		return nil
	})
	if errors.Is(err, etcdstore.ErrNotFound) {
		return badRequest("InvalidVerification", "The link is unknown or was already used.")
	}
	if err != nil {
		return err
	}
	data := s.data(d)
	data.Email = d.Email
	s.writePage(w, http.StatusOK, s.successPage, data)
	return nil
}

// revokeEmail cancels the pending verification (its link stops working) and withdraws the
// contact address's verified state; there being none is fine. The address stays the contact
// for reclamation, as in the original server; setting another address replaces it.
func (s *Server) revokeEmail(_ http.ResponseWriter, r *http.Request) error {
	_, err := s.update(r, func(d *etcdstore.Record) error {
		d.ClearVerification()
		d.SetEmail(d.Email, false)
		return nil
	})
	return err
}

func connectivityCheck(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("OK"))
	return err
}

func invalidToken() error {
	return badRequest("InvalidToken", "No name has this token.")
}

// tokenRecord reads the record of the request's token from etcd, refusing an unknown token
// and a disabled name as update does.
func (s *Server) tokenRecord(r *http.Request) (etcdstore.Record, error) {
	token, err := requiredSecret(r.URL.Query(), "token")
	if err != nil {
		return etcdstore.Record{}, err
	}
	d, err := s.store.Get(r.Context(), etcdstore.ByToken(token))
	if errors.Is(err, etcdstore.ErrNotFound) {
		return d, invalidToken()
	}
	if err != nil {
		return d, err
	}
	return d, refuseDisabled(&d)
}

// refuseDisabled refuses every request about a name an operator disabled (regdnsctl names
// disable), so that its token and reclamation tokens do nothing until it is enabled. The
// operator's reason is not told.
func refuseDisabled(d *etcdstore.Record) error {
	if d.IsDisabled() {
		return badRequest("NameDisabled", "The name %q is disabled by the registry's operator.", d.Name)
	}
	return nil
}

// update applies fn to the record of the request's token, within the name's write limit; a
// change beyond it is refused and stores nothing. The limit is counted only once fn has
// accepted the change, so a request that writes nothing (a ping already recorded) costs none.
func (s *Server) update(r *http.Request, fn func(*etcdstore.Record) error) (etcdstore.Record, error) {
	token, err := requiredSecret(r.URL.Query(), "token")
	if err != nil {
		return etcdstore.Record{}, err
	}
	counted, audit := false, audited(r.Context())
	d, err := s.store.Update(r.Context(), etcdstore.ByToken(token), func(d *etcdstore.Record) error {
		audit.name = d.Name
		if err := refuseDisabled(d); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		return s.allowWrite(&counted, d.Name)
	})
	if errors.Is(err, etcdstore.ErrNotFound) {
		return d, invalidToken()
	}
	return d, err
}

// data is the template data of d, before the fields of a particular mail or page.
func (s *Server) data(d etcdstore.Record) templateData {
	return templateData{Name: d.Name, Domain: d.Name + "." + s.zone, Zone: s.zone}
}

// mail sends one templated mail. It goes out even if the request is cancelled, because the
// change it announces has already been stored; the mailer's own timeout bounds it.
func (s *Server) mail(ctx context.Context, kind mailBudget, to string, subject, body *template.Template, data templateData) error {
	var sub, text strings.Builder
	if err := subject.Execute(&sub, data); err != nil {
		return fmt.Errorf("mail subject: %w", err)
	}
	if err := body.Execute(&text, data); err != nil {
		return fmt.Errorf("mail body: %w", err)
	}
	if err := s.mailer.Send(context.WithoutCancel(ctx), Mail{To: to, Subject: strings.TrimSpace(sub.String()), Body: text.String()}); err != nil {
		mails.WithLabelValues(string(kind), "failed").Inc()
		return fmt.Errorf("sending mail: %w", err)
	}
	mails.WithLabelValues(string(kind), "sent").Inc()
	return nil
}
