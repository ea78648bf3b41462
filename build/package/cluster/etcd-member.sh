#!/bin/sh
# Runs member N (1, 2 or 3) of the registry's etcd cluster on this machine: etcd-member.sh N
# (as a service: ExecStart=/usr/local/sbin/etcd-member.sh N in a unit of its own, or Debian's
# etcd-server package with the same settings in /etc/default/etcd).
#
# The members' addresses, certificates (a CA, and per member a certificate valid for its
# address as server and client) and data directory are set here; change them to yours.
# Start the three within a minute of each other the first time: a new member waits for its
# peers. Afterwards a member that restarts rejoins from its data directory by itself.
set -eu
n=${1:?usage: etcd-member.sh 1|2|3}
M1=10.0.0.1 M2=10.0.0.2 M3=10.0.0.3
case $n in
1) ip=$M1 ;; 2) ip=$M2 ;; 3) ip=$M3 ;; *) echo "member $n: want 1, 2 or 3" >&2; exit 2 ;;
esac
pki=/etc/etcd/pki
exec etcd --name "m$n" --data-dir /var/lib/etcd \
  --listen-client-urls "https://$ip:2379" --advertise-client-urls "https://$ip:2379" \
  --listen-peer-urls "https://$ip:2380" --initial-advertise-peer-urls "https://$ip:2380" \
  --initial-cluster "m1=https://$M1:2380,m2=https://$M2:2380,m3=https://$M3:2380" \
  --initial-cluster-token regdns --initial-cluster-state new \
  --client-cert-auth --trusted-ca-file "$pki/ca.pem" --cert-file "$pki/m$n.pem" --key-file "$pki/m$n-key.pem" \
  --peer-client-cert-auth --peer-trusted-ca-file "$pki/ca.pem" --peer-cert-file "$pki/m$n.pem" --peer-key-file "$pki/m$n-key.pem" \
  --quota-backend-bytes 2147483648 \
  --auto-compaction-mode periodic --auto-compaction-retention 5m
