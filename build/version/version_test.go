package version

import "testing"

func TestString(t *testing.T) {
	v, c := Version, Commit
	defer func() { Version, Commit = v, c }()
	Version, Commit = "v0.1.0-3-gabcdef1", "abcdef1234567890abcdef1234567890abcdef12"
	if got, want := String(), "regdns v0.1.0-3-gabcdef1 (commit abcdef1234567890abcdef1234567890abcdef12)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
