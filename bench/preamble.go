package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// generatedMarker separates the hand-written part of BENCHMARKS.md (what a user
// can expect, how to reproduce) from the part this command writes. The text up
// to and including the marker's line is kept when the report is rewritten.
const generatedMarker = "<!-- Everything below this line is written by bench/ (cd bench && go run .); the text above is kept. -->"

// defaultPreamble starts a report file that has no marker yet.
const defaultPreamble = "# Benchmarks\n\n" + generatedMarker + "\n"

// preamble returns the hand-written part of the report at path, marker
// included, or defaultPreamble when the file does not exist or has no marker.
func preamble(path string) (string, error) {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultPreamble, nil
	}
	if err != nil {
		return "", err
	}
	s := string(old)
	i := strings.Index(s, generatedMarker)
	if i < 0 {
		return defaultPreamble, nil
	}
	return s[:i+len(generatedMarker)] + "\n", nil
}

// writeReport writes md after the hand-written part of the report at path.
func writeReport(path, md string) error {
	pre, err := preamble(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(pre+"\n"+md), 0o644)
}
