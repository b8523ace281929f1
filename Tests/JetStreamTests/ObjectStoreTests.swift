import Foundation
import JetStream
import NATSProto
import TestSupport
import Testing
import Transport

@Suite("JetStream object store (live)", .timeLimit(.minutes(2)), .enabled(if: LiveServer.nats.isAvailable))
struct ObjectStoreTests {
    static func store(_ js: JetStreamContext) async throws -> ObjectStore {
        var config = ObjectStoreConfig(bucket: LiveServer.streamName("obj"))
        config.storage = .memory
        return try await js.createObjectStore(config)
    }

    /// `count` bytes from a seeded generator.
    static func bytes(_ count: Int, seed: UInt64) -> Data {
        var generator = SplitMix64(seed: seed)
        var data = Data(count: count)
        data.withUnsafeMutableBytes { raw in
            for index in raw.indices { raw[index] = UInt8(truncatingIfNeeded: generator.next()) }
        }
        return data
    }

    static func read(_ reader: ObjectReader) async throws -> Data {
        var data = Data()
        for try await chunk in reader { data.append(contentsOf: chunk.readableBytesView) }
        return data
    }

    @Test func objectsArePutInChunksReadBackCheckedListedReplacedAndDeleted() async throws {
        let js = try await LiveServer.jetStream()
        let store = try await Self.store(js)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        let audio = Self.bytes(1_000_000, seed: 7)
        let info = try await store.put("voice/42.ogg", data: audio, description: "a voice message")
        #expect(info.size == 1_000_000 && info.chunks == 8, "128 KiB chunks: \(info.chunks)")
        #expect(info.digest == "SHA-256=" + Base64.encode(Crypto.sha256(audio)).replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_"))
        let reader = try #require(try await store.get("voice/42.ogg"))
        #expect(try await Self.read(reader) == audio)
        #expect(try await store.info("voice/42.ogg")?.description == "a voice message")
        let empty = try await store.put("empty", data: Data())
        #expect(empty.size == 0 && empty.chunks == 0)
        #expect(try await Self.read(try #require(try await store.get("empty"))).isEmpty)
        #expect(Set(try await store.list().map(\.name)) == ["voice/42.ogg", "empty"])

        let replaced = try await store.put("voice/42.ogg", data: Self.bytes(300_000, seed: 8))
        #expect(replaced.nuid != info.nuid)
        try await Task.sleep(for: .milliseconds(100))
        let state = try await js.streamInfo(store.streamName).state
        #expect(state.messages == 3 + 2, "the old object's chunks were purged: 3 new chunks and 2 metas, got \(state.messages)")

        try await store.delete("voice/42.ogg")
        #expect(try await store.info("voice/42.ogg") == nil)
        #expect(try await store.info("voice/42.ogg", includingDeleted: true)?.isDeleted == true)
        #expect(try await store.get("voice/42.ogg") == nil)
        #expect(try await store.list().map(\.name) == ["empty"])
        #expect(try await store.list(includingDeleted: true).count == 2)
    }

    @Test func aFileIsStoredAndWrittenBackAndACorruptObjectIsRefusedAndRemoved() async throws {
        let js = try await LiveServer.jetStream()
        let store = try await Self.store(js)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        let directory = try LiveServer.scratchDirectory("objects")
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("in.bin")
        let contents = Self.bytes(2_500_000, seed: 9)
        try contents.write(to: source)
        let stored = try await store.put("file", fileAt: source.path, chunkSize: 64 * 1024)
        #expect(stored.chunks == 39 && stored.options?.maxChunkSize == 65536)
        let target = directory.appendingPathComponent("out.bin")
        try await store.get("file", toFile: target.path)
        #expect(try Data(contentsOf: target) == contents)

        // A meta whose digest does not match its chunks.
        var forged = stored
        forged.digest = "SHA-256=" + String(repeating: "A", count: 43) + "="
        let json = try JSONEncoder().encode(forged)
        try await js.publish(Array(json), to: "$O.\(store.bucket).M.\(Base64.encode(Array("file".utf8)))", headers: ["Nats-Rollup": "sub"])
        let broken = directory.appendingPathComponent("broken.bin")
        let error = await #expect(throws: JetStreamError.self) { try await store.get("file", toFile: broken.path) }
        #expect(error?.kind == .decoding && error?.message.contains("digest") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: broken.path), "a file that failed its digest is removed")
    }

