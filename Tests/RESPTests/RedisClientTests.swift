import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Transport
@testable import RESP

enum LiveRedis {
    static var url: String? { ProcessInfo.processInfo.environment["INFRA_TEST_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } }
    static var isAvailable: Bool { url != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    static func client() throws -> RedisClient {
        guard let url else {
            Issue.record("INFRA_TEST_REDIS_URL is not set: run the tests with `make test`")
            throw CancellationError()
        }
        return try RedisClient(url: url)
    }

    /// A key unique to this run, so parallel or repeated runs never collide.
    static func key(_ name: String) -> String { "test:\(UUID().uuidString.prefix(8)):\(name)" }
}

@Suite("Redis client (live)", .timeLimit(.minutes(1)), .enabled(if: LiveRedis.isAvailable))
struct RedisClientTests {
    @Test func handshakeIsRESP3WithAuth() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        #expect(try await client.connection().protocolVersion == 3)
        #expect(try await client.send(["PING"]) == simple("PONG"))
    }

    @Test func wrongPasswordIsRefusedWithTheServersCode() async throws {
        var configuration = try LiveRedis.client().configuration
        configuration.password = "wrong"
        let error = await #expect(throws: RedisError.self) { try await RedisConnection.connect(configuration) }
        #expect(error?.code == "WRONGPASS", "\(String(describing: error))")
    }

    @Test func stringsWithOptions() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("s")
        #expect(try await client.get(key) == nil)
        #expect(try await client.set(key, "v1", options: SetOptions(condition: .ifPresent)).wasSet == false)
        #expect(try await client.set(key, "v1", options: SetOptions(condition: .ifAbsent, expiry: .seconds(100))).wasSet)
        #expect(try await client.set(key, "v2", options: SetOptions(condition: .ifAbsent)).wasSet == false)
        #expect(try await client.set(key, "v3", options: SetOptions(returnOldValue: true)).oldValue == "v1")
        #expect(try await client.get(key) == "v3")
        #expect(try await client.ttl(key) == -1, "SET without KEEPTTL clears the expiry")
        #expect(try await client.expire(key, seconds: 50))
        #expect((1...50).contains(try await client.ttl(key) ?? 0))
        let binary = ByteBuffer(bytes: [0, 13, 10, 255, 36])
        try await client.set(key, .bytes(binary))
        #expect(try await client.getBytes(key) == binary)
        try await client.mset([(key + "a", "1"), (key + "b", "2")])
        #expect(try await client.mget([key + "a", key + "missing", key + "b"]) == ["1", nil, "2"])
        #expect(try await client.increment(key + "a", by: 41) == 42)
        #expect(try await client.exists(key, key + "a", key + "missing") == 2)
        #expect(try await client.delete(key, key + "a", key + "b") == 3)
        #expect(try await client.ttl(key) == nil)
    }

    @Test func errorRepliesCarryTheServersCode() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("list")
        try await client.rpush(key, ["x"])
        let error = await #expect(throws: RedisError.self) { try await client.get(key) }
        #expect(error?.code == RedisError.wrongType)
        #expect(error?.kind == .server)
        let unknown = await #expect(throws: RedisError.self) { try await client.send(["NO-SUCH-COMMAND"]) }
        #expect(unknown?.code == "ERR")
        try await client.delete(key)
    }

