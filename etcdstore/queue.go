package etcdstore

import (
	"context"
	"sync"
)

// nameQueue lets one change of a name at a time through on this replica. Concurrent changes
// of one name would otherwise race on its revision guard, all but one losing each round: 64
// concurrent changes of one name took seconds of retries and failed by the thousand. In line,
// each waits for the previous one's write and applies its own change to the result.
type nameQueue struct {
	mu    sync.Mutex
	names map[string]*nameTurn
}

// nameTurn is the queue of one name; it exists while someone holds or waits for the name.
type nameTurn struct {
	held    chan struct{} // holds a value while the name is taken
	waiting int           // holders and waiters; the turn is forgotten at 0
}

func newNameQueue() *nameQueue { return &nameQueue{names: map[string]*nameTurn{}} }

// take returns once name is this caller's, with the function that gives it back, and whether
// the caller had to wait for it (the record may then have changed). It fails with ctx's error.
func (q *nameQueue) take(ctx context.Context, name string) (release func(), waited bool, err error) {
	q.mu.Lock()
	t := q.names[name]
	if t == nil {
		t = &nameTurn{held: make(chan struct{}, 1)}
		q.names[name] = t
	}
	t.waiting++
	q.mu.Unlock()

	release = func() {
		<-t.held
		q.leave(name, t)
	}
	select {
	case t.held <- struct{}{}:
		return release, false, nil
	default:
	}
	select {
	case t.held <- struct{}{}:
		return release, true, nil
	case <-ctx.Done():
		q.leave(name, t)
		return nil, true, ctx.Err()
	}
}

// leave forgets t once nobody holds or waits for its name, so the map holds only names in use.
func (q *nameQueue) leave(name string, t *nameTurn) {
	q.mu.Lock()
	if t.waiting--; t.waiting == 0 {
		delete(q.names, name)
	}
	q.mu.Unlock()
}
