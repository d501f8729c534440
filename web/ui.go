package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// uiFiles is the browser UI: index.html, app.js, style.css and friends.
//
//go:embed ui
var uiFiles embed.FS

// contentSecurityPolicy allows only our own scripts, styles and
// connections: no inline script, no third party. 'self' covers the
// WebSocket to this origin (ws: and wss: would allow any host).
const contentSecurityPolicy = "default-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// uiHandler serves the embedded UI, index.html for "/". The browser
// revalidates every time (no-cache), so a new release shows at once.
func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		// No directory listings: "/" is index.html, any other directory
		// (such as /js/) is not a page.
		if r.URL.Path != "/" && strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}
