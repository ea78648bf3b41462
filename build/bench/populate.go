package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/regdns/regdns/etcdstore"
)

// The registry's key layout (etcdstore/keys.go), written here in bulk: etcdstore creates one
// name per transaction, far too slow for a million. etcdstore's own Check proves that what
// this writes is the layout the registry reads.
const (
	prefix    = etcdstore.DefaultPrefix
	namesKey  = prefix + "names/"
	tokensKey = prefix + "tokens/"
)

// Bulk writing: etcd allows 128 operations per transaction (--max-txn-ops), two per name.
const (
	namesPerTxn     = 64
	populateWorkers = 32
	// checkUpTo is the largest zone whose consistency is checked after populating: the check
	// reads every key into memory, and the layout is the same at any size.
	checkUpTo = 100_000
)

// etcdClient connects to the etcd at endpoint.
func etcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// hashOf is the index form of a secret: its SHA-256 in hex.
func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// populate registers names 0..n-1 with fresh tokens, which it returns, all created and
// pinged now.
func populate(ctx context.Context, cli *clientv3.Client, n int) ([]string, error) {
	now := time.Now()
	return populateRecords(ctx, cli, n, func(i int, token string) etcdstore.Record { return domain(i, token, now) })
}

// populateRecords registers names 0..n-1 as record makes them, with fresh tokens, which it
// returns, in transactions of namesPerTxn names (each record with its token index) from
// several writers at once.
func populateRecords(ctx context.Context, cli *clientv3.Client, n int, record func(i int, token string) etcdstore.Record) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = newToken()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(populateWorkers)
	for lo := 0; lo < n; lo += namesPerTxn {
		hi := min(lo+namesPerTxn, n)
		g.Go(func() error {
			ops := make([]clientv3.Op, 0, 2*(hi-lo))
			for i := lo; i < hi; i++ {
				rec, err := json.Marshal(record(i, tokens[i]))
				if err != nil {
					return err
				}
				ops = append(ops, clientv3.OpPut(namesKey+name(i), string(rec)), clientv3.OpPut(tokensKey+hashOf(tokens[i]), name(i)))
			}
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, err := cli.Txn(tctx).Then(ops...).Commit()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("populating etcd: %w", err)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx2, namesKey, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	if resp.Count != int64(n) {
		return nil, fmt.Errorf("populating etcd: %d names stored, want %d", resp.Count, n)
	}
	return tokens, nil
}

// checkLayout runs the registry's consistency check over what populate wrote.
func checkLayout(ctx context.Context, endpoint string) error {
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Prefix: prefix, Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	problems, err := s.Check(ctx)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("etcdstore.Check found %d problem(s) in the bulk-written data, first: %s", len(problems), problems[0])
	}
	return nil
}
