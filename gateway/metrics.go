package gateway

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus metrics, on a registry of their own (no
// global registry). Labels are bounded: never a topic or a client.
type metrics struct {
	reg              *prometheus.Registry
	open             prometheus.Gauge
	opened           prometheus.Counter
	closed           *prometheus.CounterVec
	topics           prometheus.Gauge
	received         prometheus.Counter
	delivered        prometheus.Counter
	bytes            prometheus.Counter
	writes           prometheus.Counter
	replayed         prometheus.Counter
	repaired         prometheus.Counter
	stalls           prometheus.Counter
	replayReads      *prometheus.CounterVec
	historyLost      prometheus.Counter
	pubsubReconnects prometheus.Counter
	published        *prometheus.CounterVec
	mercurePublished *prometheus.CounterVec
	bridgedV1        prometheus.Counter
	authRefused      *prometheus.CounterVec
	tokensIgnored    *prometheus.CounterVec
	limited          *prometheus.CounterVec
	heartbeats       prometheus.Counter
	replays          *prometheus.CounterVec
	replayDuration   prometheus.Histogram
	publishDuration  prometheus.Histogram
	deliveryLatency  prometheus.Histogram
}

// newMetrics registers the node's metrics; version labels build_info.
func newMetrics(version string) *metrics {
	const ns = "ssegateway"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections_open",
			Help: "SSE streams open on this node."}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_opened_total",
			Help: "SSE streams accepted."}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_closed_total",
			Help: "SSE streams ended, by reason."}, []string{"reason"}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "topics_subscribed",
			Help: "Topics this node holds a Redis subscription for."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_received_total",
			Help: "Envelopes received from Redis pub/sub."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_delivered_total",
			Help: "Events written to streams, live and replayed."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "stream_bytes_written_total",
			Help: "Bytes written to streams."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "stream_writes_total",
			Help: "Writes (system calls) to streams; events_delivered_total over this is how many events each write carried."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_replayed_total",
			Help: "Events written to reconnecting streams from the history."}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_repaired_total",
			Help: "Events pub/sub did not deliver that the node read from the stream instead."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "pubsub_stalls_total",
			Help: "Times the position check found a topic that pub/sub had stopped delivering."}),
		replayReads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "replay_reads_total",
			Help: "History reads for reconnecting streams; shared=\"true\" ones were served by a read another stream made."},
			[]string{"shared"}),
		historyLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "history_lost_total",
			Help: "history-lost events sent: history after a client's or the node's position was gone."}),
		pubsubReconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "pubsub_disconnects_total",
			Help: "Times the node's Redis pub/sub connection was lost."}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "publish_total",
			Help: "POST /publish requests, by result."}, []string{"result"}),
		mercurePublished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "mercure_publish_total",
			Help: "POST /.well-known/mercure requests, by result."}, []string{"result"}),
		bridgedV1: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "contract_v1_events_bridged_total",
			Help: "Events of topics with / published with the version 1 contract that this node republished through version 2."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "limit_refusals_total",
			Help: "Requests refused by a configured limit, by limit."}, []string{"limit"}),
		authRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "auth_refused_total",
			Help: "Requests refused for want of a valid token (401) or of a grant (403)."}, []string{"status"}),
		tokensIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "auth_ignored_tokens_total",
			Help: "Streams of public topics only served as anonymous although their cookie or query token was invalid (a stale cookie), by where the token was."},
			[]string{"source"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "heartbeats_total",
			Help: "Heartbeat comments written to idle streams."}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "replays_total",
			Help: "Streams opened with a Last-Event-ID, by how the resume went: replayed (missed events sent), " +
				"up_to_date (nothing missed), history_lost (some history was gone), error (Redis failed)."},
			[]string{"result"}),
		replayDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "replay_duration_seconds",
			Help:    "Time from a resuming stream's topics being ready to its replay written (history reads and writes).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "publish_duration_seconds",
			Help:    "Time POST /publish spent in Redis for accepted requests.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "delivery_latency_seconds",
			Help: "Publish to written on this node, for the oldest live event of each write: the event id's time " +
				"(Redis's clock at publish) to the write (this node's clock), so clock skew between them shows here.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	m.reg.MustRegister(m.heartbeats, m.replays, m.replayDuration, m.publishDuration, m.deliveryLatency, buildInfo(version))
	m.reg.MustRegister(m.open, m.opened, m.closed, m.topics, m.received, m.delivered, m.bytes, m.writes,
		m.replayed, m.repaired, m.stalls, m.replayReads, m.historyLost, m.pubsubReconnects, m.published, m.mercurePublished, m.bridgedV1,
		m.authRefused, m.tokensIgnored, m.limited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for r := closeClient; r <= closeLimit; r++ {
		m.closed.WithLabelValues(r.String())
	}
	for _, v := range []string{"true", "false"} {
		m.replayReads.WithLabelValues(v)
	}
	for _, v := range []string{"401", "403"} {
		m.authRefused.WithLabelValues(v)
	}
	for _, v := range []string{sourceCookie, sourceQuery} {
		m.tokensIgnored.WithLabelValues(v)
	}
	for _, r := range []string{replayReplayed, replayUpToDate, replayLost, replayError} {
		m.replays.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "invalid", "error", "rate_limited"} {
		m.published.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "invalid", "unauthorized", "forbidden", "error"} {
		m.mercurePublished.WithLabelValues(r)
	}
	for _, l := range []string{limitTopics, limitTopicLength, limitPublishBody, limitEventSize, limitConnections,
		limitStreamsPerClient, limitPublishRate, limitBodyTimeout} {
		m.limited.WithLabelValues(l)
	}
	return m
}

// The limits counted in limit_refusals_total.
const (
	limitTopics      = "topics_per_stream"
	limitTopicLength = "topic_length"
	limitPublishBody = "publish_body"
	limitEventSize   = "event_size"
	limitConnections = "connections"
	limitPublishRate = "publish_rate"
	// limitStreamsPerClient is MaxStreamsPerClient.
	limitStreamsPerClient = "streams_per_client"
	// limitBodyTimeout is BodyTimeout and MinBodyRate.
	limitBodyTimeout = "body_timeout"
)

// The results counted in replays_total.
const (
	replayReplayed = "replayed"
	replayUpToDate = "up_to_date"
	replayLost     = "history_lost"
	replayError    = "error"
)

// buildInfo is the constant 1 labelled with the node's version and the Go
// version it was built with.
func buildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "ssegateway", Name: "build_info",
		Help:        "The gateway's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	g.Set(1)
	return g
}

// registerState adds the gauges read from the server's state at scrape time.
func (s *Server) registerState() {
	const ns = "ssegateway"
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	s.m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "draining",
			Help: "1 while the node is shutting down and closing its streams."},
			func() float64 { return b2f(s.draining.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pubsub_connected",
			Help: "1 while the node's Redis pub/sub connection is up."},
			func() float64 { return b2f(s.sub.Healthy()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queued_bytes",
			Help: "Bytes queued for streams and not yet written, summed over the node's streams."},
			func() float64 { return float64(s.queuedBytes()) }),
	)
}
