import AuditEngine
import Foundation

/// One measured run of a child process: what it did, how long, its peak memory.
struct Measurement: Codable {
    var name: String
    var events: Int
    var seconds: Double
    var peakRSSMB: Double
    var summary: String = ""
    /// A replay's: where its pass's time went.
    var timings: ReplayTimings?

    var eventsPerSecond: Double { Double(events) / seconds }
}

enum Measure {
    /// Seconds taken by `body`, on the monotonic clock.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// This process's peak resident memory in MB.
    static func peakRSSMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Runs this benchmark binary again with `arguments` (a hidden child subcommand) and
    /// reads the `Measurement` it prints as its last line.
    static func child(_ arguments: [String]) throws -> Measurement {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let last = String(decoding: output, as: UTF8.self).split(separator: "\n").last
        else {
            throw BenchError("child \(arguments.joined(separator: " ")) failed with status \(process.terminationStatus)")
        }
        return try JSONDecoder().decode(Measurement.self, from: Data(last.utf8))
    }

    /// Runs `executable` with `arguments` to its end and returns the seconds it took;
    /// its output is discarded. Fails when it exits with another status than 0.
    static func command(_ executable: String, _ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let start = DispatchTime.now().uptimeNanoseconds
        try process.run()
        process.waitUntilExit()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard process.terminationStatus == 0 else {
            throw BenchError("\(executable) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)")
        }
        return seconds
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// One line per measured run.
    static func printRun(_ run: Int, _ m: Measurement) {
        let memory = m.peakRSSMB > 0 ? String(format: "  peak %5.0f MB", m.peakRSSMB) : ""
        print("run \(run)  " + m.name.padding(toLength: 20, withPad: " ", startingAt: 0)
            + String(format: " %9.0f events/s  %6.2f s", m.eventsPerSecond, m.seconds) + memory)
    }

    static func report(_ m: Measurement) {
        let json = try! JSONEncoder().encode(m)
        print(String(decoding: json, as: UTF8.self))
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