    @Test func hashesListsSetsSortedSetsAndStreams() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let base = LiveRedis.key("types")
        #expect(try await client.hset(base + ":h", [("a", "1"), ("b", "2")]) == 2)
        #expect(try await client.hget(base + ":h", "a") == "1")
        #expect(try await client.hgetall(base + ":h") == ["a": "1", "b": "2"])
        #expect(try await client.hdel(base + ":h", "a") == 1)
        #expect(try await client.rpush(base + ":l", ["1", "2", "3"]) == 3)
        #expect(try await client.lrange(base + ":l", 0, -1) == ["1", "2", "3"])
        #expect(try await client.sadd(base + ":s", ["x", "y", "x"]) == 2)
        #expect(try await client.smembers(base + ":s") == ["x", "y"])
        #expect(try await client.zadd(base + ":z", [(2, "b"), (1, "a")]) == 2)
        #expect(try await client.zrange(base + ":z", 0, -1) == ["a", "b"])
        let id = try await client.xadd(base + ":x", [("event", "uploaded")])
        #expect(id.contains("-"))
        try await client.send(["XGROUP", "CREATE", .string(base + ":x"), "workers", "0"])
        let read = try await client.xreadgroup(group: "workers", consumer: "w1", [(base + ":x", ">")], count: 1)
        #expect(read[base + ":x"] == [StreamEntry(id: id, fields: [("event", "uploaded")])])
        #expect(try await client.xack(base + ":x", group: "workers", ids: [id]) == 1)
        #expect(try await client.xread([(base + ":x", "0")])[base + ":x"]?.first?["event"] == "uploaded")
        // A blocking read on the blocking connection, answered by an XADD from the shared one.
        async let waiting = client.xread([(base + ":x", "$")], block: .seconds(5))
        try await Task.sleep(for: .milliseconds(100))
        let second = try await client.xadd(base + ":x", [("event", "transcribed")])
        #expect(try await waiting[base + ":x"]?.first?.id == second)
        #expect(try await client.xread([(base + ":x", "$")], block: .milliseconds(100)).isEmpty, "a timeout is an empty result")
        try await client.delete(base + ":h", base + ":l", base + ":s", base + ":z", base + ":x")
    }

    @Test func blockingPopTimesOutAndDoesNotHoldUpOtherCommands() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("queue")
        async let blocked = client.brpop([key], timeout: .milliseconds(600))
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        #expect(try await client.send(["PING"]) == simple("PONG"))
        #expect(ContinuousClock.now - start < .milliseconds(300), "the shared connection is not blocked")
        try await client.rpush(key, ["job-1"])
        let popped = try await blocked
        #expect(popped?.key == key && popped?.value == "job-1")
        #expect(try await client.brpop([key], timeout: .milliseconds(100)) == nil)
        let other = LiveRedis.key("dest")
        try await client.rpush(key, ["moved"])
        #expect(try await client.blmove(from: key, to: other, fromLeft: true, toLeft: false, timeout: .seconds(1)) == "moved")
        try await client.delete(key, other)
    }

    @Test func fiftyConcurrentTasksShareOnePipelinedConnection() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let base = LiveRedis.key("concurrent")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<50 {
                group.addTask {
                    for index in 0..<100 {
                        let key = "\(base):\(task)"
                        try await client.set(key, .integer(Int64(index)))
                        let value = try await client.get(key)
                        #expect(value == String(index))
                    }
                }
            }
            try await group.waitForAll()
        }
        let keys = (0..<50).map { "\(base):\($0)" }
        #expect(try await client.send(["DEL"] + keys.map { .string($0) }) == .integer(50))
    }

    @Test(.enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1, "inline waits need a second processor"))
    func onlyALoneCallerWaitsForItsReplyOnItsOwnThread() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("inline")
        try await client.set(key, .integer(1))
        var before = Reactor.shared.inlineWaitCount
        for _ in 0..<100 { _ = try await client.get(key) }
        let sequential = Reactor.shared.inlineWaitCount - before
        #expect(sequential >= 50, "only \(sequential) of 100 sequential commands waited inline")
        before = Reactor.shared.inlineWaitCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { for _ in 0..<200 { _ = try await client.get(key) } }
            }
            try await group.waitForAll()
        }
        let concurrent = Reactor.shared.inlineWaitCount - before
        #expect(concurrent <= 150, "\(concurrent) of 4,000 concurrent commands held a thread waiting inline")
        _ = try await client.delete(key)
    }

    @Test func pipelineErrorsStayWithTheirCommand() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("p")
        let replies = try await client.pipeline([["SET", .string(key), "1"], ["INCR", .string(key), "extra"], ["INCR", .string(key)], ["GET", .string(key)]])
        #expect(replies.count == 4)
        #expect(replies[0] == simple("OK"))
        #expect(replies[1].isError)
        #expect(replies[2] == .integer(2))
        #expect(replies[3] == bulk("2"))
        try await client.delete(key)
    }

    @Test func transactionsAndAbortedWatch() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let key = LiveRedis.key("tx")
        let results = try await client.transaction([["SET", .string(key), "1"], ["INCR", .string(key)]])
        #expect(results == [simple("OK"), .integer(2)])
        let error = await #expect(throws: RedisError.self) {
            try await client.watchedTransaction([key]) { connection in
                _ = try await connection.send(["GET", .string(key)])
                try await client.set(key, "changed by someone else")  // the shared connection, another client
                return [["SET", .string(key), "mine"]]
            }
        }
        #expect(error?.kind == .transactionAborted)
        #expect(try await client.get(key) == "changed by someone else")
        try await client.delete(key)
    }

    @Test func scriptsFallBackFromEVALSHAToEVAL() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        try await client.send(["SCRIPT", "FLUSH"])
        let script = "return ARGV[1] .. '!'"
        let sha = (try await client.send(["SCRIPT", "LOAD", .string(script)])).string ?? ""
        try await client.send(["SCRIPT", "FLUSH"])
        #expect(try await client.evaluate(script: script, sha1: sha, arguments: ["hi"]) == bulk("hi!"))
        #expect(try await client.evaluate(script: script, sha1: sha, arguments: ["again"]) == bulk("again!"))
    }

    @Test func trackingInvalidationsArriveAsPushesBesideReplies() async throws {
        let client = try LiveRedis.client()
        let writer = try LiveRedis.client()
        defer { client.close(); writer.close() }
        let key = LiveRedis.key("tracked")
        let connection = try await client.connection()
        try await connection.send(["CLIENT", "TRACKING", "ON"])
        _ = try await connection.send(["GET", .string(key)])
        try await writer.set(key, "new")
        var iterator = connection.pushes.makeAsyncIterator()
        let push = await iterator.next()
        #expect(push == .push([bulk("invalidate"), .array([bulk(key)])]))
        #expect(try await connection.send(["PING"]) == simple("PONG"))
        try await writer.delete(key)
    }

    @Test func reconnectsForNewCommandsAfterTheConnectionDrops() async throws {
        let client = try LiveRedis.client()
        let admin = try LiveRedis.client()
        defer { client.close(); admin.close() }
        let id = try await client.send(["CLIENT", "ID"]).decodeInteger("CLIENT ID")
        // A command in flight when the connection dies fails with a connection error, not a retry.
        let key = LiveRedis.key("reconnect")
        let blocked = Task { try await client.send(["BLPOP", .string(key), "5"]) }
        try await Task.sleep(for: .milliseconds(100))
        try await admin.send(["CLIENT", "KILL", "ID", .integer(id)])
        let failure = await #expect(throws: RedisError.self) { try await blocked.value }
        #expect(failure?.kind == .connection)
        #expect(try await client.send(["PING"]) == simple("PONG"), "the next command reconnects")
        #expect(try await client.send(["CLIENT", "ID"]).decodeInteger("CLIENT ID") != id)
    }

    @Test func subscriptionCommandsAreRefusedOnTheCommandConnection() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let error = await #expect(throws: RedisError.self) { try await client.send(["SUBSCRIBE", "x"]) }
        #expect(error?.kind == .usage)
    }
}

