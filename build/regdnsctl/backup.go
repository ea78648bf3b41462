package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/registry"
)

// runBackup writes a snapshot of the etcd database to FILE (mode 0600: it holds every API
// token), through a temporary file renamed into place once complete, so that FILE is never
// a partial snapshot.
func runBackup(g globals, args []string) int {
	fs := g.flags("backup", "backup FILE [--json]")
	asJSON := fs.Bool("json", false, `print {"file": …, "bytes": …, "serial": …}`)
	pos, err := interspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitError
	}
	file := pos[0]
	s, err := g.open("backup")
	if err != nil {
		return g.fail("backup", err)
	}
	defer s.done()
	ctx := context.Background()
	n, err := writeSnapshot(ctx, s.ks, file)
	if err != nil {
		return g.fail("backup", err)
	}
	// Read after the snapshot: at least the serial the backup holds, at most one served since.
	serial, err := s.ks.Serial(ctx)
	if err != nil {
		return g.fail("backup", err)
	}
	if *asJSON {
		g.writeJSON(map[string]any{"file": file, "bytes": n, "serial": serial})
	} else {
		fmt.Fprintf(g.stdout, "wrote %s: %d bytes; the zone's SOA serial was %d\n", file, n, serial)
	}
	return exitOK
}

// writeSnapshot streams ks's snapshot into file, owner-only, replacing it only when complete.
func writeSnapshot(ctx context.Context, ks *etcdstore.Keyspace, file string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	n, err := ks.Backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), file)
}

// runRestore puts the embedded etcd's data directory back from a snapshot, with the server
// stopped: the current directory is kept beside it, and the SOA serial is raised above both
// the one the current data has (read before it is replaced) and --serial, so that it never
// goes back and secondaries transfer the restored zone.
func runRestore(g globals, args []string) int {
	fs := g.flags("restore", "restore FILE [--serial N] [--json]")
	above := fs.Uint("serial", 0, "raise the SOA serial above this too (the serial secondaries hold: dig SOA)")
	asJSON := fs.Bool("json", false, `print {"data": …, "kept": …, "serial": …}`)
	pos, err := interspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(pos) != 1 || *above > 1<<32-1 {
		fs.Usage()
		return exitError
	}
	cfg, err := registryConfig(g.conf, g.zone)
	if err != nil {
		return g.fail("restore", err)
	}
	r, err := restore(g, cfg, pos[0], uint32(*above))
	if err != nil {
		return g.fail("restore", err)
	}
	if *asJSON {
		g.writeJSON(r)
	} else {
		fmt.Fprintf(g.stdout, "restored %s from %s; the former data is in %s; SOA serial %d\n", r.Data, pos[0], orNone(r.Kept), r.Serial)
	}
	return exitOK
}

type restored struct {
	Data   string `json:"data"`
	Kept   string `json:"kept,omitempty"`
	Serial uint32 `json:"serial"`
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func restore(g globals, cfg registry.Config, file string, above uint32) (restored, error) {
	if len(cfg.Etcd.Endpoints) > 0 {
		return restored{}, errors.New("the Corefile names an etcd cluster: restore it with etcdutl as the README's runbook says")
	}
	if ep, running := serverRunning(cfg); running {
		return restored{}, fmt.Errorf("a server is running on this data directory (%s): stop it first", ep)
	}
	dir, err := filepath.Abs(etcdstore.EmbeddedDir(cfg.DataDir))
	if err != nil {
		return restored{}, err
	}
	ctx := context.Background()
	r := restored{Data: dir}
	if _, err := os.Stat(dir); err == nil {
		served, err := currentSerial(ctx, cfg, g)
		if err != nil {
			if above == 0 {
				return restored{}, fmt.Errorf("reading the serial of the current data: %w; give --serial (the serial secondaries hold)", err)
			}
			fmt.Fprintf(g.stderr, "regdnsctl restore: cannot read the current data's serial (%v): raising above --serial %d only\n", err, above)
		} else if int32(served-above) > 0 {
			above = served
		}
		r.Kept = dir + ".before-restore-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	staged := dir + ".restoring"
	if err := os.RemoveAll(staged); err != nil {
		return restored{}, err
	}
	if err := etcdstore.RestoreSnapshot(file, staged); err != nil {
		return restored{}, err
	}
	if r.Kept != "" {
		if err := os.Rename(dir, r.Kept); err != nil {
			return restored{}, err
		}
	}
	if err := os.Rename(staged, dir); err != nil {
		return restored{}, err
	}
	ks, release, err := startEmbedded(cfg, g.stderr)
	if err != nil {
		return restored{}, err
	}
	defer release()
	if r.Serial, err = ks.RaiseSerial(ctx, above); err != nil {
		return restored{}, err
	}
	return r, nil
}

// currentSerial is the SOA serial of the embedded etcd's current data.
func currentSerial(ctx context.Context, cfg registry.Config, g globals) (uint32, error) {
	ks, release, err := startEmbedded(cfg, g.stderr)
	if err != nil {
		return 0, err
	}
	defer release()
	return ks.Serial(ctx)
}
