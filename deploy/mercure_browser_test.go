package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testutil"
)

// conformanceCase is one case of Mercure's conformance suite, as
// chaos/mercure-conformance.mjs runs it.
type conformanceCase struct {
	Name           string   `json:"name"`
	Topics         []string `json:"topics"`    // the update's
	Selectors      []string `json:"selectors"` // the EventSource's
	ID             string   `json:"id"`        // chosen by the publisher
	Data           string   `json:"data"`
	Private        bool     `json:"private"`
	MustBeReceived bool     `json:"mustBeReceived"`
	Control        string   `json:"control"` // a topic the selectors match
	Cookie         string   `json:"cookie,omitempty"`
}

// posted is a publish's answer, as fetch saw it.
type posted struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}

// caseResult is what the page reported for a case.
type caseResult struct {
	Kind, Name, Message string
	Publish, Control    posted
	Seen                []struct{ Type, ID, Data string }
}

// TestBrowser_mercureConformance runs the cases of Mercure's conformance
// suite (raw string, multiple topics, multiple topic selectors, URI, URI
// template, three non-matching, three private) in headless Chromium against
// a gateway node on a real Redis, with publisher-chosen ids: the page opens
// an EventSource on /.well-known/mercure and publishes with fetch as soon
// as it is open. A case that must be received arrives once, with the id and
// data published; the others never arrive — exactly: the page publishes a
// control update after each and waits for it, and the hub delivers in order
// (see the script). Plus one private case received through the
// mercureAuthorization cookie of a subscriber whose token allows it.
func TestBrowser_mercureConformance(t *testing.T) {
	const pubKey, subKey = "browser-mercure-publisher-key-0123456789", "browser-mercure-subscriber-key-012345678"
	bin := buildGateway(t)
	srv := redistest.Start(t)
	port := redistest.FreePort(t)
	cmd := exec.Command(bin, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--redis-url", srv.URL(), "--mercure-anonymous",
		"--log-format", "json", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+pubKey, "MERCURE_SUBSCRIBER_JWT_KEY="+subKey)
	logf, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); logf.Close() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/readyz")

	random := func() string {
		b := make([]byte, 20)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	r := []string{random(), random(), random(), random(), random()}
	foo := "https://example.net/foo/"
	cases := []conformanceCase{
		{Name: "raw string", Topics: []string{r[0]}, Selectors: []string{r[0]}, MustBeReceived: true, Control: r[0]},
		{Name: "multiple topics", Topics: []string{random(), r[1]}, Selectors: []string{r[1]}, MustBeReceived: true, Control: r[1]},
		{Name: "multiple topic selectors", Topics: []string{r[2]}, Selectors: []string{"foo", r[2]}, MustBeReceived: true, Control: "foo"},
		{Name: "URI", Topics: []string{foo + r[3]}, Selectors: []string{foo + r[3]}, MustBeReceived: true, Control: foo + r[3]},
		{Name: "URI template", Topics: []string{foo + r[4]}, Selectors: []string{foo + "{random}"}, MustBeReceived: true, Control: foo + "control"},
		{Name: "nonmatching raw string", Topics: []string{"will-not-match}"}, Selectors: []string{"another-name"}, Control: "another-name"},
		{Name: "nonmatching URI", Topics: []string{foo + "will-not-match}"}, Selectors: []string{foo + "another-name"}, Control: foo + "another-name"},
		{Name: "nonmatching URI template", Topics: []string{foo + "will-not-match}"}, Selectors: []string{"https://example.net/bar/{var}"},
			Control: "https://example.net/bar/control"},
		{Name: "private raw string", Topics: []string{r[0]}, Selectors: []string{r[0]}, Private: true, Control: r[0]},
		{Name: "private URI", Topics: []string{foo + r[3]}, Selectors: []string{foo + r[3]}, Private: true, Control: foo + r[3]},
		{Name: "private URI template", Topics: []string{foo + r[4]}, Selectors: []string{foo + "{random}"}, Private: true, Control: foo + "control"},
		{Name: "private URI template, allowed by the cookie", Topics: []string{foo + r[4]}, Selectors: []string{foo + "{random}"}, Private: true,
			MustBeReceived: true, Control: foo + "control", Cookie: testutil.MercureToken(t, subKey, map[string]any{"subscribe": []string{foo + "{id}"}}, time.Time{})},
	}
	for i := range cases {
		c := &cases[i]
		topics, _ := json.Marshal(c.Topics)
		c.ID = "id-" + string(topics) // as the suite names them
		if c.Cookie != "" {
			c.ID += "-cookie"
		}
		c.Data = "data for\n\n        " + c.Name
	}
	input, _ := json.Marshal(map[string]any{"token": testutil.MercureToken(t, pubKey, map[string]any{"publish": []string{"*"}}, time.Time{}), "cases": cases})

	// Chromium starts slowly on a loaded machine: the run as a whole is
	// bounded, generously; the script has no timers of its own but the
	// short guard after each control update.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "mercure-conformance.mjs", base)
	node.Dir = "chaos"
	node.Stdin = bytes.NewReader(input)
	node.Cancel = func() error { return node.Process.Signal(syscall.SIGTERM) }
	node.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	node.Stderr = &stderr
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatalf("start mercure-conformance.mjs (run `make test` to install node packages): %v", err)
	}
	results := map[string]caseResult{}
	var problems []string
	done := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var res caseResult
		switch err := json.Unmarshal(sc.Bytes(), &res); {
		case err != nil:
			problems = append(problems, "printed "+sc.Text())
		case res.Kind == "case":
			results[res.Name] = res
		case res.Kind == "done":
			done = true
		default:
			problems = append(problems, sc.Text())
		}
	}
	werr := node.Wait()
	if !done || werr != nil || len(problems) > 0 {
		t.Fatalf("the browser run did not complete (%v): %v\nstderr:\n%s", werr, problems, stderr.String())
	}

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			res, ok := results[c.Name]
			if !ok {
				t.Fatal("no result")
			}
			// The suite's checks of the publish: 200, text/plain, the id.
			for what, p := range map[string]posted{"publish": res.Publish, "control": res.Control} {
				if p.Status != http.StatusOK || !strings.HasPrefix(p.ContentType, "text/plain") {
					t.Errorf("%s: %d %q %q", what, p.Status, p.ContentType, p.Body)
				}
			}
			if res.Publish.Body != c.ID {
				t.Errorf("publish answered id %q, want %q", res.Publish.Body, c.ID)
			}
			var got []string
			for _, ev := range res.Seen {
				got = append(got, fmt.Sprintf("%s %s %q", ev.Type, ev.ID, ev.Data))
			}
			want := []string{fmt.Sprintf("message %s %q", c.ID+"/control", "control")}
			if c.MustBeReceived {
				want = append([]string{fmt.Sprintf("message %s %q", c.ID, c.Data)}, want...)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the EventSource received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