struct TestSession: Codable, Sendable, Equatable {
    var user: Int64
    var language: String
}

@Suite("Redis scans and sessions (live)", .timeLimit(.minutes(1)), .enabled(if: LiveRedis.isAvailable))
struct RedisScanAndSessionTests {
    @Test func scanSequencesVisitEveryElement() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let base = LiveRedis.key("scan")
        try await client.mset((0..<250).map { ("\(base):\($0)", RESPArgument.integer(Int64($0))) })
        var keys = Set<String>()
        for try await key in client.scan(match: base + ":*", count: 50) { keys.insert(key.string ?? "") }
        #expect(keys.count == 250)
        try await client.hset(base + ":h", (0..<120).map { ("f\($0)", RESPArgument.integer(Int64($0))) })
        var fields = 0
        for try await _ in client.hscan(base + ":h", count: 20) { fields += 1 }
        #expect(fields == 240, "field and value alternate")
        try await client.sadd(base + ":s", (0..<70).map { .string("m\($0)") })
        var members = Set<String>()
        for try await member in client.sscan(base + ":s") { members.insert(member.string ?? "") }
        #expect(members.count == 70)
        try await client.zadd(base + ":z", [(1, "a"), (2, "b")])
        var scored: [String] = []
        for try await item in client.zscan(base + ":z") { scored.append(item.string ?? "\(item)") }
        #expect(scored.count == 4)
        try await client.send(["DEL"] + (0..<250).map { .string("\(base):\($0)") } + [.string(base + ":h"), .string(base + ":s"), .string(base + ":z")])
    }

    @Test func sessionsLiveForTheirTTLAndTouchRenewsIt() async throws {
        let client = try LiveRedis.client()
        defer { client.close() }
        let store = SessionStore<TestSession>(client: client, prefix: LiveRedis.key("session") + ":", timeToLive: .milliseconds(400))
        try await store.put("42", TestSession(user: 42, language: "ru"))
        #expect(try await store.get("42") == TestSession(user: 42, language: "ru"))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await store.touch("42"))
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await store.get("42") != nil, "touch renewed the TTL")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await store.get("42") == nil)
        #expect(try await store.touch("42") == false)
        try await client.set(store.prefix + "bad", "not json")
        let error = await #expect(throws: RedisError.self) { try await store.get("bad") }
        #expect(error?.message.contains(store.prefix + "bad") == true)
        #expect(try await store.delete("bad"))
    }
}

