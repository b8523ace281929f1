import Foundation
import Infra
import JetStream
import NATSProto
import Settings
import TestSupport
import Testing

@Suite("NATS topology from the settings")
struct NATSTopologyPlanTests {
    @Test func theSettingsDescribeTheServicesStreamsAndBuckets() {
        let topology = NATSTopology(settings: Settings(), replicas: 3)
        #expect(topology.streams.map(\.name) == ["EVENTS", "TASKS"])
        #expect(topology.streams.first { $0.name == "TASKS" }?.retention == .workqueue)
        #expect(topology.keyValueBuckets.map(\.bucket) == ["STORAGE"] && topology.objectStores.map(\.bucket) == ["AUDIO", "EXPORTS"])
        let streams = topology.streamConfigs(on: ServerVersion(2, 15))
        #expect(streams.map(\.config.name) == ["EVENTS", "TASKS", "KV_STORAGE", "OBJ_AUDIO", "OBJ_EXPORTS"])
        #expect(streams.allSatisfy { $0.config.replicas == 3 })
    }

    @Test func differencesSayWhichTheServerCanChangeInPlace() {
        var existing = StreamConfig(name: "EVENTS", subjects: ["events.>"])
        existing.maxAge = .seconds(60)
        #expect(TopologyPlanner.differences(existing: existing, wanted: existing).isEmpty)
        var wanted = existing
        wanted.subjects = ["events.>", "audit.>"]
        wanted.maxAge = .seconds(120)
        let updates = TopologyPlanner.differences(existing: existing, wanted: wanted)
        #expect(updates.map(\.field) == ["subjects", "max_age"] && updates.allSatisfy(\.updatable))
        wanted.storage = .memory
        wanted.retention = .workqueue
        let conflicts = TopologyPlanner.differences(existing: existing, wanted: wanted).filter { !$0.updatable }
        #expect(conflicts.map(\.field) == ["retention", "storage"])
        #expect(conflicts.first?.description == "retention: limits → workqueue (cannot be changed in place)")
    }
}

@Suite("NATS topology applied (live)", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSTopologyLiveTests {
    /// The settings' topology under names and subjects of this test's own.
    static func topology(_ tag: String) -> NATSTopology {
        var topology = NATSTopology(settings: Settings())
        for index in topology.streams.indices {
            topology.streams[index].name += "_" + tag
            topology.streams[index].subjects = topology.streams[index].subjects.map { tag.lowercased() + "." + $0 }
        }
        for index in topology.keyValueBuckets.indices { topology.keyValueBuckets[index].bucket += "_" + tag }
        for index in topology.objectStores.indices {
            topology.objectStores[index].bucket += "_" + tag
            topology.objectStores[index].storage = .memory
        }
        return topology
    }

    @Test func applyingCreatesThenChangesNothingThenUpdatesAndReportsWhatItCannotChange() async throws {
        let client = try await NATSClient.connect(NATSConfiguration(url: try LiveServer.require(LiveServer.nats.rawValue)))
        let js = JetStreamContext(client: client)
        let tag = "T" + UUID().uuidString.prefix(6)
        var topology = Self.topology(String(tag))
        defer {
            let names = topology.streamConfigs(on: js.serverVersion).map(\.config.name)
            Task {
                for name in names { try? await js.deleteStream(name) }
                await client.close()
            }
        }
        let provisioner = TopologyProvisioner(js: js)
        let first = try await provisioner.apply(topology)
        #expect(first.map(\.outcome) == Array(repeating: .created, count: 5), "\(first)")
        let second = try await provisioner.apply(topology)
        #expect(second.allSatisfy { $0.outcome == .unchanged }, "a second apply changes nothing: \(second.filter { $0.outcome != .unchanged })")

        // What the services do with it works: a task published, a value put, an object stored.
        let tasks = topology.streams[1]
        try await js.publish("transcribe 1", to: tasks.subjects[0].replacingOccurrences(of: ">", with: "transcription.create"))
        let kv = try await js.keyValue(topology.keyValueBuckets[0].bucket)
        try await kv.put("user.1.language", "ru")
        let store = try await js.objectStore(topology.objectStores[0].bucket)
        try await store.put("a.ogg", data: Data(repeating: 1, count: 300_000))

        topology.streams[0].maxAge = .seconds(3600)
        let third = try await provisioner.apply(topology)
        #expect(third[0].outcome == .updated && third[0].differences.first?.hasPrefix("max_age") == true, "\(third[0])")
        #expect(try await js.streamInfo(topology.streams[0].name).config.maxAge == .seconds(3600))

        topology.streams[1].storage = .memory
        let fourth = try await provisioner.apply(topology)
        #expect(fourth[1].outcome == .conflict && fourth[1].differences.contains { $0.hasPrefix("storage: file → memory") }, "\(fourth[1])")
        #expect(try await js.streamInfo(topology.streams[1].name).state.messages == 1, "a conflicting stream is left as it is, its messages kept")
    }
}

@Suite("infra-up nats-topology and config output")
struct TopologyOutputTests {
    @Test func theTopologyTableAlignsItsColumnsAndListsDifferencesUnderTheirItem() {
        let lines = TopologyCommand.table([
            TopologyItem(kind: .stream, name: "EVENTS", stream: "EVENTS", outcome: .unchanged, differences: []),
            TopologyItem(kind: .objectStore, name: "AUDIO", stream: "OBJ_AUDIO", outcome: .conflict, differences: ["storage: file → memory (cannot be changed in place)"]),
        ])
        #expect(lines == [
            "KIND          NAME    STREAM     OUTCOME",
            "stream        EVENTS  EVENTS     unchanged",
            "object store  AUDIO   OBJ_AUDIO  conflict",
            "    storage: file → memory (cannot be changed in place)",
        ])
    }

    @Test func configAsJSONIsJSONWithEveryKeyAndNoSecret() throws {
        let directory = try LiveServer.scratchDirectory("config")
        defer { try? FileManager.default.removeItem(at: directory) }
        try "[default]\nbot_token = \"123:secret-token\"\n".write(to: directory.appendingPathComponent("settings.toml"), atomically: true, encoding: .utf8)
        let loaded = try SettingsLoader(root: directory.path).load(environment: ["TRANSCRIPTION_LOG_LEVEL": "DEBUG\"quoted"])
        let settings = try? Settings(decoding: loaded)
        // An invalid LOG_LEVEL fails validation; the loader's result still describes every key.
        let described = ConfigCommand.lines(settings ?? Settings(), loaded, json: true).joined(separator: "\n")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(described.utf8)) as? [[String: String]])
        #expect(entries.count == Settings.fields.count)
        #expect(!described.contains("secret-token"), "secrets are masked")
    }
}
