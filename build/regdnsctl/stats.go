package main

import (
	"context"
	"fmt"
	"time"
)

// registryStats is what `stats` reports.
type registryStats struct {
	Names         int            `json:"names"`
	ByMode        map[string]int `json:"by_mode"`
	WithEmail     int            `json:"with_email"`
	EmailVerified int            `json:"email_verified"`
	Disabled      int            `json:"disabled"`
	// Stale counts the names whose last ping is older than 7, 30 and 90 days.
	Stale    map[string]int `json:"stale"`
	DBSize   int64          `json:"db_size_bytes"`
	Revision int64          `json:"revision"`
	Serial   uint32         `json:"serial"`
}

// staleAfter are the ages of the last ping that `stats` counts names beyond.
var staleAfter = []struct {
	label string
	age   time.Duration
}{{"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}, {"90d", 90 * 24 * time.Hour}}

func runStats(g globals, args []string) int {
	fs := g.flags("stats", "stats [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		return g.fail("stats", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	s, err := g.open("stats")
	if err != nil {
		return g.fail("stats", err)
	}
	defer s.done()
	ctx := context.Background()
	records, _, err := s.ks.Records(ctx)
	if err != nil {
		return g.fail("stats", err)
	}
	st := registryStats{Names: len(records), ByMode: map[string]int{"tunnel": 0, "dynamic": 0}, Stale: map[string]int{}}
	for _, s := range staleAfter {
		st.Stale[s.label] = 0
	}
	now := time.Now()
	for i := range records {
		d := &records[i]
		st.ByMode[modeName(d.Mode)]++
		if d.Email != "" {
			st.WithEmail++
		}
		if d.EmailVerified() {
			st.EmailVerified++
		}
		if d.IsDisabled() {
			st.Disabled++
		}
		for _, s := range staleAfter {
			if now.Sub(d.LastPing) > s.age {
				st.Stale[s.label]++
			}
		}
	}
	if st.DBSize, st.Revision, err = s.ks.Status(ctx); err != nil {
		return g.fail("stats", err)
	}
	if st.Serial, err = s.ks.Serial(ctx); err != nil {
		return g.fail("stats", err)
	}
	if *asJSON {
		g.writeJSON(st)
		return exitOK
	}
	fmt.Fprintf(g.stdout, "names: %d (tunnel %d, dynamic %d), disabled %d\n", st.Names, st.ByMode["tunnel"], st.ByMode["dynamic"], st.Disabled)
	fmt.Fprintf(g.stdout, "email: %d with a contact address, %d verified\n", st.WithEmail, st.EmailVerified)
	fmt.Fprintf(g.stdout, "stale (last ping older than): 7 days %d, 30 days %d, 90 days %d\n", st.Stale["7d"], st.Stale["30d"], st.Stale["90d"])
	fmt.Fprintf(g.stdout, "etcd: database %d bytes, revision %d; SOA serial %d\n", st.DBSize, st.Revision, st.Serial)
	return exitOK
}
