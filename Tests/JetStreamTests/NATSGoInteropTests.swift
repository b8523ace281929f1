import Foundation
import JetStream
import NATSProto
import TestSupport
import Testing
import Transport

/// nats.go, the reference client, reads the KV entries and objects Swift wrote, and writes
/// ones Swift reads (scripts/interop/nats-go-interop.go, built by `make test`).
@Suite("JetStream interoperability with nats.go (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSGoInteropTests {
    static func program() -> String? {
        guard let path = LiveServer.value("INFRA_TEST_NATS_GO_INTEROP") else {
            if LiveServer.isCI { Issue.record("INFRA_TEST_NATS_GO_INTEROP is not set: run `make test`") }
            return nil
        }
        return path
    }

    static func json(_ output: CommandOutput) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: output.standardOutput) as? [String: Any], "\(output.text)")
    }

    @Test func natsGoReadsSwiftsEntriesAndSwiftReadsNatsGos() async throws {
        guard let program = Self.program() else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let kv = try await KeyValueTests.bucket(js)
        defer { Cleanup.later { try? await js.deleteKeyValue(kv.bucket); await js.client.close() } }
        let revision = try await kv.put("lang.ru", "русский")
        try await kv.put("gone", "soon")
        try await kv.delete("gone")
        let read = try Self.json(try await runCommand(program, [url, "kv-read", kv.bucket, "lang.ru", "gone", "absent"]))
        let entry = try #require(read["lang.ru"] as? [String: Any])
        #expect(entry["value"] as? String == "русский" && entry["revision"] as? Int == Int(revision))
        #expect(read["gone"] is NSNull && read["absent"] is NSNull, "\(read)")
        let wrote = try Self.json(try await runCommand(program, [url, "kv-write", kv.bucket, "from.go", "hello from nats.go"]))
        let fromGo = try #require(try await kv.get("from.go"))
        #expect(fromGo.text == "hello from nats.go" && Int(fromGo.revision) == wrote["revision"] as? Int)
    }

    @Test func natsGoReadsSwiftsObjectsAndSwiftReadsNatsGos() async throws {
        guard let program = Self.program() else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let store = try await ObjectStoreTests.store(js)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        let directory = try LiveServer.scratchDirectory("go-objects")
        defer { try? FileManager.default.removeItem(at: directory) }

        let ours = ObjectStoreTests.bytes(900_000, seed: 12)
        let stored = try await store.put("swift.wav", data: ours)
        let copy = directory.appendingPathComponent("go-read.bin")
        let seen = try Self.json(try await runCommand(program, [url, "obj-get", store.bucket, "swift.wav", copy.path]))
        #expect(try Data(contentsOf: copy) == ours, "nats.go read the bytes (and checked the digest)")
        #expect(seen["digest"] as? String == stored.digest && seen["chunks"] as? Int == Int(stored.chunks))

        let theirs = ObjectStoreTests.bytes(333_333, seed: 13)
        let source = directory.appendingPathComponent("go-put.bin")
        try theirs.write(to: source)
        let written = try Self.json(try await runCommand(program, [url, "obj-put", store.bucket, "go.wav", source.path]))
        let info = try #require(try await store.info("go.wav"))
        #expect(info.digest == written["digest"] as? String && info.size == 333_333)
        var data = Data()
        for try await chunk in try #require(try await store.get("go.wav")) { data.append(contentsOf: chunk.readableBytesView) }
        #expect(data == theirs)
    }

    @Test func natsGoRenamesAndLinksWhatSwiftStoredAndSwiftFollows() async throws {
        guard let program = Self.program() else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let store = try await ObjectStoreTests.store(js)
        let links = try await ObjectStoreTests.store(js)
        defer {
            Cleanup.later {
                try? await js.deleteObjectStore(store.bucket)
                try? await js.deleteObjectStore(links.bucket)
                await js.client.close()
            }
        }
        let ours = ObjectStoreTests.bytes(400_000, seed: 14)
        let stored = try await store.put("draft.wav", data: ours, description: "first take")
        let renamed = try Self.json(try await runCommand(program, [url, "obj-rename", store.bucket, "draft.wav", "final.wav"]))
        #expect(renamed["nuid"] as? String == stored.nuid && renamed["description"] as? String == "first take")
        #expect(try await store.info("draft.wav") == nil)
        let info = try #require(try await store.info("final.wav"))
        #expect(info.digest == stored.digest && info.size == 400_000)

        let linked = try Self.json(try await runCommand(program, [url, "obj-link", links.bucket, "current.wav", store.bucket, "final.wav"]))
        #expect((linked["link"] as? [String: String]) == ["bucket": store.bucket, "name": "final.wav"])
        var data = Data()
        for try await chunk in try #require(try await links.get("current.wav")) { data.append(contentsOf: chunk.readableBytesView) }
        #expect(data == ours, "Swift follows the link nats.go stored")

        // nats.go follows a link Swift stored.
        try await links.addLink("swift-link.wav", to: info)
        let directory = try LiveServer.scratchDirectory("go-links")
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("via-link.bin")
        _ = try await runCommand(program, [url, "obj-get", links.bucket, "swift-link.wav", copy.path])
        #expect(try Data(contentsOf: copy) == ours)
    }

    /// A file of `megabytes` MiB: a seeded 1 MiB block, each copy stamped with its index.
    static func largeFile(at url: URL, megabytes: Int) throws {
        var block = [UInt8](ObjectStoreTests.bytes(1 << 20, seed: 15))
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        for index in 0..<megabytes {
            withUnsafeBytes(of: UInt64(index).littleEndian) { block.replaceSubrange(0..<8, with: $0) }
            try handle.write(contentsOf: block)
        }
    }

    @Test(.timeLimit(.minutes(3))) func aTwoHundredMegabyteObjectCrossesBothWaysInBoundedMemory() async throws {
        guard let program = Self.program() else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        // File storage: 200 MB stays out of the server's memory.
        let store = try await js.createObjectStore(ObjectStoreConfig(bucket: LiveServer.streamName("big")))
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        let directory = try LiveServer.scratchDirectory("go-large")
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("audio.bin")
        try Self.largeFile(at: source, megabytes: 200)

        let (stored, putGrowth) = try await peakMemoryGrowth { try await store.put("swift-200mb", fileAt: source.path) }
        #expect(stored.size == 200 << 20 && stored.chunks == 1600)
        let copy = directory.appendingPathComponent("go-read.bin")
        let goRead = try Self.json(try await runCommand(program, [url, "obj-get", store.bucket, "swift-200mb", copy.path]))
        #expect(goRead["digest"] as? String == stored.digest, "nats.go read all 200 MB and its digest matched")
        #expect(FileManager.default.contents(atPath: copy.path).map(\.count) == 200 << 20)
        try FileManager.default.removeItem(at: copy)

        let goWrote = try Self.json(try await runCommand(program, [url, "obj-put", store.bucket, "go-200mb", source.path]))
        let target = directory.appendingPathComponent("swift-read.bin")
        let (read, getGrowth) = try await peakMemoryGrowth { try await store.get("go-200mb", toFile: target.path) }
        #expect(read?.digest == goWrote["digest"] as? String && read?.digest == stored.digest)
        #expect((try FileManager.default.attributesOfItem(atPath: target.path)[.size] as? Int) == 200 << 20)

        let goPeak = [goRead["max_rss_kb"], goWrote["max_rss_kb"]].compactMap { $0 as? Int }.map { $0 / 1024 }
        print("200 MB object: Swift put grew RSS by \(putGrowth >> 20) MB, get by \(getGrowth >> 20) MB; nats.go peak RSS (get, put) \(goPeak) MB")
        // A 200 MB object must never be held whole: far below its size, in either direction.
        #expect(putGrowth < 64 << 20 + sanitizerMemorySlack, "putting 200 MB grew the process by \(putGrowth >> 20) MB")
        #expect(getGrowth < 64 << 20 + sanitizerMemorySlack, "reading 200 MB grew the process by \(getGrowth >> 20) MB")
    }
}
