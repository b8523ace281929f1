import Foundation
import Synchronization
import TestSupport
import Testing
import Transport

@testable import NATSProto

@Suite("NATS authentication and TLS (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NATSAuthenticationTests {
    @Test func userAndPassword() async throws {
        var options = NATSConfiguration(url: try LiveServer.require("INFRA_TEST_NATS_AUTH_URL"))
        options.user = try LiveServer.require("INFRA_TEST_NATS_AUTH_USER")
        options.password = try LiveServer.require("INFRA_TEST_NATS_AUTH_PASSWORD")
        let records = RecordingLogHandler.Store()
        options.logger = records.logger()
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.authRequired == true)
        try await client.flush()
        await client.close()
        #expect(records.all.contains { $0.message == "connected" && $0.metadata["authentication"] == "user and password" })
        #expect(!records.all.contains { $0.text.contains(options.password ?? "-") }, "the password is never logged")

        // The same credentials in the URL; the URL shown never carries the password.
        let url = try LiveServer.require("INFRA_TEST_NATS_AUTH_URL").replacingOccurrences(
            of: "nats://", with: "nats://\(options.user ?? ""):\(options.password ?? "")@")
        let fromURL = try await NATSClient.connect(url: url)
        #expect(fromURL.connectedServer?.contains(options.password ?? "-") == false)
        await fromURL.close()
    }

    @Test func wrongOrMissingCredentialsAreAnAuthorizationError() async throws {
        var options = NATSConfiguration(url: try LiveServer.require("INFRA_TEST_NATS_AUTH_URL"))
        options.user = "infra"
        options.password = "wrong"
        let wrong = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(wrong?.kind == .authorization)
        #expect(wrong?.description.contains("wrong") == false, "the password is not in the message")
        options.user = nil
        options.password = nil
        let missing = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(missing?.kind == .authorization)
    }

    @Test func nkeySignsTheServerNonce() async throws {
        var options = NATSConfiguration(url: try LiveServer.require("INFRA_TEST_NATS_AUTH_URL"))
        options.nkeySeed = try LiveServer.require("INFRA_TEST_NATS_NKEY_SEED")
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.authRequired == true, "the server asked for credentials and took the signed nonce")
        let subject = LiveServer.natsSubject("nkey")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("signed", to: subject)
        #expect(try await subscription.collect(1).first?.text == "signed")
        await client.close()

        options.nkeySeed = try NKeyPair.generate(.user).encodedSeed
        let stranger = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(stranger?.kind == .authorization)
    }

    @Test func credentialsFileSignsWithTheUserJWT() async throws {
        var options = NATSConfiguration(url: try LiveServer.require("INFRA_TEST_NATS_JWT_URL"))
        let credentials = try LiveServer.require("INFRA_TEST_NATS_CREDS_FILE")
        options.credentialsFile = credentials
        let client = try await NATSClient.connect(options)
        let subject = LiveServer.natsSubject("jwt")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("decentralised", to: subject)
        #expect(try await subscription.collect(1).first?.text == "decentralised")
        await client.close()

        // The same JWT with another user's seed: the nonce signature does not match it.
        let text = try String(contentsOfFile: credentials, encoding: .utf8)
        let seed = try #require(text.split(separator: "\n").first { $0.hasPrefix("SU") })
        let forged = FileManager.default.temporaryDirectory.appendingPathComponent("forged-\(UUID().uuidString).creds")
        try text.replacingOccurrences(of: String(seed), with: try NKeyPair.generate(.user).encodedSeed)
            .write(to: forged, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: forged) }
        options.credentialsFile = forged.path
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(error?.kind == .authorization)
    }

    func tlsOptions() throws -> NATSConfiguration {
        var options = NATSConfiguration(url: try LiveServer.require("INFRA_TEST_NATS_TLS_URL"))
        options.token = try LiveServer.require("INFRA_TEST_NATS_TLS_TOKEN")
        options.tls = TLSConfiguration(trustRoots: .file(try LiveServer.require("INFRA_TEST_NATS_TLS_CA_FILE")))
        return options
    }

    @Test func tlsWithATokenAfterINFOAndFirst() async throws {
        var options = try tlsOptions()
        let client = try await NATSClient.connect(options)
        #expect(client.serverInfo?.tlsRequired == true)
        let subject = LiveServer.natsSubject("tls")
        let subscription = try await client.subscribe(to: subject)
        try await client.flush()
        try await client.publish("secret", to: subject)
        #expect(try await subscription.collect(1).first?.text == "secret")
        await client.close()

        options.tlsHandshakeFirst = true
        let first = try await NATSClient.connect(options)
        try await first.flush()
        await first.close()
    }

    @Test func tlsRefusesAnUntrustedCertificateAndAWrongToken() async throws {
        var options = try tlsOptions()
        options.tls = TLSConfiguration()
        let untrusted = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(untrusted?.kind == .tls)

        options = try tlsOptions()
        options.token = "not-the-token"
        let wrong = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(wrong?.kind == .authorization)
    }

    @Test func plainServerRefusedWhenTLSIsRequired() async throws {
        var options = try LiveServer.natsOptions()
        options.requireTLS = true
        let error = await #expect(throws: NATSError.self) { try await NATSClient.connect(options) }
        #expect(error?.kind == .tls)
    }
}
