#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable byte buffer with separate reader and writer indices.
///
/// Bytes are appended at `writerIndex` and consumed from `readerIndex`. Slices share the storage
/// (one reference each) until one side is written to (copy on write, moving only the unread
/// bytes), so framing code can hand out payloads without copying. Consumed bytes are reclaimed by
/// ``compact()``, which moves the unread tail only when at least half of the storage has been
/// consumed; every byte is therefore moved an amortized constant number of times, however the
/// reads and writes interleave.
public struct ByteBuffer: Sendable {
    @usableFromInline var storage: ByteStorage
    @usableFromInline var _readerIndex: Int
    @usableFromInline var _writerIndex: Int

    /// Index of the next byte to read.
    @inlinable public var readerIndex: Int { _readerIndex }
    /// Index where the next written byte goes.
    @inlinable public var writerIndex: Int { _writerIndex }

    /// Creates an empty buffer with room for `capacity` bytes (none allocated for 0).
    public init(capacity: Int = 0) {
        storage = capacity > 0 ? ByteStorage.make(capacity: capacity) : ByteStorage.empty
        _readerIndex = 0
        _writerIndex = 0
    }

    /// Creates a buffer whose readable bytes are `bytes`.
    public init<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        let array = Array(bytes)
        self.init(capacity: array.count)
        writeBytes(array)
    }

    /// Creates a buffer whose readable bytes are the UTF-8 encoding of `string`.
    public init(string: String) {
        self.init(capacity: string.utf8.count)
        writeString(string)
    }

    @usableFromInline init(storage: ByteStorage, readerIndex: Int, writerIndex: Int) {
        self.storage = storage
        self._readerIndex = readerIndex
        self._writerIndex = writerIndex
    }

    /// Number of bytes that can be read.
    @inlinable
    public var readableBytes: Int { writerIndex - readerIndex }
    /// Number of bytes that can be written without growing the storage.
    @inlinable
    public var writableBytes: Int { storage.size - writerIndex }
    /// Total bytes allocated.
    @inlinable
    public var capacity: Int { storage.size }
    /// Whether there is nothing left to read.
    @inlinable
    public var isEmpty: Bool { writerIndex == readerIndex }

    /// The readable bytes as a collection that shares this buffer's storage. Its indices are
    /// positions in the storage: it starts at ``readerIndex``.
    @inlinable
    public var readableBytesView: ByteBufferView { ByteBufferView(storage: storage, range: readerIndex..<writerIndex) }

    // MARK: - Capacity

    /// Makes sure at least `count` bytes can be written, compacting before growing.
    /// Growth doubles the capacity and carries over only the unread bytes.
    @inlinable
    public mutating func reserveWritableBytes(_ count: Int) {
        precondition(count >= 0, "negative reservation")  // safe: sizes are computed by callers, not read
        if !isKnownUniquelyReferenced(&storage) {
            reallocate(capacity: Swift.max(storage.size, readableBytes + count))
            return
        }
        if writableBytes >= count { return }
        compact()
        if writableBytes >= count { return }
        let needed = readableBytes + count
        var newCapacity = Swift.max(64, storage.size)
        while newCapacity < needed { newCapacity = newCapacity &* 2 }
        reallocate(capacity: newCapacity)
    }

    /// Moves the unread bytes to the front of new storage of `newCapacity` bytes, owned alone.
    @usableFromInline
    mutating func reallocate(capacity newCapacity: Int) {
        let unread = readableBytes
        let fresh = ByteStorage.make(capacity: Swift.max(newCapacity, unread))
        if unread > 0 { fresh.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: unread) }
        storage = fresh
        _readerIndex = 0
        _writerIndex = unread
    }

    /// Makes this buffer the only owner of its storage before a write, moving only the unread
    /// bytes when a slice still shares it.
    @inlinable
    mutating func makeStorageUnique() {
        if !isKnownUniquelyReferenced(&storage) { reallocate(capacity: storage.size) }
    }

    /// Reclaims consumed bytes. Moves the unread bytes to the front only when at least half of
    /// the storage has been consumed, which keeps the total cost of compaction linear.
    public mutating func compact() {
        if readerIndex == 0 { return }
        if readerIndex == writerIndex {
            _readerIndex = 0
            _writerIndex = 0
            return
        }
        guard readerIndex >= storage.size / 2 else { return }
        if !isKnownUniquelyReferenced(&storage) {
            reallocate(capacity: storage.size)
            return
        }
        let count = readableBytes
        storage.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: count)
        _readerIndex = 0
        _writerIndex = count
    }

    /// The storage this buffer holds alive (shared with other slices of it): slices of one
    /// storage have the same identity.
    public var storageIdentity: ObjectIdentifier { ObjectIdentifier(storage) }

    /// A copy of the readable bytes in a storage of their own and of their size, for a slice
    /// that would otherwise keep a much larger shared storage alive.
    public func detached() -> ByteBuffer {
        var copy = ByteBuffer(capacity: readableBytes)
        if readableBytes > 0 {
            copy.storage.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: readableBytes)
            copy._writerIndex = readableBytes
        }
        return copy
    }

    /// Drops all bytes, keeping the allocation when this buffer is its only owner.
    public mutating func clear() {
        _readerIndex = 0
        _writerIndex = 0
    }

    // MARK: - Raw access

    /// Calls `body` with the writable region (at least `minimumCount` bytes); `body` returns how
    /// many bytes it wrote, and the writer index moves by that much.
    @inlinable
    public mutating func writeWithUnsafeMutableBytes<E: Error>(
        minimumWritableBytes minimumCount: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int
    ) throws(E) -> Int {
        reserveWritableBytes(minimumCount)
        let start = writerIndex
        let region = UnsafeMutableRawBufferPointer(start: storage.bytes + start, count: storage.size - start)
        let written = try withExtendedLifetime(storage) { () throws(E) -> Int in try body(region) }
        precondition(written >= 0 && written <= storage.size - start, "wrote outside the writable region")  // safe: `body` reports what it wrote in its region
        _writerIndex += written
        return written
    }

    /// Calls `body` with the readable bytes.
    @inlinable
    public func withUnsafeReadableBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let region = UnsafeRawBufferPointer(start: storage.bytes + readerIndex, count: readableBytes)
        return try withExtendedLifetime(storage) { () throws(E) -> R in try body(region) }
    }

    /// Moves the reader index forward by `count` readable bytes.
    @inlinable
    public mutating func moveReaderIndex(forwardBy count: Int) {
        precondition(count >= 0 && count <= readableBytes, "moved the reader past the readable bytes")  // safe: decoders check readableBytes first
        _readerIndex += count
    }

    /// Moves the reader index back to `index`, which must lie between 0 and the writer index.
    /// Decoders use it to rewind when a frame turns out to be incomplete.
    public mutating func moveReaderIndex(to index: Int) {
        precondition(index >= 0 && index <= writerIndex, "reader index outside the buffer")  // safe: an index saved from this buffer
        _readerIndex = index
    }

    /// Drops written bytes beyond the first `count` readable ones: the way to roll back a partly
    /// written message, since writes may move the readable bytes (so absolute indices go stale).
    public mutating func truncate(toReadableBytes count: Int) {
        precondition(count >= 0 && count <= readableBytes, "truncation beyond the readable bytes")  // safe: a length measured on this buffer
        _writerIndex = readerIndex + count
    }

    /// Moves the writer index back to `index` (dropping written but unread bytes after it).
    public mutating func moveWriterIndex(to index: Int) {
        precondition(index >= readerIndex && index <= storage.size, "writer index outside the buffer")  // safe: an index saved from this buffer
        _writerIndex = index
    }

    // MARK: - Writing

    /// Appends `bytes`.
    @inlinable
    public mutating func writeBytes<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let count = bytes.count
        if count == 0 { return }
        if writableBytes < count { reserveWritableBytes(count) } else { makeStorageUnique() }
        let target = storage.bytes + writerIndex
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { source in
            if let from = source.baseAddress { target.copyMemory(from: from, byteCount: count) }
            return true
        }
        if copied == nil {
            var offset = 0
            for byte in bytes {
                target.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
                offset += 1
            }
        }
        _writerIndex += count
    }

    /// Appends the readable bytes of `other` without consuming them.
    @inlinable
    public mutating func writeBuffer(_ other: ByteBuffer) {
        other.withUnsafeReadableBytes { writeBytes($0) }
    }

    /// Appends the UTF-8 bytes of `string`; returns how many were written.
    @discardableResult
    public mutating func writeString(_ string: String) -> Int {
        var string = string
        return string.withUTF8 { utf8 in
            writeBytes(utf8)
            return utf8.count
        }
    }

    /// Appends the UTF-8 bytes of `string` and a terminating NUL.
    /// A string that itself contains NUL cannot be represented; it is refused.
    public mutating func writeCString(_ string: String) throws(ByteBufferError) {
        var string = string
        let containsNUL = string.withUTF8 { $0.contains(0) }
        if containsNUL { throw ByteBufferError.nulInCString }
        writeString(string)
        writeInteger(UInt8(0))
    }

    /// Appends the decimal digits of `value` (with a leading `-` when negative), as the text
    /// protocols write lengths and counts; no allocation.
    public mutating func writeDecimal(_ value: Int64) {
        _ = writeWithUnsafeMutableBytes(minimumWritableBytes: 21) { region -> Int in
            guard let base = region.baseAddress else { return 0 }
            if value < 0 { base.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self) }
            let sign = value < 0 ? 1 : 0
            return sign + ASCIIDecimal.write(value.magnitude, to: base + sign)
        }
    }

    /// Appends `count` copies of `byte`.
    public mutating func writeRepeating(_ byte: UInt8, count: Int) {
        guard count > 0 else { return }
        reserveWritableBytes(count)
        _ = memset(storage.bytes + writerIndex, Int32(byte), count)
        _writerIndex += count
    }

    /// Appends an integer in the given byte order (network order by default).

    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T, endianness: Endianness = .big) {
        let size = MemoryLayout<T>.size
        if writableBytes < size { reserveWritableBytes(size) } else { makeStorageUnique() }
        let encoded = endianness == .big ? value.bigEndian : value.littleEndian
        storage.bytes.storeBytes(of: encoded, toByteOffset: writerIndex, as: T.self)
        _writerIndex += size
    }

    /// Overwrites an integer at an absolute index that was already written.

    @inlinable
    public mutating func setInteger<T: FixedWidthInteger>(_ value: T, at index: Int, endianness: Endianness = .big) {
        let size = MemoryLayout<T>.size
        // Unsharing moves the unread bytes to the front: keep the index on the same byte.
        let fromReader = index - readerIndex
        makeStorageUnique()
        let index = readerIndex + fromReader
        precondition(index >= 0 && index + size <= writerIndex, "setInteger outside the written bytes")  // safe: the mark from beginLengthPrefix
        let encoded = endianness == .big ? value.bigEndian : value.littleEndian
        storage.bytes.storeBytes(of: encoded, toByteOffset: index, as: T.self)
    }

    /// Starts a length-prefixed frame: reserves room for a `T` length and returns its position.
    @inlinable
    public mutating func beginLengthPrefix<T: FixedWidthInteger>(_ type: T.Type) -> LengthPrefixMark<T> {
        let offset = writerIndex - readerIndex
        writeInteger(T(0))
        return LengthPrefixMark(offsetFromReader: offset)
    }

    /// Ends a frame started with ``beginLengthPrefix(_:)``. The length counts the bytes after the
    /// prefix, plus the prefix itself when `includingPrefix` is true (PostgreSQL's convention).
    @inlinable
    public mutating func finishLengthPrefix<T: FixedWidthInteger>(
        _ mark: LengthPrefixMark<T>, includingPrefix: Bool
    ) throws(ByteBufferError) {
        let position = readerIndex + mark.offsetFromReader
        var length = writerIndex - position
        if !includingPrefix { length -= MemoryLayout<T>.size }
        guard let value = T(exactly: length) else { throw ByteBufferError.frameTooLarge(length) }
        setInteger(value, at: position)
    }

    // MARK: - Reading

    /// Returns the integer at `readerIndex + offset` without consuming it, or nil if not all of it has arrived.

    @inlinable
    public func getInteger<T: FixedWidthInteger>(
        at offset: Int = 0, as type: T.Type = T.self, endianness: Endianness = .big
    ) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, readableBytes - offset >= size else { return nil }
        let raw = withExtendedLifetime(storage) { storage.bytes.loadUnaligned(fromByteOffset: readerIndex + offset, as: T.self) }
        return endianness == .big ? T(bigEndian: raw) : T(littleEndian: raw)
    }

    /// Reads and consumes an integer, or returns nil (consuming nothing) if not all of it has arrived.

    @inlinable
    public mutating func readInteger<T: FixedWidthInteger>(
        as type: T.Type = T.self, endianness: Endianness = .big
    ) -> T? {
        guard let value = getInteger(as: T.self, endianness: endianness) else { return nil }
        _readerIndex += MemoryLayout<T>.size
        return value
    }

    /// Reads and consumes `count` bytes as an array, or nil if fewer are readable.
    public mutating func readBytes(count: Int) -> [UInt8]? {
        guard count >= 0, readableBytes >= count else { return nil }
        let bytes = withUnsafeReadableBytes { Array($0.prefix(count)) }
        _readerIndex += count
        return bytes
    }

    /// Reads and consumes `count` bytes as a buffer that shares this buffer's storage (no copy).
    @inlinable
    public mutating func readSlice(count: Int) -> ByteBuffer? {
        guard let slice = getSlice(at: 0, count: count) else { return nil }
        _readerIndex += count
        return slice
    }

    /// Returns `count` bytes starting `offset` bytes after the reader index, sharing storage, or nil.
    @inlinable
    public func getSlice(at offset: Int, count: Int) -> ByteBuffer? {
        guard offset >= 0, count >= 0, readableBytes - offset >= count else { return nil }
        let start = readerIndex + offset
        return ByteBuffer(storage: storage, readerIndex: start, writerIndex: start + count)
    }

    /// Reads and consumes `count` bytes decoded as UTF-8 (invalid sequences are repaired), or nil.
    public mutating func readString(count: Int) -> String? {
        guard count >= 0, readableBytes >= count else { return nil }
        let string = withUnsafeReadableBytes { String(decoding: UnsafeRawBufferPointer(rebasing: $0.prefix(count)), as: UTF8.self) }
        _readerIndex += count
        return string
    }

    /// Offset from the reader index of the first `byte`, searching at most `limit` bytes; nil if absent.
    public func firstIndex(of byte: UInt8, searchingAtMost limit: Int = .max) -> Int? {
        firstIndex(of: byte, from: 0, searchingAtMost: limit)
    }

    /// Offset from the reader index of the first `byte` at or after offset `from`, searching at
    /// most `limit` bytes from there; nil if absent. Lets a scan resume where it stopped.
    public func firstIndex(of byte: UInt8, from offset: Int, searchingAtMost limit: Int = .max) -> Int? {
        let from = Swift.max(0, Swift.min(offset, readableBytes))
        let end = readerIndex + from + Swift.min(readableBytes - from, Swift.max(0, limit))
        let start = readerIndex + from
        guard end > start else { return nil }
        return withExtendedLifetime(storage) { () -> Int? in
            guard let found = memchr(storage.bytes + start, Int32(byte), end - start) else { return nil }
            return UnsafeRawPointer(found) - UnsafeRawPointer(storage.bytes + readerIndex)
        }
    }

    /// Reads a NUL-terminated string and consumes it with its terminator.
    /// Returns nil, consuming nothing, when no NUL is readable yet; throws when no NUL appears within
    /// `maximumLength` bytes.
    public mutating func readCString(maximumLength: Int = .max) throws(ByteBufferError) -> String? {
        guard let end = firstIndex(of: 0, searchingAtMost: maximumLength) else {
            if readableBytes >= maximumLength { throw ByteBufferError.cStringTooLong(limit: maximumLength) }
            return nil
        }
        let string = readString(count: end)
        _readerIndex += 1
        return string
    }

    /// Reads a frame preceded by a `T` length that counts only the bytes after it.
    /// Returns nil (consuming nothing) until the whole frame is readable; throws when the announced
    /// length is negative or larger than `maximumLength`.
    public mutating func readLengthPrefixedSlice<T: FixedWidthInteger>(
        _ type: T.Type, maximumLength: Int
    ) throws(ByteBufferError) -> ByteBuffer? {
        guard let length = getInteger(as: T.self) else { return nil }
        guard length >= 0, let count = Int(exactly: length), count <= maximumLength else {
            throw ByteBufferError.frameLengthOutOfBounds(announced: Int64(truncatingIfNeeded: length), limit: maximumLength)
        }
        let size = MemoryLayout<T>.size
        guard readableBytes - size >= count else { return nil }
        _readerIndex += size
        return readSlice(count: count)
    }
}

