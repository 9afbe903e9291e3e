// Package auth verifies bearer tokens and says which topics they grant. It
// knows nothing of HTTP: the gateway reads the token from a request and asks
// a [Verifier].
//
// Tokens are JWTs. The topics a token grants are in its "sse" claim:
//
//	{"sub": "user-42", "exp": 1767225600,
//	 "sse": {"subscribe": ["orders/42", "news/*"], "publish": ["orders/**"]}}
//
// Each entry is a [Pattern]: a topic name in which "*" stands for one
// path segment (one or more characters other than "/") and "**" for one or
// more characters of any kind.
//
// A [KeyVerifier] verifies tokens of another shape: one key and one
// algorithm (as a Mercure hub's publisher or subscriber key is configured),
// and the token's claims decoded into the caller's own type, so this package
// needs to know nothing of the protocol that reads them.
//
// A [Signer] mints tokens of either shape, for tests and development tools
// (`gateway token`): the gateway itself only verifies.
package auth
