package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The streamed read and the paged fallback (for etcd servers without RangeStream) see the same
// keys at the same revision, across several pages.
func TestScanStreamAndPagesAgree(t *testing.T) {
	e := startEtcd(t)
	s := openStore(t, e, "/scan/")
	ctx := context.Background()
	want := make([]string, 0, 2*pageSize+5)
	for i := range 2*pageSize + 5 {
		key := fmt.Sprintf("/scan/names/n%05d", i)
		if _, err := s.cli.Put(ctx, key, "v"); err != nil {
			t.Fatal(err)
		}
		want = append(want, key)
	}
	s.cli.Put(ctx, "/scan/namesake", "outside the prefix")
	for name, read := range map[string]func(context.Context, string, func(*mvccpb.KeyValue)) (int64, error){
		"stream": func(ctx context.Context, p string, fn func(*mvccpb.KeyValue)) (int64, error) {
			return scanStream(ctx, s.cli, 2*time.Second, p, fn)
		},
		"pages": func(ctx context.Context, p string, fn func(*mvccpb.KeyValue)) (int64, error) {
			return scanPages(ctx, s.cli, 2*time.Second, p, fn)
		},
	} {
		var got []string
		rev, err := read(ctx, "/scan/names/", func(kv *mvccpb.KeyValue) { got = append(got, string(kv.Key)) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d keys, want %d in order", name, len(got), len(want))
		}
		cur, _ := s.cli.Get(ctx, "/scan/none")
		if rev != cur.Header.Revision {
			t.Errorf("%s: revision %d, want the current %d", name, rev, cur.Header.Revision)
		}
	}
}