/// Byte order of an integer on the wire.
public enum Endianness: Sendable {
    /// Most significant byte first (network order).
    case big
    /// Least significant byte first.
    case little
}

/// The position of a length prefix reserved with ``ByteBuffer/beginLengthPrefix(_:)``.
/// It is kept relative to the reader index, so it stays valid when growth compacts the buffer;
/// nothing may be read from the buffer between begin and finish.
public struct LengthPrefixMark<T: FixedWidthInteger>: Sendable {
    /// Distance of the prefix from the reader index.
    public let offsetFromReader: Int

    @usableFromInline init(offsetFromReader: Int) {
        self.offsetFromReader = offsetFromReader
    }
}

/// Malformed or out-of-bounds data met while encoding or decoding a buffer.
public enum ByteBufferError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A string to be written as a C string contains a NUL byte.
    case nulInCString
    /// No NUL terminator within the allowed length.
    case cStringTooLong(limit: Int)
    /// A frame announced a length that is negative or above the limit.
    case frameLengthOutOfBounds(announced: Int64, limit: Int)
    /// A frame is too long for its length prefix.
    case frameTooLarge(Int)

    public var description: String {
        switch self {
        case .nulInCString: "string contains a NUL byte and cannot be sent as a C string"
        case .cStringTooLong(let limit): "no NUL terminator within \(limit) bytes"
        case .frameLengthOutOfBounds(let announced, let limit):
            "frame announces \(announced) bytes; allowed are 0...\(limit)"
        case .frameTooLarge(let length): "frame of \(length) bytes does not fit its length prefix"
        }
    }
}

