package fanout

// Counter is what the hub needs of a counter; a prometheus.Counter is one.
type Counter interface {
	Inc()
	Add(float64)
}

// Gauge is what the hub needs of a gauge; a prometheus.Gauge is one.
type Gauge interface {
	Add(float64)
	Sub(float64)
}

// Counters are the hub's measurements. Nil fields count nowhere.
type Counters struct {
	Received    Counter // envelopes received from pub/sub
	Repaired    Counter // events pub/sub did not deliver, read from the history instead
	HistoryLost Counter // losses of history found at the node (each reaches every stream of the source)
	Stalls      Counter // sources the position check found pub/sub had stopped delivering
	Disconnects Counter // losses of the node's pub/sub connection
	Sources     Gauge   // sources the node holds a subscription for
}

type nopMetric struct{}

func (nopMetric) Inc()        {}
func (nopMetric) Add(float64) {}
func (nopMetric) Sub(float64) {}

func (c *Counters) fill() {
	for _, p := range []*Counter{&c.Received, &c.Repaired, &c.HistoryLost, &c.Stalls, &c.Disconnects} {
		if *p == nil {
			*p = nopMetric{}
		}
	}
	if c.Sources == nil {
		c.Sources = nopMetric{}
	}
}
