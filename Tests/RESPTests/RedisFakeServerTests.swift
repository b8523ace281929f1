import Synchronization
import Testing
@testable import Transport
@testable import RESP

@Suite("Redis client against a scripted server")
struct RedisFakeServerTests {
    @Test func fallsBackToRESP2WhenHELLOIsUnknown() async throws {
        let server = try ScriptedRedisServer(replies: [
            "-ERR unknown command 'HELLO'\r\n", "+OK\r\n", "+OK\r\n", "+OK\r\n", "-ERR unknown subcommand 'SETINFO'\r\n", "+PONG\r\n",
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ])
        var configuration = RedisConfiguration(host: "127.0.0.1", port: server.port, user: "app", password: "pw", database: 3)
        configuration.clientName = "worker"
        let connection = try await RedisConnection.connect(configuration)
        defer { connection.close() }
        #expect(connection.protocolVersion == 2)
        let pairs = try await connection.send(["HGETALL", "h"]).decodePairs("HGETALL")
        #expect(pairs == [RESPPair(key: bulk("a"), value: bulk("b"))], "a RESP2 flat array reads as pairs")
        let seen = try await server.task.value
        #expect(seen == ["HELLO 3 AUTH app pw SETNAME worker", "AUTH app pw", "CLIENT SETNAME worker", "SELECT 3", "CLIENT SETINFO LIB-NAME transcription-infra", "PING", "HGETALL h"])
    }

    @Test func aProtocolViolationFailsWaitingCommandsWithATypedError() async throws {
        let server = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n", "+PONG\r\n", "?garbage\r\n"])
        let connection = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
        let error = await #expect(throws: RedisError.self) { try await connection.send(["GET", "k"]) }
        #expect(error?.kind == .protocolViolation)
        #expect(error?.message.contains("unknown type byte") == true)
        #expect(connection.isClosed)
    }

    @Test func anAttributeBeforeAReplyStaysAttachedToIt() async throws {
        let server = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n", "+PONG\r\n", "|1\r\n+ttl\r\n:5\r\n$1\r\nv\r\n"])
        let connection = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
        defer { connection.close() }
        let reply = try await connection.send(["GET", "k"])
        #expect(reply == .attributed(bulk("v"), attributes: [RESPPair(key: simple("ttl"), value: .integer(5))]))
        #expect(try reply.decodeOptionalString("GET") == "v")
    }

    @Test func aServerStillLoadingItsDataIsWaitedOutWithinTheConnectDeadline() async throws {
        let loading = "-LOADING Redis is loading the dataset in memory\r\n"
        let server = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n", loading, loading, "+PONG\r\n", "$1\r\nv\r\n"])
        let connection = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
        defer { connection.close() }
        #expect(try await connection.send(["GET", "k"]).string == "v")
        let seen = try await server.task.value
        #expect(seen.suffix(4) == ["PING", "PING", "PING", "GET k"], "\(seen)")

        // Past the connect deadline, the error says the server was still loading.
        let endless = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n"] + Array(repeating: loading, count: 100))
        var configuration = RedisConfiguration(host: "127.0.0.1", port: endless.port)
        configuration.connectTimeout = .milliseconds(300)
        let failure = await #expect(throws: RedisError.self) { try await RedisConnection.connect(configuration) }
        #expect(failure?.kind == .connection && failure?.message.contains("still loading its data set") == true, "\(String(describing: failure))")
        endless.task.cancel()
    }

