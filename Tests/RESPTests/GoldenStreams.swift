import Foundation
import TestSupport

extension GoldenStream {
    /// The names (without extension) of the captured Redis conversations in Fixtures/resp/.
    static var respNames: [String] {
        ((try? all(in: "resp", fileExtension: "resp")) ?? []).map { String($0.name.dropLast(".resp".count)) }
    }

    /// One captured Redis conversation by name.
    static func resp(_ name: String) throws -> GoldenStream { try named(name + ".resp", in: "resp") }
}
