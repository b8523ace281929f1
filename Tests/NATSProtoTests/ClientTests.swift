import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import NATSProto

enum LiveNATS {
    static let environment = ProcessInfo.processInfo.environment
    static func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
    static var isAvailable: Bool { value("INFRA_TEST_NATS_URL") != nil || environment["CI"] == "true" }

    static func require(_ name: String) throws -> String {
        guard let value = value(name) else {
            Issue.record("\(name) is not set: run the tests with `make test`")
            throw CancellationError()
        }
        return value
    }

    static func options() throws -> NATSOptions { NATSOptions(url: try require("INFRA_TEST_NATS_URL")) }
    static func client(_ configure: (inout NATSOptions) -> Void = { _ in }) async throws -> NATSClient {
        var options = try options()
        configure(&options)
        return try await NATSClient.connect(options)
    }

    /// A subject unique to this run.
    static func subject(_ name: String) -> String { "test.\(UUID().uuidString.prefix(8)).\(name)" }

    /// A nats-server of the test's own, so it can be stopped and started again.
    static func privateServer() throws -> (ChildProcess, Int) {
        let binary = try require("INFRA_TEST_NATS_SERVER_BINARY")
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else { throw CancellationError() }
        listener.close()
        return (try ChildProcess([binary, "-a", "127.0.0.1", "-p", String(port)]), port)
    }
}

/// Collects a client's events for later checks.
final class EventLog: Sendable {
    private final class Store: Sendable {
        let events = Mutex<[NATSEvent]>([])
    }

    private let store = Store()
    private let task: Task<Void, Never>

    init(_ client: NATSClient) {
        let store = self.store
        task = Task {
            for await event in client.events { store.events.withLock { $0.append(event) } }
        }
    }

    var all: [NATSEvent] { store.events.withLock { $0 } }

    /// Waits (up to `seconds`) until an event matches.
    func waitFor(seconds: Double = 10, _ matches: (NATSEvent) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if all.contains(where: matches) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    deinit { task.cancel() }
}

extension NATSSubscription {
    /// The next `count` messages, failing the test on a timeout.
    func collect(_ count: Int, seconds: Double = 10) async throws -> [NATSMessage] {
        try await withThrowingTaskGroup(of: [NATSMessage]?.self) { group in
            group.addTask {
                var collected: [NATSMessage] = []
                for try await message in self {
                    collected.append(message)
                    if collected.count == count { break }
                }
                return collected
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first ?? []
        }
    }
}

@Suite("NATS client (live)", .timeLimit(.minutes(1)), .enabled(if: LiveNATS.isAvailable))
struct NATSClientTests {
    @Test func publishAndSubscribeInOrder() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("pubsub")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        for index in 0..<500 { try await client.publish("message \(index)", to: subject) }
        let messages = try await subscription.collect(500)
        #expect(messages.map(\.text) == (0..<500).map { "message \($0)" })
        #expect(messages.allSatisfy { $0.subject == subject && $0.replyTo == nil && $0.headers == nil })
        #expect(client.statistics.outMessages == 500)
        #expect(client.statistics.inMessages == 500)
        await client.close()
        #expect(client.isClosed)
    }

    @Test func publishesAreCoalescedIntoFewWrites() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("coalesce")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        let before = client.statistics.writes
        for index in 0..<20_000 { try await client.publish([UInt8(truncatingIfNeeded: index)], to: subject) }
        try await client.flush()
        let writes = client.statistics.writes - before
        // Coalescing, not a fixed batch size: while the writer is busy with one
        // write, later publishes join the next. How many join depends on the
        // scheduler of a loaded machine, so the bound is an average of four a
        // write (uncoalesced would be one each; an idle machine gives hundreds).
        #expect(writes <= 5_000, "20,000 publishes left in \(writes) writes")
        let received = try await subscription.collect(20_000)
        #expect(received.count == 20_000)
        #expect(received.enumerated().allSatisfy { $0.element.payload.getInteger(at: 0, as: UInt8.self) == UInt8(truncatingIfNeeded: $0.offset) })
        await client.close()
    }

    @Test func wildcardsAndReplySubjects() async throws {
        let client = try await LiveNATS.client()
        let base = LiveNATS.subject("wild")
        let star = try await client.subscribe(to: base + ".*.end")
        let tail = try await client.subscribe(to: base + ".>")
        try await client.flush()
        try await client.publish([1, 2, 3], to: base + ".x.end", replyTo: "reply.here")
        try await client.publish([4], to: base + ".x.y.z")
        let starred = try await star.collect(1)
        #expect(starred.first?.subject == base + ".x.end")
        #expect(starred.first?.replyTo == "reply.here")
        #expect(starred.first.map { Array($0.payload.readableBytesView) } == [1, 2, 3])
        let tailed = try await tail.collect(2)
        #expect(tailed.map(\.subject) == [base + ".x.end", base + ".x.y.z"])
        await client.close()
    }

