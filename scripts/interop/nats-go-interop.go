// nats.go's view of KV buckets and object stores, for the Swift interoperability tests: the
// reference client reads what Swift wrote and writes what Swift reads.
//
//	nats-go-interop URL kv-read BUCKET KEY...        {"KEY": {"value", "revision", "operation"} or null}
//	nats-go-interop URL kv-write BUCKET KEY VALUE    {"revision": N}
//	nats-go-interop URL obj-get BUCKET NAME FILE     writes the object (nats.go checks the digest); its info
//	nats-go-interop URL obj-put BUCKET NAME FILE     stores FILE as NAME; its info
//	nats-go-interop URL obj-rename BUCKET NAME NEW   renames NAME to NEW (UpdateMeta); the new info
//	nats-go-interop URL obj-link BUCKET NAME TARGET-BUCKET TARGET-NAME   stores NAME as a link to the target
//
// The object verbs add the process's peak resident memory, "max_rss_kb".
//
// Built by scripts/test-servers.sh in GOPATH mode against Debian's golang-github-nats-io-go-nats-dev.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/nats-io/nats.go"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nats-go-interop:", err)
	os.Exit(1)
}

func info(object *nats.ObjectInfo) map[string]interface{} {
	described := map[string]interface{}{"name": object.Name, "size": object.Size, "chunks": object.Chunks, "digest": object.Digest, "nuid": object.NUID, "description": object.Description}
	if object.Opts != nil && object.Opts.Link != nil {
		described["link"] = map[string]string{"bucket": object.Opts.Link.Bucket, "name": object.Opts.Link.Name}
	}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		described["max_rss_kb"] = usage.Maxrss
	}
	return described
}

func main() {
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: nats-go-interop URL VERB BUCKET ..."))
	}
	nc, err := nats.Connect(os.Args[1])
	if err != nil {
		fail(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		fail(err)
	}
	verb, bucket, args := os.Args[2], os.Args[3], os.Args[4:]
	var out interface{}
	switch verb {
	case "kv-read", "kv-write":
		kv, err := js.KeyValue(bucket)
		if err != nil {
			fail(err)
		}
		if verb == "kv-write" {
			revision, err := kv.Put(args[0], []byte(args[1]))
			if err != nil {
				fail(err)
			}
			out = map[string]uint64{"revision": revision}
			break
		}
		entries := map[string]interface{}{}
		for _, key := range args {
			entry, err := kv.Get(key)
			if err == nats.ErrKeyNotFound {
				entries[key] = nil
				continue
			} else if err != nil {
				fail(err)
			}
			entries[key] = map[string]interface{}{"value": string(entry.Value()), "revision": entry.Revision(), "operation": entry.Operation().String()}
		}
		out = entries
	case "obj-get", "obj-put", "obj-rename", "obj-link":
		store, err := js.ObjectStore(bucket)
		if err != nil {
			fail(err)
		}
		if verb == "obj-rename" {
			current, err := store.GetInfo(args[0])
			if err != nil {
				fail(err)
			}
			if err := store.UpdateMeta(args[0], &nats.ObjectMeta{Name: args[1], Description: current.Description, Headers: current.Headers}); err != nil {
				fail(err)
			}
			renamed, err := store.GetInfo(args[1])
			if err != nil {
				fail(err)
			}
			out = info(renamed)
			break
		}
		if verb == "obj-link" {
			target, err := js.ObjectStore(args[1])
			if err != nil {
				fail(err)
			}
			object, err := target.GetInfo(args[2])
			if err != nil {
				fail(err)
			}
			link, err := store.AddLink(args[0], object)
			if err != nil {
				fail(err)
			}
			out = info(link)
			break
		}
		if verb == "obj-put" {
			file, err := os.Open(args[1])
			if err != nil {
				fail(err)
			}
			object, err := store.Put(&nats.ObjectMeta{Name: args[0]}, file)
			if err != nil {
				fail(err)
			}
			out = info(object)
			break
		}
		result, err := store.Get(args[0])
		if err != nil {
			fail(err)
		}
		file, err := os.Create(args[1])
		if err != nil {
			fail(err)
		}
		if _, err := io.Copy(file, result); err != nil {
			os.Remove(args[1])
			fail(err)
		}
		file.Close()
		object, err := result.Info()
		if err != nil {
			fail(err)
		}
		out = info(object)
	default:
		fail(fmt.Errorf("unknown verb %s", verb))
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
}
