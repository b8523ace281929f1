import Foundation
import Testing
@testable import Settings

/// The TOML 1.0 cases of the toml-test suite: every valid document must parse to the expected
/// tree, every invalid one must be rejected with an error.
@Suite("TOML 1.0 conformance (toml-test)")
struct TOMLConformanceTests {
    static var suiteDirectory: URL? {
        if let override = ProcessInfo.processInfo.environment["TOML_TEST_DIR"] { return URL(fileURLWithPath: override) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidate = root.deletingLastPathComponent().appendingPathComponent("shared/toml-test")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }

    static var isAvailable: Bool { suiteDirectory != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    func caseList() throws -> (directory: URL, valid: [String], invalid: [String]) {
        guard let directory = Self.suiteDirectory else {
            Issue.record("toml-test cases not found: expected ../shared/toml-test beside the project, or TOML_TEST_DIR")
            throw CancellationError()
        }
        let list = try String(contentsOf: directory.appendingPathComponent("files-toml-1.0.0"), encoding: .utf8)
        let files = list.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasSuffix(".toml") }
        return (directory, files.filter { $0.hasPrefix("valid/") }, files.filter { $0.hasPrefix("invalid/") })
    }

    @Test(.enabled(if: isAvailable)) func validDocumentsParseToTheExpectedTree() throws {
        let (directory, valid, _) = try caseList()
        #expect(valid.count == 205)
        var failures: [String] = []
        for file in valid {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            let expectedURL = directory.appendingPathComponent(String(file.dropLast(5)) + ".json")
            let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: expectedURL), options: [.fragmentsAllowed])
            do {
                let table = try TOML.parse(bytes: bytes)
                if let difference = Self.difference(.table(table), expected, path: "") {
                    failures.append("\(file): \(difference)")
                }
            } catch {
                failures.append("\(file): rejected: \(error)")
            }
        }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
        #expect(failures.isEmpty, "\(failures.count) of \(valid.count) valid documents failed")
    }

    @Test(.enabled(if: isAvailable)) func invalidDocumentsAreRejected() throws {
        let (directory, _, invalid) = try caseList()
        #expect(invalid.count == 474)
        var accepted: [String] = []
        for file in invalid {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            do {
                let table = try TOML.parse(bytes: bytes)
                accepted.append("\(file): accepted as \(table)")
            } catch {
                #expect(error.line >= 1 && error.column >= 1)
            }
        }
        for failure in accepted { Issue.record(Comment(rawValue: failure)) }
        #expect(accepted.isEmpty, "\(accepted.count) of \(invalid.count) invalid documents were accepted")
    }

    @Test func theComparisonCatchesWrongTypesValuesAndKeys() throws {
        let parsed = TOMLValue.table(try TOML.parse("a = 1\nb = 1979-05-27T07:32:00Z\nc = [1.5]\n"))
        let right: [String: Any] = [
            "a": ["type": "integer", "value": "1"], "b": ["type": "datetime", "value": "1979-05-27T07:32:00+00:00"],
            "c": [["type": "float", "value": "1.5"]],
        ]
        #expect(Self.difference(parsed, right, path: "") == nil)
        var wrongValue = right
        wrongValue["a"] = ["type": "integer", "value": "2"]
        #expect(Self.difference(parsed, wrongValue, path: "") != nil)
        var wrongType = right
        wrongType["a"] = ["type": "float", "value": "1"]
        #expect(Self.difference(parsed, wrongType, path: "") != nil)
        var wrongOffset = right
        wrongOffset["b"] = ["type": "datetime", "value": "1979-05-27T07:32:00+01:00"]
        #expect(Self.difference(parsed, wrongOffset, path: "") != nil)
        var extraKey = right
        extraKey["d"] = ["type": "bool", "value": "true"]
        #expect(Self.difference(parsed, extraKey, path: "") != nil)
    }

    /// Compares a parsed value with toml-test's tagged JSON; returns a description of the first difference.
    static func difference(_ value: TOMLValue, _ expected: Any, path: String) -> String? {
        switch value {
        case .table(let table):
            guard let object = expected as? [String: Any] else { return "\(path): got a table, expected \(expected)" }
            if Set(table.keys) != Set(object.keys) {
                return "\(path): keys \(table.keys.sorted()) != \(object.keys.sorted())"
            }
            for (key, child) in table.entries {
                if let difference = difference(child, object[key]!, path: path + "." + key) { return difference }
            }
            return nil
        case .array(let elements):
            guard let array = expected as? [Any] else { return "\(path): got an array, expected \(expected)" }
            guard array.count == elements.count else { return "\(path): \(elements.count) elements, expected \(array.count)" }
            for (index, element) in elements.enumerated() {
                if let difference = difference(element, array[index], path: path + "[\(index)]") { return difference }
            }
            return nil
        default:
            guard let tagged = expected as? [String: Any], let type = tagged["type"] as? String,
                let text = tagged["value"] as? String
            else { return "\(path): got \(value), expected \(expected)" }
            let matches: Bool
            switch (value, type) {
            case (.string(let string), "string"): matches = string == text
            case (.integer(let integer), "integer"): matches = Int64(text) == integer
            case (.float(let float), "float"):
                switch text {
                case "nan", "+nan", "-nan": matches = float.isNaN
                case "inf", "+inf": matches = float == .infinity
                case "-inf": matches = float == -.infinity
                default: matches = Double(text) == float
                }
            case (.boolean(let boolean), "bool"): matches = String(boolean) == text
            case (.offsetDateTime, "datetime"), (.localDateTime, "datetime-local"), (.localDate, "date-local"),
                (.localTime, "time-local"):
                matches = (try? TOML.parseValue(text)) == value
            default: matches = false
            }
            return matches ? nil : "\(path): got \(value), expected \(type) \(text)"
        }
    }
}
