import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Live PostgreSQL: queries", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveQueryTests {
    @Test func simpleProtocolSeveralStatementsSeveralResultsAnEmptyQuery() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let results = try await connection.simpleQuery(
            "CREATE TEMP TABLE t (id int, name text); INSERT INTO t VALUES (1, 'a'), (2, NULL); SELECT * FROM t ORDER BY id;")
        #expect(results.map(\.commandTag) == ["CREATE TABLE", "INSERT 0 2", "SELECT 2"])
        #expect(try await connection.simpleQuery("").map(\.commandTag) == [""])
        let rows = results[2].rows
        #expect(try rows[0].decode(Int.self, column: 0) == 1)
        #expect(try rows[0].decode(String.self, column: "name") == "a")
        #expect(try rows[1].decode(String?.self, column: 1) == nil)
        #expect(results[1].affectedRows == 2)
    }

    @Test func extendedProtocolParametersBoundInBinaryResultsDecodedByPositionAndName() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let name = "O'Brien; DROP TABLE x"
        let id = UUID()
        let when = Date(timeIntervalSince1970: 1_700_000_000.25)
        let row = try await connection.execute(
            "SELECT \(42)::int4 AS answer, \(name)::text AS name, \(id) AS id, \(when) AS at, \(3.5) AS x, \(true) AS flag, \(Optional<Int>.none)::int8 AS nothing, 12345.678::numeric AS amount"
        ).rows[0]
        #expect(try row.decode(Int32.self, column: 0) == 42)
        #expect(try row.decode(String.self, column: "name") == name)
        #expect(try row.decode(UUID.self, column: "id") == id)
        #expect(try row.decode(Date.self, column: "at") == when)
        #expect(try row.decode(Double.self, column: "x") == 3.5)
        #expect(try row.decode(Bool.self, column: "flag"))
        #expect(try row.decode(Int?.self, column: "nothing") == nil)
        #expect(try row.decode(String.self, column: "amount") == "12345.678")
        let (answer, text) = try row.decode((Int, String).self)
        #expect(answer == 42 && text == name)

        // A decoding error names the column, its type and the Swift type.
        do {
            _ = try row.decode(Int.self, column: "name")
            Issue.record("decoded text into Int")
        } catch {
            #expect(error.description.contains("\"name\""))
            #expect(error.description.contains("text"))
            #expect(error.description.contains("Int"))
        }
    }

    @Test func anErrorAffectsOnlyItsOwnQueryTheSessionStaysUsableInAndOutOfTransactions() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        do {
            _ = try await connection.execute("SELECT 1/0")
            Issue.record("division by zero succeeded")
        } catch {
            #expect(error.kind == .server)
            #expect(error.sqlState == .divisionByZero)
        }
        do {
            _ = try await connection.execute("SELECT * FROM no_such_table")
        } catch {
            #expect(error.sqlState == .undefinedTable)
            #expect(error.diagnostics?.position == 15)
        }
        #expect(try await connection.execute("SELECT \(7)::int8").rows[0].decode(Int.self, column: 0) == 7)

        _ = try await connection.simpleQuery("BEGIN")
        await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1/0") }
        #expect(connection.transactionStatus == .failed)
        _ = try await connection.simpleQuery("ROLLBACK")
        #expect(connection.transactionStatus == .idle)
        do {
            _ = try await connection.simpleQuery("SELECT 1; SELECT 1/0; SELECT 3")
        } catch {
            #expect(error.sqlState == .divisionByZero)
        }
        #expect(try await connection.simpleQuery("SELECT 2").count == 1)
    }

    @Test func concurrentCallersArePipelinedOnOneConnectionEachGetsItsOwnResult() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let writesBefore = connection.transport.writeSystemCallCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<20 {
                group.addTask {
                    for index in 0..<50 {
                        let value = task * 1000 + index
                        if index % 10 == 3 {
                            await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1/\(0)") }
                            continue
                        }
                        let result = try await connection.execute("SELECT \(value)::int8 + 1")
                        #expect(try result.rows[0].decode(Int.self, column: 0) == value + 1)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Each request's Parse/Bind/Describe/Execute/Sync leave in one write at most; concurrent
        // requests share writes while one is in progress.
        #expect(connection.transport.writeSystemCallCount - writesBefore <= 1000)
    }

    @Test(
        "a lone caller waits for its reply on its own thread; concurrent callers leave the thread to each other",
        .enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1, "inline waits need a second processor"))
    func inlineReadWaits() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        // Counted on this connection: tests running beside this one wait inline on theirs.
        var before = connection.transport.inlineWaitCount
        for index in 0..<100 { _ = try await connection.execute("SELECT \(index)::int8") }
        let sequential = connection.transport.inlineWaitCount - before
        #expect(sequential >= 50, "only \(sequential) of 100 sequential queries waited inline")
        before = connection.transport.inlineWaitCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { for index in 0..<200 { _ = try await connection.execute("SELECT \(index)::int8") } }
            }
            try await group.waitForAll()
        }
        let concurrent = connection.transport.inlineWaitCount - before
        #expect(concurrent <= 150, "\(concurrent) of 4,000 concurrent queries held a thread waiting inline")
    }

    @Test func aLargeResultStreamsRowsArriveWhileTheQueryRunsMemoryStaysBounded() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let rows = try await connection.query("SELECT g, g::text, now() FROM generate_series(1, \(200_000)) g")
        var count = 0
        var sum = 0
        for try await row in rows {
            let (number, text, _) = try row.decode((Int, String, Date).self)
            #expect(text == String(number))
            sum += number
            count += 1
        }
        #expect(count == 200_000)
        #expect(sum == 200_000 * 200_001 / 2)
        // A sequence held half-read does not block the next query (its rows are buffered) …
        var held = try await connection.query("SELECT g FROM generate_series(1, 100000) g").makeAsyncIterator()
        _ = try await held.next()
        #expect(try await connection.execute("SELECT 5::int8").rows[0].decode(Int.self, column: 0) == 5)
        var rest = 0
        while try await held.next() != nil { rest += 1 }
        #expect(rest == 99_999)
        // … and one dropped half-read is discarded, the connection stays usable.
        do {
            var dropped = try await connection.query("SELECT g FROM generate_series(1, 100000) g").makeAsyncIterator()
            _ = try await dropped.next()
        }
        #expect(try await connection.execute("SELECT 6::int8").rows[0].decode(Int.self, column: 0) == 6)
    }

    @Test func theStatementCacheRePreparesAfterTheTablesColumnsChange() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE shape (a int)")
        _ = try await connection.execute("INSERT INTO shape VALUES (\(Int32(1)))")
        #expect(try await connection.execute("SELECT * FROM shape").columns.count == 1)
        _ = try await connection.simpleQuery("ALTER TABLE shape ADD COLUMN b text")
        #expect(try await connection.execute("SELECT * FROM shape").columns.count == 2)
    }

    @Test func executeManyAtomicBatchesRollBackOnTheFirstErrorPerExecutionBatchesKeepTheRest() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE batch (id int PRIMARY KEY, name text)")
        let rows: [PostgresBindings] = (0..<1000).map { [Int32($0), "name-\($0)"] }
        let tags = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", rows)
        #expect(tags.count == 1000)
        #expect(try tags.allSatisfy { try $0.get() == "INSERT 0 1" })

        // Row 2 collides with an existing key: nothing of the atomic batch stays.
        let colliding: [PostgresBindings] = [[Int32(5000), "a"], [Int32(5001), "b"], [Int32(3), "dup"], [Int32(5002), "c"]]
        do {
            _ = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", colliding)
            Issue.record("a duplicate key was accepted")
        } catch {
            #expect(error.sqlState == .uniqueViolation)
            #expect(error.message.contains("execution 2 of 4"))
        }
        #expect(try await connection.execute("SELECT count(*) FROM batch").rows[0].decode(Int.self, column: 0) == 1000)

        let outcomes = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", colliding, atomic: false)
        #expect(outcomes.map { (try? $0.get()) != nil } == [true, true, false, true])
        #expect(try await connection.execute("SELECT count(*) FROM batch").rows[0].decode(Int.self, column: 0) == 1003)
    }

    /// Executions whose parameter types change within a batch are parsed again for the new types
    /// (a NULL of unknown type, a float where an int was), with the statement cache on or off.
    @Test func executeManyWithChangingParameterTypesBindsEachToAStatementOfItsTypes() async throws {
        for capacity in [256, 1, 0] {
            var configuration = try LiveServer.postgresConfiguration()
            configuration.statementCacheCapacity = capacity
            let connection = try await LiveServer.connectPostgres(configuration)
            defer { connection.close() }
            _ = try await connection.simpleQuery("CREATE TEMP TABLE mixed (n float8, label text)")
            var rows: [PostgresBindings] = []
            for index in 0..<30 {
                var row = PostgresBindings()
                // Runs of four rows of one type, so most executions reuse the one before's statement.
                switch (index / 4) % 3 {
                case 0: row.append(Int32(index))
                case 1: row.append(Double(index) + 0.5)
                default: row.appendNull()
                }
                if index % 7 == 0 { row.appendNull(.text) } else { row.append("row \(index)") }
                rows.append(row)
            }
            let tags = try await connection.executeMany("INSERT INTO mixed VALUES ($1, $2)", rows)
            #expect(tags.count == 30)
            let stored = try await connection.execute("SELECT n, label FROM mixed ORDER BY label NULLS FIRST, n").rows
            #expect(stored.count == 30)
            let sum = try await connection.execute("SELECT sum(n)::float8, count(label)::int8 FROM mixed").rows[0]
            var expected = 0.0
            for index in 0..<30 where (index / 4) % 3 != 2 { expected += Double(index) + ((index / 4) % 3 == 1 ? 0.5 : 0) }
            #expect(try sum.decode(Double.self, column: 0) == expected)
            #expect(try sum.decode(Int.self, column: 1) == 25)
        }
    }

    /// A batch whose requests and replies each outgrow both socket buffers: the server stops
    /// reading until its replies are read, so they must be read while the batch is still going out.
    @Test(.timeLimit(.minutes(1))) func executeManyReadsRepliesWhileItsRequestsAreStillGoingOut() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let payload = String(repeating: "x", count: 64 * 1024)
        for atomic in [true, false] {
            let rows: [PostgresBindings] = (0..<400).map { [payload + "\($0)"] }
            let outcomes = try await connection.executeMany("SELECT $1::text", rows, atomic: atomic)
            #expect(outcomes.count == 400)
            #expect(try outcomes.allSatisfy { try $0.get() == "SELECT 1" })
        }
        #expect(try await connection.execute("SELECT 1").rows[0].decode(Int.self, column: 0) == 1)
    }
}
