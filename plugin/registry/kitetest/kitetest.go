// Package kitetest makes the PageKite authentication queries a frontend started with
// --authdomain asks the registry, signed as a kite's backend signs them, for tests.
package kitetest

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Sign is the signature a backend holding secret makes for a request of kite (the kite's full
// name without the final dot, "*.name.zone" for a wildcard kite) with srand and token, as
// pagekite's signToken does: salt (8 characters) and 28 hex digits of SHA-1. A salt that starts
// with 't' also signs the 10-minute window of now.
func Sign(secret, protoPort, kite, srand, token, salt string, now time.Time) string {
	data := secret + protoPort + ":" + kite + ":" + srand + ":" + token
	if salt[0] == 't' {
		data += strconv.FormatInt(now.Unix()/600, 16)
	}
	sum := sha1.Sum([]byte(data + salt))
	return salt + hex.EncodeToString(sum[:])[:28]
}

// Query is the name a frontend asks to check sign: SRAND.TOKEN.SIGN.PROTO[-PORT].KITE.AUTHDOMAIN,
// KITE being the kite's name without the final dot (_any_.name.zone for a wildcard kite) and
// authDomain fully qualified.
func Query(srand, token, sign, protoPort, kite, authDomain string) string {
	return strings.Join([]string{srand, token, sign, protoPort, kite, authDomain}, ".")
}

// Signed is the query of the http kite NAME.ZONE signed with secret (an untimestamped
// signature), as a frontend with --authdomain=ZONE asks it; zone is fully qualified.
func Signed(secret, name, zone string) string {
	const srand, token, salt = "5f3a9c01", "c0ffee42", "0a1b2c3d"
	kite := name + "." + strings.TrimSuffix(zone, ".")
	return Query(srand, token, Sign(secret, "http", kite, srand, token, salt, time.Time{}), "http", kite, zone)
}
