package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteReportKeepsPreamble checks that rewriting the report keeps the
// hand-written text above the marker and replaces everything below it.
func TestWriteReportKeepsPreamble(t *testing.T) {
	tests := []struct {
		name, old, want string
	}{
		{"no file", "", defaultPreamble + "\nNEW\n"},
		{"no marker", "# Benchmarks\n\nold tables\n", defaultPreamble + "\nNEW\n"},
		{"marker", "# Benchmarks\n\nWhat to expect.\n\n" + generatedMarker + "\n\nold tables\n",
			"# Benchmarks\n\nWhat to expect.\n\n" + generatedMarker + "\n\nNEW\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "B.md")
			if tt.old != "" {
				if err := os.WriteFile(path, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeReport(path, "NEW\n"); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("writeReport on %q wrote %q, want %q", tt.old, got, tt.want)
			}
		})
	}
	// The checked-in report has the marker, so a new run keeps its text.
	if b, err := os.ReadFile("../BENCHMARKS.md"); err == nil && !strings.Contains(string(b), generatedMarker) {
		t.Errorf("../BENCHMARKS.md has no marker %q: a run would drop its hand-written part", generatedMarker)
	}
}
