// Package runid makes and checks run ids.
//
// A run id names everything one run leaves behind: the result files
// (latency-<run>.csv), the server (latency-<run>) and its metadata, and
// the pods of a Kubernetes run (<run>-p<k>). One rule for all of them
// keeps a valid id valid everywhere it goes.
package runid

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// MaxLen is the longest run id: Nova metadata values and our server names
// stay well inside their limits with it.
const MaxLen = 63

var pattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// New returns a run id that sorts by time and does not collide between
// runs started in the same second: 20261126T013102Z-95cfd8.
func New(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Validate reports whether id is usable: 1..MaxLen characters from
// [A-Za-z0-9._-], starting with a letter or digit, without "..". Ids
// become parts of paths, so anything else is refused rather than cleaned.
func Validate(id string) error {
	return ValidateLen(id, MaxLen)
}

// ValidateLen is Validate with a tighter length limit, for ids that will
// still get suffixes (a configured run id gets -c<i> and -p<k>).
func ValidateLen(id string, maxLen int) error {
	if len(id) == 0 || len(id) > maxLen || !pattern.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("invalid run id %q: want 1-%d characters from [A-Za-z0-9._-], starting with a letter or digit, without \"..\"", id, maxLen)
	}
	return nil
}
