// Writes the fuzzers' seed corpora from the golden streams, through the tests' own fixture reader:
// the server's side of every conversation in Fixtures/{resp,nats,pgwire}, and the TOML and .env
// documents of Fixtures/settings plus settings.toml (and the toml-test cases of TOML_TEST_DIR).
//
//   fixture-corpus OUTPUT_DIRECTORY    (makes OUTPUT_DIRECTORY/corpus-{resp,nats,pgwire,toml})
import Foundation
import TestSupport

@main
struct FixtureCorpus {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 2 else {
            FileHandle.standardError.write(Data("usage: fixture-corpus OUTPUT_DIRECTORY\n".utf8))
            exit(2)
        }
        let output = URL(fileURLWithPath: arguments[1])
        let files = FileManager.default
        for (folder, fileExtension) in [("resp", "resp"), ("nats", "nats"), ("pgwire", "pgw")] {
            let corpus = output.appendingPathComponent("corpus-" + folder)
            try files.createDirectory(at: corpus, withIntermediateDirectories: true)
            for stream in try GoldenStream.all(in: folder, fileExtension: fileExtension) {
                try Data(stream.serverBytes).write(to: corpus.appendingPathComponent(stream.name + ".bin"))
            }
        }
        // The JetStream API answers, and ack subjects of both forms.
        let jetstream = output.appendingPathComponent("corpus-jetstream")
        try files.createDirectory(at: jetstream, withIntermediateDirectories: true)
        var answers = 0
        if let walker = files.enumerator(at: GoldenStream.fixturesDirectory.appendingPathComponent("jetstream"), includingPropertiesForKeys: nil) {
            for case let url as URL in walker where url.pathExtension == "json" {
                try Data(contentsOf: url).write(to: jetstream.appendingPathComponent(String(format: "answer-%04d", answers)))
                answers += 1
            }
        }
        try Data("$JS.ACK.ORDERS.worker.2.1045.17.1700000000123456789.3".utf8).write(to: jetstream.appendingPathComponent("ack-9"))
        try Data("$JS.ACK.hub.HASH.ORDERS.worker.1.9.8.1700000000000000000.0.token".utf8).write(to: jetstream.appendingPathComponent("ack-12"))
        let toml = output.appendingPathComponent("corpus-toml")
        try files.createDirectory(at: toml, withIntermediateDirectories: true)
        let root = GoldenStream.fixturesDirectory.deletingLastPathComponent()
        var documents = [root.appendingPathComponent("settings.toml")]
        for base in [GoldenStream.fixturesDirectory.appendingPathComponent("settings")]
            + (ProcessInfo.processInfo.environment["TOML_TEST_DIR"].map { [URL(fileURLWithPath: $0).appendingPathComponent("valid")] } ?? [])
        {
            guard let walker = files.enumerator(at: base, includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in walker where url.pathExtension == "toml" || url.lastPathComponent == "env.fixture" {
                documents.append(url)
            }
        }
        for (index, document) in documents.enumerated() {
            try Data(contentsOf: document).write(to: toml.appendingPathComponent(String(format: "%04d", index)))
        }
        print("fixture-corpus: \(documents.count) TOML and .env documents, \(answers) JetStream answers, golden streams of resp, nats and pgwire")
    }
}
