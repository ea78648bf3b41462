package registry

import (
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/regdns/regdns/api"
)

// parseMailProperty reads the properties of the mail the API sends: the relay, the sender,
// the links and lifetimes of verifications and reclamations, and the templates.
func parseMailProperty(cfg *Config, prop string, args []string) error {
	switch prop {
	case "smtp":
		return parseSMTP(&cfg.SMTP, args)
	case "smtp_auth":
		var err error
		cfg.SMTP.Username, cfg.SMTP.Password, err = parseCredentials(args)
		return err
	case "mail_from":
		return parseOne(args, func(s string) error { cfg.SMTP.From = s; return nil })
	case "verify_url":
		return parseOne(args, func(s string) error {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) URL", s)
			}
			cfg.API.VerifyURL = s
			return nil
		})
	case "verify_ttl":
		return parseOne(args, func(s string) (err error) { cfg.API.VerifyTTL, err = parseDuration(s); return err })
	case "reclaim_ttl":
		return parseOne(args, func(s string) (err error) { cfg.API.ReclaimTTL, err = parseDuration(s); return err })
	case "template":
		if err := argCount(args, 2, 2); err != nil {
			return err
		}
		field, ok := templateFields[args[0]]
		if !ok {
			return fmt.Errorf("unknown template %q", args[0])
		}
		b, err := os.ReadFile(args[1])
		if err == nil {
			*field(&cfg.API.Templates) = string(b)
		}
		return err
	default:
		return errOtherProperty
	}
}

// parseSMTP reads `smtp HOST:PORT [starttls|tls|none]`.
func parseSMTP(m *api.SMTPMailer, args []string) error {
	if err := argCount(args, 1, 2); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(args[0]); err != nil {
		return err
	}
	m.Addr, m.Security = args[0], "starttls"
	if len(args) == 2 {
		switch args[1] {
		case "starttls", "tls", "none":
			m.Security = args[1]
		default:
			return fmt.Errorf("security %q: want starttls, tls or none", args[1])
		}
	}
	return nil
}

// templateFields maps the `template` property's kinds to the API's template fields.
var templateFields = map[string]func(*api.Templates) *string{
	"verify_subject":  func(t *api.Templates) *string { return &t.VerifySubject },
	"verify_body":     func(t *api.Templates) *string { return &t.VerifyBody },
	"reclaim_subject": func(t *api.Templates) *string { return &t.ReclaimSubject },
	"reclaim_body":    func(t *api.Templates) *string { return &t.ReclaimBody },
	"success_page":    func(t *api.Templates) *string { return &t.SuccessPage },
	"error_page":      func(t *api.Templates) *string { return &t.ErrorPage },
}
