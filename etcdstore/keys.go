package etcdstore

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Key layout, relative to the configured prefix (default DefaultPrefix):
//
//	names/<name>          the record, JSON; the View watches these and serial
//	tokens/<sha256(tok)>  index: the name whose API token hashes to this
//	reclaim/<sha256(rt)>  index: the name one of whose reclamation tokens hashes to this
//	verify/<sha256(id)>   index: the name whose pending email verification id hashes to this
//	serial                the SOA serial's offset from the etcd revision, in decimal (serial.go);
//	                      absent until a restore raises it
//
// Every index entry is written and removed in the same transaction as the record it points at,
// so an index never dangles. Index keys hold hashes, never raw secrets.
const (
	// DefaultPrefix is the key prefix used when the Corefile sets none.
	DefaultPrefix = "/regdns/"

	namesDir   = "names/"
	tokensDir  = "tokens/"
	reclaimDir = "reclaim/"
	verifyDir  = "verify/"
	serialKey  = "serial"
)

// keys builds the keys of one store; prefix always ends in "/".
type keys struct{ prefix string }

func newKeys(prefix string) keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return keys{prefix: prefix}
}

func (k keys) names() string                  { return k.prefix + namesDir }
func (k keys) name(name string) string        { return k.prefix + namesDir + name }
func (k keys) token(tok string) string        { return k.prefix + tokensDir + hashSecret(tok) }
func (k keys) reclaim(rt string) string       { return k.prefix + reclaimDir + hashSecret(rt) }
func (k keys) verify(id string) string        { return k.prefix + verifyDir + hashSecret(id) }
func (k keys) nameOf(key string) string       { return strings.TrimPrefix(key, k.names()) }
func (k keys) serial() string                 { return k.prefix + serialKey }
func (k keys) dirs() []string                 { return []string{namesDir, tokensDir, reclaimDir, verifyDir} }
func (k keys) dir(d string) string            { return k.prefix + d }
func (k keys) hashedKey(dir, h string) string { return k.prefix + dir + h }

// hashSecret is the index form of a secret: its SHA-256 in hex.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// index is one index entry a record needs: the hash of one of its secrets under dir.
type index struct{ dir, hash string }

// indexesOf lists the index entries d needs, one per secret it holds, each once.
func indexesOf(d *Record) []index {
	var out []index
	if d.Token != "" {
		out = append(out, index{tokensDir, hashSecret(d.Token)})
	}
	for _, r := range d.ReclamationTokens() {
		if ix := (index{reclaimDir, r.Hash}); r.Hash != "" && !slices.Contains(out, ix) {
			out = append(out, ix)
		}
	}
	if h, _ := d.Verification(); h != "" {
		out = append(out, index{verifyDir, h})
	}
	return out
}

// secretOf names the secret whose hashes dir holds, for problem reports.
func secretOf(dir string) string {
	switch dir {
	case tokensDir:
		return "API token"
	case reclaimDir:
		return "reclamation token"
	}
	return "verification id"
}

// isHash reports whether h has the form hashSecret gives: 64 lower-case hex digits.
func isHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
