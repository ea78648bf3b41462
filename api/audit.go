package api

import (
	"context"
	"net/http"
	"net/netip"
)

// auditRecord is what the audit log says of one request to an endpoint that changes names:
// the handler fills in the name once it knows it (from the query, or from the record its
// token found). Secrets and the query string never reach it.
type auditRecord struct {
	changes bool   // the endpoint changes names (set by its route)
	name    string // "" while unknown: invalid name or token
	quiet   bool   // the request changed nothing worth a line (a ping answered from the view)
}

type auditKey struct{}

// withAudit gives r an empty audit record for its handler to fill in.
func withAudit(r *http.Request) (*http.Request, *auditRecord) {
	a := &auditRecord{}
	return r.WithContext(context.WithValue(r.Context(), auditKey{}, a)), a
}

// audited returns r's audit record, or a throwaway one when auditing is off.
func audited(ctx context.Context) *auditRecord {
	if a, ok := ctx.Value(auditKey{}).(*auditRecord); ok {
		return a
	}
	return &auditRecord{}
}

// write logs the audit line of a finished request: one INFO line per call that changes (or
// tried to change) a name, with the endpoint, the name, the caller's address and the status.
func (a *auditRecord) write(path string, caller netip.Addr, status int) {
	if !a.changes || a.quiet {
		return
	}
	name := a.name
	if name == "" {
		name = "-"
	}
	log.Infof("audit endpoint=%s name=%s caller=%s code=%d", path, name, caller, status)
}
