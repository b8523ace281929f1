import Foundation
import JetStream
import NATSProto
import TestSupport
import Testing
import Transport

@Suite("JetStream key-value buckets (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct KeyValueTests {
    static func bucket(_ js: JetStreamContext, history: Int = 5) async throws -> KeyValue {
        var config = KeyValueConfig(bucket: LiveServer.streamName("kv"))
        config.history = history
        return try await js.createKeyValue(config)
    }

    @Test func valuesArePutReadRevisedDeletedAndPurged() async throws {
        let js = try await LiveServer.jetStream()
        let kv = try await Self.bucket(js)
        defer { Cleanup.later { try? await js.deleteKeyValue(kv.bucket); await js.client.close() } }
        let first = try await kv.put("user.42.lang", "ru")
        let second = try await kv.put("user.42.lang", "en")
        #expect(second > first)
        let latest = try #require(try await kv.get("user.42.lang"))
        #expect(latest.text == "en" && latest.revision == second && latest.operation == .put && latest.key == "user.42.lang")
        #expect(try await kv.get("user.42.lang", revision: first)?.text == "ru")
        let other = try await kv.put("other", "x")
        #expect(try await kv.get("user.42.lang", revision: other) == nil, "a revision of another key is not this key's")
        #expect(try await kv.get("missing") == nil)

        let created = try await kv.create("session.1", Array("new".utf8))
        let exists = await #expect(throws: JetStreamError.self) { try await kv.create("session.1", Array("again".utf8)) }
        #expect(exists?.is(.wrongLastSequence) == true, "\(String(describing: exists))")
        let updated = try await kv.update("session.1", Array("v2".utf8), revision: created)
        let stale = await #expect(throws: JetStreamError.self) { try await kv.update("session.1", Array("v3".utf8), revision: created) }
        #expect(stale?.is(.wrongLastSequence) == true)

        try await kv.delete("session.1")
        #expect(try await kv.get("session.1") == nil)
        let recreated = try await kv.create("session.1", Array("after delete".utf8))
        #expect(recreated > updated, "create succeeds over a delete marker")
        let history = try await kv.history("session.1")
        #expect(history.map(\.operation) == [.put, .put, .delete, .put])
        #expect(history.map(\.text) == ["new", "v2", "", "after delete"])

        try await kv.purge("user.42.lang")
        #expect(try await kv.get("user.42.lang") == nil)
        #expect(try await kv.history("user.42.lang").map(\.operation) == [.purge], "the purge marker replaced every revision")
        #expect(Set(try await kv.keys()) == ["other", "session.1"])
        #expect(try await kv.keys(matching: "session.*") == ["session.1"])
        let status = try await kv.status()
        #expect(status.history == 5 && status.bucket == kv.bucket && status.streamInfo.config.name == "KV_\(kv.bucket)")
    }

    @Test func bucketAndKeyNamesAreCheckedAsADR8Says() async throws {
        let js = try await LiveServer.jetStream()
        defer { Cleanup.later { await js.client.close() } }
        for bad in ["", "a.b", "a b", "a*"] {
            let error = await #expect(throws: JetStreamError.self) { try await js.createKeyValue(KeyValueConfig(bucket: bad)) }
            #expect(error?.kind == .usage, "\(bad.debugDescription)")
        }
        var tooLong = KeyValueConfig(bucket: "fine")
        tooLong.history = 65
        #expect(throws: JetStreamError.self) { try KeyValueConfig.check(tooLong) }
        let kv = try await Self.bucket(js)
        defer { Cleanup.later { try? await js.deleteKeyValue(kv.bucket) } }
        for bad in ["", ".start", "end.", "sp ace", "star*", "tab\t", "ü"] {
            let error = await #expect(throws: JetStreamError.self) { try await kv.put(bad, "v") }
            #expect(error?.kind == .usage, "\(bad.debugDescription)")
        }
        try await kv.put("a-b_c/d=e.f", "fine")
    }

    @Test func natsPyReadsWhatSwiftWroteAndTheOtherWayRound() async throws {
        guard let (python, script) = LiveServer.pythonOracle("kv-oracle.py") else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let kv = try await Self.bucket(js)
        defer { Cleanup.later { try? await js.deleteKeyValue(kv.bucket); await js.client.close() } }
        let revision = try await kv.put("from.swift", "привет, 🌍")
        try await kv.put("deleted", "soon")
        try await kv.delete("deleted")
        let read = try await runCommand(python, [script, url, kv.bucket, "read", "from.swift", "deleted", "absent"])
        let seen = try #require(try JSONSerialization.jsonObject(with: read.standardOutput) as? [String: Any])
        let entry = try #require(seen["from.swift"] as? [String: Any])
        #expect(entry["value"] as? String == "привет, 🌍")
        #expect(entry["revision"] as? Int == Int(revision))
        #expect(seen["deleted"] is NSNull && seen["absent"] is NSNull, "\(seen)")
        let wrote = try await runCommand(python, [script, url, kv.bucket, "write", "from.python", "hello from nats-py"])
        let written = try #require(try JSONSerialization.jsonObject(with: wrote.standardOutput) as? [String: Any])
        let fromPython = try #require(try await kv.get("from.python"))
        #expect(fromPython.text == "hello from nats-py" && Int(fromPython.revision) == written["revision"] as? Int)
        let keys = try await runCommand(python, [script, url, kv.bucket, "keys"])
        #expect(try JSONSerialization.jsonObject(with: keys.standardOutput) as? [String] == ["from.python", "from.swift"])
    }

    @Test func aBucketNatsPyCreatedIsOneSwiftCreatesTheSame() async throws {
        guard let (python, script) = LiveServer.pythonOracle("kv-oracle.py") else { return }
        let url = try LiveServer.require(LiveServer.nats.rawValue)
        let js = try await LiveServer.jetStream()
        let bucket = LiveServer.streamName("pykv")
        let ourBucket = LiveServer.streamName("swkv")
        defer { Cleanup.later { try? await js.deleteKeyValue(bucket); try? await js.deleteKeyValue(ourBucket); await js.client.close() } }
        _ = try await runCommand(python, [script, url, bucket, "create"])
        let fromPython = try await js.streamInfo("KV_\(bucket)").config
        var config = KeyValueConfig(bucket: ourBucket)
        config.history = 5
        let ours = try await js.createKeyValue(config)
        let fromSwift = try await js.streamInfo(ours.streamName).config
        #expect(fromSwift.subjects == ["$KV.\(ourBucket).>"] && fromPython.subjects == ["$KV.\(bucket).>"])
        #expect(fromSwift.maxMessagesPerSubject == fromPython.maxMessagesPerSubject)
        #expect(fromSwift.discard == fromPython.discard && fromSwift.denyDelete == fromPython.denyDelete)
        #expect(fromSwift.allowRollup == fromPython.allowRollup)
        // nats.go turns direct gets on (replicas answer reads); nats-py leaves the server's
        // default. Either client reads both kinds of bucket.
        #expect(fromSwift.allowDirect == (js.serverVersion >= ServerVersion(2, 9)))
        #expect(fromSwift.duplicateWindow == fromPython.duplicateWindow && fromSwift.maxAge == fromPython.maxAge)
    }
}