extension ByteBuffer: Equatable {
    /// Two buffers are equal when their readable bytes are.
    public static func == (lhs: ByteBuffer, rhs: ByteBuffer) -> Bool {
        guard lhs.readableBytes == rhs.readableBytes else { return false }
        return lhs.withUnsafeReadableBytes { left in
            rhs.withUnsafeReadableBytes { right in
                guard let a = left.baseAddress, let b = right.baseAddress else { return true }
                return memcmp(a, b, left.count) == 0
            }
        }
    }
}

extension ByteBuffer: Hashable {
    public func hash(into hasher: inout Hasher) {
        withUnsafeReadableBytes { hasher.combine(bytes: $0) }
    }
}

extension ByteBuffer: CustomStringConvertible {
    /// A short hex dump of the readable bytes.
    public var description: String {
        let shown = readableBytesView.prefix(64).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }
        let suffix = readableBytes > 64 ? " … (\(readableBytes) bytes)" : ""
        return "ByteBuffer[" + shown.joined(separator: " ") + suffix + "]"
    }
}

/// The heap bytes of a buffer and its slices: one allocation, the object with its size and its
/// bytes after it (laid out by `ManagedBufferPointer`; the class itself declares no storage).
///
/// Sendable without reservation, as the class has no stored properties: its size and the place of
/// its bytes are fixed at creation, and its bytes are written only by a ``ByteBuffer`` that has
/// just checked, with `isKnownUniquelyReferenced`, that it holds the only reference; any other
/// holder makes the writer move to new storage first. So bytes another thread can see are never
/// written again.
@usableFromInline
final class ByteStorage: Sendable {
    @usableFromInline typealias Layout = ManagedBufferPointer<Int, UInt8>

