import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import NATSProto

@Suite("NATS reconnect (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSReconnectTests {
    @Test func serverRestartRestoresSubscriptionsAndDeliversBufferedPublishes() async throws {
        let (server, port) = try LiveServer.privateNATSServer()
        defer { server.stop() }
        var options = NATSConfiguration(url: "nats://127.0.0.1:\(port)")
        options.reconnectWait = .milliseconds(100)
        options.reconnectJitter = .milliseconds(20)
        options.maximumReconnectAttempts = -1
        let records = RecordingLogHandler.Store()
        options.logger = records.logger()
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
        // Each restored subscription says it may have missed messages: an event and its count.
        // The three gaps are told one after the other: wait for each before reading the counts.
        #expect(try await events.waitFor { if case .subscriptionGap("restart.group", grouped.sid) = $0 { true } else { false } })
        #expect(try await events.waitFor { if case .subscriptionGap("restart.plain", plain.sid) = $0 { true } else { false } })
        #expect(try await events.waitFor { if case .subscriptionGap("restart.limited", limited.sid) = $0 { true } else { false } })
        #expect(plain.gapCount == 1 && grouped.gapCount == 1 && limited.gapCount == 1)
        try await subscriber.flush()
        let restored = try await plain.collect(100)
        #expect(restored.map(\.text) == (0..<100).map { "buffered \($0)" })
        #expect(try await grouped.collect(1).first?.text == "grouped")
        var limitedTexts: [String] = []
        for try await message in limited { limitedTexts.append(message.text) }
        #expect(limitedTexts == ["limited 0", "limited 1"], "the auto-unsubscribe count carried over: 3 in all")
        #expect(subscriber.statistics.reconnects == 1)
        await subscriber.close()
        let logged = records.all
        #expect(logged.contains { $0.level == .info && $0.message == "connected" && $0.metadata["nats.server"] == "nats://127.0.0.1:\(port)" })
        #expect(logged.contains { $0.level == .warning && $0.message == "disconnected" })
        #expect(logged.contains { $0.level == .info && $0.message == "reconnected" })
        // Failed first attempts (the server was starting) are clients of their own; the one that
        // connected carries one id through its disconnect and reconnect.
        let lifecycle = logged.filter { ["connected", "disconnected", "reconnected"].contains($0.message) }
        #expect(Set(lifecycle.compactMap { $0.metadata["nats.client"] }).count == 1, "\(lifecycle.map(\.metadata))")
    }

    @Test func reconnectBufferIsBounded() async throws {
        let (server, port) = try LiveServer.privateNATSServer()
        defer { server.stop() }
        var options = NATSConfiguration(url: "nats://127.0.0.1:\(port)")
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
