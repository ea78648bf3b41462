package etcdstore

import (
	"slices"
	"strings"
	"testing"
)

func TestNewKeys(t *testing.T) {
	for in, want := range map[string]string{"": DefaultPrefix, "/x": "/x/", "/x/": "/x/"} {
		if got := newKeys(in).prefix; got != want {
			t.Errorf("newKeys(%q).prefix = %q, want %q", in, got, want)
		}
	}
	k := newKeys("/p/")
	if got, want := k.token("tok"), "/p/tokens/"+hashSecret("tok"); got != want {
		t.Errorf("token key %q, want %q", got, want)
	}
	if strings.Contains(k.token("s3cret")+k.reclaim("s3cret")+k.verify("s3cret"), "s3cret") {
		t.Error("an index key holds the raw secret")
	}
	if got := k.nameOf(k.name("alpha")); got != "alpha" {
		t.Errorf("nameOf(name(alpha)) = %q", got)
	}
}

func TestIsHash(t *testing.T) {
	tests := map[string]bool{
		hashSecret("x"):                     true,
		strings.ToUpper(hashSecret("x")):    false,
		hashSecret("x")[:63]:                false,
		hashSecret("x") + "0":               false,
		"":                                  false,
		strings.Repeat("g", 64):             false,
		"123e4567-e89b-42d3-a456-426614174": false,
	}
	for h, want := range tests {
		if got := isHash(h); got != want {
			t.Errorf("isHash(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	got := redact("/regdns/old/123E4567-e89b-42d3-a456-426614174000/x")
	if want := "/regdns/old/<redacted>/x"; got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
}

func TestIndexesOf(t *testing.T) {
	d := Record{Token: "tok"}
	d.SetVerification("vid", d.Created)
	if got, want := indexesOf(&d), []index{{tokensDir, hashSecret("tok")}, {verifyDir, hashSecret("vid")}}; !slices.Equal(got, want) {
		t.Errorf("indexesOf = %v, want %v", got, want)
	}
	d.AddReclamationToken("rt1", d.Created)
	d.AddReclamationToken("rt2", d.Created)
	want := []index{{tokensDir, hashSecret("tok")}, {reclaimDir, hashSecret("rt2")}, {reclaimDir, hashSecret("rt1")}, {verifyDir, hashSecret("vid")}}
	if got := indexesOf(&d); !slices.Equal(got, want) {
		t.Errorf("indexesOf = %v, want %v", got, want)
	}
	// A hand-made record listing one token twice needs its index once: a transaction
	// cannot put one key twice.
	d.Pending.Reclamations = append(d.Pending.Reclamations, d.Pending.Reclamations[0])
	if got := indexesOf(&d); !slices.Equal(got, want) {
		t.Errorf("with a duplicate token: indexesOf = %v, want %v", got, want)
	}
	if got := indexesOf(&Record{}); len(got) != 0 {
		t.Errorf("record without secrets needs indexes %v", got)
	}
}
