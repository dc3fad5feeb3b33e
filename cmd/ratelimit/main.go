// Command ratelimit is the demo server and the operator's tool for the
// ratelimit library.
//
// Usage:
//
//	ratelimit serve   [flags]   run the demo HTTP server (embedded Redis by default)
//	ratelimit inspect [flags]   show a key's state without consuming anything
//	ratelimit reset   [flags]   clear a key's state and lockout
//	ratelimit unlock  [flags]   unlock a user of the login protection
//	ratelimit doctor  [flags]   check that a Redis is set up right for limiters
//	ratelimit bench   [flags]   measure decisions per second and latency
//	ratelimit help [command]    print usage
//
// Run "ratelimit help <command>" for each command's flags and examples.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/seed68425060/ratelimit"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed (or doctor found a FAIL)
	exitUsage = 2 // bad command line
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // usage line and examples, printed after the summary
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the demo HTTP server (embedded Redis unless -redis or -cluster)", serveUsage, runServe},
		{"inspect", "show a key's state without consuming anything", inspectUsage, runInspect},
		{"reset", "clear a key's state and lockout", resetUsage, runReset},
		{"unlock", "unlock a user of the login protection", unlockUsage, runUnlock},
		{"doctor", "check that a Redis is set up right for rate limiters", doctorUsage, runDoctor},
		{"bench", "measure decisions per second and latency of each algorithm", benchUsage, runBench},
	}
}

// run is main without the process: it returns the exit status, so tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			if c, ok := findCommand(args[1]); ok {
				printCommandUsage(stdout, c)
				return exitOK
			}
			fmt.Fprintf(stderr, "ratelimit: unknown command %q\n\n", args[1])
			printUsage(stderr)
			return exitUsage
		}
		printUsage(stdout)
		return exitOK
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "ratelimit: unknown command %q\n\n", name)
		printUsage(stderr)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `ratelimit: a distributed rate limiter on Redis, demo server and operator tools.

Usage:
  ratelimit <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `  help     print this, or "ratelimit help <command>" for a command's flags

Start here:
  ratelimit serve                      # demo on http://127.0.0.1:8080, no Redis needed
  ratelimit serve -redis redis://127.0.0.1:6379
  ratelimit doctor -redis redis://127.0.0.1:6379

Redis is chosen with -redis URL (or $REDIS_URL) or -cluster host:port,...
Limits are written <count>/<period>: 100/1m, 5/15m, 10/s, 1000/h, 3/500ms.
`)
}

func printCommandUsage(w io.Writer, c command) {
	fmt.Fprintf(w, "ratelimit %s: %s\n\n%s", c.name, c.summary, c.usage)
	fs := newFlagSet(c.name)
	switch c.name {
	case "serve":
		new(serveConfig).register(fs)
	case "inspect", "reset":
		new(keyFlags).register(fs)
	case "unlock":
		new(unlockConfig).register(fs)
	case "doctor":
		new(doctorConfig).register(fs)
	case "bench":
		new(benchConfig).register(fs)
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// newFlagSet returns a flag set that reports errors itself (ContinueOnError)
// and prints nothing on its own.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("ratelimit "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args for command name. It returns a status and false
// when the command must stop: usage printed for -h (0) or a bad flag (2).
func parseFlags(fs *flag.FlagSet, name string, args []string, stdout, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	c, _ := findCommand(name)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printCommandUsage(stdout, c)
		return exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "ratelimit %s: %v\nRun \"ratelimit help %s\" for usage.\n", name, err, name)
		return exitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "ratelimit %s: unexpected argument %q\nRun \"ratelimit help %s\" for usage.\n", name, fs.Arg(0), name)
		return exitUsage, false
	}
	return exitOK, true
}

// usageError prints a command-line problem found after parsing and returns exitUsage.
func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "ratelimit %s: %v\nRun \"ratelimit help %s\" for usage.\n", name, err, name)
	return exitUsage
}

// failure prints a runtime problem and returns exitFail.
func failure(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "ratelimit %s: %v\n", name, err)
	return exitFail
}

// limitFlag is a flag.Value holding a rate in ParseLimit syntax.
type limitFlag struct {
	limit  int
	period time.Duration
}

func (f *limitFlag) String() string {
	if f == nil || f.limit == 0 {
		return ""
	}
	return ratelimit.FormatLimit(f.limit, f.period)
}

func (f *limitFlag) Set(s string) error {
	l, p, err := ratelimit.ParseLimit(s)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "ratelimit: "))
	}
	f.limit, f.period = l, p
	return nil
}

// limitsFlag is a flag.Value holding a comma-separated list of rates, each
// as ParseLimit reads it: "10/s,1000/d".
type limitsFlag []limitFlag

func (f *limitsFlag) String() string {
	if f == nil {
		return ""
	}
	s := make([]string, len(*f))
	for i := range *f {
		s[i] = (*f)[i].String()
	}
	return strings.Join(s, ",")
}

func (f *limitsFlag) Set(v string) error {
	var out limitsFlag
	for _, s := range strings.Split(v, ",") {
		var l limitFlag
		if err := l.Set(s); err != nil {
			return err
		}
		out = append(out, l)
	}
	*f = out
	return nil
}

// rates are the rates after the first, for ratelimit.Config.Rates.
func (f limitsFlag) rates() []ratelimit.Rate {
	var out []ratelimit.Rate
	for _, l := range f[1:] {
		out = append(out, ratelimit.Rate{Limit: l.limit, Period: l.period})
	}
	return out
}

// algorithmFlag is a flag.Value holding an Algorithm by name.
type algorithmFlag struct{ a ratelimit.Algorithm }

func (f *algorithmFlag) String() string { return f.a.String() }

func (f *algorithmFlag) Set(s string) error {
	a, err := parseAlgorithm(s)
	if err != nil {
		return err
	}
	f.a = a
	return nil
}

var algorithms = []ratelimit.Algorithm{ratelimit.TokenBucket, ratelimit.LeakyBucket, ratelimit.SlidingWindow}

// parseAlgorithm reads an algorithm name: token_bucket, leaky_bucket or
// sliding_window, with '-' or nothing in place of '_' accepted too.
func parseAlgorithm(s string) (ratelimit.Algorithm, error) {
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	for _, a := range algorithms {
		if strings.ReplaceAll(a.String(), "_", "") == norm {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown algorithm %q (want token_bucket, leaky_bucket or sliding_window)", s)
}
