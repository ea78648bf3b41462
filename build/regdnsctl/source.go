package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, without cgo
)

// openSource opens the original server's database named by source: sqlite:PATH,
// postgres://… (or postgresql://…) or mysql://USER[:PASSWORD]@HOST[:PORT]/DB. Passwords may
// instead come from the environment (PGPASSWORD, MYSQL_PWD), to keep them off the command line.
func openSource(source string) (*sql.DB, error) {
	scheme, rest, _ := strings.Cut(source, ":")
	switch scheme {
	case "sqlite":
		// mode=ro: a mistyped path must not create an empty database and import nothing.
		if _, err := os.Stat(rest); err != nil {
			return nil, err
		}
		return sql.Open("sqlite", "file:"+rest+"?mode=ro")
	case "postgres", "postgresql":
		return sql.Open("pgx", source)
	case "mysql":
		cfg, err := mysqlConfig(source)
		if err != nil {
			return nil, err
		}
		return sql.Open("mysql", cfg.FormatDSN())
	}
	return nil, fmt.Errorf("source %q: want sqlite:PATH, postgres://… or mysql://…", redactURL(source))
}

// mysqlConfig turns a mysql:// URL, as the original server's configuration has it, into the
// driver's configuration; ?unix_socket=PATH connects through a socket.
func mysqlConfig(source string) (*mysql.Config, error) {
	u, err := url.Parse(source)
	if err != nil {
		// Not err itself: url's errors quote the URL, or the piece of it that did not parse,
		// which may be the password.
		return nil, fmt.Errorf("source %s is not a URL like mysql://USER[:PASSWORD]@HOST[:PORT]/DB (percent-encode / ? # @ %% in the password)", redactURL(source))
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	if cfg.Passwd == "" {
		cfg.Passwd = os.Getenv("MYSQL_PWD")
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.Net, cfg.Addr = "tcp", u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	if sock := u.Query().Get("unix_socket"); sock != "" {
		cfg.Net, cfg.Addr = "unix", sock
	}
	return cfg, nil
}

// redactURL hides the password of a database URL, for messages. In a URL that does not
// parse (often because of a character of its password), everything between the first ':'
// after the scheme and the last '@' is taken for the password.
func redactURL(source string) string {
	if u, err := url.Parse(source); err == nil {
		if u.User != nil {
			return u.Redacted()
		}
		return source
	}
	scheme, rest, ok := strings.Cut(source, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 {
		return source
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return source
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// row is one domain of the original database with its account, as read: NULLs are kept
// apart from empty values so that the mapping can report them.
type row struct {
	ID                                   int64
	Name, Token, Description             sql.NullString
	AccountID                            sql.NullInt64
	Email                                sql.NullString
	OptOut, Verified                     sql.NullBool
	Timestamp, Mode                      sql.NullInt64
	Challenge, ReclamationToken, VerifID sql.NullString
	Continent, LastIP                    sql.NullString
}

// rowsQuery reads every domain with its account. The LEFT JOIN keeps a domain whose account
// is missing, so that it is reported rather than lost. The columns are those of the original
// server's schema, the same in its three databases.
const rowsQuery = `SELECT d.id, d.name, d.token, d.description, d.account_id, a.email, a.optout,
	d.verified, d.timestamp, d.mode, d.dns_challenge, d.reclamation_token, d.verification_token,
	d.continent, d.last_ip
	FROM domains d LEFT JOIN accounts a ON a.id = d.account_id ORDER BY d.id`

// readRows calls fn with every domain row of db, in id order.
func readRows(ctx context.Context, db *sql.DB, fn func(row)) error {
	rows, err := db.QueryContext(ctx, rowsQuery)
	if err != nil {
		return fmt.Errorf("reading domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		err := rows.Scan(&r.ID, &r.Name, &r.Token, &r.Description, &r.AccountID, &r.Email, &r.OptOut,
			&r.Verified, &r.Timestamp, &r.Mode, &r.Challenge, &r.ReclamationToken, &r.VerifID,
			&r.Continent, &r.LastIP)
		if err != nil {
			return fmt.Errorf("reading domains: %w", err)
		}
		fn(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading domains: %w", err)
	}
	return nil
}
