package qemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/shakenfist/kerbside-latency/harness/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SPICE link results (spice-protocol's SpiceLinkErr) the tests expect.
const (
	linkOK               = 0
	linkPermissionDenied = 7
)

// spiceLink opens a main channel to the SPICE server at addr and sends
// password as the ticket, returning the server's link result. It is the
// smallest client that proves the password QEMU got is the one the
// harness holds (layouts from spice-protocol 0.14, as facts.md gives
// them); the project's SPICE client lives elsewhere.
func spiceLink(t *testing.T, addr, password string) uint32 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))

	const (
		magic        = 0x51444552 // "REDQ"
		capAuthSel   = 1 << 0
		capAuthSpice = 1 << 1
		capMini      = 1 << 3
	)
	le := binary.LittleEndian
	mess := make([]byte, 18+4)
	// connection_id 0, channel_type 1 (main), channel_id 0
	mess[4] = 1
	le.PutUint32(mess[6:], 1)  // num_common_caps
	le.PutUint32(mess[10:], 0) // num_channel_caps
	le.PutUint32(mess[14:], 18)
	le.PutUint32(mess[18:], capAuthSel|capAuthSpice|capMini)
	hdr := make([]byte, 16)
	le.PutUint32(hdr[0:], magic)
	le.PutUint32(hdr[4:], 2)
	le.PutUint32(hdr[8:], 2)
	le.PutUint32(hdr[12:], uint32(len(mess)))
	_, err = c.Write(append(hdr, mess...))
	require.NoError(t, err)

	_, err = io.ReadFull(c, hdr)
	require.NoError(t, err)
	require.Equal(t, uint32(magic), le.Uint32(hdr[0:]), "reply magic")
	size := le.Uint32(hdr[12:])
	require.Less(t, size, uint32(4096), "reply size")
	reply := make([]byte, size)
	_, err = io.ReadFull(c, reply)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(reply), 4+162+12)
	require.Equal(t, uint32(0), le.Uint32(reply[0:]), "link reply error")
	pub, err := x509.ParsePKIXPublicKey(reply[4 : 4+162])
	require.NoError(t, err)
	key, ok := pub.(*rsa.PublicKey)
	require.True(t, ok, "server key is %T", pub)
	numCommon := le.Uint32(reply[166:])
	capsOff := le.Uint32(reply[174:])
	var common uint32
	if numCommon > 0 {
		require.LessOrEqual(t, int(capsOff)+4, len(reply))
		common = le.Uint32(reply[capsOff:])
	}

	var out []byte
	if common&capAuthSel != 0 {
		out = le.AppendUint32(out, 1) // SPICE_COMMON_CAP_AUTH_SPICE
	}
	ticket, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, key, []byte(password+"\x00"), nil)
	require.NoError(t, err)
	_, err = c.Write(append(out, ticket...))
	require.NoError(t, err)
	var result [4]byte
	_, err = io.ReadFull(c, result[:])
	require.NoError(t, err)
	return le.Uint32(result[:])
}

func spiceAddr(vm *VM) string {
	host, port := vm.SpiceAddr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// TestSpicePasswordIsTheTicket: SPICE accepts exactly the password the
// VM holds, so the secret file reached QEMU intact.
func TestSpicePasswordIsTheTicket(t *testing.T) {
	needQEMU(t)
	spec := testSpec(t)
	spec.Password = NewPassword()
	vm := startVM(t, spec)
	assert.Equal(t, uint32(linkOK), spiceLink(t, spiceAddr(vm), vm.Password().Reveal()))
	assert.Equal(t, uint32(linkPermissionDenied), spiceLink(t, spiceAddr(vm), "wrong"+vm.Password().Reveal()))
	assert.Equal(t, uint32(linkPermissionDenied), spiceLink(t, spiceAddr(vm), vm.Password().Reveal()+"\n"))
}

func TestSpiceWithoutTicket(t *testing.T) {
	needQEMU(t)
	vm := startVM(t, testSpec(t))
	assert.Equal(t, uint32(linkOK), spiceLink(t, spiceAddr(vm), ""))
	assert.Equal(t, secret.String{}, vm.Password())
}
