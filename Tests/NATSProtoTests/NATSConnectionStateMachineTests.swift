import Foundation
import TestSupport
import Testing
import Transport

@testable import NATSProto

/// The connection's decisions, driven input by input with no socket, no clock and no task.
@Suite("NATS connection state machine")
struct NATSConnectionStateMachineTests {
    typealias Machine = NATSConnectionStateMachine

    static let first = NATSServerAddress(host: "10.0.0.1", port: 4222, tlsRequired: false)
    static let second = NATSServerAddress(host: "10.0.0.2", port: 4222, tlsRequired: false)

    static func machine(
        reconnectBuffer: Int = 1 << 20, pings: Int = 2, attempts: Int = 3, allowReconnect: Bool = true
    ) -> Machine {
        Machine(
            servers: [first, second], maximumReconnectAttempts: attempts, inboxPrefix: "_INBOX.test.",
            limits: .init(
                reconnectBufferSize: reconnectBuffer, maximumPingsOutstanding: pings, allowReconnect: allowReconnect,
                useDiscoveredServers: true, randomizeServers: false))
    }

    static func info(maximumPayload: Int = 1 << 20, connectURLs: [String] = []) throws -> NATSServerInfo {
        let urls = connectURLs.map { "\"\($0)\"" }.joined(separator: ",")
        return try NATSServerInfo(
            json: ByteBuffer(string: #"{"server_id":"S","version":"2.15.1","max_payload":\#(maximumPayload),"headers":true,"connect_urls":[\#(urls)]}"#))
    }

    /// Connects `machine` to `server`; returns the generation.
    @discardableResult
    static func connect(
        _ machine: inout Machine, to server: NATSServerAddress = first, reconnecting: Bool = false, now: UInt64 = 1_000,
        remaining: [UInt64: Int] = [:], info: NATSServerInfo? = nil
    ) throws -> UInt64 {
        var generator = SplitMix64(seed: 1)
        return try machine.connectionEstablished(
            to: server, info: try info ?? Self.info(), reconnecting: reconnecting, now: now, remaining: remaining, using: &generator
        ).generation
    }

    /// The error `body` throws; records an issue when it throws none. (`#expect(throws:)` cannot
    /// capture the noncopyable machine.)
    static func refusal(_ body: () throws(NATSError) -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> NATSError? {
        do throws(NATSError) {
            try body()
            Issue.record("expected a refusal", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    static func publish(_ machine: inout Machine, _ text: String, to subject: String = "jobs.new", promptly: Bool = false)
        throws(NATSError) -> Machine.WriteAction
    {
        var result = Result<Machine.WriteAction, NATSError>.success(.none)
        Array(text.utf8).withUnsafeBytes { bytes in
            result = Result { () throws(NATSError) in
                try machine.publish(bytes, subject: subject, replyTo: nil, headers: nil, headerLength: 0, promptly: promptly)
            }
        }
        return try result.get()
    }

    static func text(_ action: Machine.WriteAction) -> String? {
        guard case .writeInline(let batch) = action else { return nil }
        return String(decoding: batch.readableBytesView, as: UTF8.self)
    }

    static func text(_ step: Machine.WriterStep) -> String? {
        guard case .write(let batch) = step else { return nil }
        return String(decoding: batch.readableBytesView, as: UTF8.self)
    }

    @Test func publishesBeforeTheFirstConnectionAreBufferedWithinTheBound() throws {
        var machine = Self.machine(reconnectBuffer: 64)
        let action = try Self.publish(&machine, "early")
        #expect(action == .none, "no connection: no writer to wake")
        let pending = String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self)
        #expect(pending == "PUB jobs.new 5\r\nearly\r\n")
        let error = Self.refusal { () throws(NATSError) in _ = try Self.publish(&machine, String(repeating: "x", count: 40)) }
        #expect(error?.kind == .reconnectBufferExceeded)
    }

    @Test func aConnectionRestoresSubscriptionsAndTheInboxAheadOfBufferedBytes() throws {
        var machine = Self.machine()
        let (plain, _) = try machine.subscribe(subject: "a.>", queue: nil)
        let (grouped, _) = try machine.subscribe(subject: "b", queue: "workers")
        _ = try Array("ping".utf8).withUnsafeBytes { bytes throws(NATSError) in
            try machine.request(token: 7, bytes, subject: "svc", headers: nil, headerLength: 0)
        }
        try Self.connect(&machine, remaining: [grouped: 2])
        let sent = String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self)
        #expect(
            sent
                == "SUB a.> \(plain)\r\nSUB b workers \(grouped)\r\nUNSUB \(grouped) 2\r\nSUB _INBOX.test.* 3\r\nPUB svc _INBOX.test.7 4\r\nping\r\n")
        let phase = machine.phase
        #expect(phase == .connected)
        let statistics = machine.statistics.reconnects
        #expect(statistics == 0)
    }

    @Test func theParkedWriterIsWokenOnceAndTakesEverythingQueued() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let step = machine.writerNext(generation: generation, written: nil)
        #expect(step == .park)
        let park = machine.writerParks(generation: generation)
        #expect(park == .park)
        let action = try Self.publish(&machine, "one")
        #expect(action == .wakeWriter)
        let action2 = try Self.publish(&machine, "two")
        #expect(action2 == .none, "already woken")
        let text = Self.text(machine.writerNext(generation: generation, written: nil))
        #expect(text == "PUB jobs.new 3\r\none\r\nPUB jobs.new 3\r\ntwo\r\n")
        let action3 = try Self.publish(&machine, "three")
        #expect(action3 == .none, "the writer is busy and comes back for it")
        let text2 = Self.text(machine.writerNext(generation: generation, written: ByteBuffer()))
        #expect(text2 == "PUB jobs.new 5\r\nthree\r\n")
        let step2 = machine.writerNext(generation: generation, written: ByteBuffer())
        #expect(step2 == .park)
        let statistics = machine.statistics.writes
        #expect(statistics == 2)
        let step3 = machine.writerNext(generation: generation + 1, written: nil)
        #expect(step3 == .exit, "another connection's writer ends")
    }

    @Test func aLoneReplyIsWrittenInlineWhileTheWriterSleeps() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        machine.writerNext(generation: generation, written: nil).ignore()
        let park = machine.writerParks(generation: generation)
        #expect(park == .park)
        let inline = try Self.publish(&machine, "ok", to: "_INBOX.x.1", promptly: true)
        #expect(Self.text(inline) == "PUB _INBOX.x.1 2\r\nok\r\n")
        let action = try Self.publish(&machine, "later")
        #expect(action == .none, "the inline writer holds the turn")
        let wakes = machine.inlineWriteFinished(generation: generation, written: ByteBuffer())
        #expect(wakes, "bytes came meanwhile: wake the writer")
        let wakes2 = machine.inlineWriteFinished(generation: generation, written: nil)
        #expect(wakes2 == false, "the writer was woken already")
    }

    @Test func pongsCompleteFlushesInOrderAndKeepAlivesCountMissedOnes() throws {
        var machine = Self.machine(pings: 2)
        let generation = try Self.connect(&machine)
        _ = try machine.flush(id: 1)
        let keepAlive = machine.keepAliveTick()
        #expect(keepAlive == .ping(.none))
        _ = try machine.flush(id: 2)
        let flushID = machine.pongReceived()
        #expect(flushID == 1)
        let flushID2 = machine.pongReceived()
        #expect(flushID2 == nil, "the keep-alive's PONG")
        let flushID3 = machine.pongReceived()
        #expect(flushID3 == 2)
        let flushID4 = machine.pongReceived()
        #expect(flushID4 == nil)
        let keepAlive2 = machine.keepAliveTick()
        #expect(keepAlive2 == .ping(.none))
        let keepAlive3 = machine.keepAliveTick()
        #expect(keepAlive3 == .ping(.none))
        let keepAlive4 = machine.keepAliveTick()
        #expect(keepAlive4 == .stale, "two PINGs unanswered")
        _ = machine.pongReceived()
        let keepAlive5 = machine.keepAliveTick()
        #expect(keepAlive5 == .ping(.none), "a PONG resets the count")
        let action = machine.pingReceived()
        #expect(action == .none)
        let pending = String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self).hasSuffix("PONG\r\n")
        #expect(pending)
        _ = generation
    }

