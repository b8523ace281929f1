import Foundation
import Logging
import Transport

/// `infra-up nats-exporter`: nats-server has no Prometheus endpoint, and Debian has no package of
/// prometheus-nats-exporter, so native mode serves `/metrics` itself from the servers' monitoring
/// endpoints (`/varz`, `/jsz`, `/healthz`), under the metric names and labels
/// prometheus-nats-exporter uses with `-varz -healthz -jsz=all`. One Grafana dashboard then works
/// in both modes.
public struct NATSExporter: Sendable {
    /// The monitoring ports of the servers (one per cluster node).
    public var monitorPorts: [Int]
    public var host: String

    public init(monitorPorts: [Int], host: String = "127.0.0.1") {
        self.monitorPorts = monitorPorts
        self.host = host
    }

    /// Reads every server's endpoints and renders the exposition text. A server that does not
    /// answer is left out, as the Go exporter leaves it out.
    public func collect(timeout: Duration = .seconds(4)) async -> String {
        var metrics = NATSMetrics()
        metrics.add("infra_nats_exporter_build_info", help: "The built-in NATS exporter of infra-up", labels: [("version", InfraVersion.current)], value: 1)
        for port in monitorPorts {
            guard let varz = try? await fetchJSON(port, "/varz", timeout) else { continue }
            let serverID = varz["server_id"]?.string ?? "\(host):\(port)"
            metrics.addVarz(varz, serverID: serverID)
            if let health = try? await fetchJSON(port, "/healthz", timeout) {
                metrics.addHealthz(health, serverID: serverID)
            } else {
                // /healthz answers 503 with a JSON body when the server is not healthy.
                metrics.addHealthz(["status": .string("unavailable")], serverID: serverID)
            }
            if let jsz = try? await fetchJSON(port, "/jsz?consumers=true&config=true", timeout) {
                metrics.addJsz(jsz, varz: varz, serverID: serverID)
            }
        }
        return metrics.text
    }

    private func fetchJSON(_ port: Int, _ path: String, _ timeout: Duration) async throws -> [String: JSONValue] {
        let response = try await HTTP.get(host: host, port: port, path: path, timeout: timeout)
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(response.body)) else {
            throw HTTP.Failure(url: path, message: "not a JSON object")
        }
        return object
    }

    /// Serves `/metrics` on `127.0.0.1:port` until the task is cancelled.
    public func serve(port: Int, logger: Logger) async throws {
        let listener = try Listener.bind(host: "127.0.0.1", port: port)
        logger.info("serving /metrics", metadata: ["port": "\(listener.endpoint.port ?? port)", "servers": "\(monitorPorts)"])
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    let connection = try await listener.accept()
                    group.addTask { await self.answer(connection, logger: logger) }
                }
            }
        } onCancel: {
            listener.close()
        }
    }

    /// One request on one connection, then close.
    func answer(_ connection: Connection, logger: Logger) async {
        defer { connection.close() }
        var request = ByteBuffer(capacity: 2048)
        let deadline = Deadline.after(.seconds(10))
        do {
            while HTTP.find([13, 10, 13, 10], in: Array(request.readableBytesView)) == nil {
                guard request.readableBytes < 16384 else { return }
                try await connection.read(into: &request, maximumBytes: 4096, deadline: deadline)
            }
        } catch {
            return
        }
        let line = String(decoding: request.readableBytesView.prefix { $0 != 13 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let path = parts.count >= 2 ? parts[1].split(separator: "?").first.map(String.init) ?? "" : ""
        let (status, type, body): (String, String, String)
        if parts.first != "GET" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", "only GET\n")
        } else if path == "/metrics" {
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", await collect())
        } else if path == "/" || path == "/healthz" {
            (status, type, body) = ("200 OK", "text/plain", "NATS exporter: /metrics\n")
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", "not found\n")
        }
        var response = ByteBuffer(capacity: body.utf8.count + 160)
        response.writeString("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n")
        response.writeString(body)
        do {
            try await connection.write(response, deadline: deadline)
        } catch {
            logger.debug("could not answer a scrape", metadata: ["error": "\(error)"])
        }
    }
}

