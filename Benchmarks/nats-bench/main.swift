// The NATS client benchmark, beside the Go reference client and nats-py on the same server.
//   nats-bench URL publish COUNT SIZE   COUNT publishes of SIZE bytes, then a flush
//   nats-bench URL pubsub COUNT SIZE    one client publishes, another (subscribed) receives all
//   nats-bench URL request COUNT SIZE   sequential requests to a responder on its own connection
//   nats-bench URL js-publish COUNT SIZE        JetStream publishes, each waiting for its ack (file storage)
//   nats-bench URL js-publish-async COUNT SIZE  JetStream publishes with up to 4,000 acks outstanding
//   nats-bench URL fetch COUNT SIZE             COUNT stored messages read in batches of 100 (pull consumer, no acks)
//   nats-bench URL kv-put COUNT SIZE            sequential KV puts over 100 keys
//   nats-bench URL kv-get COUNT SIZE            sequential KV gets over 100 keys
//   nats-bench URL obj-put MEGABYTES 0          an object of MEGABYTES stored from a file, then read back
//                                               to a file; prints put MB/s, and get MB/s and the peak
//                                               resident memory to standard error
// Prints messages (or requests) per second.

import Foundation
import JetStream
import NATSProto
import Transport

#if canImport(Glibc)
import Glibc
#endif

struct BenchError: Error { let message: String }

/// NATS_BENCH_VERBOSE=1 prints the write count (coalescing) to standard error.
let verbose = getenv("NATS_BENCH_VERBOSE") != nil

