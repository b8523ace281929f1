import Foundation
import JetStream
import NATSProto
import Synchronization
import TestSupport
import Testing
import Transport

/// Three nats-servers of the test's own, routed on loopback, JetStream on each.
final class LiveCluster: Sendable {
    let servers: [ChildProcess]
    let names: [String]
    let clientPorts: [Int]
    let directory: URL

    var urls: [String] { clientPorts.map { "nats://127.0.0.1:\($0)" } }

    init(binary: String) throws {
        directory = try LiveServer.scratchDirectory("cluster")
        func port() throws -> Int {
            let listener = try Listener.bind()
            defer { listener.close() }
            return listener.endpoint.port ?? 0
        }
        let clients = try (0..<3).map { _ in try port() }
        let routes = try (0..<3).map { _ in try port() }
        let routeList = routes.map { "nats://127.0.0.1:\($0)" }.joined(separator: ", ")
        var servers: [ChildProcess] = []
        var names: [String] = []
        for index in 0..<3 {
            let name = "node\(index + 1)"
            let config = directory.appendingPathComponent("\(name).conf")
            try """
                server_name: \(name)
                listen: 127.0.0.1:\(clients[index])
                jetstream { store_dir: "\(directory.appendingPathComponent(name).path)", max_memory_store: 256MB, max_file_store: 1GB }
                cluster { name: infra-test-cluster, listen: 127.0.0.1:\(routes[index]), routes: [\(routeList)] }
                """.write(to: config, atomically: true, encoding: .utf8)
            servers.append(try ChildProcess([binary, "-c", config.path]))
            names.append(name)
        }
        self.servers = servers
        self.names = names
        self.clientPorts = clients
    }

