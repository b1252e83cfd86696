package ryll

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childModeVar makes the test binary act as a stand-in for ryll. It must
// reach the child through Spec.ExtraEnv, since the child's environment is
// explicit; that the stand-in runs at all shows ExtraEnv works.
const childModeVar = "RYLL_TEST_CHILD"

// childIgnoreVar lists signals ("INT", "TERM") the "serve" child ignores.
const childIgnoreVar = "RYLL_TEST_IGNORE"

// childSecretVar is a secret the "secret" child prints.
const childSecretVar = "RYLL_TEST_SECRET"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childModeVar); ok {
		os.Exit(runChild(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// runChild is the stand-in ryll. Modes:
//
//	serve   create the control socket and answer "hello" with "ok" and
//	        "exit N" by exiting N; on SIGINT unlink the socket and exit 0
//	        (like ryll); RYLL_TEST_IGNORE=INT[,TERM] ignores those signals
//	exit0   print a SPICE failure and exit 0, as ryll does
//	secret  print the --url value, its token and RYLL_TEST_SECRET, exit 0
//	dump    print its arguments, environment and process group, exit 0
//	hang    print a line, never create the socket
//	spawn   start a "hang" grandchild in a session of its own that
//	        inherits the output, print "holder PID", then serve
//
// A watchdog ends every child after a minute so a crashed test run does
// not leave stand-ins behind.
func runChild(mode string, args []string) int {
	go func() {
		time.Sleep(time.Minute)
		fmt.Fprintln(os.Stderr, "test child: watchdog expired")
		os.Exit(99)
	}()
	switch mode {
	case "serve":
		return childServe(argValue(args, "--control-socket"))
	case "exit0":
		fmt.Println("connecting to spice server")
		fmt.Fprintln(os.Stderr, "\x1b[31mERROR\x1b[0m spice connection failed: connection refused")
		return 0
	case "secret":
		u := argValue(args, "--url")
		fmt.Println("fetching console from " + u)
		_, query, _ := strings.Cut(u, "?")
		_, token, _ := strings.Cut(query, "=")
		fmt.Println("ticket " + token)
		fmt.Fprintln(os.Stderr, "vv password="+os.Getenv(childSecretVar))
		return 0
	case "dump":
		for _, a := range args {
			fmt.Println("arg: " + a)
		}
		for _, kv := range os.Environ() {
			fmt.Println("env: " + kv)
		}
		fmt.Printf("pgid: %d pid: %d\n", syscall.Getpgrp(), os.Getpid())
		return 0
	case "hang":
		fmt.Println("waiting for spice")
		select {}
	case "spawn":
		h := exec.Command(os.Args[0])
		h.Env = append(os.Environ(), childModeVar+"=hang")
		h.Stdout, h.Stderr = os.Stdout, os.Stderr
		h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := h.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "spawn:", err)
			return 1
		}
		fmt.Printf("holder %d\n", h.Process.Pid)
		return childServe(argValue(args, "--control-socket"))
	}
	fmt.Fprintf(os.Stderr, "test child: unknown mode %q\n", mode)
	return 98
}

func childServe(sock string) int {
	ignored := map[string]bool{}
	for _, name := range strings.Split(os.Getenv(childIgnoreVar), ",") {
		switch name {
		case "INT":
			signal.Ignore(syscall.SIGINT)
		case "TERM":
			signal.Ignore(syscall.SIGTERM)
		}
		ignored[name] = true
	}
	sigs := make(chan os.Signal, 1)
	if !ignored["INT"] {
		signal.Notify(sigs, syscall.SIGINT)
	}
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