    /// Shared by every empty buffer: creating one allocates nothing.
    @usableFromInline static let empty = ByteStorage.make(capacity: 0)

    /// Storage for `capacity` bytes. The elements are UInt8, so the memory is bound to UInt8 and
    /// typed views of the bytes (collections, C strings) are valid.
    @inlinable static func make(capacity: Int) -> ByteStorage {
        let size = Swift.max(0, capacity)
        let layout = Layout(bufferClass: ByteStorage.self, minimumCapacity: Swift.max(1, size)) { _, _ in size }
        return unsafeDowncast(layout.buffer, to: ByteStorage.self)
    }

    /// The usable size in bytes.
    @inlinable var size: Int { Layout(unsafeBufferObject: self).header }

    /// The first byte; valid as long as the object lives.
    @inlinable var bytes: UnsafeMutableRawPointer {
        Layout(unsafeBufferObject: self).withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) }
    }
}

/// The readable bytes of a ``ByteBuffer`` as a random-access collection sharing its storage.
/// Indices are storage positions (the view of a buffer starts at its reader index), as for an
/// array slice; slicing a view keeps them.
public struct ByteBufferView: RandomAccessCollection, Sendable, Hashable, CustomStringConvertible {
    public typealias Element = UInt8
    public typealias Index = Int
    public typealias SubSequence = ByteBufferView
    public typealias Indices = Range<Int>

