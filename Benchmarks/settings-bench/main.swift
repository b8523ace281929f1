// The settings benchmark: TOML parsing throughput, and a full load of the project's settings.
//   settings-bench toml FILE ITERATIONS   -> MB/s
//   settings-bench load FOLDER ITERATIONS -> loads/s (variables from this process's environment)

import Foundation
import Settings

#if canImport(Glibc)
import Glibc
#endif

func seconds(_ start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let iterations = Int(arguments[3]), iterations > 0 else {
    print("usage: settings-bench toml FILE ITERATIONS | load FOLDER ITERATIONS")
    exit(2)
}
let mode = arguments[1]
let target = arguments[2]

var environment: [String: String] = [:]
var cursor = environ
while let entry = cursor.pointee {
    let text = String(cString: entry)
    if let equals = text.firstIndex(of: "=") {
        environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
    }
    cursor += 1
}
let variables = environment

// Measured off the main actor, like any service code.
struct BenchError: Error {
    let message: String
}

let task = Task.detached { () -> Result<Double, any Error> in
    do {
        switch mode {
        case "toml":
            guard let bytes = FileManager.default.contents(atPath: target).map(Array.init) else { return .failure(BenchError(message: "cannot read \(target)")) }
            _ = try TOML.parse(bytes: bytes)  // warm-up
            let start = ContinuousClock.now
            for _ in 0..<iterations { _ = try TOML.parse(bytes: bytes) }
            return .success(Double(bytes.count * iterations) / 1e6 / seconds(start))
        case "load":
            let loader = SettingsLoader(root: target)
            _ = try loader.load(environment: variables)
            let start = ContinuousClock.now
            for _ in 0..<iterations { _ = try Settings(decoding: try loader.load(environment: variables)) }
            return .success(Double(iterations) / seconds(start))
        default:
            return .failure(BenchError(message: "unknown mode \(mode)"))
        }
    } catch {
        return .failure(error)
    }
}
let outcome = await task.value

switch outcome {
case .success(let rate):
    print((rate * 10).rounded() / 10)
case .failure(let error):
    print("settings-bench: \(error)")
    exit(1)
}
