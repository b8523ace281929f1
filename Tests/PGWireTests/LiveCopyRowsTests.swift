import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Live PostgreSQL: COPY of typed rows", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveCopyRowsTests {
    @Test func typedRowsOfEveryKindArriveAsWrittenIntoColumnsOfNeighbouringTypes() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("""
            CREATE TYPE pg_temp.mood AS ENUM ('calm', 'busy');
            CREATE TEMP TABLE typed (
                id int4, big int8, small int2, name text, label varchar(20), code char(3),
                ratio float4, score float8, flag bool, at timestamptz, naive timestamp, uid uuid,
                payload bytea, tags text[], doc json, note text, mood pg_temp.mood)
            """)
        let base = Date(timeIntervalSince1970: 1_700_000_000.123456)
        func uuid(_ index: Int) -> UUID { UUID(uuidString: String(format: "00000000-0000-4000-8000-%012x", index))! }
        let rows = 20_000  // more than one 64 KiB CopyData message
        let copied = try await connection.copyIn(
            into: "typed",
            columns: ["id", "big", "small", "name", "label", "code", "ratio", "score", "flag", "at", "naive", "uid",
                      "payload", "tags", "doc", "note", "mood"]
        ) { writer in
            for index in 0..<rows {
                try await writer.writeRow(
                    index, Int32(index) * 1000, index % 30_000, "name \(index) \"quoted\"\t\\", "label-\(index)", "abc",
                    Double(index) / 4, Float(index) / 8, index.isMultiple(of: 2), base + Double(index), base,
                    uuid(index), ByteBuffer(bytes: [0, 1, UInt8(index & 0xFF)]), ["a", "b\(index)"],
                    PostgresJSON(["k": index]), index.isMultiple(of: 3) ? nil : "n\(index)", "busy")
            }
        }
        #expect(copied == rows)
        let result = try await connection.execute(
            "SELECT *, mood::text AS mood_text, naive = (at AT TIME ZONE 'UTC') AS naive_is_utc FROM typed ORDER BY id")
        #expect(result.rows.count == rows)
        for index in [0, 1, 2, 3, 4_097, rows - 1] {
            let row = result.rows[index]
            #expect(try row.decode(Int.self, column: "id") == index)
            #expect(try row.decode(Int.self, column: "big") == index * 1000)
            #expect(try row.decode(Int16.self, column: "small") == Int16(index % 30_000))
            #expect(try row.decode(String.self, column: "name") == "name \(index) \"quoted\"\t\\")
            #expect(try row.decode(String.self, column: "label") == "label-\(index)")
            #expect(try row.decode(String.self, column: "code") == "abc")
            #expect(try row.decode(Float.self, column: "ratio") == Float(Double(index) / 4))
            #expect(try row.decode(Double.self, column: "score") == Double(Float(index) / 8))
            #expect(try row.decode(Bool.self, column: "flag") == index.isMultiple(of: 2))
            let at = try row.decode(Date.self, column: "at")
            #expect(abs(at.timeIntervalSince(base + Double(index))) < 0.000_001)
            #expect(try row.decode(Bool.self, column: "naive_is_utc") == (index == 0))
            #expect(try row.decode(UUID.self, column: "uid") == uuid(index))
            #expect(try row.decode(ByteBuffer.self, column: "payload") == ByteBuffer(bytes: [0, 1, UInt8(index & 0xFF)]))
            #expect(try row.decode([String].self, column: "tags") == ["a", "b\(index)"])
            #expect(try row.decode(PostgresJSON<[String: Int]>.self, column: "doc").value == ["k": index])
            #expect(try row.decode(String?.self, column: "note") == (index.isMultiple(of: 3) ? nil : "n\(index)"))
            #expect(try row.decode(String.self, column: "mood_text") == "busy")
        }
    }

    @Test func aRefusedRowNamesItsRowAndColumnAndLeavesTheRowsBeforeAndAfterIntact() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE narrow (id int4, small int2, name text)")
        var refusals: [String] = []
        let copied = try await connection.copyIn(into: "narrow", columns: ["id", "small", "name"]) { writer in
            for index in 0..<3_000 {
                do {
                    switch index {
                    case 1_000: try await writer.writeRow(3_000_000_000, 1, "too big for int4")
                    case 1_001: try await writer.writeRow(index, 40_000, "too big for int2")
                    case 1_002: try await writer.writeRow(UUID(), 1, "not an integer")
                    case 1_003: try await writer.writeRow(index, 1)
                    case 1_004: try await writer.writeRow(index, 1, "x", "one too many")
                    default: try await writer.writeRow(index, index % 100, "row \(index)")
                    }
                } catch let error as PostgresError {
                    #expect(error.kind == .usage)
                    refusals.append(error.message)
                }
            }
        }
        #expect(copied == 2_995)
        #expect(refusals.count == 5)
        #expect(refusals[0] == "COPY row 1001, column \"id\" (int4): 3000000000 does not fit")
        #expect(refusals[1] == "COPY row 1001, column \"small\" (int2): 40000 does not fit")
        #expect(refusals[2] == "COPY row 1001, column \"id\" (int4): a uuid value cannot be copied into it")
        #expect(refusals[3].hasPrefix("COPY row 1001 has 2 values; the COPY has 3 columns"))
        #expect(refusals[4].hasPrefix("COPY row 1001 has 4 values"))
        let check = try await connection.execute("SELECT count(*), sum(id), max(name) FROM narrow WHERE name LIKE 'row %'").rows[0]
        #expect(try check.decode(Int.self, column: 0) == 2_995)
        #expect(try check.decode(Int.self, column: 1) == (0..<3_000).reduce(0, +) - (1_000...1_004).reduce(0, +))
    }

    @Test func aRefusalRethrownAbortsTheCopyAndTheSessionGoesOn() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE aborted (id int4)")
        await #expect(throws: PostgresError.self) {
            try await connection.copyIn(into: "aborted", columns: ["id"]) { writer in
                for index in 0..<100_000 { try await writer.writeRow(index == 99_999 ? Int.max : index) }
            }
        }
        #expect(try await connection.execute("SELECT count(*) FROM aborted").rows[0].decode(Int.self, column: 0) == 0)
    }

    @Test func identifiersAreQuotedAndTheServerJudgesTypesOfItsOwn() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("""
            CREATE TYPE pg_temp.color AS ENUM ('red');
            CREATE TEMP TABLE "Odd ""Name"" Table" ("Mixed Case" int8, "select" pg_temp.color)
            """)
        let schema = try await connection.execute("SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()").rows[0].decode(String.self, column: 0)
        let copied = try await connection.copyIn(into: "Odd \"Name\" Table", schema: schema, columns: ["Mixed Case", "select"]) { writer in
            try await writer.writeRow(Int16(7), "red")
        }
        #expect(copied == 1)
        #expect(try await connection.execute(#"SELECT "Mixed Case" FROM "Odd ""Name"" Table""#).rows[0].decode(Int.self, column: 0) == 7)

        // A label the enum lacks is the server's to refuse; the error is its own.
        do {
            try await connection.copyIn(into: "Odd \"Name\" Table", columns: ["Mixed Case", "select"]) { writer in
                try await writer.writeRow(1, "green")
            }
            Issue.record("the server took a label its enum lacks")
        } catch let error as PostgresError {
            #expect(error.sqlState == .invalidTextRepresentation)
        }
        // A missing table or column fails before the COPY starts.
        await #expect(throws: PostgresError.self) {
            try await connection.copyIn(into: "no_such_table", columns: ["id"]) { writer in try await writer.writeRow(1) }
        }
        await #expect(throws: PostgresError.self) {
            try await connection.copyIn(into: "Odd \"Name\" Table", columns: ["missing"]) { writer in try await writer.writeRow(1) }
        }
        #expect(try await connection.execute(#"SELECT count(*) FROM "Odd ""Name"" Table""#).rows[0].decode(Int.self, column: 0) == 1)
    }

    @Test func everyArityOfWriteRowWritesItsValuesInOrder() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE wide (a int8, b int8, c int8, d int8, e int8, f int8, g int8)")
        let names = ["a", "b", "c", "d", "e", "f", "g"]
        for width in 1...7 {
            let copied = try await connection.copyIn(into: "wide", columns: Array(names.prefix(width))) { writer in
                let v = width * 10
                switch width {
                case 1: try await writer.writeRow(v + 1)
                case 2: try await writer.writeRow(v + 1, v + 2)
                case 3: try await writer.writeRow(v + 1, v + 2, v + 3)
                case 4: try await writer.writeRow(v + 1, v + 2, v + 3, v + 4)
                case 5: try await writer.writeRow(v + 1, v + 2, v + 3, v + 4, v + 5)
                case 6: try await writer.writeRow(v + 1, v + 2, v + 3, v + 4, v + 5, v + 6)
                default: try await writer.writeRow(v + 1, v + 2, v + 3, v + 4, v + 5, v + 6, v + 7)
                }
            }
            #expect(copied == 1)
        }
        let rows = try await connection.execute("SELECT a, b, c, d, e, f, g FROM wide ORDER BY a").rows
        #expect(rows.count == 7)
        for (index, row) in rows.enumerated() {
            let width = index + 1
            for column in 0..<7 {
                let expected: Int? = column < width ? width * 10 + column + 1 : nil
                #expect(try row.decode(Int?.self, column: column) == expected)
            }
        }
    }

    @Test func writeRowIsRefusedInATextCopy() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE plain (id int4)")
        do {
            try await connection.copyIn("COPY plain FROM STDIN") { writer in try await writer.writeRow(1) }
            Issue.record("writeRow was taken in a text COPY")
        } catch let error as PostgresError {
            #expect(error.kind == .usage)
            #expect(error.message.contains("copyIn(into:columns:)"))
        }
        #expect(try await connection.execute("SELECT 1::int8").rows[0].decode(Int.self, column: 0) == 1)
    }
}
