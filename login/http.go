package login

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seed68425060/ratelimit"
	"github.com/seed68425060/ratelimit/clientip"
)

// Defaults for zero fields of HTTP.
const (
	// DefaultUsernameField is the form or JSON field read when
	// HTTP.UsernameField is empty.
	DefaultUsernameField = "username"
	// DefaultMaxBodyBytes is the largest login request body read when
	// HTTP.MaxBodyBytes is zero.
	DefaultMaxBodyBytes = 64 << 10
)

// HTTP wraps a login handler with a Guard. For each request it reads the
// username from the body, the client key from ClientIP, and calls
// Guard.Begin before the wrapped handler runs:
//
//   - refused: 429 Too Many Requests with Retry-After (whole seconds, rounded
//     up), or 503 Service Unavailable with Retry-After when Redis could not
//     decide (fail closed); the wrapped handler does not run. No RateLimit
//     headers are sent: on a login they would tell an attacker its budget.
//     The answer is the same for every username, existing or not.
//   - allowed: the wrapped handler runs, and its response status reports the
//     attempt: 2xx and 3xx are a success (Attempt.Succeeded), 401 and 403 a
//     failure (Attempt.Failed), anything else neither (Attempt.Cancel, which
//     gives the units back). The wrapped handler must therefore answer a
//     wrong password with 401 or 403 (never 400 or 5xx, which would make it a
//     free guess), and should answer an unknown username exactly like a wrong
//     password, after the same work (a dummy hash comparison).
//
// The username is the form field UsernameField (URL-encoded or multipart
// body, then the query, as http.Request.FormValue reads it), or, when the
// Content-Type is application/json or +json, the top-level JSON string member
// whose name equals UsernameField case-insensitively (the last one, as
// encoding/json does when it fills a struct). The wrapped handler gets the
// body back unread. To be sure it verifies the very username that was
// limited, it can read it with Username(r.Context()).
//
// The zero HTTP is not usable: Guard is required. An HTTP must not be changed
// after Handler is called; it is safe for concurrent use.
type HTTP struct {
	// Guard makes the decisions. Required: without it every request is
	// refused with 503.
	Guard *Guard
	// ClientIP finds the client key (clientip.Config.Key): the peer address by
	// default, proxy headers only from its TrustedProxies, IPv6 grouped by
	// prefix. The zero value trusts no proxy.
	ClientIP clientip.Config
	// UsernameField is the form field or JSON member holding the username.
	// If empty, it is DefaultUsernameField ("username").
	UsernameField string
	// MaxBodyBytes bounds the request body: a longer body gets 413 Content Too
	// Large, and the handler does not run. If zero, it is DefaultMaxBodyBytes
	// (64 KiB).
	MaxBodyBytes int64
	// Refused answers an attempt the Guard refused (429) or could not decide
	// (503), after Retry-After and Cache-Control: no-store are set: to answer
	// in the application's format (JSON, say). RefusalFrom(r.Context()) gives
	// the status and the Decision. If nil, a short text/plain body that says
	// nothing about the username.
	Refused http.Handler
}

// Refusal is what the HTTP wrapper refused, for a Refused handler.
type Refusal struct {
	// Status is 429 Too Many Requests, or 503 Service Unavailable when no
	// decision could be made.
	Status int
	// Decision is the Guard's (zero when Begin returned an error).
	Decision Decision
}

type refusalKey struct{}

// RefusalFrom returns the Refusal the wrapper stored in the context of a
// request it passes to HTTP.Refused, and reports whether there was one.
func RefusalFrom(ctx context.Context) (Refusal, bool) {
	f, ok := ctx.Value(refusalKey{}).(Refusal)
	return f, ok
}

// Handler returns next wrapped with login protection. Its method value fits
// func(http.Handler) http.Handler middleware chains.
func (h *HTTP) Handler(next http.Handler) http.Handler {
	field := h.UsernameField
	if field == "" {
		field = DefaultUsernameField
	}
	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(w http.ResponseWriter, status int, retry time.Duration, d Decision) {
			setRefusalHeaders(w, retry)
			if h.Refused == nil {
				refuse(w, status, retry)
				return
			}
			h.Refused.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), refusalKey{}, Refusal{Status: status, Decision: d})))
		}
		if h.Guard == nil {
			refuse(w, http.StatusServiceUnavailable, time.Second, Decision{})
			return
		}
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			r.Body.Close()
			switch {
			case int64(len(b)) > limit:
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			case err != nil:
				http.Error(w, "cannot read request body", http.StatusBadRequest)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		username := usernameFrom(r, body, field)

		ctx := r.Context()
		a, d, err := h.Guard.Begin(ctx, username, h.ClientIP.Key(r))
		switch {
		case err != nil:
			refuse(w, http.StatusServiceUnavailable, time.Second, Decision{})
			return
		case !d.Allowed && d.Outcome == ratelimit.OutcomeFailedClosed:
			refuse(w, http.StatusServiceUnavailable, d.RetryAfter, d)
			return
		case !d.Allowed:
			refuse(w, http.StatusTooManyRequests, d.RetryAfter, d)
			return
		}

		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, usernameKey{}, username)))
		// Report even if the client has gone; errors reach the Observer, and
		// a lost report leaves the unit spent (the safe side).
		rctx := context.WithoutCancel(ctx)
		switch s := rec.status(); {
		case s >= 200 && s < 400:
			a.Succeeded(rctx)
		case s == http.StatusUnauthorized || s == http.StatusForbidden:
			a.Failed(rctx)
		default:
			a.Cancel(rctx)
		}
	})
}

// refuse writes a refusal: status, Retry-After in whole seconds rounded up
// (at least 1), and a short body that says nothing about the username.
func refuse(w http.ResponseWriter, status int, retry time.Duration) {
	setRefusalHeaders(w, retry)
	msg := "too many login attempts, try again later"
	if status == http.StatusServiceUnavailable {
		msg = "login temporarily unavailable, try again later"
	}
	http.Error(w, msg, status)
}

// setRefusalHeaders sets Retry-After (whole seconds rounded up, at least 1)
// and Cache-Control: no-store.
func setRefusalHeaders(w http.ResponseWriter, retry time.Duration) {
	secs := int64((retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
	h.Set("Cache-Control", "no-store")
}

type usernameKey struct{}

// Username returns the username, as sent (before NormalizeUsername), that the
// HTTP helper limited for the request whose context is ctx, and reports
// whether there is one. A wrapped handler that authenticates this username
// is sure to verify the account whose budget was spent.
func Username(ctx context.Context) (string, bool) {
	u, ok := ctx.Value(usernameKey{}).(string)
	return u, ok
}

// usernameFrom extracts the username from a request whose body is body.
// Malformed input yields "" (a budget shared by every malformed request).
func usernameFrom(r *http.Request, body []byte, field string) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		return jsonField(body, field)
	}
	shadow := r.Clone(r.Context())
	shadow.Body = io.NopCloser(bytes.NewReader(body))
	shadow.Form, shadow.PostForm, shadow.MultipartForm = nil, nil, nil
	u := shadow.FormValue(field)
	if shadow.MultipartForm != nil {
		shadow.MultipartForm.RemoveAll()
	}
	return u
}

// jsonField returns the last top-level string member of the JSON object body
// whose name matches field case-insensitively, or "".
func jsonField(body []byte, field string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	var u string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		if strings.EqualFold(name, field) {
			u = ""
			json.Unmarshal(v, &u) // a non-string leaves ""
		}
	}
	return u
}

// statusRecorder remembers the status the wrapped handler sends.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the response status; a handler that wrote nothing sent 200.
func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
