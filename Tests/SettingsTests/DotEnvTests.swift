import Foundation
import Testing
@testable import Settings

@Suite("DotEnv")
struct DotEnvTests {
    /// Documents that exercise every rule of the grammar; each is compared with python-dotenv.
    static let documents: [String] = [
        "A=1\nB=2\n",
        "export A=1\nexport   B = two\n",
        "A = spaced value\n",
        "A=a b  c\nB=ok\n",
        "A=value # comment\nB=value#not-a-comment\n",
        "A='single # kept'\nB=\"double # kept\"  # comment\n",
        "A='it\\'s'\nB='back\\\\slash'\nC='no \\n escape'\n",
        "A=\"tab\\there\"\nB=\"line\\nbreak\"\nC=\"quote\\\"inside\"\nD=\"\\a\\b\\f\\r\\v\"\n",
        "A=\"multi\nline\nvalue\"\nB=after\n",
        "A='multi\nline'\n",
        "A=\"unterminated\nB=2\n",
        "A=\"x\" trailing\nB=2\n",
        "BARE\nA=\n",
        "# comment only\n\n   \nA=1 \n",
        "'quoted key'=1\nKEY WITH SPACE=2\n",
        "=novalue\nA=1\n",
        "A=1\nA=2\nB=${A}\n",
        "A=x\nB=${A}-${MISSING:-fallback}-${MISSING}\n",
        "A=${HOME}\nB=$A\nC=${A:default}\n",
        "A=${B}\nB=1\n",
        "A=\"${EMPTY:-}\"\nB='${C:-single}'\n",
        "A=1\r\nB=2\r\nC=\"x\r\ny\"\r\n",
        "A=ünïcödé\nB=\"emoji 🎙\"\n",
        "A=\"end with escaped \\\" quote\nB=tail\\\" more\n",
        "export=1\nexportA=2\n",
        "A=1\tB\n",
        "  A=indented\n\tB=tabbed\n",
    ]

    @Test(.enabled(if: SettingsOracle.isAvailable), arguments: Array(documents.indices))
    func sameAsPythonDotenv(_ index: Int) async throws {
        let document = Self.documents[index]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dotenv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent(".env")
        try Data(document.utf8).write(to: file)
        let environment = SettingsOracle.baseEnvironment()
        let oracle = try #require(try await SettingsOracle.run("dotenv", file.path, environment: environment) as? [String: Any])
        let parsed = DotEnv(parsing: document)

        let expectedBindings = (oracle["bindings"] as? [[Any]] ?? []).map { pair in
            "\(pair[0])=\((pair[1] as? String).map { "'\($0)'" } ?? "nil")"
        }
        let bindings = parsed.bindings.map { "\($0.key)=\($0.value.map { "'\($0)'" } ?? "nil")" }
        #expect(bindings == expectedBindings, "\(document.debugDescription)")

        let expectedResolved = (oracle["resolved"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
        let resolved = Dictionary(parsed.resolved(environment: environment).map { ($0.key, $0.value) }) { $1 }
        #expect(resolved == expectedResolved, "\(document.debugDescription)")
    }

    @Test func realEnvironmentWinsAndSkippedLinesAreReported() {
        let file = DotEnv(parsing: "A=from-file\nB=\"broken\nC=${A}\n")
        #expect(file.skippedLines == [2])
        let added = file.variables(overlaying: ["A": "from-env"])
        #expect(added == ["C": "from-env"], "A is already set; C expands the real A")
    }

    /// A 2 MB value (unquoted, of words joined by single spaces, then expanded) reads in linear
    /// time: built with UnicodeScalarView's append(contentsOf:), which copies the string each
    /// call, it took tens of seconds (found by the fuzzer, as an out-of-memory input).
    @Test func aLongValueReadsInLinearTime() {
        let words = String(repeating: "{b = ", count: 400_000)
        let clock = ContinuousClock()
        let start = clock.now
        let file = DotEnv(parsing: "A=" + words + "\nB=${A}\n")
        let resolved = file.resolved(environment: [:])
        #expect(resolved.count == 2 && resolved[1].value.unicodeScalars.count == words.unicodeScalars.count - 1)
        #expect(clock.now - start < .seconds(5), "2 MB took \(clock.now - start)")
    }
}
