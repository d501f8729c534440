package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/nettportal/nettportal/sim"
)

// BenchmarkLiveView: 100,000 open sessions in the database, 100 browsers'
// WebSocket connections on different views, the sessions API polled, while
// the ingest runs at 20,000 packets/s through the same serve. It prints how
// many pushes each client got and the longest silence any client had, the
// API's latency under load, and the ingest's own figures.
func BenchmarkLiveView(b *testing.B) {
	const clients, openSessions = 100, 100000
	for n := 0; n < b.N; n++ {
		dbURL, db := benchDB(b, 4)
		load := sim.LoadConfig{Secret: "live-secret", Routers: 20, SessionsPerRouter: 500, InterimsPerSession: 16,
			Concurrency: 1024, Rate: 20000}
		for _, r := range load.NASRouters() {
			if err := db.CreateRouter(context.Background(), &r); err != nil {
				b.Fatal(err)
			}
		}
		// The standing population: open sessions on the same routers.
		if _, err := db.Pool.Exec(context.Background(), `INSERT INTO radacct (acctsessionid, acctuniqueid, username,
			nasipaddress, nas_id, acctstarttime, acctupdatetime, acctinputoctets, acctoutputoctets, prev_updatetime,
			prev_inputoctets, prev_outputoctets, framedipaddress, callingstationid, has_start)
			SELECT to_hex(i), md5('open' || i), 'sub' || i, '127.0.0.11', (SELECT min(id) FROM nas) + i % 20,
				now() - (i % 86400) * interval '1 s', now() - interval '1 min', i * 1000, i * 5000, now() - interval '6 min',
				i * 900, i * 4500, '100.64.0.0'::inet + i, 'AA:00:00:00:00:00', true
			FROM generate_series(1, $1) i`, openSessions); err != nil {
			b.Fatal(err)
		}
		db.Pool.Exec(context.Background(), "VACUUM ANALYZE radacct")
		srv := startServe(b, dbURL, "--log-level", "warn", "--stale-grace", "1000h", "--http-conns-per-client", "0")
		token := strings.TrimSpace(mustRun(b, "token", "create", "--db", dbURL, "--name", "wall", "--role", "viewer"))
		load.Server = srv.AcctAddr

		views := []string{
			`{"type":"subscribe","sort":"started_at","order":"desc","limit":50}`,
			`{"type":"subscribe","sort":"output_bps","order":"desc","limit":50}`,
			`{"type":"subscribe","router":"load-003","sort":"output_octets","order":"desc","limit":100}`,
			`{"type":"subscribe","q":"sub12","sort":"username","order":"asc","limit":50}`,
		}
		u, _ := url.Parse(srv.HTTPURL)
		type stats struct {
			pushes  int
			maxGap  time.Duration
			dropped bool
		}
		results := make([]stats, clients)
		var loadStart atomic.Int64 // pushes before the load are not counted
		loadStart.Store(1 << 62)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		ready := make(chan struct{}, clients)
		for i := 0; i < clients; i++ {
			hdr := http.Header{"Origin": {srv.HTTPURL}, "Authorization": {"Bearer " + token}}
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+u.Host+"/ws", hdr)
			if err != nil {
				b.Fatalf("client %d: %v", i, err)
			}
			if err := ws.WriteMessage(websocket.TextMessage, []byte(views[i%len(views)])); err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func(i int, ws *websocket.Conn) {
				defer wg.Done()
				defer ws.Close()
				go func() { <-ctx.Done(); ws.Close() }()
				st := &results[i]
				var last time.Time
				for {
					var m struct{ Type string }
					if err := ws.ReadJSON(&m); err != nil {
						st.dropped = ctx.Err() == nil
						return
					}
					if m.Type != "sessions" {
						continue
					}
					now := time.Now()
					if last.IsZero() {
						ready <- struct{}{}
					}
					if now.UnixNano() >= loadStart.Load() {
						from := max(last.UnixNano(), loadStart.Load())
						st.maxGap = max(st.maxGap, time.Duration(now.UnixNano()-from))
						st.pushes++
					}
					last = now
				}
			}(i, ws)
		}
		// Every client must show its view before the load starts; one that
		// never does fails the run with the server's log rather than hang it.
		firstViews := time.After(60 * time.Second)
		for i := 0; i < clients; i++ {
			select {
			case <-ready:
			case <-firstViews:
				b.Fatalf("%d of %d WebSocket clients had no first snapshot after 60s; server log:\n%s", clients-i, clients, srv.Log.String())
			}
		}
		loadStart.Store(time.Now().UnixNano())

		// The API, as another operator's page refreshes, during the load.
		var apiTimes []time.Duration
		apiDone := make(chan struct{})
		go func() {
			defer close(apiDone)
			paths := []string{"/api/sessions?router=load-005&sort=output_octets&order=desc",
				"/api/sessions?q=sub77&sort=username", "/api/sessions?q=100.64.1.&sort=ip"}
			for i := 0; ctx.Err() == nil; i++ {
				req, _ := http.NewRequest("GET", srv.HTTPURL+paths[i%len(paths)], nil)
				req.Header.Set("Authorization", "Bearer "+token)
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					apiTimes = append(apiTimes, time.Since(start))
				}
				time.Sleep(100 * time.Millisecond) // paces the operator's refreshes
			}
		}()

		b.ResetTimer()
		res, err := sim.RunLoad(context.Background(), load)
		b.StopTimer()
		cancel()
		wg.Wait()
		<-apiDone
		if err != nil {
			b.Fatal(err)
		}
		report(b, "with 100 live views", res)
		minPushes, dropped := 1<<30, 0
		var maxGap time.Duration
		for _, st := range results {
			minPushes = min(minPushes, st.pushes)
			maxGap = max(maxGap, st.maxGap)
			if st.dropped {
				dropped++
			}
		}
		sort.Slice(apiTimes, func(i, j int) bool { return apiTimes[i] < apiTimes[j] })
		p := func(q float64) time.Duration { return apiTimes[int(q*float64(len(apiTimes)-1))] }
		fmt.Printf("live view: %d WebSocket clients over %d open sessions during %.1fs of ingest: fewest pushes %d, longest silence %v, %d dropped\n",
			clients, openSessions, res.Duration.Seconds(), minPushes, maxGap.Round(time.Millisecond), dropped)
		fmt.Printf("sessions API during the ingest (filtered, sorted pages): %d requests, p50 %v, p95 %v, max %v\n",
			len(apiTimes), p(0.5).Round(time.Millisecond/10), p(0.95).Round(time.Millisecond/10), apiTimes[len(apiTimes)-1].Round(time.Millisecond))
		b.ReportMetric(float64(minPushes), "min-pushes")
		b.ReportMetric(float64(maxGap.Milliseconds()), "max-silence-ms")
		b.ReportMetric(float64(p(0.95).Microseconds())/1000, "api-p95-ms")
	}
}
