package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadResult is what one closed-loop load measured.
type loadResult struct {
	Label      string
	Requests   int
	Errors     int
	FirstError string
	Elapsed    time.Duration
	P50, P99   time.Duration
	ServerCPU  float64 // share of one CPU the registry process (API and etcd) used
}

// Rate is the successful requests per second.
func (r loadResult) Rate() float64 {
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// closedLoop calls fn from conc workers, each calling again as soon as its call returns,
// for d, and measures every call. fn gets its worker's number and call count and its own
// random source.
func closedLoop(ctx context.Context, label string, conc int, d time.Duration, fn func(ctx context.Context, w, seq int, rng *mrand.Rand) error) loadResult {
	res := loadResult{Label: label}
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(d)
	for w := range conc {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(begin.UnixNano())))
			var lat []time.Duration
			errs, first := 0, ""
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				t := time.Now()
				err := fn(ctx, w, seq, rng)
				lat = append(lat, time.Since(t))
				if err != nil {
					if errs == 0 {
						first = err.Error()
					}
					errs++
				}
			}
			mu.Lock()
			all = append(all, lat...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	slices.Sort(all)
	res.Requests = len(all)
	res.P50, res.P99 = quantile(all, 0.50), quantile(all, 0.99)
	return res
}

// apiClient calls the registration API of one server.
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(base string, conc int) *apiClient {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conc
	return &apiClient{base: base, http: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

// get calls path with q; any status but 200 is an error naming the API's error code (never
// the query string, which holds a token).
func (c *apiClient) get(ctx context.Context, path string, q url.Values, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, redactURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		return nil, fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, e.Error)
	}
	return body, nil
}

// redactURL drops the URL (and so the token) from a client error.
func redactURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// newChallenge is a fresh value of the shape ACME sets.
func newChallenge() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// benchAddr is the i-th address of 198.18.0.0/15, the range set aside for benchmarks
// (RFC 2544): the client address /subscribe callers claim through the trusted proxy header,
// one per request, so the per-address limit of /subscribe does not cap the measurement.
// Nothing is ever sent to these addresses.
func benchAddr(i uint32) string {
	i %= 1 << 17
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}).String()
}

// apiLoad measures /ping, /dnsconfig and /subscribe on the registry at base, then the etcd
// operations behind them, straight on its etcd, with the same concurrency: if the two rates
// are close, the API is bound by etcd's commit rate.
func apiLoad(ctx context.Context, reg *server, cli *clientv3.Client, tokens []string, conc int, d time.Duration) ([]loadResult, error) {
	api := newAPIClient(reg.api, conc)
	defer api.http.CloseIdleConnections()
	var out []loadResult
	var failed error
	load := func(label string, fn func(ctx context.Context, w, seq int, rng *mrand.Rand) error) {
		var res loadResult
		share, err := reg.cpuShare(func() error {
			res = closedLoop(ctx, label, conc, d, fn)
			return nil
		})
		if err != nil && failed == nil {
			failed = err
		}
		res.ServerCPU = share
		out = append(out, res)
	}
	load("API /ping", func(ctx context.Context, _, _ int, rng *mrand.Rand) error {
		_, err := api.get(ctx, "/ping", url.Values{"token": {tokens[rng.IntN(len(tokens))]}}, nil)
		return err
	})
	load("API /dnsconfig", func(ctx context.Context, _, _ int, rng *mrand.Rand) error {
		_, err := api.get(ctx, "/dnsconfig", url.Values{"token": {tokens[rng.IntN(len(tokens))]}, "challenge": {newChallenge()}}, nil)
		return err
	})
	var ip atomic.Uint32
	run := time.Now().UnixNano() % 1e6
	load("API /subscribe", func(ctx context.Context, w, seq int, _ *mrand.Rand) error {
		h := http.Header{"X-Real-Ip": {benchAddr(ip.Add(1))}}
		_, err := api.get(ctx, "/subscribe", url.Values{"name": {fmt.Sprintf("s%dw%dn%d", run, w, seq)}}, h)
		return err
	})

	// The etcd side, under a prefix the registry does not watch, so only etcd does the work.
	raw := fmt.Sprintf("/bench-raw/%d/", run)
	value := make([]byte, 300) // about a record's size
	for i := range value {
		value[i] = 'x'
	}
	load("etcd put", func(ctx context.Context, w, seq int, _ *mrand.Rand) error {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := cli.Put(tctx, fmt.Sprintf("%sput/%d/%d", raw, w, seq), string(value))
		return err
	})
	// As /subscribe: create a record and its token index, both guarded by create-if-absent.
	var mu sync.Mutex
	var created []string
	load("etcd txn as /subscribe", func(ctx context.Context, w, seq int, _ *mrand.Rand) error {
		n, tok := fmt.Sprintf("w%dn%d", w, seq), newToken()
		nk, tk := raw+"names/"+n, raw+"tokens/"+hashOf(tok)
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := cli.Txn(tctx).
			If(clientv3.Compare(clientv3.CreateRevision(nk), "=", 0), clientv3.Compare(clientv3.CreateRevision(tk), "=", 0)).
			Then(clientv3.OpPut(nk, string(value)), clientv3.OpPut(tk, n)).
			Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("create of %s lost its compare", n)
		}
		if err == nil {
			mu.Lock()
			created = append(created, tok)
			mu.Unlock()
		}
		return err
	})
	// As /dnsconfig (and /ping): read the token index, read the record, write it back guarded
	// by its mod revision.
	if len(created) > 0 {
		load("etcd get+get+txn as /dnsconfig", func(ctx context.Context, _, _ int, rng *mrand.Rand) error {
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ix, err := cli.Get(tctx, raw+"tokens/"+hashOf(created[rng.IntN(len(created))]))
			if err != nil || len(ix.Kvs) == 0 {
				return fmt.Errorf("token index: %v", err)
			}
			nk := raw + "names/" + string(ix.Kvs[0].Value)
			rec, err := cli.Get(tctx, nk)
			if err != nil || len(rec.Kvs) == 0 {
				return fmt.Errorf("record: %v", err)
			}
			_, err = cli.Txn(tctx).
				If(clientv3.Compare(clientv3.ModRevision(nk), "=", rec.Kvs[0].ModRevision)).
				Then(clientv3.OpPut(nk, string(value))).
				Commit()
			return err
		})
	}
	return out, failed
}
