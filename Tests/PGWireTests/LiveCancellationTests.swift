import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import PGWire

/// A cancel hits only the statement it was asked for, and a timeout or cancellation bounds the
/// call. Each loop counts 57014 errors on statements whose caller never asked for a cancel: the
/// client of earlier versions, and libpq when a cancel is not waited for, got some; none may.
@Suite("Live PostgreSQL: cancellation hits only its own statement", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(3)))
struct LiveCancellationTests {
    static let iterations = 500

    /// A connection whose cancelled calls wait at most half a second for the server.
    static func connect() async throws -> PostgresConnection {
        var configuration = try LiveServer.postgresConfiguration()
        configuration.cancelGracePeriod = .milliseconds(500)
        return try await PostgresConnection.connect(configuration)
    }

    /// Runs a statement nobody cancels; true when it was (wrongly) cancelled.
    static func wronglyCancelled(_ connection: PostgresConnection, _ sql: PostgresQuery) async throws -> Bool {
        do {
            _ = try await connection.execute(sql)
            return false
        } catch {
            guard error.kind == .queryCancelled else { throw error }
            return true
        }
    }

    /// A statement of about 20 ms with a 20 ms timeout: cancelled, timed out, or done (the
    /// length varies around the timeout, so the cancel both lands and comes too late).
    static func timingOut(_ connection: PostgresConnection, seconds: Double = 0.02) async throws -> Bool {
        do {
            _ = try await connection.execute("SELECT pg_sleep(\(seconds))", timeout: .milliseconds(20))
            return false
        } catch {
            guard error.kind == .queryCancelled || error.kind == .timedOut else { throw error }
            return true
        }
    }

