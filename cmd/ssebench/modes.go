package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
)

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// idleResult is the memory cost of idle connections.
type idleResult struct {
	Conns, Failed int64
	Before, After int64 // server RSS, bytes
	PerConn       float64
	FirstErr      string
}

func doIdle(t *target, conns int, topic string, own bool, settle time.Duration) (idleResult, error) {
	var r idleResult
	before, _ := readProc(t.pid)
	j := job{Mode: "idle", URL: t.url, Paths: []string{fmt.Sprintf(t.path, topic)}}
	if own {
		// Each stream on a topic of its own (a notification service's
		// shape: a topic per user), so the server's memory per topic counts.
		j.Paths, j.Numbered = []string{fmt.Sprintf(t.path, strings.ReplaceAll(topic, "%", "%%")+"-%d")}, true
	}
	ws, err := t.spawn(j, conns)
	if err != nil {
		return r, err
	}
	defer ws.close()
	rep, err := ws.collect(5 * time.Minute)
	if err != nil {
		return r, err
	}
	time.Sleep(settle)
	after, _ := readProc(t.pid)
	ws.send("stop -1")
	_, _ = ws.collect(time.Minute)
	r = idleResult{Conns: rep.Opened, Failed: rep.Failed, Before: before.RSS, After: after.RSS, FirstErr: rep.FirstErr}
	if rep.Opened > 0 {
		r.PerConn = float64(after.RSS-before.RSS) / float64(rep.Opened)
	}
	return r, nil
}

