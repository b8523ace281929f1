import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import RESP

@Suite("Redis Sentinel URLs")
struct RedisSentinelURLTests {
    @Test func aSentinelURLNamesTheSentinelsTheMasterAndBothPasswords() throws {
        let configuration = try RedisConfiguration(
            url: "redis+sentinel://app:secret@10.0.0.1:26380,10.0.0.2,[::1]:5000/orders/4?sentinel_password=s%40s&sentinel_user=watch&timeout=2")
        let sentinel = try #require(configuration.sentinel)
        #expect(sentinel.sentinels == [.init(host: "10.0.0.1", port: 26380), .init(host: "10.0.0.2", port: 26379), .init(host: "::1", port: 5000)])
        #expect(sentinel.masterName == "orders" && sentinel.password == "s@s" && sentinel.user == "watch")
        #expect(configuration.user == "app" && configuration.password == "secret" && configuration.database == 4)
        #expect(configuration.commandTimeout == .seconds(2))
        #expect(try RedisConfiguration(url: "redis+sentinel://h/m").sentinel?.masterName == "m")
        for bad in ["redis+sentinel://h", "redis+sentinel://h/", "redis+sentinel:///m", "redis+sentinel://h/m/x", "redis+sentinel://h/m/1/2"] {
            #expect(throws: RedisError.self) { try RedisConfiguration(url: bad) }
        }
        #expect(throws: RedisError.self, "sentinel options on a plain URL") { try RedisConfiguration(url: "redis://h?sentinel_password=x") }
    }

    /// A master that answers READONLY was demoted by a failover: the connection closes itself so
    /// that the next one asks the sentinels again.
    @Test func aREADONLYReplyClosesAConnectionMadeThroughTheSentinels() async throws {
        let master = try ScriptedRedisServer(replies: [
            "%0\r\n", "+OK\r\n", "+PONG\r\n", "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
        ])
        let sentinel = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n", "+PONG\r\n", "*2\r\n$9\r\n127.0.0.1\r\n$\(String(master.port).count)\r\n\(master.port)\r\n"])
        var configuration = RedisConfiguration()
        configuration.sentinel = RedisSentinelConfiguration(sentinels: [.init(host: "127.0.0.1", port: sentinel.port)], masterName: "m")
        let connection = try await RedisConnection.connect(configuration)
        let error = await #expect(throws: RedisError.self) { try await connection.send(["SET", "k", "v"]) }
        #expect(error?.code == "READONLY")
        #expect(connection.isClosed)
        #expect(try await sentinel.task.value.last == "SENTINEL get-master-addr-by-name m")
        #expect(try await master.task.value.suffix(2) == ["ROLE", "SET k v"])
    }
}

