import Foundation
import Synchronization
import JetStream
import NATSProto
import TestSupport
import Testing
import Transport

extension LiveServer {
    /// A JetStream context on the test server (the current nats-server, or the legacy one in
    /// the second pass), once the previous tests' streams are deleted.
    static func jetStream() async throws -> JetStreamContext {
        await Cleanup.drain()
        return JetStreamContext(client: try await NATSClient.connect(NATSConfiguration(url: try require(LiveServer.nats.rawValue))))
    }

    /// A stream name unique to this run.
    static func streamName(_ base: String) -> String { "\(base)_\(UUID().uuidString.prefix(8))" }

    /// Creates a memory stream named after `base` on `<name>.>`, as `configure` adjusts it;
    /// returns its name.
    static func memoryStream(_ js: JetStreamContext, _ base: String, _ configure: (inout StreamConfig) -> Void = { _ in }) async throws
        -> String
    {
        let name = streamName(base)
        var config = StreamConfig(name: name, subjects: ["\(name).>"])
        config.storage = .memory
        configure(&config)
        try await js.createStream(config)
        return name
    }

    /// The oracle Python (nats-py) and the project's script `name` for it; nil (an issue in CI)
    /// when `make test` did not set the oracle up.
    static func pythonOracle(_ name: String) -> (python: String, script: String)? {
        guard let python = value("INFRA_TEST_ORACLE_PYTHON") else {
            if isCI { Issue.record("INFRA_TEST_ORACLE_PYTHON is not set: run `make test`") }
            return nil
        }
        return (python, GoldenStream.fixturesDirectory.deletingLastPathComponent().appendingPathComponent("scripts/\(name)").path)
    }

}