func cmdIdle(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	conns := fs.Int("conns", 10000, "idle streams to open")
	topic := fs.String("topic", "idle", "topic of every stream")
	own := fs.Bool("own-topics", false, "put each stream on a topic of its own (topic-0, topic-1, ...)")
	settle := fs.Duration("settle", 5*time.Second, "wait this long after the last connect before reading the RSS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := doIdle(&t, *conns, *topic, *own, *settle)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "streams open %d (failed %d %s)\n", r.Conns, r.Failed, r.FirstErr)
	if t.pid != 0 {
		fmt.Fprintf(stdout, "server RSS %s before, %s after: %s per stream\n", kib(float64(r.Before)), kib(float64(r.After)), kib(r.PerConn))
	}
	return nil
}

// fanoutResult is one fan-out run.
type fanoutResult struct {
	Subs, Opened        int64
	Offered, Achieved   float64 // events per second
	Published           int64
	Expected, Received  int64 // deliveries
	Lost, Dupes         int64
	Gaps, Tail          int64 // of Lost: missing below a client's newest event, or not reached yet
	HistoryLost         int64 // history-lost events the clients got
	Reconnects          int64
	P50, P99, Max       time.Duration
	CPU                 time.Duration // server CPU over the publishing window
	RedisCPU            time.Duration // Redis's CPU over the window, when the suite started it
	Window              time.Duration
	PeakRSS             int64
	PublishP99          time.Duration
	PublishErrs         int64
	Evicted, Throttled  float64
	PerWrite            float64 // events per write, from the server's metrics
	FirstErr, PubErrMsg string
}

// doFanout has subs clients subscribe to topic and publishers publish to
// it at rate for dur. With a pattern topic the events go to the topics of
// spread in turn (see spreadTopics).
func doFanout(ctx context.Context, t *target, subs int, rate float64, dur time.Duration, size int, topic string, spread []string, publishers int, drain time.Duration) (fanoutResult, error) {
	r := fanoutResult{Subs: int64(subs), Offered: rate}
	ws, err := t.spawn(job{Mode: "fanout", URL: t.url, Paths: []string{fmt.Sprintf(t.path, topic)}, Publishers: publishers, Named: isPattern(topic)}, subs)
	if err != nil {
		return r, err
	}
	defer ws.close()
	ready, err := ws.collect(5 * time.Minute)
	if err != nil {
		return r, err
	}
	r.Opened, r.FirstErr = ready.Opened, ready.FirstErr
	time.Sleep(time.Second) // every stream joins its topic
	evicted0 := metric(t.metricURL, "ssegateway_connections_closed_total", `reason="slow"`)
	delivered0 := metric(t.metricURL, "ssegateway_events_delivered_total", "")
	writes0 := metric(t.metricURL, "ssegateway_stream_writes_total", "")

	// Watch the server's memory while it works.
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := readProc(t.pid); err == nil {
				r.PeakRSS = max(r.PeakRSS, st.RSS)
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	})

	// Each publisher numbers its own events and sends them one after
	// another, so a client can tell a lost event (a skipped number) from
	// one still on its way, whatever the interleaving of publishers.
	pub := newPublisher(t, topic, size, publishers)
	pub.spread = spread
	total := int64(rate * dur.Seconds())
	tokens := make(chan struct{}, 1024)
	stats := &pubStats{lat: newHist()}
	sent := make([]int64, publishers)
	var pwg sync.WaitGroup
	for k := range publishers {
		pwg.Go(func() {
			for range tokens {
				t0 := time.Now()
				_, err := pub.sendData(ctx, pub.topicOf(k, sent[k]), pub.dataFrom(k, sent[k]))
				stats.lat.add(time.Since(t0))
				if err != nil {
					stats.mu.Lock()
					stats.errs++
					stats.lastErr = err
					stats.mu.Unlock()
					continue // the number is used again
				}
				sent[k]++
			}
		})
	}
	cpu0, _ := readProc(t.pid)
	rcpu0, _ := readProc(t.redisPID)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for seq := int64(0); seq < total && ctx.Err() == nil; seq++ {
		if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
			time.Sleep(d)
		}
		tokens <- struct{}{}
	}
	close(tokens)
	pwg.Wait()
	r.Window = time.Since(start)
	cpu1, _ := readProc(t.pid)
	r.CPU = cpu1.CPU - cpu0.CPU
	if t.redisPID != 0 {
		rcpu1, _ := readProc(t.redisPID)
		r.RedisCPU = rcpu1.CPU - rcpu0.CPU
	}
	var counts []string
	r.Published = 0
	for _, n := range sent {
		r.Published += n
		counts = append(counts, strconv.FormatInt(n, 10))
	}
	r.Achieved = float64(r.Published) / r.Window.Seconds()
	r.PublishP99 = stats.lat.quantile(0.99)
	r.PublishErrs = stats.errs
	if stats.lastErr != nil {
		r.PubErrMsg = stats.lastErr.Error()
	}

	time.Sleep(drain)
	close(stopWatch)
	watch.Wait()
	ws.send("stop " + strings.Join(counts, ","))
	res, err := ws.collect(5 * time.Minute)
	if err != nil {
		return r, err
	}
	r.Expected = int64(subs) * r.Published
	r.Received = res.Events - res.Dupes
	r.Lost, r.Dupes, r.Reconnects, r.Gaps, r.Tail, r.HistoryLost = res.Lost, res.Dupes, res.Reconnects, res.Gaps, res.Tail, res.HistoryLost
	r.P50, r.P99, r.Max = res.Latency.quantile(0.5), res.Latency.quantile(0.99), time.Duration(res.Latency.Max)
	if e1 := metric(t.metricURL, "ssegateway_connections_closed_total", `reason="slow"`); e1 >= 0 && evicted0 >= 0 {
		r.Evicted = e1 - evicted0
	}
	if w1 := metric(t.metricURL, "ssegateway_stream_writes_total", ""); w1 > writes0 && writes0 >= 0 {
		r.PerWrite = (metric(t.metricURL, "ssegateway_events_delivered_total", "") - delivered0) / (w1 - writes0)
	}
	return r, nil
}

// defaultPublishers is enough concurrent publishers that a publish round
// trip of up to a quarter second does not lower the offered rate.
func defaultPublishers(rate float64) int { return max(64, int(rate/4)) }

