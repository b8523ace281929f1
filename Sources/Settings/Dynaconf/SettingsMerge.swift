/// The settings store and Dynaconf's assignment rules: replace by default; merge when the file,
/// the section, the table (`dynaconf_merge`), the list (`"dynaconf_merge"` first) or the value
/// (`@merge`) asks; `__` and dots nest into existing tables, matching keys case-insensitively.
struct SettingsState {
    var store = SettingsTable()
    /// Where each value came from, by upper-cased dotted path ("DATABASE.HOST").
    var sources: [String: String] = [:]

    /// Records `origin` for `path`, forgetting what was recorded below it when it was replaced.
    mutating func record(_ path: [String], origin: String, replacing: Bool) {
        let key = path.map { $0.uppercased() }.joined(separator: ".")
        if replacing {
            for existing in sources.keys where existing.hasPrefix(key + ".") { sources[existing] = nil }
        }
        sources[key] = origin
    }

    mutating func loadFile(_ document: TOMLTable, sections: [String], path: String) throws(SettingsError) {
        var byLowercase = SettingsTable()
        for (key, value) in document.entries { byLowercase[key.lowercased()] = SettingValue(value) }
        let fileMerge = byLowercase["dynaconf_merge"].map(Self.isTruthy)
        for section in sections {
            guard let data = byLowercase[section] else { continue }
            guard case .table(let table) = data else {
                throw SettingsError(message: "\(path): [\(section)] must be a table")
            }
            if table.keys.isEmpty { continue }
            var merge = fileMerge
            var items = SettingsTable()
            for (key, value) in table.entries { items[Self.upperfy(key)] = value }
            if let sectionMerge = items["DYNACONF_MERGE"] {
                merge = Self.isTruthy(sectionMerge)
                items["DYNACONF_MERGE"] = nil
            }
            for (key, value) in items.entries {
                let origin = "\(path) [\(section)]"
                try set(key, try Self.convertFileValue(value, origin: "\(origin) \(key)"), merge: merge, origin: origin)
            }
        }
    }

    /// `@token` strings in files are converted too; meta-values only where Dynaconf honours them
    /// (the value of a key, not inside a table or list).
    static func convertFileValue(_ value: SettingValue, origin: String) throws(SettingsError) -> ParsedValue {
        if case .string(let string) = value, let converted = try Converter.apply(string, origin: origin) { return converted }
        return .value(try convertNested(value, origin: origin))
    }

    static func convertNested(_ value: SettingValue, origin: String) throws(SettingsError) -> SettingValue {
        switch value {
        case .string(let string):
            switch try Converter.apply(string, origin: origin) {
            case nil: return value
            case .value(let converted)?: return converted
            case .delete?, .merge?:
                throw SettingsError(message: "\(origin): @del and @merge are supported only as the value of a key, not inside a table or list")
            }
        case .array(let elements):
            var converted: [SettingValue] = []
            for element in elements { converted.append(try convertNested(element, origin: origin)) }
            return .array(converted)
        case .table(let table):
            var converted = SettingsTable()
            for (key, child) in table.entries { converted[key] = try convertNested(child, origin: origin + "." + key) }
            return .table(converted)
        default:
            return value
        }
    }

    static func isTruthy(_ value: SettingValue) -> Bool {
        switch value {
        case .boolean(let flag): flag
        case .integer(let number): number != 0
        case .float(let number): number != 0
        case .string(let text): !text.isEmpty
        case .array(let elements): !elements.isEmpty
        case .table(let table): !table.keys.isEmpty
        case .null: false
        case .dateTime, .unresolved: true
        }
    }

    /// Upper-cases a key up to its first `__` (the rest keeps its spelling).
    static func upperfy(_ key: String) -> String {
        guard let split = key.doubleUnderscoreOffset else { return key.uppercased() }
        let utf8 = Array(key.utf8)
        return String(decoding: utf8[..<split], as: UTF8.self).uppercased() + String(decoding: utf8[split...], as: UTF8.self)
    }

    mutating func set(_ rawKey: String, _ parsed: ParsedValue, merge: Bool?, origin: String) throws(SettingsError) {
        var key = rawKey
        if key.doubleUnderscoreOffset != nil { key = key.replacingDoubleUnderscores() }
        if key.contains(".") {
            let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            dottedSet(path, parsed)
            record(path, origin: origin, replacing: true)
            return
        }
        key = Self.upperfy(key.trimmingSpaces())
        let existing = store[key]
        var value: SettingValue
        switch parsed {
        case .delete:
            store[key] = nil
            record([key], origin: origin, replacing: true)
            sources[key] = nil
            return
        case .merge(let new):
            value = existing.map { Self.objectMerge(old: $0, new: new) } ?? new
        case .value(let new):
            value = new
        }
        var merged = false
        if case .merge = parsed { merged = existing != nil }
        if let existing, existing != value {
            let replaced = value
            value = merge == true ? Self.objectMerge(old: existing, new: value) : Self.mergeBeforeSet(existing: existing, value: value)
            if merge == true || value != Self.strippingMergeMarkers(replaced) { merged = true }
        }
        store[key] = value
        record([key], origin: origin, replacing: !merged)
    }

    /// `A.b.c = v` (from `A__b__c`): merges along the path, replaces (or deletes, or merges) the leaf.
    mutating func dottedSet(_ path: [String], _ parsed: ParsedValue) {
        let topKey = Self.upperfy(path[0].trimmingSpaces())
        let existing = store.value(forKeyIgnoringCase: path[0])
        guard let merged = Self.assign(existing, path: path.dropFirst(), parsed) else {
            return
        }
        let final: SettingValue
        if let current = store[topKey], current != merged {
            final = Self.mergeBeforeSet(existing: current, value: merged)
        } else {
            final = merged
        }
        store[topKey] = final
    }

