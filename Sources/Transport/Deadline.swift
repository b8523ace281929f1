import CTransport

/// A point in time on the monotonic clock, after which an operation fails with `.timedOut`.
public struct Deadline: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds on CLOCK_MONOTONIC.
    public let uptimeNanoseconds: UInt64

    /// Creates a deadline from a monotonic nanosecond count.
    public init(uptimeNanoseconds: UInt64) {
        self.uptimeNanoseconds = uptimeNanoseconds
    }

    /// The current instant.
    public static var now: Deadline { Deadline(uptimeNanoseconds: MonotonicClock.nanoseconds()) }

    /// A deadline that never passes.
    public static let never = Deadline(uptimeNanoseconds: .max)

    /// The deadline `duration` from now.
    public static func after(_ duration: Duration) -> Deadline {
        now.advanced(by: duration)
    }

    /// This deadline moved by `duration` (saturating).
    public func advanced(by duration: Duration) -> Deadline {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            let back = UInt64(clamping: -seconds) &* 1_000_000_000 &+ UInt64(clamping: -attoseconds / 1_000_000_000)
            return Deadline(uptimeNanoseconds: uptimeNanoseconds >= back ? uptimeNanoseconds - back : 0)
        }
        let (result, overflow) = uptimeNanoseconds.addingReportingOverflow(duration.saturatingNanoseconds)
        if overflow { return .never }
        return Deadline(uptimeNanoseconds: result)
    }

    /// Whether the deadline has passed.
    public var hasPassed: Bool { self != .never && MonotonicClock.nanoseconds() >= uptimeNanoseconds }

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.uptimeNanoseconds < rhs.uptimeNanoseconds }

    public var description: String {
        if self == .never { return "never" }
        let remaining = Int64(bitPattern: uptimeNanoseconds &- MonotonicClock.nanoseconds())
        return "in \(Double(remaining) / 1e6) ms"
    }
}

enum MonotonicClock {
    static func nanoseconds() -> UInt64 {
        ctransport_monotonic_nanoseconds()
    }
}

extension Duration {
    /// Whole nanoseconds: 0 for a negative duration, `UInt64.max` when they do not fit.
    public var saturatingNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (scaled, overflow1) = UInt64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = scaled.addingReportingOverflow(UInt64(clamping: attoseconds / 1_000_000_000))
        return overflow1 || overflow2 ? .max : total
    }
}
