import Foundation
import Testing
@testable import Settings

/// Every folder of Fixtures/settings is loaded by the Swift loader and by Dynaconf with the same
/// files and variables; the trees must be equal value for value and type for type.
@Suite("Settings loader against Dynaconf")
struct SettingsDifferentialTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/settings")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    @Test(.enabled(if: SettingsOracle.isAvailable), arguments: cases)
    func sameTreeAsDynaconf(_ name: String) async throws {
        let folder = try SettingsOracle.isolatedCopy(of: Self.fixtures.appendingPathComponent(name))
        defer { try? FileManager.default.removeItem(at: folder) }
        let description = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("case.json"))) as? [String: Any]
        let variables = description?["variables"] as? [String: String] ?? [:]
        let environment = SettingsOracle.baseEnvironment(variables)
        let oracle = try #require(try await SettingsOracle.run("settings", folder.path, environment: environment) as? [String: Any])

        let result: SettingsLoader.Result
        do {
            result = try SettingsLoader(root: folder.path).load(environment: environment)
        } catch {
            #expect(oracle["error"] != nil, "Swift refused what Dynaconf loads: \(error)")
            return
        }
        if let error = oracle["error"] {
            Issue.record("Dynaconf refused (\(error)) what Swift loaded as \(result.settings)")
            return
        }
        let expected = try #require(oracle["settings"])
        if let difference = Self.difference(.table(result.settings), expected, path: "") {
            Issue.record(Comment(rawValue: "\(name) (\(description?["description"] ?? "")): \(difference)"))
        }
        #expect(result.environment == oracle["env"] as? String)
    }

    @Test func theComparisonCatchesWrongValuesTypesAndKeys() {
        var table = SettingsTable()
        table["PORT"] = .integer(5432)
        table["NAME"] = .string("x")
        let right: [String: Any] = ["PORT": ["type": "integer", "value": "5432"], "NAME": ["type": "string", "value": "x"]]
        #expect(Self.difference(.table(table), right, path: "") == nil)
        #expect(Self.difference(.table(table), ["PORT": ["type": "string", "value": "5432"], "NAME": right["NAME"]!], path: "") != nil)
        #expect(Self.difference(.table(table), ["PORT": ["type": "integer", "value": "1"], "NAME": right["NAME"]!], path: "") != nil)
        #expect(Self.difference(.table(table), ["PORT": right["PORT"]!], path: "") != nil)
    }

    static func difference(_ value: SettingValue, _ expected: Any, path: String) -> String? {
        switch value {
        case .table(let table):
            guard let object = expected as? [String: Any], object["type"] == nil || object.count != 2 || !(object["type"] is String) else {
                return "\(path): got a table \(table), expected \(expected)"
            }
            if Set(table.keys) != Set(object.keys) { return "\(path): keys \(table.keys.sorted()) != \(object.keys.sorted())" }
            for (key, child) in table.entries {
                if let difference = difference(child, object[key]!, path: path + "." + key) { return difference }
            }
            return nil
        case .array(let elements):
            guard let array = expected as? [Any], array.count == elements.count else { return "\(path): got \(value), expected \(expected)" }
            for (index, element) in elements.enumerated() {
                if let difference = difference(element, array[index], path: "\(path)[\(index)]") { return difference }
            }
            return nil
        default:
            guard let tagged = expected as? [String: Any], let type = tagged["type"] as? String, let text = tagged["value"] as? String else {
                return "\(path): got \(value), expected \(expected)"
            }
            let matches: Bool
            switch (value, type) {
            case (.string(let string), "string"): matches = string == text
            case (.integer(let integer), "integer"): matches = Int64(text) == integer
            case (.float(let float), "float"): matches = Double(text) == float || (float.isNaN && text == "nan")
            case (.boolean(let flag), "bool"): matches = String(flag) == text
            case (.null, "null"): matches = true
            case (.dateTime(let toml), "datetime"), (.dateTime(let toml), "datetime-local"), (.dateTime(let toml), "date-local"),
                (.dateTime(let toml), "time-local"):
                matches = (try? TOML.parseValue(text)) == toml
            default: matches = false
            }
            return matches ? nil : "\(path): got \(value), expected \(type) \(text.debugDescription)"
        }
    }
}
