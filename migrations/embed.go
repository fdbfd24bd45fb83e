// Package migrations holds the numbered SQL files that build the schema, one
// directory per dialect (sqlite/, postgres/), embedded in the binary. Both
// directories carry the same numbers; a test in package db checks that.
package migrations

import "embed"

// FS holds sqlite/NNNN_name.sql and postgres/NNNN_name.sql.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
