// The transport's loopback echo benchmark: 1-byte ping-pong round trips per second over N
// connections, each driven by its own task on the shared reactor.
// usage: transport-bench PORT CONNECTIONS SECONDS  -> prints round trips per second
// TRANSPORT_BENCH_INLINE=1 reads with mayWaitInline, as the clients read for a lone request;
// TRANSPORT_BENCH_INLINE_WAIT_US sets that wait's budget (default: the transport's).
// TRANSPORT_BENCH_ON_REACTOR=1 runs each connection's task on the reactor's thread (the reactor
// as the task's executor).

import Transport

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 4, let port = Int(arguments[1]), let connectionCount = Int(arguments[2]),
    let seconds = Double(arguments[3])
else {
    print("usage: transport-bench PORT CONNECTIONS SECONDS")
    exit(2)
}

let inline = getenv("TRANSPORT_BENCH_INLINE") != nil
let onReactor = getenv("TRANSPORT_BENCH_ON_REACTOR") != nil
var options = ConnectOptions()
if let budget = getenv("TRANSPORT_BENCH_INLINE_WAIT_US").flatMap({ Int(String(cString: $0)) }) {
    options.inlineReadWait = .microseconds(budget)
}

func pingPong(port: Int, connections: Int, seconds: Double) async throws -> Double {
    let endpoint = Endpoint.tcp(host: "127.0.0.1", port: port)
    var opened: [Connection] = []
    for _ in 0..<connections { opened.append(try await Connection.connect(to: endpoint, options: options)) }
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for connection in opened {
            group.addTask(executorPreference: onReactor ? connection.reactor : nil) {
                let ping = ByteBuffer(bytes: [UInt8(ascii: "x")])
                var reply = ByteBuffer(capacity: 4096)
                var count = 0
                while count & 63 != 0 || ContinuousClock.now < end {
                    try await connection.write(ping)
                    reply.clear()
                    try await connection.read(into: &reply, mayWaitInline: inline)
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - start
    for connection in opened { connection.close() }
    return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

// Measured off the main actor, on the cooperative pool like any client code.
let result = await Task.detached {
    try await pingPong(port: port, connections: connectionCount, seconds: seconds)
}.result
switch result {
case .success(let rate):
    print(Int(rate))
case .failure(let error):
    print("transport-bench: \(error)")
    exit(1)
}