    /// A client that knows every node (connecting to `first` first), reconnecting quickly;
    /// waits for the nodes to listen.
    func client(first: Int? = nil) async throws -> NATSClient {
        var order = urls
        if let first { order.insert(order.remove(at: first), at: 0) }
        var configuration = NATSConfiguration(servers: order)
        configuration.randomizeServers = first == nil
        configuration.reconnectWait = .milliseconds(100)
        configuration.maximumReconnectAttempts = -1
        for _ in 0..<100 {
            if let client = try? await NATSClient.connect(configuration) { return client }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await NATSClient.connect(configuration)
    }

    /// Waits until JetStream has a meta leader (the account info answers).
    func waitForJetStream(_ js: JetStreamContext) async throws {
        for _ in 0..<150 {
            if (try? await js.accountInfo()) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw JetStreamError(.timedOut, message: "the cluster elected no JetStream leader")
    }

    func stop() {
        for server in servers { server.stop() }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The way users scale past one server: replicated streams on a 3-node cluster whose stream
/// leader is killed mid-work.
@Suite(
    "JetStream on a 3-node cluster (live)", .serialized, .timeLimit(.minutes(2)),
    .enabled(if: LiveServer.nats.isAvailable && LiveServer.value("INFRA_TEST_NATS_SERVER") != "legacy"))
struct JetStreamClusterTests {
    @Test func killingTheStreamLeaderDuringAsyncPublishesLosesAndDuplicatesNothing() async throws {
        let cluster = try LiveCluster(binary: try LiveServer.require("INFRA_TEST_NATS_SERVER_BINARY"))
        defer { cluster.stop() }
        let setup = try await cluster.client()
        let admin = JetStreamContext(client: setup, timeout: .seconds(10))
        try await cluster.waitForJetStream(admin)
        var config = StreamConfig(name: "R3", subjects: ["r3.>"])
        config.replicas = 3
        config.duplicateWindow = .seconds(600)
        let info = try await admin.createStream(config)
        #expect(info.config.replicas == 3)
        // The publisher is connected to the stream leader, so killing it takes its connection too.
        var leaderIndex: Int?
        for _ in 0..<50 where leaderIndex == nil {
            leaderIndex = try await admin.streamInfo("R3").cluster?.leader.flatMap { cluster.names.firstIndex(of: $0) }
            if leaderIndex == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        await setup.close()
        guard let leaderIndex else {
            Issue.record("the stream has no leader")
            return
        }
        let client = try await cluster.client(first: leaderIndex)
        defer { Task { await client.close() } }
        let events = Mutex<[String]>([])
        let watcher = Task { for await event in client.events { events.withLock { $0.append("\(event)") } } }
        defer { watcher.cancel() }
        let js = JetStreamContext(client: client, timeout: .seconds(10))

        let total = 20_000
        let publisher = try await js.makeAsyncPublisher(maximumPending: 500)
        var futures: [(Int, PubAckFuture)] = []
        var killed: Int?
        for index in 0..<total {
            futures.append((index, try await publisher.publish(Array("m\(index)".utf8), to: "r3.work", headers: [JetStreamHeader.messageID: "m\(index)"])))
            if index == total / 3, let leader = try await js.streamInfo("R3").cluster?.leader, let node = cluster.names.firstIndex(of: leader) {
                cluster.servers[node].stop()  // SIGKILL
                killed = node
            }
        }
        await publisher.complete()
        // What was not acknowledged (the leader died with it in flight) is sent again with its id.
        var retried = 0
        for (index, future) in futures {
            guard (try? await future.value()) == nil else { continue }
            retried += 1
            var options = PublishOptions(messageID: "m\(index)")
            options.retryAttempts = 80  // a new leader is elected within seconds
            options.retryWait = .milliseconds(250)
            try await js.publish(Array("m\(index)".utf8), to: "r3.work", options: options)
        }
        let state = try await js.streamInfo("R3").state
        #expect(state.messages == UInt64(total), "every acknowledged message stored once: \(state.messages), \(retried) retried")
        #expect(killed != nil, "the stream leader was found and killed")
        if let killed {
            try cluster.servers[killed].start()
            var rejoined = false
            for _ in 0..<100 where !rejoined {
                try await Task.sleep(for: .milliseconds(200))
                let replicas = try await js.streamInfo("R3").cluster?.replicas ?? []
                rejoined = replicas.contains { $0.name == cluster.names[killed] && $0.current }
            }
            #expect(rejoined, "the killed node rejoined and caught up")
        }
        await publisher.close()
        #expect(events.withLock { $0.contains { $0.hasPrefix("reconnected") } }, "the client's events show the reconnect: \(events.withLock { $0 })")
    }

    /// Reads `consumer` until every one of `total` messages (payloads `m<index>`) has been
    /// delivered, double-acking each, and returns how often each was delivered; during the
    /// read, after `killAfter` messages, runs `fault` once. The batch is small and the
    /// consumer's ack wait long, so that no redelivery is sent while its message's ack is on
    /// the way: one that comes after a confirmed ack is the server's (or our) loss of the ack.
    static func consumeAll(
        _ js: JetStreamContext, stream: String, consumer: String, total: Int, killAfter: Int, fault: @Sendable () async throws -> Void
    ) async throws -> (deliveries: [Int: Int], redeliveredAfterConfirmedAck: [String]) {
        var options = ConsumeOptions(batch: 50)
        options.expires = .seconds(4)
        options.heartbeat = .seconds(1)
        var deliveries: [Int: Int] = [:]
        // What the server said of each confirmed delivery, and at which receipt it came.
        var confirmed: [Int: (metadata: MessageMetadata, receipt: Int)] = [:]
        var redeliveredAfterConfirmedAck: [String] = []
        var faulted = false
        var received = 0
        for try await message in js.messages(consumer: consumer, stream: stream, options: options) {
            guard let index = Int(message.text.dropFirst()) else { continue }
            deliveries[index, default: 0] += 1
            received += 1
            if let first = confirmed[index] {
                // Told apart for the report: the same delivery seen twice (same consumer
                // sequence) would be the client's fault; a new one is the server's redelivery.
                let again = message.metadata
                redeliveredAfterConfirmedAck.append(
                    "m\(index): confirmed at receipt \(first.receipt) (consumer seq \(first.metadata.consumerSequence), "
                        + "delivery \(first.metadata.deliveryCount)), again at receipt \(received) (consumer seq "
                        + "\(again.consumerSequence), delivery \(again.deliveryCount)); kill after receipt \(killAfter)")
            }
            if received == killAfter, !faulted {
                faulted = true
                try await fault()
            }
            // An ack the server never confirmed (lost with its node) may be redelivered; a
            // confirmed one must not be.
            if (try? await message.doubleAck(timeout: .seconds(2))) != nil { confirmed[index] = (message.metadata, received) }
            if deliveries.count == total { break }
        }
        return (deliveries, redeliveredAfterConfirmedAck)
    }

    @Test func killingTheConsumerLeaderDuringAConsumeLosesNothingAndTheReadGoesOn() async throws {
        let cluster = try LiveCluster(binary: try LiveServer.require("INFRA_TEST_NATS_SERVER_BINARY"))
        defer { cluster.stop() }
        let setup = try await cluster.client()
        let admin = JetStreamContext(client: setup, timeout: .seconds(10))
        try await cluster.waitForJetStream(admin)
        var config = StreamConfig(name: "WORK", subjects: ["work.>"])
        config.replicas = 3
        try await admin.createStream(config)
        let total = 3000
        let publisher = try await admin.makeAsyncPublisher()
        for index in 0..<total { _ = try await publisher.publish(Array("m\(index)".utf8), to: "work.task") }
        await publisher.complete()
        await publisher.close()
        var consumerConfig = ConsumerConfig(durableName: "workers")
        consumerConfig.ackWait = .seconds(8)
        try await admin.createConsumer(consumerConfig, stream: "WORK")
        var leaderIndex: Int?
        for _ in 0..<50 where leaderIndex == nil {
            leaderIndex = try await admin.consumerInfo("workers", stream: "WORK").cluster?.leader.flatMap { cluster.names.firstIndex(of: $0) }
            if leaderIndex == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        await setup.close()
        let leader = try #require(leaderIndex, "the consumer has a leader")
        // The reader is connected to the consumer's leader, so the kill takes its connection too.
        let client = try await cluster.client(first: leader)
        defer { Task { await client.close() } }
        let js = JetStreamContext(client: client, timeout: .seconds(10))
        let (deliveries, redelivered) = try await Self.consumeAll(js, stream: "WORK", consumer: "workers", total: total, killAfter: total / 3) {
            cluster.servers[leader].stop()  // SIGKILL
        }
        #expect(deliveries.count == total, "every message was delivered: \(deliveries.count) of \(total)")
        #expect(redelivered.isEmpty, "no message whose ack the server confirmed came again: \(redelivered.count), first \(redelivered.prefix(5))")
        let info = try await js.consumerInfo("workers", stream: "WORK")
        #expect(info.cluster?.leader != cluster.names[leader], "a new consumer leader took over")
        try cluster.servers[leader].start()
    }
}

/// One nats-server of the test's own with file storage, restarted in the middle of a consume.
@Suite("JetStream across a server restart (live)", .timeLimit(.minutes(2)), .enabled(if: LiveServer.nats.isAvailable))
struct JetStreamRestartTests {
    @Test func aServerRestartDuringAConsumeResumesWithoutLossOrRepeatsOfConfirmedAcks() async throws {
        let binary = try LiveServer.require("INFRA_TEST_NATS_SERVER_BINARY")
        let directory = try LiveServer.scratchDirectory("restart")
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try Listener.bind()
        let port = listener.endpoint.port ?? 0
        listener.close()
        let server = try ChildProcess([binary, "-a", "127.0.0.1", "-p", "\(port)", "-js", "-sd", directory.path])
        defer { server.stop() }
        var configuration = NATSConfiguration(servers: ["nats://127.0.0.1:\(port)"])
        configuration.reconnectWait = .milliseconds(100)
        configuration.maximumReconnectAttempts = -1
        var connected: NATSClient?
        for _ in 0..<100 where connected == nil {
            connected = try? await NATSClient.connect(configuration)
            if connected == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let client = try #require(connected, "the server came up")
        defer { Task { await client.close() } }
        let events = Mutex<[String]>([])
        let watcher = Task { for await event in client.events { events.withLock { $0.append("\(event)") } } }
        defer { watcher.cancel() }
        let js = JetStreamContext(client: client, timeout: .seconds(10))
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? await js.accountInfo()) != nil
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        try await js.createStream(StreamConfig(name: "JOBS", subjects: ["jobs.>"]))
        let total = 2000
        let publisher = try await js.makeAsyncPublisher()
        for index in 0..<total { _ = try await publisher.publish(Array("m\(index)".utf8), to: "jobs.new") }
        await publisher.complete()
        await publisher.close()
        var consumerConfig = ConsumerConfig(durableName: "jobs")
        consumerConfig.ackWait = .seconds(8)
        try await js.createConsumer(consumerConfig, stream: "JOBS")

        let (deliveries, redelivered) = try await JetStreamClusterTests.consumeAll(
            js, stream: "JOBS", consumer: "jobs", total: total, killAfter: total / 4
        ) {
            // A restart, as an upgrade or a host reboot does it: the server stops on SIGTERM,
            // writing the consumer's state (a SIGKILL can lose acks confirmed in the last moments:
            // a single server keeps them in memory briefly; the cluster test covers the kill).
            server.stop(signal: SIGTERM)
            try await Task.sleep(for: .milliseconds(300))
            try server.start()
        }
        #expect(deliveries.count == total, "every message was delivered after the restart: \(deliveries.count) of \(total)")
        #expect(redelivered.isEmpty, "no message whose ack the server confirmed came again: \(redelivered.count), first \(redelivered.prefix(5))")
        #expect(events.withLock { $0.contains { $0.hasPrefix("reconnected") } }, "\(events.withLock { $0 })")
    }
}