    @Test func aTimedOutStatementsCancelNeverReachesTheNextStatement() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        var wrong = 0
        var timedOut = 0
        for iteration in 0..<Self.iterations {
            if try await Self.timingOut(connection, seconds: [0.015, 0.02, 0.025, 0.04][iteration % 4]) { timedOut += 1 }
            if try await Self.wronglyCancelled(connection, "SELECT pg_sleep(0.02)") { wrong += 1 }
        }
        #expect(wrong == 0, "\(wrong) of \(Self.iterations) statements nobody cancelled failed with 57014")
        #expect(timedOut > 0, "the timeout should have fired at least once")
    }

    @Test func aTimedOutStatementsCancelNeverReachesAStatementPipelinedBehindIt() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        var wrong = 0
        for _ in 0..<Self.iterations {
            async let first = Self.timingOut(connection)
            async let second = Self.wronglyCancelled(connection, "SELECT pg_sleep(0.02)")
            _ = try await first
            if try await second { wrong += 1 }
        }
        #expect(wrong == 0, "\(wrong) of \(Self.iterations) pipelined statements nobody cancelled failed with 57014")
    }

    @Test func aCancelledTasksQueryIsNotSentAndNeverReachesTheNextStatement() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        var wrong = 0
        var refusedBeforeSending = 0
        for iteration in 0..<Self.iterations {
            let task = Task {
                // Half the time the task is already cancelled when it calls; otherwise it is
                // cancelled while its statement runs.
                if iteration % 2 == 0 { try? await Task.sleep(for: .seconds(10)) }
                return try await connection.execute("SELECT pg_sleep(0.005)")
            }
            if iteration % 2 == 1 { try await Task.sleep(for: .microseconds(Int.random(in: 0...6000))) }
            task.cancel()
            do {
                _ = try await task.value
            } catch let error as PostgresError where error.kind == .cancelled {
                refusedBeforeSending += 1
            } catch let error as PostgresError where error.kind == .queryCancelled {}
            if try await Self.wronglyCancelled(connection, "SELECT pg_sleep(0.05)") { wrong += 1 }
        }
        #expect(wrong == 0, "\(wrong) of \(Self.iterations) statements nobody cancelled failed with 57014")
        #expect(refusedBeforeSending >= Self.iterations / 2, "an already cancelled task sends nothing")
    }

    @Test func aCancelledTransactionRollsBackAndItsCancelNeverReachesTheNextStatement() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        var wrong = 0
        for _ in 0..<Self.iterations {
            let task = Task {
                try await connection.withTransaction { connection in
                    _ = try await connection.execute("SELECT pg_sleep(0.002)")
                    _ = try await connection.execute("SELECT pg_sleep(0.002)")
                }
            }
            try await Task.sleep(for: .microseconds(Int.random(in: 0...5000)))
            task.cancel()
            _ = try? await task.value
            #expect(connection.transactionStatus == .idle, "the transaction was committed or rolled back")
            if try await Self.wronglyCancelled(connection, "SELECT pg_sleep(0.05)") { wrong += 1 }
        }
        #expect(wrong == 0, "\(wrong) of \(Self.iterations) statements nobody cancelled failed with 57014")
    }

    @Test func amongAThousandTasksOnOneConnectionOnlyTheCancelledOnesFail() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        let failures = FailureLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    let cancelMe = index % 5 == 0
                    let query = Task {
                        try await connection.execute("SELECT pg_sleep(0.001), \(index)::int8")
                    }
                    if cancelMe {
                        try await Task.sleep(for: .microseconds(Int.random(in: 0...3000)))
                        query.cancel()
                    }
                    do {
                        let result = try await query.value
                        #expect(try result.rows[0].decode(Int.self, column: 1) == index)
                    } catch {
                        if !cancelMe { failures.record("task \(index): \(error)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let failed = failures.all
        #expect(failed.isEmpty, "tasks nobody cancelled failed: \(failed.prefix(5))")
        #expect(try await connection.execute("SELECT 1::int8").rows[0].decode(Int.self, column: 0) == 1, "the session is still usable")
    }

    @Test func aStatementStuckBehindAnotherEndsItsCallWithinTheGracePeriodWithoutKillingIt() async throws {
        let connection = try await Self.connect()
        defer { connection.close() }
        let slow = Task { try await connection.execute("SELECT pg_sleep(1)", timeout: .milliseconds(100)) }
        try await Task.sleep(for: .milliseconds(30))
        // Written behind the slow one: a signal could reach it, so none is sent.
        let next = Task { try await connection.execute("SELECT 2::int8") }
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { _ = try await slow.value }
        #expect(error?.kind == .timedOut, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .milliseconds(900), "bounded by the timeout and the grace period")
        #expect(try await next.value.rows[0].decode(Int.self, column: 0) == 2, "the statement behind it ran, not cancelled")
    }

    @Test func aTerminatedBackendsReasonAndSQLStateReachTheCaller() async throws {
        let victim = try await Self.connect()
        defer { victim.close() }
        let killer = try await Self.connect()
        defer { killer.close() }
        let pid = try #require(victim.backendKey?.processID)
        let running = Task { try await victim.execute("SELECT pg_sleep(5)") }
        try await Task.sleep(for: .milliseconds(100))
        _ = try await killer.execute("SELECT pg_terminate_backend(\(pid))")
        let error = await #expect(throws: PostgresError.self) { _ = try await running.value }
        #expect(error?.kind == .connection)
        #expect(error?.sqlState?.rawValue == "57P01", "\(String(describing: error))")
        #expect(error?.description.contains("terminating connection due to administrator command") == true, "\(String(describing: error))")
        #expect(victim.isClosed)
    }
}

@Suite("PostgreSQL cancellation against scripted servers", .timeLimit(.minutes(1)))
struct PostgresCancellationFakeServerTests {
    /// A server that completes a trust startup, answers the first query with a row description
    /// and half a data row, then sends nothing more (it accepts and ignores cancel connections).
    static func stallingServer() throws -> (Listener, Task<Void, any Error>) {
        let listener = try Listener.bind()
        let task = Task {
            var held: [Connection] = []
            defer { for connection in held { connection.close() } }
            var first = true
            while true {
                let peer = try await listener.accept()
                held.append(peer)
                guard first else { continue }  // a CancelRequest's connection: never answered
                first = false
                var received = ByteBuffer()
                while received.readableBytes < 8 { _ = try await peer.read(into: &received, deadline: .after(.seconds(5))) }
                var startup = ByteBuffer()
                startup.writeBuffer(BackendEncoder.message("R") { $0.writeInteger(Int32(0)) })
                startup.writeBuffer(BackendEncoder.message("K") { $0.writeInteger(Int32(4242)); $0.writeInteger(UInt32(0xDEADBEEF)) })
                startup.writeBuffer(BackendEncoder.message("Z") { $0.writeInteger(UInt8(ascii: "I")) })
                try await peer.write(startup)
                received.clear()
                _ = try await peer.read(into: &received, deadline: .after(.seconds(5)))
                var answer = BackendEncoder.message("T") { out in
                    out.writeInteger(Int16(1))
                    BackendEncoder.cString("n", &out)
                    out.writeInteger(UInt32(0)); out.writeInteger(Int16(0)); out.writeInteger(UInt32(25))
                    out.writeInteger(Int16(-1)); out.writeInteger(Int32(-1)); out.writeInteger(Int16(0))
                }
                let row = BackendEncoder.message("D") { $0.writeInteger(Int16(1)); $0.writeInteger(Int32(5)); $0.writeBytes(Array("hello".utf8)) }
                answer.writeBuffer(row.getSlice(at: 0, count: 7) ?? ByteBuffer())
                try await peer.write(answer)
            }
        }
        return (listener, task)
    }

    @Test func aTimeoutEndsTheCallWhenTheServerStallsMidMessage() async throws {
        let (listener, server) = try Self.stallingServer()
        defer {
            listener.close()
            server.cancel()
        }
        var configuration = PostgresConfiguration(hosts: [.init("127.0.0.1", port: listener.endpoint.port ?? 0)], user: "u", sslMode: .disable)
        configuration.cancelGracePeriod = .milliseconds(500)
        let connection = try await PostgresConnection.connect(configuration)
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { _ = try await connection.simpleQuery("SELECT 'hello'", timeout: .seconds(1)) }
        let elapsed = ContinuousClock.now - started
        #expect(error?.kind == .timedOut, "\(String(describing: error))")
        #expect(elapsed < .milliseconds(2500), "the timeout (1 s) plus the grace period (0.5 s) bound the call: took \(elapsed)")
        #expect(connection.isClosed, "a connection whose cancel went unanswered is closed")
    }

    @Test func aCancelledTaskEndsItsCallWhenTheServerStalls() async throws {
        let (listener, server) = try Self.stallingServer()
        defer {
            listener.close()
            server.cancel()
        }
        var configuration = PostgresConfiguration(hosts: [.init("127.0.0.1", port: listener.endpoint.port ?? 0)], user: "u", sslMode: .disable)
        configuration.cancelGracePeriod = .milliseconds(300)
        let connection = try await PostgresConnection.connect(configuration)
        let query = Task { try await connection.simpleQuery("SELECT 'hello'") }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        query.cancel()
        let error = await #expect(throws: PostgresError.self) { _ = try await query.value }
        #expect(error?.kind == .cancelled, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .milliseconds(1500))
    }
}

/// Failures collected from many tasks.
final class FailureLog: Sendable {
    private let entries = Mutex<[String]>([])

    func record(_ entry: String) { entries.withLock { $0.append(entry) } }

    var all: [String] { entries.withLock { $0 } }
}