    @Test func natsPyReadsWhatSwiftStoredAndTheOtherWayRound() async throws {
        guard let (python, script) = LiveServer.pythonOracle("object-oracle.py") else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let store = try await Self.store(js)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        let directory = try LiveServer.scratchDirectory("objects")
        defer { try? FileManager.default.removeItem(at: directory) }

        let ours = Self.bytes(700_000, seed: 10)
        let stored = try await store.put("from-swift.wav", data: ours)
        let copy = directory.appendingPathComponent("python-read.bin")
        let read = try await runCommand(python, [script, url, store.bucket, "get", "from-swift.wav", copy.path])
        let seen = try #require(try JSONSerialization.jsonObject(with: read.standardOutput) as? [String: Any])
        #expect(try Data(contentsOf: copy) == ours, "nats-py read the bytes Swift stored (and checked the digest)")
        #expect(seen["digest"] as? String == stored.digest && seen["size"] as? Int == 700_000)

        let theirs = Self.bytes(450_000, seed: 11)
        let source = directory.appendingPathComponent("python-put.bin")
        try theirs.write(to: source)
        let put = try await runCommand(python, [script, url, store.bucket, "put", "from-python.wav", source.path])
        let written = try #require(try JSONSerialization.jsonObject(with: put.standardOutput) as? [String: Any])
        let info = try #require(try await store.info("from-python.wav"))
        #expect(info.digest == written["digest"] as? String && info.size == 450_000)
        #expect(try await Self.read(try #require(try await store.get("from-python.wav"))) == theirs)
    }

    @Test func linksAreFollowedRenamesMoveTheMetaAndNatsPyReadsBoth() async throws {
        let js = try await LiveServer.jetStream()
        let store = try await Self.store(js)
        let other = try await Self.store(js)
        defer {
            Cleanup.later {
                try? await js.deleteObjectStore(store.bucket)
                try? await js.deleteObjectStore(other.bucket)
                await js.client.close()
            }
        }
        let audio = Self.bytes(300_000, seed: 12)
        let original = try await store.put("take-1.ogg", data: audio)
        let link = try await other.addLink("latest.ogg", to: original)
        #expect(link.link == ObjectInfo.Link(bucket: store.bucket, name: "take-1.ogg") && link.size == 0 && link.digest == nil)
        #expect(try await Self.read(try #require(try await other.get("latest.ogg"))) == audio, "a link reads as its target")
        let bucketLink = try await other.addBucketLink("all-takes", to: store)
        #expect(bucketLink.link == ObjectInfo.Link(bucket: store.bucket))
        let bucketError = await #expect(throws: JetStreamError.self) { _ = try await other.get("all-takes") }
        #expect(bucketError?.kind == .usage && bucketError?.message.contains("link to the bucket") == true)
        let linkToLink = await #expect(throws: JetStreamError.self) { try await store.addLink("again", to: link) }
        #expect(linkToLink?.message.contains("a link itself") == true)
        // A link never overwrites an object; it may replace another link.
        _ = try await other.put("plain", data: Data([1, 2, 3]))
        await #expect(throws: JetStreamError.self) { try await other.addLink("plain", to: original) }
        try await other.addLink("latest.ogg", to: original)

        if let (python, script) = LiveServer.pythonOracle("object-oracle.py") {
            let directory = try LiveServer.scratchDirectory("objects")
            defer { try? FileManager.default.removeItem(at: directory) }
            let copy = directory.appendingPathComponent("via-link.bin")
            let url = try LiveServer.require(LiveServer.nats.rawValue)
            _ = try await runCommand(python, [script, url, other.bucket, "get", "latest.ogg", copy.path])
            #expect(try Data(contentsOf: copy) == audio, "nats-py follows the link Swift stored")
        }

        // Renaming keeps the chunks and moves the meta; a taken name is refused.
        let renamed = try await store.updateMeta(
            "take-1.ogg", ObjectMeta(name: "final.ogg", description: "the chosen take", headers: ["Content-Type": ["audio/ogg"]]))
        #expect(renamed.nuid == original.nuid && renamed.digest == original.digest)
        #expect(try await store.info("take-1.ogg", includingDeleted: true) == nil, "the old name's meta is purged")
        #expect(try await Self.read(try #require(try await store.get("final.ogg"))) == audio)
        _ = try await store.put("other.ogg", data: Data([9]))
        let taken = await #expect(throws: JetStreamError.self) { try await store.updateMeta("other.ogg", ObjectMeta(name: "final.ogg")) }
        #expect(taken?.message.contains("exists") == true)
        await #expect(throws: JetStreamError.self) { try await store.updateMeta("missing", ObjectMeta(name: "x")) }

        guard let (python, script) = LiveServer.pythonOracle("object-oracle.py") else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let seen = try JSONSerialization.jsonObject(with: try await runCommand(python, [script, url, store.bucket, "info", "final.ogg"]).standardOutput)
        let meta = try #require(seen as? [String: Any])
        #expect(meta["description"] as? String == "the chosen take" && meta["digest"] as? String == original.digest)
        #expect((meta["headers"] as? [String: Any])?["Content-Type"] != nil, "nats-py reads the headers Swift wrote: \(meta)")
        let linkSeen = try JSONSerialization.jsonObject(with: try await runCommand(python, [script, url, other.bucket, "info", "all-takes"]).standardOutput)
        let linkRead = try #require(((linkSeen as? [String: Any])?["link"]) as? [String: Any], "nats-py reads the bucket link")
        #expect(linkRead["bucket"] as? String == store.bucket && linkRead["name"] is NSNull)
        // nats-py changes the description; Swift reads it.
        _ = try await runCommand(python, [script, url, store.bucket, "describe", "final.ogg", "described by nats-py"])
        #expect(try await store.info("final.ogg")?.description == "described by nats-py")
        #expect(try await Self.read(try #require(try await store.get("final.ogg"))) == audio)
    }

