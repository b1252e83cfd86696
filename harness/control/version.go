package control

import (
	"fmt"
	"strconv"
	"strings"
)

// ProtocolVersion is the protocol version this client speaks and sends in
// hello. 1.2 is the first version whose servers send 0xE0-prefixed
// scancodes to the guest correctly.
const ProtocolVersion = "1.2"

// clientVersion is ProtocolVersion parsed once.
var clientVersion = Version{Major: 1, Minor: 2}

// Version is a parsed "major.minor" protocol version. Compare versions
// with AtLeast, never for equality: any 1.x server is compatible, and a
// client that insisted on an exact minor broke when servers moved on.
type Version struct {
	Major int
	Minor int
}

// ParseVersion parses a dotted two-part version such as "1.2". It rejects
// anything else (signs, spaces, a third part) because a server that sends
// such a string is not one this client understands.
func ParseVersion(s string) (Version, error) {
	major, minor, ok := strings.Cut(s, ".")
	if !ok {
		return Version{}, fmt.Errorf("parse protocol version %q: want major.minor", s)
	}
	ma, err := parseVersionPart(major)
	if err != nil {
		return Version{}, fmt.Errorf("parse protocol version %q: major: %w", s, err)
	}
	mi, err := parseVersionPart(minor)
	if err != nil {
		return Version{}, fmt.Errorf("parse protocol version %q: minor: %w", s, err)
	}
	return Version{Major: ma, Minor: mi}, nil
}

func parseVersionPart(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, fmt.Errorf("want 1 to 9 decimal digits")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("want decimal digits only")
		}
	}
	return strconv.Atoi(s)
}

// AtLeast reports whether v is major.minor or newer; use it to gate a
// feature on the version that introduced it.
func (v Version) AtLeast(major, minor int) bool {
	if v.Major != major {
		return v.Major > major
	}
	return v.Minor >= minor
}

// String formats v as the protocol writes it ("1.2").
func (v Version) String() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
}
