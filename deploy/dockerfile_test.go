package deploy_test

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks the image recipe without a Docker daemon: its build
// command, run here as written, gives a static binary; the runtime stage
// is non-root, stops with SIGTERM, has a healthcheck the binary answers;
// and every package the gateway is built from is copied into the build
// stage.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	// Join continuation lines.
	text = regexp.MustCompile(`\\\n\s*`).ReplaceAllString(text, "")
	stages := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(text, -1)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	runtime := text[stages[1][0]:]
	for _, want := range []string{
		"FROM gcr.io/distroless/static",
		"USER 65532:65532",
		"STOPSIGNAL SIGTERM",
		`HEALTHCHECK `,
		`CMD ["/gateway", "healthcheck"]`,
		`ENTRYPOINT ["/gateway"]`,
		"COPY --from=build /out/gateway /gateway",
	} {
		if !strings.Contains(runtime, want) {
			t.Errorf("runtime stage lacks %q", want)
		}
	}

	// The build command, as written, makes a static binary.
	m := regexp.MustCompile(`(?m)^RUN [^\n]*?(CGO_ENABLED=0 go build [^\n]*)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no `CGO_ENABLED=0 go build` line")
	}
	out := filepath.Join(t.TempDir(), "gateway")
	line := strings.ReplaceAll(m[1], "/out/gateway", out)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = ".."
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, o)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked; distroless/static has no libc")
		}
	}
	if o, err := exec.Command(out, "healthcheck", "-h").CombinedOutput(); !bytes.Contains(o, []byte("Usage: gateway healthcheck")) {
		t.Errorf("the binary has no healthcheck command: %v\n%s", err, o)
	}

	// Every package of the module the gateway imports is copied in.
	list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/gateway")
	list.Dir = ".."
	deps, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/ssegateway/ssegateway/"
	for _, p := range strings.Fields(string(deps)) {
		rel, ok := strings.CutPrefix(p, module)
		if !ok {
			continue
		}
		top := strings.SplitN(rel, "/", 2)[0]
		if !strings.Contains(text, "COPY "+top+"/ "+top+"/") {
			t.Errorf("the gateway imports %s, but the Dockerfile does not copy %s/", p, top)
		}
	}
}
