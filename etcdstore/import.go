package etcdstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ImportStatus is what Import did, or in a dry run would do, with one record.
type ImportStatus uint8

const (
	// Imported: the record and its indexes were written (in a dry run: would be).
	Imported ImportStatus = iota
	// Unchanged: the very same record was already stored, as a rerun of an import finds it.
	Unchanged
	// Conflict: its name, or an index key one of its secrets needs, is taken by something
	// else (stored, or an earlier record of the same import); nothing was written for it.
	Conflict
)

// ImportResult is the outcome of one record given to Import.
type ImportResult struct {
	Name   string
	Status ImportStatus
	// Reason says, for a Conflict, what is taken; it names fields and names, never a secret.
	Reason string
}

// ImportOptions tune an Import.
type ImportOptions struct {
	// DryRun reads the store to classify every record but writes nothing.
	DryRun bool
	// Progress, if set, is called (from one goroutine at a time) with how many records have
	// been handled so far.
	Progress func(done int)
	// Same, if set, says whether a stored record counts as the one to import although their
	// encodings differ (say, in times an import sets); without it only identical records do.
	Same func(stored, record *Record) bool
}

// maxTxnOps is etcd's default bound (--max-txn-ops) on the compares, and separately on the
// operations, of one transaction; an import transaction stays within it.
const maxTxnOps = 128

// maxTxnBytes bounds the keys and values of one import transaction, well under etcd's
// default request size limit (--max-request-bytes, 1.5 MiB), whatever the records hold.
const maxTxnBytes = 1 << 20

// importWorkers is how many import transactions are in flight at once: enough for etcd to
// commit several in one raft round and one fsync.
const importWorkers = 4

// Import stores records that no writer has stored yet, as they are, with every index their
// secrets need, many in one transaction: each record with its indexes is created only if
// none of its keys exists, so an existing key is reported as a Conflict, never overwritten.
// It returns one result per record, in order. It is meant for moving a whole registry in
// (the importer): the API writes one record at a time through Store.
func (ks *Keyspace) Import(ctx context.Context, records []Record, opt ImportOptions) ([]ImportResult, error) {
	results := make([]ImportResult, len(records))
	pending := make([]importEntry, 0, len(records))
	claimed := map[string]string{} // key -> the name of the earlier record of this import that needs it
	for i := range records {
		d := &records[i]
		results[i] = ImportResult{Name: d.Name}
		if d.Name == "" || d.Token == "" {
			results[i].Status, results[i].Reason = Conflict, "a record needs a name and a token"
			continue
		}
		e, err := ks.importEntry(i, d)
		if err != nil {
			return nil, err
		}
		if reason := e.claim(claimed); reason != "" {
			results[i].Status, results[i].Reason = Conflict, reason
			continue
		}
		pending = append(pending, e)
	}
	var mu sync.Mutex
	done := len(records) - len(pending)
	report := func(batch []importEntry, out []ImportResult) {
		mu.Lock()
		defer mu.Unlock()
		for j, e := range batch {
			results[e.index] = out[j]
		}
		done += len(batch)
		if opt.Progress != nil {
			opt.Progress(done)
		}
	}
	err := ks.importBatches(ctx, batches(pending), opt, report)
	return results, err
}

// importBatches runs the batches on importWorkers goroutines and returns the first error.
func (ks *Keyspace) importBatches(ctx context.Context, all [][]importEntry, opt ImportOptions, report func([]importEntry, []ImportResult)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan []importEntry)
	errs := make(chan error, importWorkers)
	var wg sync.WaitGroup
	for range importWorkers {
		wg.Go(func() {
			for batch := range work {
				out, err := ks.importBatch(ctx, batch, opt)
				if err != nil {
					errs <- err
					cancel()
					return
				}
				report(batch, out)
			}
		})
	}