    @Test func queueGroupsShareTheMessages() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("queue")
        let first = try await client.subscribe(to: subject, queue: "workers")
        let second = try await client.subscribe(to: subject, queue: "workers")
        let everyone = try await client.subscribe(to: subject)
        try await client.flush()
        for index in 0..<200 { try await client.publish("\(index)", to: subject) }
        try await client.flush()
        let all = try await everyone.collect(200)
        #expect(all.count == 200)
        try await Task.sleep(for: .milliseconds(50))
        let shares = (first.pending.messages, second.pending.messages)
        #expect(shares.0 + shares.1 == 200, "each message goes to one member of the group")
        #expect(shares.0 > 0 && shares.1 > 0, "the server spreads the group's messages")
        await client.close()
    }

    @Test func headersRoundTripWithRepeatedKeysAndCase() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("headers")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        var headers = NATSHeaders()
        headers.append("Trace-Id", "abc")
        headers.append("x-multi", "one")
        headers.append("x-multi", "two")
        try await client.publish("body", to: subject, headers: headers)
        let message = try #require(try await subscription.collect(1).first)
        #expect(message.text == "body")
        #expect(message.headers?["Trace-Id"] == "abc")
        #expect(message.headers?.values(for: "x-multi") == ["one", "two"])
        await client.close()
    }

    @Test func requestReplyOverOneInboxSubscription() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("echo")
        let service = try await client.subscribe(to: subject)
        let responder = Task {
            for try await request in service {
                try await client.respond(to: request, with: request.text.uppercased())
            }
        }
        try await client.flush()
        let replies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in 0..<50 {
                group.addTask { (index, try await client.request("ping \(index)", subject: subject).text) }
            }
            var replies: [Int: String] = [:]
            for try await (index, text) in group { replies[index] = text }
            return replies
        }
        #expect(replies.count == 50)
        #expect((0..<50).allSatisfy { replies[$0] == "PING \($0)" })
        let internalSubscriptions = client.state.withLock { ($0.subscriptions.count, $0.muxSID != nil, $0.nextSID) }
        #expect(internalSubscriptions.0 == 1 && internalSubscriptions.1, "one service subscription plus the one muxed inbox")
        #expect(internalSubscriptions.2 == 3, "50 requests made no subscription of their own")
        responder.cancel()
        await client.close()
    }

    @Test func noRespondersAndTimeoutsAreTyped() async throws {
        let client = try await LiveNATS.client()
        let started = ContinuousClock.now
        let nobody = await #expect(throws: NATSError.self) {
            try await client.request("anyone?", subject: LiveNATS.subject("nobody"), timeout: .seconds(5))
        }
        #expect(nobody?.kind == .noResponders)
        #expect(ContinuousClock.now - started < .seconds(2), "503 comes back at once, not at the timeout")

        let subject = LiveNATS.subject("silent")
        let silent = try await client.subscribe(to: subject)
        try await client.flush()
        let timedOut = await #expect(throws: NATSError.self) {
            try await client.request("hello", subject: subject, timeout: .milliseconds(200))
        }
        #expect(timedOut?.kind == .timeout)
        #expect(silent.pending.messages == 1)
        #expect(client.state.withLock { $0.requests.isEmpty && $0.requestTimers.isEmpty })
        await client.close()
    }

    @Test func cancellingARequestEndsItAtOnce() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("cancel")
        _ = try await client.subscribe(to: subject)
        try await client.flush()
        let request = Task { try await client.request("x", subject: subject, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        request.cancel()
        let error = await #expect(throws: NATSError.self) { try await request.value }
        #expect(error?.kind == .cancelled)
        #expect(client.state.withLock { $0.requests.isEmpty })
        await client.close()
    }

    @Test func oversizedPayloadsAndInvalidSubjectsAreRefusedBeforeSending() async throws {
        let client = try await LiveNATS.client()
        let limit = client.maximumPayload
        let subject = LiveNATS.subject("big")
        let tooBig = await #expect(throws: NATSError.self) {
            try await client.publish([UInt8](repeating: 0, count: limit + 1), to: subject)
        }
        #expect(tooBig?.kind == .maximumPayloadExceeded)
        for bad in ["", "a..b", "a b", "foo.*", "foo.>", ".a", "a.", "tab\there"] {
            let error = await #expect(throws: NATSError.self) { try await client.publish("x", to: bad) }
            #expect(error?.kind == .usage, "publish to \"\(bad)\"")
        }
        for bad in ["foo.>.bar", "a..b", ""] {
            let error = await #expect(throws: NATSError.self) { try await client.subscribe(to: bad) }
            #expect(error?.kind == .usage, "subscribe to \"\(bad)\"")
        }
        let queueError = await #expect(throws: NATSError.self) { try await client.subscribe(to: "ok", queue: "bad queue") }
        #expect(queueError?.kind == .usage)
        // The connection is still fine: the server never saw the bad operations.
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish([UInt8](repeating: 7, count: limit), to: subject)
        #expect(try await subscription.collect(1).first?.payload.readableBytes == limit)
        await client.close()
    }

    @Test func autoUnsubscribeEndsTheSequence() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("auto")
        let subscription = try await client.subscribe(to: subject)
        try await subscription.unsubscribe(after: 5)
        try await client.flush()
        for index in 0..<10 { try await client.publish("\(index)", to: subject) }
        try await client.flush()
        var received: [String] = []
        for try await message in subscription { received.append(message.text) }
        #expect(received == ["0", "1", "2", "3", "4"])
        #expect(client.state.withLock { $0.subscriptions.isEmpty })
        await client.close()
    }

    @Test func slowConsumersAreReportedNotSilent() async throws {
        let client = try await LiveNATS.client()
        let events = EventLog(client)
        let subject = LiveNATS.subject("slow")
        let subscription = try await client.subscribe(to: subject, pendingLimits: NATSPendingLimits(messages: 10, bytes: -1))
        try await client.flush()
        for index in 0..<100 { try await client.publish("\(index)", to: subject) }
        try await client.flush()
        try await Task.sleep(for: .milliseconds(50))
        #expect(subscription.pending.messages == 10)
        #expect(subscription.droppedCount == 90)
        #expect(subscription.deliveredCount == 100)
        #expect(try await events.waitFor { if case .slowConsumer(subject, _, _) = $0 { true } else { false } })
        let kept = try await subscription.collect(10)
        #expect(kept.map(\.text) == (0..<10).map(String.init), "the first messages are kept, later ones dropped")
        await client.close()
    }

    @Test func unsubscribeStopsDelivery() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("unsub")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await subscription.unsubscribe()
        try await client.publish("late", to: subject)
        try await client.flush()
        var count = 0
        for try await _ in subscription { count += 1 }
        #expect(count == 0)
        await client.close()
    }

    @Test func cancellingTheConsumerUnsubscribes() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("cancelled")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        let consumer = Task { () -> Int in
            var count = 0
            for try await _ in subscription { count += 1 }
            return count
        }
        try await client.publish("one", to: subject)
        try await client.flush()
        try await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        #expect(try await consumer.value == 1)
        #expect(client.state.withLock { $0.subscriptions.isEmpty }, "the subscription is gone")
        try await client.publish("two", to: subject)
        try await client.flush()
        #expect(subscription.deliveredCount == 1, "the server no longer sends to it")
        await client.close()
    }

    @Test func drainDeliversEverythingAcceptedBeforeIt() async throws {
        let publisher = try await LiveNATS.client()
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("drain")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        for index in 0..<2000 { try await publisher.publish("\(index)", to: subject) }
        try await publisher.flush()
        let consumer = Task {
            var count = 0
            for try await _ in subscription {
                count += 1
                if count % 100 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            return count
        }
        // Publishes made just before the drain must reach the server too.
        let watcher = try await publisher.subscribe(to: subject + ".after")
        try await publisher.flush()
        for index in 0..<100 { try await client.publish("\(index)", to: subject + ".after") }
        try await client.drain()
        #expect(try await consumer.value == 2000)
        #expect(try await watcher.collect(100).count == 100, "publishes accepted before the drain were flushed")
        #expect(client.isClosed)
        let refused = await #expect(throws: NATSError.self) { try await client.publish("x", to: subject) }
        #expect(refused?.kind == .closed)
        await publisher.close()
    }

    @Test func closeFailsWaitersAndEndsSubscriptions() async throws {
        let client = try await LiveNATS.client()
        let subject = LiveNATS.subject("close")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        let request = Task { try await client.request("x", subject: subject, timeout: .seconds(30)) }
        let iteration = Task { () -> Int in
            var count = 0
            for try await _ in subscription { count += 1 }
            return count
        }
        try await Task.sleep(for: .milliseconds(100))
        await client.close()
        let error = await #expect(throws: NATSError.self) { try await request.value }
        #expect(error?.kind == .closed)
        #expect(try await iteration.value == 1, "the request itself reached the subscription")
    }

    @Test func serverInfoIsParsed() async throws {
        let client = try await LiveNATS.client()
        let info = try #require(client.serverInfo)
        #expect(!info.serverID.isEmpty)
        #expect(info.headers)
        #expect(info.maximumPayload == 1 << 20)
        #expect(info.jetStream)
        #expect(client.connectedServer?.hasPrefix("nats://127.0.0.1:") == true)
        await client.close()
    }
}

