package fanout

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

// Subscription is what the hub needs of the node's pub/sub connection
// (pubsub.Subscriber): it asks for a source's events and lets them go.
// Neither call may block on Redis.
type Subscription interface {
	Subscribe(sources ...string)
	Unsubscribe(sources ...string)
}

// Config configures a [Hub]. Zero fields take the defaults noted.
type Config struct {
	// Grace keeps a source subscribed this long after its last stream left,
	// so a quick reconnect finds it in place; 5s.
	Grace time.Duration
	// Check is how often the node compares every source it serves with the
	// newest id on record, to catch a pub/sub feed that went silent; 0
	// disables the check.
	Check time.Duration
	// Batch is how many entries one history read asks for; 512.
	Batch    int64
	Logger   zerolog.Logger
	Counters Counters
	// NewIndex makes the index of a feed the node starts following; nil,
	// or a nil result, gives a feed the pattern index and a topic none.
	NewIndex func(source string) Index
}

// Hub is the node's fan-out. Build it with New, run it with Run, and give
// it to the subscriber as its pubsub.Handler. Its methods are safe for
// concurrent use.
type Hub struct {
	sub  Subscription
	hist replay.Store
	log  zerolog.Logger
	c    Counters
	cfg  Config

	mu      sync.RWMutex
	sources map[string]*Source

	syncMu   sync.Mutex
	syncQ    []*Source
	syncKick chan struct{}
}

var _ pubsub.Handler = (*Hub)(nil)

// New returns a hub that subscribes through sub and reads history from
// hist. It starts nothing; call Run.
func New(cfg Config, sub Subscription, hist replay.Store) *Hub {
	if cfg.Grace == 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 512
	}
	cfg.Counters.fill()
	return &Hub{
		sub: sub, hist: hist, log: cfg.Logger, c: cfg.Counters, cfg: cfg,
		sources:  make(map[string]*Source),
		syncKick: make(chan struct{}, 1),
	}
}

type phase uint8

const (
	phaseSubscribing phase = iota // waiting for Redis to confirm the subscription
	phaseSyncing                  // confirmed; position being read or a gap repaired
	phaseLive                     // envelopes that follow the last event are delivered as they come
)

// maxPending bounds the envelopes a syncing source holds; past it they are
// dropped and read from the history instead.
const maxPending = 4096

// Source is a topic or a feed as the node follows it: its streams and its
// sequencer.
type Source struct {
	name  string
	ready chan struct{} // closed once the source's position is known

	mu        sync.Mutex
	members   map[*Outbox]*Member
	forms     []formCount // the forms members write in, each with how many do
	index     Index       // a feed's: which streams an event goes to; nil for a topic
	phase     phase
	known     bool        // last is valid
	last      contract.ID // newest event delivered to members
	pending   []*Event    // envelopes received while syncing, in arrival order
	overflow  bool        // pending dropped some: read the history
	resync    bool        // the history must be read after last
	restart   bool        // ids started over below last: read the history from its beginning
	queued    bool        // in the sync queue
	removed   bool        // no longer in Hub.sources
	idleSince time.Time   // when members became empty; zero while it has any
	behind    contract.ID // newest id on record at the last position check, if not yet delivered
}

// Name returns the source's name.
func (s *Source) Name() string { return s.name }

// Ready is closed once the source's position is known.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Position returns the newest event delivered on the source: a stream that
// joined before calling it gets every event after it through its outbox.
// Call it once Ready is closed.
func (s *Source) Position() contract.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// formCount is a form the source's streams write in, and how many do.
type formCount struct {
	form Form
	n    int
}

// countForm adds d streams writing in form. s.mu must be held.
func (s *Source) countForm(form Form, d int) {
	for i := range s.forms {
		if s.forms[i].form == form {
			if s.forms[i].n += d; s.forms[i].n == 0 {
				s.forms = append(s.forms[:i], s.forms[i+1:]...)
			}
			return
		}
	}
	s.forms = append(s.forms, formCount{form, d})
}