func cmdFanout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	subs := fs.Int("subs", 1000, "subscribers")
	rate := fs.Float64("rate", 200, "events published per second")
	dur := fs.Duration("duration", 10*time.Second, "how long to publish")
	size := fs.Int("size", 64, "event data bytes")
	topic := fs.String("topic", "fanout", "topic, or a pattern prefix/* (events then go to prefix/0 … prefix/N-1, N = --spread)")
	spreadN := fs.Int("spread", 0, "with a pattern --topic, the topics events are spread over (0: 100)")
	publishers := fs.Int("publishers", 0, "concurrent publishers, each numbering its own events (0: 64, or rate/4 if more), enough that a slow publish does not lower the rate")
	drain := fs.Duration("drain", 5*time.Second, "wait after publishing before counting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := positive(map[string]float64{"--subs": float64(*subs), "--rate": *rate, "--duration": dur.Seconds(), "--size": float64(*size)}); err != nil {
		return err
	}
	spread, err := spreadTopics(*topic, *spreadN)
	if err != nil {
		return err
	}
	if *publishers <= 0 {
		*publishers = defaultPublishers(*rate)
	}
	r, err := doFanout(ctx, &t, *subs, *rate, *dur, *size, *topic, spread, *publishers, *drain)
	if err != nil {
		return err
	}
	printFanout(stdout, r)
	return nil
}

func printFanout(w io.Writer, r fanoutResult) {
	fmt.Fprintf(w, "subscribers %d/%d open; published %d at %.1f/s (offered %.0f/s; publish p99 %s, %d errors %s)\n",
		r.Opened, r.Subs, r.Published, r.Achieved, r.Offered, ms(r.PublishP99), r.PublishErrs, r.PubErrMsg)
	fmt.Fprintf(w, "deliveries %d of %d: missing %d (%d in gaps: lost; %d not reached yet: behind), duplicated %d; reconnects %d, evicted %v\n",
		r.Received, r.Expected, r.Lost, r.Gaps, r.Tail, r.Dupes, r.Reconnects, r.Evicted)
	fmt.Fprintf(w, "latency p50 %s p99 %s max %s\n", ms(r.P50), ms(r.P99), ms(r.Max))
	if r.Gaps > 0 || r.Dupes > 0 || r.HistoryLost > 0 {
		fmt.Fprintf(w, "LOSS OR DUPLICATES: %d lost, %d duplicated, %d history-lost events\n", r.Gaps, r.Dupes, r.HistoryLost)
	}
	if r.PerWrite > 0 {
		fmt.Fprintf(w, "server: %.1f events per write\n", r.PerWrite)
	}
	if r.CPU > 0 || r.PeakRSS > 0 {
		fmt.Fprintf(w, "server CPU %.2f s over %.1f s; peak RSS %s\n", r.CPU.Seconds(), r.Window.Seconds(), kib(float64(r.PeakRSS)))
	}
	if r.RedisCPU > 0 {
		fmt.Fprintf(w, "Redis CPU %.2f s\n", r.RedisCPU.Seconds())
	}
}

// stormResult is many clients resuming from one cursor at once.
type stormResult struct {
	Clients, Done    int64
	Events           int64
	Lost, Dupes      int64
	HistoryLost      int64
	P50, P99, Max    time.Duration
	OwnReads, Shared float64
	FirstErr         string
}

// doStorm publishes events to topic (a pattern's: to the topics of spread
// in turn), then has clients reconnect at once with the cursor of the first.
func doStorm(ctx context.Context, t *target, clients, events, size int, topic string, spread []string) (stormResult, error) {
	r := stormResult{Clients: int64(clients), Events: int64(events)}
	pub := newPublisher(t, topic, size, 1)
	pub.spread = spread
	var first string
	for seq := range int64(events) + 1 {
		b, err := pub.send(ctx, seq)
		if err != nil {
			return r, err
		}
		if seq == 0 {
			var resp struct{ ID string }
			if err := json.Unmarshal(b, &resp); err != nil || resp.ID == "" {
				return r, fmt.Errorf("the publish answer %q has no id", b)
			}
			first = resp.ID
		}
	}
	own0 := metric(t.metricURL, "ssegateway_replay_reads_total", `shared="false"`)
	shared0 := metric(t.metricURL, "ssegateway_replay_reads_total", `shared="true"`)
	ws, err := t.spawn(job{Mode: "storm", URL: t.url, Paths: []string{fmt.Sprintf(t.path, topic)}, LastID: first, Expect: int64(events), Named: isPattern(topic)}, clients)
	if err != nil {
		return r, err
	}
	defer ws.close()
	if _, err := ws.collect(time.Minute); err != nil { // every worker prepared
		return r, err
	}
	ws.send("go")
	res, err := ws.collect(2 * time.Minute)
	if err != nil {
		return r, err
	}
	r.Done, r.Lost, r.Dupes, r.HistoryLost, r.FirstErr = res.Done, res.Lost, res.Dupes, res.HistoryLost, res.FirstErr
	r.P50, r.P99, r.Max = res.Latency.quantile(0.5), res.Latency.quantile(0.99), time.Duration(res.Latency.Max)
	if own0 >= 0 {
		r.OwnReads = metric(t.metricURL, "ssegateway_replay_reads_total", `shared="false"`) - own0
		r.Shared = metric(t.metricURL, "ssegateway_replay_reads_total", `shared="true"`) - shared0
	}
	return r, nil
}

