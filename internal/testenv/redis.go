package testenv

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPort is where scripts/redis.sh runs the test server: not 6379, so a
// system redis is never touched.
const redisPort = "6399"

// redisClaimTTL bounds how long a database stays claimed by a test process
// that crashed before its cleanup.
const redisClaimTTL = time.Hour

var (
	redisOnce sync.Once
	redisBase *url.URL // redis://127.0.0.1:6399/0
	redisDBs  int      // databases the server has
	redisErr  error
)

// Redis makes sure the test redis-server runs (via scripts/redis.sh, once
// per test process) and returns a redis:// URL of a database of its own:
// claimed in database 0 so test processes running side by side (go test
// ./...) never share one, flushed before use and when the test ends.
func Redis(t testing.TB) string {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping Redis integration test", SkipEnv)
	}
	redisOnce.Do(func() { redisErr = startRedis() })
	if redisErr != nil {
		t.Fatalf("testenv: Redis unavailable (set %s=1 to skip): %v", SkipEnv, redisErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctl := redis.NewClient(&redis.Options{Addr: redisBase.Host, DB: 0})
	defer ctl.Close()

	owner := fmt.Sprintf("pid %d %s", os.Getpid(), t.Name())
	first := 1 + rand.IntN(redisDBs-1) // spread claims; db 0 holds them
	for i := 0; i < redisDBs-1; i++ {
		db := 1 + (first-1+i)%(redisDBs-1)
		claimed, err := ctl.SetNX(ctx, claimKey(db), owner, redisClaimTTL).Result()
		if err != nil {
			t.Fatalf("testenv: claiming a redis database: %v", err)
		}
		if !claimed {
			continue
		}
		// Whatever a crashed run left there goes first.
		flushDB(t, db)
		t.Cleanup(func() {
			flushDB(t, db)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctl := redis.NewClient(&redis.Options{Addr: redisBase.Host, DB: 0})
			defer ctl.Close()
			if err := ctl.Del(ctx, claimKey(db)).Err(); err != nil {
				t.Logf("testenv: releasing redis db %d: %v", db, err)
			}
		})
		u := *redisBase
		u.Path = "/" + strconv.Itoa(db)
		return u.String()
	}
	t.Fatalf("testenv: all %d redis databases are claimed", redisDBs-1)
	return ""
}

func claimKey(db int) string { return "renderfarm:testenv:db:" + strconv.Itoa(db) }

func flushDB(t testing.TB, db int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: redisBase.Host, DB: db})
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Errorf("testenv: flushing redis db %d: %v", db, err)
	}
}

func startRedis() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "redis.sh"), "start", redisPort)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("scripts/redis.sh: %w\n%s", err, stderr.Bytes())
	}
	if redisBase, err = url.Parse(strings.TrimSpace(string(out))); err != nil || redisBase.Host == "" {
		return fmt.Errorf("scripts/redis.sh printed %q, want a redis:// URL", out)
	}
	c := redis.NewClient(&redis.Options{Addr: redisBase.Host})
	defer c.Close()
	cfg, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return fmt.Errorf("redis CONFIG GET databases: %w", err)
	}
	if redisDBs, err = strconv.Atoi(cfg["databases"]); err != nil || redisDBs < 2 {
		return fmt.Errorf("redis has %q databases, want at least 2", cfg["databases"])
	}
	return nil
}
