// A single-member etcd for a throwaway control plane, built by
// `cargo xtask tools --cluster` on go.etcd.io/etcd/server/v3/embed.
//
// It listens on loopback only. `--client-port 0` picks a free port: the
// client URL is printed on stdout and, with `--address-file`, written to that
// file (through a temporary name, so a reader never sees half of it) once
// etcd is ready, which is how the caller learns the port without a race.
// SIGTERM or SIGINT close etcd and exit 0.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dataDir := flag.String("data-dir", "", "the data folder (required)")
	clientPort := flag.Int("client-port", 2379, "loopback port for clients; 0 picks a free one")
	addressFile := flag.String("address-file", "", "write the client URL here once etcd is ready")
	showVersion := flag.Bool("version", false, "print the etcd version and exit")
	flag.Parse()
	if *showVersion {
		// The version of the etcd module actually linked in, so no ldflag
		// can make it lie.
		fmt.Printf("etcd v%s\n", version.Version)
		return
	}
	if *dataDir == "" || flag.NArg() > 0 {
		fail("usage: etcd --data-dir DIR [--client-port N] [--address-file FILE]")
	}

	cfg := embed.NewConfig()
	cfg.Name = "xtask"
	cfg.Dir = *dataDir
	cfg.LogLevel = "warn"
	// The data is thrown away with the control plane: fsync only costs time.
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *clientPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	// One member never dials a peer, but etcd always opens a peer listener:
	// a free loopback port, so two control planes never collide on 2380.
	// The advertised peer URL only has to match the initial cluster.
	cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:2380"}}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fail(fmt.Sprintf("etcd: cannot start: %v", err))
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		fail(fmt.Sprintf("etcd: failed before it was ready: %v", err))
	case <-time.After(60 * time.Second):
		e.Close()
		fail("etcd: not ready after 60s")
	}

	address := "http://" + e.Clients[0].Addr().String()
	if *addressFile != "" {
		tmp := *addressFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(address+"\n"), 0o600); err != nil {
			e.Close()
			fail(fmt.Sprintf("etcd: cannot write %s: %v", tmp, err))
		}
		if err := os.Rename(tmp, *addressFile); err != nil {
			e.Close()
			fail(fmt.Sprintf("etcd: cannot write %s: %v", *addressFile, err))
		}
	}
	fmt.Println(address)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-signals:
		e.Close()
	case err := <-e.Err():
		e.Close()
		fail(fmt.Sprintf("etcd: stopped: %v", err))
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}