func cmdStorm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	clients := fs.Int("clients", 1000, "clients reconnecting at once")
	events := fs.Int("events", 1000, "events each has missed")
	size := fs.Int("size", 64, "event data bytes")
	topic := fs.String("topic", fmt.Sprintf("storm-%d", time.Now().UnixNano()), "topic (fresh by default), or a pattern prefix/* (events then go to prefix/0 … prefix/N-1, N = --spread)")
	spreadN := fs.Int("spread", 0, "with a pattern --topic, the topics events are spread over (0: 100)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := positive(map[string]float64{"--clients": float64(*clients), "--events": float64(*events), "--size": float64(*size)}); err != nil {
		return err
	}
	spread, err := spreadTopics(*topic, *spreadN)
	if err != nil {
		return err
	}
	r, err := doStorm(ctx, &t, *clients, *events, *size, *topic, spread)
	if err != nil {
		return err
	}
	printStorm(stdout, r)
	return nil
}

func printStorm(w io.Writer, r stormResult) {
	fmt.Fprintf(w, "%d of %d clients got all %d missed events; lost %d, duplicated %d, history-lost events %d %s\n",
		r.Done, r.Clients, r.Events, r.Lost, r.Dupes, r.HistoryLost, r.FirstErr)
	fmt.Fprintf(w, "time to complete: p50 %s p99 %s max %s\n", ms(r.P50), ms(r.P99), ms(r.Max))
	if r.OwnReads >= 0 {
		fmt.Fprintf(w, "history reads: %.0f made, %.0f shared\n", r.OwnReads, r.Shared)
	}
}

// publishResult is a publish throughput run.
type publishResult struct {
	Rate   float64
	N      int64
	Errors int64
	Err    string
}

