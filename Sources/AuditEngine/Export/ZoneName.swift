import Foundation

/// A schedule's time zone by its IANA name: a zone the tz database has a file for
/// (`Europe/Berlin`, `Etc/GMT+2`), or `UTC`. Foundation alone also takes names such as
/// `GMT+2` or `UTC+3` as fixed offsets east of UTC, where POSIX `TZ=GMT+2` and the tz
/// database's `Etc/GMT+2` mean two hours *west*: such a name is refused, so that a
/// schedule never runs four hours off without a word.
enum ZoneName {
    static func timeZone(_ identifier: String) -> TimeZone? {
        if identifier == "UTC" { return TimeZone(identifier: "UTC") }
        guard !identifier.isEmpty, !identifier.hasPrefix("/"), !identifier.split(separator: "/").contains(".."),
              identifier.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_+-".contains($0)) })
        else { return nil }
        let directory = ProcessInfo.processInfo.environment["TZDIR"] ?? "/usr/share/zoneinfo"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory + "/" + identifier, isDirectory: &isDirectory), !isDirectory.boolValue
        else { return nil }
        return TimeZone(identifier: identifier)
    }
}
