import AuditEngine
import Foundation

/// The words a user sees for an error that is not one of the engine's own
/// (`AuditFailure`, which says what to do itself): never a Swift value's debug form
/// such as `io("Is a directory")`.
enum ErrorText {
    static func describe(_ error: any Error) -> String {
        if let failure = error as? any AuditFailure { return failure.description }
        if let localized = error as? LocalizedError, let text = localized.errorDescription { return text }
        let nsError = error as NSError
        // Foundation's file errors (CocoaError, POSIX) carry their words and the path.
        if nsError.domain == NSCocoaErrorDomain || nsError.domain == NSPOSIXErrorDomain {
            let path = (nsError.userInfo[NSFilePathErrorKey] as? String).map { " (\($0))" } ?? ""
            return nsError.localizedDescription + path
        }
        // A type that wrote its own text (GRDB's DatabaseError: "SQLite error 14: …");
        // any other would print as a dump of its fields or enum case.
        // (Checked on the type: a cast of the value always succeeds, through NSError.)
        if type(of: error) is CustomStringConvertible.Type { return String(describing: error) }
        return "an unexpected error (\(String(reflecting: type(of: error)))); please report it with the command that caused it"
    }
}

/// A usage mistake found while a command runs (an unknown projection name, a missing
/// folder): "audit: MESSAGE", exit 64, without the root command's usage that
/// ArgumentParser would print for a `ValidationError` thrown outside `validate()`.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
