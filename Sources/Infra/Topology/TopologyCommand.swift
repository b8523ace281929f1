import Foundation
import JetStream
import Logging
import NATSProto
import Settings

/// `infra-up nats-topology`: applies the streams and buckets of the settings to the NATS server
/// they name (NATS_URL with [nats]) and prints what each one became.
public enum TopologyCommand {
    /// Runs it; returns the exit status (0 all in place, 1 a conflict or a failure).
    public static func run(settings: Settings, replicas: Int = 1, logger: Logger, print: (String) -> Void, report: (String) -> Void) async -> Int32 {
        var configuration = NATSConfiguration(settings: settings, name: "infra-up")
        configuration.logger = logger
        let client: NATSClient
        do {
            client = try await NATSClient.connect(configuration)
        } catch {
            report("nats-topology: cannot connect to NATS: \(error)")
            return 1
        }
        defer { Task { await client.close() } }
        do {
            let items = try await TopologyProvisioner(js: JetStreamContext(client: client)).apply(NATSTopology(settings: settings, replicas: replicas))
            for line in table(items) { print(line) }
            return items.contains { $0.outcome == .conflict } ? 1 : 0
        } catch {
            report("nats-topology: \(error)")
            return 1
        }
    }

    /// The items as aligned lines: kind, name, stream, outcome, and the differences under each.
    public static func table(_ items: [TopologyItem]) -> [String] {
        let rows = items.map { [$0.kind.rawValue, $0.name, $0.stream, "\($0.outcome)"] }
        let header = ["KIND", "NAME", "STREAM", "OUTCOME"]
        let widths = (0..<header.count).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        var lines = [line(header)]
        for (item, row) in zip(items, rows) {
            lines.append(line(row))
            for difference in item.differences { lines.append("    \(difference)") }
        }
        return lines
    }
}

/// `infra-up config [--json]`: every setting with its value (secrets masked) and where it came
/// from (a file, a variable, the default).
public enum ConfigCommand {
    /// `sources` replaces the source of the keys it names (a generated secret's file).
    public static func lines(_ settings: Settings, _ result: SettingsLoader.Result, json: Bool, sources: [String: String] = [:]) -> [String] {
        let described = settings.describedSettings(result).map { entry in
            (key: entry.key, value: entry.value, source: sources[entry.key] ?? entry.source)
        }
        if json {
            let entries = described.map { "  {\"key\": \(quoted($0.key)), \"value\": \(quoted($0.value)), \"source\": \(quoted($0.source))}" }
            return ["["] + entries.enumerated().map { $0.offset < entries.count - 1 ? $0.element + "," : $0.element } + ["]"]
        }
        let keyWidth = described.map(\.key.count).max() ?? 0
        let valueWidth = min(60, described.map(\.value.count).max() ?? 0)
        return described.map { entry in
            let value = entry.value.count > 60 ? String(entry.value.prefix(57)) + "..." : entry.value
            return entry.key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
                + value.padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  " + entry.source
        }
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
