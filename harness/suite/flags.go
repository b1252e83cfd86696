package suite

import (
	"flag"
	"regexp"
	"strings"
	"time"
)

// selected reports whether this invocation runs TestLatency: not for
// -test.list, nor when -test.run or -test.skip leave it out. go test
// matches the first slash-separated element of the pattern against the
// top-level test name.
func selected() bool {
	if v := flagValue("test.list"); v != "" {
		return false
	}
	top := func(pattern string) string {
		first, _, _ := strings.Cut(pattern, "/")
		return first
	}
	if run := flagValue("test.run"); run != "" {
		if ok, err := regexp.MatchString(top(run), "TestLatency"); err == nil && !ok {
			return false
		}
	}
	if skip := flagValue("test.skip"); skip != "" && !strings.Contains(skip, "/") {
		if ok, err := regexp.MatchString(skip, "TestLatency"); err == nil && ok {
			return false
		}
	}
	return true
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// testTimeout is go test's -timeout for this binary (0 when none).
func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if d, ok := g.Get().(time.Duration); ok {
			return d
		}
	}
	return 0
}
