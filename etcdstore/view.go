package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pageSize is how many records one range read of scanPages returns, for servers without
// RangeStream.
const pageSize = 1000

// View is the in-memory copy of every registered name, loaded by a scan of the names at one
// revision (Keyspace.scan) and kept current by a watch from the load's revision. Records handed out are never modified.
// After the watch stops (etcd gone, store closed) the View keeps its last state.
type View struct {
	// ks reads and watches the zone: the Store's Keyspace, whose client (or embedded member)
	// and timeout the view uses.
	ks *Keyspace

	mu sync.RWMutex
	// The records are those of base as changed by folding, then by overlay: the watch
	// writes to overlay, which is folded into a new base in the background once it grows
	// (maybeFold); folding is the overlay being folded, nil when no fold runs.
	base             *base
	overlay, folding *overlay
	names            int // how many names base, folding and overlay hold together
	folds            sync.WaitGroup

	rev      int64
	advanced chan struct{} // closed and replaced whenever rev moves
	// offset is the serial key's value; serial the SOA serial, which never goes back.
	offset    int64
	serial    uint32
	hasSerial bool

	loaded atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}

	// behindSince is when the view was first seen behind etcd's revision (Unix nanoseconds),
	// 0 once it reached behindTarget, the newest revision etcd reported: see Lag.
	behindSince  atomic.Int64
	behindTarget atomic.Int64
	// wentBack tells the watch, when the probe found etcd's history behind the view (etcd
	// restored from a snapshot), to stop for a full load.
	wentBack chan struct{}
}

func newView(ks *Keyspace) *View {
	return &View{
		ks:       ks,
		base:     emptyBase(),
		overlay:  newOverlay(),
		advanced: make(chan struct{}),
		done:     make(chan struct{}),
		wentBack: make(chan struct{}, 1),
	}
}

// StaticView is a loaded view of records with serial, fed by no etcd: it answers as a
// view of a store does, for tests and tools that hold the records themselves. Of records of
// the same name, the last counts.
func StaticView(serial uint32, records ...*Record) *View {
	v := newView(&Keyspace{})
	bl, seen := newBuilder(len(records)), map[string]bool{}
	for _, d := range slices.Backward(records) {
		if !seen[d.Name] {
			seen[d.Name] = true
			bl.add(d.Name, d)
		}
	}
	v.base = bl.build()
	v.names = v.base.Len()
	v.serial, v.hasSerial = serial, true
	v.loaded.Store(true)
	return v
}

// Lookup returns the record of name (lower case, no zone), or false. It allocates nothing:
// the record's strings and challenges are the view's, and must not be modified.
func (v *View) Lookup(name string) (Record, bool) {
	v.mu.RLock()
	at, ok := v.find(name)
	v.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return at.record(), true
}

// LookupToken returns the record whose API token is token, as the view last saw it, or false.
// Empty tokens match nothing.
func (v *View) LookupToken(token string) (Record, bool) {
	if token == "" {
		return Record{}, false
	}
	v.mu.RLock()
	at, ok := v.findToken(token)
	v.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	d := at.record()
	return d, ByToken(token).matches(&d)
}

// place is where a record of the view is: an ordinary record (of the overlay, or kept aside by
// the base), or a ref of the base's arena. Both are immutable, so a place found under the lock
// is read after it: the record is copied out of the lock, whose atomic operations would
// otherwise wait for every store of the copy (it doubled the time of a lookup).
type place struct {
	d    *Record
	base *base
	ref  ref
}

// record is the record at p.
func (p place) record() Record {
	if p.d != nil {
		return *p.d
	}
	return p.base.records.record(p.ref)
}

// token is the API token of the record at p.
func (p place) token() string {
	if p.d != nil {
		return p.d.Token
	}
	_, token := p.base.records.name(p.ref)
	return token
}

// find returns where the record of name is; v.mu must be held.
func (v *View) find(name string) (place, bool) {
	for _, o := range [...]*overlay{v.overlay, v.folding} {
		if o == nil {
			continue
		}
		if d, ok := o.byName[name]; ok {
			return place{d: d}, d != nil
		}
	}
	return v.base.find(name)
}

