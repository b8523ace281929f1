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
}
