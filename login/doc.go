// Package login protects a login form against password guessing (brute force,
// credential stuffing, password spraying) without handing attackers an easy
// way to lock real users out, following the OWASP Authentication and
// Credential Stuffing cheat sheets and NIST SP 800-63B §3.2.2 (rate limiting).
//
// A [Guard] keeps three budgets in Redis through core [ratelimit.Limiter]s, so
// every server behind a load balancer shares them:
//
//   - per username ("<Name>.user"): the primary defence, whatever the address;
//   - per client IP ("<Name>.ip"): slows spraying from one address;
//   - per (username, IP) ("<Name>.pair"): locks one guesser out of one account
//     first, and is the budget a known pair is held to.
//
// Each has its own limit, period and lockout, and lockouts can escalate
// (each consecutive one twice as long, up to a cap). The defaults are
// [DefaultUser], [DefaultIP] and [DefaultPair].
//
// # Use
//
// Applications that verify passwords themselves call [Guard.Begin] before the
// check and report the result on the [Attempt]:
//
//	a, d, err := guard.Begin(ctx, username, clientKey)
//	if err != nil { ... }                       // ctx ended
//	if !d.Allowed { ... 429, d.RetryAfter ... } // do not check the password
//	if passwordOK { a.Succeeded(ctx) } else { a.Failed(ctx) }
//
// Applications with a net/http login handler wrap it with [HTTP.Handler], which
// reads the username from the form or JSON body, the client key with
// middleware.ClientIP, and the outcome from the response status.
//
// # What the design promises
//
//   - Reserve first, refund on success. Begin takes one unit from each budget
//     before the password is verified, so N concurrent attempts verify at
//     most as many passwords as the smallest budget allows (200 parallel wrong
//     passwords against a budget of 10 verify 10). If one budget refuses, the
//     units taken from the others are given back: a refused attempt costs
//     nothing and counts nowhere. Only failed attempts stay counted.
//   - A success ([Attempt.Succeeded]) gives back its IP unit and clears the
//     username's and the pair's failures and lockouts (NIST: disregard earlier
//     failed attempts after a success). It never clears the IP's failures, so
//     an attacker cannot launder an address's budget by logging into its own
//     account between guesses, and it never clears the username's lockout
//     history, so a victim's login does not reset an attacker's escalation.
//   - No enumeration. Usernames are trimmed and case folded
//     ([NormalizeUsername]) and hashed (HMAC-SHA256 with Config.Secret, or
//     SHA-256); the Guard never asks whether the user exists, so known and
//     unknown usernames cost the same work and get the same answers, and
//     nonexistent accounts lock like real ones. Redis keys are fixed-size
//     digests: no username or address is stored, whatever its length or bytes.
//   - Victim protection. After a success, the pair (username, client key) is
//     known for Config.KnownFor (30 days by default); [Guard.Trust] marks a
//     pair known after another proof (a password-reset link, a second factor).
//     A known pair's attempts skip the per-username budget, so an attacker
//     who locks an account from other addresses does not lock its owner out of
//     an address the owner used before. They are still held to the pair and IP
//     budgets: someone sharing the owner's address (a NAT, an IPv6 /64) gets
//     the pair's budget, with its lockouts, and no more. The design does not
//     promise access from a new address while the account is locked; that is
//     what Trust (after a reset link) is for. This is OWASP's "device cookie"
//     scheme keyed on the client address instead of a cookie.
//   - Fail closed. When Redis cannot decide (down, slow, out of memory), Begin
//     refuses with Outcome ratelimit.OutcomeFailedClosed and the HTTP helper
//     answers 503. Failing open on a login would give an attacker unlimited
//     guesses for as long as Redis is unavailable, and an attacker can often
//     cause that (load, a full memory). Config.FailOpen exists for those who
//     accept that.
//
// The Guard throttles; it never disables an account. NIST's ceiling of 100
// consecutive failures before disabling an authenticator, if required, must
// be kept by the application's account store.
//
// # Redis
//
// Each Begin makes four single-key calls (known pair, IP, username, pair) in
// that order, plus, when a lockout starts and escalation is on, one to count
// it and one to lengthen it. They are not one transaction: the keys live in
// different Cluster slots (their hash tags are digests, never raw input, so
// an attacker cannot choose a slot), and the refunds above make the sequence
// safe. Concurrent attempts may be refused by units that others hold for the
// moment.
package login
