
/// A TOML 1.0 parser over UTF-8 bytes: a single pass of recursive descent that builds the table
/// tree while enforcing the rules on defining tables once, dotted keys and arrays of tables.
public enum TOML {
    /// Parses a document.
    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        try parse(bytes: Array(text.utf8))
    }

    /// Parses a document given as UTF-8 bytes (invalid UTF-8 is an error).
    public static func parse(bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(bytes: bytes)
        return try parser.parseDocument()
    }

    /// Parses a single value as it would appear on the right of `key = `, with nothing after it but
    /// whitespace or a comment. Used to type environment variables as Dynaconf does.
    public static func parseValue(_ text: String) throws(TOMLError) -> TOMLValue {
        var parser = TOMLParser(bytes: Array(text.utf8))
        return try parser.parseStandaloneValue()
    }
}

/// How a table came to exist; it decides which later definitions are allowed.
private enum TableOrigin {
    /// Created as a parent of a `[header]` path; may still be defined by its own header once.
    case implicit
    /// Defined by a `[header]` (or an `[[array]]` element).
    case header
    /// Created by a dotted key (`a.b = 1`).
    case dotted
}

private final class TableBuilder {
    enum Entry {
        case value(TOMLValue)
        case table(TableBuilder)
        case tableArray([TableBuilder])
    }

    var origin: TableOrigin
    var keys = KeyIndex()
    var items: [Entry] = []

    init(origin: TableOrigin) {
        self.origin = origin
    }

    func position(of key: String) -> Int? {
        keys.position(of: key)
    }

    subscript(key: String) -> Entry? {
        keys.position(of: key).map { items[$0] }
    }

    /// Adds a new key, or replaces the entry of an existing one.
    func set(_ key: String, _ entry: Entry) {
        if let existing = keys.position(of: key) {
            items[existing] = entry
        } else {
            _ = keys.append(key)
            items.append(entry)
        }
    }

    /// Appends a table to the array of tables at `position`, without copying the array.
    func appendToTableArray(at position: Int, _ element: TableBuilder) {
        guard case .tableArray(var elements) = items[position] else { return }
        items[position] = .value(.boolean(false))  // release the array so the append does not copy it
        elements.append(element)
        items[position] = .tableArray(elements)
    }

    func build() -> TOMLTable {
        let values = items.map { entry -> TOMLValue in
            switch entry {
            case .value(let value): value
            case .table(let child): .table(child.build())
            case .tableArray(let children): .array(children.map { .table($0.build()) })
            }
        }
        return TOMLTable(orderedKeys: keys.keys, values: values)
    }
}

private struct TOMLParser {
    let bytes: [UInt8]
    var position = 0
    let root = TableBuilder(origin: .header)
    var current: TableBuilder
    let maximumDepth = 128

    init(bytes: [UInt8]) {
        var bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        self.bytes = bytes
        current = root
    }

    // MARK: - Errors and positions

