package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/miekg/dns"
	"github.com/regdns/regdns/api/mailtest"
	"github.com/regdns/regdns/etcdstore/certtest"
	"github.com/regdns/regdns/plugin/dnstest"
)

// The ACME test issues certificates from a real ACME CA (Let's Encrypt's test CA Pebble) with a
// real ACME client (lego), the way a gateway does: subscribe, solve DNS-01 through /dnsconfig
// and this server's DNS, get the certificate. Pebble validates over TCP against our DNS server
// only (-dnsserver); lego's propagation check asks our server too.

// pebble is a running Pebble CA.
type pebble struct {
	dir    string // ACME directory URL
	mgmt   string // management interface base URL
	client *http.Client
	log    *syncBuffer
}

// startPebble builds Pebble from the module (pinned in go.mod, so this works offline once the
// module cache has it) and runs it on free loopback ports with its own TLS certificate.
func startPebble(t *testing.T, dnsAddr string) *pebble {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pebble")
	if b, err := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("go build pebble: %v\n%s", err, b)
	}
	certFile, keyFile, roots := certtest.WriteSelfSigned(t, dir)
	addrs := dnstest.FreeAddrs(t, 2)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           addrs[0],
		"managementListenAddress": addrs[1],
		"certificate":             certFile,
		"privateKey":              keyFile,
		"keyAlgorithm":            "ecdsa",
		// Retry-After in seconds: lego polls authorizations and orders no faster than this.
		"retryAfter": map[string]int{"authz": 1, "order": 1},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pb := &pebble{
		dir:    "https://" + addrs[0] + "/dir",
		mgmt:   "https://" + addrs[1],
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}},
		log:    &syncBuffer{},
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	// No random validation delay, no rejected nonces, never reuse a valid authorization (each
	// certificate must be validated through our DNS), and PEBBLE_VA_ALWAYS_VALID stays unset.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Env = slices.DeleteFunc(cmd.Env, func(e string) bool { return strings.HasPrefix(e, "PEBBLE_VA_ALWAYS_VALID=") })
	cmd.Stdout, cmd.Stderr = pb.log, pb.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("pebble output:\n%s", pb.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := pb.client.Get(pb.dir)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return pb
			}
		}
		select {
		case <-done:
			t.Fatalf("pebble exited:\n%s", pb.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up: %v\n%s", err, pb.log.String())
		}
	}
}

// root fetches the CA's root certificate from Pebble's management interface.
func (pb *pebble) root(t *testing.T) *x509.Certificate {
	resp, err := pb.client.Get(pb.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	block, _ := pem.Decode(b)
	if resp.StatusCode != 200 || block == nil {
		t.Fatalf("pebble root: %d %s", resp.StatusCode, b)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// acmeUser is a fresh ACME account: Pebble reuses valid authorizations only within an account,
// so a new account per certificate guarantees that every certificate was validated through our
// DNS. It is also what a gateway that lost its state (and so reclaims its name) has.
type acmeUser struct {
	key crypto.Signer
	reg *acme.ExtendedAccount
}

func (u *acmeUser) GetEmail() string                       { return "" }
func (u *acmeUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *acmeUser) GetPrivateKey() crypto.Signer           { return u.key }

// gatewayDNS is the lego DNS-01 provider of a gateway: it publishes the challenge value through
// the registration API with the gateway's token.
type gatewayDNS struct {
	api, token string
	mu         sync.Mutex
	presented  []string // DNS-01 values in the order lego presented them
}

func (g *gatewayDNS) Present(ctx context.Context, domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	req, err := http.NewRequestWithContext(ctx, "GET", g.api+"/dnsconfig?"+url.Values{"token": {g.token}, "challenge": {info.Value}}.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("dnsconfig: %w", errors.Unwrap(err)) // the URL holds the token
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
		return fmt.Errorf("dnsconfig: %d %s", resp.StatusCode, b)
	}
	g.mu.Lock()
	g.presented = append(g.presented, info.Value)
	g.mu.Unlock()
	return nil
}

// CleanUp does nothing: the API has no call to remove a value; newer values displace older ones
// (challenge_keep) and each expires after challenge_expiry.
func (g *gatewayDNS) CleanUp(context.Context, string, string, string) error { return nil }

// Timeout makes lego's propagation check poll every 200ms (its first check waits one interval)
// instead of its 2s default; the check itself is unchanged.
func (g *gatewayDNS) Timeout() (timeout, interval time.Duration) {
	return 30 * time.Second, 200 * time.Millisecond
}

// txt asks server for the TXT values at fqdn the way lego's authoritative check asks each of a
// zone's name servers: over UDP, without recursion, and only an authoritative answer counts.
// UDP also keeps these queries apart from Pebble's, which are TCP.
func txt(server, fqdn string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, dns.TypeTXT)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, server)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return nil, fmt.Errorf("%s TXT: rcode %s, authoritative %v", fqdn, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	var values []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(t.Txt, ""))
		}
	}
	return values, nil
}

