import Foundation

/// `infra-up logs SERVICE [--follow]`: the end of a log file, then what is appended to it.
public enum LogFollower {
    public static func print(path: String, lines: Int, follow: Bool, output: @Sendable (String) -> Void) async throws {
        for line in ProcessSupervisor.tail(path, lines: max(0, lines)) { output(line) }
        guard follow, let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        var offset = try handle.seekToEnd()
        var pending = Data()
        while !Task.isCancelled {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? offset
            if size < offset {
                // Truncated or replaced: start again from its beginning.
                offset = 0
            }
            try handle.seek(toOffset: offset)
            let data = handle.readDataToEndOfFile()
            offset += UInt64(data.count)
            pending.append(data)
            while let newline = pending.firstIndex(of: 10) {
                output(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending.removeSubrange(pending.startIndex...newline)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}
