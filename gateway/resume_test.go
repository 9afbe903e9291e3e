package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/memhistory"
	"github.com/ssegateway/ssegateway/replay"
)

// slowHistory counts After calls and makes each take a while, so that
// concurrent identical reads overlap.
type slowHistory struct {
	*memhistory.Store
	mu    sync.Mutex
	calls int
}

func (s *slowHistory) After(ctx context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	return s.Store.After(ctx, topic, after, until, count)
}

func TestReadGroup_after_sharesIdenticalReads(t *testing.T) {
	hist := &slowHistory{Store: memhistory.New()}
	hist.Add("a", 1, 10)
	g := newReadGroup(hist, 4, newMetrics("test"))
	const readers = 100
	var wg sync.WaitGroup
	results := make([][]replay.Entry, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Go(func() {
			results[i], errs[i] = g.after(context.Background(), "a", contract.ID{Ms: 3}, contract.ID{Ms: 10}, 100)
		})
	}
	wg.Wait()
	g.wg.Wait()
	for i := range readers {
		if errs[i] != nil || len(results[i]) != 7 || results[i][0].ID != (contract.ID{Ms: 4}) {
			t.Fatalf("reader %d: %d entries, %v", i, len(results[i]), errs[i])
		}
	}
	if hist.calls > readers/10 {
		t.Fatalf("%d reads for %d identical concurrent requests", hist.calls, readers)
	}
	t.Logf("%d Redis reads served %d reconnecting streams", hist.calls, readers)
	// A reader that gives up does not fail the others.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.after(ctx, "a", contract.ID{}, contract.ID{Ms: 10}, 100); err == nil {
		t.Fatal("a cancelled reader got a result")
	}
	g.wg.Wait()
}