@Suite("JetStream key-value watch and ordered consumers (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct KeyValueWatchTests {
    /// The next `count` events, failing after `seconds`.
    static func take(_ count: Int, from iterator: inout AsyncThrowingStream<KeyValueWatchEvent, any Error>.AsyncIterator, seconds: Double = 10)
        async throws -> [KeyValueWatchEvent]
    {
        var events: [KeyValueWatchEvent] = []
        let deadline = ContinuousClock.now + .seconds(seconds)
        while events.count < count, ContinuousClock.now < deadline {
            guard let event = try await iterator.next() else { break }
            events.append(event)
        }
        return events
    }

    static func describe(_ events: [KeyValueWatchEvent]) -> [String] {
        events.map { event in
            switch event {
            case .initialValuesDone: "done"
            case .entry(let entry): "\(entry.operation.rawValue) \(entry.key)=\(entry.text)"
            }
        }
    }

    @Test func aWatchGivesTheLatestValuesThenTheMarkerThenEveryChange() async throws {
        let js = try await LiveServer.jetStream()
        let kv = try await KeyValueTests.bucket(js)
        defer { Cleanup.later { try? await js.deleteKeyValue(kv.bucket); await js.client.close() } }
        try await kv.put("a", "1")
        try await kv.put("a", "2")
        try await kv.put("b", "1")
        var events = try await kv.watch().makeAsyncIterator()
        #expect(Self.describe(try await Self.take(3, from: &events)) == ["PUT a=2", "PUT b=1", "done"])
        try await kv.put("c", "1")
        try await kv.delete("a")
        try await kv.purge("b")
        #expect(Self.describe(try await Self.take(3, from: &events)) == ["PUT c=1", "DEL a=", "PURGE b="])

        var history = try await kv.watch("a", includeHistory: true).makeAsyncIterator()
        #expect(Self.describe(try await Self.take(4, from: &history)) == ["PUT a=1", "PUT a=2", "DEL a=", "done"])
        var updates = try await kv.watch(ignoreDeletes: true, updatesOnly: true).makeAsyncIterator()
        #expect(Self.describe(try await Self.take(1, from: &updates)) == ["done"])
        try await kv.delete("c")
        try await kv.put("d", "1")
        #expect(Self.describe(try await Self.take(1, from: &updates)) == ["PUT d=1"], "the delete of c was skipped")
    }

    @Test func anOrderedConsumerThatIsDeletedIsRecreatedWithoutGapsOrRepeats() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await LiveServer.memoryStream(js, "ORDERED")
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        for index in 1...5 { try await js.publish("m\(index)", to: "\(name).x") }
        var ordered = OrderedConsumerConfig()
        ordered.heartbeat = .milliseconds(500)
        var deliveries = try await js.orderedMessages(stream: name, ordered).makeAsyncIterator()
        var seen: [UInt64] = []
        var caughtUp = false
        while seen.count < 5 || !caughtUp {
            switch try await deliveries.next() {
            case .message(let message)?: seen.append(message.metadata.streamSequence)
            case .caughtUp?: caughtUp = true
            case nil: Issue.record("ended early"); return
            }
        }
        for consumer in try await js.consumerNames(stream: name) { try await js.deleteConsumer(consumer, stream: name) }
        for index in 6...10 { try await js.publish("m\(index)", to: "\(name).x") }
        while seen.count < 10 {
            guard case .message(let message)? = try await deliveries.next() else { continue }
            seen.append(message.metadata.streamSequence)
        }
        #expect(seen == Array(1...10), "every message once, in order, across the recreation: \(seen)")
    }

    @Test func aReaderThatFallsBehindLosesNothing() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await LiveServer.memoryStream(js, "SLOWREADER")
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        let publisher = try await js.makeAsyncPublisher()
        for index in 1...10_000 { try await publisher.publish(Array("m\(index)".utf8), to: "\(name).x") }
        await publisher.complete()
        await publisher.close()
        var deliveries = try await js.orderedMessages(stream: name).makeAsyncIterator()
        // More than the delivery buffer arrives before the reader starts.
        try await Task.sleep(for: .seconds(1))
        var seen: [UInt64] = []
        while seen.count < 10_000 {
            guard let delivery = try await deliveries.next() else { break }
            if case .message(let message) = delivery { seen.append(message.metadata.streamSequence) }
        }
        #expect(seen == Array(1...10_000), "in order, none lost, none repeated: \(seen.count) seen")
    }
}