// Serialized: the resubscribe test kills every pub/sub connection of the server.
@Suite("Redis pub/sub (live)", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveRedis.isAvailable))
struct RedisPubSubTests {
    @Test func channelsAndPatternsAsAsyncSequences() async throws {
        let client = try LiveRedis.client()
        let subscriber = RedisSubscriber(configuration: client.configuration)
        defer { client.close(); subscriber.close() }
        let channel = LiveRedis.key("events")
        let messages = try await subscriber.subscribe([channel])
        let patterned = try await subscriber.psubscribe([channel + ".*"])
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await client.send(["PUBLISH", .string(channel), "one"]) == .integer(1))
        #expect(try await client.send(["PUBLISH", .string(channel + ".sub"), "two"]) == .integer(1))
        var iterator = messages.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?.channel == channel && first?.text == "one")
        var patternIterator = patterned.makeAsyncIterator()
        let second = try await patternIterator.next()
        #expect(second?.channel == channel + ".sub" && second?.pattern == channel + ".*" && second?.text == "two")
    }

    @Test func resubscribesAfterTheConnectionDrops() async throws {
        let client = try LiveRedis.client()
        let subscriber = RedisSubscriber(configuration: client.configuration)
        defer { client.close(); subscriber.close() }
        let channel = LiveRedis.key("resubscribe")
        let messages = try await subscriber.subscribe([channel])
        try await Task.sleep(for: .milliseconds(100))
        // Kill every pub/sub client of this channel from the command connection.
        try await client.send(["CLIENT", "KILL", "TYPE", "pubsub"])
        var delivered: RedisMessage?
        var iterator = messages.makeAsyncIterator()
        let deadline = ContinuousClock.now + .seconds(5)
        while delivered == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            let receivers = try await client.send(["PUBLISH", .string(channel), "after"]).decodeInteger("PUBLISH")
            if receivers == 1 { delivered = try await iterator.next() }
        }
        #expect(delivered?.text == "after")
        #expect(subscriber.reconnectCount >= 1)
    }
}

/// A redis-server of the test's own, so it can be stopped and started again.
final class PrivateRedisServer: Sendable {
    let port: Int
    private let process: ChildProcess

    init() throws {
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else { throw CancellationError() }
        listener.close()
        self.port = port
        process = try ChildProcess([
            "/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning",
        ])
    }

    func start() throws { try process.start() }
    func stop() { process.stop() }
}

@Suite("Redis server restart", .timeLimit(.minutes(1)), .enabled(if: LiveRedis.isAvailable))
struct RedisRestartTests {
    @Test func clientAndSubscriberRecoverFromARestart() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        let configuration = RedisConfiguration(host: "127.0.0.1", port: server.port)
        let client = RedisClient(configuration: configuration)
        let subscriber = RedisSubscriber(configuration: configuration)
        defer { client.close(); subscriber.close() }
        var ready = false
        for _ in 0..<50 where !ready {
            ready = (try? await client.send(["PING"])) != nil
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        let messages = try await subscriber.subscribe(["restart"])

        server.stop()
        let failure = await #expect(throws: RedisError.self) { try await client.send(["PING"]) }
        #expect(failure?.kind == .connection)
        try server.start()

        var recovered = false
        for _ in 0..<50 where !recovered {
            try await Task.sleep(for: .milliseconds(100))
            recovered = (try? await client.send(["PING"])) == simple("PONG")
        }
        #expect(recovered, "new commands reconnect once the server is back")
        var delivered: RedisMessage?
        var iterator = messages.makeAsyncIterator()
        var receivers: Int64 = -1
        var ended = false
        for _ in 0..<50 where delivered == nil && !ended {
            try await Task.sleep(for: .milliseconds(100))
            receivers = try await client.send(["PUBLISH", "restart", "back"]).decodeInteger("PUBLISH")
            if receivers == 1 {
                delivered = try await iterator.next()
                ended = delivered == nil
            }
        }
        #expect(delivered?.text == "back",
            "the subscription was restored on the new server (receivers \(receivers), stream ended \(ended), reconnects \(subscriber.reconnectCount))")
    }
}
