package main

import (
	"slices"
	"sort"
	"time"
)

// capacityWindow is one window of a capacity run: a dnsperf run, and the pings scheduled and
// the memory sampled from its start to the next window's.
type capacityWindow struct {
	dnsWindow
	lo, hi time.Duration // the window's span: from its start (0 for the first) to the next's
	pings  pingStats
	peak   memSample // the sample with the largest total in the window
}

// span is the window's length.
func (w capacityWindow) span() time.Duration { return w.hi - w.lo }

// pingStats sums up pings. Latencies are from each ping's scheduled time to its answer (or
// failure); lagP99 is the generator's own: from the scheduled time to the request's start.
type pingStats struct {
	scheduled, ok, failed int
	p50, p99, max, lagP99 time.Duration
}

func statsOf(rs []pingResult) pingStats {
	s := pingStats{scheduled: len(rs)}
	lat := make([]time.Duration, 0, len(rs))
	lag := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.err == "" {
			s.ok++
		} else {
			s.failed++
		}
		lat = append(lat, r.latency)
		lag = append(lag, r.lag)
	}
	slices.Sort(lat)
	slices.Sort(lag)
	s.p50, s.p99, s.max, s.lagP99 = quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1), quantile(lag, 0.99)
	return s
}

// aggregate makes the windows of a run from its dnsperf runs, putting each ping (by its
// scheduled time) and each memory sample in the window that was running then: the first
// window also takes what came before its start, the last what came after its end.
func aggregate(runs []dnsWindow, pings []pingResult, mem []memSample) []capacityWindow {
	out := make([]capacityWindow, len(runs))
	for i, r := range runs {
		out[i].dnsWindow = r
		out[i].lo = r.start
		if i == 0 {
			out[i].lo = 0
		}
		if i > 0 {
			out[i-1].hi = r.start
		}
		out[i].hi = r.end
	}
	if len(out) == 0 {
		return out
	}
	index := func(t time.Duration) int {
		return max(sort.Search(len(out), func(i int) bool { return out[i].lo > t })-1, 0)
	}
	byWindow := make([][]pingResult, len(out))
	for _, p := range pings {
		i := index(p.at)
		byWindow[i] = append(byWindow[i], p)
	}
	for i := range out {
		out[i].pings = statsOf(byWindow[i])
	}
	for _, m := range mem {
		if i := index(m.at); m.total() > out[i].peak.total() {
			out[i].peak = m
		}
	}
	return out
}
