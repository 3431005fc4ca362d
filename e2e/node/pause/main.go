// Command pause is the local node's sandbox image: it holds a pod's
// namespaces open and exits on SIGTERM or SIGINT, as Kubernetes' pause does.
// Built here because no registry can be reached to pull registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go reap()
	<-stop
}

// reap collects exited children: as the sandbox's PID 1 it inherits orphans
// when containers share the pod's PID namespace.
func reap() {
	child := make(chan os.Signal, 1)
	signal.Notify(child, syscall.SIGCHLD)
	for range child {
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