    func error(_ message: String, at offset: Int? = nil) -> TOMLError {
        let offset = Swift.min(offset ?? position, bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<offset where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        let column = String(decoding: bytes[lineStart..<offset], as: UTF8.self).unicodeScalars.count + 1
        return TOMLError(line: line, column: column, message: message)
    }

    func describe(_ byte: UInt8) -> String {
        switch byte {
        case 0x20...0x7E: "'\(Character(UnicodeScalar(byte)))'"
        default: "byte 0x" + String(byte, radix: 16, uppercase: true)
        }
    }

    var atEnd: Bool { position >= bytes.count }
    var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

    func peek(_ offset: Int) -> UInt8? {
        position + offset < bytes.count ? bytes[position + offset] : nil
    }

    // MARK: - Document

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        try validateUTF8()
        while true {
            skipWhitespace()
            guard let byte = peek else { break }
            switch byte {
            case UInt8(ascii: "#"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                try finishLine()
            case UInt8(ascii: "["):
                try parseHeader()
                try finishLine()
            default:
                try parseKeyValue(into: current, depth: 0)
                try finishLine()
            }
        }
        return root.build()
    }

    mutating func parseStandaloneValue() throws(TOMLError) -> TOMLValue {
        try validateUTF8()
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if peek == UInt8(ascii: "#") { try skipComment() }
        guard atEnd else { throw error("unexpected \(describe(bytes[position])) after the value") }
        return value
    }

    func validateUTF8() throws(TOMLError) {
        let isASCII = bytes.withUnsafeBufferPointer { buffer -> Bool in
            var combined: UInt8 = 0
            for byte in buffer { combined |= byte }
            return combined < 0x80
        }
        if isASCII { return }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
            case .emptyInput:
                return
            case .error:
                throw error("invalid UTF-8", at: offset)
            }
        }
    }

    mutating func skipWhitespace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 { position += 1 }
    }

    /// After a statement: optional whitespace and comment, then a newline or the end.
    mutating func finishLine() throws(TOMLError) {
        skipWhitespace()
        if peek == UInt8(ascii: "#") { try skipComment() }
        guard let byte = peek else { return }
        if byte == UInt8(ascii: "\n") {
            position += 1
        } else if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
            position += 2
        } else if byte == UInt8(ascii: "\r") {
            throw error("carriage return not followed by a line feed")
        } else {
            throw error("expected the end of the line, found \(describe(byte))")
        }
    }

    mutating func skipComment() throws(TOMLError) {
        position += 1
        while let byte = peek, byte != UInt8(ascii: "\n") {
            if byte == UInt8(ascii: "\r") {
                if peek(1) == UInt8(ascii: "\n") { return }
                throw error("carriage return not followed by a line feed in a comment")
            }
            if isControl(byte) { throw error("control character \(describe(byte)) in a comment") }
            position += 1
        }
    }

    func isControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != 0x09) || byte == 0x7F
    }

    // MARK: - Tables

    mutating func parseHeader() throws(TOMLError) {
        let start = position
        let isArray = peek(1) == UInt8(ascii: "[")
        position += isArray ? 2 : 1
        let path = try parseKey()
        guard peek == UInt8(ascii: "]") else { throw error("expected ']' to close the table header") }
        position += 1
        if isArray {
            guard peek == UInt8(ascii: "]") else { throw error("expected ']]' to close the array-of-tables header") }
            position += 1
        }
        var table = root
        for (index, key) in path.dropLast().enumerated() {
            table = try descendForHeader(table, key, path: path.prefix(index + 1), start: start)
        }
        let last = path[path.count - 1]
        let name = path.joined(separator: ".")
        if isArray {
            let element = TableBuilder(origin: .header)
            switch table[last] {
            case nil:
                table.set(last, .tableArray([element]))
            case .tableArray?:
                if let position = table.position(of: last) { table.appendToTableArray(at: position, element) }
            case .table?:
                throw error("[[\(name)]] redefines the table [\(name)] as an array of tables", at: start)
            case .value?:
                throw error("[[\(name)]] redefines the value \(name)", at: start)
            }
            current = element
        } else {
            switch table[last] {
            case nil:
                let child = TableBuilder(origin: .header)
                table.set(last, .table(child))
                current = child
            case .table(let child)?:
                switch child.origin {
                case .implicit:
                    child.origin = .header
                    current = child
                case .header:
                    throw error("table [\(name)] is defined twice", at: start)
                case .dotted:
                    throw error("table [\(name)] was already defined by dotted keys", at: start)
                }
            case .tableArray?:
                throw error("[\(name)] redefines an array of tables", at: start)
            case .value?:
                throw error("[\(name)] redefines the value \(name)", at: start)
            }
        }
    }

    func descendForHeader(_ table: TableBuilder, _ key: String, path: ArraySlice<String>, start: Int) throws(TOMLError) -> TableBuilder {
        switch table[key] {
        case nil:
            let child = TableBuilder(origin: .implicit)
            table.set(key, .table(child))
            return child
        case .table(let child)?:
            return child
        case .tableArray(let elements)?:
            return elements[elements.count - 1]
        case .value?:
            throw error("\(path.joined(separator: ".")) is a value, not a table", at: start)
        }
    }

    // MARK: - Keys and values

    /// `key = value` into `table` (the current table, or an inline table being built).
    mutating func parseKeyValue(into table: TableBuilder, depth: Int) throws(TOMLError) {
        let start = position
        let path = try parseKey()
        guard peek == UInt8(ascii: "=") else {
            if let byte = peek { throw error("expected '=' after the key, found \(describe(byte))") }
            throw error("expected '=' after the key")
        }
        position += 1
        skipWhitespace()
        let value = try parseValue(depth: depth)
        var target = table
        for (index, key) in path.dropLast().enumerated() {
            switch target[key] {
            case nil:
                let child = TableBuilder(origin: .dotted)
                target.set(key, .table(child))
                target = child
            case .table(let child)?:
                if child.origin == .header {
                    throw error("dotted key \(path.joined(separator: ".")) adds to the table [\(path.prefix(index + 1).joined(separator: "."))] defined by a header", at: start)
                }
                child.origin = .dotted
                target = child
            case .tableArray?, .value?:
                throw error("\(path.prefix(index + 1).joined(separator: ".")) is already defined as a value", at: start)
            }
        }
        let last = path[path.count - 1]
        guard target[last] == nil else {
            throw error("key \(path.joined(separator: ".")) is defined twice", at: start)
        }
        target.set(last, .value(value))
    }

    /// A dotted key; ends at the first character that cannot continue it (whitespace skipped).
    mutating func parseKey() throws(TOMLError) -> [String] {
        var path: [String] = []
        while true {
            skipWhitespace()
            path.append(try parseSimpleKey())
            skipWhitespace()
            guard peek == UInt8(ascii: ".") else { return path }
            position += 1
        }
    }

    mutating func parseSimpleKey() throws(TOMLError) -> String {
        guard let byte = peek else { throw error("expected a key") }
        if byte == UInt8(ascii: "\"") {
            if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") {
                throw error("a multi-line string cannot be a key")
            }
            return try parseBasicString()
        }
        if byte == UInt8(ascii: "'") {
            if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") {
                throw error("a multi-line string cannot be a key")
            }
            return try parseLiteralString()
        }
        let start = position
        while let next = peek, isBareKeyByte(next) { position += 1 }
        guard position > start else { throw error("expected a key, found \(describe(byte))") }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    mutating func parseValue(depth: Int) throws(TOMLError) -> TOMLValue {
        guard depth < maximumDepth else { throw error("arrays and inline tables nest deeper than \(maximumDepth) levels") }
        guard let byte = peek else { throw error("expected a value") }
        switch byte {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") { return .string(try parseMultilineString(quote: UInt8(ascii: "\""), escapes: true)) }
            return .string(try parseBasicString())
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") { return .string(try parseMultilineString(quote: UInt8(ascii: "'"), escapes: false)) }
            return .string(try parseLiteralString())
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .boolean(true)
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .boolean(false)
        case UInt8(ascii: "["):
            return try parseArray(depth: depth)
        case UInt8(ascii: "{"):
            return try parseInlineTable(depth: depth)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            if let value = try parseDateOrTime() { return value }
            return try parseNumber()
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "i"), UInt8(ascii: "n"):
            return try parseNumber()
        default:
            throw error("expected a value, found \(describe(byte))")
        }
    }

    mutating func expectWord(_ word: String) throws(TOMLError) {
        let start = position
        for expected in word.utf8 {
            guard peek == expected else { throw error("invalid value; did you mean \(word)?", at: start) }
            position += 1
        }
        if let next = peek, isBareKeyByte(next) || next == UInt8(ascii: ".") {
            throw error("invalid value after \(word)", at: start)
        }
    }

    // MARK: - Arrays and inline tables

    mutating func skipArrayFiller() throws(TOMLError) {
        while let byte = peek {
            switch byte {
            case 0x20, 0x09, UInt8(ascii: "\n"):
                position += 1
            case UInt8(ascii: "\r"):
                guard peek(1) == UInt8(ascii: "\n") else { throw error("carriage return not followed by a line feed") }
                position += 2
            case UInt8(ascii: "#"):
                try skipComment()
            default:
                return
            }
        }
    }

    mutating func parseArray(depth: Int) throws(TOMLError) -> TOMLValue {
        let start = position
        position += 1
        var elements: [TOMLValue] = []
        while true {
            try skipArrayFiller()
            guard let byte = peek else { throw error("unterminated array", at: start) }
            if byte == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            elements.append(try parseValue(depth: depth + 1))
            try skipArrayFiller()
            guard let separator = peek else { throw error("unterminated array", at: start) }
            if separator == UInt8(ascii: ",") {
                position += 1
            } else if separator != UInt8(ascii: "]") {
                throw error("expected ',' or ']' in the array, found \(describe(separator))")
            }
        }
    }

    mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        let start = position
        position += 1
        let table = TableBuilder(origin: .dotted)
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            position += 1
            return .table(table.build())
        }
        while true {
            skipWhitespace()
            guard let byte = peek else { throw error("unterminated inline table", at: start) }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                throw error("newline inside an inline table")
            }
            if byte == UInt8(ascii: "}") { throw error("trailing comma in an inline table") }
            try parseKeyValue(into: table, depth: depth + 1)
            skipWhitespace()
            guard let separator = peek else { throw error("unterminated inline table", at: start) }
            if separator == UInt8(ascii: "}") {
                position += 1
                return .table(table.build())
            }
            guard separator == UInt8(ascii: ",") else {
                throw error("expected ',' or '}' in the inline table, found \(describe(separator))")
            }
            position += 1
        }
    }

    // MARK: - Strings

    mutating func parseBasicString() throws(TOMLError) -> String {
        let start = position
        position += 1
        var output: [UInt8] = []
        while true {
            guard let byte = peek else { throw error("unterminated string", at: start) }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: output, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &output)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                throw error("newline in a single-line string")
            default:
                if isControl(byte) { throw error("control character \(describe(byte)) in a string") }
                output.append(byte)
                position += 1
            }
        }
    }

    /// A `"""` (with escapes) or `'''` (literal) string: a newline right after the opening is
    /// dropped, up to two quotes may end the content, and raw CR must be part of CRLF.
    mutating func parseMultilineString(quote: UInt8, escapes: Bool) throws(TOMLError) -> String {
        let start = position
        let kind = escapes ? "multi-line string" : "multi-line literal string"
        position += 3
        skipFirstNewline()
        var output: [UInt8] = []
        while true {
            guard let byte = peek else { throw error("unterminated \(kind)", at: start) }
            switch byte {
            case quote:
                var quotes = 0
                while peek(quotes) == quote { quotes += 1 }
                if quotes >= 3 {
                    guard quotes <= 5 else { throw error("too many quotes at the end of a \(kind)") }
                    output.append(contentsOf: repeatElement(quote, count: quotes - 3))
                    position += quotes
                    return String(decoding: output, as: UTF8.self)
                }
                output.append(contentsOf: repeatElement(quote, count: quotes))
                position += quotes
            case UInt8(ascii: "\\") where escapes:
                if try skipLineEndingBackslash() { continue }
                try parseEscape(into: &output)
            case UInt8(ascii: "\r"):
                guard peek(1) == UInt8(ascii: "\n") else { throw error("carriage return not followed by a line feed") }
                output.append(contentsOf: [0x0D, 0x0A])
                position += 2
            case UInt8(ascii: "\n"):
                output.append(byte)
                position += 1
            default:
                if isControl(byte) { throw error("control character \(describe(byte)) in a string") }
                output.append(byte)
                position += 1
            }
        }
    }

    /// At a backslash: if only whitespace follows it up to the end of the line, skips it, the
    /// newline and all whitespace and newlines after it, and returns true.
    mutating func skipLineEndingBackslash() throws(TOMLError) -> Bool {
        var cursor = position + 1
        while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
        guard cursor < bytes.count else { return false }
        let isNewline = bytes[cursor] == UInt8(ascii: "\n")
            || (bytes[cursor] == UInt8(ascii: "\r") && cursor + 1 < bytes.count && bytes[cursor + 1] == UInt8(ascii: "\n"))
        guard isNewline else { return false }
        position = cursor
        while let byte = peek {
            if byte == 0x20 || byte == 0x09 || byte == UInt8(ascii: "\n") {
                position += 1
            } else if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
                position += 2
            } else {
                break
            }
        }
        return true
    }

    mutating func skipFirstNewline() {
        if peek == UInt8(ascii: "\n") {
            position += 1
        } else if peek == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") {
            position += 2
        }
    }

    mutating func parseEscape(into output: inout [UInt8]) throws(TOMLError) {
        let start = position
        position += 1
        guard let code = peek else { throw error("unterminated escape sequence", at: start) }
        position += 1
        switch code {
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "\""): output.append(0x22)
        case UInt8(ascii: "\\"): output.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let digits = code == UInt8(ascii: "u") ? 4 : 8
            var value: UInt32 = 0
            for _ in 0..<digits {
                guard let digit = peek.flatMap(Self.hexDigit) else { throw error("\\\(Character(UnicodeScalar(code))) needs \(digits) hex digits", at: start) }
                value = value << 4 | UInt32(digit)
                position += 1
            }
            guard let scalar = Unicode.Scalar(value) else {
                throw error("\\\(Character(UnicodeScalar(code))) escape is not a Unicode scalar value", at: start)
            }
            output.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            throw error("invalid escape sequence \\\(Character(UnicodeScalar(code)))", at: start)
        }
    }

    mutating func parseLiteralString() throws(TOMLError) -> String {
        let start = position
        position += 1
        let contentStart = position
        while true {
            guard let byte = peek else { throw error("unterminated literal string", at: start) }
            if byte == UInt8(ascii: "'") {
                let text = String(decoding: bytes[contentStart..<position], as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { throw error("newline in a single-line string") }
            if isControl(byte) { throw error("control character \(describe(byte)) in a string") }
            position += 1
        }
    }

    // MARK: - Numbers

    mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let start = position
        while let byte = peek, isNumberByte(byte) { position += 1 }
        if let integer = plainDecimalInteger(start..<position) { return .integer(integer) }
        let token = String(decoding: bytes[start..<position], as: UTF8.self)
        switch token {
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if let value = try parsePrefixedInteger(token, at: start) { return .integer(value) }
        return try parseDecimal(token, at: start)
    }

    /// `[+-]?(0|[1-9](_?[0-9])*)` straight from the bytes; nil for anything else (or overflow),
    /// which then goes through the general path and its error messages.
    func plainDecimalInteger(_ range: Range<Int>) -> Int64? {
        var index = range.lowerBound
        var negative = false
        if index < range.upperBound, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < range.upperBound else { return nil }
        if bytes[index] == UInt8(ascii: "0") && range.upperBound - index > 1 { return nil }
        var value: Int64 = 0
        var previousWasDigit = false
        while index < range.upperBound {
            let byte = bytes[index]
            if byte == UInt8(ascii: "_") {
                guard previousWasDigit, index + 1 < range.upperBound else { return nil }
                previousWasDigit = false
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                let digit = Int64(byte - UInt8(ascii: "0"))
                let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
                if overflow1 || overflow2 { return nil }
                value = next
                previousWasDigit = true
            } else {
                return nil
            }
            index += 1
        }
        return previousWasDigit ? value : nil
    }

    func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "_"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default:
            false
        }
    }

    /// Digits with single underscores between them; nil when the shape is wrong.
    func stripUnderscores(_ digits: Substring, allowed: (Character) -> Bool) -> String? {
        guard let first = digits.first, let last = digits.last, first != "_", last != "_" else { return nil }
        var result = ""
        var previousUnderscore = false
        for character in digits {
            if character == "_" {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard allowed(character) else { return nil }
            previousUnderscore = false
            result.append(character)
        }
        return result
    }

    func parsePrefixedInteger(_ token: String, at start: Int) throws(TOMLError) -> Int64? {
        let radix: Int
        if token.hasPrefix("0x") {
            radix = 16
        } else if token.hasPrefix("0o") {
            radix = 8
        } else if token.hasPrefix("0b") {
            radix = 2
        } else {
            return nil
        }
        let body = token.dropFirst(2)
        guard let digits = stripUnderscores(body, allowed: { ($0.hexDigitValue ?? radix) < radix }) else {
            throw error("invalid \(radix == 16 ? "hexadecimal" : radix == 8 ? "octal" : "binary") integer \(token)", at: start)
        }
        guard let value = Int64(digits, radix: radix) else { throw error("integer \(token) does not fit in 64 bits", at: start) }
        return value
    }

    func parseDecimal(_ token: String, at start: Int) throws(TOMLError) -> TOMLValue {
        var rest = Substring(token)
        var sign = ""
        if let first = rest.first, first == "+" || first == "-" {
            sign = first == "-" ? "-" : ""
            rest = rest.dropFirst()
        }
        let isDigit: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        // Split into integer part, fraction and exponent.
        let exponentIndex = rest.firstIndex { $0 == "e" || $0 == "E" }
        let mantissa = exponentIndex.map { rest[..<$0] } ?? rest
        let exponent = exponentIndex.map { rest[rest.index(after: $0)...] }
        let dotIndex = mantissa.firstIndex(of: ".")
        let integerPart = dotIndex.map { mantissa[..<$0] } ?? mantissa
        let fraction = dotIndex.map { mantissa[mantissa.index(after: $0)...] }

        guard let integerDigits = stripUnderscores(integerPart, allowed: isDigit) else {
            throw error("invalid number \(token)", at: start)
        }
        if integerDigits.count > 1 && integerDigits.hasPrefix("0") {
            throw error("leading zeros are not allowed in \(token)", at: start)
        }
        if fraction == nil && exponent == nil {
            guard let value = Int64(sign + integerDigits) else { throw error("integer \(token) does not fit in 64 bits", at: start) }
            return .integer(value)
        }
        var literal = sign + integerDigits
        if let fraction {
            guard let digits = stripUnderscores(fraction, allowed: isDigit) else { throw error("invalid fraction in \(token)", at: start) }
            literal += "." + digits
        }
        if var exponent {
            var exponentSign = ""
            if let first = exponent.first, first == "+" || first == "-" {
                exponentSign = String(first)
                exponent = exponent.dropFirst()
            }
            guard let digits = stripUnderscores(exponent, allowed: isDigit) else { throw error("invalid exponent in \(token)", at: start) }
            literal += "e" + exponentSign + digits
        }
        guard let value = Double(literal) else { throw error("invalid float \(token)", at: start) }
        return .float(value)
    }

    // MARK: - Dates and times

    /// Parses a date, date-time or time when the bytes at the cursor have that shape; nil otherwise.
    mutating func parseDateOrTime() throws(TOMLError) -> TOMLValue? {
        let start = position
        if digitsAhead(4) == 4 && peek(4) == UInt8(ascii: "-") {
            let date = try parseDate()
            let separator = peek
            let timeFollows: Bool
            if separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") {
                timeFollows = true
            } else if separator == 0x20, digitsAhead(2, from: 1) == 2, peek(3) == UInt8(ascii: ":") {
                timeFollows = true
            } else {
                timeFollows = false
            }
            guard timeFollows else {
                if let next = peek, isNumberByte(next) || next == UInt8(ascii: ":") {
                    throw error("invalid date-time", at: start)
                }
                return .localDate(date)
            }
            position += 1
            let time = try parseTime()
            if let offset = try parseOffset() {
                return .offsetDateTime(TOMLDateTime(date: date, time: time, offsetMinutes: offset))
            }
            if let next = peek, isNumberByte(next) || next == UInt8(ascii: ":") { throw error("invalid date-time", at: start) }
            return .localDateTime(TOMLDateTime(date: date, time: time))
        }
        if digitsAhead(2) == 2 && peek(2) == UInt8(ascii: ":") {
            let time = try parseTime()
            if let next = peek, isNumberByte(next) || next == UInt8(ascii: ":") { throw error("invalid time", at: start) }
            return .localTime(time)
        }
        return nil
    }

    func digitsAhead(_ count: Int, from offset: Int = 0) -> Int {
        var found = 0
        while found < count, let byte = peek(offset + found), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { found += 1 }
        return found
    }

    mutating func readDigits(_ count: Int, what: String) throws(TOMLError) -> Int {
        guard digitsAhead(count) == count else { throw error("\(what) needs \(count) digits") }
        var value = 0
        for _ in 0..<count {
            value = value * 10 + Int(bytes[position] - UInt8(ascii: "0"))
            position += 1
        }
        return value
    }

    mutating func expectByte(_ byte: UInt8, _ what: String) throws(TOMLError) {
        guard peek == byte else { throw error("expected \(what)") }
        position += 1
    }

    mutating func parseDate() throws(TOMLError) -> TOMLDate {
        let start = position
        let year = try readDigits(4, what: "the year")
        try expectByte(UInt8(ascii: "-"), "'-' after the year")
        let month = try readDigits(2, what: "the month")
        try expectByte(UInt8(ascii: "-"), "'-' after the month")
        let day = try readDigits(2, what: "the day")
        guard (1...12).contains(month) else { throw error("month \(month) is out of range", at: start) }
        let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, isLeap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { throw error("day \(day) is out of range for \(year)-\(month)", at: start) }
        return TOMLDate(year: year, month: month, day: day)
    }

    mutating func parseTime() throws(TOMLError) -> TOMLTime {
        let start = position
        let hour = try readDigits(2, what: "the hour")
        try expectByte(UInt8(ascii: ":"), "':' after the hour")
        let minute = try readDigits(2, what: "the minute")
        try expectByte(UInt8(ascii: ":"), "':' and seconds after the minute")
        let second = try readDigits(2, what: "the second")
        var nanosecond = 0
        if peek == UInt8(ascii: ".") {
            position += 1
            let count = digitsAhead(Int.max)
            guard count > 0 else { throw error("expected digits after the decimal point of the seconds") }
            for index in 0..<count {
                if index < 9 { nanosecond = nanosecond * 10 + Int(bytes[position] - UInt8(ascii: "0")) }
                position += 1
            }
            for _ in count..<Swift.max(count, 9) { nanosecond *= 10 }
        }
        guard hour < 24, minute < 60, second <= 60 else {
            throw error("time \(hour):\(minute):\(second) is out of range", at: start)
        }
        return TOMLTime(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
    }

    mutating func parseOffset() throws(TOMLError) -> Int? {
        guard let byte = peek else { return nil }
        if byte == UInt8(ascii: "Z") || byte == UInt8(ascii: "z") {
            position += 1
            return 0
        }
        guard byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") else { return nil }
        let start = position
        position += 1
        let hours = try readDigits(2, what: "the offset hours")
        try expectByte(UInt8(ascii: ":"), "':' in the offset")
        let minutes = try readDigits(2, what: "the offset minutes")
        guard hours < 24, minutes < 60 else { throw error("offset is out of range", at: start) }
        return (byte == UInt8(ascii: "-") ? -1 : 1) * (hours * 60 + minutes)
    }
}

extension TOMLParser {
    /// The value of a hex digit byte (either case), or nil.
    static func hexDigit(_ byte: UInt8) -> UInt8? {
        let lowered = byte | 0x20
        if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") { return byte &- UInt8(ascii: "0") }
        if lowered >= UInt8(ascii: "a") && lowered <= UInt8(ascii: "f") { return lowered &- UInt8(ascii: "a") &+ 10 }
        return nil
    }
}
