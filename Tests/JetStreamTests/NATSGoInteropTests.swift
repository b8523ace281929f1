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
}