feed:
	for _, b := range all {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// importEntry is one record ready to be written: its value and the keys it creates.
type importEntry struct {
	index int // in the records given to Import
	name  string
	value []byte
	keys  []string // the record's key first, then its index keys
	// secrets names, for each index key, the secret it is for (secrets[j] for keys[j+1]).
	secrets []string
}

func (ks *Keyspace) importEntry(i int, d *Record) (importEntry, error) {
	val, err := json.Marshal(d)
	if err != nil {
		return importEntry{}, fmt.Errorf("record %s: %w", d.Name, err)
	}
	e := importEntry{index: i, name: d.Name, value: val, keys: []string{ks.keys.name(d.Name)}}
	for _, ix := range indexesOf(d) {
		e.keys = append(e.keys, ks.keys.hashedKey(ix.dir, ix.hash))
		e.secrets = append(e.secrets, secretOf(ix.dir))
	}
	return e, nil
}

// size is about how many bytes e adds to a transaction.
func (e importEntry) size() int {
	n := len(e.value)
	for _, k := range e.keys {
		n += len(k) + len(e.name)
	}
	return n
}

// claim records e's keys as taken by e, or says which one an earlier record already took.
func (e importEntry) claim(claimed map[string]string) string {
	for i, k := range e.keys {
		if other, ok := claimed[k]; ok {
			if i == 0 {
				return "the same name as an earlier record of this import"
			}
			return fmt.Sprintf("its %s is also %q's, an earlier record of this import", e.secrets[i-1], other)
		}
	}
	for _, k := range e.keys {
		claimed[k] = e.name
	}
	return ""
}

// batches splits entries into groups whose keys and values fit one transaction.
func batches(entries []importEntry) [][]importEntry {
	var out [][]importEntry
	start, n, size := 0, 0, 0
	for i, e := range entries {
		if i > start && (n+len(e.keys) > maxTxnOps || size+e.size() > maxTxnBytes) {
			out = append(out, entries[start:i])
			start, n, size = i, 0, 0
		}
		n += len(e.keys)
		size += e.size()
	}
	if start < len(entries) {
		out = append(out, entries[start:])
	}
	return out
}

// maxImportAttempts bounds the rounds of one batch: each round writes the records still free,
// and only a concurrent writer taking their keys meanwhile starts another.
const maxImportAttempts = 8

// importBatch creates the batch's records in one transaction if none of their keys exists;
// otherwise it reads the keys, classifies each record, and tries again with those still free.
func (ks *Keyspace) importBatch(ctx context.Context, batch []importEntry, opt ImportOptions) ([]ImportResult, error) {
	out := make([]ImportResult, len(batch))
	free := make([]int, len(batch)) // positions in batch still to be written
	for i, e := range batch {
		out[i].Name = e.name
		free[i] = i
	}
	for range maxImportAttempts {
		if !opt.DryRun {
			ok, err := ks.createAll(ctx, batch, free)
			if err != nil || ok {
				return out, err
			}
		}
		stored, err := ks.readKeys(ctx, batch, free)
		if err != nil {
			return nil, err
		}
		var still []int
		for _, i := range free {
			out[i] = classify(batch[i], stored, opt.Same)
			if out[i].Status == Imported {
				still = append(still, i)
			}
		}
		if opt.DryRun || len(still) == 0 {
			return out, nil
		}
		free = still
	}
	for _, i := range free {
		out[i] = ImportResult{Name: batch[i].name, Status: Conflict, Reason: "its keys kept changing while it was imported"}
	}
	return out, nil
}

// createAll writes the records at positions free of batch, each key created only if absent.
func (ks *Keyspace) createAll(ctx context.Context, batch []importEntry, free []int) (bool, error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, i := range free {
		e := batch[i]
		for j, k := range e.keys {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			v := e.name
			if j == 0 {
				v = string(e.value)
			}
			ops = append(ops, clientv3.OpPut(k, v))
		}
	}
	ctx, cancel := ks.ctx(ctx)
	defer cancel()
	resp, err := ks.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err := observe("txn", err); err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// readKeys reads every key of the records at positions free of batch, in one transaction,
// and returns the values of those that exist.
func (ks *Keyspace) readKeys(ctx context.Context, batch []importEntry, free []int) (map[string][]byte, error) {
	var ops []clientv3.Op
	for _, i := range free {
		for _, k := range batch[i].keys {
			ops = append(ops, clientv3.OpGet(k))
		}
	}
	ctx, cancel := ks.ctx(ctx)
	defer cancel()
	resp, err := ks.cli.Txn(ctx).Then(ops...).Commit()
	if err := observe("txn", err); err != nil {
		return nil, err
	}
	stored := map[string][]byte{}
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			stored[string(kv.Key)] = kv.Value
		}
	}
	return stored, nil
}

// classify says what to do with e given the stored values of its keys: Imported means its
// keys are all free.
func classify(e importEntry, stored map[string][]byte, same func(stored, record *Record) bool) ImportResult {
	r := ImportResult{Name: e.name}
	if have, ok := stored[e.keys[0]]; ok {
		if bytes.Equal(have, e.value) || sameRecord(have, e.value, same) {
			r.Status = Unchanged
			return r
		}
		r.Status, r.Reason = Conflict, "the name is already registered: "+recordDiff(have, e.value)
		return r
	}
	for j, k := range e.keys[1:] {
		if owner, ok := stored[k]; ok {
			r.Status = Conflict
			r.Reason = fmt.Sprintf("its %s is already %q's", e.secrets[j], owner)
			return r
		}
	}
	return r
}

// sameRecord decodes two encoded records as stored records are read (parseRecord: a record of
// an earlier version in this version's fields) and asks same whether they count as the same.
func sameRecord(have, want []byte, same func(stored, record *Record) bool) bool {
	if same == nil {
		return false
	}
	h, err := parseRecord(have)
	if err != nil {
		return false
	}
	w, err := parseRecord(want)
	return err == nil && same(h, w)
}

// recordDiff names the fields in which a stored record differs from the one to import.
func recordDiff(have, want []byte) string {
	var h, w map[string]json.RawMessage
	if json.Unmarshal(have, &h) != nil {
		return "the stored record is not valid JSON"
	}
	json.Unmarshal(want, &w)
	var fields []string
	for _, f := range slices.Sorted(maps.Keys(w)) {
		if !bytes.Equal(h[f], w[f]) {
			fields = append(fields, f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(h)) {
		if _, ok := w[f]; !ok {
			fields = append(fields, f)
		}
	}
	return fmt.Sprintf("the stored record differs in %v", fields)
}
