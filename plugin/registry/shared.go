package registry

import "sync"

// shared holds process-wide resources (etcd, its client and view, API listeners) by key, so
// that a reload whose Corefile asks for the same thing keeps it instead of reopening it: the
// new instance acquires before the old one releases, and the last release closes.
type shared[T any] struct {
	mu sync.Mutex
	m  map[string]*sharedEntry[T]
}

type sharedEntry[T any] struct {
	v     T
	refs  int
	close func()
}

func (s *shared[T]) acquire(key string, open func() (T, func(), error)) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.refs++
		return e.v, nil
	}
	v, closeFn, err := open()
	if err != nil {
		return v, err
	}
	if s.m == nil {
		s.m = map[string]*sharedEntry[T]{}
	}
	s.m[key] = &sharedEntry[T]{v: v, refs: 1, close: closeFn}
	return v, nil
}

func (s *shared[T]) release(key string) {
	s.mu.Lock()
	e, ok := s.m[key]
	if ok {
		e.refs--
		if e.refs > 0 {
			ok = false
		} else {
			delete(s.m, key)
		}
	}
	s.mu.Unlock()
	if ok {
		e.close()
	}
}