// Member is one stream's place in a source.
type Member struct {
	o    *Outbox
	idx  int         // the want's index in o
	seen contract.ID // the last event handed over (an index may visit a member twice)
}

// Want returns what the member's stream wants of the source.
func (m *Member) Want() Want { return m.o.wants[m.idx] }

// Index picks the streams a feed's events go to. Each feed has one, made
// by Config.NewIndex (the pattern index of [NewPatternIndex] by default).
// Its methods are called with the source's lock held, one at a time; they
// must not block.
type Index interface {
	// Add registers a stream; m.Want().Filter says what it wants.
	Add(m *Member)
	// Remove unregisters a stream Add registered.
	Remove(m *Member)
	// Match calls visit for the streams that want ev. It may visit a stream
	// more than once; each gets the event once.
	Match(ev *Event, visit func(*Member))
}

// Join adds o to its wants' sources, subscribing the node to sources it did
// not have, and returns them in o's order. From now on every event
// delivered on them that o wants is queued in o.
func (h *Hub) Join(o *Outbox) []*Source {
	ss := make([]*Source, len(o.wants))
	var fresh []string
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, w := range o.wants {
		s := h.sources[w.Source]
		if s == nil {
			s = &Source{name: w.Source, ready: make(chan struct{}), members: make(map[*Outbox]*Member)}
			if h.cfg.NewIndex != nil {
				s.index = h.cfg.NewIndex(w.Source)
			}
			if s.index == nil && contract.IsFeed(w.Source) {
				s.index = NewPatternIndex()
			}
			h.sources[w.Source] = s
			fresh = append(fresh, w.Source)
		}
		m := &Member{o: o, idx: i}
		s.mu.Lock()
		if s.members[o] == nil {
			s.countForm(o.form, 1)
		}
		s.members[o] = m
		if s.index != nil {
			s.index.Add(m)
		}
		s.idleSince = time.Time{}
		s.mu.Unlock()
		ss[i] = s
	}
	if len(fresh) > 0 {
		h.c.Sources.Add(float64(len(fresh)))
		h.sub.Subscribe(fresh...)
	}
	return ss
}

// Leave removes o from the sources Join returned. Sources left without
// streams are unsubscribed by the janitor after the grace period, so a quick
// reconnect keeps the subscription.
func (h *Hub) Leave(o *Outbox, ss []*Source) {
	now := time.Now()
	for _, s := range ss {
		s.mu.Lock()
		if m := s.members[o]; m != nil {
			if s.index != nil {
				s.index.Remove(m)
			}
			s.countForm(o.form, -1)
		}
		delete(s.members, o)
		if len(s.members) == 0 {
			s.idleSince = now
		}
		s.mu.Unlock()
	}
}

func (h *Hub) lookup(name string) *Source {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sources[name]
}

// HandleEvent implements pubsub.Handler.
func (h *Hub) HandleEvent(name string, env contract.Envelope) {
	h.c.Received.Inc()
	s := h.lookup(name)
	if s == nil {
		return
	}
	id, err1 := contract.ParseID(env.ID)
	prev, err2 := contract.ParseID(env.Prev)
	if err1 != nil || err2 != nil {
		h.log.Error().Str("source", name).Str("id", env.ID).Str("prev", env.Prev).Msg("dropping an envelope with malformed ids")
		return
	}
	topic := env.Topic
	if topic == "" {
		topic = name
	}
	ev := &Event{ID: id, Prev: prev, Topic: topic, Type: env.Type, Data: env.Data}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseSubscribing:
		// Not confirmed yet; the position read after confirmation covers it.
	case phaseSyncing:
		s.addPending(ev)
	case phaseLive:
		switch {
		case !s.last.Less(id):
			// Already delivered (read from the history during a repair).
		case prev == s.last:
			h.deliver(s, ev)
		default:
			// Something between s.last and this event did not arrive.
			s.phase = phaseSyncing
			s.addPending(ev)
			h.queueSync(s)
		}
	}
}