// findToken returns where the record whose API token is token is: the current record of the
// name the newest layer indexes under token, if it still has that token; v.mu must be held.
func (v *View) findToken(token string) (place, bool) {
	name, ok := "", false
	for _, o := range [...]*overlay{v.overlay, v.folding} {
		if o != nil && !ok {
			name, ok = o.byToken[token]
		}
	}
	if !ok {
		name, ok = v.base.nameOfToken(token)
	}
	if !ok {
		return place{}, false
	}
	at, ok := v.find(name)
	return at, ok && at.token() == token
}

// Len is the number of names in the view.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.names
}

// Snapshot returns every record and the zone's serial with them, in one consistent cut. At a
// million names it copies the base's records out (about 224 MB): for rare operations, such as a
// zone transfer; Select copies only the records it is asked for.
func (v *View) Snapshot() (uint32, []*Record) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*Record, 0, v.names)
	// One slab for the records the base holds by value, allocated at its final size so that
	// the records do not move.
	records := make([]Record, 0, v.base.Len())
	v.each(func(d *Record, inBase bool) {
		if inBase {
			records = append(records, *d)
			d = &records[len(records)-1]
		}
		out = append(out, d)
	})
	return v.serial, out
}

// Select returns copies of the records for which keep is true, in one consistent cut, without
// copying the others: keep is called with the view locked and must not wait for it.
func (v *View) Select(keep func(*Record) bool) []Record {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Record
	v.each(func(d *Record, _ bool) {
		if keep(d) {
			out = append(out, *d)
		}
	})
	return out
}

// each calls fn with every record of the view; inBase says d is a copy of a record of the
// base, valid only during the call. v.mu must be held.
func (v *View) each(fn func(d *Record, inBase bool)) {
	for _, d := range v.overlay.byName {
		if d != nil {
			fn(d, false)
		}
	}
	if v.folding != nil {
		for name, d := range v.folding.byName {
			if _, changed := v.overlay.byName[name]; d != nil && !changed {
				fn(d, false)
			}
		}
	}
	v.base.each(func(name string, d Record) bool {
		if !v.changed(name) {
			fn(&d, true)
		}
		return true
	})
}

// changed reports whether the overlay or the one being folded holds name; v.mu must be held.
func (v *View) changed(name string) bool {
	_, ok := v.overlay.byName[name]
	if !ok && v.folding != nil {
		_, ok = v.folding.byName[name]
	}
	return ok
}

// Serial is the zone's SOA serial as of the view (serial.go): it grows with each change the
// view applies and never goes back, not even when etcd is restored from a snapshot.
func (v *View) Serial() uint32 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.serial
}

// Revision is the etcd revision the view has applied.
func (v *View) Revision() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.rev
}

