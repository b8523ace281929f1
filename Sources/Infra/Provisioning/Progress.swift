import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The live progress of `up`: on a terminal, one line per service being waited for, redrawn with
/// a spinner and the elapsed time; otherwise a plain line when each one finishes.
public final class Progress: Sendable {
    struct Entry {
        var name: String
        var started: ContinuousClock.Instant
        var finished: String?
    }

    struct State {
        var entries: [Entry] = []
        /// Lines of the live block drawn last, to move back over them.
        var drawnLines = 0
        var frame = 0
    }

    private let state = Mutex(State())
    private let write: @Sendable (String) -> Void
    public let isTerminal: Bool
    private let clock = ContinuousClock()

    /// `write` receives text without added newlines; `isTerminal` picks the redrawn form.
    public init(isTerminal: Bool, write: @escaping @Sendable (String) -> Void) {
        self.isTerminal = isTerminal
        self.write = write
    }

    /// Standard output, redrawn when it is a terminal.
    public static func standardOutput() -> Progress {
        Progress(isTerminal: isatty(1) == 1) { text in
            _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(1, $0.baseAddress, $0.count - 1) }
        }
    }

    /// A plain line, above the live block.
    public func line(_ text: String) {
        state.withLock { state in
            if isTerminal { clear(&state) }
            write(text + "\n")
            if isTerminal { draw(&state) }
        }
    }

    public func begin(_ name: String) {
        state.withLock { state in
            state.entries.append(Entry(name: name, started: clock.now))
            if isTerminal { redraw(&state) }
        }
    }

    /// Marks `name` done with `outcome` ("ready, 15.4", "failed: …").
    public func finish(_ name: String, _ outcome: String, ok: Bool) {
        state.withLock { state in
            guard let index = state.entries.firstIndex(where: { $0.name == name && $0.finished == nil }) else { return }
            let elapsed = Self.seconds(clock.now - state.entries[index].started)
            let text = "\(ok ? "✓" : "✗") \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(outcome) (\(elapsed))"
            if isTerminal {
                clear(&state)
                state.entries.remove(at: index)
                write(text + "\n")
                draw(&state)
            } else {
                state.entries.remove(at: index)
                write(text + "\n")
            }
        }
    }

    /// Redraws the spinner lines; call it periodically while waiting (terminal only).
    public func tick() {
        guard isTerminal else { return }
        state.withLock { state in
            state.frame += 1
            redraw(&state)
        }
    }

    /// Runs `body` with a ticker redrawing the live block every 100 ms on a terminal.
    public func animating<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        guard isTerminal else { return try await body() }
        let ticker = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                tick()
            }
        }
        defer { ticker.cancel() }
        return try await body()
    }

    private func redraw(_ state: inout State) {
        clear(&state)
        draw(&state)
    }

    private func clear(_ state: inout State) {
        guard state.drawnLines > 0 else { return }
        // Up to the first drawn line, then erase to the end of the screen.
        write("\u{1B}[\(state.drawnLines)F\u{1B}[J")
        state.drawnLines = 0
    }

    private func draw(_ state: inout State) {
        let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
        for entry in state.entries where entry.finished == nil {
            let elapsed = Self.seconds(clock.now - entry.started)
            write("\(frames[state.frame % frames.count]) \(entry.name.padding(toLength: 18, withPad: " ", startingAt: 0)) waiting (\(elapsed))\n")
            state.drawnLines += 1
        }
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return String(format: "%.1f s", Double(milliseconds) / 1000)
    }
}
