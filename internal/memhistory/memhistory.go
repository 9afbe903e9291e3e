// Package memhistory is an in-memory history for tests: a replay.Store
// that keeps the Redis one's continuity rules, so the fan-out and the
// gateway can be tested without Redis.
package memhistory

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/replay"
)

var _ replay.Store = (*Store)(nil)

// Store is an in-memory replay.Store with the same continuity rules as
// the Redis one. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	entries map[string][]replay.Entry
	last    map[string]contract.ID
}

// New returns an empty Store.
func New() *Store {
	return &Store{entries: map[string][]replay.Entry{}, last: map[string]contract.ID{}}
}

// Add appends events with ids ms..ms+n-1 (seq 0) to a topic's history and
// returns their envelopes.
func (m *Store) Add(topic string, ms, n int) []contract.Envelope {
	return m.AddTo(topic, "", ms, n)
}

// AddTo appends events with ids ms..ms+n-1 (seq 0) to a source's history
// and returns their envelopes. A topic given with a feed is the events'
// topic, as in a feed's entries and envelopes.
func (m *Store) AddTo(source, topic string, ms, n int) []contract.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	var envs []contract.Envelope
	for i := 0; i < n; i++ {
		id := contract.ID{Ms: uint64(ms + i)}
		e := replay.Entry{ID: id, Prev: m.last[source], Topic: topic, Data: fmt.Sprint(ms + i)}
		m.entries[source] = append(m.entries[source], e)
		m.last[source] = id
		envs = append(envs, contract.Envelope{ID: id.String(), Prev: e.Prev.String(), Topic: topic, Data: e.Data})
	}
	return envs
}

// Lookup implements replay.Store: the store keeps no lookup records.
func (m *Store) Lookup(context.Context, string, string) (contract.ID, bool, error) {
	return contract.ID{}, false, nil
}

// Reset forgets everything, as a Redis that lost its data.
func (m *Store) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.entries)
	clear(m.last)
}

// Trim keeps only the newest keep entries.
func (m *Store) Trim(topic string, keep int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.entries[topic]
	m.entries[topic] = slices.Clone(es[max(0, len(es)-keep):])
}

func (m *Store) Last(_ context.Context, topic string) (contract.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[topic], nil
}

func (m *Store) After(_ context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []replay.Entry
	for _, e := range m.entries[topic] {
		if after.Less(e.ID) && (until.IsZero() || !until.Less(e.ID)) && int64(len(out)) < count {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		if !until.IsZero() && after.Less(until) {
			return nil, replay.ErrHistoryLost
		}
		return nil, nil
	}
	if out[0].Prev != after {
		return out, replay.ErrHistoryLost
	}
	return out, nil
}

func (m *Store) Lasts(_ context.Context, topics []string) ([]contract.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]contract.ID, len(topics))
	for i, t := range topics {
		out[i] = m.last[t]
	}
	return out, nil
}

func (m *Store) Contains(_ context.Context, topic string, id contract.ID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries[topic] {
		if e.ID == id {
			return true, nil
		}
	}
	return false, nil
}