    /// The value at this level after assigning `parsed` at `path` below it; nil when nothing remains.
    static func assign(_ current: SettingValue?, path: ArraySlice<String>, _ parsed: ParsedValue) -> SettingValue? {
        guard let key = path.first else {
            switch parsed {
            case .value(let value):
                return leafMerge(current, value)
            case .merge(let value):
                return current.map { objectMerge(old: $0, new: value) } ?? value
            case .delete:
                return nil
            }
        }
        var table = current?.table ?? SettingsTable()
        let spelled = table.existingKey(matching: key) ?? key
        let child = assign(table[spelled], path: path.dropFirst(), parsed)
        table[spelled] = child
        return .table(table)
    }

    /// A plain value replaces the leaf, unless it carries its own merge marker.
    static func leafMerge(_ current: SettingValue?, _ value: SettingValue) -> SettingValue {
        guard let current else { return value }
        switch value {
        case .table(let table) where table["dynaconf_merge"].map(isTruthy) == true:
            var stripped = table
            stripped["dynaconf_merge"] = nil
            return objectMerge(old: current, new: .table(stripped))
        case .array(let elements) where elements.contains(.string("dynaconf_merge")) || elements.contains(.string("dynaconf_merge_unique")):
            return mergeBeforeSet(existing: current, value: value)
        default:
            return value
        }
    }

    /// The value as stored when no merge happens (markers removed), to tell a merge from a replace.
    static func strippingMergeMarkers(_ value: SettingValue) -> SettingValue {
        switch value {
        case .table(var table):
            table["dynaconf_merge"] = nil
            table["dynaconf_merge_unique"] = nil
            return .table(table)
        default:
            return value
        }
    }

    static func mergeBeforeSet(existing: SettingValue, value: SettingValue) -> SettingValue {
        switch value {
        case .table(var table):
            let unique = table["dynaconf_merge_unique"]
            table["dynaconf_merge_unique"] = nil
            let local = table["dynaconf_merge"] ?? unique
            table["dynaconf_merge"] = nil
            if let local, isTruthy(local) { return objectMerge(old: existing, new: .table(table)) }
            return .table(table)
        case .array(var elements):
            if let index = elements.firstIndex(of: .string("dynaconf_merge")) {
                elements.remove(at: index)
                return objectMerge(old: existing, new: .array(elements))
            }
            if let index = elements.firstIndex(of: .string("dynaconf_merge_unique")) {
                elements.remove(at: index)
                return objectMerge(old: existing, new: .array(elements), unique: true)
            }
            return value
        default:
            return value
        }
    }

    static func objectMerge(old: SettingValue, new: SettingValue, unique: Bool = false) -> SettingValue {
        if old == new || old == .null || new == .null { return new }
        switch (old, new) {
        case (.array(let oldElements), .array(var newElements)):
            var unique = unique
            if let index = newElements.firstIndex(of: .string("dynaconf_merge_unique")) {
                newElements.remove(at: index)
                unique = true
            }
            for item in oldElements.reversed() {
                if unique && newElements.contains(item) { continue }
                newElements.insert(item, at: 0)
            }
            return .array(newElements)
        case (.table(let oldTable), .table(let newTable)):
            var renamed = SettingsTable()
            for (key, value) in newTable.entries { renamed[oldTable.existingKey(matching: key) ?? key] = value }
            let shouldMerge = renamed["dynaconf_merge"].map(isTruthy) ?? true
            renamed["dynaconf_merge"] = nil
            guard shouldMerge else { return .table(renamed) }
            var result = SettingsTable()
            for (key, value) in oldTable.entries {
                if let replacement = renamed[key] {
                    result[key] = objectMerge(old: value, new: replacement)
                } else {
                    result[key] = value
                }
            }
            for (key, value) in renamed.entries where result[key] == nil { result[key] = value }
            return .table(result)
        default:
            return new
        }
    }
}

extension String {
    /// UTF-8 offset of the first `__`, or nil.
    var doubleUnderscoreOffset: Int? {
        var previous: UInt8 = 0
        var offset = 0
        for byte in utf8 {
            if byte == UInt8(ascii: "_") && previous == UInt8(ascii: "_") { return offset - 1 }
            previous = byte
            offset += 1
        }
        return nil
    }

    /// Every `__` replaced by `.` (left to right, as Python's str.replace does).
    func replacingDoubleUnderscores() -> String {
        var output: [UInt8] = []
        output.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        var pending: UInt8?
        while let byte = iterator.next() {
            if let held = pending {
                pending = nil
                if held == UInt8(ascii: "_") && byte == UInt8(ascii: "_") {
                    output.append(UInt8(ascii: "."))
                    continue
                }
                output.append(held)
            }
            if byte == UInt8(ascii: "_") { pending = byte } else { output.append(byte) }
        }
        if let held = pending { output.append(held) }
        return String(decoding: output, as: UTF8.self)
    }

    /// Case-insensitive equality without allocating for ASCII strings.
    func equalsIgnoringCase(_ other: String) -> Bool {
        if utf8.count == other.utf8.count {
            var allASCII = true
            var equal = true
            for (a, b) in zip(utf8, other.utf8) {
                if a >= 0x80 || b >= 0x80 { allASCII = false; break }
                let foldedA = (a >= 65 && a <= 90) ? a + 32 : a
                let foldedB = (b >= 65 && b <= 90) ? b + 32 : b
                if foldedA != foldedB { equal = false; break }
            }
            if allASCII { return equal }
        }
        return lowercased() == other.lowercased()
    }
}