// publishFor runs conc publishers for dur; each call of one returns the
// errors of the events it published (nil for the ones that went through).
func publishFor(ctx context.Context, conc int, dur time.Duration, one func(c int, i int64) []error) publishResult {
	var n, errs atomic.Int64
	var lastErr atomic.Value
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range conc {
		wg.Go(func() {
			for i := int64(c); time.Now().Before(deadline) && ctx.Err() == nil; i += int64(conc) {
				for _, err := range one(c, i) {
					if err != nil {
						errs.Add(1)
						lastErr.Store(err.Error())
					} else {
						n.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	r := publishResult{N: n.Load(), Errors: errs.Load(), Rate: float64(n.Load()) / time.Since(start).Seconds()}
	if e, ok := lastErr.Load().(string); ok {
		r.Err = e
	}
	return r
}

// doPublishHTTP publishes over POST /publish from conc publishers for dur,
// to topics named by format (one %d) in turn.
func doPublishHTTP(ctx context.Context, t *target, conc int, dur time.Duration, size, topics int, format string) publishResult {
	pubs := make([]*publisher, topics)
	shared := newPublisher(t, "", size, conc)
	for i := range pubs {
		pubs[i] = &publisher{t: t, hc: shared.hc, topic: fmt.Sprintf(format, i), size: size}
	}
	return publishFor(ctx, conc, dur, func(_ int, i int64) []error {
		_, err := pubs[i%int64(topics)].send(ctx, i)
		return []error{err}
	})
}

// doPublishRedis publishes with the Go publisher, conc pipelines of batch
// events, for dur, to topics named by format (one %d) in turn.
func doPublishRedis(ctx context.Context, redisURL string, conc int, dur time.Duration, size, topics, batch int, format string) (publishResult, error) {
	rdb, topo, err := pubsub.RedisConfig{URL: redisURL}.Client()
	if err != nil {
		return publishResult{}, err
	}
	defer rdb.Close()
	keys, _ := contract.NewKeys(contract.DefaultPrefix)
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys, Sharded: topo == pubsub.Cluster})
	p := &publisher{size: size}
	msgs := make([][]pubsub.Message, conc)
	for c := range msgs {
		msgs[c] = make([]pubsub.Message, batch)
	}
	return publishFor(ctx, conc, dur, func(c int, i int64) []error {
		for k := range msgs[c] {
			msgs[c][k] = pubsub.Message{Topic: fmt.Sprintf(format, (int(i)*batch+k)%topics), Data: p.data(i)}
		}
		_, errs := pub.PublishMany(ctx, msgs[c])
		return errs
	}), nil
}

func cmdPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	redisURL := fs.String("redis-url", "", "publish straight to this Redis with the Go publisher (pipelined) instead of over HTTP")
	conc := fs.Int("concurrency", 64, "concurrent publishers")
	dur := fs.Duration("duration", 5*time.Second, "how long")
	size := fs.Int("size", 64, "event data bytes")
	topics := fs.Int("topics", 100, "topics published to, in turn")
	batch := fs.Int("batch", 64, "events per pipeline (Go publisher)")
	format := fs.String("topic-format", "pub-%d", "topic names, %d numbering them (pub/%d: topics under one feed, which costs a second stream write)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := positive(map[string]float64{"--concurrency": float64(*conc), "--duration": dur.Seconds(), "--size": float64(*size),
		"--topics": float64(*topics), "--batch": float64(*batch)}); err != nil {
		return err
	}
	if err := checkTopicFormat(*format); err != nil {
		return err
	}
	var r publishResult
	if *redisURL != "" {
		var err error
		if r, err = doPublishRedis(ctx, *redisURL, *conc, *dur, *size, *topics, *batch, *format); err != nil {
			return err
		}
	} else {
		r = doPublishHTTP(ctx, &t, *conc, *dur, *size, *topics, *format)
	}
	fmt.Fprintf(stdout, "%d events in %s: %.0f/s; %d errors %s\n", r.N, *dur, r.Rate, r.Errors, r.Err)
	if r.N == 0 {
		return errors.New("nothing was published")
	}
	return nil
}

// isPattern reports whether a subscription is a pattern (its events then
// carry their topic in the data).
func isPattern(topic string) bool { return strings.Contains(topic, "*") }

// defaultSpread is how many topics a pattern's events go to by default.
const defaultSpread = 100

// spreadTopics returns the topics a pattern subscription's events are
// published to: for "prefix/*", prefix/0 … prefix/n-1 (n = 0: 100). A plain
// topic's events go to the topic itself (nil).
func spreadTopics(topic string, n int) ([]string, error) {
	if !isPattern(topic) {
		if n > 1 {
			return nil, fmt.Errorf("--spread %d needs a pattern --topic (such as bench/*); %q is a topic", n, topic)
		}
		return nil, nil
	}
	prefix, ok := strings.CutSuffix(topic, "/*")
	if !ok || prefix == "" || strings.Contains(prefix, "*") {
		return nil, fmt.Errorf("a pattern --topic must be prefix/* with no other wildcard (its events go to prefix/0 … prefix/N-1); got %q", topic)
	}
	if n < 0 {
		return nil, fmt.Errorf("--spread must be positive, got %d", n)
	}
	if n == 0 {
		n = defaultSpread
	}
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "/" + strconv.Itoa(i)
	}
	return out, nil
}

// checkTopicFormat checks a --topic-format: one %d, which numbers topics.
func checkTopicFormat(f string) error {
	a, b := fmt.Sprintf(f, 1), fmt.Sprintf(f, 2)
	if strings.Count(f, "%") != 1 || !strings.Contains(f, "%d") || a == b || strings.Contains(a, "%!") {
		return fmt.Errorf("--topic-format %q: want a topic name with one %%d, such as pub-%%d or pub/%%d", f)
	}
	return nil
}

// positive returns an error naming the first flag whose value is not above
// zero.
func positive(flags map[string]float64) error {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !(flags[n] > 0) {
			return fmt.Errorf("%s must be positive, got %v", n, flags[n])
		}
	}
	return nil
}