@Suite("JetStream streams and messages (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct JetStreamStreamTests {
    @Test func streamsAreCreatedInspectedUpdatedListedAndDeleted() async throws {
        let js = try await LiveServer.jetStream()
        defer { Cleanup.later { await js.client.close() } }
        let name = LiveServer.streamName("ORDERS")
        var config = StreamConfig(name: name, subjects: ["\(name).>"])
        config.maxAge = .seconds(3600)
        config.storage = .memory
        let created = try await js.createStream(config)
        #expect(created.config.name == name)
        #expect(created.config.maxAge == .seconds(3600), "durations travel as nanoseconds")
        #expect(created.config.storage == .memory)
        #expect(created.state.messages == 0)
        let again = try await js.createStream(config)
        #expect(again.config.subjects == config.subjects, "the same configuration again is accepted")
        var changed = config
        changed.maxMessages = 10
        let refused = await #expect(throws: JetStreamError.self) { try await js.createStream(changed) }
        #expect(refused?.is(.streamNameInUse) == true, "\(String(describing: refused))")
        let updated = try await js.createOrUpdateStream(changed)
        #expect(updated.config.maxMessages == 10)
        #expect(try await js.streamNames().contains(name))
        #expect(try await js.streamNames(subject: "\(name).x") == [name])
        #expect(try await js.streams().contains { $0.config.name == name })
        try await js.deleteStream(name)
        let missing = await #expect(throws: JetStreamError.self) { try await js.streamInfo(name) }
        #expect(missing?.is(.streamNotFound) == true && missing?.code == 404, "\(String(describing: missing))")
        let account = try await js.accountInfo()
        #expect(account.limits.maxStreams == -1)
    }

    @Test func publishesAreAcknowledgedDeduplicatedAndHeldToTheirExpectations() async throws {
        let js = try await LiveServer.jetStream()
        let name = LiveServer.streamName("EVENTS")
        try await js.createStream(StreamConfig(name: name, subjects: ["\(name).>"]))
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        let first = try await js.publish("one", to: "\(name).a")
        #expect(first.stream == name && first.sequence == 1 && !first.duplicate)
        let withID = try await js.publish("two", to: "\(name).a", options: PublishOptions(messageID: "m-2"))
        let again = try await js.publish("two", to: "\(name).a", options: PublishOptions(messageID: "m-2"))
        #expect(withID.sequence == 2 && again.sequence == 2 && again.duplicate, "the same Nats-Msg-Id is stored once")
        var expectLast = PublishOptions()
        expectLast.expectedLastSequence = 1
        let wrongSequence = await #expect(throws: JetStreamError.self) { try await js.publish("three", to: "\(name).a", options: expectLast) }
        #expect(wrongSequence?.is(.wrongLastSequence) == true, "\(String(describing: wrongSequence))")
        var expectSubject = PublishOptions()
        expectSubject.expectedLastSubjectSequence = 0
        let third = try await js.publish("first on b", to: "\(name).b", options: expectSubject)
        #expect(third.sequence == 3, "no message on the subject yet: 0 holds")
        var expectID = PublishOptions()
        expectID.expectedLastMessageID = "not-it"
        let wrongID = await #expect(throws: JetStreamError.self) { try await js.publish("four", to: "\(name).a", options: expectID) }
        #expect(wrongID?.is(.wrongLastMessageID) == true, "\(String(describing: wrongID))")
        var expectStream = PublishOptions()
        expectStream.expectedStream = "ANOTHER"
        let wrongStream = await #expect(throws: JetStreamError.self) { try await js.publish("five", to: "\(name).a", options: expectStream) }
        #expect(wrongStream?.kind == .api)
        var noRetry = PublishOptions()
        noRetry.retryAttempts = 0
        let nowhere = await #expect(throws: JetStreamError.self) { try await js.publish("x", to: "nostream.\(name)", options: noRetry) }
        #expect(nowhere?.kind == .noResponders, "\(String(describing: nowhere))")
    }

    @Test func asyncPublishesKeepTheirWindowAndEachFutureGetsItsAck() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await LiveServer.memoryStream(js, "ASYNC")
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        let publisher = try await js.makeAsyncPublisher(maximumPending: 64)
        var futures: [PubAckFuture] = []
        var highest = 0
        for index in 0..<2000 {
            futures.append(try await publisher.publish(Array("m\(index)".utf8), to: "\(name).a"))
            highest = max(highest, publisher.pendingCount)
        }
        await publisher.complete()
        #expect(publisher.pendingCount == 0)
        #expect(highest <= 64, "the window held: at most \(highest) outstanding")
        var sequences: [UInt64] = []
        for future in futures { sequences.append(try await future.value().sequence) }
        #expect(sequences == Array(1...2000), "each future has its own message's sequence, in order")
        #expect(try await js.streamInfo(name).state.messages == 2000)
        let refused = try await publisher.publish(Array("x".utf8), to: "nostream.\(name)")
        let error = await #expect(throws: JetStreamError.self) { try await refused.value() }
        #expect(error?.kind == .noResponders, "\(String(describing: error))")
        await publisher.close()
    }

    @Test func storedMessagesAreReadDirectlyOrThroughTheLeaderDeletedAndPurged() async throws {
        let js = try await LiveServer.jetStream()
        let name = LiveServer.streamName("KVISH")
        var config = StreamConfig(name: name, subjects: ["\(name).>"])
        config.allowDirect = true
        try await js.createStream(config)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        for index in 1...5 {
            try await js.publish("value \(index)", to: "\(name).\(index % 2 == 0 ? "even" : "odd")", headers: ["Index": "\(index)"])
        }
        let third = try await js.message(.sequence(3), stream: name)
        #expect(third.subject == "\(name).odd" && third.data == ByteBufferText.of("value 3") && third.headers?["Index"] == "3")
        let lastEven = try await js.message(.lastBySubject("\(name).even"), stream: name)
        #expect(lastEven.sequence == 4)
        let direct = try await js.directMessage(.sequence(2), stream: name)
        #expect(direct.subject == "\(name).even" && direct.headers?["Index"] == "2" && direct.sequence == 2)
        let directLast = try await js.directMessage(.lastBySubject("\(name).odd"), stream: name)
        #expect(directLast.sequence == 5 && directLast.headers?["Nats-Sequence"] == nil, "the server's own headers are taken off")
        let next = try await js.directMessage(.nextBySubject("\(name).even", from: 3), stream: name)
        #expect(next.sequence == 4)
        try await js.deleteMessage(3, stream: name)
        let gone = await #expect(throws: JetStreamError.self) { try await js.message(.sequence(3), stream: name) }
        #expect(gone?.is(.noMessageFound) == true, "\(String(describing: gone))")
        let goneDirect = await #expect(throws: JetStreamError.self) { try await js.directMessage(.sequence(3), stream: name) }
        #expect(goneDirect?.code == 404)
        let info = try await js.streamInfo(name, deletedDetails: true, subjectsFilter: ">")
        #expect(info.state.deleted == [3])
        #expect(info.state.subjects == ["\(name).odd": 2, "\(name).even": 2])
        let purgedOdd = try await js.purgeStream(name, PurgeRequest(filter: "\(name).odd"))
        #expect(purgedOdd == 2)
        for index in 6...8 { try await js.publish("value \(index)", to: "\(name).more") }
        let purgedOld = try await js.purgeStream(name, PurgeRequest(filter: "\(name).more", keep: 1))
        let left = try await js.streamInfo(name).state
        #expect(purgedOld == 2 && left.messages == 3, "purged \(purgedOld), left \(left.messages): 2 and 4 on even, 8 on more")
    }

    @Test func badNamesAreRefusedBeforeAnythingIsSent() async throws {
        let js = try await LiveServer.jetStream()
        defer { Cleanup.later { await js.client.close() } }
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            let error = await #expect(throws: JetStreamError.self) { try await js.createStream(StreamConfig(name: bad, subjects: ["x"])) }
            #expect(error?.kind == .usage, "\(bad.debugDescription): \(String(describing: error))")
        }
    }

    @Test func featuresNewerThanTheServerAreRefusedWithTheVersionNamed() async throws {
        let js = try await LiveServer.jetStream()
        defer { Cleanup.later { await js.client.close() } }
        let name = LiveServer.streamName("NEWER")
        var config = StreamConfig(name: name, subjects: ["\(name).>"])
        config.allowMessageTTL = true
        var withTTL = PublishOptions()
        withTTL.ttl = .seconds(1)
        if js.serverVersion < ServerVersion(2, 11) {
            let error = await #expect(throws: JetStreamError.self) { try await js.createStream(config) }
            #expect(error?.kind == .usage && error?.message.contains("2.11") == true, "\(String(describing: error))")
            let publishError = await #expect(throws: JetStreamError.self) { try await js.publish("x", to: "\(name).a", options: withTTL) }
            #expect(publishError?.kind == .usage && publishError?.message.contains("TTL (2.11)") == true, "\(String(describing: publishError))")
        } else {
            let created = try await js.createStream(config)
            #expect(created.config.allowMessageTTL)
            try await js.publish("stays", to: "\(name).a")
            try await js.publish("expires", to: "\(name).b", options: withTTL)
            var fraction = withTTL
            fraction.ttl = .milliseconds(1500)
            await #expect(throws: JetStreamError.self) { try await js.publish("x", to: "\(name).c", options: fraction) }
            // The server removes the message after its TTL (it checks about once a second).
            let deadline = ContinuousClock.now + .seconds(10)
            while try await js.streamInfo(name).state.messages > 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
            #expect(try await js.streamInfo(name).state.messages == 1, "the message with a TTL is gone, the other stays")
            try await js.deleteStream(name)
        }
    }
}

/// Deletions a test leaves for after it (a `defer` cannot wait), finished before the next test
/// makes its streams: nats-server 2.9.10 has failed to create a file stream ("error creating
/// store for stream") while another was being deleted.
enum Cleanup {
    private static let pending = Mutex<[Task<Void, Never>]>([])

    /// Runs `work` now, in a task the next test waits for.
    static func later(_ work: @escaping @Sendable () async -> Void) {
        let task = Task { await work() }
        pending.withLock { $0.append(task) }
    }

    /// Waits for every deletion left so far.
    static func drain() async {
        let tasks = pending.withLock { tasks -> [Task<Void, Never>] in
            defer { tasks.removeAll() }
            return tasks
        }
        for task in tasks { await task.value }
    }
}

enum ByteBufferText {
    /// The bytes of `text`, for comparisons with payloads.
    static func of(_ text: String) -> Transport.ByteBuffer { Transport.ByteBuffer(string: text) }
}
