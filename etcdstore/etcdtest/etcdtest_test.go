package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestStartServes writes and reads a key through the client endpoint of a started etcd, and
// checks that two etcds of one test do not share data.
func TestStartServes(t *testing.T) {
	first, second := Start(t), Start(t)
	put := func(endpoints []string, value string) *clientv3.Client {
		t.Helper()
		c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if value != "" {
			if _, err := c.Put(t.Context(), "k", value); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	c := put(first.Endpoints(), "v")
	r, err := c.Get(t.Context(), "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get k: %v %v", r, err)
	}
	r, err = put(second.Endpoints(), "").Get(t.Context(), "k")
	if err != nil || len(r.Kvs) != 0 {
		t.Errorf("second etcd has k: %v %v", r, err)
	}
}

// TestStartSharedStops checks that after stop the client
// endpoint no longer answers.
func TestStartSharedStops(t *testing.T) {
	e, stop, err := StartShared()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := e.Endpoints()
	stop()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: time.Second})
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Error("etcd still answers after stop")
	}
}

// TestStartStoppableStopsOnce checks that stop ends etcd and that the cleanup after it does
// not close it a second time (which would panic or hang).
func TestStartStoppableStopsOnce(t *testing.T) {
	e, stop := StartStoppable(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Error("etcd still answers after stop")
	}
}
