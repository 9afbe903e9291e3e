package deploy_test

import (
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakeDist: `make dist` builds static, version-stamped binaries named
// gateway-<version>-<os>-<arch> and a SHA256SUMS that verifies them. It
// builds this machine's platform only, to keep the suite fast (the image
// test builds the same static binary, so it is mostly cached); that the
// default list covers linux and darwin on amd64 and arm64 is read from a dry
// run.
func TestMakeDist(t *testing.T) {
	const version = "v0.0.0-disttest"
	dir := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("make", "-C", "..", "dist", "VERSION="+version, "DIST_DIR="+dir, "DIST_PLATFORMS="+platform)
	cmd.Env = makeEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	name := fmt.Sprintf("gateway-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH)
	bin := filepath.Join(dir, name)
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 {
		t.Errorf("make dist wrote %v, want %s and SHA256SUMS", files, name)
	}

	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if want := hex.EncodeToString(sum[:]) + "  " + name + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS is %q, want %q", sums, want)
	}

	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked")
			}
		}
		f.Close()
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("built with %s=%q, want %q", k, settings[k], want)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "ssegateway "+version+" (") {
		t.Errorf("%s version: %q, %v", name, out, err)
	}

	dry := exec.Command("make", "-C", "..", "-n", "dist", "VERSION="+version)
	dry.Env = makeEnv()
	plan, err := dry.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n dist: %v\n%s", err, plan)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		if !strings.Contains(string(plan), p) {
			t.Errorf("make dist does not build %s by default:\n%s", p, plan)
		}
	}
}
