import Testing

@testable import NATSProto

@Suite("NATS server pool (ADR-40 schedule)")
struct NATSServerPoolTests {
    func servers(_ names: String...) throws -> [NATSServerAddress] { try names.map { try NATSServerAddress(parsing: $0) } }
    let second: UInt64 = 1_000_000_000

    @Test func serversRotateAndALostOneGoesLast() throws {
        var pool = NATSServerPool(try servers("a:1", "b:2", "c:3"), maximumAttempts: 5)
        pool.lost(try NATSServerAddress(parsing: "a:1"))
        #expect(pool.servers.map(\.host) == ["b", "c", "a"])
        let first = pool.next(now: 0, wait: 2 * second, jitter: { _ in 0 })
        #expect(first?.server.host == "b" && first?.notBefore == 0, "a server never tried is tried at once")
        #expect(pool.servers.map(\.host) == ["c", "a", "b"])
    }

    @Test func aServerWaitsReconnectWaitPlusJitterAfterItsLastAttempt() throws {
        var pool = NATSServerPool(try servers("a:1"), maximumAttempts: -1)
        let server = pool.servers[0]
        pool.attempted(server, at: 10 * second)
        let soon = pool.next(now: 11 * second, wait: 2 * second, jitter: { _ in 300 })
        #expect(soon?.notBefore == 12 * second + 300, "2 s after the last attempt, plus the jitter")
        let later = pool.next(now: 13 * second, wait: 2 * second, jitter: { _ in 300 })
        #expect(later?.notBefore == 13 * second, "the wait has passed: no delay, no jitter")
    }

    @Test func failuresPastTheLimitRemoveAServerAndAConnectionResetsTheCount() throws {
        var pool = NATSServerPool(try servers("a:1", "b:2"), maximumAttempts: 2)
        let a = pool.servers[0]
        let firstTwo = [pool.failed(a), pool.failed(a)]
        #expect(firstTwo == [false, false])
        pool.connected(a, at: 0)
        let afterConnecting = [pool.failed(a), pool.failed(a), pool.failed(a)]
        #expect(afterConnecting == [false, false, true], "the count restarted at the connection; the third failure in a row removes it")
        #expect(pool.servers.map(\.host) == ["b"])
        var forever = NATSServerPool(try servers("a:1"), maximumAttempts: -1)
        for _ in 0..<1000 { forever.failed(forever.servers[0]) }
        #expect(!forever.isEmpty)
    }

    @Test func aServerThatBreaksTheProtocolAfterEveryHandshakeLeavesThePool() throws {
        var pool = NATSServerPool(try servers("a:1", "b:2"), maximumAttempts: 2)
        let a = pool.servers[0]
        // Each connection succeeds (resetting ordinary failures) and ends in a violation.
        var removed: [Bool] = []
        for _ in 0..<3 {
            pool.connected(a, at: 0)
            removed.append(pool.lost(a, protocolViolation: true))
        }
        #expect(removed == [false, false, true], "the third violation in a row removes the server")
        #expect(pool.servers.map(\.host) == ["b"])

        // A clean loss forgives the violations; violations and failures add up.
        var mixed = NATSServerPool(try servers("a:1"), maximumAttempts: 2)
        let server = mixed.servers[0]
        mixed.lost(server, protocolViolation: true)
        mixed.lost(server)
        #expect(!mixed.lost(server, protocolViolation: true) && !mixed.isEmpty)
        #expect(mixed.failed(server) == false)
        #expect(mixed.failed(server) == true, "one violation and two failed attempts exceed a limit of 2")
    }

    @Test func advertisedServersAreAddedOnceWithTheOriginsCredentials() throws {
        var pool = NATSServerPool(try servers("nats://user:secret@10.0.0.1:4222"), maximumAttempts: 1)
        var generator = SystemRandomNumberGenerator()
        let origin = pool.servers[0]
        let added = pool.add(
            advertised: ["10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.2:4222", "[fd00::3]:4223", "::not a url"], from: origin,
            shuffle: false, using: &generator)
        #expect(added == ["nats://10.0.0.2:4222", "nats://[fd00::3]:4223"])
        #expect(pool.servers.count == 3)
        #expect(pool.servers.allSatisfy { $0.password == "secret" })
        #expect(pool.servers.dropFirst().allSatisfy { $0.isDiscovered })
        let again = pool.add(advertised: ["10.0.0.2:4222"], from: origin, shuffle: true, using: &generator)
        #expect(again.isEmpty)
    }
}
