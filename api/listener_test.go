package api

import (
	"io"
	"net/http"
	"testing"
)

// Serve hands the listener over to a new handler: requests after it reach the new one, on
// the same listener.
func TestListenerHandOver(t *testing.T) {
	l, err := Listen("127.0.0.1:0", false, ConnLimits{Total: 8, PerClient: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Scheme() != "http" {
		t.Errorf("scheme %s, want http", l.Scheme())
	}
	get := func() string {
		t.Helper()
		resp, err := http.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, body := range []string{"first", "second"} {
		l.Serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }), nil, ConnLimits{Total: 8, PerClient: 8})
		if got := get(); got != body {
			t.Errorf("after handing over to %q: answered %q", body, got)
		}
	}
}
