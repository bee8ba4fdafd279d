import ArgumentParser
import Foundation

/// Shell completion of the names a workspace holds: projections (`projections/*.lua`)
/// and saved queries (`queries/*.sql`), from the folder the command line names with
/// `--projections`/`--queries`, else the default one. The shell calls `audit` back for
/// them while completing (see docs/cli.md, "Shell completion").
enum WorkspaceCompletion {
    static let projections = projections(folderOption: "--projections")

    /// Projection names from the folder `folderOption` names (`verify` calls it
    /// --projections-dir, its --projections being a flag).
    static func projections(folderOption: String) -> CompletionKind {
        .custom { words, _, prefix in
            names(in: folder(option: folderOption, default: "projections", words), suffix: ".lua", prefix: prefix)
        }
    }

    static let queries = CompletionKind.custom { words, _, prefix in
        names(in: folder(option: "--queries", default: "queries", words), suffix: ".sql", prefix: prefix)
    }

    /// The value of `option` among the words typed so far (`--opt DIR` or `--opt=DIR`).
    static func folder(option: String, default folder: String, _ words: [String]) -> String {
        for (i, word) in words.enumerated().reversed() {
            if word == option, i + 1 < words.count { return words[i + 1] }
            if word.hasPrefix(option + "=") { return String(word.dropFirst(option.count + 1)) }
        }
        return folder
    }

    static func names(in folder: String, suffix: String, prefix: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return entries.filter { $0.hasSuffix(suffix) && $0.hasPrefix(prefix) }.map { String($0.dropLast(suffix.count)) }.sorted()
    }
}
