package registry

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// PageKite frontends started with --authdomain=ZONE authenticate a kite by resolving
// SRAND.TOKEN.SIGN.PROTO[-PORT].KITENAME.ZONE, where KITENAME is the kite's full name
// (name.ZONE, or _any_.name.ZONE for the wildcard kite *.name.ZONE). The answer is an address
// the frontend reads as a verdict (pagekite's common.py):
const (
	// kiteAccepted is AUTH_QUOTA_MAX: accepted, no quota.
	kiteAccepted = "255.255.254.255"
	// kiteRejected is AUTH_ERRORS + AUTH_ERR_INVALID: refused, final. The other error answer,
	// 255.255.255.0 (user unknown), makes the frontend fall back to its local secrets, and no
	// answer at all lets a frontend without --authfail_closed fail open; neither is ever given.
	kiteRejected = "255.255.255.1"
	// signLen is the length of a PageKite signature: 8 characters of salt, 28 hex digits of SHA-1.
	signLen = 36
	// kiteWindow is the validity window of timestamped signatures (those starting with 't').
	kiteWindow = 600
)

// kiteQuery is a parsed authentication query.
type kiteQuery struct {
	srand, token, sign, protoPort string
	kite                          string // as the backend signed it, with * for _any_
	name                          string // the registered name whose token is the secret
}

// parseKite reads an authentication query from rel, the query name relative to zone (both lower
// case, zone without its final dot); ok is false for names of any other shape.
func parseKite(rel, zone string) (kiteQuery, bool) {
	kite, ok := strings.CutSuffix(rel, "."+zone)
	if !ok {
		return kiteQuery{}, false
	}
	parts := strings.SplitN(kite, ".", 5)
	if len(parts) != 5 || slices.Contains(parts, "") {
		return kiteQuery{}, false
	}
	q := kiteQuery{srand: parts[0], token: parts[1], sign: parts[2], protoPort: parts[3]}
	label := parts[4]
	if wild, ok := strings.CutPrefix(label, "_any_."); ok {
		label = wild
		q.kite = "*." + wild + "." + zone
	} else {
		q.kite = label + "." + zone
	}
	if label == "" || strings.IndexByte(label, '.') >= 0 {
		return kiteQuery{}, false
	}
	q.name = label
	return q, true
}

// verify checks the signature against secret as pagekite's checkSignature does, accepting a
// timestamped signature from the current or the previous window.
func (q kiteQuery) verify(secret string, now time.Time) bool {
	if len(q.sign) != signLen || secret == "" {
		return false
	}
	payload := q.protoPort + ":" + q.kite + ":" + q.srand + ":" + q.token
	salt := q.sign[:8]
	want := []byte(q.sign[8:])
	if salt[0] != 't' {
		return kiteSign(secret+payload+salt, want)
	}
	window := now.Unix() / kiteWindow
	for _, w := range []int64{window, window - 1} {
		if kiteSign(secret+payload+strconv.FormatInt(w, 16)+salt, want) {
			return true
		}
	}
	return false
}

func kiteSign(data string, want []byte) bool {
	sum := sha1.Sum([]byte(data))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])[:signLen-8]), want) == 1
}

// kiteVerdict is the address that answers q: accepted only for a registered name, not
// disabled, whose token signed it.
func kiteVerdict(view *etcdstore.View, q kiteQuery, now time.Time) string {
	if d, ok := view.Lookup(q.name); ok && !d.IsDisabled() && q.verify(d.Token, now) {
		return kiteAccepted
	}
	return kiteRejected
}
