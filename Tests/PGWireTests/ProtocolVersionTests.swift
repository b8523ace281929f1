import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Protocol 3.2 negotiation")
struct ProtocolVersionTests {
    private func machine(minimum: PostgresConfiguration.ProtocolVersion = .v3_0, requested: PostgresConfiguration.ProtocolVersion = .v3_2)
        -> ConnectionStateMachine
    {
        ConnectionStateMachine(user: "u", password: nil, channelBinding: .prefer, serverEndPoint: nil, minimumProtocol: minimum, requestedProtocol: requested)
    }

    @Test func theConnectionStringsVersionsParseAsLibpqs() throws {
        let both = try PostgresConfiguration(connectionString: "host=h user=u min_protocol_version=3.0 max_protocol_version=latest")
        #expect(both.minimumProtocolVersion == .v3_0 && both.maximumProtocolVersion == .v3_2)
        let uri = try PostgresConfiguration(connectionString: "postgresql://u@h/db?max_protocol_version=3.2")
        #expect(uri.maximumProtocolVersion == .v3_2)
        #expect(try PostgresConfiguration(connectionString: "host=h user=u").maximumProtocolVersion == .v3_0, "3.0 by default, as libpq 18")
        for bad in ["3.1", "4.0", "3", "newest"] {
            #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "host=h user=u max_protocol_version=\(bad)") }
        }
        do {
            _ = try PostgresConfiguration(connectionString: "host=h user=u min_protocol_version=3.2 max_protocol_version=3.0")
            Issue.record("a minimum above the maximum was accepted")
        } catch {
            #expect(error.kind == .usage && error.message.contains("min_protocol_version 3.2 is newer than max_protocol_version 3.0"))
        }
        var out = ByteBuffer()
        try FrontendMessage.startup(version: PostgresConfiguration.ProtocolVersion.v3_2.code, parameters: [("user", "u")], into: &out)
        #expect(out.getInteger(at: out.readerIndex + 4, as: Int32.self) == 196_610)
    }

    @Test func aServerThatSpeaksOnly30IsFollowedDownUnlessTheMinimumForbidsIt() {
        var downgraded = machine()
        #expect(downgraded.received(.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: []))) == .none)
        #expect(downgraded.protocolVersion == .v3_0)
        var strict = machine(minimum: .v3_2)
        guard case .fail(let error) = strict.received(.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: [])))
        else {
            Issue.record("a 3.0 server was accepted with min_protocol_version 3.2")
            return
        }
        #expect(error.kind == .connection)
        #expect(error.message == "the server speaks protocol 3.0 at most, but min_protocol_version is 3.2")
    }

    @Test func anImpossibleNegotiationIsAProtocolViolation() {
        let cases: [(NegotiateProtocolVersion, PostgresConfiguration.ProtocolVersion, String)] = [
            (NegotiateProtocolVersion(newestMinorVersion: 1, unrecognizedOptions: []), .v3_2, "3.1, which is not a protocol version"),
            (NegotiateProtocolVersion(newestMinorVersion: 2, unrecognizedOptions: []), .v3_2, "not older than the 3.2 asked for"),
            (NegotiateProtocolVersion(newestMinorVersion: 3, unrecognizedOptions: []), .v3_2, "not older than the 3.2 asked for"),
            (NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: []), .v3_0, "not older than the 3.0 asked for"),
            (NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: ["_pq_.x"]), .v3_2, "names the option \"_pq_.x\", which was not sent"),
        ]
        // An option that was sent may be named, at the version asked for or below.
        var sent = ConnectionStateMachine(
            user: "u", password: nil, channelBinding: .prefer, serverEndPoint: nil, requestedProtocol: .v3_0, sentProtocolOptions: ["_pq_.x"])
        #expect(sent.received(.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: ["_pq_.x"]))) == .none)
        for (negotiation, requested, expected) in cases {
            var machine = machine(requested: requested)
            guard case .fail(let error) = machine.received(.negotiateProtocolVersion(negotiation)) else {
                Issue.record("\(negotiation) was accepted")
                continue
            }
            #expect(error.kind == .protocolViolation && error.message.contains(expected), "\(error.message)")
        }
        var twice = machine()
        _ = twice.received(.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: [])))
        guard case .fail = twice.received(.negotiateProtocolVersion(NegotiateProtocolVersion(newestMinorVersion: 0, unrecognizedOptions: []))) else {
            Issue.record("a second negotiation was accepted")
            return
        }
    }

    @Test func aLongCancelKeyIsAcceptedOnlyIn32() {
        let long = BackendKeyData(processID: 7, secretKey: Array(repeating: 0xAB, count: 32))
        var modern = machine()
        _ = modern.received(.authentication(.ok))
        #expect(modern.received(.backendKeyData(long)) == .none)
        #expect(modern.backendKey == long)
        var old = machine(requested: .v3_0)
        _ = old.received(.authentication(.ok))
        guard case .fail(let error) = old.received(.backendKeyData(long)) else {
            Issue.record("a 32-byte key was accepted in 3.0")
            return
        }
        #expect(error.kind == .protocolViolation)
        var cancel = ByteBuffer()
        FrontendMessage.cancelRequest(long, into: &cancel)
        #expect(cancel.readableBytes == 12 + 32 && cancel.getInteger(at: cancel.readerIndex, as: Int32.self) == 44)
    }
}

