package etcdstore

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Selector picks one record: by name, or by one of the secrets that index it.
type Selector struct {
	kind  selectorKind
	value string
}

type selectorKind int

const (
	byName selectorKind = iota
	byToken
	byReclamationToken
	byVerificationID
)

// ByName selects the record of a name.
func ByName(name string) Selector { return Selector{byName, name} }

// ByToken selects the record whose API token is token.
func ByToken(token string) Selector { return Selector{byToken, token} }

// ByReclamationToken selects the record holding that reclamation token, expired or not.
func ByReclamationToken(rt string) Selector { return Selector{byReclamationToken, rt} }

// ByVerificationID selects the record with that pending email verification id.
func ByVerificationID(id string) Selector { return Selector{byVerificationID, id} }

// indexKey is the index entry the selector goes through, or "" for a name.
func (s Selector) indexKey(k keys) string {
	switch s.kind {
	case byToken:
		return k.token(s.value)
	case byReclamationToken:
		return k.reclaim(s.value)
	case byVerificationID:
		return k.verify(s.value)
	}
	return ""
}

// matches re-checks the secret against the record itself, in constant time, so that a
// record reached through an index is only returned if it still carries that secret.
// An empty selector matches nothing, even a record whose secret is the hash of "".
func (s Selector) matches(d *Record) bool {
	if s.value == "" {
		return false
	}
	switch s.kind {
	case byName:
		return d.Name == s.value
	case byToken:
		return equalSecret(d.Token, s.value)
	case byReclamationToken:
		want, found := hashSecret(s.value), false
		for _, r := range d.ReclamationTokens() {
			found = equalSecret(r.Hash, want) || found
		}
		return found
	}
	h, _ := d.Verification()
	return equalSecret(h, hashSecret(s.value))
}

// equalSecret compares a stored secret (or hash) with the one given, in constant time; an
// empty stored one matches nothing.
func equalSecret(have, want string) bool {
	return have != "" && subtle.ConstantTimeCompare([]byte(have), []byte(want)) == 1
}

// Get returns the selected record.
func (s *Keyspace) Get(ctx context.Context, sel Selector) (Record, error) {
	d, _, err := s.read(ctx, sel)
	return d, err
}

