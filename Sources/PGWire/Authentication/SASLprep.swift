import Foundation

/// SASLprep (RFC 4013), the stringprep profile SCRAM applies to passwords, as PostgreSQL applies it.
///
/// PostgreSQL treats a password that SASLprep rejects (prohibited or unassigned characters, a
/// bidirectional rule broken) as raw bytes, both when it stores the verifier and when libpq
/// authenticates; ``prepare(_:)`` returns nil in those cases so the caller can do the same.
enum SASLprep {
    /// The prepared string, or nil when the profile rejects the input.
    static func prepare(_ input: String) -> String? {
        // Like the server: ASCII passwords are used as they are, control characters included.
        if input.utf8.allSatisfy({ $0 < 0x80 }) { return input }

        // 1. Map: non-ASCII spaces to SPACE, "commonly mapped to nothing" characters removed.
        var mapped = String.UnicodeScalarView()
        for scalar in input.unicodeScalars {
            if contains(SASLprepTables.mappedToNothing, scalar) { continue }
            mapped.append(contains(SASLprepTables.nonASCIISpace, scalar) ? " " : scalar)
        }
        // 2. Normalize: NFKC.
        let normalized = String(mapped).precomposedStringWithCompatibilityMapping

        // 3. Prohibit; unassigned code points are refused too (stored strings).
        var hasRandAL = false
        var hasL = false
        for scalar in normalized.unicodeScalars {
            if contains(SASLprepTables.prohibited, scalar) || contains(SASLprepTables.unassigned, scalar) { return nil }
            if contains(SASLprepTables.randALCat, scalar) { hasRandAL = true }
            if contains(SASLprepTables.lCat, scalar) { hasL = true }
        }
        // 4. Bidirectional text (RFC 3454 §6): R/AL excludes L, and must start and end the string.
        if hasRandAL {
            guard !hasL, let first = normalized.unicodeScalars.first, let last = normalized.unicodeScalars.last,
                contains(SASLprepTables.randALCat, first), contains(SASLprepTables.randALCat, last)
            else { return nil }
        }
        return normalized
    }

    /// Binary search of sorted, disjoint ranges.
    static func contains(_ table: [ClosedRange<UInt32>], _ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        var low = 0
        var high = table.count
        while low < high {
            let middle = (low + high) / 2
            if table[middle].upperBound < value {
                low = middle + 1
            } else if table[middle].lowerBound > value {
                high = middle
            } else {
                return true
            }
        }
        return false
    }
}