/// A master, its replica and three sentinels of the test's own (scripts/redis-sentinel-set.sh).
@Suite("Redis Sentinel (live)", .serialized, .timeLimit(.minutes(3)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisSentinelLiveTests {
    /// The port of the server a connection reached.
    static func serverPort(_ client: RedisClient) async throws -> Int? {
        let reply = try await client.send(["CONFIG", "GET", "port"])
        switch reply.withoutAttributes {
        case .map(let pairs): return pairs.first.flatMap { $0.value.string }.flatMap { Int($0) }
        case .array(let values): return values.last?.string.flatMap { Int($0) }
        default: return nil
        }
    }

    @Test func theSentinelsLeadToTheMasterAndAWrongSentinelPasswordIsReported() async throws {
        try await RedisSentinelDeployment.with { deployment in
            let client = try RedisClient(url: deployment.url)
            defer { client.close() }
            try await client.set("k", "v")
            #expect(try await client.get("k") == "v")
            #expect(try await Self.serverPort(client) == deployment.master)
            // The first sentinel down: the next one answers.
            var skipping = try RedisConfiguration(url: deployment.url)
            skipping.sentinel?.sentinels.insert(.init(host: "127.0.0.1", port: 1), at: 0)
            let second = try await RedisConnection.connect(skipping)
            second.close()
            var wrong = try RedisConfiguration(url: deployment.url)
            wrong.sentinel?.password = "wrong"
            do {
                _ = try await RedisConnection.connect(wrong)
                Issue.record("connected with a wrong sentinel password")
            } catch let error as RedisError {
                #expect(error.kind == .connection && error.message.contains("no master \"infra-master\" through the sentinels"), "\(error)")
                #expect(!error.message.contains(deployment.sentinelPassword) && !error.message.contains(deployment.password))
            }
        }
    }

    /// A failover that leaves the old master alive (SENTINEL FAILOVER): the client hears
    /// +switch-master and moves to the new master before any command of its sees READONLY.
    @Test func aSwitchOfMasterAnnouncedByTheSentinelsMovesTheClientBeforeAnyCommandFails() async throws {
        try await RedisSentinelDeployment.with { deployment in
            let client = try RedisClient(url: deployment.url)
            defer { client.close() }
            try await client.set("before", "1")
            #expect(try await Self.serverPort(client) == deployment.master)
            // The watcher subscribes on the first connection; give it a moment to be listening.
            try await Task.sleep(for: .milliseconds(300))
            var sentinel = RedisConfiguration(host: "127.0.0.1", port: deployment.sentinels[0], password: deployment.sentinelPassword)
            sentinel.commandTimeout = .seconds(5)
            let admin = try await RedisConnection.connect(sentinel)
            defer { admin.close() }
            try await admin.send(["SENTINEL", "FAILOVER", "infra-master"])
            for _ in 0..<300 where client.masterSwitchCount == 0 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(client.masterSwitchCount == 1)
            try await client.set("after", "2")
            #expect(try await Self.serverPort(client) == deployment.replica, "the client is on the promoted replica")
            #expect(try await client.get("before") == "1")
        }
    }

    /// SET under load, each followed by WAIT 1: a write the replica acknowledged counts as
    /// durable. The master is killed; the sentinels promote the replica; the client finds it by
    /// itself. Every durable write is on the new master.
    @Test func aKilledMasterIsReplacedUnderLoadWithNoDurableWriteLost() async throws {
        try await RedisSentinelDeployment.with { deployment in
            var configuration = try RedisConfiguration(url: deployment.url)
            configuration.commandTimeout = .seconds(2)
            configuration.connectTimeout = .seconds(2)
            let client = RedisClient(configuration: configuration)
            defer { client.close() }
            let ledger = SentinelLedger()
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            while ledger.running.load(ordering: .relaxed) {
                                let id = ledger.nextID.add(1, ordering: .relaxed).newValue
                                do {
                                    try await client.set("durable:\(id)", .integer(id))
                                    ledger.written.add(1, ordering: .relaxed)
                                    ledger.firstWriteAfterKill.withLock { first in
                                        if first == nil, let killedAt = ledger.killedAt.withLock({ $0 }) { first = ContinuousClock.now - killedAt }
                                    }
                                    // WAIT's own timeout keeps it from blocking once no replica is left
                                    // (it blocks the shared connection while it waits: kept short).
                                    if case .integer(let replicas) = try await client.send(["WAIT", "1", "20"]), replicas >= 1 {
                                        _ = ledger.durable.withLock { $0.insert(id) }
                                    }
                                } catch let error as RedisError {
                                    ledger.failures.withLock { $0.append("\(error.kind)") }
                                    try? await Task.sleep(for: .milliseconds(20))
                                } catch {
                                    ledger.failures.withLock { $0.append("untyped: \(error)") }
                                }
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .seconds(1))
            let durableBefore = ledger.durable.withLock { $0.count }
            #expect(durableBefore > 20, "writes were acknowledged by the replica before the kill: \(durableBefore)")
            try await deployment.killMaster()
            let killedAt = ContinuousClock.now
            ledger.killedAt.withLock { $0 = killedAt }
            let writtenAtKill = ledger.written.load(ordering: .relaxed)
            let recoveredAfter = try await elapsedUntil(since: killedAt, polls: 600) {
                guard ledger.written.load(ordering: .relaxed) > writtenAtKill + 100 else { return false }
                return try await Self.serverPort(client) == deployment.replica
            }
            ledger.running.store(false, ordering: .relaxed)
            await load.value
            #expect(recoveredAfter != nil, "writes went on on the promoted replica")
            let failures = ledger.failures.withLock { $0 }
            #expect(!failures.contains { $0.hasPrefix("untyped") }, "\(failures.filter { $0.hasPrefix("untyped") }.prefix(3))")
            let durable = ledger.durable.withLock { $0 }.sorted()
            var lost: [Int64] = []
            for chunk in stride(from: 0, to: durable.count, by: 500) {
                let keys = durable[chunk..<min(chunk + 500, durable.count)]
                let values = try await client.mget(keys.map { "durable:\($0)" })
                for (id, value) in zip(keys, values) where value != String(id) { lost.append(id) }
            }
            #expect(lost.isEmpty, "\(lost.count) of \(durable.count) durable writes lost, e.g. \(lost.prefix(5))")
            print("sentinel failover: \(durable.count) durable writes, \(lost.count) lost, \(failures.count) failed calls (\(Set(failures).sorted())), first write \(ledger.firstWriteAfterKill.withLock { $0 }.map { "\($0)" } ?? "never") and 100 more \(recoveredAfter.map { "\($0)" } ?? "never") after the kill")
        }
    }
}

/// What the Sentinel load recorded.
final class SentinelLedger: Sendable {
    let durable = Mutex<Set<Int64>>([])
    let failures = Mutex<[String]>([])
    let nextID = Atomic<Int64>(0)
    let written = Atomic<Int>(0)
    let killedAt = Mutex<ContinuousClock.Instant?>(nil)
    /// From the kill to the first write that succeeded after it (on the promoted replica).
    let firstWriteAfterKill = Mutex<Duration?>(nil)
    let running = Atomic<Bool>(true)
}
