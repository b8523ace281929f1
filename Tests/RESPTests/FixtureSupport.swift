import Foundation
import Transport

/// A golden stream from Fixtures/resp: what was sent, and the bytes received.
struct RESPFixture {
    let name: String
    var commands: [String] = []
    var received: [UInt8] = []

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/resp")

    static func load(_ name: String) throws -> RESPFixture {
        let text = try String(contentsOf: directory.appendingPathComponent(name + ".resp"), encoding: .utf8)
        var fixture = RESPFixture(name: name)
        for line in text.split(separator: "\n") {
            if line.hasPrefix("> ") {
                fixture.commands.append(String(line.dropFirst(2)))
            } else if line.hasPrefix("< ") {
                fixture.received += line.dropFirst(2).split(separator: " ").compactMap { UInt8($0, radix: 16) }
            }
        }
        return fixture
    }

    static var all: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".resp") }.map { String($0.dropLast(5)) }.sorted()
    }
}
