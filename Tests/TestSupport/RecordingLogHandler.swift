import Logging
import Synchronization

/// A log handler that keeps every record, so tests can check what a client logs (and that no
/// secret is among it).
public struct RecordingLogHandler: LogHandler {
    /// One logged record with its metadata flattened to text.
    public struct Record: Sendable {
        public let level: Logger.Level
        public let message: String
        public let metadata: [String: String]

        /// The message and every metadata value, for searching.
        public var text: String { ([message] + metadata.map { "\($0.key)=\($0.value)" }).joined(separator: " ") }
    }

    /// The records of every logger made from this store.
    public final class Store: Sendable {
        private let records = Mutex<[Record]>([])

        public init() {}

        /// Everything logged so far.
        public var all: [Record] { records.withLock { $0 } }

        func append(_ record: Record) { records.withLock { $0.append(record) } }

        /// A logger at `level` that records here.
        public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
            var logger = Logger(label: label) { _ in RecordingLogHandler(store: self) }
            logger.logLevel = level
            return logger
        }
    }

    let store: Store
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged: [String: String] = [:]
        for (key, value) in metadata { merged[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
        store.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
