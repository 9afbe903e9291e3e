// Package docstest keeps the documentation true. Its tests, run by make
// test, read README.md and docs/*.md (and the other Markdown files that link
// into them) and
//
//   - run the shell examples marked runnable against real gateway nodes and
//     a real redis-server, comparing what they print with what the page
//     says they print;
//   - check that every relative link and #anchor resolves;
//   - check that every flag of every gateway command (gateway -h, gateway
//     publish -h, …) is documented in exactly one flag table, with its
//     environment variable and default, and that the pages name no flag or
//     GATEWAY_* variable that does not exist.
//
// docs/development.md describes the markers the pages use and what the
// tests require of them. The package has no code of its own: only tests.
package docstest
