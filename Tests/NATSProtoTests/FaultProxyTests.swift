import Foundation
import TestSupport
import Testing
import Transport

@testable import NATSProto

/// NATS through a proxy that misbehaves: a message cut midway is a lost connection the client
/// recovers from without a manual step; a server that goes silent is found by missed PINGs; a
/// link of single bytes still carries requests.
@Suite("NATS through a faulty link", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSFaultProxyTests {
    func upstreamPort() throws -> Int {
        try NATSServerAddress(parsing: try LiveServer.require(LiveServer.nats.rawValue)).port
    }

    func options(_ proxy: FaultProxy) -> NATSConfiguration {
        var options = NATSConfiguration(url: "nats://127.0.0.1:\(proxy.port)")
        options.reconnectWait = .milliseconds(50)
        options.reconnectJitter = .milliseconds(10)
        options.connectTimeout = .seconds(1)
        return options
    }

    @Test func aMessageCutMidwayIsRecoveredFromWithoutAManualStep() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort())
        defer { proxy.close() }
        let client = try await NATSClient.connect(options(proxy))
        let events = EventLog(client)
        let subject = LiveServer.natsSubject("cut")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        proxy.setMode(.cutDownstream(afterBytes: 20_000))
        try await client.publish(ByteBuffer(bytes: [UInt8](repeating: 0x61, count: 100_000)), to: subject)
        #expect(try await events.waitFor { if case .disconnected(_, _) = $0 { true } else { false } })
        proxy.setMode(.pass)
        #expect(try await events.waitFor { if case .reconnected = $0 { true } else { false } })
        try await client.publish("after", to: subject)
        try await client.flush()
        var received: [String] = []
        for try await message in subscription {
            received.append(message.payload.readableBytes > 1000 ? "big" : message.text)
            if message.text == "after" { break }
        }
        #expect(received.last == "after" && subscription.gapCount == 1)
        await client.close()
    }

    @Test func aServerThatGoesSilentIsFoundByMissedPINGs() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort())
        defer { proxy.close() }
        var options = options(proxy)
        options.pingInterval = .milliseconds(200)
        options.maximumPingsOutstanding = 2
        options.allowReconnect = false
        let client = try await NATSClient.connect(options)
        let events = EventLog(client)
        proxy.setMode(.blackHole)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try await events.waitFor(seconds: 5) { if case .disconnected(_, let reason?) = $0 { reason.message.contains("stale") } else { false } })
        #expect(clock.now - start < .seconds(3), "found within a few PING intervals")
        await client.close()
    }

    @Test func aLinkOfSingleBytesStillCarriesRequests() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort(), mode: .singleBytes)
        defer { proxy.close() }
        let client = try await NATSClient.connect(options(proxy))
        let subject = LiveServer.natsSubject("bytes")
        let service = try await client.subscribe(to: subject)
        let responder = Task {
            for try await message in service {
                if let reply = message.replyTo { try await client.publish("echo " + message.text, to: reply) }
            }
        }
        defer { responder.cancel() }
        try await client.flush()
        for index in 0..<5 {
            let answer = try await client.request("\(index)", subject: subject, timeout: .seconds(5))
            #expect(answer.text == "echo \(index)")
        }
        await client.close()
    }

    /// A request whose connection breaks before the reply fails at once as interrupted, not
    /// after its timeout; the next request goes out on the new connection and is answered.
    @Test func aRequestCutFromItsReplyFailsAtOnceAsInterrupted() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort())
        defer { proxy.close() }
        let client = try await NATSClient.connect(options(proxy))
        let direct = try await NATSClient.connect(NATSConfiguration(url: try LiveServer.require(LiveServer.nats.rawValue)))
        let subject = LiveServer.natsSubject("interrupted")
        let service = try await direct.subscribe(to: subject)
        let responder = Task {
            for try await message in service {
                if let reply = message.replyTo { try await direct.publish("echo " + message.text, to: reply) }
            }
        }
        defer { responder.cancel() }
        try await direct.flush()
        #expect(try await client.request("before", subject: subject).text == "echo before")
        // The reply is the next byte the proxy would carry to the client: it cuts the link there.
        proxy.setMode(.cutDownstream(afterBytes: 0))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let reply = try await client.request("cut", subject: subject, timeout: .seconds(10))
            Issue.record("a reply came through a cut link: \(reply.text)")
        } catch {
            #expect(error.kind == .interrupted, "\(error)")
            #expect(error.message.contains("may have been processed"))
        }
        #expect(clock.now - start < .seconds(2), "failed when the link broke, not at the 10 s timeout")
        proxy.setMode(.pass)
        #expect(try await client.request("after", subject: subject, timeout: .seconds(5)).text == "echo after")
        await client.close()
        await direct.close()
    }
}