    @Test func aWatchDeliversTheCurrentObjectsThenAMarkerThenChanges() async throws {
        let js = try await LiveServer.jetStream()
        let store = try await Self.store(js)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        _ = try await store.put("a", data: Data([1]))
        _ = try await store.put("a", data: Data([1, 2]))
        _ = try await store.put("b", data: Data([3]))
        var iterator = try await store.watch().makeAsyncIterator()
        var initial: [String: UInt64] = [:]
        while case .object(let object)? = try await iterator.next() { initial[object.name] = object.size }
        #expect(initial == ["a": 2, "b": 1], "the latest meta of each object, then the marker")
        try await store.delete("b")
        _ = try await store.put("c", data: Data(repeating: 7, count: 200_000))
        guard case .object(let deleted)? = try await iterator.next() else { Issue.record("no delete event"); return }
        #expect(deleted.name == "b" && deleted.isDeleted)
        guard case .object(let added)? = try await iterator.next() else { Issue.record("no put event"); return }
        #expect(added.name == "c" && added.size == 200_000 && added.chunks == 2)

        var history = try await store.watch(includeHistory: true, ignoreDeletes: true).makeAsyncIterator()
        var names: [String] = []
        while case .object(let object)? = try await history.next() { names.append(object.name) }
        #expect(names == ["a", "a", "c"] || names == ["a", "c"], "deletes are left out: \(names)")

        var updates = try await store.watch(updatesOnly: true).makeAsyncIterator()
        #expect(try await updates.next() == .initialObjectsDone)
        _ = try await store.put("d", data: Data([4]))
        guard case .object(let fresh)? = try await updates.next() else { Issue.record("no update"); return }
        #expect(fresh.name == "d")
    }

    @Test func statusSealAndTheListOfBuckets() async throws {
        let js = try await LiveServer.jetStream()
        var config = ObjectStoreConfig(bucket: LiveServer.streamName("obj"))
        config.storage = .memory
        config.description = "uploads"
        config.ttl = .seconds(3600)
        let store = try await js.createObjectStore(config)
        defer { Cleanup.later { try? await js.deleteObjectStore(store.bucket); await js.client.close() } }
        _ = try await store.put("x", data: Self.bytes(10_000, seed: 13))
        let status = try await store.status()
        #expect(status.bucket == store.bucket && status.description == "uploads" && status.ttl == .seconds(3600))
        #expect(status.storage == .memory && status.replicas == 1 && !status.isSealed && status.size > 10_000)
        #expect(try await js.objectStoreNames().contains(store.bucket))
        #expect(try await js.objectStoreStatuses().contains { $0.bucket == store.bucket })
        try await store.seal()
        #expect(try await store.status().isSealed)
        await #expect(throws: JetStreamError.self) { _ = try await store.put("y", data: Data([1])) }
        #expect(try await Self.read(try #require(try await store.get("x"))).count == 10_000, "a sealed bucket is still read")
    }
}
