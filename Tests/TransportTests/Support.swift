import Foundation
import Synchronization
import Testing
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// An echo server on our own listener: every accepted connection gets its bytes back.
final class EchoServer: Sendable {
    let listener: Listener
    private let connections = Mutex<[Connection]>([])
    private let acceptTask = Mutex<Task<Void, Never>?>(nil)

    init(listener: Listener) {
        self.listener = listener
        let task = Task { [self] in
            while true {
                guard let connection = try? await listener.accept() else { return }
                self.connections.withLock { $0.append(connection) }
                Task {
                    var buffer = ByteBuffer(capacity: 65536)
                    while true {
                        do {
                            _ = try await connection.read(into: &buffer)
                            try await connection.write(buffer)
                            buffer.clear()
                        } catch {
                            connection.close()
                            return
                        }
                    }
                }
            }
        }
        acceptTask.withLock { $0 = task }
    }

    static func start(host: String = "127.0.0.1", reactor: Reactor = .shared) throws -> EchoServer {
        EchoServer(listener: try Listener.bind(host: host, port: 0, reactor: reactor))
    }

    var endpoint: Endpoint { listener.endpoint }
    var acceptedCount: Int { connections.withLock { $0.count } }

    func stop() {
        listener.close()
        acceptTask.withLock { $0?.cancel() }
        for connection in connections.withLock({ $0 }) { connection.close() }
    }
}

/// Reads from `connection` until `count` bytes are in `buffer`.
func readExactly(
    _ count: Int, from connection: Connection, into buffer: inout ByteBuffer, deadline: Deadline = .after(.seconds(10)),
    mayWaitInline: Bool = false
) async throws {
    while buffer.readableBytes < count {
        try await connection.read(into: &buffer, deadline: deadline, mayWaitInline: mayWaitInline)
    }
}

/// Writes `text` and reads back as many bytes: the echo server's answer.
func echo(_ connection: Connection, _ text: String, mayWaitInline: Bool = false) async throws -> String {
    try await connection.write(ByteBuffer(string: text))
    var buffer = ByteBuffer()
    try await readExactly(text.utf8.count, from: connection, into: &buffer, mayWaitInline: mayWaitInline)
    return String(decoding: buffer.readableBytesView, as: UTF8.self)
}

func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Elapsed wall time of `body` in milliseconds.
func milliseconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
}

/// Number of threads in this process, from /proc.
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
}

/// Waits until `condition` holds, for at most `limit`; returns whether it did.
func eventually(within limit: Duration, _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// The name of the calling thread (the reactor names its own).
func currentThreadName() -> String {
    let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
    return name.trimmingCharacters(in: .whitespacesAndNewlines)
}
