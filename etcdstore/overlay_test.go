package etcdstore

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// change applies to v the watch event that puts d as name's record (nil: deletes name).
func change(t testing.TB, v *View, name string, d *Record, rev int64) {
	t.Helper()
	ev := &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{ModRevision: rev}}
	if d != nil {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		ev.Type, ev.Kv.Value = clientv3.EventTypePut, b
	}
	v.mu.Lock()
	v.applyName(name, ev)
	v.mu.Unlock()
}

// expectView fails the test unless v holds exactly want, by name, by token and in Snapshot.
func expectView(t *testing.T, v *View, want map[string]Record, gone []string, goneTokens []string) {
	t.Helper()
	if v.Len() != len(want) {
		t.Errorf("view holds %d names, want %d", v.Len(), len(want))
	}
	for name, w := range want {
		if got, ok := v.Lookup(name); !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", name, got, ok, w)
		}
		if got, ok := v.LookupToken(w.Token); !ok || got.Name != name {
			t.Errorf("LookupToken of %s's token: %q, %v", name, got.Name, ok)
		}
	}
	for _, name := range gone {
		if d, ok := v.Lookup(name); ok {
			t.Errorf("Lookup(%s) found %+v, which is gone", name, d)
		}
	}
	for _, token := range goneTokens {
		if d, ok := v.LookupToken(token); ok {
			t.Errorf("a token no longer used finds %s", d.Name)
		}
	}
	_, all := v.Snapshot()
	var names []string
	for _, d := range all {
		names = append(names, d.Name)
		if w := want[d.Name]; !reflect.DeepEqual(*d, w) {
			t.Errorf("Snapshot's %s: %+v, want %+v", d.Name, *d, w)
		}
	}
	slices.Sort(names)
	if len(names) != len(want) || len(slices.Compact(names)) != len(want) {
		t.Errorf("Snapshot holds %d records, %d names; want %d", len(all), len(slices.Compact(names)), len(want))
	}
}

// Changes the watch applies while a fold runs (to names of the base, of the overlay being
// folded, and new ones) are all seen while it runs, and none is lost when its base is
// installed; a fold whose base a full load replaced meanwhile is dropped.
func TestChangesDuringFoldKept(t *testing.T) {
	const n = 100
	v := viewOfValues(n, func(i int) []byte {
		b, _ := json.Marshal(typicalRecord(i))
		return b
	})
	want := map[string]Record{}
	for i := range n {
		want[fmt.Sprintf("gw%d", i)], _ = v.Lookup(fmt.Sprintf("gw%d", i))
	}
	rev := int64(n)
	put := func(name string, edit func(*Record)) {
		d, ok := v.Lookup(name)
		if !ok {
			d = newRecord(name)
		}
		edit(&d)
		rev++
		change(t, v, name, &d, rev)
		d.rev = rev
		want[name] = d
	}
	del := func(name string) {
		rev++
		change(t, v, name, nil, rev)
		delete(want, name)
	}
	// Before the fold: into the overlay that it folds.
	put("gw1", func(d *Record) { d.Description = "before the fold" })
	del("gw2")
	put("new1", func(d *Record) { d.Token = "new1-token" })
	put("gw64", func(d *Record) { d.Pending = nil }) // a record kept aside becomes a compact one

	v.mu.Lock()
	old, o := v.startFold()
	v.mu.Unlock()
	// During the fold: into the new overlay.
	del("gw1")
	put("gw2", func(d *Record) { d.Description = "created again during the fold" })
	put("gw3", func(d *Record) { d.Description = "during the fold" })
	put("new1", func(d *Record) { d.Token = "new1-token2" })
	put("new2", func(d *Record) { d.Token = "new2-token" })
	gone, goneTokens := []string{"gw1", "gw100"}, []string{"new1-token", typicalRecord(1).Token}
	expectView(t, v, want, gone, goneTokens)

	v.install(old, o, fold(old, o))
	if v.folding != nil || v.base == old || len(v.overlay.byName) != 5 {
		t.Fatalf("after the fold: folding %v, base replaced %v, overlay of %d", v.folding, v.base != old, len(v.overlay.byName))
	}
	expectView(t, v, want, gone, goneTokens)

	// A fold finishing after a full load replaced the base leaves the load's base.
	v.mu.Lock()
	old, o = v.startFold()
	v.mu.Unlock()
	loaded := StaticView(1).base
	v.mu.Lock()
	v.base, v.overlay, v.folding, v.names = loaded, newOverlay(), nil, 0
	v.mu.Unlock()
	v.install(old, o, fold(old, o))
	if v.base != loaded || v.Len() != 0 {
		t.Errorf("a fold begun before a load replaced the load's base (%d names)", v.Len())
	}
}

