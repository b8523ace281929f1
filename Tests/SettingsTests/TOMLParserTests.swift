import Foundation
import Testing
import TestSupport
@testable import Settings

@Suite("TOML parser")
struct TOMLParserTests {
    @Test func typedTreeInDocumentOrder() throws {
        let table = try TOML.parse("""
            title = "transcription"
            [database]
            port = 5_432
            ratio = 0.5
            hosts = ["a", 'b']
            started = 1979-05-27 07:32:00.25-07:00
            [[streams]]
            name = "EVENTS"
            [[streams]]
            name = "TASKS"
            """)
        #expect(table.keys == ["title", "database", "streams"])
        let database = try #require(table["database"]?.table)
        #expect(database.keys == ["port", "ratio", "hosts", "started"])
        #expect(database["port"] == .integer(5432))
        #expect(database["hosts"] == .array([.string("a"), .string("b")]))
        let started = TOMLDateTime(
            date: TOMLDate(year: 1979, month: 5, day: 27), time: TOMLTime(hour: 7, minute: 32, second: 0, nanosecond: 250_000_000),
            offsetMinutes: -420)
        #expect(database["started"] == .offsetDateTime(started))
        #expect(started.description == "1979-05-27T07:32:00.25-07:00")
        #expect(table["streams"] == .array([.table(try TOML.parse("name = 'EVENTS'")), .table(try TOML.parse("name = 'TASKS'"))]))
    }

    @Test func errorsNameLineAndColumn() {
        let cases: [(String, Int, Int, String)] = [
            ("a = 1\nb = 2\na = 3\n", 3, 1, "defined twice"),
            ("[t]\nx = 1\n[t]\n", 3, 1, "defined twice"),
            ("a = \"unterminated\n", 1, 18, "newline"),
            ("key = 0x\n", 1, 7, "hexadecimal"),
            ("k = 2024-02-30\n", 1, 5, "out of range"),
            ("ключ = 1\n", 1, 1, "expected a key"),
            ("x = { a = 1, }\n", 1, 14, "trailing comma"),
            ("s = \"\\q\"\n", 1, 6, "invalid escape"),
        ]
        for (document, line, column, fragment) in cases {
            do {
                let table = try TOML.parse(document)
                Issue.record("accepted \(document.debugDescription) as \(table)")
            } catch {
                #expect(error.line == line && error.column == column, "\(document.debugDescription): \(error)")
                #expect(error.message.contains(fragment), "\(document.debugDescription): \(error)")
            }
        }
    }

    @Test func nulAndControlCharactersAreRejected() {
        for document in ["a = \"x\u{0}y\"", "a = 'x\u{1}'", "# comment \u{7F}\n", "a = 1\u{0}"] {
            #expect(throws: TOMLError.self, "\(document.debugDescription)") { try TOML.parse(document) }
        }
        #expect((try? TOML.parse("a = \"tab\there\"")) != nil, "a tab is allowed in strings")
    }

    @Test func invalidUTF8IsAnErrorWithItsPosition() {
        let error = #expect(throws: TOMLError.self) { try TOML.parse(bytes: Array("a = \"".utf8) + [0xFF, 0x22]) }
        #expect(error?.message == "invalid UTF-8")
        #expect(error?.column == 6)
    }

    @Test func deepNestingIsBoundedNotAStackOverflow() {
        let deep = "a = " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = #expect(throws: TOMLError.self) { try TOML.parse(deep) }
        #expect(error?.message.contains("nest deeper") == true)
        let inline = "a = " + String(repeating: "{b = ", count: 10_000) + "1" + String(repeating: "}", count: 10_000)
        #expect(throws: TOMLError.self) { try TOML.parse(inline) }
    }

    @Test func standaloneValuesAsEnvironmentVariablesUseThem() throws {
        #expect(try TOML.parseValue("1_000") == .integer(1000))
        #expect(try TOML.parseValue("0x1F") == .integer(31))
        #expect(try TOML.parseValue("5 # comment") == .integer(5))
        #expect(try TOML.parseValue("[1,'a']") == .array([.integer(1), .string("a")]))
        #expect(try TOML.parseValue("1979-05-27") == .localDate(TOMLDate(year: 1979, month: 5, day: 27)))
        #expect(throws: TOMLError.self) { try TOML.parseValue("007") }
        #expect(throws: TOMLError.self) { try TOML.parseValue("hello world") }
        #expect(throws: TOMLError.self) { try TOML.parseValue("https://example.com") }
    }

    /// Seeded mutations of a rich document: every result is a table or a TOMLError, never a crash or a hang.
    @Test func seededMutationsEndInAValueOrATypedError() {
        let seed = Array("""
            # settings
            [default]
            name = "svc" # trailing
            port = 0x1F
            ratio = -1.5e-3
            when = 1979-05-27T07:32:00Z
            list = [1, [2, 3], { a = 'x' }]
            text = \"\"\"
            multi \\
              line\"\"\"
            [[default.streams]]
            subjects = ["events.>"]
            """.utf8)
        var generator = SplitMix64(seed: 0x5EED)
        let alphabet = Array("[]{}=\"'#.,\\\n\r\t 0x_+-:eTZ".utf8) + [0, 0x7F, 0xC3, 0xFF]
        var parsed = 0
        for _ in 0..<20_000 {
            let bytes = generator.mutate(seed, alphabet: alphabet)
            if (try? TOML.parse(bytes: bytes)) != nil { parsed += 1 }
        }
        #expect(parsed > 0, "some mutations stay valid")
    }
}
