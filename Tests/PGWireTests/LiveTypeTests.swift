import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Live PostgreSQL: types", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveTypeTests {
    /// Binds `value`, has the server cast it to `type` and print it as text, and decodes it back.
    func roundTrip<T: PostgresEncodable & PostgresDecodable & Equatable>(
        _ connection: PostgresConnection, _ value: T, as type: String, text expected: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let row = try await connection.execute("SELECT \(value)::\(unescaped: type), \(value)::\(unescaped: type)::text").rows[0]
        #expect(try row.decode(T.self, column: 0) == value, sourceLocation: sourceLocation)
        #expect(try row.decode(String.self, column: 1) == expected, sourceLocation: sourceLocation)
    }

    @Test func everyScalarTypeGoesBothWaysCheckedAgainstTheServersTextForm() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        _ = try await connection.simpleQuery("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'")
        try await roundTrip(connection, true, as: "bool", text: "true")
        try await roundTrip(connection, Int16(-32768), as: "int2", text: "-32768")
        try await roundTrip(connection, Int32.max, as: "int4", text: "2147483647")
        try await roundTrip(connection, Int64.min, as: "int8", text: "-9223372036854775808")
        try await roundTrip(connection, 1.5 as Float, as: "float4", text: "1.5")
        try await roundTrip(connection, 0.1 as Double, as: "float8", text: "0.1")
        try await roundTrip(connection, "héllo, wörld ✓", as: "text", text: "héllo, wörld ✓")
        try await roundTrip(connection, Decimal(string: "-12345.6789")!, as: "numeric", text: "-12345.6789")
        try await roundTrip(connection, Decimal(string: "0.000001")!, as: "numeric", text: "0.000001")
        try await roundTrip(connection, Decimal(string: "100000000000000000000")!, as: "numeric", text: "100000000000000000000")
        try await roundTrip(connection, Decimal(0), as: "numeric", text: "0")
        try await roundTrip(connection, UUID(uuidString: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")!, as: "uuid", text: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        try await roundTrip(connection, ByteBuffer(bytes: [0xDE, 0xAD, 0, 0xEF]), as: "bytea", text: "\\xdead00ef")
        try await roundTrip(connection, Date(timeIntervalSince1970: 1_709_210_096.789), as: "timestamptz", text: "2024-02-29 12:34:56.789+00")
        try await roundTrip(connection, PostgresDate(daysSince2000: 8825), as: "date", text: "2024-02-29")
        #expect(PostgresDate(daysSince2000: 8825).description == "2024-02-29")
        try await roundTrip(connection, PostgresTime(hour: 12, minute: 34, second: 56, microsecond: 789_000), as: "time", text: "12:34:56.789")
        try await roundTrip(connection, PostgresInterval(months: 14, days: 3, microseconds: 14_706_500_000), as: "interval", text: "1 year 2 mons 3 days 04:05:06.5")
        try await roundTrip(connection, PostgresInet("192.168.0.1/24")!, as: "inet", text: "192.168.0.1/24")
        try await roundTrip(connection, PostgresInet("2001:db8::/32", isCIDR: true)!, as: "cidr", text: "2001:db8::/32")
        try await roundTrip(connection, PostgresMACAddress(bytes: [8, 0, 0x2B, 1, 2, 3])!, as: "macaddr", text: "08:00:2b:01:02:03")
        try await roundTrip(connection, PostgresMoney(minorUnits: 1234), as: "money", text: "$12.34")

        let zoned = try await connection.execute("SELECT \(PostgresTimeWithZone(PostgresTime(hour: 1, minute: 2, second: 3, utcOffsetSeconds: 7200)))::text")
        #expect(try zoned.rows[0].decode(String.self, column: 0) == "01:02:03+02")
        let back = try await connection.execute("SELECT '01:02:03-05:30'::timetz").rows[0].decode(PostgresTime.self, column: 0)
        #expect(back.utcOffsetSeconds == -19800 && back.description == "01:02:03-05:30")
    }

    @Test func numericExactToStringAtAnySizeToDecimalWhenItFitsNaN() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let huge = "123456789012345678901234567890123456789012345678901234567890.000000000000000000001"
        let row = try await connection.execute("SELECT \(unescaped: huge)::numeric, 'NaN'::numeric, 1e-20::numeric, -0.5::numeric").rows[0]
        #expect(try row.decode(String.self, column: 0) == huge)
        #expect(throws: PostgresDecodingError.self) { try row.decode(Decimal.self, column: 0) }
        #expect(try row.decode(Decimal.self, column: 1).isNaN)
        #expect(try row.decode(String.self, column: 2) == "0.00000000000000000001")
        #expect(try row.decode(Decimal.self, column: 3) == Decimal(string: "-0.5"))
    }

    @Test func arraysWithNullsRangesJSONEnumsAndDomains() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        let ints = [1, 2, 3]
        let row = try await connection.execute(
            "SELECT \(ints), \([Int32?]([1, nil, 3])), \(["a", "b\"c", ""]), \(PostgresArray(rows: [[1, 2], [3, 4]] as [[Int]])!), ARRAY[]::text[], \([Int]())::text"
        ).rows[0]
        #expect(try row.decode([Int].self, column: 0) == ints)
        #expect(try row.decode([Int32?].self, column: 1) == [1, nil, 3])
        #expect(try row.decode([String].self, column: 2) == ["a", "b\"c", ""])
        let matrix = try row.decode(PostgresArray<Int>.self, column: 3)
        #expect(matrix.dimensions == [2, 2] && matrix.elements == [1, 2, 3, 4])
        #expect(throws: PostgresDecodingError.self) { try row.decode([Int].self, column: 3) }
        #expect(try row.decode([String].self, column: 4) == [])
        #expect(try row.decode(String.self, column: 5) == "{}")

        let ranges = try await connection.execute(
            "SELECT \(PostgresRange(Int32(1)..<10)), \(PostgresRange<Int>(lower: nil, upper: 5, isUpperInclusive: true)), 'empty'::numrange, '[3,7]'::int4range, \(PostgresRange(PostgresDate(daysSince2000: 0)..<PostgresDate(daysSince2000: 31)))::text"
        ).rows[0]
        let first = try ranges.decode(PostgresRange<Int32>.self, column: 0)
        #expect(first.lower == 1 && first.upper == 10 && first.isLowerInclusive && !first.isUpperInclusive)
        let second = try ranges.decode(PostgresRange<Int>.self, column: 1)
        #expect(second.lower == nil && second.upper == 6)  // the server normalizes (,5] to (,6)
        #expect(try ranges.decode(PostgresRange<Decimal>.self, column: 2).isEmpty)
        let closed = try ranges.decode(PostgresRange<Int32>.self, column: 3)
        #expect(closed.lower == 3 && closed.upper == 8)
        #expect(try ranges.decode(String.self, column: 4) == "[2000-01-01,2000-02-01)")

        struct Payload: Codable, Equatable, Sendable {
            var name: String
            var tags: [String]
        }
        let payload = Payload(name: "x", tags: ["a", "b"])
        let json = try await connection.execute("SELECT \(PostgresJSON(payload)), \(PostgresJSON(payload))::json, '{\"name\":1}'::jsonb").rows[0]
        #expect(try json.decode(PostgresJSON<Payload>.self, column: 0).value == payload)
        #expect(try json.decode(PostgresJSON<Payload>.self, column: 1).value == payload)
        #expect(throws: PostgresDecodingError.self) { try json.decode(PostgresJSON<Payload>.self, column: 2) }

        _ = try await connection.simpleQuery(
            "CREATE TYPE pg_temp.mood AS ENUM ('sad', 'happy'); CREATE DOMAIN pg_temp.positive AS int4 CHECK (VALUE > 0); CREATE TYPE pg_temp.pair AS (a int, b text)")
        let custom = try await connection.execute("SELECT 'happy'::pg_temp.mood, 5::pg_temp.positive, ROW(1, 'x')::pg_temp.pair").rows[0]
        #expect(try custom.decode(String.self, column: 0) == "happy")
        #expect(try custom.decode(Int.self, column: 1) == 5)
        #expect(try custom.decode(ByteBuffer.self, column: 2).readableBytes > 0)  // unknown: raw bytes, never an error
    }

    @Test func rowsDecodeIntoDecodableStructsByColumnNameErrorsNameTheColumn() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        struct Settings: Codable, Sendable, Equatable {
            var language: String
        }
        struct Job: Decodable, Equatable {
            var id: Int
            var title: String
            var note: String?
            var created: Date
            var settings: Settings
            var tags: [String]
        }
        let row = try await connection.execute(
            "SELECT 7::int8 AS id, 'transcribe' AS title, NULL::text AS note, to_timestamp(0) AS created, '{\"language\":\"de\"}'::jsonb AS settings, ARRAY['a'] AS tags"
        ).rows[0]
        let job = try row.decode(as: Job.self)
        #expect(job == Job(id: 7, title: "transcribe", note: nil, created: Date(timeIntervalSince1970: 0), settings: Settings(language: "de"), tags: ["a"]))

        struct Wrong: Decodable { var title: Int }
        do {
            _ = try row.decode(as: Wrong.self)
            Issue.record("decoded text into Int")
        } catch let error as PostgresDecodingError {
            #expect(error.column == "title")
            #expect(error.dataType == .text)
        }
        struct Missing: Decodable { var absent: Int }
        #expect(throws: DecodingError.self) { try row.decode(as: Missing.self) }
    }

    @Test func theBuiltInTypeOIDsMatchPgType() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        for entry in PostgresDataType.builtins {
            let row = try await connection.execute("SELECT oid, typarray FROM pg_type WHERE typname = \(entry.name) AND typnamespace = 'pg_catalog'::regnamespace").rows
            #expect(row.count == 1, "\(entry.name)")
            #expect(try row.first?.decode(UInt32.self, column: 0) == entry.type.rawValue, "\(entry.name)")
            #expect(try row.first?.decode(UInt32.self, column: 1) == entry.array, "\(entry.name)")
        }
    }
}
