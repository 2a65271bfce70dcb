// The floor of a Go reverse proxy, for bench/proxy.ts (diagnostic column "go floor"):
// what a compiled data plane would cost. Standard library only. Not product code.
module portcullis.dev/bench/go-floor-proxy

go 1.24.0
