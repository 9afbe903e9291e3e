// Package jsclient holds the browser client, @ssegateway/client: plain ES
// modules in src/ with their type declarations, embedded so that the
// gateway can serve them to its demo page (and to any page that imports the
// client straight from a node). The package is a leaf: it imports nothing of
// the project.
package jsclient

import (
	"embed"
	"io/fs"
)

//go:embed src/*.js src/*.d.ts
var src embed.FS

// Files returns the client's modules: index.js (the entry point) and the
// modules it imports, and index.d.ts. The FS is read-only and safe for
// concurrent use.
func Files() fs.FS {
	sub, err := fs.Sub(src, "src")
	if err != nil {
		panic(err) // "src" is a valid path: cannot happen
	}
	return sub
}
