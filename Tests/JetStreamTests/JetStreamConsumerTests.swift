import Foundation
import JetStream
import NATSProto
import TestSupport
import Testing
import Transport

@Suite("JetStream pull consumers and acks (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct JetStreamConsumerTests {
    /// A stream with `count` messages `m1` … on `<name>.work`.
    static func stream(_ js: JetStreamContext, _ base: String, count: Int) async throws -> String {
        let name = try await LiveServer.memoryStream(js, base)
        for index in 1...max(1, count) where count > 0 { try await js.publish("m\(index)", to: "\(name).work") }
        return name
    }

    @Test func consumersAreCreatedByNameInspectedListedAndDeleted() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await Self.stream(js, "CONSUMERS", count: 3)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        var config = ConsumerConfig(durableName: "worker", filterSubject: "\(name).work")
        config.ackWait = .seconds(10)
        config.maxDeliver = 5
        let created = try await js.createConsumer(config, stream: name)
        #expect(created.name == "worker" && created.stream == name)
        #expect(created.config.ackWait == .seconds(10) && created.config.maxDeliver == 5)
        #expect(created.pendingCount == 3)
        let ephemeral = try await js.createConsumer(ConsumerConfig(ackPolicy: .none), stream: name)
        #expect(ephemeral.config.durableName == nil)
        #expect(Set(try await js.consumerNames(stream: name)) == ["worker", ephemeral.name])
        #expect(try await js.consumers(stream: name).count == 2)
        #expect(try await js.consumerInfo("worker", stream: name).config.filterSubject == "\(name).work")
        if js.serverVersion >= ServerVersion(2, 10) {
            var other = config
            other.maxDeliver = 7
            let exists = await #expect(throws: JetStreamError.self) { try await js.createConsumer(other, stream: name, action: .create) }
            #expect(exists?.kind == .api, "\(String(describing: exists))")
        }
        try await js.deleteConsumer("worker", stream: name)
        let missing = await #expect(throws: JetStreamError.self) { try await js.consumerInfo("worker", stream: name) }
        #expect(missing?.is(.consumerNotFound) == true, "\(String(describing: missing))")
        if js.serverVersion < ServerVersion(2, 10) {
            var many = ConsumerConfig(durableName: "many")
            many.filterSubjects = ["\(name).a", "\(name).b"]
            let refused = await #expect(throws: JetStreamError.self) { try await js.createConsumer(many, stream: name) }
            #expect(refused?.kind == .usage && refused?.message.contains("2.10") == true)
        }
    }

    @Test func fetchReturnsBatchesWithTheirMetadataAndAcksAreHonoured() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await Self.stream(js, "FETCH", count: 10)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        var config = ConsumerConfig(durableName: "pull")
        config.ackWait = .seconds(30)
        try await js.createConsumer(config, stream: name)
        let first = try await js.fetch(consumer: "pull", stream: name, batch: 4, expires: .seconds(2))
        #expect(first.map(\.text) == ["m1", "m2", "m3", "m4"])
        #expect(first.map(\.metadata.streamSequence) == [1, 2, 3, 4])
        #expect(first.allSatisfy { $0.metadata.stream == name && $0.metadata.consumer == "pull" && $0.metadata.deliveryCount == 1 })
        #expect(first[0].metadata.pending == 9 && first[3].metadata.pending == 6)
        try await first[0].ack()
        try await first[1].doubleAck()
        try await first[2].terminate(reason: "cannot be processed")
        try await first[3].nak()
        let second = try await js.fetch(consumer: "pull", stream: name, batch: 10, expires: .seconds(1))
        #expect(second.map(\.text).sorted() == ["m10", "m4", "m5", "m6", "m7", "m8", "m9"], "the nak'd message comes again; the terminated one does not")
        #expect(second.first { $0.text == "m4" }?.metadata.deliveryCount == 2)
        #expect(second.filter { $0.text != "m4" }.allSatisfy { $0.metadata.deliveryCount == 1 })
        for message in second { try await message.ack() }
        let started = ContinuousClock.now
        let none = try await js.fetch(consumer: "pull", stream: name, batch: 5, noWait: true)
        #expect(none.isEmpty)
        let waited = try await js.fetch(consumer: "pull", stream: name, batch: 5, expires: .milliseconds(500))
        #expect(waited.isEmpty)
        #expect(ContinuousClock.now - started < .seconds(3), "an empty fetch ends with the request, not later")
        try await Task.sleep(for: .milliseconds(200))
        let info = try await js.consumerInfo("pull", stream: name)
        #expect(info.ackPendingCount == 0 && info.pendingCount == 0, "\(info.ackFloor) \(info.ackPendingCount) \(info.pendingCount)")
    }

    @Test func fetchStopsAtMaxBytesAndHonoursHeartbeats() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await Self.stream(js, "BYTES", count: 5)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        try await js.createConsumer(ConsumerConfig(durableName: "sized"), stream: name)
        let limited = try await js.fetch(consumer: "sized", stream: name, batch: 5, expires: .seconds(1), maxBytes: 100)
        #expect(!limited.isEmpty && limited.count < 5, "each message counts its subject and headers against max_bytes: \(limited.count)")
        let beating = try await js.fetch(consumer: "sized", stream: name, batch: 50, expires: .seconds(1), heartbeat: .milliseconds(200))
        #expect(beating.count + limited.count == 5, "heartbeats keep the request alive and are not messages")
        let wrong = await #expect(throws: JetStreamError.self) {
            try await js.fetch(consumer: "sized", stream: name, batch: 1, expires: .seconds(1), heartbeat: .seconds(1))
        }
        #expect(wrong?.kind == .usage)
    }

    @Test func aFetchFromADeletedConsumerIsAnAPIError() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await Self.stream(js, "GONE", count: 0)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        try await js.createConsumer(ConsumerConfig(durableName: "short"), stream: name)
        async let fetched = js.fetch(consumer: "short", stream: name, batch: 1, expires: .seconds(3))
        try await Task.sleep(for: .milliseconds(300))
        try await js.deleteConsumer("short", stream: name)
        let started = ContinuousClock.now
        do {
            let messages = try await fetched
            #expect(messages.isEmpty)
            Issue.record("a deleted consumer ended the fetch without an error")
        } catch let error as JetStreamError {
            #expect(error.kind == .api && error.code == 409, "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(2), "the 409 ends the fetch at once")
    }
}

