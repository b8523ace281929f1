import Synchronization
import Transport

/// A TCP proxy on the project's own transport that stands between a client and a real server and
/// misbehaves on request: it delays, throttles, splits every write into single bytes, cuts a
/// connection after a number of bytes in either direction, accepts and then says nothing (black
/// hole), or closes every connection at once (refuse). The mode can change while connections
/// live; it applies to each chunk forwarded from then on.
public final class FaultProxy: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Forward as it comes.
        case pass
        /// Wait this long before forwarding each chunk.
        case delay(Duration)
        /// At most this many bytes per second in each direction.
        case throttle(bytesPerSecond: Int)
        /// Forward one byte per write.
        case singleBytes
        /// Forward this many more bytes from the server to the client, then close both sides.
        case cutDownstream(afterBytes: Int)
        /// Forward this many more bytes from the client to the server, then close both sides.
        case cutUpstream(afterBytes: Int)
        /// Accept, read and drop what the client sends, answer nothing (new and live connections).
        case blackHole
        /// Close every connection at once, live ones included.
        case refuse
    }

    public let port: Int
    private let upstream: Endpoint
    private let listener: Listener
    private let state: Mutex<State>
    private let acceptor: Mutex<Task<Void, Never>?> = Mutex(nil)

    struct State {
        var mode: Mode
        /// Bytes still allowed through in the cut direction (counted from when the cut was set).
        var budget = Int.max
        var connections: [Int: (Connection, Connection?)] = [:]
        var nextID = 0
    }

    /// Connections accepted so far.
    public var acceptedCount: Int { state.withLock { $0.nextID } }

    public init(upstreamHost: String = "127.0.0.1", upstreamPort: Int, mode: Mode = .pass) throws {
        upstream = .tcp(host: upstreamHost, port: upstreamPort)
        listener = try Listener.bind()
        port = listener.endpoint.port ?? 0
        state = Mutex(State(mode: mode))
        setMode(mode)
        let task = Task { [listener, weak self] in
            while !Task.isCancelled {
                guard let client = try? await listener.accept() else { return }
                guard let self else {
                    client.close()
                    return
                }
                self.handle(client)
            }
        }
        acceptor.withLock { $0 = task }
    }

    deinit { close() }

    /// Changes the misbehaviour; a cut counts its bytes from now.
    public func setMode(_ mode: Mode) {
        let live = state.withLock { state -> [(Connection, Connection?)] in
            state.mode = mode
            switch mode {
            case .cutDownstream(let bytes), .cutUpstream(let bytes): state.budget = bytes
            default: state.budget = .max
            }
            return mode == .refuse ? Array(state.connections.values) : []
        }
        for (client, server) in live {
            client.close()
            server?.close()
        }
    }

    /// Stops listening and closes every connection.
    public func close() {
        acceptor.withLock { $0?.cancel() }
        listener.close()
        let live = state.withLock { state in
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        for (client, server) in live {
            client.close()
            server?.close()
        }
    }

    private func handle(_ client: Connection) {
        let (id, mode) = state.withLock { state -> (Int, Mode) in
            defer { state.nextID += 1 }
            state.connections[state.nextID] = (client, nil)
            return (state.nextID, state.mode)
        }
        if mode == .refuse {
            drop(id)
            return
        }
        Task {
            if mode == .blackHole {
                await self.swallow(client)
                self.drop(id)
                return
            }
            guard let server = try? await Connection.connect(to: upstream) else {
                self.drop(id)
                return
            }
            self.state.withLock { $0.connections[id] = (client, server) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.pump(from: client, to: server, downstream: false) }
                group.addTask { await self.pump(from: server, to: client, downstream: true) }
                await group.next()
                client.close()
                server.close()
                group.cancelAll()
            }
            self.drop(id)
        }
    }

    private func drop(_ id: Int) {
        let pair = state.withLock { $0.connections.removeValue(forKey: id) }
        pair?.0.close()
        pair?.1?.close()
    }

    private func swallow(_ connection: Connection) async {
        var buffer = ByteBuffer(capacity: 65536)
        while (try? await connection.read(into: &buffer, maximumBytes: 65536)) != nil {
            buffer.clear()
        }
    }

    private func pump(from source: Connection, to sink: Connection, downstream: Bool) async {
        var buffer = ByteBuffer(capacity: 65536)
        while !Task.isCancelled {
            buffer.clear()
            do {
                try await source.read(into: &buffer, maximumBytes: 65536)
            } catch {
                return
            }
            var chunk = buffer
            let mode = state.withLock { $0.mode }
            switch mode {
            case .pass, .refuse:
                break
            case .blackHole:
                // Live connections go quiet: nothing more is forwarded either way.
                continue
            case .delay(let duration):
                try? await Task.sleep(for: duration)
            case .throttle(let rate):
                let seconds = Double(chunk.readableBytes) / Double(max(1, rate))
                try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            case .singleBytes:
                while let byte = chunk.readSlice(count: 1) {
                    guard (try? await sink.write(byte)) != nil else { return }
                    await Task.yield()
                }
                continue
            case .cutDownstream, .cutUpstream:
                let cutsHere: Bool = if case .cutDownstream = mode { downstream } else { !downstream }
                if cutsHere {
                    let allowed = state.withLock { state -> Int in
                        let allowed = min(state.budget, chunk.readableBytes)
                        state.budget -= allowed
                        return allowed
                    }
                    if allowed < chunk.readableBytes {
                        if allowed > 0, let head = chunk.readSlice(count: allowed) { try? await sink.write(head) }
                        // The cut: both sides closed mid-message.
                        return
                    }
                }
            }
            guard (try? await sink.write(chunk)) != nil else { return }
        }
    }
}
