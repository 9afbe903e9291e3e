package docstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// The repository's root, from this package's directory.
const root = "../.."

// binDir holds the gateway binary the examples run, built once.
var (
	binDir   string
	buildErr error
	build    sync.Once
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docstest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// goleak.VerifyTestMain would exit before the cleanup below.
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// gatewayBin builds ./cmd/gateway into binDir once and returns its path; the
// examples find it on PATH as gateway.
func gatewayBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(binDir, "gateway")
	build.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gateway: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// userPages are the pages whose examples run and whose flags and variables
// are checked: the front page and docs/.
func userPages(t testing.TB) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md")
	}
	pages := []string{"README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		pages = append(pages, filepath.ToSlash(rel))
	}
	sort.Strings(pages[1:])
	return pages
}

// linkedPages are every Markdown file whose links are checked.
func linkedPages(t testing.TB) []string {
	return append(userPages(t), "clients/js/README.md", "helm/README.md", "BENCHMARKS.md", "RELIABILITY.md")
}

func mustRead(t testing.TB, rel string) *page {
	t.Helper()
	p, err := readPage(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
