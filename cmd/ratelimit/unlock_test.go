package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// TestUnlockCommand locks the demo user out through /login, then unlocks it
// with the unlock command: the right password works again at once.
func TestUnlockCommand(t *testing.T) {
	m := miniredis.RunT(t)
	srv, _ := newTestDemoOn(t, m, "-login-limit", "2/15m")

	for range 3 {
		postLogin(t, srv.URL, formType, "username=demo&password=wrong")
	}
	if resp, _ := postLogin(t, srv.URL, formType, "username=demo&password="+demoPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while locked = %d, want 429", resp.StatusCode)
	}
	// Without the demo's budgets the keys are not found: nothing changes, exit 1.
	if code, _, stderr := runCmd(t, "unlock", "-redis", "redis://"+m.Addr(), "-user", " DEMO ", "-ip", "127.0.0.1"); code != exitFail || !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("unlock without -login-limit = %d, %s; want exit 1 saying nothing was changed", code, stderr)
	}
	code, stdout, stderr := runCmd(t, "unlock", "-redis", "redis://"+m.Addr(), "-login-limit", "2/15m", "-user", " DEMO ", "-ip", "127.0.0.1")
	if code != exitOK || !strings.Contains(stdout, "unlocked") {
		t.Fatalf("unlock = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if resp, body := postLogin(t, srv.URL, formType, "username=demo&password="+demoPassword); resp.StatusCode != http.StatusOK {
		t.Errorf("right password after unlock = %d %s, want 200", resp.StatusCode, body)
	}
	if code, _, _ := runCmd(t, "unlock", "-redis", "redis://"+m.Addr()); code != exitUsage {
		t.Errorf("unlock without -user = %d, want %d", code, exitUsage)
	}
}