@Suite("JetStream ack subjects")
struct MessageMetadataTests {
    @Test func bothAckSubjectFormsAreRead() throws {
        let short = try MessageMetadata(ackSubject: "$JS.ACK.ORDERS.worker.2.1045.17.1700000000123456789.3")
        #expect(short.stream == "ORDERS" && short.consumer == "worker" && short.domain == nil)
        #expect(short.deliveryCount == 2 && short.streamSequence == 1045 && short.consumerSequence == 17)
        #expect(short.timestamp == 1_700_000_000_123_456_789 && short.pending == 3)
        let long = try MessageMetadata(ackSubject: "$JS.ACK.hub.ACCHASH.ORDERS.worker.1.9.8.1700000000000000000.0.rand0m")
        #expect(long.domain == "hub" && long.stream == "ORDERS" && long.streamSequence == 9 && long.consumerSequence == 8)
        let noDomain = try MessageMetadata(ackSubject: "$JS.ACK._.ACCHASH.S.C.1.1.1.1.0.x")
        #expect(noDomain.domain == nil)
    }

    /// The ack subject read the plain way, token by token, to hold the one-pass reader to.
    static func reference(_ subject: String) -> MessageMetadata? {
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard tokens.count >= 2, tokens[0] == "$JS", tokens[1] == "ACK" else { return nil }
        let fields: [String]
        let domain: String?
        switch tokens.count {
        case 9: (fields, domain) = (Array(tokens[2...]), nil)
        case 12...: (fields, domain) = (Array(tokens[4...]), tokens[2] == "_" ? nil : tokens[2])
        default: return nil
        }
        guard !fields[0].isEmpty, !fields[1].isEmpty, fields[2...6].allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let delivered = UInt64(fields[2]), let stream = UInt64(fields[3]), let consumer = UInt64(fields[4]), let time = Int64(fields[5]),
            let pending = UInt64(fields[6])
        else { return nil }
        var metadata = try? MessageMetadata(ackSubject: "$JS.ACK.s.c.1.1.1.1.1")
        metadata?.domain = domain
        metadata?.stream = fields[0]
        metadata?.consumer = fields[1]
        metadata?.deliveryCount = delivered
        metadata?.streamSequence = stream
        metadata?.consumerSequence = consumer
        metadata?.timestamp = time
        metadata?.pending = pending
        return metadata
    }

