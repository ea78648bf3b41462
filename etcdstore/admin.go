package etcdstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"
)

// Records returns every record that parses, sorted by name, as of one revision, which it
// returns too. Records that do not parse are left out: Check reports them.
func (ks *Keyspace) Records(ctx context.Context) ([]Record, int64, error) {
	var out []Record
	rev, err := ks.scan(ctx, ks.keys.names(), func(kv *mvccpb.KeyValue) {
		if d, err := parseRecord(kv.Value); err == nil {
			out = append(out, *d)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, rev, nil
}

// Repair fixes the inconsistencies Check finds that it can prove how to fix, each in a
// transaction guarded by the revisions it read, and returns one line per fix (keys, names
// and hashes, never a secret): an index key whose record does not hold its secret (or that
// points at no record) is deleted; an index key a record needs is created when no other record
// holds it (after those deletions). What it cannot prove (two records holding one secret, a
// record without a token, a record that does not parse) it leaves for Check to report. A key
// changed since the scan is left alone.
func (ks *Keyspace) Repair(ctx context.Context) ([]string, error) {
	st, err := ks.readState(ctx)
	if err != nil {
		return nil, err
	}
	var fixed []string
	deleted := map[string]bool{}
	for _, e := range st.entries {
		if !st.dangling(e) {
			continue
		}
		k := ks.keys.hashedKey(e.dir, e.hash)
		ok, err := ks.guarded(ctx, clientv3.OpDelete(k), k, e.rev, ks.keys.name(e.name), st.records[e.name].rev)
		if err != nil {
			return fixed, err
		}
		if ok {
			deleted[k] = true
			fixed = append(fixed, fmt.Sprintf("%s: deleted (pointed at %q, which does not hold it)", k, e.name))
		}
	}
	for _, name := range st.names {
		r := st.records[name]
		if r.d == nil || r.d.Name != name {
			continue
		}
		for _, ix := range indexesOf(r.d) {
			k := ks.keys.hashedKey(ix.dir, ix.hash)
			if _, held := st.owners[k]; held && !deleted[k] {
				continue // by this record, or by another that holds the same secret
			}
			ok, err := ks.guarded(ctx, clientv3.OpPut(k, name), k, 0, ks.keys.name(name), r.rev)
			if err != nil {
				return fixed, err
			}
			if ok {
				fixed = append(fixed, fmt.Sprintf("%s: created for the %s of %q", k, secretOf(ix.dir), name))
			}
		}
	}
	return fixed, nil
}

// DeleteDamaged deletes the record of name if it is not valid JSON (as Get reports with
// ErrDamaged), guarded by the revision read. Index keys that pointed at it are left: Repair
// deletes them once the record is gone.
func (ks *Keyspace) DeleteDamaged(ctx context.Context, name string) error {
	key := ks.keys.name(name)
	cctx, cancel := ks.ctx(ctx)
	resp, err := ks.cli.Get(cctx, key)
	cancel()
	if err := observe("get", err); err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return ErrNotFound
	}
	if _, err := parseRecord(resp.Kvs[0].Value); err == nil {
		return fmt.Errorf("record %s is not damaged: delete it with its index keys (Delete)", name)
	}
	ok, err := ks.guarded(ctx, clientv3.OpDelete(key), key, resp.Kvs[0].ModRevision, key, resp.Kvs[0].ModRevision)
	if err == nil && !ok {
		err = ErrConflict
	}
	return err
}

// guarded runs op if key and the record key are still at the mod revisions read (0: absent).
func (ks *Keyspace) guarded(ctx context.Context, op clientv3.Op, key string, keyRev int64, recordKey string, recordRev int64) (bool, error) {
	ctx, cancel := ks.ctx(ctx)
	defer cancel()
	resp, err := ks.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", keyRev),
		clientv3.Compare(clientv3.ModRevision(recordKey), "=", recordRev),
	).Then(op).Commit()
	if err := observe("txn", err); err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// Status is the database's size in bytes and the current revision, as the first endpoint
// that answers reports them.
func (ks *Keyspace) Status(ctx context.Context) (dbSize, revision int64, err error) {
	for _, ep := range ks.endpoints() {
		cctx, cancel := ks.ctx(ctx)
		st, e := ks.cli.Status(cctx, ep)
		cancel()
		if e == nil {
			return st.DbSize, st.Header.Revision, nil
		}
		err = e
	}
	return 0, 0, fmt.Errorf("etcd status: %w", err)
}

// endpoints are the client's endpoints; a client of the member in this process has none,
// and its status call ignores the endpoint.
func (ks *Keyspace) endpoints() []string {
	if eps := ks.cli.Endpoints(); len(eps) > 0 {
		return eps
	}
	return []string{""}
}

// Backup writes a snapshot of the whole etcd database (every key, not only the registry's)
// to w through etcd's maintenance API: the file that RestoreSnapshot and
// `etcdutl snapshot restore` read. It is not bounded by the etcd timeout, since a large
// database takes long to stream; ctx bounds it.
func (ks *Keyspace) Backup(ctx context.Context, w io.Writer) (int64, error) {
	rc, err := ks.cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("etcd snapshot: %w", err)
	}
	return n, nil
}

// RestoreSnapshot makes dir, which must not exist, a new single-member etcd data directory
// holding the data of the snapshot file at path, as `etcdutl snapshot restore` does (etcdutl
// is not in this module's graph). A snapshot is etcd's bbolt backend followed by its SHA-256:
// checked, the backend becomes dir's, without the old cluster's members and raft index, and
// etcd, finding a backend and no WAL, bootstraps a new cluster over it with the data and its
// revisions. The revision is the snapshot's: raise the SOA serial afterwards (RaiseSerial).
func RestoreSnapshot(path, dir string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) <= sha256.Size {
		return fmt.Errorf("%s is too short to be an etcd snapshot", path)
	}
	db, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(db); !bytes.Equal(got[:], sum) {
		return fmt.Errorf("%s does not match its SHA-256: not an etcd snapshot, or damaged", path)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restoring into %s: it exists already", dir)
	}
	snap := filepath.Join(dir, "member", "snap")
	if err := os.MkdirAll(snap, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(snap, "db"), db, 0o600); err != nil {
		return err
	}
	return resetMembership(filepath.Join(snap, "db"))
}

// resetMembership removes the old cluster's members from the backend at path and sets its
// raft index to 0 (the new cluster's raft log, which starts again at 1, applies from its
// first entry) and its term to 1, the new log's: etcd tells the backend's schema by a term.
func resetMembership(path string) error {
	be := backend.NewDefaultBackend(zap.NewNop(), path)
	defer be.Close()
	if err := schema.NewMembershipBackend(zap.NewNop(), be).TrimMembershipFromBackend(); err != nil {
		return err
	}
	term := make([]byte, 8)
	binary.BigEndian.PutUint64(term, 1)
	tx := be.BatchTx()
	tx.LockOutsideApply()
	tx.UnsafePut(schema.Meta, schema.MetaConsistentIndexKeyName, make([]byte, 8))
	tx.UnsafePut(schema.Meta, schema.MetaTermKeyName, term)
	tx.Unlock()
	be.ForceCommit()
	return nil
}
