package main

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// sample is a query whose answers are compared across servers; those in the mix must agree.
type sample struct {
	query
	inMix bool
}

// sampleQueries are the queries whose answers are compared before any server is timed: each
// kind of the mix, which must agree, and the negative answers next to it (another type at a
// registered name, the challenge of a name without one), where a difference is only noted.
func sampleQueries(n int) []sample {
	rng := mrand.New(mrand.NewPCG(mixSeed+1, uint64(n)))
	mix := func(qname, qtype string) sample { return sample{query{qname, qtype}, true} }
	other := func(qname, qtype string) sample { return sample{query{qname, qtype}, false} }
	qs := []sample{mix(name(0)+"."+zone, "A"), mix(name(n-1)+"."+zone, "A")}
	for range 30 {
		qs = append(qs, mix(name(rng.IntN(n))+"."+zone, "A"))
	}
	for range 15 {
		qs = append(qs, mix("_acme-challenge."+name(2*rng.IntN((n+1)/2))+"."+zone, "TXT"))
	}
	for range 10 {
		qs = append(qs, mix(name(n+rng.IntN(n))+"."+zone, "A"))
	}
	for range 5 {
		i := rng.IntN(n)
		qs = append(qs, other(name(i)+"."+zone, "AAAA"), other(name(i)+"."+zone, "TXT"))
		odd := i | 1 // a name without a challenge
		if odd >= n {
			odd -= 2
		}
		qs = append(qs, other("_acme-challenge."+name(odd)+"."+zone, "TXT"))
	}
	return qs
}

// nameIndex is i of the gw<i> label in qname, or -1.
func nameIndex(qname string) int {
	for label := range strings.SplitSeq(qname, ".") {
		var i int
		if _, err := fmt.Sscanf(label, "gw%d", &i); err == nil {
			return i
		}
	}
	return -1
}

// answerKey is what must agree between servers: rcode, AA, the answer section, and for
// negative answers the SOA in the authority section (its serial and TTL aside: the
// registry's serial is the etcd revision, and servers differ in the negative TTL they give).
func answerKey(m *dns.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s aa=%v", dns.RcodeToString[m.Rcode], m.Authoritative)
	var ans []string
	for _, rr := range m.Answer {
		ans = append(ans, rr.String())
	}
	slices.Sort(ans)
	for _, a := range ans {
		b.WriteString(" | " + a)
	}
	if len(m.Answer) == 0 {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				fmt.Fprintf(&b, " | SOA %s %s %s %d %d %d %d", soa.Hdr.Name, soa.Ns, soa.Mbox, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl)
			}
		}
	}
	return b.String()
}

// compareAnswers asks every sample query of a zone of n names of ref and of each other server
// and fails on the first answer to a query of the mix that differs. It returns notes on the
// other differences: answers outside the mix, and sections outside answerKey that make
// responses of different sizes.
func compareAnswers(n int, ref *server, others ...*server) ([]string, error) {
	var notes []string
	note := func(format string, args ...any) {
		if s := fmt.Sprintf(format, args...); !slices.Contains(notes, s) {
			notes = append(notes, s)
		}
	}
	for _, q := range sampleQueries(n) {
		qtype := dns.StringToType[q.qtype]
		want, err := exchange(ref.dns, q.name, qtype, 2*time.Second)
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: %w", ref.label, q.name, q.qtype, err)
		}
		for _, o := range others {
			got, err := exchange(o.dns, q.name, qtype, 2*time.Second)
			if err != nil {
				return nil, fmt.Errorf("%s %s %s: %w", o.label, q.name, q.qtype, err)
			}
			switch {
			case answerKey(got) != answerKey(want) && q.inMix:
				return nil, fmt.Errorf("%s %s: %s answers\n  %s\nbut %s answers\n  %s", q.name, q.qtype, ref.label, answerKey(want), o.label, answerKey(got))
			case answerKey(got) != answerKey(want):
				// The name differs from query to query; the kind of query says it all.
				kind := strings.Replace(q.name, name(nameIndex(q.name)), "<name>", 1)
				note("outside the mix, %s %s: %s answers %s with %d records, %s %s with %d", kind, q.qtype,
					ref.label, dns.RcodeToString[want.Rcode], len(want.Answer), o.label, dns.RcodeToString[got.Rcode], len(got.Answer))
			case len(got.Answer) > 0 && len(got.Ns) != len(want.Ns):
				note("positive answers carry %d authority records from %s, %d from %s", len(want.Ns), ref.label, len(got.Ns), o.label)
			}
		}
	}
	return notes, nil
}
