// Command smoke is the workload of hardway's smoke tests: an HTTP server
// that answers GET / with the pod's name, namespace, node and IP (from the
// environment, which the pod spec fills through the downward API) and
// GET /healthz with "ok". It logs every request to stdout, so that
// `kubectl logs` has something to show, and stops cleanly on SIGTERM.
//
// Environment: POD_NAME, POD_NAMESPACE, NODE_NAME, POD_IP; LISTEN (default
// ":8080") is the address to serve on.
//
// Two client commands are what the smoke tests run inside a pod with
// `kubectl exec` (the image has no shell and no other tool):
//
//	smoke get URL       GET URL with a 10 s timeout; prints the body, exits 1
//	                    unless the status is 200
//	smoke lookup NAME   resolves NAME with the pod's /etc/resolv.conf (Go's
//	                    own resolver: nameserver, search, ndots); prints one
//	                    address a line, exits 1 if there is none
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is stamped by the image builder (-X main.version=<image tag>).
var version = "dev"

// Identity is what GET / answers, as JSON.
type Identity struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Node      string `json:"node"`
	IP        string `json:"ip"`
	Version   string `json:"version"`
}

func main() {
	if len(os.Args) > 1 {
		os.Exit(client(os.Args[1:]))
	}
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.SetOutput(os.Stdout)
	if err := run(); err != nil {
		log.Printf("smoke: %v", err)
		os.Exit(1)
	}
}

// client runs a client command and returns the exit status.
func client(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch {
	case args[0] == "-v" && len(args) == 1:
		fmt.Printf("smoke %s\n", version)
	case args[0] == "get" && len(args) == 2:
		err = getURL(ctx, args[1])
	case args[0] == "lookup" && len(args) == 2:
		err = lookup(ctx, args[1])
	default:
		fmt.Fprintln(os.Stderr, "usage: smoke [-v | get URL | lookup NAME]")
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "smoke %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// getURL prints the body of a GET of url, which must answer 200.
func getURL(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// lookup prints the addresses of name, resolved as the pod resolves it.
func lookup(ctx context.Context, name string) error {
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
	return nil
}

func run() error {
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	id := Identity{
		Pod:       os.Getenv("POD_NAME"),
		Namespace: os.Getenv("POD_NAMESPACE"),
		Node:      os.Getenv("NODE_NAME"),
		IP:        os.Getenv("POD_IP"),
		Version:   version,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(id), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("smoke %s listening on %s (pod %q, node %q, ip %q)", version, ln.Addr(), id.Pod, id.Node, id.IP)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("smoke: shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func handler(id Identity) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(id)
	})
	return mux
}
