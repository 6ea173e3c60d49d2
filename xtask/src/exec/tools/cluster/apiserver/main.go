// kube-apiserver, built by `cargo xtask tools --cluster` from the published
// k8s.io/kubernetes module: the same few lines as the upstream
// cmd/kube-apiserver/apiserver.go, in a wrapper module whose go.mod (written
// at build time) replaces the staging modules with their published versions.
// The version is stamped with -ldflags on k8s.io/component-base/version.
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob, as upstream

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