    @usableFromInline let storage: ByteStorage
    @usableFromInline let range: Range<Int>

    @inlinable init(storage: ByteStorage, range: Range<Int>) {
        self.storage = storage
        self.range = range
    }

    @inlinable public var startIndex: Int { range.lowerBound }
    @inlinable public var endIndex: Int { range.upperBound }
    @inlinable public var indices: Range<Int> { range }
    @inlinable public func index(after i: Int) -> Int { i + 1 }
    @inlinable public func index(before i: Int) -> Int { i - 1 }

    @inlinable
    public subscript(position: Int) -> UInt8 {
        precondition(range.contains(position), "index \(position) outside \(range)")  // safe: indices come from this view (Collection contract)
        return withExtendedLifetime(storage) { storage.bytes.load(fromByteOffset: position, as: UInt8.self) }
    }

    @inlinable
    public subscript(bounds: Range<Int>) -> ByteBufferView {
        precondition(bounds.lowerBound >= range.lowerBound && bounds.upperBound <= range.upperBound, "range \(bounds) outside \(range)")  // safe: ranges come from this view (Collection contract)
        return ByteBufferView(storage: storage, range: bounds)
    }

    @inlinable
    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.bytes.assumingMemoryBound(to: UInt8.self) + range.lowerBound, count: range.count))
        }
    }

    /// Equal when the bytes are (positions do not matter).
    public static func == (lhs: ByteBufferView, rhs: ByteBufferView) -> Bool { lhs.elementsEqual(rhs) }

    public func hash(into hasher: inout Hasher) {
        withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The bytes, as an array literal would show them.
    public var description: String { Array(self).description }
}
