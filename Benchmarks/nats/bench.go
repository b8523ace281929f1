// The Go reference client (nats.go) on the same workloads as nats-bench:
//   nats-go-bench URL publish|pubsub|request|js-publish|js-publish-async|fetch|kv-put|kv-get COUNT SIZE
//   nats-go-bench URL obj-put MEGABYTES 0
// Prints messages (or requests, or MB) per second; obj-put prints the get rate and the peak
// resident memory to standard error.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

func fail(err error) {
	fmt.Println("nats-go-bench:", err)
	os.Exit(1)
}

func connect(url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		fail(err)
	}
	return nc
}

func main() {
	if len(os.Args) < 5 {
		fail(fmt.Errorf("usage: nats-go-bench URL publish|pubsub|request COUNT SIZE"))
	}
	url, mode := os.Args[1], os.Args[2]
	count, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	payload := bytes.Repeat([]byte("x"), size)
	var rate float64
	switch mode {
	case "publish":
		nc := connect(url)
		start := time.Now()
		for i := 0; i < count; i++ {
			if err := nc.Publish("bench.publish", payload); err != nil {
				fail(err)
			}
		}
		if err := nc.FlushTimeout(120 * time.Second); err != nil {
			fail(err)
		}
		rate = float64(count) / time.Since(start).Seconds()
		nc.Close()
	case "pubsub":
		sub := connect(url)
		pub := connect(url)
		done := make(chan struct{})
		received := 0
		s, err := sub.Subscribe("bench.pubsub", func(*nats.Msg) {
			received++
			if received == count {
				close(done)
			}
		})
		if err != nil {
			fail(err)
		}
		s.SetPendingLimits(-1, -1)
		sub.Flush()
		start := time.Now()
		for i := 0; i < count; i++ {
			if err := pub.Publish("bench.pubsub", payload); err != nil {
				fail(err)
			}
		}
		if err := pub.FlushTimeout(120 * time.Second); err != nil {
			fail(err)
		}
		select {
		case <-done:
		case <-time.After(120 * time.Second):
			fail(fmt.Errorf("received %d of %d", received, count))
		}
		rate = float64(count) / time.Since(start).Seconds()
		pub.Close()
		sub.Close()
	case "request":
		responder := connect(url)
		requester := connect(url)
		if _, err := responder.Subscribe("bench.request", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
			fail(err)
		}
		responder.Flush()
		if _, err := requester.Request("bench.request", payload, 5*time.Second); err != nil {
			fail(err)
		}
		start := time.Now()
		for i := 0; i < count; i++ {
			if _, err := requester.Request("bench.request", payload, 5*time.Second); err != nil {
				fail(err)
			}
		}
		rate = float64(count) / time.Since(start).Seconds()
		requester.Close()
		responder.Close()
	case "js-publish", "js-publish-async":
		// A file-stored stream of its own, created and deleted around the run.
		nc := connect(url)
		js, err := nc.JetStream(nats.PublishAsyncMaxPending(4000))
		if err != nil {
			fail(err)
		}
		name := fmt.Sprintf("BENCH_GO_%d", time.Now().UnixNano())
		if _, err := js.AddStream(&nats.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: nats.FileStorage}); err != nil {
			fail(err)
		}
		subject := name + ".x"
		start := time.Now()
		if mode == "js-publish" {
			for i := 0; i < count; i++ {
				if _, err := js.Publish(subject, payload); err != nil {
					fail(err)
				}
			}
		} else {
			for i := 0; i < count; i++ {
				if _, err := js.PublishAsync(subject, payload); err != nil {
					fail(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(120 * time.Second):
				fail(fmt.Errorf("acks did not all come"))
			}
		}
		rate = float64(count) / time.Since(start).Seconds()
		js.DeleteStream(name)
		nc.Close()
	case "fetch":
		// COUNT messages stored first (not timed), then read in batches of 100 by a pull consumer.
		nc := connect(url)
		js, err := nc.JetStream(nats.PublishAsyncMaxPending(4000))
		if err != nil {
			fail(err)
		}
		name := fmt.Sprintf("BENCH_GO_%d", time.Now().UnixNano())
		if _, err := js.AddStream(&nats.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: nats.FileStorage}); err != nil {
			fail(err)
		}
		for i := 0; i < count; i++ {
			if _, err := js.PublishAsync(name+".x", payload); err != nil {
				fail(err)
			}
		}
		<-js.PublishAsyncComplete()
		sub, err := js.PullSubscribe(name+".x", "reader", nats.AckNone())
		if err != nil {
			fail(err)
		}
		start := time.Now()
		for received := 0; received < count; {
			batch, err := sub.Fetch(100, nats.MaxWait(5*time.Second))
			if err != nil {
				fail(err)
			}
			received += len(batch)
		}
		rate = float64(count) / time.Since(start).Seconds()
		js.DeleteStream(name)
		nc.Close()
	case "kv-put", "kv-get":
		// Sequential puts of SIZE-byte values over 100 keys; or, after those puts, sequential gets.
		nc := connect(url)
		js, err := nc.JetStream()
		if err != nil {
			fail(err)
		}
		bucket := fmt.Sprintf("bench_go_%d", time.Now().UnixNano())
		kv, err := js.CreateKeyValue(&nats.KeyValueConfig{Bucket: bucket})
		if err != nil {
			fail(err)
		}
		keys := make([]string, 100)
		for i := range keys {
			keys[i] = fmt.Sprintf("key.%d", i)
			if _, err := kv.Put(keys[i], payload); err != nil {
				fail(err)
			}
		}
		start := time.Now()
		for i := 0; i < count; i++ {
			if mode == "kv-put" {
				_, err = kv.Put(keys[i%100], payload)
			} else {
				_, err = kv.Get(keys[i%100])
			}
			if err != nil {
				fail(err)
			}
		}
		rate = float64(count) / time.Since(start).Seconds()
		js.DeleteKeyValue(bucket)
		nc.Close()
	case "obj-put":
		// A file of COUNT MiB, stored and read back through an object store of its own.
		nc := connect(url)
		js, err := nc.JetStream()
		if err != nil {
			fail(err)
		}
		bucket := fmt.Sprintf("bench_go_%d", time.Now().UnixNano())
		store, err := js.CreateObjectStore(&nats.ObjectStoreConfig{Bucket: bucket})
		if err != nil {
			fail(err)
		}
		source, target := "/tmp/"+bucket+".in", "/tmp/"+bucket+".out"
		file, err := os.Create(source)
		if err != nil {
			fail(err)
		}
		mebibyte := make([]byte, 1<<20)
		for i := range mebibyte {
			mebibyte[i] = byte(i * 31)
		}
		for i := 0; i < count; i++ {
			file.Write(mebibyte)
		}
		file.Close()
		defer os.Remove(source)
		defer os.Remove(target)
		start := time.Now()
		input, _ := os.Open(source)
		if _, err := store.Put(&nats.ObjectMeta{Name: "bench"}, input); err != nil {
			fail(err)
		}
		input.Close()
		rate = float64(count) / time.Since(start).Seconds()
		start = time.Now()
		if err := store.GetFile("bench", target); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "get MB/s: %d\n", int(float64(count)/time.Since(start).Seconds()+0.5))
		var usage syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
		fmt.Fprintf(os.Stderr, "peak RSS MB: %d\n", usage.Maxrss/1024)
		js.DeleteObjectStore(bucket)
		nc.Close()
	default:
		fail(fmt.Errorf("unknown workload %s", mode))
	}
	fmt.Println(int(rate + 0.5))
}