/// A JSON value, numbers kept apart from booleans (the exporter turns numbers into metrics and
/// skips booleans, as the Go exporter does).
public enum JSONValue: Decodable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var number: Double? { if case .number(let value) = self { value } else { nil } }
    public var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    public var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    public subscript(key: String) -> JSONValue? { object?[key] }
}

/// The exposition text, metric families grouped with one HELP and TYPE each.
struct NATSMetrics {
    private var families: [String: (help: String, type: String, samples: [String])] = [:]
    private var order: [String] = []

    /// The /varz fields prometheus-nats-exporter exports as counters; every other number is a gauge.
    static let varzCounters: Set<String> = ["in_msgs", "out_msgs", "in_bytes", "out_bytes", "total_connections", "slow_consumers"]

    mutating func add(_ name: String, help: String, type: String = "gauge", labels: [(String, String)], value: Double) {
        if families[name] == nil {
            families[name] = (help, type, [])
            order.append(name)
        }
        let labelText = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        families[name]?.samples.append(name + labelText + " " + Self.format(value))
    }

    /// Every top-level number of /varz as `gnatsd_varz_<field>{server_id}`.
    mutating func addVarz(_ varz: [String: JSONValue], serverID: String) {
        for key in varz.keys.sorted() {
            guard let value = varz[key]?.number else { continue }
            let name = "gnatsd_varz_" + Self.metricName(key)
            add(name, help: key, type: Self.varzCounters.contains(key) ? "counter" : "gauge", labels: [("server_id", serverID)], value: value)
        }
    }

    /// `gnatsd_healthz_status{server_id}`: 0 when /healthz says ok, 1 otherwise.
    mutating func addHealthz(_ health: [String: JSONValue], serverID: String) {
        add("gnatsd_healthz_status", help: "status", labels: [("server_id", serverID)], value: health["status"]?.string == "ok" ? 0 : 1)
    }

