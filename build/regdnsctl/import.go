package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry"
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
	zone, err := registry.NewZone(cfg)
	if err != nil {
		return g.fail("import", err)
	}
	ctx := context.Background()
	run := importRun{globals: g, dryRun: *dryRun}
	if err := run.read(ctx, pos[0], newMapping(cfg, zone, time.Now())); err != nil {
		return g.fail("import", err)
	}
	fmt.Fprintf(g.stderr, "read %d rows of %s; %d to import into the zone %s\n", run.sum.rows, redactURL(pos[0]), len(run.records), cfg.Zones[0])
	ks, release, err := openKeyspace(cfg, g.stderr)
	if err != nil {
		return g.fail("import", err)
	}
	defer release()
	start := time.Now()
	opt := etcdstore.ImportOptions{DryRun: *dryRun, Progress: progress(g.stderr, len(run.records)), Same: sameImport}
	results, err := ks.Import(ctx, run.records, opt)
	if err != nil {
		return g.fail("import", err)
	}
	run.report(results)
	run.sum.print(g.stdout, *dryRun, time.Since(start))
	if run.sum.skipped+run.sum.conflicts > 0 {
		return exitFindings
	}
	return exitOK
}

// importRun is one import: the records read and what became of them.
type importRun struct {
	globals
	dryRun  bool
	records []etcdstore.Record
	ids     []int64 // the domains.id of each record
	sum     importSummary
}

// read maps every row of source, reporting the rows skipped and the adjustments made.
func (run *importRun) read(ctx context.Context, source string, m mapping) error {
	db, err := openSource(source)
	if err != nil {
		return err
	}
	defer db.Close()
	return readRows(ctx, db, func(r row) {
		run.sum.rows++
		mp := m.record(r)
		if mp.skip != "" {
			run.sum.skipped++
			fmt.Fprintf(run.stdout, "skip domains.id=%d: %s\n", r.ID, mp.skip)
			return
		}
		for _, n := range mp.notes {
			fmt.Fprintf(run.stdout, "note %s (domains.id=%d): %s\n", mp.record.Name, r.ID, n)
		}
		if len(mp.notes) > 0 {
			run.sum.noted++
		}
		run.records = append(run.records, mp.record)
		run.ids = append(run.ids, r.ID)
	})
}

// report counts the outcome of each record and prints the conflicts (and, in a dry run, what
// would be written).
func (run *importRun) report(results []etcdstore.ImportResult) {
	for i, res := range results {
		switch res.Status {
		case etcdstore.Imported:
			run.sum.imported++
			if run.dryRun {
				fmt.Fprintf(run.stdout, "would import %s (domains.id=%d): %s\n", res.Name, run.ids[i], describe(&run.records[i]))
			}
		case etcdstore.Unchanged:
			run.sum.unchanged++
		case etcdstore.Conflict:
			run.sum.conflicts++
			fmt.Fprintf(run.stdout, "conflict %s (domains.id=%d): %s\n", res.Name, run.ids[i], res.Reason)
		}
	}
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
func describe(d *etcdstore.Record) string {
	parts := []string{"mode=" + modeName(d.Mode)}
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
