package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// How long a change may take to show before it counts as never seen, and how often a
// waiting poller asks again.
const (
	propagationTimeout = 10 * time.Second
	pollEvery          = 500 * time.Microsecond
)

// propResult is what the propagation run measured.
type propResult struct {
	Changes, Failed int
	FirstError      string
	API             []time.Duration // /dnsconfig on replica A, request to 200
	Replica         []time.Duration // from A's 200 until B's DNS answers the new value
	ReplicaMissing  int             // changes B never answered within propagationTimeout
	LocalMisses     int             // changes A's DNS did not answer at the first query after the 200
}

// propagate sets a new challenge through a's API rate times a second for d (open loop: each
// change is sent on schedule, however slow the previous ones are), and for each change polls
// the DNS of a once and of b until the new value is answered.
func propagate(ctx context.Context, a, b *server, tokens []string, rate int, d time.Duration) propResult {
	api := newAPIClient(a.api, 64)
	defer api.http.CloseIdleConnections()
	var mu sync.Mutex
	var res propResult
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	total := int(d.Seconds() * float64(rate))
	for k := 0; k < total && ctx.Err() == nil; k++ {
		<-tick.C
		wg.Go(func() {
			i := k % len(tokens)
			qname := "_acme-challenge." + name(i) + "." + zone
			value := fmt.Sprintf("p%d-%s", k, newChallenge()[:16])
			t0 := time.Now()
			_, err := api.get(ctx, "/dnsconfig", url.Values{"token": {tokens[i]}, "challenge": {value}}, nil)
			done := time.Now()
			if err != nil {
				mu.Lock()
				res.Failed++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				mu.Unlock()
				return
			}
			local := answers(a.dns, qname, value)
			lag, seen := waitAnswer(ctx, b.dns, qname, value, done)
			mu.Lock()
			defer mu.Unlock()
			res.API = append(res.API, done.Sub(t0))
			if !local {
				res.LocalMisses++
			}
			if seen {
				res.Replica = append(res.Replica, lag)
			} else {
				res.ReplicaMissing++
			}
		})
		res.Changes++
	}
	wg.Wait()
	slices.Sort(res.API)
	slices.Sort(res.Replica)
	return res
}

// answers reports whether the server at addr answers value among the TXT of qname.
func answers(addr, qname, value string) bool {
	r, err := exchange(addr, qname, dns.TypeTXT, time.Second)
	if err != nil {
		return false
	}
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok && slices.Contains(txt.Txt, value) {
			return true
		}
	}
	return false
}

// waitAnswer polls addr until it answers value, and returns how long after since that was.
func waitAnswer(ctx context.Context, addr, qname, value string, since time.Time) (time.Duration, bool) {
	for time.Since(since) < propagationTimeout && ctx.Err() == nil {
		if answers(addr, qname, value) {
			return time.Since(since), true
		}
		time.Sleep(pollEvery)
	}
	return 0, false
}
