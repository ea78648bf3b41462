// Package version names this build of regdns: the release (git describe) and the commit it was
// built from, set by the Makefile with -ldflags -X, for ./coredns -version and regdnsctl version.
package version

// Set by the Makefile (see LDFLAGS there); a plain `go build` leaves the defaults.
var (
	// Version is the release as `git describe --tags --always --dirty` names it.
	Version = "devel"
	// Commit is the full git commit the build comes from.
	Commit = "unknown"
)

// String is the one-line description of this build, for regdnsctl version.
func String() string { return "regdns " + Version + " (commit " + Commit + ")" }
