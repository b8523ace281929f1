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
        let observed1 = try Self.publish(&machine, "early")
        #expect(observed1 == .none, "no connection: no writer to wake")
        let observed2 = String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self)
        #expect(observed2 == "PUB jobs.new 5\r\nearly\r\n")
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
        let observed3 = machine.phase
        #expect(observed3 == .connected)
        let observed4 = machine.statistics.reconnects
        #expect(observed4 == 0)
    }

    @Test func theParkedWriterIsWokenOnceAndTakesEverythingQueued() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let observed5 = machine.writerNext(generation: generation, written: nil)
        #expect(observed5 == .park)
        let observed6 = machine.writerParks(generation: generation)
        #expect(observed6 == .park)
        let observed7 = try Self.publish(&machine, "one")
        #expect(observed7 == .wakeWriter)
        let observed8 = try Self.publish(&machine, "two")
        #expect(observed8 == .none, "already woken")
        let observed9 = Self.text(machine.writerNext(generation: generation, written: nil))
        #expect(observed9 == "PUB jobs.new 3\r\none\r\nPUB jobs.new 3\r\ntwo\r\n")
        let observed10 = try Self.publish(&machine, "three")
        #expect(observed10 == .none, "the writer is busy and comes back for it")
        let observed11 = Self.text(machine.writerNext(generation: generation, written: ByteBuffer()))
        #expect(observed11 == "PUB jobs.new 5\r\nthree\r\n")
        let observed12 = machine.writerNext(generation: generation, written: ByteBuffer())
        #expect(observed12 == .park)
        let observed13 = machine.statistics.writes
        #expect(observed13 == 2)
        let observed14 = machine.writerNext(generation: generation + 1, written: nil)
        #expect(observed14 == .exit, "another connection's writer ends")
    }

    @Test func aLoneReplyIsWrittenInlineWhileTheWriterSleeps() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        machine.writerNext(generation: generation, written: nil).ignore()
        let observed15 = machine.writerParks(generation: generation)
        #expect(observed15 == .park)
        let inline = try Self.publish(&machine, "ok", to: "_INBOX.x.1", promptly: true)
        #expect(Self.text(inline) == "PUB _INBOX.x.1 2\r\nok\r\n")
        let observed16 = try Self.publish(&machine, "later")
        #expect(observed16 == .none, "the inline writer holds the turn")
        let observed17 = machine.inlineWriteFinished(generation: generation, written: ByteBuffer())
        #expect(observed17, "bytes came meanwhile: wake the writer")
        let observed18 = machine.inlineWriteFinished(generation: generation, written: nil)
        #expect(observed18 == false, "the writer was woken already")
    }

    @Test func pongsCompleteFlushesInOrderAndKeepAlivesCountMissedOnes() throws {
        var machine = Self.machine(pings: 2)
        let generation = try Self.connect(&machine)
        _ = try machine.flush(id: 1)
        let observed19 = machine.keepAliveTick()
        #expect(observed19 == .ping(.none))
        _ = try machine.flush(id: 2)
        let observed20 = machine.pongReceived()
        #expect(observed20 == 1)
        let observed21 = machine.pongReceived()
        #expect(observed21 == nil, "the keep-alive's PONG")
        let observed22 = machine.pongReceived()
        #expect(observed22 == 2)
        let observed23 = machine.pongReceived()
        #expect(observed23 == nil)
        let observed24 = machine.keepAliveTick()
        #expect(observed24 == .ping(.none))
        let observed25 = machine.keepAliveTick()
        #expect(observed25 == .ping(.none))
        let observed26 = machine.keepAliveTick()
        #expect(observed26 == .stale, "two PINGs unanswered")
        _ = machine.pongReceived()
        let observed27 = machine.keepAliveTick()
        #expect(observed27 == .ping(.none), "a PONG resets the count")
        let observed28 = machine.pingReceived()
        #expect(observed28 == .none)
        let observed29 = String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self).hasSuffix("PONG\r\n")
        #expect(observed29)
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
        let observed30 = machine.connectionLost(generation: generation)
        #expect(observed30 == nil, "handled once")
        let observed31 = machine.phase
        #expect(observed31 == .reconnecting)
        try Self.connect(&machine, to: Self.second, reconnecting: true)
        let observed32 = machine.pongReceived()
        #expect(observed32 == 2, "the queued PING goes out on the new connection")
        let observed33 = machine.statistics.reconnects
        #expect(observed33 == 1)
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
        let observed34 = machine.requestFinished(token: 1, .success(reply))
        #expect(observed34 == .stored)
        let observed35 = machine.requestFinished(token: 1, .failure(NATSError(.timedOut, "late")))
        #expect(observed35 == .ignored)
        let observed36 = machine.requestWaits(token: 1)
        #expect(observed36 == .ready(.success(reply)))
        try send(2)
        let observed37 = machine.requestWaits(token: 2)
        #expect(observed37 == .wait)
        let observed38 = machine.requestFinished(token: 2, .failure(NATSError(.cancelled, "c")))
        #expect(observed38 == .resume(.failure(NATSError(.cancelled, "c"))))
        let observed39 = !machine.hasOutstandingRequests
        #expect(observed39)
        let observed40 = machine.requestWaits(token: 3)
        #expect(observed40 == .gone)
    }

    @Test func reconnectAttemptsFollowADR40sSchedule() throws {
        var machine = Self.machine(attempts: 1)
        let generation = try Self.connect(&machine, to: Self.first, now: 1_000)
        _ = machine.connectionLost(generation: generation)
        let wait: UInt64 = 2_000
        // The other server first, at once; the lost one after it, no sooner than wait after its last attempt.
        let observed41 = machine.nextReconnectStep(now: 1_500, wait: wait) { _ in 0 }
        #expect(observed41 == .attempt(Self.second, notBefore: 1_500))
        let observed42 = machine.reconnectAttemptStarts(Self.second, now: 1_500)
        #expect(observed42)
        machine.reconnectAttemptFailed(Self.second)
        let observed43 = machine.nextReconnectStep(now: 1_600, wait: wait) { _ in 7 }
        #expect(observed43 == .attempt(Self.first, notBefore: 3_007))
        machine.reconnectAttemptFailed(Self.first)
        let observed44 = machine.nextReconnectStep(now: 1_700, wait: wait) { _ in 0 }
        #expect(observed44 == .attempt(Self.second, notBefore: 3_500))
        machine.reconnectAttemptFailed(Self.second)
        machine.reconnectAttemptFailed(Self.first)
        let observed45 = machine.nextReconnectStep(now: 9_000, wait: wait) { _ in 0 }
        #expect(observed45 == .giveUp, "every server failed twice: the pool is empty")
        let observed46 = machine.close(reason: NATSError(.connection, "gone"))
        #expect(observed46)
        let observed47 = machine.nextReconnectStep(now: 9_000, wait: wait) { _ in 0 }
        #expect(observed47 == .stop)
    }

    @Test func withoutReconnectALossMeansClosing() throws {
        var machine = Self.machine(allowReconnect: false)
        let generation = try Self.connect(&machine)
        let observed48 = machine.connectionLost(generation: generation)?.reconnect
        #expect(observed48 == false)
    }

    @Test func serversAdvertisedByTheClusterJoinThePoolOnce() throws {
        var machine = Self.machine()
        try Self.connect(&machine, info: try Self.info(connectURLs: ["10.0.0.3:4222", "10.0.0.1:4222"]))
        let observed49 = machine.pool.servers.map(\.redacted)
        #expect(observed49 == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"])
        var generator = SplitMix64(seed: 2)
        let observed50 = machine.infoReceived(try Self.info(connectURLs: ["10.0.0.3:4222", "10.0.0.4:4222"]), using: &generator)
        #expect(observed50 == ["nats://10.0.0.4:4222"])
    }

    @Test func maximumPayloadComesFromInfoAndIsCheckedBeforeQueueing() throws {
        var machine = Self.machine()
        try Self.connect(&machine, info: try Self.info(maximumPayload: 8))
        let error = Self.refusal { () throws(NATSError) in _ = try Self.publish(&machine, "nine bytes") }
        #expect(error?.kind == .maximumPayloadExceeded)
        let observed51 = machine.outgoing.pending.isEmpty
        #expect(observed51, "nothing was queued")
    }

    @Test func drainingRefusesNewInterestAndUnsubscribesEverything() throws {
        var machine = Self.machine()
        try Self.connect(&machine)
        let (a, _) = try machine.subscribe(subject: "a", queue: nil)
        let (b, _) = try machine.subscribe(subject: "b", queue: nil)
        let pendingBefore = machine.outgoing.pending.readableBytes
        let (sids, _) = try machine.drainAll()
        #expect(sids == [a, b])
        let observed52 = String(decoding: machine.outgoing.pending.readableBytesView.dropFirst(pendingBefore), as: UTF8.self)
        #expect(observed52 == "UNSUB \(a)\r\nUNSUB \(b)\r\n")
        let refused = Self.refusal { () throws(NATSError) in _ = try machine.subscribe(subject: "c", queue: nil) }
        #expect(refused?.kind == .draining)
        _ = try Self.publish(&machine, "publishes are still accepted")
    }

    @Test func aClosedMachineRefusesEverythingWithItsReason() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let observed53 = machine.close(reason: NATSError(.connection, "every server failed"))
        #expect(observed53)
        let observed54 = machine.close(reason: nil)
        #expect(observed54 == false, "closed once")
        let error = Self.refusal { () throws(NATSError) in _ = try Self.publish(&machine, "x") }
        #expect(error?.kind == .closed && error?.message.contains("every server failed") == true)
        let observed55 = machine.connectionLost(generation: generation)
        #expect(observed55 == nil)
        let observed56 = machine.writerNext(generation: generation, written: nil)
        #expect(observed56 == .exit)
    }

    @Test func endedSubscriptionsAreForgottenAndNotRestored() throws {
        var machine = Self.machine()
        let generation = try Self.connect(&machine)
        let (sid, _) = try machine.subscribe(subject: "once", queue: nil)
        let observed57 = machine.subscriptionEnded(sid: sid, sendUnsubscribe: false)
        #expect(observed57 == .none)
        let observed58 = machine.subscriptions.isEmpty
        #expect(observed58)
        _ = machine.writerNext(generation: generation, written: nil)
        _ = machine.connectionLost(generation: generation)
        try Self.connect(&machine, reconnecting: true)
        let observed59 = !String(decoding: machine.outgoing.pending.readableBytesView, as: UTF8.self).contains("once")
        #expect(observed59)
    }
}

extension NATSConnectionStateMachine.WriterStep {
    /// Discards a step a test does not look at.
    func ignore() {}
}
