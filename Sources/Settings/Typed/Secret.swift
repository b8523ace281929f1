/// A secret setting (token, password, key). Printing it shows a fixed mask, never the value.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself; read it only where it is used.
    public let value: String

    /// Wraps a secret value.
    public init(_ value: String) {
        self.value = value
    }

    /// Whether the secret is empty.
    public var isEmpty: Bool { value.isEmpty }

    /// A mask that shows only whether a value is set.
    public var description: String { value.isEmpty ? "(empty)" : "********" }
    /// The same mask as `description`.
    public var debugDescription: String { description }
}
