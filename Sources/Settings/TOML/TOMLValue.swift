/// A TOML value: the typed tree a TOML 1.0 document parses into.
public enum TOMLValue: Sendable, Equatable {
    /// A string (all four TOML string forms).
    case string(String)
    /// A 64-bit signed integer (decimal, hexadecimal, octal or binary in the source).
    case integer(Int64)
    /// A double, including `inf` and `nan`.
    case float(Double)
    /// `true` or `false`.
    case boolean(Bool)
    /// A date-time with a UTC offset.
    case offsetDateTime(TOMLDateTime)
    /// A date-time without an offset.
    case localDateTime(TOMLDateTime)
    /// A calendar date.
    case localDate(TOMLDate)
    /// A time of day.
    case localTime(TOMLTime)
    /// An array; TOML 1.0 allows mixed element types.
    case array([TOMLValue])
    /// A table (standard, inline, or an element of an array of tables).
    case table(TOMLTable)

    /// The table, if this value is one.
    public var table: TOMLTable? {
        if case .table(let table) = self { return table }
        return nil
    }
}

/// A table with its keys in document order.
public struct TOMLTable: Sendable, Equatable {
    private var storage = OrderedValues<TOMLValue>()

    /// Creates an empty table.
    public init() {}

    /// A table from keys in order and their values (same count, keys unique).
    init(orderedKeys: [String], values: [TOMLValue]) {
        storage = OrderedValues(uniqueKeys: orderedKeys, values: values)
    }

    /// Keys in the order they were defined.
    public var keys: [String] { storage.keys }
    /// The number of keys.
    public var count: Int { storage.count }
    /// Whether the table has no keys.
    public var isEmpty: Bool { storage.count == 0 }

    /// The value for `key` (exact spelling), or nil.
    public subscript(key: String) -> TOMLValue? {
        get { storage[key] }
        set { storage[key] = newValue }
    }

    /// The key/value pairs in document order.
    public var entries: [(key: String, value: TOMLValue)] { storage.entries }

    /// Tables are equal when they hold the same keys with equal values, whatever the order.
    public static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool { lhs.storage.hasSameContents(as: rhs.storage) }
}

/// A calendar date.
public struct TOMLDate: Sendable, Hashable, CustomStringConvertible {
    /// Year, 0 to 9999.
    public var year: Int
    /// Month, 1 to 12.
    public var month: Int
    /// Day of the month, 1 to 31.
    public var day: Int

    /// Creates a date without validating it.
    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// `YYYY-MM-DD`.
    public var description: String { pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) }
}

/// A time of day with nanosecond precision.
public struct TOMLTime: Sendable, Hashable, CustomStringConvertible {
    /// Hour, 0 to 23.
    public var hour: Int
    /// Minute, 0 to 59.
    public var minute: Int
    /// Second, 0 to 60 (60 only for a leap second).
    public var second: Int
    /// Fraction of the second in nanoseconds (digits past the ninth are truncated).
    public var nanosecond: Int

    /// Creates a time without validating it.
    public init(hour: Int, minute: Int, second: Int, nanosecond: Int = 0) {
        self.hour = hour
        self.minute = minute
        self.second = second
        self.nanosecond = nanosecond
    }

    /// `HH:MM:SS` with the fraction when there is one.
    public var description: String {
        var text = pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2)
        if nanosecond > 0 {
            var fraction = pad(nanosecond, 9)
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text
    }
}

/// A date and time, with a UTC offset in minutes for an offset date-time.
public struct TOMLDateTime: Sendable, Hashable, CustomStringConvertible {
    /// The date part.
    public var date: TOMLDate
    /// The time part.
    public var time: TOMLTime
    /// Minutes east of UTC; nil for a local date-time.
    public var offsetMinutes: Int?

    /// Creates a date-time.
    public init(date: TOMLDate, time: TOMLTime, offsetMinutes: Int? = nil) {
        self.date = date
        self.time = time
        self.offsetMinutes = offsetMinutes
    }

    /// RFC 3339 form, `Z` for a zero offset.
    public var description: String {
        var text = "\(date)T\(time)"
        if let offsetMinutes {
            if offsetMinutes == 0 {
                text += "Z"
            } else {
                let magnitude = abs(offsetMinutes)
                text += (offsetMinutes < 0 ? "-" : "+") + pad(magnitude / 60, 2) + ":" + pad(magnitude % 60, 2)
            }
        }
        return text
    }
}

private func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// A document that is not valid TOML 1.0, with the line and column (both from 1) where it fails.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Line of the offending character.
    public var line: Int
    /// Column (in Unicode scalars) of the offending character.
    public var column: Int
    /// What is wrong.
    public var message: String

    /// `line L, column C: message`.
    public var description: String { "line \(line), column \(column): \(message)" }
}