// Lag is how long the view has been behind etcd: every second the store reads etcd's current
// revision (see noteRevision); while the view has not applied it, Lag counts from the first
// read that found it behind, and falls to 0 when the view reaches the newest revision read. So it is
// 0 while the view follows etcd, and grows while its watch is stalled, behind or broken, or
// etcd cannot be read.
func (v *View) Lag() time.Duration {
	since := v.behindSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// Loaded reports whether the view holds the whole zone at least once.
func (v *View) Loaded() bool { return v.loaded.Load() }

// WaitRevision returns once the view has applied rev, or with ctx's error.
func (v *View) WaitRevision(ctx context.Context, rev int64) error {
	for {
		v.mu.RLock()
		cur, ch := v.rev, v.advanced
		v.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitLoaded returns once the view is loaded, or with ctx's error.
func (v *View) WaitLoaded(ctx context.Context) error {
	for !v.Loaded() {
		if err := v.WaitRevision(ctx, 1); err != nil {
			return err
		}
	}
	return nil
}

func (v *View) start(ctx context.Context) error {
	ctx, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
	views.Store(v, struct{}{})
	go v.run(ctx)
	return nil
}

func (v *View) stop() {
	v.cancel()
	<-v.done
	v.folds.Wait()
	views.Delete(v)
}

// run loads the zone and follows the watch; any break in the watch (compaction, lost
// leader, closed channel) leads to a fresh load, with a growing pause while etcd fails.
func (v *View) run(ctx context.Context) {
	defer close(v.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := v.load(ctx)
		if err == nil {
			backoff = 50 * time.Millisecond
			v.follow(ctx, rev)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// load reads every record at one revision and replaces the view's content with it.
func (v *View) load(ctx context.Context) (int64, error) {
	bl := newBuilder(v.Len())
	prefix := len(v.ks.keys.names())
	var d Record
	add := func(kv *mvccpb.KeyValue) {
		// The builder copies d, so one Record serves every key.
		if d = (Record{}); decodeRecord(kv.Value, &d) != nil {
			return // left out of the view; the consistency check reports it
		}
		d.rev = kv.ModRevision
		name := kv.Key[prefix:]
		bl.add(unsafe.String(unsafe.SliceData(name), len(name)), &d)
	}
	// A load reads etcd's history as it is now: what was found gone back before is taken in.
	select {
	case <-v.wentBack:
	default:
	}
	rev, err := v.ks.scan(ctx, v.ks.keys.names(), add)
	if err != nil {
		return 0, err
	}
	offset, _, _, err := readOffset(ctx, v.ks.cli, v.ks.timeout, v.ks.keys.serial(), rev)
	if err != nil {
		return 0, err
	}
	fresh := bl.build()
	viewReloads.Inc()
	v.mu.Lock()
	// A fold still running finds its base replaced and drops its work (install).
	v.base, v.overlay, v.folding, v.names, v.offset = fresh, newOverlay(), nil, fresh.Len(), offset
	if rev < v.rev {
		// etcd was restored from a snapshot: the watch follows its revisions from there.
		v.rev = rev - 1
	}
	v.loaded.Store(true)
	v.advance(rev)
	v.mu.Unlock()
	return rev, nil
}

// scan hands fn every key under prefix, in key order, as of one revision, which it returns.
// It streams the range (etcd 3.7's RangeStream), and pages through it on servers without
// RangeStream.
func scan(ctx context.Context, cli *clientv3.Client, timeout time.Duration, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	rev, err := scanStream(ctx, cli, timeout, prefix, fn)
	if status.Code(err) != codes.Unimplemented {
		return rev, err
	}
	return scanPages(ctx, cli, timeout, prefix, fn)
}

// scanStream reads the range as one stream: unlike paged reads, whose every page makes etcd
// count the rest of the range (quadratic in the zone's size), it costs one pass. Each chunk
// must arrive within timeout.
func scanStream(ctx context.Context, cli *clientv3.Client, timeout time.Duration, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(timeout, cancel)
	defer idle.Stop()
	stream, err := cli.GetStream(sctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, observe("range", err)
	}
	var rev int64
	for chunk := range stream {
		if err := chunk.Err(); err != nil {
			return 0, observe("range", err)
		}
		idle.Reset(timeout)
		for _, kv := range chunk.Kvs {
			fn(kv)
		}
		if chunk.Header != nil {
			rev = chunk.Header.Revision
		}
	}
	if rev == 0 {
		return 0, observe("range", fmt.Errorf("range stream of %s ended without a revision", prefix))
	}
	return rev, observe("range", nil)
}

// scanPages reads the range pageSize keys at a time, all at the first page's revision.
func scanPages(ctx context.Context, cli *clientv3.Client, timeout time.Duration, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := cli.Get(rctx, key, opts...)
		cancel()
		if err := observe("range", err); err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fn(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// follow applies watch events after rev until the watch breaks or etcd's history goes back
// under the view (see noteRevision). One watch over the names and the serial offset (and the
// reclamation index keys between them, which it skips) brings their changes in revision
// order, so that each offset counts from the revision it was set at, on every replica alike.
func (v *View) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	k := v.ks.keys
	changes := v.ks.cli.Watch(wctx, k.names(), clientv3.WithRange(k.serial()+"\x00"), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for {
		select {
		case resp, open := <-changes:
			if !open || !v.apply(resp) {
				return
			}
		case <-v.wentBack:
			return // the history the watch follows is gone
		}
	}
}

// broken reports whether a watch response ends the watch, counting it.
func broken(resp clientv3.WatchResponse) bool {
	if resp.Canceled || resp.CompactRevision != 0 || resp.Err() != nil {
		observe("watch", resp.Err())
		return true
	}
	return false
}

// apply applies the changes of records and of the serial offset; false when the watch broke.
func (v *View) apply(resp clientv3.WatchResponse) bool {
	if broken(resp) {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, ev := range resp.Events {
		switch key := string(ev.Kv.Key); {
		case key == v.ks.keys.serial():
			v.applyOffset(ev)
		case strings.HasPrefix(key, v.ks.keys.names()):
			v.applyName(v.ks.keys.nameOf(key), ev)
		}
		v.advance(ev.Kv.ModRevision)
	}
	v.maybeFold()
	if resp.IsProgressNotify() {
		v.advance(resp.Header.Revision)
	}
	return true
}

// applyOffset applies a change of the serial offset; v.mu must be held.
func (v *View) applyOffset(ev *clientv3.Event) {
	v.offset = 0
	if ev.Type == clientv3.EventTypePut {
		// A value that does not parse counts as 0; the consistency check reports it.
		v.offset, _ = parseOffset(ev.Kv.Value)
	}
}

// applyName applies a change of the record of name; v.mu must be held.
func (v *View) applyName(name string, ev *clientv3.Event) {
	_, had := v.find(name)
	var d *Record
	if ev.Type == clientv3.EventTypePut {
		d = decode(name, ev.Kv)
	}
	if d == nil && !had {
		return
	}
	v.overlay.set(name, d)
	switch {
	case had && d == nil:
		v.names--
	case !had && d != nil:
		v.names++
	}
}

// maybeFold starts folding the overlay into a new base, once it has grown to foldSize and
// unless a fold is running; v.mu must be held. The fold reads only what no one changes (the
// base, and the overlay, which the watch no longer writes once it is folding), so it runs
// without the lock, which it takes only to install its base: lookups wait for a fold no
// longer than for a watch event.
func (v *View) maybeFold() {
	if v.folding != nil || len(v.overlay.byName) < foldSize(v.base.Len()) {
		return
	}
	old, o := v.startFold()
	v.folds.Go(func() { v.install(old, o, fold(old, o)) })
}

// startFold makes the overlay the one being folded, and starts a new one, returning the base
// and the overlay to fold; v.mu must be held.
func (v *View) startFold() (*base, *overlay) {
	v.folding, v.overlay = v.overlay, newOverlay()
	return v.base, v.folding
}

// install makes b, the fold of o into old, the view's base, unless a full load replaced them
// meanwhile (its base is newer).
func (v *View) install(old *base, o *overlay, b *base) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == old && v.folding == o {
		v.base, v.folding = b, nil
	}
}

// noteRevision takes etcd's current revision, read at now by the store's reachability probe
// (every second), or the error of that read, which counts as behind; applied is the view's
// revision when the read was sent. When the view is behind that revision, it marks since when
// and asks the watch for its progress: etcd's answer comes once the watch has delivered every
// change to that revision, and brings the view to it even when the changes were to keys
// outside the watched prefix. When etcd answers with a revision below applied, its history
// went back (restored from a snapshot): a watch resumed there would wait for revisions the
// view has already seen and never show the restored data, so the view loads it in full.
// (A revision below the view's current one alone proves nothing: the watch may have applied
// newer changes while the read was on its way.)
func (v *View) noteRevision(ctx context.Context, now time.Time, applied, rev int64, err error) {
	if err != nil {
		v.behindSince.CompareAndSwap(0, now.UnixNano())
		return
	}
	if rev < applied {
		select {
		case v.wentBack <- struct{}{}:
		default:
		}
	}
	v.mu.Lock()
	behind := v.rev < rev
	if behind {
		v.behindTarget.Store(max(v.behindTarget.Load(), rev))
		v.behindSince.CompareAndSwap(0, now.UnixNano())
	} else {
		v.behindSince.Store(0)
	}
	v.mu.Unlock()
	if behind {
		// The watch's stream is found by the metadata WithRequireLeader puts on the context.
		v.ks.cli.RequestProgress(clientv3.WithRequireLeader(ctx))
	}
}

// advance moves rev forward, and the serial with it, and wakes the waiters; v.mu must be held.
func (v *View) advance(rev int64) {
	if rev <= v.rev {
		return
	}
	v.rev = rev
	if s := serialOf(v.offset, rev); !v.hasSerial || newerSerial(s, v.serial) {
		v.serial, v.hasSerial = s, true
	}
	if rev >= v.behindTarget.Load() {
		v.behindSince.Store(0)
	}
	close(v.advanced)
	v.advanced = make(chan struct{})
	viewRevision.Set(float64(rev))
	viewNames.Set(float64(v.names))
}

// decode parses a stored record; a record that does not parse is left out of the view
// rather than stopping it, and shows up in the consistency check. The record's name shares
// the map key's string (name, from the record's key): one object fewer per name to keep.
func decode(name string, kv *mvccpb.KeyValue) *Record {
	d := &Record{rev: kv.ModRevision}
	if err := decodeRecord(kv.Value, d); err != nil {
		return nil
	}
	if d.Name == name {
		d.Name = name
	}
	return d
}
