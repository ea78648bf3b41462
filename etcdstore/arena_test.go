package etcdstore

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func fullRecord(i int) Record {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := Record{
		Name: fmt.Sprintf("gw%d", i), Token: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i),
		Description: fmt.Sprintf("gw%d's server", i), Mode: ModeDynamic, Continent: "EU",
		IPv4: netip.MustParseAddr("203.0.113.7"), IPv6: netip.MustParseAddr("2001:db8::7"),
		Created: now, LastPing: now.Add(time.Minute), Email: "a@example.org", EmailUnverified: i%2 == 0, OptOut: true,
		Pending: &Pending{VerifyHash: strings.Repeat("ab", 32), VerifyExpires: now.Add(time.Hour),
			Reclamations: []Reclamation{{strings.Repeat("cd", 32), now.Add(2 * time.Hour)}, {strings.Repeat("ef", 32), now.Add(time.Hour)}}},
	}
	for j := range i % 3 {
		d.AddChallenge(fmt.Sprintf("challenge-%d-%d", i, j), now, 2)
	}
	return d
}

// typicalRecord is fullRecord as most records of a large zone are: one in 64 carries
// something pending (a verification, reclamation tokens), the rest nothing.
func typicalRecord(i int) Record {
	d := fullRecord(i)
	if i%64 != 0 {
		d.Pending = nil
	}
	return d
}

// The load path packs records into slabs and chunks; what comes out must be exactly what
// JSON holds, record after record, with neither slab nor chunk leaking from one into another.
func TestLoaderDecodesEveryField(t *testing.T) {
	var l loader
	var got []*Record
	n := slabRecords + 10 // across a slab boundary
	for i := range n {
		d := fullRecord(i)
		if i == 5 {
			d.Description = strings.Repeat("x", chunkBytes) // longer than a chunk's share
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		name, rec := l.decode(&mvccpb.KeyValue{Key: []byte("/p/names/" + d.Name), Value: b, ModRevision: int64(i + 1)}, []byte(d.Name))
		if rec == nil || name != d.Name {
			t.Fatalf("record %d: decoded as %q, %v", i, name, rec)
		}
		if i == 7 {
			// A record that does not parse is left out and takes no slot.
			if name, bad := l.decode(&mvccpb.KeyValue{Key: []byte("/p/names/bad"), Value: []byte("{not json")}, []byte("bad")); bad != nil || name != "" {
				t.Fatalf("a broken record decoded as %q, %+v", name, bad)
			}
		}
		got = append(got, rec)
	}
	// Appending to one record's challenges (as code working on a copy might) must not write
	// into its neighbour's in the shared slab.
	for _, rec := range got {
		_ = append(rec.Challenges, Challenge{Value: "overflow"})
	}
	for i, rec := range got {
		want := fullRecord(i)
		if i == 5 {
			want.Description = strings.Repeat("x", chunkBytes)
		}
		want.rev = int64(i + 1)
		if !reflect.DeepEqual(*rec, want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, *rec, want)
		}
	}
}

// BenchmarkViewGC times a full garbage collection with a view of 200k records in the heap,
// loaded the way the View loads (slabs and chunks) next to one allocation per record and
// string (the baseline): the cost each collection cycle puts on the DNS path.
func BenchmarkViewGC(b *testing.B) {
	const n = 200_000
	values := make([][]byte, n)
	for i := range values {
		values[i], _ = json.Marshal(typicalRecord(i))
	}
	for _, bc := range []struct {
		name string
		load func() map[string]*Record
	}{
		{"per-record", func() map[string]*Record {
			m := make(map[string]*Record, n)
			for i, v := range values {
				name := fmt.Sprintf("gw%d", i)
				m[name] = decode(name, &mvccpb.KeyValue{Value: v})
			}
			return m
		}},
		{"slabs", func() map[string]*Record {
			m := make(map[string]*Record, n)
			var l loader
			for i, v := range values {
				name, d := l.decode(&mvccpb.KeyValue{Value: v}, []byte(fmt.Sprintf("gw%d", i)))
				m[name] = d
			}
			return m
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			view := bc.load()
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(view)
		})
	}
}

// BenchmarkViewHeap reports the live heap a view of a million typical records takes once
// loaded (HeapAlloc after a full collection, before and after the load), per name.
func BenchmarkViewHeap(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v := viewOfValues(n, func(i int) []byte {
			b, _ := json.Marshal(typicalRecord(i))
			return b
		})
		runtime.GC()
		runtime.ReadMemStats(&after)
		if v.Len() != n {
			b.Fatalf("view holds %d names, want %d", v.Len(), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/name")
		runtime.KeepAlive(v)
	}
}

// viewOfValues is a loaded view of n records named gw<i>, whose stored values value makes,
// built as View.load builds it from a scan.
func viewOfValues(n int, value func(i int) []byte) *View {
	v := newView(&Keyspace{})
	v.byName = make(map[string]*Record, n)
	v.byToken = make(map[string]*Record, n)
	var l loader
	for i := range n {
		name, d := l.decode(&mvccpb.KeyValue{Value: value(i), ModRevision: int64(i + 1)}, []byte(fmt.Sprintf("gw%d", i)))
		v.byName[name] = d
		v.byToken[d.Token] = d
	}
	v.loaded.Store(true)
	return v
}
