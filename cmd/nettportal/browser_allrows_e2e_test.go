package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/nettportal/nettportal/sim"
)

// allRowsJS are the page helpers the all-rows test evaluates against.
const allRowsJS = `const box = () => document.querySelector('[data-testid="sessions-scroll"]');
	const domRows = () => document.querySelectorAll('[data-testid="session-row"]').length;
	const rowAt = (i) => document.querySelector('tr[data-testid="session-row"][aria-rowindex="' + (i + 2) + '"]');
	const inBox = (tr) => { const a = tr.getBoundingClientRect(), b = box().getBoundingClientRect(); return a.top >= b.top - 1 && a.bottom <= b.bottom + 1; };
	const inWindow = (tr) => { const a = tr.getBoundingClientRect(); return a.top >= -1 && a.bottom <= window.innerHeight + 1; };
	const apiRow = async (params, i) => { const r = await fetch('/api/sessions?' + params + '&limit=1&offset=' + i); const j = await r.json(); return j.sessions[0] && j.sessions[0].username; };
	const apiTotal = async (params) => { const r = await fetch('/api/sessions?' + params + '&limit=1'); return (await r.json()).total; };`

// TestBrowserAllRows: 10,000 open sessions are one scrolling table. The
// scrollbar spans all of them but the DOM holds only the rows near the
// screen; the last row is reached by scrolling; sort and search apply to
// the whole set; a WebSocket update reaches a row while scrolled half way;
// on a phone the page scrolls to the last card.
func TestBrowserAllRows(t *testing.T) {
	const routers, perRouter = 4, 2500
	const total = routers * perRouter
	// 10,000 Starts at once are a burst no router fleet sends at boot on a
	// shared test machine: they wait in the queue rather than being shed,
	// and the routers retransmit, as real ones do, for longer than uiFleet's.
	b, dbURL, srv := startUI(t, "--max-queue-delay", "0")
	fleet := uiFleetWith(t, dbURL, srv.AcctAddr, "127.0.15.1", "vr-", routers, perRouter, func(c *sim.FleetConfig) {
		c.Timeout, c.Retries = 2*time.Second, 40
	})
	if n := fleet.SessionCount(); n != total {
		t.Fatalf("fleet: %d sessions up, want %d", n, total)
	}

	tb := b.newTab(t, "all rows")
	tb.login(srv.HTTPURL, "op", uiOperatorPass)
	js := func(expr string) string { return `(async () => { ` + allRowsJS + ` return (` + expr + `); })()` }
	wait := func(what, expr string) {
		t.Helper()
		tb.waitJS(what, js(expr), 20*time.Second)
	}
	domRows := func(when string) {
		t.Helper()
		if n := mustEval[int](tb, js(`domRows()`)); n == 0 || n >= 200 {
			t.Errorf("%s: %d rows in the DOM, want 1..199", when, n)
		}
	}
	n := strconv.Itoa(total)

	wait("all sessions counted", `window.nettportal.app.page.total === `+n+` && document.querySelector('[data-testid="sessions-table"]').getAttribute('aria-rowcount') === '`+strconv.Itoa(total+1)+`'`)
	wait("the first rows", `rowAt(0) !== null && inBox(rowAt(0))`)
	domRows("at the top")
	// The scrollbar is that of all rows: the box scrolls the height of
	// 10,000 rows, not of the few in the DOM.
	if ok := mustEval[bool](tb, js(`box().scrollHeight > `+n+` * rowAt(0).getBoundingClientRect().height * 0.95`)); !ok {
		t.Errorf("the table's scroll height %v does not span %d rows", mustEval[float64](tb, js(`box().scrollHeight`)), total)
	}
	if info := mustEval[string](tb, `document.querySelector('[data-testid="page-info"]').textContent`); !strings.HasSuffix(info, "of 10,000") {
		t.Errorf("row info %q", info)
	}

	// Scrolled to the end, the last row is on screen and is the server's
	// last in this order.
	sortParams := `sort=output_bps&order=desc`
	mustEval[bool](tb, js(`(box().scrollTop = box().scrollHeight, true)`))
	wait("the last row on screen", `rowAt(`+strconv.Itoa(total-1)+`) !== null && inBox(rowAt(`+strconv.Itoa(total-1)+`))`)
	wait("the last row is the server's last", `rowAt(`+strconv.Itoa(total-1)+`).dataset.username === await apiRow('`+sortParams+`', `+strconv.Itoa(total-1)+`)`)
	domRows("at the end")

	// Sorting sorts all rows and starts at the top of the new order.
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-username"]`)))
	sortParams = `sort=username&order=asc`
	wait("the top of the username order", `box().scrollTop === 0 && rowAt(0) !== null && rowAt(0).dataset.username === await apiRow('`+sortParams+`', 0)`)
	mustEval[bool](tb, js(`(box().scrollTop = box().scrollHeight, true)`))
	wait("the last username at the end", `rowAt(`+strconv.Itoa(total-1)+`) !== null && inBox(rowAt(`+strconv.Itoa(total-1)+`)) && rowAt(`+strconv.Itoa(total-1)+`).dataset.username === await apiRow('`+sortParams+`', `+strconv.Itoa(total-1)+`)`)
	domRows("at the end of the username order")

	// A search covers all rows too: u2000..u2500 on each router.
	tb.setInput("search", "u2")
	wait("the search's count", `window.nettportal.app.page.total === await apiTotal('q=u2&`+sortParams+`') && window.nettportal.app.page.total > 1000`)
	searchTotal := mustEval[int](tb, `window.nettportal.app.page.total`)
	mustEval[bool](tb, js(`(box().scrollTop = box().scrollHeight, true)`))
	last := strconv.Itoa(searchTotal - 1)
	wait("the search's last row", `rowAt(`+last+`) !== null && inBox(rowAt(`+last+`)) && rowAt(`+last+`).dataset.username === await apiRow('q=u2&`+sortParams+`', `+last+`)`)
	if bad := mustEval[[]string](tb, `[...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.username).filter((u) => !u.includes('u2'))`); len(bad) > 0 {
		t.Errorf("rows outside the search: %q", bad)
	}
	tb.setInput("search", "")
	wait("all rows again", `window.nettportal.app.page.total === `+n)

	// Half way down, an interim of a row on screen reaches it through the
	// WebSocket, and the table stays where it was.
	mustEval[bool](tb, js(`(box().scrollTop = box().scrollHeight / 2, true)`))
	wait("rows half way down", `(() => { const tr = [...document.querySelectorAll('[data-testid="session-row"]')].find(inBox);
		return tr && +tr.getAttribute('aria-rowindex') > `+strconv.Itoa(total/3)+`; })()`)
	type seen struct {
		ID, Router string
		Octets     float64
		ScrollTop  float64
	}
	row := mustEval[seen](tb, js(`(() => { const tr = [...document.querySelectorAll('[data-testid="session-row"]')].find(inBox);
		const r = [...window.nettportal.app.page.rows.values()].find((x) => x.tr === tr);
		return { ID: tr.dataset.id, Router: r.s.router, Octets: r.s.output_octets, ScrollTop: box().scrollTop }; })()`))
	fleet.Router(row.Router).Tick()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fleet.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	wait("the update of the row on screen", `(() => { const r = [...window.nettportal.app.page.rows.values()].find((x) => String(x.s.id) === `+jsString(row.ID)+`);
		return r && r.s.output_octets > `+strconv.FormatFloat(row.Octets, 'f', -1, 64)+` && inBox(r.tr) && r.c.download.textContent !== ''; })()`)
	if top := mustEval[float64](tb, js(`box().scrollTop`)); top != row.ScrollTop {
		t.Errorf("the table moved from %v to %v on an update", row.ScrollTop, top)
	}
	domRows("half way down")
	tb.screenshot("sessions-10000-1440.png")

	// Sorted by rate, with the pointer on a row half way down, new rates
	// reorder nothing on screen; once the pointer leaves, the window shows
	// the server's order again.
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid="sort-output_bps"]`)))
	sortParams = `sort=output_bps&order=desc`
	wait("the top of the rate order", `box().scrollTop === 0 && rowAt(0) !== null && rowAt(0).dataset.username === await apiRow('`+sortParams+`', 0)`)
	mustEval[bool](tb, js(`(box().scrollTop = box().scrollHeight / 2, true)`))
	wait("rows half way down the rate order", `(() => { const tr = [...document.querySelectorAll('[data-testid="session-row"]')].find(inBox);
		return tr && +tr.getAttribute('aria-rowindex') > `+strconv.Itoa(total/3)+`; })()`)
	pt := mustEval[[]float64](tb, js(`(() => { const tr = [...document.querySelectorAll('[data-testid="session-row"]')].filter(inBox)[3];
		const r = tr.querySelector('[data-testid="cell-router"]').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`))
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, pt[0], pt[1]))
	tb.waitJS("the pointer over the table", `document.querySelector('[data-testid="session-rows"]').matches(':hover')`, 5*time.Second)
	state := `JSON.stringify({block: window.nettportal.app.page.block, win: window.nettportal.app.page.win, rowH: window.nettportal.app.page.rowH, top: box().scrollTop, hover: document.querySelector('[data-testid="session-rows"]').matches(':hover')})`
	t.Logf("before: %s", mustEval[string](tb, js(state)))
	before := mustEval[[]string](tb, rowOrder)
	mustEval[bool](tb, `(window.__total = window.nettportal.app.lastSnapshot.stats.output_octets, true)`)
	for _, r := range fleet.Routers {
		r.Tick()
	}
	if err := fleet.AwaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	// A snapshot after the interims (the totals grew). Its window may hold
	// none of the rows on screen: new rates reshuffle the middle of the
	// order; those rows stay as they were until the pointer leaves.
	wait("a snapshot with the new counters", `window.nettportal.app.lastSnapshot.stats.output_octets > window.__total`)
	t.Logf("after: %s", mustEval[string](tb, js(state)))
	if after := mustEval[[]string](tb, rowOrder); !slices.Equal(after, before) {
		t.Errorf("rows moved under the pointer:\n before %q\n after  %q", before, after)
	}
	tb.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 5, 5))
	wait("the window in the server's new order", `(async () => { const p = window.nettportal.app.page; const r = await fetch('/api/sessions?`+sortParams+`&limit=' + p.rows.size + '&offset=' + p.start);
		const want = (await r.json()).sessions.map((s) => s.username); return JSON.stringify(want) === JSON.stringify(`+rowOrder+`); })()`)

	// A phone scrolls the page itself down to the last card.
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	mustEval[bool](tb, `(window.scrollTo(0, document.documentElement.scrollHeight), true)`)
	wait("the last card on a phone", `(() => { window.scrollTo(0, document.documentElement.scrollHeight); const tr = rowAt(`+strconv.Itoa(total-1)+`); return tr !== null && inWindow(tr); })()`)
	domRows("on a phone")
	if w := mustEval[int](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the phone page is %d px wide", w)
	}
	tb.screenshot("sessions-10000-390.png")
	checkPageErrors(t, b)
}
