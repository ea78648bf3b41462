package api

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
)

// reservedNames is the set of names nobody may register: builtinReserved and the operator's.
func reservedNames(operator []string) map[string]bool {
	reserved := map[string]bool{}
	for _, name := range slices.Concat(builtinReserved, operator) {
		reserved[strings.ToLower(strings.TrimSpace(name))] = true
	}
	return reserved
}

// CheckName applies the API's rules for a requested name (a DNS label that fits under the
// zone and is not reserved) to name, for tools that register names without the API, such as
// the importer. The error says why the name would be refused, and reason is its code for
// the gateway (ReservedName, InvalidName, MissingParameter), "" when the name is accepted.
func CheckName(cfg Config, name string) (reason string, err error) {
	s := &Server{zone: strings.ToLower(strings.TrimSuffix(cfg.Zone, ".")), reserved: reservedNames(cfg.Reserved)}
	if _, err = s.name(url.Values{"name": {name}}); err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
	}
	return reason, err
}

// SecretLifetimes are how long a verification id and a reclamation token stay valid under c.
func (c Config) SecretLifetimes() (verify, reclaim time.Duration) {
	return orDefault(c.VerifyTTL, defaultVerifyTTL), orDefault(c.ReclaimTTL, defaultReclaimTTL)
}