    @Test func aServerErrorWithControlCharactersIsEscapedInTheError() async throws {
        // A RESP3 blob error may hold CR LF and escape sequences; the error text must not.
        let evil = "ERR a\r\nFAKE LOG LINE \u{1B}[2J"
        let server = try ScriptedRedisServer(replies: ["%0\r\n", "+OK\r\n", "+PONG\r\n", "!\(evil.utf8.count)\r\n\(evil)\r\n"])
        let connection = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: server.port))
        defer { connection.close() }
        let error = await #expect(throws: RedisError.self) { try await connection.send(["GET", "k"]) }
        let text = error?.description ?? ""
        #expect(error?.code == "ERR" && text.contains("\\r\\nFAKE LOG LINE \\u{1B}[2J"), "\(text.debugDescription)")
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 })
    }

    /// What the cutting server has done, and when the test lets it close.
    final class CutSignals: Sendable {
        let hasRead = Atomic<Bool>(false)
        let mayClose = Atomic<Bool>(true)
    }

    /// A server that takes the handshake, reads `read` bytes of commands, answers `answers`
    /// of them with +OK and closes the connection (once `signals.mayClose` holds).
    static func cuttingServer(answers: Int, readAtLeast read: Int, signals: CutSignals = CutSignals()) throws -> (port: Int, task: Task<Void, any Error>) {
        let listener = try Listener.bind()
        let port = listener.endpoint.port ?? 0
        let task = Task {
            let connection = try await listener.accept(deadline: .after(.seconds(10)))
            defer { connection.close(); listener.close() }
            var parser = RESPParser()
            var buffer = ByteBuffer()
            func command() async throws -> RESPValue {
                while true {
                    if let value = try parser.next(&buffer) { return value }
                    try await connection.read(into: &buffer, deadline: .after(.seconds(10)))
                }
            }
            _ = try await command()  // HELLO
            try await connection.write(ByteBuffer(string: "%0\r\n"))
            _ = try await command()  // CLIENT SETINFO
            _ = try await command()  // PING
            try await connection.write(ByteBuffer(string: "+OK\r\n+PONG\r\n"))
            for _ in 0..<answers { _ = try await command() }
            while buffer.readableBytes < read { try await connection.read(into: &buffer, deadline: .after(.seconds(10))) }
            signals.hasRead.store(true, ordering: .releasing)
            try await connection.write(ByteBuffer(string: String(repeating: "+OK\r\n", count: answers)))
            while !signals.mayClose.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }
        }
        return (port, task)
    }

    @Test func aPipelineCutMidwaySaysWhatWasAnsweredWhatMayHaveRunAndWhatWasNotSent() async throws {
        // Ten commands all written, three answered, then the server goes away.
        let (port, task) = try Self.cuttingServer(answers: 3, readAtLeast: 0)
        let connection = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: port))
        defer { connection.close() }
        let commands: [[RESPArgument]] = (0..<10).map { ["SET", .string("k\($0)"), "v"] }
        let error = await #expect(throws: RedisPipelineError.self) { try await connection.pipeline(commands) }
        let expected = [RedisPipelineError.Outcome](repeating: .answered(simple("OK")), count: 3) + [RedisPipelineError.Outcome](repeating: .unknown, count: 7)
        #expect(error?.outcomes == expected, "\(String(describing: error))")
        #expect(error?.cause.kind == .connection)
        try await task.value

        // The same with a pipeline that discards its replies: answered, but without a value.
        let (discardPort, discardTask) = try Self.cuttingServer(answers: 3, readAtLeast: 0)
        let discarding = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: discardPort))
        defer { discarding.close() }
        let cut = await #expect(throws: RedisPipelineError.self) { try await discarding.pipelineDiscardingReplies(commands) }
        let discarded = [RedisPipelineError.Outcome](repeating: .answeredAndDiscarded, count: 3) + [RedisPipelineError.Outcome](repeating: .unknown, count: 7)
        #expect(cut?.outcomes == discarded, "\(String(describing: cut))")
        try await discardTask.value

        // A 32 MB pipeline blocks in its write (the server stops reading after 1 MiB); a second
        // one queued behind it never leaves the client when the server then closes.
        let signals = CutSignals()
        signals.mayClose.store(false, ordering: .releasing)
        let (bigPort, bigTask) = try Self.cuttingServer(answers: 0, readAtLeast: 1 << 20, signals: signals)
        let shared = try await RedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: bigPort))
        defer { shared.close() }
        let value = RESPArgument.string(String(repeating: "x", count: 1 << 15))
        let big: [[RESPArgument]] = (0..<1024).map { ["SET", .string("big\($0)"), value] }
        let first = Task { try await shared.pipeline(big) }
        while !signals.hasRead.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }
        let second = Task { try await shared.pipeline([["SET", "a", "1"], ["SET", "b", "2"]]) }
        try await Task.sleep(for: .milliseconds(100))
        signals.mayClose.store(true, ordering: .releasing)
        let behind = await #expect(throws: RedisPipelineError.self) { _ = try await second.value }
        #expect(behind?.outcomes == [.notSent, .notSent], "\(String(describing: behind))")
        let firstError = await #expect(throws: RedisPipelineError.self) { _ = try await first.value }
        #expect(firstError?.outcomes.count == 1024 && firstError?.outcomes.allSatisfy { $0 == .unknown } == true)
        try? await bigTask.value
    }
}
