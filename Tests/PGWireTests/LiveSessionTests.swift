import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Live PostgreSQL: cancellation, transactions, COPY, LISTEN", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveSessionTests {
    @Test func cancellingTheCallersTaskCancelsTheQueryOnTheServerTheSessionStaysUsable() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let start = ContinuousClock.now
        let task = Task { try await connection.execute("SELECT pg_sleep(30)") }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("the sleep was not cancelled")
        } catch let error as PostgresError {
            #expect(error.kind == .queryCancelled)
            #expect(error.sqlState == .queryCanceled)
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(try await connection.execute("SELECT 1::int8").rows[0].decode(Int.self, column: 0) == 1)
    }

    @Test func aQueryTimeoutCancelsTheQueryStatementTimeoutEndsTheSameWay() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        do {
            _ = try await connection.simpleQuery("SELECT pg_sleep(30)", timeout: .milliseconds(200))
            Issue.record("no timeout")
        } catch {
            #expect(error.kind == .queryCancelled)
        }
        _ = try await connection.simpleQuery("SET statement_timeout = 100")
        do {
            _ = try await connection.execute("SELECT pg_sleep(30)")
            Issue.record("no statement_timeout")
        } catch {
            #expect(error.kind == .queryCancelled)
        }
        _ = try await connection.simpleQuery("RESET statement_timeout")
        // A statement queued behind a timed-out one: see LiveCancellationTests.
    }

    @Test func aTransactionCommitsOnReturnAndRollsBackOnAThrow() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE ledger (amount int)")
        try await connection.withTransaction(isolation: .serializable) { tx in
            #expect(tx.transactionStatus == .inTransaction)
            _ = try await tx.execute("INSERT INTO ledger VALUES (\(Int32(10)))")
        }
        struct Oops: Error {}
        await #expect(throws: Oops.self) {
            try await connection.withTransaction { tx in
                _ = try await tx.execute("INSERT INTO ledger VALUES (\(Int32(99)))")
                throw Oops()
            }
        }
        #expect(connection.transactionStatus == .idle)
        let total = try await connection.execute("SELECT sum(amount)::int8 FROM ledger").rows[0].decode(Int.self, column: 0)
        #expect(total == 10)
        // A failed statement inside, swallowed by the body: COMMIT becomes ROLLBACK, which throws.
        await #expect(throws: PostgresError.self) {
            try await connection.withTransaction { tx in
                _ = try? await tx.execute("SELECT 1/0")
            }
        }
        let readOnly = try await connection.withTransaction(isolation: .repeatableRead, readOnly: true) { tx in
            try await tx.simpleQuery("SHOW transaction_read_only; SHOW transaction_isolation").map { try $0.rows[0].decode(String.self, column: 0) }
        }
        #expect(readOnly == ["on", "repeatable read"])
    }

    @Test func copyInStreamsTextAndCSVAFailingProducerAbortsItCopyOutStreamsBack() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE items (id int, name text)")
        let count = try await connection.copyIn("COPY items FROM STDIN") { writer in
            for index in 0..<50_000 { try await writer.write("\(index)\titem \(index)\n") }
        }
        #expect(count == 50_000)
        let csv = try await connection.copyIn("COPY items FROM STDIN (FORMAT csv)") { writer in
            try await writer.write("50000,\"quoted, name\"\n")
        }
        #expect(csv == 1)

        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await connection.copyIn("COPY items FROM STDIN") { writer in
                try await writer.write("1\tpartial\n")
                throw Stop()
            }
        }
        // A COPY that fails on the server (bad data) throws the server's error.
        await #expect(throws: PostgresError.self) {
            try await connection.copyIn("COPY items FROM STDIN") { writer in try await writer.write("not-a-number\tx\n") }
        }
        #expect(try await connection.execute("SELECT count(*) FROM items").rows[0].decode(Int.self, column: 0) == 50_001)

        var lines = 0
        var bytes = 0
        let out = try await connection.copyOut("COPY (SELECT * FROM items ORDER BY id) TO STDOUT")
        for try await chunk in out {
            lines += chunk.readableBytesView.filter { $0 == 10 }.count
            bytes += chunk.readableBytes
        }
        #expect(lines == 50_001)
        #expect(out.commandTag == "COPY 50001")
        #expect(bytes > 500_000)
    }

    @Test func concurrentRequestsWaitWhileCopyDataIsSent() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE rows (id int)")
        async let copied = connection.copyIn("COPY rows FROM STDIN") { writer in
            for index in 0..<20_000 { try await writer.write("\(index)\n") }
        }
        var answers: [Int] = []
        for value in 0..<10 {
            answers.append(try await connection.execute("SELECT \(value)::int8").rows[0].decode(Int.self, column: 0))
        }
        #expect(try await copied == 20_000)
        #expect(answers == Array(0..<10))
    }

    @Test func listenNotificationsArriveWhileIdleAndWhileQueriesRun() async throws {
        let listener = try await LiveServer.connectPostgres()
        let sender = try await LiveServer.connectPostgres()
        defer {
            listener.close()
            sender.close()
        }
        let channel = "jobs \"quoted\""
        try await listener.listen(channel)
        var incoming = listener.notifications.makeAsyncIterator()
        try await sender.notify(channel, payload: "{\"id\":1}")
        let first = await incoming.next()
        #expect(first?.channel == channel)
        #expect(first?.payload == "{\"id\":1}")
        #expect(first?.processID == sender.backendKey?.processID)
        try await sender.notify(channel, payload: "second")
        _ = try await listener.execute("SELECT pg_sleep(0.05)")
        #expect(await incoming.next()?.payload == "second")
    }

    @Test func aServerThatGoesAwayMidQueryYieldsAConnectionErrorAndALaterConnectWorks() async throws {
        let admin = try await LiveServer.connectPostgres()
        defer { admin.close() }
        let victim = try await LiveServer.connectPostgres()
        let pid = try #require(victim.backendKey?.processID)
        async let running = victim.execute("SELECT pg_sleep(30)")
        try await Task.sleep(for: .milliseconds(200))
        _ = try await admin.execute("SELECT pg_terminate_backend(\(pid))")
        do {
            _ = try await running
            Issue.record("the query outlived its backend")
        } catch let error as PostgresError {
            #expect(error.kind == .connection || error.kind == .server)
        }
        #expect(victim.isClosed)
        let again = try await LiveServer.connectPostgres()
        _ = try await again.simpleQuery("SELECT 1")
        again.close()
    }

    @Test func aCopyInRunThroughSimpleQueryOrQueryIsRefusedWithCopyFailWhileOtherRequestsWait() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE sink (id int)")
        let refused = Task { try await connection.simpleQuery("COPY sink FROM STDIN") }
        let after = Task { try await connection.execute("SELECT 3::int8") }
        await #expect(throws: PostgresError.self) { _ = try await refused.value }
        #expect(try await after.value.rows[0].decode(Int.self, column: 0) == 3)
        await #expect(throws: PostgresError.self) { _ = try await connection.execute("COPY sink FROM STDIN") }
        #expect(try await connection.execute("SELECT count(*) FROM sink").rows[0].decode(Int.self, column: 0) == 0)
    }

    @Test func withTheStatementCacheOffEveryQueryUsesTheUnnamedStatement() async throws {
        var config = try LiveServer.postgresConfiguration()
        config.statementCacheCapacity = 0
        let connection = try await LiveServer.connectPostgres(config)
        defer { connection.close() }
        for value in 0..<5 { #expect(try await connection.execute("SELECT \(value)::int8").rows[0].decode(Int.self, column: 0) == value) }
        let prepared = try await connection.execute("SELECT count(*) FROM pg_prepared_statements").rows[0].decode(Int.self, column: 0)
        #expect(prepared == 0)
    }
}
