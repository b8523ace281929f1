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
}
