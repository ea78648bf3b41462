// Package origdbtest creates databases of the server regdns replaces, with its schema, for
// tests of the importer: SQLite files, and real PostgreSQL and MariaDB servers started on
// loopback in a temporary directory.
package origdbtest

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// Dialect is one of the original server's three databases.
type Dialect string

// The dialects, named as their database/sql drivers are.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "pgx"
	MySQL    Dialect = "mysql"
)

// Account is a row of the original's accounts table.
type Account struct {
	ID     int64
	Email  string
	OptOut bool
}

// Domain is a row of the original's domains table.
type Domain struct {
	ID                int64
	Name              string
	AccountID         int64
	Token             string
	Description       string
	Timestamp         int64
	DNSChallenge      string
	ReclamationToken  string
	VerificationToken string
	Verified          bool
	Continent         string
	Mode              int64
	LastIP            string
}

// schema is the original's tables in dialect d: the same columns, types and defaults in all three.
func schema(d Dialect) []string {
	id := map[Dialect]string{
		SQLite:   "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
		Postgres: "SERIAL PRIMARY KEY",
		MySQL:    "INTEGER PRIMARY KEY AUTO_INCREMENT NOT NULL",
	}[d]
	boolFalse := map[Dialect]string{SQLite: "BOOLEAN NOT NULL DEFAULT 0", Postgres: "BOOLEAN NOT NULL DEFAULT false", MySQL: "BOOLEAN NOT NULL DEFAULT false"}[d]
	return []string{
		`CREATE TABLE accounts (
			id ` + id + `,
			email VARCHAR(254) NOT NULL UNIQUE,
			optout ` + boolFalse + `)`,
		`CREATE TABLE domains (
			id ` + id + `,
			name VARCHAR(253) NOT NULL UNIQUE,
			account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
			token VARCHAR(36) NOT NULL,
			description TEXT NOT NULL,
			timestamp BIGINT NOT NULL DEFAULT 0,
			dns_challenge VARCHAR(63) NOT NULL DEFAULT '',
			reclamation_token VARCHAR(36) NOT NULL DEFAULT '',
			verification_token VARCHAR(36) NOT NULL DEFAULT '',
			verified ` + boolFalse + `,
			continent VARCHAR(2) NOT NULL DEFAULT '',
			mode INTEGER NOT NULL DEFAULT 0,
			last_ip VARCHAR(15) NOT NULL DEFAULT '')`,
	}
}

// Fill creates the original's tables in db and inserts the rows.
func Fill(t testing.TB, db *sql.DB, d Dialect, accounts []Account, domains []Domain) {
	t.Helper()
	for _, stmt := range schema(d) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s schema: %v", d, err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insert := func(table string, cols []string, args ...any) {
		marks := make([]string, len(cols))
		for i := range marks {
			marks[i] = "?"
			if d == Postgres {
				marks[i] = fmt.Sprintf("$%d", i+1)
			}
		}
		q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(cols, ", "), strings.Join(marks, ", "))
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s insert into %s: %v", d, table, err)
		}
	}
	for _, a := range accounts {
		insert("accounts", []string{"id", "email", "optout"}, a.ID, a.Email, a.OptOut)
	}
	for _, r := range domains {
		insert("domains", []string{"id", "name", "account_id", "token", "description", "timestamp", "dns_challenge",
			"reclamation_token", "verification_token", "verified", "continent", "mode", "last_ip"},
			r.ID, r.Name, r.AccountID, r.Token, r.Description, r.Timestamp, r.DNSChallenge,
			r.ReclamationToken, r.VerificationToken, r.Verified, r.Continent, r.Mode, r.LastIP)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// WriteSQLite creates the SQLite database file path with the rows and returns the importer's
// source for it.
func WriteSQLite(t testing.TB, path string, accounts []Account, domains []Domain) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	Fill(t, db, SQLite, accounts, domains)
	return "sqlite:" + path
}
