package etcdstore

import (
	"encoding/json"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// populate writes n records (typicalRecord) under prefix's names, 100 to a transaction.
func populate(tb testing.TB, cli *clientv3.Client, k keys, n int) {
	tb.Helper()
	for at := 0; at < n; at += 100 {
		var ops []clientv3.Op
		for i := at; i < min(at+100, n); i++ {
			d := typicalRecord(i)
			v, _ := json.Marshal(d)
			ops = append(ops, clientv3.OpPut(k.name(d.Name), string(v)))
		}
		if _, err := cli.Txn(tb.Context()).Then(ops...).Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// The local scan of the embedded member reads what the client's range stream reads: every
// key and value, in order, at the same revision, also across its chunks and after a write.
func TestLocalScanMatchesClient(t *testing.T) {
	e := startEtcd(t)
	s := openStore(t, e, "/scan/")
	n := 2*localChunk + 7
	populate(t, s.cli, s.keys, n)
	// A key after the range, which neither may return.
	s.cli.Put(t.Context(), "/scan0", "outside")
	collect := func(scanFn func(fn func(*mvccpb.KeyValue)) (int64, error)) (int64, []string) {
		var out []string
		rev, err := scanFn(func(kv *mvccpb.KeyValue) {
			out = append(out, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision))
		})
		if err != nil {
			t.Fatal(err)
		}
		return rev, out
	}
	crev, viaClient := collect(func(fn func(*mvccpb.KeyValue)) (int64, error) {
		return scan(t.Context(), s.cli, s.timeout, s.keys.names(), fn)
	})
	lrev, local := collect(func(fn func(*mvccpb.KeyValue)) (int64, error) {
		return e.scan(t.Context(), s.keys.names(), fn)
	})
	if len(viaClient) != n || crev != lrev || fmt.Sprint(local) != fmt.Sprint(viaClient) {
		t.Fatalf("client read %d keys at %d, local %d at %d; equal: %v", len(viaClient), crev, len(local), lrev, fmt.Sprint(local) == fmt.Sprint(viaClient))
	}

	// A store opened with Local loads through it, follows the watch from its revision and
	// writes through it, reading its own writes at once.
	ls := openConfig(t, Config{Endpoints: e.Endpoints(), Prefix: "/scan/", Local: e})
	if err := ls.View().WaitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ls.View().Len(); got != n {
		t.Fatalf("view loaded locally holds %d names, want %d", got, n)
	}
	if err := s.Create(t.Context(), newRecord("by-client")); err != nil {
		t.Fatal(err)
	}
	rev, _ := s.cli.Get(t.Context(), "x")
	if err := ls.View().WaitRevision(t.Context(), rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, ok := ls.View().Lookup("by-client"); !ok {
		t.Error("a name created through a client after the local load is not in the local view")
	}
	d := newRecord("by-local")
	if err := ls.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if err := ls.Create(t.Context(), newRecord("by-local")); err != ErrNameTaken {
		t.Errorf("second create of a name through the local store: %v, want ErrNameTaken", err)
	}
	if got, ok := ls.View().Lookup("by-local"); !ok || got.Token != d.Token {
		t.Error("the local store does not read its own write")
	}
	if _, err := ls.Update(t.Context(), ByToken(d.Token), func(d *Record) error { d.Description = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(t.Context(), ByName("by-local")); err != nil || got.Description != "changed" {
		t.Errorf("the client store reads %+v, %v after a local update", got, err)
	}
}

// BenchmarkViewLoad times a full load of the view from the embedded member, through the
// client (etcd's RangeStream over gRPC, what a replica does) and read locally (what the
// process running the embedded etcd does).
func BenchmarkViewLoad(b *testing.B) {
	const n = 100_000
	e, err := StartEmbedded(loopbackConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	k := newKeys("/load/")
	populate(b, cli, k, n)
	for _, bc := range []struct {
		name  string
		local *Embedded
	}{{"client", nil}, {"local", e}} {
		b.Run(bc.name, func(b *testing.B) {
			v := newView(&Keyspace{cli: cli, keys: k, timeout: DefaultTimeout, local: bc.local})
			for b.Loop() {
				if _, err := v.load(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			if v.Len() != n {
				b.Fatalf("loaded %d names, want %d", v.Len(), n)
			}
		})
	}
}
