// etcd 3.5's server main package lives in the repository's root module, which is not published
// with its dependencies pinned; this is the same two lines, over the published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