// read returns the selected record and its mod revision, for a later compare.
func (s *Keyspace) read(ctx context.Context, sel Selector) (Record, int64, error) {
	if sel.value == "" {
		return Record{}, 0, ErrNotFound
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	name := sel.value
	if ik := sel.indexKey(s.keys); ik != "" {
		resp, err := s.cli.Get(ctx, ik)
		if err := observe("get", err); err != nil {
			return Record{}, 0, err
		}
		if len(resp.Kvs) == 0 {
			return Record{}, 0, ErrNotFound
		}
		name = string(resp.Kvs[0].Value)
	}
	resp, err := s.cli.Get(ctx, s.keys.name(name))
	if err := observe("get", err); err != nil {
		return Record{}, 0, err
	}
	if len(resp.Kvs) == 0 {
		return Record{}, 0, ErrNotFound
	}
	// parseRecord rather than the view's decoder: its errors, which get logged, quote no
	// more than a character of the record, never a secret.
	d, err := parseRecord(resp.Kvs[0].Value)
	if err != nil {
		return Record{}, 0, fmt.Errorf("record %s: %w (%v)", name, ErrDamaged, err)
	}
	if !sel.matches(d) {
		return Record{}, 0, ErrNotFound
	}
	return *d, resp.Kvs[0].ModRevision, nil
}

// cached is the selected record as the view holds it, with its revision (0 if there is no
// view, the view has none, or the selector is one the view does not index).
func (s *Keyspace) cached(sel Selector) (Record, int64) {
	if s.view == nil {
		return Record{}, 0
	}
	var d Record
	var ok bool
	switch sel.kind {
	case byToken:
		d, ok = s.view.LookupToken(sel.value)
	case byName:
		d, ok = s.view.Lookup(sel.value)
		ok = ok && sel.matches(&d)
	}
	if !ok {
		return Record{}, 0
	}
	return d, d.rev
}

// Create stores d with every index of its secrets if no record of its name exists (else
// ErrNameTaken) and none of its secrets indexes another record (else ErrSecretInUse).
func (s *Keyspace) Create(ctx context.Context, d Record) error {
	if d.Name == "" || d.Token == "" {
		return fmt.Errorf("a record needs a name and a token")
	}
	ok, err := s.write(ctx, nil, 0, &d)
	if err != nil || ok {
		return err
	}
	// The transaction says only that a compare failed: the name's, or an index's.
	if _, err := s.Get(ctx, ByName(d.Name)); errors.Is(err, ErrNotFound) {
		return ErrSecretInUse
	} else if err != nil {
		return err
	}
	return ErrNameTaken
}

// Update applies fn to the selected record and stores the result in one transaction that
// also moves every index whose secret fn changed. If fn returns an error nothing is written
// and Update returns that error. The record is re-read and fn re-run if another replica wrote
// it in between; fn must therefore have no side effects. ErrConflict means the record kept
// changing until the deadline, or a secret fn set is another record's.
func (s *Keyspace) Update(ctx context.Context, sel Selector, fn func(*Record) error) (Record, error) {
	return s.change(ctx, sel, func(d *Record) (*Record, error) {
		if err := fn(d); err != nil {
			return nil, err
		}
		return d, nil
	})
}

// Delete removes the selected record and every index pointing at it, after check (if not
// nil) accepted it. It returns the record as it was.
func (s *Keyspace) Delete(ctx context.Context, sel Selector, check func(*Record) error) (Record, error) {
	var deleted Record
	_, err := s.change(ctx, sel, func(d *Record) (*Record, error) {
		if check != nil {
			if err := check(d); err != nil {
				return nil, err
			}
		}
		deleted = *d
		return nil, nil
	})
	return deleted, err
}

// change is the read-modify-write behind Update and Delete; fn returns the new record, or nil
// to delete it. Changes of one name on this replica wait their turn (nameQueue); a change that
// loses to another replica's write backs off and runs again. All of it takes at most the etcd
// timeout, as one etcd call would: a change still waiting then fails with ErrConflict.
func (s *Keyspace) change(ctx context.Context, sel Selector, fn func(*Record) (*Record, error)) (Record, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	fresh, pause := false, firstPause
	for {
		old, rev, err := s.current(ctx, sel, fresh)
		if err != nil {
			return Record{}, err
		}
		if release == nil {
			var waited bool
			if release, waited, err = s.queue.take(ctx, old.Name); err != nil {
				return Record{}, ErrConflict
			}
			if waited {
				continue // the changes ahead in the queue have moved the record on
			}
		}
		cur := old
		cur.Challenges = append([]Challenge(nil), old.Challenges...)
		next, err := fn(&cur)
		if err != nil {
			return Record{}, err
		}
		if next != nil && next.Name != old.Name {
			// The guard compares the old name's key, so a rename could never be written.
			return Record{}, fmt.Errorf("record %s cannot be renamed to %s", old.Name, next.Name)
		}
		ok, err := s.write(ctx, &old, rev, next)
		if err != nil {
			return Record{}, err
		}
		if ok {
			if next == nil {
				return Record{}, nil
			}
			return *next, nil
		}
		// The record changed since it was read (another replica, or a view behind etcd):
		// read it from etcd after a pause.
		writeRetries.Inc()
		fresh = true
		if !sleep(ctx, pause/2+rand.N(pause)) {
			return Record{}, ErrConflict
		}
		pause = min(2*pause, maxPause)
	}
}

// A change that lost to another replica waits about firstPause before it runs again, doubling
// up to maxPause, with jitter so that racing replicas draw apart.
const (
	firstPause = 5 * time.Millisecond
	maxPause   = 200 * time.Millisecond
)

// current is the selected record and its revision: first from the local view, saving two
// reads (the write's guard on the revision rejects a stale copy), from etcd if fresh or the
// view does not have it.
func (s *Keyspace) current(ctx context.Context, sel Selector, fresh bool) (Record, int64, error) {
	if !fresh {
		if d, rev := s.cached(sel); rev != 0 {
			return d, rev, nil
		}
	}
	return s.read(ctx, sel)
}

// sleep pauses for d, or reports false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// write replaces old (nil: absent) with next (nil: delete) in one transaction, guarded by
// old's mod revision, removing the index entries only old needs and adding (if absent) those
// only next needs. It reports false if the guard failed, and ErrConflict if a new secret's
// index is taken. On success it waits until the local View, if any, shows the change.
func (s *Keyspace) write(ctx context.Context, old *Record, oldRev int64, next *Record) (bool, error) {
	var name string
	var o, n Record
	if old != nil {
		name, o = old.Name, *old
	}
	if next != nil {
		name, n = next.Name, *next
	}
	nameKey := s.keys.name(name)
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	if old == nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nameKey), "=", 0))
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(nameKey), "=", oldRev))
	}
	if next == nil {
		ops = append(ops, clientv3.OpDelete(nameKey))
	} else {
		val, err := json.Marshal(next)
		if err != nil {
			return false, err
		}
		ops = append(ops, clientv3.OpPut(nameKey, string(val)))
	}
	was, is := indexesOf(&o), indexesOf(&n)
	for _, ix := range was {
		if !slices.Contains(is, ix) {
			ops = append(ops, clientv3.OpDelete(s.keys.hashedKey(ix.dir, ix.hash)))
		}
	}
	for _, ix := range is {
		if !slices.Contains(was, ix) {
			k := s.keys.hashedKey(ix.dir, ix.hash)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			ops = append(ops, clientv3.OpPut(k, name))
		}
	}
	tctx, cancel := s.ctx(ctx)
	defer cancel()
	// On failure, the record's key says which compare failed: the record's own guard, or the
	// index of a new secret that another record holds, which no retry would change.
	resp, err := s.cli.Txn(tctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(nameKey, clientv3.WithKeysOnly())).Commit()
	if err := observe("txn", err); err != nil {
		return false, err
	}
	if !resp.Succeeded {
		if old != nil && recordRevision(resp) == oldRev {
			return false, ErrConflict
		}
		return false, nil
	}
	// The change is stored: report success even if the view is slow to show it, since an
	// error would make the caller believe it failed (and lose, say, a new name's token).
	if s.view != nil && s.view.WaitRevision(tctx, resp.Header.Revision) != nil {
		viewLagged.Inc()
	}
	return true, nil
}

// recordRevision is the mod revision of the record a failed write read in its Else branch,
// 0 if it has none.
func recordRevision(resp *clientv3.TxnResponse) int64 {
	if len(resp.Responses) == 0 {
		return 0
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0
	}
	return kvs[0].ModRevision
}
