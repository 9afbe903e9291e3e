package gateway

import (
	"testing"

	"github.com/ssegateway/ssegateway/contract"
)

func BenchmarkCursor(b *testing.B) {
	tags := cursorTags([]string{"orders/42", "news/world", "user:42"})
	pos := []contract.ID{{Ms: 1795478727864, Seq: 1}, {Ms: 1795478727001}, {Ms: 1795478720000, Seq: 12}}
	cur := string(appendCursor(nil, tags, pos))
	b.Run("encode-3-topics", func(b *testing.B) {
		buf := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			buf = appendCursor(buf[:0], tags, pos)
		}
	})
	b.Run("decode-3-topics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = decodeCursor(cur, tags)
		}
	})
}
