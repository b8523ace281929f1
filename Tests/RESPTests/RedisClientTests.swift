import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Transport
@testable import RESP

@Suite("Redis client (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisClientTests {
    @Test func handshakeIsRESP3WithAuth() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        #expect(try await client.connection().protocolVersion == 3)
        #expect(try await client.send(["PING"]) == simple("PONG"))
    }

    @Test func lifecycleIsLoggedWithoutThePassword() async throws {
        let records = RecordingLogHandler.Store()
        var configuration = try LiveServer.redisClient().configuration
        configuration.logger = records.logger()
        let connection = try await RedisConnection.connect(configuration)
        connection.close()
        let connected = try #require(records.all.first { $0.message == "connected" })
        #expect(connected.level == .info)
        #expect(connected.metadata["protocol"] == "RESP3")
        #expect(connected.metadata["redis.endpoint"] == "\(configuration.host):\(configuration.port)")
        #expect(records.all.contains { $0.message == "connection closed" })
        let password = try #require(configuration.password)
        configuration.password = "wrong-password"
        _ = await #expect(throws: RedisError.self) { try await RedisConnection.connect(configuration) }
        #expect(records.all.contains { $0.level == .warning && $0.message == "handshake failed" })
        #expect(!records.all.contains { $0.text.contains(password) || $0.text.contains("wrong-password") })
    }

    @Test func aCancelledCallerGetsACancelledErrorAndTheConnectionGoesOn() async throws {
        let connection = try await LiveServer.redisClient().connection()
        defer { connection.close() }
        let key = LiveServer.redisKey("cancelled")
        let blocked = Task { try await connection.send(["BLPOP", .string(key), "1"]) }
        try await Task.sleep(for: .milliseconds(100))
        blocked.cancel()
        let error = await #expect(throws: RedisError.self) { try await blocked.value }
        #expect(error?.kind == .cancelled, "\(String(describing: error))")
        #expect(try await connection.send(["PING"]) == simple("PONG"), "the late BLPOP reply is discarded, not handed to PING")
    }

    @Test func wrongPasswordIsRefusedWithTheServersCode() async throws {
        var configuration = try LiveServer.redisClient().configuration
        configuration.password = "wrong"
        let error = await #expect(throws: RedisError.self) { try await RedisConnection.connect(configuration) }
        #expect(error?.code == "WRONGPASS", "\(String(describing: error))")
    }

    @Test func stringsWithOptions() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("s")
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
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("list")
        try await client.rpush(key, ["x"])
        let error = await #expect(throws: RedisError.self) { try await client.get(key) }
        #expect(error?.code == RedisError.wrongType)
        #expect(error?.kind == .server)
        let unknown = await #expect(throws: RedisError.self) { try await client.send(["NO-SUCH-COMMAND"]) }
        #expect(unknown?.code == "ERR")
        try await client.delete(key)
    }

    @Test func hashesListsSetsSortedSetsAndStreams() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let base = LiveServer.redisKey("types")
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
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("queue")
        async let blocked = client.brpop([key], timeout: .milliseconds(600))
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        #expect(try await client.send(["PING"]) == simple("PONG"))
        #expect(ContinuousClock.now - start < .milliseconds(300), "the shared connection is not blocked")
        try await client.rpush(key, ["job-1"])
        let popped = try await blocked
        #expect(popped?.key == key && popped?.value == "job-1")
        #expect(try await client.brpop([key], timeout: .milliseconds(100)) == nil)
        let other = LiveServer.redisKey("dest")
        try await client.rpush(key, ["moved"])
        #expect(try await client.blmove(from: key, to: other, fromLeft: true, toLeft: false, timeout: .seconds(1)) == "moved")
        try await client.delete(key, other)
    }

    @Test func fiftyConcurrentTasksShareOnePipelinedConnection() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let base = LiveServer.redisKey("concurrent")
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
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("inline")
        try await client.set(key, .integer(1))
        // Counted on this connection: tests running beside this one wait inline on theirs.
        let transport = try await client.connection().connection
        var before = transport.inlineWaitCount
        for _ in 0..<100 { _ = try await client.get(key) }
        let sequential = transport.inlineWaitCount - before
        #expect(sequential >= 50, "only \(sequential) of 100 sequential commands waited inline")
        before = transport.inlineWaitCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { for _ in 0..<200 { _ = try await client.get(key) } }
            }
            try await group.waitForAll()
        }
        let concurrent = transport.inlineWaitCount - before
        #expect(concurrent <= 150, "\(concurrent) of 4,000 concurrent commands held a thread waiting inline")
        _ = try await client.delete(key)
    }

    @Test func pipelineErrorsStayWithTheirCommand() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("p")
        let replies = try await client.pipeline([["SET", .string(key), "1"], ["INCR", .string(key), "extra"], ["INCR", .string(key)], ["GET", .string(key)]])
        #expect(replies.count == 4)
        #expect(replies[0] == simple("OK"))
        #expect(replies[1].isError)
        #expect(replies[2] == .integer(2))
        #expect(replies[3] == bulk("2"))
        try await client.delete(key)
    }

    /// The errors of a pipeline that discards its replies keep their commands' indices, across
    /// reads that split the replies anywhere (20,000 commands), and every command ran.
    @Test func aPipelineDiscardingRepliesReportsOnlyItsErrorsWithTheirIndices() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("discard")
        let list = LiveServer.redisKey("discard-list")
        var commands: [[RESPArgument]] = []
        var expectedErrors: [Int] = []
        for index in 0..<20_000 {
            switch index % 1000 {
            case 999:
                expectedErrors.append(commands.count)
                commands.append(["INCR", .string(list)])  // a list: WRONGTYPE
            case 500:
                commands.append(["GET", .string(key)])  // a bulk string: built, not kept
            default:
                commands.append(index % 2 == 0 ? ["INCR", .string(key)] : ["RPUSH", .string(list), .integer(Int64(index))])
            }
        }
        let errors = try await client.pipelineDiscardingReplies(commands)
        #expect(errors.map(\.index) == expectedErrors)
        #expect(errors.allSatisfy { $0.error.code == "WRONGTYPE" })
        let increments = commands.filter { $0.first == "INCR" && $0.count == 2 && $0[1] == .string(key) }.count
        #expect(try await client.send(["GET", .string(key)]) == bulk(String(increments)))
        #expect(try await client.send(["LLEN", .string(list)]) == .integer(Int64(commands.count - increments - 20 - 20)))
        // The connection is in step: an ordinary pipeline and command follow.
        let replies = try await client.pipeline([["INCR", .string(key)], ["GET", .string(key)]])
        #expect(replies == [.integer(Int64(increments + 1)), bulk(String(increments + 1))])
        #expect(try await client.pipelineDiscardingReplies([]).isEmpty)
        try await client.delete(key)
        try await client.delete(list)
    }

    @Test func transactionsAndAbortedWatch() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let key = LiveServer.redisKey("tx")
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
        let client = try LiveServer.redisClient()
        defer { client.close() }
        try await client.send(["SCRIPT", "FLUSH"])
        let script = "return ARGV[1] .. '!'"
        let sha = (try await client.send(["SCRIPT", "LOAD", .string(script)])).string ?? ""
        try await client.send(["SCRIPT", "FLUSH"])
        #expect(try await client.evaluate(script: script, sha1: sha, arguments: ["hi"]) == bulk("hi!"))
        #expect(try await client.evaluate(script: script, sha1: sha, arguments: ["again"]) == bulk("again!"))
    }

    @Test func trackingInvalidationsArriveAsPushesBesideReplies() async throws {
        let client = try LiveServer.redisClient()
        let writer = try LiveServer.redisClient()
        defer { client.close(); writer.close() }
        let key = LiveServer.redisKey("tracked")
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
        let client = try LiveServer.redisClient()
        let admin = try LiveServer.redisClient()
        defer { client.close(); admin.close() }
        let id = try await client.send(["CLIENT", "ID"]).decodeInteger("CLIENT ID")
        // A command in flight when the connection dies fails with a connection error, not a retry.
        let key = LiveServer.redisKey("reconnect")
        let blocked = Task { try await client.send(["BLPOP", .string(key), "5"]) }
        try await Task.sleep(for: .milliseconds(100))
        try await admin.send(["CLIENT", "KILL", "ID", .integer(id)])
        let failure = await #expect(throws: RedisError.self) { try await blocked.value }
        #expect(failure?.kind == .connection)
        #expect(try await client.send(["PING"]) == simple("PONG"), "the next command reconnects")
        #expect(try await client.send(["CLIENT", "ID"]).decodeInteger("CLIENT ID") != id)
    }

    @Test func subscriptionCommandsAreRefusedOnTheCommandConnection() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let error = await #expect(throws: RedisError.self) { try await client.send(["SUBSCRIBE", "x"]) }
        #expect(error?.kind == .usage)
    }
}
