package api

import (
	"fmt"
	htmltemplate "html/template"
	"io"
	"text/template"
	"time"
)

// Templates are the texts of the mails and pages the API sends. Mails are text/template,
// pages html/template; all are executed with the fields Name (the label), Domain (name.zone),
// Zone, Email, Link (verification link), Token (reclamation token, reclaim mail only),
// Expires (time.Time) and Message (error page reason).
type Templates struct {
	VerifySubject, VerifyBody   string // text/template
	ReclaimSubject, ReclaimBody string // text/template
	SuccessPage, ErrorPage      string // html/template
}

// templateData is what every template is executed with.
type templateData struct {
	Name, Domain, Zone, Email string
	Link, Token               string
	Expires                   time.Time
	Message                   string
}

// DefaultTemplates returns the built-in English mails and pages.
func DefaultTemplates() Templates {
	return Templates{
		VerifySubject: `Confirm your email address for {{.Domain}}`,
		VerifyBody: `Hello,

someone, hopefully you, asked to make {{.Email}} the contact address of {{.Domain}}.
To confirm, open this link:

{{.Link}}

The link is valid until {{.Expires.UTC.Format "Mon, 02 Jan 2006 15:04 MST"}}.
If you did not ask for this, ignore this mail and nothing will change.
`,
		ReclaimSubject: `Reclaim {{.Domain}}`,
		ReclaimBody: `Hello,

someone, hopefully you, asked to reclaim {{.Domain}}, for instance to move it to a new gateway.
Enter this reclamation token in the gateway when it asks for one:

{{.Token}}

The token is valid until {{.Expires.UTC.Format "Mon, 02 Jan 2006 15:04 MST"}}; if setting up the
gateway fails, you can enter it again until then.
If you did not ask for this, ignore this mail: the name stays with your current gateway.
`,
		SuccessPage: `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Email address confirmed</title></head>
<body>
<h1>Email address confirmed</h1>
<p>{{.Email}} is now the contact address of {{.Domain}}.</p>
</body>
</html>
`,
		ErrorPage: `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Email address not confirmed</title></head>
<body>
<h1>Email address not confirmed</h1>
<p>{{.Message}}</p>
</body>
</html>
`,
	}
}

// parseTemplates parses t, taking the default for every empty field. Each template is tried
// once on empty data so that a misspelt field fails here, at startup, not in a request.
func (s *Server) parseTemplates(t Templates) error {
	def := DefaultTemplates()
	for _, tt := range []struct {
		name      string
		text, def string
		dst       **template.Template
	}{
		{"verify subject", t.VerifySubject, def.VerifySubject, &s.verifySubject},
		{"verify body", t.VerifyBody, def.VerifyBody, &s.verifyBody},
		{"reclaim subject", t.ReclaimSubject, def.ReclaimSubject, &s.reclaimSubject},
		{"reclaim body", t.ReclaimBody, def.ReclaimBody, &s.reclaimBody},
	} {
		p, err := template.New(tt.name).Parse(orDefault(tt.text, tt.def))
		if err == nil {
			err = p.Execute(io.Discard, templateData{})
		}
		if err != nil {
			return fmt.Errorf("api: %s template: %w", tt.name, err)
		}
		*tt.dst = p
	}
	for _, tt := range []struct {
		name      string
		text, def string
		dst       **htmltemplate.Template
	}{
		{"success page", t.SuccessPage, def.SuccessPage, &s.successPage},
		{"error page", t.ErrorPage, def.ErrorPage, &s.errorPage},
	} {
		p, err := htmltemplate.New(tt.name).Parse(orDefault(tt.text, tt.def))
		if err == nil {
			err = p.Execute(io.Discard, templateData{})
		}
		if err != nil {
			return fmt.Errorf("api: %s template: %w", tt.name, err)
		}
		*tt.dst = p
	}
	return nil
}
