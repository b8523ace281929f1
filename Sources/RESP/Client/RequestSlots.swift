/// Per-request entries keyed by request id, for ids handed out in sequence and mostly finished in
/// order (a pipelined connection's requests): an entry's place is its id's distance from the
/// oldest entry kept, so a lookup costs no hashing. An entry finished out of order leaves a hole
/// until the entries before it are gone.
struct RequestSlots<Entry> {
    private var entries: [Entry?] = []
    /// Where the oldest entry kept is in `entries`.
    private var head = 0
    /// The id of the entry at `head`.
    private var firstID: UInt64 = 0

    /// Whether no entry is kept.
    var isEmpty: Bool { head == entries.count }

    /// The entry for `id`; setting nil removes it. A new entry's id must be above every id kept.
    subscript(id: UInt64) -> Entry? {
        get {
            guard id >= firstID, id - firstID < UInt64(entries.count - head) else { return nil }
            return entries[head + Int(id - firstID)]
        }
        set {
            if isEmpty {
                guard let newValue else { return }
                entries.removeAll(keepingCapacity: true)
                head = 0
                firstID = id
                entries.append(newValue)
                return
            }
            guard id >= firstID else {
                precondition(newValue == nil, "request ids are handed out in sequence")  // safe: ids come from one counter, under the lock
                return
            }
            let offset = id - firstID
            let kept = UInt64(entries.count - head)
            if offset >= kept {
                guard let newValue else { return }
                // Ids skipped on the way (never stored) are holes.
                for _ in kept..<offset { entries.append(nil) }
                entries.append(newValue)
                return
            }
            entries[head + Int(offset)] = newValue
            // The oldest entry went: drop the holes after it too.
            if newValue == nil, offset == 0 { dropLeadingHoles() }
        }
    }

    /// Calls `body` with each id and entry, oldest first; `body` may change or remove the entry.
    mutating func updateEach(_ body: (UInt64, inout Entry?) -> Void) {
        for index in head..<entries.count where entries[index] != nil {
            body(firstID &+ UInt64(index - head), &entries[index])
        }
        dropLeadingHoles()
    }

    /// Moves past removed entries at the front; empties the storage when nothing is left, and
    /// compacts it once the dead front is half of it.
    private mutating func dropLeadingHoles() {
        while head < entries.count, entries[head] == nil {
            head += 1
            firstID &+= 1
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}

extension RequestSlots: Sendable where Entry: Sendable {}
