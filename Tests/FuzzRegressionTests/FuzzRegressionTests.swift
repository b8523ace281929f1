import Foundation
import FuzzTargets
import TestSupport
import Testing

/// Replays the regression cases of `Fixtures/fuzz/<target>/` through the fuzz targets' own
/// bodies: hostile inputs a server or a file could send (sizes past every limit, nesting past the
/// depth limit, lengths that overflow) and any input a fuzz run found. Each must end without a
/// crash, and the whole and the split feeds of a framing parser must agree. A case whose name
/// starts with `reject-` must end in a typed error; one that starts with `accept-` must not.
@Suite("Fuzz regression cases")
struct FuzzRegressionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let target: FuzzTarget
        let name: String
        let bytes: [UInt8]
        var testDescription: String { "\(target.rawValue)/\(name)" }
    }

    static let directory = GoldenStream.fixturesDirectory.appendingPathComponent("fuzz")

    static func cases() throws -> [Case] {
        try FuzzTarget.allCases.flatMap { target in
            let folder = directory.appendingPathComponent(target.rawValue)
            return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted().map { name in
                Case(target: target, name: name, bytes: Array(try Data(contentsOf: folder.appendingPathComponent(name))))
            }
        }
    }

    @Test func everyTargetHasCasesToReplay() throws {
        let cases = try Self.cases()
        for target in FuzzTarget.allCases {
            #expect(cases.contains { $0.target == target && $0.name.hasPrefix("reject-") }, "no reject- case for \(target.rawValue)")
            #expect(cases.contains { $0.target == target && $0.name.hasPrefix("accept-") }, "no accept- case for \(target.rawValue)")
        }
    }

    @Test(arguments: try cases())
    func replay(_ regression: Case) {
        let replay = regression.target.replay(regression.bytes)
        if let split = replay.split {
            #expect(split == replay.whole, "the whole input gave \(replay.whole), the split feed \(split)")
        }
        if regression.name.hasPrefix("reject-") {
            #expect(replay.whole.error != nil, "expected a typed error, got \(replay.whole)")
        } else if regression.name.hasPrefix("accept-") {
            #expect(replay.whole.error == nil && replay.whole.values > 0, "expected values and no error, got \(replay.whole)")
        }
    }
}