// issued is one certificate and what was seen while lego obtained it.
type issued struct {
	res       *certificate.Resource
	presented []string      // values set through /dnsconfig
	checked   [][]string    // TXT values our DNS served each time lego's check passed, before it asked Pebble to validate
	ready     time.Duration // from start until lego's propagation check first passed, just before Pebble validates
	took      time.Duration // from start until the certificate was in hand
}

// obtain gets a certificate for domains with lego, a fresh account and the gateway's token.
// start is when the gateway began (its /subscribe), for the wall time.
func obtain(t *testing.T, p *product, pb *pebble, token string, start time.Time, domains ...string) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	user := &acmeUser{key: key}
	cfg := lego.NewConfig(user)
	cfg.CADirURL = pb.dir
	cfg.HTTPClient = pb.client
	client, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	provider := &gatewayDNS{api: p.api, token: token}
	var mu sync.Mutex
	var checked [][]string
	var ready time.Duration
	err = client.Challenge.SetDNS01Provider(provider,
		// lego's authoritative check would query the zone's NS host (ns1.example.org) on port 53,
		// where no test can run our server; the wrapper below does that same check at our
		// server's real address. lego's recursive check (against our server) stays on.
		dns01.DisableAuthoritativeNssPropagationRequirement(),
		dns01.WrapPreCheck(func(ctx context.Context, domain, fqdn, value string, check dns01.PreCheckFunc) (bool, error) {
			if ok, err := check(ctx, fqdn, value); !ok || err != nil {
				return ok, err
			}
			values, err := txt(p.dns, fqdn)
			if err != nil || !slices.Contains(values, value) {
				return false, err
			}
			mu.Lock()
			if checked == nil {
				ready = time.Since(start)
			}
			checked = append(checked, values)
			mu.Unlock()
			return true, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	fqdn := "_acme-challenge." + strings.TrimPrefix(domains[0], "*.") + "."
	validations := pebbleQueries(p, fqdn)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if user.reg, err = client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: domains, KeyType: certcrypto.EC256, Bundle: true})
	if err != nil {
		t.Fatalf("obtain %v: %v", domains, err)
	}
	took := time.Since(start)
	// Every authorization was presented through /dnsconfig and validated by Pebble against
	// our DNS (the domains here share one _acme-challenge name).
	if n := len(provider.presented); n != len(domains) {
		t.Fatalf("obtain %v: %d values presented through /dnsconfig", domains, n)
	}
	if n := pebbleQueries(p, fqdn) - validations; n < len(domains) {
		t.Fatalf("obtain %v: %d validations by Pebble reached our DNS", domains, n)
	}
	mu.Lock()
	defer mu.Unlock()
	return issued{res: res, presented: slices.Clone(provider.presented), checked: checked, ready: ready, took: took}
}

// verify checks the certificate chain against Pebble's root, the names, and the key.
func verify(t *testing.T, root *x509.Certificate, res *certificate.Resource, names ...string) *x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for rest := res.Certificate; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("bundle has %d certificates, want the leaf and its issuer", len(chain))
	}
	leaf, roots, inter := chain[0], x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if got, want := slices.Sorted(slices.Values(leaf.DNSNames)), slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Fatalf("certificate names %v, want %v", got, want)
	}
	for _, name := range names {
		host := strings.Replace(name, "*", "any", 1)
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("certificate for %s: %v", host, err)
		}
	}
	if _, err := tls.X509KeyPair(res.Certificate, res.PrivateKey); err != nil {
		t.Fatalf("certificate and key: %v", err)
	}
	return leaf
}

// pebbleQueries counts the TXT queries at fqdn that reached our DNS over TCP, from CoreDNS's log
// plugin: those are Pebble's validations (lego and this test ask over UDP).
func pebbleQueries(p *product, fqdn string) int {
	return strings.Count(p.log.String(), `"TXT IN `+fqdn+` tcp `)
}