    /// The `jetstream_server_*`, `jetstream_stream_*` and `jetstream_consumer_*` families of
    /// `-jsz=all`, with the same labels.
    mutating func addJsz(_ jsz: [String: JSONValue], varz: [String: JSONValue], serverID: String) {
        let serverName = varz["server_name"]?.string ?? ""
        let meta = jsz["meta_cluster"]?.object
        let cluster = meta?["name"]?.string ?? ""
        let metaLeader = meta?["leader"]?.string ?? ""
        let isMetaLeader = meta == nil || metaLeader == serverName ? "true" : "false"
        let config = jsz["config"]?.object ?? [:]
        let serverLabels = [
            ("server_id", serverID), ("server_name", serverName), ("cluster", cluster), ("domain", config["domain"]?.string ?? ""),
            ("meta_leader", metaLeader), ("is_meta_leader", isMetaLeader),
        ]
        func number(_ value: JSONValue?) -> Double { value?.number ?? 0 }
        let disabled: Double = if case .bool(true) = jsz["disabled"] { 1 } else { 0 }
        add("jetstream_server_jetstream_disabled", help: "JetStream disabled or not", labels: serverLabels, value: disabled)
        add("jetstream_server_max_memory", help: "JetStream Max Memory", labels: serverLabels, value: number(config["max_memory"]))
        add("jetstream_server_max_storage", help: "JetStream Max Storage", labels: serverLabels, value: number(config["max_storage"]))
        add("jetstream_server_total_streams", help: "Total number of streams in JetStream", labels: serverLabels, value: number(jsz["streams"]))
        add("jetstream_server_total_consumers", help: "Total number of consumers in JetStream", labels: serverLabels, value: number(jsz["consumers"]))
        add("jetstream_server_total_messages", help: "Total number of stored messages in JetStream", labels: serverLabels, value: number(jsz["messages"]))
        add("jetstream_server_total_message_bytes", help: "Total number of bytes stored in JetStream", labels: serverLabels, value: number(jsz["bytes"]))
        for account in jsz["account_details"]?.array ?? [] {
            for stream in account["stream_detail"]?.array ?? [] {
                let name = stream["name"]?.string ?? ""
                let leader = stream["cluster"]?["leader"]?.string
                let streamLabels = serverLabels + [
                    ("account", account["name"]?.string ?? ""), ("account_id", account["id"]?.string ?? ""), ("stream_name", name),
                    ("stream_leader", leader ?? ""), ("is_stream_leader", leader == nil || leader == serverName ? "true" : "false"),
                ]
                let state = stream["state"]?.object ?? [:]
                add("jetstream_stream_total_messages", help: "Total number of messages from a stream", labels: streamLabels, value: number(state["messages"]))
                add("jetstream_stream_total_bytes", help: "Total stored bytes from a stream", labels: streamLabels, value: number(state["bytes"]))
                add("jetstream_stream_first_seq", help: "First sequence from a stream", labels: streamLabels, value: number(state["first_seq"]))
                add("jetstream_stream_last_seq", help: "Last sequence from a stream", labels: streamLabels, value: number(state["last_seq"]))
                add("jetstream_stream_consumer_count", help: "Total number of consumers from a stream", labels: streamLabels, value: number(state["consumer_count"]))
                for consumer in stream["consumer_detail"]?.array ?? [] {
                    let consumerLeader = consumer["cluster"]?["leader"]?.string
                    let labels = streamLabels + [
                        ("consumer_name", consumer["name"]?.string ?? ""), ("consumer_leader", consumerLeader ?? ""),
                        ("is_consumer_leader", consumerLeader == nil || consumerLeader == serverName ? "true" : "false"),
                        ("consumer_desc", consumer["config"]?["description"]?.string ?? ""), ("consumer_created", consumer["created"]?.string ?? ""),
                    ]
                    let delivered = consumer["delivered"]?.object ?? [:]
                    let ackFloor = consumer["ack_floor"]?.object ?? [:]
                    add("jetstream_consumer_delivered_consumer_seq", help: "Latest sequence number of a stream consumer", labels: labels, value: number(delivered["consumer_seq"]))
                    add("jetstream_consumer_delivered_stream_seq", help: "Latest sequence number of a stream", labels: labels, value: number(delivered["stream_seq"]))
                    add("jetstream_consumer_num_ack_pending", help: "Number of pending acks from a consumer", labels: labels, value: number(consumer["num_ack_pending"]))
                    add("jetstream_consumer_num_redelivered", help: "Number of redelivered messages from a consumer", labels: labels, value: number(consumer["num_redelivered"]))
                    add("jetstream_consumer_num_waiting", help: "Number of inflight fetch requests from a pull consumer", labels: labels, value: number(consumer["num_waiting"]))
                    add("jetstream_consumer_num_pending", help: "Number of pending messages from a consumer", labels: labels, value: number(consumer["num_pending"]))
                    add("jetstream_consumer_ack_floor_stream_seq", help: "Number of ack floor stream seq from a consumer", labels: labels, value: number(ackFloor["stream_seq"]))
                    add("jetstream_consumer_ack_floor_consumer_seq", help: "Number of ack floor consumer seq from a consumer", labels: labels, value: number(ackFloor["consumer_seq"]))
                }
            }
        }
    }

    var text: String {
        var out = ""
        for name in order {
            guard let family = families[name] else { continue }
            out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.type)\n"
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }

    /// A metric name from a JSON key: anything outside [a-zA-Z0-9_] becomes "_".
    static func metricName(_ key: String) -> String {
        String(key.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_": Character(scalar)
            default: "_"
            }
        })
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
