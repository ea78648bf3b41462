package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNameQueue(t *testing.T) {
	q := newNameQueue()
	release, waited, err := q.take(t.Context(), "alpha")
	if err != nil || waited {
		t.Fatalf("first take: waited %v, %v", waited, err)
	}
	if r, waited, err := q.take(t.Context(), "beta"); err != nil || waited {
		t.Errorf("another name waited (%v) or failed: %v", waited, err)
	} else {
		r()
	}

	got := make(chan bool)
	go func() {
		r, waited, err := q.take(t.Context(), "alpha")
		if err != nil {
			t.Error(err)
		}
		got <- waited
		r()
	}()
	select {
	case <-got:
		t.Fatal("a second change of alpha went ahead while the first held it")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if !<-got {
		t.Error("the second change did not report that it waited")
	}

	release, _, _ = q.take(t.Context(), "alpha")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := q.take(ctx, "alpha"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("take past its deadline: %v", err)
	}
	release()
	if n := len(q.names); n != 0 {
		t.Errorf("%d names remembered after every change is done", n)
	}
}
