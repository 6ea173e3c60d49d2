// A MySQL-compatible server on loopback for the tests of the MySQL seed
// (xtask/tests/shop.rs): go-mysql-server's in-memory engine behind its wire
// protocol, with MySQL's user accounts switched on, so that a test can run
// the seed scripts as root and then log in as the users they create, with
// their passwords and nothing more than their grants.
//
// Usage: mysql-server 127.0.0.1:PORT
// It prints "ready" on stdout once it accepts connections and serves until
// it is killed. Nothing is written to disk.
package main

import (
	"fmt"
	"os"
	"strings"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"
)

func main() {
	if len(os.Args) != 2 || !strings.HasPrefix(os.Args[1], "127.") {
		fmt.Fprintln(os.Stderr, "usage: mysql-server 127.0.0.1:PORT (loopback only)")
		os.Exit(2)
	}
	provider := memory.NewDBProvider()
	engine := sqle.NewDefault(provider)

	// Accounts on: a password-less root, as the seed's runner (Bitnami's image
	// runs the init scripts as root); every other login is checked against
	// the accounts and grants the scripts create.
	users := engine.Analyzer.Catalog.MySQLDb
	users.SetEnabled(true)
	// Accounts live in memory: the engine persists them after every change
	// through a persister, and has none by default.
	users.SetPersister(&mysql_db.NoopPersister{})
	users.AddRootAccount()

	config := server.Config{Protocol: "tcp", Address: os.Args[1]}
	s, err := server.NewServer(config, engine, sql.NewContext, memory.NewSessionBuilder(provider), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mysql-server:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "mysql-server:", err)
		os.Exit(1)
	}
}
