package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// nameView is what the tool shows of a record: every field, the hashes of the secrets kept
// as hashes, and the API token only when asked for.
type nameView struct {
	Name           string     `json:"name"`
	Token          string     `json:"token,omitempty"`
	Description    string     `json:"description"`
	Mode           string     `json:"mode"`
	Continent      string     `json:"continent,omitempty"`
	IPv4           string     `json:"ipv4,omitempty"`
	IPv6           string     `json:"ipv6,omitempty"`
	Created        time.Time  `json:"created"`
	LastPing       time.Time  `json:"last_ping"`
	Email          string     `json:"email,omitempty"`
	EmailVerified  bool       `json:"email_verified"`
	OptOut         bool       `json:"optout"`
	Disabled       bool       `json:"disabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledSince  *time.Time `json:"disabled_since,omitempty"`
	Challenges     []string   `json:"challenges"`
	Verification   *hashView  `json:"verification,omitempty"`
	Reclamations   []hashView `json:"reclamation_tokens"`
}

// hashView is a secret the record keeps only as its SHA-256, and when it expires.
type hashView struct {
	Hash    string    `json:"sha256"`
	Expires time.Time `json:"expires"`
}

func modeName(m etcdstore.Mode) string {
	if m == etcdstore.ModeDynamic {
		return "dynamic"
	}
	return "tunnel"
}

func viewOf(d *etcdstore.Record, showToken bool) nameView {
	v := nameView{
		Name: d.Name, Description: d.Description, Mode: modeName(d.Mode), Continent: d.Continent,
		Created: d.Created, LastPing: d.LastPing, Email: d.Email, EmailVerified: d.EmailVerified(),
		OptOut: d.OptOut, Challenges: []string{}, Reclamations: []hashView{},
	}
	if showToken {
		v.Token = d.Token
	}
	if d.IPv4.IsValid() {
		v.IPv4 = d.IPv4.String()
	}
	if d.IPv6.IsValid() {
		v.IPv6 = d.IPv6.String()
	}
	if reason, since, ok := d.Disabled(); ok {
		v.Disabled, v.DisabledReason, v.DisabledSince = true, reason, &since
	}
	for _, c := range d.Challenges {
		v.Challenges = append(v.Challenges, c.Value)
	}
	if h, exp := d.Verification(); h != "" {
		v.Verification = &hashView{h, exp}
	}
	for _, r := range d.ReclamationTokens() {
		v.Reclamations = append(v.Reclamations, hashView{r.Hash, r.Expires})
	}
	return v
}

// print writes v as `names show` does: one field a line.
func (v nameView) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	line("name", "%s", v.Name)
	if v.Token != "" {
		line("token", "%s", v.Token)
	}
	line("description", "%q", v.Description)
	line("mode", "%s", v.Mode)
	line("addresses", "%s", strings.TrimSpace(v.IPv4+" "+v.IPv6))
	line("continent", "%s", v.Continent)
	line("created", "%s", stamp(v.Created))
	line("last ping", "%s", stamp(v.LastPing))
	line("email", "%s", emailState(v.Email, v.EmailVerified))
	line("optout", "%v", v.OptOut)
	if v.Disabled {
		line("disabled", "since %s: %s", stamp(*v.DisabledSince), v.DisabledReason)
	} else {
		line("disabled", "no")
	}
	line("challenges", "%d", len(v.Challenges))
	if v.Verification != nil {
		line("verification", "sha256 %s, expires %s", v.Verification.Hash, stamp(v.Verification.Expires))
	}
	for _, r := range v.Reclamations {
		line("reclamation token", "sha256 %s, expires %s", r.Hash, stamp(r.Expires))
	}
	tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func emailState(addr string, verified bool) string {
	switch {
	case addr == "":
		return "none"
	case verified:
		return addr + " (verified)"
	}
	return addr + " (unverified)"
}

// writeJSON prints v as indented JSON.
func (g globals) writeJSON(v any) {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// subcommands runs the subcommand of a command group such as `names`.
func (g globals) subcommands(group string, table map[string]command, args []string) int {
	usage := func() {
		fmt.Fprintf(g.stderr, "usage:\n")
		for _, name := range slices.Sorted(maps.Keys(table)) {
			fmt.Fprintf(g.stderr, "  regdnsctl %s %s\n", group, table[name].summary)
		}
	}
	if len(args) == 0 {
		usage()
		return exitError
	}
	cmd, ok := table[args[0]]
	if !ok {
		fmt.Fprintf(g.stderr, "regdnsctl %s: unknown command %q\n", group, args[0])
		usage()
		return exitError
	}
	return cmd.run(g, args[1:])
}

var namesCommands = map[string]command{
	"list":    {"list [--prefix P] [--mode tunnel|dynamic] [--stale DURATION] [--json]: the registered names", runNamesList},
	"show":    {"show NAME [--show-secrets] [--json]: one name's record (the API token only with --show-secrets)", runNamesShow},
	"delete":  {"delete NAME [--json]: delete the record and every index key of it, freeing the name", runNamesDelete},
	"disable": {"disable NAME --reason TEXT [--json]: stop it resolving and its tokens working; the name stays taken", runNamesDisable},
	"enable":  {"enable NAME [--json]: undo disable", runNamesEnable},
}

func runNames(g globals, args []string) int { return g.subcommands("names", namesCommands, args) }

// session is one command's connection to the registry's etcd.
type session struct {
	globals
	name string // the command's, for messages
	ks   *etcdstore.Keyspace
	done func()
}

// open reaches the etcd of the Corefile's registry block for command name.
func (g globals) open(name string) (*session, error) {
	cfg, err := registryConfig(g.conf, g.zone)
	if err != nil {
		return nil, err
	}
	ks, release, err := openKeyspace(cfg, g.stderr)
	if err != nil {
		return nil, err
	}
	return &session{globals: g, name: name, ks: ks, done: release}, nil
}

// parseName parses a command's flags and its one argument, a registered name (as gateways
// send it: any case, spaces around).
func parseName(fs *flag.FlagSet, args []string) (string, bool) {
	pos, err := interspersed(fs, args)
	if err != nil {
		return "", false
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", false
	}
	return strings.ToLower(strings.TrimSpace(pos[0])), true
}

// result reports err of the session's command on name: not registered (exitNotFound), or
// another failure (exitError).
func (s *session) result(name string, err error) int {
	if errors.Is(err, etcdstore.ErrNotFound) {
		fmt.Fprintf(s.stderr, "regdnsctl %s: %s is not registered\n", s.name, name)
		return exitNotFound
	}
	return s.fail(s.name, err)
}

func runNamesList(g globals, args []string) int {
	fs := g.flags("names list", "names list [--prefix P] [--mode tunnel|dynamic] [--stale DURATION] [--json]")
	prefix := fs.String("prefix", "", "only names starting with this")
	mode := fs.String("mode", "", "only names in this mode: tunnel or dynamic")
	stale := fs.Duration("stale", 0, "only names whose last ping is older than this (e.g. 720h)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 || *mode != "" && *mode != "tunnel" && *mode != "dynamic" || *stale < 0 {
		fs.Usage()
		return exitError
	}
	s, err := g.open("names list")
	if err != nil {
		return g.fail("names list", err)
	}
	defer s.done()
	records, _, err := s.ks.Records(context.Background())
	if err != nil {
		return g.fail("names list", err)
	}
	now := time.Now()
	out := []nameView{}
	for i := range records {
		d := &records[i]
		if !strings.HasPrefix(d.Name, strings.ToLower(*prefix)) || *mode != "" && modeName(d.Mode) != *mode ||
			*stale > 0 && now.Sub(d.LastPing) <= *stale {
			continue
		}
		out = append(out, viewOf(d, false))
	}
	if *asJSON {
		g.writeJSON(out)
		return exitOK
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tLAST PING\tEMAIL\tDISABLED")
	for _, v := range out {
		disabled := ""
		if v.Disabled {
			disabled = v.DisabledReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Mode, stamp(v.LastPing), emailState(v.Email, v.EmailVerified), disabled)
	}
	tw.Flush()
	return exitOK
}

func runNamesShow(g globals, args []string) int {
	fs := g.flags("names show", "names show NAME [--show-secrets] [--json]")
	secrets := fs.Bool("show-secrets", false, "also print the API token (also the PageKite secret)")
	asJSON := fs.Bool("json", false, "print JSON")
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	s, err := g.open("names show")
	if err != nil {
		return g.fail("names show", err)
	}
	defer s.done()
	d, err := s.ks.Get(context.Background(), etcdstore.ByName(name))
	if err != nil {
		return s.result(name, err)
	}
	s.show(&d, *secrets, *asJSON)
	return exitOK
}

// show prints a record, in JSON or as text.
func (s *session) show(d *etcdstore.Record, showToken, asJSON bool) {
	v := viewOf(d, showToken)
	if asJSON {
		s.writeJSON(v)
		return
	}
	v.print(s.stdout)
}

func runNamesDelete(g globals, args []string) int {
	fs := g.flags("names delete", "names delete NAME [--json]")
	asJSON := fs.Bool("json", false, "print the deleted record as JSON")
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	s, err := g.open("names delete")
	if err != nil {
		return g.fail("names delete", err)
	}
	defer s.done()
	d, err := s.ks.Delete(context.Background(), etcdstore.ByName(name), nil)
	if errors.Is(err, etcdstore.ErrDamaged) {
		return s.deleteDamaged(name, *asJSON)
	}
	if err != nil {
		return s.result(name, err)
	}
	if *asJSON {
		s.writeJSON(viewOf(&d, false))
	} else {
		fmt.Fprintf(g.stdout, "deleted %s: the name is free\n", name)
	}
	return exitOK
}

// deleteDamaged deletes a record that does not parse, whose index keys cannot be known from
// it: check --fix removes them afterwards.
func (s *session) deleteDamaged(name string, asJSON bool) int {
	if err := s.ks.DeleteDamaged(context.Background(), name); err != nil {
		return s.result(name, err)
	}
	if asJSON {
		s.writeJSON(map[string]any{"name": name, "damaged": true})
	} else {
		fmt.Fprintf(s.stdout, "deleted the damaged record of %s: the name is free; run check --fix to remove index keys that pointed at it\n", name)
	}
	return exitOK
}

func runNamesDisable(g globals, args []string) int {
	fs := g.flags("names disable", "names disable NAME --reason TEXT [--json]")
	reason := fs.String("reason", "", "why (stored with the record and shown by names show; never told to the gateway)")
	asJSON := fs.Bool("json", false, "print the record as JSON")
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	if strings.TrimSpace(*reason) == "" {
		return g.fail("names disable", errors.New("--reason is required"))
	}
	now := time.Now().UTC().Truncate(time.Second)
	return g.update("names disable", name, *asJSON, func(d *etcdstore.Record) error {
		d.Disable(strings.TrimSpace(*reason), now)
		return nil
	})
}

func runNamesEnable(g globals, args []string) int {
	fs := g.flags("names enable", "names enable NAME [--json]")
	asJSON := fs.Bool("json", false, "print the record as JSON")
	name, ok := parseName(fs, args)
	if !ok {
		return exitError
	}
	now := time.Now().UTC().Truncate(time.Second)
	return g.update("names enable", name, *asJSON, func(d *etcdstore.Record) error {
		if !d.IsDisabled() {
			return errNotDisabled
		}
		d.Enable(now)
		return nil
	})
}

var errNotDisabled = errors.New("it is not disabled")

// update applies fn to the record of name through the store's guarded write and prints the
// result.
func (g globals) update(cmd, name string, asJSON bool, fn func(*etcdstore.Record) error) int {
	s, err := g.open(cmd)
	if err != nil {
		return g.fail(cmd, err)
	}
	defer s.done()
	d, err := s.ks.Update(context.Background(), etcdstore.ByName(name), fn)
	if err != nil {
		return s.result(name, err)
	}
	s.show(&d, false, asJSON)
	return exitOK
}