    @Test func aLostConnectionFailsOnlyTheFlushesWhosePingWasWritten() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        _ = try machine.flush(id: 1)
        _ = machine.writerNext(generation: generation, written: nil)  // PING 1 handed to the socket
        _ = try machine.flush(id: 2)  // PING 2 still queued
        let lost = machine.connectionLost(generation: generation)
        let loss = try #require(lost)
        #expect(loss == Machine.LinkLoss(failedFlushes: [1], reconnect: true))
        let again = machine.connectionLost(generation: generation)
        #expect(again == nil, "handled once")
        let phase = machine.phase
        #expect(phase == .reconnecting)
        try Self.connect(&machine, to: Self.second, reconnecting: true)
        let flushID = machine.pongReceived()
        #expect(flushID == 2, "the queued PING goes out on the new connection")
        let statistics = machine.statistics.reconnects
        #expect(statistics == 1)
    }

    @Test(arguments: [true, false])
    func aLostConnectionInterruptsOnlyTheRequestsItWasHanded(failInterrupted: Bool) throws {
        var machine = Machine(
            servers: [Self.first, Self.second], maximumReconnectAttempts: 3, inboxPrefix: "_INBOX.test.",
            limits: .init(
                reconnectBufferSize: 1 << 20, maximumPingsOutstanding: 2, allowReconnect: true, useDiscoveredServers: true,
                randomizeServers: false, failInterruptedRequests: failInterrupted))
        let generation = try Self.connect(&machine)
        func send(_ token: UInt64) throws {
            _ = try Array("q".utf8).withUnsafeBytes { bytes throws(NATSError) in
                try machine.request(token: token, bytes, subject: "svc", headers: nil, headerLength: 0)
            }
        }
        try send(1)
        try send(2)
        _ = machine.requestWaits(token: 2)
        _ = machine.writerNext(generation: generation, written: nil)  // requests 1 and 2 handed to the socket
        try send(3)  // still queued
        try send(4)
        _ = machine.requestFinished(token: 4, .failure(NATSError(.cancelled, "c")))  // finished: not interrupted
        let lost = machine.connectionLost(generation: generation)
        let loss = try #require(lost)
        #expect(loss.interruptedRequests.sorted() == (failInterrupted ? [1, 2] : []))
        for token in loss.interruptedRequests { _ = machine.requestFinished(token: token, .failure(NATSError(.interrupted, "lost"))) }
        // The queued request goes out on the next connection, after the inbox subscription.
        let next = try Self.connect(&machine, to: Self.second, reconnecting: true)
        guard case .write(let batch) = machine.writerNext(generation: next, written: nil) else {
            Issue.record("nothing to write after the reconnect")
            return
        }
        let text = String(decoding: batch.readableBytesView, as: UTF8.self)
        #expect(text.hasPrefix("SUB _INBOX.test.* "))
        #expect(text.contains("PUB svc _INBOX.test.3 1\r\nq\r\n"))
        #expect(!text.contains("_INBOX.test.1 ") && !text.contains("_INBOX.test.2 "), "what the lost connection took is not sent twice")
        // Lost again: now request 3 (and 4, finished) were handed over.
        let lostAgain = machine.connectionLost(generation: next)
        let again = try #require(lostAgain)
        #expect(again.interruptedRequests.sorted() == (failInterrupted ? [3] : []), "a request is interrupted once")
    }

    @Test func requestsKeepTheFirstOutcomeWhetherOrNotTheCallerWaitsYet() throws {
        var machine = Self.machine()
        try Self.connect(&machine)
        func send(_ token: UInt64) throws {
            _ = try Array("q".utf8).withUnsafeBytes { bytes throws(NATSError) in
                try machine.request(token: token, bytes, subject: "svc", headers: nil, headerLength: 0)
            }
        }
        let reply = NATSMessage(subject: "_INBOX.test.1", payload: ByteBuffer(string: "a"))
        try send(1)
        let completion = machine.requestFinished(token: 1, .success(reply))
        #expect(completion == .stored)
        let completion2 = machine.requestFinished(token: 1, .failure(NATSError(.timedOut, "late")))
        #expect(completion2 == .ignored)
        let wait = machine.requestWaits(token: 1)
        #expect(wait == .ready(.success(reply)))
        try send(2)
        let wait2 = machine.requestWaits(token: 2)
        #expect(wait2 == .wait)
        let completion3 = machine.requestFinished(token: 2, .failure(NATSError(.cancelled, "c")))
        #expect(completion3 == .resume(.failure(NATSError(.cancelled, "c"))))
        let outstanding = !machine.hasOutstandingRequests
        #expect(outstanding)
        let wait3 = machine.requestWaits(token: 3)
        #expect(wait3 == .gone)
    }

    @Test func reconnectAttemptsFollowADR40sSchedule() throws {
        var machine = Self.machine(attempts: 1)
        let generation = try Self.connect(&machine, to: Self.first, now: 1_000)
        _ = machine.connectionLost(generation: generation)
        let wait: UInt64 = 2_000
        // The other server first, at once; the lost one after it, no sooner than wait after its last attempt.
        let next = machine.nextReconnectStep(now: 1_500, wait: wait) { _ in 0 }
        #expect(next == .attempt(Self.second, notBefore: 1_500))
        let starts = machine.reconnectAttemptStarts(Self.second, now: 1_500)
        #expect(starts)
        machine.reconnectAttemptFailed(Self.second)
        let next2 = machine.nextReconnectStep(now: 1_600, wait: wait) { _ in 7 }
        #expect(next2 == .attempt(Self.first, notBefore: 3_007))
        machine.reconnectAttemptFailed(Self.first)
        let next3 = machine.nextReconnectStep(now: 1_700, wait: wait) { _ in 0 }
        #expect(next3 == .attempt(Self.second, notBefore: 3_500))
        machine.reconnectAttemptFailed(Self.second)
        machine.reconnectAttemptFailed(Self.first)
        let next4 = machine.nextReconnectStep(now: 9_000, wait: wait) { _ in 0 }
        #expect(next4 == .giveUp, "every server failed twice: the pool is empty")
        let closed = machine.close(reason: NATSError(.connection, "gone"))
        #expect(closed)
        let next5 = machine.nextReconnectStep(now: 9_000, wait: wait) { _ in 0 }
        #expect(next5 == .stop)
    }

    @Test func withoutReconnectALossMeansClosing() throws {
        var machine = Self.machine(allowReconnect: false)
        let generation = try Self.connect(&machine)
        let loss = machine.connectionLost(generation: generation)?.reconnect
        #expect(loss == false)
    }

    @Test func serversAdvertisedByTheClusterJoinThePoolOnce() throws {
        var machine = Self.machine()
        try Self.connect(&machine, info: try Self.info(connectURLs: ["10.0.0.3:4222", "10.0.0.1:4222"]))
        let pool = machine.pool.servers.map(\.redacted)
        #expect(pool == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"])
        var generator = SplitMix64(seed: 2)
        let discovered = machine.infoReceived(try Self.info(connectURLs: ["10.0.0.3:4222", "10.0.0.4:4222"]), using: &generator)
        #expect(discovered == ["nats://10.0.0.4:4222"])
    }

    @Test func maximumPayloadComesFromInfoAndIsCheckedBeforeQueueing() throws {
        var machine = Self.machine()
        try Self.connect(&machine, info: try Self.info(maximumPayload: 8))
        let error = Self.refusal { () throws(NATSError) in _ = try Self.publish(&machine, "nine bytes") }
        #expect(error?.kind == .maximumPayloadExceeded)
        let pending = machine.outgoing.pending.isEmpty
        #expect(pending, "nothing was queued")
    }

    @Test func drainingRefusesNewInterestAndUnsubscribesEverything() throws {
        var machine = Self.machine()
        try Self.connect(&machine)
        let (a, _) = try machine.subscribe(subject: "a", queue: nil)
        let (b, _) = try machine.subscribe(subject: "b", queue: nil)
        let pendingBefore = machine.outgoing.pending.readableBytes
        let (sids, _) = try machine.drainAll()
        #expect(sids == [a, b])
        let pending = String(decoding: machine.outgoing.pending.readableBytesView.dropFirst(pendingBefore), as: UTF8.self)
        #expect(pending == "UNSUB \(a)\r\nUNSUB \(b)\r\n")
        let refused = Self.refusal { () throws(NATSError) in _ = try machine.subscribe(subject: "c", queue: nil) }
        #expect(refused?.kind == .draining)
        _ = try Self.publish(&machine, "publishes are still accepted")
    }

    @Test func aClosedMachineRefusesEverythingWithItsReason() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let closed = machine.close(reason: NATSError(.connection, "every server failed"))
        #expect(closed)
        let closed2 = machine.close(reason: nil)
        #expect(closed2 == false, "closed once")
        let error = Self.refusal { () throws(NATSError) in _ = try Self.publish(&machine, "x") }
        #expect(error?.kind == .closed && error?.message.contains("every server failed") == true)
        let loss = machine.connectionLost(generation: generation)
        #expect(loss == nil)
        let step = machine.writerNext(generation: generation, written: nil)
        #expect(step == .exit)
    }

    @Test func endedSubscriptionsAreForgottenAndNotRestored() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let (sid, _) = try machine.subscribe(subject: "once", queue: nil)
        let action = machine.subscriptionEnded(sid: sid, sendUnsubscribe: false)
        #expect(action == .none)
        let subscriptions = machine.subscriptions.isEmpty
        #expect(subscriptions)
        _ = machine.writerNext(generation: generation, written: nil)
        _ = machine.connectionLost(generation: generation)
        try Self.connect(&machine, reconnecting: true)
        let pending = !String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self).contains("once")
        #expect(pending)
    }
}

extension NATSConnectionStateMachine.WriterStep {
    /// Discards a step a test does not look at.
    func ignore() {}
}
