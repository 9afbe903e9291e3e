package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// closeReason says why a stream ended; it is a metric label and a log field.
type closeReason uint8

const (
	closeClient       closeReason = iota // the client went away
	closeSlow                            // its queue overflowed: evicted
	closeShutdown                        // the node is shutting down
	closeWrite                           // a write failed or timed out
	closeRedis                           // Redis failed during the stream's replay
	closeMaxAge                          // the stream reached the maximum connection age
	closeTokenExpired                    // the stream's token expired
	closeLimit                           // the node was at its connection limit
)

func (r closeReason) String() string {
	switch r {
	case closeClient:
		return "client"
	case closeSlow:
		return "slow"
	case closeShutdown:
		return "shutdown"
	case closeWrite:
		return "write_error"
	case closeRedis:
		return "redis_error"
	case closeMaxAge:
		return "max_age"
	case closeTokenExpired:
		return "token_expired"
	case closeLimit:
		return "limit"
	}
	return "unknown"
}

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
	replayed         prometheus.Counter
	repaired         prometheus.Counter
	stalls           prometheus.Counter
	replayReads      *prometheus.CounterVec
	historyLost      prometheus.Counter
	pubsubReconnects prometheus.Counter
	published        *prometheus.CounterVec
	authRefused      *prometheus.CounterVec
	limited          *prometheus.CounterVec
}

func newMetrics() *metrics {
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
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "limit_refusals_total",
			Help: "Requests refused by a configured limit, by limit."}, []string{"limit"}),
		authRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "auth_refused_total",
			Help: "Requests refused for want of a valid token (401) or of a grant (403)."}, []string{"status"}),
	}
	m.reg.MustRegister(m.open, m.opened, m.closed, m.topics, m.received, m.delivered, m.bytes,
		m.replayed, m.repaired, m.stalls, m.replayReads, m.historyLost, m.pubsubReconnects, m.published, m.authRefused, m.limited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for r := closeClient; r <= closeLimit; r++ {
		m.closed.WithLabelValues(r.String())
	}
	for _, l := range []string{limitTopics, limitTopicLength, limitPublishBody, limitEventSize, limitConnections, limitPublishRate} {
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
)
