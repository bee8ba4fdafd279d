import Dispatch
import Foundation

/// SIGINT and SIGTERM as a request to stop, instead of death: a command that runs until
/// stopped (`replay --follow`, `events --follow`) finishes what it is doing and exits 0.
///
/// The signals are ignored from `init` on and observed by dispatch sources; the second
/// signal too only asks again (kill -9 is the way to end it at once).
final class StopSignals {
    private let sources: [any DispatchSourceSignal]
    private let flag = StopFlag()

    /// - Parameter onStop: called (on a dispatch queue) at each signal.
    init(onStop: @escaping @Sendable () -> Void = {}) {
        let flag = self.flag
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                flag.set()
                onStop()
            }
            source.resume()
            return source
        }
    }

    /// Whether a signal came.
    var requested: Bool { flag.isSet }

    deinit {
        for source in sources { source.cancel() }
    }
}

/// A flag set from a signal handler's queue and read by the command's thread.
///
/// `@unchecked Sendable`: `value` is read and written only while `lock` is held.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

extension StandardStreams {
    /// Whether stdout's reader went away (a closed pipe), found without writing: a
    /// command that waits for something to print ends then, not at its next line.
    static var outputClosed: Bool {
        var descriptor = pollfd(fd: 1, events: 0, revents: 0)
        guard poll(&descriptor, 1, 0) == 1 else { return false }
        return descriptor.revents & Int16(POLLERR | POLLHUP) != 0
    }
}
