// Package coa sends RFC 3576/5176 Disconnect-Request and CoA-Request packets
// to MikroTik routers and applies NettPortal's disconnect policy: RADIUS
// first, the RouterOS API when the router says no or does not answer.
//
// It also exports the packet signing and verification functions
// (EncodeRequest, VerifyRequest, EncodeResponse, VerifyResponse), because
// layeh.com/radius does not compute Message-Authenticator and the router
// simulator needs the same rules on the other side of the wire.
package coa
