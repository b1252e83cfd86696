package spiceproxy

import (
	"bytes"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testModes = []Mode{{Kind: NoDelay}, {Kind: Nagle}, {Kind: Delay, Delay: 5 * time.Millisecond}, {Kind: CPU, Delay: 20 * time.Microsecond}}

// streamCase is one conversation through the proxy: both sides' scripts
// and what Nagle mode must make of it.
type streamCase struct {
	name           string
	client, server conversation
	framing        string // in Nagle mode: the Framing prefix
	messages       int    // in Nagle mode: server messages framed
	writes         int    // in Nagle mode: client writes (0: not checked)
}

func streamCases(seed uint64) []streamCase {
	rng := rand.New(rand.NewPCG(seed, 1))
	framed := func(name string, spec linkSpec, h header, n, maxBody int) streamCase {
		cl, sl := linkSteps(rng, spec)
		_, all := messages(rng, h, n, maxBody)
		return streamCase{name: name,
			client:  conversation{link: cl, stream: chop(rng, random(rng, 50<<10), 4000)},
			server:  conversation{link: sl, stream: chop(rng, all, 5000)},
			framing: h.String(), messages: n, writes: n + 3}
	}
	plain := func(name string, spec linkSpec, why string) streamCase {
		cl, sl := linkSteps(rng, spec)
		return streamCase{name: name,
			client:  conversation{link: cl, stream: chop(rng, random(rng, 20<<10), 3000)},
			server:  conversation{link: sl, stream: chop(rng, random(rng, 20<<10), 3000)},
			framing: "plain: " + why}
	}
	big := framed("a message too large to hold", linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1}, miniHeader, 0, 0)
	_, huge := messages(rng, miniHeader, 1, 0)
	huge = append(huge[:2], le32(maxHeld+12345)...)
	huge = append(huge, random(rng, maxHeld+12345)...)
	_, tail := messages(rng, miniHeader, 3, 100)
	big.server.stream = chop(rng, append(huge, tail...), 200<<10)
	big.messages, big.writes = 4, 0

	garbage := random(rng, 30<<10)
	garbage[0] = 'G' // never "REDQ"
	mess := linkMess(allCaps)
	cases := []streamCase{
		framed("mini header", linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1}, miniHeader, 300, 3000),
		framed("full header: the client has no MINI_HEADER", linkSpec{clientCaps: allCaps &^ bitMini, serverCaps: allCaps, mechanism: 1}, fullHeader, 200, 3000),
		framed("full header: the server has no MINI_HEADER", linkSpec{clientCaps: allCaps, serverCaps: allCaps &^ bitMini, mechanism: 1}, fullHeader, 200, 3000),
		framed("no auth selection", linkSpec{clientCaps: bitAuthSpice | bitMini, serverCaps: allCaps}, miniHeader, 100, 500),
		framed("empty messages", linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1}, miniHeader, 50, 0),
		big,
		plain("link refused", linkSpec{clientCaps: allCaps, serverCaps: allCaps, replyError: 7}, "server refused the link"),
		plain("ticket refused", linkSpec{clientCaps: allCaps, serverCaps: allCaps, mechanism: 1, result: 7}, "server refused the ticket"),
		plain("SASL", linkSpec{clientCaps: allCaps | 1<<2, serverCaps: allCaps | 1<<2, mechanism: 2}, "auth mechanism 2"),
		{name: "not SPICE",
			client:  conversation{stream: chop(rng, garbage, 3000)},
			server:  conversation{stream: chop(rng, random(rng, 30<<10), 3000)},
			framing: "plain: client link header: magic"},
		{name: "the client leaves in the link header",
			client:  conversation{stream: [][]byte{mess[:10]}},
			server:  conversation{stream: chop(rng, random(rng, 10<<10), 3000)},
			framing: "plain: client link header: stream ended"},
		{name: "the client leaves in the link message",
			client:  conversation{stream: [][]byte{mess[:20]}},
			server:  conversation{stream: chop(rng, random(rng, 10<<10), 3000)},
			framing: "plain: client link message: stream ended"},
		{name: "the server leaves in the link reply",
			client:  conversation{link: []step{{write: mess}}, stream: chop(rng, random(rng, 10<<10), 3000)},
			server:  conversation{link: []step{{read: len(mess)}}, stream: [][]byte{linkReply(rng, 0, allCaps)[:100]}},
			framing: "plain: server link reply: stream ended"},
	}
	for i := range cases {
		cases[i].client.expect = streamLen(cases[i].server.stream)
		cases[i].server.expect = streamLen(cases[i].client.stream)
	}
	return cases
}

// TestStreamsArriveUnchanged runs every conversation through every mode
// and compares both byte streams end to end: the proxy may cut and
// delay, never change, drop, add or reorder.
//
// The cases are built once and only read: each is several MiB, and under
// -race building and copying them cost the test 40 times what the proxy
// did.
func TestStreamsArriveUnchanged(t *testing.T) {
	cases := streamCases(100)
	for _, mode := range testModes {
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				srv := startFakeServer(t, func(c net.Conn) transcript { return talk(c, tc.server) })
				p, logs := startProxy(t, srv.addr(), mode)
				ctr := talk(dialProxy(t, p), tc.client)
				str := srv.transcripts(t, 1)[0]
				require.NoError(t, ctr.err, "client")
				require.NoError(t, str.err, "server")
				sameBytes(t, "client to server", ctr.sent, str.got)
				sameBytes(t, "server to client", str.sent, ctr.got)

				cs := endedConns(t, p, 1)[0]
				assert.Equal(t, int64(len(ctr.sent)), cs.ToServer, "ToServer")
				assert.Equal(t, int64(len(str.sent)), cs.ToClient, "ToClient")
				assert.Empty(t, cs.Err, "a conversation that both sides ended is not an error")
				tot := p.Totals()
				assert.Equal(t, Totals{Conns: 1, ToServer: cs.ToServer, ToClient: cs.ToClient, Messages: cs.Messages}, tot, "Totals sum the ended connection")
				if mode.Kind != Nagle && mode.Kind != CPU {
					assert.Empty(t, cs.Framing)
					assert.Zero(t, cs.Messages)
					return
				}
				assert.True(t, strings.HasPrefix(cs.Framing, tc.framing), "Framing %q, want %q...", cs.Framing, tc.framing)
				assert.Equal(t, int64(tc.messages), cs.Messages, "messages framed")
				if tc.writes > 0 {
					assert.Equal(t, int64(tc.writes), cs.ClientWrites, "client writes: link header, link reply, link result and one per message")
				}
				if strings.HasPrefix(tc.framing, "plain") && !strings.Contains(tc.framing, "ticket") {
					assert.Contains(t, logs.String(), "forwarding bytes unchanged", "the fallback is logged")
				}
			})
		}
	}
}

// sameBytes fails t unless got is sent. The common prefix is counted only
// then: byte by byte under -race it costs more than the proxy did.
func sameBytes(t *testing.T, dir string, sent, got []byte) {
	t.Helper()
	if !bytes.Equal(sent, got) {
		t.Errorf("%s: sent %d bytes, %d arrived, equal prefix %d", dir, len(sent), len(got), commonPrefix(sent, got))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
