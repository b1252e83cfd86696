package ryll

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shakenfist/kerbside-latency/harness/childproc/childtest"
)

// childModeVar selects the stand-in's mode (childtest.Main).
const childModeVar = childtest.ModeVar

// childIgnoreVar lists signals ("INT", "TERM") the "serve" child ignores
// (childtest.Signals).
const childIgnoreVar = childtest.IgnoreVar

// childSecretVar is a secret the "secret" child prints.
const childSecretVar = "RYLL_TEST_SECRET"

// TestMain makes this test binary the stand-in ryll. Its mode reaches it
// through Spec.ExtraEnv, since the child's environment is explicit; that
// the stand-in runs at all shows ExtraEnv works. Modes:
//
//	serve   create the control socket and answer "hello" with "ok" and
//	        "exit N" by exiting N; on SIGINT unlink the socket and exit 0
//	        (like ryll); childtest.Ignore("INT[,TERM]") ignores those
//	exit0   print a SPICE failure and exit 0, as ryll does
//	secret  print the --url value, its token and RYLL_TEST_SECRET, exit 0
//	dump    print its arguments, environment and process group, exit 0
//	hang    print a line, never create the socket
//	spawn   start a grandchild in a session of its own that holds the
//	        output (childtest.SpawnHolder), then serve
func TestMain(m *testing.M) {
	childtest.Main(m, map[string]childtest.Mode{
		"serve": func(args []string) int { return childServe(argValue(args, "--control-socket")) },
		"exit0": func([]string) int {
			fmt.Println("connecting to spice server")
			fmt.Fprintln(os.Stderr, "\x1b[31mERROR\x1b[0m spice connection failed: connection refused")
			return 0
		},
		"secret": func(args []string) int {
			u := argValue(args, "--url")
			fmt.Println("fetching console from " + u)
			_, query, _ := strings.Cut(u, "?")
			_, token, _ := strings.Cut(query, "=")
			fmt.Println("ticket " + token)
			fmt.Fprintln(os.Stderr, "vv password="+os.Getenv(childSecretVar))
			return 0
		},
		"dump": func(args []string) int {
			for _, a := range args {
				fmt.Println("arg: " + a)
			}
			for _, kv := range os.Environ() {
				fmt.Println("env: " + kv)
			}
			fmt.Printf("pgid: %d pid: %d\n", syscall.Getpgrp(), os.Getpid())
			return 0
		},
		"hang": func([]string) int {
			fmt.Println("waiting for spice")
			select {}
		},
		"spawn": func(args []string) int {
			if _, err := childtest.SpawnHolder(true); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return childServe(argValue(args, "--control-socket"))
		},
	})
}

func childServe(sock string) int {
	sigs := childtest.Signals(syscall.SIGINT) // SIGTERM kills it, as it does ryll
	// Signals are set up before the socket exists, so a test that saw the
	// socket answer knows they are in force.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("control socket listening")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go childConn(c)
		}
	}()
	<-sigs // blocks forever when SIGINT is ignored
	fmt.Fprintln(os.Stderr, "got SIGINT, unlinking control socket")
	_ = ln.Close() // unlinks the socket file, as ryll does
	return 0
}

func childConn(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "hello":
			fmt.Fprintln(c, "ok")
		case strings.HasPrefix(line, "exit "):
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "exit "))
			fmt.Fprintf(os.Stderr, "exiting with status %d by request\n", n)
			os.Exit(n)
		default:
			fmt.Fprintln(c, "unknown")
		}
	}
}

// argValue returns the value after flag in args, or "".
func argValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