@Suite("NATS authentication and TLS (live)", .timeLimit(.minutes(1)), .enabled(if: LiveNATS.isAvailable))
struct NATSAuthenticationTests {
    @Test func userAndPassword() async throws {
        var options = NATSOptions(url: try LiveNATS.require("INFRA_TEST_NATS_AUTH_URL"))
        options.user = try LiveNATS.require("INFRA_TEST_NATS_AUTH_USER")
        options.password = try LiveNATS.require("INFRA_TEST_NATS_AUTH_PASSWORD")
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.authRequired == true)
        try await client.flush()
        await client.close()

        // The same credentials in the URL; the URL shown never carries the password.
        let url = try LiveNATS.require("INFRA_TEST_NATS_AUTH_URL").replacingOccurrences(
            of: "nats://", with: "nats://\(options.user ?? ""):\(options.password ?? "")@")
        let fromURL = try await NATSClient.connect(url: url)
        #expect(fromURL.connectedServer?.contains(options.password ?? "-") == false)
        await fromURL.close()
    }

    @Test func wrongOrMissingCredentialsAreAnAuthorizationError() async throws {
        var options = NATSOptions(url: try LiveNATS.require("INFRA_TEST_NATS_AUTH_URL"))
        options.user = "infra"
        options.password = "wrong"
        let wrong = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(wrong?.kind == .authorization)
        #expect(wrong?.description.contains("wrong") == false, "the password is not in the message")
        options.user = nil
        options.password = nil
        let missing = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(missing?.kind == .authorization)
    }

    @Test func nkeySignsTheServerNonce() async throws {
        var options = NATSOptions(url: try LiveNATS.require("INFRA_TEST_NATS_AUTH_URL"))
        options.nkeySeed = try LiveNATS.require("INFRA_TEST_NATS_NKEY_SEED")
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.authRequired == true, "the server asked for credentials and took the signed nonce")
        let subject = LiveNATS.subject("nkey")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("signed", to: subject)
        #expect(try await subscription.collect(1).first?.text == "signed")
        await client.close()

        options.nkeySeed = try NKeyPair.generate(.user).encodedSeed
        let stranger = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(stranger?.kind == .authorization)
    }

    @Test func credentialsFileSignsWithTheUserJWT() async throws {
        var options = NATSOptions(url: try LiveNATS.require("INFRA_TEST_NATS_JWT_URL"))
        let credentials = try LiveNATS.require("INFRA_TEST_NATS_CREDS_FILE")
        options.credentialsFile = credentials
        let client = try await NATSClient.connect(options)
        let subject = LiveNATS.subject("jwt")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("decentralised", to: subject)
        #expect(try await subscription.collect(1).first?.text == "decentralised")
        await client.close()

        // The same JWT with another user's seed: the nonce signature does not match it.
        let text = try String(contentsOfFile: credentials, encoding: .utf8)
        let seed = try #require(text.split(separator: "\n").first { $0.hasPrefix("SU") })
        let forged = FileManager.default.temporaryDirectory.appendingPathComponent("forged-\(UUID().uuidString).creds")
        try text.replacingOccurrences(of: String(seed), with: try NKeyPair.generate(.user).encodedSeed)
            .write(to: forged, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: forged) }
        options.credentialsFile = forged.path
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(error?.kind == .authorization)
    }

    func tlsOptions() throws -> NATSOptions {
        var options = NATSOptions(url: try LiveNATS.require("INFRA_TEST_NATS_TLS_URL"))
        options.token = try LiveNATS.require("INFRA_TEST_NATS_TLS_TOKEN")
        options.tls = TLSConfiguration(trustRoots: .file(try LiveNATS.require("INFRA_TEST_NATS_TLS_CA_FILE")))
        return options
    }

    @Test func tlsWithATokenAfterINFOAndFirst() async throws {
        var options = try tlsOptions()
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.tlsRequired == true)
        let subject = LiveNATS.subject("tls")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("secret", to: subject)
        #expect(try await subscription.collect(1).first?.text == "secret")
        await client.close()

        options.tlsHandshakeFirst = true
        let first = try await NATSClient.connect(options)
        try await first.flush()
        await first.close()
    }

    @Test func tlsRefusesAnUntrustedCertificateAndAWrongToken() async throws {
        var options = try tlsOptions()
        options.tls = TLSConfiguration()
        let untrusted = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(untrusted?.kind == .tls)

        options = try tlsOptions()
        options.token = "not-the-token"
        let wrong = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(wrong?.kind == .authorization)
    }

    @Test func plainServerRefusedWhenTLSIsRequired() async throws {
        var options = try LiveNATS.options()
        options.requireTLS = true
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(error?.kind == .tls)
    }
}

