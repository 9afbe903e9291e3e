package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
)

// runPublish publishes one event, straight to Redis through the publish
// script when a Redis URL is configured, otherwise through a gateway's
// POST /publish (which runs the same script).
func runPublish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gateway publish --topic T [--type X] DATA

Publishes one event and prints its id. DATA is sent as is; "-" reads it from
standard input. With a Redis URL the event goes straight to Redis through the
publish script (use the same history settings as the gateway); without one it
is posted to a gateway's /publish, with the bearer token of --token if the
gateway requires one.

Flags:
`)
		fs.PrintDefaults()
	}
	var topic, typ, prefix, gatewayURL, idemKey, token string
	var rf redisFlags
	var hist historyFlags
	fs.StringVar(&topic, "topic", "", "topic to publish to (required)")
	fs.StringVar(&typ, "type", "", "event type; empty sends the SSE default \"message\"")
	fs.StringVar(&idemKey, "idempotency-key", "", "make retries safe: publishing again with the same key (for a minute) returns the first id and publishes nothing")
	rf.register(fs, "; publish straight to it (otherwise post to --url)")
	fs.StringVar(&prefix, "redis-prefix", contract.DefaultPrefix, "key prefix, as configured on the gateway [GATEWAY_REDIS_PREFIX]")
	fs.StringVar(&gatewayURL, "url", "http://localhost:8080", "gateway to post to when no Redis URL is set [GATEWAY_URL]")
	fs.StringVar(&token, "token", "", "bearer token for posting to --url, granting publishing on the topic (gateway token --publish makes one); "+
		"not used with a Redis URL; prefer the variable: any user on the machine can read a process's flags [GATEWAY_TOKEN]")
	hist.register(fs)
	// Only the variables the help names: a GATEWAY_TOPIC or GATEWAY_TYPE
	// left in the environment must not pick the topic or the type.
	if err := parseFlags(fs, args, namedEnv(fs, getenv)); err != nil {
		return err
	}
	if topic == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway publish: need --topic and exactly one DATA argument (see gateway publish -h)")
		return errUsage
	}
	if err := hist.validate(); err != nil {
		return err
	}
	if err := rf.readPasswordFile(); err != nil {
		return err
	}
	data := fs.Arg(0)
	if data == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, int64(hist.maxEvent)+1))
		if err != nil {
			return fmt.Errorf("read data from stdin: %w", err)
		}
		data = string(b)
	}
	// SSE carries UTF-8 text; json.Marshal (the HTTP path) would replace
	// anything else with U+FFFD without a word.
	for _, f := range []struct{ name, v string }{{"--topic", topic}, {"--type", typ}, {"DATA", data}} {
		if i := firstInvalidUTF8(f.v); i >= 0 {
			return fmt.Errorf("%s is not valid UTF-8: byte %#x at offset %d; SSE carries UTF-8 text only", f.name, f.v[i], i)
		}
	}
	msg := pubsub.Message{Topic: topic, Type: typ, Data: data, IdempotencyKey: idemKey}

	var id string
	var err error
	if rc := rf.config(); rc.Configured() {
		id, err = publishRedis(ctx, rc, prefix, hist, msg)
	} else {
		id, err = publishHTTP(ctx, gatewayURL, token, msg)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, id)
	return err
}

// firstInvalidUTF8 is the offset of the first byte of s that is not part of
// valid UTF-8, or -1.
func firstInvalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return -1
}

func publishRedis(ctx context.Context, rc pubsub.RedisConfig, prefix string, hist historyFlags, msg pubsub.Message) (string, error) {
	keys, err := contract.NewKeys(prefix)
	if err != nil {
		return "", err
	}
	rdb, topology, err := rc.Client()
	if err != nil {
		return "", fmt.Errorf("redis: %w", err)
	}
	defer rdb.Close()
	pcfg := hist.publisher(keys, 0)
	pcfg.Sharded = topology == pubsub.Cluster
	return pubsub.NewPublisher(rdb, pcfg).Publish(ctx, msg)
}

// publishHTTP posts msg to the gateway at base, with token as its bearer
// token unless it is empty.
func publishHTTP(ctx context.Context, base, token string, msg pubsub.Message) (string, error) {
	body, err := json.Marshal(map[string]string{"topic": msg.Topic, "type": msg.Type, "data": msg.Data})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/publish", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if msg.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", msg.IdempotencyKey)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("post to gateway (is one running at %s? or pass --redis-url): %w", base, err)
	}
	defer res.Body.Close()
	var out struct{ ID, Error string }
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("gateway answered %s with a body that is not JSON", res.Status)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized && token == "":
		return "", fmt.Errorf("gateway refused the event (%s): %s; pass a token with --token or GATEWAY_TOKEN", res.Status, out.Error)
	case res.StatusCode != http.StatusOK:
		return "", fmt.Errorf("gateway refused the event (%s): %s", res.Status, out.Error)
	}
	return out.ID, nil
}
