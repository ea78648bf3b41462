package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// progressEvery is how often a long import reports its progress on stderr.
const progressEvery = 2 * time.Second

// importSummary counts what an import did with the rows it read.
type importSummary struct {
	rows, imported, unchanged, conflicts, skipped, noted int
}

// runImport copies the original server's database into etcd. It prints a line for every row
// skipped (and why), every conflict and every adjustment, and a summary; with --dry-run also
// every record it would write, and it writes nothing.
func runImport(g globals, args []string) int {
	fs := g.flags("import", "import [--dry-run] SOURCE   (sqlite:PATH, postgres://…, mysql://…)")
	dryRun := fs.Bool("dry-run", false, "print what would be written and every row that would be skipped; write nothing")
	pos, err := interspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitError
	}
	cfg, err := registryConfig(g.conf, g.zone)
	if err != nil {
		return g.fail("import", err)
	}
	db, err := openSource(pos[0])
	if err != nil {
		return g.fail("import", err)
	}
	defer db.Close()

	ctx := context.Background()
	m := newMapping(cfg, time.Now())
	var sum importSummary
	var records []etcdstore.Domain
	var ids []int64 // the domains.id of each record
	err = readRows(ctx, db, func(r row) {
		sum.rows++
		mp := m.record(r)
		if mp.skip != "" {
			sum.skipped++
			fmt.Fprintf(g.stdout, "skip domains.id=%d: %s\n", r.ID, mp.skip)
			return
		}
		for _, n := range mp.notes {
			fmt.Fprintf(g.stdout, "note %s (domains.id=%d): %s\n", mp.record.Name, r.ID, n)
		}
		if len(mp.notes) > 0 {
			sum.noted++
		}
		records = append(records, mp.record)
		ids = append(ids, r.ID)
	})
	if err != nil {
		return g.fail("import", err)
	}
	fmt.Fprintf(g.stderr, "read %d rows of %s; %d to import into the zone %s\n", sum.rows, redactURL(pos[0]), len(records), cfg.Zones[0])

	ks, release, err := openKeyspace(cfg, g.stderr)
	if err != nil {
		return g.fail("import", err)
	}
	defer release()
	start := time.Now()
	results, err := ks.Import(ctx, records, etcdstore.ImportOptions{DryRun: *dryRun, Progress: progress(g.stderr, len(records)), Same: sameImport})
	if err != nil {
		return g.fail("import", err)
	}
	for i, res := range results {
		switch res.Status {
		case etcdstore.Imported:
			sum.imported++
			if *dryRun {
				fmt.Fprintf(g.stdout, "would import %s (domains.id=%d): %s\n", res.Name, ids[i], describe(&records[i]))
			}
		case etcdstore.Unchanged:
			sum.unchanged++
		case etcdstore.Conflict:
			sum.conflicts++
			fmt.Fprintf(g.stdout, "conflict %s (domains.id=%d): %s\n", res.Name, ids[i], res.Reason)
		}
	}
	sum.print(g.stdout, *dryRun, time.Since(start))
	if sum.skipped+sum.conflicts > 0 {
		return exitFindings
	}
	return exitOK
}

// progress returns a callback that reports, at most every progressEvery, how far an import is.
func progress(w io.Writer, total int) func(int) {
	var mu sync.Mutex
	last := time.Now()
	return func(done int) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) >= progressEvery {
			last = time.Now()
			fmt.Fprintf(w, "import: %d of %d records\n", done, total)
		}
	}
}

func (s importSummary) print(w io.Writer, dryRun bool, took time.Duration) {
	verb := "imported"
	if dryRun {
		verb = "would import"
	}
	fmt.Fprintf(w, "summary: %d rows: %s %d, unchanged %d, conflicts %d, skipped %d; %d with notes (%.1fs)\n",
		s.rows, verb, s.imported, s.unchanged, s.conflicts, s.skipped, s.noted, took.Seconds())
}

// describe is what a dry run shows of a record: every field but its secrets.
func describe(d *etcdstore.Domain) string {
	parts := []string{"mode=" + map[etcdstore.Mode]string{etcdstore.ModeTunnel: "tunnel", etcdstore.ModeDynamic: "dynamic"}[d.Mode]}
	add := func(ok bool, s string) {
		if ok {
			parts = append(parts, s)
		}
	}
	add(d.IPv4.IsValid(), "ipv4="+d.IPv4.String())
	add(d.IPv6.IsValid(), "ipv6="+d.IPv6.String())
	add(d.Continent != "", "continent="+d.Continent)
	add(d.EmailVerified(), "email="+d.Email+" (verified)")
	add(d.Email != "" && !d.EmailVerified(), "email="+d.Email+" (unverified)")
	if _, exp := d.Verification(); !exp.IsZero() {
		add(true, "verification link until "+exp.Format(time.RFC3339))
	}
	for _, r := range d.ReclamationTokens() {
		add(true, "reclamation token until "+r.Expires.Format(time.RFC3339))
	}
	add(len(d.Challenges) > 0, "challenge")
	add(d.OptOut, "optout")
	parts = append(parts, "last_ping="+d.LastPing.Format(time.RFC3339))
	add(d.Description != "", fmt.Sprintf("description=%q", d.Description))
	return strings.Join(parts, " ")
}