// HandleSubscribed implements pubsub.Handler.
func (h *Hub) HandleSubscribed(name string) {
	s := h.lookup(name)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseSubscribing:
		s.phase = phaseSyncing
	case phaseSyncing:
		if s.known {
			s.resync = true
		}
	case phaseLive:
		// A resubscription: events published while unsubscribed are only in
		// the history.
		s.phase = phaseSyncing
		s.resync = true
	}
	h.queueSync(s)
}

// HandleDisconnected implements pubsub.Handler. Nothing to do per source:
// each source's next HandleSubscribed triggers its repair.
func (h *Hub) HandleDisconnected(error) { h.c.Disconnects.Inc() }

func (s *Source) addPending(ev *Event) {
	if len(s.pending) >= maxPending {
		clear(s.pending)
		s.pending = s.pending[:0]
		s.overflow = true
		return
	}
	s.pending = append(s.pending, ev)
}

// deliver encodes ev once per form its streams write in and hands it to
// every stream that wants it: all of a topic's, and those a feed's index
// picks. Every form is built before any stream is handed the frame, which
// is immutable from then on: streams read it without the source's lock.
// s.mu must be held.
func (h *Hub) deliver(s *Source, ev *Event) {
	f := newFrame(ev)
	for _, fc := range s.forms {
		f.build(fc.form)
	}
	if s.index == nil {
		for _, m := range s.members {
			m.hand(f)
		}
	} else {
		s.index.Match(ev, func(m *Member) {
			if m.seen != ev.ID {
				m.seen = ev.ID
				m.hand(f)
			}
		})
	}
	s.last = ev.ID
}

// hand queues f, built in every form of the source, for the member's
// stream. The source's lock must be held.
func (m *Member) hand(f *Frame) { m.o.enqueue(f, m.idx) }

// deliverLost tells every stream that the events after s.last up to newest
// are gone. s.mu must be held.
func (h *Hub) deliverLost(s *Source, newest contract.ID) {
	f := &Frame{ID: newest, Prev: s.last, Lost: true}
	for _, m := range s.members {
		m.o.enqueue(f, m.idx)
	}
	s.last = newest
	h.c.HistoryLost.Inc()
}

// Run owns the hub's goroutines — the sync worker, the janitor and the
// position checker — and returns once all have stopped, after ctx ends.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { h.syncLoop(ctx) })
	wg.Go(func() { h.janitor(ctx) })
	if h.cfg.Check > 0 {
		wg.Go(func() { h.checker(ctx) })
	}
	wg.Wait()
}

// janitor unsubscribes sources that have had no streams for the grace period.
func (h *Hub) janitor(ctx context.Context) {
	tick := time.NewTicker(max(h.cfg.Grace/2, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.sweep(now)
		}
	}
}

func (h *Hub) sweep(now time.Time) {
	var idle []string
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, s := range h.sources {
		s.mu.Lock()
		if len(s.members) == 0 && !s.idleSince.IsZero() && now.Sub(s.idleSince) >= h.cfg.Grace {
			s.removed = true
			delete(h.sources, name)
			idle = append(idle, name)
		}
		s.mu.Unlock()
	}
	if len(idle) > 0 {
		h.c.Sources.Sub(float64(len(idle)))
		// Under h.mu, so a source re-created right after is subscribed after
		// this unsubscription, never before it.
		h.sub.Unsubscribe(idle...)
	}
}

// AllLive reports whether every source the node follows is live: a test's
// way of knowing that a stream's subscriptions are in place.
func (h *Hub) AllLive() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.sources {
		s.mu.Lock()
		live := s.phase == phaseLive
		s.mu.Unlock()
		if !live {
			return false
		}
	}
	return true
}
