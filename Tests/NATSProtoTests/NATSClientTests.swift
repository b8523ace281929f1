import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import NATSProto

@Suite("NATS client (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSClientTests {
    @Test func publishAndSubscribeInOrder() async throws {
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("pubsub")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("coalesce")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        let before = client.statistics.writes
        for index in 0..<20_000 { try await client.publish([UInt8(truncatingIfNeeded: index)], to: subject) }
        try await client.flush()
        let writes = client.statistics.writes - before
        // Coalescing, not a fixed batch size: while the writer is busy with one
        // write, later publishes join the next. How many join depends on the
        // scheduler of a loaded machine, and on how free the task pool's threads
        // are (the subscription's messages are read on the reactor's thread, so
        // the writer gets a thread of its own sooner and writes smaller batches):
        // the bound is an average of two a write (uncoalesced would be one each;
        // a debug build here gives 2.6 to 10, an idle optimized one hundreds).
        #expect(writes <= 10_000, "20,000 publishes left in \(writes) writes")
        let received = try await subscription.collect(20_000)
        #expect(received.count == 20_000)
        #expect(received.enumerated().allSatisfy { $0.element.payload.getInteger(at: 0, as: UInt8.self) == UInt8(truncatingIfNeeded: $0.offset) })
        await client.close()
    }

    @Test func wildcardsAndReplySubjects() async throws {
        let client = try await LiveServer.natsClient()
        let base = LiveServer.natsSubject("wild")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("queue")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("headers")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("echo")
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
        let internalSubscriptions = client.state.withLock { ($0.subscriptions.count, $0.machine.muxSID != nil, $0.machine.nextSID) }
        #expect(internalSubscriptions.0 == 1 && internalSubscriptions.1, "one service subscription plus the one muxed inbox")
        #expect(internalSubscriptions.2 == 3, "50 requests made no subscription of their own")
        responder.cancel()
        await client.close()
    }

    @Test func noRespondersAndTimeoutsAreTyped() async throws {
        let client = try await LiveServer.natsClient()
        let started = ContinuousClock.now
        let nobody = await #expect(throws: NATSError.self) {
            try await client.request("anyone?", subject: LiveServer.natsSubject("nobody"), timeout: .seconds(5))
        }
        #expect(nobody?.kind == .noResponders)
        #expect(ContinuousClock.now - started < .seconds(2), "503 comes back at once, not at the timeout")

        let subject = LiveServer.natsSubject("silent")
        let silent = try await client.subscribe(to: subject)
        try await client.flush()
        let timedOut = await #expect(throws: NATSError.self) {
            try await client.request("hello", subject: subject, timeout: .milliseconds(200))
        }
        #expect(timedOut?.kind == .timedOut)
        #expect(silent.pending.messages == 1)
        #expect(client.state.withLock { $0.machine.requests.isEmpty && $0.requestTimers.isEmpty })
        await client.close()
    }

    @Test func cancellingARequestEndsItAtOnce() async throws {
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("cancel")
        _ = try await client.subscribe(to: subject)
        try await client.flush()
        let request = Task { try await client.request("x", subject: subject, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        request.cancel()
        let error = await #expect(throws: NATSError.self) { try await request.value }
        #expect(error?.kind == .cancelled)
        #expect(client.state.withLock { $0.machine.requests.isEmpty })
        await client.close()
    }

    @Test func oversizedPayloadsAndInvalidSubjectsAreRefusedBeforeSending() async throws {
        let client = try await LiveServer.natsClient()
        let limit = client.maximumPayload
        let subject = LiveServer.natsSubject("big")
        let tooBig = await #expect(throws: NATSError.self) {
            try await client.publish([UInt8](repeating: 0, count: limit + 1), to: subject)
        }
        #expect(tooBig?.kind == .maximumPayloadExceeded)
        for bad in ["", "a..b", "a b", "foo.*", "foo.>", ".a", "a.", "tab\there"] {
            let error = await #expect(throws: NATSError.self) { try await client.publish("x", to: bad) }
            #expect(error?.kind == .usage, "publish to \"\(bad)\"")
            // A valid subject published just before (the one a publish remembers) changes nothing.
            try await client.publish("x", to: "valid.subject")
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

    @Test func payloadsOfEverySmallLengthArriveWhole() async throws {
        let client = try await LiveServer.natsClient()
        let prefix = LiveServer.natsSubject("len")
        let subscription = try await client.subscribe(to: prefix + ".>")
        try await client.flush()
        var sent: [(String, [UInt8])] = []
        for length in 0...40 {
            // Payloads of 0 to 40 bytes: every branch of the small-copy path and past it.
            let subject = prefix + "." + String(repeating: "s", count: length + 1)
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length) }
            try await client.publish(payload, to: subject)
            sent.append((subject, payload))
        }
        try await client.flush()
        let received = try await subscription.collect(sent.count)
        #expect(received.map(\.subject) == sent.map(\.0))
        #expect(received.map { Array($0.payload.readableBytesView) } == sent.map(\.1))
        await client.close()
    }

    @Test func autoUnsubscribeEndsTheSequence() async throws {
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("auto")
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
        let client = try await LiveServer.natsClient()
        let events = EventLog(client)
        let subject = LiveServer.natsSubject("slow")
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

    @Test func aSlowConsumersMemoryStaysNearItsPendingByteLimit() async throws {
        // 24 MB of 512-byte messages to a subscription that keeps at most 16 MiB and is not read:
        // the read buffers its payloads came from must not stay pinned behind them.
        let limit = 16 << 20
        let client = try await LiveServer.natsClient()
        let publisher = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("pinned")
        let subscription = try await client.subscribe(to: subject, pendingLimits: NATSPendingLimits(messages: -1, bytes: limit))
        try await client.flush()
        let payload = ByteBuffer(bytes: [UInt8](repeating: 0x61, count: 512))
        // In small flushed bursts, as a trickle of events arrives: each read then holds a few
        // messages, and a payload slice would pin a read buffer many times its size.
        let total = 48_000
        let (_, growth) = try await peakMemoryGrowth {
            for index in 0..<total {
                try await publisher.publish(payload, to: subject)
                if index % 8 == 7 { try await publisher.flush() }
            }
            try await publisher.flush()
            // Everything has reached the subscription once the client's own PING comes back.
            try await client.flush()
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(subscription.pending.bytes <= limit && subscription.droppedCount > 0)
        #expect(subscription.deliveredCount == total)
        // 1.25 times the limit, plus a little for the allocator and the publisher's buffers.
        #expect(growth <= limit * 5 / 4 + (8 << 20) + sanitizerMemorySlack, "resident memory grew \(growth >> 20) MiB for a \(limit >> 20) MiB pending limit")
        await publisher.close()
        await client.close()
    }

    /// A lone request reads its reply on its own thread, taking the connection's reader over
    /// from the reactor; messages to the client's subscriptions that come meanwhile are routed
    /// as usual, in order.
    @Test func aLoneRequestReadsItsReplyItselfAndRoutesWhatElseComes() async throws {
        let client = try await LiveServer.natsClient()
        let responder = try await LiveServer.natsClient()
        let publisher = try await LiveServer.natsClient()
        let service = LiveServer.natsSubject("inline")
        let feed = LiveServer.natsSubject("feed")
        let requests = try await responder.subscribe(to: service)
        let answering = Task {
            for try await request in requests { try await responder.respond(to: request, with: request.payload) }
        }
        let updates = try await client.subscribe(to: feed)
        try await responder.flush()
        try await client.flush()
        let feeding = Task {
            for index in 0..<2000 {
                try await publisher.publish("u\(index)", to: feed)
                if index % 50 == 49 { try await publisher.flush() }
            }
            try await publisher.flush()
        }
        for index in 0..<300 {
            let reply = try await client.request("q\(index)", subject: service, timeout: .seconds(10))
            #expect(reply.text == "q\(index)")
        }
        try await feeding.value
        let received = try await updates.collect(2000)
        #expect(received.map(\.text) == (0..<2000).map { "u\($0)" }, "the feed arrived whole and in order beside the requests")
        #expect(client.repliesReadInline.load(ordering: .relaxed) > 0, "no reply was read by its own requester")
        answering.cancel()
        await publisher.close()
        await responder.close()
        await client.close()
    }

    /// A closed client is freed: its connection's reader (which holds the client while it
    /// reads) lets go of it.
    @Test func aClosedClientIsFreed() async throws {
        weak var weakClient: NATSClient?
        do {
            let client = try await LiveServer.natsClient()
            weakClient = client
            let subject = LiveServer.natsSubject("freed")
            let service = try await client.subscribe(to: subject)
            let responder = Task { for try await request in service { try await client.respond(to: request, with: "ok") } }
            #expect(try await client.request("x", subject: subject).text == "ok")
            responder.cancel()
            await client.close()
            _ = await responder.result
        }
        for _ in 0..<200 where weakClient != nil { try await Task.sleep(for: .milliseconds(5)) }
        #expect(weakClient == nil, "the closed client is still referenced")
    }

    @Test func requestsAnsweredAtOnceLeaveNoTimerBehind() async throws {
        // A reply can finish a request before its timer is registered; that timer must not be
        // kept (it was, one per such request: a slow leak under a request load).
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("fast")
        let service = try await client.subscribe(to: subject)
        let responder = Task {
            for try await message in service { if let reply = message.replyTo { try await client.publish("ok", to: reply) } }
        }
        defer { responder.cancel() }
        try await client.flush()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { for _ in 0..<250 { _ = try await client.request("x", subject: subject) } }
            }
            try await group.waitForAll()
        }
        #expect(client.state.withLock { $0.requestTimers.count } == 0)
        #expect(client.state.withLock { $0.machine.requests.count } == 0)
        await client.close()
    }

    @Test func unsubscribeStopsDelivery() async throws {
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("unsub")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("cancelled")
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
        let publisher = try await LiveServer.natsClient()
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("drain")
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
        let client = try await LiveServer.natsClient()
        let subject = LiveServer.natsSubject("close")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        let request = Task { try await client.request("x", subject: subject, timeout: .seconds(30)) }
        let iteration = Task { () -> Int in
            var count = 0
            for try await _ in subscription { count += 1 }
            return count
        }
        // The request has gone round through the server before the close.
        for _ in 0..<5000 where subscription.deliveredCount == 0 { try await Task.sleep(for: .milliseconds(1)) }
        await client.close()
        let error = await #expect(throws: NATSError.self) { try await request.value }
        #expect(error?.kind == .closed)
        #expect(try await iteration.value == 1, "the request itself reached the subscription")
    }

    @Test func serverInfoIsParsed() async throws {
        let client = try await LiveServer.natsClient()
        let info = try #require(client.serverInfo)
        #expect(!info.serverID.isEmpty)
        #expect(info.headers)
        #expect(info.maximumPayload == 1 << 20)
        #expect(info.jetStream)
        #expect(client.connectedServer?.hasPrefix("nats://127.0.0.1:") == true)
        await client.close()
    }
}
