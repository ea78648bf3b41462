package registry

import (
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// reply is one response in one allocation: the message, and room for the answer of a
// registered name in its common shapes (one address of the asked family, one live challenge
// value), built per query into the reply instead of kept per name. Nothing is kept per name
// but the record itself: at a million names every object the view holds is one more the
// garbage collector traces, and that tracing is paid for by the queries. Building the record
// costs a few nanoseconds, and it is named as asked, in the question's case.
type reply struct {
	dns.Msg
	a    dns.A
	quad dns.AAAA
	txt  dns.TXT
	ans  [1]dns.RR
	ip   [16]byte
	val  [1]string
	// name holds the question's name in lower case when it was asked in mixed case, in
	// recycled replies only (the others lower it with strings.ToLower).
	name *[255]byte
}

// replies recycles the replies of queries whose writer was done with them when WriteMsg
// returned, so that answering a registered name allocates nothing in the plugin.
var replies = sync.Pool{New: func() any { return &reply{name: new([255]byte)} }}

// packsAtOnce reports whether w is done with a message once WriteMsg returns, so that the
// reply can be reused: only the CoreDNS server's own writer (request.ScrubWriter) over
// miekg/dns's UDP, TCP or TLS connection writer, which packs the message into bytes and sends
// them before returning. Any other writer may keep the message: plugins in front of this one
// that wrap the writer (log and prometheus read the recorded reply after the chain returns,
// cache stores its records) and the DNS-over-HTTPS and gRPC writers, which pack it later. Those
// get a reply of their own, as every reply was before. A variable, so that the benchmarks can
// accept their discarding writer.
var packsAtOnce = func(w dns.ResponseWriter) bool {
	s, ok := w.(*request.ScrubWriter)
	if !ok || s.ResponseWriter == nil {
		return false
	}
	t := reflect.TypeOf(s.ResponseWriter)
	return t.Kind() == reflect.Pointer && t.Elem().Name() == "response" && t.Elem().PkgPath() == "github.com/miekg/dns"
}

// newReply returns an empty reply: from the pool when it will be recycled.
func newReply(recycle bool) *reply {
	if recycle {
		return replies.Get().(*reply)
	}
	return new(reply)
}

// release returns rep to the pool, emptied but for its name buffer (it must hold no
// reference to the request or to shared records), when it was taken from it and its writer
// is done with it.
func (rep *reply) release(recycle bool) {
	if recycle {
		*rep = reply{name: rep.name}
		replies.Put(rep)
	}
}

// lower is s (a name in presentation format) in lower case (RFC 4343: ASCII letters only): s
// itself when it has no upper-case letter, otherwise built into rep's name buffer, or
// allocated when rep has none or s is longer. A string from the buffer is valid only while
// rep is: the lookup may read it and build the reply's records with it, but must keep it
// nowhere else.
func (rep *reply) lower(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	if rep.name == nil || len(s) > len(rep.name) {
		return strings.ToLower(s)
	}
	b := rep.name[:len(s)]
	copy(b, s)
	for j := i; j < len(b); j++ {
		if c := b[j]; 'A' <= c && c <= 'Z' {
			b[j] = c + 'a' - 'A'
		}
	}
	return unsafe.String(&b[0], len(b))
}
