import Foundation
import Testing
import TestSupport
@testable import Transport
@testable import RESP

/// Parses every value in `bytes`, feeding them in pieces of `chunk` bytes.
func parseAll(_ bytes: [UInt8], chunk: Int = Int.max, parser: RESPParser = RESPParser()) throws(RESPProtocolError) -> [RESPValue] {
    var parser = parser
    var buffer = ByteBuffer()
    var values: [RESPValue] = []
    var offset = 0
    repeat {
        let end = Swift.min(bytes.count, offset + Swift.max(1, Swift.min(chunk, bytes.count)))
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        while let value = try parser.next(&buffer) { values.append(value) }
        buffer.compact()
    } while offset < bytes.count
    return values
}

extension LiveServer {
    /// A client of the test server.
    static func redisClient() throws -> RedisClient { try RedisClient(url: try require(LiveServer.redis.rawValue)) }

    /// A key unique to this run, so parallel or repeated runs never collide.
    static func redisKey(_ name: String) -> String { uniqueName(name, separator: ":") }
}


/// A scripted server on our own listener: for each command it reads, it answers with the next
/// canned reply, and records the commands.
final class ScriptedRedisServer: Sendable {
    let listener: Listener
    let task: Task<[String], any Error>

    init(replies: [String]) throws {
        let listener = try Listener.bind()
        self.listener = listener
        task = Task {
            let connection = try await listener.accept()
            defer { connection.close() }
            var parser = RESPParser()
            var buffer = ByteBuffer()
            var seen: [String] = []
            for reply in replies {
                var command: RESPValue?
                while command == nil {
                    command = try parser.next(&buffer)
                    if command == nil { try await connection.read(into: &buffer, deadline: .after(.seconds(5))) }
                }
                if case .array(let parts)? = command { seen.append(parts.compactMap(\.string).joined(separator: " ")) }
                try await connection.write(ByteBuffer(string: reply))
            }
            return seen
        }
    }

    var port: Int {
        if case .tcp(_, let port) = listener.endpoint { return port }
        return 0
    }
}
