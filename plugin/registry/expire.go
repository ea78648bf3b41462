package registry

import (
	"context"
	"errors"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// hidden reports whether d answers as if absent (NXDOMAIN, left out of zone transfers) while
// the name stays taken: disabled by an operator, or unpinged for longer than
// `expire` (until the grace period ends and the sweeper deletes it).
func (r *Registry) hidden(d *etcdstore.Record) bool {
	return d.IsDisabled() || r.cfg.Expire > 0 && time.Since(d.LastPing) > r.cfg.Expire
}

// sweepExpired deletes, every interval, the names whose grace period after expiry is over,
// but not disabled ones, which must stay taken until an operator enables or deletes them.
// Every replica may run it: each delete is guarded by the record still being that old.
func (r *Registry) sweepExpired(ctx context.Context, store *etcdstore.Store) {
	interval := min(r.cfg.ExpireGrace/10, time.Hour)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		cutoff := time.Now().Add(-r.cfg.Expire - r.cfg.ExpireGrace)
		expired := store.View().Select(func(d *etcdstore.Record) bool {
			return d.LastPing.Before(cutoff) && !d.IsDisabled()
		})
		for _, d := range expired {
			if ctx.Err() != nil {
				return
			}
			_, err := store.Delete(ctx, etcdstore.ByName(d.Name), func(cur *etcdstore.Record) error {
				if !cur.LastPing.Before(cutoff) || cur.IsDisabled() {
					return errPinged
				}
				return nil
			})
			switch {
			case err == nil:
				expiredNames.Inc()
				log.Infof("name %s expired: not pinged since %s", d.Name, d.LastPing.Format(time.RFC3339))
			case errors.Is(err, errPinged), errors.Is(err, etcdstore.ErrNotFound):
			default:
				log.Warningf("expiring %s: %v", d.Name, err)
			}
		}
	}
}

var errPinged = errors.New("pinged or disabled meanwhile")
