package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds a headless-capable Chromium. Without one the browser
// tests skip, unless CI is set: there they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found and CI is set (.ci/run installs the Debian package chromium)")
	}
	t.Skip("Chromium not installed (apt-get install chromium); .ci/run installs it")
	return ""
}

// browser is one headless Chromium with its own profile. Each tab made by
// newTab is a separate browser context: its own cookies, its own login.
type browser struct {
	t     *testing.T
	alloc context.Context

	mu     sync.Mutex
	errors []string // uncaught page exceptions and console errors
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return &browser{t: t, alloc: alloc}
}

// startUI is what the browser tests start from: headless Chromium, a
// migrated database with the UI's users (addUIUsers), and serve on it with
// extra as further flags.
func startUI(t *testing.T, extra ...string) (*browser, string, *testServer) {
	t.Helper()
	b := newBrowser(t) // first: without Chromium the test skips before any database
	dbURL := migratedDB(t)
	addUIUsers(t, dbURL)
	return b, dbURL, startServe(t, dbURL, extra...)
}

// addSampleHistory writes two history samples of every open session, 70 s
// and 10 s ago (1 MB of download between them), for the charts.
func addSampleHistory(t *testing.T, dbURL string) {
	t.Helper()
	if _, err := openTestDB(t, dbURL).Pool.Exec(context.Background(), `
		INSERT INTO session_samples (acctuniqueid, at, input_octets, output_octets)
		SELECT acctuniqueid, now() - interval '70 seconds', 0, 0 FROM radacct WHERE acctstoptime IS NULL
		UNION ALL
		SELECT acctuniqueid, now() - interval '10 seconds', 100000, 1000000 FROM radacct WHERE acctstoptime IS NULL
		ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
}

// checkPageErrors fails t, and lets it go on, when the browser's pages
// threw or logged errors.
func checkPageErrors(t *testing.T, b *browser) {
	t.Helper()
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// tab is one page in its own browser context.
type tab struct {
	b    *browser
	t    *testing.T
	ctx  context.Context
	name string
}

func (b *browser) newTab(t *testing.T, name string) *tab {
	t.Helper()
	// The first context starts the browser; tabs made later get a fresh
	// browser context each (separate cookie jars).
	root, rootCancel := chromedp.NewContext(b.alloc)
	if err := chromedp.Do(root); err != nil {
		rootCancel()
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext(), chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil && e.ExceptionDetails.Exception.Description != "" {
				msg = e.ExceptionDetails.Exception.Description
			}
			b.addError(name + ": exception: " + msg)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					if a.Description != "" {
						parts = append(parts, a.Description)
					} else {
						parts = append(parts, string(a.Value))
					}
				}
				b.addError(name + ": console.error: " + strings.Join(parts, " "))
			}
		}
	}))
	t.Cleanup(func() { cancel(); rootCancel() })
	// The first Do on a context opens its target for the context's whole
	// life: it must get ctx itself, not a child with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tb := &tab{b: b, t: t, ctx: ctx, name: name}
	tb.do(chromedp.EmulateViewport(1440, 900))
	return tb
}

func (b *browser) addError(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// pageErrors returns what the page threw or logged as errors so far.
func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// do runs actions with a timeout; failure is fatal and says what the page showed.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: browser: %v\npage: %s\nerrors: %v", tb.name, err, tb.summary(), tb.b.pageErrors())
	}
}

// eval evaluates a JavaScript expression and decodes its value into T.
func evalJS[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func mustEval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := evalJS[T](tb, expr)
	if err != nil {
		tb.t.Fatalf("%s: evaluate %s: %v\npage: %s", tb.name, expr, err, tb.summary())
	}
	return v
}

// waitJS waits until a JavaScript condition is true; a condition that is
// a promise (one that asks the API) is awaited. The wait is in the page
// (waitInPage): the condition is checked again at each change of the DOM
// and each animation frame, so the test waits on the page's own events.
// A navigation ends the page's wait with its document; the wait then
// starts again in the new one.
func (tb *tab) waitJS(what, cond string, timeout time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ctx, cancel := context.WithTimeout(tb.ctx, left+5*time.Second)
		res, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
			OK  bool   `json:"ok"`
			Err string `json:"err"`
		}](waitInPage(cond, left), chromedp.EvalAwaitPromise))
		cancel()
		if err == nil && res.OK {
			return
		}
		var exc *chromedp.ExceptionError
		if errors.As(err, &exc) { // the wait itself does not compile
			tb.t.Fatalf("%s: waiting for %s: %v (%s)", tb.name, what, err, cond)
		}
		last = fmt.Sprintf("%v %s", err, res.Err)
		if err == nil { // the page's own deadline passed
			break
		}
		// The document went away under the wait (a navigation): wait for
		// the next one's body, then wait in it.
		ctx, cancel = context.WithDeadline(tb.ctx, deadline)
		chromedp.Run(ctx, chromedp.WaitReady("body")) //nolint:errcheck // the loop's deadline reports it
		cancel()
	}
	tb.t.Fatalf("%s: timed out after %v waiting for %s (%s; last error %s)\npage: %s\nerrors: %v",
		tb.name, timeout, what, cond, last, tb.summary(), tb.b.pageErrors())
}

// waitInPage is an expression whose promise resolves {ok: true} once cond
// is true, checking it at once, then after each DOM mutation and each
// animation frame (one check at a time: a condition that fetches is not
// run twice at once), or {ok: false, err} when within has passed.
func waitInPage(cond string, within time.Duration) string {
	return `new Promise((resolve) => {
	const deadline = Date.now() + ` + fmt.Sprint(within.Milliseconds()) + `;
	let running = false, again = false, done = false, lastErr = '';
	const obs = new MutationObserver(() => check());
	const finish = (ok) => { done = true; obs.disconnect(); resolve({ ok, err: lastErr }); };
	const frame = () => { if (!done) { check(); requestAnimationFrame(frame); } };
	async function check() {
		if (done) return;
		if (running) { again = true; return; }
		running = true;
		do {
			again = false;
			try {
				if (await (` + cond + `)) return finish(true);
			} catch (e) { lastErr = String(e); }
		} while (again && !done);
		running = false;
		if (Date.now() > deadline) finish(false);
	}
	obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
	setTimeout(() => { if (!done) finish(false); }, Math.max(deadline - Date.now(), 0));
	check();
	requestAnimationFrame(frame);
})`
}

// summary describes the page for failure messages: connection state, rows.
func (tb *tab) summary() string {
	s, err := evalJS[string](tb, `(() => {
		const q = (s) => document.querySelector(s);
		const rows = [...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username);
		const toasts = [...document.querySelectorAll('[data-testid="result"]')].map((e) => e.textContent);
		return JSON.stringify({
			url: location.href,
			login: q('#login') && !q('#login').hidden,
			loginError: q('#login-error') && q('#login-error').textContent,
			conn: q('[data-testid="conn-status"]') && q('[data-testid="conn-status"]').dataset.state,
			total: q('[data-testid="total-sessions"]') && q('[data-testid="total-sessions"]').textContent,
			pageInfo: q('[data-testid="page-info"]') && q('[data-testid="page-info"]').textContent,
			rows: rows.length > 40 ? rows.slice(0, 40).concat(['…']) : rows,
			empty: q('[data-testid="empty-row"]') && q('[data-testid="empty-row"]').textContent,
			results: toasts,
		});
	})()`)
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	return s
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshotDir is where a test's screenshots go: $NETTPORTAL_SCREENSHOTS
// when set (to keep them), else the test's temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("NETTPORTAL_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// screenshot saves the viewport as PNG in screenshotDir.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot: %v", err)
	}
	dir := screenshotDir(tb.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", path)
	return path
}

// apiClient is a script's view of the HTTP API: cookie login plus the CSRF
// header on every change, as the page does.
type apiClient struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
	Role string
}

func apiLogin(t *testing.T, base, user, password string) *apiClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &apiClient{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	status, body := c.call("POST", "/api/login", map[string]string{"username": user, "password": password})
	if status != http.StatusOK {
		t.Fatalf("login %s: HTTP %d %s", user, status, body)
	}
	var me struct{ User, Role, CSRFToken string }
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("login %s: %v: %s", user, err, body)
	}
	me.Role, _ = raw["role"].(string)
	me.CSRFToken, _ = raw["csrf_token"].(string)
	c.csrf, c.Role = me.CSRFToken, me.Role
	return c
}

// call sends a JSON body (or none) and returns the status and the body.
func (c *apiClient) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != "GET" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustCall fails unless the answer has status want, and decodes it into out.
func (c *apiClient) mustCall(method, path string, body any, want int, out any) {
	c.t.Helper()
	status, b := c.call(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// mustPost fails, saying what it did, unless a POST of body to path is
// answered with a 2xx status.
func (c *apiClient) mustPost(what, path string, body any) {
	c.t.Helper()
	if status, b := c.call("POST", path, body); status/100 != 2 {
		c.t.Fatalf("%s: HTTP %d %s", what, status, b)
	}
}

func (c *apiClient) String() string { return fmt.Sprintf("api(%s)", c.Role) }

// pointAtRows rests the mouse on the first session row, as an operator
// reading the table does (the page then keeps rows in place).
func (tb *tab) pointAtRows() {
	tb.t.Helper()
	x := mustEval[float64](tb, `(() => { const r = document.querySelector('[data-testid="session-row"] [data-testid="cell-router"]').getBoundingClientRect(); return r.left + r.width / 2; })()`)
	y := mustEval[float64](tb, `(() => { const r = document.querySelector('[data-testid="session-row"]').getBoundingClientRect(); return r.top + r.height / 2; })()`)
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y))
	tb.waitJS("the pointer over the table", `document.querySelector('[data-testid="session-rows"]').matches(':hover')`, 5*time.Second)
}
