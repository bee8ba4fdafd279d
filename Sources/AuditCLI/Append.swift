import ArgumentParser
import AuditEngine

extension AuditCommand {
    struct Append: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append one event; prints it as stored (JSON, with seq and version).",
            discussion: """
                Exits 3 when --expected-version does not match the stream's version.

                Example:
                  audit append --stream order-1 --type OrderPlaced --data '{"amount":25}' \\
                    --expected-version none
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: "The stream (aggregate or case) the event belongs to.")
        var stream: String

        @Option(help: "The event type, any non-empty text.")
        var type: String

        @Option(help: "The payload, a JSON object.")
        var data: String

        @Option(help: "Metadata, a JSON object (correlation_id, actor, …).")
        var meta: String?

        @Option(help: ArgumentHelp("When it happened (default: now): \(TimeArgument.eventForms).", valueName: "time"))
        var occurredAt: String?

        @Option(help: "A unique event id (default: a generated UUID).")
        var id: String?

        @Option(help: ArgumentHelp("The stream's version before this event: N, none (a new stream) or any.", valueName: "version"))
        var expectedVersion: String = "any"

        func validate() throws {
            if ExpectedVersion(text: expectedVersion) == nil {
                throw ValidationError("--expected-version must be a number 0 or more, 'none' or 'any', not '\(expectedVersion)'")
            }
        }

        func run() throws {
            let event = NewEvent(
                stream: stream, type: type,
                data: try parseJSONArgument(data, option: "--data"),
                meta: try meta.map { try parseJSONArgument($0, option: "--meta") },
                occurredAt: try occurredAt.map { try TimeArgument.eventTime($0, option: "--occurred-at") },
                id: id,
                expectedVersion: ExpectedVersion(text: expectedVersion)!)
            let result = try openStore(global).append(event)
            try printCommitted(result.event.jsonLine, "the event was appended at seq \(result.event.seq) (id \(result.event.id))")
        }
    }
}

/// Parses a JSON option value, naming the option on failure.
func parseJSONArgument(_ text: String, option: String) throws -> JSONValue {
    do {
        return try JSONParser.parse(text)
    } catch {
        throw StoreError.invalidEvent(reason: "\(option) is not valid JSON: \(error)")
    }
}
