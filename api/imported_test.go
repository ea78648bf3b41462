package api

import (
	"context"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

// A name created directly in the store, as an importer of the original server's database
// creates it (its token, contact, verification id and reclamation token kept), answers
// /ping, /dnsconfig and /info exactly as a name subscribed through the API does, and its
// mailed link and reclamation token keep working.
func TestImportedName(t *testing.T) {
	e := newEnv(t, nil)
	const (
		token = "5fc38090-7f60-4d97-97d4-0b3d4f13e9e6"
		vid   = "0b9f2c1e-3d4a-4b5c-8d6e-7f8091a2b3c4"
		rt    = "c4b3a291-807f-4e6d-8c5b-4a3d1e2c9f0b"
	)
	seen := time.Unix(1700000000, 0).UTC()
	d := etcdstore.Record{
		Name: "imported", Token: token, Description: "imported's server", Mode: etcdstore.ModeDynamic,
		Continent: "NA", Created: seen, LastPing: seen, OptOut: true,
		Challenges: []etcdstore.Challenge{{Value: "old-challenge", Set: seen}},
	}
	d.SetAddr(netip.MustParseAddr("81.2.69.142"))
	d.SetEmail("owner@example.org", false)
	d.SetVerification(vid, time.Now().Add(time.Hour))
	d.AddReclamationToken(rt, time.Now().Add(time.Hour))
	if err := e.store.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	native := e.subscribe(t, "native", "mode", "1")

	info := e.info(t, token)
	if info["timestamp"] != float64(seen.Unix()) || info["last_ping"] != float64(seen.Unix()) || info["ip"] != "81.2.69.142" ||
		info["email"] != "owner@example.org" || info["verified"] != false || info["optout"] != true || info["continent"] != "NA" ||
		info["dns_challenge"] != "old-challenge" {
		t.Errorf("info of the imported name: %v", info)
	}
	nativeInfo := e.info(t, native)
	if keys, nativeKeys := slices.Sorted(maps.Keys(info)), slices.Sorted(maps.Keys(nativeInfo)); !slices.Equal(keys, nativeKeys) {
		t.Errorf("info fields differ: imported %v, native %v", keys, nativeKeys)
	}

	for _, tok := range []string{token, native} {
		e.ok(t, "/ping", "token", tok, "ip", "81.2.69.150")
		e.ok(t, "/dnsconfig", "token", tok, "challenge", "new-challenge")
	}
	got := e.stored(t, "imported")
	if got.IPv4.String() != "81.2.69.150" || !got.LastPing.After(seen) || got.Challenges[0].Value != "new-challenge" || got.Token != token {
		t.Errorf("imported name after ping and dnsconfig: %+v", got)
	}
	if r := fetch(t, http.MethodGet, nil, e.url+"/verifyemail?s="+vid); r.status != http.StatusOK {
		t.Errorf("the imported verification link: %d %s", r.status, r.body)
	}
	if info := e.info(t, token); info["verified"] != true {
		t.Errorf("after the imported link: %v", info)
	}
	e.fails(t, "UnavailableNameReclamationPossible", "/subscribe", "name", "imported", "email", "owner@example.org")
	e.info(t, e.subscribe(t, "imported", "reclamationToken", rt))
}
