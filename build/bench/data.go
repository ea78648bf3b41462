package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// The benchmark zone and the records every server under test serves.
const (
	zone         = "bench.example."
	tunnelAddr   = "192.0.2.1"
	addressTTL   = 60   // the registry's default address_ttl
	challengeTTL = 30   // the registry's default challenge_ttl
	apexTTL      = 3600 // the registry's default ttl
	nsHost       = "ns1." + zone
)

// Query mix of the issue, in percent of the queries file.
const (
	mixA    = 70 // A of a registered name
	mixTXT  = 20 // TXT of _acme-challenge.<name> for a name that has a challenge
	mixNX   = 10 // A of a name nobody registered
	mixSeed = 2026
)

// name is the label of the i-th registered name; labels at i >= N are the nonexistent ones.
func name(i int) string { return fmt.Sprintf("gw%d", i) }

// hasChallenge says which names carry a challenge value: every other one, half of them.
func hasChallenge(i int) bool { return i%2 == 0 }

// challengeValue is the ACME DNS-01 value of the i-th name: 43 base64url characters, the
// shape of a real key authorization digest, so answers have the real size.
func challengeValue(i int) string {
	sum := sha256.Sum256([]byte(name(i)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newToken returns a random UUIDv4 in lower case, the shape of the API's tokens.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// gatewayAddr is the address the i-th name's gateway pings from, recorded as its IPv4, in
// 198.18.0.0/16 (benchmarking addresses, RFC 2544: nothing is ever sent there).
func gatewayAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }

// domain is the stored record of the i-th name, as the API's /subscribe would write it.
func domain(i int, token string, now time.Time) etcdstore.Record {
	d := etcdstore.Record{
		Name:     name(i),
		Token:    token,
		Mode:     etcdstore.ModeTunnel,
		IPv4:     gatewayAddr(i),
		Created:  now,
		LastPing: now,
	}
	if hasChallenge(i) {
		d.AddChallenge(challengeValue(i), now, 2)
	}
	return d
}

// writeZone writes the baseline zone file: the same apex as the registry's defaults and,
// for each of the n names, its A record and, where it has one, its challenge TXT.
func writeZone(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, "$ORIGIN %s\n", zone)
	fmt.Fprintf(bw, "@ %d IN SOA %s hostmaster.%s 1 3600 600 604800 60\n", apexTTL, nsHost, zone)
	fmt.Fprintf(bw, "@ %d IN NS %s\n", apexTTL, nsHost)
	for i := range n {
		fmt.Fprintf(bw, "%s %d IN A %s\n", name(i), addressTTL, tunnelAddr)
		if hasChallenge(i) {
			fmt.Fprintf(bw, "_acme-challenge.%s %d IN TXT \"%s\"\n", name(i), challengeTTL, challengeValue(i))
		}
	}
	return bw.Flush()
}

// query is one line of a dnsperf queries file.
type query struct {
	name  string // fully qualified
	qtype string
}

// kind is the part of the mix a query belongs to.
type kind int

const (
	kindA kind = iota
	kindTXT
	kindNX
)

// queryMix returns lines queries for a zone of n names in the proportions (exact
// counts, then shuffled), the same for every server and every run of a given n.
func queryMix(n, lines int) []query {
	rng := mrand.New(mrand.NewPCG(mixSeed, uint64(n)))
	kinds := make([]kind, 0, lines)
	for k, pct := range []int{mixA, mixTXT, mixNX} {
		for range lines * pct / 100 {
			kinds = append(kinds, kind(k))
		}
	}
	for len(kinds) < lines {
		kinds = append(kinds, kindA)
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	out := make([]query, lines)
	for i, k := range kinds {
		switch k {
		case kindA:
			out[i] = query{name(rng.IntN(n)) + "." + zone, "A"}
		case kindTXT:
			// Challenges sit at the even names; n >= 1 so there is at least one.
			out[i] = query{"_acme-challenge." + name(2*rng.IntN((n+1)/2)) + "." + zone, "TXT"}
		case kindNX:
			out[i] = query{name(n+rng.IntN(max(n, 1000))) + "." + zone, "A"}
		}
	}
	return out
}

// classify says which part of the mix a query of a zone of n names is, the inverse of
// queryMix, for checking it.
func classify(q query, n int) kind {
	var i int
	if q.qtype == "TXT" {
		return kindTXT
	}
	if _, err := fmt.Sscanf(q.name, "gw%d.", &i); err == nil && i < n {
		return kindA
	}
	return kindNX
}

// writeQueries writes qs in dnsperf's input format.
func writeQueries(w io.Writer, qs []query) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	for _, q := range qs {
		fmt.Fprintf(bw, "%s %s\n", q.name, q.qtype)
	}
	return bw.Flush()
}