@Suite("NATS reconnect (live)", .timeLimit(.minutes(1)), .enabled(if: LiveNATS.isAvailable))
struct NATSReconnectTests {
    @Test func serverRestartRestoresSubscriptionsAndDeliversBufferedPublishes() async throws {
        let (server, port) = try LiveNATS.privateServer()
        defer { server.stop() }
        var options = NATSOptions(url: "nats://127.0.0.1:\(port)")
        options.reconnectWait = .milliseconds(100)
        options.reconnectJitter = .milliseconds(20)
        options.maximumReconnectAttempts = -1
        var client: NATSClient?
        for _ in 0..<100 where client == nil {
            client = try? await NATSClient.connect(options)
            if client == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let subscriber = try #require(client)
        let events = EventLog(subscriber)
        let plain = try await subscriber.subscribe(to: "restart.plain")
        let grouped = try await subscriber.subscribe(to: "restart.group", queue: "workers")
        let limited = try await subscriber.subscribe(to: "restart.limited")
        try await limited.unsubscribe(after: 3)
        try await subscriber.flush()
        try await subscriber.publish("before", to: "restart.limited")
        #expect(try await limited.collect(1).first?.text == "before")

        server.stop()
        #expect(try await events.waitFor { if case .disconnected = $0 { true } else { false } })
        // Published while disconnected: buffered, sent after the reconnect.
        for index in 0..<100 { try await subscriber.publish("buffered \(index)", to: "restart.plain") }
        try await subscriber.publish("grouped", to: "restart.group")
        for index in 0..<5 { try await subscriber.publish("limited \(index)", to: "restart.limited") }
        #expect(subscriber.bufferedBytes > 0)
        try await Task.sleep(for: .milliseconds(300))
        try server.start()
        #expect(try await events.waitFor { if case .reconnected = $0 { true } else { false } })
        try await subscriber.flush()
        let restored = try await plain.collect(100)
        #expect(restored.map(\.text) == (0..<100).map { "buffered \($0)" })
        #expect(try await grouped.collect(1).first?.text == "grouped")
        var limitedTexts: [String] = []
        for try await message in limited { limitedTexts.append(message.text) }
        #expect(limitedTexts == ["limited 0", "limited 1"], "the auto-unsubscribe count carried over: 3 in all")
        #expect(subscriber.statistics.reconnects == 1)
        await subscriber.close()
    }

    @Test func reconnectBufferIsBounded() async throws {
        let (server, port) = try LiveNATS.privateServer()
        defer { server.stop() }
        var options = NATSOptions(url: "nats://127.0.0.1:\(port)")
        options.reconnectWait = .seconds(30)
        options.reconnectBufferSize = 64 << 10
        var client: NATSClient?
        for _ in 0..<100 where client == nil {
            client = try? await NATSClient.connect(options)
            if client == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let publisher = try #require(client)
        let events = EventLog(publisher)
        server.stop()
        #expect(try await events.waitFor { if case .disconnected = $0 { true } else { false } })
        var accepted = 0
        var refusal: NATSError?
        while refusal == nil && accepted < 10_000 {
            do throws(NATSError) {
                try await publisher.publish([UInt8](repeating: 1, count: 1000), to: "bounded")
                accepted += 1
            } catch {
                refusal = error
            }
        }
        #expect(refusal?.kind == .reconnectBufferExceeded)
        #expect((50...65).contains(accepted))
        await publisher.close()
    }

    @Test func connectFailsWithATypedErrorWhenNoServerAnswers() async throws {
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else { return }
        listener.close()
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(url: "nats://127.0.0.1:\(port)") }
        #expect(error?.kind == .connection)
    }
}
