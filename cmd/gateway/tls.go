package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// certReloader serves a certificate from files and picks up new ones when
// the files change, as when cert-manager renews a Kubernetes Secret: on a
// handshake, at most once per checkEvery, it compares the files' size and
// modification time with what it loaded, and reloads if they differ. A
// half-written or mismatched pair is logged and the previous certificate
// kept; the next check tries again.
type certReloader struct {
	certFile, keyFile string
	log               zerolog.Logger
	checkEvery        time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name) // follows symlinks, as Secret volumes use
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// newCertReloader loads the pair once; an unusable pair is a startup error.
func newCertReloader(certFile, keyFile string, log zerolog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, checkEvery: time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) load() error {
	var st [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		s, err := stampOf(f)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		st[i] = s
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	r.cert, r.stamp = &cert, st
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.checkEvery {
		r.checked = now
		if r.changed() {
			if err := r.load(); err != nil {
				r.log.Warn().Err(err).Msg("certificate files changed but do not load; keeping the previous certificate")
			} else {
				r.log.Info().Str("cert", r.certFile).Time("not_after", r.cert.Leaf.NotAfter).Msg("certificate reloaded")
			}
		}
	}
	return r.cert, nil
}

func (r *certReloader) changed() bool {
	for i, f := range []string{r.certFile, r.keyFile} {
		if s, err := stampOf(f); err != nil || s != r.stamp[i] {
			return true
		}
	}
	return false
}

func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}
