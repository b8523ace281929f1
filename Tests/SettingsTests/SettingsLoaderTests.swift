import Foundation
import Testing
@testable import Settings

@Suite("Settings loader")
struct SettingsLoaderTests {
    private func folder(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, content) in files { try Data(content.utf8).write(to: url.appendingPathComponent(name)) }
        return url
    }

    @Test func variablesThatChangeHowDynaconfLoadsAreRefusedByName() throws {
        let root = try folder(["settings.toml": "[default]\na = 1\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        for name in ["ENVVAR_PREFIX_FOR_DYNACONF", "SETTINGS_FILE_FOR_DYNACONF", "MERGE_ENABLED_FOR_DYNACONF", "INCLUDES_FOR_DYNACONF"] {
            let error = #expect(throws: SettingsError.self) {
                try SettingsLoader(root: root.path).load(environment: [name: "x"])
            }
            #expect(error?.message.contains(name) == true)
        }
        #expect(try SettingsLoader(root: root.path).load(environment: ["ENV_FOR_DYNACONF": "production"]).environment == "production")
    }

    @Test func converterFailuresNameTheVariable() throws {
        let root = try folder([:])
        defer { try? FileManager.default.removeItem(at: root) }
        let error = #expect(throws: SettingsError.self) {
            try SettingsLoader(root: root.path).load(environment: ["TRANSCRIPTION_PORT": "@int eighty"])
        }
        #expect(error?.message.contains("TRANSCRIPTION_PORT") == true)
        #expect(error?.message.contains("eighty") == true)
        let unsupported = #expect(throws: SettingsError.self) {
            try SettingsLoader(root: root.path).load(environment: ["TRANSCRIPTION_X": "@jinja {{ this.Y }}"])
        }
        #expect(unsupported?.message.contains("@jinja") == true)
        // A word starting with @ that is no Dynaconf converter stays a string, as in Dynaconf.
        let handle = try SettingsLoader(root: root.path).load(environment: ["TRANSCRIPTION_BOT_NAME": "@transcribe_bot"])
        #expect(handle.settings["BOT_NAME"] == .string("@transcribe_bot"))
    }

    @Test func invalidTOMLNamesTheFileLineAndColumn() throws {
        let root = try folder(["settings.toml": "[default]\nport = = 1\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        let error = #expect(throws: SettingsError.self) { try SettingsLoader(root: root.path).load(environment: [:]) }
        #expect(error?.message.contains("settings.toml: line 2, column 8") == true, "\(String(describing: error))")
    }

    @Test func filesAreFoundInAConfigFolderAndInParents() throws {
        let root = try folder([:])
        defer { try? FileManager.default.removeItem(at: root) }
        let config = root.appendingPathComponent("config")
        let child = root.appendingPathComponent("service/worker")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: child, withIntermediateDirectories: true)
        try Data("[default]\nfrom = 'config'\n".utf8).write(to: config.appendingPathComponent("settings.toml"))
        let result = try SettingsLoader(root: child.path).load(environment: [:])
        #expect(result.settings["FROM"] == .string("config"))
        #expect(result.loadedFiles.count == 1)
    }
}