// A view following etcd folds its overlay into a new base in the background once the watch
// has brought foldSize changes, while writes go on, and ends with every record as written.
func TestViewFoldsUnderWatch(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	if err := s.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := foldSize(0) + 500
	putRecords(t, s.Client(), s.keys, n) // creates gw00000…: the overlay grows past foldSize
	// Changes that may land while the fold runs.
	for i := 0; i < n; i += 97 {
		name := fmt.Sprintf("gw%05d", i)
		if i%2 == 0 {
			if _, err := s.Delete(t.Context(), ByName(name), nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := s.Update(t.Context(), ByName(name), func(d *Record) error { d.Description = "changed"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := s.Client().Get(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	v := s.View()
	if err := v.WaitRevision(t.Context(), rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the overlay was not folded", func() bool {
		v.mu.RLock()
		defer v.mu.RUnlock()
		return v.folding == nil && v.base.Len() >= foldSize(0)
	})
	deleted := 0
	for i := range n {
		name := fmt.Sprintf("gw%05d", i)
		d, ok := v.Lookup(name)
		switch {
		case i%97 == 0 && i%2 == 0:
			deleted++
			if ok {
				t.Errorf("%s, deleted, is in the view", name)
			}
		case !ok:
			t.Errorf("%s is not in the view", name)
		case (i%97 == 0) != (d.Description == "changed"):
			t.Errorf("%s: description %q", name, d.Description)
		}
	}
	if v.Len() != n-deleted {
		t.Errorf("view holds %d names, want %d", v.Len(), n-deleted)
	}
	assertConsistent(t, s)
}

// BenchmarkViewFold times folding an overlay of foldSize changes into a base of a million
// records, the work a fold does in the background, and reports how long it holds the
// view's lock (to start the fold, and to install its base).
func BenchmarkViewFold(b *testing.B) {
	const n = 1_000_000
	v := viewOfValues(n, func(i int) []byte {
		b, _ := json.Marshal(typicalRecord(i))
		return b
	})
	changes := make([]Record, foldSize(n))
	for i := range changes {
		changes[i] = typicalRecord(i * 7 % (n + n/10)) // changes of names there, and new ones
		changes[i].Description = "changed"
	}
	var locked time.Duration
	for b.Loop() {
		for i := range changes {
			v.overlay.set(changes[i].Name, &changes[i])
		}
		start := time.Now()
		v.mu.Lock()
		old, o := v.startFold()
		v.mu.Unlock()
		locked += time.Since(start)
		folded := fold(old, o)
		start = time.Now()
		v.install(old, o, folded)
		locked += time.Since(start)
		if v.base != folded || folded.Len() < n {
			b.Fatalf("fold of %d names not installed", folded.Len())
		}
	}
	b.ReportMetric(float64(locked.Nanoseconds())/float64(b.N), "locked-ns/op")
}

// Lookups allocate nothing, whether the record is in the base's arena (with challenges),
// kept aside, or in the overlay, and when it is missing: the DNS path depends on it.
func TestLookupAllocatesNothing(t *testing.T) {
	v := viewOfValues(1000, func(i int) []byte {
		b, _ := json.Marshal(typicalRecord(i))
		return b
	})
	changed := typicalRecord(2)
	change(t, v, "gw2", &changed, 1001)
	for _, name := range []string{"gw1", "gw2", "gw64", "gw5", "missing"} {
		token := typicalRecord(0).Token
		if d, ok := v.Lookup(name); ok {
			token = d.Token
		}
		if allocs := testing.AllocsPerRun(100, func() {
			d, ok := v.Lookup(name)
			e, _ := v.LookupToken(token)
			if ok && (len(d.Challenges) != len(e.Challenges) || d.Name != e.Name) {
				t.Fatalf("%s: by name %+v, by token %+v", name, d, e)
			}
		}); allocs != 0 {
			t.Errorf("lookup of %s: %v allocations", name, allocs)
		}
	}
}

// BenchmarkViewLookup times lookups in a view of a million records, by name (found in the
// base, found in the overlay, missing) and by token, over names in random order as queries
// come, reading what an answer reads of the record: at this size, what counts is the cache
// misses of a lookup.
func BenchmarkViewLookup(b *testing.B) {
	const n = 1_000_000
	v := viewOfValues(n, func(i int) []byte {
		b, _ := json.Marshal(typicalRecord(i))
		return b
	})
	order := rand.Perm(n)
	changed := make([]Record, 4096)
	for i := range changed {
		changed[i] = typicalRecord(order[i])
		change(b, v, changed[i].Name, &changed[i], int64(n+i+1))
	}
	names := func(name func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = name(order[i])
		}
		return out
	}
	for _, bc := range []struct {
		name   string
		keys   []string
		lookup func(string) (Record, bool)
		found  bool
	}{
		{"base", names(func(i int) string { return fmt.Sprintf("gw%d", i) })[len(changed):], v.Lookup, true},
		{"overlay", names(func(i int) string { return fmt.Sprintf("gw%d", i) })[:len(changed)], v.Lookup, true},
		{"missing", names(func(i int) string { return fmt.Sprintf("gx%d", i) }), v.Lookup, false},
		{"token", names(func(i int) string { return typicalRecord(i).Token }), v.LookupToken, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i, read := 0, 0
			for b.Loop() {
				d, ok := bc.lookup(bc.keys[i%len(bc.keys)])
				if ok != bc.found {
					b.Fatalf("lookup of %s: %v", bc.keys[i%len(bc.keys)], ok)
				}
				if ok { // what an answer reads of the record
					read += int(d.Mode) + len(d.Continent) + len(d.Challenges) + int(d.LastPing.Unix()&1) + len(d.Token)
					if d.IPv4.IsValid() && d.Pending == nil {
						read++
					}
				}
				i++
			}
			if bc.found && read == 0 {
				b.Fatal("read nothing of the records found")
			}
		})
	}
}