func TestACMECertificates(t *testing.T) {
	mb := &mailtest.Server{SMTPUTF8: true}
	p := startProduct(t, mb.Start(t, "none", nil))
	pb := startPebble(t, p.dns)
	root := pb.root(t)

	// lego's DNS client (CNAME lookup in GetChallengeInfo and the recursive propagation check)
	// asks our server instead of the system's resolvers.
	saved := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{p.dns}}))
	legoLog, savedLog := &syncBuffer{}, legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(legoLog, nil)))
	t.Cleanup(func() {
		dns01.SetDefaultClient(saved)
		legolog.SetDefault(savedLog)
		if t.Failed() {
			t.Logf("lego output:\n%s", legoLog.String())
		}
	})

	subscribe := func(params url.Values) string {
		t.Helper()
		var sub struct{ Name, Token string }
		json.Unmarshal([]byte(p.ok("/subscribe", params)), &sub)
		if sub.Name != params.Get("name") || sub.Token == "" {
			t.Fatalf("subscribe %s: name %q, token set %v", params.Get("name"), sub.Name, sub.Token != "")
		}
		return sub.Token
	}

	// 1. One name, one authorization. The wall times swing: when Pebble has not finished
	// validating by the time it answers the challenge POST, lego polls again after 5s ±50%
	// (its fallback, as Pebble sends no Retry-After there), otherwise it goes straight on.
	start := time.Now()
	token := subscribe(url.Values{"name": {"single"}})
	one := obtain(t, p, pb, token, start, "single.example.org")
	verify(t, root, one.res, "single.example.org")
	t.Logf("single name: subscribe to certificate %v (values served after %v)", one.took.Round(time.Millisecond), one.ready.Round(time.Millisecond))

	// 2. A name and its wildcard in one order: two authorizations validated at the same
	// _acme-challenge name, so both values must be served at once. lego v5 presents every
	// authorization's value before it validates any (the parallel path of its resolver; only a
	// provider with a Sequential() method is solved one authorization at a time), so the first
	// passing check must already see both.
	start = time.Now()
	token = subscribe(url.Values{"name": {"wild"}})
	two := obtain(t, p, pb, token, start, "wild.example.org", "*.wild.example.org")
	verify(t, root, two.res, "wild.example.org", "*.wild.example.org")
	if two.presented[0] == two.presented[1] {
		t.Fatal("wildcard: the two authorizations presented the same value")
	}
	if len(two.checked) != 2 {
		t.Fatalf("wildcard: lego's check passed %d times, want once per authorization", len(two.checked))
	}
	for i, served := range two.checked {
		if got, want := slices.Sorted(slices.Values(served)), slices.Sorted(slices.Values(two.presented)); !slices.Equal(got, want) {
			t.Fatalf("wildcard: before validation %d our DNS served %v, want both values %v", i+1, got, want)
		}
	}
	t.Logf("name and wildcard: subscribe to certificate %v (both values served after %v)", two.took.Round(time.Millisecond), two.ready.Round(time.Millisecond))

	// 3. Renewal after the gateway lost its token: verify an email, reclaim the name with the
	// mailed reclamation token, re-subscribe (new token) and get a new certificate with it.
	token = subscribe(url.Values{"name": {"renew"}})
	first := verify(t, root, obtain(t, p, pb, token, time.Now(), "renew.example.org").res, "renew.example.org")
	p.ok("/setemail", url.Values{"token": {token}, "email": {"owner@example.net"}})
	link := linkRE.FindString(mb.Next(t).Data)
	if link == "" {
		t.Fatal("verification mail without link")
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatalf("verification link: %v", errors.Unwrap(err))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("verification link answered %d", resp.StatusCode)
	}
	p.ok("/reclaim", url.Values{"name": {"renew"}})
	m := mb.Next(t)
	rt := tokenRE.FindStringSubmatch(m.Data)
	if strings.Join(m.To, ",") != "owner@example.net" || rt == nil {
		t.Fatalf("reclaim mail to %q without token", m.To)
	}
	start = time.Now()
	newToken := subscribe(url.Values{"name": {"renew"}, "reclamationToken": {rt[1]}})
	if newToken == token {
		t.Fatal("re-subscribing kept the old token")
	}
	p.fails("/dnsconfig", url.Values{"token": {token}, "challenge": {"stale"}}, 400, "InvalidToken")
	renewed := obtain(t, p, pb, newToken, start, "renew.example.org")
	second := verify(t, root, renewed.res, "renew.example.org")
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("renewal returned the first certificate")
	}
	t.Logf("renewal after reclaim: re-subscribe to certificate %v (values served after %v)", renewed.took.Round(time.Millisecond), renewed.ready.Round(time.Millisecond))

	// No gateway secret reached the product's, Pebble's or lego's log.
	logs := p.log.String() + pb.log.String() + legoLog.String()
	for _, secret := range []string{token, newToken, rt[1], link[strings.Index(link, "?s=")+3:]} {
		if strings.Contains(logs, secret) {
			t.Error("a secret appears in a log")
		}
	}
}