/// The error of a 10-second statement given 100 ms (its timeout sends a CancelRequest).
private func errorOfALongStatementTimedOut(on connection: PostgresConnection) async -> PostgresError? {
    do {
        _ = try await connection.execute("SELECT pg_sleep(10)", timeout: .milliseconds(100))
        return nil
    } catch {
        return error
    }
}

@Suite("Protocol 3.2 (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.postgres.isAvailable))
struct LiveProtocolVersionTests {
    /// The test server (PostgreSQL 15 or 16) speaks 3.0: a 3.2 request is negotiated down.
    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "the PostgreSQL 18 pass has no older server"))
    func asking32OfAnOlderServerFallsBackTo30AndCancelsStillWork() async throws {
        var configuration = try LiveServer.postgresConfiguration()
        configuration.maximumProtocolVersion = .v3_2
        let connection = try await LiveServer.connectPostgres(configuration)
        defer { connection.close() }
        let major = Int(connection.parameter("server_version")?.prefix { $0.isNumber } ?? "") ?? 0
        try #require(major < 18, "the main test server is expected to be older than 18")
        #expect(connection.protocolVersion == .v3_0)
        #expect(connection.protocolNegotiation?.newestMinorVersion == 0)
        #expect(connection.backendKey?.secretKey.count == 4)
        guard let error = await errorOfALongStatementTimedOut(on: connection) else {
            Issue.record("the statement was not cancelled")
            return
        }
        #expect(error.kind == .queryCancelled || error.kind == .timedOut)
        #expect(try await connection.execute("SELECT 1").rows.count == 1)

        configuration.minimumProtocolVersion = .v3_2
        do {
            _ = try await LiveServer.connectPostgres(configuration)
            Issue.record("connected with min_protocol_version 3.2 to a 3.0 server")
        } catch let error as PostgresError {
            #expect(error.message.contains("speaks protocol 3.0 at most, but min_protocol_version is 3.2"))
        }
    }

    /// PostgreSQL 18 (INFRA_TEST_POSTGRES18_URL, started by the harness beside the main server)
    /// speaks 3.2: a long cancel key, and a cancel that quotes it.
    @Test(.enabled(if: LiveServer.postgres18.isAvailable))
    func postgres18Speaks32WithALongCancelKey() async throws {
        let url = try LiveServer.require(LiveServer.postgres18.rawValue)
        var configuration = try PostgresConfiguration(connectionString: url)
        configuration.maximumProtocolVersion = .latest
        configuration.minimumProtocolVersion = .v3_2
        let connection = try await PostgresConnection.connect(configuration)
        defer { connection.close() }
        #expect(connection.protocolVersion == .v3_2)
        #expect(connection.protocolNegotiation == nil)
        let keyLength = connection.backendKey?.secretKey.count ?? 0
        #expect(keyLength > 4 && keyLength <= 256, "a 3.2 key of \(keyLength) bytes")
        #expect(connection.parameter("server_version")?.hasPrefix("18") == true)
        guard let error = await errorOfALongStatementTimedOut(on: connection) else {
            Issue.record("the statement was not cancelled")
            return
        }
        #expect(error.kind == .queryCancelled, "the long key was quoted right: \(error)")
        #expect(try await connection.execute("SELECT 1").rows.count == 1)

        // Asked for 3.0 (the default), the same server speaks 3.0 with a 4-byte key.
        configuration.minimumProtocolVersion = .v3_0
        configuration.maximumProtocolVersion = .v3_0
        let old = try await PostgresConnection.connect(configuration)
        defer { old.close() }
        #expect(old.protocolVersion == .v3_0 && old.backendKey?.secretKey.count == 4)
    }
}
