// Package etcdstore keeps the registry's data in etcd: the key layout, the transactions that
// change it, an embedded etcd server for single-machine setups, and the watch-fed View the DNS path reads.
package etcdstore