    @Test func theOnePassReaderAgreesWithTheTokenByTokenReadingOnMutatedSubjects() {
        let seeds = [
            "$JS.ACK.ORDERS.workers.1.2.3.1733300000000000000.4",
            "$JS.ACK.hub.ACCHASH.ORDERS.workers.2.10.7.1733300000000000000.0.token",
            "$JS.ACK._.ACCHASH.S.C.1.1.1.1.1.x.y",
        ]
        let alphabet = Array("$JSACK._0123456789-é.".unicodeScalars)
        var generator = SplitMix64(seed: 41)
        for round in 0..<20_000 {
            var scalars = Array(seeds[round % seeds.count].unicodeScalars)
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let position = Int(generator.next() % UInt64(scalars.count))
                switch generator.next() % 4 {
                case 0: scalars.remove(at: position)
                case 1: scalars.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                case 2: scalars[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                default: scalars.insert(contentsOf: "99999999999999999999".unicodeScalars, at: position)
                }
            }
            var subject = ""
            subject.unicodeScalars.append(contentsOf: scalars)
            let parsed = try? MessageMetadata(ackSubject: subject)
            #expect(parsed == Self.reference(subject), "\(subject)")
        }
    }

    @Test func malformedAckSubjectsAreTypedErrors() {
        for subject in ["$JS.ACK.S.C.1.1.1", "$JS.ACK.S.C.x.1.1.1.0", "_INBOX.abc", "$JS.ACK..C.1.1.1.1.0", "$JS.ACK.S.C.1.1.1.1.-1", ""] {
            #expect(throws: JetStreamError.self, "\(subject)") { try MessageMetadata(ackSubject: subject) }
        }
    }
}

@Suite("JetStream continuous pull (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct JetStreamConsumeTests {
    @Test func messagesKeepComingInOrderAcrossRefillsAndTheStreamEmptiesAsTheyAreAcked() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await LiveServer.memoryStream(js, "WORK") { $0.retention = .workqueue }
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        let publisher = try await js.makeAsyncPublisher()
        for index in 1...1500 { try await publisher.publish(Array("task \(index)".utf8), to: "\(name).transcribe") }
        await publisher.complete()
        try await js.createConsumer(ConsumerConfig(durableName: "gpu"), stream: name)
        var options = ConsumeOptions(batch: 100)
        options.expires = .seconds(2)
        options.heartbeat = .milliseconds(500)
        var sequences: [UInt64] = []
        var iterator = js.messages(consumer: "gpu", stream: name, options: options).makeAsyncIterator()
        while sequences.count < 1500, let message = try await iterator.next() {
            sequences.append(message.metadata.streamSequence)
            try await message.ack()
            if sequences.count == 700 {
                // More work arrives while the consumer runs.
                for index in 1501...1600 { try await publisher.publish(Array("task \(index)".utf8), to: "\(name).transcribe") }
            }
        }
        while sequences.count < 1600, let message = try await iterator.next() {
            sequences.append(message.metadata.streamSequence)
            try await message.doubleAck()
        }
        #expect(sequences == Array(1...1600), "in order, each once, across refills and pull expiries")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await js.streamInfo(name).state.messages == 0, "a work queue empties as its messages are acked")
        await publisher.close()
    }

    @Test func aDeletedConsumerEndsTheSequenceWithItsError() async throws {
        let js = try await LiveServer.jetStream()
        let name = try await JetStreamConsumerTests.stream(js, "ENDING", count: 1)
        defer { Cleanup.later { try? await js.deleteStream(name); await js.client.close() } }
        try await js.createConsumer(ConsumerConfig(durableName: "brief"), stream: name)
        var options = ConsumeOptions(batch: 10)
        options.expires = .seconds(2)
        options.heartbeat = .milliseconds(500)
        var iterator = js.messages(consumer: "brief", stream: name, options: options).makeAsyncIterator()
        #expect(try await iterator.next()?.text == "m1")
        try await js.deleteConsumer("brief", stream: name)
        do {
            while try await iterator.next() != nil {}
            Issue.record("the sequence ended without an error")
        } catch let error as JetStreamError {
            #expect(error.kind == .api && error.code == 409, "\(error)")
        }
    }
}
