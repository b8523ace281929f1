/// The servers a client may connect to, in the order it tries them, and ADR-40's reconnect
/// schedule. A value with no I/O and no clock of its own (times are passed in, in nanoseconds of
/// the monotonic clock), so the schedule is tested without sockets.
///
/// The rules: servers are tried in pool order; a lost server goes to the end; a server is tried
/// no sooner than `wait` plus a random jitter after its previous attempt (so the first attempt
/// after a loss, on another server or on a server tried long ago, is immediate); a server that
/// failed more than `maximumAttempts` times in a row leaves the pool (a negative maximum keeps it
/// forever); a connection resets the server's count. A connection that the server breaks with a
/// protocol violation (it took the handshake, then sent garbage) counts as a failure too, and a
/// connection does not reset those: such a server leaves the pool after the same number of
/// violations in a row instead of being reconnected to forever. Servers advertised by the cluster
/// are added once each.
struct NATSServerPool: Sendable {
    struct Entry: Sendable, Equatable {
        var server: NATSServerAddress
        var lastAttempt: UInt64?
        var failedAttempts = 0
        /// Connections in a row that ended in a protocol violation.
        var violations = 0
    }

    private(set) var entries: [Entry]
    let maximumAttempts: Int

    init(_ servers: [NATSServerAddress], maximumAttempts: Int) {
        entries = servers.map { Entry(server: $0) }
        self.maximumAttempts = maximumAttempts
    }

    var isEmpty: Bool { entries.isEmpty }
    var servers: [NATSServerAddress] { entries.map(\.server) }

    private func index(of server: NATSServerAddress) -> Int? { entries.firstIndex { $0.server.sameEndpoint(server) } }

    /// The connection to `server` was lost: it is tried after the others. A loss through a
    /// protocol violation counts against the server; one past the limit removes it (returns true).
    @discardableResult
    mutating func lost(_ server: NATSServerAddress, protocolViolation: Bool = false) -> Bool {
        guard let index = index(of: server) else { return false }
        var entry = entries.remove(at: index)
        entry.violations = protocolViolation ? entry.violations + 1 : 0
        if protocolViolation, maximumAttempts >= 0, entry.violations > maximumAttempts { return true }
        entries.append(entry)
        return false
    }

    /// The next server to try and the earliest time to try it; it moves to the end of the pool.
    /// `jitter` is drawn once per call (0 when no wait is due).
    mutating func next(now: UInt64, wait: UInt64, jitter: (NATSServerAddress) -> UInt64) -> (server: NATSServerAddress, notBefore: UInt64)? {
        guard !entries.isEmpty else { return nil }
        let entry = entries.removeFirst()
        entries.append(entry)
        guard let last = entry.lastAttempt, now < last &+ wait else { return (entry.server, now) }
        return (entry.server, last &+ wait &+ jitter(entry.server))
    }

    /// An attempt on `server` starts at `now`.
    mutating func attempted(_ server: NATSServerAddress, at now: UInt64) {
        guard let index = index(of: server) else { return }
        entries[index].lastAttempt = now
    }

    /// The attempt failed; true when the server left the pool.
    @discardableResult
    mutating func failed(_ server: NATSServerAddress) -> Bool {
        guard let index = index(of: server) else { return false }
        entries[index].failedAttempts += 1
        guard maximumAttempts >= 0, entries[index].failedAttempts + entries[index].violations > maximumAttempts else { return false }
        entries.remove(at: index)
        return true
    }

    /// Connected to `server` at `now`.
    mutating func connected(_ server: NATSServerAddress, at now: UInt64) {
        guard let index = index(of: server) else { return }
        entries[index].failedAttempts = 0
        entries[index].lastAttempt = now
    }

    /// Adds the advertised servers (`host:port`) the pool lacks, with the credentials of `origin`;
    /// returns them, as `nats://host:port`.
    mutating func add<Generator: RandomNumberGenerator>(
        advertised: [String], from origin: NATSServerAddress, shuffle: Bool, using generator: inout Generator
    ) -> [String] {
        var added: [Entry] = []
        for text in advertised {
            guard var candidate = NATSServerAddress(discovered: text, tlsRequired: origin.tlsRequired) else { continue }
            guard index(of: candidate) == nil, !added.contains(where: { $0.server.sameEndpoint(candidate) }) else { continue }
            candidate.user = origin.user
            candidate.password = origin.password
            candidate.token = origin.token
            added.append(Entry(server: candidate))
        }
        if shuffle { added.shuffle(using: &generator) }
        entries.append(contentsOf: added)
        return added.map(\.server.redacted)
    }
}