enum FileHandleStderr {
    static func print(_ text: String) { _ = (text + "\n").withCString { write(2, $0, strlen($0)) } }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func connect(_ url: String) async throws -> NATSClient {
    var options = NATSConfiguration(url: url)
    options.pendingLimits = NATSPendingLimits(messages: -1, bytes: -1)
    return try await NATSClient.connect(options)
}

func run(_ arguments: [String]) async throws -> Double {
    guard arguments.count >= 5, let count = Int(arguments[3]), let size = Int(arguments[4]) else {
        throw BenchError(message: "usage: see the header of main.swift")
    }
    let url = arguments[1]
    let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
    switch arguments[2] {
    case "publish":
        let client = try await connect(url)
        let start = ContinuousClock.now
        for _ in 0..<count { try await client.publish(payload, to: "bench.publish") }
        try await client.flush(timeout: .seconds(120))
        let rate = Double(count) / seconds(since: start)
        if verbose { FileHandleStderr.print("writes: \(client.statistics.writes)") }
        await client.close()
        return rate
    case "pubsub":
        let subscriber = try await connect(url)
        let publisher = try await connect(url)
        let subscription = try await subscriber.subscribe(to: "bench.pubsub")
        try await subscriber.flush()
        let start = ContinuousClock.now
        let consumer = Task {
            var received = 0
            for try await _ in subscription {
                received += 1
                if received == count { break }
            }
            return received
        }
        for _ in 0..<count { try await publisher.publish(payload, to: "bench.pubsub") }
        try await publisher.flush(timeout: .seconds(120))
        let received = try await consumer.value
        let rate = Double(received) / seconds(since: start)
        guard received == count else { throw BenchError(message: "received \(received) of \(count)") }
        await publisher.close()
        await subscriber.close()
        return rate
    case "request":
        let responder = try await connect(url)
        let requester = try await connect(url)
        let service = try await responder.subscribe(to: "bench.request")
        let serving = Task {
            for try await request in service {
                try await responder.respond(to: request, with: request.payload)
            }
        }
        try await responder.flush()
        _ = try await requester.request(payload, subject: "bench.request")
        let start = ContinuousClock.now
        for _ in 0..<count { _ = try await requester.request(payload, subject: "bench.request") }
        let rate = Double(count) / seconds(since: start)
        serving.cancel()
        await requester.close()
        await responder.close()
        return rate
    case "js-publish", "js-publish-async":
        // A file-stored stream of its own, created and deleted around the run.
        let client = try await connect(url)
        let js = JetStreamContext(client: client)
        let name = "BENCH_SWIFT_\(ContinuousClock.now.hashValue & 0x7fff_ffff)"
        try await js.createStream(StreamConfig(name: name, subjects: ["\(name).>"]))
        let subject = name + ".x"
        let start = ContinuousClock.now
        if arguments[2] == "js-publish" {
            for _ in 0..<count { try await js.publish(payload, to: subject) }
        } else {
            let publisher = try await js.makeAsyncPublisher(maximumPending: 4000)
            for _ in 0..<count { try await publisher.publish(payload, to: subject) }
            await publisher.complete()
            await publisher.close()
        }
        let rate = Double(count) / seconds(since: start)
        try await js.deleteStream(name)
        await client.close()
        return rate
    case "fetch":
        // `count` messages stored first (not timed), then read in batches of 100.
        let client = try await connect(url)
        let js = JetStreamContext(client: client)
        let name = "BENCH_SWIFT_\(ContinuousClock.now.hashValue & 0x7fff_ffff)"
        try await js.createStream(StreamConfig(name: name, subjects: ["\(name).>"]))
        let publisher = try await js.makeAsyncPublisher(maximumPending: 4000)
        for _ in 0..<count { try await publisher.publish(payload, to: name + ".x") }
        await publisher.complete()
        await publisher.close()
        try await js.createConsumer(ConsumerConfig(durableName: "reader", ackPolicy: .none), stream: name)
        let start = ContinuousClock.now
        var received = 0
        while received < count {
            received += try await js.fetch(consumer: "reader", stream: name, batch: 100, expires: .seconds(5)).count
        }
        let rate = Double(count) / seconds(since: start)
        try await js.deleteStream(name)
        await client.close()
        return rate
    case "kv-put", "kv-get":
        // Sequential puts of `size`-byte values over 100 keys; or, after those puts, sequential gets.
        let client = try await connect(url)
        let js = JetStreamContext(client: client)
        let bucket = "bench_swift_\(ContinuousClock.now.hashValue & 0x7fff_ffff)"
        let kv = try await js.createKeyValue(KeyValueConfig(bucket: bucket))
        let keys = (0..<100).map { "key.\($0)" }
        for key in keys { try await kv.put(key, payload) }
        let start = ContinuousClock.now
        if arguments[2] == "kv-put" {
            for index in 0..<count { try await kv.put(keys[index % 100], payload) }
        } else {
            for index in 0..<count {
                guard try await kv.get(keys[index % 100]) != nil else { throw BenchError(message: "a key went missing") }
            }
        }
        let rate = Double(count) / seconds(since: start)
        try await js.deleteKeyValue(bucket)
        await client.close()
        return rate
    case "obj-put":
        // A file of `count` MiB, stored and read back through an object store of its own.
        let client = try await connect(url)
        let js = JetStreamContext(client: client)
        let bucket = "bench_swift_\(ContinuousClock.now.hashValue & 0x7fff_ffff)"
        let store = try await js.createObjectStore(ObjectStoreConfig(bucket: bucket))
        let source = "/tmp/\(bucket).in"
        let target = "/tmp/\(bucket).out"
        guard FileManager.default.createFile(atPath: source, contents: nil), let file = FileHandle(forWritingAtPath: source) else {
            throw BenchError(message: "cannot write \(source)")
        }
        let mebibyte = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        for _ in 0..<count { try file.write(contentsOf: mebibyte) }
        try file.close()
        defer { try? FileManager.default.removeItem(atPath: source); try? FileManager.default.removeItem(atPath: target) }
        let putStart = ContinuousClock.now
        try await store.put("bench", fileAt: source)
        let putRate = Double(count) / seconds(since: putStart)
        let getStart = ContinuousClock.now
        try await store.get("bench", toFile: target)
        let getRate = Double(count) / seconds(since: getStart)
        FileHandleStderr.print("get MB/s: \(Int(getRate.rounded()))")
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        FileHandleStderr.print("peak RSS MB: \(usage.ru_maxrss / 1024)")
        try await js.deleteObjectStore(bucket)
        await client.close()
        return putRate
    default:
        throw BenchError(message: "unknown workload \(arguments[2])")
    }
}

let task = Task.detached { try await run(CommandLine.arguments) }
do {
    let rate = try await task.value
    print(Int(rate.rounded()))
} catch {
    print("nats-bench: \(error)")
    exit(1)
}
